//! One consumed event's database work, applied in batches (group commit):
//! the inbox rows of the whole batch in one statement, the parked keys of the
//! batch in one lookup, each handler in turn, then the events they emitted in
//! one outbox insert. An event whose key waits behind a retry is stored
//! behind it instead of being handled; an event whose handler asked for an
//! external call gets its inbox row back, since it is done only once the
//! call's outcome is recorded (a second item of the same kind).

use std::sync::Arc;

use async_trait::async_trait;
use orderflow_envelope::{CloudEventHeaders, Event};
use tracing::Instrument;

use crate::db::Backend;
use crate::group_commit::{Failed, Tx, Work};
use crate::handler::{EventSource, ExternalCall, Handler, HandlerCtx};
use crate::inbox;
use crate::service::Emitter;

use super::key_lock;
use super::parking::{self, ParkedEvent};
use super::retry::Source;

/// What every item needs: the service's database backend, what writes its
/// events, its handler and its group.
pub struct WorkContext {
    pub backend: Backend,
    pub emitter: Emitter,
    pub handler: Arc<dyn Handler>,
    pub group: String,
}

/// What the item asks of the handler.
pub enum Step {
    /// A delivered event.
    Event(Event),
    /// The outcome of an external call made for the event.
    Record(Box<dyn ExternalCall>),
    /// The event's step ran past its deadline with this last error.
    Deadline(Event, String),
}

/// What happened to the item.
pub enum Outcome {
    Pending,
    /// Handled: its effects and events are committed.
    Applied,
    /// The inbox had it: nothing done.
    Duplicate,
    /// Its key waits behind a retry: stored behind the head.
    ParkedBehind,
    /// Intent recorded; this call is to be made and its outcome recorded.
    Call(Box<dyn ExternalCall>),
    /// The deadline's failure is recorded in domain terms.
    DeadlineHandled,
    /// The handler has no domain failure for it: dead-letter it.
    DeadlineNotHandled,
}

pub struct HandleWork {
    pub meta: CloudEventHeaders,
    pub key: String,
    pub source: Source,
    pub headers: Arc<Vec<(String, Vec<u8>)>>,
    pub payload: Arc<Vec<u8>>,
    /// Set when the event was stored behind its key and is handled from there.
    pub parked_seq: Option<i64>,
    pub step: Step,
    pub span: tracing::Span,
    pub outcome: Outcome,
    /// The next event of the key, now its head, when this one resolved it.
    pub released: Option<ParkedEvent>,
    after_commit: Vec<Box<dyn FnOnce() + Send>>,
}

impl HandleWork {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        meta: CloudEventHeaders,
        key: String,
        source: Source,
        headers: Arc<Vec<(String, Vec<u8>)>>,
        payload: Arc<Vec<u8>>,
        parked_seq: Option<i64>,
        step: Step,
        span: tracing::Span,
    ) -> Self {
        Self {
            meta,
            key,
            source,
            headers,
            payload,
            parked_seq,
            step,
            span,
            outcome: Outcome::Pending,
            released: None,
            after_commit: Vec::new(),
        }
    }

    fn event_source(&self) -> EventSource {
        EventSource {
            topic: self.source.topic.clone(),
            partition: self.source.partition,
            offset: self.source.offset,
        }
    }
}

#[async_trait]
impl Work for HandleWork {
    type Context = WorkContext;

