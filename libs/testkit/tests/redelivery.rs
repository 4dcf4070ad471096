//! Every event delivered twice: each domain event is written back onto its
//! topic (same key, headers and CloudEvents id), as a producer retry or a
//! relay crash between publish and delete would. Nothing may happen twice,
//! and every service must account for every copy as a duplicate its inbox
//! caught: were a service's inbox to let copies through, its handled count
//! would grow even where the domain happens to absorb the repeat.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use orderflow_testkit::metrics::scrape;
use orderflow_testkit::{order_body, Duplicator, Stack, DUPLICATE_MARKER};
use rdkafka::message::{Headers, Message};

/// (topic, event type) → (originals, copies) on the domain topics.
type Census = BTreeMap<(String, String), (u64, u64)>;

async fn census(stack: &Stack) -> Result<Census> {
    let mut census = Census::new();
    for topic in orderflow_envelope::Topic::ALL {
        for m in stack.kafka().read_all(topic.name()).await? {
            let mut ce_type = None;
            let mut copy = false;
            for h in m.headers().into_iter().flat_map(|h| h.iter()) {
                if h.key == "ce_type" {
                    ce_type = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                }
                copy |= h.key == DUPLICATE_MARKER;
            }
            let short = ce_type
                .as_deref()
                .and_then(|t| t.rsplit('.').next())
                .unwrap_or("none")
                .to_string();
            let entry = census.entry((m.topic().to_string(), short)).or_default();
            if copy {
                entry.1 += 1;
            } else {
                entry.0 += 1;
            }
        }
    }
    Ok(census)
}

