//! The chaos soak: orders placed open-loop on real Kafka and PostgreSQL with
//! two replicas of every consumer, while faults land under load — `kill -9`
//! of a random replica every so often, a broker restart, a consumer stopped
//! (SIGSTOP) past its session timeout, duplicated events, poison messages,
//! transient provider failures and a provider outage. At the end nothing may
//! be lost or done twice: every order terminal, stock accounted for, one
//! charge at most and refunds exactly where due, one notification per
//! outcome, dead letters exactly the poison injected (each replayable, and
//! dead-lettered again since it is poison), no lag, no outbox backlog.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use nix::sys::signal::Signal;
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::json;

use crate::checks;
use crate::kafka::Duplicator;
use crate::system::ProcessStack;

/// How hard the soak pushes, and which faults it injects.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub orders: usize,
    /// Orders per second, open loop.
    pub rate: f64,
    /// A `kill -9` of a random replica this often (at least one).
    pub kill_every: Duration,
    /// How long the stopped consumer stays stopped (past its session timeout).
    pub stopped_for: Duration,
    /// How long the provider is down.
    pub outage: Duration,
    /// Share of events written to their topic a second time.
    pub duplicate_ratio: f64,
    /// Share of orders for which a poison message goes onto a domain topic
    /// (at least one in a run).
    pub poison_ratio: f64,
    /// Share of provider calls that fail transiently.
    pub transient_failures: f64,
}

impl ChaosConfig {
    /// The soak `make test` runs: every fault once, about a thousand orders.
    pub fn short() -> Self {
        Self {
            orders: 1_000,
            rate: 50.0,
            kill_every: Duration::from_secs(3_600),
            stopped_for: Duration::from_secs(9),
            outage: Duration::from_secs(5),
            duplicate_ratio: 0.01,
            poison_ratio: 0.001,
            transient_failures: 0.05,
        }
    }

    /// `make chaos`: `ORDERS` (20,000) at `RATE` (100/s), a kill every 30 s,
    /// a 20 s outage.
    pub fn long(orders: usize, rate: f64) -> Self {
        Self {
            orders,
            rate,
            kill_every: Duration::from_secs(30),
            stopped_for: Duration::from_secs(10),
            outage: Duration::from_secs(20),
            ..Self::short()
        }
    }

    fn run_for(&self) -> Duration {
        Duration::from_secs_f64(self.orders as f64 / self.rate)
    }
}

/// One fault, when it landed (seconds into the run) and on what.
#[derive(Debug, Clone)]
pub struct Fault {
    pub at: f64,
    pub what: String,
    /// Seconds from the fault until the consumers' lag was back to what it
    /// was before it; none if it never was before the load ended.
    pub recovered_after: Option<f64>,
    pub peak_lag: i64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub orders: usize,
    pub placing_seconds: f64,
    /// Seconds from the last order placed until every group's lag was 0 and
    /// every outbox empty.
    pub drained_after: f64,
    pub outcomes: BTreeMap<String, usize>,
    pub faults: Vec<Fault>,
    pub duplicated: u64,
    pub poison: BTreeMap<String, u64>,
    pub units_shipped: i64,
    pub charges: u64,
    pub refunds: u64,
    pub notifications: u64,
    pub dead_letters: usize,
    /// Records on the dead-letter topics beyond one per dead letter: a
    /// poison message redelivered (its offset not yet committed when a
    /// fault landed) is dead-lettered again; `dlq list` shows it once.
    pub dead_letter_copies: u32,
    pub replayed_dead_letters: usize,
}

/// The consumers of each domain topic a poison message may land on: each
/// of them dead-letters it.
const POISONED_TOPICS: [(&str, &[&str]); 4] = [
    ("orders", &["order", "inventory", "notification"]),
    ("inventory", &["order", "payment"]),
    (
        "payments",
        &["order", "inventory", "shipping", "notification"],
    ),
    ("shipments", &["order", "inventory", "payment"]),
];

