//! The order service: accepts orders (order + `OrderCreated` in one
//! transaction), follows the saga's events to keep each order's status and
//! history, and announces `OrderCompleted` / `OrderCancelled`.

mod audit;
mod config;
mod cursor;
mod feeds;
mod handlers;
mod http;
pub mod placement;
pub mod rebuild;
mod store;

/// What the events mean for an order (shared with the auditor).
pub use orderflow_envelope::saga as domain;

use std::sync::Arc;

use orderflow_envelope::{EventType, Topic};
use orderflow_http::Listeners;
use orderflow_runtime::telemetry::SagaMetrics;
use orderflow_runtime::{Handler, Runtime, RuntimeError, ServiceSpec, Shutdown};
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "order",
    migrations: orderflow_runtime::sqlx::migrate!("./migrations"),
    produces: &[
        EventType::OrderCreated,
        EventType::OrderCompleted,
        EventType::OrderCancelled,
    ],
    // Not `orders`: placing an order writes everything the service keeps
    // of it, so its own events have nothing to add.
    consumes: &[Topic::Inventory, Topic::Payments, Topic::Shipments],
};

/// Binds the configured addresses and runs until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), RuntimeError> {
    let runtime = &config.runtime;
    let listeners = Listeners::bind(runtime.http_addr, runtime.ops_addr).await?;
    serve(config, listeners, shutdown).await
}

/// Runs on already-bound listeners (tests bind `127.0.0.1:0`).
pub async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: Shutdown,
) -> Result<(), RuntimeError> {
    let key_ttl_ms = config.idempotency_key_ttl_ms as i64;
    let rt = Runtime::connect(&SPEC, config.runtime).await?;
    let saga = SagaMetrics::register(rt.metrics());
    let placements = rt.group_commit(
        "placements",
        Arc::new(placement::PlacementContext {
            emitter: rt.emitter().clone(),
            key_ttl_ms,
        }),
    );
    let routes = http::routes(http::AppState {
        rt: rt.clone(),
        saga: saga.clone(),
        placements,
    })
    .merge(audit::routes(rt.clone()));
    let handler = handler(saga.clone());
    let stop_gauges = CancellationToken::new();
    tokio::spawn(measure_in_flight(
        rt.clone(),
        saga,
        key_ttl_ms,
        stop_gauges.clone(),
    ));
    // Stops the gauge task however serve ends, early exits included.
    let _stop_gauges = stop_gauges.drop_guard();
    rt.serve(listeners, routes, Some(handler), shutdown).await
}

/// The saga's reaction to the events the order service consumes.
pub fn handler(metrics: SagaMetrics) -> Arc<dyn Handler> {
    Arc::new(handlers::OrderSaga { metrics })
}

/// Keeps the in-flight gauges current (what the stuck-saga and refund
/// alerts watch), and deletes expired idempotency keys and day-old status
/// changes, a batch at a time.
async fn measure_in_flight(
    rt: Arc<Runtime>,
    saga: SagaMetrics,
    key_ttl_ms: i64,
    stop: CancellationToken,
) {
    loop {
        match store::in_flight(rt.db().reader()).await {
            Ok((n, oldest, refund_pending)) => {
                saga.in_flight.set(n);
                let age =
                    oldest.map(|t| (orderflow_runtime::now_millis() - t).max(0) as f64 / 1000.0);
                saga.oldest_in_flight_age_seconds.set(age.unwrap_or(0.0));
                saga.refund_pending.set(refund_pending);
            }
            Err(e) => tracing::debug!(error = %e, "could not measure sagas in flight"),
        }
        let expired = orderflow_runtime::now_millis() - key_ttl_ms;
        if let Err(e) = store::prune_idempotency_keys(rt.db(), expired, 1_000).await {
            tracing::debug!(error = %e, "could not delete expired idempotency keys");
        }
        // Batches until none is full: a day's changes at any rate go.
        let old = orderflow_runtime::now_millis() - feeds::CHANGES_KEPT_MS;
        for _ in 0..100 {
            match feeds::prune_changes(rt.db(), old, 1_000).await {
                Ok(1_000) => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "could not delete old status changes");
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            _ = stop.cancelled() => return,
        }
    }
}
