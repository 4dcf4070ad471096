//! Whether a producer still delivers: a message waiting for its delivery
//! report for [`STALL_LIMIT`] means it is stuck — however many others it
//! delivers meanwhile, since the fault can hold one partition only.
//!
//! Observed with librdkafka 2.12.1 and Kafka 4.3 in the chaos soak: after a
//! broker restart, one replica's producer logged "new leader-1 not found in
//! cache" for a partition and never sent to it again — every message timed
//! out after message.timeout.ms (5 minutes), and every one sent after it
//! too, for as long as the process lived, while the other replicas' producers
//! of the same topics delivered normally (librdkafka issue #4976 describes
//! the same after a broker restart). A new producer fetches the metadata
//! afresh; so a stuck producer is replaced ([`super::Producer::replace_if_stuck`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::task::Waker;
use std::time::{Duration, Instant};

/// How long a message may wait for its delivery report before its producer
/// is replaced. A broker restart takes seconds; a broker away longer than
/// this gets a fresh producer each time it passes, which costs little: what
/// the old one held fails at once and is sent again (a message that was in
/// flight may then be written twice; consumers' inboxes drop the copy).
pub const STALL_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(crate) struct Stall {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The next message's number: numbers grow with time, so the first
    /// waiting one is the oldest.
    next: u64,
    /// When each waiting message was sent, and who waits for its report.
    waiting: BTreeMap<u64, (Instant, Option<Waker>)>,
    /// The producer is destroyed: a report not come by now never will.
    closed: bool,
}

impl Stall {
    /// A message was handed to the producer: its number.
    pub fn sent(&self, now: Instant) -> u64 {
        let mut s = self.state.lock().expect("stall lock");
        let n = s.next;
        s.next += 1;
        s.waiting.insert(n, (now, None));
        n
    }

    /// Keeps `waker` to be woken if the producer is destroyed before message
    /// `n`'s report comes; false if it already was (the report never comes).
    pub fn wait(&self, n: u64, waker: &Waker) -> bool {
        let mut s = self.state.lock().expect("stall lock");
        if s.closed {
            return false;
        }
        if let Some((_, kept)) = s.waiting.get_mut(&n) {
            if !kept.as_ref().is_some_and(|k| k.will_wake(waker)) {
                *kept = Some(waker.clone());
            }
        }
        true
    }

    /// The producer is destroyed: wakes whoever waits for a report, which
    /// will not come now.
    pub fn close(&self) {
        let wakers: Vec<Waker> = {
            let mut s = self.state.lock().expect("stall lock");
            s.closed = true;
            s.waiting
                .values_mut()
                .filter_map(|(_, w)| w.take())
                .collect()
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Message `n`'s report came, or its waiter went away.
    pub fn finished(&self, n: u64) {
        self.state.lock().expect("stall lock").waiting.remove(&n);
    }

    /// `Some(why)` when a message has waited [`STALL_LIMIT`].
    pub fn stuck(&self, now: Instant) -> Option<String> {
        let s = self.state.lock().expect("stall lock");
        let (_, &(oldest, _)) = s.waiting.first_key_value()?;
        let age = now.saturating_duration_since(oldest);
        (age >= STALL_LIMIT).then(|| {
            format!(
                "{} messages waiting for their delivery, the oldest for {} s",
                s.waiting.len(),
                age.as_secs()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn destroying_the_producer_wakes_the_latest_waiter_of_each_report() {
        let t0 = Instant::now();
        let s = Stall::default();
        let (first, second) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let n = s.sent(t0);
        let done = s.sent(t0);
        assert!(s.wait(n, &Waker::from(first.clone())));
        assert!(s.wait(n, &Waker::from(second.clone())));
        assert!(s.wait(done, &Waker::from(first.clone())));
        s.finished(done);
        s.close();
        assert_eq!(first.0.load(Ordering::SeqCst), 0, "replaced, and done");
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert!(
            !s.wait(n, &Waker::from(second.clone())),
            "after the producer is destroyed, a report never comes"
        );
    }

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn an_idle_producer_is_never_stuck() {
        let t0 = Instant::now();
        let s = Stall::default();
        assert_eq!(s.stuck(at(t0, 3_600)), None);
        let n = s.sent(at(t0, 10));
        s.finished(n);
        assert_eq!(s.stuck(at(t0, 3_600)), None, "nothing is waiting");
    }

    #[test]
    fn a_message_waiting_for_the_limit_means_stuck() {
        let t0 = Instant::now();
        let s = Stall::default();
        s.sent(at(t0, 3_600));
        assert_eq!(s.stuck(at(t0, 3_659)), None);
        let why = s.stuck(at(t0, 3_660)).expect("stuck at the limit");
        assert_eq!(
            why,
            "1 messages waiting for their delivery, the oldest for 60 s"
        );
        s.sent(at(t0, 3_661));
        assert_eq!(
            s.stuck(at(t0, 3_661)).as_deref(),
            Some("2 messages waiting for their delivery, the oldest for 61 s"),
            "a newer message does not hide the oldest"
        );
    }

    #[test]
    fn deliveries_of_other_messages_do_not_hide_one_that_waits() {
        let t0 = Instant::now();
        let s = Stall::default();
        let held = s.sent(t0);
        for k in 1..=59 {
            let n = s.sent(at(t0, k));
            s.finished(n);
        }
        assert!(
            s.stuck(at(t0, 60)).is_some(),
            "one partition's message waited a minute while others were delivered"
        );
        let next = s.sent(at(t0, 40));
        s.finished(held);
        assert_eq!(s.stuck(at(t0, 99)), None, "the next oldest waited 59 s");
        assert!(s.stuck(at(t0, 100)).is_some());
        s.finished(next);
        s.finished(next);
        assert_eq!(s.stuck(at(t0, 500)), None, "none waits");
    }
}
