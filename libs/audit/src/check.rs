//! The audit proper: every order the log or a store knows, judged by the
//! saga's invariants once its story is settled, and stock once nothing is
//! in flight.
//!
//! The stores are read before the log, so every store write the log
//! explains is in it; what differs on a live system is only an order
//! still moving. An order is therefore judged when it is terminal by its
//! events and its newest event is at least `settle_ms` old; one not
//! terminal is judged only against the deadline. Stock is checked only at
//! rest (no order in flight): a reservation moves units between
//! `available`, `reserved` and `shipped` within one step.

use std::collections::{BTreeMap, BTreeSet};

use orderflow_api::audit::StockRecord;
use orderflow_invariants::{
    self as invariants, Account, Invariant, OrderFacts, StockFacts, Violation,
};

use crate::log::{LogBook, OrderLog};
use crate::stores::StoreBook;

/// What an audit covers and how long things may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Only orders placed at or after this time (ms since the epoch; None:
    /// every order); an order whose placing nobody knows is left out too.
    /// Stock is then not judged: what inventory shipped before it is in its
    /// figures and not in the orders judged.
    pub since_ms: Option<i64>,
    /// Placed to terminal, at most.
    pub deadline_ms: i64,
    /// How old an order's newest event must be before its story counts as
    /// settled (the steps that follow an event land within it).
    pub settle_ms: i64,
}

/// A broken promise, with both sides of the story.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub invariant: &'static str,
    /// The order id, or the SKU.
    pub subject: String,
    pub detail: String,
    /// What the log says.
    pub log: String,
    /// What the stores say.
    pub stores: String,
    /// The command that shows more.
    pub more: String,
}

impl Finding {
    fn new(v: Violation, log: String, stores: String, more: String) -> Self {
        Self {
            invariant: v.invariant.name(),
            subject: v.subject,
            detail: v.detail,
            log,
            stores,
            more,
        }
    }
}

/// What an audit found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Audit {
    /// Orders the log or a store knows.
    pub orders: usize,
    /// Orders judged: terminal and settled, or stuck (past the deadline,
    /// or known to a store and never placed as far as the log knows).
    pub judged: usize,
    /// Orders still moving (not terminal within the deadline, or too
    /// recently changed).
    pub in_flight: usize,
    pub skus: usize,
    /// Whether stock was checked (only at rest).
    pub stock_checked: bool,
    pub findings: Vec<Finding>,
}

/// The invariants an audit checks: every one but what is parked, which
/// only the services' databases show.
pub fn checked() -> impl Iterator<Item = Invariant> {
    Invariant::ALL
        .into_iter()
        .filter(|i| *i != Invariant::NothingParkedAtRest)
}

impl Audit {
    /// The findings about one order or SKU.
    pub fn about(&self, subject: &str) -> Vec<Finding> {
        self.findings
            .iter()
            .filter(|f| f.subject == subject)
            .cloned()
            .collect()
    }

    /// Findings by invariant, every checked invariant listed.
    pub fn summary(&self) -> BTreeMap<&'static str, usize> {
        let mut counts: BTreeMap<&'static str, usize> = checked().map(|i| (i.name(), 0)).collect();
        for f in &self.findings {
            *counts.entry(f.invariant).or_default() += 1;
        }
        counts
    }
}

/// The command that shows one order's story.
pub fn more_about(order_id: &str) -> String {
    format!("orderflow audit --order {order_id}")
}

/// Judges every order and, at rest, the stock, as of `now_ms`.
pub fn audit(log: &LogBook, stores: &StoreBook, now_ms: i64, limits: &Limits) -> Audit {
    // With `since`, an order nobody knows the placing of is left out too.
    let placed_before = |id: &str| {
        let placed = placed_at(id, log.orders.get(id), stores);
        limits
            .since_ms
            .is_some_and(|since| placed.is_none_or(|at| at < since))
    };
    let ids: BTreeSet<&String> = log
        .orders
        .keys()
        .chain(stores.order_ids())
        .filter(|id| !placed_before(id))
        .collect();
    let mut audit = Audit {
        orders: ids.len(),
        skus: stores.stock.len(),
        ..Audit::default()
    };
    let mut judged = Vec::new();
    for id in ids {
        match judge(id, log.orders.get(id), stores, now_ms, limits) {
            Verdict::InFlight => audit.in_flight += 1,
            Verdict::Judged(facts, findings) => {
                audit.judged += 1;
                audit.findings.extend(findings);
                judged.push(facts);
            }
        }
    }
    if audit.in_flight == 0 && limits.since_ms.is_none() {
        audit.stock_checked = true;
        audit.findings.extend(judge_stock(stores, &judged));
    }
    audit
}

