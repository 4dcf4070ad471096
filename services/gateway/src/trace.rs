//! An order's trace for the console's waterfall (`GET /v1/orders/{id}/trace`).
//! The gateway reads it from Jaeger's query API, the one Jaeger's own UI
//! reads: the console cannot, since its content security policy lets it call
//! the gateway alone, and the module-built Jaeger has no UI to link to. The
//! answer is the spans as the console draws them — who, what, when, for how
//! long, under which parent — for operators only: a trace is the one the
//! order's placing request named, and a caller can name any trace id in its
//! `traceparent` (other requests' spans are operators' business, as Jaeger
//! itself is).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};
use orderflow_api::OrderId;
use orderflow_auth::Principal;
use orderflow_http::{Path, Problem, ProblemType};
use serde::Serialize;
use serde_json::Value;

use crate::auth::{require_operator, Bearer};
use crate::http::{visible_order, Upstreams};

/// Jaeger's answer is read up to this size (a saga's trace is tens of kB).
const MAX_ANSWER: usize = 8 << 20;

/// Where traces are read, if anywhere.
pub struct Traces {
    /// Jaeger's query API (`http://jaeger:16686`); `None`: no trace store.
    query_url: Option<String>,
    http: reqwest::Client,
}

impl Traces {
    pub fn new(query_url: &str, timeout: Duration) -> Self {
        let query_url = query_url.trim().trim_end_matches('/');
        Self {
            query_url: (!query_url.is_empty()).then(|| query_url.to_string()),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .pool_idle_timeout(orderflow_http::CLIENT_POOL_IDLE)
                .build()
                .expect("an HTTP client builds"),
        }
    }

    pub fn configured(&self) -> bool {
        self.query_url.is_some()
    }
}

/// A trace as the console draws it.
#[derive(Debug, Serialize)]
pub struct TraceView {
    pub trace_id: String,
    /// By start time; times in microseconds from the trace's first span.
    pub spans: Vec<SpanView>,
}

#[derive(Debug, PartialEq, Serialize)]
pub struct SpanView {
    pub span_id: String,
    /// The span it is a child of; `None` for the root (or a parent Jaeger
    /// does not have).
    pub parent_span_id: Option<String>,
    pub service: String,
    pub name: String,
    /// `server`, `client`, `producer`, `consumer` or `internal`.
    pub kind: String,
    pub start_us: u64,
    pub duration_us: u64,
    pub error: bool,
}

#[derive(Clone)]
struct TraceState {
    upstreams: Upstreams,
    traces: Arc<Traces>,
}

pub fn routes(upstreams: Upstreams, traces: Arc<Traces>) -> Router {
    Router::new()
        .route("/v1/orders/{order_id}/trace", get(get_trace))
        .with_state(TraceState { upstreams, traces })
}

async fn get_trace(
    State(s): State<TraceState>,
    Extension(caller): Extension<Principal>,
    Extension(bearer): Extension<Bearer>,
    Path(order_id): Path<OrderId>,
) -> Result<Json<TraceView>, Problem> {
    require_operator(&caller)?;
    let order = visible_order(&s.upstreams, &caller, &bearer, order_id.as_str()).await?;
    let Some(base) = &s.traces.query_url else {
        return Err(Problem::not_found("traces are not available here"));
    };
    // Nothing but a W3C trace id goes into the URL.
    let trace_id = order
        .trace_id
        .filter(|t| orderflow_envelope::is_trace_id(t))
        .ok_or_else(|| Problem::not_found(format!("order {} has no trace", order.order_id)))?;
    let unavailable = |e: String| {
        Problem::new(
            ProblemType::Unavailable,
            format!("Jaeger did not answer: {e}"),
        )
    };
    let mut response = s
        .traces
        .http
        .get(format!("{base}/api/traces/{trace_id}"))
        .send()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Err(Problem::not_found(format!(
            "Jaeger has no trace {trace_id} (yet, or any more)"
        )));
    }
    if !response.status().is_success() {
        return Err(unavailable(format!("it answered {}", response.status())));
    }
    let mut answer = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| unavailable(e.to_string()))?
    {
        if answer.len() + chunk.len() > MAX_ANSWER {
            return Err(unavailable(format!(
                "its answer is larger than {MAX_ANSWER} bytes"
            )));
        }
        answer.extend_from_slice(&chunk);
    }
    let body: Value = serde_json::from_slice(&answer).map_err(|e| unavailable(e.to_string()))?;
    let spans = spans_of(&body);
    if spans.is_empty() {
        return Err(Problem::not_found(format!(
            "Jaeger has no spans of trace {trace_id}"
        )));
    }
    Ok(Json(TraceView { trace_id, spans }))
}

