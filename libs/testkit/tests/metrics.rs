//! What the services report on `/metrics` after the four outcomes, value by value.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use orderflow_testkit::metrics::{scrape, Scrape};
use orderflow_testkit::{check_four_outcomes, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_metrics_count_what_happened() -> Result<()> {
    let stack = Stack::start().await?;
    check_four_outcomes(&stack, stack.wait_idle()).await?;
    let read = |service: &'static str| {
        let base = stack.ops[service].clone();
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

/// The families `/metrics` of `base` declares, as the OpenMetrics parser of
/// Prometheus' Python client reads them (tools/scripts/openmetrics-check.py,
/// Debian's python3-prometheus-client): name → (type, help). Fails unless
/// the endpoint says it serves OpenMetrics and the body parses as such.
async fn openmetrics_families(
    http: &reqwest::Client,
    base: &str,
) -> Result<std::collections::BTreeMap<String, (String, String)>> {
    use std::io::Write;
    let response = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?;
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8",
        "{base}: the Content-Type names the format the body is in"
    );
    let body = response.bytes().await?;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tools/scripts/openmetrics-check.py"
    );
    let mut parser = std::process::Command::new(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| {
            format!("running {script} (needs Debian's python3-prometheus-client: make deps)")
        })?;
    parser.stdin.take().context("stdin")?.write_all(&body)?;
    let out = parser.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{base}/metrics is not valid OpenMetrics: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&body)
        );
    }
    let families: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(families
        .as_object()
        .context("families")?
        .iter()
        .map(|(name, f)| {
            let text = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (name.clone(), (text("type"), text("help")))
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metrics_endpoint_is_valid_openmetrics_with_types_and_help() -> Result<()> {
    let stack = Stack::start().await?;
    check_four_outcomes(&stack, stack.wait_idle()).await?;
    let runtime = [
        ("orderflow_events_consumed", "counter"),
        ("orderflow_events_produced", "counter"),
        ("orderflow_handler_duration_seconds", "histogram"),
        ("orderflow_outbox_backlog", "gauge"),
        ("orderflow_consumer_in_flight", "gauge"),
    ];
    let http = [
        ("orderflow_http_requests", "counter"),
        ("orderflow_http_request_duration_seconds", "histogram"),
    ];
    let expected: [(&str, Vec<(&str, &str)>); 6] = [
        ("gateway", http.to_vec()),
        (
            "order",
            [
                runtime.as_slice(),
                &http,
                &[
                    ("orderflow_orders_placed", "counter"),
                    ("orderflow_saga_outcomes", "counter"),
                    ("orderflow_saga_duration_seconds", "histogram"),
                    ("orderflow_sagas_in_flight", "gauge"),
                ],
            ]
            .concat(),
        ),
        ("inventory", [runtime.as_slice(), &http].concat()),
        (
            "payment",
            [
                runtime.as_slice(),
                &[("orderflow_circuit_breaker_state", "gauge")],
            ]
            .concat(),
        ),
        ("shipping", runtime.to_vec()),
        (
            "notification",
            [
                runtime.as_slice(),
                &[("orderflow_circuit_breaker_state", "gauge")],
            ]
            .concat(),
        ),
    ];
    for (service, wanted) in expected {
        let families = openmetrics_families(&stack.http, &stack.ops[service]).await?;
        for (name, (kind, help)) in &families {
            assert!(
                !help.trim().is_empty(),
                "{service}: {name} ({kind}) has no HELP"
            );
            assert!(
                ["counter", "gauge", "histogram", "info"].contains(&kind.as_str()),
                "{service}: {name} has type {kind}"
            );
        }
        for (name, kind) in wanted {
            assert_eq!(
                families.get(name).map(|(k, _)| k.as_str()),
                Some(kind),
                "{service}: {name} should be a {kind}; it declares {families:#?}"
            );
        }
        println!("{service}: {} families, valid OpenMetrics", families.len());
    }
    stack.stop().await
}

/// Every metric an alert or recording rule reads is one some process of the
/// stack exports: a metric renamed in the code (or a rule with a typo) would
/// leave its alert silent for good, which no promtool test of the rules
/// alone can see.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metric_the_alert_rules_read_is_exported() -> Result<()> {
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/observability/rules.yaml"
    ))?;
    // The metric names in the rules' expressions (descriptions and runbooks
    // name tables too); recording rules' names have colons and are not exported.
    let mut read: Vec<&str> = expressions(&rules)
        .iter()
        .flat_map(|e| e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')))
        .filter(|token| token.starts_with("orderflow_") && !token.contains(':'))
        .collect();
    read.sort_unstable();
    read.dedup();
    assert!(read.len() >= 10, "the rules read {read:?}");
    let stack = Stack::start().await?;
    let mut scrapes = Vec::new();
    for base in stack.ops.values() {
        scrapes.push(scrape(&stack.http, base).await?);
    }
    let missing: Vec<&str> = read
        .iter()
        .copied()
        .filter(|name| !scrapes.iter().any(|s| s.declares(name)))
        .collect();
    stack.stop().await?;
    assert!(
        missing.is_empty(),
        "the rules read metrics no process exports: {missing:?}"
    );
    Ok(())
}

/// The `expr:` values of a rules file: the rest of the line, or the indented
/// lines of a block after `expr: |`.
fn expressions(rules: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut block: Option<usize> = None;
    for line in rules.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(at) = block {
            if indent > at || line.trim().is_empty() {
                found.push(line);
                continue;
            }
            block = None;
        }
        if let Some(rest) = line.trim_start().strip_prefix("expr:") {
            match rest.trim() {
                "|" | ">" | "|-" | ">-" => block = Some(indent),
                value => found.push(value),
            }
        }
    }
    found
}
