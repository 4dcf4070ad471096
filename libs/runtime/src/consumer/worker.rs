//! One consumed message, from headers to done: decode, apply (batched with
//! others), make the external call if the handler asked for one and record
//! its outcome, and on failure go to a retry tier, fail the step at its
//! deadline or dead-letter it. When the message resolves the head of a
//! parked order, the events waiting behind it are handled next, from the
//! database, in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orderflow_envelope::{CloudEventHeaders, Event, EventType};
use orderflow_telemetry::metrics_types::{
    ConsumedLabels, DependencyLabels, EventTypeLabels, RetryLabels, TopicLabels,
};
use rdkafka::message::{Message, OwnedMessage};
use tracing::Instrument;

use crate::dead_letter::{dead_letter_headers, keep_unwritten};
use crate::handler::{ExternalCall, HandlerError};
use crate::producer::is_permanent;
use crate::topics::dead_letter_topic;

use super::parking::{self, Parked, ParkedEvent};
use super::retry::{tier_label, tier_topic, NextStep, RetryState, Source};
use super::scheduler::Dispatch;
use super::work::{HandleWork, Outcome, Step};
use super::Shared;

/// An event to handle: a consumed message, or one stored behind its key.
struct Attempt {
    key: String,
    headers: Arc<Vec<(String, Vec<u8>)>>,
    payload: Arc<Vec<u8>>,
    /// Where it was first read.
    source: Source,
    /// The topic it was read from now (a retry tier's, or its own).
    topic: String,
    retry: Option<RetryState>,
    parked_seq: Option<i64>,
}

/// How handling an attempt ended.
enum Ended {
    /// Done; maybe with the next event of its key, now the head, to handle.
    Done(Option<ParkedEvent>),
    /// Interrupted by shutdown: not done, handled again later.
    Abandoned,
}

/// Runs one dispatched message and tells the scheduler how it ended.
pub(super) async fn run(shared: Arc<Shared>, dispatch: Dispatch<OwnedMessage>) {
    let Dispatch { ticket, message } = dispatch;
    let finished = if shared.is_live(&ticket) {
        handle_message(&shared, message).await
    } else {
        false // its partition was revoked meanwhile: the next owner has it
    };
    shared.finish(&ticket, finished);
}

/// True when the message is done with (handled, stored behind its key, in a
/// retry tier or dead-lettered); false when interrupted.
async fn handle_message(shared: &Arc<Shared>, message: OwnedMessage) -> bool {
    let headers = crate::log_reader::owned_headers(&message);
    let retry = RetryState::from_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
    let here = Source {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
    };
    let attempt = Attempt {
        key: message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default(),
        headers: Arc::new(headers),
        payload: Arc::new(message.payload().unwrap_or_default().to_vec()),
        source: retry.as_ref().map_or(here.clone(), |r| r.source.clone()),
        topic: here.topic,
        retry,
        parked_seq: None,
    };
    match handle_attempt(shared, attempt).await {
        Ended::Abandoned => false,
        Ended::Done(mut next) => {
            // The message is done; the events that waited behind it follow.
            while let Some(parked) = next.take() {
                match handle_attempt(shared, Attempt::from(parked)).await {
                    Ended::Done(following) => next = following,
                    // Still the key's head in the database: resumed later.
                    Ended::Abandoned => break,
                }
            }
            true
        }
    }
}

impl From<ParkedEvent> for Attempt {
    fn from(p: ParkedEvent) -> Self {
        Self {
            key: p.key,
            headers: Arc::new(p.headers),
            payload: Arc::new(p.payload),
            topic: p.source.topic.clone(),
            source: p.source,
            retry: None,
            parked_seq: Some(p.seq),
        }
    }
}

