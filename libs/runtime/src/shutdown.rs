//! The process's shutdown signal, and the time a stop may take.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Resolves on SIGTERM (what Kubernetes sends) or Ctrl-C.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown signal received");
}

/// The time a stop may take in all, from the signal: the pod's grace period
/// less its preStop sleep, with a margin. Each step of a stop (in-flight
/// work, the final commits, leaving the group, HTTP requests, the outbox)
/// waits at most its own limit and never past the budget, so the process
/// exits before the kubelet kills it.
#[derive(Clone)]
pub struct Budget {
    total: Duration,
    started: Arc<OnceLock<Instant>>,
}

impl Budget {
    pub fn new(total: Duration) -> Self {
        Self {
            total,
            started: Arc::new(OnceLock::new()),
        }
    }

    /// The stop begins now (the first call counts).
    pub fn start(&self) {
        let _ = self.started.set(Instant::now());
    }

    /// How long a step may wait: at most `most`, and nothing once the
    /// budget is spent. Before the stop begins, `most`.
    pub fn left(&self, most: Duration) -> Duration {
        match self.started.get() {
            Some(started) => most.min(self.total.saturating_sub(started.elapsed())),
            None => most,
        }
    }

    /// As [`Budget::left`], keeping `keep` of what is left for the steps
    /// after this one.
    pub fn left_keeping(&self, most: Duration, keep: Duration) -> Duration {
        match self.started.get() {
            Some(_) => self
                .left(most)
                .min(self.left(Duration::MAX).saturating_sub(keep)),
            None => most,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_waits_its_own_limit_within_what_the_budget_has_left() {
        let budget = Budget::new(Duration::from_secs(30));
        assert_eq!(
            budget.left(Duration::from_secs(10)),
            Duration::from_secs(10)
        );
        budget.start();
        assert_eq!(
            budget.left(Duration::from_secs(10)),
            Duration::from_secs(10)
        );
        let left = budget.left(Duration::from_secs(60));
        assert!(
            left <= Duration::from_secs(30) && left > Duration::from_secs(29),
            "{left:?}"
        );
        let keeping = budget.left_keeping(Duration::from_secs(60), Duration::from_secs(25));
        assert!(
            keeping <= Duration::from_secs(5) && keeping > Duration::from_secs(4),
            "{keeping:?}"
        );
        let spent = Budget::new(Duration::ZERO);
        spent.start();
        assert_eq!(spent.left(Duration::from_secs(10)), Duration::ZERO);
        assert_eq!(
            spent.left_keeping(Duration::from_secs(10), Duration::from_secs(1)),
            Duration::ZERO
        );
    }
}
