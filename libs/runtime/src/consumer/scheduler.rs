//! Which received messages may run now. Messages wait in one lane per key
//! (the order id): a lane runs its head only, so one order's events are
//! handled strictly in the order received, while different orders run
//! concurrently up to a per-process limit. Each partition tracks its offsets
//! ([`OffsetTracker`]) under an epoch that changes with every assignment, so
//! the result of work begun under an earlier assignment can never move a
//! partition's offset. Retry copies that are not due yet wait aside and hold
//! their partition paused until they are. Pure data: the poll thread and the
//! workers drive it under one lock.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use super::offsets::OffsetTracker;

/// A topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tp {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl Tp {
    pub fn new(topic: &str, partition: i32) -> Self {
        Self {
            topic: Arc::from(topic),
            partition,
        }
    }
}

impl std::fmt::Display for Tp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

pub type Key = Arc<str>;

/// A message handed to a worker, and what it hands back when done.
#[derive(Debug)]
pub struct Dispatch<M> {
    pub ticket: Ticket,
    pub message: M,
}

/// Identifies a dispatched message when it is finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub tp: Tp,
    pub epoch: u64,
    pub offset: i64,
    pub key: Key,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Messages dispatched and not finished, at most.
    pub max_in_flight: usize,
    /// Messages received and not yet dispatched: above this, the partitions
    /// holding them are paused until half of them are gone.
    pub max_buffered: usize,
}

#[derive(Debug)]
struct Queued<M> {
    tp: Tp,
    epoch: u64,
    offset: i64,
    message: M,
}

#[derive(Debug)]
struct Lane<M> {
    queue: VecDeque<Queued<M>>,
    busy: bool,
}

#[derive(Debug)]
struct Partition {
    epoch: u64,
    offsets: OffsetTracker,
    /// Finished before this assignment (from the last commit's metadata).
    already_done: BTreeSet<i64>,
    buffered: usize,
    in_flight: usize,
    /// Retry copies of this partition waiting for their due time.
    not_due: usize,
    revoking: bool,
    backpressure: bool,
    /// What the consumer was last told.
    paused: bool,
    committed: Option<i64>,
    committed_runs: Vec<u64>,
    /// The broker refused the last commit: the next round sends it again even
    /// if nothing new finished (else an idle partition would keep its lag, and
    /// a later owner would redo what was done).
    recommit: bool,
}

/// Pause and resume calls the consumer must make.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PauseActions {
    pub pause: Vec<Tp>,
    pub resume: Vec<Tp>,
}

/// What to commit for one partition: the watermark and the finished offsets above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub tp: Tp,
    pub offset: i64,
    pub finished_runs: Vec<u64>,
}

pub struct Scheduler<M> {
    limits: Limits,
    partitions: HashMap<Tp, Partition>,
    lanes: HashMap<Key, Lane<M>>,
    ready: VecDeque<Key>,
    /// Not due yet, by (due time, arrival), with their key.
    delayed: BTreeMap<(u64, u64), (Key, Queued<M>)>,
    arrivals: u64,
    in_flight: usize,
    buffered: usize,
    next_epoch: u64,
}