/// The consume span of an attempt: a child of the event's creation span, whose
/// context travels in the message's `traceparent`.
fn span_of(shared: &Shared, attempt: &Attempt, meta: &CloudEventHeaders) -> tracing::Span {
    let span = tracing::info_span!(
        "process",
        otel.name = %format!("{} process", attempt.topic),
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.destination.name = %attempt.topic,
        messaging.destination.partition.id = attempt.source.partition,
        messaging.kafka.offset = attempt.source.offset,
        messaging.kafka.message.key = %attempt.key,
        messaging.message.id = %meta.id,
        messaging.consumer.group.name = %shared.group,
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
    span
}

async fn handle_attempt(shared: &Arc<Shared>, attempt: Attempt) -> Ended {
    let pairs = attempt
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()));
    let meta = match CloudEventHeaders::from_pairs(pairs) {
        Ok(meta) => meta,
        Err(e) => {
            let reason = format!("not a CloudEvent: {e}");
            return dead_letter(shared, &attempt, None, "invalid", &reason).await;
        }
    };
    let span = span_of(shared, &attempt, &meta);
    attempt_event(shared, attempt, meta, span.clone())
        .instrument(span)
        .await
}

async fn attempt_event(
    shared: &Arc<Shared>,
    attempt: Attempt,
    meta: CloudEventHeaders,
    span: tracing::Span,
) -> Ended {
    // Only retry copies and stored events of types this build does not
    // handle get here (the poll thread skips the others), after a rollback:
    // a newer build was handling them. Dead-lettered, they can be replayed
    // once such a build runs again; their order goes on meanwhile.
    let Some(event_type) = EventType::from_ce_type(&meta.event_type) else {
        shared
            .rt
            .metrics()
            .unknown_event_types
            .get_or_create(&orderflow_telemetry::metrics_types::CeTypeLabels {
                ce_type: super::poll::bounded_label(&meta.event_type),
            })
            .inc();
        let reason = "a retry copy or waiting event of a type this build does not know (rolled back?): replay it once a build that handles it runs";
        return dead_letter(shared, &attempt, Some(&meta), "unknown", reason).await;
    };
    if !shared.handler.handles(event_type) {
        let reason = "a retry copy or waiting event of a type this service no longer handles (rolled back?): replay it once a build that handles it runs";
        return dead_letter(shared, &attempt, Some(&meta), event_type.name(), reason).await;
    }
    if let Err(forged) = check_provenance(event_type, &meta, &attempt.source.topic) {
        return dead_letter(shared, &attempt, Some(&meta), event_type.name(), &forged).await;
    }
    let started = Instant::now();
    let event = match shared
        .rt
        .codec()
        .decode(Some(event_type), &attempt.payload)
        .await
    {
        Ok(event) => event,
        Err(e) => return failed(shared, &attempt, &meta, None, event_type, e.into()).await,
    };
    if attempt.retry.as_ref().is_some_and(|r| r.resolving) {
        // Its deadline passed with the outcome unknown: back to the deadline
        // step, which asks again; never the handler (no new charge after it).
        let reason = "its step's deadline passed and its outcome is still unknown".to_string();
        return failed(
            shared,
            &attempt,
            &meta,
            Some(event),
            event_type,
            HandlerError::Transient(reason),
        )
        .await;
    }
    let work = HandleWork::new(
        meta.clone(),
        attempt.key.clone(),
        attempt.source.clone(),
        attempt.headers.clone(),
        attempt.payload.clone(),
        attempt.parked_seq,
        Step::Event(event.clone()),
        span.clone(),
    );
    let (work, result) = shared.events.run(work).await;
    let Some(work) = work else {
        return Ended::Abandoned;
    };
    if let Err(e) = result {
        return failed(shared, &attempt, &meta, Some(event), event_type, e).await;
    }
    let HandleWork {
        outcome, released, ..
    } = work;
    match outcome {
        Outcome::Call(call) => {
            let call = ResolvingCall {
                call,
                span,
                started,
                then: AfterFailure::Schedule,
            };
            call_then_record(shared, &attempt, &meta, event, event_type, call).await
        }
        outcome => {
            let label = match outcome {
                Outcome::Duplicate => "duplicate",
                Outcome::ParkedBehind => "waiting",
                _ => "handled",
            };
            count(shared, &attempt.topic, event_type.name(), label);
            observe(shared, event_type, started);
            Ended::Done(released)
        }
    }
}

