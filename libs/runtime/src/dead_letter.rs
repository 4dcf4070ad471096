//! Dead letters keep the original key, value and headers, plus why and where
//! the message failed, so they can be inspected and replayed.

use rdkafka::message::{Headers, Message, OwnedMessage};

/// Every header the runtime adds to a dead letter starts with this.
pub const DEAD_LETTER_HEADER_PREFIX: &str = "x-orderflow-dlq-";

/// The original headers followed by the dead-letter ones.
pub fn dead_letter_headers(
    message: &OwnedMessage,
    service: &str,
    error: &str,
    attempts: u32,
) -> Vec<(String, Vec<u8>)> {
    let mut headers: Vec<(String, Vec<u8>)> = message
        .headers()
        .map(|hs| {
            hs.iter()
                .filter(|h| !h.key.starts_with(DEAD_LETTER_HEADER_PREFIX))
                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    let added = [
        ("error", error.to_string()),
        ("source-topic", message.topic().to_string()),
        ("source-partition", message.partition().to_string()),
        ("source-offset", message.offset().to_string()),
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
