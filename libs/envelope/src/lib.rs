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

pub use codec::{Codec, DecodeError, EncodeError, Envelope};
pub use events::*;
pub use headers::{CloudEventHeaders, HeaderError, CONTENT_TYPE_AVRO};
pub use registry::{HttpSchemaRegistry, RegistryConnection, RegistryError, SchemaRegistry};
