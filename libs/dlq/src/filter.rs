//! Which dead letters a listing shows.

#![deny(clippy::unwrap_used, clippy::arithmetic_side_effects)]

use chrono::{DateTime, Duration, Utc};

use crate::letter::DeadLetter;

#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this service's dead letters.
    pub service: Option<String>,
    /// Only those that failed at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only this event type (`OrderCreated`), compared case-insensitively.
    pub event_type: Option<String>,
    /// Only this order's.
    pub order_id: Option<String>,
    /// Only those whose error contains this text (case-insensitively).
    pub error: Option<String>,
    /// At most this many, the newest.
    pub limit: Option<usize>,
    /// Those an operator marked reviewed too.
    pub include_reviewed: bool,
}

impl Filter {
    pub fn matches(&self, l: &DeadLetter) -> bool {
        let contains =
            |haystack: &str, needle: &str| haystack.to_lowercase().contains(&needle.to_lowercase());
        self.service.as_ref().is_none_or(|s| *s == l.id.service)
            && self.since.is_none_or(|t| l.failed_at >= t)
            && self.event_type.as_ref().is_none_or(|t| {
                l.event_type
                    .as_ref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(t))
            })
            && self
                .order_id
                .as_ref()
                .is_none_or(|o| l.order_id.as_deref() == Some(o.as_str()))
            && self.error.as_ref().is_none_or(|e| contains(&l.error, e))
    }
}

/// `30s`, `15m`, `1h`, `7d`: how far back from now. A span reaching past
/// what a timestamp can hold is an error, not a panic.
pub fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}` has no unit: use s, m, h or d, e.g. 1h"))?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("`{s}` does not start with a number: e.g. 30m or 1h"))?;
    let span = match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        other => {
            return Err(format!(
                "`{other}` is not a unit: use s, m, h or d, e.g. 1h"
            ))
        }
    };
    span.and_then(|span| now.checked_sub_signed(span))
        .ok_or_else(|| format!("`{s}` reaches back further than any time orderflow can name"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn letter(service: &str, at: i64, event_type: &str, order: &str, error: &str) -> DeadLetter {
        let headers = vec![
            (
                "ce_type".to_string(),
                format!("io.orderflow.events.{event_type}").into_bytes(),
            ),
            ("ce_subject".to_string(), order.as_bytes().to_vec()),
            (
                "x-orderflow-dlq-error".to_string(),
                error.as_bytes().to_vec(),
            ),
        ];
        DeadLetter::from_parts(
            format!("{service}/0/1").parse().unwrap(),
            None,
            headers,
            None,
            Some(at),
        )
    }

    #[test]
    fn every_filter_narrows_and_none_keeps_everything() {
        let l = letter(
            "inventory",
            1_000_000,
            "OrderCreated",
            "o-1",
            "SKU-777 is not in the catalogue",
        );
        assert!(Filter::default().matches(&l));
        let with = |f: Filter| f.matches(&l);
        assert!(with(Filter {
            service: Some("inventory".into()),
            ..Default::default()
        }));
        assert!(!with(Filter {
            service: Some("payment".into()),
            ..Default::default()
        }));
        let at = DateTime::from_timestamp_millis(1_000_000).unwrap();
        assert!(
            with(Filter {
                since: Some(at),
                ..Default::default()
            }),
            "at the boundary"
        );
        assert!(!with(Filter {
            since: Some(at + Duration::milliseconds(1)),
            ..Default::default()
        }));
        assert!(with(Filter {
            event_type: Some("ordercreated".into()),
            ..Default::default()
        }));
        assert!(!with(Filter {
            event_type: Some("OrderCancelled".into()),
            ..Default::default()
        }));
        assert!(with(Filter {
            order_id: Some("o-1".into()),
            ..Default::default()
        }));
        assert!(!with(Filter {
            order_id: Some("o-10".into()),
            ..Default::default()
        }));
        assert!(with(Filter {
            error: Some("not in THE catalogue".into()),
            ..Default::default()
        }));
        assert!(!with(Filter {
            error: Some("timeout".into()),
            ..Default::default()
        }));
    }

    #[test]
    fn since_reads_a_span_back_from_now() {
        let now = DateTime::from_timestamp(100_000, 0).unwrap();
        assert_eq!(
            parse_since("90s", now).unwrap(),
            now - Duration::seconds(90)
        );
        assert_eq!(
            parse_since("15m", now).unwrap(),
            now - Duration::minutes(15)
        );
        assert_eq!(parse_since("1h", now).unwrap(), now - Duration::hours(1));
        assert_eq!(parse_since("2d", now).unwrap(), now - Duration::days(2));
        for bad in ["1", "h", "1w", "-1h", ""] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_span_past_any_timestamp_is_an_error_not_a_panic() {
        let now = DateTime::from_timestamp(100_000, 0).unwrap();
        for huge in [
            "99999999999999999d",
            "9223372036854775807s",
            "9223372036854775807m",
            "99999999999999h",
            "99999999999999999999d",
        ] {
            assert!(parse_since(huge, now).is_err(), "{huge}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_time_or_an_error(s in ".{0,40}", n in proptest::num::u64::ANY, unit in "[smhdx]") {
            let now = Utc::now();
            let _ = parse_since(&s, now);
            let _ = parse_since(&format!("{n}{unit}"), now);
        }
    }
}
