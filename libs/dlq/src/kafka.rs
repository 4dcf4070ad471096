//! Reading dead-letter topics: every message of a service's dead-letter
//! topic up to its end when the read began, or one message by its id. The
//! Kafka client is librdkafka's, configured as the services' (bootstrap
//! servers plus `ORDERFLOW_KAFKA_PROPERTIES`); reads assign partitions
//! directly and never commit, so they disturb no consumer group.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orderflow_envelope::Codec;
use orderflow_runtime::log_reader::{owned_headers, partition_count, read_to_end, LogError};
use orderflow_runtime::topics::CONSUMING_SERVICES;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::filter::Filter;
use crate::id::DlqId;
use crate::letter::{DeadLetter, Decoded};
use crate::review::{self, Marker};
use crate::DlqError;

/// How long the broker may take to answer before it counts as unreachable.
pub(crate) const TIMEOUT: Duration = orderflow_runtime::log_reader::SILENCE;

/// Where the broker and the registry are: the services' own settings.
pub type Connection = orderflow_runtime::LogSource;

/// The dead letters of every service, read from Kafka.
pub struct DeadLetters {
    pub(crate) conn: Connection,
    pub(crate) codec: Arc<Codec>,
}

/// What a listing found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listing {
    /// The matching dead letters, newest first.
    pub letters: Vec<DeadLetter>,
    /// Dead letters below the reviewed markers, not read.
    pub reviewed_hidden: u64,
    /// The reviewed markers of the services listed.
    pub markers: Vec<Marker>,
}

impl DeadLetters {
    pub fn new(conn: Connection) -> Result<Self, DlqError> {
        conn.runtime_config()
            .kafka_property_pairs()
            .map_err(|e| DlqError::Unreachable {
                bootstrap: conn.bootstrap.clone(),
                seconds: 0,
                reason: e,
            })?;
        let codec = conn
            .codec()
            .map_err(|e| DlqError::Registry(e.to_string()))?;
        Ok(Self { conn, codec })
    }

    pub(crate) fn client(&self) -> ClientConfig {
        let mut client = orderflow_runtime::client_config(&self.conn.runtime_config());
        client
            .set("group.id", review::REVIEW_GROUP)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        client
    }

    pub(crate) fn unreachable(&self, reason: impl std::fmt::Display) -> DlqError {
        DlqError::Unreachable {
            bootstrap: self.conn.bootstrap.clone(),
            seconds: TIMEOUT.as_secs(),
            reason: reason.to_string(),
        }
    }

    /// The services a filter names (all of them by default).
    fn services(filter: &Filter) -> Result<Vec<String>, DlqError> {
        match &filter.service {
            Some(s) if CONSUMING_SERVICES.contains(&s.as_str()) => Ok(vec![s.clone()]),
            Some(s) => Err(DlqError::UnknownService(s.clone())),
            None => Ok(CONSUMING_SERVICES.iter().map(|s| s.to_string()).collect()),
        }
    }

    /// The dead letters matching `filter`, newest first; those an operator
    /// marked reviewed are skipped unless the filter includes them.
    pub async fn list(&self, filter: &Filter) -> Result<Listing, DlqError> {
        let services = Self::services(filter)?;
        let markers = self.markers(&services).await?;
        let client = self.client();
        let from: HashMap<(String, i32), i64> = if filter.include_reviewed {
            HashMap::new()
        } else {
            markers
                .iter()
                .map(|m| ((m.service.clone(), m.partition), m.reviewed_up_to))
                .collect()
        };
        let unreachable = |e: String| self.unreachable(e);
        let (letters, hidden) = tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = client.create()?;
            let mut letters = Vec::new();
            let mut hidden = 0u64;
            for service in &services {
                let (mut read, skipped) = read_topic(&consumer, service, &from)?;
                letters.append(&mut read);
                hidden += skipped;
            }
            Ok::<_, ReadError>((letters, hidden))
        })
        .await
        .expect("the read does not panic")
        .map_err(|e| e.into_dlq(unreachable))?;
        let mut letters = crate::letter::collapse_copies(letters);
        letters.retain(|l| filter.matches(l));
        letters.sort_by(|a, b| b.failed_at.cmp(&a.failed_at).then(b.id.cmp(&a.id)));
        if let Some(limit) = filter.limit {
            letters.truncate(limit);
        }
        Ok(Listing {
            letters,
            reviewed_hidden: hidden,
            markers,
        })
    }

    /// One dead letter by its id.
    pub async fn show(&self, id: &DlqId) -> Result<DeadLetter, DlqError> {
        let client = self.client();
        let wanted = id.clone();
        let id = id.clone();
        let unreachable = |e: String| self.unreachable(e);
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = client.create()?;
            let topic = id.topic();
            let (low, high) = watermarks(&consumer, &topic, id.partition).map_err(|e| match e {
                ReadError::NoPartition(n) => {
                    ReadError::NotFound(format!("{topic} has {n} partitions, numbered from 0"))
                }
                other => other,
            })?;
            if id.offset < low || id.offset >= high {
                return Err(ReadError::NotFound(if low >= high {
                    format!("{topic} partition {} is empty", id.partition)
                } else {
                    format!(
                        "{topic} partition {} holds offsets {low} to {}",
                        id.partition,
                        high - 1
                    )
                }));
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, id.partition, Offset::Offset(id.offset))?;
            consumer.assign(&tpl)?;
            let deadline = Instant::now() + TIMEOUT;
            while Instant::now() < deadline {
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) if m.offset() == id.offset => {
                        return Ok(letter_of(&id.service, &m));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => {}
                }
            }
            Err(ReadError::Timeout(format!("reading {id}")))
        })
        .await
        .expect("the read does not panic")
        .map_err(|e| match e {
            ReadError::NotFound(why) => DlqError::NotFound {
                id: wanted.to_string(),
                why,
            },
            other => other.into_dlq(unreachable),
        })
    }

    /// The payload as JSON, decoded with the writer's schema from the
    /// registry; as hex when it does not decode.
    pub async fn decode(&self, letter: &DeadLetter) -> Decoded {
        let Some(payload) = letter.payload.as_deref().filter(|p| !p.is_empty()) else {
            return Decoded::Empty;
        };
        match self.codec.decode(None, payload).await {
            Ok(event) => Decoded::Json {
                value: event.to_json(),
            },
            Err(e) => Decoded::Hex {
                hex: hex::encode(payload),
                why: e.to_string(),
            },
        }
    }
}

