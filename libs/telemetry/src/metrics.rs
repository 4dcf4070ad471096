//! The metrics every service exports (names and labels in
//! `deploy/observability/README.md`). Label sets are bounded: topics, event
//! types, outcomes, routes — never order or customer ids.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Metric, Registry};
use tracing::Instrument;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumedLabels {
    pub topic: String,
    pub event_type: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicEventLabels {
    pub topic: String,
    pub event_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventTypeLabels {
    pub event_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DependencyLabels {
    pub dependency: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BatchLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RebalanceLabels {
    /// `assigned`, `revoked` or `lost` (taken away without a clean revocation).
    pub event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CeTypeLabels {
    pub ce_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetryLabels {
    pub event_type: String,
    pub tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

type Seconds = Gauge<f64, AtomicU64>;

/// One service's metrics. Cloning shares them.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registered>>,
    pub events_consumed: Family<ConsumedLabels, Counter>,
    pub events_produced: Family<TopicEventLabels, Counter>,
    pub handler_duration: Family<EventTypeLabels, Histogram, fn() -> Histogram>,
    pub handler_retries: Family<RetryLabels, Counter>,
    pub deadlines_passed: Family<EventTypeLabels, Counter>,
    pub dead_letters: Family<TopicLabels, Counter>,
    pub dead_letters_unwritten: Counter,
    pub unknown_event_types: Family<CeTypeLabels, Counter>,
    pub rebalances: Family<RebalanceLabels, Counter>,
    pub consumer_in_flight: Gauge,
    pub consumer_buffered: Gauge,
    pub keys_waiting: Gauge,
    pub external_calls_in_flight: Family<DependencyLabels, Gauge>,
    pub db_batch_items: Family<BatchLabels, Histogram, fn() -> Histogram>,
    pub db_batch_fallbacks: Family<BatchLabels, Counter>,
    pub outbox_parked: Gauge,
    pub outbox_parked_total: Counter,
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    pub outbox_backlog: Gauge,
    pub outbox_oldest_age_seconds: Seconds,
    pub circuit_breaker_state: Family<DependencyLabels, Gauge>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

/// A registry that remembers the families it was given: one with no series
/// yet is still declared (`# HELP`, `# TYPE`) in every scrape, as OpenMetrics
/// allows, so a scrape tells a family that is empty from one that is not
/// there (renamed, or never registered).
#[derive(Default)]
struct Registered {
    registry: Registry,
    families: Vec<(String, String, MetricType)>,
}

impl Registered {
    fn register(&mut self, name: &str, help: &str, metric: impl Metric) {
        self.families
            .push((name.to_string(), help.to_string(), metric.metric_type()));
        self.registry.register(name, help, metric);
    }

    /// The OpenMetrics exposition, every family declared.
    fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        let mut empty = String::new();
        for (name, help, kind) in &self.families {
            if !out.contains(&format!("\n# TYPE {name} "))
                && !out.starts_with(&format!("# TYPE {name} "))
            {
                empty.push_str(&format!(
                    "# HELP {name} {help}.\n# TYPE {name} {}\n",
                    kind.as_str()
                ));
            }
        }
        if let Some(eof) = out.rfind("# EOF") {
            out.insert_str(eof, &empty);
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registered::default();
        let m = Self {
            registry: Arc::new(Mutex::new(Registered::default())),
            events_consumed: Family::default(),
            events_produced: Family::default(),
            handler_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 14))
            }),
            handler_retries: Family::default(),
            deadlines_passed: Family::default(),
            dead_letters: Family::default(),
            dead_letters_unwritten: Counter::default(),
            unknown_event_types: Family::default(),
            rebalances: Family::default(),
            consumer_in_flight: Gauge::default(),
            consumer_buffered: Gauge::default(),
            keys_waiting: Gauge::default(),
            external_calls_in_flight: Family::default(),
            db_batch_items: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(1.0, 2.0, 10))
            }),
            db_batch_fallbacks: Family::default(),
            outbox_parked: Gauge::default(),
            outbox_parked_total: Counter::default(),
            consumer_lag: Family::default(),
            outbox_backlog: Gauge::default(),
            outbox_oldest_age_seconds: Seconds::default(),
            circuit_breaker_state: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
        };
        let r = &mut registry;
        r.register("orderflow_events_consumed", "Events consumed, by outcome: handled, duplicate (inbox), skipped (not for this service), dead_lettered", m.events_consumed.clone());
        r.register(
            "orderflow_events_produced",
            "Events the broker acknowledged",
            m.events_produced.clone(),
        );
        r.register(
            "orderflow_handler_duration_seconds",
            "Time to handle one event: decode, transaction, commit",
            m.handler_duration.clone(),
        );
        r.register(
            "orderflow_handler_retries",
            "Events that failed transiently and were copied to a retry tier topic, by event type and tier",
            m.handler_retries.clone(),
        );
        r.register(
            "orderflow_step_deadlines_passed",
            "Events whose step kept failing until its deadline and was failed in domain terms or dead-lettered",
            m.deadlines_passed.clone(),
        );
        r.register(
            "orderflow_dead_letters_unwritten",
            "Dead letters the broker refused for good (too large, topic missing, not authorized), kept in the service database instead",
            m.dead_letters_unwritten.clone(),
        );
        r.register(
            "orderflow_unknown_event_types",
            "Events of a type this build does not know, skipped (a producer upgraded before its consumers)",
            m.unknown_event_types.clone(),
        );
        r.register(
            "orderflow_consumer_rebalances",
            "Partitions assigned to, revoked from or lost by this consumer, one count per rebalance",
            m.rebalances.clone(),
        );
        r.register(
            "orderflow_consumer_in_flight",
            "Consumed messages being handled now",
            m.consumer_in_flight.clone(),
        );
        r.register(
            "orderflow_consumer_buffered",
            "Consumed messages waiting behind an earlier event of their order or for a free slot",
            m.consumer_buffered.clone(),
        );
        r.register(
            "orderflow_keys_waiting_for_retry",
            "Orders whose events wait behind an event in retry",
            m.keys_waiting.clone(),
        );
        r.register(
            "orderflow_external_calls_in_flight",
            "Calls to a dependency outside orderflow under way",
            m.external_calls_in_flight.clone(),
        );
        r.register(
            "orderflow_db_batch_items",
            "Items applied per database transaction, by kind of work",
            m.db_batch_items.clone(),
        );
        r.register(
            "orderflow_db_batch_fallbacks",
            "Batches rolled back and applied one item at a time",
            m.db_batch_fallbacks.clone(),
        );
        r.register(
            "orderflow_outbox_parked_rows",
            "Outbox rows parked after repeated publish failures, waiting for an operator",
            m.outbox_parked.clone(),
        );
        r.register(
            "orderflow_outbox_parked",
            "Outbox rows parked after repeated publish failures",
            m.outbox_parked_total.clone(),
        );
        r.register(
            "orderflow_dead_letters",
            "Events parked on the dead-letter topic, by source topic",
            m.dead_letters.clone(),
        );
        r.register(
            "orderflow_consumer_lag",
            "Messages behind the high watermark, per assigned partition",
            m.consumer_lag.clone(),
        );
        r.register(
            "orderflow_outbox_backlog",
            "Outbox rows not yet published",
            m.outbox_backlog.clone(),
        );
        r.register(
            "orderflow_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox row (0 when empty)",
            m.outbox_oldest_age_seconds.clone(),
        );
        r.register(
            "orderflow_circuit_breaker_state",
            "Circuit breaker per dependency: 0 closed, 1 half-open, 2 open",
            m.circuit_breaker_state.clone(),
        );
        r.register(
            "orderflow_http_requests",
            "HTTP requests, by route and status",
            m.http_requests.clone(),
        );
        r.register(
            "orderflow_http_request_duration_seconds",
            "HTTP request duration, by route",
            m.http_duration.clone(),
        );
        *m.registry.lock().expect("registry lock") = registry;
        m
    }

    /// Registers a service's own metric beside the shared ones.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry
            .lock()
            .expect("registry lock")
            .register(name, help, metric);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        self.registry.lock().expect("registry lock").encode()
    }
}

