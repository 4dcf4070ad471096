//! The inventory service: owns the catalogue (stock and unit prices) and
//! reserves, releases and ships stock for the saga.

mod audit;
mod config;
pub mod domain;
mod handlers;
mod http;
mod store;

use std::sync::Arc;

use orderflow_envelope::{EventType, Topic};
use orderflow_http::Listeners;
use orderflow_runtime::{Handler, Runtime, RuntimeError, ServiceSpec, Shutdown};

pub use config::Config;

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "inventory",
    migrations: orderflow_runtime::sqlx::migrate!("./migrations"),
    produces: &[
        EventType::InventoryReserved,
        EventType::InventoryUnavailable,
        EventType::InventoryReleased,
    ],
    consumes: &[Topic::Orders, Topic::Payments, Topic::Shipments],
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
    let rt = Runtime::connect(&SPEC, config.runtime).await?;
    let routes = http::routes(rt.clone()).merge(audit::routes(rt.clone()));
    rt.serve(listeners, routes, Some(handler()), shutdown).await
}

/// Reservations and their releases, from the events inventory consumes.
pub fn handler() -> Arc<dyn Handler> {
    Arc::new(handlers::InventoryHandler)
}
pub use store::{set_stock, stock};
