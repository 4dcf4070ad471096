//! What the log says of each order, folded from its events: what was
//! ordered and when, which steps happened (the status they imply, as the
//! order service derives it), how many charges and refunds were announced,
//! the shipment's outcome and the notifications sent. An event delivered
//! twice (the same CloudEvents id) counts once.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use orderflow_envelope::saga::{derive_status, CancelReason, Status};
use orderflow_envelope::{reasons, Event, EventType};
use orderflow_invariants::Account;

/// One order as its events tell it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderLog {
    pub customer_id: String,
    /// From its `OrderCreated` (None: the log holds events of an order it
    /// never saw placed).
    pub placed_at_ms: Option<i64>,
    /// (SKU, quantity) as ordered.
    pub lines: Vec<(String, i64)>,
    /// The kinds of event seen, each once.
    pub seen: Vec<EventType>,
    /// A payment failed because the provider could not be reached.
    pub payment_unavailable: bool,
    pub charges: u32,
    pub refunds: u32,
    pub shipment: Option<&'static str>,
    /// The kinds of notification sent, sorted.
    pub notifications: Vec<String>,
    /// When its newest event was written, ms since the epoch.
    pub last_at_ms: i64,
    /// Its events, in the order read (kept for one order only: see
    /// [`LogBook::focus`]).
    pub timeline: Vec<(i64, EventType)>,
}

impl OrderLog {
    /// The status (and reason) the events imply.
    pub fn status(&self) -> (Status, Option<CancelReason>) {
        derive_status(&self.seen, self.payment_unavailable)
    }

    /// The story the log tells of it.
    pub fn account(&self) -> Account {
        let (status, reason) = self.status();
        Account {
            status: self.placed_at_ms.map(|_| {
                (
                    status.as_str().to_string(),
                    reason.map(|r| r.as_str().to_string()),
                )
            }),
            payment: self
                .seen
                .iter()
                .any(|t| matches!(t, EventType::PaymentProcessed | EventType::PaymentFailed)),
            charges: self.charges,
            refunds: self.refunds,
            shipment: self.shipment.map(str::to_string),
            notifications: self.notifications.clone(),
        }
    }
}

/// Every order's events folded as they are read.
#[derive(Debug, Default)]
pub struct LogBook {
    pub orders: HashMap<String, OrderLog>,
    /// Hashes of the event ids seen (8 bytes an event rather than the
    /// 36-character id: a 100,000-order log holds about 900,000; two ids
    /// sharing a hash is a chance of about one in 10^7 per audit).
    ids: HashSet<u64>,
    /// Events folded in.
    pub events: u64,
    /// Deliveries of an event already folded in.
    pub duplicates: u64,
    /// Messages that are not orderflow events, or that do not decode (the
    /// consumers dead-lettered them).
    pub skipped: u64,
    /// The order whose timeline is kept.
    pub focus: Option<String>,
}

impl LogBook {
    /// A book that keeps `focus`'s events in order too.
    pub fn focused(focus: Option<String>) -> Self {
        Self {
            focus,
            ..Self::default()
        }
    }

    /// Folds in the event `id`, written at `at_ms`.
    pub fn apply(&mut self, id: &str, at_ms: i64, event: &Event) {
        let mut hasher = DefaultHasher::new();
        id.hash(&mut hasher);
        if !self.ids.insert(hasher.finish()) {
            self.duplicates += 1;
            return;
        }
        self.events += 1;
        let order_id = event.order_id();
        let order = self.orders.entry(order_id.to_string()).or_default();
        let event_type = event.event_type();
        if !order.seen.contains(&event_type) {
            order.seen.push(event_type);
        }
        order.last_at_ms = order.last_at_ms.max(at_ms);
        if self.focus.as_deref() == Some(order_id) {
            order.timeline.push((at_ms, event_type));
        }
        match event {
            Event::OrderCreated(e) => {
                order.customer_id = e.customer_id.clone();
                order.placed_at_ms = Some(e.placed_at);
                order.lines = e
                    .items
                    .iter()
                    .map(|l| (l.sku.clone(), i64::from(l.quantity)))
                    .collect();
            }
            Event::PaymentProcessed(_) => order.charges += 1,
            Event::PaymentRefunded(_) => order.refunds += 1,
            Event::PaymentFailed(e) => {
                order.payment_unavailable |= e.reason == reasons::PROVIDER_UNAVAILABLE;
            }
            Event::ShipmentCreated(_) => order.shipment = Some("CREATED"),
            Event::ShipmentFailed(_) => order.shipment = Some("FAILED"),
            Event::NotificationSent(e) => {
                let at = order.notifications.partition_point(|k| *k <= e.kind);
                order.notifications.insert(at, e.kind.clone());
            }
            _ => {}
        }
    }