/// An external call the handler asked for, and what its failure leads to.
struct ResolvingCall {
    call: Box<dyn ExternalCall>,
    span: tracing::Span,
    started: Instant,
    then: AfterFailure,
}

/// Where a failed call (or the record of its outcome) goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AfterFailure {
    /// As any failure: a retry tier, the step's deadline, or a dead letter.
    Schedule,
    /// The call resolves an unknown outcome after the step's deadline: the
    /// event waits in the last retry tier and is tried again from the start.
    LastTier,
}

/// The external call the handler asked for, with no transaction held, then
/// its outcome in a second transaction.
async fn call_then_record(
    shared: &Arc<Shared>,
    attempt: &Attempt,
    meta: &CloudEventHeaders,
    event: Event,
    event_type: EventType,
    resolving: ResolvingCall,
) -> Ended {
    let ResolvingCall {
        mut call,
        span,
        started,
        then,
    } = resolving;
    let gauge = shared
        .rt
        .metrics()
        .external_calls_in_flight
        .get_or_create(&DependencyLabels {
            dependency: call.dependency(),
        })
        .clone();
    // A call under way finishes at shutdown too (its own timeout bounds it;
    // the poll thread waits for in-flight work for a while). Were the process
    // to die in the middle, the intent is recorded: the redelivered event
    // calls again with the same idempotency key.
    let called = {
        let Ok(_permit) = shared.calls.acquire().await else {
            return Ended::Abandoned;
        };
        gauge.inc();
        let called = call.call().await;
        gauge.dec();
        called
    };
    if let Err(e) = called {
        return call_failed(shared, attempt, meta, event, event_type, e, then).await;
    }
    let work = HandleWork::new(
        meta.clone(),
        attempt.key.clone(),
        attempt.source.clone(),
        attempt.headers.clone(),
        attempt.payload.clone(),
        attempt.parked_seq,
        Step::Record(call),
        span,
    );
    let (work, result) = shared.events.run(work).await;
    let Some(work) = work else {
        return Ended::Abandoned;
    };
    if let Err(e) = result {
        return call_failed(shared, attempt, meta, event, event_type, e, then).await;
    }
    let label = match (work.outcome, then) {
        (Outcome::Duplicate, _) => "duplicate",
        (_, AfterFailure::LastTier) => "deadline",
        _ => "handled",
    };
    count(shared, &attempt.topic, event_type.name(), label);
    observe(shared, event_type, started);
    Ended::Done(work.released)
}

/// A call (or the record of its outcome) failed.
async fn call_failed(
    shared: &Arc<Shared>,
    attempt: &Attempt,
    meta: &CloudEventHeaders,
    event: Event,
    event_type: EventType,
    error: HandlerError,
    then: AfterFailure,
) -> Ended {
    let reason = match (then, error) {
        (AfterFailure::Schedule, error) => {
            return Box::pin(failed(
                shared,
                attempt,
                meta,
                Some(event),
                event_type,
                error,
            ))
            .await;
        }
        (AfterFailure::LastTier, HandlerError::Permanent(reason)) => {
            return dead_letter(shared, attempt, Some(meta), event_type.name(), &reason).await;
        }
        (AfterFailure::LastTier, HandlerError::Transient(reason)) => reason,
    };
    let now = crate::now_millis();
    let (attempts, first_failed_at) = attempt
        .retry
        .as_ref()
        .map_or((1, now), |r| (r.attempts + 1, r.first_failed_at));
    let tier = shared.schedule.last_tier();
    tracing::warn!(order_id = %meta.subject, event = event_type.name(), attempts, error = %reason,
        "the step's deadline passed and its outcome is not known yet; trying again in {}", tier_label(tier));
    let state = RetryState {
        attempts,
        first_failed_at,
        due_at: now + tier.as_millis() as i64,
        resolving: true,
        source: attempt.source.clone(),
    };
    retry_later(shared, attempt, meta, event_type, state, tier, &reason).await
}

