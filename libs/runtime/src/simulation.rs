//! The consumer's steps, one at a time, for a deterministic simulation of
//! the saga (the `simulation` feature; see `libs/simulation`). Kafka, the
//! clock and the order in which things happen are the simulation's; what an
//! event does to a service's database is this crate's own code, unchanged:
//! a batch is staged exactly as group commit stages it (inbox, parked keys,
//! the handler, the outbox), a failed event is parked and released by the
//! same parking steps, a stalled head is claimed as the running consumer
//! claims it, and the outbox is read the way the relay reads it. A
//! simulated crash is a transaction rolled back, or a committed one whose
//! outcome the caller then forgets.

use std::sync::Arc;

use orderflow_envelope::{CloudEventHeaders, Event, EventType};

use crate::consumer::parking;
use crate::consumer::retry::Source;
use crate::consumer::work::{HandleWork, Outcome, Step, WorkContext};
use crate::db::Database;
use crate::group_commit::{stage, together_or_alone, Attempt, Failed, Work};
use crate::handler::{ExternalCall, Handler, HandlerError};
use crate::outbox::{self, OutboxRow};
use crate::service::{Emitter, ServiceSpec};
use crate::sql;

pub use crate::consumer::parking::{Parked, ParkedEvent};

/// One replica of a service's consumer: its handler over its database.
/// Replicas of one service share the database and the group.
pub struct Member {
    ctx: WorkContext,
    db: Database,
}

/// A message as a consumer reads it: from a topic, or stored behind its key
/// (`parked_seq`).
#[derive(Debug, Clone)]
pub struct Message {
    pub key: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub payload: Vec<u8>,
    /// Where it was first read.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub parked_seq: Option<i64>,
}

impl From<ParkedEvent> for Message {
    fn from(p: ParkedEvent) -> Self {
        Self {
            key: p.key,
            headers: p.headers,
            payload: p.payload,
            topic: p.source.topic,
            partition: p.source.partition,
            offset: p.source.offset,
            parked_seq: Some(p.seq),
        }
    }
}

impl Message {
    fn source(&self) -> Source {
        Source {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
        }
    }

    /// Its CloudEvents id, if it has one.
    pub fn event_id(&self) -> Option<String> {
        self.meta().ok().map(|m| m.id)
    }

    /// Its event type's name, for traces ("?" when it has none).
    pub fn event_type(&self) -> &'static str {
        self.known_type().map_or("?", EventType::name)
    }

    fn known_type(&self) -> Option<EventType> {
        EventType::from_ce_type(&self.meta().ok()?.event_type)
    }

    fn meta(&self) -> Result<CloudEventHeaders, String> {
        CloudEventHeaders::from_pairs(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(|e| format!("not a CloudEvent: {e}"))
    }
}

/// What a batch item asks.
pub enum Task {
    /// Handle a delivered (or stored) message.
    Handle(Message),
    /// Record the outcome of the call the handler asked for.
    Record(Message, Box<dyn ExternalCall>),
    /// Its step's deadline passed with this last error.
    Deadline(Message, String),
}

impl Task {
    fn message(&self) -> &Message {
        match self {
            Task::Handle(m) | Task::Record(m, _) | Task::Deadline(m, _) => m,
        }
    }
}

/// A batch of one replica between its steps: prepared, staged in its open
/// transaction, ended.
pub struct Batch {
    tx: Option<sql::Connection>,
    items: Vec<HandleWork>,
    ended: Vec<Option<Ended>>,
    /// Where each item stands among `ended`.
    positions: Vec<usize>,
    /// How staging, then ending the transaction, went.
    staged: Option<Result<(), Failed>>,
    commit: bool,
}

/// How an item ended, as the consumer would go on from it.
pub enum Ended {
    /// Done (handled, a duplicate, failed in domain terms at its deadline);
    /// with the next event of its key, now the head, when it resolved one.
    Done(Option<ParkedEvent>),
    /// Stored behind its key's head: done for its offset.
    Waiting,
    /// The handler asked for this call; its outcome is recorded next.
    Call(Box<dyn ExternalCall>),
    /// At its deadline the handler had no domain failure: a dead letter.
    NoDomainFailure,
    /// Not handled: a dead letter (not a CloudEvent, forged, undecodable,
    /// a type this service does not handle) or a failure to retry.
    Failed(HandlerError),
    /// The transaction was rolled back (a crash before its commit).
    RolledBack,
}

impl Member {
    /// A replica of the service `spec` whose handler is `handler`.
    pub fn new(
        spec: &'static ServiceSpec,
        handler: Arc<dyn Handler>,
        db: Database,
        emitter: Emitter,
    ) -> Self {
        Self {
            ctx: WorkContext {
                backend: db.backend(),
                emitter,
                handler,
                group: spec.group_id(),
            },
            db,
        }
    }

    fn group(&self) -> &str {
        &self.ctx.group
    }

    /// Whether the consumer reads messages of this `ce_type` at all (the
    /// poll thread skips the others before any batch).
    pub fn reads(&self, message: &Message) -> bool {
        message
            .known_type()
            .is_some_and(|t| self.ctx.handler.handles(t))
    }