/// Total lag of every consumer group over time (seconds into the run, lag).
type LagLog = Arc<Mutex<Vec<(f64, i64)>>>;

pub async fn soak(stack: &ProcessStack, config: &ChaosConfig) -> Result<Report> {
    let started = Instant::now();
    let secs = move || started.elapsed().as_secs_f64();
    // Stock for every order on SKU-001…009; SKU-010 has none (out of stock).
    let mut initial = BTreeMap::new();
    for i in 1..=10 {
        let sku = format!("SKU-{i:03}");
        let units = if i == 10 { 0 } else { config.orders as i64 };
        stack.set_stock(&sku, units, 100 * i).await?;
        initial.insert(sku, units);
    }
    set_sandbox(stack, config.transient_failures).await?;
    // Dead letters from before the soak (a broker other tests used) are not
    // the soak's: marked reviewed, the listings below leave them out.
    let dlq = orderflow_dlq::DeadLetters::new(orderflow_runtime::LogSource::plain(
        &stack.bootstrap,
        &stack.registry,
    ))?;
    let services: Vec<String> = orderflow_runtime::topics::CONSUMING_SERVICES
        .iter()
        .map(|s| s.to_string())
        .collect();
    dlq.mark_reviewed(&services, None).await?;
    let duplicator = Duplicator::start_sampled(&stack.bootstrap, config.duplicate_ratio, true)?;
    let placed = Arc::new(AtomicU64::new(0));
    let faults: Arc<Mutex<Vec<Fault>>> = Arc::default();
    let lag: LagLog = Arc::default();
    let done = tokio_util::sync::CancellationToken::new();

    let progress = orderflow_api::progress::status("chaos {spinner} {msg}");
    let sampler = {
        let (lag, done, kafka, progress, placed, faults) = (
            lag.clone(),
            done.clone(),
            stack.kafka(),
            progress.clone(),
            placed.clone(),
            faults.clone(),
        );
        let total = config.orders;
        tokio::spawn(async move {
            while !done.is_cancelled() {
                let now = started.elapsed().as_secs_f64();
                if let Ok(l) = crate::idle::total_lag(&kafka, &crate::system::retry_tiers()).await {
                    lag.lock().expect("lag lock").push((now, l));
                    progress.set_message(format!(
                        "placed {}/{total}  faults {}  lag {l}",
                        placed.load(Ordering::Relaxed),
                        faults.lock().expect("faults lock").len()
                    ));
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = done.cancelled() => {}
                }
            }
        })
    };

    let run_for = config.run_for();
    let schedule = inject_faults(stack, config, run_for, secs, faults.clone());
    let load = place_orders(stack, config, placed.clone());
    let (ids, injected) = tokio::join!(load, schedule);
    let (ids, poison) = (ids?, injected?);
    let placing_seconds = secs();
    progress.set_message(format!(
        "{} orders placed; waiting for every one to end",
        ids.len()
    ));

    let views = stack
        .client
        .wait_all_terminal(&ids, Duration::from_secs(900))
        .await
        .context("orders still not terminal 15 minutes after the load")?;
    let duplicated = duplicator.stop().await?;
    stack.wait_idle().await?;
    let drained_after = secs() - placing_seconds;
    done.cancel();
    let _ = sampler.await;
    progress.finish_and_clear();

    let mut report = Report {
        orders: ids.len(),
        placing_seconds,
        drained_after,
        duplicated,
        ..Default::default()
    };
    for v in &views {
        let key = match &v.reason {
            Some(r) => format!("{}({r})", v.status),
            None => v.status.clone(),
        };
        *report.outcomes.entry(key).or_default() += 1;
    }
    report.faults = with_recovery(
        faults.lock().expect("faults lock").clone(),
        &lag.lock().expect("lag lock"),
    );
    let checked = checks::check_invariants(stack, &initial, &views, Some(&stack.databases)).await?;
    // The same promises as an operator's audit reads them: the log and
    // each service's own account.
    stack.audit_clean().await?;
    report.units_shipped = checked.units_shipped;
    report.charges = checked.charges;
    report.refunds = checked.refunds;
    report.notifications = checked.notifications;

    // Dead letters: exactly the poison, once per consumer of its topic.
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for (topic, n) in &poison {
        let consumers = POISONED_TOPICS
            .iter()
            .find(|(t, _)| t == topic)
            .map(|(_, c)| *c)
            .unwrap_or_default();
        for service in consumers {
            *expected.entry(service.to_string()).or_default() += *n as usize;
        }
    }
    report.poison = poison;
    let letters = dlq.list(&orderflow_dlq::Filter::default()).await?.letters;
    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    for l in &letters {
        *found.entry(l.id.service.clone()).or_default() += 1;
        ensure!(
            l.event_type.is_none()
                && l.order_id
                    .as_deref()
                    .is_some_and(|o| o.starts_with("poison-")),
            "a dead letter that is no injected poison: {} {:?} {:?}: {}",
            l.id,
            l.event_type,
            l.order_id,
            l.error
        );
    }
    ensure!(
        found == expected,
        "dead letters per service {found:?}, poison called for {expected:?}"
    );
    report.dead_letters = letters.len();
    report.dead_letter_copies = letters.iter().map(|l| l.copies - 1).sum();
    // Each is replayable, and comes back: it is poison.
    let summary = dlq.replay(&letters, false, false, &|_| {}).await?;
    ensure!(
        summary.replayed == letters.len() && summary.failed == 0,
        "replayed {} of {}: {:?}",
        summary.replayed,
        letters.len(),
        summary.outcomes
    );
    stack.wait_idle().await?;
    let after = dlq.list(&orderflow_dlq::Filter::default()).await?.letters;
    for l in &letters {
        let id = l.id.to_string();
        ensure!(
            after
                .iter()
                .any(|a| a.replayed_from.as_deref() == Some(id.as_str())
                    && a.id.service == l.id.service),
            "the replay of {id} did not come back to {}'s dead letters",
            l.id.service
        );
    }
    report.replayed_dead_letters = summary.replayed;
    Ok(report)
}

