//! The schema registry seen from a producer or consumer: register a schema under
//! a subject and get its id; fetch a schema by id. [`HttpSchemaRegistry`] speaks
//! the Confluent Schema Registry REST API, which the dev stack also serves.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("schema registry at {url} is unreachable: {source}")]
    Unreachable { url: String, source: reqwest::Error },
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
}

impl RegistryError {
    /// Whether trying again later can help (the registry was down or overloaded).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } => true,
            RegistryError::Rejected { status, .. } => *status >= 500,
            _ => false,
        }
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

/// A client of the Confluent Schema Registry HTTP API.
#[derive(Clone)]
pub struct HttpSchemaRegistry {
    base: String,
    http: reqwest::Client,
}

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(Deserialize)]
struct IdResponse {
    id: u32,
}

#[derive(Deserialize)]
struct SchemaResponse {
    schema: String,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error_code: i64,
    message: String,
}

impl HttpSchemaRegistry {
    pub fn new(base_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a reqwest client with a timeout always builds");
        Self {
            base: base_url.trim_end_matches('/').to_string(),
            http,
        }
    }

    async fn read<T: for<'de> Deserialize<'de>>(
        &self,
        what: String,
        response: reqwest::Response,
    ) -> Result<T, RegistryError> {
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|source| RegistryError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| RegistryError::BadResponse(e.to_string()));
        }
        let (code, message) = match serde_json::from_slice::<ErrorResponse>(&body) {
            Ok(e) => (e.error_code, e.message),
            Err(_) => (
                i64::from(status.as_u16()),
                String::from_utf8_lossy(&body).into_owned(),
            ),
        };
        Err(RegistryError::Rejected {
            what,
            status: status.as_u16(),
            code,
            message,
        })
    }
}

#[async_trait]
impl SchemaRegistry for HttpSchemaRegistry {
    async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let response = self
            .http
            .post(format!("{}/subjects/{subject}/versions", self.base))
            .header("content-type", CONTENT_TYPE)
            .json(&serde_json::json!({ "schema": schema }))
            .send()
            .await
            .map_err(|source| RegistryError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        let id: IdResponse = self
            .read(format!("the schema for subject {subject}"), response)
            .await?;
        Ok(id.id)
    }

    async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        let response = self
            .http
            .get(format!("{}/schemas/ids/{id}", self.base))
            .send()
            .await
            .map_err(|source| RegistryError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(RegistryError::UnknownId(id));
        }
        let schema: SchemaResponse = self.read(format!("schema id {id}"), response).await?;
        Ok(schema.schema)
    }
}
