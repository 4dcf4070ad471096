//! The retry schedule. A transient failure never waits in its partition: the
//! event is copied to a retry topic of the service, one topic per delay tier,
//! so every message of a tier topic has the same delay, due times only grow
//! along a partition, and a consumer waits for the head only (pausing the
//! partition, never sleeping or spinning). Fast tiers (1 s, 4 s, 9 s) are
//! followed by slow ones (1 min, 5 min, 15 min), the last repeating until the
//! step's deadline, counted from the first failure; then the step fails in
//! domain terms or is dead-lettered. The schedule is pure; the headers carry
//! what must survive a restart.

use std::time::Duration;

/// Every header the runtime adds to a retry copy starts with this.
pub const RETRY_HEADER_PREFIX: &str = "x-orderflow-retry-";

/// Where a message was first received: retry copies and dead letters keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// How often an event has failed, from its retry headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryState {
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the first attempt failed, in ms since the epoch.
    pub first_failed_at: i64,
    /// When this copy may run, in ms since the epoch.
    pub due_at: i64,
    /// Its step's deadline passed with the outcome unknown: it goes back to
    /// the deadline step (which resolves the outcome), not to its handler.
    pub resolving: bool,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Copy it to the tier topic with this delay; it runs at `due_at`.
    Retry { tier: Duration, due_at: i64 },
    /// The step's deadline passed: give up on it.
    DeadlinePassed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    tiers: Vec<Duration>,
    deadline: Duration,
}

impl RetrySchedule {
    /// `tiers` in order; the last one repeats until `deadline`.
    pub fn new(tiers: Vec<Duration>, deadline: Duration) -> Self {
        assert!(!tiers.is_empty(), "at least one retry tier");
        Self { tiers, deadline }
    }

    /// The last tier (the one that repeats), where an event waits whose deadline passed
    /// while its outcome is still being resolved.
    pub fn last_tier(&self) -> Duration {
        *self.tiers.last().expect("at least one retry tier")
    }

    /// What to do after the `attempts`-th failed attempt, the first having
    /// failed at `first_failed_at`.
    pub fn after_failure(&self, attempts: u32, first_failed_at: i64, now: i64) -> NextStep {
        let deadline = first_failed_at.saturating_add(self.deadline.as_millis() as i64);
        if now >= deadline {
            return NextStep::DeadlinePassed;
        }
        let index = (attempts.max(1) as usize - 1).min(self.tiers.len() - 1);
        let tier = self.tiers[index];
        NextStep::Retry {
            tier,
            due_at: now + tier.as_millis() as i64,
        }
    }
}

/// The name of a tier's topic: `<service>.retry.<delay>`, e.g. `payment.retry.4s`.
pub fn tier_topic(service: &str, tier: Duration) -> String {
    format!("{service}.retry.{}", tier_label(tier))
}

