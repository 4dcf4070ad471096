//! Calls to things outside orderflow (payment provider, notification channels)
//! go through one policy: a timeout per attempt, retries with exponential
//! backoff and full jitter, and a circuit breaker that fails fast while the
//! dependency is down instead of piling up waiting calls. The breaker looks
//! at the share of failed calls over the last ten seconds, not at a run of
//! consecutive failures or a count of calls: with hundreds of calls in
//! flight "consecutive" means little, and a few failing requests among many
//! good ones (one customer's flaky card) must not stop everyone's payments.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

/// How a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError<E> {
    /// The dependency answered with an error that retrying cannot fix.
    #[error("{0}")]
    Rejected(E),
    /// Every attempt timed out or failed transiently.
    #[error("{dependency} failed after {attempts} attempts: {last}")]
    Exhausted {
        dependency: &'static str,
        attempts: u32,
        last: String,
    },
    /// The breaker is open: the dependency failed repeatedly just now.
    #[error("{0} is failing; circuit breaker open")]
    CircuitOpen(&'static str),
}

/// What a single attempt's error means for the policy.
pub trait Retryable {
    fn is_retryable(&self) -> bool;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// 0 closed, 1 half-open, 2 open: the value the metrics export.
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// The breaker's decisions, with the clock passed in (so that tests can
/// drive it): whether a call may go ahead, and what an outcome changes.
struct Breaker {
    state: BreakerState,
    /// Calls and failures per second over the last [`WINDOW`], newest last.
    window: VecDeque<Bucket>,
    opened_at: Option<Instant>,
    /// When the trial call of the half-open state began (a trial whose
    /// caller went away without an outcome does not block the next for long).
    trial: Option<Instant>,
    /// The start of the breaker's clock: buckets are whole seconds from it.
    epoch: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    second: u64,
    calls: u32,
    failures: u32,
}

/// How far back the breaker looks.
const WINDOW: Duration = Duration::from_secs(10);

/// When the circuit breaker opens, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    /// Percentage of failed calls in the window.
    pub failure_rate: u32,
    /// Calls in the window before the breaker judges at all.
    pub minimum_calls: u32,
    pub open_for: Duration,
}

impl Default for BreakerSettings {
    /// Half the calls of the last ten seconds failed, twenty calls at least:
    /// open for ten seconds.
    fn default() -> Self {
        Self {
            failure_rate: 50,
            minimum_calls: 20,
            open_for: Duration::from_secs(10),
        }
    }
}

/// Timeout, retry and circuit breaker for one dependency.
pub struct Policy {
    dependency: &'static str,
    timeout: Duration,
    attempts: u32,
    base_backoff: Duration,
    settings: BreakerSettings,
    breaker: Mutex<Breaker>,
    /// The breaker's state as the metrics show it, when wired to them.
    gauge: Option<prometheus_client::metrics::gauge::Gauge>,
}

