//! The transactional outbox. Events are written as rows in the same
//! transaction as the state change that emits them; the relay publishes them
//! with the idempotent producer, many in flight at once, and deletes what the
//! broker acknowledged in one statement. A crash between publish and delete
//! republishes, and the consumers' inboxes absorb the duplicate.
//!
//! Rows carry a lease. A row written by this process is leased to it and
//! handed to its relay in memory as soon as its transaction commits, so the
//! relay never reads back what it was just given; rows whose lease ran out
//! (their writer died, or publishing failed and the row backs off) are
//! claimed by any replica's relay with a short update (`SKIP LOCKED` on
//! PostgreSQL), at every poll interval however busy the hand-off is. A row
//! its replaced producer dropped unanswered goes again at once, ahead of
//! the rows handed off after it, so an order's events keep their order.
//! No transaction is held while the broker acknowledges. A row
//! that keeps failing is parked after a bounded number of attempts, so it can
//! never hold up the rows behind it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::join_all;
use orderflow_envelope::Envelope;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::db::{in_list, values_list, Backend, Database};
use crate::producer::{is_purged, Producer};
use crate::sql::{self, Connection};
use orderflow_telemetry::metrics_types::TopicEventLabels;
use orderflow_telemetry::Metrics;

/// Rows one relay pass publishes at most.
const BATCH: usize = 500;
/// Rows waiting in memory for the relay, at most; more wait for their lease
/// to run out and are read back from the database.
const HANDOFF_CAPACITY: usize = 100_000;

/// An outbox row, as published.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: String,
    pub topic: String,
    pub key: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub payload: Vec<u8>,
    pub attempts: i64,
}

/// Writes events to the outbox inside the caller's transaction, leased to
/// this process until `lease_until`; returns the rows for the relay.
pub async fn insert(
    conn: &mut Connection,
    envelopes: &[Envelope],
    lease_until: i64,
) -> Result<Vec<OutboxRow>, sqlx::Error> {
    let mut rows = Vec::with_capacity(envelopes.len());
    let now = crate::now_millis();
    for chunk in envelopes.chunks(64) {
        let statement = format!(
            "INSERT INTO orderflow_outbox (id, topic, message_key, headers, payload, created_at, lease_until) VALUES {}",
            values_list(chunk.len(), 7, 1)
        );
        let mut query = sql::query(&statement);
        for envelope in chunk {
            let headers: Vec<(&str, String)> = envelope.headers.to_pairs();
            let json = serde_json::to_string(&headers).expect("headers serialize");
            // The CloudEvents id is a UUIDv7, so ordering by id is ordering by creation.
            query = query
                .bind(envelope.headers.id.clone())
                .bind(envelope.topic)
                .bind(envelope.key.clone())
                .bind(json)
                .bind(envelope.payload.clone())
                .bind(now)
                .bind(lease_until);
            rows.push(OutboxRow {
                id: envelope.headers.id.clone(),
                topic: envelope.topic.to_string(),
                key: envelope.key.clone(),
                headers: headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.into_bytes()))
                    .collect(),
                payload: envelope.payload.clone(),
                attempts: 0,
            });
        }
        query.execute(&mut *conn).await?;
    }
    Ok(rows)
}

/// Publishes outbox rows to Kafka.
pub struct OutboxRelay {
    db: Database,
    producer: Producer,
    handoff: Mutex<VecDeque<OutboxRow>>,
    published: Mutex<Published>,
    wake: Notify,
    poll: Duration,
    lease: Duration,
    max_attempts: i64,
    metrics: Metrics,
}

/// Rows published and acknowledged, not deleted yet. Deleting them is not
/// worth a commit of its own (a WAL sync on SQLite, a round trip on
/// PostgreSQL, once per batch the relay sends): the next transaction of a
/// batch deletes them with its own writes ([`OutboxRelay::take_published`]),
/// or the relay does once they have waited a poll interval with none coming.
/// Should the process stop in between, they are published again at its
/// next start, as any row whose deletion did not commit is: inboxes drop
/// the copies.
#[derive(Default)]
struct Published {
    ids: Vec<String>,
    since: Option<tokio::time::Instant>,
}

