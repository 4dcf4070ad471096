//! The consumer runtime at its edges, where an order could be stranded: an
//! order's parked head resumed after a crash while its next event arrives in
//! the same batch; retry copies this build no longer handles or reads from a
//! tier no longer configured; keys the database refuses to store. Each test
//! asserts what a user sees: every event of the order applied, nothing left
//! waiting, the partition's committed offset past all of it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use orderflow_envelope::{Event, OrderCancelled};
use orderflow_runtime::RuntimeConfig;
use orderflow_testkit::harness::Harness;
use rand::distr::{Alphanumeric, SampleString};
use rdkafka::message::Message;

mod lanes;
use lanes::*;

/// A parked order whose head was left unhandled by a crash is resumed from
/// the database; an event of the same order that arrives from Kafka at the
/// same moment and is applied in the same transaction right after it must see
/// the order no longer parked, and be applied — not stored behind a head
/// that no longer exists, where nothing would ever find it. The two share a
/// batch on PostgreSQL (the resume claims the head on a connection of its
/// own while the writer is held); on SQLite the claim waits for the one
/// writer, so there the test checks the plain resume of a stalled head.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_beside_its_orders_resumed_head_in_one_batch_is_applied() -> Result<()> {
    let postgres = std::env::var_os("ORDERFLOW_TEST_DATABASE").is_some();
    let config = RuntimeConfig {
        database_writers: 1,
        ..base_config()
    };
    let harness = Harness::start(&SPEC, &[("orders", 3)], &config).await?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(Gate::default());
    let mut recorder = Recorder::new("a", &log, &Arc::default());
    recorder.gate = Some(("k-hold".into(), gate.clone()));
    let member = harness
        .member(&SPEC, Arc::new(recorder), harness.config(&config))
        .await?;
    // k-parked was parked with its event 2 at the head, stored in the
    // database, a minute ago: the handler of it stopped in between. (SQLite:
    // written before the writer is held, which would lock it out.)
    let head = written(&harness, &order("k-parked", 2)).await?;
    let heads = [&head];
    let stalled = || {
        park(
            &harness,
            "k-parked",
            &head.id,
            &heads,
            Duration::from_secs(60),
        )
    };
    if !postgres {
        stalled().await?;
    }
    // An order holds the only writer, so what comes next waits for the same
    // (next) transaction.
    harness.produce(&[order("k-hold", 0)]).await?;
    wait_until("the writer held", Duration::from_secs(30), || gate.began()).await?;
    if postgres {
        stalled().await?;
    }
    // The member's next look (every 5 s) finds it, claims it and hands it to
    // the held writer.
    wait_until("the stalled head found", Duration::from_secs(15), || {
        counter(&member.metrics, "orderflow_keys_waiting_for_retry", "") >= 1.0
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The order's next event arrives from Kafka and queues behind it.
    harness.produce(&[order("k-parked", 3)]).await?;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    gate.open();

    let both = wait_until(
        "both events of k-parked applied",
        Duration::from_secs(20),
        || handled(&log, "k-parked", 2) && handled(&log, "k-parked", 3),
    )
    .await;
    let parked = still_parked(&harness, "k-parked").await?;
    member.stop().await?;
    both?;
    assert_eq!(parked, (0, 0), "nothing of k-parked left waiting");
    Ok(())
}

/// Every replica looks for stalled heads; exactly one takes each. The head
/// here makes an external call that outlasts the replicas' look interval
/// (5 s), so without a claim the second replica would find it still stalled
/// and call again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_head_is_resumed_by_one_replica_and_its_call_made_once() -> Result<()> {
    let config = base_config();
    let harness = Harness::start(&SPEC, &[("orders", 3)], &config).await?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(Concurrency::default());
    let member = |name: &str| {
        let mut recorder = Recorder::new(name, &log, &calls);
        recorder.delay_ms = Some(6_000..6_001);
        Arc::new(recorder)
    };
    let a = harness
        .member(&SPEC, member("a"), harness.config(&config))
        .await?;
    let b = harness
        .member(&SPEC, member("b"), harness.config(&config))
        .await?;
    let head = written(&harness, &order("k-stalled", 4)).await?;
    park(
        &harness,
        "k-stalled",
        &head.id,
        &[&head],
        Duration::from_secs(60),
    )
    .await?;
    let resumed = wait_until("the stalled head handled", Duration::from_secs(30), || {
        handled(&log, "k-stalled", 4)
    })
    .await;
    // Both replicas looked at least once more meanwhile.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let parked = still_parked(&harness, "k-stalled").await?;
    a.stop().await?;
    b.stop().await?;
    resumed?;
    let made = calls.calls.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(made, 1, "the external call was made {made} times");
    assert_eq!(parked, (0, 0));
    assert_eq!(effects(&harness).await?.get("k-stalled"), Some(&1));
    Ok(())
}