    /// The newest event's time, ms since the epoch (0 for an empty log).
    pub fn newest_ms(&self) -> i64 {
        self.orders
            .values()
            .map(|o| o.last_at_ms)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use orderflow_envelope::{
        Address, Money, NotificationSent, OrderCreated, OrderItem, PaymentFailed, PaymentProcessed,
    };

    use super::*;

    const ORDER: &str = "0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b";

    fn placed() -> Event {
        Event::OrderCreated(OrderCreated {
            order_id: ORDER.into(),
            customer_id: "c-1".into(),
            items: vec![OrderItem {
                sku: "SKU-001".into(),
                quantity: 2,
            }],
            payment_token: "tok_visa".into(),
            shipping_address: Address {
                name: "A".into(),
                line1: "1 Road".into(),
                city: "Town".into(),
                postal_code: "1000".into(),
                country: "DE".into(),
            },
            placed_at: 1_000,
            customer_email: None,
        })
    }

    fn charged() -> Event {
        Event::PaymentProcessed(PaymentProcessed {
            order_id: ORDER.into(),
            customer_id: "c-1".into(),
            payment_id: "p-1".into(),
            amount: Money::new(100, "EUR"),
            shipping_address: match placed() {
                Event::OrderCreated(e) => e.shipping_address,
                _ => unreachable!(),
            },
        })
    }

    fn told(kind: &str) -> Event {
        Event::NotificationSent(NotificationSent {
            order_id: ORDER.into(),
            customer_id: "c-1".into(),
            notification_id: format!("n-{kind}"),
            kind: kind.into(),
            channel: "log".into(),
        })
    }

    #[test]
    fn an_event_delivered_twice_counts_once() {
        let mut book = LogBook::default();
        book.apply("e-1", 10, &placed());
        book.apply("e-2", 20, &charged());
        book.apply("e-2", 30, &charged());
        let order = &book.orders[ORDER];
        assert_eq!(order.charges, 1);
        assert_eq!((book.events, book.duplicates), (2, 1));
        assert_eq!(order.last_at_ms, 20);
        assert_eq!(order.lines, [("SKU-001".to_string(), 2)]);
        assert_eq!(order.placed_at_ms, Some(1_000));
        // A second charge is a second event, with an id of its own.
        book.apply("e-3", 40, &charged());
        assert_eq!(book.orders[ORDER].charges, 2);
    }

    #[test]
    fn notifications_are_kept_sorted_and_the_status_derived() {
        let mut book = LogBook::default();
        book.apply("e-1", 1, &told("shipped"));
        book.apply("e-2", 2, &told("payment_received"));
        book.apply(
            "e-3",
            3,
            &Event::PaymentFailed(PaymentFailed {
                order_id: ORDER.into(),
                customer_id: "c-1".into(),
                amount: Money::new(100, "EUR"),
                reason: reasons::PROVIDER_UNAVAILABLE.into(),
            }),
        );
        let order = &book.orders[ORDER];
        assert_eq!(order.notifications, ["payment_received", "shipped"]);
        assert!(order.payment_unavailable);
        // Never placed, as far as the log knows: no status to tell.
        assert_eq!(order.account().status, None);
        assert_eq!(order.status().0, Status::Pending);
    }

    #[test]
    fn only_the_focused_order_keeps_a_timeline() {
        let mut book = LogBook::focused(Some(ORDER.into()));
        book.apply("e-1", 5, &placed());
        assert_eq!(book.orders[ORDER].timeline, [(5, EventType::OrderCreated)]);
        let mut unfocused = LogBook::default();
        unfocused.apply("e-1", 5, &placed());
        assert!(unfocused.orders[ORDER].timeline.is_empty());
        assert_eq!(unfocused.newest_ms(), 5);
    }
}
