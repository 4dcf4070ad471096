//! One message per outcome, record-intent → call → record-outcome: a short
//! transaction records the notification as PENDING, the channel is called
//! with no transaction or connection held, and a second short transaction
//! marks it SENT and emits `NotificationSent`. A crash in between sends again
//! with the same notification id (the channel's idempotency key), which
//! receivers deduplicate; once SENT, a redelivery sends nothing.
//!
//! Channels that mail need the customer's address: each OrderCreated leaves
//! it (or its absence) in `order_recipients`. An outcome that overtakes its
//! order's OrderCreated (PaymentProcessed arrives on another topic) is
//! recorded as WAITING and sent when the OrderCreated comes — not retried:
//! the consumer holds an order's later events behind a retry, so the
//! OrderCreated would wait behind the very retry waiting for it. An order
//! without an address gets no email (logged, not an error).

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
            EventType::OrderCreated
                | EventType::PaymentProcessed
                | EventType::OrderCompleted
                | EventType::OrderCancelled
        )
    }

    async fn handle(&self, event: Event, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError> {
        if let Event::OrderCreated(created) = &event {
            let email = created.customer_email.as_deref();
            store::record_recipient(ctx.tx, &created.order_id, email).await?;
            let Some(email) = email else {
                store::give_up_waiting(ctx.tx, &created.order_id).await?;
                return Ok(());
            };
            let mut waiting = store::waiting(ctx.tx, &created.order_id).await?;
            if !waiting.is_empty() {
                for n in &mut waiting {
                    n.email = Some(email.to_string());
                }
                ctx.call(self.send(waiting));
            }
            return Ok(());
        }
        let Some(mut notification) = notification_for(&event) else {
            return Ok(());
        };
        if self.channel.needs_address() {
            match store::recipient(ctx.tx, &notification.order_id).await? {
                Some(Some(email)) => notification.email = Some(email),
                Some(None) => {
                    tracing::info!(order_id = %notification.order_id, kind = notification.kind,
                        "the order has no email address (its token had no email claim): no email sent");
                    return Ok(());
                }
                None => {
                    store::record(ctx.tx, &notification, self.channel.name(), store::WAITING)
                        .await?;
                    return Ok(());
                }
            }
        }
        if !store::record(ctx.tx, &notification, self.channel.name(), store::PENDING).await? {
            match store::status(ctx.tx, &notification.order_id, notification.kind).await? {
                Some(status) if status == store::PENDING => {} // an earlier attempt's: send again
                _ => return Ok(()),                            // sent, or waiting for its address
            }
        }
        ctx.call(self.send(vec![notification]));
        Ok(())
    }
}

impl NotificationHandler {
    fn send(&self, notifications: Vec<Notification>) -> Send {
        Send {
            channel: self.channel.clone(),
            policy: self.policy.clone(),
            notifications,
        }
    }
}

/// Sends notifications of one order, in order, then marks them SENT. Today
/// that is one, or at most the one that waited for the address; should a
/// later one fail, the retry sends the earlier ones again (same Message-ID).
struct Send {
    channel: Arc<dyn Channel>,
    policy: Arc<Policy>,
    notifications: Vec<Notification>,
}

#[async_trait]
impl ExternalCall for Send {
    fn dependency(&self) -> &'static str {
        "notification-channel"
    }

    async fn call(&mut self) -> Result<(), HandlerError> {
        for n in &self.notifications {
            self.policy
                .call(|| self.channel.send(n))
                .await
                .map_err(|e| match e {
                    // The channel will never take it: an operator must look.
                    CallError::Rejected(e) => HandlerError::Permanent(e.to_string()),
                    other => HandlerError::Transient(other.to_string()),
                })?;
        }
        Ok(())
    }

    async fn record(&mut self, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError> {
        for n in &self.notifications {
            if store::mark_sent(ctx.tx, &n.notification_id).await? {
                ctx.emit(NotificationSent {
                    order_id: n.order_id.clone(),
                    customer_id: n.customer_id.clone(),
                    notification_id: n.notification_id.clone(),
                    kind: n.kind.to_string(),
                    channel: self.channel.name().to_string(),
                });
            }
        }
        Ok(())
    }
}
