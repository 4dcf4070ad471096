//! CloudEvents 1.0 attributes in the Kafka protocol binding, binary mode: each
//! attribute is a `ce_`-prefixed header, the payload is the record value.
#![deny(clippy::unwrap_used, clippy::arithmetic_side_effects)]

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

pub const SPEC_VERSION: &str = "1.0";
/// Confluent-framed Avro; the schema id is inside the value.
pub const CONTENT_TYPE_AVRO: &str = "application/avro";

/// The envelope's metadata, carried as Kafka headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEventHeaders {
    /// UUIDv7: unique and roughly time-ordered; the inbox deduplicates on it.
    pub id: String,
    /// `/orderflow/<service>`.
    pub source: String,
    /// `io.orderflow.events.<EventName>`.
    pub event_type: String,
    pub time: DateTime<Utc>,
    /// The order id.
    pub subject: String,
    /// The `ce_id` of the event that caused this one (extension attribute).
    pub causation_id: Option<String>,
    /// W3C trace context.
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("missing CloudEvents header `{0}`")]
    Missing(&'static str),
    #[error("header `{name}` is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

const H_SPECVERSION: &str = "ce_specversion";
const H_ID: &str = "ce_id";
const H_SOURCE: &str = "ce_source";
const H_TYPE: &str = "ce_type";
const H_TIME: &str = "ce_time";
const H_SUBJECT: &str = "ce_subject";
const H_CAUSATION: &str = "ce_causationid";
const H_CONTENT_TYPE: &str = "content-type";
const H_TRACEPARENT: &str = "traceparent";
const H_TRACESTATE: &str = "tracestate";

/// Whether `s` is a W3C trace id: 32 lowercase hex digits, not all zero
/// (what a `traceparent` carries, and what Jaeger is asked for).
pub fn is_trace_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && s.bytes().any(|b| b != b'0')
}

impl CloudEventHeaders {
    /// The trace the event belongs to: the trace id of its `traceparent`
    /// (`00-<32 hex>-<16 hex>-<2 hex>`), when it has a valid one.
    pub fn trace_id(&self) -> Option<&str> {
        let mut parts = self.traceparent.as_deref()?.split('-');
        let (_version, trace_id) = (parts.next()?, parts.next()?);
        is_trace_id(trace_id).then_some(trace_id)
    }

    /// Metadata for a new event emitted by `service` about `subject`.
    pub fn new(service: &str, event_type: String, subject: impl Into<String>) -> Self {
        Self {
            id: Uuid::now_v7().to_string(),
            source: format!("/orderflow/{service}"),
            event_type,
            time: Utc::now(),
            subject: subject.into(),
            causation_id: None,
            traceparent: None,
            tracestate: None,
        }
    }

