//! One message per outcome, record-intent → call → record-outcome: a short
//! transaction records the notification as PENDING, the channel is called
//! with no transaction or connection held, and a second short transaction
//! marks it SENT and emits `NotificationSent`. A crash in between sends again
//! with the same notification id (the channel's idempotency key), which
//! receivers deduplicate; once SENT, a redelivery sends nothing.

use std::sync::Arc;

use async_trait::async_trait;
use orderflow_envelope::{Event, EventType, NotificationSent};
use orderflow_runtime::resilience::{CallError, Policy};
use orderflow_runtime::{ExternalCall, Handler, HandlerCtx, HandlerError};

use crate::channel::Channel;
use crate::domain::{notification_for, Notification};
use crate::store;

pub struct NotificationHandler {
    pub channel: Arc<dyn Channel>,
    pub policy: Arc<Policy>,
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
        if !store::record_pending(ctx.tx, &notification, self.channel.name()).await? {
            match store::status(ctx.tx, &notification.order_id, notification.kind).await? {
                Some(status) if status == store::SENT => return Ok(()),
                _ => {} // recorded by an earlier attempt: send again
            }
        }
        ctx.call(Send {
            channel: self.channel.clone(),
            policy: self.policy.clone(),
            notification,
        });
        Ok(())
    }
}

struct Send {
    channel: Arc<dyn Channel>,
    policy: Arc<Policy>,
    notification: Notification,
}

#[async_trait]
impl ExternalCall for Send {
    fn dependency(&self) -> &'static str {
        "notification-channel"
    }

    async fn call(&mut self) -> Result<(), HandlerError> {
        self.policy
            .call(|| self.channel.send(&self.notification))
            .await
            .map_err(|e| match e {
                // The channel will never take it: an operator must look.
                CallError::Rejected(e) => HandlerError::Permanent(e.to_string()),
                other => HandlerError::Transient(other.to_string()),
            })
    }

    async fn record(&mut self, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError> {
        let n = &self.notification;
        if store::mark_sent(ctx.tx, &n.notification_id).await? {
            ctx.emit(NotificationSent {
                order_id: n.order_id.clone(),
                customer_id: n.customer_id.clone(),
                notification_id: n.notification_id.clone(),
                kind: n.kind.to_string(),
                channel: self.channel.name().to_string(),
            });
        }
        Ok(())
    }
}