    /// Applies `tasks` as one batch, as group commit applies it: in one
    /// transaction, then (if it fails) one at a time. With `commit` false
    /// the process dies before COMMIT: everything is rolled back.
    pub async fn apply(&self, tasks: Vec<Task>, commit: bool) -> Vec<Ended> {
        let mut batch = self.open(tasks).await;
        self.stage(&mut batch).await;
        self.end(&mut batch, commit).await;
        self.finish(batch).await
    }

    /// Prepares `tasks` as the worker does and begins their transaction;
    /// [`Member::stage`] applies them in it, [`Member::end`] commits or rolls
    /// it back and [`Member::finish`] applies the items one at a time if it
    /// failed. Two replicas' batches can so run side by side, step by step.
    pub async fn open(&self, tasks: Vec<Task>) -> Batch {
        let mut batch = Batch {
            tx: None,
            items: Vec::new(),
            ended: Vec::with_capacity(tasks.len()),
            positions: Vec::new(),
            staged: None,
            commit: true,
        };
        for task in tasks {
            match self.prepare(task).await {
                Ok(item) => {
                    batch.positions.push(batch.ended.len());
                    batch.ended.push(None);
                    batch.items.push(item);
                }
                Err(e) => batch.ended.push(Some(Ended::Failed(e))),
            }
        }
        match self.db.begin().await {
            Ok(tx) => batch.tx = Some(tx),
            Err(e) => batch.staged = Some(Err(e.into())),
        }
        batch
    }

    /// The PostgreSQL backend of the batch's transaction, if it has one.
    pub async fn backend_pid(&self, batch: &mut Batch) -> Option<i32> {
        let tx = batch.tx.as_mut()?;
        let row = sql::query("SELECT pg_backend_pid() AS pid")
            .fetch_one(tx)
            .await
            .ok()?;
        row.try_get("pid").ok()
    }

    /// Whether that backend waits for a lock another transaction holds.
    pub async fn waits_for_lock(&self, pid: i32) -> bool {
        sql::query(
            "SELECT CAST(COALESCE(wait_event_type, '') AS TEXT) AS waits
             FROM pg_stat_activity WHERE pid = $1",
        )
        .bind(pid)
        .fetch_optional(self.db.reader())
        .await
        .ok()
        .flatten()
        .and_then(|row| row.try_get::<String, _>("waits").ok())
        .is_some_and(|waits| waits == "Lock")
    }

    /// Applies the batch's items in its transaction (not committed yet).
    pub async fn stage(&self, batch: &mut Batch) {
        if let Some(tx) = batch.tx.as_mut() {
            let staged = stage(tx, &self.ctx, &mut batch.items, 0).await;
            batch.staged = Some(staged.map(|_| ()));
        }
    }

    /// Ends the batch's transaction: commits what was staged or, with
    /// `commit` false, dies before COMMIT; a batch that failed is rolled back.
    pub async fn end(&self, batch: &mut Batch, commit: bool) {
        batch.commit = commit;
        let staged = batch.staged.take().unwrap_or(Ok(()));
        let ended = match (batch.tx.take(), staged) {
            (Some(tx), Ok(())) if commit => tx.commit().await.map_err(Failed::from),
            (Some(tx), Ok(())) => tx.rollback().await.map_err(Failed::from),
            (tx, Err(failed)) => {
                if let Some(tx) = tx {
                    let _ = tx.rollback().await;
                }
                Err(failed)
            }
            (None, Ok(())) => Ok(()),
        };
        batch.staged = Some(ended);
    }

    /// How each item ended; if the batch's transaction failed, its items are
    /// first applied one at a time, as group commit does.
    pub async fn finish(&self, mut batch: Batch) -> Vec<Ended> {
        let commit = batch.commit;
        let ended_together = batch.staged.take().unwrap_or(Ok(()));
        let results = match ended_together {
            Ok(()) => batch.items.iter().map(|_| Ok(())).collect(),
            Err(_) => {
                let ending = Ending {
                    db: &self.db,
                    context: &self.ctx,
                    commit,
                };
                together_or_alone(&ending, &mut batch.items).await.results
            }
        };
        let results = batch
            .items
            .into_iter()
            .zip(results)
            .map(|(item, result)| match result {
                Ok(()) if commit => outcome(item),
                Ok(()) => Ended::RolledBack,
                Err(e) => Ended::Failed(e),
            });
        for (position, result) in batch.positions.into_iter().zip(results) {
            batch.ended[position] = Some(result);
        }
        batch
            .ended
            .into_iter()
            .map(|e| e.expect("every item ended"))
            .collect()
    }

