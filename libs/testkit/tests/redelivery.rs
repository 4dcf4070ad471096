//! Every event delivered twice: each domain event is written back onto its
//! topic (same key, headers and CloudEvents id), as a producer retry or a
//! relay crash between publish and delete would. Nothing may happen twice.

use orderflow_testkit::{order_body, Duplicator, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_delivery_of_every_event_changes_nothing() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let duplicator = Duplicator::start(&stack.bootstrap)?;

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
    for id in [&shipped, &out_of_stock, &declined, &unshippable] {
        stack.wait_terminal(id).await?;
    }
    // Let the copies of the last events arrive and be consumed.
    let mut copied = 0;
    loop {
        stack.wait_idle().await?;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if duplicator.copied() == copied {
            break;
        }
        copied = duplicator.copied();
    }
    stack.wait_idle().await?;
    let copied = duplicator.stop().await?;
    let published = stack.kafka().message_count("orders").await?
        + stack.kafka().message_count("payments").await?;
    assert!(copied >= 20, "expected the saga's events to be duplicated, copied {copied} (orders+payments: {published})");

    assert_eq!(stack.order(&shipped).await?.status, "SHIPPED");
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
    let p = stack.payment(&shipped).await?.expect("payment");
    assert_eq!(
        (p.status.as_str(), p.provider_charges, p.provider_refunds),
        ("CHARGED", 1, 0)
    );
    let p = stack.payment(&unshippable).await?.expect("payment");
    assert_eq!(
        (p.status.as_str(), p.provider_charges, p.provider_refunds),
        ("REFUNDED", 1, 1)
    );

    for (customer, expected) in [("c-1", 2), ("c-2", 1), ("c-3", 1), ("c-4", 2)] {
        let n = stack.notifications(customer).await?;
        assert_eq!(
            n.len(),
            expected,
            "{customer} got {:?}",
            n.iter().map(|n| &n.kind).collect::<Vec<_>>()
        );
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
    let history = stack.order(&shipped).await?.history;
    let reserved = history
        .iter()
        .filter(|h| h.event_type == "InventoryReserved")
        .count();
    assert_eq!(reserved, 1);
    stack.stop().await
}
