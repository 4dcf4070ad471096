//! Messages a service cannot process are parked on its dead-letter topic with
//! the reason and where they came from, and the saga carries on.

use std::collections::BTreeMap;

use orderflow_runtime::DEAD_LETTER_HEADER_PREFIX;
use orderflow_testkit::metrics::scrape;
use orderflow_testkit::{order_body, Stack};
use rdkafka::message::{Headers, Message, OwnedMessage};

/// Every header of a message, in order.
fn headers(m: &OwnedMessage) -> Vec<(String, String)> {
    m.headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a dead letter: the original headers first, unchanged, then exactly
/// the dead-letter headers with these values (`failed-at` within the test).
fn check_dead_letter(
    m: &OwnedMessage,
    original: &[(&str, &str)],
    service: &str,
    (topic, partition, offset): (&str, i32, i64),
    error_contains: &str,
    test_began: chrono::DateTime<chrono::Utc>,
) {
    let all = headers(m);
    let kept: Vec<(&str, &str)> = all[..original.len()]
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(kept, original, "the original headers, in order");
    let added: BTreeMap<&str, &str> = all[original.len()..]
        .iter()
        .map(|(k, v)| {
            let name = k
                .strip_prefix(DEAD_LETTER_HEADER_PREFIX)
                .unwrap_or_else(|| panic!("{k} is not a dead-letter header"));
            (name, v.as_str())
        })
        .collect();
    assert_eq!(
        added.keys().copied().collect::<Vec<_>>(),
        [
            "attempts",
            "error",
            "failed-at",
            "service",
            "source-offset",
            "source-partition",
            "source-topic"
        ]
    );
    assert!(
        added["error"].contains(error_contains),
        "{}",
        added["error"]
    );
    assert_eq!(added["source-topic"], topic);
    assert_eq!(added["source-partition"], partition.to_string());
    assert_eq!(added["source-offset"], offset.to_string());
    assert_eq!(added["attempts"], "1", "permanent on the first attempt");
    assert_eq!(added["service"], service);
    let failed_at = chrono::DateTime::parse_from_rfc3339(added["failed-at"])
        .unwrap_or_else(|e| panic!("failed-at {}: {e}", added["failed-at"]));
    assert!(
        test_began <= failed_at && failed_at <= chrono::Utc::now(),
        "failed-at {failed_at} is not during the test"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_is_dead_lettered_and_orders_after_it_complete() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let began = chrono::Utc::now();
    let kafka = stack.kafka();
    // No CloudEvents headers at all.
    let (p, o) = kafka
        .produce_raw("orders", "o-garbage", &[], b"\x00\x01not avro at all")
        .await?;
    let headerless = ("orders", p, o);
    // Proper headers, but a value that is not in the Confluent wire format.
    let ce_headers = [
        ("ce_specversion", "1.0"),
        ("ce_id", "0190d3c4-0000-7000-8000-000000000001"),
        ("ce_source", "/orderflow/order"),
        ("ce_type", "io.orderflow.events.OrderCreated"),
        ("ce_time", "2026-01-01T00:00:00Z"),
        ("ce_subject", "o-garbage-2"),
    ];
    let (p, o) = kafka
        .produce_raw(
            "orders",
            "o-garbage-2",
            &ce_headers,
            b"{\"order_id\": \"o-garbage-2\"}",
        )
        .await?;
    let unframed = ("orders", p, o);

    let order_id = stack
        .place(&order_body("c-after", "SKU-007", 1, "tok_visa", "DE"))
        .await?;
    assert_eq!(stack.wait_terminal(&order_id).await?.status, "SHIPPED");
    stack.wait_idle().await?;

    // Inventory consumes `orders`: both messages are parked there.
    let parked = kafka.read_all("inventory.dlq").await?;
    assert_eq!(parked.len(), 2, "inventory dead letters");
    let first = parked
        .iter()
        .find(|m| m.key() == Some(b"o-garbage".as_slice()))
        .expect("the header-less message");
    assert_eq!(
        first.payload(),
        Some(b"\x00\x01not avro at all".as_slice()),
        "the original value is kept"
    );
    check_dead_letter(first, &[], "inventory", headerless, "ce_specversion", began);
    let second = parked
        .iter()
        .find(|m| m.key() == Some(b"o-garbage-2".as_slice()))
        .expect("the unframed value");
    assert_eq!(
        second.payload(),
        Some(b"{\"order_id\": \"o-garbage-2\"}".as_slice())
    );
    check_dead_letter(
        second,
        &ce_headers,
        "inventory",
        unframed,
        "Confluent wire format",
        began,
    );

    // Notification also consumes `orders` (an OrderCreated tells it where the
    // order's emails go): it parks both, like inventory.
    let parked = kafka.read_all("notification.dlq").await?;
    assert_eq!(parked.len(), 2, "notification dead letters");
    let first = parked
        .iter()
        .find(|m| m.key() == Some(b"o-garbage".as_slice()))
        .expect("the header-less message");
    check_dead_letter(
        first,
        &[],
        "notification",
        headerless,
        "ce_specversion",
        began,
    );
    let second = parked
        .iter()
        .find(|m| m.key() == Some(b"o-garbage-2".as_slice()))
        .expect("the unframed value");
    check_dead_letter(
        second,
        &ce_headers,
        "notification",
        unframed,
        "Confluent wire format",
        began,
    );

    // What the dead-letter alert counts.
    for (service, expected) in [("inventory", 2.0), ("notification", 2.0)] {
        let metrics = scrape(&stack.http, &stack.ops[service]).await?;
        assert_eq!(
            metrics.sum_where("orderflow_dead_letters_total", &[("topic", "orders")]),
            expected,
            "{service}: {}",
            metrics.lines("orderflow_dead_letters_total")
        );
        assert_eq!(
            metrics.sum_where(
                "orderflow_events_consumed_total",
                &[("outcome", "dead_lettered")]
            ),
            expected,
            "{service}"
        );
    }
    // The services that do not read `orders` never saw the garbage: the
    // order service writes what it keeps of an order when placing it.
    assert!(
        kafka.read_all("order.dlq").await?.is_empty(),
        "order dead letters"
    );
    for service in ["order", "payment", "shipping"] {
        let metrics = scrape(&stack.http, &stack.ops[service]).await?;
        assert_eq!(
            metrics.sum("orderflow_dead_letters_total", ""),
            0.0,
            "{service}"
        );
    }
    stack.stop().await
}

/// The other permanent failures: a value framed with a schema id the
/// registry does not know, and an event that breaks an invariant (a
/// reservation for an order the order service never created). Each is
/// dead-lettered at once (attempts 1), never retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_schema_and_a_broken_invariant_are_dead_lettered_at_once() -> anyhow::Result<()>
{
    use orderflow_envelope::{CloudEventHeaders, EventType};
    let stack = Stack::start().await?;
    let began = chrono::Utc::now();
    let kafka = stack.kafka();

    // Schema id 99999 (0x0001869F), which no registry here has.
    let unknown = CloudEventHeaders::new(
        "inventory",
        EventType::InventoryReserved.ce_type(),
        "o-unknown-schema",
    )
    .to_pairs();
    let unknown_refs: Vec<(&str, &str)> = unknown.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (p, o) = kafka
        .produce_raw(
            "inventory",
            "o-unknown-schema",
            &unknown_refs,
            &[0, 0, 1, 134, 159, 2, 4, 6],
        )
        .await?;
    let at_unknown = ("inventory", p, o);

    let (p, o, stray_pairs) = stack.publish_stray_reservation("o-never-created").await?;
    let stray_refs: Vec<(&str, &str)> = stray_pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let at_stray = ("inventory", p, o);
    stack.wait_idle().await?;

    // Order and payment both consume `inventory`: both park the unknown schema.
    for service in ["order", "payment"] {
        let parked = kafka.read_all(&format!("{service}.dlq")).await?;
        let m = parked
            .iter()
            .find(|m| m.key() == Some(b"o-unknown-schema".as_slice()))
            .unwrap_or_else(|| panic!("{service} did not park the unknown schema"));
        check_dead_letter(
            m,
            &unknown_refs,
            service,
            at_unknown,
            "schema id 99999 is unknown",
            began,
        );
    }
    // The stray reservation breaks the order service's invariant, and so
    // does the decline payment answered it with; payment itself had no
    // reason to refuse a charge (and the card declined it).
    let parked = kafka.read_all("order.dlq").await?;
    let stray_parked: Vec<_> = parked
        .iter()
        .filter(|m| m.key() == Some(b"o-never-created".as_slice()))
        .collect();
    assert_eq!(stray_parked.len(), 2, "the reservation and the decline");
    let reservation = stray_parked
        .iter()
        .find(|m| {
            headers(m)
                .iter()
                .any(|(k, v)| k == "ce_type" && v == "io.orderflow.events.InventoryReserved")
        })
        .expect("the reservation");
    check_dead_letter(
        reservation,
        &stray_refs,
        "order",
        at_stray,
        "refers to order o-never-created, which this order service never created",
        began,
    );
    let order = scrape(&stack.http, &stack.ops["order"]).await?;
    assert_eq!(order.sum("orderflow_dead_letters_total", ""), 3.0);
    assert_eq!(
        order.sum("orderflow_handler_retries_total", ""),
        0.0,
        "never retried"
    );
    stack.stop().await
}
