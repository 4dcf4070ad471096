//! Where an operator tool finds the log: Kafka and the schema registry, with
//! the services' own settings (credentials included), so a tool reaches
//! whatever the services reach.

use std::sync::Arc;

use orderflow_envelope::{Codec, HttpSchemaRegistry, RegistryConnection, RegistryError};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::log_reader::{owned_headers, read_until, Covered, LogError};
use crate::RuntimeConfig;

/// One message of the log, as a reader hands it on.
#[derive(Debug, Clone)]
pub struct Logged {
    pub headers: Vec<(String, Vec<u8>)>,
    pub payload: Vec<u8>,
    /// The message's timestamp, ms since the epoch (0 when it has none).
    pub timestamp_ms: i64,
}

impl Logged {
    /// The headers as (name, value) pairs, as `CloudEventHeaders` reads them.
    pub fn header_pairs(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

#[derive(Debug, Clone)]
pub struct LogSource {
    pub bootstrap: String,
    /// Extra librdkafka properties, `key=value,key=value` (SASL, TLS).
    pub kafka_properties: String,
    pub registry: RegistryConnection,
}

impl LogSource {
    /// A broker and a registry that need no credentials (the dev stack's).
    pub fn plain(bootstrap: &str, registry_url: &str) -> Self {
        Self {
            bootstrap: bootstrap.to_string(),
            kafka_properties: String::new(),
            registry: RegistryConnection {
                url: registry_url.to_string(),
                ..Default::default()
            },
        }
    }

    /// The settings a Kafka client of this source is made from.
    pub fn runtime_config(&self) -> RuntimeConfig {
        RuntimeConfig {
            kafka_bootstrap_servers: self.bootstrap.clone(),
            kafka_properties: self.kafka_properties.clone(),
            schema_registry_url: self.registry.url.clone(),
            ..RuntimeConfig::default()
        }
    }

    /// Reads every partition of `topics` from its start to where it ends
    /// now, on a thread of its own, handing each message to `tx`; stops
    /// early when `tx`'s receiver is gone. Its consumer group
    /// (`orderflow-{purpose}-{uuid}`) is its own and commits nothing, so a
    /// read disturbs no consumer.
    pub fn read_to_end(
        &self,
        purpose: &str,
        topics: Vec<&'static str>,
        tx: mpsc::Sender<Logged>,
    ) -> Result<JoinHandle<Result<Covered, LogError>>, KafkaError> {
        let mut client = crate::client_config(&self.runtime_config());
        client
            .set(
                "group.id",
                format!("orderflow-{purpose}-{}", uuid::Uuid::new_v4().simple()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        let consumer: BaseConsumer = client.create()?;
        Ok(tokio::task::spawn_blocking(move || {
            let from_start = |_: &str, _: i32, low: i64, _: i64| Some(low);
            read_until(&consumer, &topics, &from_start, |m| {
                let logged = Logged {
                    headers: owned_headers(m),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
                };
                // False once the receiver is gone (an error, or it has
                // what it wanted): stop reading.
                tx.blocking_send(logged).is_ok()
            })
        }))
    }

    /// A codec that decodes through this source's registry.
    pub fn codec(&self) -> Result<Arc<Codec>, RegistryError> {
        let registry = HttpSchemaRegistry::connect(&self.registry)?;
        Ok(Arc::new(Codec::new(Arc::new(registry))))
    }
}
