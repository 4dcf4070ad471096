//! "Reviewed up to": a topic is a log, so purging dead letters deletes
//! nothing. An operator who has dealt with a service's dead letters marks
//! them reviewed; the marker is the committed offset of the consumer group
//! `orderflow-dlq-reviewed` on each partition of the dead-letter topic (with
//! when it was set in the commit's metadata), visible to any Kafka tool, and
//! listings start from it.

use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::id::DlqId;
use crate::kafka::{partitions, ReadError, TIMEOUT};
use crate::{DeadLetters, DlqError};

/// The consumer group whose committed offsets are the markers. It never
/// consumes; only `orderflow dlq purge` commits for it.
pub const REVIEW_GROUP: &str = "orderflow-dlq-reviewed";

/// How far an operator has reviewed one partition of a dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Marker {
    pub service: String,
    pub partition: i32,
    /// The first offset not reviewed: everything below it was.
    pub reviewed_up_to: i64,
    /// When the marker was set (RFC 3339).
    pub at: Option<String>,
}

impl DeadLetters {
    /// The markers set for these services' dead-letter topics.
    pub async fn markers(&self, services: &[String]) -> Result<Vec<Marker>, DlqError> {
        let client = self.client();
        let services = services.to_vec();
        let unreachable = |e: String| self.unreachable(e);
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = client.create()?;
            read_markers(&consumer, &services)
        })
        .await
        .expect("the read does not panic")
        .map_err(|e| e.into_dlq(unreachable))
    }

    /// Marks every dead letter of `service` (or of every service) reviewed,
    /// up to the end of its topic now, or up to and including `up_to` in its
    /// partition. A marker never moves back. Returns the markers it set.
    pub async fn mark_reviewed(
        &self,
        services: &[String],
        up_to: Option<&DlqId>,
    ) -> Result<Vec<Marker>, DlqError> {
        let client = self.client();
        let services = services.to_vec();
        let up_to = up_to.cloned();
        let unreachable = |e: String| self.unreachable(e);
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = client.create()?;
            let existing = read_markers(&consumer, &services)?;
            let at = Utc::now().to_rfc3339();
            let metadata = serde_json::json!({ "reviewed_at": at }).to_string();
            let mut tpl = TopicPartitionList::new();
            let mut set = Vec::new();
            for service in &services {
                let topic = orderflow_runtime::topics::dead_letter_topic(service);
                for partition in 0..partitions(&consumer, &topic)? as i32 {
                    let target = match &up_to {
                        Some(id) if id.service == *service && id.partition == partition => {
                            id.offset + 1
                        }
                        Some(_) => continue,
                        None => consumer.fetch_watermarks(&topic, partition, TIMEOUT)?.1,
                    };
                    let current = existing
                        .iter()
                        .find(|m| m.service == *service && m.partition == partition)
                        .map_or(0, |m| m.reviewed_up_to);
                    if target <= current {
                        continue;
                    }
                    tpl.add_partition_offset(&topic, partition, Offset::Offset(target))?;
                    if let Some(mut e) = tpl.find_partition(&topic, partition) {
                        e.set_metadata(metadata.clone());
                    }
                    set.push(Marker {
                        service: service.clone(),
                        partition,
                        reviewed_up_to: target,
                        at: Some(at.clone()),
                    });
                }
            }
            if tpl.count() > 0 {
                with_coordinator(|| consumer.commit(&tpl, CommitMode::Sync))?;
            }
            Ok::<_, ReadError>(set)
        })
        .await
        .expect("the commit does not panic")
        .map_err(|e| e.into_dlq(unreachable))
    }
}

fn read_markers(consumer: &BaseConsumer, services: &[String]) -> Result<Vec<Marker>, ReadError> {
    let mut tpl = TopicPartitionList::new();
    for service in services {
        let topic = orderflow_runtime::topics::dead_letter_topic(service);
        for partition in 0..partitions(consumer, &topic)? as i32 {
            tpl.add_partition(&topic, partition);
        }
    }
    if tpl.count() == 0 {
        return Ok(Vec::new());
    }
    let committed = with_coordinator(|| consumer.committed_offsets(tpl.clone(), TIMEOUT))?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|e| {
            let Offset::Offset(offset) = e.offset() else {
                return None;
            };
            let service = e.topic().strip_suffix(".dlq")?.to_string();
            let at = serde_json::from_str::<serde_json::Value>(e.metadata())
                .ok()
                .and_then(|v| v["reviewed_at"].as_str().map(str::to_string));
            Some(Marker {
                service,
                partition: e.partition(),
                reviewed_up_to: offset,
                at,
            })
        })
        .collect())
}

/// Runs a request to the group's coordinator, again while the broker says it
/// is still electing or loading one: a broker that has just started answers
/// NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS for some seconds (seen as
/// `orderflow dlq` failing with "Not coordinator" right after a start).
fn with_coordinator<T>(mut request: impl FnMut() -> KafkaResult<T>) -> KafkaResult<T> {
    use RDKafkaErrorCode::*;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match request() {
            Err(e)
                if matches!(
                    e.rdkafka_error_code(),
                    Some(
                        NotCoordinator
                            | CoordinatorLoadInProgress
                            | CoordinatorNotAvailable
                            | WaitingForCoordinator
                    )
                ) && Instant::now() < deadline =>
            {
                tracing::debug!(error = %e, "the group coordinator is not ready; asking again");
                std::thread::sleep(Duration::from_millis(250));
            }
            other => return other,
        }
    }
}
