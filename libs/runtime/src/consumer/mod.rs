//! The consumer. A dedicated thread polls Kafka and never waits for a
//! handler ([`poll`]); it hands messages to the [`scheduler`], which runs
//! one event per order at a time and many orders at once, each as a task
//! ([`worker`]). Their database work is applied in batches ([`work`], group
//! commit); external calls run between two short transactions. Transient
//! failures go to a retry tier topic ([`retry`]) while later events of the
//! same order wait in the database ([`parking`]). The committed offset of a
//! partition is the contiguous low watermark of finished work ([`offsets`]),
//! committed with the finished offsets above it, periodically, on revocation
//! and at shutdown.

mod health;
mod key_lock;
pub(crate) mod offsets;
pub(crate) mod parking;
mod poll;
pub(crate) mod retry;
pub(crate) mod scheduler;
pub(crate) mod work;
pub(crate) mod worker;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::error::RuntimeError;
use crate::group_commit::{BatchLimits, GroupCommit};
use crate::handler::Handler;
use crate::producer::client_config;
use crate::service::Runtime;

use retry::RetrySchedule;
use scheduler::{Dispatch, Limits, Scheduler, Ticket};
use work::{HandleWork, WorkContext};

/// What librdkafka prefetches per partition. The scheduler buffers what it
/// is handed, so a small prefetch bounds memory; and when a partition's
/// prefetch is full, its next fetch waits `fetch.queue.backoff.ms`, 1 s by
/// default, which left partitions idle a second at a time whenever a burst
/// filled them (a relay chain on the embedded broker moved 2,600 msg/s with
/// it and 94,000 with 10 ms). The bench's raw chain uses the same settings.
pub const PREFETCH: [(&str, &str); 3] = [
    ("queued.max.messages.kbytes", "8192"),
    ("queued.min.messages", "1000"),
    ("fetch.queue.backoff.ms", "10"),
];

/// What the poll thread, the rebalance callbacks and the workers share.
pub(crate) struct Shared {
    pub rt: Arc<Runtime>,
    pub handler: Arc<dyn Handler>,
    pub group: String,
    pub scheduler: Mutex<Scheduler<OwnedMessage>>,
    /// Signalled whenever work finishes (a revocation waits on it).
    pub finished: Condvar,
    pub events: GroupCommit<HandleWork>,
    pub calls: Semaphore,
    pub schedule: RetrySchedule,
    pub tokio: tokio::runtime::Handle,
    pub shutdown: CancellationToken,
    /// Whether the consumer is a working member of its group.
    pub health: health::GroupHealth,
    /// Which consumer is the current one (a stuck one is replaced, and the
    /// callbacks of the old one are ignored while it closes).
    pub generation: AtomicU64,
}

impl Shared {
    /// A dispatched message is done (`finished`) or given up (its offset
    /// stays, so it is read again); its key's next message and whatever else
    /// now fits in the in-flight limit start.
    pub fn finish(self: &Arc<Self>, ticket: &Ticket, finished: bool) {
        let next = {
            let mut scheduler = self.scheduler.lock().expect("scheduler lock");
            scheduler.complete(ticket, finished);
            scheduler.take(crate::now_millis() as u64)
        };
        self.finished.notify_all();
        self.start(next);
    }

    pub fn start(self: &Arc<Self>, dispatches: Vec<Dispatch<OwnedMessage>>) {
        for dispatch in dispatches {
            let shared = self.clone();
            self.tokio.spawn(worker::run(shared, dispatch));
        }
    }

    pub fn is_live(&self, ticket: &Ticket) -> bool {
        self.scheduler
            .lock()
            .expect("scheduler lock")
            .is_live(ticket)
    }
}

