use orderflow_envelope::{EncodeError, RegistryError};

/// Why a service could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("database {url}: {source}")]
    Database { url: String, source: sqlx::Error },
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("kafka client could not be created ({what}): {source}")]
    Kafka {
        what: &'static str,
        source: rdkafka::error::KafkaError,
    },
    #[error("schema registration failed: {0}")]
    Schemas(#[from] EncodeError),
    #[error("schema registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("could not provision topics: {0}")]
    Topics(String),
    #[error("the consumer stopped unexpectedly")]
    ConsumerStopped,
    #[error("the Kafka producer failed fatally ({0}); restart the service (what was not published is still in the outbox)")]
    FatalProducer(String),
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
    /// A setting that cannot work (the service exits 64, EX_USAGE).
    #[error("invalid configuration: {0}")]
    Config(String),
}
