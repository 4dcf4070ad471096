//! Failures that must never stall a partition or strand an order: a flaky
//! payment token retried through the tiers while other orders go on, a
//! provider unreachable until the step's deadline, a refund the provider
//! refuses, poison outbox rows, and the upkeep of inbox and idempotency keys.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use orderflow_api::SagaStats;
use orderflow_envelope::{CloudEventHeaders, Codec, Event, HttpSchemaRegistry, NotificationSent};
use orderflow_runtime::sqlx::{self, Row};
use orderflow_testkit::metrics::scrape;
use orderflow_testkit::{order_body, Options, Stack};
use rdkafka::message::{Headers, Message};

/// The value of a counter (summed over its series) on a service's `/metrics`.
async fn metric(stack: &Stack, service: &str, name: &str, labels: &str) -> Result<f64> {
    Ok(scrape(&stack.http, &stack.ops[service])
        .await?
        .sum(name, labels))
}

/// How many steps of payment passed their deadline.
async fn deadlines_passed(stack: &Stack) -> Result<f64> {
    metric(
        stack,
        "payment",
        "orderflow_step_deadlines_passed_total",
        "",
    )
    .await
}

async fn nothing_dead_lettered(stack: &Stack) -> Result<()> {
    for service in orderflow_runtime::topics::CONSUMING_SERVICES {
        let topic = orderflow_runtime::topics::dead_letter_topic(service);
        let parked = stack.kafka().read_all(&topic).await?;
        assert!(
            parked.is_empty(),
            "{service} dead-lettered {} event(s)",
            parked.len()
        );
    }
    Ok(())
}

async fn pool(stack: &Stack, service: &str) -> Result<sqlx::AnyPool> {
    sqlx::any::install_default_drivers();
    Ok(sqlx::AnyPool::connect(&stack.databases[service]).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flaky_payments_wait_in_the_retry_tiers_without_slowing_other_orders() -> Result<()> {
    // Production's fast tiers: 1 s, 4 s, 9 s. Once the 200 others are done
    // only the ten flaky orders call the provider, all of them failing: the
    // breaker would rightly open and send them on to the 1 min tier. This test
    // is about the tiers, so the breaker never judges here (the breaker has
    // its own tests in the runtime).
    let stack = Stack::start_with(Options {
        retry_backoff_ms: vec![1_000, 4_000, 9_000],
        retry_slow_tiers_ms: vec![60_000],
        step_deadline_ms: 600_000,
        breaker_minimum_calls: 1_000_000,
        ..Default::default()
    })
    .await?;
    let body = |i: usize, token: &str| {
        order_body(
            &format!("c-flaky-{}", i % 20),
            &format!("SKU-{:03}", i % 10 + 1),
            1,
            token,
            "DE",
        )
    };
    // Without flaky orders.
    let alone: Vec<_> = (0..200).map(|i| body(i, "tok_visa")).collect();
    let ids = stack.place_all(&alone, 64).await?;
    let baseline = SagaStats::of(
        &stack
            .wait_all_terminal(&ids, Duration::from_secs(60))
            .await?,
    );
    // The same with ten flaky orders among them.
    let mut mixed = Vec::new();
    for i in 0..210 {
        mixed.push(if i % 21 == 10 {
            body(i, "tok_flaky")
        } else {
            body(i, "tok_visa")
        });
    }
    let ids = stack.place_all(&mixed, 64).await?;
    let is_flaky = |i: usize| i % 21 == 10;
    let normal: Vec<String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| !is_flaky(*i))
        .map(|(_, id)| id.clone())
        .collect();
    let flaky: Vec<String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| is_flaky(*i))
        .map(|(_, id)| id.clone())
        .collect();
    let with_flaky = SagaStats::of(
        &stack
            .wait_all_terminal(&normal, Duration::from_secs(60))
            .await?,
    );
    println!("200 orders alone:\n{baseline}\nthe same 200 beside 10 flaky ones:\n{with_flaky}");
    assert_eq!(with_flaky.outcomes.get("SHIPPED"), Some(&200));
    assert!(
        with_flaky.p99_ms <= 3 * baseline.p99_ms.max(1),
        "flaky orders slowed the others: p99 {} ms against {} ms alone",
        with_flaky.p99_ms,
        baseline.p99_ms
    );
    let flaky = stack
        .wait_all_terminal(&flaky, Duration::from_secs(90))
        .await?;
    let stats = SagaStats::of(&flaky);
    println!("the 10 flaky orders:\n{stats}");
    assert_eq!(stats.outcomes.get("SHIPPED"), Some(&10), "{stats}");
    for order in &flaky {
        let one = SagaStats::of(std::slice::from_ref(order));
        assert!(
            one.max_ms >= 14_000,
            "order {} shipped after {} ms, before its three retries (1 + 4 + 9 s)",
            order.order_id,
            one.max_ms
        );
        let p = stack.payment(&order.order_id).await?.context("payment")?;
        assert_eq!((p.status.as_str(), p.provider_charges), ("CHARGED", 1));
    }
    stack.wait_idle().await?;
    nothing_dead_lettered(&stack).await?;
    for tier in ["1s", "4s", "9s"] {
        let n = metric(
            &stack,
            "payment",
            "orderflow_handler_retries_total",
            &format!("tier=\"{tier}\""),
        )
        .await?;
        assert_eq!(
            n,
            10.0,
            "retries through the {tier} tier; payment's retry series:\n{}",
            scrape(&stack.http, &stack.ops["payment"])
                .await?
                .lines("orderflow_handler_retries_total")
        );
    }
    stack.stop().await
}

