//! The consumer loop. Partitions are processed concurrently, each in order, so
//! one order's events (same key, same partition) are handled in sequence while
//! other orders proceed. For every message: decode, then in one database
//! transaction record it in the inbox, apply the handler's effects and write
//! the events it emits to the outbox; only after that commits is the offset
//! stored (`enable.auto.offset.store=false`), and auto-commit (also on
//! revocation) and the final commit at shutdown send stored offsets to Kafka.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orderflow_envelope::{CloudEventHeaders, DecodeError, Event, EventType};
use orderflow_telemetry::metrics_types::{
    ConsumedLabels, EventTypeLabels, PartitionLabels, TopicLabels,
};
use orderflow_telemetry::Metrics;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;
use sqlx::AnyConnection;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::RuntimeError;
use crate::inbox;
use crate::producer::client_config;
use crate::service::Runtime;

/// How a handler failed: worth retrying, or never going to work.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A dependency was down or busy; the same event may succeed later.
    #[error("{0}")]
    Transient(String),
    /// The event cannot be processed (it breaks an invariant); retrying will not help.
    #[error("{0}")]
    Permanent(String),
}

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        HandlerError::Transient(format!("database: {e}"))
    }
}

impl From<DecodeError> for HandlerError {
    fn from(e: DecodeError) -> Self {
        if e.is_transient() {
            HandlerError::Transient(e.to_string())
        } else {
            HandlerError::Permanent(e.to_string())
        }
    }
}

/// What a handler works with: the open transaction, the incoming event's
/// metadata, and a list of events to emit when the transaction commits.
pub struct HandlerCtx<'a> {
    pub tx: &'a mut AnyConnection,
    pub meta: &'a CloudEventHeaders,
    emitted: Vec<Event>,
    after_commit: Vec<Box<dyn FnOnce() + Send>>,
}

impl HandlerCtx<'_> {
    /// Emits an event; it is written to the outbox in this transaction.
    pub fn emit(&mut self, event: impl Into<Event>) {
        self.emitted.push(event.into());
    }

    /// Runs `action` once the transaction has committed, and never if it
    /// does not (for example, metrics of what the handler decided).
    pub fn after_commit(&mut self, action: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(action));
    }
}

/// A service's reaction to the events it consumes, in domain words. Inbox,
/// outbox, retries, dead letters and offsets are done around it.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Whether this service acts on events of this type; others are skipped.
    fn handles(&self, event_type: EventType) -> bool;

    async fn handle(&self, event: Event, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError>;
}

/// Logs partition assignment changes, which show scale-out at work, and turns
/// librdkafka's statistics into the consumer-lag gauge.
struct RebalanceLogger {
    group: String,
    metrics: Metrics,
}

impl ClientContext for RebalanceLogger {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // -1: not assigned to this member, or nothing committed yet.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    let labels = PartitionLabels {
                        topic: topic.clone(),
                        partition: *partition,
                    };
                    self.metrics
                        .consumer_lag
                        .get_or_create(&labels)
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for RebalanceLogger {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            tracing::info!(group = %self.group, partitions = tpl.count(), "rebalance: partitions revoked");
            // Another member reports these now; a frozen value here would keep
            // the lag alert firing.
            for p in tpl.elements() {
                let labels = PartitionLabels {
                    topic: p.topic().to_string(),
                    partition: p.partition(),
                };
                self.metrics.consumer_lag.remove(&labels);
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(group = %self.group, partitions = tpl.count(), "rebalance: partitions assigned")
            }
            Rebalance::Error(e) => {
                tracing::warn!(group = %self.group, error = %e, "rebalance error")
            }
            Rebalance::Revoke(_) => {}
        }
    }
}

type KafkaConsumer = StreamConsumer<RebalanceLogger>;

/// How processing one message ended.
enum Outcome {
    /// Done (applied, duplicate, skipped or dead-lettered): store the offset.
    Done,
    /// Interrupted by shutdown: leave the offset so the message is redelivered.
    Abandoned,
}

