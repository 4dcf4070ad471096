//! Orders across customers, as the console and API users watch them: the
//! newest orders, counts by status, and `GET /v1/orders/stream`, one
//! Server-Sent Event per status change, resumable with `Last-Event-ID`.
//! An operator sees every customer's orders; a customer their own.
#![deny(clippy::unwrap_used, clippy::arithmetic_side_effects)]

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::Stream;
use orderflow_api::OrderChanges;
use orderflow_auth::Principal;
use orderflow_http::Problem;
use reqwest::Method;

use crate::auth::Bearer;
use crate::http::Upstreams;
use crate::stream::{ChangeId, Window};
use crate::upstream::Upstream;

/// How often a stream asks the order service for changes.
const POLL: Duration = Duration::from_millis(250);
/// Changes one read returns at most.
const READ_LIMIT: usize = 2_000;

/// Query pairs for the order service: the caller's filters (`allowed`)
/// and, for a customer, their own id whatever the query said.
fn scoped(
    caller: &Principal,
    query: Option<String>,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, Problem> {
    let mut pairs = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if !allowed.contains(&key.as_ref()) {
            return Err(Problem::validation(format!(
                "unknown query parameter {key:?}: this call takes {}",
                allowed.join(", ")
            )));
        }
        let theirs = key == "customer_id" && !caller.is_operator();
        if key == "customer_id" && !value.is_empty() {
            if let Some(why) = orderflow_api::IdKind::Customer.error(&value) {
                return Err(Problem::validation(format!("customer_id: {why}")));
            }
        }
        if !value.is_empty() && !theirs {
            pairs.push((key.into_owned(), value.into_owned()));
        }
    }
    if !caller.is_operator() {
        pairs.push(("customer_id".into(), caller.subject.clone()));
    }
    Ok(pairs)
}

/// The newest orders, newest first: `status` and `limit` (1 to 500).
pub async fn newest(
    State(Upstreams { order, .. }): State<Upstreams>,
    Extension(caller): Extension<Principal>,
    Extension(bearer): Extension<Bearer>,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let pairs = scoped(&caller, query, &["status", "limit", "customer_id"])?;
    order
        .relay(
            order
                .request(&bearer, Method::GET, &["v1", "orders"])?
                .query(&pairs),
        )
        .await
}

/// Orders by status, cancellations by reason, orders placed per second.
pub async fn summary(
    State(Upstreams { order, .. }): State<Upstreams>,
    Extension(caller): Extension<Principal>,
    Extension(bearer): Extension<Bearer>,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let pairs = scoped(&caller, query, &["customer_id"])?;
    order
        .relay(
            order
                .request(&bearer, Method::GET, &["v1", "orders", "summary"])?
                .query(&pairs),
        )
        .await
}

/// Who the token says the caller is (the console shows it and hides what
/// the caller may not use).
pub async fn me(Extension(caller): Extension<Principal>) -> Response {
    Json(serde_json::json!({
        "subject": caller.subject,
        "operator": caller.is_operator(),
        "email": caller.email,
    }))
    .into_response()
}

/// `GET /v1/orders/stream`: `event: order`, the order as
/// [`orderflow_api::OrderSummary`] with the status it took and when, `id` to resume from.
pub async fn stream(
    State(Upstreams {
        order,
        stop,
        stream_slots: slots,
        ..
    }): State<Upstreams>,
    Extension(caller): Extension<Principal>,
    Extension(bearer): Extension<Bearer>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| Problem::validation("Last-Event-ID is not text"))?
                .parse::<ChangeId>()
                .map_err(Problem::validation)?,
        ),
        None => None,
    };
    let scope = scoped(&caller, query, &["customer_id"])?;
    // Held as long as the stream is open.
    let slot = slots.open(&caller.subject)?;
    let window = Window::start(resume.as_ref(), orderflow_runtime::now_millis());
    let events = futures::stream::unfold(
        (
            window,
            Vec::<Event>::new(),
            order,
            scope,
            stop,
            slot,
            bearer,
        ),
        |(mut window, mut ready, order, scope, stop, slot, bearer)| async move {
            loop {
                // The gateway is stopping: the stream ends, and the client
                // resumes elsewhere.
                if stop.is_cancelled() {
                    return None;
                }
                if let Some(event) = ready.pop() {
                    return Some((Ok(event), (window, ready, order, scope, stop, slot, bearer)));
                }
                ready = tokio::select! {
                    // The caller's token no longer holds (it expired): the
                    // stream ends, and the client resumes with a fresh one.
                    ready = read_changes(&order, &bearer, &scope, &mut window) => ready?,
                    _ = stop.cancelled() => return None,
                };
                ready.reverse();
                // Nothing new and no burst's next page to read: a pause.
                if ready.is_empty() && window.after.is_none() {
                    tokio::select! {
                        _ = tokio::time::sleep(POLL) => {}
                        _ = stop.cancelled() => return None,
                    }
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// One read of the order service's changes, as events still to send. A
/// failed read sends nothing and is tried again at the next poll; `None`
/// when the service no longer takes the caller's token.
async fn read_changes(
    order: &Upstream,
    caller: &Bearer,
    scope: &[(String, String)],
    window: &mut Window,
) -> Option<Vec<Event>> {
    let Ok(request) = order.request(caller, Method::GET, &["v1", "order-changes"]) else {
        return None;
    };
    let mut request = request.query(scope).query(&[
        ("since", window.since.to_string()),
        ("limit", READ_LIMIT.to_string()),
    ]);
    if let Some(after) = &window.after {
        request = request.query(&[
            ("after_at", after.at.to_string()),
            ("after_order_id", after.order_id.clone()),
            ("after_status", after.status.clone()),
        ]);
    }
    let changes: OrderChanges = match order.send(request).await {
        Ok(r) if r.status().is_success() => match r.json().await {
            Ok(changes) => changes,
            Err(e) => {
                tracing::warn!(error = %e, "the order service's changes did not read");
                return Some(Vec::new());
            }
        },
        Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => return None,
        Ok(r) => {
            tracing::warn!(status = %r.status(), "the order service refused a read of changes");
            return Some(Vec::new());
        }
        Err(e) => {
            tracing::debug!(error = %e, "the order service did not answer a read of changes");
            return Some(Vec::new());
        }
    };
    let full = changes.changes.len() >= READ_LIMIT;
    let read = changes
        .changes
        .into_iter()
        .filter_map(|c| {
            let at = chrono::DateTime::parse_from_rfc3339(&c.changed_at)
                .ok()?
                .timestamp_millis();
            let id = ChangeId {
                at,
                status: c.status.clone(),
                order_id: c.order_id.clone(),
            };
            Some((id, c))
        })
        .collect();
    let events = window
        .take(read, full)
        .into_iter()
        .filter_map(|(id, change)| {
            Event::default()
                .event("order")
                .id(id.to_string())
                .json_data(change)
                .ok()
        })
        .collect();
    Some(events)
}
