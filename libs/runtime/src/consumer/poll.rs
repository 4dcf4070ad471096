//! The poll thread: the only place that talks to the Kafka consumer. It
//! polls, hands each message to the scheduler (or finishes it at once when
//! this service has nothing to do with it), starts what may run, pauses and
//! resumes partitions as the scheduler says, and commits offsets. It never
//! waits for a handler, so `max.poll.interval.ms` cannot run out because
//! handlers are slow. Rebalance callbacks run here too, inside `poll`: a
//! revocation stops dispatching the partitions, lets their in-flight work
//! finish (bounded), commits what finished and drops what waited, all before
//! the partitions leave.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orderflow_envelope::EventType;
use orderflow_telemetry::metrics_types::{
    CeTypeLabels, ConsumedLabels, PartitionLabels, RebalanceLabels,
};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::offsets::{decode_metadata, encode_metadata, finished_from_runs};
use super::retry::RETRY_HEADER_PREFIX;
use super::scheduler::{Commit, Tp};
use super::Shared;

/// The longest the poll thread blocks in one poll.
const POLL: Duration = Duration::from_millis(50);
/// Commit metadata kept per partition (the broker allows 4096 bytes).
const METADATA_LIMIT: usize = 3_000;

pub(crate) struct Rebalancer {
    shared: Arc<Shared>,
    generation: u64,
}

impl Rebalancer {
    pub fn new(shared: Arc<Shared>, generation: u64) -> Self {
        Self { shared, generation }
    }

    /// False for a replaced consumer that is still closing: what it reports
    /// no longer concerns the partitions (a new consumer may own them).
    fn current(&self) -> bool {
        self.shared.generation.load(Ordering::SeqCst) == self.generation
    }
}

/// Why [`run`] returned.
pub(crate) enum Ended {
    /// Shutdown: the consumer committed and left its group.
    Stopped,
    /// The consumer was out of its group too long; a new one must take over.
    Stuck,
}

impl ClientContext for Rebalancer {
    /// librdkafka's statistics become the consumer-lag gauge.
    fn stats(&self, statistics: Statistics) {
        if !self.current() {
            return;
        }
        if let Some(group) = &statistics.cgrp {
            let changed =
                self.shared
                    .health
                    .observe(&group.state, &group.join_state, Instant::now());
            if changed {
                tracing::debug!(group = %self.shared.group, state = %group.state, join_state = %group.join_state,
                    assigned = group.assignment_size, "consumer group state");
            }
        }
        // Assigned partitions whose fetcher is stopped (paused ones keep
        // theirs `active`): a stalled assignment (consumer::health).
        let mut stopped = 0;
        let metrics = self.shared.rt.metrics();
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.desired && p.fetch_state == "stopped" {
                    stopped += 1;
                }
                // -1: not assigned to this member, or nothing committed yet.
                if *partition >= 0 && p.consumer_lag > 0 {
                    tracing::debug!(topic = %topic, partition, fetch_state = %p.fetch_state, desired = p.desired, next = p.next_offset,
                        app = p.app_offset, committed = p.committed_offset, hi = p.hi_offset, fetchq = p.fetchq_cnt,
                        lag = p.consumer_lag, "partition behind");
                }
                if *partition >= 0 && p.consumer_lag >= 0 {
                    let labels = PartitionLabels {
                        topic: topic.clone(),
                        partition: *partition,
                    };
                    metrics
                        .consumer_lag
                        .get_or_create(&labels)
                        .set(p.consumer_lag);
                }
            }
        }
        self.shared.health.observe_fetching(stopped, Instant::now());
    }
}

fn tps_of(tpl: &TopicPartitionList) -> Vec<Tp> {
    tpl.elements()
        .iter()
        .map(|e| Tp::new(e.topic(), e.partition()))
        .collect()
}