/// Runs the consumer until `shutdown`, then finishes in-flight work (for a
/// while), commits offsets and leaves the group.
pub(crate) async fn run(
    rt: Arc<Runtime>,
    handler: Arc<dyn Handler>,
    shutdown: CancellationToken,
) -> Result<(), RuntimeError> {
    let config = rt.config().clone();
    let group = rt.spec().group_id();
    let mut topics: Vec<String> = rt
        .spec()
        .consumes
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    topics.extend(crate::topics::retry_topics(
        rt.service(),
        &config.retry_tiers(),
    ));

    let limits = BatchLimits {
        max_items: config.consumer_batch_max,
        concurrency: match rt.db().backend() {
            crate::db::Backend::Sqlite => 1,
            crate::db::Backend::Postgres => config.database_writers,
        },
    };
    let context = Arc::new(WorkContext {
        backend: rt.db().backend(),
        emitter: rt.emitter().clone(),
        handler: handler.clone(),
        group: group.clone(),
    });
    let events = GroupCommit::start(
        "events",
        rt.db().clone(),
        rt.relay().clone(),
        context,
        limits,
        rt.metrics().clone(),
    );
    let shared = Arc::new(Shared {
        rt: rt.clone(),
        handler,
        group: group.clone(),
        scheduler: Mutex::new(Scheduler::new(Limits {
            max_in_flight: config.consumer_max_in_flight,
            max_buffered: config.consumer_max_in_flight * 4,
        })),
        finished: Condvar::new(),
        events,
        calls: Semaphore::new(config.external_calls_max_in_flight),
        schedule: RetrySchedule::new(
            config.retry_tiers(),
            Duration::from_millis(config.step_deadline_ms),
        ),
        tokio: tokio::runtime::Handle::current(),
        shutdown: shutdown.clone(),
        health: health::GroupHealth::new(Instant::now()),
        generation: AtomicU64::new(0),
    });

    let mut client = client_config(&config);
    client
        .set("group.id", &group)
        .set("client.id", format!("{}-consumer", rt.service()))
        // Offsets are committed by the poll thread: the contiguous low
        // watermark of finished work, with what finished above it.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set(
            "fetch.wait.max.ms",
            config.kafka_fetch_wait_max_ms.to_string(),
        )
        .set(
            "session.timeout.ms",
            config.kafka_session_timeout_ms.to_string(),
        )
        .set("statistics.interval.ms", "5000");
    for (key, value) in PREFETCH {
        client.set(key, value);
    }
    topics.extend(retired_tiers(&client, rt.service(), &topics));
    let consumer = subscribe(&client, &shared, &topics, 0)?;
    tracing::info!(group = %group, topics = ?topics, "consuming");

    let housekeeping = tokio::spawn(worker::resume_stalled(shared.clone()));
    let (done, finished) = tokio::sync::oneshot::channel();
    let poller = shared.clone();
    std::thread::Builder::new()
        .name(format!("{}-poll", rt.service()))
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut consumer = consumer;
                let mut generation = 0;
                while let poll::Ended::Stuck = poll::run(&poller, consumer) {
                    generation += 1;
                    consumer = loop {
                        match subscribe(&client, &poller, &topics, generation) {
                            Ok(c) => break c,
                            Err(e) => {
                                tracing::error!(error = %e, "could not create a new consumer; trying again in 5 s");
                                std::thread::sleep(Duration::from_secs(5));
                            }
                        }
                    };
                    tracing::info!(group = %poller.group, generation, "a new consumer joins the group");
                }
            }));
            let _ = done.send(result.is_ok());
        })
        .map_err(RuntimeError::Http)?;
    let clean = finished.await.unwrap_or(false);
    housekeeping.abort();
    tracing::info!(group = %group, "consumer stopped and left its group");
    if clean {
        Ok(())
    } else {
        Err(RuntimeError::ConsumerStopped)
    }
}

/// Retry tier topics of the service on the broker that its configuration no
/// longer names; none (with a warning) when the broker cannot be asked.
fn retired_tiers(
    client: &rdkafka::ClientConfig,
    service: &str,
    configured: &[String],
) -> Vec<String> {
    let listed = client
        .create::<BaseConsumer>()
        .and_then(|probe| probe.fetch_metadata(None, Duration::from_secs(10)));
    match listed {
        Ok(metadata) => {
            let retired = crate::topics::retired_retry_topics(
                service,
                configured,
                metadata.topics().iter().map(|t| t.name()),
            );
            if !retired.is_empty() {
                tracing::info!(topics = ?retired, "reading retry tiers no longer configured, for the copies still in them");
            }
            retired
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not list the broker's topics; retry tiers removed from the configuration are not read");
            Vec::new()
        }
    }
}

/// A consumer of `topics` in the service's group, as consumer `generation`
/// (see [`Shared::generation`]).
fn subscribe(
    client: &rdkafka::ClientConfig,
    shared: &Arc<Shared>,
    topics: &[String],
    generation: u64,
) -> Result<BaseConsumer<poll::Rebalancer>, RuntimeError> {
    shared
        .generation
        .store(generation, std::sync::atomic::Ordering::SeqCst);
    shared.health.reset(Instant::now());
    let consumer: BaseConsumer<poll::Rebalancer> = client
        .create_with_context(poll::Rebalancer::new(shared.clone(), generation))
        .map_err(|source| RuntimeError::Kafka {
            what: "consumer",
            source,
        })?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .map_err(|source| RuntimeError::Kafka {
            what: "subscription",
            source,
        })?;
    Ok(consumer)
}