async fn set_sandbox(stack: &ProcessStack, failure_rate: f64) -> Result<()> {
    for payment in &stack.payments {
        let response = stack
            .http
            .put(format!("{payment}/v1/sandbox"))
            .json(&json!({"latency_ms": 0, "failure_rate": failure_rate}))
            .send()
            .await;
        // A replica killed just now is restarted with the default weather;
        // the schedule sets it again after every restart.
        if let Ok(r) = response {
            ensure!(
                r.status() == 200,
                "sandbox settings refused: {}",
                r.status()
            );
        }
    }
    Ok(())
}

/// Places `config.orders` orders at `config.rate` per second, each retried
/// with its `Idempotency-Key` until the gateway takes it (the gateway's
/// upstreams get killed too). Returns their ids in order.
async fn place_orders(
    stack: &ProcessStack,
    config: &ChaosConfig,
    placed: Arc<AtomicU64>,
) -> Result<Vec<String>> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let started = tokio::time::Instant::now();
    let run = uuid::Uuid::new_v4().simple().to_string();
    stream::iter(0..config.orders)
        .map(|i| {
            let due = started + Duration::from_secs_f64(i as f64 / config.rate);
            let (run, placed) = (&run, &placed);
            async move {
                tokio::time::sleep_until(due).await;
                let (sku, token, country) = match i % 20 {
                    0 => ("SKU-001", "tok_chargeDeclined", "DE"),
                    1 => ("SKU-002", "tok_visa", "AQ"),
                    2 => ("SKU-010", "tok_visa", "DE"),
                    n => (
                        [
                            "SKU-003", "SKU-004", "SKU-005", "SKU-006", "SKU-007", "SKU-008",
                            "SKU-009",
                        ][n % 7],
                        "tok_visa",
                        "DE",
                    ),
                };
                // A hundred orders per customer at most: the notification API
                // lists a customer's newest 500, and the check reads them there.
                let customers = (config.orders / 100).max(100);
                let body = crate::order_body(
                    &format!("c-chaos-{}", i % customers),
                    sku,
                    1,
                    token,
                    country,
                );
                let key = format!("chaos-{run}-{i}");
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    match stack.post_order(&body, Some(&key)).await {
                        Ok(r) if r.status() == 202 => {
                            let accepted: serde_json::Value = r.json().await?;
                            placed.fetch_add(1, Ordering::Relaxed);
                            return accepted["order_id"]
                                .as_str()
                                .map(str::to_string)
                                .context("order_id");
                        }
                        Ok(r) if r.status().is_client_error() => {
                            bail!("order {i} refused: {} {}", r.status(), r.text().await?)
                        }
                        _ if Instant::now() > deadline => {
                            bail!("order {i} not accepted within 120 s")
                        }
                        _ => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            }
        })
        .buffered(256)
        .try_collect()
        .await
}

