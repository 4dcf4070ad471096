//! The consumer runtime with a test handler (not the saga): key-level
//! concurrency inside partitions, ordering per key, rebalances and restarts,
//! batches with a poison event, a key held behind its retry, and failures
//! that are permanent from the first attempt.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use orderflow_envelope::Event;
use orderflow_runtime::fault::FaultPoint;
use orderflow_runtime::sqlx::{self, Row};
use orderflow_runtime::{RuntimeConfig, DEAD_LETTER_HEADER_PREFIX};
use orderflow_testkit::harness::{Harness, Member};

mod lanes;
use lanes::*;
use rdkafka::message::{Headers, Message};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_orders_run_at_once_each_in_order_through_a_rebalance_and_a_restart() -> Result<()> {
    const KEYS: usize = 1000;
    const EVENTS_PER_KEY: i64 = 8;
    let config = base_config();
    let harness = Harness::start(&SPEC, &[("orders", 3)], &config).await?;
    let events: Vec<Event> = (0..EVENTS_PER_KEY)
        .flat_map(|seq| (0..KEYS).map(move |k| order(&format!("k-{k:04}"), seq)))
        .collect();
    harness.produce(&events).await?;
    let total = events.len();

    let log = Arc::new(Mutex::new(Vec::<Handled>::new()));
    let concurrency = Arc::new(Concurrency::default());
    let member = |name: &str| {
        let mut recorder = Recorder::new(name, &log, &concurrency);
        recorder.delay_ms = Some(2..20);
        Arc::new(recorder)
    };
    let distinct = || {
        log.lock()
            .unwrap()
            .iter()
            .map(|h| (h.key.clone(), h.seq))
            .collect::<HashSet<_>>()
            .len()
    };
    let a = harness
        .member(&SPEC, member("a"), harness.config(&config))
        .await?;
    wait_until(
        "a quarter handled by one member",
        Duration::from_secs(60),
        || distinct() >= total / 4,
    )
    .await?;
    // A second member joins: a cooperative rebalance moves partitions to it.
    let b = harness
        .member(&SPEC, member("b"), harness.config(&config))
        .await?;
    wait_until("half handled", Duration::from_secs(60), || {
        distinct() >= total / 2
    })
    .await?;
    // The first member stops (committing what it finished) and comes back.
    let before_restart = distinct();
    a.stop().await?;
    let a2 = harness
        .member(&SPEC, member("a2"), harness.config(&config))
        .await?;
    if let Err(e) = wait_until("every event handled", Duration::from_secs(120), || {
        distinct() == total
    })
    .await
    {
        let handled: HashSet<(String, i64)> = log
            .lock()
            .unwrap()
            .iter()
            .map(|h| (h.key.clone(), h.seq))
            .collect();
        let missing: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::OrderCreated(o) => Some((o.order_id.clone(), o.placed_at)),
                _ => None,
            })
            .filter(|k| !handled.contains(k))
            .take(10)
            .collect();
        bail!(
            "{e}: {} of {total} handled, e.g. missing {missing:?}",
            handled.len()
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let duplicates: f64 = [&b.metrics, &a2.metrics]
        .iter()
        .map(|m| {
            counter(
                m,
                "orderflow_events_consumed_total",
                "outcome=\"duplicate\"",
            )
        })
        .sum();
    b.stop().await?;
    a2.stop().await?;

    let log = log.lock().unwrap().clone();
    // Nothing lost, nothing handled twice (the inbox absorbs redeliveries).
    assert_eq!(log.len(), total, "every event handled exactly once");
    // Each key's events in offset order.
    let mut per_key: BTreeMap<&str, Vec<&Handled>> = BTreeMap::new();
    for h in &log {
        per_key.entry(&h.key).or_default().push(h);
    }
    for (key, mut handled) in per_key {
        handled.sort_by_key(|h| h.started);
        let seqs: Vec<i64> = handled.iter().map(|h| h.seq).collect();
        assert_eq!(
            seqs,
            (0..EVENTS_PER_KEY).collect::<Vec<_>>(),
            "{key} out of order"
        );
        for pair in handled.windows(2) {
            assert!(
                pair[0].ended <= pair[1].started,
                "{key}: two events at once"
            );
        }
    }
    // Many keys of one partition at once.
    let max = concurrency.max.lock().unwrap().clone();
    println!("most calls at once per partition: {max:?}");
    for p in 0..3 {
        assert!(
            max.get(&p).copied().unwrap_or(0) > 1,
            "partition {p} ran one at a time: {max:?}"
        );
    }
    // Ownership of a partition moves cleanly: whatever a member handled of a
    // partition ended before the next owner began on it, and no member
    // handled a partition again after giving it up.
    let mut by_partition: BTreeMap<i32, Vec<&Handled>> = BTreeMap::new();
    for h in &log {
        by_partition.entry(h.partition).or_default().push(h);
    }
    let mut moves = 0;
    for (p, mut handled) in by_partition {
        handled.sort_by_key(|h| h.started);
        let mut owners: Vec<&str> = Vec::new();
        for h in &handled {
            if owners.last() != Some(&h.member.as_str()) {
                assert!(
                    !owners.contains(&h.member.as_str()),
                    "partition {p}: {} handled it again after giving it up (owners {owners:?})",
                    h.member
                );
                owners.push(&h.member);
            }
        }
        for pair in owners.windows(2) {
            let last_of_old = handled
                .iter()
                .filter(|h| h.member == pair[0])
                .map(|h| h.ended)
                .max()
                .unwrap();
            let first_of_new = handled
                .iter()
                .filter(|h| h.member == pair[1])
                .map(|h| h.started)
                .min()
                .unwrap();
            assert!(
                last_of_old <= first_of_new,
                "partition {p}: {} still handled it after {} took over",
                pair[0],
                pair[1]
            );
            moves += 1;
        }
    }
    assert!(
        moves >= 2,
        "the rebalance and the restart moved partitions ({moves} moves)"
    );
    // A stop commits what finished (with what finished above the watermark):
    // the restart redelivers at most the in-flight window, which the inbox absorbs.
    println!(
        "restart after {before_restart} of {total}: {} redelivered duplicates",
        duplicates as u64
    );
    assert!(
        duplicates <= config.consumer_max_in_flight as f64,
        "{duplicates} redelivered, more than the in-flight window"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_whose_commits_are_refused_for_a_while_commits_before_it_leaves() -> Result<()> {
    let harness = Harness::start(&SPEC, &[("orders", 3)], &base_config()).await?;
    let log = Arc::new(Mutex::new(Vec::<Handled>::new()));
    let concurrency = Arc::new(Concurrency::default());
    let member = |name: &str| Arc::new(Recorder::new(name, &log, &concurrency));
    let batch =
        |seq: i64| -> Vec<Event> { (0..300).map(|k| order(&format!("k-{k:03}"), seq)).collect() };
    let handled = |n: usize| {
        let log = log.clone();
        move || log.lock().unwrap().len() >= n
    };
    // A commits only when it stops.
    let quiet = RuntimeConfig {
        kafka_auto_commit_interval_ms: 600_000,
        ..harness.config(&base_config())
    };
    let a = harness.member(&SPEC, member("a"), quiet).await?;
    harness.produce(&batch(0)).await?;
    wait_until("the first batch", Duration::from_secs(60), handled(300)).await?;
    // The coordinator refuses the next 120 commits, as the embedded broker
    // does while its group waits for members to join (for the session
    // timeout less a second per phase, and a cooperative rebalance has two):
    // with a commit tried about ten times a second, the stop meets refusals
    // for some 12 s.
    harness.cluster().request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS; 120],
    );
    a.stop().await?;
    let b = harness
        .member(&SPEC, member("b"), harness.config(&base_config()))
        .await?;
    // A second batch handled means B has read past everything A did.
    harness.produce(&batch(1)).await?;
    wait_until("the second batch", Duration::from_secs(60), handled(600)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let duplicates = counter(
        &b.metrics,
        "orderflow_events_consumed_total",
        "outcome=\"duplicate\"",
    );
    b.stop().await?;
    assert_eq!(log.lock().unwrap().len(), 600, "every event handled once");
    assert_eq!(
        duplicates, 0.0,
        "B redid what A finished: A left without committing it"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_event_in_a_batch_fails_alone() -> Result<()> {
    // One writer on either database: on PostgreSQL's default of four, the
    // events behind the slow one would spread over the other three
    // transactions and the poison one could end up in a batch of its own.
    let config = RuntimeConfig {
        database_writers: 1,
        ..base_config()
    };
    let harness = Harness::start(&SPEC, &[("orders", 3)], &config).await?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut recorder = Recorder::new("a", &log, &Arc::default());
    recorder.poison = Some("k-025".into());
    // The first event holds its transaction; the others arrive meanwhile,
    // queue up behind it and go in one batch, the poison one among them.
    let began = Arc::new(std::sync::atomic::AtomicBool::new(false));
    recorder.slow = Some(("k-000".into(), Duration::from_millis(500), began.clone()));
    let member = harness
        .member(&SPEC, Arc::new(recorder), harness.config(&config))
        .await?;
    harness.produce(&[order("k-000", 0)]).await?;
    wait_until(
        "the first event holds the writer",
        Duration::from_secs(30),
        || began.load(std::sync::atomic::Ordering::SeqCst),
    )
    .await?;
    let events: Vec<Event> = (1..50).map(|k| order(&format!("k-{k:03}"), 0)).collect();
    harness.produce(&events).await?;
    wait_until("49 handled", Duration::from_secs(30), || {
        log.lock().unwrap().len() >= 49
    })
    .await?;
    let parked = harness.kafka().read_all("lanes.dlq").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fallbacks = counter(
        &member.metrics,
        "orderflow_db_batch_fallbacks_total",
        "kind=\"events\"",
    );
    let handled = counter(
        &member.metrics,
        "orderflow_events_consumed_total",
        "outcome=\"handled\"",
    );
    member.stop().await?;

    let effects = effects(&harness).await?;
    assert_eq!(effects.len(), 49, "every other event applied: {effects:?}");
    assert!(
        effects.values().all(|&n| n == 1),
        "nothing applied twice: {effects:?}"
    );
    assert!(
        !effects.contains_key("k-025"),
        "the poison event changed nothing"
    );
    assert_eq!(parked.len(), 1, "one dead letter");
    assert_eq!(parked[0].key(), Some(b"k-025".as_slice()));
    let error =
        header(&parked[0], &format!("{DEAD_LETTER_HEADER_PREFIX}error")).unwrap_or_default();
    assert!(error.contains("poison"), "{error}");
    assert!(
        fallbacks >= 1.0,
        "the batch with the poison event was rolled back and applied one by one"
    );
    assert_eq!(handled, 49.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_with_an_event_in_retry_holds_its_later_events_and_no_one_else() -> Result<()> {
    // Tiers of 1 s and 2 s: a failed batch rerun one by one (the same
    // delivery) is told apart from a retry on however loaded a machine.
    let config = RuntimeConfig {
        retry_backoff_ms: vec![1_000, 2_000],
        ..base_config()
    };
    let harness = Harness::start(&SPEC, &[("orders", 3)], &config).await?;
    // The stuck key's three events first, then a hundred other orders.
    let mut events: Vec<Event> = (0..3).map(|seq| order("k-stuck", seq)).collect();
    events.extend((0..100).map(|k| order(&format!("k-{k:03}"), 0)));
    harness.produce(&events).await?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut recorder = Recorder::new("a", &log, &Arc::default());
    // The first attempt and the retry after 1 s fail, the one 2 s later
    // succeeds.
    let deliveries = Deliveries::apart(Duration::from_millis(900));
    recorder.flaky = Some(("k-stuck".into(), 2, deliveries));
    let started = Instant::now();
    let member = harness
        .member(&SPEC, Arc::new(recorder), harness.config(&config))
        .await?;
    wait_until("every event handled", Duration::from_secs(30), || {
        log.lock().unwrap().len() == 103
    })
    .await?;
    let retries = counter(&member.metrics, "orderflow_handler_retries_total", "");
    member.stop().await?;

    let log = log.lock().unwrap().clone();
    let stuck: Vec<&Handled> = log.iter().filter(|h| h.key == "k-stuck").collect();
    assert_eq!(
        stuck.iter().map(|h| h.seq).collect::<Vec<_>>(),
        vec![0, 1, 2],
        "its later events waited behind it"
    );
    let first = stuck[0].started;
    assert!(
        first - started >= Duration::from_millis(3_000),
        "handled after two retries (1 s and 2 s tiers)"
    );
    let others_before = log
        .iter()
        .filter(|h| h.key != "k-stuck" && h.ended < first)
        .count();
    assert_eq!(others_before, 100, "no other order waited for it");
    assert_eq!(retries, 2.0, "two retry copies written");
    assert!(
        harness.kafka().read_all("lanes.dlq").await?.is_empty(),
        "nothing dead-lettered"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_constraint_violation_is_dead_lettered_on_the_first_attempt() -> Result<()> {
    let config = base_config();
    let harness = Harness::start(&SPEC, &[("orders", 3)], &config).await?;
    harness
        .produce(&[order("k-dup", 0), order("k-fine", 0)])
        .await?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut recorder = Recorder::new("a", &log, &Arc::default());
    recorder.duplicate_insert = Some("k-dup".into());
    let member = harness
        .member(&SPEC, Arc::new(recorder), harness.config(&config))
        .await?;
    let kafka = harness.kafka();
    let deadline = Instant::now() + Duration::from_secs(20);
    let parked = loop {
        let parked = kafka.read_all("lanes.dlq").await?;
        if !parked.is_empty() || Instant::now() > deadline {
            break parked;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let retries = counter(&member.metrics, "orderflow_handler_retries_total", "");
    member.stop().await?;
    assert_eq!(parked.len(), 1);
    assert_eq!(
        header(&parked[0], &format!("{DEAD_LETTER_HEADER_PREFIX}attempts")).as_deref(),
        Some("1")
    );
    let error =
        header(&parked[0], &format!("{DEAD_LETTER_HEADER_PREFIX}error")).unwrap_or_default();
    assert!(
        error.to_lowercase().contains("unique"),
        "the constraint is named: {error}"
    );
    assert_eq!(retries, 0.0, "never retried");
    assert_eq!(
        effects(&harness).await?.into_iter().collect::<Vec<_>>(),
        vec![("k-fine".to_string(), 1)]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_letter_carries_every_header_with_its_exact_value() -> Result<()> {
    let config = base_config();
    let harness = Harness::start(&SPEC, &[("orders", 3)], &config).await?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut recorder = Recorder::new("a", &log, &Arc::default());
    // Two transient failures (retried in the 200 ms and 400 ms tiers), then a permanent one.
    recorder.failing = Some(("k-bad".into(), 2, Default::default()));
    let member = harness
        .member(&SPEC, Arc::new(recorder), harness.config(&config))
        .await?;
    let before = chrono::Utc::now();
    // The order's second event waits behind the first, and goes on once the
    // first is dead-lettered.
    let landed = harness
        .produce(&[order("k-bad", 0), order("k-bad", 1)])
        .await?;
    let (partition, offset) = landed[0];
    let kafka = harness.kafka();
    let deadline = Instant::now() + Duration::from_secs(20);
    let parked = loop {
        let parked = kafka.read_all("lanes.dlq").await?;
        if !parked.is_empty() {
            break parked;
        }
        if Instant::now() > deadline {
            bail!("nothing dead-lettered after 20 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let after = chrono::Utc::now();
    wait_until(
        "the event behind it handled",
        Duration::from_secs(20),
        || {
            log.lock()
                .unwrap()
                .iter()
                .any(|h| h.key == "k-bad" && h.seq == 1)
        },
    )
    .await?;
    let dead_letters = counter(&member.metrics, "orderflow_dead_letters_total", "");
    member.stop().await?;
    assert_eq!(
        effects(&harness).await?.into_iter().collect::<Vec<_>>(),
        vec![("k-bad".to_string(), 1)],
        "the second event applied, the first not"
    );

    assert_eq!(parked.len(), 1);
    let m = &parked[0];
    assert_eq!(m.key(), Some(b"k-bad".as_slice()), "the original key");
    let original: Vec<_> = kafka
        .read_all("orders")
        .await?
        .into_iter()
        .filter(|m| m.offset() == offset)
        .collect();
    assert_eq!(m.payload(), original[0].payload(), "the original value");
    let headers: Vec<(String, String)> = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    // The original headers first, unchanged and in order, without the retry tiers' own.
    let original_headers: Vec<(String, String)> = original[0]
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        headers[..original_headers.len()],
        original_headers[..],
        "original headers kept"
    );
    let added: BTreeMap<&str, String> = headers[original_headers.len()..]
        .iter()
        .map(|(k, v)| {
            let name = k
                .strip_prefix(DEAD_LETTER_HEADER_PREFIX)
                .unwrap_or_else(|| panic!("{k} is not a dead-letter header"));
            (name, v.clone())
        })
        .collect();
    let failed_at = chrono::DateTime::parse_from_rfc3339(&added["failed-at"])?;
    assert!(
        before <= failed_at && failed_at <= after,
        "failed-at {failed_at} outside the test's {before}..{after}"
    );
    let expected: BTreeMap<&str, String> = [
        ("error", "k-bad failed for good on try 3".to_string()),
        ("source-topic", "orders".into()),
        ("source-partition", partition.to_string()),
        ("source-offset", offset.to_string()),
        ("attempts", "3".into()),
        ("service", "lanes".into()),
        ("failed-at", added["failed-at"].clone()),
    ]
    .into_iter()
    .collect();
    assert_eq!(added, expected);
    assert_eq!(dead_letters, 1.0, "orderflow_dead_letters_total");
    Ok(())
}

/// The crash tests' member process: this test binary run again with these
/// variables set (see `offsets_are_committed_only_after_their_transaction`).
const CRASH_AT: &str = "ORDERFLOW_TEST_CRASH_AT";
const CRASH_KEY: &str = "ORDERFLOW_TEST_CRASH_KEY";
const CRASH_CONFIG: &str = "ORDERFLOW_TEST_CRASH_CONFIG";

/// Not a test of its own: the member that `offsets_are_committed_only_after_their_transaction`
/// starts as a child process. It handles events until the batch holding
/// `CRASH_KEY` reaches the fault point `CRASH_AT`, waits there long enough for
/// any offset committed too early to reach the broker, and kills itself with
/// SIGKILL (no shutdown, no commit, no flush). Run alone, it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the child process of offsets_are_committed_only_after_their_transaction"]
async fn crashing_member() -> Result<()> {
    let Ok(point) = std::env::var(CRASH_AT) else {
        return Ok(());
    };
    let point = match point.as_str() {
        "before-commit" => FaultPoint::BeforeCommit,
        "after-commit" => FaultPoint::AfterCommit,
        other => bail!("{CRASH_AT}={other}: expected before-commit or after-commit"),
    };
    let key = std::env::var(CRASH_KEY)?;
    let config: RuntimeConfig = serde_json::from_str(&std::env::var(CRASH_CONFIG)?)?;
    let wait = Duration::from_millis(u64::from(config.kafka_auto_commit_interval_ms) * 10);
    orderflow_runtime::fault::set_hook(move |at, keys| {
        if at == point && keys.contains(&key.as_str()) {
            std::thread::sleep(wait);
            let me = nix::unistd::Pid::from_raw(std::process::id() as i32);
            let _ = nix::sys::signal::kill(me, nix::sys::signal::Signal::SIGKILL);
        }
    });
    let log = Arc::new(Mutex::new(Vec::new()));
    let _member = Member::start(
        &SPEC,
        Arc::new(Recorder::new("crashing", &log, &Arc::default())),
        config,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(60)).await;
    bail!("the fault point was not reached within 60 s")
}

/// The offset of an event is committed only once its transaction has: a
/// member killed just before a batch's COMMIT (nothing of it applied) or
/// just after it (applied, offsets not yet committed) loses nothing and
/// applies nothing twice; the next member handles the first batch again
/// and finds the second in its inbox. Were offsets committed before the
/// transaction, the first crash would lose the batch for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offsets_are_committed_only_after_their_transaction() -> Result<()> {
    const KEYS: usize = 30;
    for point in ["before-commit", "after-commit"] {
        let config = base_config();
        let harness = Harness::start(&SPEC, &[("orders", 3)], &config).await?;
        let keys: Vec<String> = (0..KEYS).map(|k| format!("k-{k:03}")).collect();
        let events: Vec<Event> = keys.iter().map(|k| order(k, 0)).collect();
        harness.produce(&events).await?;
        let member_config = harness.config(&config);

        let child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["--exact", "crashing_member", "--ignored", "--nocapture"])
            .env(CRASH_AT, point)
            .env(CRASH_KEY, "k-017")
            .env(CRASH_CONFIG, serde_json::to_string(&member_config)?)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(90), child).await??;
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            output.status.signal(),
            Some(9),
            "{point}: the member was to kill itself at the fault point: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout)
        );
        let applied_before = effects(&harness).await?;
        match point {
            "before-commit" => assert!(
                !applied_before.contains_key("k-017"),
                "nothing of the batch was committed"
            ),
            _ => assert_eq!(applied_before.get("k-017"), Some(&1)),
        }

        let log = Arc::new(Mutex::new(Vec::new()));
        let member = harness
            .member(
                &SPEC,
                Arc::new(Recorder::new("next", &log, &Arc::default())),
                member_config,
            )
            .await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let applied = loop {
            let applied = effects(&harness).await?;
            if applied.len() == KEYS {
                break applied;
            }
            if Instant::now() > deadline {
                let missing: Vec<&String> =
                    keys.iter().filter(|k| !applied.contains_key(*k)).collect();
                bail!("{point}: {missing:?} never applied: their offsets were committed without their transaction");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // The redelivered copy of k-017 may be handled after the keys behind
        // it (keys run side by side): wait for it, within a bound.
        let want = if point == "after-commit" { 1.0 } else { 0.0 };
        let deadline = Instant::now() + Duration::from_secs(30);
        let duplicates = loop {
            let duplicates = counter(
                &member.metrics,
                "orderflow_events_consumed_total",
                "outcome=\"duplicate\"",
            );
            if duplicates >= want || Instant::now() > deadline {
                break duplicates;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        member.stop().await?;
        assert!(
            applied.values().all(|&n| n == 1),
            "{point}: applied twice: {applied:?}"
        );
        if point == "after-commit" {
            assert!(
                duplicates >= 1.0,
                "k-017 was applied but its offset not committed: it comes again and the inbox absorbs it"
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_letter_the_broker_refuses_is_kept_in_the_database() -> Result<()> {
    let config = base_config();
    let harness = Harness::start(&SPEC, &[("orders", 3)], &config).await?;
    harness.cluster().topic_error(
        "lanes.dlq",
        rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
    )?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut recorder = Recorder::new("a", &log, &Arc::default());
    recorder.poison = Some("k-poison".into());
    let member = harness
        .member(&SPEC, Arc::new(recorder), harness.config(&config))
        .await?;
    let landed = harness
        .produce(&[order("k-poison", 0), order("k-after", 0)])
        .await?;
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&harness.database_url).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let row = loop {
        let row = sqlx::query(
            "SELECT consumer, source_topic, source_partition, source_offset, message_key, error, produce_error FROM orderflow_dead_letters_unwritten",
        )
        .fetch_optional(&db)
        .await?;
        if let Some(row) = row {
            break row;
        }
        if Instant::now() > deadline {
            bail!("the refused dead letter was not kept after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    wait_until("the next event handled", Duration::from_secs(20), || {
        !log.lock().unwrap().is_empty()
    })
    .await?;
    let unwritten = counter(
        &member.metrics,
        "orderflow_dead_letters_unwritten_total",
        "",
    );
    member.stop().await?;
    let kept: (String, String, i64, i64, Vec<u8>, String, String) = (
        row.try_get("consumer")?,
        row.try_get("source_topic")?,
        row.try_get("source_partition")?,
        row.try_get("source_offset")?,
        row.try_get("message_key")?,
        row.try_get("error")?,
        row.try_get("produce_error")?,
    );
    assert_eq!(
        (
            kept.0.as_str(),
            kept.1.as_str(),
            kept.2,
            kept.3,
            kept.4.as_slice(),
            kept.5.as_str()
        ),
        (
            SPEC.group_id().as_str(),
            "orders",
            i64::from(landed[0].0),
            landed[0].1,
            b"k-poison".as_slice(),
            "k-poison is poison"
        )
    );
    assert!(kept.6.to_lowercase().contains("authoriz"), "{}", kept.6);
    assert_eq!(unwritten, 1.0);
    db.close().await;
    Ok(())
}

/// The poll thread never waits for a handler: an external call slower than
/// `max.poll.interval.ms` (7 s here, the call 9 s) costs the member neither
/// its partitions nor its group membership, and the event is handled once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_slower_than_the_poll_interval_keeps_its_partition() -> Result<()> {
    let config = RuntimeConfig {
        kafka_properties: "max.poll.interval.ms=7000".into(),
        ..base_config()
    };
    let harness = Harness::start(&SPEC, &[("orders", 3)], &config).await?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut recorder = Recorder::new("a", &log, &Arc::default());
    recorder.delay_ms = Some(9_000..9_001);
    let member = harness
        .member(&SPEC, Arc::new(recorder), harness.config(&config))
        .await?;
    harness.produce(&[order("k-slow", 0)]).await?;
    wait_until("the slow call handled", Duration::from_secs(30), || {
        log.lock().unwrap().len() == 1
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rebalances = |event: &str| {
        counter(
            &member.metrics,
            "orderflow_consumer_rebalances_total",
            &format!("event=\"{event}\""),
        )
    };
    let (assigned, revoked, lost) = (
        rebalances("assigned"),
        rebalances("revoked"),
        rebalances("lost"),
    );
    let duplicates = counter(
        &member.metrics,
        "orderflow_events_consumed_total",
        "outcome=\"duplicate\"",
    );
    member.stop().await?;
    assert_eq!(
        (assigned, revoked, lost),
        (1.0, 0.0, 0.0),
        "one assignment at start and no other rebalance"
    );
    assert_eq!(duplicates, 0.0);
    assert_eq!(
        effects(&harness).await?.into_iter().collect::<Vec<_>>(),
        vec![("k-slow".to_string(), 1)]
    );
    Ok(())
}

/// A member whose calls each take `delay_ms`, with what it handled and how
/// many of its calls run.
struct SlowMember {
    harness: Harness,
    member: Member,
    log: Arc<Mutex<Vec<Handled>>>,
    concurrency: Arc<Concurrency>,
}

impl SlowMember {
    async fn start(config: RuntimeConfig, delay_ms: u64) -> Result<Self> {
        let harness = Harness::start(&SPEC, &[("orders", 3)], &config).await?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let concurrency = Arc::new(Concurrency::default());
        let mut recorder = Recorder::new("a", &log, &concurrency);
        recorder.delay_ms = Some(delay_ms..delay_ms + 1);
        let member = harness
            .member(&SPEC, Arc::new(recorder), harness.config(&config))
            .await?;
        Ok(Self {
            harness,
            member,
            log,
            concurrency,
        })
    }

    /// Produces an order of `key` and waits until its call began.
    async fn call_begins(&self, key: &str) -> Result<()> {
        self.harness.produce(&[order(key, 0)]).await?;
        wait_until("the call began", Duration::from_secs(20), || {
            !self.concurrency.max.lock().unwrap().is_empty()
        })
        .await
    }
}

/// A stop ends within its budget (the pod's grace period less its preStop
/// sleep) however long the work in flight takes: the kubelet kills a pod
/// that outlives its grace period, mid-commit. Each step alone (in-flight
/// work 10 s, commits 10 s, leaving 10 s, closing 5 s, HTTP 10 s, outbox
/// 15 s) fits; their sum did not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_ends_within_its_budget_however_long_work_in_flight_takes() -> Result<()> {
    let config = RuntimeConfig {
        shutdown_budget_ms: 3_000,
        ..base_config()
    };
    let SlowMember {
        harness,
        member,
        log,
        ..
    } = {
        let slow = SlowMember::start(config, 60_000).await?;
        slow.call_begins("k-slow").await?;
        slow
    };
    let stopping = Instant::now();
    member.begin_stop();
    member.stopped().await?;
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "the stop took {took:?}, past its 3 s budget"
    );
    assert!(
        log.lock().unwrap().is_empty(),
        "the slow call never finished"
    );
    assert_eq!(
        harness
            .kafka()
            .lag(&SPEC.group_id(), &["orders".to_string()])
            .await?,
        1,
        "its offset was not committed: the next owner handles it"
    );
    Ok(())
}

/// A stop (SIGTERM) turns readiness false at once, lets the call under way
/// finish and record its outcome, and commits its offset before the member
/// leaves: nothing is left for the next owner to redo.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_turns_readiness_false_and_finishes_and_commits_work_in_flight() -> Result<()> {
    let slow = SlowMember::start(base_config(), 2_000).await?;
    let http = reqwest::Client::new();
    let readyz = format!("{}/readyz", slow.member.url);
    let ready = || {
        let (http, url) = (http.clone(), readyz.clone());
        async move { anyhow::Ok(http.get(url).send().await?.status().as_u16()) }
    };
    assert_eq!(ready().await?, 200);
    slow.call_begins("k-stop").await?;
    let SlowMember {
        harness,
        member,
        log,
        ..
    } = slow;
    member.begin_stop();
    let deadline = Instant::now() + Duration::from_secs(1);
    while ready().await? != 503 {
        anyhow::ensure!(Instant::now() < deadline, "still ready after a stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        log.lock().unwrap().is_empty(),
        "not ready while the call still runs"
    );
    member.stopped().await?;
    assert_eq!(
        log.lock().unwrap().len(),
        1,
        "the call finished and was recorded"
    );
    assert_eq!(
        harness
            .kafka()
            .lag(&SPEC.group_id(), &["orders".to_string()])
            .await?,
        0,
        "its offset was committed before the member left"
    );
    assert_eq!(
        effects(&harness).await?.into_iter().collect::<Vec<_>>(),
        vec![("k-stop".to_string(), 1)]
    );
    Ok(())
}
