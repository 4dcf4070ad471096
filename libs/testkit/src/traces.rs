//! Traces as Jaeger shows them, read through its query API (`/api/traces`,
//! the JSON the Jaeger UI reads, after Jaeger's adjusters have run).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// One span of a trace, with Jaeger's view of it.
#[derive(Debug, Clone)]
pub struct TraceSpan {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    /// The span it is a child of (its `CHILD_OF` reference); empty for a root.
    pub parent_span_id: String,
    /// Every reference: `(refType, spanID)`.
    pub references: Vec<(String, String)>,
    pub name: String,
    /// `server`, `client`, `producer`, `consumer` or `internal`.
    pub kind: String,
    pub attributes: BTreeMap<String, String>,
    /// What Jaeger found wrong with the span (clock skew, a missing parent…).
    pub warnings: Vec<String>,
    pub start_us: u64,
    pub duration_us: u64,
}

/// Every process's `service.name`: a whole saga's trace has them all.
pub const SERVICES: [&str; 6] = [
    "orderflow-gateway",
    "orderflow-order",
    "orderflow-inventory",
    "orderflow-payment",
    "orderflow-shipping",
    "orderflow-notification",
];

/// Jaeger's query API at `url`.
pub struct TraceQuery {
    url: String,
    http: reqwest::Client,
}

impl TraceQuery {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// The traces in which a span of `service` carries `order.id = order_id`.
    pub async fn traces_of_order(
        &self,
        service: &str,
        order_id: &str,
    ) -> Result<Vec<Vec<TraceSpan>>> {
        let tags = serde_json::json!({ "order.id": order_id }).to_string();
        let body: Value = self
            .http
            .get(format!("{}/api/traces", self.url))
            .query(&[("service", service), ("tags", &tags), ("limit", "100")])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(spans)
            .collect()
    }

    /// The trace of `order_id` once every one of `services` has a span in it and
    /// no more spans arrive. Fails if the order's spans are in several traces.
    pub async fn trace_of_order(
        &self,
        order_id: &str,
        services: &[&str],
    ) -> Result<Vec<TraceSpan>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last_count = None;
        loop {
            // The spans that act on the order — every hop over Kafka and the
            // request that created it — are in one trace. Reading the order
            // (`GET /v1/orders/{id}`) is a request of its own, with its own trace.
            let mut trace_ids = BTreeSet::new();
            for service in services {
                for trace in self.traces_of_order(service, order_id).await? {
                    let acts = trace.iter().any(|s| {
                        s.attributes.get("order.id").map(String::as_str) == Some(order_id)
                            && (s.kind == "producer"
                                || s.kind == "consumer"
                                || s.name == "POST /v1/orders")
                    });
                    if acts {
                        trace_ids.insert(trace[0].trace_id.clone());
                    }
                }
            }
            if trace_ids.len() > 1 {
                bail!(
                    "order {order_id} is spread over {} traces: {trace_ids:?}",
                    trace_ids.len()
                );
            }
            if let Some(trace_id) = trace_ids.first() {
                let trace = self.trace(trace_id).await?;
                let present: BTreeSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
                let complete = services.iter().all(|s| present.contains(s));
                if complete && last_count == Some(trace.len()) {
                    return Ok(trace);
                }
                last_count = complete.then_some(trace.len());
                if Instant::now() > deadline {
                    bail!("trace of {order_id} has services {present:?}, expected {services:?}");
                }
            } else if Instant::now() > deadline {
                bail!("Jaeger has no span naming order {order_id}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Every span of the trace `trace_id`.
    pub async fn trace(&self, trace_id: &str) -> Result<Vec<TraceSpan>> {
        let body: Value = self
            .http
            .get(format!("{}/api/traces/{trace_id}", self.url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        spans(&body["data"][0])
    }
}

fn spans(trace: &Value) -> Result<Vec<TraceSpan>> {
    let Some(spans) = trace["spans"].as_array() else {
        bail!("a trace without spans: {trace}");
    };
    spans.iter().map(|s| span(trace, s)).collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn span(trace: &Value, s: &Value) -> Result<TraceSpan> {
    let process = s["processID"]
        .as_str()
        .context("a span without processID")?;
    let mut attributes: BTreeMap<String, String> = s["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| (text(&t["key"]), text(&t["value"])))
        .collect();
    let kind = attributes
        .remove("span.kind")
        .unwrap_or_else(|| "internal".into());
    let references: Vec<(String, String)> = s["references"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (text(&r["refType"]), text(&r["spanID"])))
        .collect();
    Ok(TraceSpan {
        service: text(&trace["processes"][process]["serviceName"]),
        trace_id: text(&s["traceID"]),
        span_id: text(&s["spanID"]),
        parent_span_id: references
            .iter()
            .find(|(t, _)| t == "CHILD_OF")
            .map(|(_, id)| id.clone())
            .unwrap_or_default(),
        references,
        name: text(&s["operationName"]),
        kind,
        attributes,
        warnings: s["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect(),
        start_us: s["startTime"].as_u64().unwrap_or(0),
        duration_us: s["duration"].as_u64().unwrap_or(0),
    })
}