/// `1s`, `15m`, `2h`, or milliseconds when it is not a whole number of those.
pub fn tier_label(tier: Duration) -> String {
    let ms = tier.as_millis();
    if ms > 0 && ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms > 0 && ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms > 0 && ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

impl RetryState {
    /// The retry headers among `pairs`, if the message is a retry copy.
    pub fn from_headers<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Option<Self> {
        let mut attempts = None;
        let mut first = None;
        let mut due = None;
        let mut topic = None;
        let mut partition = None;
        let mut offset = None;
        let mut resolving = false;
        for (k, v) in pairs {
            let Some(name) = k.strip_prefix(RETRY_HEADER_PREFIX) else {
                continue;
            };
            let v = std::str::from_utf8(v).ok();
            match name {
                "attempts" => attempts = v.and_then(|v| v.parse().ok()),
                "first-failed-at" => first = v.and_then(|v| v.parse().ok()),
                "due-at" => due = v.and_then(|v| v.parse().ok()),
                "source-topic" => topic = v.map(str::to_string),
                "source-partition" => partition = v.and_then(|v| v.parse().ok()),
                "source-offset" => offset = v.and_then(|v| v.parse().ok()),
                "resolving" => resolving = v == Some("1"),
                _ => {}
            }
        }
        Some(Self {
            attempts: attempts?,
            first_failed_at: first?,
            due_at: due?,
            resolving,
            source: Source {
                topic: topic?,
                partition: partition?,
                offset: offset?,
            },
        })
    }

    /// The headers of the next retry copy: the event's own headers (without
    /// older retry headers) followed by these.
    pub fn to_headers(&self, error: &str) -> Vec<(String, Vec<u8>)> {
        let error: String = error.chars().take(1_000).collect();
        [
            ("attempts", self.attempts.to_string()),
            ("first-failed-at", self.first_failed_at.to_string()),
            ("due-at", self.due_at.to_string()),
            ("source-topic", self.source.topic.clone()),
            ("source-partition", self.source.partition.to_string()),
            ("source-offset", self.source.offset.to_string()),
            ("error", error),
        ]
        .into_iter()
        .chain(self.resolving.then(|| ("resolving", "1".to_string())))
        .map(|(k, v)| (format!("{RETRY_HEADER_PREFIX}{k}"), v.into_bytes()))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &[u64]) -> Vec<Duration> {
        s.iter().map(|&s| Duration::from_secs(s)).collect()
    }

    #[test]
    fn fast_tiers_then_slow_ones_then_the_last_repeats_until_the_deadline() {
        let schedule =
            RetrySchedule::new(secs(&[1, 4, 9, 60, 300, 900]), Duration::from_secs(3600));
        let t0 = 1_000_000;
        let mut now = t0;
        let mut delays = Vec::new();
        for attempts in 1.. {
            match schedule.after_failure(attempts, t0, now) {
                NextStep::Retry { tier, due_at } => {
                    delays.push(tier.as_secs());
                    now = due_at;
                }
                NextStep::DeadlinePassed => break,
            }
        }
        assert_eq!(delays, vec![1, 4, 9, 60, 300, 900, 900, 900, 900]);
        assert!(now - t0 >= 3_600_000, "gave up only after the deadline");
        // Where an event waits once its deadline passed with its outcome unknown.
        assert_eq!(schedule.last_tier(), Duration::from_secs(900));
        let one = RetrySchedule::new(secs(&[7]), Duration::from_secs(60));
        assert_eq!(one.last_tier(), Duration::from_secs(7));
    }

    #[test]
    fn tier_topics_are_named_by_their_delay() {
        assert_eq!(
            tier_topic("payment", Duration::from_secs(4)),
            "payment.retry.4s"
        );
        assert_eq!(
            tier_topic("payment", Duration::from_secs(900)),
            "payment.retry.15m"
        );
        assert_eq!(
            tier_topic("payment", Duration::from_secs(7200)),
            "payment.retry.2h"
        );
        assert_eq!(
            tier_topic("payment", Duration::from_millis(250)),
            "payment.retry.250ms"
        );
        assert_eq!(tier_label(Duration::ZERO), "0ms");
        assert_eq!(tier_label(Duration::from_millis(60_500)), "60500ms");
        assert_eq!(tier_label(Duration::from_secs(90)), "90s");
    }

    #[test]
    fn retry_headers_round_trip() {
        let state = RetryState {
            attempts: 2,
            first_failed_at: 10,
            due_at: 20,
            resolving: true,
            source: Source {
                topic: "inventory".into(),
                partition: 3,
                offset: 42,
            },
        };
        let headers = state.to_headers("timed out");
        let pairs = headers.iter().map(|(k, v)| (k.as_str(), v.as_slice()));
        assert_eq!(RetryState::from_headers(pairs), Some(state.clone()));
        assert_eq!(RetryState::from_headers([("ce_id", b"x".as_slice())]), None);
        let plain = RetryState {
            resolving: false,
            ..state
        };
        let headers = plain.to_headers("timed out");
        assert_eq!(headers.len(), 7, "no resolving header on a plain retry");
        let pairs = headers.iter().map(|(k, v)| (k.as_str(), v.as_slice()));
        assert_eq!(RetryState::from_headers(pairs), Some(plain));
    }
}
