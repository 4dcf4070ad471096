//! The system tier: the services as separate OS processes on real Apache
//! Kafka (single-node KRaft) and PostgreSQL — scale-out, `kill -9` and a broker
//! restart in the middle of the load. Run by `make test` (which starts Kafka
//! and PostgreSQL and sets ORDERFLOW_SYSTEM_KAFKA and ORDERFLOW_TEST_DATABASE),
//! one test at a time since they share the broker's topics and groups.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use orderflow_api::{OrderView, SagaStats};
use orderflow_testkit::system::{ProcessStack, Prometheus, Replicas};
use orderflow_testkit::{chaos, checks};
use orderflow_testkit::{check_four_outcomes, order_body};
use serde_json::Value;

/// `n` orders spread over the ten demo SKUs, one unit each, card that succeeds.
fn orders(tag: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            order_body(
                &format!("c-{tag}-{}", i % 50),
                &format!("SKU-{:03}", i % 10 + 1),
                1,
                "tok_visa",
                "DE",
            )
        })
        .collect()
}

/// The demo catalogue's SKUs, each with `units` in stock at the start.
fn initial(units: i64) -> BTreeMap<String, i64> {
    (1..=10).map(|i| (format!("SKU-{i:03}"), units)).collect()
}

/// Every invariant of the saga over `done`, from `units` of each SKU.
async fn check_invariants(stack: &ProcessStack, units: i64, done: &[OrderView]) -> Result<()> {
    checks::check_invariants(stack, &initial(units), done, Some(&stack.databases)).await?;
    stack.audit_clean().await?;
    Ok(())
}