impl<M> Scheduler<M> {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            partitions: HashMap::new(),
            lanes: HashMap::new(),
            ready: VecDeque::new(),
            delayed: BTreeMap::new(),
            arrivals: 0,
            in_flight: 0,
            buffered: 0,
            next_epoch: 1,
        }
    }

    /// Partitions assigned to this member; `already_done` holds offsets the
    /// last owner finished above its committed offset.
    pub fn assign(&mut self, tp: Tp, committed: Option<i64>, already_done: BTreeSet<i64>) {
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        self.partitions.insert(
            tp,
            Partition {
                epoch,
                offsets: OffsetTracker::default(),
                already_done,
                buffered: 0,
                in_flight: 0,
                not_due: 0,
                revoking: false,
                backpressure: false,
                paused: false,
                committed,
                committed_runs: Vec::new(),
                recommit: false,
            },
        );
    }

    /// Whether work dispatched under `ticket` still belongs to this member:
    /// false once its partition was revoked (and maybe assigned again).
    pub fn is_live(&self, ticket: &Ticket) -> bool {
        self.partitions
            .get(&ticket.tp)
            .is_some_and(|p| p.epoch == ticket.epoch)
    }

    /// A received message. `due` (ms) holds a retry copy back until then.
    /// Returns false when the partition is not (or no longer) assigned, or the
    /// message was finished by the previous owner: it must not be handled.
    pub fn push(
        &mut self,
        tp: &Tp,
        offset: i64,
        key: Key,
        message: M,
        due: Option<u64>,
        now: u64,
    ) -> bool {
        let Some(p) = self.partitions.get_mut(tp).filter(|p| !p.revoking) else {
            return false;
        };
        if p.already_done.remove(&offset) {
            p.offsets.received(offset);
            p.offsets.finished(offset);
            return false;
        }
        p.offsets.received(offset);
        let queued = Queued {
            tp: tp.clone(),
            epoch: p.epoch,
            offset,
            message,
        };
        match due {
            Some(due) if due > now => {
                p.not_due += 1;
                self.arrivals += 1;
                self.delayed.insert((due, self.arrivals), (key, queued));
            }
            _ => self.enqueue(key, queued),
        }
        true
    }

    /// A received message this member has nothing to do with: finished at once.
    pub fn skip(&mut self, tp: &Tp, offset: i64) {
        if let Some(p) = self.partitions.get_mut(tp).filter(|p| !p.revoking) {
            p.already_done.remove(&offset);
            p.offsets.received(offset);
            p.offsets.finished(offset);
        }
    }

    fn enqueue(&mut self, key: Key, queued: Queued<M>) {
        if let Some(p) = self.partitions.get_mut(&queued.tp) {
            p.buffered += 1;
        }
        self.buffered += 1;
        let lane = self.lanes.entry(key.clone()).or_insert_with(|| Lane {
            queue: VecDeque::new(),
            busy: false,
        });
        lane.queue.push_back(queued);
        if !lane.busy && lane.queue.len() == 1 {
            self.ready.push_back(key);
        }
    }

    /// The earliest due time of a waiting retry copy.
    pub fn next_due(&self) -> Option<u64> {
        self.delayed.keys().next().map(|(due, _)| *due)
    }

    /// Messages to run now, as many as the in-flight limit allows.
    pub fn take(&mut self, now: u64) -> Vec<Dispatch<M>> {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (key, queued) = entry.remove();
            if let Some(p) = self.partitions.get_mut(&queued.tp) {
                p.not_due -= 1;
            }
            self.enqueue(key, queued);
        }
        let mut out = Vec::new();
        while self.in_flight < self.limits.max_in_flight {
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            let Some(lane) = self.lanes.get_mut(&key) else {
                continue; // its messages were dropped with a revoked partition
            };
            if lane.busy {
                continue;
            }
            let Some(queued) = lane.queue.pop_front() else {
                continue;
            };
            lane.busy = true;
            self.buffered -= 1;
            self.in_flight += 1;
            if let Some(p) = self.partitions.get_mut(&queued.tp) {
                p.buffered -= 1;
                p.in_flight += 1;
            }
            out.push(Dispatch {
                ticket: Ticket {
                    tp: queued.tp,
                    epoch: queued.epoch,
                    offset: queued.offset,
                    key,
                },
                message: queued.message,
            });
        }
        out
    }

    /// A dispatched message is done; its key's next message becomes ready.
    /// `finished` false gives it up: its offset stays unfinished, so it is
    /// committed below it and read again (at shutdown, say).
    pub fn complete(&mut self, ticket: &Ticket, finished: bool) {
        self.in_flight -= 1;
        if let Some(lane) = self.lanes.get_mut(&ticket.key) {
            lane.busy = false;
            if lane.queue.is_empty() {
                self.lanes.remove(&ticket.key);
            } else {
                self.ready.push_back(ticket.key.clone());
            }
        }
        if let Some(p) = self
            .partitions
            .get_mut(&ticket.tp)
            .filter(|p| p.epoch == ticket.epoch)
        {
            p.in_flight -= 1;
            if finished {
                p.offsets.finished(ticket.offset);
            }
        }
    }

    /// Stops dispatching these partitions and drops their waiting messages
    /// (the next owner reads them again). Their in-flight work may finish.
    pub fn begin_revoke(&mut self, tps: &[Tp]) {
        let revoked: HashSet<&Tp> = tps.iter().collect();
        for tp in tps {
            if let Some(p) = self.partitions.get_mut(tp) {
                p.revoking = true;
                p.buffered = 0;
                p.not_due = 0;
            }
        }
        let mut dropped = 0;
        self.lanes.retain(|_, lane| {
            let before = lane.queue.len();
            lane.queue.retain(|q| !revoked.contains(&q.tp));
            dropped += before - lane.queue.len();
            lane.busy || !lane.queue.is_empty()
        });
        self.buffered -= dropped;
        self.delayed.retain(|_, (_, q)| !revoked.contains(&q.tp));
    }

    /// Messages of these partitions still running.
    pub fn in_flight_of(&self, tps: &[Tp]) -> usize {
        tps.iter()
            .filter_map(|tp| self.partitions.get(tp))
            .map(|p| p.in_flight)
            .sum()
    }

    /// Forgets the partitions; returns what to commit for them, whether or
    /// not an earlier (periodic, asynchronous) commit carried it already:
    /// that one may have failed, and this is the last chance. Work still
    /// running for them is abandoned: its result no longer counts.
    pub fn finish_revoke(&mut self, tps: &[Tp]) -> Vec<Commit> {
        let mut commits = Vec::new();
        for tp in tps {
            commits.extend(self.final_commits(std::slice::from_ref(tp)));
            self.partitions.remove(tp);
        }
        commits
    }

    /// What to commit for these partitions now, whether or not an earlier
    /// commit carried it; they stay known.
    pub fn final_commits(&self, tps: &[Tp]) -> Vec<Commit> {
        tps.iter()
            .filter_map(|tp| {
                let p = self.partitions.get(tp)?;
                let offset = p.offsets.watermark()?;
                Some(Commit {
                    tp: tp.clone(),
                    offset: offset.max(p.committed.unwrap_or(offset)),
                    finished_runs: p.offsets.finished_runs(),
                })
            })
            .collect()
    }

    /// Every partition whose committed offset can move.
    pub fn commits(&mut self) -> Vec<Commit> {
        let mut commits = Vec::new();
        for (tp, p) in self.partitions.iter_mut() {
            if let Some(c) = Self::commit_of(tp, p) {
                commits.push(c);
            }
        }
        commits
    }

    /// The broker refused a commit of these offsets (the coordinator moved,
    /// the broker restarted, a rebalance was under way): each partition whose
    /// latest commit it was is committed again by the next [`Self::commits`].
    pub fn commit_failed(&mut self, refused: &[(Tp, i64)]) {
        for (tp, offset) in refused {
            if let Some(p) = self.partitions.get_mut(tp) {
                if p.committed == Some(*offset) {
                    p.recommit = true;
                }
            }
        }
    }

    /// Every partition's offset is committed again by the next
    /// [`Self::commits`], moved or not: a refusal the commit callback never
    /// reported (commits dropped in a rebalance during a broker restart were
    /// seen to leave an idle group's lag standing) is made good this way.
    pub fn recommit_all(&mut self) {
        for p in self.partitions.values_mut() {
            p.recommit = true;
        }
    }

    fn commit_of(tp: &Tp, p: &mut Partition) -> Option<Commit> {
        let watermark = p.offsets.watermark()?;
        if p.committed.is_some_and(|c| c > watermark) {
            return None; // never backwards
        }
        let runs = p.offsets.finished_runs();
        if p.committed == Some(watermark) && runs == p.committed_runs && !p.recommit {
            return None; // nothing new
        }
        p.recommit = false;
        p.committed = Some(watermark);
        p.committed_runs.clone_from(&runs);
        Some(Commit {
            tp: tp.clone(),
            offset: watermark,
            finished_runs: runs,
        })
    }

    /// Which partitions to pause or resume: those holding the most waiting
    /// messages while the buffer is full (resumed once it is half empty), and
    /// those with a retry copy that is not due yet.
    pub fn pause_actions(&mut self) -> PauseActions {
        if self.buffered >= self.limits.max_buffered {
            for p in self.partitions.values_mut() {
                if p.buffered > 0 {
                    p.backpressure = true;
                }
            }
        } else if self.buffered <= self.limits.max_buffered / 2 {
            for p in self.partitions.values_mut() {
                p.backpressure = false;
            }
        }
        let mut actions = PauseActions::default();
        for (tp, p) in self.partitions.iter_mut() {
            if p.revoking {
                continue;
            }
            let want = p.backpressure || p.not_due > 0;
            if want != p.paused {
                p.paused = want;
                if want {
                    actions.pause.push(tp.clone());
                } else {
                    actions.resume.push(tp.clone());
                }
            }
        }
        actions.pause.sort();
        actions.resume.sort();
        actions
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn buffered(&self) -> usize {
        self.buffered
    }

    pub fn assigned(&self) -> Vec<Tp> {
        let mut tps: Vec<Tp> = self
            .partitions
            .iter()
            .filter(|(_, p)| !p.revoking)
            .map(|(tp, _)| tp.clone())
            .collect();
        tps.sort();
        tps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits(max_in_flight: usize) -> Limits {
        Limits {
            max_in_flight,
            max_buffered: 1000,
        }
    }

    fn key(k: &str) -> Key {
        Arc::from(k)
    }

    #[test]
    fn one_key_runs_in_order_and_other_keys_run_beside_it() {
        let mut s = Scheduler::new(limits(10));
        let p0 = Tp::new("orders", 0);
        s.assign(p0.clone(), None, BTreeSet::new());
        for (offset, k) in [(0, "a"), (1, "a"), (2, "b"), (3, "a")] {
            assert!(s.push(&p0, offset, key(k), offset, None, 0));
        }
        let first = s.take(0);
        let running: Vec<i64> = first.iter().map(|d| d.message).collect();
        assert_eq!(running, vec![0, 2], "the head of each key");
        s.complete(&first[1].ticket, true);
        assert!(
            s.take(0).is_empty(),
            "b is done and a's next waits for its head"
        );
        assert_eq!(s.commits()[0].offset, 0, "offset 0 still runs");
        s.complete(&first[0].ticket, true);
        let next = s.take(0);
        assert_eq!(next.iter().map(|d| d.message).collect::<Vec<_>>(), vec![1]);
        s.complete(&next[0].ticket, true);
        let last = s.take(0);
        s.complete(&last[0].ticket, true);
        let commit = s.commits();
        assert_eq!(commit[0].offset, 4);
        assert!(s.commits().is_empty(), "nothing new to commit");
    }

    #[test]
    fn the_in_flight_limit_holds() {
        let mut s = Scheduler::new(limits(2));
        let p0 = Tp::new("orders", 0);
        s.assign(p0.clone(), None, BTreeSet::new());
        for offset in 0..5 {
            s.push(&p0, offset, key(&format!("k{offset}")), offset, None, 0);
        }
        let running = s.take(0);
        assert_eq!(running.len(), 2);
        assert_eq!(s.in_flight(), 2);
        s.complete(&running[0].ticket, true);
        assert_eq!(s.take(0).len(), 1);
    }

    #[test]
    fn a_revoked_partition_is_not_dispatched_and_its_late_results_do_not_count() {
        let mut s = Scheduler::new(limits(10));
        let (p0, p1) = (Tp::new("orders", 0), Tp::new("orders", 1));
        s.assign(p0.clone(), None, BTreeSet::new());
        s.assign(p1.clone(), None, BTreeSet::new());
        s.push(&p0, 0, key("a"), 0, None, 0);
        s.push(&p0, 1, key("a"), 1, None, 0);
        s.push(&p1, 0, key("b"), 10, None, 0);
        let running = s.take(0);
        assert_eq!(running.len(), 2);
        s.begin_revoke(std::slice::from_ref(&p0));
        assert_eq!(s.in_flight_of(std::slice::from_ref(&p0)), 1);
        assert!(
            !s.push(&p0, 2, key("c"), 2, None, 0),
            "no new work for a revoking partition"
        );
        assert_eq!(s.commits().len(), 2, "periodic commits");
        let commits = s.finish_revoke(std::slice::from_ref(&p0));
        assert_eq!(
            commits[0].offset, 0,
            "offset 0 never finished here; committed again on revocation"
        );
        let a = running.iter().find(|d| d.ticket.tp == p0).unwrap();
        assert!(!s.is_live(&a.ticket));
        s.complete(&a.ticket, true);
        assert!(
            s.take(0).is_empty(),
            "offset 1 of the revoked partition was dropped"
        );
        // Assigned again: a new epoch, so the old ticket still does not count.
        s.assign(p0.clone(), Some(0), BTreeSet::new());
        assert!(!s.is_live(&a.ticket));
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn what_the_last_owner_finished_is_not_handled_again() {
        let mut s = Scheduler::new(limits(10));
        let p0 = Tp::new("orders", 0);
        s.assign(p0.clone(), Some(5), [6, 7].into_iter().collect());
        assert!(s.push(&p0, 5, key("a"), 5, None, 0));
        assert!(!s.push(&p0, 6, key("b"), 6, None, 0));
        assert!(!s.push(&p0, 7, key("c"), 7, None, 0));
        assert!(s.push(&p0, 8, key("d"), 8, None, 0));
        let running = s.take(0);
        assert_eq!(
            running.iter().map(|d| d.message).collect::<Vec<_>>(),
            vec![5, 8]
        );
        for d in &running {
            s.complete(&d.ticket, true);
        }
        assert_eq!(s.commits()[0].offset, 9);
    }

    #[test]
    fn a_retry_copy_waits_for_its_due_time_with_its_partition_paused() {
        let mut s = Scheduler::new(limits(10));
        let retry = Tp::new("payment.retry.1s", 3);
        s.assign(retry.clone(), None, BTreeSet::new());
        s.push(&retry, 0, key("a"), 0, Some(1_000), 0);
        assert_eq!(s.pause_actions().pause, vec![retry.clone()]);
        assert!(s.take(999).is_empty());
        assert_eq!(s.next_due(), Some(1_000));
        let due = s.take(1_000);
        assert_eq!(due.len(), 1);
        assert_eq!(s.pause_actions().resume, vec![retry]);
    }

    #[test]
    fn a_full_buffer_pauses_the_partitions_holding_it_until_half_is_gone() {
        let mut s = Scheduler::new(Limits {
            max_in_flight: 1,
            max_buffered: 4,
        });
        let (hot, cold) = (Tp::new("orders", 0), Tp::new("orders", 1));
        s.assign(hot.clone(), None, BTreeSet::new());
        s.assign(cold.clone(), None, BTreeSet::new());
        for offset in 0..5 {
            s.push(&hot, offset, key(&format!("k{offset}")), offset, None, 0);
        }
        let first = s.take(0);
        assert_eq!(s.buffered(), 4);
        assert_eq!(
            s.pause_actions().pause,
            vec![hot.clone()],
            "only the partition holding work"
        );
        s.complete(&first[0].ticket, true);
        let second = s.take(0);
        s.complete(&second[0].ticket, true);
        let _third = s.take(0);
        assert_eq!(s.buffered(), 2);
        assert_eq!(s.pause_actions().resume, vec![hot]);
    }

    #[test]
    fn a_partition_reads_as_topic_slash_number() {
        assert_eq!(Tp::new("orders", 3).to_string(), "orders/3");
    }

    #[test]
    fn work_of_an_assigned_partition_is_live_and_counted_until_it_completes() {
        let mut s = Scheduler::new(limits(10));
        let (p0, p1) = (Tp::new("orders", 0), Tp::new("orders", 1));
        s.assign(p0.clone(), None, BTreeSet::new());
        s.assign(p1.clone(), None, BTreeSet::new());
        s.push(&p0, 0, key("a"), 0, None, 0);
        s.push(&p0, 1, key("b"), 1, None, 0);
        let running = s.take(0);
        assert!(running.iter().all(|d| s.is_live(&d.ticket)));
        assert_eq!(s.in_flight_of(std::slice::from_ref(&p0)), 2);
        assert_eq!(s.in_flight_of(std::slice::from_ref(&p1)), 0);
        s.complete(&running[0].ticket, true);
        assert_eq!(s.in_flight_of(std::slice::from_ref(&p0)), 1);
        s.complete(&running[1].ticket, true);
        assert_eq!(s.in_flight_of(&[p0.clone(), p1.clone()]), 0);
        assert_eq!(s.assigned(), vec![p0.clone(), p1.clone()]);
        s.begin_revoke(std::slice::from_ref(&p0));
        assert_eq!(
            s.assigned(),
            vec![p1],
            "a revoking partition is on its way out"
        );
    }

    #[test]
    fn a_skipped_last_message_moves_the_committed_offset_past_it() {
        let mut s = Scheduler::new(limits(10));
        let p0 = Tp::new("orders", 0);
        s.assign(p0.clone(), None, BTreeSet::new());
        s.push(&p0, 0, key("a"), 0, None, 0);
        let running = s.take(0);
        s.complete(&running[0].ticket, true);
        s.skip(&p0, 1);
        assert_eq!(s.commits()[0].offset, 2, "nothing left to read below 2");
    }

    #[test]
    fn revoking_keeps_the_other_partitions_waiting_and_running_keys() {
        let mut s = Scheduler::new(limits(2));
        let (orders, payments) = (Tp::new("orders", 0), Tp::new("payments", 0));
        s.assign(orders.clone(), None, BTreeSet::new());
        s.assign(payments.clone(), None, BTreeSet::new());
        s.push(&orders, 0, key("k1"), 0, None, 0);
        s.push(&payments, 0, key("k2"), 10, None, 0);
        s.push(&payments, 1, key("k3"), 11, None, 0);
        let running = s.take(0);
        assert_eq!(
            running.iter().map(|d| d.message).collect::<Vec<_>>(),
            vec![0, 10]
        );
        s.begin_revoke(std::slice::from_ref(&orders));
        // k2 still runs, with nothing behind it: its next event waits for it.
        s.push(&payments, 2, key("k2"), 12, None, 0);
        s.complete(&running[0].ticket, true);
        let next: Vec<i64> = s.take(0).into_iter().map(|d| d.message).collect();
        assert_eq!(next, vec![11], "k3 waited and runs; k2's next waits for k2");
        s.complete(&running[1].ticket, true);
        let last: Vec<i64> = s.take(0).into_iter().map(|d| d.message).collect();
        assert_eq!(last, vec![12]);
    }

    #[test]
    fn a_skipped_message_is_finished_at_once() {
        let mut s = Scheduler::new(limits(10));
        let p0 = Tp::new("orders", 0);
        s.assign(p0.clone(), None, BTreeSet::new());
        s.skip(&p0, 0);
        s.push(&p0, 1, key("a"), 1, None, 0);
        let running = s.take(0);
        s.complete(&running[0].ticket, true);
        assert_eq!(s.commits()[0].offset, 2);
        // Skipped on a revoking partition: nothing moves any more.
        s.begin_revoke(std::slice::from_ref(&p0));
        s.skip(&p0, 2);
        assert_eq!(s.final_commits(std::slice::from_ref(&p0))[0].offset, 2);
    }

    #[test]
    fn a_retry_copy_already_due_runs_at_once_and_copies_due_together_all_run() {
        let mut s = Scheduler::new(limits(10));
        let retry = Tp::new("payment.retry.1s", 0);
        s.assign(retry.clone(), None, BTreeSet::new());
        s.push(&retry, 0, key("a"), 0, Some(500), 500);
        assert_eq!(
            s.pause_actions(),
            PauseActions::default(),
            "due now: no pause"
        );
        assert_eq!(s.take(500).len(), 1);
        // Two copies due at the same moment.
        s.push(&retry, 1, key("b"), 1, Some(2_000), 1_000);
        s.push(&retry, 2, key("c"), 2, Some(2_000), 1_000);
        assert_eq!(s.next_due(), Some(2_000));
        let due: Vec<i64> = s.take(2_000).into_iter().map(|d| d.message).collect();
        assert_eq!(due, vec![1, 2]);
    }

    #[test]
    fn the_commit_carries_what_finished_above_a_watermark_that_stays() {
        let mut s = Scheduler::new(limits(10));
        let p0 = Tp::new("orders", 0);
        s.assign(p0.clone(), None, BTreeSet::new());
        for offset in 0..3 {
            s.push(&p0, offset, key(&format!("k{offset}")), offset, None, 0);
        }
        let running = s.take(0);
        assert_eq!(
            s.commits()[0].finished_runs,
            vec![3],
            "all three unfinished"
        );
        s.complete(&running[1].ticket, true);
        let commit = s.commits();
        assert_eq!(
            (commit[0].offset, commit[0].finished_runs.clone()),
            (0, vec![1, 1, 1]),
            "offset 0 still runs; 1 is done above it"
        );
        s.complete(&running[2].ticket, true);
        assert_eq!(s.commits()[0].finished_runs, vec![1, 2]);
        assert!(s.commits().is_empty());
    }

    #[test]
    fn a_refused_commit_is_sent_again_though_nothing_new_finished() {
        let mut s = Scheduler::new(limits(10));
        let p0 = Tp::new("orders", 0);
        s.assign(p0.clone(), None, BTreeSet::new());
        for offset in 0..2 {
            s.push(&p0, offset, key(&format!("k{offset}")), offset, None, 0);
        }
        for running in s.take(0) {
            s.complete(&running.ticket, true);
        }
        assert_eq!(s.commits()[0].offset, 2);
        assert!(s.commits().is_empty(), "nothing new");
        s.commit_failed(&[(p0.clone(), 2)]);
        let again = s.commits();
        assert_eq!((again.len(), again[0].offset), (1, 2), "sent again");
        assert!(s.commits().is_empty(), "once");
        // A refusal of an older commit, reported late, changes nothing.
        s.push(&p0, 2, key("k2"), 2, None, 0);
        for running in s.take(0) {
            s.complete(&running.ticket, true);
        }
        assert_eq!(s.commits()[0].offset, 3);
        s.commit_failed(&[(p0.clone(), 2)]);
        assert!(s.commits().is_empty(), "3 stands");
    }

    #[test]
    fn every_partition_is_committed_again_when_asked_though_nothing_moved() {
        let mut s = Scheduler::new(limits(10));
        let (p0, p1, p2) = (
            Tp::new("orders", 0),
            Tp::new("orders", 1),
            Tp::new("orders", 2),
        );
        s.assign(p0.clone(), None, BTreeSet::new());
        s.assign(p1.clone(), Some(7), BTreeSet::new());
        s.assign(p2.clone(), None, BTreeSet::new());
        s.push(&p0, 0, key("k0"), 0, None, 0);
        s.push(&p1, 7, key("k7"), 7, None, 0);
        for running in s.take(0) {
            s.complete(&running.ticket, true);
        }
        let offsets = |commits: Vec<Commit>| {
            let mut c: Vec<(i32, i64)> =
                commits.iter().map(|c| (c.tp.partition, c.offset)).collect();
            c.sort();
            c
        };
        assert_eq!(offsets(s.commits()), [(0, 1), (1, 8)]);
        assert!(s.commits().is_empty(), "nothing new");
        s.recommit_all();
        assert_eq!(
            offsets(s.commits()),
            [(0, 1), (1, 8)],
            "again; p2 has nothing to commit"
        );
        assert!(s.commits().is_empty(), "once");
    }

    #[test]
    fn backpressure_resumes_only_once_half_the_buffer_is_gone() {
        let mut s = Scheduler::new(Limits {
            max_in_flight: 1,
            max_buffered: 6,
        });
        let p0 = Tp::new("orders", 0);
        s.assign(p0.clone(), None, BTreeSet::new());
        for offset in 0..7 {
            s.push(&p0, offset, key(&format!("k{offset}")), offset, None, 0);
        }
        let mut running = s.take(0);
        assert_eq!(s.pause_actions().pause, vec![p0.clone()]);
        let mut resumed = Vec::new();
        while s.buffered() > 0 {
            s.complete(&running[0].ticket, true);
            running = s.take(0);
            if !s.pause_actions().resume.is_empty() {
                resumed.push(s.buffered());
            }
        }
        assert_eq!(resumed, vec![3], "resumed at half of 6, not before");
    }

    #[test]
    fn a_full_buffer_pauses_no_partition_whose_messages_all_run() {
        let mut s = Scheduler::new(Limits {
            max_in_flight: 2,
            max_buffered: 3,
        });
        let (hot, cold) = (Tp::new("orders", 0), Tp::new("orders", 1));
        s.assign(hot.clone(), None, BTreeSet::new());
        s.assign(cold.clone(), None, BTreeSet::new());
        s.push(&cold, 0, key("c0"), 0, None, 0);
        s.push(&cold, 1, key("c1"), 1, None, 0);
        assert_eq!(s.take(0).len(), 2, "both of cold's messages run");
        for offset in 0..3 {
            s.push(&hot, offset, key(&format!("h{offset}")), offset, None, 0);
        }
        assert_eq!(
            s.pause_actions().pause,
            vec![hot],
            "cold holds nothing waiting"
        );
    }

    #[test]
    fn revoking_one_partition_keeps_the_others_work_and_order() {
        let mut s = Scheduler::new(limits(10));
        // One order's events on two topics share a lane (key = order id).
        let (inventory, payments) = (Tp::new("inventory", 0), Tp::new("payments", 0));
        s.assign(inventory.clone(), None, BTreeSet::new());
        s.assign(payments.clone(), None, BTreeSet::new());
        s.push(&inventory, 0, key("o1"), 10, None, 0);
        s.push(&payments, 0, key("o1"), 20, None, 0);
        s.push(&inventory, 1, key("o1"), 11, None, 0);
        s.push(&payments, 1, key("o2"), 21, None, 0);
        s.push(&payments, 2, key("o3"), 22, Some(5_000), 0);
        let running = s.take(0);
        assert_eq!(
            running.iter().map(|d| d.message).collect::<Vec<_>>(),
            vec![10, 21]
        );
        assert_eq!(s.buffered(), 2);
        s.begin_revoke(std::slice::from_ref(&inventory));
        assert_eq!(
            s.buffered(),
            1,
            "inventory's waiting message is dropped, payments' stays"
        );
        // o1 is still running (from inventory): a new o1 event waits for it.
        s.push(&payments, 3, key("o1"), 23, None, 0);
        assert!(s.take(0).is_empty(), "o1's head still runs");
        s.complete(&running[0].ticket, true);
        let next: Vec<i64> = s.take(0).into_iter().map(|d| d.message).collect();
        assert_eq!(next, vec![20], "then o1's payments events, in order");
        assert_eq!(
            s.next_due(),
            Some(5_000),
            "payments' retry copy still waits"
        );
        let due: Vec<i64> = s.take(5_000).into_iter().map(|d| d.message).collect();
        assert_eq!(due, vec![22]);
    }

    proptest! {
        /// Any arrival and completion order: each key's messages run one at a
        /// time in arrival order, the limit holds, and the committed offset
        /// never passes unfinished work nor moves backwards.
        #[test]
        fn keys_stay_in_order_and_offsets_stay_below_unfinished_work(
            arrivals in proptest::collection::vec((0..3i32, 0..20u8), 1..300),
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..600),
            max_in_flight in 1..16usize,
        ) {
            let mut s = Scheduler::new(limits(max_in_flight));
            let tps: Vec<Tp> = (0..3).map(|p| Tp::new("t", p)).collect();
            for tp in &tps { s.assign(tp.clone(), None, BTreeSet::new()); }
            let mut next_offset = [0i64; 3];
            let mut expected: HashMap<Key, VecDeque<(i32, i64)>> = HashMap::new();
            for (p, k) in arrivals {
                let k = key(&format!("k{k}"));
                let offset = next_offset[p as usize];
                next_offset[p as usize] += 1;
                expected.entry(k.clone()).or_default().push_back((p, offset));
                s.push(&tps[p as usize], offset, k, (p, offset), None, 0);
            }
            let mut running: Vec<Dispatch<(i32, i64)>> = Vec::new();
            let mut finished: HashSet<(i32, i64)> = HashSet::new();
            let mut committed = [0i64; 3];
            let mut picks = picks.into_iter();
            loop {
                for d in s.take(0) {
                    prop_assert!(!running.iter().any(|r| r.ticket.key == d.ticket.key), "two of one key at once");
                    let next = expected.get_mut(&d.ticket.key).unwrap().pop_front();
                    prop_assert_eq!(next, Some(d.message), "out of order");
                    running.push(d);
                }
                prop_assert!(running.len() <= max_in_flight);
                if running.is_empty() { break; }
                let i = picks.next().map_or(0, |ix| ix.index(running.len()));
                let d = running.swap_remove(i);
                finished.insert(d.message);
                s.complete(&d.ticket, true);
                for c in s.commits() {
                    let p = c.tp.partition as usize;
                    prop_assert!(c.offset >= committed[p], "backwards");
                    committed[p] = c.offset;
                    for o in 0..c.offset {
                        prop_assert!(finished.contains(&(p as i32, o)), "commit {} passes unfinished {}", c.offset, o);
                    }
                }
            }
            prop_assert!(expected.values().all(|q| q.is_empty()), "something never ran");
            prop_assert_eq!(s.in_flight(), 0);
        }
    }
}
