//! Where an operator tool finds the log: Kafka and the schema registry, with
//! the services' own settings (credentials included), so a tool reaches
//! whatever the services reach.

use std::sync::Arc;

use orderflow_envelope::{Codec, HttpSchemaRegistry, RegistryConnection, RegistryError};

use crate::RuntimeConfig;

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

    /// A codec that decodes through this source's registry.
    pub fn codec(&self) -> Result<Arc<Codec>, RegistryError> {
        let registry = HttpSchemaRegistry::connect(&self.registry)?;
        Ok(Arc::new(Codec::new(Arc::new(registry))))
    }
}
