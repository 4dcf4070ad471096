//! The four outcomes of the saga, end to end through the gateway on the
//! embedded broker, with the stock, the payment and the customer's
//! notifications checked after each.

use orderflow_testkit::{order_body, Stack};

fn kinds(notifications: &[orderflow_api::NotificationView], order_id: &str) -> Vec<String> {
    let mut kinds: Vec<String> = notifications
        .iter()
        .filter(|n| n.order_id == order_id)
        .map(|n| n.kind.clone())
        .collect();
    kinds.sort();
    kinds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_outcome_of_the_saga() -> anyhow::Result<()> {
    let stack = Stack::start().await?;

    // Happy path: 2 × SKU-001 at 9.99 EUR.
    let shipped = stack
        .place(&order_body("c-happy", "SKU-001", 2, "tok_visa", "DE"))
        .await?;
    // Out of stock: more than the 100 units there are.
    let out_of_stock = stack
        .place(&order_body("c-oos", "SKU-002", 101, "tok_visa", "DE"))
        .await?;
    // Declined card.
    let declined = stack
        .place(&order_body(
            "c-declined",
            "SKU-003",
            3,
            "tok_chargeDeclined",
            "DE",
        ))
        .await?;
    // A country the carrier does not serve: 4 × SKU-004 at 39.96 EUR.
    let unshippable = stack
        .place(&order_body("c-aq", "SKU-004", 4, "tok_visa", "AQ"))
        .await?;

    let order = stack.wait_terminal(&shipped).await?;
    assert_eq!(order.status, "SHIPPED");
    assert_eq!(order.reason, None);
    assert_eq!(
        order
            .total
            .as_ref()
            .map(|t| (t.amount_minor, t.currency.as_str())),
        Some((1998, "EUR"))
    );
    assert!(order
        .tracking_id
        .as_deref()
        .is_some_and(|t| t.starts_with("TRK")));
    let history: Vec<&str> = order
        .history
        .iter()
        .map(|h| h.event_type.as_str())
        .collect();
    for step in [
        "OrderCreated",
        "InventoryReserved",
        "PaymentProcessed",
        "ShipmentCreated",
    ] {
        assert!(history.contains(&step), "history {history:?} lacks {step}");
    }
    assert_eq!(order.history[0].source, "/orderflow/order");

    let order = stack.wait_terminal(&out_of_stock).await?;
    assert_eq!(
        (order.status.as_str(), order.reason.as_deref()),
        ("CANCELLED", Some("OUT_OF_STOCK"))
    );
    let order = stack.wait_terminal(&declined).await?;
    assert_eq!(
        (order.status.as_str(), order.reason.as_deref()),
        ("CANCELLED", Some("PAYMENT_DECLINED"))
    );
    let order = stack.wait_terminal(&unshippable).await?;
    assert_eq!(
        (order.status.as_str(), order.reason.as_deref()),
        ("CANCELLED", Some("SHIPPING_FAILED"))
    );
    stack.wait_idle().await?;

    // Stock: shipped units are gone, everything else is back on the shelf.
    let s = stack.stock("SKU-001").await?;
    assert_eq!((s.available, s.reserved), (98, 0));
    for sku in ["SKU-002", "SKU-003", "SKU-004"] {
        let s = stack.stock(sku).await?;
        assert_eq!((s.available, s.reserved), (100, 0), "{sku}");
    }

    // Payments: charged once, never charged, declined, refunded.
    let p = stack.payment(&shipped).await?.expect("a payment");
    assert_eq!(
        (
            p.status.as_str(),
            p.amount.amount_minor,
            p.provider_charges,
            p.provider_refunds
        ),
        ("CHARGED", 1998, 1, 0)
    );
    assert!(
        stack.payment(&out_of_stock).await?.is_none(),
        "an out-of-stock order is never charged"
    );
    let p = stack.payment(&declined).await?.expect("a payment");
    assert_eq!((p.status.as_str(), p.provider_charges), ("DECLINED", 0));
    let p = stack.payment(&unshippable).await?.expect("a payment");
    assert_eq!(
        (
            p.status.as_str(),
            p.amount.amount_minor,
            p.provider_charges,
            p.provider_refunds
        ),
        ("REFUNDED", 4 * 3996, 1, 1)
    );

    // Notifications: one per outcome.
    assert_eq!(
        kinds(&stack.notifications("c-happy").await?, &shipped),
        ["payment_received", "shipped"]
    );
    assert_eq!(
        kinds(&stack.notifications("c-oos").await?, &out_of_stock),
        ["out_of_stock"]
    );
    assert_eq!(
        kinds(&stack.notifications("c-declined").await?, &declined),
        ["payment_declined"]
    );
    assert_eq!(
        kinds(&stack.notifications("c-aq").await?, &unshippable),
        ["payment_received", "shipping_failed"]
    );

    stack.stop().await
}
