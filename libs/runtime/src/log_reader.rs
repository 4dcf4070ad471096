//! Reading topics as a log, the way operator tools do: every partition from
//! a starting offset up to where it ended when the read began, assigned
//! directly (no group membership, nothing committed), so a read disturbs no
//! consumer. Dead-letter listings and read-model rebuilds read this way.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{Message, Offset, TopicPartitionList};

/// How long the broker may be silent (no metadata, no message) before a
/// read gives up.
pub const SILENCE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("no message from {topics} for {seconds} s while reading to its end")]
    Stalled { topics: String, seconds: u64 },
}

/// Where a read of one partition starts, given the partition's low and high
/// watermarks; `None` skips the partition.
pub type Start<'a> = &'a dyn Fn(&str, i32, i64, i64) -> Option<i64>;

/// What a read covered.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Covered {
    /// Messages read.
    pub read: u64,
    /// Messages between each partition's low watermark and its start, skipped.
    pub skipped: u64,
}

/// A message's headers as owned (name, value) pairs; a header without a
/// value has an empty one.
pub fn owned_headers(m: &impl Message) -> Vec<(String, Vec<u8>)> {
    m.headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default()
}

/// Partitions of `topic` (0 when it does not exist).
pub fn partition_count(consumer: &BaseConsumer, topic: &str) -> Result<i32, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), SILENCE)?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len() as i32))
}

/// Reads every partition of `topics` from `start` up to its high watermark
/// at the time of the call, handing each message to `each`.
pub fn read_to_end(
    consumer: &BaseConsumer,
    topics: &[&str],
    start: Start<'_>,
    mut each: impl FnMut(&BorrowedMessage<'_>),
) -> Result<Covered, LogError> {
    read_until(consumer, topics, start, |m| {
        each(m);
        true
    })
}

/// As [`read_to_end`], stopping early when `each` answers false.
pub fn read_until(
    consumer: &BaseConsumer,
    topics: &[&str],
    start: Start<'_>,
    mut each: impl FnMut(&BorrowedMessage<'_>) -> bool,
) -> Result<Covered, LogError> {
    let mut tpl = TopicPartitionList::new();
    let mut end: HashMap<(String, i32), i64> = HashMap::new();
    let mut covered = Covered::default();
    for topic in topics {
        for partition in 0..partition_count(consumer, topic)? {
            let (low, high) = consumer.fetch_watermarks(topic, partition, SILENCE)?;
            let Some(from) = start(topic, partition, low, high) else {
                continue;
            };
            let from = from.clamp(low, high);
            covered.skipped += (from - low) as u64;
            if from < high {
                tpl.add_partition_offset(topic, partition, Offset::Offset(from))?;
                end.insert((topic.to_string(), partition), high);
            }
        }
    }
    if end.is_empty() {
        return Ok(covered);
    }
    consumer.assign(&tpl)?;
    let mut heard = Instant::now();
    while !end.is_empty() {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            if heard.elapsed() > SILENCE {
                return Err(LogError::Stalled {
                    topics: topics.join(", "),
                    seconds: SILENCE.as_secs(),
                });
            }
            continue;
        };
        let m = m?;
        heard = Instant::now();
        let key = (m.topic().to_string(), m.partition());
        if let Some(&high) = end.get(&key) {
            if m.offset() < high {
                covered.read += 1;
                if !each(&m) {
                    break;
                }
            }
            if m.offset() + 1 >= high {
                end.remove(&key);
            }
        }
    }
    consumer.unassign()?;
    Ok(covered)
}