/// The order service's saga metrics.
#[derive(Clone)]
pub struct SagaMetrics {
    pub orders_placed: Counter,
    pub outcomes: Family<OutcomeLabels, Counter>,
    pub duration: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
    pub in_flight: Gauge,
    pub oldest_in_flight_age_seconds: Seconds,
    pub refund_pending: Gauge,
}

impl SagaMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let m = Self {
            orders_placed: Counter::default(),
            outcomes: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 13))
            }),
            in_flight: Gauge::default(),
            oldest_in_flight_age_seconds: Seconds::default(),
            refund_pending: Gauge::default(),
        };
        metrics.register(
            "orderflow_orders_placed",
            "Orders accepted",
            m.orders_placed.clone(),
        );
        metrics.register(
            "orderflow_saga_outcomes",
            "Orders that reached a terminal status, by outcome",
            m.outcomes.clone(),
        );
        metrics.register(
            "orderflow_saga_duration_seconds",
            "Placed to terminal, by outcome",
            m.duration.clone(),
        );
        metrics.register(
            "orderflow_sagas_in_flight",
            "Orders not yet terminal",
            m.in_flight.clone(),
        );
        metrics.register(
            "orderflow_saga_oldest_in_flight_age_seconds",
            "Age of the oldest order not yet terminal (0 when none)",
            m.oldest_in_flight_age_seconds.clone(),
        );
        metrics.register(
            "orderflow_orders_refund_pending",
            "Orders whose refund could not be made: the customer is charged, an operator must act",
            m.refund_pending.clone(),
        );
        m
    }
}

/// What prometheus-client writes: OpenMetrics 1.0 text (families named
/// without `_total`, `# EOF` at the end), served as such so scrapers parse
/// it with the OpenMetrics parser and keep every family's TYPE and HELP.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`, in OpenMetrics ([`CONTENT_TYPE`]).
pub fn metrics_route(metrics: Metrics) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Metrics>| async move {
                ([(header::CONTENT_TYPE, CONTENT_TYPE)], m.encode())
            }),
        )
        .with_state(metrics)
}

/// Observes every request: a server span (child of the caller's
/// `traceparent`, with `order.id` when the route names an order), and the
/// request count and duration by route template (not path, so ids do not
/// become labels).
pub async fn observe_http(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let span = tracing::info_span!(
        "HTTP request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        order.id = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    let (traceparent, tracestate) = {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        (header("traceparent"), header("tracestate"))
    };
    crate::trace::set_parent(&span, traceparent.as_deref(), tracestate.as_deref());
    crate::trace::record_ids(&span);
    if let Some(order_id) = order_id_in(&route, request.uri().path()) {
        span.record("order.id", order_id.to_string());
    }
    let response = next
        .run(request)
        .instrument(span.clone())
        .await
        .into_response();
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    metrics
        .http_duration
        .get_or_create(&RouteLabels { method, route })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The order id in a path whose route template has `{order_id}`.
fn order_id_in<'a>(route: &str, path: &'a str) -> Option<&'a str> {
    let position = route
        .split('/')
        .position(|segment| segment == "{order_id}")?;
    path.split('/').nth(position)
}
