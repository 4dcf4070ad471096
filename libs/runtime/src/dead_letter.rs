//! Dead letters keep the original key, value and headers, plus why and where
//! the message failed, so they can be inspected and replayed. One the broker
//! refuses for good (too large, topic missing, not authorized) is kept in the
//! service database instead of being retried forever.

use crate::db::Database;
use crate::sql;

use crate::consumer::retry::{Source, RETRY_HEADER_PREFIX};

/// Every header the runtime adds to a dead letter starts with this.
pub const DEAD_LETTER_HEADER_PREFIX: &str = "x-orderflow-dlq-";

/// The original headers (without earlier dead-letter or retry headers)
/// followed by the dead-letter ones.
pub fn dead_letter_headers(
    original: &[(String, Vec<u8>)],
    source: &Source,
    service: &str,
    error: &str,
    attempts: u32,
) -> Vec<(String, Vec<u8>)> {
    let mut headers: Vec<(String, Vec<u8>)> = original
        .iter()
        .filter(|(k, _)| {
            !k.starts_with(DEAD_LETTER_HEADER_PREFIX) && !k.starts_with(RETRY_HEADER_PREFIX)
        })
        .cloned()
        .collect();
    let error: String = error.chars().take(4_000).collect();
    let added = [
        ("error", error),
        ("source-topic", source.topic.clone()),
        ("source-partition", source.partition.to_string()),
        ("source-offset", source.offset.to_string()),
        ("attempts", attempts.to_string()),
        ("service", service.to_string()),
        ("failed-at", chrono::Utc::now().to_rfc3339()),
    ];
    headers.extend(
        added
            .into_iter()
            .map(|(k, v)| (format!("{DEAD_LETTER_HEADER_PREFIX}{k}"), v.into_bytes())),
    );
    headers
}

/// Keeps a dead letter the broker refused for good; writing it again is a no-op.
#[allow(clippy::too_many_arguments)]
pub async fn keep_unwritten(
    db: &Database,
    consumer: &str,
    source: &Source,
    key: Option<&[u8]>,
    headers: &[(String, Vec<u8>)],
    payload: Option<&[u8]>,
    error: &str,
    produce_error: &str,
) -> Result<(), sqlx::Error> {
    sql::query(
        "INSERT INTO orderflow_dead_letters_unwritten
            (consumer, source_topic, source_partition, source_offset, message_key, headers, payload, error, produce_error, parked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (consumer, source_topic, source_partition, source_offset) DO NOTHING",
    )
    .bind(consumer)
    .bind(&source.topic)
    .bind(i64::from(source.partition))
    .bind(source.offset)
    .bind(key.map(<[u8]>::to_vec))
    .bind(crate::db::headers_json(headers))
    .bind(payload.map(<[u8]>::to_vec))
    .bind(error)
    .bind(produce_error)
    .bind(crate::now_millis())
    .execute(&mut db.acquire().await?)
    .await?;
    Ok(())
}
