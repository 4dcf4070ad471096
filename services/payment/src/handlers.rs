//! Payment's part in the saga: charge the reserved total; refund it when
//! shipping fails.

use std::sync::Arc;

use async_trait::async_trait;
use orderflow_envelope::{
    Event, EventType, InventoryReserved, PaymentFailed, PaymentProcessed, PaymentRefunded,
    ShipmentFailed,
};
use orderflow_runtime::resilience::{CallError, Policy};
use orderflow_runtime::{Handler, HandlerCtx, HandlerError};

use crate::provider::{ChargeOutcome, PaymentProvider, ProviderError};
use crate::store;

pub struct PaymentHandler {
    pub provider: Arc<dyn PaymentProvider>,
    pub policy: Policy,
}

/// A refund the provider rejects needs an operator: it is dead-lettered.
fn classify(e: CallError<ProviderError>) -> HandlerError {
    match e {
        CallError::Rejected(e) => HandlerError::Permanent(e.to_string()),
        other => HandlerError::Transient(other.to_string()),
    }
}

#[async_trait]
impl Handler for PaymentHandler {
    fn handles(&self, event_type: EventType) -> bool {
        matches!(
            event_type,
            EventType::InventoryReserved | EventType::ShipmentFailed
        )
    }

    async fn handle(&self, event: Event, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError> {
        match event {
            Event::InventoryReserved(reserved) => self.charge(reserved, ctx).await,
            Event::ShipmentFailed(failed) => self.refund(failed, ctx).await,
            _ => Ok(()),
        }
    }
}

impl PaymentHandler {
    async fn charge(
        &self,
        reserved: InventoryReserved,
        ctx: &mut HandlerCtx<'_>,
    ) -> Result<(), HandlerError> {
        if store::find(ctx.tx, &reserved.order_id).await?.is_some() {
            return Ok(()); // this order was charged (or declined) already
        }
        // The key is derived from the order, so a retry after a crash asks the
        // provider for the same charge, which it does not repeat.
        let key = format!("{}/charge", reserved.order_id);
        let outcome = match self
            .policy
            .call(|| {
                self.provider
                    .charge(&key, &reserved.payment_token, &reserved.total)
            })
            .await
        {
            Ok(outcome) => outcome,
            // The provider refused the request itself: for the customer that is a
            // decline, and the saga must still end (with the stock released).
            Err(CallError::Rejected(e)) => ChargeOutcome::Declined {
                reason: e.to_string(),
            },
            Err(e) => return Err(classify(e)),
        };
        let InventoryReserved {
            order_id,
            customer_id,
            total,
            shipping_address,
            ..
        } = reserved;
        match outcome {
            ChargeOutcome::Charged { payment_id } => {
                store::insert(
                    ctx.tx,
                    &order_id,
                    &customer_id,
                    "CHARGED",
                    Some(&payment_id),
                    &total,
                    None,
                )
                .await?;
                ctx.emit(PaymentProcessed {
                    order_id,
                    customer_id,
                    payment_id,
                    amount: total,
                    shipping_address,
                });
            }
            ChargeOutcome::Declined { reason } => {
                store::insert(
                    ctx.tx,
                    &order_id,
                    &customer_id,
                    "DECLINED",
                    None,
                    &total,
                    Some(&reason),
                )
                .await?;
                ctx.emit(PaymentFailed {
                    order_id,
                    customer_id,
                    amount: total,
                    reason,
                });
            }
        }
        Ok(())
    }

    /// Compensation for a failed shipment.
    async fn refund(
        &self,
        failed: ShipmentFailed,
        ctx: &mut HandlerCtx<'_>,
    ) -> Result<(), HandlerError> {
        let Some(payment) = store::find(ctx.tx, &failed.order_id).await? else {
            return Err(HandlerError::Permanent(format!(
                "shipment failed for order {}, which was never charged",
                failed.order_id
            )));
        };
        if payment.status != "CHARGED" {
            return Ok(()); // refunded already
        }
        let payment_id = payment.payment_id.unwrap_or_default();
        let key = format!("{}/refund", failed.order_id);
        self.policy
            .call(|| self.provider.refund(&key, &payment_id, &payment.amount))
            .await
            .map_err(classify)?;
        let reason = format!("shipping failed: {}", failed.reason);
        store::mark_refunded(ctx.tx, &failed.order_id, &reason).await?;
        ctx.emit(PaymentRefunded {
            order_id: failed.order_id,
            customer_id: failed.customer_id,
            payment_id,
            amount: payment.amount,
            reason,
        });
        Ok(())
    }
}