/// Runs the consumer until `shutdown`, then finishes in-flight messages,
/// commits offsets and leaves the group.
pub(crate) async fn run(
    rt: Arc<Runtime>,
    handler: Arc<dyn Handler>,
    shutdown: CancellationToken,
) -> Result<(), RuntimeError> {
    let config = rt.config();
    let group_id = rt.spec().group_id();
    let topics: Vec<&str> = rt.spec().consumes.iter().map(|t| t.name()).collect();
    let mut client = client_config(config);
    client
        .set("group.id", &group_id)
        .set("client.id", format!("{}-consumer", rt.service()))
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.commit.interval.ms",
            config.kafka_auto_commit_interval_ms.to_string(),
        )
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
    let consumer: Arc<KafkaConsumer> = Arc::new(
        client
            .create_with_context(RebalanceLogger {
                group: group_id.clone(),
                metrics: rt.metrics().clone(),
            })
            .map_err(|source| RuntimeError::Kafka {
                what: "consumer",
                source,
            })?,
    );
    consumer
        .subscribe(&topics)
        .map_err(|source| RuntimeError::Kafka {
            what: "subscription",
            source,
        })?;
    tracing::info!(group = %group_id, topics = ?topics, "consuming");

    let mut partitions: HashMap<(String, i32), mpsc::Sender<OwnedMessage>> = HashMap::new();
    let mut workers = JoinSet::new();
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        let message = match message {
            Ok(m) => m.detach(),
            Err(e) => {
                tracing::warn!(error = %e, "consumer error");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = (message.topic().to_string(), message.partition());
        let sender = partitions.entry(slot).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(256);
            let worker = PartitionWorker {
                rt: rt.clone(),
                handler: handler.clone(),
                consumer: consumer.clone(),
                group: group_id.clone(),
                shutdown: shutdown.clone(),
            };
            workers.spawn(worker.run(rx));
            tx
        });
        if sender.send(message).await.is_err() {
            break; // the worker stopped: shutdown is under way
        }
    }
    drop(partitions);
    while workers.join_next().await.is_some() {}
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing stored since the last auto-commit is a normal case.
        tracing::debug!(error = %e, "final offset commit");
    }
    consumer.unsubscribe();
    tracing::info!(group = %group_id, "consumer stopped and left its group");
    Ok(())
}

struct PartitionWorker {
    rt: Arc<Runtime>,
    handler: Arc<dyn Handler>,
    consumer: Arc<KafkaConsumer>,
    group: String,
    shutdown: CancellationToken,
}

impl PartitionWorker {
    async fn run(self, mut messages: mpsc::Receiver<OwnedMessage>) {
        while let Some(message) = messages.recv().await {
            if self.shutdown.is_cancelled() {
                break;
            }
            match self.process(&message).await {
                Outcome::Done => {
                    // The offset of the message itself: librdkafka's
                    // rd_kafka_offset_store stores (and commits) offset + 1, the
                    // next message to read. Passing offset + 1 here would skip a
                    // message after every restart or rebalance.
                    if let Err(e) = self.consumer.store_offset(
                        message.topic(),
                        message.partition(),
                        message.offset(),
                    ) {
                        // The partition moved to another member; it will redeliver,
                        // and the inbox makes that harmless.
                        tracing::debug!(error = %e, "offset not stored");
                    }
                }
                Outcome::Abandoned => break,
            }
        }
    }

    /// Counts one message's outcome.
    fn count(&self, message: &OwnedMessage, event_type: &str, outcome: &'static str) {
        let labels = ConsumedLabels {
            topic: message.topic().to_string(),
            event_type: event_type.to_string(),
            outcome,
        };
        self.rt
            .metrics()
            .events_consumed
            .get_or_create(&labels)
            .inc();
    }