/// What becomes of one order in an audit.
enum Verdict {
    /// Still moving: not judged.
    InFlight,
    Judged(OrderFacts, Vec<Finding>),
}

/// One order: judged when terminal and settled, or when stuck — past its
/// deadline, or known to a store and never placed as far as the log knows
/// (its `OrderCreated` was lost: nothing will move it).
fn judge(
    id: &str,
    logged: Option<&OrderLog>,
    stores: &StoreBook,
    now_ms: i64,
    limits: &Limits,
) -> Verdict {
    let store_account = stores.account(id);
    let placed = placed_at(id, logged, stores);
    let facts = order_facts(id, logged, placed, &store_account);
    let placed = placed.is_some();
    let log_account = logged.map(OrderLog::account).unwrap_or_default();
    let newest = logged.map_or(0, |o| o.last_at_ms).max(facts.placed_at_ms);
    let settled = now_ms.saturating_sub(newest) >= limits.settle_ms;
    let checks: &[fn(&OrderFacts) -> Option<Violation>] = if facts.is_terminal() {
        if !settled {
            return Verdict::InFlight;
        }
        &[
            invariants::at_most_once,
            invariants::charged_is_shipped_or_refunded,
            invariants::cancelled_keeps_no_charge,
            invariants::one_notification_per_outcome,
        ]
    } else {
        // Stuck: what it did so far is judged too.
        &[invariants::at_most_once]
    };
    let stranded = (placed && !facts.is_terminal())
        .then(|| invariants::terminal_by_deadline(&facts, now_ms, limits.deadline_ms))
        .flatten();
    let unannounced =
        settled && log_account.status.is_none() && store_account != Account::default();
    if !facts.is_terminal() && stranded.is_none() && !unannounced {
        return Verdict::InFlight;
    }
    let violations: Vec<Violation> = stranded
        .into_iter()
        .chain(checks.iter().filter_map(|check| check(&facts)))
        .chain(invariants::log_and_stores_agree(
            id,
            &log_account,
            &store_account,
        ))
        .collect();
    let findings = violations
        .into_iter()
        .map(|v| {
            Finding::new(
                v,
                log_account.to_string(),
                store_account.to_string(),
                more_about(id),
            )
        })
        .collect();
    Verdict::Judged(facts, findings)
}

/// Stock, judged against the judged orders (only at rest).
fn judge_stock(stores: &StoreBook, judged: &[OrderFacts]) -> Vec<Finding> {
    let stock: Vec<StockFacts> = stores.stock.iter().map(stock_facts).collect();
    let (shipped, _) = invariants::units(judged);
    invariants::stock_conserved(&stock, judged)
        .into_iter()
        .map(|v| {
            let record = stores.stock.iter().find(|s| s.sku == v.subject);
            let log = format!(
                "shipped orders took {}",
                shipped.get(v.subject.as_str()).copied().unwrap_or(0)
            );
            let more = format!("orderflow audit --sku {}", v.subject);
            let stores = record.map(describe_stock).unwrap_or_default();
            Finding::new(v, log, stores, more)
        })
        .collect()
}

/// When the order was placed: as its `OrderCreated` says, else as the order
/// service says; None when neither knows it.
fn placed_at(id: &str, logged: Option<&OrderLog>, stores: &StoreBook) -> Option<i64> {
    logged
        .and_then(|o| o.placed_at_ms)
        .or_else(|| stores.orders.get(id).map(|o| o.placed_at_ms))
}

