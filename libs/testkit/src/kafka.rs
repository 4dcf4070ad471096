//! Looking at the broker the way an operator would: consumer lag, raw
//! messages on a topic, and a duplicator that redelivers every event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use orderflow_envelope::Topic;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct KafkaProbe {
    bootstrap: String,
}

impl KafkaProbe {
    pub fn new(bootstrap: &str) -> Self {
        Self {
            bootstrap: bootstrap.to_string(),
        }
    }

    fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c
    }

    /// Every topic on the broker but its internal ones, with its partition count.
    pub fn topics(&self) -> Result<std::collections::BTreeMap<String, usize>> {
        let consumer: BaseConsumer = self.client().create()?;
        let metadata = consumer.fetch_metadata(None, TIMEOUT)?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| !t.name().starts_with("__"))
            .map(|t| (t.name().to_string(), t.partitions().len()))
            .collect())
    }

    /// The members of consumer group `group` as the broker describes it:
    /// each member's client host and the partitions assigned to it.
    pub fn members(&self, group: &str) -> Result<Vec<GroupMember>> {
        let consumer: BaseConsumer = self.client().create()?;
        let groups = consumer.fetch_group_list(Some(group), TIMEOUT)?;
        let Some(found) = groups.groups().iter().find(|g| g.name() == group) else {
            return Ok(Vec::new());
        };
        found
            .members()
            .iter()
            .map(|m| {
                Ok(GroupMember {
                    id: m.id().to_string(),
                    host: m.client_host().to_string(),
                    partitions: m
                        .assignment()
                        .map(assignment)
                        .transpose()?
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Messages on `topics` that `group` has not committed yet.
    pub async fn lag(&self, group: &str, topics: &[String]) -> Result<i64> {
        let client = self.client();
        let group = group.to_string();
        let topics = topics.to_vec();
        tokio::task::spawn_blocking(move || -> Result<i64> {
            let consumer: BaseConsumer = client
                .clone()
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .create()?;
            let mut tpl = TopicPartitionList::new();
            for topic in &topics {
                let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
                for t in metadata.topics() {
                    for p in t.partitions() {
                        tpl.add_partition(topic, p.id());
                    }
                }
            }
            let committed = consumer.committed_offsets(tpl, TIMEOUT)?;
            let mut lag = 0;
            for entry in committed.elements() {
                let (low, high) =
                    consumer.fetch_watermarks(entry.topic(), entry.partition(), TIMEOUT)?;
                let done = match entry.offset() {
                    Offset::Offset(o) => o,
                    _ => low,
                };
                lag += (high - done).max(0);
            }
            Ok(lag)
        })
        .await?
    }

    /// The number of messages ever written to `topic` (sum of high watermarks).
    pub async fn message_count(&self, topic: &str) -> Result<i64> {
        let client = self.client();
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || -> Result<i64> {
            let consumer: BaseConsumer = client.clone().set("group.id", "probe").create()?;
            let metadata = consumer.fetch_metadata(Some(&topic), TIMEOUT)?;
            let mut total = 0;
            for t in metadata.topics() {
                for p in t.partitions() {
                    total += consumer.fetch_watermarks(&topic, p.id(), TIMEOUT)?.1;
                }
            }
            Ok(total)
        })
        .await?
    }

    /// Every message on `topic` so far.
    pub async fn read_all(&self, topic: &str) -> Result<Vec<OwnedMessage>> {
        let client = self.client();
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || -> Result<Vec<OwnedMessage>> {
            let consumer: BaseConsumer = client.clone().set("group.id", "probe").create()?;
            let metadata = consumer.fetch_metadata(Some(&topic), TIMEOUT)?;
            let mut tpl = TopicPartitionList::new();
            let mut expected = 0;
            for t in metadata.topics() {
                for p in t.partitions() {
                    let (low, high) = consumer.fetch_watermarks(&topic, p.id(), TIMEOUT)?;
                    expected += high - low;
                    tpl.add_partition_offset(&topic, p.id(), Offset::Beginning)?;
                }
            }
            consumer.assign(&tpl)?;
            let mut messages = Vec::new();
            let deadline = std::time::Instant::now() + TIMEOUT;
            while (messages.len() as i64) < expected {
                if std::time::Instant::now() > deadline {
                    // An empty answer must mean an empty topic, never a slow read.
                    bail!(
                        "read {} of the {expected} messages on {topic} within {TIMEOUT:?}",
                        messages.len()
                    );
                }
                if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                    messages.push(m?.detach());
                }
            }
            Ok(messages)
        })
        .await?
    }

    /// Writes a message straight onto a topic, bypassing every orderflow
    /// producer; returns where it landed (partition, offset).
    pub async fn produce_raw(
        &self,
        topic: &str,
        key: &str,
        headers: &[(&str, &str)],
        payload: &[u8],
    ) -> Result<(i32, i64)> {
        let producer: FutureProducer = self.client().create()?;
        let mut owned = OwnedHeaders::new();
        for (k, v) in headers {
            owned = owned.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(owned);
        let delivered = producer
            .send(record, TIMEOUT)
            .await
            .map_err(|(e, _)| e)
            .context("raw produce")?;
        Ok((delivered.partition, delivered.offset))
    }
}

/// Redelivers every domain event: it reads each topic and writes every
/// message back onto it, same key, headers (so the same CloudEvents id) and
/// value, as a producer retry or a relay crash would. Its own copies carry a
/// marker header so it does not copy them again.
pub struct Duplicator {
    stop: CancellationToken,
    copied: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Result<()>>,
}

/// The header that marks the duplicator's copies.
pub const DUPLICATE_MARKER: &str = "x-test-duplicate";

impl Duplicator {
    /// Copies every event, from the beginning of each topic.
    pub fn start(bootstrap: &str) -> Result<Self> {
        Self::start_sampled(bootstrap, 1.0, false)
    }

    /// Copies each event with probability `ratio`; with `from_now`, only
    /// events written after it started (a broker other tests used before).
    pub fn start_sampled(bootstrap: &str, ratio: f64, from_now: bool) -> Result<Self> {
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", bootstrap);
        let consumer: StreamConsumer = client
            .clone()
            .set(
                "group.id",
                format!("test-duplicator-{}", uuid::Uuid::new_v4().simple()),
            )
            .set(
                "auto.offset.reset",
                if from_now { "latest" } else { "earliest" },
            )
            .set("fetch.wait.max.ms", "10")
            .create()?;
        let topics: Vec<&str> = Topic::ALL.iter().map(|t| t.name()).collect();
        consumer.subscribe(&topics)?;
        let producer: FutureProducer = client.set("linger.ms", "0").create()?;
        let stop = CancellationToken::new();
        let copied = Arc::new(AtomicU64::new(0));
        let task = {
            let (stop, copied) = (stop.clone(), copied.clone());
            tokio::spawn(async move {
                loop {
                    let message = tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        m = consumer.recv() => m,
                    };
                    // The broker away for a moment (a restart under test):
                    // the client reconnects by itself.
                    let message = match message {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::debug!(error = %e, "duplicator: consumer error");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let headers = message.headers().map(|h| h.detach()).unwrap_or_default();
                    // Events only: a redelivery is of an event (its id lets the
                    // inbox know it); a second copy of garbage is more garbage.
                    let is_event = headers.iter().any(|h| h.key == "ce_id");
                    if !is_event
                        || headers.iter().any(|h| h.key == DUPLICATE_MARKER)
                        || (ratio < 1.0 && !rand::random_bool(ratio))
                    {
                        continue;
                    }
                    let headers = headers.insert(Header {
                        key: DUPLICATE_MARKER,
                        value: Some("1"),
                    });
                    let mut record = FutureRecord::to(message.topic())
                        .payload(message.payload().unwrap_or_default())
                        .headers(headers);
                    if let Some(key) = message.key() {
                        record = record.key(key);
                    }
                    // Delivered within a minute, broker restarts included.
                    producer
                        .send(record, Duration::from_secs(60))
                        .await
                        .map_err(|(e, _)| e)?;
                    copied.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        Ok(Self { stop, copied, task })
    }

    pub fn copied(&self) -> u64 {
        self.copied.load(Ordering::SeqCst)
    }

    pub async fn stop(self) -> Result<u64> {
        self.stop.cancel();
        self.task.await??;
        Ok(self.copied.load(Ordering::SeqCst))
    }
}

/// A member of a consumer group and what it was assigned.
#[derive(Debug, Clone)]
pub struct GroupMember {
    pub id: String,
    /// Where it connects from: a Pod's address, in a cluster.
    pub host: String,
    /// `(topic, partition)`, as the group's leader assigned them.
    pub partitions: Vec<(String, i32)>,
}

/// The partitions of a member's assignment, in the consumer protocol's
/// encoding (version, then per topic its name and partitions, then user
/// data; the same in every version a client of the group may send).
fn assignment(bytes: &[u8]) -> Result<Vec<(String, i32)>> {
    struct Reader<'a>(&'a [u8]);
    impl Reader<'_> {
        fn take(&mut self, n: usize) -> Result<&[u8]> {
            if self.0.len() < n {
                bail!("an assignment cut short");
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Ok(head)
        }
        fn i16(&mut self) -> Result<i16> {
            Ok(i16::from_be_bytes(self.take(2)?.try_into()?))
        }
        fn i32(&mut self) -> Result<i32> {
            Ok(i32::from_be_bytes(self.take(4)?.try_into()?))
        }
    }
    let mut r = Reader(bytes);
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    r.i16()?; // version
    let mut partitions = Vec::new();
    for _ in 0..r.i32()?.max(0) {
        let len = usize::try_from(r.i16()?).context("a topic name's length")?;
        let topic = String::from_utf8(r.take(len)?.to_vec())?;
        for _ in 0..r.i32()?.max(0) {
            partitions.push((topic.clone(), r.i32()?));
        }
    }
    Ok(partitions)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_assignment_reads_as_its_topics_and_partitions() {
        // version 3, two topics, user data absent (-1).
        let mut bytes = vec![0, 3, 0, 0, 0, 2];
        for (topic, parts) in [("orders", vec![0i32, 5]), ("payments", vec![7])] {
            bytes.extend((topic.len() as i16).to_be_bytes());
            bytes.extend(topic.as_bytes());
            bytes.extend((parts.len() as i32).to_be_bytes());
            for p in parts {
                bytes.extend(p.to_be_bytes());
            }
        }
        bytes.extend((-1i32).to_be_bytes());
        assert_eq!(
            super::assignment(&bytes).unwrap(),
            [
                ("orders".to_string(), 0),
                ("orders".to_string(), 5),
                ("payments".to_string(), 7)
            ]
        );
        assert!(super::assignment(&bytes[..9]).is_err());
        assert!(super::assignment(&[]).unwrap().is_empty());
    }
}
