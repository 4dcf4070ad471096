//! One message per outcome. The send happens inside the event's transaction:
//! if it fails, nothing is recorded and the event is retried; once the record
//! commits, a redelivery finds it and sends nothing. A crash between send and
//! commit resends with the same notification id, which receivers deduplicate.

use std::sync::Arc;

use async_trait::async_trait;
use orderflow_envelope::{Event, EventType, NotificationSent};
use orderflow_runtime::resilience::{CallError, Policy};
use orderflow_runtime::{Handler, HandlerCtx, HandlerError};

use crate::channel::Channel;
use crate::domain::notification_for;
use crate::store;

pub struct NotificationHandler {
    pub channel: Arc<dyn Channel>,
    pub policy: Policy,
}

#[async_trait]
impl Handler for NotificationHandler {
    fn handles(&self, event_type: EventType) -> bool {
        matches!(
            event_type,
            EventType::PaymentProcessed | EventType::OrderCompleted | EventType::OrderCancelled
        )
    }

    async fn handle(&self, event: Event, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError> {
        let Some(notification) = notification_for(&event) else {
            return Ok(());
        };
        if store::already_sent(ctx.tx, &notification.order_id, notification.kind).await? {
            return Ok(());
        }
        self.policy
            .call(|| self.channel.send(&notification))
            .await
            .map_err(|e| match e {
                CallError::Rejected(e) => HandlerError::Permanent(e.to_string()),
                other => HandlerError::Transient(other.to_string()),
            })?;
        store::record(ctx.tx, &notification, self.channel.name()).await?;
        ctx.emit(NotificationSent {
            order_id: notification.order_id,
            customer_id: notification.customer_id,
            notification_id: notification.notification_id,
            kind: notification.kind.to_string(),
            channel: self.channel.name().to_string(),
        });
        Ok(())
    }
}