/// What the invariants need of an order: its status, reason and lines from
/// the log (what happened); its charges, refunds and notifications from the
/// stores' `account` (what the customer was charged and told).
fn order_facts(
    id: &str,
    logged: Option<&OrderLog>,
    placed_at: Option<i64>,
    account: &Account,
) -> OrderFacts {
    let (status, reason) = logged
        .map(OrderLog::status)
        .unwrap_or_else(|| orderflow_envelope::saga::derive_status(&[], false));
    OrderFacts {
        order_id: id.to_string(),
        status: status.as_str().to_string(),
        reason: reason.map(|r| r.as_str().to_string()),
        lines: logged.map(|o| o.lines.clone()).unwrap_or_default(),
        placed_at_ms: placed_at.unwrap_or(0),
        charges: account.charges,
        refunds: account.refunds,
        notifications: account.notifications.clone(),
    }
}

fn stock_facts(s: &StockRecord) -> StockFacts {
    StockFacts {
        sku: s.sku.clone(),
        initial: s.initial,
        restocked: s.restocked,
        available: s.available,
        reserved: s.reserved,
        shipped: Some(s.shipped),
    }
}

fn describe_stock(s: &StockRecord) -> String {
    format!(
        "initial {} + restocked {}; available {}, reserved {}, shipped {}",
        s.initial, s.restocked, s.available, s.reserved, s.shipped
    )
}

#[cfg(test)]
mod tests {
    use orderflow_api::audit::{OrderRecord, PaymentRecord, ShipmentRecord};
    use orderflow_envelope::EventType::*;

    use super::*;

    const NOW: i64 = 100_000_000;
    const LIMITS: Limits = Limits {
        since_ms: None,
        deadline_ms: 50_000_000,
        settle_ms: 10_000,
    };

    /// A SHIPPED order of two SKU-1, its newest event `age_ms` ago, as the
    /// log tells it and as every store tells it.
    fn shipped(id: &str, age_ms: i64) -> (OrderLog, StoreBook) {
        let log = OrderLog {
            customer_id: "c-1".into(),
            placed_at_ms: Some(NOW - age_ms - 1_000),
            lines: vec![("SKU-1".into(), 2)],
            seen: vec![
                OrderCreated,
                InventoryReserved,
                PaymentProcessed,
                ShipmentCreated,
            ],
            charges: 1,
            shipment: Some("CREATED"),
            notifications: vec!["payment_received".into(), "shipped".into()],
            last_at_ms: NOW - age_ms,
            ..OrderLog::default()
        };
        let mut stores = StoreBook::default();
        stores.orders.insert(
            id.into(),
            OrderRecord {
                order_id: id.into(),
                customer_id: "c-1".into(),
                status: "SHIPPED".into(),
                reason: None,
                placed_at_ms: NOW - age_ms - 1_000,
            },
        );
        stores.payments.insert(
            id.into(),
            PaymentRecord {
                order_id: id.into(),
                status: Some("CHARGED".into()),
                provider_charges: 1,
                provider_refunds: 0,
            },
        );
        stores.shipments.insert(
            id.into(),
            ShipmentRecord {
                order_id: id.into(),
                status: "CREATED".into(),
            },
        );
        let kinds = vec!["payment_received".to_string(), "shipped".to_string()];
        stores.notifications.insert(id.into(), kinds);
        stores.stock.push(StockRecord {
            sku: "SKU-1".into(),
            available: 8,
            reserved: 0,
            initial: 10,
            restocked: 0,
            shipped: 2,
        });
        (log, stores)
    }

    fn book(id: &str, order: OrderLog) -> LogBook {
        let mut book = LogBook::default();
        book.orders.insert(id.into(), order);
        book
    }

    fn named(audit: &Audit) -> Vec<(&str, &str)> {
        audit
            .findings
            .iter()
            .map(|f| (f.subject.as_str(), f.invariant))
            .collect()
    }

    #[test]
    fn a_settled_order_whose_stories_agree_passes_and_stock_is_checked() {
        let (log, stores) = shipped("o-1", 60_000);
        let audit = audit(&book("o-1", log), &stores, NOW, &LIMITS);
        assert_eq!(named(&audit), []);
        assert_eq!((audit.orders, audit.judged, audit.in_flight), (1, 1, 0));
        assert!(audit.stock_checked);
        let summary = audit.summary();
        assert_eq!(summary.len(), 7);
        assert!(!summary.contains_key("nothing_parked_at_rest"));
        assert_eq!(summary.values().sum::<usize>(), 0);
    }

