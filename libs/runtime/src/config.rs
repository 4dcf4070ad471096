//! Typed configuration, loaded in layers: built-in defaults, then an optional
//! TOML file named by `ORDERFLOW_CONFIG`, then `ORDERFLOW_*` environment
//! variables (`ORDERFLOW_KAFKA_BOOTSTRAP_SERVERS`, `ORDERFLOW_DATABASE_URL`, …).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The fetch wait for the embedded broker (librdkafka's mock cluster, which
/// `orderflow dev` and the tests run). It holds an empty fetch for the whole
/// wait even when data arrives meanwhile, so there the wait is latency added
/// to every hop of the saga, and its inverse is the idle stack's fetches a
/// second. Measured on the dev stack (idle CPU, placed→terminal p50 at 20
/// orders/s): 10 ms 13 % of a core, 29 ms; 25 ms 7 %, 60 ms; 50 ms 6 %,
/// 118 ms; 100 ms 5 %, 150 ms. 25 halves the idle cost for a delay no one
/// watching the console sees.
pub const EMBEDDED_BROKER_FETCH_WAIT_MS: u32 = 25;

/// What every service needs, flattened into each service's own config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    /// Where the service's HTTP API listens (every call needs a token).
    pub http_addr: SocketAddr,
    /// Where its health endpoints and metrics listen, apart from the API
    /// so that probes and Prometheus are admitted to this port alone.
    pub ops_addr: SocketAddr,
    /// How the API checks every call's bearer token, as the gateway does
    /// (`ORDERFLOW_AUTH_JWKS_URL`, `_ISSUER`, `_AUDIENCE`, `_OPERATOR_ROLE`).
    #[serde(flatten)]
    pub auth: orderflow_auth::AuthConfig,
    /// `sqlite://path/to/file.db` or `postgres://user:pass@host/db`.
    pub database_url: String,
    /// SQLite only: sync every commit to disk (`synchronous=FULL`), so that a
    /// committed transaction whose offset Kafka holds survives a power cut.
    /// false (`NORMAL`) survives a crash of the process but not of the machine.
    pub sqlite_durable: bool,
    /// PostgreSQL connections per process. Every partition being processed
    /// holds one for its transaction, and so do HTTP requests and the relay.
    /// (SQLite always uses one: it has a single writer anyway.)
    pub database_max_connections: u32,
    /// Base URL of a Confluent-compatible schema registry.
    pub schema_registry_url: String,
    /// `key:secret` for a registry with basic auth (a managed registry's
    /// API key and secret).
    pub schema_registry_basic_auth: String,
    /// A bearer token for a registry that takes one.
    pub schema_registry_bearer_token: String,
    /// A PEM file of a CA to trust for the registry's TLS, besides the system's.
    pub schema_registry_ca_file: String,
    pub kafka_bootstrap_servers: String,
    /// Partitions of each topic `orderflow topics apply` creates.
    pub kafka_partitions: i32,
    /// Producer batching delay; small keeps latency low at low load.
    pub kafka_linger_ms: u32,
    /// How long the broker may hold a fetch waiting for data. Kafka answers
    /// a waiting fetch as soon as data arrives, so a long wait costs no
    /// latency and keeps an idle consumer's fetches few; the embedded broker
    /// holds every empty fetch for the whole wait (see
    /// [`EMBEDDED_BROKER_FETCH_WAIT_MS`]).
    pub kafka_fetch_wait_max_ms: u32,
    /// How often the consumer commits its offsets (also on revocation and shutdown).
    pub kafka_auto_commit_interval_ms: u32,
    pub kafka_session_timeout_ms: u32,
    /// Extra librdkafka properties, `key=value` pairs separated by commas, e.g.
    /// `security.protocol=SASL_SSL,sasl.mechanism=PLAIN`.
    pub kafka_properties: String,
    /// Consumed messages handled at once, at most, per process (different
    /// orders; one order's events always run one at a time, in order).
    pub consumer_max_in_flight: usize,
    /// Events applied per database transaction, at most.
    pub consumer_batch_max: usize,
    /// Database transactions of one kind at once on PostgreSQL (SQLite has
    /// one writer).
    pub database_writers: usize,
    /// Calls to the payment provider or notification channel under way at
    /// once, at most, per process.
    pub external_calls_max_in_flight: usize,
    /// How long a revoked partition's in-flight events may take to finish
    /// before they are abandoned (the next owner handles them again).
    pub consumer_revoke_timeout_ms: u64,
    /// How long a stop may take in all, from SIGTERM: the pod's grace
    /// period less its preStop sleep, with a margin (every step of the stop
    /// is cut to what is left).
    pub shutdown_budget_ms: u64,
    /// The fast retry tiers of a transiently failing event, in milliseconds:
    /// the waits before its 2nd, 3rd, … attempt, each tier a topic of its own.
    pub retry_backoff_ms: Vec<u64>,
    /// The slow tiers that follow, the last one repeating until the deadline.
    pub retry_slow_tiers_ms: Vec<u64>,
    /// How long one step (an event's handling) may keep failing, from its
    /// first failure; then it fails in domain terms or is dead-lettered.
    pub step_deadline_ms: u64,
    /// How often the outbox relay looks for rows without being woken.
    pub outbox_poll_ms: u64,
    /// How long a new outbox row is reserved for the relay of the process
    /// that wrote it, before any replica's relay may take it.
    pub outbox_lease_ms: u64,
    /// Publish attempts of an outbox row before it is parked for an operator.
    pub outbox_max_attempts: u32,
    /// How long inbox rows are kept: longer than any redelivery can come late.
    pub inbox_retention_ms: u64,
    /// The circuit breaker of the service's external dependency (payment
    /// provider, notification channel) opens when this percentage of the calls
    /// of the last ten seconds failed…
    pub breaker_failure_rate: u32,
    /// …once there were at least this many calls in those ten seconds…
    pub breaker_minimum_calls: u32,
    /// …and stays open (failing calls at once) this long before a trial call.
    pub breaker_open_ms: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        let breaker = crate::resilience::BreakerSettings::default();
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ops_addr: SocketAddr::from(([127, 0, 0, 1], 9080)),
            auth: Default::default(),
            database_url: "sqlite://.data/orderflow.db".into(),
            sqlite_durable: true,
            database_max_connections: 20,
            schema_registry_url: "http://127.0.0.1:8081".into(),
            schema_registry_basic_auth: String::new(),
            schema_registry_bearer_token: String::new(),
            schema_registry_ca_file: String::new(),
            kafka_bootstrap_servers: "127.0.0.1:9092".into(),
            kafka_partitions: 12,
            kafka_linger_ms: 1,
            kafka_fetch_wait_max_ms: 500,
            kafka_auto_commit_interval_ms: 1000,
            kafka_session_timeout_ms: 45_000,
            kafka_properties: String::new(),
            consumer_max_in_flight: 1024,
            consumer_batch_max: 64,
            database_writers: 4,
            external_calls_max_in_flight: 512,
            consumer_revoke_timeout_ms: 10_000,
            shutdown_budget_ms: 35_000,
            retry_backoff_ms: vec![1_000, 4_000, 9_000],
            retry_slow_tiers_ms: vec![60_000, 300_000, 900_000],
            step_deadline_ms: 3_600_000,
            outbox_poll_ms: 500,
            outbox_lease_ms: 10_000,
            outbox_max_attempts: 10,
            inbox_retention_ms: 7 * 24 * 3_600_000,
            breaker_failure_rate: breaker.failure_rate,
            breaker_minimum_calls: breaker.minimum_calls,
            breaker_open_ms: breaker.open_for.as_millis() as u64,
        }
    }
}

