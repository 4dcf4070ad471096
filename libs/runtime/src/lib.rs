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

/// What a process launching a service sets in its environment, unless
/// already set: how the two allocators in a service hand freed memory back.
/// Both read these once, before `main`, so the launcher sets them (`orderflow
/// dev` for its services, the images' Dockerfile for the chart; a test
/// checks the Dockerfile says the same).
///
/// - `MIMALLOC_PURGE_DELAY=0`: mimalloc returns a freed page to the kernel
///   at once. Its default (1 s) only takes effect when the thread allocates
///   again, so a service kept what a burst had touched for as long as it
///   idled: about 60 MB across the stack after 10,000 orders, for no CPU
///   gain measured.
/// - `MALLOC_ARENA_MAX=1`: what librdkafka and SQLite allocate goes through
///   glibc's malloc, which gave each thread that allocated an arena of its
///   own that it never shrinks (2–5 MB each).
pub const ALLOCATOR_ENV: [(&str, &str); 2] =
    [("MIMALLOC_PURGE_DELAY", "0"), ("MALLOC_ARENA_MAX", "1")];

/// Re-exported so services name the same metric types the runtime uses.
pub use orderflow_telemetry as telemetry;
/// Re-exported so services name the same sqlx types the runtime uses.
pub use sqlx;

/// Milliseconds since the Unix epoch, the unit every table stores times in.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    /// The images launch the services with the environment the runtime names.
    #[test]
    fn the_images_set_the_allocator_environment_the_runtime_names() {
        let dockerfile = include_str!("../../../docker/Dockerfile");
        let set: Vec<&str> = dockerfile
            .lines()
            .filter_map(|line| line.strip_prefix("ENV "))
            .flat_map(str::split_whitespace)
            .collect();
        for (key, value) in super::ALLOCATOR_ENV {
            let pair = format!("{key}={value}");
            assert!(
                set.contains(&pair.as_str()),
                "docker/Dockerfile does not set {pair}"
            );
        }
    }
}
