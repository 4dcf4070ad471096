//! Replacing a stuck producer ([`super::stall`]) by a new one, and
//! destroying the old one off the async threads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{Generation, Producer};

/// A producer taken out of use. Destroying it fails what it still holds
/// (librdkafka purges its queues: every waiting send gets an error at once
/// and is sent again by its caller) and blocks for up to a second or so.
pub struct Retired(Arc<Generation>);

impl Retired {
    /// Destroys the producer, once no send holds it any more; blocks, so
    /// not on an async thread.
    pub fn destroy(self) {
        let mut held = self.0;
        loop {
            match Arc::try_unwrap(held) {
                Ok(generation) => {
                    let stall = generation.stall.clone();
                    drop(generation);
                    return stall.close();
                }
                Err(still) => {
                    held = still;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

impl Producer {
    /// Replaces the producer by a new one if it is stuck (a message waiting
    /// for [`super::STALL_LIMIT`] up to `now`); returns why, and the old one.
    pub fn replace_if_stuck(&self, now: Instant) -> Option<(String, Retired)> {
        self.current().stall.stuck(now)?;
        let mut current = self.current.write().expect("producer lock");
        let why = current.stall.stuck(now)?;
        let new = match Generation::new(&self.client) {
            Ok(new) => new,
            Err(e) => {
                tracing::warn!(error = %e, why, "the Kafka producer is stuck and no new one could be made");
                return None;
            }
        };
        tracing::warn!(
            why,
            "the Kafka producer is stuck; it is replaced by a new one"
        );
        let old = std::mem::replace(&mut *current, Arc::new(new));
        Some((why, Retired(old)))
    }

    /// Replaces the producer whenever it is stuck, until `stop`.
    pub async fn watch(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = stop.cancelled() => return,
            }
            if let Some((_, retired)) = self.replace_if_stuck(Instant::now()) {
                let _ = tokio::task::spawn_blocking(move || retired.destroy()).await;
            }
        }
    }
}