impl ConsumerContext for Rebalancer {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if !self.current() {
            return;
        }
        let shared = &self.shared;
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let tps = tps_of(tpl);
                let lost = consumer.assignment_lost();
                count_rebalance(shared, if lost { "lost" } else { "revoked" });
                tracing::info!(group = %shared.group, partitions = tps.len(), lost, "rebalance: partitions revoked");
                let timeout = shared.rt.stopping().left(Duration::from_millis(
                    shared.rt.config().consumer_revoke_timeout_ms,
                ));
                let commits = revoke(shared, &tps, if lost { Duration::ZERO } else { timeout });
                // Lost partitions belong to someone else already: committing
                // for them could move their offset under the new owner.
                if !lost {
                    commit(consumer, &commits, CommitMode::Sync);
                }
                // Another member reports these now; a frozen value here would
                // keep the lag alert firing.
                for tp in &tps {
                    shared.rt.metrics().consumer_lag.remove(&PartitionLabels {
                        topic: tp.topic.to_string(),
                        partition: tp.partition,
                    });
                }
            }
            Rebalance::Assign(tpl) => {
                count_rebalance(shared, "assigned");
                // What the last owner committed, and what it finished above that.
                let committed = consumer
                    .committed_offsets((*tpl).clone(), Duration::from_secs(10))
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "could not read committed offsets; what finished above them is redone");
                        (*tpl).clone()
                    });
                let mut scheduler = shared.scheduler.lock().expect("scheduler lock");
                for e in committed.elements() {
                    let offset = match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    };
                    let done = offset
                        .map(|o| finished_from_runs(o, &decode_metadata(e.metadata())))
                        .unwrap_or_default();
                    tracing::debug!(topic = e.topic(), partition = e.partition(), committed = ?offset,
                        finished_above = done.len(), "partition assigned");
                    scheduler.assign(Tp::new(e.topic(), e.partition()), offset, done);
                }
            }
            Rebalance::Error(_) => {}
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if !self.current() {
            return;
        }
        match rebalance {
            Rebalance::Assign(tpl) => {
                // A pause survives a revocation followed by a new assignment:
                // start every newly assigned partition fetching.
                if let Err(e) = consumer.resume(tpl) {
                    tracing::debug!(error = %e, "resume after assignment");
                }
                tracing::info!(group = %self.shared.group, partitions = tpl.count(), "rebalance: partitions assigned")
            }
            Rebalance::Error(e) => {
                tracing::warn!(group = %self.shared.group, error = %e, "rebalance error")
            }
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if !self.current() {
            return;
        }
        if let Err(e) = result {
            tracing::debug!(error = %e, "offset commit failed; the next round sends it again");
            let refused: Vec<(Tp, i64)> = offsets
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some((Tp::new(e.topic(), e.partition()), o)),
                    _ => None,
                })
                .collect();
            self.shared
                .scheduler
                .lock()
                .expect("scheduler lock")
                .commit_failed(&refused);
        }
    }
}

fn count_rebalance(shared: &Shared, event: &'static str) {
    shared
        .rt
        .metrics()
        .rebalances
        .get_or_create(&RebalanceLabels { event })
        .inc();
}

/// Stops the partitions, waits up to `timeout` for their in-flight work and
/// returns what to commit for them.
fn revoke(shared: &Shared, tps: &[Tp], timeout: Duration) -> Vec<Commit> {
    drain(shared, tps, timeout);
    shared
        .scheduler
        .lock()
        .expect("scheduler lock")
        .finish_revoke(tps)
}

/// Stops dispatching the partitions and waits up to `timeout` for their
/// in-flight work.
fn drain(shared: &Shared, tps: &[Tp], timeout: Duration) {
    let mut scheduler = shared.scheduler.lock().expect("scheduler lock");
    scheduler.begin_revoke(tps);
    let started = Instant::now();
    let (scheduler, waited) = shared
        .finished
        .wait_timeout_while(scheduler, timeout, |s| s.in_flight_of(tps) > 0)
        .expect("scheduler lock");
    if waited.timed_out() && !timeout.is_zero() {
        tracing::warn!(
            running = scheduler.in_flight_of(tps),
            "in-flight events of revoked partitions did not finish within {timeout:?}; the next owner handles them again"
        );
    } else if !tps.is_empty() {
        tracing::debug!(
            waited_ms = started.elapsed().as_millis() as u64,
            "revoked partitions drained"
        );
    }
}

