//! What the saga promises about the business outcome, across services, as
//! pure functions over facts gathered elsewhere: every charged order is
//! shipped or refunded; no cancelled order keeps a charge; nothing is
//! charged or refunded twice; stock is conserved per SKU; every terminal
//! order has exactly its outcome's notifications; no order is left
//! non-terminal past its deadline; at rest, no order waits parked; the log
//! and the services' stores tell the same story. The auditor (`orderflow
//! audit`), the deterministic simulation, the chaos soak and the system
//! tier gather the facts and check them here, so each promise is written
//! once.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;

/// One promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// No charge or refund happens twice.
    AtMostOnce,
    /// An order charged and not refunded is shipped, and a shipped order was
    /// charged (and not refunded).
    ChargedIsShippedOrRefunded,
    /// A cancelled order keeps no charge: every charge was refunded.
    CancelledKeepsNoCharge,
    /// Per SKU: initial + restocked = available + reserved + shipped, and
    /// what is reserved is held by orders still in flight.
    StockConserved,
    /// A terminal order got exactly the notifications of its outcome.
    OneNotificationPerOutcome,
    /// No order is non-terminal past its deadline and a margin.
    TerminalByDeadline,
    /// Once everything is terminal and idle, no order waits parked behind
    /// a retry (it would never be resumed).
    NothingParkedAtRest,
    /// The log and the services' stores agree on each order: a charge in
    /// the provider's ledger without its `PaymentProcessed` means an outbox
    /// lost a row; an event without its row means a handler's work was not
    /// kept.
    LogAndStoresAgree,
}

impl Invariant {
    pub const ALL: [Invariant; 8] = [
        Invariant::AtMostOnce,
        Invariant::ChargedIsShippedOrRefunded,
        Invariant::CancelledKeepsNoCharge,
        Invariant::StockConserved,
        Invariant::OneNotificationPerOutcome,
        Invariant::TerminalByDeadline,
        Invariant::NothingParkedAtRest,
        Invariant::LogAndStoresAgree,
    ];

    /// A stable name (metrics labels, reports).
    pub fn name(self) -> &'static str {
        match self {
            Invariant::AtMostOnce => "at_most_once",
            Invariant::ChargedIsShippedOrRefunded => "charged_is_shipped_or_refunded",
            Invariant::CancelledKeepsNoCharge => "cancelled_keeps_no_charge",
            Invariant::StockConserved => "stock_conserved",
            Invariant::OneNotificationPerOutcome => "one_notification_per_outcome",
            Invariant::TerminalByDeadline => "terminal_by_deadline",
            Invariant::NothingParkedAtRest => "nothing_parked_at_rest",
            Invariant::LogAndStoresAgree => "log_and_stores_agree",
        }
    }
}

/// A broken promise: which, about what (an order or a SKU), and what the
/// facts say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    /// The order id, SKU or service it is about.
    pub subject: String,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.invariant.name(),
            self.subject,
            self.detail
        )
    }
}

fn violation(invariant: Invariant, subject: &str, detail: String) -> Violation {
    Violation {
        invariant,
        subject: subject.to_string(),
        detail,
    }
}

/// What is known of one order: its status and reason as the order service
/// says, its lines, what the payment provider did for it, and the kinds of
/// the notifications its customer got about it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrderFacts {
    pub order_id: String,
    pub status: String,
    pub reason: Option<String>,
    /// (SKU, quantity).
    pub lines: Vec<(String, i64)>,
    /// When it was placed, in ms since the epoch.
    pub placed_at_ms: i64,
    pub charges: u32,
    pub refunds: u32,
    pub notifications: Vec<String>,
}

impl OrderFacts {
    /// SHIPPED, CANCELLED or REFUND_PENDING: nothing more happens by itself.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.status.as_str(),
            "SHIPPED" | "CANCELLED" | "REFUND_PENDING"
        )
    }

    /// Whether its lines are reserved now (reserved and not yet settled).
    fn holds_stock(&self) -> bool {
        matches!(self.status.as_str(), "RESERVED" | "PAID")
    }
}

/// One SKU's stock: where it started, what was added since, and what the
/// inventory service holds now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StockFacts {
    pub sku: String,
    pub initial: i64,
    pub restocked: i64,
    pub available: i64,
    pub reserved: i64,
    /// Units the inventory service says it shipped, where it says (its
    /// settled reservations): they must be what the shipped orders took.
    pub shipped: Option<i64>,
}

