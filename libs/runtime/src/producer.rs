//! The idempotent producer every service publishes with (outbox relay and dead
//! letters). `acks=all` and `enable.idempotence=true`: a retried send cannot
//! duplicate or reorder messages within a partition.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::config::RuntimeConfig;
use crate::error::RuntimeError;

/// The base client configuration: bootstrap servers plus the user's extra
/// librdkafka properties.
pub fn client_config(config: &RuntimeConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.kafka_bootstrap_servers);
    for (key, value) in config.kafka_property_pairs().unwrap_or_default() {
        client.set(key, value);
    }
    client
}

#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
}

impl Producer {
    pub fn new(config: &RuntimeConfig, client_id: &str) -> Result<Self, RuntimeError> {
        let mut client = client_config(config);
        client
            .set("client.id", client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", config.kafka_linger_ms.to_string())
            .set("message.timeout.ms", "300000");
        let inner = client.create().map_err(|source| RuntimeError::Kafka {
            what: "producer",
            source,
        })?;
        Ok(Self { inner })
    }

    /// Queues one message and returns the future of its delivery report without
    /// waiting for it, so callers can keep many messages in flight. A full local
    /// queue is waited out; any other error (message too large, unknown topic)
    /// is returned, since retrying it cannot help.
    pub async fn send(
        &self,
        topic: &str,
        key: &[u8],
        headers: &[(String, Vec<u8>)],
        payload: &[u8],
    ) -> Result<DeliveryFuture, KafkaError> {
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (name, value) in headers {
            owned = owned.insert(Header {
                key: name,
                value: Some(value.as_slice()),
            });
        }
        let mut record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(owned);
        loop {
            match self.inner.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The local queue is full: wait for deliveries to drain it.
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Sends and waits for the broker's acknowledgement.
    pub async fn send_and_wait(
        &self,
        topic: &str,
        key: &[u8],
        headers: &[(String, Vec<u8>)],
        payload: &[u8],
    ) -> Result<(i32, i64), KafkaError> {
        let delivery = self.send(topic, key, headers, payload).await?;
        match delivery.await {
            Ok(Ok(delivered)) => Ok((delivered.partition, delivered.offset)),
            Ok(Err((e, _))) => Err(e),
            Err(_canceled) => Err(KafkaError::Canceled),
        }
    }

    /// Waits until every queued message is delivered (or `timeout` passes).
    pub fn flush(&self, timeout: Duration) {
        use rdkafka::producer::Producer as _;
        if let Err(e) = self.inner.flush(timeout) {
            tracing::warn!(error = %e, "producer flush did not complete");
        }
    }
}
