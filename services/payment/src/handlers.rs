//! Payment's part in the saga: charge the reserved total; refund it when
//! shipping fails. Each is record-intent → call → record-outcome: a short
//! transaction records the intent (the payment row, PENDING or REFUNDING),
//! the provider is called with no transaction or connection held, and a
//! second short transaction records the outcome and its event. A crash in
//! between repeats the call under the same idempotency key, which the
//! provider does not repeat. A provider that cannot be reached until the
//! step's deadline fails the step in domain terms: the charge as
//! `PROVIDER_UNAVAILABLE` (the saga releases the stock and cancels), the
//! refund as `PaymentRefundFailed` (the order waits for an operator).

use std::sync::Arc;

use async_trait::async_trait;
use orderflow_envelope::reasons::PROVIDER_UNAVAILABLE;
use orderflow_envelope::{
    Event, EventType, InventoryReserved, Money, PaymentFailed, PaymentProcessed,
    PaymentRefundFailed, PaymentRefunded, ShipmentFailed,
};
use orderflow_runtime::resilience::{CallError, Policy};
use orderflow_runtime::{ExternalCall, Handler, HandlerCtx, HandlerError};

use crate::domain::{charge_step, refund_step, ChargeStep, RefundStep};
use crate::provider::{ChargeOutcome, PaymentProvider, ProviderError};
use crate::store::{self, Status};

pub struct PaymentHandler {
    pub provider: Arc<dyn PaymentProvider>,
    pub policy: Arc<Policy>,
}

/// An outage (timeouts, breaker open) is worth retrying; anything else the
/// provider answered is its answer.
fn transient(e: CallError<ProviderError>) -> HandlerError {
    HandlerError::Transient(e.to_string())
}

#[async_trait]
impl Handler for PaymentHandler {
    fn handles(&self, event_type: EventType) -> bool {
        matches!(
            event_type,
            EventType::InventoryReserved | EventType::ShipmentFailed | EventType::ShipmentCreated
        )
    }

