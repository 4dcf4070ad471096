//! Traces as Jaeger shows them, read through its query API (`/api/traces`,
//! the JSON the Jaeger UI reads, after Jaeger's adjusters have run).

use std::collections::BTreeMap;

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
