//! The order service follows the saga: it records every event in the order's
//! history, derives the status, and announces the outcome once.

use async_trait::async_trait;
use orderflow_envelope::{Event, EventType, OrderCancelled, OrderCompleted};
use orderflow_runtime::sql::Connection;
use orderflow_runtime::telemetry::metrics_types::OutcomeLabels;
use orderflow_runtime::telemetry::SagaMetrics;
use orderflow_runtime::{now_millis, Handler, HandlerCtx, HandlerError};

use orderflow_envelope::reasons::PROVIDER_UNAVAILABLE;

use crate::domain::{derive_status, Status, FOLLOWED};
use crate::store;

pub struct OrderSaga {
    pub metrics: SagaMetrics,
}

#[async_trait]
impl Handler for OrderSaga {
    fn handles(&self, event_type: EventType) -> bool {
        FOLLOWED.contains(&event_type)
    }

    /// Two events of one order can be handled at once by two replicas (they
    /// come from different topics): the order rows of a batch are locked
    /// first, in order id order, so the second sees the first's history row
    /// when it derives the status, and batches never deadlock.
    async fn lock_rows(
        &self,
        events: &[&Event],
        conn: &mut Connection,
    ) -> Result<(), HandlerError> {
        let ids: Vec<&str> = events.iter().map(|e| e.order_id()).collect();
        store::lock_orders(conn, ids).await?;
        Ok(())
    }

    async fn handle(&self, event: Event, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError> {
        let order_id = event.order_id().to_string();
        let Some(mut order) = store::load(ctx.tx, &order_id).await? else {
            return Err(HandlerError::Permanent(format!(
                "{} refers to order {order_id}, which this order service never created",
                event.event_type().name()
            )));
        };
        store::record_history(
            ctx.tx,
            &order_id,
            &ctx.meta.id,
            event.event_type(),
            &ctx.meta.source,
            ctx.meta.time.timestamp_millis(),
        )
        .await?;
        // What the event adds to the order, written with its status below in
        // one statement.
        match &event {
            Event::InventoryReserved(e) => order.total = Some(e.total.clone()),
            Event::ShipmentCreated(e) => order.tracking_id = Some(e.tracking_id.clone()),
            Event::PaymentFailed(e) => order.payment_failure = Some(e.reason.clone()),
            _ => {}
        }
        let now = now_millis();
        let current = Status::from_name(&order.status);
        if current.is_some_and(Status::is_terminal) {
            // Late events join the history and the record but change nothing.
            store::update(ctx.tx, &order_id, &order, None, now).await?;
            return Ok(());
        }
        // The history as loaded, and this event, recorded above.
        order.seen.push(event.event_type());
        let unavailable = order.payment_failure.as_deref() == Some(PROVIDER_UNAVAILABLE);
        let (status, reason) = derive_status(&order.seen, unavailable);
        if current == Some(status) {
            store::update(ctx.tx, &order_id, &order, None, now).await?;
            return Ok(());
        }
        store::update(ctx.tx, &order_id, &order, Some((status, reason)), now).await?;
        tracing::info!(
            order_id,
            status = status.as_str(),
            reason = reason.map(|r| r.as_str()),
            "order status changed"
        );

        if status.is_terminal() {
            let outcome = match (status, reason) {
                (_, Some(r)) => r.metric_label(),
                (Status::RefundPending, None) => "refund_pending",
                _ => "shipped",
            };
            let seconds = (now - order.placed_at).max(0) as f64 / 1000.0;
            let metrics = self.metrics.clone();
            // Counted once the outcome is committed, not once per attempt.
            ctx.after_commit(move || {
                let labels = OutcomeLabels { outcome };
                metrics.outcomes.get_or_create(&labels).inc();
                metrics.duration.get_or_create(&labels).observe(seconds);
            });
        }
        match (status, reason) {
            (Status::Shipped, _) => {
                ctx.emit(OrderCompleted {
                    order_id,
                    customer_id: order.customer_id,
                    tracking_id: order.tracking_id.unwrap_or_default(),
                    total: order.total.ok_or_else(|| {
                        HandlerError::Permanent("order shipped without a reserved total".into())
                    })?,
                    completed_at: now,
                });
            }
            (Status::Cancelled, Some(reason)) => ctx.emit(OrderCancelled {
                order_id,
                customer_id: order.customer_id,
                reason: reason.as_str().to_string(),
                cancelled_at: now,
            }),
            _ => {}
        }
        Ok(())
    }
}
