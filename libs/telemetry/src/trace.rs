//! Tracing: `tracing` spans exported over OTLP through `tracing-opentelemetry`,
//! configured by the standard `OTEL_*` variables. Export is on only when an
//! OTLP endpoint is configured; otherwise no OpenTelemetry layer is installed
//! and spans cost what plain `tracing` spans cost.
//!
//! Context travels as W3C `traceparent`/`tracestate`: in HTTP headers, and in
//! the Kafka headers of every event, so one order's saga is one trace.
//!
//! A hop over Kafka reads as the messaging conventions of OpenTelemetry
//! draw it: the span that writes an event gets a `{topic} create` producer
//! span of a microsecond at that instant — the event's creation context, the
//! one its headers carry — and both the relay's `{topic} send` span and every
//! consumer's `{topic} process` span are its children. Those children start
//! later and outlast it, as asynchronous work does; a parent that short
//! is what lets Jaeger's clock-skew adjuster accept them (it only checks
//! that a child longer than its parent does not start before it), where a
//! child that merely ends after its parent is taken for clock skew and
//! flagged on every hop.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Span as _, SpanKind, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Flushes spans when dropped: keep it alive for the life of the process.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("could not flush traces: {e}");
            }
        }
    }
}

fn export_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()))
        && std::env::var("OTEL_TRACES_EXPORTER").map_or(true, |e| e != "none")
}

/// Logs (`RUST_LOG` levels; `ORDERFLOW_LOG_FORMAT=json` for JSON lines with
/// the current span's trace id, span id and order id) and, when an OTLP
/// endpoint is configured, trace export. `service.name` is `OTEL_SERVICE_NAME`
/// or, by default, the binary's name.
pub fn init(binary: &str) -> Telemetry {
    let filter = || {
        EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,sqlx=warn"))
    };
    let json = std::env::var("ORDERFLOW_LOG_FORMAT").is_ok_and(|f| f == "json");
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_target(false)
            .with_filter(filter())
            .boxed()
    } else {
        // Colours only for a person at a terminal: escape codes in a pipe,
        // a file or a Pod's log are noise, and cost every span's fields a
        // styled copy.
        tracing_subscriber::fmt::layer()
            .fmt_fields(crate::log_fields::LogFields)
            .compact()
            .with_ansi(std::io::stdout().is_terminal())
            .with_target(false)
            .with_filter(filter())
            .boxed()
    };
    let registry = tracing_subscriber::registry().with(fmt);

    if !export_configured() {
        // A second init (several services in one test process) keeps the first.
        let _ = registry.try_init();
        return Telemetry { provider: None };
    }
    let service_name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| binary.to_string());
    let provider = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service_name).build())
            .build(),
        Err(e) => {
            eprintln!("{binary}: trace export is off, the OTLP exporter could not be built: {e}");
            let _ = registry.try_init();
            return Telemetry { provider: None };
        }
    };
    let tracer = provider.tracer("orderflow");
    let _ = TRACER.set(tracer.clone());
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(filter());
    let _ = registry.with(otel).try_init();
    Telemetry {
        provider: Some(provider),
    }
}

/// The tracer of the first [`init`] that exported, for spans made without
/// `tracing` (a creation span's timestamps are set, not measured).
static TRACER: OnceLock<opentelemetry_sdk::trace::Tracer> = OnceLock::new();

/// The creation context of an event written now by the current span, for its
/// headers: a `{topic} create` producer span of one microsecond (Jaeger
/// takes a span of zero length for a broken one), child of the current span.
/// `None` when the current span is not traced.
pub fn message_created(
    topic: &str,
    message_id: &str,
    order_id: &str,
) -> Option<(String, Option<String>)> {
    let parent = tracing::Span::current().context();
    if !parent.span().span_context().is_valid() {
        return None;
    }
    // A traced span means an exporting init, which set the tracer.
    let tracer = TRACER.get()?;
    let now = SystemTime::now();
    let mut span = tracer
        .span_builder(format!("{topic} create"))
        .with_kind(SpanKind::Producer)
        .with_start_time(now)
        .with_attributes([
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.type", "create"),
            KeyValue::new("messaging.operation.name", "create"),
            KeyValue::new("messaging.destination.name", topic.to_string()),
            KeyValue::new("messaging.message.id", message_id.to_string()),
            KeyValue::new("order.id", order_id.to_string()),
        ])
        .start_with_context(tracer, &parent);
    let created = span.span_context().clone();
    span.end_with_timestamp(now + Duration::from_micros(1));
    inject(&Context::new().with_remote_span_context(created))
}

/// The W3C trace context of the current span, if it has one:
/// `(traceparent, tracestate)`.
pub fn current_context() -> Option<(String, Option<String>)> {
    context_of(&tracing::Span::current())
}

/// The W3C trace context of `span`, if it has one.
pub fn context_of(span: &tracing::Span) -> Option<(String, Option<String>)> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    inject(&cx)
}

/// `(traceparent, tracestate)` of `cx`.
fn inject(cx: &Context) -> Option<(String, Option<String>)> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    let traceparent = carrier.remove("traceparent")?;
    Some((
        traceparent,
        carrier.remove("tracestate").filter(|s| !s.is_empty()),
    ))
}

/// Makes `span` a child of the remote span named by `traceparent`.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let mut carrier = HashMap::new();
    carrier.insert("traceparent".to_string(), traceparent.to_string());
    if let Some(state) = tracestate {
        carrier.insert("tracestate".to_string(), state.to_string());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Records the span's own trace and span ids in its `trace_id` and `span_id`
/// fields, so JSON log lines inside it carry them.
pub fn record_ids(span: &tracing::Span) {
    let sc = span.context().span().span_context().clone();
    if sc.is_valid() {
        span.record("trace_id", sc.trace_id().to_string());
        span.record("span_id", sc.span_id().to_string());
    }
}