    async fn handle(&self, event: Event, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError> {
        match event {
            Event::InventoryReserved(reserved) => self.charge(reserved, ctx).await,
            Event::ShipmentFailed(failed) => self.refund(failed, ctx).await,
            Event::ShipmentCreated(created) => {
                store::mark_shipped(ctx.tx, &created.order_id).await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn deadline_passed(
        &self,
        event: Event,
        error: &str,
        ctx: &mut HandlerCtx<'_>,
    ) -> Result<bool, HandlerError> {
        match event {
            Event::InventoryReserved(reserved) => {
                match store::find(ctx.tx, &reserved.order_id).await? {
                    // The charge was asked for and no answer came: it may have
                    // gone through. The provider is asked under the same key
                    // what became of it (closing the key if nothing did)
                    // before anything is decided.
                    Some(payment) if payment.status == Status::Pending => {
                        tracing::warn!(order_id = %reserved.order_id, error,
                            "no answer from the payment provider until the deadline; asking it what became of the charge");
                        ctx.call(self.charge_call(reserved, Charge::Close));
                    }
                    Some(_) => {} // decided already
                    // Not even the intent was recorded (the database was down
                    // too): the provider was never asked.
                    None => {
                        if store::insert(
                            ctx.tx,
                            &reserved.order_id,
                            &reserved.customer_id,
                            Status::Failed,
                            &reserved.total,
                        )
                        .await?
                        {
                            unavailable(ctx, reserved);
                        }
                    }
                }
                Ok(true)
            }
            Event::ShipmentFailed(failed) => {
                let Some(payment) = store::find(ctx.tx, &failed.order_id).await? else {
                    return Ok(false);
                };
                if payment.status == Status::Refunding {
                    // The refund was asked for and no answer came: it may have
                    // been made. The provider is asked under the same key
                    // before anything is decided.
                    tracing::warn!(order_id = %failed.order_id, error,
                        "no answer from the payment provider to a refund until the deadline; asking it what became of it");
                    ctx.call(self.refund_call(failed, payment, Refund::Close));
                    return Ok(true);
                }
                let reason = format!("the provider could not be reached to refund: {error}");
                refund_failed(
                    ctx,
                    failed,
                    payment.payment_id.unwrap_or_default(),
                    payment.amount,
                    &reason,
                )
                .await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl PaymentHandler {
    async fn charge(
        &self,
        reserved: InventoryReserved,
        ctx: &mut HandlerCtx<'_>,
    ) -> Result<(), HandlerError> {
        let recorded = store::insert(
            ctx.tx,
            &reserved.order_id,
            &reserved.customer_id,
            Status::Pending,
            &reserved.total,
        )
        .await?;
        let existing = if recorded {
            None
        } else {
            store::find(ctx.tx, &reserved.order_id)
                .await?
                .map(|p| p.status)
        };
        if charge_step(existing) == ChargeStep::Decided {
            return Ok(());
        }
        ctx.call(self.charge_call(reserved, Charge::Make));
        Ok(())
    }

    fn charge_call(&self, reserved: InventoryReserved, charge: Charge) -> ChargeCall {
        ChargeCall {
            provider: self.provider.clone(),
            policy: self.policy.clone(),
            // Derived from the order, so a call repeated after a crash asks the
            // provider for the same charge, which it does not repeat.
            key: format!("{}/charge", reserved.order_id),
            reserved,
            charge,
            outcome: None,
        }
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
        match refund_step(payment.status, payment.shipped) {
            RefundStep::Begin => {
                store::finish(
                    ctx.tx,
                    &failed.order_id,
                    &[Status::Charged],
                    Status::Refunding,
                    None,
                    None,
                )
                .await?;
            }
            RefundStep::Resume => {}
            RefundStep::Nothing => return Ok(()),
            RefundStep::Shipped => {
                tracing::error!(order_id = %failed.order_id, reason = %failed.reason,
                    "a failed shipment for an order whose shipment was created: not refunded; an operator must look");
                return Ok(());
            }
        }
        ctx.call(self.refund_call(failed, payment, Refund::Make));
        Ok(())
    }

    fn refund_call(
        &self,
        failed: ShipmentFailed,
        payment: store::PaymentRow,
        refund: Refund,
    ) -> RefundCall {
        RefundCall {
            provider: self.provider.clone(),
            policy: self.policy.clone(),
            key: format!("{}/refund", failed.order_id),
            payment_id: payment.payment_id.unwrap_or_default(),
            amount: payment.amount,
            failed,
            refund,
            refused: None,
        }
    }
}

/// What a charge call asks of the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charge {
    /// Charge the reserved total.
    Make,
    /// Say what became of the charge, closing the key if nothing did.
    Close,
}

struct ChargeCall {
    provider: Arc<dyn PaymentProvider>,
    policy: Arc<Policy>,
    key: String,
    reserved: InventoryReserved,
    charge: Charge,
    outcome: Option<ChargeOutcome>,
}

#[async_trait]
impl ExternalCall for ChargeCall {
    fn dependency(&self) -> &'static str {
        "payment-provider"
    }

    async fn call(&mut self) -> Result<(), HandlerError> {
        let r = &self.reserved;
        let asked = match self.charge {
            Charge::Make => {
                self.policy
                    .call(|| self.provider.charge(&self.key, &r.payment_token, &r.total))
                    .await
            }
            Charge::Close => {
                self.policy
                    .call(|| self.provider.close_charge(&self.key))
                    .await
            }
        };
        let outcome = match (asked, self.charge) {
            (Ok(outcome), _) => outcome,
            // The provider refused the request itself: for the customer that is a
            // decline, and the saga must still end (with the stock released).
            (Err(CallError::Rejected(e)), Charge::Make) => ChargeOutcome::Declined {
                reason: e.to_string(),
            },
            (Err(CallError::Rejected(e)), Charge::Close) => {
                return Err(HandlerError::Permanent(format!(
                    "the payment provider refused to say what became of charge {}: {e}; ask it by hand before deciding the order",
                    self.key
                )))
            }
            (Err(e), _) => return Err(transient(e)),
        };
        self.outcome = Some(outcome);
        Ok(())
    }

    async fn record(&mut self, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError> {
        let r = self.reserved.clone();
        let Some(outcome) = self.outcome.clone() else {
            return Err(HandlerError::Permanent(
                "charge recorded before it was made".into(),
            ));
        };
        let (status, payment_id, reason) = match &outcome {
            ChargeOutcome::Charged { payment_id } => {
                (Status::Charged, Some(payment_id.as_str()), None)
            }
            ChargeOutcome::Declined { reason } => (Status::Declined, None, Some(reason.as_str())),
            ChargeOutcome::NotCharged => (Status::Failed, None, Some(PROVIDER_UNAVAILABLE)),
        };
        let decided = store::finish(
            ctx.tx,
            &r.order_id,
            &[Status::Pending],
            status,
            payment_id,
            reason,
        )
        .await?;
        if !decided {
            return Ok(());
        }
        match outcome {
            ChargeOutcome::Charged { payment_id } => ctx.emit(PaymentProcessed {
                order_id: r.order_id,
                customer_id: r.customer_id,
                payment_id,
                amount: r.total,
                shipping_address: r.shipping_address,
            }),
            ChargeOutcome::Declined { reason } => ctx.emit(PaymentFailed {
                order_id: r.order_id,
                customer_id: r.customer_id,
                amount: r.total,
                reason,
            }),
            ChargeOutcome::NotCharged => unavailable(ctx, r),
        }
        Ok(())
    }
}

/// The provider was never reached, or closed the charge with nothing
/// charged: the saga releases the stock and cancels the order.
fn unavailable(ctx: &mut HandlerCtx<'_>, reserved: InventoryReserved) {
    tracing::warn!(order_id = %reserved.order_id, "the payment provider charged nothing until the deadline; the order is cancelled");
    ctx.emit(PaymentFailed {
        order_id: reserved.order_id,
        customer_id: reserved.customer_id,
        amount: reserved.total,
        reason: PROVIDER_UNAVAILABLE.into(),
    });
}

/// What a refund call asks of the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refund {
    /// Refund the charge.
    Make,
    /// Say whether the refund was made, closing the key if it was not.
    Close,
}

struct RefundCall {
    provider: Arc<dyn PaymentProvider>,
    policy: Arc<Policy>,
    key: String,
    payment_id: String,
    amount: Money,
    failed: ShipmentFailed,
    refund: Refund,
    /// Why the provider refused the refund, if it did.
    refused: Option<Option<String>>,
}

#[async_trait]
impl ExternalCall for RefundCall {
    fn dependency(&self) -> &'static str {
        "payment-provider"
    }

    async fn call(&mut self) -> Result<(), HandlerError> {
        let refused = match self.refund {
            Refund::Make => match self
                .policy
                .call(|| {
                    self.provider
                        .refund(&self.key, &self.payment_id, &self.amount)
                })
                .await
            {
                Ok(()) => None,
                Err(CallError::Rejected(e)) => Some(e.to_string()),
                Err(e) => return Err(transient(e)),
            },
            Refund::Close => match self.policy.call(|| self.provider.close_refund(&self.key)).await {
                Ok(true) => None,
                Ok(false) => Some(
                    "the provider could not be reached to refund until the step's deadline, and refunded nothing".into(),
                ),
                Err(CallError::Rejected(e)) => {
                    return Err(HandlerError::Permanent(format!(
                        "the payment provider refused to say what became of refund {}: {e}; ask it by hand before deciding the order",
                        self.key
                    )))
                }
                Err(e) => return Err(transient(e)),
            },
        };
        self.refused = Some(refused);
        Ok(())
    }

    async fn record(&mut self, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError> {
        let failed = self.failed.clone();
        match self.refused.clone() {
            Some(None) => {
                let reason = format!("shipping failed: {}", failed.reason);
                if store::finish(
                    ctx.tx,
                    &failed.order_id,
                    &[Status::Refunding],
                    Status::Refunded,
                    None,
                    Some(&reason),
                )
                .await?
                {
                    ctx.emit(PaymentRefunded {
                        order_id: failed.order_id,
                        customer_id: failed.customer_id,
                        payment_id: self.payment_id.clone(),
                        amount: self.amount.clone(),
                        reason,
                    });
                }
            }
            Some(Some(refused)) => {
                let reason = match self.refund {
                    Refund::Make => format!("the provider refused the refund: {refused}"),
                    Refund::Close => refused,
                };
                refund_failed(
                    ctx,
                    failed,
                    self.payment_id.clone(),
                    self.amount.clone(),
                    &reason,
                )
                .await?;
            }
            None => {
                return Err(HandlerError::Permanent(
                    "refund recorded before it was made".into(),
                ))
            }
        }
        Ok(())
    }
}

/// The refund cannot be made: the customer is still charged, and the order
/// must not look cancelled-and-refunded. An operator takes it from here.
async fn refund_failed(
    ctx: &mut HandlerCtx<'_>,
    failed: ShipmentFailed,
    payment_id: String,
    amount: Money,
    reason: &str,
) -> Result<(), HandlerError> {
    if store::finish(
        ctx.tx,
        &failed.order_id,
        &[Status::Charged, Status::Refunding],
        Status::RefundFailed,
        None,
        Some(reason),
    )
    .await?
    {
        tracing::error!(order_id = %failed.order_id, reason, "refund failed; the order needs an operator");
        ctx.emit(PaymentRefundFailed {
            order_id: failed.order_id,
            customer_id: failed.customer_id,
            payment_id,
            amount,
            reason: reason.to_string(),
        });
    }
    Ok(())
}