/// Commits; false when it was refused at once (a rebalance in progress, say),
/// and then the next round sends it again; a refusal that comes later from
/// the broker reaches `commit_callback`.
fn commit(consumer: &BaseConsumer<Rebalancer>, commits: &[Commit], mode: CommitMode) -> bool {
    if commits.is_empty() {
        return true;
    }
    let mut tpl = TopicPartitionList::with_capacity(commits.len());
    for c in commits {
        tracing::debug!(partition = %c.tp, offset = c.offset, runs = c.finished_runs.len(), ?mode, "commit");
        match tpl.add_partition_offset(&c.tp.topic, c.tp.partition, Offset::Offset(c.offset)) {
            Ok(()) => {
                let metadata = encode_metadata(&c.finished_runs, METADATA_LIMIT);
                if let Some(mut element) = tpl.find_partition(&c.tp.topic, c.tp.partition) {
                    element.set_metadata(metadata);
                }
            }
            Err(e) => tracing::warn!(error = %e, partition = %c.tp, "offset not committed"),
        }
    }
    match consumer.commit(&tpl, mode) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "offset commit failed; the next round sends it again");
            let refused: Vec<(Tp, i64)> =
                commits.iter().map(|c| (c.tp.clone(), c.offset)).collect();
            consumer
                .context()
                .shared
                .scheduler
                .lock()
                .expect("scheduler lock")
                .commit_failed(&refused);
            false
        }
    }
}

/// How often every assigned partition's offset is committed again, moved or
/// not (Scheduler::recommit_all).
const FULL_COMMIT_EVERY: Duration = Duration::from_secs(10);

