//! What the services report on `/metrics` after the four outcomes.

use orderflow_testkit::{check_four_outcomes, Stack};

/// The value of one sample in a Prometheus text exposition.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(name_and_labels)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_metrics_count_what_happened() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    check_four_outcomes(&stack, stack.wait_idle()).await?;
    let scrape = |service: &str| {
        let url = format!("{}/metrics", stack.urls[service]);
        let http = stack.http.clone();
        async move {
            let response = http.get(url).send().await?.error_for_status()?;
            assert!(response.headers()["content-type"]
                .to_str()?
                .starts_with("text/plain"));
            anyhow::Ok(response.text().await?)
        }
    };

    let order = scrape("order").await?;
    assert_eq!(
        sample(&order, "orderflow_orders_placed_total"),
        Some(4.0),
        "{order}"
    );
    for outcome in [
        "shipped",
        "out_of_stock",
        "payment_declined",
        "shipping_failed",
    ] {
        let counter = format!("orderflow_saga_outcomes_total{{outcome=\"{outcome}\"}}");
        assert_eq!(sample(&order, &counter), Some(1.0), "{outcome}");
        let count = format!("orderflow_saga_duration_seconds_count{{outcome=\"{outcome}\"}}");
        assert_eq!(sample(&order, &count), Some(1.0), "{outcome}");
    }
    assert!(order.contains("orderflow_sagas_in_flight"), "{order}");

    let inventory = scrape("inventory").await?;
    let created = r#"orderflow_events_consumed_total{topic="orders",event_type="OrderCreated",outcome="handled"}"#;
    assert_eq!(sample(&inventory, created), Some(4.0), "{inventory}");
    assert!(inventory.contains(
        r#"orderflow_events_produced_total{topic="inventory",event_type="InventoryReserved"} 3"#
    ));
    assert!(
        inventory.contains("orderflow_outbox_backlog 0"),
        "{inventory}"
    );

    let payment = scrape("payment").await?;
    assert_eq!(
        sample(
            &payment,
            r#"orderflow_circuit_breaker_state{dependency="payment-provider"}"#
        ),
        Some(0.0)
    );

    let gateway = scrape("gateway").await?;
    let placed = r#"orderflow_http_requests_total{method="POST",route="/v1/orders",status="202"}"#;
    assert_eq!(sample(&gateway, placed), Some(4.0), "{gateway}");
    assert!(gateway.contains(r#"orderflow_http_request_duration_seconds_count{method="GET",route="/v1/orders/{order_id}"}"#));
    stack.stop().await
}