/// The notifications an outcome calls for, sorted; none for an order not
/// terminal yet. REFUND_PENDING (shipping failed, the refund could not be
/// made) has had its payment's only: an operator settles it.
pub fn expected_notifications(status: &str, reason: Option<&str>) -> Vec<&'static str> {
    match (status, reason) {
        ("SHIPPED", _) => vec!["payment_received", "shipped"],
        ("CANCELLED", Some("OUT_OF_STOCK")) => vec!["out_of_stock"],
        ("CANCELLED", Some("PAYMENT_DECLINED")) => vec!["payment_declined"],
        ("CANCELLED", Some("PAYMENT_UNAVAILABLE")) => vec!["payment_unavailable"],
        ("CANCELLED", Some("SHIPPING_FAILED")) => vec!["payment_received", "shipping_failed"],
        ("REFUND_PENDING", _) => vec!["payment_received"],
        _ => vec![],
    }
}

/// No charge or refund happens twice.
pub fn at_most_once(order: &OrderFacts) -> Option<Violation> {
    (order.charges > 1 || order.refunds > 1).then(|| {
        violation(
            Invariant::AtMostOnce,
            &order.order_id,
            format!(
                "{} charges and {} refunds ({})",
                order.charges, order.refunds, order.status
            ),
        )
    })
}

/// Charged and not refunded ⇔ shipped (for a terminal order).
pub fn charged_is_shipped_or_refunded(order: &OrderFacts) -> Option<Violation> {
    if !order.is_terminal() {
        return None;
    }
    let kept = order.charges > order.refunds;
    let shipped = order.status == "SHIPPED";
    (kept != shipped).then(|| {
        let detail = if shipped {
            format!(
                "SHIPPED with {} charges and {} refunds",
                order.charges, order.refunds
            )
        } else {
            format!(
                "{} {:?} keeps a charge ({} charges, {} refunds)",
                order.status, order.reason, order.charges, order.refunds
            )
        };
        violation(
            Invariant::ChargedIsShippedOrRefunded,
            &order.order_id,
            detail,
        )
    })
}

/// A CANCELLED order keeps no charge.
pub fn cancelled_keeps_no_charge(order: &OrderFacts) -> Option<Violation> {
    (order.status == "CANCELLED" && order.charges > order.refunds).then(|| {
        violation(
            Invariant::CancelledKeepsNoCharge,
            &order.order_id,
            format!(
                "CANCELLED {:?} with {} charges and {} refunds",
                order.reason, order.charges, order.refunds
            ),
        )
    })
}

/// A terminal order got exactly its outcome's notifications, each once.
pub fn one_notification_per_outcome(order: &OrderFacts) -> Option<Violation> {
    if !order.is_terminal() {
        return None;
    }
    let mut got: Vec<&str> = order.notifications.iter().map(String::as_str).collect();
    got.sort_unstable();
    let expected = expected_notifications(&order.status, order.reason.as_deref());
    (got != expected).then(|| {
        violation(
            Invariant::OneNotificationPerOutcome,
            &order.order_id,
            format!(
                "{} {:?} got {got:?}, expected {expected:?}",
                order.status, order.reason
            ),
        )
    })
}

/// Not terminal `limit_ms` after it was placed.
pub fn terminal_by_deadline(order: &OrderFacts, now_ms: i64, limit_ms: i64) -> Option<Violation> {
    let age = now_ms.saturating_sub(order.placed_at_ms);
    (!order.is_terminal() && age > limit_ms).then(|| {
        violation(
            Invariant::TerminalByDeadline,
            &order.order_id,
            format!(
                "still {} after {age} ms (limit {limit_ms} ms)",
                order.status
            ),
        )
    })
}

/// Units of each SKU taken by SHIPPED orders, and held by orders in flight.
pub fn units(orders: &[OrderFacts]) -> (BTreeMap<&str, i64>, BTreeMap<&str, i64>) {
    let (mut shipped, mut held) = (BTreeMap::new(), BTreeMap::new());
    for order in orders {
        let into = if order.status == "SHIPPED" {
            &mut shipped
        } else if order.holds_stock() {
            &mut held
        } else {
            continue;
        };
        for (sku, quantity) in &order.lines {
            *into.entry(sku.as_str()).or_default() += *quantity;
        }
    }
    (shipped, held)
}