/// A read's failure, before it is put in an operator's words.
#[derive(Debug)]
pub(crate) enum ReadError {
    Kafka(rdkafka::error::KafkaError),
    Timeout(String),
    NoPartition(usize),
    NotFound(String),
}

impl From<rdkafka::error::KafkaError> for ReadError {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        ReadError::Kafka(e)
    }
}

impl From<LogError> for ReadError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Kafka(e) => ReadError::Kafka(e),
            stalled @ LogError::Stalled { .. } => ReadError::Timeout(stalled.to_string()),
        }
    }
}

impl ReadError {
    pub(crate) fn into_dlq(self, unreachable: impl Fn(String) -> DlqError) -> DlqError {
        match self {
            ReadError::Kafka(e) if is_unreachable(&e) => unreachable(e.to_string()),
            ReadError::Kafka(e) => DlqError::Kafka(e),
            ReadError::Timeout(what) => unreachable(format!("{what} timed out")),
            ReadError::NoPartition(n) => unreachable(format!("the topic has {n} partitions")),
            ReadError::NotFound(why) => unreachable(why),
        }
    }
}

fn is_unreachable(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(
            OperationTimedOut | AllBrokersDown | BrokerTransportFailure | Resolve | RequestTimedOut
        )
    )
}

/// The low and high watermarks of one partition of `topic`.
pub(crate) fn watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), ReadError> {
    let partitions = partitions(consumer, topic)?;
    if partition < 0 || partition as usize >= partitions {
        return Err(ReadError::NoPartition(partitions));
    }
    Ok(consumer.fetch_watermarks(topic, partition, TIMEOUT)?)
}

/// How many partitions `topic` has.
pub(crate) fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<usize, ReadError> {
    Ok(partition_count(consumer, topic)? as usize)
}

/// Every dead letter of `service` from each partition's reviewed marker (or
/// its beginning) up to its end at the time of the read; and how many were
/// skipped below the markers.
fn read_topic(
    consumer: &BaseConsumer,
    service: &str,
    from: &HashMap<(String, i32), i64>,
) -> Result<(Vec<DeadLetter>, u64), ReadError> {
    let topic = orderflow_runtime::topics::dead_letter_topic(service);
    let mut letters = Vec::new();
    let start = |_: &str, partition: i32, low: i64, _: i64| {
        Some(
            from.get(&(service.to_string(), partition))
                .copied()
                .unwrap_or(low),
        )
    };
    let covered = read_to_end(consumer, &[&topic], &start, |m| {
        letters.push(letter_of(service, m))
    })?;
    Ok((letters, covered.skipped))
}

fn letter_of(service: &str, m: &rdkafka::message::BorrowedMessage<'_>) -> DeadLetter {
    let headers = owned_headers(m);
    DeadLetter::from_parts(
        DlqId {
            service: service.to_string(),
            partition: m.partition(),
            offset: m.offset(),
        },
        m.key(),
        headers,
        m.payload(),
        m.timestamp().to_millis(),
    )
}