/// A failed attempt: retried in a tier, failed at its deadline, or dead-lettered.
async fn failed(
    shared: &Arc<Shared>,
    attempt: &Attempt,
    meta: &CloudEventHeaders,
    event: Option<Event>,
    event_type: EventType,
    error: HandlerError,
) -> Ended {
    let reason = match error {
        HandlerError::Permanent(reason) => {
            return dead_letter(shared, attempt, Some(meta), event_type.name(), &reason).await;
        }
        HandlerError::Transient(reason) => reason,
    };
    let now = crate::now_millis();
    let (attempts, first_failed_at) = attempt
        .retry
        .as_ref()
        .map_or((1, now), |r| (r.attempts + 1, r.first_failed_at));
    match shared
        .schedule
        .after_failure(attempts, first_failed_at, now)
    {
        NextStep::Retry { tier, due_at } => {
            tracing::warn!(order_id = %meta.subject, event = event_type.name(), attempts, error = %reason,
                "transient failure; retrying in {}", tier_label(tier));
            let state = RetryState {
                attempts,
                first_failed_at,
                due_at,
                resolving: false,
                source: attempt.source.clone(),
            };
            retry_later(shared, attempt, meta, event_type, state, tier, &reason).await
        }
        NextStep::DeadlinePassed => {
            shared
                .rt
                .metrics()
                .deadlines_passed
                .get_or_create(&EventTypeLabels {
                    event_type: event_type.name().to_string(),
                })
                .inc();
            let elapsed = Duration::from_millis((now - first_failed_at).max(0) as u64);
            let reason = format!(
                "gave up after {attempts} attempts over {elapsed:?} (the step's deadline): {reason}"
            );
            tracing::warn!(order_id = %meta.subject, event = event_type.name(), "{reason}");
            let Some(event) = event else {
                return dead_letter(shared, attempt, Some(meta), event_type.name(), &reason).await;
            };
            let work = HandleWork::new(
                meta.clone(),
                attempt.key.clone(),
                attempt.source.clone(),
                attempt.headers.clone(),
                attempt.payload.clone(),
                attempt.parked_seq,
                Step::Deadline(event.clone(), reason.clone()),
                tracing::Span::current(),
            );
            let (work, result) = shared.events.run(work).await;
            match (work, result) {
                (None, _) => Ended::Abandoned,
                (Some(work), Ok(()))
                    if matches!(work.outcome, Outcome::DeadlineHandled | Outcome::Duplicate) =>
                {
                    count(shared, &attempt.topic, event_type.name(), "deadline");
                    Ended::Done(work.released)
                }
                // The outcome is not known: the call the handler asked for
                // resolves it before anything is decided.
                (
                    Some(HandleWork {
                        outcome: Outcome::Call(call),
                        ..
                    }),
                    Ok(()),
                ) => {
                    let call = ResolvingCall {
                        call,
                        span: tracing::Span::current(),
                        started: Instant::now(),
                        then: AfterFailure::LastTier,
                    };
                    Box::pin(call_then_record(
                        shared, attempt, meta, event, event_type, call,
                    ))
                    .await
                }
                (Some(_), Ok(())) => {
                    dead_letter(shared, attempt, Some(meta), event_type.name(), &reason).await
                }
                // Passing trouble recording it: the deadline step is tried
                // again from the last tier (an unknown outcome must not be
                // dead-lettered and forgotten).
                (Some(_), Err(e)) if e.is_transient() => {
                    Box::pin(call_failed(
                        shared,
                        attempt,
                        meta,
                        event,
                        event_type,
                        e,
                        AfterFailure::LastTier,
                    ))
                    .await
                }
                (Some(_), Err(e)) => {
                    let reason = format!("{reason}; recording the failure failed too: {e}");
                    dead_letter(shared, attempt, Some(meta), event_type.name(), &reason).await
                }
            }
        }
    }
}