/// The event types each service acts on, per topic it consumes; it skips the
/// others. Every topic a service consumes has its entry, and no other (checked
/// below).
const HANDLED: [(&str, &str, &[&str]); 11] = [
    (
        "order",
        "inventory",
        &[
            "InventoryReserved",
            "InventoryUnavailable",
            "InventoryReleased",
        ],
    ),
    (
        "order",
        "payments",
        &[
            "PaymentProcessed",
            "PaymentFailed",
            "PaymentRefunded",
            "PaymentRefundFailed",
        ],
    ),
    ("order", "shipments", &["ShipmentCreated", "ShipmentFailed"]),
    ("inventory", "orders", &["OrderCreated"]),
    ("inventory", "payments", &["PaymentFailed"]),
    (
        "inventory",
        "shipments",
        &["ShipmentCreated", "ShipmentFailed"],
    ),
    ("payment", "inventory", &["InventoryReserved"]),
    (
        "payment",
        "shipments",
        &["ShipmentCreated", "ShipmentFailed"],
    ),
    ("shipping", "payments", &["PaymentProcessed"]),
    ("notification", "payments", &["PaymentProcessed"]),
    (
        "notification",
        "orders",
        &["OrderCreated", "OrderCompleted", "OrderCancelled"],
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_delivery_of_every_event_changes_nothing() -> Result<()> {
    let stack = Stack::start().await?;
    let duplicator = Duplicator::start(&stack.bootstrap)?;

    let orders = place_four(&stack).await?;
    let census = every_event_copied_and_consumed(&stack).await?;
    let copied = duplicator.stop().await?;

    // Each event of the four sagas exactly once, each with its one copy.
    let originals = originals(&census);
    assert_eq!(
        originals,
        expected_originals(),
        "an event was emitted twice (or never)"
    );
    assert_eq!(
        copied, 26,
        "the duplicator copies each of the 26 events once"
    );

    // Every service counted each event it acts on once as handled and its
    // copy once as a duplicate, and skipped both of every other one.
    for spec in [
        &orderflow_order::SPEC,
        &orderflow_inventory::SPEC,
        &orderflow_payment::SPEC,
        &orderflow_shipping::SPEC,
        &orderflow_notification::SPEC,
    ] {
        let service = spec.name;
        let consumed: Vec<&str> = spec.consumes.iter().map(|t| t.name()).collect();
        for topic in &consumed {
            assert!(
                HANDLED.iter().any(|(s, t, _)| *s == service && t == topic),
                "{service} consumes {topic}, which HANDLED does not list"
            );
        }
        for (_, topic, _) in HANDLED.iter().filter(|(s, _, _)| *s == service) {
            assert!(
                consumed.contains(topic),
                "HANDLED lists {service} on {topic}, which it does not consume"
            );
        }
        let metrics = scrape(&stack.http, &stack.ops[service]).await?;
        for ((topic, event_type), (originals, copies)) in &census {
            if !consumed.contains(&topic.as_str()) {
                continue;
            }
            let handled_here = HANDLED
                .iter()
                .find(|(s, t, _)| *s == service && t == topic)
                .is_some_and(|(_, _, types)| types.contains(&event_type.as_str()));
            let count = |outcome: &str| {
                metrics.sum_where(
                    "orderflow_events_consumed_total",
                    &[
                        ("topic", topic),
                        ("event_type", event_type),
                        ("outcome", outcome),
                    ],
                ) as u64
            };
            let seen = (count("handled"), count("duplicate"), count("skipped"));
            let expected = if handled_here {
                (*originals, *copies, 0)
            } else {
                (0, 0, originals + copies)
            };
            assert_eq!(
                seen,
                expected,
                "{service} on {topic}/{event_type}: (handled, duplicate, skipped); its consumed series:\n{}",
                metrics.lines("orderflow_events_consumed_total")
            );
        }
    }

    each_outcome_happened_once(&stack, &orders).await?;
    stack.stop().await
}

/// Every event comes again after the inboxes forgot it: a dead letter
/// replayed after the inbox's retention (seven days), or a consumer group
/// whose committed offsets expired reading the log from the start. No
/// inbox row can catch it, so each service must see from its own state that
/// the order was decided already: nothing is reserved, charged, refunded,
/// shipped or mailed again, and no service emits an event again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_after_the_inboxes_forgot_every_event_changes_nothing() -> Result<()> {
    let stack = Stack::start().await?;
    let orders = place_four(&stack).await?;
    stack.wait_idle().await?;
    forget_every_inbox(&stack).await?;
    let duplicator = Duplicator::start(&stack.bootstrap)?;
    let census = every_event_copied_and_consumed(&stack).await?;
    let copied = duplicator.stop().await?;
    let originals = originals(&census);
    assert_eq!(
        originals,
        expected_originals(),
        "a replayed event made a service act again"
    );
    assert_eq!(copied, 26, "every event was replayed once");
    each_outcome_happened_once(&stack, &orders).await?;
    stack.stop().await
}

/// Empties the inbox of every consuming service, as its retention does.
async fn forget_every_inbox(stack: &Stack) -> Result<()> {
    use orderflow_runtime::sqlx;
    sqlx::any::install_default_drivers();
    for (service, url) in &stack.databases {
        let pool = sqlx::AnyPool::connect(url).await?;
        let forgotten = sqlx::query("DELETE FROM orderflow_inbox")
            .execute(&pool)
            .await?
            .rows_affected();
        assert!(forgotten > 0, "{service}'s inbox was empty");
        pool.close().await;
    }
    Ok(())
}

/// The four orders of the saga's four outcomes: (shipped, out of stock,
/// declined, unshippable), each terminal.
async fn place_four(stack: &Stack) -> Result<[String; 4]> {
    let shipped = stack
        .place(&order_body("c-1", "SKU-001", 2, "tok_visa", "DE"))
        .await?;
    let out_of_stock = stack
        .place(&order_body("c-2", "SKU-002", 500, "tok_visa", "DE"))
        .await?;
    let declined = stack
        .place(&order_body("c-3", "SKU-003", 1, "tok_chargeDeclined", "DE"))
        .await?;
    let unshippable = stack
        .place(&order_body("c-4", "SKU-004", 1, "tok_visa", "AQ"))
        .await?;
    let orders = [shipped, out_of_stock, declined, unshippable];
    for id in &orders {
        stack.wait_terminal(id).await?;
    }
    Ok(orders)
}

/// Waits until every event on the domain topics has its copy and every copy
/// was consumed; the census then.
async fn every_event_copied_and_consumed(stack: &Stack) -> Result<Census> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        stack.wait_idle().await?;
        let census = census(stack).await?;
        if census
            .values()
            .all(|(originals, copies)| originals == copies)
        {
            // The copies were written before this census; idle again, they are consumed.
            stack.wait_idle().await?;
            return Ok(census);
        }
        if Instant::now() > deadline {
            bail!("not every event was copied after 60 s: {census:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (topic, event type) → how many originals the census counted.
fn originals(census: &Census) -> BTreeMap<(&str, &str), u64> {
    census
        .iter()
        .map(|((topic, t), (originals, _))| ((topic.as_str(), t.as_str()), *originals))
        .collect()
}

/// The events of the four sagas, each once.
fn expected_originals() -> BTreeMap<(&'static str, &'static str), u64> {
    [
        (("orders", "OrderCreated"), 4),
        (("orders", "OrderCompleted"), 1),
        (("orders", "OrderCancelled"), 3),
        (("inventory", "InventoryReserved"), 3),
        (("inventory", "InventoryUnavailable"), 1),
        (("inventory", "InventoryReleased"), 2),
        (("payments", "PaymentProcessed"), 2),
        (("payments", "PaymentFailed"), 1),
        (("payments", "PaymentRefunded"), 1),
        (("shipments", "ShipmentCreated"), 1),
        (("shipments", "ShipmentFailed"), 1),
        (("notifications", "NotificationSent"), 6),
    ]
    .into_iter()
    .collect()
}

/// What the user sees of the four orders: each status, its stock, charges,
/// refunds, notifications and history as after one delivery of each event,
/// and no dead letter anywhere.
async fn each_outcome_happened_once(stack: &Stack, orders: &[String; 4]) -> Result<()> {
    let [shipped, out_of_stock, declined, unshippable] = orders;
    assert_eq!(stack.order(shipped).await?.status, "SHIPPED");
    let s = stack.stock("SKU-001").await?;
    assert_eq!(
        (s.available, s.reserved),
        (98, 0),
        "reserved or shipped twice"
    );
    for sku in ["SKU-002", "SKU-003", "SKU-004"] {
        let s = stack.stock(sku).await?;
        assert_eq!(
            (s.available, s.reserved),
            (100, 0),
            "{sku} released twice or not at all"
        );
    }
    let p = stack.payment(shipped).await?.expect("payment");
    assert_eq!(
        (p.status.as_str(), p.provider_charges, p.provider_refunds),
        ("CHARGED", 1, 0)
    );
    let p = stack.payment(declined).await?.expect("payment");
    assert_eq!(
        (p.status.as_str(), p.provider_charges, p.provider_refunds),
        ("DECLINED", 0, 0)
    );
    let p = stack.payment(unshippable).await?.expect("payment");
    assert_eq!(
        (p.status.as_str(), p.provider_charges, p.provider_refunds),
        ("REFUNDED", 1, 1)
    );

    for (customer, order, expected) in [
        ("c-1", shipped, vec!["payment_received", "shipped"]),
        ("c-2", out_of_stock, vec!["out_of_stock"]),
        ("c-3", declined, vec!["payment_declined"]),
        (
            "c-4",
            unshippable,
            vec!["payment_received", "shipping_failed"],
        ),
    ] {
        let mut kinds: Vec<String> = stack
            .notifications(customer)
            .await?
            .into_iter()
            .inspect(|n| assert_eq!(&n.order_id, order))
            .map(|n| n.kind)
            .collect();
        kinds.sort();
        assert_eq!(kinds, expected, "{customer}'s notifications");
    }
    // Duplicates are absorbed, not failed: no service dead-lettered anything.
    for service in orderflow_runtime::topics::CONSUMING_SERVICES {
        let parked = stack
            .kafka()
            .read_all(&orderflow_runtime::topics::dead_letter_topic(service))
            .await?;
        assert!(
            parked.is_empty(),
            "{service} dead-lettered {} duplicate(s)",
            parked.len()
        );
    }
    // The history records each event once, however often it was delivered.
    for (order, steps) in [
        (
            shipped,
            &[
                "OrderCreated",
                "InventoryReserved",
                "PaymentProcessed",
                "ShipmentCreated",
            ][..],
        ),
        (out_of_stock, &["OrderCreated", "InventoryUnavailable"][..]),
        (
            declined,
            &[
                "OrderCreated",
                "InventoryReserved",
                "PaymentFailed",
                "InventoryReleased",
            ][..],
        ),
        (
            unshippable,
            &[
                "OrderCreated",
                "InventoryReserved",
                "PaymentProcessed",
                "ShipmentFailed",
                "PaymentRefunded",
                "InventoryReleased",
            ][..],
        ),
    ] {
        let mut history: Vec<String> = stack
            .order(order)
            .await?
            .history
            .into_iter()
            .map(|h| h.event_type)
            .collect();
        history.sort();
        let mut steps: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
        steps.sort();
        assert_eq!(history, steps, "order {order}'s history");
    }
    Ok(())
}