    /// The headers, in the order they are written to Kafka.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            (H_SPECVERSION, SPEC_VERSION.to_string()),
            (H_ID, self.id.clone()),
            (H_SOURCE, self.source.clone()),
            (H_TYPE, self.event_type.clone()),
            (
                H_TIME,
                self.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
            (H_SUBJECT, self.subject.clone()),
            (H_CONTENT_TYPE, CONTENT_TYPE_AVRO.to_string()),
        ];
        let optional = [
            (H_CAUSATION, &self.causation_id),
            (H_TRACEPARENT, &self.traceparent),
            (H_TRACESTATE, &self.tracestate),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                pairs.push((name, value.clone()));
            }
        }
        pairs
    }

    /// Reads the attributes from Kafka headers. Header names are matched
    /// case-insensitively, since intermediaries are known to change their case.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Self, HeaderError> {
        // One pass, each value copied once into its slot; names compared
        // without copying them. A repeated header: the first one counts.
        const NAMES: [&str; 9] = [
            H_SPECVERSION,
            H_ID,
            H_SOURCE,
            H_TYPE,
            H_TIME,
            H_SUBJECT,
            H_CAUSATION,
            H_TRACEPARENT,
            H_TRACESTATE,
        ];
        let mut found: [Option<String>; 9] = Default::default();
        for (k, v) in pairs {
            let slot = NAMES.iter().position(|name| k.eq_ignore_ascii_case(name));
            if let Some(slot) = slot.and_then(|i| found.get_mut(i)) {
                if slot.is_none() {
                    *slot = Some(String::from_utf8_lossy(v).into_owned());
                }
            }
        }
        let [spec, id, source, event_type, time, subject, causation_id, traceparent, tracestate] =
            found;
        let required =
            |value: Option<String>, name: &'static str| value.ok_or(HeaderError::Missing(name));

        let spec = required(spec, H_SPECVERSION)?;
        if spec != SPEC_VERSION {
            return Err(HeaderError::Invalid {
                name: H_SPECVERSION,
                reason: format!("expected {SPEC_VERSION}, got {spec}"),
            });
        }
        let time = required(time, H_TIME)?;
        let time = DateTime::parse_from_rfc3339(&time)
            .map_err(|e| HeaderError::Invalid {
                name: H_TIME,
                reason: e.to_string(),
            })?
            .with_timezone(&Utc);
        Ok(Self {
            id: required(id, H_ID)?,
            source: required(source, H_SOURCE)?,
            event_type: required(event_type, H_TYPE)?,
            time,
            subject: required(subject, H_SUBJECT)?,
            causation_id,
            traceparent,
            tracestate,
        })
    }

    /// The metadata of an event caused by this one: causation and trace context
    /// carry over, everything else is new.
    pub fn caused(&self, service: &str, event_type: String, subject: impl Into<String>) -> Self {
        let mut next = Self::new(service, event_type, subject);
        next.causation_id = Some(self.id.clone());
        next.traceparent = self.traceparent.clone();
        next.tracestate = self.tracestate.clone();
        next
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
    use super::*;

    #[test]
    fn headers_round_trip_and_match_names_case_insensitively() {
        let mut meta =
            CloudEventHeaders::new("order", "io.orderflow.events.OrderCreated".into(), "o-1");
        meta.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
        let pairs = meta.to_pairs();
        assert!(pairs
            .iter()
            .any(|(k, v)| *k == "ce_source" && v == "/orderflow/order"));
        let mut shouted: Vec<(String, Vec<u8>)> = pairs
            .iter()
            .map(|(k, v)| (k.to_uppercase(), v.as_bytes().to_vec()))
            .collect();
        // A header repeated later does not replace the first.
        shouted.push(("ce_id".into(), b"forged".to_vec()));
        let back =
            CloudEventHeaders::from_pairs(shouted.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .unwrap();
        // Time survives at millisecond precision.
        assert_eq!(back.time.timestamp_millis(), meta.time.timestamp_millis());
        assert_eq!(back.id, meta.id);
        assert_eq!(back.traceparent, meta.traceparent);
        assert_eq!(back.causation_id, None);
    }

    #[test]
    fn a_missing_id_is_reported_by_name() {
        let meta = CloudEventHeaders::new("order", "t".into(), "o-1");
        let pairs: Vec<_> = meta
            .to_pairs()
            .into_iter()
            .filter(|(k, _)| *k != "ce_id")
            .collect();
        let err = CloudEventHeaders::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_bytes())))
            .unwrap_err();
        assert_eq!(err, HeaderError::Missing("ce_id"));
    }

    #[test]
    fn the_trace_id_is_read_from_a_valid_traceparent_only() {
        let mut meta = CloudEventHeaders::new("order", "t".into(), "o-1");
        meta.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        assert_eq!(meta.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
            "garbage",
        ] {
            meta.traceparent = Some(bad.into());
            assert_eq!(meta.trace_id(), None, "{bad}");
        }
        meta.traceparent = None;
        assert_eq!(meta.trace_id(), None);
    }

    proptest::proptest! {
        /// Any headers a producer (or a forger) sets read as attributes or
        /// as an error naming the header, never a panic.
        #[test]
        fn any_headers_read_or_are_refused(
            pairs in proptest::collection::vec(
                ("(ce_[a-z]{2,12}|[a-zA-Z_]{0,12})", proptest::collection::vec(proptest::num::u8::ANY, 0..40)),
                0..12,
            ),
            time in ".{0,40}",
        ) {
            let _ = CloudEventHeaders::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
            let meta = CloudEventHeaders::new("order", "t".into(), "o-1");
            let mut real: Vec<(String, Vec<u8>)> = meta
                .to_pairs()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.into_bytes()))
                .collect();
            for (k, v) in real.iter_mut() {
                if k == "ce_time" {
                    *v = time.clone().into_bytes();
                }
            }
            let _ = CloudEventHeaders::from_pairs(real.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        }
    }
}
