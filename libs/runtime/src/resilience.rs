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

struct Breaker {
    state: BreakerState,
    /// Calls and failures per second over the last [`WINDOW`], newest last.
    window: VecDeque<Bucket>,
    opened_at: Option<Instant>,
    /// When the trial call of the half-open state began (a trial whose
    /// caller went away without an outcome does not block the next for long).
    trial: Option<Instant>,
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
    /// The start of the breaker's clock.
    epoch: Instant,
}

impl Policy {
    pub fn new(dependency: &'static str) -> Self {
        Self {
            dependency,
            timeout: Duration::from_secs(2),
            attempts: 3,
            base_backoff: Duration::from_millis(50),
            settings: BreakerSettings::default(),
            breaker: Mutex::new(Breaker {
                state: BreakerState::Closed,
                window: VecDeque::with_capacity(WINDOW.as_secs() as usize + 1),
                opened_at: None,
                trial: None,
            }),
            gauge: None,
            epoch: Instant::now(),
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
                let cap = self.base_backoff * 2u32.pow(n - 1);
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

    /// Lets a call through unless the breaker is open; half-open lets one
    /// trial call through at a time.
    fn admit<E>(&self) -> Result<(), CallError<E>> {
        let mut b = self.breaker.lock().expect("breaker lock");
        if b.state == BreakerState::Open {
            if b.opened_at
                .is_some_and(|t| t.elapsed() >= self.settings.open_for)
            {
                b.state = BreakerState::HalfOpen;
                b.trial = None;
                if let Some(gauge) = &self.gauge {
                    gauge.set(BreakerState::HalfOpen.as_gauge());
                }
            } else {
                return Err(CallError::CircuitOpen(self.dependency));
            }
        }
        if b.state == BreakerState::HalfOpen {
            if b.trial.is_some_and(|t| t.elapsed() < self.timeout) {
                return Err(CallError::CircuitOpen(self.dependency));
            }
            b.trial = Some(Instant::now());
        }
        Ok(())
    }

    fn record(&self, success: bool) {
        let mut b = self.breaker.lock().expect("breaker lock");
        self.record_locked(&mut b, success);
        if let Some(gauge) = &self.gauge {
            gauge.set(b.state.as_gauge());
        }
    }

    fn record_locked(&self, b: &mut Breaker, success: bool) {
        if b.state == BreakerState::HalfOpen {
            b.trial = None;
            if success {
                tracing::info!(dependency = self.dependency, "circuit breaker closed");
                b.state = BreakerState::Closed;
                b.window.clear();
                b.opened_at = None;
            } else {
                b.state = BreakerState::Open;
                b.opened_at = Some(Instant::now());
            }
            return;
        }
        let second = self.epoch.elapsed().as_secs();
        while b
            .window
            .front()
            .is_some_and(|front| front.second + WINDOW.as_secs() <= second)
        {
            b.window.pop_front();
        }
        match b.window.back_mut() {
            Some(bucket) if bucket.second == second => {
                bucket.calls += 1;
                bucket.failures += u32::from(!success);
            }
            _ => b.window.push_back(Bucket {
                second,
                calls: 1,
                failures: u32::from(!success),
            }),
        }
        let calls: u32 = b.window.iter().map(|b| b.calls).sum();
        let failed: u32 = b.window.iter().map(|b| b.failures).sum();
        let tripped = calls >= self.settings.minimum_calls
            && failed * 100 >= calls * self.settings.failure_rate;
        if tripped && b.state == BreakerState::Closed {
            tracing::warn!(
                dependency = self.dependency,
                failed,
                of = calls,
                "circuit breaker opened"
            );
            b.state = BreakerState::Open;
            b.opened_at = Some(Instant::now());
        }
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