/// Only the service that owns a topic writes it (the cluster's ACLs say so
/// too): an event on a topic that is not its type's, or whose `ce_source` is
/// not the topic's owner, is forged or misrouted, and never handled.
pub(crate) fn check_provenance(
    event_type: EventType,
    meta: &CloudEventHeaders,
    topic: &str,
) -> Result<(), String> {
    let home = event_type.topic();
    if home.name() != topic {
        return Err(format!(
            "{} arrived on {topic}, but it belongs on {}: forged or misrouted, not handled",
            event_type.name(),
            home.name()
        ));
    }
    if meta.source != home.source() {
        return Err(format!(
            "{} claims to come from {}, but only {} writes {topic}: forged, not handled",
            event_type.name(),
            meta.source,
            home.source()
        ));
    }
    Ok(())
}

/// Parks the key with this event at its head and copies the event to its
/// retry tier; its offset moves on once the copy is written.
async fn retry_later(
    shared: &Arc<Shared>,
    attempt: &Attempt,
    meta: &CloudEventHeaders,
    event_type: EventType,
    state: RetryState,
    tier: Duration,
    reason: &str,
) -> Ended {
    let db = shared.rt.db();
    let parked = persist(shared, || {
        parking::hold(
            db,
            &shared.group,
            &attempt.key,
            &meta.id,
            &attempt.source,
            &attempt.headers,
            &attempt.payload,
        )
    })
    .await;
    match parked {
        Persisted::Interrupted => return Ended::Abandoned,
        Persisted::Refused(e) => {
            // Its key cannot be parked, so nothing can wait behind it: a retry
            // copy would let later events of the order overtake it.
            let reason = format!("{reason}; and its order could not be held for a retry: {e}");
            return dead_letter(shared, attempt, Some(meta), event_type.name(), &reason).await;
        }
        Persisted::Done(Parked::Behind) => {
            count(shared, &attempt.topic, event_type.name(), "waiting");
            return Ended::Done(None);
        }
        Persisted::Done(Parked::Head) => {}
    }
    let mut headers: Vec<(String, Vec<u8>)> = attempt
        .headers
        .iter()
        .filter(|(k, _)| !k.starts_with(super::retry::RETRY_HEADER_PREFIX))
        .cloned()
        .collect();
    headers.extend(state.to_headers(reason));
    let topic = tier_topic(shared.rt.service(), tier);
    match produce(
        shared,
        &topic,
        attempt.key.as_bytes(),
        &headers,
        &attempt.payload,
    )
    .await
    {
        Produced::Yes => {}
        Produced::Interrupted => return Ended::Abandoned,
        Produced::Refused(e) => {
            // The tier topic cannot take it (missing, say): that is a dead letter.
            let reason = format!("{reason}; and the retry topic {topic} refused it: {e}");
            return dead_letter(shared, attempt, Some(meta), event_type.name(), &reason).await;
        }
    }
    shared
        .rt
        .metrics()
        .handler_retries
        .get_or_create(&RetryLabels {
            event_type: event_type.name().to_string(),
            tier: tier_label(tier),
        })
        .inc();
    count(shared, &attempt.topic, event_type.name(), "retried");
    if let Some(seq) = attempt.parked_seq {
        // Its retry copy stands for it now.
        let forgotten = persist(shared, || async {
            let mut conn = db.acquire().await?;
            parking::forget(&mut conn, &shared.group, &attempt.key, seq).await
        })
        .await;
        match forgotten {
            Persisted::Done(()) => {}
            Persisted::Interrupted => return Ended::Abandoned,
            Persisted::Refused(e) => {
                tracing::error!(error = %e, order_id = %attempt.key, seq,
                    "could not remove an event stored behind its order, now in a retry tier; it may be handled twice (the inbox drops the copy)");
            }
        }
    }
    Ended::Done(None)
}

