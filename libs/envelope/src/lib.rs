//! The orderflow event envelope: the saga's events as Rust types, their Avro
//! schemas, the Confluent wire format and the CloudEvents Kafka headers.
//!
//! A producer turns an [`Event`] into an [`Envelope`] (headers + Avro bytes) with
//! [`Codec::encode`]; a consumer turns Kafka headers and bytes back into an
//! [`Event`] with [`Codec::decode`], resolving the writer's schema to its own.

mod codec;
mod events;
mod headers;
mod registry;
pub mod saga;

pub use codec::{Codec, DecodeError, EncodeError, Envelope};
pub use events::*;
pub use headers::{is_trace_id, CloudEventHeaders, HeaderError, CONTENT_TYPE_AVRO};
pub use registry::{HttpSchemaRegistry, RegistryConnection, RegistryError, SchemaRegistry};

/// The most any one string, byte array or collection in an event may claim
/// to hold. Events are a few hundred bytes and Kafka's messages at most a
/// mebibyte; without this a forged length prefix makes the Avro reader
/// allocate up to 512 MiB before it finds the payload is short.
pub const MAX_AVRO_ALLOCATION: usize = 1 << 20;

/// Sets the Avro reader's allocation bound (once per process; the first
/// codec made does it).
pub(crate) fn bound_avro_allocations() {
    apache_avro::util::max_allocation_bytes(MAX_AVRO_ALLOCATION);
}