impl RuntimeConfig {
    /// The circuit breaker of the service's external dependency.
    pub fn breaker(&self) -> crate::resilience::BreakerSettings {
        crate::resilience::BreakerSettings {
            failure_rate: self.breaker_failure_rate,
            minimum_calls: self.breaker_minimum_calls,
            open_for: std::time::Duration::from_millis(self.breaker_open_ms),
        }
    }

    /// How to reach the schema registry, credentials included.
    pub fn registry_connection(&self) -> Result<orderflow_envelope::RegistryConnection, String> {
        let ca_file = &self.schema_registry_ca_file;
        orderflow_envelope::RegistryConnection::new(
            &self.schema_registry_url,
            Some(&self.schema_registry_basic_auth),
            Some(&self.schema_registry_bearer_token),
            (!ca_file.is_empty()).then(|| std::path::Path::new(ca_file)),
        )
        .map_err(|e| {
            format!("schema_registry_ca_file {ca_file}: {e}: set ORDERFLOW_SCHEMA_REGISTRY_CA_FILE to a PEM file")
        })
    }

    /// The defaults for one service: its own ports (the API's, and the
    /// operations port 1,000 above it) and SQLite file.
    pub fn for_service(service: &str, port: u16) -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            ops_addr: SocketAddr::from(([127, 0, 0, 1], port.saturating_add(1_000))),
            database_url: format!("sqlite://.data/{service}.db"),
            ..Self::default()
        }
    }

    /// Every retry tier, fast then slow.
    pub fn retry_tiers(&self) -> Vec<std::time::Duration> {
        self.retry_backoff_ms
            .iter()
            .chain(&self.retry_slow_tiers_ms)
            .map(|&ms| std::time::Duration::from_millis(ms))
            .collect()
    }

    /// The extra librdkafka properties as pairs.
    pub fn kafka_property_pairs(&self) -> Result<BTreeMap<String, String>, String> {
        self.kafka_properties
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .ok_or_else(|| format!("kafka_properties entry `{p}` is not key=value"))
            })
            .collect()
    }

    fn has_setting(&self, key: &str) -> bool {
        matches!(serde_json::to_value(self), Ok(serde_json::Value::Object(m)) if m.contains_key(key))
    }

    /// For a service with an API: that it can check tokens.
    pub fn validate_api(&self) -> Result<(), String> {
        self.auth.validate()
    }

    /// Checks what serde cannot: values that parse but cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.kafka_bootstrap_servers.trim().is_empty() {
            return Err("kafka_bootstrap_servers is empty: set ORDERFLOW_KAFKA_BOOTSTRAP_SERVERS to host:port".into());
        }
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres"))
        {
            return Err(format!(
                "database_url `{}` is neither sqlite://… nor postgres://…: set ORDERFLOW_DATABASE_URL",
                crate::secrets::redact(&self.database_url)
            ));
        }
        if !self.schema_registry_url.starts_with("http") {
            return Err(format!(
                "schema_registry_url `{}` is not an http(s) URL: set ORDERFLOW_SCHEMA_REGISTRY_URL",
                crate::secrets::redact(&self.schema_registry_url)
            ));
        }
        if self.kafka_partitions < 1 {
            return Err(
                "kafka_partitions must be at least 1: set ORDERFLOW_KAFKA_PARTITIONS".into(),
            );
        }
        let at_least_one = [
            ("consumer_max_in_flight", self.consumer_max_in_flight),
            ("consumer_batch_max", self.consumer_batch_max),
            ("database_writers", self.database_writers),
            (
                "external_calls_max_in_flight",
                self.external_calls_max_in_flight,
            ),
        ];
        for (name, value) in at_least_one {
            if value < 1 {
                return Err(format!(
                    "{name} must be at least 1: set ORDERFLOW_{}",
                    name.to_uppercase()
                ));
            }
        }
        if self.retry_tiers().is_empty() || self.retry_tiers().iter().any(|t| t.is_zero()) {
            return Err("retry tiers must be one or more waits above 0 ms: set ORDERFLOW_RETRY_BACKOFF_MS and ORDERFLOW_RETRY_SLOW_TIERS_MS, e.g. [1000,4000,9000]".into());
        }
        if !(1..=100).contains(&self.breaker_failure_rate) {
            return Err(format!(
                "breaker_failure_rate is a percentage from 1 to 100, got {}: set ORDERFLOW_BREAKER_FAILURE_RATE",
                self.breaker_failure_rate
            ));
        }
        if self.breaker_minimum_calls < 1 {
            return Err(
                "breaker_minimum_calls must be at least 1: set ORDERFLOW_BREAKER_MINIMUM_CALLS"
                    .into(),
            );
        }
        if self.step_deadline_ms == 0 {
            return Err("step_deadline_ms must be above 0: set ORDERFLOW_STEP_DEADLINE_MS".into());
        }
        self.kafka_property_pairs().map(|_| ())
    }
}

