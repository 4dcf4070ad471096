//! The shipping service: books a shipment with the carrier for every paid order.

mod audit;
mod config;
pub mod domain;
mod handlers;
mod store;

use std::sync::Arc;

use orderflow_envelope::{EventType, Topic};
use orderflow_http::Listeners;
use orderflow_runtime::{Handler, Runtime, RuntimeError, ServiceSpec, Shutdown};

pub use config::Config;

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "shipping",
    migrations: orderflow_runtime::sqlx::migrate!("./migrations"),
    produces: &[EventType::ShipmentCreated, EventType::ShipmentFailed],
    consumes: &[Topic::Payments],
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
    let carrier = domain::Carrier {
        name: config.carrier,
        unserved_countries: config.unserved_countries,
    };
    let rt = Runtime::connect(&SPEC, config.runtime).await?;
    let handler = handler(carrier);
    let routes = audit::routes(rt.clone());
    rt.serve(listeners, routes, Some(handler), shutdown).await
}

/// Shipments with `carrier`, for paid orders.
pub fn handler(carrier: domain::Carrier) -> Arc<dyn Handler> {
    Arc::new(handlers::ShippingHandler { carrier })
}
