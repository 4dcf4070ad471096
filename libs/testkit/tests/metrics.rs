//! What the services report on `/metrics` after the four outcomes, value by value.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use orderflow_testkit::metrics::{scrape, Scrape};
use orderflow_testkit::{check_four_outcomes, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_metrics_count_what_happened() -> Result<()> {
    let stack = Stack::start().await?;
    check_four_outcomes(&stack, stack.wait_idle()).await?;
    let read = |service: &'static str| {
        let base = stack.urls[service].clone();
        let http = stack.http.clone();
        async move { scrape(&http, &base).await }
    };
    // Gauges measured in the background (every second) catch up with what is.
    let settled = |service: &'static str, name: &'static str, expected: f64| {
        let read = &read;
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let metrics: Scrape = read(service).await?;
                let value = metrics.sum(name, "");
                if value == expected {
                    return Ok::<(), anyhow::Error>(());
                }
                if Instant::now() > deadline {
                    bail!("{service}: {name} is {value}, expected {expected}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };

    let order = read("order").await?;
    assert_eq!(order.sum("orderflow_orders_placed_total", ""), 4.0);
    for outcome in [
        "shipped",
        "out_of_stock",
        "payment_declined",
        "shipping_failed",
    ] {
        let labels = [("outcome", outcome)];
        assert_eq!(
            order.sum_where("orderflow_saga_outcomes_total", &labels),
            1.0,
            "{outcome}"
        );
        assert_eq!(
            order.sum_where("orderflow_saga_duration_seconds_count", &labels),
            1.0,
            "{outcome}"
        );
    }
    assert_eq!(order.sum("orderflow_saga_outcomes_total", ""), 4.0);
    settled("order", "orderflow_sagas_in_flight", 0.0).await?;

    let inventory = read("inventory").await?;
    let consumed = |event_type: &str, outcome: &str| {
        inventory.sum_where(
            "orderflow_events_consumed_total",
            &[
                ("topic", "orders"),
                ("event_type", event_type),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(consumed("OrderCreated", "handled"), 4.0);
    assert_eq!(consumed("OrderCreated", "duplicate"), 0.0);
    // Completed and cancelled orders are not inventory's business.
    assert_eq!(consumed("OrderCompleted", "skipped"), 1.0);
    assert_eq!(consumed("OrderCancelled", "skipped"), 3.0);
    for (event_type, n) in [
        ("InventoryReserved", 3.0),
        ("InventoryUnavailable", 1.0),
        ("InventoryReleased", 2.0),
    ] {
        assert_eq!(
            inventory.sum_where(
                "orderflow_events_produced_total",
                &[("topic", "inventory"), ("event_type", event_type)]
            ),
            n,
            "{event_type}"
        );
    }
    assert_eq!(inventory.sum("orderflow_dead_letters_total", ""), 0.0);
    assert_eq!(inventory.sum("orderflow_handler_retries_total", ""), 0.0);
    settled("inventory", "orderflow_outbox_backlog", 0.0).await?;

    let payment = read("payment").await?;
    assert_eq!(
        payment.sum_where(
            "orderflow_circuit_breaker_state",
            &[("dependency", "payment-provider")]
        ),
        0.0
    );
    assert_eq!(
        payment.sum_where("orderflow_events_produced_total", &[("topic", "payments")]),
        4.0,
        "two charges, a decline and a refund"
    );

    let notification = read("notification").await?;
    assert_eq!(
        notification.sum_where(
            "orderflow_events_produced_total",
            &[("topic", "notifications")]
        ),
        6.0
    );

    let gateway = read("gateway").await?;
    let placed = [
        ("method", "POST"),
        ("route", "/v1/orders"),
        ("status", "202"),
    ];
    assert_eq!(
        gateway.sum_where("orderflow_http_requests_total", &placed),
        4.0
    );
    assert_eq!(
        gateway.sum_where("orderflow_http_requests_total", &[("route", "/v1/orders")]),
        4.0,
        "nothing but the four placements"
    );
    // Every request the histogram saw was counted, and the other way round.
    let reads = [("method", "GET"), ("route", "/v1/orders/{order_id}")];
    let read_count = gateway.sum_where("orderflow_http_requests_total", &reads);
    assert!(read_count >= 4.0, "the test read each order");
    assert_eq!(
        gateway.sum_where("orderflow_http_request_duration_seconds_count", &reads),
        read_count
    );
    stack.stop().await
}
