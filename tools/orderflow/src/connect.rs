//! Where a tool finds Kafka and the schema registry: the services' own
//! settings (flags, or the same `ORDERFLOW_*` variables), or else the dev
//! stack that `orderflow dev` runs, which writes where its embedded broker
//! and registry listen to `.data/dev/connect.json`.

use std::path::Path;

use anyhow::{Context, Result};
use orderflow_envelope::RegistryConnection;
use serde::{Deserialize, Serialize};

/// The file `orderflow dev` writes, relative to the folder it runs in.
pub const DEV_CONNECT_FILE: &str = ".data/dev/connect.json";

#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Kafka's bootstrap servers (default: the running dev stack's broker).
    #[arg(long, env = "ORDERFLOW_KAFKA_BOOTSTRAP_SERVERS")]
    bootstrap_servers: Option<String>,
    /// Extra librdkafka properties, `key=value,key=value` (SASL, TLS).
    #[arg(long, env = "ORDERFLOW_KAFKA_PROPERTIES", default_value = "")]
    kafka_properties: String,
    /// The schema registry (default: the running dev stack's).
    #[arg(long, env = "ORDERFLOW_SCHEMA_REGISTRY_URL")]
    registry_url: Option<String>,
    #[command(flatten)]
    registry_auth: RegistryAuthArgs,
}

/// Credentials for a schema registry that wants them, as the services take them.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RegistryAuthArgs {
    /// `key:secret` for a registry with basic auth.
    #[arg(
        long,
        env = "ORDERFLOW_SCHEMA_REGISTRY_BASIC_AUTH",
        hide_env_values = true
    )]
    registry_basic_auth: Option<String>,
    /// A bearer token for the registry.
    #[arg(
        long,
        env = "ORDERFLOW_SCHEMA_REGISTRY_BEARER_TOKEN",
        hide_env_values = true
    )]
    registry_bearer_token: Option<String>,
    /// A PEM file of a CA to trust for the registry's TLS.
    #[arg(long, env = "ORDERFLOW_SCHEMA_REGISTRY_CA_FILE")]
    registry_ca_file: Option<std::path::PathBuf>,
}

impl RegistryAuthArgs {
    pub fn connection(&self, url: &str) -> Result<RegistryConnection, Unconfigured> {
        let ca_file = self.registry_ca_file.as_deref();
        RegistryConnection::new(
            url,
            self.registry_basic_auth.as_deref(),
            self.registry_bearer_token.as_deref(),
            ca_file,
        )
        .map_err(|e| {
            let path = ca_file.unwrap_or(Path::new(""));
            Unconfigured(format!(
                "--registry-ca-file {}: {e}: give a PEM file",
                path.display()
            ))
        })
    }
}

/// What `orderflow dev` records of where it listens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevConnect {
    pub bootstrap_servers: String,
    pub registry_url: String,
    pub gateway_url: String,
    pub issuer_url: String,
    /// Each service's own API, by service name (for `orderflow audit`).
    #[serde(default)]
    pub service_urls: std::collections::BTreeMap<String, String>,
}

impl DevConnect {
    pub fn write(&self, data_dir: &Path) -> Result<()> {
        let path = data_dir.join("connect.json");
        std::fs::write(&path, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    pub fn read() -> Option<Self> {
        let text = std::fs::read_to_string(DEV_CONNECT_FILE).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// A tool's connection settings could not be found: a usage error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unconfigured(pub String);

impl ConnectArgs {
    pub fn resolve(&self) -> Result<orderflow_runtime::LogSource, Unconfigured> {
        let dev = DevConnect::read();
        let bootstrap = self
            .bootstrap_servers
            .clone()
            .or_else(|| dev.as_ref().map(|d| d.bootstrap_servers.clone()))
            .ok_or_else(|| {
                Unconfigured(format!(
                    "where is Kafka? Set --bootstrap-servers or ORDERFLOW_KAFKA_BOOTSTRAP_SERVERS (no dev stack found: {DEV_CONNECT_FILE} is missing)"
                ))
            })?;
        let registry_url = self
            .registry_url
            .clone()
            .or_else(|| dev.as_ref().map(|d| d.registry_url.clone()))
            .ok_or_else(|| {
                Unconfigured(
                    "where is the schema registry? Set --registry-url or ORDERFLOW_SCHEMA_REGISTRY_URL".into(),
                )
            })?;
        Ok(orderflow_runtime::LogSource {
            bootstrap,
            kafka_properties: self.kafka_properties.clone(),
            registry: self.registry_auth.connection(&registry_url)?,
        })
    }
}