/// The fault schedule over a run of `run_for`: kills from early on, the stop
/// at 30 %, the broker restart at 55 %, the outage at 70 %; poison spread
/// over the run. Returns the poison injected, per topic.
async fn inject_faults(
    stack: &ProcessStack,
    config: &ChaosConfig,
    run_for: Duration,
    secs: impl Fn() -> f64,
    faults: Arc<Mutex<Vec<Fault>>>,
) -> Result<BTreeMap<String, u64>> {
    let record = |what: String| {
        tracing::info!("chaos: {what}");
        faults.lock().expect("faults lock").push(Fault {
            at: secs(),
            what,
            recovered_after: None,
            peak_lag: 0,
        });
    };
    let kills = ((run_for.as_secs_f64() / config.kill_every.as_secs_f64()) as usize).max(1);
    let poisons = ((config.orders as f64 * config.poison_ratio).round() as usize).max(1);
    // (fraction of the run, fault)
    let mut plan: Vec<(f64, &str)> = Vec::new();
    for k in 0..kills {
        plan.push(((k as f64 + 0.5) / kills as f64 * 0.9, "kill"));
    }
    plan.push((0.30, "stop"));
    plan.push((0.55, "broker"));
    plan.push((0.70, "outage"));
    for p in 0..poisons {
        plan.push(((p as f64 + 0.5) / poisons as f64, "poison"));
    }
    plan.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut poison: BTreeMap<String, u64> = BTreeMap::new();
    let start = tokio::time::Instant::now();
    let kafka_script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/scripts/kafka.sh");
    for (i, (at, fault)) in plan.into_iter().enumerate() {
        tokio::time::sleep_until(start + run_for.mul_f64(at)).await;
        match fault {
            "kill" => {
                let (service, replica) = *stack
                    .consumers()
                    .choose(&mut rand::rng())
                    .context("no replicas")?;
                stack.kill_9(service, replica)?;
                record(format!("kill -9 {service}#{replica}"));
                tokio::time::sleep(Duration::from_secs(2)).await;
                stack.restart(service, replica).await?;
                if service == "payment" {
                    set_sandbox(stack, config.transient_failures).await?;
                }
            }
            "stop" => {
                // A replica the gateway does not call, so placing goes on.
                let service = ["inventory", "payment", "shipping", "notification", "order"]
                    [rand::rng().random_range(0..5)];
                stack.signal(service, 1, Signal::SIGSTOP)?;
                record(format!("SIGSTOP {service}#1 for {:?}", config.stopped_for));
                tokio::time::sleep(config.stopped_for).await;
                stack.signal(service, 1, Signal::SIGCONT)?;
            }
            "broker" => {
                let status = tokio::process::Command::new("bash")
                    .arg(kafka_script)
                    .arg("restart")
                    .stdout(std::process::Stdio::null())
                    .status()
                    .await?;
                ensure!(status.success(), "kafka.sh restart failed");
                record("broker restart".into());
            }
            "outage" => {
                set_sandbox(stack, 1.0).await?;
                record(format!("payment provider down for {:?}", config.outage));
                tokio::time::sleep(config.outage).await;
                set_sandbox(stack, config.transient_failures).await?;
            }
            _ => {
                let topic = POISONED_TOPICS[i % POISONED_TOPICS.len()].0;
                stack
                    .kafka()
                    .produce_raw(
                        topic,
                        &format!("poison-{i}"),
                        &[],
                        b"\x01poison, not an event",
                    )
                    .await?;
                *poison.entry(topic.to_string()).or_default() += 1;
            }
        }
    }
    Ok(poison)
}