/// Published rows a transaction took to delete: back to the relay when
/// dropped, unless [`Self::deleted`].
pub(crate) struct TakenPublished<'r> {
    relay: &'r OutboxRelay,
    taken: Option<Published>,
}

impl TakenPublished<'_> {
    pub(crate) fn ids(&self) -> Vec<&str> {
        self.taken
            .iter()
            .flat_map(|t| t.ids.iter().map(String::as_str))
            .collect()
    }

    /// Their deletion committed.
    pub(crate) fn deleted(mut self) {
        self.taken = None;
    }
}

impl Drop for TakenPublished<'_> {
    fn drop(&mut self) {
        if let Some(taken) = self.taken.take() {
            self.relay.restore_published(taken);
        }
    }
}

impl OutboxRelay {
    pub fn new(
        db: Database,
        producer: Producer,
        poll: Duration,
        lease: Duration,
        max_attempts: u32,
        metrics: Metrics,
    ) -> Self {
        Self {
            db,
            producer,
            handoff: Mutex::new(VecDeque::new()),
            published: Mutex::new(Published::default()),
            wake: Notify::new(),
            poll,
            lease,
            max_attempts: i64::from(max_attempts.max(1)),
            metrics,
        }
    }

    /// The lease of a row written now.
    pub fn fresh_lease(&self) -> i64 {
        crate::now_millis() + self.lease.as_millis() as i64
    }

    /// Rows whose transaction committed: published next, without reading them back.
    pub fn handoff(&self, rows: Vec<OutboxRow>) {
        if rows.is_empty() {
            return;
        }
        {
            let mut queue = self.handoff.lock().expect("handoff lock");
            let room = HANDOFF_CAPACITY.saturating_sub(queue.len());
            // What does not fit is read back once its lease runs out.
            queue.extend(rows.into_iter().take(room));
        }
        self.wake.notify_one();
    }

