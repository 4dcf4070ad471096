//! A dead letter's id: `<service>/<partition>/<offset>` on `<service>.dlq`.
#![deny(clippy::unwrap_used, clippy::arithmetic_side_effects)]

use std::fmt;
use std::str::FromStr;

use crate::DlqError;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DlqId {
    pub service: String,
    pub partition: i32,
    pub offset: i64,
}

impl DlqId {
    /// The dead-letter topic it lives on.
    pub fn topic(&self) -> String {
        orderflow_runtime::topics::dead_letter_topic(&self.service)
    }
}

impl fmt::Display for DlqId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.service, self.partition, self.offset)
    }
}

impl serde::Serialize for DlqId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for DlqId {
    type Err = DlqError;

    fn from_str(s: &str) -> Result<Self, DlqError> {
        let bad = || DlqError::BadId(s.to_string());
        let mut parts = s.split('/');
        let (Some(service), Some(partition), Some(offset), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if !orderflow_runtime::topics::CONSUMING_SERVICES.contains(&service) {
            return Err(DlqError::UnknownService(service.to_string()));
        }
        Ok(Self {
            service: service.to_string(),
            partition: partition.parse().ok().filter(|p| *p >= 0).ok_or_else(bad)?,
            offset: offset.parse().ok().filter(|o| *o >= 0).ok_or_else(bad)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
    use super::*;

    #[test]
    fn ids_read_back_as_written() {
        let id: DlqId = "inventory/3/42".parse().unwrap();
        assert_eq!(
            id,
            DlqId {
                service: "inventory".into(),
                partition: 3,
                offset: 42
            }
        );
        assert_eq!(id.to_string(), "inventory/3/42");
        assert_eq!(id.topic(), "inventory.dlq");
    }

    #[test]
    fn malformed_ids_say_what_an_id_looks_like() {
        for bad in [
            "inventory/3",
            "inventory/3/42/1",
            "inventory/x/1",
            "inventory/-1/1",
            "inventory/1/-4",
            "",
        ] {
            let err = bad.parse::<DlqId>().unwrap_err();
            assert!(
                matches!(err, DlqError::BadId(_) | DlqError::UnknownService(_)),
                "{bad}: {err}"
            );
        }
        assert!(matches!(
            "billing/0/1".parse::<DlqId>(),
            Err(DlqError::UnknownService(s)) if s == "billing"
        ));
        assert!("x/1"
            .parse::<DlqId>()
            .unwrap_err()
            .to_string()
            .contains("inventory/0/42"));
    }

    proptest::proptest! {
        /// Any text is an id or a refusal naming it, never a panic.
        #[test]
        fn any_text_is_an_id_or_refused(s in ".{0,60}", p in proptest::num::i64::ANY, o in "[0-9-]{0,25}") {
            let _ = s.parse::<DlqId>();
            let _ = format!("inventory/{p}/{o}").parse::<DlqId>();
        }
    }
}
