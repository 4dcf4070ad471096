//! What the consumer runtime's tests share: a service of their own
//! ("lanes", consuming `orders`) whose handler records what it handled and
//! can be told to be slow, flaky, poison or held at a gate; events; waits;
//! and reads of the database and the metrics.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use async_trait::async_trait;
use orderflow_envelope::{Address, Event, EventType, OrderCreated, Topic};
use orderflow_runtime::sqlx::{self, Row};
use orderflow_runtime::{
    ExternalCall, Handler, HandlerCtx, HandlerError, RuntimeConfig, ServiceSpec,
};
use orderflow_testkit::harness::Harness;
use rand::Rng;
use rdkafka::message::{Headers, Message};

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "lanes",
    migrations: orderflow_runtime::sqlx::migrate!("./tests/runtime_migrations"),
    produces: &[],
    consumes: &[Topic::Orders],
};

/// One handled event, as the test handler saw it.
#[derive(Debug, Clone)]
pub struct Handled {
    pub member: String,
    pub key: String,
    pub seq: i64,
    pub partition: i32,
    pub started: Instant,
    pub ended: Instant,
}

/// Calls in progress and the most seen at once, per partition.
#[derive(Default)]
pub struct Concurrency {
    pub now: Mutex<HashMap<i32, usize>>,
    pub max: Mutex<HashMap<i32, usize>>,
    /// Calls begun, in all.
    pub calls: std::sync::atomic::AtomicUsize,
}

impl Concurrency {
    pub fn enter(&self, partition: i32) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut now = self.now.lock().unwrap();
        let n = now.entry(partition).or_default();
        *n += 1;
        let mut max = self.max.lock().unwrap();
        let m = max.entry(partition).or_default();
        *m = (*m).max(*n);
    }

    pub fn leave(&self, partition: i32) {
        *self.now.lock().unwrap().entry(partition).or_default() -= 1;
    }
}

/// Records every event it handles; optionally waits a random while in an
/// external call, fails some keys, or holds its transaction.
pub struct Recorder {
    pub member: String,
    pub log: Arc<Mutex<Vec<Handled>>>,
    pub concurrency: Arc<Concurrency>,
    pub delay_ms: Option<Range<u64>>,
    /// Events of this key fail for good.
    pub poison: Option<String>,
    /// This key's first deliveries fail transiently, this many of them.
    pub flaky: Option<(String, u32, Deliveries)>,
    /// This key's handler holds its transaction for a while, saying when it begins.
    pub slow: Option<(String, Duration, Arc<AtomicBool>)>,
    /// This key's handler breaks a unique constraint.
    pub duplicate_insert: Option<String>,
    /// This key's first event fails transiently this many times, then for good.
    pub failing: Option<(String, u32, AtomicU32)>,
    /// This key's handler holds its transaction until the gate opens.
    pub gate: Option<(String, Arc<Gate>)>,
}

/// Counts the deliveries of an event to its handler: an attempt at least
/// `apart` after the one before is a new delivery (a retry tier waits
/// longer), one sooner is the same delivery run again (a failed batch's
/// events are rerun one by one at once — on a loaded machine that took
/// more than 150 ms, so a test that counts retries gives its tiers room).
pub struct Deliveries {
    apart: Duration,
    seen: Mutex<(u32, Option<Instant>)>,
}

impl Default for Deliveries {
    /// 150 ms apart: below the 200 ms first tier of [`base_config`].
    fn default() -> Self {
        Self::apart(Duration::from_millis(150))
    }
}

impl Deliveries {
    pub fn apart(apart: Duration) -> Self {
        Self {
            apart,
            seen: Mutex::default(),
        }
    }

    /// Records an attempt; returns which delivery it belongs to (1, 2, …).
    fn count(&self) -> u32 {
        let mut seen = self.seen.lock().unwrap();
        let now = Instant::now();
        if seen.1.is_none_or(|last| now - last >= self.apart) {
            seen.0 += 1;
        }
        seen.1 = Some(now);
        seen.0
    }
}

/// Holds a handler (and so the database writer) until a test opens it.
#[derive(Default)]
pub struct Gate {
    began: AtomicBool,
    open: AtomicBool,
}

