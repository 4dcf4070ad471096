//! The runtime every orderflow service runs on. A service supplies its domain
//! handler, its migrations and its HTTP routes; this crate supplies the rest:
//! configuration, the database, the transactional outbox and its relay, the
//! idempotent inbox, the Kafka consumer loop with offset management, retries and
//! dead letters, topic provisioning, health endpoints and graceful shutdown.

pub mod config;
mod consumer;
mod db;
mod dead_letter;
mod error;
mod failure;
pub mod fault;
pub mod group_commit;
mod handler;
mod housekeeping;
mod inbox;
pub mod log_reader;
mod log_source;
mod main_support;
mod outbox;
mod producer;
pub mod resilience;
pub mod secrets;
mod service;
pub mod shutdown;
#[cfg(feature = "simulation")]
pub mod simulation;
pub mod sql;
pub mod topics;

pub use config::{load_or_exit, RuntimeConfig, ServiceConfig, EMBEDDED_BROKER_FETCH_WAIT_MS};
pub use consumer::parking::parked_orders;
pub use consumer::retry::{tier_topic, RETRY_HEADER_PREFIX};
pub use consumer::PREFETCH;
pub use db::{in_list, values_list, Backend, Database};
pub use dead_letter::DEAD_LETTER_HEADER_PREFIX;
pub use error::RuntimeError;
pub use handler::{EventSource, ExternalCall, Handler, HandlerCtx, HandlerError};
pub use log_source::LogSource;
pub use main_support::{main, Shutdown};
pub use outbox::OutboxRelay;
pub use producer::{
    client_config, is_purged, Delivery, Producer, Retired, STALL_LIMIT as PRODUCER_STALL_LIMIT,
};
pub use secrets::redact;
pub use service::{Emitter, Runtime, ServiceSpec};

/// Every binary that links the runtime (the services, the gateway, the CLI)
/// allocates with mimalloc: see the workspace's Cargo.toml for why.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Re-exported so services name the same metric types the runtime uses.
pub use orderflow_telemetry as telemetry;
/// Re-exported so services name the same sqlx types the runtime uses.
pub use sqlx;

/// Milliseconds since the Unix epoch, the unit every table stores times in.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
