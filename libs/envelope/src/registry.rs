//! The schema registry seen from a producer or consumer: register a schema under
//! a subject and get its id; fetch a schema by id. [`HttpSchemaRegistry`] speaks
//! the Confluent Schema Registry REST API, which the dev stack also serves,
//! through `schema_registry_converter`'s client: basic auth (a managed
//! registry's API key and secret) or a bearer token, a CA of one's own for
//! TLS, a timeout, and errors that say whether trying again can help.

use std::time::Duration;

use async_trait::async_trait;
use schema_registry_converter::async_impl::schema_registry::{
    get_schema_by_id, post_schema, SrSettings,
};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("schema registry at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("schema registry at {url} refused the credentials (HTTP {status}): set ORDERFLOW_SCHEMA_REGISTRY_BASIC_AUTH (key:secret) or ORDERFLOW_SCHEMA_REGISTRY_BEARER_TOKEN")]
    Unauthorized { url: String, status: u16 },
    #[error("schema registry rejected {what} (HTTP {status}, error code {code}): {message}")]
    Rejected {
        what: String,
        status: u16,
        code: i64,
        message: String,
    },
    #[error("schema id {0} is unknown to the registry")]
    UnknownId(u32),
    #[error("schema registry sent a response that is not understood: {0}")]
    BadResponse(String),
    #[error("schema registry settings: {0}")]
    Settings(String),
}

impl RegistryError {
    /// Whether trying again later can help (the registry was down or overloaded).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } => true,
            RegistryError::Rejected { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// Whether the registry refused who we are (a configuration to fix).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, RegistryError::Unauthorized { .. })
    }
}

#[async_trait]
pub trait SchemaRegistry: Send + Sync + 'static {
    /// Registers `schema` (Avro JSON) under `subject`, returning its global id.
    /// Registering a schema that is already there returns the existing id.
    async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError>;
    /// The Avro JSON of the schema with this id.
    async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError>;
}

/// How to reach a registry: where, who we are, whom to trust.
#[derive(Debug, Clone, Default)]
pub struct RegistryConnection {
    pub url: String,
    /// `key:secret` (a managed registry's API key), or `user:password`.
    pub basic_auth: Option<String>,
    pub bearer_token: Option<String>,
    /// PEM of a CA to trust besides the system's (a private registry's).
    pub ca_pem: Option<Vec<u8>>,
}

impl RegistryConnection {
    /// From settings as they are given: a credential is set when it is not
    /// empty; `ca_file`, when given, is read (its error is the caller's to
    /// word, naming the setting).
    pub fn new(
        url: &str,
        basic_auth: Option<&str>,
        bearer_token: Option<&str>,
        ca_file: Option<&std::path::Path>,
    ) -> std::io::Result<Self> {
        let set = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
        Ok(Self {
            url: url.to_string(),
            basic_auth: set(basic_auth),
            bearer_token: set(bearer_token),
            ca_pem: ca_file.map(std::fs::read).transpose()?,
        })
    }
}

/// A client of the Confluent Schema Registry HTTP API.
#[derive(Clone)]
pub struct HttpSchemaRegistry {
    url: String,
    settings: SrSettings,
}

impl HttpSchemaRegistry {
    /// A registry that needs no credentials (the dev stack's, a test's).
    pub fn new(url: &str) -> Self {
        Self::connect(&RegistryConnection {
            url: url.to_string(),
            ..Default::default()
        })
        .expect("settings without credentials build")
    }

    pub fn connect(c: &RegistryConnection) -> Result<Self, RegistryError> {
        let url = c.url.trim_end_matches('/').to_string();
        let mut builder = SrSettings::new_builder(url.clone());
        builder.set_timeout(Duration::from_secs(10));
        match (&c.basic_auth, &c.bearer_token) {
            (Some(_), Some(_)) => {
                return Err(RegistryError::Settings(
                    "both basic auth and a bearer token are set: set one of ORDERFLOW_SCHEMA_REGISTRY_BASIC_AUTH and ORDERFLOW_SCHEMA_REGISTRY_BEARER_TOKEN".into(),
                ))
            }
            (Some(basic), None) => {
                let (user, password) = match basic.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (basic.as_str(), None),
                };
                builder.set_basic_authorization(user, password);
            }
            (None, Some(token)) => {
                builder.set_token_authorization(token);
            }
            (None, None) => {}
        }
        let mut client = reqwest013::Client::builder().connect_timeout(Duration::from_secs(5));
        if let Some(pem) = &c.ca_pem {
            let ca = reqwest013::Certificate::from_pem(pem).map_err(|e| {
                RegistryError::Settings(format!(
                    "the CA in ORDERFLOW_SCHEMA_REGISTRY_CA_FILE is not PEM: {e}"
                ))
            })?;
            client = client.add_root_certificate(ca);
        }
        let settings = builder
            .build_with(client)
            .map_err(|e| RegistryError::Settings(e.to_string()))?;
        Ok(Self { url, settings })
    }

    /// Puts a `schema_registry_converter` error in this crate's words.
    fn error(&self, what: String, e: SRCError) -> RegistryError {
        // "HTTP request to schema registry failed with status 401 Unauthorized"
        let status = e
            .error
            .split("status ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse::<u16>().ok());
        let code = e
            .cause
            .as_deref()
            .and_then(|c| c.strip_prefix("error_code: "))
            .and_then(|c| c.split(',').next())
            .and_then(|c| c.trim().parse().ok());
        match status {
            Some(status @ (401 | 403)) => RegistryError::Unauthorized {
                url: self.url.clone(),
                status,
            },
            Some(status) => RegistryError::Rejected {
                what,
                status,
                code: code.unwrap_or(i64::from(status)),
                message: e.cause.clone().unwrap_or_else(|| e.error.clone()),
            },
            None if e.retriable => RegistryError::Unreachable {
                url: self.url.clone(),
                reason: e.cause.clone().unwrap_or_else(|| e.error.clone()),
            },
            None => {
                RegistryError::BadResponse(format!("{}: {}", e.error, e.cause.unwrap_or_default()))
            }
        }
    }
}

#[async_trait]
impl SchemaRegistry for HttpSchemaRegistry {
    async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let name = serde_json::from_str::<serde_json::Value>(schema)
            .ok()
            .and_then(|v| {
                let name = v["name"].as_str()?.to_string();
                Some(match v["namespace"].as_str() {
                    Some(ns) if !name.contains('.') => format!("{ns}.{name}"),
                    _ => name,
                })
            });
        let supplied = SuppliedSchema::new(name, SchemaType::Avro, schema.to_string());
        post_schema(&self.settings, subject.to_string(), supplied)
            .await
            .map(|registered| registered.id)
            .map_err(|e| self.error(format!("the schema for subject {subject}"), e))
    }

    async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        match get_schema_by_id(id, &self.settings).await {
            Ok(registered) => Ok(registered.schema),
            Err(e) => match self.error(format!("schema id {id}"), e) {
                RegistryError::Rejected { status: 404, .. } => Err(RegistryError::UnknownId(id)),
                other => Err(other),
            },
        }
    }
}
