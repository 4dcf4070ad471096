//! Which outcome deserves which message, free of I/O.

use orderflow_envelope::{Event, Money};

/// A message to a customer about one outcome of one order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Notification {
    /// Derived from order and kind, so a resend carries the same id and a
    /// receiver can deduplicate.
    pub notification_id: String,
    pub order_id: String,
    pub customer_id: String,
    pub kind: &'static str,
    pub message: String,
}

fn amount(m: &Money) -> String {
    format!(
        "{}.{:02} {}",
        m.amount_minor / 100,
        m.amount_minor % 100,
        m.currency
    )
}

/// The notification an event calls for, if any.
pub fn notification_for(event: &Event) -> Option<Notification> {
    let (kind, message) = match event {
        Event::PaymentProcessed(e) => {
            ("payment_received", format!("We received your payment of {} for order {}.", amount(&e.amount), e.order_id))
        }
        Event::OrderCompleted(e) => {
            ("shipped", format!("Your order {} has shipped; tracking id {}.", e.order_id, e.tracking_id))
        }
        Event::OrderCancelled(e) => match e.reason.as_str() {
            "OUT_OF_STOCK" => ("out_of_stock", format!("Sorry: order {} is cancelled, an item is out of stock. You were not charged.", e.order_id)),
            "PAYMENT_DECLINED" => ("payment_declined", format!("Your payment for order {} was declined, so the order is cancelled.", e.order_id)),
            "PAYMENT_UNAVAILABLE" => ("payment_unavailable", format!("We could not reach our payment provider for order {}, so the order is cancelled. You were not charged.", e.order_id)),
            "SHIPPING_FAILED" => ("shipping_failed", format!("We could not ship order {} to your address; it is cancelled and your payment refunded.", e.order_id)),
            _ => ("cancelled", format!("Order {} is cancelled.", e.order_id)),
        },
        _ => return None,
    };
    Some(Notification {
        notification_id: format!("ntf-{kind}-{}", event.order_id()),
        order_id: event.order_id().to_string(),
        customer_id: event.customer_id().to_string(),
        kind,
        message,
    })
}

#[cfg(test)]
mod tests {
    use orderflow_envelope::{OrderCancelled, PaymentFailed};

    use super::*;

    #[test]
    fn every_outcome_has_its_own_kind() {
        let cancelled = |reason: &str| {
            Event::OrderCancelled(OrderCancelled {
                order_id: "o-1".into(),
                customer_id: "c-1".into(),
                reason: reason.into(),
                cancelled_at: 0,
            })
        };
        let kinds: Vec<_> = [
            "OUT_OF_STOCK",
            "PAYMENT_DECLINED",
            "PAYMENT_UNAVAILABLE",
            "SHIPPING_FAILED",
        ]
        .iter()
        .map(|r| notification_for(&cancelled(r)).unwrap().kind)
        .collect();
        assert_eq!(
            kinds,
            [
                "out_of_stock",
                "payment_declined",
                "payment_unavailable",
                "shipping_failed"
            ]
        );
        let failed = Event::PaymentFailed(PaymentFailed {
            order_id: "o-1".into(),
            customer_id: "c-1".into(),
            amount: Money::new(1, "EUR"),
            reason: "card_declined".into(),
        });
        assert_eq!(
            notification_for(&failed),
            None,
            "the cancellation speaks for a decline"
        );
    }

    #[test]
    fn a_payment_and_a_shipment_are_news_for_the_customer() {
        let paid = Event::PaymentProcessed(orderflow_envelope::PaymentProcessed {
            order_id: "o-7".into(),
            customer_id: "c-7".into(),
            payment_id: "pay_1".into(),
            amount: Money::new(1998, "EUR"),
            shipping_address: orderflow_envelope::Address {
                name: "Ada".into(),
                line1: "1 Main St".into(),
                city: "Berlin".into(),
                postal_code: "10115".into(),
                country: "DE".into(),
            },
        });
        assert_eq!(
            notification_for(&paid),
            Some(Notification {
                notification_id: "ntf-payment_received-o-7".into(),
                order_id: "o-7".into(),
                customer_id: "c-7".into(),
                kind: "payment_received",
                message: "We received your payment of 19.98 EUR for order o-7.".into(),
            })
        );
        let shipped = Event::OrderCompleted(orderflow_envelope::OrderCompleted {
            order_id: "o-7".into(),
            customer_id: "c-7".into(),
            tracking_id: "TRK7".into(),
            total: Money::new(1998, "EUR"),
            completed_at: 0,
        });
        let n = notification_for(&shipped).unwrap();
        assert_eq!(
            (n.notification_id.as_str(), n.kind, n.message.as_str()),
            (
                "ntf-shipped-o-7",
                "shipped",
                "Your order o-7 has shipped; tracking id TRK7."
            )
        );
    }

    #[test]
    fn amounts_read_as_money() {
        assert_eq!(amount(&Money::new(3998, "EUR")), "39.98 EUR");
    }
}