/// After a rollback, a retry copy of an event type this build does not
/// handle is read from its tier: the order is parked with it at the head.
/// The copy is dead-lettered (to be replayed once a build that handles it
/// runs) and the order's next event goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_copy_of_a_type_not_handled_lets_its_order_go_on() -> Result<()> {
    let config = base_config();
    let harness = Harness::start(&SPEC, &[("orders", 3)], &config).await?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let member = harness
        .member(
            &SPEC,
            Arc::new(Recorder::new("a", &log, &Arc::default())),
            harness.config(&config),
        )
        .await?;
    // The test handler handles OrderCreated only: this OrderCancelled is of a
    // type a newer build handled when it sent it to retry.
    let cancelled = written(&harness, &cancelled("k-rolled-back")).await?;
    let behind = written(&harness, &order("k-rolled-back", 1)).await?;
    park(
        &harness,
        "k-rolled-back",
        &cancelled.id,
        &[&behind],
        Duration::ZERO,
    )
    .await?;
    let tier = orderflow_runtime::tier_topic("lanes", Duration::from_millis(200));
    produce_copy(&harness, &tier, &cancelled).await?;

    let applied = wait_until(
        "the event behind the skipped copy applied",
        Duration::from_secs(20),
        || handled(&log, "k-rolled-back", 1),
    )
    .await;
    let parked = still_parked(&harness, "k-rolled-back").await?;
    let dead = harness.kafka().read_all("lanes.dlq").await?;
    member.stop().await?;
    applied?;
    assert_eq!(parked, (0, 0), "nothing of k-rolled-back left waiting");
    assert_eq!(
        dead.iter().filter_map(|m| m.key()).collect::<Vec<_>>(),
        [b"k-rolled-back".as_slice()],
        "the copy kept as a dead letter"
    );
    Ok(())
}

/// A tier removed from the configuration still holds copies whose orders
/// are parked behind them: the consumer reads the old tier topic too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_copy_in_a_tier_no_longer_configured_still_runs() -> Result<()> {
    let config = base_config();
    let harness = Harness::start(&SPEC, &[("orders", 3)], &config).await?;
    let removed = orderflow_runtime::tier_topic("lanes", Duration::from_secs(9));
    harness.cluster().create_topic(&removed, 3, 1)?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let member = harness
        .member(
            &SPEC,
            Arc::new(Recorder::new("a", &log, &Arc::default())),
            harness.config(&config),
        )
        .await?;
    let copy = written(&harness, &order("k-old-tier", 0)).await?;
    let behind = written(&harness, &order("k-old-tier", 1)).await?;
    park(&harness, "k-old-tier", &copy.id, &[&behind], Duration::ZERO).await?;
    produce_copy(&harness, &removed, &copy).await?;

    let applied = wait_until(
        "the copy and the event behind it applied",
        Duration::from_secs(20),
        || handled(&log, "k-old-tier", 0) && handled(&log, "k-old-tier", 1),
    )
    .await;
    let parked = still_parked(&harness, "k-old-tier").await?;
    member.stop().await?;
    applied?;
    assert_eq!(parked, (0, 0), "nothing of k-old-tier left waiting");
    Ok(())
}

/// Keys PostgreSQL refuses to store — one with a NUL byte, one longer than
/// a btree index entry may be — must not hold their partition: each event is
/// applied (SQLite stores both) or dead-lettered (PostgreSQL), the events
/// after them are applied, and the committed offset moves past all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_the_database_cannot_store_does_not_hold_its_partition() -> Result<()> {
    let config = base_config();
    let harness = Harness::start(&SPEC, &[("orders", 1)], &config).await?;
    let nul = "k-\u{0}-nul".to_string();
    // Random, so PostgreSQL cannot compress it below the btree limit.
    let long = format!("k-{}", Alphanumeric.sample_string(&mut rand::rng(), 12_000));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut recorder = Recorder::new("a", &log, &Arc::default());
    // The long key fails transiently first: its order must be parked for the retry.
    recorder.flaky = Some((long.clone(), 1, Deliveries::default()));
    let member = harness
        .member(&SPEC, Arc::new(recorder), harness.config(&config))
        .await?;
    harness
        .produce(&[order(&nul, 0), order(&long, 0), order("k-after", 0)])
        .await?;

    let kafka = harness.kafka();
    let group = SPEC.group_id();
    let dead_lettered = |dead: &[Vec<u8>], key: &str| dead.iter().any(|k| k == key.as_bytes());
    let (mut lag, mut dead) = (-1, Vec::new());
    for _ in 0..200 {
        lag = kafka.lag(&group, &["orders".to_string()]).await?;
        dead = kafka
            .read_all("lanes.dlq")
            .await?
            .iter()
            .filter_map(|m| m.key().map(<[u8]>::to_vec))
            .collect();
        let resolved = [&nul, &long]
            .iter()
            .all(|k| handled(&log, k, 0) || dead_lettered(&dead, k));
        if lag == 0 && resolved && handled(&log, "k-after", 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    member.stop().await?;
    assert_eq!(lag, 0, "the committed offset moved past every event");
    assert!(handled(&log, "k-after", 0), "the event after them applied");
    for key in [&nul, &long] {
        let applied = handled(&log, key, 0);
        let dead_lettered = dead_lettered(&dead, key);
        assert!(
            applied != dead_lettered,
            "{}…: applied {applied}, dead-lettered {dead_lettered}: exactly one of them",
            &key[..8]
        );
    }
    Ok(())
}

fn cancelled(key: &str) -> Event {
    Event::OrderCancelled(OrderCancelled {
        order_id: key.into(),
        customer_id: "c-test".into(),
        reason: "OUT_OF_STOCK".into(),
        cancelled_at: 0,
    })
}

/// Writes `w` to a retry tier topic as the runtime would.
async fn produce_copy(harness: &Harness, topic: &str, w: &Written) -> Result<()> {
    let headers = retry_copy_headers(w);
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    harness
        .kafka()
        .produce_raw(topic, &w.key, &pairs, &w.payload)
        .await?;
    Ok(())
}