/// Per SKU: nothing oversold, initial + restocked = available + reserved +
/// shipped, and reserved = what orders in flight hold.
pub fn stock_conserved(stock: &[StockFacts], orders: &[OrderFacts]) -> Vec<Violation> {
    let (shipped, held) = units(orders);
    let mut violations = Vec::new();
    for s in stock {
        let shipped = shipped.get(s.sku.as_str()).copied().unwrap_or(0);
        let held = held.get(s.sku.as_str()).copied().unwrap_or(0);
        let mut broken = Vec::new();
        if s.available < 0 || s.reserved < 0 {
            broken.push("negative stock".to_string());
        }
        let before = s.initial.saturating_add(s.restocked);
        let after = s
            .available
            .saturating_add(s.reserved)
            .saturating_add(shipped);
        if before != after {
            broken.push(format!(
                "{} initial + {} restocked ≠ {} available + {} reserved + {shipped} shipped",
                s.initial, s.restocked, s.available, s.reserved
            ));
        }
        if let Some(counted) = s.shipped.filter(|counted| *counted != shipped) {
            broken.push(format!(
                "inventory shipped {counted}, shipped orders took {shipped}"
            ));
        }
        if s.reserved != held {
            broken.push(format!(
                "{} reserved, but orders in flight hold {held}",
                s.reserved
            ));
        }
        if !broken.is_empty() {
            violations.push(violation(
                Invariant::StockConserved,
                &s.sku,
                broken.join("; "),
            ));
        }
    }
    violations
}

/// At rest, no service has an order parked: `parked` is (service, parked
/// order ids) as read from each service's database.
pub fn nothing_parked_at_rest(parked: &[(String, Vec<String>)]) -> Vec<Violation> {
    parked
        .iter()
        .filter(|(_, keys)| !keys.is_empty())
        .map(|(service, keys)| {
            violation(
                Invariant::NothingParkedAtRest,
                service,
                format!(
                    "{} orders still parked, e.g. {:?}",
                    keys.len(),
                    &keys[..keys.len().min(5)]
                ),
            )
        })
        .collect()
}

/// One order as one side tells it: the log (its events) or the stores
/// (each service's own record).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Account {
    /// The order's status and reason (None: this side has no order).
    pub status: Option<(String, Option<String>)>,
    /// Whether a payment was recorded (the log: a `PaymentProcessed` or
    /// `PaymentFailed`; the stores: the payment service's row).
    pub payment: bool,
    /// Charges and refunds made (the log: announced; the stores: the
    /// provider's ledger).
    pub charges: u32,
    pub refunds: u32,
    /// The shipment's outcome: CREATED or FAILED (None: no shipment).
    pub shipment: Option<String>,
    /// The kinds of notification sent, sorted.
    pub notifications: Vec<String>,
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.status {
            Some((status, Some(reason))) => write!(f, "{status} {reason}")?,
            Some((status, None)) => write!(f, "{status}")?,
            None => write!(f, "no order")?,
        }
        write!(
            f,
            "; payment {}, {} charges, {} refunds; shipment {}; notified {}",
            if self.payment { "recorded" } else { "none" },
            self.charges,
            self.refunds,
            self.shipment.as_deref().unwrap_or("none"),
            if self.notifications.is_empty() {
                "nothing".to_string()
            } else {
                self.notifications.join(", ")
            }
        )
    }
}

/// The log and the stores tell the same story of `order_id`.
pub fn log_and_stores_agree(order_id: &str, log: &Account, stores: &Account) -> Option<Violation> {
    let mut differ = Vec::new();
    if log.status != stores.status {
        differ.push("status");
    }
    if log.payment != stores.payment {
        differ.push("payment");
    }
    if log.charges != stores.charges {
        differ.push("charges");
    }
    if log.refunds != stores.refunds {
        differ.push("refunds");
    }
    if log.shipment != stores.shipment {
        differ.push("shipment");
    }
    if log.notifications != stores.notifications {
        differ.push("notifications");
    }
    (!differ.is_empty()).then(|| {
        violation(
            Invariant::LogAndStoresAgree,
            order_id,
            format!("{} differ", differ.join(", ")),
        )
    })
}

/// Every per-order promise for each order, then stock.
pub fn check_orders(orders: &[OrderFacts], stock: &[StockFacts]) -> Vec<Violation> {
    let per_order: [fn(&OrderFacts) -> Option<Violation>; 4] = [
        at_most_once,
        charged_is_shipped_or_refunded,
        cancelled_keeps_no_charge,
        one_notification_per_outcome,
    ];
    let mut violations: Vec<Violation> = orders
        .iter()
        .flat_map(|o| per_order.iter().filter_map(move |check| check(o)))
        .collect();
    violations.extend(stock_conserved(stock, orders));
    violations
}

/// Violations counted by invariant, every invariant listed.
pub fn summary(violations: &[Violation]) -> BTreeMap<&'static str, usize> {
    let mut counts: BTreeMap<&'static str, usize> =
        Invariant::ALL.iter().map(|i| (i.name(), 0)).collect();
    for v in violations {
        *counts.entry(v.invariant.name()).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests;