    async fn apply(ctx: &WorkContext, items: &mut [Self], tx: &mut Tx<'_>) -> Result<(), Failed> {
        for item in items.iter_mut() {
            item.outcome = Outcome::Pending;
            item.released = None;
            item.after_commit.clear();
        }
        let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
        let backend = ctx.backend;
        if backend == Backend::Postgres {
            key_lock::lock_keys(tx.conn, &ctx.group, &keys).await?;
        }
        let received: Vec<(&str, &str)> = items
            .iter()
            .map(|i| (i.meta.id.as_str(), i.meta.event_type.as_str()))
            .collect();
        let mut first = inbox::record_all(tx.conn, &ctx.group, &received).await?;
        // Read once for the batch and kept current as its items go: an item
        // that resolves its key's head changes what the items after it see.
        let mut heads = parking::heads(tx.conn, backend, &ctx.group, &keys).await?;
        if backend == Backend::Postgres {
            let events: Vec<&Event> = items
                .iter()
                .filter(|i| first.contains(&i.meta.id))
                .filter_map(|i| match &i.step {
                    Step::Event(e) | Step::Deadline(e, _) => Some(e),
                    Step::Record(_) => None,
                })
                .collect();
            if !events.is_empty() {
                ctx.handler
                    .lock_rows(&events, tx.conn)
                    .await
                    .map_err(|error| Failed { item: None, error })?;
            }
        }
        let mut not_done: Vec<String> = Vec::new();
        for (i, item) in items.iter_mut().enumerate() {
            let head = heads.get(&item.key).cloned();
            let is_head = head.as_ref() == Some(&item.meta.id);
            // The same event twice in one batch (a redelivery beside its
            // resumed parked copy): the inbox row counts for the first only,
            // and a later copy resolves nothing while the first is not done
            // (its call is still to come, or it waits behind its order).
            let is_first = first.remove(&item.meta.id);
            let first_not_done = !is_first && not_done.contains(&item.meta.id);
            let span = item.span.clone();
            async {
                if !is_first {
                    item.outcome = Outcome::Duplicate;
                } else if head.is_some()
                    && !is_head
                    && matches!(item.step, Step::Event(_))
                    && item.parked_seq.is_none()
                {
                    parking::park_behind(
                        tx.conn,
                        &ctx.group,
                        &item.key,
                        &item.meta.id,
                        &item.source,
                        &item.headers,
                        &item.payload,
                    )
                    .await
                    .map_err(|e| Failed::at(i, e))?;
                    tracing::info!(order_id = %item.key, event = %item.meta.event_type,
                        "an earlier event of this order waits for a retry; this one waits behind it");
                    item.outcome = Outcome::ParkedBehind;
                    not_done.push(item.meta.id.clone());
                } else {
                    apply_one(ctx, item, tx)
                        .await
                        .map_err(|e| Failed::at(i, e))?;
                    if !matches!(item.outcome, Outcome::Applied | Outcome::DeadlineHandled) {
                        not_done.push(item.meta.id.clone());
                    }
                }
                let resolved = !first_not_done
                    && matches!(
                        item.outcome,
                        Outcome::Applied | Outcome::Duplicate | Outcome::DeadlineHandled
                    );
                if resolved {
                    if let Some(seq) = item.parked_seq {
                        parking::forget(tx.conn, &ctx.group, &item.key, seq)
                            .await
                            .map_err(|e| Failed::at(i, e))?;
                    }
                    if is_head {
                        item.released = parking::release(tx.conn, &ctx.group, &item.key)
                            .await
                            .map_err(|e| Failed::at(i, e))?;
                        match &item.released {
                            Some(next) => heads.insert(item.key.clone(), next.event_id.clone()),
                            None => heads.remove(&item.key),
                        };
                    }
                }
                Ok::<(), Failed>(())
            }
            .instrument(span)
            .await?;
        }
        let not_done: Vec<&str> = not_done.iter().map(String::as_str).collect();
        inbox::forget(tx.conn, &ctx.group, &not_done).await?;
        Ok(())
    }

    fn committed(&mut self) {
        for action in self.after_commit.drain(..) {
            action();
        }
    }

    fn key(&self) -> &str {
        &self.key
    }
}

/// Runs the handler for one item and writes what it emitted to the outbox.
async fn apply_one(
    ctx: &WorkContext,
    item: &mut HandleWork,
    tx: &mut Tx<'_>,
) -> Result<(), crate::HandlerError> {
    let source = item.event_source();
    let mut hctx = HandlerCtx::new(tx.conn, &item.meta, &source);
    let outcome = match &mut item.step {
        Step::Event(event) => {
            ctx.handler.handle(event.clone(), &mut hctx).await?;
            Outcome::Applied
        }
        Step::Record(call) => {
            call.record(&mut hctx).await?;
            Outcome::Applied
        }
        Step::Deadline(event, error) => {
            if ctx
                .handler
                .deadline_passed(event.clone(), error, &mut hctx)
                .await?
            {
                Outcome::DeadlineHandled
            } else {
                Outcome::DeadlineNotHandled
            }
        }
    };
    let HandlerCtx {
        emitted,
        after_commit,
        call,
        ..
    } = hctx;
    item.outcome = match (call, outcome) {
        (Some(call), Outcome::Applied) if matches!(item.step, Step::Event(_)) => {
            Outcome::Call(call)
        }
        (Some(call), Outcome::DeadlineHandled) if matches!(item.step, Step::Deadline(..)) => {
            Outcome::Call(call)
        }
        (_, outcome) => outcome,
    };
    item.after_commit = after_commit;
    for event in &emitted {
        ctx.emitter.emit(tx, event, Some(&item.meta)).await?;
    }
    if !emitted.is_empty() || matches!(item.outcome, Outcome::Applied) {
        // One line per event would be most of a busy service's log: the
        // services log what happened to the order instead.
        tracing::debug!(order_id = %item.key, event = %item.meta.event_type,
            emitted = ?emitted.iter().map(|e| e.event_type().name()).collect::<Vec<_>>(), "handled");
    }
    Ok(())
}