/// The provider charged the card, but its answer never came back, on
/// every attempt until the step's deadline. The order must not be cancelled
/// with the customer charged: before the saga decides, payment asks the
/// provider what happened under the charge's idempotency key, learns that
/// it charged, and the order ships with its one charge.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_charge_whose_answer_was_lost_until_the_deadline_ships_with_one_charge() -> Result<()> {
    let stack = Stack::start_with(short_deadline()).await?;
    let before = stack.stock("SKU-006").await?;
    let id = stack
        .place(&order_body(
            "c-unanswered",
            "SKU-006",
            2,
            "tok_chargeUnanswered",
            "DE",
        ))
        .await?;
    let order = stack.wait_terminal(&id).await?;
    stack.wait_idle().await?;
    assert_eq!(
        (order.status.as_str(), order.reason.as_deref()),
        ("SHIPPED", None),
        "{:?}",
        order.history
    );
    let p = stack.payment(&id).await?.context("payment")?;
    assert_eq!(
        (p.status.as_str(), p.provider_charges, p.provider_refunds),
        ("CHARGED", 1, 0),
        "charged once, never refunded"
    );
    let after = stack.stock("SKU-006").await?;
    assert_eq!(
        (after.available, after.reserved),
        (before.available - 2, 0),
        "the goods left"
    );
    assert_eq!(
        stack.notification_kinds("c-unanswered").await?,
        ["payment_received", "shipped"]
    );
    // At least once: on a slow machine the question itself may time out
    // and be asked again from the last tier.
    assert!(
        deadlines_passed(&stack).await? >= 1.0,
        "the deadline was reached"
    );
    nothing_dead_lettered(&stack).await?;
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_provider_cancels_the_order_at_the_deadline_and_gives_the_stock_back(
) -> Result<()> {
    let stack = Stack::start_with(short_deadline()).await?;
    let before = stack.stock("SKU-005").await?;
    let id = stack
        .place(&order_body(
            "c-unavailable",
            "SKU-005",
            3,
            "tok_unavailable",
            "DE",
        ))
        .await?;
    let order = stack.wait_terminal(&id).await?;
    assert_eq!(
        (order.status.as_str(), order.reason.as_deref()),
        ("CANCELLED", Some("PAYMENT_UNAVAILABLE")),
        "{:?}",
        order.history
    );
    stack.wait_idle().await?;
    let after = stack.stock("SKU-005").await?;
    assert_eq!(
        (after.available, after.reserved),
        (before.available, 0),
        "stock back where it was"
    );
    let p = stack.payment(&id).await?.context("payment")?;
    assert_eq!(
        (p.status.as_str(), p.provider_charges, p.provider_refunds),
        ("FAILED", 0, 0),
        "never charged"
    );
    let notifications = stack.notifications("c-unavailable").await?;
    assert_eq!(
        notifications
            .iter()
            .map(|n| n.kind.as_str())
            .collect::<Vec<_>>(),
        vec!["payment_unavailable"],
        "exactly one notification"
    );
    assert_eq!(deadlines_passed(&stack).await?, 1.0);
    nothing_dead_lettered(&stack).await?;
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_the_provider_refuses_leaves_the_order_for_an_operator() -> Result<()> {
    let stack = Stack::start().await?;
    let id = stack
        .place(&order_body(
            "c-refund",
            "SKU-006",
            1,
            "tok_refundDeclined",
            "AQ",
        ))
        .await?;
    let order = stack.wait_terminal(&id).await?;
    assert_eq!(
        (order.status.as_str(), order.reason.as_deref()),
        ("REFUND_PENDING", None),
        "{:?}",
        order.history
    );
    stack.wait_idle().await?;
    let p = stack.payment(&id).await?.context("payment")?;
    assert_eq!(
        (p.status.as_str(), p.provider_charges, p.provider_refunds),
        ("REFUND_FAILED", 1, 0)
    );
    let stock = stack.stock("SKU-006").await?;
    assert_eq!(
        (stock.available, stock.reserved),
        (100, 0),
        "the stock is back"
    );
    // The gauge behind the alert (measured every 5 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric(&stack, "order", "orderflow_orders_refund_pending", "").await? != 1.0 {
        assert!(
            Instant::now() < deadline,
            "orderflow_orders_refund_pending never showed the order"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    nothing_dead_lettered(&stack).await?;
    stack.stop().await
}

/// The charge's answer is lost, and when the step's deadline comes the
/// provider cannot be reached at all: nothing can say whether the customer
/// was charged, so nothing is decided. The order waits (in the last retry
/// tier) until the provider answers again, then ships with its one charge.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deadline_in_a_provider_outage_decides_nothing_until_it_answers() -> Result<()> {
    let stack = Stack::start_with(Options {
        breaker_minimum_calls: 1_000,
        ..short_deadline()
    })
    .await?;
    let id = stack
        .place(&order_body(
            "c-outage",
            "SKU-008",
            1,
            "tok_chargeUnanswered",
            "DE",
        ))
        .await?;
    // Charged by the first call; then the provider goes down.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stack
        .payment(&id)
        .await?
        .is_none_or(|p| p.provider_charges == 0)
    {
        anyhow::ensure!(Instant::now() < deadline, "never charged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    set_sandbox(&stack, 1.0).await?;
    // Well past the step's deadline: nothing decided.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let order = stack.order(&id).await?;
    assert!(
        !["SHIPPED", "CANCELLED", "REFUND_PENDING"].contains(&order.status.as_str()),
        "decided without knowing: {:?}",
        order
    );
    let p = stack.payment(&id).await?.context("payment")?;
    assert_eq!((p.status.as_str(), p.provider_charges), ("PENDING", 1));
    assert!(
        deadlines_passed(&stack).await? >= 1.0,
        "the deadline was reached"
    );
    set_sandbox(&stack, 0.0).await?;
    let order = stack.wait_terminal(&id).await?;
    stack.wait_idle().await?;
    assert_eq!(order.status, "SHIPPED", "{:?}", order.history);
    let p = stack.payment(&id).await?.context("payment")?;
    assert_eq!(
        (p.status.as_str(), p.provider_charges, p.provider_refunds),
        ("CHARGED", 1, 0)
    );
    nothing_dead_lettered(&stack).await?;
    stack.stop().await
}

/// Short retry tiers, a 2-s step deadline and a 200-ms provider timeout:
/// the deadline tests' stack reaches its deadline in seconds.
fn short_deadline() -> Options {
    Options {
        retry_backoff_ms: vec![100, 200],
        retry_slow_tiers_ms: vec![400],
        step_deadline_ms: 2_000,
        provider_timeout_ms: 200,
        ..Default::default()
    }
}

/// Sets the sandbox provider's injected failure rate (no added latency).
async fn set_sandbox(stack: &Stack, failure_rate: f64) -> Result<()> {
    let response = stack
        .http
        .put(format!("{}/v1/sandbox", stack.payments[0]))
        .json(&serde_json::json!({"latency_ms": 0, "failure_rate": failure_rate}))
        .send()
        .await?;
    anyhow::ensure!(response.status() == 200, "sandbox: {}", response.status());
    Ok(())
}

/// The provider made the refund, but its answer never came back, on every
/// attempt until the step's deadline. The order must not wait for an
/// operator to refund by hand what was refunded: payment asks the provider
/// under the refund's idempotency key, learns it was made, and the order
/// ends cancelled with its charge refunded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_whose_answer_was_lost_until_the_deadline_ends_refunded() -> Result<()> {
    let stack = Stack::start_with(short_deadline()).await?;
    let id = stack
        .place(&order_body(
            "c-refund-unanswered",
            "SKU-007",
            1,
            "tok_refundUnanswered",
            "AQ",
        ))
        .await?;
    let order = stack.wait_terminal(&id).await?;
    stack.wait_idle().await?;
    assert_eq!(
        (order.status.as_str(), order.reason.as_deref()),
        ("CANCELLED", Some("SHIPPING_FAILED")),
        "{:?}",
        order.history
    );
    let p = stack.payment(&id).await?.context("payment")?;
    assert_eq!(
        (p.status.as_str(), p.provider_charges, p.provider_refunds),
        ("REFUNDED", 1, 1),
        "charged once, refunded once"
    );
    let stock = stack.stock("SKU-007").await?;
    assert_eq!((stock.available, stock.reserved), (100, 0), "stock back");
    assert_eq!(
        stack.notification_kinds("c-refund-unanswered").await?,
        ["payment_received", "shipping_failed"]
    );
    // At least once: on a slow machine the question itself may time out
    // and be asked again from the last tier.
    assert!(
        deadlines_passed(&stack).await? >= 1.0,
        "the deadline was reached"
    );
    nothing_dead_lettered(&stack).await?;
    stack.stop().await
}

/// A refund the provider never answers fails at the step's deadline the
/// same way as a refused one: REFUND_PENDING for an operator, the stock
/// back, one charge and no refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_unreachable_until_the_deadline_leaves_the_order_for_an_operator() -> Result<()> {
    let stack = Stack::start_with(short_deadline()).await?;
    let id = stack
        .place(&order_body(
            "c-refund-down",
            "SKU-006",
            1,
            "tok_refundUnavailable",
            "AQ",
        ))
        .await?;
    let order = stack.wait_terminal(&id).await?;
    assert_eq!(
        (order.status.as_str(), order.reason.as_deref()),
        ("REFUND_PENDING", None),
        "{:?}",
        order.history
    );
    stack.wait_idle().await?;
    let p = stack.payment(&id).await?.context("payment")?;
    assert_eq!(
        (p.status.as_str(), p.provider_charges, p.provider_refunds),
        ("REFUND_FAILED", 1, 0)
    );
    assert!(
        p.reason
            .as_deref()
            .is_some_and(|r| r.contains("could not be reached")),
        "{:?}",
        p.reason
    );
    let stock = stack.stock("SKU-006").await?;
    assert_eq!((stock.available, stock.reserved), (100, 0));
    assert_eq!(deadlines_passed(&stack).await?, 1.0);
    nothing_dead_lettered(&stack).await?;
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_outbox_rows_are_parked_and_the_rows_behind_them_are_published() -> Result<()> {
    let stack = Stack::start_with(Options {
        outbox_max_attempts: 2,
        ..Default::default()
    })
    .await?;
    let db = pool(&stack, "order").await?;
    // A topic this service may not write to.
    stack.cluster().topic_error(
        "forbidden",
        rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
    )?;
    // 600 rows no broker takes (more than a relay pass), the oldest in the outbox.
    let headers = serde_json::to_string(&Vec::<(String, String)>::new())?;
    for i in 0..600 {
        sqlx::query(
            "INSERT INTO orderflow_outbox (id, topic, message_key, headers, payload, created_at, lease_until)
             VALUES ($1, $2, $3, $4, $5, $6, 0)",
        )
        .bind(format!("00000000-0000-7000-8000-{i:012}"))
        .bind("forbidden")
        .bind("poison")
        .bind(&headers)
        .bind(vec![0u8; 16])
        .bind(orderflow_runtime::now_millis())
        .execute(&db)
        .await?;
    }
    // A good row behind them, as a crashed writer would have left it.
    let codec = Codec::new(std::sync::Arc::new(HttpSchemaRegistry::new(
        &stack.registry,
    )));
    let event = Event::NotificationSent(NotificationSent {
        order_id: "o-behind".into(),
        customer_id: "c-behind".into(),
        notification_id: "ntf-behind".into(),
        kind: "shipped".into(),
        channel: "log".into(),
    });
    let envelope = codec
        .envelope(
            &event,
            CloudEventHeaders::new("notification", event.event_type().ce_type(), "o-behind"),
        )
        .await?;
    let pairs: Vec<(&str, String)> = envelope.headers.to_pairs();
    sqlx::query(
        "INSERT INTO orderflow_outbox (id, topic, message_key, headers, payload, created_at, lease_until)
         VALUES ($1, $2, $3, $4, $5, $6, 0)",
    )
    .bind(&envelope.headers.id)
    .bind(envelope.topic)
    .bind(&envelope.key)
    .bind(serde_json::to_string(&pairs)?)
    .bind(envelope.payload.clone())
    .bind(orderflow_runtime::now_millis())
    .execute(&db)
    .await?;
    // A new order goes through meanwhile.
    let id = stack
        .place(&order_body("c-outbox", "SKU-007", 1, "tok_visa", "DE"))
        .await?;
    assert_eq!(stack.wait_terminal(&id).await?.status, "SHIPPED");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let parked: i64 = sqlx::query("SELECT COUNT(*) AS n FROM orderflow_outbox_parked")
            .fetch_one(&db)
            .await?
            .try_get("n")?;
        let published = stack
            .kafka()
            .read_all("notifications")
            .await?
            .iter()
            .any(|m| {
                m.headers().is_some_and(|h| {
                    h.iter().any(|h| {
                        h.key == "ce_id" && h.value == Some(envelope.headers.id.as_bytes())
                    })
                })
            });
        if parked == 600 && published {
            break;
        }
        if Instant::now() > deadline {
            let row = sqlx::query("SELECT COUNT(*) AS n, MAX(attempts) AS a, MIN(lease_until) AS l, MAX(last_error) AS e FROM orderflow_outbox")
                .fetch_one(&db)
                .await?;
            let (n, a, l, e): (i64, Option<i64>, Option<i64>, Option<String>) = (
                row.try_get("n")?,
                row.try_get("a")?,
                row.try_get("l")?,
                row.try_get("e")?,
            );
            panic!("after 60 s: {parked} of 600 parked, the row behind them published: {published}; outbox: {n} rows, attempts {a:?}, lease {:?} ms from now, error {e:?}",
                l.map(|l| l - orderflow_runtime::now_millis()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let left: i64 = sqlx::query("SELECT COUNT(*) AS n FROM orderflow_outbox WHERE topic = $1")
        .bind("forbidden")
        .fetch_one(&db)
        .await?
        .try_get("n")?;
    assert_eq!(left, 0, "no poison row left in the outbox");
    let error: String = sqlx::query("SELECT error FROM orderflow_outbox_parked LIMIT 1")
        .fetch_one(&db)
        .await?
        .try_get("error")?;
    assert!(!error.is_empty(), "a parked row keeps its error");
    assert_eq!(
        metric(&stack, "order", "orderflow_outbox_parked_total", "").await?,
        600.0
    );
    db.close().await;
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn old_inbox_rows_are_pruned_and_recent_ones_kept() -> Result<()> {
    let stack = Stack::start_with(Options {
        inbox_retention_ms: 24 * 3_600_000,
        ..Default::default()
    })
    .await?;
    let db = pool(&stack, "inventory").await?;
    let now = orderflow_runtime::now_millis();
    let rows = [("old-1", 3), ("old-2", 2), ("recent-1", 0), ("recent-2", 0)];
    for (id, days) in rows {
        sqlx::query("INSERT INTO orderflow_inbox (consumer, event_id, event_type, received_at) VALUES ($1, $2, $3, $4)")
            .bind("orderflow-inventory")
            .bind(id)
            .bind("OrderCreated")
            .bind(now - days * 24 * 3_600_000 - 60_000)
            .execute(&db)
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let left: BTreeMap<String, i64> = loop {
        let left: BTreeMap<String, i64> = sqlx::query("SELECT event_id, received_at FROM orderflow_inbox WHERE event_id LIKE $1 OR event_id LIKE $2")
            .bind("old-%")
            .bind("recent-%")
            .fetch_all(&db)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("event_id")?, r.try_get("received_at")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        if !left.keys().any(|k: &String| k.starts_with("old")) || Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        left.keys().cloned().collect::<Vec<_>>(),
        vec!["recent-1", "recent-2"],
        "old rows pruned, recent ones kept"
    );
    db.close().await;
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_idempotency_key_creates_a_new_order() -> Result<()> {
    let stack = Stack::start_with(Options {
        idempotency_key_ttl_ms: 1_500,
        ..Default::default()
    })
    .await?;
    let body = order_body("c-key", "SKU-008", 1, "tok_visa", "DE");
    let first: serde_json::Value = stack.post_order(&body, Some("key-1")).await?.json().await?;
    let again: serde_json::Value = stack.post_order(&body, Some("key-1")).await?.json().await?;
    assert_eq!(
        first["order_id"], again["order_id"],
        "a replay within the day is the same order"
    );
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let response = stack.post_order(&body, Some("key-1")).await?;
    assert_eq!(response.status(), 202);
    let later: serde_json::Value = response.json().await?;
    assert_ne!(
        first["order_id"], later["order_id"],
        "the expired key made a new order"
    );
    for order in [&first, &later] {
        let id = order["order_id"].as_str().context("order_id")?;
        assert_eq!(stack.wait_terminal(id).await?.status, "SHIPPED");
    }
    stack.wait_idle().await?;
    assert_eq!(
        stack.notifications("c-key").await?.len(),
        4,
        "two orders, two notifications each"
    );
    stack.stop().await
}

/// The payment provider goes down: charges fail (each retried through the
/// tiers, never in the partition), the breaker opens and refuses calls at
/// once; the provider comes back, a trial call succeeds, the breaker closes,
/// and every order ships with exactly one charge.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_breaker_opens_in_an_outage_and_closes_after_it() -> Result<()> {
    let stack = Stack::start_with(Options {
        retry_backoff_ms: vec![200, 400],
        retry_slow_tiers_ms: vec![800],
        step_deadline_ms: 300_000,
        provider_timeout_ms: 200,
        breaker_minimum_calls: 5,
        breaker_open_ms: 1_000,
        ..Default::default()
    })
    .await?;
    let sandbox = |failure_rate: f64| set_sandbox(&stack, failure_rate);
    let breaker = || {
        metric(
            &stack,
            "payment",
            "orderflow_circuit_breaker_state",
            "payment-provider",
        )
    };
    assert_eq!(breaker().await?, 0.0, "closed at first");
    sandbox(1.0).await?;
    let bodies: Vec<_> = (0..10)
        .map(|i| {
            order_body(
                &format!("c-outage-{i}"),
                &format!("SKU-{:03}", i + 1),
                1,
                "tok_visa",
                "DE",
            )
        })
        .collect();
    let ids = stack.place_all(&bodies, 10).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while breaker().await? != 2.0 {
        anyhow::ensure!(Instant::now() < deadline, "the breaker never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Open: the orders wait (reserved, unpaid) in the retry tiers.
    for id in &ids {
        let order = stack.order(id).await?;
        assert!(
            matches!(order.status.as_str(), "PENDING" | "RESERVED"),
            "{id} is {} during the outage",
            order.status
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let retried = metric(&stack, "payment", "orderflow_handler_retries_total", "").await?;
    assert!(
        retried >= 10.0,
        "each order's charge retried at least once: {retried}"
    );
    sandbox(0.0).await?;
    let done = stack
        .wait_all_terminal(&ids, Duration::from_secs(60))
        .await?;
    let stats = SagaStats::of(&done);
    assert_eq!(stats.outcomes.get("SHIPPED"), Some(&10), "{stats}");
    assert_eq!(
        breaker().await?,
        0.0,
        "closed again once a trial call succeeded"
    );
    for id in &ids {
        let p = stack.payment(id).await?.context("payment")?;
        assert_eq!(
            (p.status.as_str(), p.provider_charges),
            ("CHARGED", 1),
            "{id}"
        );
    }
    stack.wait_idle().await?;
    nothing_dead_lettered(&stack).await?;
    stack.stop().await
}
