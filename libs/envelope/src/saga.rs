//! What the saga's events mean for an order: its status is a function of
//! the events seen for it. Events from different topics may arrive in any
//! order (a `PaymentProcessed` can overtake the `InventoryReserved` that
//! caused it), so the status is derived from the whole set rather than
//! stepped through transitions, and a step counts only once the steps that
//! cause it have been seen too. The order service derives its read model
//! this way, and the auditor derives what the log says happened.

use crate::EventType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Reserved,
    Paid,
    Shipped,
    Cancelled,
    /// Shipping failed and the charge could not be refunded: the customer is
    /// still charged and an operator must act. The saga does nothing more.
    RefundPending,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Reserved,
        Status::Paid,
        Status::Shipped,
        Status::Cancelled,
        Status::RefundPending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Reserved => "RESERVED",
            Status::Paid => "PAID",
            Status::Shipped => "SHIPPED",
            Status::Cancelled => "CANCELLED",
            Status::RefundPending => "REFUND_PENDING",
        }
    }

    /// Nothing more happens to the order by itself (REFUND_PENDING waits for
    /// an operator, not for the saga).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Shipped | Status::Cancelled | Status::RefundPending
        )
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    OutOfStock,
    PaymentDeclined,
    /// The payment provider could not be reached before the step's deadline.
    PaymentUnavailable,
    ShippingFailed,
}

impl CancelReason {
    pub const ALL: [CancelReason; 4] = [
        CancelReason::OutOfStock,
        CancelReason::PaymentDeclined,
        CancelReason::PaymentUnavailable,
        CancelReason::ShippingFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::OutOfStock => "OUT_OF_STOCK",
            CancelReason::PaymentDeclined => "PAYMENT_DECLINED",
            CancelReason::PaymentUnavailable => "PAYMENT_UNAVAILABLE",
            CancelReason::ShippingFailed => "SHIPPING_FAILED",
        }
    }

    /// The outcome label of the saga metrics.
    pub fn metric_label(self) -> &'static str {
        match self {
            CancelReason::OutOfStock => "out_of_stock",
            CancelReason::PaymentDeclined => "payment_declined",
            CancelReason::PaymentUnavailable => "payment_unavailable",
            CancelReason::ShippingFailed => "shipping_failed",
        }
    }
}

/// The events that decide an order's status (the order service follows them).
pub const FOLLOWED: [EventType; 9] = [
    EventType::InventoryReserved,
    EventType::InventoryUnavailable,
    EventType::InventoryReleased,
    EventType::PaymentProcessed,
    EventType::PaymentFailed,
    EventType::PaymentRefunded,
    EventType::PaymentRefundFailed,
    EventType::ShipmentCreated,
    EventType::ShipmentFailed,
];