    #[test]
    fn since_leaves_older_orders_and_stock_out() {
        let (log, mut stores) = shipped("o-1", 60_000);
        stores.shipments.clear();
        let placed = log.placed_at_ms.expect("placed");
        let book = book("o-1", log);
        let since = |since_ms| Limits {
            since_ms: Some(since_ms),
            ..LIMITS
        };
        let before = audit(&book, &stores, NOW, &since(placed + 1));
        assert_eq!(
            (before.orders, before.judged, before.stock_checked),
            (0, 0, false)
        );
        let at = audit(&book, &stores, NOW, &since(placed));
        assert_eq!(named(&at), [("o-1", "log_and_stores_agree")]);
        assert!(!at.stock_checked);
        // Only the ledger knows o-2: when it was placed nobody knows.
        let (_, mut ledger_only) = shipped("o-2", 60_000);
        ledger_only.orders.clear();
        ledger_only.shipments.clear();
        ledger_only.notifications.clear();
        let none = audit(&LogBook::default(), &ledger_only, NOW, &since(0));
        assert_eq!((none.orders, none.findings.len()), (0, 0));
    }

    #[test]
    fn a_young_order_is_in_flight_and_stock_waits() {
        let (log, mut stores) = shipped("o-1", 5_000);
        stores.stock[0].available = 99;
        let audit = audit(&book("o-1", log), &stores, NOW, &LIMITS);
        assert_eq!((audit.judged, audit.in_flight), (0, 1));
        assert!(!audit.stock_checked);
        assert_eq!(named(&audit), []);
    }

    #[test]
    fn each_side_is_told_and_the_stock_named() {
        let (log, mut stores) = shipped("o-1", 60_000);
        stores.shipments.clear();
        stores.stock[0].available = 9;
        let audit = audit(&book("o-1", log), &stores, NOW, &LIMITS);
        assert_eq!(
            named(&audit),
            [
                ("o-1", "log_and_stores_agree"),
                ("SKU-1", "stock_conserved")
            ]
        );
        let order = &audit.findings[0];
        assert_eq!(order.detail, "shipment differ");
        assert!(order.log.contains("shipment CREATED"), "{}", order.log);
        assert!(order.stores.contains("shipment none"), "{}", order.stores);
        assert_eq!(order.more, "orderflow audit --order o-1");
        let sku = &audit.findings[1];
        assert_eq!(sku.log, "shipped orders took 2");
        assert_eq!(
            sku.stores,
            "initial 10 + restocked 0; available 9, reserved 0, shipped 2"
        );
        assert_eq!(sku.more, "orderflow audit --sku SKU-1");
    }

    #[test]
    fn an_order_stuck_past_its_deadline_is_judged_with_what_it_did() {
        let (mut log, mut stores) = shipped("o-1", 60_000);
        log.seen = vec![OrderCreated, InventoryReserved];
        log.charges = 0;
        log.shipment = None;
        log.notifications.clear();
        stores.shipments.clear();
        stores.notifications.clear();
        stores.stock.clear();
        stores.orders.get_mut("o-1").expect("the order").status = "RESERVED".into();
        if let Some(p) = stores.payments.get_mut("o-1") {
            p.status = None;
            p.provider_charges = 2;
        }
        // Within the deadline: in flight, whatever the ledger says.
        let early = audit(&book("o-1", log.clone()), &stores, NOW, &LIMITS);
        assert_eq!((early.judged, early.in_flight), (0, 1));
        // Past it: stranded, charged twice, and the ledger disagrees.
        let late = audit(
            &book("o-1", log),
            &stores,
            NOW + LIMITS.deadline_ms,
            &LIMITS,
        );
        assert_eq!(
            named(&late),
            [
                ("o-1", "terminal_by_deadline"),
                ("o-1", "at_most_once"),
                ("o-1", "log_and_stores_agree")
            ]
        );
    }

    #[test]
    fn what_only_a_store_knows_is_named_once_settled() {
        let (_, mut stores) = shipped("o-1", 60_000);
        // A payment only the ledger knows: no placing time, so no deadline.
        stores.orders.clear();
        stores.shipments.clear();
        stores.notifications.clear();
        stores.stock.clear();
        let audit = audit(&LogBook::default(), &stores, NOW, &LIMITS);
        assert_eq!(named(&audit), [("o-1", "log_and_stores_agree")]);
        assert!(audit.findings[0].log.starts_with("no order;"));
        assert_eq!(audit.judged, 1);
    }
}
