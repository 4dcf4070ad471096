//! What a service plugs into the consumer: a [`Handler`] that says, in domain
//! words, what an event does; and, for work that talks to the outside world,
//! an [`ExternalCall`] that runs with no transaction held. Inbox, outbox,
//! batching, retries, deadlines and dead letters are done around them.

use async_trait::async_trait;
use orderflow_envelope::{CloudEventHeaders, DecodeError, Event, EventType};

use crate::sql::Connection;

/// How a handler failed: worth retrying, or never going to work.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandlerError {
    /// A dependency was down, busy or too slow; the same event may succeed later.
    #[error("{0}")]
    Transient(String),
    /// The event cannot be processed (it breaks an invariant, does not
    /// decode, violates a constraint); retrying will not help.
    #[error("{0}")]
    Permanent(String),
}

impl HandlerError {
    pub fn is_transient(&self) -> bool {
        matches!(self, HandlerError::Transient(_))
    }
}

/// Connection loss, timeouts, pool exhaustion, serialization failures and
/// deadlocks are transient; constraint violations, decoding errors and
/// whatever else the database refuses are permanent.
impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        if crate::failure::is_transient(&e) {
            HandlerError::Transient(format!("database: {e}"))
        } else {
            HandlerError::Permanent(format!("database: {e}"))
        }
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

/// Where a consumed event came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSource {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// What a handler works with: the open transaction, the incoming event's
/// metadata, and what it leaves for the runtime to do once it commits.
pub struct HandlerCtx<'a> {
    pub tx: &'a mut Connection,
    pub meta: &'a CloudEventHeaders,
    /// Where the event was first read.
    pub source: &'a EventSource,
    pub(crate) emitted: Vec<Event>,
    pub(crate) after_commit: Vec<Box<dyn FnOnce() + Send>>,
    pub(crate) call: Option<Box<dyn ExternalCall>>,
}

impl<'a> HandlerCtx<'a> {
    pub(crate) fn new(
        tx: &'a mut Connection,
        meta: &'a CloudEventHeaders,
        source: &'a EventSource,
    ) -> Self {
        Self {
            tx,
            meta,
            source,
            emitted: Vec::new(),
            after_commit: Vec::new(),
            call: None,
        }
    }

    /// Emits an event; it is written to the outbox in this transaction.
    pub fn emit(&mut self, event: impl Into<Event>) {
        self.emitted.push(event.into());
    }

    /// Runs `action` once the transaction has committed, and never if it
    /// does not (for example, metrics of what the handler decided).
    pub fn after_commit(&mut self, action: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(action));
    }

    /// Ends this transaction with the intent recorded and the event not yet
    /// done: `call` runs with no transaction or connection held, then records
    /// its outcome in a second transaction, where the event counts as done.
    /// A crash in between repeats the call, so it must be idempotent (an
    /// idempotency key derived from the event).
    pub fn call(&mut self, call: impl ExternalCall) {
        self.call = Some(Box::new(call));
    }
}

/// A service's reaction to the events it consumes, in domain words.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Whether this service acts on events of this type; others are skipped.
    fn handles(&self, event_type: EventType) -> bool;

    async fn handle(&self, event: Event, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError>;

    /// Takes, before any event of a batch is handled, the row locks the
    /// batch's handlers will need, in one consistent order (sorted by key).
    /// Batches of several replicas on one PostgreSQL database then wait for
    /// each other instead of deadlocking, as they would locking hot rows
    /// (stock of a popular SKU) in whatever order their events come. SQLite
    /// has one writer and needs none of it: it is called on PostgreSQL only.
    async fn lock_rows(
        &self,
        events: &[&Event],
        conn: &mut Connection,
    ) -> Result<(), HandlerError> {
        let _ = (events, conn);
        Ok(())
    }

    /// Handling `event` kept failing transiently until the step's deadline
    /// (`error` is the last failure). Record the failure in domain terms, so
    /// the saga can compensate, and return true; false dead-letters the event.
    ///
    /// Where a call may have succeeded without the answer arriving, the
    /// outcome is unknown, and a deadline must not turn a possible success
    /// into a failure: ask with [`HandlerCtx::call`] (and return true) for a
    /// call that resolves it (the provider asked by idempotency key), whose
    /// `record` then decides. While that call fails, the event waits in the
    /// last retry tier and is tried again from the start.
    async fn deadline_passed(
        &self,
        event: Event,
        error: &str,
        ctx: &mut HandlerCtx<'_>,
    ) -> Result<bool, HandlerError> {
        let _ = (event, error, ctx);
        Ok(false)
    }
}

/// A call to something outside orderflow (payment provider, notification
/// channel), made between two short transactions.
#[async_trait]
pub trait ExternalCall: Send + Sync + 'static {
    /// What is called, for metrics and logs (`payment-provider`).
    fn dependency(&self) -> &'static str;

    /// Talks to the outside world; no transaction or connection is held.
    /// Keeps what it learned for [`ExternalCall::record`].
    async fn call(&mut self) -> Result<(), HandlerError>;

    /// Records the outcome and emits its events, in a second transaction. It
    /// may run more than once (a batch that failed is applied again one item
    /// at a time), so it only writes through `ctx`.
    async fn record(&mut self, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError>;
}