/// The poll loop, until shutdown (then the last commit) or until the
/// consumer is stuck out of its group (see `consumer::health`).
pub(super) fn run(shared: &Arc<Shared>, consumer: BaseConsumer<Rebalancer>) -> Ended {
    let config = shared.rt.config();
    let commit_every = Duration::from_millis(u64::from(config.kafka_auto_commit_interval_ms));
    let mut last_commit = Instant::now();
    let mut last_full_commit = Instant::now();
    let mut topics: HashMap<String, Arc<str>> = HashMap::new();
    let metrics = shared.rt.metrics().clone();
    while !shared.shutdown.is_cancelled() {
        let now = crate::now_millis() as u64;
        let wait = shared
            .scheduler
            .lock()
            .expect("scheduler lock")
            .next_due()
            .map_or(POLL, |due| {
                Duration::from_millis(due.saturating_sub(now)).min(POLL)
            });
        // The first message may take `wait`; what is fetched already comes
        // without waiting, a few hundred at a time under one lock.
        let mut polled = 0;
        let mut timeout = wait;
        while polled < 256 {
            match consumer.poll(timeout) {
                Some(Ok(message)) => accept(shared, &mut topics, &message),
                Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                None => break,
            }
            polled += 1;
            timeout = Duration::ZERO;
        }
        let (start, actions) = {
            let mut scheduler = shared.scheduler.lock().expect("scheduler lock");
            let start = scheduler.take(crate::now_millis() as u64);
            metrics.consumer_in_flight.set(scheduler.in_flight() as i64);
            metrics.consumer_buffered.set(scheduler.buffered() as i64);
            (start, scheduler.pause_actions())
        };
        shared.start(start);
        pause_or_resume(&consumer, &actions.pause, true);
        pause_or_resume(&consumer, &actions.resume, false);
        if last_commit.elapsed() >= commit_every {
            last_commit = Instant::now();
            if let Some(why) = shared.health.stuck(last_commit) {
                replace(shared, consumer, &why);
                return Ended::Stuck;
            }
            // Only with a coordinator: a commit sent without one can hold a
            // lost assignment's unassign for good (consumer::health).
            if !shared.health.may_commit() {
                continue;
            }
            let commits = {
                let mut scheduler = shared.scheduler.lock().expect("scheduler lock");
                if last_full_commit.elapsed() >= FULL_COMMIT_EVERY {
                    last_full_commit = Instant::now();
                    scheduler.recommit_all();
                }
                scheduler.commits()
            };
            commit(&consumer, &commits, CommitMode::Async);
        }
    }
    // Shutdown: nothing new starts and in-flight work finishes (for a
    // while), and what finished is committed. The broker refuses commits
    // while the group rebalances (another member joining, say): then the
    // consumer keeps serving the rebalance and commits again, rather than
    // leave the next owner to redo what was done, for as long as the budget
    // keeps 15 s (leaving the group, closing, and the HTTP server and outbox
    // after the consumer): the embedded broker refuses commits for the
    // session timeout less a second per join phase, and a cooperative
    // rebalance has two. Then it leaves its group; the revocation that
    // follows commits once more. A consumer that is not a member of its
    // group (no coordinator) can do neither, and is not waited for.
    // Every wait is cut to what the stop's budget has left; in-flight work
    // leaves 10 s of it for the commits, leaving the group and the rest.
    let budget = shared.rt.stopping();
    let member = shared.health.is_member();
    let assigned = shared.scheduler.lock().expect("scheduler lock").assigned();
    let timeout = Duration::from_millis(config.consumer_revoke_timeout_ms);
    drain(
        shared,
        &assigned,
        budget.left_keeping(timeout, Duration::from_secs(10)),
    );
    let settling = Instant::now()
        + budget.left_keeping(
            Duration::from_millis(config.shutdown_budget_ms),
            Duration::from_secs(15),
        );
    if member {
        loop {
            let commits = shared
                .scheduler
                .lock()
                .expect("scheduler lock")
                .final_commits(&assigned);
            if commit(&consumer, &commits, CommitMode::Sync) || Instant::now() > settling {
                break;
            }
            let _ = consumer.poll(Duration::from_millis(100));
        }
    }
    consumer.unsubscribe();
    let leaving = Instant::now() + budget.left(Duration::from_secs(10));
    while member
        && !consumer
            .assignment()
            .map(|a| a.count() == 0)
            .unwrap_or(true)
        && Instant::now() < leaving
    {
        let _ = consumer.poll(Duration::from_millis(100));
    }
    shared
        .scheduler
        .lock()
        .expect("scheduler lock")
        .finish_revoke(&assigned);
    close_within(consumer, budget.left(Duration::from_secs(5)));
    Ended::Stopped
}

/// Closes the consumer (it leaves its group), waiting at most `limit`:
/// librdkafka may never finish closing a consumer whose group handler is
/// stuck, and a service must still stop.
fn close_within(consumer: BaseConsumer<Rebalancer>, limit: Duration) {
    let (closed, wait) = std::sync::mpsc::channel();
    let _ = std::thread::Builder::new()
        .name("consumer-close".into())
        .spawn(move || {
            drop(consumer);
            let _ = closed.send(());
        });
    if wait.recv_timeout(limit).is_err() {
        tracing::warn!("the consumer did not close within {limit:?}; its group drops it after the session timeout");
    }
}

/// Gives up a consumer that is out of its group: its partitions are dropped
/// as lost (another member may own them; nothing is committed for them), and
/// it closes on a thread of its own (librdkafka may never finish that).
fn replace(shared: &Shared, consumer: BaseConsumer<Rebalancer>, why: &str) {
    tracing::error!(group = %shared.group, "the consumer is stuck ({why}); a new one replaces it");
    count_rebalance(shared, "replaced");
    let assigned = shared.scheduler.lock().expect("scheduler lock").assigned();
    // As lost: nothing is committed for them.
    let _ = revoke(shared, &assigned, Duration::ZERO);
    // The old consumer's callbacks are ignored from here (Rebalancer::current).
    shared.generation.fetch_add(1, Ordering::SeqCst);
    close_within(consumer, Duration::from_secs(1));
}

