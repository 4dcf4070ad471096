//! What a process tells its operators: Prometheus metrics (one registry per
//! service, served on `/metrics`), and logs.

pub mod logging;
mod metrics;

pub use metrics::{http_metrics_layer, metrics_route, Metrics, SagaMetrics};

/// The label sets, for code that records into the families.
pub mod metrics_types {
    pub use crate::metrics::{
        ConsumedLabels, DependencyLabels, EventTypeLabels, HttpLabels, OutcomeLabels,
        PartitionLabels, RouteLabels, TopicEventLabels, TopicLabels,
    };
}
