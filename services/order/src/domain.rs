//! An order's status is a function of the saga events seen for it. Events from
//! different topics may arrive in any order (a `PaymentProcessed` can overtake
//! the `InventoryReserved` that caused it), so the status is derived from the
//! whole set rather than stepped through transitions, and a step counts only
//! once the steps that cause it have been seen too.

use orderflow_envelope::EventType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Reserved,
    Paid,
    Shipped,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Reserved => "RESERVED",
            Status::Paid => "PAID",
            Status::Shipped => "SHIPPED",
            Status::Cancelled => "CANCELLED",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Shipped | Status::Cancelled)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    OutOfStock,
    PaymentDeclined,
    ShippingFailed,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::OutOfStock => "OUT_OF_STOCK",
            CancelReason::PaymentDeclined => "PAYMENT_DECLINED",
            CancelReason::ShippingFailed => "SHIPPING_FAILED",
        }
    }

    /// The outcome label of the saga metrics.
    pub fn metric_label(self) -> &'static str {
        match self {
            CancelReason::OutOfStock => "out_of_stock",
            CancelReason::PaymentDeclined => "payment_declined",
            CancelReason::ShippingFailed => "shipping_failed",
        }
    }
}

/// The saga events the order service follows.
pub const FOLLOWED: [EventType; 8] = [
    EventType::InventoryReserved,
    EventType::InventoryUnavailable,
    EventType::InventoryReleased,
    EventType::PaymentProcessed,
    EventType::PaymentFailed,
    EventType::PaymentRefunded,
    EventType::ShipmentCreated,
    EventType::ShipmentFailed,
];

/// The status (and cancellation reason) implied by the events seen so far.
/// A cancellation is final only once its compensations are done: payment
/// declined → the reservation is released; shipping failed → the charge is
/// refunded and the reservation released.
pub fn derive_status(seen: &[EventType]) -> (Status, Option<CancelReason>) {
    use EventType::*;
    let has = |t: EventType| seen.contains(&t);
    if has(InventoryUnavailable) {
        return (Status::Cancelled, Some(CancelReason::OutOfStock));
    }
    if has(ShipmentFailed) && has(PaymentRefunded) && has(InventoryReleased) {
        return (Status::Cancelled, Some(CancelReason::ShippingFailed));
    }
    if has(PaymentFailed) && has(InventoryReleased) {
        return (Status::Cancelled, Some(CancelReason::PaymentDeclined));
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
        assert_eq!(derive_status(&[OrderCreated]), (Status::Pending, None));
        assert_eq!(
            derive_status(&[InventoryReserved]),
            (Status::Reserved, None)
        );
        assert_eq!(
            derive_status(&[InventoryReserved, PaymentProcessed]),
            (Status::Paid, None)
        );
        assert_eq!(
            derive_status(&[InventoryReserved, PaymentProcessed, ShipmentCreated]),
            (Status::Shipped, None)
        );
    }

    #[test]
    fn a_step_waits_for_the_steps_that_cause_it() {
        // The shipment overtook the reservation: not shipped until the reservation
        // (which carries the total) is seen too.
        assert_eq!(
            derive_status(&[ShipmentCreated, PaymentProcessed]),
            (Status::Pending, None)
        );
        assert_eq!(
            derive_status(&[ShipmentCreated, PaymentProcessed, InventoryReserved]),
            (Status::Shipped, None)
        );
        assert_eq!(derive_status(&[PaymentProcessed]), (Status::Pending, None));
    }

    #[test]
    fn cancellations_wait_for_their_compensations() {
        assert_eq!(
            derive_status(&[InventoryUnavailable]),
            (Status::Cancelled, Some(CancelReason::OutOfStock))
        );
        assert_eq!(
            derive_status(&[InventoryReserved, PaymentFailed]).0,
            Status::Reserved
        );
        assert_eq!(
            derive_status(&[InventoryReserved, PaymentFailed, InventoryReleased]),
            (Status::Cancelled, Some(CancelReason::PaymentDeclined))
        );
        let shipping_failed = [
            InventoryReserved,
            PaymentProcessed,
            ShipmentFailed,
            PaymentRefunded,
        ];
        assert_eq!(derive_status(&shipping_failed).0, Status::Paid);
        let mut compensated = shipping_failed.to_vec();
        compensated.push(InventoryReleased);
        assert_eq!(
            derive_status(&compensated),
            (Status::Cancelled, Some(CancelReason::ShippingFailed))
        );
    }
}