/// A service's configuration: it can say what is wrong with itself.
pub trait ServiceConfig: Serialize + DeserializeOwned + Default {
    fn validate(&self) -> Result<(), String>;
}

/// Loads `T` from defaults, the optional file and the environment.
pub fn load<T: ServiceConfig>() -> Result<T, String> {
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Ok(path) = std::env::var("ORDERFLOW_CONFIG") {
        if !std::path::Path::new(&path).exists() {
            return Err(format!(
                "ORDERFLOW_CONFIG names {path}, which does not exist"
            ));
        }
        figment = figment.merge(Toml::file(path));
    }
    figment = figment.merge(Env::prefixed("ORDERFLOW_").ignore(&NOT_SETTINGS));
    if let Err(e) = figment.extract::<RuntimeConfig>() {
        // Settings shared by every service are checked on their own first: through
        // serde's flatten an error would not name the variable.
        if let Some(key) = e
            .path
            .last()
            .filter(|k| RuntimeConfig::default().has_setting(k))
        {
            return Err(format!("ORDERFLOW_{}: {}", key.to_uppercase(), e.kind));
        }
    }
    let config: T = figment.extract().map_err(|e| {
        e.into_iter()
            .map(|e| match e.path.last() {
                Some(key) => format!("ORDERFLOW_{}: {}", key.to_uppercase(), e.kind),
                None => e.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    config.validate()?;
    warn_about_unknown_settings(&config);
    Ok(config)
}

/// `ORDERFLOW_*` variables that are not settings of a service.
const NOT_SETTINGS: [&str; 2] = ["config", "log_format"];

/// A misspelled variable would otherwise be ignored without a word.
fn warn_about_unknown_settings<T: Serialize>(config: &T) {
    let Ok(serde_json::Value::Object(known)) = serde_json::to_value(config) else {
        return;
    };
    for (name, _) in std::env::vars() {
        let Some(key) = name.strip_prefix("ORDERFLOW_") else {
            continue;
        };
        let key = key.to_lowercase();
        if !known.contains_key(&key) && !NOT_SETTINGS.contains(&key.as_str()) {
            eprintln!("warning: {name} is not a setting of this service; it is ignored");
        }
    }
}

/// What a service's `main` calls: loads the configuration, prints it and exits
/// on `--print-config`, and exits with status 64 (EX_USAGE) and a message that
/// says what to fix when it is wrong.
pub fn load_or_exit<T: ServiceConfig>(binary: &str) -> T {
    let config = match load::<T>() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{binary}: invalid configuration: {message}");
            std::process::exit(64);
        }
    };
    if std::env::args().any(|a| a == "--print-config") {
        let mut printed = serde_json::to_value(&config).expect("config serializes");
        crate::secrets::redact_config(&mut printed);
        println!(
            "{}",
            serde_json::to_string_pretty(&printed).expect("config serializes")
        );
        std::process::exit(0);
    }
    config
}
