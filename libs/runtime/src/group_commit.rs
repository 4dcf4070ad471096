//! Group commit: work that arrives while a transaction runs waits for the
//! next one, which then applies all of it together. At low load every item
//! gets its own transaction at once (no added wait); under load a commit (an
//! fsync on SQLite, a round trip on PostgreSQL) serves many items. Events a
//! batch emits go to the outbox in one multi-row insert and straight to the
//! relay once committed. If a batch fails, it is rolled back and its items
//! are applied one at a time, so one bad item never fails or delays the
//! others. The consumer's event batches, order placement and the payment
//! sandbox's ledger all write through it.

use std::sync::Arc;

use async_trait::async_trait;
use orderflow_envelope::Envelope;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::db::Database;
use crate::fault::FaultPoint;
use crate::handler::HandlerError;
use crate::outbox::{self, OutboxRelay};
use crate::sql::Connection;

/// A transaction of a batch: the connection, and the events to publish once
/// it commits.
pub struct Tx<'c> {
    pub conn: &'c mut Connection,
    outbox: &'c mut Vec<Envelope>,
}

impl Tx<'_> {
    /// Writes `envelope` to the outbox in this transaction; the relay
    /// publishes it once the transaction commits.
    pub fn publish(&mut self, envelope: Envelope) {
        self.outbox.push(envelope);
    }
}

/// Why a batch failed: which item (if it was one) and how.
#[derive(Debug)]
pub struct Failed {
    pub item: Option<usize>,
    pub error: HandlerError,
}

impl Failed {
    pub fn at(item: usize, error: impl Into<HandlerError>) -> Self {
        Self {
            item: Some(item),
            error: error.into(),
        }
    }
}

impl From<sqlx::Error> for Failed {
    fn from(e: sqlx::Error) -> Self {
        Self {
            item: None,
            error: e.into(),
        }
    }
}

/// One kind of work applied in batches.
#[async_trait]
pub trait Work: Send + Sized + 'static {
    /// What every item of this kind needs (the handler, the runtime).
    type Context: Send + Sync + 'static;

    /// Applies `items` in one transaction. It may run again for the same
    /// items after a rollback, so it resets what it reports in them first.
    async fn apply(ctx: &Self::Context, items: &mut [Self], tx: &mut Tx<'_>) -> Result<(), Failed>;

    /// The transaction that applied this item committed.
    fn committed(&mut self) {}

    /// The item's key (an order id), for the test build's fault hook.
    fn key(&self) -> &str {
        ""
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Items per transaction, at most.
    pub max_items: usize,
    /// Transactions of this kind at once (1 on SQLite: it has one writer).
    pub concurrency: usize,
}

struct Job<W> {
    item: W,
    reply: oneshot::Sender<(W, Result<(), HandlerError>)>,
}

/// The queue of one kind of work and the writers that drain it.
pub struct GroupCommit<W: Work> {
    queue: mpsc::UnboundedSender<Job<W>>,
}

impl<W: Work> Clone for GroupCommit<W> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

struct Writer<W: Work> {
    db: Database,
    relay: Arc<OutboxRelay>,
    context: Arc<W::Context>,
    metrics: orderflow_telemetry::Metrics,
    kind: &'static str,
}

impl<W: Work> GroupCommit<W> {
    /// Starts the writers; they stop once every handle is dropped.
    pub fn start(
        kind: &'static str,
        db: Database,
        relay: Arc<OutboxRelay>,
        context: Arc<W::Context>,
        limits: BatchLimits,
        metrics: orderflow_telemetry::Metrics,
    ) -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        let jobs = Arc::new(Mutex::new(jobs));
        let writer = Arc::new(Writer {
            db,
            relay,
            context,
            metrics,
            kind,
        });
        for _ in 0..limits.concurrency.max(1) {
            let (writer, jobs) = (writer.clone(), jobs.clone());
            let max_items = limits.max_items.max(1);
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut jobs = jobs.lock().await;
                        let Some(first) = jobs.recv().await else {
                            return;
                        };
                        let mut batch = vec![first];
                        while batch.len() < max_items {
                            match jobs.try_recv() {
                                Ok(job) => batch.push(job),
                                Err(_) => break,
                            }
                        }
                        batch
                    };
                    writer.execute(batch).await;
                }
            });
        }
        Self { queue }
    }

    /// Applies `item` in the next batch. Returns it (with what it reports)
    /// and whether its transaction committed; no item when the writers are
    /// gone (the service is stopping).
    pub async fn run(&self, item: W) -> (Option<W>, Result<(), HandlerError>) {
        let (reply, done) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = self.queue.send(Job { item, reply }) {
            return (Some(job.item), Err(stopped()));
        }
        match done.await {
            Ok((item, result)) => (Some(item), result),
            Err(_) => (None, Err(stopped())),
        }
    }
}