/// Orders not terminal yet, as the order service's database has them: what
/// a fault about to land finds in flight.
async fn orders_in_flight(stack: &ProcessStack) -> Result<i64> {
    use orderflow_runtime::sqlx::{self, Row};
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&stack.databases["order"]).await?;
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM orders WHERE status NOT IN ('SHIPPED', 'CANCELLED', 'REFUND_PENDING')",
    )
    .fetch_one(&pool)
    .await?
    .try_get("n")?;
    pool.close().await;
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_four_outcomes_on_kafka_and_postgres() -> Result<()> {
    let stack = ProcessStack::start(Replicas::one_each()).await?;
    let prometheus = Prometheus::start(&stack.scrape_targets()).await?;
    check_four_outcomes(&stack, stack.wait_idle()).await?;
    let audited = stack.audit_clean().await?;
    assert_eq!(audited["judged"], 4, "{audited}");
    // A real Prometheus scraping every process sees what happened.
    prometheus
        .wait_for("sum(orderflow_orders_placed_total)", 4.0)
        .await?;
    prometheus
        .wait_for("sum(orderflow_saga_outcomes_total)", 4.0)
        .await?;
    for outcome in [
        "shipped",
        "out_of_stock",
        "payment_declined",
        "shipping_failed",
    ] {
        prometheus
            .wait_for(
                &format!("sum(orderflow_saga_outcomes_total{{outcome=\"{outcome}\"}})"),
                1.0,
            )
            .await?;
    }
    prometheus
        .wait_for("count(up{job=~\"orderflow-.*\"} == 1)", 6.0)
        .await?;
    prometheus
        .wait_for("sum(orderflow_dead_letters_total) or vector(0)", 0.0)
        .await?;
    // It parsed each endpoint as the OpenMetrics it is: every family kept
    // its TYPE and HELP (counters under their family name, without _total).
    for (job, metric, kind) in [
        ("orderflow-order", "orderflow_orders_placed", "counter"),
        ("orderflow-order", "orderflow_saga_outcomes", "counter"),
        (
            "orderflow-order",
            "orderflow_saga_duration_seconds",
            "histogram",
        ),
        (
            "orderflow-inventory",
            "orderflow_events_consumed",
            "counter",
        ),
        ("orderflow-payment", "orderflow_events_produced", "counter"),
        (
            "orderflow-shipping",
            "orderflow_handler_duration_seconds",
            "histogram",
        ),
        ("orderflow-notification", "orderflow_consumer_lag", "gauge"),
        ("orderflow-gateway", "orderflow_http_requests", "counter"),
    ] {
        let metadata = prometheus.metadata(job, metric).await?;
        assert!(
            metadata.as_ref().is_some_and(|(t, help)| t == kind && !help.is_empty()),
            "Prometheus' metadata of {metric} from {job}: {metadata:?}, expected a {kind} with its HELP"
        );
    }
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scale_out_three_inventory_two_payment_under_2000_orders() -> Result<()> {
    let stack =
        ProcessStack::start(Replicas::one_each().with("inventory", 3).with("payment", 2)).await?;
    // 150 units of each SKU for 2,000 orders: 1,500 ship, 500 race and lose.
    for i in 1..=10 {
        stack.set_stock(&format!("SKU-{i:03}"), 150, 999).await?;
    }
    let started = Instant::now();
    let ids = stack.place_all(&orders("scale", 2000), 64).await?;
    let done = stack
        .wait_all_terminal(&ids, Duration::from_secs(300))
        .await?;
    let stats = SagaStats::of(&done);
    println!(
        "scale-out, 2000 orders placed in {:.1}s:\n{stats}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(stats.outcomes.get("SHIPPED"), Some(&1500), "{stats}");
    assert_eq!(
        stats.outcomes.get("CANCELLED(OUT_OF_STOCK)"),
        Some(&500),
        "{stats}"
    );
    stack.wait_idle().await?;
    check_invariants(&stack, 150, &done).await?;
    for replica in 0..3 {
        let log = stack.log_of("inventory", replica);
        assert!(
            log.contains("rebalance: partitions assigned"),
            "inventory#{replica} never got partitions:\n{log}"
        );
    }
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_in_the_middle_of_the_load() -> Result<()> {
    let stack = ProcessStack::start(Replicas::one_each()).await?;
    // A provider slow enough that payment dies with charges in flight.
    let sandbox = stack
        .http
        .put(format!("{}/v1/sandbox", stack.payments[0]))
        .json(&serde_json::json!({"latency_ms": 50, "failure_rate": 0.0}))
        .send()
        .await?;
    assert_eq!(sandbox.status(), 200);
    // Notification dies while orders are being placed (the gateway does not need it).
    let chaos = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stack.kill_9("notification", 0)?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        stack.restart("notification", 0).await
    };
    let bodies = orders("kill", 600);
    let (ids, restarted) = tokio::join!(stack.place_all(&bodies, 32), chaos);
    let (ids, ()) = (ids?, restarted?);
    // Inventory dies with the saga's backlog in flight: no offset commit, no
    // outbox flush. (While it is down the gateway refuses new orders: it checks
    // SKUs against the catalogue, and one replica is all there is here.) Then
    // payment, between charges and their records: the sandbox provider's
    // ledger is in its database, so a repeated call finds its charge.
    let in_flight = orders_in_flight(&stack).await?;
    stack.kill_9("inventory", 0)?;
    let killed = Instant::now();
    // The kill must hit work in progress, or it proves nothing.
    assert!(
        in_flight > 0,
        "every order was done before inventory was killed"
    );
    println!("inventory killed with {in_flight} orders in flight");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.restart("inventory", 0).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.kill_9("payment", 0)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.restart("payment", 0).await?;
    let done = stack
        .wait_all_terminal(&ids, Duration::from_secs(300))
        .await?;
    stack.wait_idle().await?;
    println!(
        "kill -9 of inventory and payment → every order terminal, consumers caught up: {:.1}s",
        killed.elapsed().as_secs_f64()
    );
    assert!(
        done.iter().all(|o| o.status == "SHIPPED"),
        "{}",
        SagaStats::of(&done)
    );
    check_invariants(&stack, 100, &done).await?;
    // No notification twice (or lost): two per order, payment received and shipped.
    let mut notifications = 0;
    for customer in 0..50 {
        notifications += stack
            .notifications(&format!("c-kill-{customer}"))
            .await?
            .len();
    }
    assert_eq!(notifications, 2 * done.len());
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_restart_in_the_middle_of_the_load() -> Result<()> {
    let stack = ProcessStack::start(Replicas::one_each()).await?;
    let first = stack.place_all(&orders("broker-a", 200), 32).await?;
    // The restart must hit sagas in progress, or it proves nothing.
    let in_flight = orders_in_flight(&stack).await?;
    assert!(
        in_flight > 0,
        "every order was done before the broker restarted"
    );
    println!("broker restarted with {in_flight} orders in flight");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/scripts/kafka.sh");
    let restarted = tokio::process::Command::new("bash")
        .arg(script)
        .arg("restart")
        .status()
        .await?;
    assert!(restarted.success(), "kafka.sh restart failed");
    // Orders placed right after the restart too: the outbox holds their events
    // until the producers reconnect.
    let second = stack.place_all(&orders("broker-b", 200), 32).await?;
    let ids: Vec<String> = first.into_iter().chain(second).collect();
    let done = stack
        .wait_all_terminal(&ids, Duration::from_secs(300))
        .await?;
    assert!(
        done.iter().all(|o| o.status == "SHIPPED"),
        "{}",
        SagaStats::of(&done)
    );
    stack.wait_idle().await?;
    check_invariants(&stack, 100, &done).await?;
    stack.stop().await
}

/// Two replicas of the order service share one PostgreSQL database. A
/// writer died with 5,000 events in its outbox (their leases ran out): both
/// relays claim rows at once, and each row is published exactly once; the
/// claim (`FOR UPDATE SKIP LOCKED` and a lease) is what keeps them apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_publish_each_outbox_row_once() -> Result<()> {
    use orderflow_runtime::sqlx::{self, Row};
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::message::{Headers, Message};

    const ROWS: usize = 5_000;
    // A topic of its own, new each run, which no consumer reads.
    let topic = format!("test.outbox-replicas-{}", uuid::Uuid::new_v4().simple());
    let stack = ProcessStack::start(Replicas::one_each().with("order", 2)).await?;
    let admin: AdminClient<_> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &stack.bootstrap)
        .create()?;
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await?;
    for result in created {
        if let Err((topic, e)) = result {
            anyhow::bail!("creating {topic}: {e}");
        }
    }
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&stack.databases["order"]).await?;
    let ids: Vec<String> = (0..ROWS)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    for chunk in ids.chunks(500) {
        let mut tx = db.begin().await?;
        for id in chunk {
            let headers = serde_json::to_string(&[("ce_id", id)])?;
            sqlx::query(
                "INSERT INTO orderflow_outbox (id, topic, message_key, headers, payload, created_at, lease_until)
                 VALUES ($1, $2, $3, $4, $5, $6, 0)",
            )
            .bind(id)
            .bind(&topic)
            .bind(format!("k-{}", &id[id.len() - 4..]))
            .bind(&headers)
            .bind(id.as_bytes().to_vec())
            .bind(orderflow_runtime::now_millis())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left: i64 = sqlx::query("SELECT COUNT(*) AS n FROM orderflow_outbox")
            .fetch_one(&db)
            .await?
            .try_get("n")?;
        if left == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{left} outbox rows left after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    db.close().await;
    let messages = stack.kafka().read_all(&topic).await?;
    let mut published: BTreeMap<String, usize> = BTreeMap::new();
    for m in &messages {
        let id = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "ce_id"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        assert_eq!(m.payload(), Some(id.as_bytes()), "the row's own value");
        *published.entry(id).or_default() += 1;
    }
    let twice: Vec<(&String, &usize)> = published.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} of {ROWS} rows published more than once, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    assert_eq!(published.len(), ROWS, "every row published");
    // Both relays took part.
    for replica in 0..2 {
        let metrics = orderflow_testkit::metrics::scrape(
            &stack.http,
            &format!("http://{}", stack.ops_addr("order", replica)?),
        )
        .await?;
        let n = metrics.sum_where("orderflow_events_produced_total", &[("topic", &topic)]);
        println!("order#{replica} published {n} of the {ROWS} rows");
        assert!(n > 0.0, "order#{replica} published none of the rows");
    }
    stack.stop().await
}

/// The chaos soak (see `orderflow_testkit::chaos`), two replicas of every
/// consumer: a short one here (about 1,000 orders, each fault once);
/// `make chaos` runs a long one (`ORDERS`, default 20,000, at `RATE`,
/// default 100/s) with this test alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_faults_nothing_is_lost_or_done_twice() -> Result<()> {
    let config = match std::env::var("CHAOS_ORDERS") {
        Ok(orders) => chaos::ChaosConfig::long(
            orders.parse()?,
            std::env::var("CHAOS_RATE").map_or(Ok(100.0), |r| r.parse())?,
        ),
        Err(_) => chaos::ChaosConfig::short(),
    };
    let mut replicas = Replicas::one_each();
    for service in orderflow_runtime::topics::CONSUMING_SERVICES {
        replicas = replicas.with(service, 2);
    }
    let stack = ProcessStack::start(replicas).await?;
    println!("chaos soak: {config:?}");
    let report = chaos::soak(&stack, &config).await?;
    println!("{}", report.table());
    stack.stop().await
}
