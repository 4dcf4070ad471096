//! The transactional outbox. A handler's events are written as rows in the same
//! transaction as its state change; the relay publishes them with the
//! idempotent producer, many in flight at once, and deletes what the broker
//! acknowledged. A crash between publish and delete republishes, and the
//! consumers' inboxes absorb the duplicate.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use orderflow_envelope::Envelope;
use sqlx::{AnyConnection, Row};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::db::{Backend, Database};
use crate::producer::Producer;
use orderflow_telemetry::metrics_types::TopicEventLabels;
use orderflow_telemetry::Metrics;

/// Rows one relay pass publishes at most.
const BATCH: i64 = 500;

/// Writes an event to the outbox inside the caller's transaction.
pub async fn enqueue(conn: &mut AnyConnection, envelope: &Envelope) -> Result<(), sqlx::Error> {
    let headers: Vec<(&str, String)> = envelope.headers.to_pairs();
    let headers = serde_json::to_string(&headers).expect("headers serialize");
    sqlx::query(
        "INSERT INTO orderflow_outbox (id, topic, message_key, headers, payload, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    // The CloudEvents id is a UUIDv7, so ordering by id is ordering by creation.
    .bind(&envelope.headers.id)
    .bind(envelope.topic)
    .bind(&envelope.key)
    .bind(headers)
    .bind(&envelope.payload)
    .bind(crate::now_millis())
    .execute(conn)
    .await?;
    Ok(())
}

/// Publishes outbox rows to Kafka.
pub struct OutboxRelay {
    db: Database,
    producer: Producer,
    wake: Arc<Notify>,
    poll: Duration,
    metrics: Metrics,
}

struct Pending {
    id: String,
    topic: String,
    key: String,
    headers: Vec<(String, Vec<u8>)>,
    payload: Vec<u8>,
}

impl OutboxRelay {
    pub fn new(db: Database, producer: Producer, poll: Duration, metrics: Metrics) -> Self {
        Self {
            db,
            producer,
            wake: Arc::new(Notify::new()),
            poll,
            metrics,
        }
    }

    /// Backlog and age of the oldest row, for the metrics.
    async fn measure_backlog(&self) -> Result<(), sqlx::Error> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM orderflow_outbox")
                .fetch_one(self.db.pool())
                .await?;
        let n: i64 = row.try_get("n")?;
        let oldest: Option<i64> = row.try_get("oldest")?;
        self.metrics.outbox_backlog.set(n);
        let age = oldest
            .map(|t| (crate::now_millis() - t).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        self.metrics.outbox_oldest_age_seconds.set(age);
        Ok(())
    }

    /// Notifying this wakes the relay at once instead of at its next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Publishes until `shutdown`, then drains what is left.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut measured = tokio::time::Instant::now();
        loop {
            if measured.elapsed() >= Duration::from_secs(1) {
                measured = tokio::time::Instant::now();
                if let Err(e) = self.measure_backlog().await {
                    tracing::debug!(error = %e, "could not measure the outbox backlog");
                }
            }
            // A pass waits for the broker's acknowledgements, which can take up to
            // message.timeout.ms while it is away: shutdown does not wait for that
            // (an interrupted pass leaves its rows, to be published again).
            let pass = tokio::select! {
                pass = self.publish_pending() => pass,
                _ = shutdown.cancelled() => break,
            };
            let published = match pass {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay pass failed; retrying in 1s");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = shutdown.cancelled() => break,
                    }
                }
            };
            if published as i64 == BATCH {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.poll) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        self.drain().await;
    }

    /// Publishes what the outbox holds at shutdown, for up to ten seconds (a
    /// pod's grace period is longer); what is left is published at next start.
    async fn drain(&self) {
        let drained = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match self.publish_pending().await {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox drain failed; rows stay for the next start");
                        return;
                    }
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("outbox not drained within 10s; rows stay for the next start");
        }
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
    }

    /// One pass: sends up to a batch of rows, all in flight together, and
    /// deletes the ones the broker acknowledged. Returns how many it published.
    pub async fn publish_pending(&self) -> Result<usize, sqlx::Error> {
        match self.db.backend() {
            // Replicas share one PostgreSQL database: each claims a batch with
            // SKIP LOCKED and holds it until it is published and deleted, so no
            // row is published by two replicas and none waits for a slow one.
            Backend::Postgres => {
                let mut tx = self.db.pool().begin().await?;
                let pending = claim(&mut tx, " FOR UPDATE SKIP LOCKED").await?;
                let delivered = self.publish(&pending).await;
                delete(&mut tx, &delivered).await?;
                tx.commit().await?;
                Ok(delivered.len())
            }
            // A SQLite file has a single writer process, so no claim is needed;
            // not holding its one connection while Kafka acknowledges keeps the
            // handlers running meanwhile.
            Backend::Sqlite => {
                let pending = claim(&mut *self.db.pool().acquire().await?, "").await?;
                let delivered = self.publish(&pending).await;
                let mut tx = self.db.pool().begin().await?;
                delete(&mut tx, &delivered).await?;
                tx.commit().await?;
                Ok(delivered.len())
            }
        }
    }

    /// Sends every row and returns the ids the broker acknowledged. Each
    /// message gets a producer span, child of the span that wrote the event;
    /// its context replaces the stored `traceparent`, so the consumer's span
    /// becomes its child.
    async fn publish(&self, pending: &[Pending]) -> Vec<String> {
        let mut deliveries = Vec::with_capacity(pending.len());
        let mut spans = Vec::with_capacity(pending.len());
        for p in pending {
            let span = tracing::info_span!(
                "publish",
                otel.name = %format!("{} publish", p.topic),
                otel.kind = "producer",
                messaging.system = "kafka",
                messaging.operation.type = "publish",
                messaging.destination.name = %p.topic,
                messaging.kafka.message.key = %p.key,
                messaging.message.id = %p.id,
                messaging.destination.partition.id = tracing::field::Empty,
                messaging.kafka.offset = tracing::field::Empty,
                order.id = %p.key,
            );
            orderflow_telemetry::trace::set_parent(
                &span,
                p.header("traceparent"),
                p.header("tracestate"),
            );
            let headers = p.headers_with_context(orderflow_telemetry::trace::context_of(&span));
            match self
                .producer
                .send(&p.topic, p.key.as_bytes(), &headers, &p.payload)
                .await
            {
                Ok(delivery) => deliveries.push(Some(delivery)),
                Err(e) => {
                    tracing::error!(parent: &span, error = %e, topic = %p.topic, id = %p.id, "outbox row cannot be published; it stays");
                    deliveries.push(None);
                }
            }
            spans.push(span);
        }
        let results = join_all(deliveries.into_iter().map(|d| async move {
            match d {
                Some(d) => d
                    .await
                    .map_err(|_| "delivery canceled".to_string())?
                    .map_err(|(e, _)| e.to_string()),
                None => Err("not queued".to_string()),
            }
        }))
        .await;
        let mut delivered = Vec::with_capacity(pending.len());
        for ((p, result), span) in pending.iter().zip(results).zip(spans) {
            match result {
                Ok(ack) => {
                    span.record("messaging.destination.partition.id", ack.partition);
                    span.record("messaging.kafka.offset", ack.offset);
                    let labels = TopicEventLabels {
                        topic: p.topic.clone(),
                        event_type: p.event_type().to_string(),
                    };
                    self.metrics.events_produced.get_or_create(&labels).inc();
                    delivered.push(p.id.clone());
                }
                Err(e) => {
                    tracing::warn!(parent: &span, error = %e, topic = %p.topic, "outbox publish failed; will retry")
                }
            }
        }
        delivered
    }
}

