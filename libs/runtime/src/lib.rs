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
pub use log_source::{LogSource, Logged};
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
/// already set. mimalloc reads it once, before `main`, and setting it from
/// the code would be a C call (the workspace forbids `unsafe`), so the
/// launcher sets it: `orderflow dev` and the test kit for the processes they
/// start ([`allocator_env`]), the images' Dockerfile for the chart (a test
/// keeps the Dockerfile and this list the same).
///
/// `MIMALLOC_PURGE_DELAY=0`: mimalloc returns a freed page to the kernel at
/// once. Its default (a second) takes effect only when the same thread
/// allocates again, so an idle service kept what a burst had touched:
/// 60–75 MB across the stack after 10,000 orders, at no CPU cost three A/B
/// pairs could see. glibc's `MALLOC_ARENA_MAX=1` (for librdkafka's and
/// SQLite's allocations) saved another ~25 MB but is not set: the raw relay
/// chain, all librdkafka, spent a quarter more CPU per message with it.
pub const ALLOCATOR_ENV: [(&str, &str); 1] = [("MIMALLOC_PURGE_DELAY", "0")];

/// The pairs of [`ALLOCATOR_ENV`] this process's own environment does not
/// set: what a launcher adds to a service's command.
pub fn allocator_env() -> Vec<(&'static str, &'static str)> {
    ALLOCATOR_ENV
        .into_iter()
        .filter(|(key, _)| std::env::var_os(key).is_none())
        .collect()
}

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
    /// A launcher adds each allocator setting exactly when its own
    /// environment does not have it (an operator's value is passed on).
    #[test]
    fn a_launcher_adds_the_allocator_settings_its_environment_lacks() {
        let added = super::allocator_env();
        for pair in super::ALLOCATOR_ENV {
            assert_eq!(
                added.contains(&pair),
                std::env::var_os(pair.0).is_none(),
                "{}",
                pair.0
            );
        }
    }

    /// The images launch the services with the environment the runtime
    /// names: the `ENV` of the Dockerfile's `runtime` stage, the last value
    /// of each variable.
    #[test]
    fn the_images_set_the_allocator_environment_the_runtime_names() {
        let dockerfile = include_str!("../../../docker/Dockerfile").replace("\\\n", " ");
        let runtime_stage = dockerfile
            .lines()
            .skip_while(|line| !(line.starts_with("FROM ") && line.ends_with(" AS runtime")))
            .skip(1)
            .take_while(|line| !line.starts_with("FROM "));
        let mut set = std::collections::HashMap::new();
        for line in runtime_stage {
            let Some(pairs) = line.trim_start().strip_prefix("ENV ") else {
                continue;
            };
            for pair in pairs.split_whitespace() {
                if let Some((key, value)) = pair.split_once('=') {
                    set.insert(key.to_string(), value.trim_matches('"').to_string());
                }
            }
        }
        for (key, value) in super::ALLOCATOR_ENV {
            assert_eq!(
                set.get(key).map(String::as_str),
                Some(value),
                "the runtime stage of docker/Dockerfile should set {key}={value}"
            );
        }
    }
}
