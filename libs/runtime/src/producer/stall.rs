//! Whether a producer still delivers: messages waiting for their delivery
//! reports, and none delivered for [`STALL_LIMIT`], means it is stuck.
//!
//! Observed with librdkafka 2.12.1 and Kafka 4.3 in the chaos soak: after a
//! broker restart, one replica's producer logged "new leader-1 not found in
//! cache" for a partition and never sent to it again — every message timed
//! out after message.timeout.ms (5 minutes), and every one sent after it
//! too, for as long as the process lived, while the other replicas' producers
//! of the same topics delivered normally (librdkafka issue #4976 describes
//! the same after a broker restart). A new producer fetches the metadata
//! afresh; so a stuck producer is replaced ([`super::Producer::replace_if_stuck`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a producer may hold messages without delivering any before it is
/// replaced. A broker restart takes seconds; a broker away longer than this
/// gets a fresh producer each time it passes, which costs nothing: what the
/// old one held fails at once and is sent again.
pub const STALL_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub(crate) struct Stall {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Messages sent and not yet reported.
    waiting: usize,
    /// The last delivery, or when messages began to wait, whichever is later.
    since: Instant,
}

impl Stall {
    pub fn new(now: Instant) -> Self {
        Self {
            state: Mutex::new(State {
                waiting: 0,
                since: now,
            }),
        }
    }

    /// A message was handed to the producer.
    pub fn sent(&self, now: Instant) {
        let mut s = self.state.lock().expect("stall lock");
        if s.waiting == 0 {
            s.since = now;
        }
        s.waiting += 1;
    }

    /// A message's report came (`delivered` or not), or its waiter went away.
    pub fn finished(&self, delivered: bool, now: Instant) {
        let mut s = self.state.lock().expect("stall lock");
        s.waiting = s.waiting.saturating_sub(1);
        if delivered {
            s.since = now;
        }
    }

    /// `Some(why)` when messages have waited [`STALL_LIMIT`] with none
    /// delivered meanwhile.
    pub fn stuck(&self, now: Instant) -> Option<String> {
        let s = self.state.lock().expect("stall lock");
        let quiet = now.saturating_duration_since(s.since);
        (s.waiting > 0 && quiet >= STALL_LIMIT).then(|| {
            format!(
                "{} messages waiting and none delivered for {} s",
                s.waiting,
                quiet.as_secs()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn an_idle_producer_is_never_stuck() {
        let t0 = Instant::now();
        let s = Stall::new(t0);
        assert_eq!(s.stuck(at(t0, 3_600)), None);
        s.sent(at(t0, 10));
        s.finished(true, at(t0, 11));
        assert_eq!(s.stuck(at(t0, 3_600)), None, "nothing is waiting");
    }

    #[test]
    fn messages_waiting_with_no_delivery_for_the_limit_mean_stuck() {
        let t0 = Instant::now();
        let s = Stall::new(t0);
        // Idle for an hour, then a send: the clock starts at the send.
        s.sent(at(t0, 3_600));
        assert_eq!(s.stuck(at(t0, 3_659)), None);
        let why = s.stuck(at(t0, 3_660)).expect("stuck at the limit");
        assert_eq!(why, "1 messages waiting and none delivered for 60 s");
        s.sent(at(t0, 3_661));
        assert!(
            s.stuck(at(t0, 3_661)).is_some(),
            "a second send does not restart the clock"
        );
    }

    #[test]
    fn any_delivery_restarts_the_clock_and_failures_do_not() {
        let t0 = Instant::now();
        let s = Stall::new(t0);
        s.sent(t0);
        s.sent(t0);
        s.sent(t0);
        s.finished(false, at(t0, 50));
        assert!(s.stuck(at(t0, 60)).is_some(), "a failure is no delivery");
        s.finished(true, at(t0, 61));
        assert_eq!(s.stuck(at(t0, 120)), None);
        assert!(s.stuck(at(t0, 121)).is_some(), "one still waits");
        s.finished(false, at(t0, 122));
        assert_eq!(s.stuck(at(t0, 500)), None, "none waits");
        s.finished(false, at(t0, 501));
        s.sent(at(t0, 502));
        assert_eq!(
            s.stuck(at(t0, 561)),
            None,
            "a report more than was sent does not underflow"
        );
        assert!(s.stuck(at(t0, 562)).is_some());
    }
}
