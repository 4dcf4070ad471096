//! Dead letters an operator can find, inspect and replay. A service parks a
//! message it cannot process on its dead-letter topic (`<service>.dlq`) with
//! the original key, value and headers plus `x-orderflow-dlq-*` headers
//! saying why and where from (libs/runtime). This crate reads them back:
//! [`DeadLetters::list`] with filters, [`DeadLetters::show`] with the payload
//! decoded through the schema registry, [`DeadLetters::replay`] onto the
//! topic it came from, and [`DeadLetters::mark_reviewed`], which records how
//! far an operator has looked (a topic is a log: nothing is deleted).
//! The CLI (`orderflow dlq`) and the gateway's operator API use it.

mod filter;
mod id;
mod kafka;
mod letter;
mod replay;
mod review;

pub use filter::{parse_since, Filter};
pub use id::DlqId;
pub use kafka::{Connection, DeadLetters, Listing};
pub use letter::{collapse_copies, DeadLetter, Decoded};
pub use replay::{ReplayOutcome, ReplaySummary, REPLAYED_FROM_HEADER, REPLAY_COUNT_HEADER};
pub use review::Marker;

/// What went wrong, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("cannot reach Kafka at {bootstrap} within {seconds} s ({reason}): check --bootstrap-servers or ORDERFLOW_KAFKA_BOOTSTRAP_SERVERS (and ORDERFLOW_KAFKA_PROPERTIES)")]
    Unreachable {
        bootstrap: String,
        seconds: u64,
        reason: String,
    },
    #[error("`{0}` is not a dead-letter id: ids look like inventory/0/42 (service/partition/offset), as `orderflow dlq list` prints them")]
    BadId(String),
    #[error("no dead letter {id}: {why}")]
    NotFound { id: String, why: String },
    #[error("`{0}` is not a service that dead-letters (order, inventory, payment, shipping, notification)")]
    UnknownService(String),
    #[error("dead letter {0} does not say which topic it came from (no x-orderflow-dlq-source-topic header): it cannot be replayed")]
    NoSource(String),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("schema registry: {0}")]
    Registry(String),
}
