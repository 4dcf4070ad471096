//! Whether the consumer is a working member of its group, from librdkafka's
//! statistics (every few seconds): its group handler `up` (it has a
//! coordinator) and its join state `steady`. Offsets are committed only while
//! it has a coordinator (a commit sent while the coordinator is away can sit
//! in librdkafka's queue and, if the assignment is lost meanwhile, hold the
//! group handler waiting for it for good); not only while `steady`: after a
//! broker restart the statistics were seen to leave a consumer that owned and
//! worked its partitions in another join state for minutes, its commits held
//! and its lag standing (the chaos soak's "not idle after 60 s"), while a
//! commit the broker refuses in a rebalance is simply sent again. A
//! consumer without a coordinator for [`NO_COORDINATOR_LIMIT`], or in its
//! group but not a working member for [`REJOIN_LIMIT`], is replaced by a new
//! one, which joins afresh.
//!
//! Observed with librdkafka 2.12.1 and Kafka 4.3 on a broker restart: the
//! session timed out, the assignment was lost, and the group handler stayed in
//! `query-coord` / `wait-incr-unassign-to-complete` with one commit
//! outstanding (`rk_consumer.wait_commit_cnt` 1) and the coordinator never
//! queried again — the group empty, the service up, its orders stranded.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a consumer may be without a group coordinator (finding one takes
/// milliseconds once a broker answers) before it is replaced. A broker that
/// is down longer than this gets a fresh consumer each time it passes; that
/// costs nothing.
pub const NO_COORDINATOR_LIMIT: Duration = Duration::from_secs(30);
/// How long partitions of the consumer's assignment may sit with their
/// fetcher stopped before it is replaced. Seen after a broker restart: an
/// async commit sent in the seconds before the statistics showed the
/// coordinator gone stayed outstanding, and librdkafka's assignment waits for
/// outstanding commits before it starts fetching — the group `up` and
/// `steady`, every partition assigned, none fetched, lag standing.
pub const FETCH_STALL_LIMIT: Duration = Duration::from_secs(30);
/// How long a consumer may be rejoining its group before it is replaced: the
/// broker's rebalance waits up to max.poll.interval.ms (5 minutes) for slow
/// members, so not less.
pub const REJOIN_LIMIT: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub(crate) struct GroupHealth {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The group handler is `up`: it has a coordinator.
    coordinator: bool,
    /// When `coordinator` last changed (or the consumer was created).
    coordinator_since: Instant,
    /// Up and `steady`: a working member.
    member: bool,
    /// When `member` last changed (or the consumer was created).
    since: Instant,
    /// The last states seen, for the log.
    seen: (String, String),
    /// Since when some assigned partitions have not been fetching, and how many.
    stalled: Option<(Instant, usize)>,
}

impl GroupHealth {
    /// A new consumer is taken for a working member until the statistics
    /// (every few seconds) say otherwise: what it commits before then is what
    /// it finished, as without this check.
    pub fn new(now: Instant) -> Self {
        Self {
            state: Mutex::new(State {
                coordinator: true,
                coordinator_since: now,
                member: true,
                since: now,
                seen: (String::new(), String::new()),
                stalled: None,
            }),
        }
    }

    /// A new consumer, as [`Self::new`].
    pub fn reset(&self, now: Instant) {
        let mut s = self.state.lock().expect("health lock");
        (s.coordinator, s.coordinator_since) = (true, now);
        (s.member, s.since) = (true, now);
        s.stalled = None;
    }

    /// What the statistics say of the assignment: how many assigned
    /// partitions have their fetcher stopped.
    pub fn observe_fetching(&self, stopped: usize, now: Instant) {
        let mut s = self.state.lock().expect("health lock");
        s.stalled = match (stopped, s.stalled) {
            (0, _) => None,
            (n, Some((since, _))) => Some((since, n)),
            (n, None) => Some((now, n)),
        };
    }

    /// What the statistics say: the group handler's state and join state.
    /// Returns whether either changed since the last statistics.
    pub fn observe(&self, state: &str, join_state: &str, now: Instant) -> bool {
        let coordinator = state == "up";
        let member = coordinator && join_state == "steady";
        let mut s = self.state.lock().expect("health lock");
        if coordinator != s.coordinator {
            s.coordinator = coordinator;
            s.coordinator_since = now;
        }
        if member != s.member {
            s.member = member;
            s.since = now;
        }
        let changed = s.seen.0 != state || s.seen.1 != join_state;
        s.seen = (state.to_string(), join_state.to_string());
        changed
    }

    /// A working member of the group (as of the last statistics).
    pub fn is_member(&self) -> bool {
        self.state.lock().expect("health lock").member
    }

    /// Whether a commit may be sent: the group handler has a coordinator.
    pub fn may_commit(&self) -> bool {
        self.state.lock().expect("health lock").coordinator
    }

