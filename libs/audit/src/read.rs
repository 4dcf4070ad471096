//! Reading the saga's topics from their start into a [`LogBook`]: every
//! domain topic, each event decoded through the schema registry. Messages
//! that are not orderflow events, or do not decode (the consumers
//! dead-lettered them), are counted and skipped; a registry that cannot be
//! reached stops the read.

use orderflow_envelope::{CloudEventHeaders, EventType, Topic};
use orderflow_runtime::log_reader::LogError;
use orderflow_runtime::{LogSource, Logged};
use tokio::sync::mpsc;

use crate::log::LogBook;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading the log: {0}")]
    Log(#[from] LogError),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("schema registry: {0}")]
    Registry(String),
}

/// Reads every domain topic to its end into `book`; `progress` is told how
/// many messages were read so far.
pub async fn read_log(
    source: &LogSource,
    book: &mut LogBook,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<(), ReadError> {
    let codec = source
        .codec()
        .map_err(|e| ReadError::Registry(e.to_string()))?;
    let (tx, mut rx) = mpsc::channel::<Logged>(4_096);
    let topics = Topic::ALL.iter().map(|t| t.name()).collect();
    let reader = source.read_to_end("audit", topics, tx)?;
    let mut read = 0u64;
    while let Some(logged) = rx.recv().await {
        read += 1;
        if read.is_multiple_of(10_000) {
            progress(read);
        }
        let Ok(meta) = CloudEventHeaders::from_pairs(logged.header_pairs()) else {
            book.skipped += 1;
            continue;
        };
        let Some(event_type) = EventType::from_ce_type(&meta.event_type) else {
            book.skipped += 1;
            continue;
        };
        match codec.decode(Some(event_type), &logged.payload).await {
            Ok(event) => book.apply(&meta.id, logged.timestamp_ms, &event),
            Err(e) if e.is_transient() => {
                drop(rx);
                let _ = reader.await;
                return Err(ReadError::Registry(e.to_string()));
            }
            Err(_) => book.skipped += 1,
        }
    }
    reader
        .await
        .map_err(|e| ReadError::Registry(format!("the log reader stopped: {e}")))??;
    progress(read);
    Ok(())
}