impl Policy {
    pub fn new(dependency: &'static str) -> Self {
        Self {
            dependency,
            timeout: Duration::from_secs(2),
            attempts: 3,
            base_backoff: Duration::from_millis(50),
            settings: BreakerSettings::default(),
            breaker: Mutex::new(Breaker::new(Instant::now())),
            gauge: None,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Opens when at least `failure_rate` percent of the calls of the last
    /// ten seconds failed (once there were `minimum_calls` of them), for
    /// `open_for`.
    pub fn with_breaker(mut self, settings: BreakerSettings) -> Self {
        self.settings = BreakerSettings {
            failure_rate: settings.failure_rate.clamp(1, 100),
            minimum_calls: settings.minimum_calls.max(1),
            open_for: settings.open_for,
        };
        self
    }

    /// Exports the breaker's state as `orderflow_circuit_breaker_state{dependency}`.
    pub fn with_metrics(mut self, metrics: &orderflow_telemetry::Metrics) -> Self {
        let labels = orderflow_telemetry::metrics_types::DependencyLabels {
            dependency: self.dependency,
        };
        let gauge = metrics.circuit_breaker_state.get_or_create(&labels).clone();
        gauge.set(BreakerState::Closed.as_gauge());
        self.gauge = Some(gauge);
        self
    }

    pub fn state(&self) -> BreakerState {
        self.breaker.lock().expect("breaker lock").state
    }

    /// Runs `attempt` under the policy.
    pub async fn call<T, E, F, Fut>(&self, mut attempt: F) -> Result<T, CallError<E>>
    where
        E: Retryable + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.admit()?;
        let mut last = String::new();
        for n in 1..=self.attempts {
            match tokio::time::timeout(self.timeout, attempt()).await {
                Ok(Ok(value)) => {
                    self.record(true);
                    return Ok(value);
                }
                Ok(Err(e)) if !e.is_retryable() => {
                    // The dependency is up and said no: that is not an outage.
                    self.record(true);
                    return Err(CallError::Rejected(e));
                }
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = format!("timed out after {:?}", self.timeout),
            }
            if n < self.attempts {
                let cap = backoff_cap(self.base_backoff, n);
                let jitter = rand::rng().random_range(0..=cap.as_millis() as u64);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
        }
        self.record(false);
        Err(CallError::Exhausted {
            dependency: self.dependency,
            attempts: self.attempts,
            last,
        })
    }

    /// How long one call under this policy can take: every attempt's timeout
    /// and the longest backoff between them. A half-open trial counts as
    /// under way that long (one attempt's timeout let several trials run at
    /// once while the first was still retrying).
    fn call_bound(&self) -> Duration {
        let backoffs: Duration = (1..self.attempts)
            .map(|n| backoff_cap(self.base_backoff, n))
            .sum();
        self.timeout * self.attempts + backoffs
    }

    /// Lets a call through unless the breaker is open; half-open lets one
    /// trial call through at a time.
    fn admit<E>(&self) -> Result<(), CallError<E>> {
        let mut b = self.breaker.lock().expect("breaker lock");
        let admitted = b.admit(Instant::now(), &self.settings, self.call_bound());
        self.show(b.state);
        if admitted {
            Ok(())
        } else {
            Err(CallError::CircuitOpen(self.dependency))
        }
    }

    fn record(&self, success: bool) {
        let mut b = self.breaker.lock().expect("breaker lock");
        let before = b.state;
        b.record(Instant::now(), success, &self.settings);
        match (before, b.state) {
            (BreakerState::Closed, BreakerState::Open) => {
                let (failed, of) = b.counts();
                tracing::warn!(
                    dependency = self.dependency,
                    failed,
                    of,
                    "circuit breaker opened"
                );
            }
            (BreakerState::HalfOpen, BreakerState::Closed) => {
                tracing::info!(dependency = self.dependency, "circuit breaker closed")
            }
            _ => {}
        }
        self.show(b.state);
    }

    fn show(&self, state: BreakerState) {
        if let Some(gauge) = &self.gauge {
            gauge.set(state.as_gauge());
        }
    }
}

/// The most a retry waits before its `attempt`-th retry (from 1): the base,
/// doubled for each attempt before it. The wait itself is drawn from zero
/// up to this (full jitter).
fn backoff_cap(base: Duration, attempt: u32) -> Duration {
    base * 2u32.pow(attempt.saturating_sub(1))
}

impl Breaker {
    fn new(epoch: Instant) -> Self {
        Self {
            state: BreakerState::Closed,
            window: VecDeque::with_capacity(WINDOW.as_secs() as usize + 1),
            opened_at: None,
            trial: None,
            epoch,
        }
    }

    /// Whether a call may start at `now`. An open breaker whose time is up
    /// becomes half-open, which admits one trial call at a time: another
    /// only once the trial has an outcome or ran past `trial_timeout`.
    fn admit(&mut self, now: Instant, settings: &BreakerSettings, trial_timeout: Duration) -> bool {
        if self.state == BreakerState::Open {
            let opened = self.opened_at.unwrap_or(now);
            if now.saturating_duration_since(opened) < settings.open_for {
                return false;
            }
            self.state = BreakerState::HalfOpen;
            self.trial = None;
        }
        if self.state == BreakerState::HalfOpen {
            if self
                .trial
                .is_some_and(|t| now.saturating_duration_since(t) < trial_timeout)
            {
                return false;
            }
            self.trial = Some(now);
        }
        true
    }

    /// A call's outcome at `now`. Half-open: the trial decides (closed on
    /// success, open again on failure). Closed: it joins its second's
    /// bucket, buckets older than the window go, and the breaker opens when
    /// enough calls were made and enough of them failed.
    fn record(&mut self, now: Instant, success: bool, settings: &BreakerSettings) {
        if self.state == BreakerState::HalfOpen {
            self.trial = None;
            if success {
                self.state = BreakerState::Closed;
                self.window.clear();
                self.opened_at = None;
            } else {
                self.state = BreakerState::Open;
                self.opened_at = Some(now);
            }
            return;
        }
        let second = now.saturating_duration_since(self.epoch).as_secs();
        while self
            .window
            .front()
            .is_some_and(|front| front.second + WINDOW.as_secs() <= second)
        {
            self.window.pop_front();
        }
        match self.window.back_mut() {
            Some(bucket) if bucket.second == second => {
                bucket.calls += 1;
                bucket.failures += u32::from(!success);
            }
            _ => self.window.push_back(Bucket {
                second,
                calls: 1,
                failures: u32::from(!success),
            }),
        }
        let (failed, calls) = self.counts();
        let tripped =
            calls >= settings.minimum_calls && failed * 100 >= calls * settings.failure_rate;
        if tripped && self.state == BreakerState::Closed {
            self.state = BreakerState::Open;
            self.opened_at = Some(now);
        }
    }

    /// (failed, all) calls in the window.
    fn counts(&self) -> (u32, u32) {
        self.window
            .iter()
            .fold((0, 0), |(f, c), b| (f + b.failures, c + b.calls))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[derive(Debug)]
    struct Flaky(bool);
    impl Retryable for Flaky {
        fn is_retryable(&self) -> bool {
            self.0
        }
    }
    impl std::fmt::Display for Flaky {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "flaky({})", self.0)
        }
    }

    fn settings(minimum_calls: u32, failure_rate: u32) -> BreakerSettings {
        BreakerSettings {
            failure_rate,
            minimum_calls,
            open_for: Duration::from_secs(10),
        }
    }

    #[test]
    fn the_breaker_judges_only_from_the_minimum_number_of_calls() {
        let (t0, s) = (Instant::now(), settings(4, 50));
        let mut b = Breaker::new(t0);
        for _ in 0..3 {
            b.record(t0, false, &s);
        }
        assert_eq!(
            b.state,
            BreakerState::Closed,
            "three calls are not enough to judge"
        );
        b.record(t0, false, &s);
        assert_eq!(b.state, BreakerState::Open);
    }

    #[test]
    fn the_breaker_opens_at_exactly_its_failure_rate() {
        let (t0, s) = (Instant::now(), settings(4, 50));
        let mut quarter = Breaker::new(t0);
        for ok in [true, true, true, false] {
            quarter.record(t0, ok, &s);
        }
        assert_eq!(quarter.counts(), (1, 4));
        assert_eq!(quarter.state, BreakerState::Closed, "25% failed");
        let mut half = Breaker::new(t0);
        for ok in [true, false, true, false] {
            half.record(t0, ok, &s);
        }
        assert_eq!(half.state, BreakerState::Open, "50% failed");
        assert_eq!(half.opened_at, Some(t0));
    }

    #[test]
    fn calls_older_than_the_window_are_forgotten_and_a_second_is_one_bucket() {
        let (t0, s) = (Instant::now(), settings(4, 50));
        let mut b = Breaker::new(t0);
        for _ in 0..3 {
            b.record(t0, false, &s);
        }
        // Ten seconds on, those three are out of the window.
        b.record(t0 + Duration::from_secs(10), false, &s);
        assert_eq!((b.state, b.counts()), (BreakerState::Closed, (1, 1)));
        let mut b = Breaker::new(t0);
        for _ in 0..3 {
            b.record(t0, false, &s);
        }
        // A call five seconds on has a bucket of its own: it outlives the
        // first second's calls by five seconds.
        let mut b = Breaker::new(t0);
        for _ in 0..3 {
            b.record(t0, false, &s);
        }
        b.record(t0 + Duration::from_secs(5), true, &s);
        b.record(t0 + Duration::from_secs(10), true, &s);
        assert_eq!(
            b.counts(),
            (0, 2),
            "the t0 calls went, the t0+5 s one stayed"
        );
        let mut b = Breaker::new(t0);
        for _ in 0..3 {
            b.record(t0, false, &s);
        }
        // Nine seconds on, they still count.
        b.record(t0 + Duration::from_millis(9_999), false, &s);
        assert_eq!(b.state, BreakerState::Open);
        // Many calls in one second take one bucket: memory stays bounded.
        let mut b = Breaker::new(t0);
        for i in 0..1000 {
            b.record(
                t0 + Duration::from_millis(i % 1000),
                true,
                &settings(20, 50),
            );
        }
        assert_eq!(b.window.len(), 1);
        assert_eq!(b.counts(), (0, 1000));
    }

    #[test]
    fn an_open_breaker_refuses_until_its_time_is_up_then_lets_one_trial_through() {
        let (t0, s) = (Instant::now(), settings(1, 50));
        let trial_timeout = Duration::from_secs(2);
        let mut b = Breaker::new(t0);
        b.record(t0, false, &s);
        assert_eq!(b.state, BreakerState::Open);
        assert!(!b.admit(t0 + Duration::from_millis(9_999), &s, trial_timeout));
        assert_eq!(b.state, BreakerState::Open);
        let t1 = t0 + Duration::from_secs(10);
        assert!(b.admit(t1, &s, trial_timeout), "the trial call");
        assert_eq!(b.state, BreakerState::HalfOpen);
        assert!(
            !b.admit(t1 + Duration::from_millis(1), &s, trial_timeout),
            "one trial at a time"
        );
        assert!(
            !b.admit(t1 + Duration::from_millis(1_999), &s, trial_timeout),
            "the trial is still under way"
        );
        // The trial's caller went away without an outcome: another may try.
        let t2 = t1 + trial_timeout;
        assert!(b.admit(t2, &s, trial_timeout));
        // That trial fails: open again, for the full time from now.
        b.record(t2, false, &s);
        assert_eq!((b.state, b.opened_at), (BreakerState::Open, Some(t2)));
        assert!(!b.admit(t2 + Duration::from_millis(9_999), &s, trial_timeout));
        let t3 = t2 + Duration::from_secs(10);
        assert!(b.admit(t3, &s, trial_timeout));
        b.record(t3, true, &s);
        assert_eq!((b.state, b.counts()), (BreakerState::Closed, (0, 0)));
        assert!(b.admit(t3, &s, trial_timeout) && b.admit(t3, &s, trial_timeout));
    }

    #[tokio::test]
    async fn the_breaker_state_is_exported_as_it_changes() {
        let metrics = orderflow_telemetry::Metrics::new();
        let policy = Policy::new("test-dependency")
            .with_attempts(1)
            .with_breaker(BreakerSettings {
                minimum_calls: 2,
                open_for: Duration::from_millis(50),
                ..Default::default()
            })
            .with_metrics(&metrics);
        let gauge = || {
            metrics
                .encode()
                .lines()
                .find(|l| {
                    l.starts_with("orderflow_circuit_breaker_state{dependency=\"test-dependency\"}")
                })
                .and_then(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        };
        assert_eq!(gauge(), Some(0));
        for _ in 0..2 {
            let _: Result<(), _> = policy.call(|| async { Err(Flaky(true)) }).await;
        }
        assert_eq!(gauge(), Some(2), "open");
        tokio::time::sleep(Duration::from_millis(60)).await;
        let ok: Result<(), CallError<Flaky>> = policy.call(|| async { Ok(()) }).await;
        assert!(ok.is_ok());
        assert_eq!(gauge(), Some(0), "closed again after the trial");
    }

    #[test]
    fn the_gauge_reads_closed_half_open_open_as_0_1_2() {
        assert_eq!(
            [
                BreakerState::Closed,
                BreakerState::HalfOpen,
                BreakerState::Open
            ]
            .map(BreakerState::as_gauge),
            [0, 1, 2]
        );
    }

    #[test]
    fn retries_wait_up_to_a_doubling_cap() {
        let base = Duration::from_millis(50);
        assert_eq!(
            [1, 2, 3, 4].map(|n| backoff_cap(base, n)),
            [50, 100, 200, 400].map(Duration::from_millis)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_waits_between_attempts_and_never_after_the_last() {
        let failing = || async { Err::<(), _>(Flaky(true)) };
        let mut once = Policy::new("test").with_attempts(1);
        once.base_backoff = Duration::from_secs(1_000);
        let started = tokio::time::Instant::now();
        assert!(once.call(failing).await.is_err());
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "no wait after the only attempt"
        );
        let mut twice = Policy::new("test").with_attempts(2);
        twice.base_backoff = Duration::from_secs(1_000);
        let started = tokio::time::Instant::now();
        assert!(twice.call(failing).await.is_err());
        let waited = started.elapsed();
        assert!(
            waited > Duration::ZERO && waited <= Duration::from_secs(1_000),
            "one wait of up to the base: {waited:?}"
        );
    }

    #[tokio::test]
    async fn retries_transient_failures_then_succeeds() {
        let calls = AtomicU32::new(0);
        let policy = Policy::new("test").with_attempts(3);
        let result = policy
            .call(|| async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(Flaky(true))
                } else {
                    Ok(7)
                }
            })
            .await;
        assert!(matches!(result, Ok(7)), "{result:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_rejection_is_not_retried() {
        let calls = AtomicU32::new(0);
        let policy = Policy::new("test");
        let result: Result<(), _> = policy
            .call(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Flaky(false))
            })
            .await;
        assert!(matches!(result, Err(CallError::Rejected(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(policy.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_few_failures_among_many_successes_keep_the_breaker_closed() {
        let policy = Policy::new("test").with_attempts(1);
        let ok = || async { Ok::<(), Flaky>(()) };
        for _ in 0..40 {
            let _ = policy.call(ok).await;
        }
        // Failures in a row, but a small share of the calls.
        for _ in 0..15 {
            let _: Result<(), _> = policy.call(|| async { Err(Flaky(true)) }).await;
        }
        assert_eq!(policy.state(), BreakerState::Closed);
        for i in 0..100 {
            let _: Result<(), _> = policy
                .call(|| async move {
                    if i % 10 == 0 {
                        Err(Flaky(true))
                    } else {
                        Ok(())
                    }
                })
                .await;
        }
        assert_eq!(policy.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn the_breaker_half_opens_after_a_while_and_closes_on_a_good_trial() {
        let policy = Policy::new("test")
            .with_attempts(1)
            .with_breaker(BreakerSettings {
                open_for: Duration::from_millis(50),
                ..Default::default()
            });
        for _ in 0..20 {
            let _: Result<(), _> = policy.call(|| async { Err(Flaky(true)) }).await;
        }
        assert_eq!(policy.state(), BreakerState::Open);
        tokio::time::sleep(Duration::from_millis(60)).await;
        // A failing trial opens it again at once.
        let _: Result<(), _> = policy.call(|| async { Err(Flaky(true)) }).await;
        assert_eq!(policy.state(), BreakerState::Open);
        tokio::time::sleep(Duration::from_millis(60)).await;
        let trial: Result<u8, CallError<Flaky>> = policy.call(|| async { Ok(1) }).await;
        assert!(matches!(trial, Ok(1)));
        assert_eq!(policy.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn the_breaker_opens_when_most_calls_fail_and_then_fails_fast() {
        let policy = Policy::new("test")
            .with_attempts(1)
            .with_breaker(BreakerSettings {
                open_for: Duration::from_secs(60),
                ..Default::default()
            });
        for _ in 0..20 {
            let _: Result<(), _> = policy.call(|| async { Err(Flaky(true)) }).await;
        }
        assert_eq!(policy.state(), BreakerState::Open);
        let calls = AtomicU32::new(0);
        let result: Result<(), CallError<Flaky>> = policy
            .call(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(matches!(result, Err(CallError::CircuitOpen("test"))));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_call_is_bounded_by_its_attempts_timeouts_and_backoffs() {
        let policy = Policy::new("test")
            .with_attempts(3)
            .with_timeout(Duration::from_millis(40));
        // 3 × 40 ms, and the backoffs after the first and second attempt (50, 100 ms).
        assert_eq!(policy.call_bound(), Duration::from_millis(270));
        let once = Policy::new("test")
            .with_attempts(1)
            .with_timeout(Duration::from_millis(40));
        assert_eq!(once.call_bound(), Duration::from_millis(40));
    }

    /// A trial that retries takes longer than one attempt's timeout; while it
    /// is under way it is the only call let through.
    #[tokio::test]
    async fn a_half_open_trial_that_retries_is_the_only_call_let_through() {
        let policy = std::sync::Arc::new(
            Policy::new("test")
                .with_attempts(3)
                .with_timeout(Duration::from_millis(40))
                .with_breaker(BreakerSettings {
                    minimum_calls: 1,
                    open_for: Duration::from_millis(50),
                    ..Default::default()
                }),
        );
        let _: Result<(), _> = policy.call(|| async { Err(Flaky(true)) }).await;
        assert_eq!(policy.state(), BreakerState::Open);
        tokio::time::sleep(Duration::from_millis(60)).await;
        let trial = {
            let policy = policy.clone();
            tokio::spawn(async move {
                let slow: Result<(), CallError<Flaky>> = policy
                    .call(|| async {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        Ok(())
                    })
                    .await;
                slow
            })
        };
        // Past one attempt's timeout, the trial is still retrying.
        tokio::time::sleep(Duration::from_millis(70)).await;
        let second: Result<(), CallError<Flaky>> = policy.call(|| async { Ok(()) }).await;
        assert!(
            matches!(second, Err(CallError::CircuitOpen("test"))),
            "a second trial while the first runs: {second:?}"
        );
        assert!(trial.await.expect("the trial ran").is_err());
        assert_eq!(
            policy.state(),
            BreakerState::Open,
            "the failed trial opened it"
        );
    }

    #[tokio::test]
    async fn a_slow_call_times_out() {
        let policy = Policy::new("test")
            .with_attempts(1)
            .with_timeout(Duration::from_millis(20));
        let result: Result<(), CallError<Flaky>> = policy
            .call(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            })
            .await;
        assert!(
            matches!(result, Err(CallError::Exhausted { .. })),
            "{result:?}"
        );
    }
}