    async fn process(&self, message: &OwnedMessage) -> Outcome {
        let pairs: Vec<(&str, &[u8])> = message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key, h.value.unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let meta = match CloudEventHeaders::from_pairs(pairs) {
            Ok(meta) => meta,
            Err(e) => {
                return self
                    .dead_letter(message, "invalid", &format!("not a CloudEvent: {e}"), 1)
                    .await;
            }
        };
        let key = message
            .key()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let span = tracing::info_span!(
            "process",
            otel.name = %format!("{} process", message.topic()),
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.destination.name = %message.topic(),
            messaging.destination.partition.id = message.partition(),
            messaging.kafka.offset = message.offset(),
            messaging.kafka.message.key = %key,
            messaging.message.id = %meta.id,
            messaging.consumer.group.name = %self.group,
            order.id = %meta.subject,
            event.type = %meta.event_type,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        orderflow_telemetry::trace::set_parent(
            &span,
            meta.traceparent.as_deref(),
            meta.tracestate.as_deref(),
        );
        orderflow_telemetry::trace::record_ids(&span);
        self.process_event(message, meta).instrument(span).await
    }

    /// Decodes and applies one CloudEvent, in its consume span.
    async fn process_event(&self, message: &OwnedMessage, meta: CloudEventHeaders) -> Outcome {
        let Some(event_type) = EventType::from_ce_type(&meta.event_type) else {
            // A type this build does not know: a newer producer's event that this
            // consumer has no business with. Skipping keeps old consumers working.
            tracing::debug!(ce_type = %meta.event_type, "skipping unknown event type");
            self.count(message, "unknown", "skipped");
            return Outcome::Done;
        };
        if !self.handler.handles(event_type) {
            self.count(message, event_type.name(), "skipped");
            return Outcome::Done;
        }
        let started = std::time::Instant::now();
        let type_labels = EventTypeLabels {
            event_type: event_type.name().to_string(),
        };
        let payload = message.payload().unwrap_or_default();
        let backoff = &self.rt.config().retry_backoff_ms;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let result = match self.rt.codec().decode(Some(event_type), payload).await {
                Ok(event) => self.apply(event, &meta).await,
                Err(e) => Err(e.into()),
            };
            let reason = match result {
                Ok(applied) => {
                    self.count(message, event_type.name(), applied);
                    let elapsed = started.elapsed().as_secs_f64();
                    self.rt
                        .metrics()
                        .handler_duration
                        .get_or_create(&type_labels)
                        .observe(elapsed);
                    return Outcome::Done;
                }
                Err(HandlerError::Permanent(reason)) => {
                    return self
                        .dead_letter(message, event_type.name(), &reason, attempt)
                        .await;
                }
                Err(HandlerError::Transient(reason)) => reason,
            };
            let Some(wait) = backoff.get(attempt as usize - 1) else {
                return self
                    .dead_letter(
                        message,
                        event_type.name(),
                        &format!("gave up after {attempt} attempts: {reason}"),
                        attempt,
                    )
                    .await;
            };
            tracing::warn!(order_id = %meta.subject, event = event_type.name(), attempt, error = %reason,
                "transient failure; retrying in {wait} ms");
            self.rt
                .metrics()
                .handler_retries
                .get_or_create(&type_labels)
                .inc();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(*wait)) => {}
                _ = self.shutdown.cancelled() => return Outcome::Abandoned,
            }
        }
    }

    /// Inbox, handler and outbox in one transaction. Returns the outcome:
    /// `handled`, or `duplicate` when the inbox had seen the event.
    async fn apply(
        &self,
        event: Event,
        meta: &CloudEventHeaders,
    ) -> Result<&'static str, HandlerError> {
        let event_type = event.event_type();
        let mut tx = self.rt.db().pool().begin().await?;
        if !inbox::first_delivery(&mut tx, &self.group, &meta.id, event_type.name()).await? {
            tracing::debug!(order_id = %meta.subject, event = event_type.name(), "duplicate delivery ignored");
            tx.rollback().await?;
            return Ok("duplicate");
        }
        let mut ctx = HandlerCtx {
            tx: &mut tx,
            meta,
            emitted: Vec::new(),
            after_commit: Vec::new(),
        };
        self.handler.handle(event, &mut ctx).await?;
        let emitted = std::mem::take(&mut ctx.emitted);
        let after_commit = std::mem::take(&mut ctx.after_commit);
        for next in &emitted {
            self.rt.emit(&mut tx, next, Some(meta)).await?;
        }
        tx.commit().await?;
        for action in after_commit {
            action();
        }
        if !emitted.is_empty() {
            self.rt.wake_relay();
        }
        tracing::info!(order_id = %meta.subject, event = event_type.name(),
            emitted = ?emitted.iter().map(|e| e.event_type().name()).collect::<Vec<_>>(), "handled");
        Ok("handled")
    }

    /// Parks the message on the service's dead-letter topic. Keeps trying until
    /// the broker has it: losing it is not an option.
    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        event_type: &str,
        error: &str,
        attempts: u32,
    ) -> Outcome {
        let topic = crate::topics::dead_letter_topic(self.rt.service());
        let headers = crate::dead_letter_headers(message, self.rt.service(), error, attempts);
        let key = message.key().unwrap_or_default();
        let payload = message.payload().unwrap_or_default();
        tracing::warn!(
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            error,
            "dead-lettering message to {topic}"
        );
        loop {
            // A delivery can take up to message.timeout.ms while the broker is
            // away: shutdown must not wait for it (the message is redelivered).
            let sent = tokio::select! {
                sent = self.rt.producer().send_and_wait(&topic, key, &headers, payload) => sent,
                _ = self.shutdown.cancelled() => return Outcome::Abandoned,
            };
            match sent {
                Ok(_) => {
                    // Counted once the dead letter is written, so a redelivery
                    // after an abandoned attempt is not counted twice.
                    let labels = TopicLabels {
                        topic: message.topic().to_string(),
                    };
                    self.rt.metrics().dead_letters.get_or_create(&labels).inc();
                    self.count(message, event_type, "dead_lettered");
                    return Outcome::Done;
                }
                Err(e) => tracing::error!(error = %e, "could not write dead letter; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.shutdown.cancelled() => return Outcome::Abandoned,
            }
        }
    }
}