impl Pending {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The stored headers with the publish span's trace context in place of
    /// the writer's (kept when tracing is off).
    fn headers_with_context(
        &self,
        context: Option<(String, Option<String>)>,
    ) -> Vec<(String, Vec<u8>)> {
        let Some((traceparent, tracestate)) = context else {
            return self.headers.clone();
        };
        let mut headers: Vec<(String, Vec<u8>)> = self
            .headers
            .iter()
            .filter(|(k, _)| k != "traceparent" && k != "tracestate")
            .cloned()
            .collect();
        headers.push(("traceparent".into(), traceparent.into_bytes()));
        if let Some(state) = tracestate {
            headers.push(("tracestate".into(), state.into_bytes()));
        }
        headers
    }

    /// The event's short name, from its `ce_type` header.
    fn event_type(&self) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == "ce_type")
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("unknown")
    }
}

/// Reads the oldest rows (the CloudEvents id is a UUIDv7, so id order is creation order).
async fn claim(conn: &mut AnyConnection, lock: &str) -> Result<Vec<Pending>, sqlx::Error> {
    let sql = format!(
        "SELECT id, topic, message_key, headers, payload FROM orderflow_outbox ORDER BY id LIMIT $1{lock}"
    );
    let rows = sqlx::query(&sql).bind(BATCH).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            let headers: String = row.try_get("headers")?;
            let headers: Vec<(String, String)> =
                serde_json::from_str(&headers).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            Ok(Pending {
                id: row.try_get("id")?,
                topic: row.try_get("topic")?,
                key: row.try_get("message_key")?,
                headers: headers
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect(),
                payload: row.try_get("payload")?,
            })
        })
        .collect()
}

async fn delete(conn: &mut AnyConnection, ids: &[String]) -> Result<(), sqlx::Error> {
    for id in ids {
        sqlx::query("DELETE FROM orderflow_outbox WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