/// The status (and cancellation reason) implied by the events seen so far;
/// `payment_unavailable` says the payment failed because the provider could
/// not be reached (not because the card was declined). A cancellation is
/// final only once its compensations are done: payment failed → the
/// reservation is released; shipping failed → the charge is refunded and the
/// reservation released. A refund that could not be made leaves the order
/// REFUND_PENDING, for an operator, never cancelled as if it had been.
pub fn derive_status(
    seen: &[EventType],
    payment_unavailable: bool,
) -> (Status, Option<CancelReason>) {
    use EventType::*;
    let has = |t: EventType| seen.contains(&t);
    if has(InventoryUnavailable) {
        return (Status::Cancelled, Some(CancelReason::OutOfStock));
    }
    if has(ShipmentFailed) && has(PaymentRefundFailed) {
        return (Status::RefundPending, None);
    }
    if has(ShipmentFailed) && has(PaymentRefunded) && has(InventoryReleased) {
        return (Status::Cancelled, Some(CancelReason::ShippingFailed));
    }
    if has(PaymentFailed) && has(InventoryReleased) {
        let reason = if payment_unavailable {
            CancelReason::PaymentUnavailable
        } else {
            CancelReason::PaymentDeclined
        };
        return (Status::Cancelled, Some(reason));
    }
    let reserved = has(InventoryReserved);
    let paid = reserved && has(PaymentProcessed);
    let status = if paid && has(ShipmentCreated) {
        Status::Shipped
    } else if paid {
        Status::Paid
    } else if reserved {
        Status::Reserved
    } else {
        Status::Pending
    };
    (status, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventType::*;

    #[test]
    fn the_happy_path_steps_through_every_status() {
        assert_eq!(
            derive_status(&[OrderCreated], false),
            (Status::Pending, None)
        );
        assert_eq!(
            derive_status(&[InventoryReserved], false),
            (Status::Reserved, None)
        );
        assert_eq!(
            derive_status(&[InventoryReserved, PaymentProcessed], false),
            (Status::Paid, None)
        );
        assert_eq!(
            derive_status(
                &[InventoryReserved, PaymentProcessed, ShipmentCreated],
                false
            ),
            (Status::Shipped, None)
        );
    }

    #[test]
    fn a_step_waits_for_the_steps_that_cause_it() {
        // The shipment overtook the reservation: not shipped until the reservation
        // (which carries the total) is seen too.
        assert_eq!(
            derive_status(&[ShipmentCreated, PaymentProcessed], false),
            (Status::Pending, None)
        );
        assert_eq!(
            derive_status(
                &[ShipmentCreated, PaymentProcessed, InventoryReserved],
                false
            ),
            (Status::Shipped, None)
        );
        assert_eq!(
            derive_status(&[PaymentProcessed], false),
            (Status::Pending, None)
        );
    }

    #[test]
    fn cancellations_wait_for_their_compensations() {
        assert_eq!(
            derive_status(&[InventoryUnavailable], false),
            (Status::Cancelled, Some(CancelReason::OutOfStock))
        );
        assert_eq!(
            derive_status(&[InventoryReserved, PaymentFailed], false).0,
            Status::Reserved
        );
        assert_eq!(
            derive_status(
                &[InventoryReserved, PaymentFailed, InventoryReleased],
                false
            ),
            (Status::Cancelled, Some(CancelReason::PaymentDeclined))
        );
        let shipping_failed = [
            InventoryReserved,
            PaymentProcessed,
            ShipmentFailed,
            PaymentRefunded,
        ];
        assert_eq!(derive_status(&shipping_failed, false).0, Status::Paid);
        let mut compensated = shipping_failed.to_vec();
        compensated.push(InventoryReleased);
        assert_eq!(
            derive_status(&compensated, false),
            (Status::Cancelled, Some(CancelReason::ShippingFailed))
        );
    }

    #[test]
    fn an_unreachable_provider_cancels_with_its_own_reason_once_stock_is_back() {
        let failed = [InventoryReserved, PaymentFailed];
        assert_eq!(derive_status(&failed, true).0, Status::Reserved);
        assert_eq!(
            derive_status(&[InventoryReserved, PaymentFailed, InventoryReleased], true),
            (Status::Cancelled, Some(CancelReason::PaymentUnavailable))
        );
    }

    #[test]
    fn only_shipped_cancelled_and_refund_pending_are_terminal() {
        let terminal: Vec<&str> = [
            Status::Pending,
            Status::Reserved,
            Status::Paid,
            Status::Shipped,
            Status::Cancelled,
            Status::RefundPending,
        ]
        .into_iter()
        .filter(|s| s.is_terminal())
        .map(Status::as_str)
        .collect();
        assert_eq!(terminal, ["SHIPPED", "CANCELLED", "REFUND_PENDING"]);
    }

    #[test]
    fn every_reason_has_its_api_name_and_metric_label() {
        let names: Vec<(&str, &str)> = [
            CancelReason::OutOfStock,
            CancelReason::PaymentDeclined,
            CancelReason::PaymentUnavailable,
            CancelReason::ShippingFailed,
        ]
        .into_iter()
        .map(|r| (r.as_str(), r.metric_label()))
        .collect();
        assert_eq!(
            names,
            [
                ("OUT_OF_STOCK", "out_of_stock"),
                ("PAYMENT_DECLINED", "payment_declined"),
                ("PAYMENT_UNAVAILABLE", "payment_unavailable"),
                ("SHIPPING_FAILED", "shipping_failed"),
            ]
        );
    }

    #[test]
    fn a_refund_that_failed_is_never_a_cancellation() {
        let seen = [
            InventoryReserved,
            PaymentProcessed,
            ShipmentFailed,
            InventoryReleased,
            PaymentRefundFailed,
        ];
        assert_eq!(derive_status(&seen, false), (Status::RefundPending, None));
        assert!(Status::RefundPending.is_terminal());
        assert_eq!(
            Status::from_name("REFUND_PENDING"),
            Some(Status::RefundPending)
        );
    }
}
