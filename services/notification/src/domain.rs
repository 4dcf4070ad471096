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
    /// The subject of its email.
    pub subject: String,
    pub message: String,
    /// Where its email goes, for channels that mail (from the order's
    /// OrderCreated; filled in by the handler, not from the event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

fn amount(m: &Money) -> String {
    format!(
        "{}.{:02} {}",
        m.amount_minor / 100,
        m.amount_minor % 100,
        m.currency
    )
}

/// Every kind of notification, with the subject line of its email.
const KINDS: [(&str, &str); 7] = [
    ("payment_received", "Payment received"),
    ("shipped", "Shipped"),
    ("out_of_stock", "Cancelled: out of stock"),
    ("payment_declined", "Cancelled: payment declined"),
    ("payment_unavailable", "Cancelled: payment unavailable"),
    ("shipping_failed", "Cancelled: we could not ship it"),
    ("cancelled", "Cancelled"),
];

impl Notification {
    /// A notification of `kind` about `order_id`, as it was recorded;
    /// `None` for a kind this version does not know.
    pub fn recorded(
        kind: &str,
        order_id: &str,
        customer_id: &str,
        message: String,
    ) -> Option<Self> {
        let (kind, subject) = KINDS.into_iter().find(|(k, _)| *k == kind)?;
        Some(Notification {
            notification_id: format!("ntf-{kind}-{order_id}"),
            order_id: order_id.to_string(),
            customer_id: customer_id.to_string(),
            kind,
            subject: format!("Order {order_id}: {subject}"),
            message,
            email: None,
        })
    }
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
    Notification::recorded(kind, event.order_id(), event.customer_id(), message)
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
            "SOMETHING_NEW",
        ]
        .iter()
        .map(|r| {
            let n = notification_for(&cancelled(r)).unwrap();
            (n.kind, n.subject)
        })
        .collect();
        assert_eq!(
            kinds,
            [
                (
                    "out_of_stock",
                    "Order o-1: Cancelled: out of stock".to_string()
                ),
                (
                    "payment_declined",
                    "Order o-1: Cancelled: payment declined".to_string()
                ),
                (
                    "payment_unavailable",
                    "Order o-1: Cancelled: payment unavailable".to_string()
                ),
                (
                    "shipping_failed",
                    "Order o-1: Cancelled: we could not ship it".to_string()
                ),
                ("cancelled", "Order o-1: Cancelled".to_string()),
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
                subject: "Order o-7: Payment received".into(),
                message: "We received your payment of 19.98 EUR for order o-7.".into(),
                email: None,
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
            (
                n.notification_id.as_str(),
                n.kind,
                n.subject.as_str(),
                n.message.as_str()
            ),
            (
                "ntf-shipped-o-7",
                "shipped",
                "Order o-7: Shipped",
                "Your order o-7 has shipped; tracking id TRK7."
            )
        );
    }

    #[test]
    fn amounts_read_as_money() {
        assert_eq!(amount(&Money::new(3998, "EUR")), "39.98 EUR");
    }

    #[test]
    fn a_recorded_notification_reads_back_as_it_was_made() {
        let cancelled = notification_for(&Event::OrderCancelled(OrderCancelled {
            order_id: "o-9".into(),
            customer_id: "c-9".into(),
            reason: "OUT_OF_STOCK".into(),
            cancelled_at: 0,
        }))
        .unwrap();
        let read = Notification::recorded("out_of_stock", "o-9", "c-9", cancelled.message.clone());
        assert_eq!(read, Some(cancelled));
        assert_eq!(
            Notification::recorded("refund_in_bitcoin", "o-9", "c-9", String::new()),
            None
        );
    }
}