/// For each fault: the highest lag until the next fault, and how long after
/// the fault the lag was back to its level just before it (the median of
/// the ten seconds before, or a hundred messages, whichever is higher).
fn with_recovery(mut faults: Vec<Fault>, lag: &[(f64, i64)]) -> Vec<Fault> {
    let starts: Vec<f64> = faults.iter().map(|f| f.at).collect();
    for (i, f) in faults.iter_mut().enumerate() {
        let mut before: Vec<i64> = lag
            .iter()
            .filter(|(t, _)| *t < f.at && *t >= f.at - 10.0)
            .map(|(_, l)| *l)
            .collect();
        before.sort_unstable();
        let level = before.get(before.len() / 2).copied().unwrap_or(0).max(100);
        let until = starts.get(i + 1).copied().unwrap_or(f64::MAX);
        let window: Vec<&(f64, i64)> = lag
            .iter()
            .filter(|(t, _)| *t >= f.at && *t < until)
            .collect();
        f.peak_lag = window.iter().map(|(_, l)| *l).max().unwrap_or(0);
        let peak_at = window
            .iter()
            .find(|(_, l)| *l == f.peak_lag)
            .map_or(f.at, |(t, _)| *t);
        f.recovered_after = lag
            .iter()
            .find(|(t, l)| *t >= peak_at && *l <= level)
            .map(|(t, _)| t - f.at);
    }
    faults
}

impl Report {
    /// The report as a Markdown table, for the README.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "| | |\n|---|---|");
        let _ = writeln!(
            s,
            "| orders | {} placed in {:.0} s ({:.0}/s); lag 0 and outboxes empty {:.1} s after the last |",
            self.orders,
            self.placing_seconds,
            self.orders as f64 / self.placing_seconds.max(1.0),
            self.drained_after
        );
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(s, "| outcomes (all terminal) | {} |", outcomes.join(", "));
        let _ = writeln!(
            s,
            "| stock | initial − shipped for every SKU, nothing reserved ({} units shipped) |",
            self.units_shipped
        );
        let _ = writeln!(s, "| payments | {} charges (≤ 1 per order, 1 per shipped order), {} refunds (exactly the SHIPPING_FAILED orders) |", self.charges, self.refunds);
        let _ = writeln!(
            s,
            "| notifications | {} (exactly one per outcome per order) |",
            self.notifications
        );
        let poison: u64 = self.poison.values().sum();
        let _ = writeln!(
            s,
            "| dead letters | {} = the {poison} poison messages once per consumer of their topic ({:?}; {} extra copies of redelivered ones); all {} replayed and dead-lettered again |",
            self.dead_letters, self.poison, self.dead_letter_copies, self.replayed_dead_letters
        );
        let _ = writeln!(s, "| duplicated events | {} |", self.duplicated);
        for f in &self.faults {
            let recovered = f
                .recovered_after
                .map_or("not before the load ended".to_string(), |r| {
                    format!("{r:.0} s")
                });
            let _ = writeln!(
                s,
                "| {} at {:.0} s | peak lag {}, back to its level after {recovered} |",
                f.what, f.at, f.peak_lag
            );
        }
        s
    }
}
