//! The shipping service: books a shipment with the carrier for every paid order.

mod config;
pub mod domain;
mod handlers;
mod store;

use std::sync::Arc;

use axum::Router;
use orderflow_envelope::{EventType, Topic};
use orderflow_runtime::{Handler, Runtime, RuntimeError, ServiceSpec, Shutdown};
use tokio::net::TcpListener;

pub use config::Config;

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "shipping",
    migrations: orderflow_runtime::sqlx::migrate!("./migrations"),
    produces: &[EventType::ShipmentCreated, EventType::ShipmentFailed],
    consumes: &[Topic::Payments],
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
    let carrier = domain::Carrier {
        name: config.carrier,
        unserved_countries: config.unserved_countries,
    };
    let rt = Runtime::connect(&SPEC, config.runtime).await?;
    let handler = handler(carrier);
    rt.serve(listener, Router::new(), Some(handler), shutdown)
        .await
}

/// Shipments with `carrier`, for paid orders.
pub fn handler(carrier: domain::Carrier) -> Arc<dyn Handler> {
    Arc::new(handlers::ShippingHandler { carrier })
}