    /// The rows published and not deleted yet, for a transaction to delete
    /// ([`delete_in`]); they come back to the relay unless
    /// [`TakenPublished::deleted`] says that transaction committed.
    pub(crate) fn take_published(&self) -> TakenPublished<'_> {
        let taken = std::mem::take(&mut *self.published.lock().expect("published lock"));
        TakenPublished {
            relay: self,
            taken: Some(taken),
        }
    }

    /// Rows published (or taken back): they wait for deletion since the
    /// oldest of them was published.
    fn restore_published(&self, rows: Published) {
        if rows.ids.is_empty() {
            return;
        }
        let mut published = self.published.lock().expect("published lock");
        published.since = match (published.since, rows.since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        published.ids.extend(rows.ids);
    }

    /// Whether the row `id` was published and waits for deletion.
    #[cfg(test)]
    fn is_published(&self, id: &str) -> bool {
        let published = self.published.lock().expect("published lock");
        published.ids.iter().any(|i| i == id)
    }

    /// Deletes the published rows no transaction took within a poll
    /// interval (all of them if `all`).
    async fn settle_published(&self, all: bool) {
        let due = {
            let published = self.published.lock().expect("published lock");
            published
                .since
                .is_some_and(|since| all || since.elapsed() >= self.poll)
        };
        if !due {
            return;
        }
        let taken = self.take_published();
        match delete(&self.db, &taken.ids()).await {
            Ok(()) => taken.deleted(),
            Err(e) => {
                tracing::debug!(error = %e, "could not delete published outbox rows; trying again")
            }
        }
    }

    /// Publishes until `shutdown`, then drains what is left for a while.
    pub async fn run(&self, shutdown: CancellationToken) {
        if self.db.backend() == Backend::Sqlite {
            // One process owns a SQLite file: leases of its last life are void.
            let released = async {
                sql::query("UPDATE orderflow_outbox SET lease_until = 0")
                    .execute(&mut self.db.acquire().await?)
                    .await
            };
            if let Err(e) = released.await {
                tracing::warn!(error = %e, "could not release the outbox leases of the last run");
            }
        }
        let mut measured = tokio::time::Instant::now() - Duration::from_secs(1);
        let mut scanned = tokio::time::Instant::now() - self.poll;
        loop {
            if measured.elapsed() >= Duration::from_secs(1) {
                measured = tokio::time::Instant::now();
                self.producer.check_fatal();
                if let Err(e) = self.measure_backlog().await {
                    tracing::debug!(error = %e, "could not measure the outbox backlog");
                }
            }
            self.settle_published(false).await;
            // Rows whose lease ran out are looked for at every poll interval,
            // however busy the hand-off is, and go first: they are older.
            // One published and waiting for deletion is not sent again.
            let mut rows = if scanned.elapsed() >= self.poll {
                scanned = tokio::time::Instant::now();
                match self.claim_expired().await {
                    Ok(mut rows) => {
                        let published = self.published.lock().expect("published lock");
                        rows.retain(|row| !published.ids.contains(&row.id));
                        drop(published);
                        rows
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox relay could not read the outbox; retrying");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            // A full claim: more may be waiting, looked for at the next pass.
            let more_expired = rows.len() == BATCH;
            rows.extend(self.take_handoff(BATCH - rows.len()));
            if rows.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.poll) => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            // A pass waits for the broker's acknowledgements, which can take up to
            // message.timeout.ms while it is away: shutdown does not wait for that
            // (an interrupted pass leaves its rows, to be published again).
            tokio::select! {
                r = self.publish(rows) => if let Err(e) = r {
                    tracing::warn!(error = %e, "outbox relay could not record what it published; the rows are published again");
                },
                _ = shutdown.cancelled() => break,
            }
            if more_expired {
                scanned -= self.poll;
            }
        }
        self.drain().await;
    }

    /// Rows to send again before anything handed off after them.
    fn requeue(&self, rows: Vec<OutboxRow>) {
        let mut queue = self.handoff.lock().expect("handoff lock");
        for row in rows.into_iter().rev() {
            queue.push_front(row);
        }
    }

    /// Up to `most` rows of the hand-off, oldest first.
    fn take_handoff(&self, most: usize) -> Vec<OutboxRow> {
        let mut queue = self.handoff.lock().expect("handoff lock");
        let n = queue.len().min(most);
        queue.drain(..n).collect()
    }

    /// Publishes what is left at shutdown for up to ten seconds (a pod's
    /// grace period is longer); the rest is published at the next start.
    async fn drain(&self) {
        let drained = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let rows = self.take_handoff(BATCH);
                if rows.is_empty() {
                    return;
                }
                if let Err(e) = self.publish(rows).await {
                    tracing::warn!(error = %e, "outbox drain failed; rows stay for the next start");
                    return;
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("outbox not drained within 10s; rows stay for the next start");
        }
        self.settle_published(true).await;
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
    }

    /// Claims rows nobody holds a lease on (their writer died, or they back
    /// off after a failure), oldest first.
    async fn claim_expired(&self) -> Result<Vec<OutboxRow>, sqlx::Error> {
        let now = crate::now_millis();
        claim(&self.db, now + self.lease.as_millis() as i64, now, BATCH).await
    }

    /// Backlog, age of the oldest row and parked rows, for the metrics.
    async fn measure_backlog(&self) -> Result<(), sqlx::Error> {
        let row =
            sql::query("SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM orderflow_outbox")
                .fetch_one(self.db.reader())
                .await?;
        let n: i64 = row.try_get("n")?;
        let oldest: Option<i64> = row.try_get("oldest")?;
        // Rows published and waiting for deletion are not backlog.
        let waiting = self.published.lock().expect("published lock").ids.len();
        self.metrics
            .outbox_backlog
            .set(n.saturating_sub(waiting as i64).max(0));
        let age = oldest
            .map(|t| (crate::now_millis() - t).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        self.metrics.outbox_oldest_age_seconds.set(age);
        let parked: i64 = sql::query("SELECT COUNT(*) AS n FROM orderflow_outbox_parked")
            .fetch_one(self.db.reader())
            .await?
            .try_get("n")?;
        self.metrics.outbox_parked.set(parked);
        Ok(())
    }

    /// Sends every row, all in flight together, then keeps the ones the
    /// broker acknowledged for deletion ([`Published`]) and backs off (or
    /// parks) the others. Each message gets a `send` span (send to
    /// acknowledgement), child of the event's creation span, whose context
    /// the message keeps: consumers hang off the creation span too
    /// (orderflow_telemetry::trace).
    async fn publish(&self, rows: Vec<OutboxRow>) -> Result<(), sqlx::Error> {
        let mut deliveries = Vec::with_capacity(rows.len());
        let mut spans = Vec::with_capacity(rows.len());
        for row in &rows {
            let span = tracing::info_span!(
                "send",
                otel.name = %format!("{} send", row.topic),
                otel.kind = "client",
                messaging.system = "kafka",
                messaging.operation.type = "send",
                messaging.operation.name = "send",
                messaging.destination.name = %row.topic,
                messaging.kafka.message.key = %row.key,
                messaging.message.id = %row.id,
                messaging.destination.partition.id = tracing::field::Empty,
                messaging.kafka.offset = tracing::field::Empty,
                order.id = %row.key,
            );
            orderflow_telemetry::trace::set_parent(
                &span,
                row.header("traceparent"),
                row.header("tracestate"),
            );
            match self
                .producer
                .send(&row.topic, row.key.as_bytes(), &row.headers, &row.payload)
                .await
            {
                Ok(delivery) => deliveries.push(Ok(delivery)),
                Err(e) => deliveries.push(Err(e)),
            }
            spans.push(span);
        }
        let results = join_all(deliveries.into_iter().map(|d| async move {
            match d {
                Ok(d) => d.await,
                Err(e) => Err(e),
            }
        }))
        .await;
        let mut delivered = Vec::with_capacity(rows.len());
        let mut failed = Vec::new();
        let mut purged = Vec::new();
        for ((row, result), span) in rows.iter().zip(results).zip(spans) {
            match result {
                Err(e) if is_purged(&e) => {
                    // Its producer was replaced before the broker answered:
                    // no attempt of the row, which goes again at once, ahead
                    // of the rows written after it (perhaps a second time:
                    // inboxes drop copies).
                    tracing::info!(parent: &span, error = %e, topic = %row.topic, id = %row.id,
                        "outbox row not acknowledged (its producer was replaced); it is sent again");
                    purged.push(row.clone());
                }
                Ok((partition, offset)) => {
                    span.record("messaging.destination.partition.id", partition);
                    span.record("messaging.kafka.offset", offset);
                    let labels = TopicEventLabels {
                        topic: row.topic.clone(),
                        event_type: row.event_type().to_string(),
                    };
                    self.metrics.events_produced.get_or_create(&labels).inc();
                    delivered.push(row.id.as_str());
                }
                Err(e) => {
                    tracing::warn!(parent: &span, error = %e, topic = %row.topic, id = %row.id, attempts = row.attempts + 1,
                        "outbox row not published; it will be tried again");
                    failed.push((row, e.to_string()));
                }
            }
        }
        self.requeue(purged);
        self.restore_published(Published {
            ids: delivered.into_iter().map(str::to_string).collect(),
            since: Some(tokio::time::Instant::now()),
        });
        if !failed.is_empty() && self.producer.check_fatal() {
            // The producer is gone for good: the rows stay for the next start.
            return Ok(());
        }
        for (row, error) in failed {
            self.record_failure(row, &error).await?;
        }
        Ok(())
    }

    /// A row that failed backs off (1 s, 2 s, 4 s … up to a minute), so the
    /// rows behind it go first; after `max_attempts` it is parked.
    async fn record_failure(&self, row: &OutboxRow, error: &str) -> Result<(), sqlx::Error> {
        let attempts = row.attempts + 1;
        let now = crate::now_millis();
        if attempts < self.max_attempts {
            let backoff = 1_000i64.saturating_mul(1 << attempts.min(6)).min(60_000);
            sql::query(
                "UPDATE orderflow_outbox SET attempts = $1, last_error = $2, lease_until = $3 WHERE id = $4",
            )
            .bind(attempts)
            .bind(error)
            .bind(now + backoff)
            .bind(&row.id)
            .execute(&mut self.db.acquire().await?)
            .await?;
            return Ok(());
        }
        tracing::error!(id = %row.id, topic = %row.topic, key = %row.key, attempts, error,
            "outbox row parked after {attempts} failed attempts; it needs an operator (orderflow_outbox_parked)");
        let mut tx = self.db.begin().await?;
        sql::query(
            "INSERT INTO orderflow_outbox_parked (id, topic, message_key, headers, payload, created_at, attempts, error, parked_at)
             SELECT id, topic, message_key, headers, payload, created_at, $1, $2, $3 FROM orderflow_outbox WHERE id = $4",
        )
        .bind(attempts)
        .bind(error)
        .bind(now)
        .bind(&row.id)
        .execute(&mut tx)
        .await?;
        sql::query("DELETE FROM orderflow_outbox WHERE id = $1")
            .bind(&row.id)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        self.metrics.outbox_parked_total.inc();
        Ok(())
    }
}

impl OutboxRow {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The event's short name, from its `ce_type` header.
    fn event_type(&self) -> &str {
        self.header("ce_type")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("unknown")
    }
}

/// Claims up to `limit` rows whose lease ended by `now`, leasing them until
/// `lease_until`; oldest first.
pub(crate) async fn claim(
    db: &Database,
    lease_until: i64,
    now: i64,
    limit: usize,
) -> Result<Vec<OutboxRow>, sqlx::Error> {
    let lock = match db.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let statement = format!(
        "UPDATE orderflow_outbox SET lease_until = $1 WHERE id IN (
             SELECT id FROM orderflow_outbox WHERE lease_until <= $2 ORDER BY id LIMIT $3{lock})
         RETURNING id, topic, message_key, headers, payload, attempts"
    );
    let rows = sql::query(&statement)
        .bind(lease_until)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&mut db.acquire().await?)
        .await?;
    let mut claimed = rows
        .iter()
        .map(|row| {
            Ok(OutboxRow {
                id: row.try_get("id")?,
                topic: row.try_get("topic")?,
                key: row.try_get("message_key")?,
                headers: crate::db::headers_from(row, "headers")?,
                payload: row.try_get("payload")?,
                attempts: row.try_get("attempts")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    // RETURNING promises no order.
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

/// Deletes the rows `ids` (published), each statement committing on its own.
pub(crate) async fn delete(db: &Database, ids: &[&str]) -> Result<(), sqlx::Error> {
    delete_in(&mut db.acquire().await?, ids).await
}

/// Deletes the rows `ids` (published) on `conn`, in its transaction if it
/// is in one.
pub(crate) async fn delete_in(conn: &mut Connection, ids: &[&str]) -> Result<(), sqlx::Error> {
    for chunk in ids.chunks(500) {
        let statement = format!(
            "DELETE FROM orderflow_outbox WHERE id IN ({})",
            in_list(chunk.len(), 1)
        );
        let mut query = sql::query(&statement);
        for id in chunk {
            query = query.bind(id.to_string());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