    /// What the worker does before a batch: the headers, the type, where it
    /// comes from, the payload.
    async fn prepare(&self, task: Task) -> Result<HandleWork, HandlerError> {
        let message = task.message();
        let meta = message.meta().map_err(HandlerError::Permanent)?;
        let event_type = EventType::from_ce_type(&meta.event_type)
            .filter(|t| self.ctx.handler.handles(*t))
            .ok_or_else(|| HandlerError::Permanent(format!("{} not handled", meta.event_type)))?;
        crate::consumer::worker::check_provenance(event_type, &meta, &message.topic)
            .map_err(HandlerError::Permanent)?;
        let work = |message: &Message, step| {
            HandleWork::new(
                meta.clone(),
                message.key.clone(),
                message.source(),
                Arc::new(message.headers.clone()),
                Arc::new(message.payload.clone()),
                message.parked_seq,
                step,
                tracing::Span::none(),
            )
        };
        Ok(match task {
            Task::Record(message, call) => work(&message, Step::Record(call)),
            Task::Handle(ref message) | Task::Deadline(ref message, _) => {
                let event: Event = self
                    .ctx
                    .emitter
                    .codec()
                    .decode(Some(event_type), &message.payload)
                    .await?;
                match task {
                    Task::Deadline(message, error) => work(&message, Step::Deadline(event, error)),
                    Task::Handle(message) => work(&message, Step::Event(event)),
                    Task::Record(..) => unreachable!("matched above"),
                }
            }
        })
    }

    /// A failed message's key is parked with it at the head (it then goes to
    /// a retry tier), or it is stored behind the head already there.
    pub async fn hold(&self, message: &Message) -> Result<Parked, sqlx::Error> {
        let id = message.event_id().unwrap_or_default();
        parking::hold(
            &self.db,
            self.group(),
            &message.key,
            &id,
            &message.source(),
            &message.headers,
            &message.payload,
        )
        .await
    }

    /// A stored message now stands in a retry tier: its stored copy goes.
    pub async fn forget(&self, message: &Message) -> Result<(), sqlx::Error> {
        let Some(seq) = message.parked_seq else {
            return Ok(());
        };
        let mut conn = self.db.acquire().await?;
        parking::forget(&mut conn, self.group(), &message.key, seq).await
    }

    /// A message resolved without a handler (dead-lettered): the next event
    /// of its key, if it was the head.
    pub async fn resolve_unhandled(
        &self,
        message: &Message,
    ) -> Result<Option<ParkedEvent>, sqlx::Error> {
        let id = message.event_id().unwrap_or_default();
        parking::resolve_unhandled(
            &self.db,
            self.group(),
            &message.key,
            &id,
            message.parked_seq,
        )
        .await
    }

    /// The heads no process is handling, each claimed for this replica, as
    /// the consumer's look for stalled heads finds and claims them (here at
    /// once, with no 30 s wait).
    pub async fn claim_stalled(&self) -> Result<Vec<ParkedEvent>, sqlx::Error> {
        let mut conn = self.db.acquire().await?;
        let mut claimed = Vec::new();
        for head in parking::stalled_heads(&mut conn, self.group(), -1).await? {
            if parking::claim_stalled(&mut conn, self.group(), &head, -1).await? {
                claimed.push(head);
            }
        }
        Ok(claimed)
    }

    /// Every inbox row goes, as retention prunes them after days.
    pub async fn expire_inbox(&self) -> Result<u64, sqlx::Error> {
        crate::inbox::prune(&self.db, i64::MAX, i64::MAX).await
    }

    /// The outbox rows committed so far, oldest first, as the relay publishes
    /// them; `delete` removes them once the simulation has them.
    pub async fn outbox(&self, delete: bool) -> Result<Vec<OutboxRow>, sqlx::Error> {
        let rows = outbox::claim(&self.db, 0, i64::MAX, 10_000).await?;
        if delete {
            let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
            outbox::delete(&self.db, &ids).await?;
        }
        Ok(rows)
    }

    /// The orders parked now (a key's row or an event stored behind one).
    pub async fn parked(&self) -> Result<Vec<String>, sqlx::Error> {
        let mut conn = self.db.acquire().await?;
        parking::parked_orders(&mut conn).await
    }
}

/// A transaction of work that commits, or whose process dies before COMMIT.
struct Ending<'a, W: Work> {
    db: &'a Database,
    context: &'a W::Context,
    commit: bool,
}

#[async_trait::async_trait]
impl<W: Work> Attempt<W> for Ending<'_, W> {
    async fn attempt(&self, items: &mut [W]) -> Result<(), Failed> {
        let mut tx = self.db.begin().await?;
        // Leased as expired: the simulation's relay claims the rows.
        stage(&mut tx, self.context, items, 0).await?;
        if self.commit {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(())
    }
}

fn outcome(item: HandleWork) -> Ended {
    match item.outcome {
        Outcome::Applied | Outcome::Duplicate | Outcome::DeadlineHandled => {
            Ended::Done(item.released)
        }
        Outcome::ParkedBehind => Ended::Waiting,
        Outcome::Call(call) => Ended::Call(call),
        Outcome::DeadlineNotHandled => Ended::NoDomainFailure,
        Outcome::Pending => Ended::Failed(HandlerError::Permanent("left pending".into())),
    }
}

/// Applies other work (order placement) in one transaction and commits it,
/// as its group commit would.
pub async fn commit<W: Work>(
    db: &Database,
    context: &W::Context,
    items: &mut [W],
) -> Result<(), HandlerError> {
    let ending = Ending {
        db,
        context,
        commit: true,
    };
    ending.attempt(items).await.map_err(|f| f.error)
}