/// Parks the message on the service's dead-letter topic, then lets the
/// events of its key that waited behind it go on. A dead letter the broker
/// refuses for good is kept in the database instead.
async fn dead_letter(
    shared: &Arc<Shared>,
    attempt: &Attempt,
    meta: Option<&CloudEventHeaders>,
    event_type: &str,
    error: &str,
) -> Ended {
    let service = shared.rt.service();
    let topic = dead_letter_topic(service);
    let attempts = attempt.retry.as_ref().map_or(1, |r| r.attempts + 1);
    let headers = dead_letter_headers(&attempt.headers, &attempt.source, service, error, attempts);
    tracing::warn!(
        topic = %attempt.source.topic,
        partition = attempt.source.partition,
        offset = attempt.source.offset,
        error,
        "dead-lettering to {topic}"
    );
    match produce(
        shared,
        &topic,
        attempt.key.as_bytes(),
        &headers,
        &attempt.payload,
    )
    .await
    {
        Produced::Yes => {
            shared
                .rt
                .metrics()
                .dead_letters
                .get_or_create(&TopicLabels {
                    topic: attempt.source.topic.clone(),
                })
                .inc();
        }
        Produced::Interrupted => return Ended::Abandoned,
        Produced::Refused(produce_error) => {
            tracing::error!(error = %produce_error, "the dead-letter topic refused the message for good; it is kept in the database (orderflow_dead_letters_unwritten)");
            let kept = persist(shared, || {
                keep_unwritten(
                    shared.rt.db(),
                    &shared.group,
                    &attempt.source,
                    Some(attempt.key.as_bytes()),
                    &headers,
                    Some(&attempt.payload),
                    error,
                    &produce_error,
                )
            })
            .await;
            match kept {
                Persisted::Done(()) => {
                    shared.rt.metrics().dead_letters_unwritten.inc();
                }
                Persisted::Interrupted => return Ended::Abandoned,
                Persisted::Refused(e) => {
                    // Neither the broker nor the database takes it: the log line
                    // (with where it was read) is all that is left of it.
                    tracing::error!(error = %e, topic = %attempt.source.topic,
                        partition = attempt.source.partition, offset = attempt.source.offset,
                        "the database refused the dead letter too; it is only in this log");
                }
            }
        }
    }
    count(shared, &attempt.topic, event_type, "dead_lettered");
    match meta {
        Some(meta) => release_after(shared, attempt, meta).await,
        None => Ended::Done(None),
    }
}

/// The attempt is resolved without a handler's transaction (dead-lettered,
/// or of a type this build does not know): if it was its key's head, the
/// next waiting event becomes the head.
async fn release_after(shared: &Arc<Shared>, attempt: &Attempt, meta: &CloudEventHeaders) -> Ended {
    let released = persist(shared, || {
        parking::resolve_unhandled(
            shared.rt.db(),
            &shared.group,
            &attempt.key,
            &meta.id,
            attempt.parked_seq,
        )
    })
    .await;
    match released {
        Persisted::Done(next) => Ended::Done(next),
        Persisted::Interrupted => Ended::Abandoned,
        Persisted::Refused(e) => {
            // Most often a key the database cannot store (a NUL byte, over an
            // index's limit), which was never parked either. Anything else
            // refused here leaves the order parked, which its gauge and the
            // log show: an operator must look.
            tracing::error!(error = %e, order_id = %attempt.key,
                "could not release the events waiting behind this one; if any wait, they stay parked (orderflow_keys_waiting_for_retry)");
            Ended::Done(None)
        }
    }
}

enum Produced {
    Yes,
    Interrupted,
    Refused(String),
}

