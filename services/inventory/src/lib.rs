//! The inventory service: owns the catalogue (stock and unit prices) and
//! reserves, releases and ships stock for the saga.

mod config;
pub mod domain;
mod handlers;
mod http;
mod store;

use std::sync::Arc;

use orderflow_envelope::{EventType, Topic};
use orderflow_runtime::{Handler, Runtime, RuntimeError, ServiceSpec, Shutdown};
use tokio::net::TcpListener;

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

/// Binds the configured address and runs until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), RuntimeError> {
    let listener = TcpListener::bind(config.runtime.http_addr).await?;
    serve(config, listener, shutdown).await
}

/// Runs on an already-bound listener (tests bind `127.0.0.1:0`).
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RuntimeError> {
    let rt = Runtime::connect(&SPEC, config.runtime).await?;
    let routes = http::routes(rt.clone());
    rt.serve(listener, routes, Some(handler()), shutdown).await
}

/// Reservations and their releases, from the events inventory consumes.
pub fn handler() -> Arc<dyn Handler> {
    Arc::new(handlers::InventoryHandler)
}
pub use store::{set_stock, stock};
