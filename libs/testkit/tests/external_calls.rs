//! External calls run with no transaction or database connection held: with
//! a slow payment provider, many charges are in flight at once, each one's
//! intent is already committed, and the service's HTTP side answers as usual.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use orderflow_testkit::metrics::scrape;
use orderflow_testkit::{order_body, Options, Stack};
use serde_json::json;

async fn calls_in_flight(stack: &Stack) -> Result<f64> {
    Ok(scrape(&stack.http, &stack.ops["payment"])
        .await?
        .sum("orderflow_external_calls_in_flight", "payment-provider"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_provider_holds_no_database_connection() -> Result<()> {
    let stack = Stack::start_with(Options {
        provider_timeout_ms: 10_000,
        ..Default::default()
    })
    .await?;
    let payment = stack.urls["payment"].clone();
    let settings = stack
        .http
        .put(format!("{payment}/v1/sandbox"))
        // Long enough that the first of the 50 calls, which may start a
        // second or two before the last on a busy machine, is still in
        // flight while the 50 reads run.
        .json(&json!({"latency_ms": 5000, "failure_rate": 0.0}))
        .send()
        .await?;
    assert_eq!(settings.status(), 200);
    let bodies: Vec<_> = (0..50)
        .map(|i| {
            order_body(
                &format!("c-slow-{i}"),
                &format!("SKU-{:03}", i % 10 + 1),
                1,
                "tok_visa",
                "DE",
            )
        })
        .collect();
    let ids = stack.place_all(&bodies, 50).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while calls_in_flight(&stack).await? < 50.0 {
        assert!(Instant::now() < deadline, "50 charges never ran at once");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While the provider sleeps on all 50: every intent is committed and
    // readable, and the payment service answers at once.
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for id in &ids {
        let asked = Instant::now();
        let p = stack
            .payment(id)
            .await?
            .context("the intent is committed")?;
        slowest = slowest.max(asked.elapsed());
        assert_eq!(p.status, "PENDING", "order {id}");
    }
    let still_in_flight = calls_in_flight(&stack).await?;
    println!("50 reads during 50 calls: {:?} in all, slowest {slowest:?}, {still_in_flight} calls still in flight", started.elapsed());
    assert!(
        still_in_flight >= 1.0,
        "the reads were answered while the calls ran"
    );
    assert!(
        slowest < Duration::from_millis(1_000),
        "a read waited {slowest:?}, as if behind a 5 s call"
    );
    let done = stack
        .wait_all_terminal(&ids, Duration::from_secs(60))
        .await?;
    assert!(done.iter().all(|o| o.status == "SHIPPED"));
    for id in &ids {
        assert_eq!(
            stack
                .payment(id)
                .await?
                .context("payment")?
                .provider_charges,
            1
        );
    }
    stack.stop().await
}
