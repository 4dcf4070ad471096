//! Replaying a dead letter: it goes back onto the topic it was first read
//! from, with its original key, value and headers, plus where it was
//! replayed from and how many replays its lineage has seen. Consumers that
//! applied it before find it in their inbox (same CloudEvents id) and do
//! nothing; the service that dead-lettered it handles it again; if it fails
//! again, it returns to the dead-letter topic with these headers, its
//! lineage. Every replay is recorded in the compacted topic
//! `orderflow.dlq-replays` (by dead-letter id), so a bulk replay skips what
//! was replayed already.

use std::collections::HashMap;

use chrono::Utc;
use orderflow_runtime::log_reader::read_to_end;
use orderflow_runtime::topics::REPLAY_LOG_TOPIC;
use orderflow_runtime::Producer;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use serde::{Deserialize, Serialize};

use crate::kafka::{partitions, ReadError};
use crate::letter::DeadLetter;
use crate::{DeadLetters, DlqError};

/// The dead letter a replayed message is a replay of (`inventory/0/42`).
pub const REPLAYED_FROM_HEADER: &str = "x-orderflow-replayed-from";
/// How many replays the message's lineage has seen, this one included.
pub const REPLAY_COUNT_HEADER: &str = "x-orderflow-replay-count";

/// What happened to one dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReplayOutcome {
    Replayed {
        id: String,
        topic: String,
        partition: i32,
        offset: i64,
        replay_count: u32,
    },
    /// `--dry-run`: it would go to this topic.
    WouldReplay {
        id: String,
        topic: String,
    },
    Skipped {
        id: String,
        reason: String,
    },
    Failed {
        id: String,
        reason: String,
    },
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplaySummary {
    pub replayed: usize,
    pub skipped: usize,
    pub failed: usize,
    pub outcomes: Vec<ReplayOutcome>,
}

/// One record of the replay log.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Replayed {
    /// Times this dead letter was replayed.
    times: u32,
    at: String,
    /// `topic/partition/offset` of the last replay.
    to: String,
}

impl DeadLetters {
    /// How many times each dead letter (by id) was replayed.
    pub async fn replays(&self) -> Result<HashMap<String, u32>, DlqError> {
        let client = self.client();
        let unreachable = |e: String| self.unreachable(e);
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = client.create()?;
            if partitions(&consumer, REPLAY_LOG_TOPIC)? == 0 {
                return Err(ReadError::NotFound(format!(
                    "the replay log topic {REPLAY_LOG_TOPIC} does not exist: create it with `orderflow topics apply`"
                )));
            }
            let mut times = HashMap::new();
            let from_start = |_: &str, _: i32, low: i64, _: i64| Some(low);
            read_to_end(&consumer, &[REPLAY_LOG_TOPIC], &from_start, |m| {
                let record = m
                    .payload()
                    .and_then(|p| serde_json::from_slice::<Replayed>(p).ok());
                if let (Some(key), Some(record)) = (m.key(), record) {
                    times.insert(String::from_utf8_lossy(key).into_owned(), record.times);
                }
            })?;
            Ok(times)
        })
        .await
        .expect("the read does not panic")
        .map_err(|e| match e {
            ReadError::NotFound(why) => DlqError::NotFound {
                id: REPLAY_LOG_TOPIC.into(),
                why,
            },
            other => other.into_dlq(unreachable),
        })
    }

    /// Replays `letters` onto the topics they came from. A dead letter
    /// replayed before is skipped unless `again`; with `dry_run` nothing is
    /// written. `progress` is told how many are done after each one.
    pub async fn replay(
        &self,
        letters: &[DeadLetter],
        dry_run: bool,
        again: bool,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<ReplaySummary, DlqError> {
        let previous = self.replays().await?;
        let producer = Producer::standalone(&self.conn.runtime_config(), "orderflow-dlq-replay")
            .map_err(|e| self.unreachable(e))?;
        let mut summary = ReplaySummary::default();
        for (i, letter) in letters.iter().enumerate() {
            let outcome = self
                .replay_one(&producer, letter, &previous, dry_run, again)
                .await?;
            match &outcome {
                ReplayOutcome::Replayed { .. } | ReplayOutcome::WouldReplay { .. } => {
                    summary.replayed += 1
                }
                ReplayOutcome::Skipped { .. } => summary.skipped += 1,
                ReplayOutcome::Failed { .. } => summary.failed += 1,
            }
            summary.outcomes.push(outcome);
            progress(i + 1);
        }
        Ok(summary)
    }

    async fn replay_one(
        &self,
        producer: &Producer,
        letter: &DeadLetter,
        previous: &HashMap<String, u32>,
        dry_run: bool,
        again: bool,
    ) -> Result<ReplayOutcome, DlqError> {
        let id = letter.id.to_string();
        let Some((topic, _, _)) = &letter.source else {
            return Ok(ReplayOutcome::Failed {
                reason: DlqError::NoSource(id.clone()).to_string(),
                id,
            });
        };
        let times = previous.get(&id).copied().unwrap_or(0);
        if times > 0 && !again {
            return Ok(ReplayOutcome::Skipped {
                id,
                reason: format!("replayed {times} time(s) already; --again replays it once more"),
            });
        }
        if dry_run {
            return Ok(ReplayOutcome::WouldReplay {
                id,
                topic: topic.clone(),
            });
        }
        let replay_count = letter.replay_count + times + 1;
        let mut headers = letter.original_headers();
        headers.push((REPLAYED_FROM_HEADER.into(), id.clone().into_bytes()));
        headers.push((
            REPLAY_COUNT_HEADER.into(),
            replay_count.to_string().into_bytes(),
        ));
        let key = letter.key.clone().unwrap_or_default();
        let payload = letter.payload.clone().unwrap_or_default();
        let (partition, offset) = match producer
            .send_and_wait(topic, &key, &headers, &payload)
            .await
        {
            Ok(landed) => landed,
            Err(e) => {
                return Ok(ReplayOutcome::Failed {
                    id,
                    reason: format!("{topic} refused it: {e}"),
                })
            }
        };
        let record = Replayed {
            times: times + 1,
            at: Utc::now().to_rfc3339(),
            to: format!("{topic}/{partition}/{offset}"),
        };
        let record = serde_json::to_vec(&record).expect("a record serializes");
        producer
            .send_and_wait(REPLAY_LOG_TOPIC, id.as_bytes(), &[], &record)
            .await
            .map_err(DlqError::Kafka)?;
        Ok(ReplayOutcome::Replayed {
            id,
            topic: topic.clone(),
            partition,
            offset,
            replay_count,
        })
    }
}
