//! The idempotent producer every service publishes with (outbox relay, retry
//! copies, dead letters). `acks=all` and `enable.idempotence=true`: a retried
//! send cannot duplicate or reorder messages within a partition. A fatal
//! error of the idempotent producer (librdkafka gives up on the producer id,
//! e.g. after an unclean broker restart) leaves it unable to publish for good:
//! it is reported through [`Fatal`], and the service stops with readiness
//! false and a non-zero exit so its orchestrator restarts it (what was not
//! published stays in the outbox). A producer with a message waiting for
//! [`STALL_LIMIT`] is replaced by a new one ([`stall`], [`replace`]).

mod client;
mod delivery;
mod replace;
mod stall;

use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use tokio_util::sync::CancellationToken;

use crate::config::RuntimeConfig;
use crate::error::RuntimeError;
use client::Client;
pub use delivery::Delivery;
pub use replace::Retired;
use stall::Stall;
pub use stall::STALL_LIMIT;

/// How long librdkafka tries to deliver a message before it reports failure.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(300);

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

/// Set once when the producer hit a fatal error.
#[derive(Clone, Default)]
pub struct Fatal {
    reason: Arc<OnceLock<String>>,
    token: CancellationToken,
}

impl Fatal {
    pub fn raise(&self, reason: String) {
        if self.reason.set(reason.clone()).is_ok() {
            tracing::error!(
                reason,
                "the Kafka producer failed fatally; the service stops"
            );
        }
        self.token.cancel();
    }

    /// Resolves once a fatal error was raised.
    pub async fn raised(&self) -> String {
        self.token.cancelled().await;
        self.reason.get().cloned().unwrap_or_default()
    }
}

#[derive(Clone)]
pub struct Producer {
    /// The producer in use; replaced when it is stuck.
    current: Arc<RwLock<Arc<Generation>>>,
    /// Its configuration, to make the next one.
    client: Arc<ClientConfig>,
    fatal: Fatal,
}

/// One librdkafka producer and whether it still delivers.
struct Generation {
    inner: Client,
    stall: Arc<Stall>,
}

impl Generation {
    fn new(client: &ClientConfig) -> Result<Self, RuntimeError> {
        Ok(Self {
            inner: Client::new(client)?,
            stall: Arc::default(),
        })
    }
}

impl Producer {
    pub fn new(
        config: &RuntimeConfig,
        client_id: &str,
        fatal: Fatal,
    ) -> Result<Self, RuntimeError> {
        let mut client = client_config(config);
        client
            .set("client.id", client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", config.kafka_linger_ms.to_string())
            .set(
                "message.timeout.ms",
                MESSAGE_TIMEOUT.as_millis().to_string(),
            );
        let first = Generation::new(&client)?;
        Ok(Self {
            current: Arc::new(RwLock::new(Arc::new(first))),
            client: Arc::new(client),
            fatal,
        })
    }

    /// A producer of its own, for a tool rather than a service (its fatal
    /// errors are returned by the sends, not raised for a service to stop).
    pub fn standalone(config: &RuntimeConfig, client_id: &str) -> Result<Self, RuntimeError> {
        Self::new(config, client_id, Fatal::default())
    }

    fn current(&self) -> Arc<Generation> {
        self.current.read().expect("producer lock").clone()
    }

    /// Raises [`Fatal`] if the producer failed fatally; true then. Called
    /// after every failed send and periodically by the relay.
    pub fn check_fatal(&self) -> bool {
        use rdkafka::producer::Producer as _;
        match self.current().inner.producer().client().fatal_error() {
            Some((code, reason)) => {
                self.fatal.raise(format!("{code}: {reason}"));
                true
            }
            None => false,
        }
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
    ) -> Result<Delivery, KafkaError> {
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (name, value) in headers {
            owned = owned.insert(Header {
                key: name,
                value: Some(value.as_slice()),
            });
        }
        let (report_to, report) = tokio::sync::oneshot::channel();
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(report_to))
            .key(key)
            .payload(payload)
            .headers(owned);
        loop {
            // Not held across the wait below: a replaced producer is
            // destroyed once nobody holds it (replace::Retired).
            let current = self.current();
            let sent = current.inner.producer().send(record);
            let stall = current.stall.clone();
            drop(current);
            match sent {
                Ok(()) => {
                    let n = stall.sent(Instant::now());
                    return Ok(Delivery::new(report, stall, n));
                }
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
        let result = match self.send(topic, key, headers, payload).await {
            Ok(delivery) => delivery.await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.check_fatal();
        }
        result
    }

    /// Waits until every queued message is delivered (or `timeout` passes).
    pub fn flush(&self, timeout: Duration) {
        use rdkafka::producer::Producer as _;
        if let Err(e) = self.current().inner.producer().flush(timeout) {
            tracing::warn!(error = %e, "producer flush did not complete");
        }
    }
}

/// Whether the send failed because its producer was replaced
/// ([`Producer::replace_if_stuck`]) before the broker acknowledged it, or its
/// report never came (its producer was destroyed first): not a failure of the message, so
/// no attempt of it. A message purged in flight may have been written; sent
/// again, it is there twice (a new producer has a new producer id, so
/// idempotence cannot drop the copy): consumers' inboxes do.
pub fn is_purged(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(e.rdkafka_error_code(), Some(PurgeQueue | PurgeInflight))
        || matches!(e, KafkaError::Canceled)
}

/// Whether sending again can never succeed: the message is too large, the
/// topic does not exist or is not ours to write.
pub fn is_permanent(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(
            MessageSizeTooLarge
                | InvalidMessageSize
                | MessageBatchTooLarge
                | InvalidRecord
                | UnknownTopic
                | UnknownTopicOrPartition
                | InvalidTopic
                | TopicAuthorizationFailed
                | ClusterAuthorizationFailed
                | InvalidArgument
        )
    )
}