impl Gate {
    pub fn began(&self) -> bool {
        self.began.load(Ordering::SeqCst)
    }

    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    async fn pass(&self) {
        self.began.store(true, Ordering::SeqCst);
        while !self.open.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Recorder {
    pub fn new(
        member: &str,
        log: &Arc<Mutex<Vec<Handled>>>,
        concurrency: &Arc<Concurrency>,
    ) -> Self {
        Self {
            member: member.into(),
            log: log.clone(),
            concurrency: concurrency.clone(),
            delay_ms: None,
            poison: None,
            flaky: None,
            slow: None,
            duplicate_insert: None,
            failing: None,
            gate: None,
        }
    }
}

#[async_trait]
impl Handler for Recorder {
    fn handles(&self, event_type: EventType) -> bool {
        event_type == EventType::OrderCreated
    }

    async fn handle(&self, event: Event, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError> {
        let Event::OrderCreated(e) = event else {
            return Ok(());
        };
        let key = e.order_id.clone();
        let seq = e.placed_at;
        if self.poison.as_deref() == Some(key.as_str()) {
            return Err(HandlerError::Permanent(format!("{key} is poison")));
        }
        if let Some((failing, transient, tries)) = &self.failing {
            if failing == &key && seq == 0 {
                let n = tries.fetch_add(1, Ordering::SeqCst) + 1;
                return Err(if n <= *transient {
                    HandlerError::Transient(format!("{key} failed, try {n}"))
                } else {
                    HandlerError::Permanent(format!("{key} failed for good on try {n}"))
                });
            }
        }
        if let Some((flaky, failures, deliveries)) = &self.flaky {
            if flaky == &key && deliveries.count() <= *failures {
                return Err(HandlerError::Transient(format!("{key} is not ready yet")));
            }
        }
        if let Some((gated, gate)) = &self.gate {
            if gated == &key {
                gate.pass().await;
            }
        }
        if let Some((slow, wait, began)) = &self.slow {
            if slow == &key {
                began.store(true, Ordering::SeqCst);
                tokio::time::sleep(*wait).await;
            }
        }
        let insert = || {
            orderflow_runtime::sql::query(
                "INSERT INTO effects (message_key, seq, member) VALUES ($1, $2, $3)",
            )
            .bind(key.clone())
            .bind(seq)
            .bind(self.member.clone())
        };
        // What the event changes is written where it is done: with an external
        // call, in the transaction that records the call's outcome.
        if self.delay_ms.is_none() {
            insert().execute(&mut *ctx.tx).await?;
            if self.duplicate_insert.as_deref() == Some(key.as_str()) {
                insert().execute(&mut *ctx.tx).await?;
            }
        }
        let started = Instant::now();
        let handled = Handled {
            member: self.member.clone(),
            key,
            seq,
            partition: ctx.source.partition,
            started,
            ended: started,
        };
        match &self.delay_ms {
            Some(delay) => ctx.call(Wait {
                delay: Duration::from_millis(rand::rng().random_range(delay.clone())),
                handled,
                log: self.log.clone(),
                concurrency: self.concurrency.clone(),
            }),
            None => {
                let log = self.log.clone();
                ctx.after_commit(move || {
                    let mut handled = handled;
                    handled.ended = Instant::now();
                    log.lock().unwrap().push(handled);
                });
            }
        }
        Ok(())
    }
}

/// An external call that takes a while: where handlers of one partition run
/// side by side.
pub struct Wait {
    pub delay: Duration,
    pub handled: Handled,
    pub log: Arc<Mutex<Vec<Handled>>>,
    pub concurrency: Arc<Concurrency>,
}

#[async_trait]
impl ExternalCall for Wait {
    fn dependency(&self) -> &'static str {
        "test-wait"
    }

    async fn call(&mut self) -> Result<(), HandlerError> {
        self.handled.started = Instant::now();
        self.concurrency.enter(self.handled.partition);
        tokio::time::sleep(self.delay).await;
        self.concurrency.leave(self.handled.partition);
        Ok(())
    }

    async fn record(&mut self, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError> {
        orderflow_runtime::sql::query(
            "INSERT INTO effects (message_key, seq, member) VALUES ($1, $2, $3)",
        )
        .bind(self.handled.key.clone())
        .bind(self.handled.seq)
        .bind(self.handled.member.clone())
        .execute(&mut *ctx.tx)
        .await?;
        let (log, mut handled) = (self.log.clone(), self.handled.clone());
        ctx.after_commit(move || {
            handled.ended = Instant::now();
            log.lock().unwrap().push(handled);
        });
        Ok(())
    }
}

pub fn order(key: &str, seq: i64) -> Event {
    Event::OrderCreated(OrderCreated {
        order_id: key.into(),
        customer_id: "c-test".into(),
        items: vec![],
        payment_token: "tok_visa".into(),
        shipping_address: Address {
            name: "Ada".into(),
            line1: "1 Main St".into(),
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: "DE".into(),
        },
        placed_at: seq,
        customer_email: None,
    })
}

pub fn base_config() -> RuntimeConfig {
    RuntimeConfig {
        consumer_max_in_flight: 64,
        retry_backoff_ms: vec![200, 400],
        retry_slow_tiers_ms: vec![800],
        step_deadline_ms: 60_000,
        ..Default::default()
    }
}

pub async fn wait_until(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            bail!("{what}: not after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The samples of `name` whose labels contain `label`, summed (the family
/// must exist).
pub fn counter(metrics: &orderflow_runtime::telemetry::Metrics, name: &str, label: &str) -> f64 {
    orderflow_testkit::metrics::Scrape::from_text(metrics.encode()).sum(name, label)
}

pub async fn effects(harness: &Harness) -> Result<BTreeMap<String, i64>> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&harness.database_url).await?;
    let rows = sqlx::query("SELECT message_key, COUNT(*) AS n FROM effects GROUP BY message_key")
        .fetch_all(&pool)
        .await?;
    let counts = rows
        .iter()
        .map(|r| Ok((r.try_get("message_key")?, r.try_get("n")?)))
        .collect::<Result<_, sqlx::Error>>()?;
    pool.close().await;
    Ok(counts)
}

pub fn header(m: &rdkafka::message::OwnedMessage, name: &str) -> Option<String> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// An event as a service writes it: its CloudEvents id, headers and payload.
pub struct Written {
    pub id: String,
    pub key: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

pub async fn written(harness: &Harness, event: &Event) -> Result<Written> {
    let headers = orderflow_envelope::CloudEventHeaders::new(
        event.event_type().topic().owner(),
        event.event_type().ce_type(),
        event.order_id(),
    );
    let envelope = harness.codec.envelope(event, headers).await?;
    Ok(Written {
        id: envelope.headers.id.clone(),
        key: envelope.key,
        headers: envelope
            .headers
            .to_pairs()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        payload: envelope.payload,
    })
}

/// Leaves `key` as a crash would: parked with `head` at its head since
/// `ago` ago, and `stored` waiting behind it in the database (the first of
/// them is the head when it is one of them).
pub async fn park(
    harness: &Harness,
    key: &str,
    head: &str,
    stored: &[&Written],
    ago: Duration,
) -> Result<()> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&harness.database_url).await?;
    let at = chrono::Utc::now().timestamp_millis() - ago.as_millis() as i64;
    sqlx::query(
        "INSERT INTO orderflow_parked_keys (consumer, message_key, head_event_id, parked_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(SPEC.group_id())
    .bind(key)
    .bind(head)
    .bind(at)
    .execute(&pool)
    .await?;
    for (seq, w) in stored.iter().enumerate() {
        sqlx::query(
            "INSERT INTO orderflow_parked_events
                (consumer, message_key, seq, event_id, source_topic, source_partition, source_offset, headers, payload, parked_at)
             VALUES ($1, $2, $3, $4, 'orders', 0, $5, $6, $7, $8)",
        )
        .bind(SPEC.group_id())
        .bind(key)
        .bind(seq as i64 + 1)
        .bind(&w.id)
        .bind(1_000 + seq as i64)
        .bind(serde_json::to_string(&w.headers)?)
        .bind(w.payload.clone())
        .bind(at)
        .execute(&pool)
        .await?;
    }
    pool.close().await;
    Ok(())
}

/// Rows of `key` still in the parking tables: (parked keys, stored events).
pub async fn still_parked(harness: &Harness, key: &str) -> Result<(i64, i64)> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&harness.database_url).await?;
    let mut counts = [0i64; 2];
    for (n, table) in ["orderflow_parked_keys", "orderflow_parked_events"]
        .iter()
        .enumerate()
    {
        counts[n] = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE message_key = $1"
        ))
        .bind(key)
        .fetch_one(&pool)
        .await?
        .try_get("n")?;
    }
    pool.close().await;
    Ok((counts[0], counts[1]))
}

/// The headers of a retry copy of `w` in a tier, due now, after one failed attempt.
pub fn retry_copy_headers(w: &Written) -> Vec<(String, String)> {
    let now = chrono::Utc::now().timestamp_millis().to_string();
    let mut headers = w.headers.clone();
    for (k, v) in [
        ("attempts", "1".to_string()),
        ("first-failed-at", now.clone()),
        ("due-at", now),
        ("source-topic", "orders".into()),
        ("source-partition", "0".into()),
        ("source-offset", "999".into()),
        ("error", "a test's transient failure".into()),
    ] {
        headers.push((format!("{}{k}", orderflow_runtime::RETRY_HEADER_PREFIX), v));
    }
    headers
}

/// Whether the test handler applied `key`'s event `seq`.
pub fn handled(log: &Mutex<Vec<Handled>>, key: &str, seq: i64) -> bool {
    log.lock()
        .unwrap()
        .iter()
        .any(|h| h.key == key && h.seq == seq)
}
