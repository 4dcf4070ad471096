//! One dead letter as an operator sees it: what it was, why it failed and
//! where it came from, read back from its headers.

use chrono::{DateTime, Utc};
use orderflow_runtime::{DEAD_LETTER_HEADER_PREFIX, RETRY_HEADER_PREFIX};
use serde::Serialize;

use crate::id::DlqId;
use crate::replay::{REPLAYED_FROM_HEADER, REPLAY_COUNT_HEADER};

#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: DlqId,
    /// When the service gave up on it (`x-orderflow-dlq-failed-at`), or when
    /// the dead-letter topic received it.
    pub failed_at: DateTime<Utc>,
    /// The CloudEvents type's short name (`OrderCreated`), when it had one.
    pub event_type: Option<String>,
    /// The order it concerns: `ce_subject`, or else the message key.
    pub order_id: Option<String>,
    pub attempts: u32,
    pub error: String,
    /// Where it was first read: topic, partition, offset.
    pub source: Option<(String, i32, i64)>,
    /// The dead letter it is a replay of, and how many replays led to it.
    pub replayed_from: Option<String>,
    pub replay_count: u32,
    /// How many records on the dead-letter topic this one stands for: more
    /// than 1 when the service dead-lettered the same source message again
    /// (it was redelivered after a crash or rebalance before its offset was
    /// committed; dead-lettering is at least once). See [`collapse_copies`].
    pub copies: u32,
    #[serde(skip)]
    pub key: Option<Vec<u8>>,
    /// Every header, in order, as text (lossy for binary values).
    pub headers: Vec<(String, String)>,
    #[serde(skip)]
    pub raw_headers: Vec<(String, Vec<u8>)>,
    #[serde(skip)]
    pub payload: Option<Vec<u8>>,
}

/// A payload as an operator reads it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "as", rename_all = "lowercase")]
pub enum Decoded {
    /// Decoded through the registry with the writer's schema.
    Json {
        value: serde_json::Value,
    },
    /// Not decodable (why), shown as hex.
    Hex {
        hex: String,
        why: String,
    },
    Empty,
}

/// One dead letter per failure: records of one service with the same source
/// (topic, partition, offset) and the same replay lineage are copies of one
/// dead letter, written again because the message was redelivered before its
/// offset was committed. The first (lowest offset) stands for all of them and
/// counts them in `copies`; replaying it replays the message once. Records
/// without a source header are never merged.
pub fn collapse_copies(letters: Vec<DeadLetter>) -> Vec<DeadLetter> {
    use std::collections::HashMap;
    type Key = (String, (String, i32, i64), Option<String>, u32);
    let mut first: HashMap<Key, usize> = HashMap::new();
    let mut kept: Vec<DeadLetter> = Vec::with_capacity(letters.len());
    let mut letters = letters;
    letters.sort_by(|a, b| a.id.cmp(&b.id));
    for letter in letters {
        let Some(source) = letter.source.clone() else {
            kept.push(letter);
            continue;
        };
        let key = (
            letter.id.service.clone(),
            source,
            letter.replayed_from.clone(),
            letter.replay_count,
        );
        match first.get(&key) {
            Some(&i) => kept[i].copies += 1,
            None => {
                first.insert(key, kept.len());
                kept.push(letter);
            }
        }
    }
    kept
}

