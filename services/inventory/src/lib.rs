//! The inventory service: owns the catalogue (stock and unit prices) and
//! reserves, releases and ships stock for the saga.

mod config;
pub mod domain;
mod handlers;
mod http;
mod store;

use std::sync::Arc;

use orderflow_envelope::{EventType, Topic};
use orderflow_runtime::sqlx::migrate::Migrator;
use orderflow_runtime::{ConsumerSpec, Runtime, RuntimeError, Shutdown};
use tokio::net::TcpListener;

pub use config::Config;

pub const SERVICE: &str = "inventory";

/// The topics this service consumes.
pub const CONSUMES: &[Topic] = &[Topic::Orders, Topic::Payments, Topic::Shipments];

static MIGRATIONS: Migrator = orderflow_runtime::sqlx::migrate!("./migrations");

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
    let produces = [
        EventType::InventoryReserved,
        EventType::InventoryUnavailable,
        EventType::InventoryReleased,
    ];
    let rt = Runtime::connect(SERVICE, config.runtime, &MIGRATIONS, &produces).await?;
    let consumer = ConsumerSpec::for_service(SERVICE, CONSUMES);
    rt.clone()
        .serve(
            listener,
            http::routes(rt),
            Some((consumer, Arc::new(handlers::InventoryHandler))),
            shutdown,
        )
        .await
}