    /// `Some(why)` when the consumer should be replaced: without a
    /// coordinator for [`NO_COORDINATOR_LIMIT`], not a working member for
    /// [`REJOIN_LIMIT`], or with assigned partitions not fetching for
    /// [`FETCH_STALL_LIMIT`].
    pub fn stuck(&self, now: Instant) -> Option<String> {
        let s = self.state.lock().expect("health lock");
        let lasted = |since: Instant, limit: Duration| now.duration_since(since) >= limit;
        let (out, since) = if !s.coordinator && lasted(s.coordinator_since, NO_COORDINATOR_LIMIT) {
            ("no group coordinator".to_string(), s.coordinator_since)
        } else if !s.member && lasted(s.since, REJOIN_LIMIT) {
            ("not a member of its group".to_string(), s.since)
        } else if let Some((since, n)) = s.stalled.filter(|(t, _)| lasted(*t, FETCH_STALL_LIMIT)) {
            (format!("{n} assigned partitions not fetching"), since)
        } else {
            return None;
        };
        Some(format!(
            "{out} for {} s: group state {:?}, join state {:?}",
            now.duration_since(since).as_secs(),
            s.seen.0,
            s.seen.1
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn a_consumer_without_a_coordinator_for_30_s_is_stuck() {
        let t0 = Instant::now();
        let h = GroupHealth::new(t0);
        assert!(h.is_member(), "taken for a member until the statistics say");
        assert!(h.may_commit());
        assert_eq!(h.stuck(at(t0, 600)), None);
        assert!(
            h.observe("up", "steady", at(t0, 5)),
            "the first statistics are news"
        );
        assert!(
            !h.observe("up", "steady", at(t0, 6)),
            "the same again are not"
        );
        assert!(
            h.observe("up", "wait-join", at(t0, 7)),
            "a new join state is"
        );
        assert!(h.observe("up", "steady", at(t0, 8)));
        assert!(h.is_member());
        assert_eq!(h.stuck(at(t0, 600)), None, "a member");
        h.observe("query-coord", "wait-incr-unassign-to-complete", at(t0, 100));
        assert!(!h.is_member());
        assert!(!h.may_commit(), "no commit without a coordinator");
        h.observe("query-coord", "init", at(t0, 120));
        assert_eq!(h.stuck(at(t0, 129)), None, "29 s without");
        assert_eq!(
            h.stuck(at(t0, 130)).as_deref(),
            Some("no group coordinator for 30 s: group state \"query-coord\", join state \"init\""),
            "counted from when it lost the coordinator, not from the last statistics"
        );
        h.observe("up", "wait-assign-call", at(t0, 131));
        assert!(!h.is_member(), "joining is not yet working");
        assert!(h.may_commit(), "but with a coordinator it commits");
        h.observe("up", "steady", at(t0, 132));
        assert_eq!(h.stuck(at(t0, 900)), None);
    }

    #[test]
    fn assigned_partitions_that_do_not_fetch_for_30_s_make_the_consumer_stuck() {
        let t0 = Instant::now();
        let h = GroupHealth::new(t0);
        h.observe("up", "steady", at(t0, 1));
        h.observe_fetching(3, at(t0, 5));
        assert_eq!(
            h.stuck(at(t0, 34)),
            None,
            "29 s: a fresh assignment may take a moment"
        );
        h.observe_fetching(1, at(t0, 20));
        assert_eq!(
            h.stuck(at(t0, 35)).as_deref(),
            Some("1 assigned partitions not fetching for 30 s: group state \"up\", join state \"steady\""),
            "counted from the first statistics that showed it"
        );
        h.observe_fetching(0, at(t0, 36));
        assert_eq!(h.stuck(at(t0, 600)), None, "fetching again");
        h.observe_fetching(2, at(t0, 700));
        h.reset(at(t0, 701));
        assert_eq!(h.stuck(at(t0, 900)), None, "a new consumer starts afresh");
    }

    #[test]
    fn a_rebalance_may_take_five_minutes_before_the_consumer_is_stuck() {
        let t0 = Instant::now();
        let h = GroupHealth::new(t0);
        h.observe("up", "steady", at(t0, 1));
        h.observe("up", "wait-join", at(t0, 10));
        assert_eq!(
            h.stuck(at(t0, 309)),
            None,
            "the broker waits for slow members"
        );
        assert_eq!(
            h.stuck(at(t0, 310)).as_deref(),
            Some(
                "not a member of its group for 300 s: group state \"up\", join state \"wait-join\""
            )
        );
        h.reset(at(t0, 311));
        assert!(h.is_member(), "a new consumer starts afresh");
        h.observe("wait-coord", "init", at(t0, 316));
        assert_eq!(h.stuck(at(t0, 345)), None);
        assert!(
            h.stuck(at(t0, 346)).is_some(),
            "and needs a coordinator within 30 s"
        );
    }
}