/// The spans of Jaeger's answer (`{"data": [{"spans": [...], "processes":
/// {...}}]}`), by start time, relative to the first.
pub fn spans_of(body: &Value) -> Vec<SpanView> {
    let Some(trace) = body["data"].as_array().and_then(|d| d.first()) else {
        return Vec::new();
    };
    let service_of = |process: &Value| {
        process
            .as_str()
            .and_then(|p| trace["processes"][p]["serviceName"].as_str())
            .unwrap_or("?")
            .to_string()
    };
    let tag = |span: &Value, key: &str| -> Option<Value> {
        span["tags"]
            .as_array()?
            .iter()
            .find(|t| t["key"] == key)
            .map(|t| t["value"].clone())
    };
    let mut spans: Vec<SpanView> = trace["spans"]
        .as_array()
        .into_iter()
        .flatten()
        // A span without a start cannot be placed on the axis.
        .filter(|span| span["startTime"].as_u64().is_some_and(|t| t > 0))
        .map(|span| SpanView {
            span_id: span["spanID"].as_str().unwrap_or_default().to_string(),
            parent_span_id: span["references"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["refType"] == "CHILD_OF")
                .and_then(|r| r["spanID"].as_str())
                .map(String::from),
            service: service_of(&span["processID"]),
            name: span["operationName"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            kind: tag(span, "span.kind")
                .and_then(|k| k.as_str().map(String::from))
                .filter(|k| KINDS.contains(&k.as_str()))
                .unwrap_or_else(|| "internal".into()),
            start_us: span["startTime"].as_u64().unwrap_or_default(),
            duration_us: span["duration"].as_u64().unwrap_or_default(),
            error: tag(span, "error").is_some_and(|e| e == true || e == "true")
                || tag(span, "otel.status_code").is_some_and(|s| s == "ERROR"),
        })
        .collect();
    spans.sort_by(|a, b| a.start_us.cmp(&b.start_us).then(a.span_id.cmp(&b.span_id)));
    let first = spans.first().map_or(0, |s| s.start_us);
    let ids: std::collections::HashSet<String> = spans.iter().map(|s| s.span_id.clone()).collect();
    for span in &mut spans {
        span.start_us -= first;
        // A parent Jaeger does not have: drawn as a root.
        if span
            .parent_span_id
            .as_ref()
            .is_some_and(|p| !ids.contains(p))
        {
            span.parent_span_id = None;
        }
    }
    spans
}

/// OpenTelemetry's span kinds, as Jaeger tags them.
const KINDS: [&str; 5] = ["server", "client", "producer", "consumer", "internal"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaegers_answer_becomes_spans_by_start_relative_to_the_first() {
        let body = serde_json::json!({"data": [{
            "traceID": "0af7651916cd43dd8448eb211c80319c",
            "spans": [
                {"spanID": "b", "operationName": "orders process", "processID": "p2",
                 "references": [{"refType": "CHILD_OF", "spanID": "a"}],
                 "startTime": 1_000_250, "duration": 900,
                 "tags": [{"key": "span.kind", "value": "consumer"},
                          {"key": "otel.status_code", "value": "ERROR"}]},
                {"spanID": "a", "operationName": "POST /v1/orders", "processID": "p1",
                 "references": [], "startTime": 1_000_000, "duration": 2_000,
                 "tags": [{"key": "span.kind", "value": "server"}]},
                {"spanID": "c", "operationName": "work", "processID": "p9",
                 "references": [{"refType": "FOLLOWS_FROM", "spanID": "a"}],
                 "startTime": 1_000_300, "duration": 5, "tags": [{"key": "error", "value": true}]}
            ],
            "processes": {"p1": {"serviceName": "orderflow-gateway"},
                          "p2": {"serviceName": "orderflow-inventory"}}
        }]});
        let spans = spans_of(&body);
        assert_eq!(
            spans,
            [
                SpanView {
                    span_id: "a".into(),
                    parent_span_id: None,
                    service: "orderflow-gateway".into(),
                    name: "POST /v1/orders".into(),
                    kind: "server".into(),
                    start_us: 0,
                    duration_us: 2_000,
                    error: false,
                },
                SpanView {
                    span_id: "b".into(),
                    parent_span_id: Some("a".into()),
                    service: "orderflow-inventory".into(),
                    name: "orders process".into(),
                    kind: "consumer".into(),
                    start_us: 250,
                    duration_us: 900,
                    error: true,
                },
                SpanView {
                    span_id: "c".into(),
                    parent_span_id: None,
                    service: "?".into(),
                    name: "work".into(),
                    kind: "internal".into(),
                    start_us: 300,
                    duration_us: 5,
                    error: true,
                },
            ]
        );
    }

    #[test]
    fn odd_spans_are_placed_or_left_out_not_trusted() {
        let body = serde_json::json!({"data": [{
            "spans": [
                {"spanID": "a", "operationName": "root", "processID": "p1", "startTime": 5_000,
                 "duration": 10, "tags": [{"key": "span.kind", "value": "unspecified"}]},
                {"spanID": "b", "operationName": "orphan", "processID": "p1", "startTime": 5_004,
                 "duration": 1, "references": [{"refType": "CHILD_OF", "spanID": "gone"}]},
                {"spanID": "c", "operationName": "no start", "processID": "p1", "duration": 1},
                {"spanID": "d", "operationName": "zero start", "processID": "p1", "startTime": 0}
            ],
            "processes": {"p1": {"serviceName": "orderflow-order"}}
        }]});
        let spans = spans_of(&body);
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["root", "orphan"],
            "spans without a start are left out"
        );
        assert_eq!(spans[0].kind, "internal", "an unknown kind is internal");
        assert_eq!(
            spans[1].parent_span_id, None,
            "a parent Jaeger lacks: a root"
        );
        assert_eq!(spans[1].start_us, 4);
    }

    #[test]
    fn an_answer_without_a_trace_has_no_spans() {
        for body in [
            serde_json::json!({}),
            serde_json::json!({"data": []}),
            serde_json::json!({"data": [{"spans": "?"}]}),
            serde_json::json!("not even an object"),
        ] {
            assert!(spans_of(&body).is_empty(), "{body}");
        }
    }
}
