//! What a process tells its operators: Prometheus metrics (one registry per
//! service, served on `/metrics`), traces (OTLP) and logs.

mod log_fields;
mod metrics;
pub mod trace;

pub use metrics::{metrics_route, observe_http, Metrics, SagaMetrics};

/// The label sets, for code that records into the families.
pub mod metrics_types {
    pub use crate::metrics::{
        BatchLabels, CeTypeLabels, ConsumedLabels, DependencyLabels, EventTypeLabels, HttpLabels,
        OutcomeLabels, PartitionLabels, RebalanceLabels, RetryLabels, RouteLabels,
        TopicEventLabels, TopicLabels,
    };
}