/// Writes a message and waits until the broker has it, trying again while
/// the broker is away; stops on shutdown, and on errors retrying cannot fix.
async fn produce(
    shared: &Shared,
    topic: &str,
    key: &[u8],
    headers: &[(String, Vec<u8>)],
    payload: &[u8],
) -> Produced {
    let mut wait = Duration::from_millis(200);
    loop {
        // A delivery can take up to message.timeout.ms while the broker is
        // away: shutdown must not wait for it (the message is read again).
        let sent = tokio::select! {
            sent = shared.rt.producer().send_and_wait(topic, key, headers, payload) => sent,
            _ = shared.shutdown.cancelled() => return Produced::Interrupted,
        };
        match sent {
            Ok(_) => return Produced::Yes,
            Err(e) if is_permanent(&e) => return Produced::Refused(e.to_string()),
            Err(e) => tracing::warn!(error = %e, topic, "could not write to {topic}; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.shutdown.cancelled() => return Produced::Interrupted,
        }
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

/// How a [`persist`] step ended.
enum Persisted<T> {
    Done(T),
    /// Shutdown came first: the message is read again later.
    Interrupted,
    /// The database refuses this step for good (a key it cannot store, say):
    /// trying again would hold the key's lane, an in-flight slot and the
    /// partition's committed offset forever.
    Refused(sqlx::Error),
}

/// Runs a small database step until it commits: what it records (a parked
/// key, an unwritten dead letter) must not be lost to passing trouble. A
/// refusal that retrying cannot fix ends it at once.
async fn persist<T, F, Fut>(shared: &Shared, mut step: F) -> Persisted<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut wait = Duration::from_millis(100);
    loop {
        match step().await {
            Ok(value) => return Persisted::Done(value),
            Err(e) if !crate::failure::is_transient(&e) => return Persisted::Refused(e),
            Err(e) => tracing::warn!(error = %e, "database step failed; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.shutdown.cancelled() => return Persisted::Interrupted,
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

fn count(shared: &Shared, topic: &str, event_type: &str, outcome: &'static str) {
    shared
        .rt
        .metrics()
        .events_consumed
        .get_or_create(&ConsumedLabels {
            topic: topic.to_string(),
            event_type: event_type.to_string(),
            outcome,
        })
        .inc();
}

fn observe(shared: &Shared, event_type: EventType, started: Instant) {
    shared
        .rt
        .metrics()
        .handler_duration
        .get_or_create(&EventTypeLabels {
            event_type: event_type.name().to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
}

/// How long an event may be its key's head, stored and not handled, before
/// another look takes it (its handler stopped in between).
const STALLED_AFTER_MS: i64 = 30_000;

/// Events that became their key's head and were never handled (the process
/// handling them stopped in between) are picked up here, every few seconds.
pub(super) async fn resume_stalled(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shared.shutdown.cancelled() => return,
        }
        let db = shared.rt.db();
        let stalled = async {
            let mut conn = db.read().await?;
            let waiting = parking::count(&mut conn, &shared.group).await?;
            shared.rt.metrics().keys_waiting.set(waiting);
            if waiting == 0 {
                return Ok(Vec::new());
            }
            parking::stalled_heads(&mut conn, &shared.group, STALLED_AFTER_MS).await
        }
        .await;
        let stalled: Vec<ParkedEvent> = match stalled {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "could not look for stalled parked events");
                continue;
            }
        };
        for parked in stalled {
            // Every replica looks; the one that claims it handles it.
            let claimed = async {
                let mut conn = db.acquire().await?;
                parking::claim_stalled(&mut conn, &shared.group, &parked, STALLED_AFTER_MS).await
            }
            .await;
            match claimed {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "could not claim a stalled parked event");
                    continue;
                }
            }
            tracing::info!(order_id = %parked.key, "handling an event left waiting as its order's head");
            let mut next = Some(parked);
            while let Some(parked) = next.take() {
                if let Ended::Done(following) = handle_attempt(&shared, Attempt::from(parked)).await
                {
                    next = following;
                }
            }
        }
    }
}
