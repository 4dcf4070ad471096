//! Messages a service cannot process are parked on its dead-letter topic with
//! the reason, and the saga carries on.

use orderflow_runtime::DEAD_LETTER_HEADER_PREFIX;
use orderflow_testkit::{order_body, Stack};
use rdkafka::message::{Headers, Message};

fn header(m: &rdkafka::message::OwnedMessage, name: &str) -> Option<String> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_is_dead_lettered_and_orders_after_it_complete() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let kafka = stack.kafka();
    // No CloudEvents headers at all.
    kafka
        .produce_raw("orders", "o-garbage", &[], b"\x00\x01not avro at all")
        .await?;
    // Proper headers, but a value that is not in the Confluent wire format.
    let headers = [
        ("ce_specversion", "1.0"),
        ("ce_id", "0190d3c4-0000-7000-8000-000000000001"),
        ("ce_source", "/somewhere/else"),
        ("ce_type", "io.orderflow.events.OrderCreated"),
        ("ce_time", "2026-01-01T00:00:00Z"),
        ("ce_subject", "o-garbage-2"),
    ];
    kafka
        .produce_raw(
            "orders",
            "o-garbage-2",
            &headers,
            b"{\"order_id\": \"o-garbage-2\"}",
        )
        .await?;

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
    let error = header(first, &format!("{DEAD_LETTER_HEADER_PREFIX}error")).unwrap();
    assert!(error.contains("ce_specversion"), "{error}");
    assert_eq!(
        header(first, &format!("{DEAD_LETTER_HEADER_PREFIX}source-topic")).as_deref(),
        Some("orders")
    );
    assert!(header(first, &format!("{DEAD_LETTER_HEADER_PREFIX}source-offset")).is_some());
    assert_eq!(
        header(first, &format!("{DEAD_LETTER_HEADER_PREFIX}service")).as_deref(),
        Some("inventory")
    );
    let second = parked
        .iter()
        .find(|m| m.key() == Some(b"o-garbage-2".as_slice()))
        .expect("the unframed value");
    let error = header(second, &format!("{DEAD_LETTER_HEADER_PREFIX}error")).unwrap();
    assert!(error.contains("Confluent wire format"), "{error}");
    assert_eq!(
        header(second, "ce_id").as_deref(),
        Some("0190d3c4-0000-7000-8000-000000000001"),
        "original headers kept"
    );

    // Notification also consumes `orders`: it parks the header-less message and
    // skips the OrderCreated it has no business with.
    let parked = kafka.read_all("notification.dlq").await?;
    assert_eq!(parked.len(), 1, "notification dead letters");
    stack.stop().await
}