fn pause_or_resume(consumer: &BaseConsumer<Rebalancer>, tps: &[Tp], pause: bool) {
    if tps.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::with_capacity(tps.len());
    for tp in tps {
        tpl.add_partition(&tp.topic, tp.partition);
    }
    let result = if pause {
        consumer.pause(&tpl)
    } else {
        consumer.resume(&tpl)
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, pause, "pause/resume");
    }
}

/// Hands a message to the scheduler, or finishes it at once when this
/// service has nothing to do with its type.
fn accept(shared: &Shared, topics: &mut HashMap<String, Arc<str>>, m: &BorrowedMessage<'_>) {
    let topic = match topics.get(m.topic()) {
        Some(t) => t.clone(),
        None => {
            let t: Arc<str> = Arc::from(m.topic());
            topics.insert(m.topic().to_string(), t.clone());
            t
        }
    };
    let tp = Tp {
        topic,
        partition: m.partition(),
    };
    let mut ce_type = None;
    let mut due = None;
    if let Some(headers) = m.headers() {
        for h in headers.iter() {
            if h.key.eq_ignore_ascii_case("ce_type") {
                ce_type = h.value.and_then(|v| std::str::from_utf8(v).ok());
            } else if h.key.len() > RETRY_HEADER_PREFIX.len()
                && h.key.starts_with(RETRY_HEADER_PREFIX)
                && &h.key[RETRY_HEADER_PREFIX.len()..] == "due-at"
            {
                due = h
                    .value
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse::<u64>().ok());
            }
        }
    }
    let metrics = shared.rt.metrics();
    // A retry copy always goes to a worker, even of a type this build does not
    // handle (after a rollback): its order is parked with it at the head, and
    // skipping it here would leave every later event of the order stored
    // behind it for good. The worker dead-letters it and lets the order go on.
    let retry_copy = due.is_some();
    if let (Some(ce_type), false) = (ce_type, retry_copy) {
        match EventType::from_ce_type(ce_type) {
            Some(t) if shared.handler.handles(t) => {}
            Some(t) => {
                metrics
                    .events_consumed
                    .get_or_create(&ConsumedLabels {
                        topic: m.topic().to_string(),
                        event_type: t.name().to_string(),
                        outcome: "skipped",
                    })
                    .inc();
                shared
                    .scheduler
                    .lock()
                    .expect("scheduler lock")
                    .skip(&tp, m.offset());
                return;
            }
            None => {
                // A newer producer's event this build does not know: skipping it
                // keeps old consumers working; the metric shows an upgrade that
                // went producers first.
                tracing::debug!(ce_type, "skipping an event type this build does not know");
                metrics
                    .unknown_event_types
                    .get_or_create(&CeTypeLabels {
                        ce_type: bounded_label(ce_type),
                    })
                    .inc();
                shared
                    .scheduler
                    .lock()
                    .expect("scheduler lock")
                    .skip(&tp, m.offset());
                return;
            }
        }
    }
    // A handled type, or not a CloudEvent at all (the worker dead-letters it).
    let key: Arc<str> = match m.key() {
        Some(k) => Arc::from(String::from_utf8_lossy(k).as_ref()),
        // No key, no order to keep: a key of its own.
        None => Arc::from(format!("\u{0}{tp}@{}", m.offset()).as_str()),
    };
    let pushed = shared.scheduler.lock().expect("scheduler lock").push(
        &tp,
        m.offset(),
        key,
        m.detach(),
        due,
        crate::now_millis() as u64,
    );
    if !pushed {
        tracing::debug!(partition = %tp, offset = m.offset(), "not handled: finished by the partition's last owner, or no longer assigned");
    }
}

/// A label value from outside input, kept to a bounded set of shapes.
pub(super) fn bounded_label(ce_type: &str) -> String {
    let ok = ce_type.len() <= 100
        && ce_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
    if ok {
        ce_type.to_string()
    } else {
        "other".into()
    }
}