impl DeadLetter {
    /// Reads a dead letter from the message at `id` on its topic;
    /// `timestamp_ms` is the broker's timestamp, used when the message has no
    /// `failed-at` header.
    pub fn from_parts(
        id: DlqId,
        key: Option<&[u8]>,
        headers: Vec<(String, Vec<u8>)>,
        payload: Option<&[u8]>,
        timestamp_ms: Option<i64>,
    ) -> Self {
        let text = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let dlq = |name: &str| text(&format!("{DEAD_LETTER_HEADER_PREFIX}{name}"));
        let failed_at = dlq("failed-at")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc))
            .or_else(|| timestamp_ms.and_then(DateTime::from_timestamp_millis))
            .unwrap_or(DateTime::UNIX_EPOCH);
        let source = match (
            dlq("source-topic"),
            dlq("source-partition").and_then(|p| p.parse().ok()),
            dlq("source-offset").and_then(|o| o.parse().ok()),
        ) {
            (Some(topic), Some(partition), Some(offset)) => Some((topic, partition, offset)),
            _ => None,
        };
        let key_text = key.map(|k| String::from_utf8_lossy(k).into_owned());
        Self {
            failed_at,
            event_type: text("ce_type").map(|t| t.rsplit('.').next().unwrap_or(&t).to_string()),
            order_id: text("ce_subject").or(key_text),
            attempts: dlq("attempts").and_then(|a| a.parse().ok()).unwrap_or(1),
            error: dlq("error").unwrap_or_default(),
            source,
            replayed_from: text(REPLAYED_FROM_HEADER),
            replay_count: text(REPLAY_COUNT_HEADER)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0),
            copies: 1,
            key: key.map(<[u8]>::to_vec),
            headers: headers
                .iter()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
                .collect(),
            raw_headers: headers,
            payload: payload.map(<[u8]>::to_vec),
            id,
        }
    }

    /// The headers the message had before it failed: without the runtime's
    /// dead-letter and retry headers, and without earlier replay headers.
    pub fn original_headers(&self) -> Vec<(String, Vec<u8>)> {
        self.raw_headers
            .iter()
            .filter(|(k, _)| {
                !k.starts_with(DEAD_LETTER_HEADER_PREFIX)
                    && !k.starts_with(RETRY_HEADER_PREFIX)
                    && k != REPLAYED_FROM_HEADER
                    && k != REPLAY_COUNT_HEADER
            })
            .cloned()
            .collect()
    }

    /// The error, cut to `width` characters for a table.
    pub fn short_error(&self, width: usize) -> String {
        let one_line = self.error.replace(['\n', '\r'], " ");
        if one_line.chars().count() <= width {
            one_line
        } else {
            let cut: String = one_line.chars().take(width.saturating_sub(1)).collect();
            format!("{cut}…")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(headers: &[(&str, &str)]) -> DeadLetter {
        DeadLetter::from_parts(
            "inventory/2/7".parse().unwrap(),
            Some(b"o-1"),
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
            Some(b"\x00\x00\x00\x00\x01"),
            Some(1_700_000_000_000),
        )
    }

    #[test]
    fn a_dead_letter_reads_its_headers() {
        let l = letter(&[
            ("ce_type", "io.orderflow.events.OrderCreated"),
            ("ce_subject", "o-42"),
            ("x-orderflow-dlq-error", "SKU-777 is not in the catalogue"),
            ("x-orderflow-dlq-source-topic", "orders"),
            ("x-orderflow-dlq-source-partition", "5"),
            ("x-orderflow-dlq-source-offset", "99"),
            ("x-orderflow-dlq-attempts", "3"),
            ("x-orderflow-dlq-failed-at", "2026-12-02T10:00:00+00:00"),
            ("x-orderflow-replayed-from", "inventory/1/1"),
            ("x-orderflow-replay-count", "2"),
        ]);
        assert_eq!(l.event_type.as_deref(), Some("OrderCreated"));
        assert_eq!(l.order_id.as_deref(), Some("o-42"));
        assert_eq!(l.error, "SKU-777 is not in the catalogue");
        assert_eq!(l.source, Some(("orders".into(), 5, 99)));
        assert_eq!(l.attempts, 3);
        assert_eq!(l.failed_at.to_rfc3339(), "2026-12-02T10:00:00+00:00");
        assert_eq!(
            (l.replayed_from.as_deref(), l.replay_count),
            (Some("inventory/1/1"), 2)
        );
        let kept: Vec<String> = l.original_headers().into_iter().map(|(k, _)| k).collect();
        assert_eq!(kept, ["ce_type", "ce_subject"]);
    }

    fn copy(id: &str, source_offset: &str, replayed_from: Option<&str>) -> DeadLetter {
        let mut headers = vec![
            ("x-orderflow-dlq-source-topic", "payments"),
            ("x-orderflow-dlq-source-partition", "3"),
            ("x-orderflow-dlq-source-offset", source_offset),
        ];
        if let Some(from) = replayed_from {
            headers.push(("x-orderflow-replayed-from", from));
        }
        DeadLetter {
            id: id.parse().unwrap(),
            ..letter(&headers)
        }
    }

    #[test]
    fn copies_of_one_dead_letter_are_listed_once() {
        let letters = vec![
            copy("inventory/0/9", "40", None),
            copy("inventory/0/4", "40", None),
            copy("shipping/0/4", "40", None),
            copy("inventory/1/2", "41", None),
            copy("inventory/0/12", "40", Some("inventory/0/4")),
            DeadLetter {
                id: "inventory/0/20".parse().unwrap(),
                ..letter(&[])
            },
            DeadLetter {
                id: "inventory/0/21".parse().unwrap(),
                ..letter(&[])
            },
        ];
        let kept: Vec<(String, u32)> = collapse_copies(letters)
            .iter()
            .map(|l| (l.id.to_string(), l.copies))
            .collect();
        assert_eq!(
            kept,
            [
                ("inventory/0/4".to_string(), 2),
                ("inventory/0/12".to_string(), 1),
                ("inventory/0/20".to_string(), 1),
                ("inventory/0/21".to_string(), 1),
                ("inventory/1/2".to_string(), 1),
                ("shipping/0/4".to_string(), 1),
            ],
            "the first copy stands for the second; another service, offset, lineage or no source is another dead letter"
        );
    }

    #[test]
    fn a_bare_message_still_reads() {
        let l = letter(&[]);
        assert_eq!(l.order_id.as_deref(), Some("o-1"), "the key stands in");
        assert_eq!((l.attempts, l.replay_count), (1, 0));
        assert_eq!(l.source, None);
        assert_eq!(l.failed_at.timestamp_millis(), 1_700_000_000_000);
        assert_eq!(l.event_type, None);
    }

    #[test]
    fn a_long_error_is_cut_for_a_table() {
        let l = letter(&[("x-orderflow-dlq-error", "line one\nline two is long")]);
        assert_eq!(l.short_error(12), "line one li…");
        assert_eq!(l.short_error(100), "line one line two is long");
    }
}