fn stopped() -> HandlerError {
    HandlerError::Transient("the database writer stopped".into())
}

#[async_trait]
impl<W: Work> Attempt<W> for Writer<W> {
    async fn attempt(&self, items: &mut [W]) -> Result<(), Failed> {
        // Rows the relay has published are deleted here, with this batch's
        // writes: no commit of their own. They go back to the relay unless
        // this transaction commits.
        let published = self.relay.take_published();
        let mut conn = self.db.begin().await?;
        outbox::delete_in(&mut conn, &published.ids()).await?;
        let rows = stage::<W>(&mut conn, &self.context, items, self.relay.fresh_lease()).await?;
        crate::fault::reached(FaultPoint::BeforeCommit, || {
            items.iter().map(W::key).collect()
        });
        conn.commit().await?;
        published.deleted();
        crate::fault::reached(FaultPoint::AfterCommit, || {
            items.iter().map(W::key).collect()
        });
        self.relay.handoff(rows);
        Ok(())
    }
}

impl<W: Work> Writer<W> {
    async fn execute(&self, jobs: Vec<Job<W>>) {
        let (mut items, replies): (Vec<W>, Vec<_>) =
            jobs.into_iter().map(|j| (j.item, j.reply)).unzip();
        let labels = orderflow_telemetry::metrics_types::BatchLabels { kind: self.kind };
        self.metrics
            .db_batch_items
            .get_or_create(&labels)
            .observe(items.len() as f64);
        let applied = together_or_alone(self, &mut items).await;
        if let Some(failed) = &applied.fallback {
            tracing::debug!(kind = self.kind, items = items.len(), item = ?failed.item, error = %failed.error,
                "batch failed; applying its items one at a time");
            self.metrics.db_batch_fallbacks.get_or_create(&labels).inc();
        }
        for ((mut item, reply), result) in items.into_iter().zip(replies).zip(applied.results) {
            if result.is_ok() {
                item.committed();
            }
            let _ = reply.send((item, result));
        }
    }
}

/// Applies `items` in the open transaction `conn` and writes the events they
/// emitted to the outbox (leased until `lease`, for the relay that is handed
/// them); committing is the caller's.
pub(crate) async fn stage<W: Work>(
    conn: &mut Connection,
    context: &W::Context,
    items: &mut [W],
    lease: i64,
) -> Result<Vec<outbox::OutboxRow>, Failed> {
    let mut emitted = Vec::new();
    {
        let mut tx = Tx {
            conn: &mut *conn,
            outbox: &mut emitted,
        };
        W::apply(context, items, &mut tx).await?;
    }
    Ok(outbox::insert(conn, &emitted, lease).await?)
}

/// How a batch went: each item's result and, when the batch failed as a
/// whole and its items were then applied one at a time, why it failed.
pub(crate) struct Applied {
    pub results: Vec<Result<(), HandlerError>>,
    pub fallback: Option<Failed>,
}

/// Applies some items of work in one transaction.
#[async_trait]
pub(crate) trait Attempt<W: Send>: Sync {
    async fn attempt(&self, items: &mut [W]) -> Result<(), Failed>;
}

/// Applies `items` together (one transaction); if that fails and there are
/// several, each alone: the failing item fails alone, the others commit.
pub(crate) async fn together_or_alone<W: Send>(
    attempt: &impl Attempt<W>,
    items: &mut [W],
) -> Applied {
    let failed = match attempt.attempt(items).await {
        Ok(()) => {
            return Applied {
                results: items.iter().map(|_| Ok(())).collect(),
                fallback: None,
            }
        }
        Err(failed) if items.len() == 1 => {
            return Applied {
                results: vec![Err(failed.error)],
                fallback: None,
            }
        }
        Err(failed) => failed,
    };
    let mut results = Vec::with_capacity(items.len());
    for item in items.iter_mut() {
        results.push(
            attempt
                .attempt(std::slice::from_mut(item))
                .await
                .map_err(|f| f.error),
        );
    }
    Applied {
        results,
        fallback: Some(failed),
    }
}
