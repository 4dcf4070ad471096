//! Avro payloads in the Confluent wire format: magic byte 0, the writer schema's
//! 4-byte big-endian registry id, then the Avro binary datum.
#![deny(clippy::unwrap_used, clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;

use crate::events::{Event, EventType};
use crate::headers::CloudEventHeaders;
use crate::registry::{RegistryError, SchemaRegistry};

const MAGIC_BYTE: u8 = 0;
const HEADER_LEN: usize = 5;

/// An event ready for Kafka: key, CloudEvents headers and the framed Avro value.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub topic: &'static str,
    pub key: String,
    pub headers: CloudEventHeaders,
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("could not register the schema of {event}: {source}")]
    Registry {
        event: &'static str,
        source: RegistryError,
    },
    #[error("{event} does not match its Avro schema: {source}")]
    Avro {
        event: &'static str,
        source: Box<apache_avro::Error>,
    },
}

impl EncodeError {
    pub fn is_transient(&self) -> bool {
        matches!(self, EncodeError::Registry { source, .. } if source.is_transient())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("value is not in the Confluent wire format (expected magic byte 0 and a 4-byte schema id, got {len} bytes starting {prefix:02x?})")]
    NotFramed { len: usize, prefix: Vec<u8> },
    #[error("could not fetch writer schema {id}: {source}")]
    Registry { id: u32, source: RegistryError },
    #[error("writer schema {id} is not valid Avro: {reason}")]
    BadWriterSchema { id: u32, reason: String },
    #[error("writer schema {id} is the record `{name}`, which is not an orderflow event")]
    UnknownRecord { id: u32, name: String },
    #[error("the header ce_type says {header} but the payload is {payload}")]
    TypeMismatch { header: String, payload: String },
    #[error("payload does not decode with writer schema {id} as {event}: {reason}")]
    Avro {
        id: u32,
        event: &'static str,
        reason: String,
    },
}

impl DecodeError {
    /// Only a registry outage is worth retrying; anything else will fail the same way again.
    pub fn is_transient(&self) -> bool {
        matches!(self, DecodeError::Registry { source, .. } if source.is_transient())
    }
}

/// This build's schema of each event, parsed once per process: what it
/// writes, and what it reads other writers' data into.
static SCHEMAS: LazyLock<HashMap<EventType, Schema>> = LazyLock::new(|| {
    EventType::ALL
        .iter()
        .map(|&t| {
            let schema = Schema::parse_str(t.schema_json())
                .unwrap_or_else(|e| panic!("schemas/{}.avsc is not valid Avro: {e}", t.name()));
            (t, schema)
        })
        .collect()
});

/// A writer per event type. Building one resolves its schema's named types,
/// which cost as much as encoding an event: so once per process.
static WRITERS: LazyLock<HashMap<EventType, GenericDatumWriter<'static>>> = LazyLock::new(|| {
    SCHEMAS
        .iter()
        .map(|(&t, schema)| {
            let writer = GenericDatumWriter::builder(schema)
                .build()
                .unwrap_or_else(|e| panic!("schemas/{}.avsc has no writer: {e}", t.name()));
            (t, writer)
        })
        .collect()
});

/// How to read what one writer schema wrote.
struct Reading {
    event: EventType,
    /// Both schemas' named types resolved, once.
    reader: GenericDatumReader<'static>,
    /// The writer's schema is this build's own: the datum deserializes
    /// straight into the event, with no Avro value built and resolved
    /// between.
    own: bool,
}

/// Readings by writer schema text, for the life of the process. A
/// registered schema never changes and a process meets a handful, so each
/// is kept (leaked, for the readers to borrow) once, whatever its id in
/// whichever registry.
static READINGS: LazyLock<Mutex<HashMap<String, &'static Reading>>> =
    LazyLock::new(Default::default);

/// Encodes and decodes events against a schema registry, caching schema ids.
pub struct Codec {
    registry: Arc<dyn SchemaRegistry>,
    writer_ids: RwLock<HashMap<EventType, u32>>,
    readings: RwLock<HashMap<u32, &'static Reading>>,
}

impl Codec {
    pub fn new(registry: Arc<dyn SchemaRegistry>) -> Self {
        crate::bound_avro_allocations();
        LazyLock::force(&WRITERS);
        Self {
            registry,
            writer_ids: Default::default(),
            readings: Default::default(),
        }
    }

    /// The subject an event's schema is registered under: topic plus record name,
    /// because one topic carries several event types.
    pub fn subject(event_type: EventType) -> String {
        format!("{}-{}", event_type.topic().name(), event_type.ce_type())
    }

    /// Registers the schemas of the given events (a producer does this at start, so
    /// an incompatible schema stops it before it publishes anything).
    pub async fn register(&self, types: &[EventType]) -> Result<(), EncodeError> {
        for &t in types {
            self.writer_id(t).await?;
        }
        Ok(())
    }

    async fn writer_id(&self, t: EventType) -> Result<u32, EncodeError> {
        if let Some(id) = self.writer_ids.read().expect("lock").get(&t) {
            return Ok(*id);
        }
        let id = self
            .registry
            .register(&Self::subject(t), t.schema_json())
            .await
            .map_err(|source| EncodeError::Registry {
                event: t.name(),
                source,
            })?;
        self.writer_ids.write().expect("lock").insert(t, id);
        Ok(id)
    }

    /// The framed Avro bytes of `event`, serialized straight from its fields
    /// (a value that does not fit the schema is refused, as before writing).
    pub async fn encode(&self, event: &Event) -> Result<Vec<u8>, EncodeError> {
        let t = event.event_type();
        let id = self.writer_id(t).await?;
        let datum = event
            .write_avro(&WRITERS[&t])
            .map_err(|source| EncodeError::Avro {
                event: t.name(),
                source: Box::new(source),
            })?;
        Ok(schema_registry_converter::schema_registry_common::get_payload(id, datum))
    }

    /// A complete envelope for `event`, with the given metadata.
    pub async fn envelope(
        &self,
        event: &Event,
        headers: CloudEventHeaders,
    ) -> Result<Envelope, EncodeError> {
        Ok(Envelope {
            topic: event.event_type().topic().name(),
            key: event.order_id().to_string(),
            headers,
            payload: self.encode(event).await?,
        })
    }

    /// Decodes a framed value, resolving the writer's schema (fetched by id) to
    /// this build's reader schema, so fields added by newer producers are skipped
    /// and fields they dropped take the reader's defaults.
    pub async fn decode(
        &self,
        expected: Option<EventType>,
        payload: &[u8],
    ) -> Result<Event, DecodeError> {
        if payload.len() < HEADER_LEN || payload[0] != MAGIC_BYTE {
            return Err(DecodeError::NotFramed {
                len: payload.len(),
                prefix: payload.iter().take(HEADER_LEN).copied().collect(),
            });
        }
        let id = u32::from_be_bytes(payload[1..HEADER_LEN].try_into().expect("4 bytes"));
        let reading = self.reading(id).await?;
        let t = reading.event;
        if let Some(expected) = expected {
            if expected != t {
                return Err(DecodeError::TypeMismatch {
                    header: expected.ce_type(),
                    payload: t.ce_type(),
                });
            }
        }
        let avro = |e: apache_avro::Error| DecodeError::Avro {
            id,
            event: t.name(),
            reason: e.to_string(),
        };
        let mut datum = &payload[HEADER_LEN..];
        if reading.own {
            return Event::read_avro(t, &reading.reader, &mut datum).map_err(avro);
        }
        let value = reading.reader.read_value(&mut datum).map_err(avro)?;
        Event::from_avro_value(t, &value).map_err(avro)
    }

    async fn reading(&self, id: u32) -> Result<&'static Reading, DecodeError> {
        if let Some(found) = self.readings.read().expect("lock").get(&id) {
            return Ok(found);
        }
        let json = self
            .registry
            .schema_by_id(id)
            .await
            .map_err(|source| DecodeError::Registry { id, source })?;
        let reading = reading_of(id, json)?;
        self.readings.write().expect("lock").insert(id, reading);
        Ok(reading)
    }
}

/// The reading of writer schema `json` (registered as `id`), made once per
/// process.
fn reading_of(id: u32, json: String) -> Result<&'static Reading, DecodeError> {
    let mut all = READINGS.lock().expect("lock");
    if let Some(found) = all.get(&json) {
        return Ok(found);
    }
    let bad = |e: apache_avro::Error| DecodeError::BadWriterSchema {
        id,
        reason: e.to_string(),
    };
    let schema = Schema::parse_str(&json).map_err(bad)?;
    let name = match &schema {
        Schema::Record(record) => record.name.fullname(None),
        other => format!("{other:?}"),
    };
    let event = EventType::from_ce_type(&name).ok_or(DecodeError::UnknownRecord { id, name })?;
    let ours = &SCHEMAS[&event];
    // Equal schemas, logical types included (a canonical form drops them:
    // a writer's `timestamp-micros` would read as our milliseconds).
    let own = schema == *ours;
    let writer: &'static Schema = Box::leak(Box::new(schema));
    let reader = if own {
        GenericDatumReader::builder(writer).build()
    } else {
        GenericDatumReader::builder(writer)
            .reader_schema(ours)
            .build()
    }
    .map_err(bad)?;
    let reading: &'static Reading = Box::leak(Box::new(Reading { event, reader, own }));
    all.insert(json, reading);
    Ok(reading)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::events::*;

    /// A registry that keeps schemas in memory, numbering them in order.
    #[derive(Default)]
    struct MemoryRegistry(Mutex<Vec<(String, String)>>);

    #[async_trait]
    impl SchemaRegistry for MemoryRegistry {
        async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
            let mut all = self.0.lock().unwrap();
            if let Some(i) = all.iter().position(|(_, s)| s == schema) {
                return Ok(i as u32 + 1);
            }
            all.push((subject.to_string(), schema.to_string()));
            Ok(all.len() as u32)
        }
        async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
            let all = self.0.lock().unwrap();
            all.get(id as usize - 1)
                .map(|(_, s)| s.clone())
                .ok_or(RegistryError::UnknownId(id))
        }
    }

    fn reserved() -> Event {
        InventoryReserved {
            order_id: "o-1".into(),
            customer_id: "c-1".into(),
            lines: vec![ReservedLine {
                sku: "SKU-001".into(),
                quantity: 2,
                unit_price: Money::new(1999, "EUR"),
            }],
            total: Money::new(3998, "EUR"),
            payment_token: "tok_visa".into(),
            shipping_address: Address {
                name: "Ada".into(),
                line1: "1 Main St".into(),
                city: "Berlin".into(),
                postal_code: "10115".into(),
                country: "DE".into(),
            },
        }
        .into()
    }

    fn address() -> Address {
        match reserved() {
            Event::InventoryReserved(r) => r.shipping_address,
            _ => unreachable!(),
        }
    }

    /// One event of each type, every field set to something of its own.
    /// The match has no catch-all: a new event type needs a sample here.
    fn sample(t: EventType) -> Event {
        let (order_id, customer_id) = (String::from("o-1"), String::from("c-1"));
        let money = Money::new(3998, "EUR");
        match t {
            EventType::OrderCreated => OrderCreated {
                order_id,
                customer_id,
                items: vec![
                    OrderItem {
                        sku: "SKU-001".into(),
                        quantity: 2,
                    },
                    OrderItem {
                        sku: "SKU-002".into(),
                        quantity: 1,
                    },
                ],
                payment_token: "tok_visa".into(),
                shipping_address: address(),
                placed_at: 1_700_000_000_123,
                customer_email: Some("ada@example.com".into()),
            }
            .into(),
            EventType::OrderCompleted => OrderCompleted {
                order_id,
                customer_id,
                tracking_id: "TRK1".into(),
                total: money,
                completed_at: 1_700_000_000_456,
            }
            .into(),
            EventType::OrderCancelled => OrderCancelled {
                order_id,
                customer_id,
                reason: "OUT_OF_STOCK".into(),
                cancelled_at: 1_700_000_000_789,
            }
            .into(),
            EventType::InventoryReserved => reserved(),
            EventType::InventoryUnavailable => InventoryUnavailable {
                order_id,
                customer_id,
                missing_skus: vec!["SKU-002".into(), "SKU-003".into()],
            }
            .into(),
            EventType::InventoryReleased => InventoryReleased {
                order_id,
                customer_id,
                lines: vec![OrderItem {
                    sku: "SKU-001".into(),
                    quantity: 2,
                }],
                reason: "PAYMENT_DECLINED".into(),
            }
            .into(),
            EventType::PaymentProcessed => PaymentProcessed {
                order_id,
                customer_id,
                payment_id: "pay_1".into(),
                amount: money,
                shipping_address: address(),
            }
            .into(),
            EventType::PaymentFailed => PaymentFailed {
                order_id,
                customer_id,
                amount: money,
                reason: "card_declined".into(),
            }
            .into(),
            EventType::PaymentRefunded => PaymentRefunded {
                order_id,
                customer_id,
                payment_id: "pay_1".into(),
                amount: money,
                reason: "shipping failed".into(),
            }
            .into(),
            EventType::PaymentRefundFailed => PaymentRefundFailed {
                order_id,
                customer_id,
                payment_id: "pay_1".into(),
                amount: money,
                reason: "refused".into(),
            }
            .into(),
            EventType::ShipmentCreated => ShipmentCreated {
                order_id,
                customer_id,
                shipment_id: "shp_1".into(),
                tracking_id: "TRK1".into(),
                carrier: "orderflow-post".into(),
            }
            .into(),
            EventType::ShipmentFailed => ShipmentFailed {
                order_id,
                customer_id,
                reason: "not served".into(),
            }
            .into(),
            EventType::NotificationSent => NotificationSent {
                order_id,
                customer_id,
                notification_id: "ntf-shipped-o-1".into(),
                kind: "shipped".into(),
                channel: "log".into(),
            }
            .into(),
        }
    }

    #[tokio::test]
    async fn every_event_round_trips_through_the_wire_format() {
        let registry = Arc::new(MemoryRegistry::default());
        let codec = Codec::new(registry.clone());
        for &t in EventType::ALL {
            let event = sample(t);
            assert_eq!(event.event_type(), t);
            let bytes = codec.encode(&event).await.unwrap();
            assert_eq!(bytes[0], 0, "{}: magic byte", t.name());
            let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
            assert_eq!(
                registry.schema_by_id(id).await.unwrap(),
                t.schema_json(),
                "{}: the frame names the schema it was written with",
                t.name()
            );
            assert_eq!(
                registry.0.lock().unwrap()[id as usize - 1].0,
                format!("{}-io.orderflow.events.{}", t.topic().name(), t.name()),
                "{}: registered under topic + record name",
                t.name()
            );
            let back = codec.decode(Some(t), &bytes).await.unwrap();
            assert_eq!(back, event, "{}", t.name());
            assert_eq!(codec.decode(None, &bytes).await.unwrap(), event);
            let envelope = codec
                .envelope(&event, CloudEventHeaders::new("order", t.ce_type(), "o-1"))
                .await
                .unwrap();
            assert_eq!(
                (envelope.topic, envelope.key.as_str(), envelope.payload),
                (t.topic().name(), "o-1", bytes)
            );
        }
        assert_eq!(
            registry.0.lock().unwrap().len(),
            EventType::ALL.len(),
            "one schema per event type, registered once"
        );
    }

    /// Every sample, and an order without an email (the union's null).
    fn samples() -> Vec<Event> {
        let mut all: Vec<Event> = EventType::ALL.iter().map(|&t| sample(t)).collect();
        if let Event::OrderCreated(mut created) = sample(EventType::OrderCreated) {
            created.customer_email = None;
            all.push(created.into());
        }
        all
    }

    /// Events are written straight from their fields and read straight into
    /// them; the bytes and the events are those of the Avro-value path
    /// (value, resolved to the schema, validated, written; read, resolved,
    /// converted) that this replaced.
    #[tokio::test]
    async fn the_direct_path_agrees_with_the_value_path_byte_for_byte() {
        let codec = Codec::new(Arc::new(MemoryRegistry::default()));
        for event in samples() {
            let t = event.event_type();
            let schema = &SCHEMAS[&t];
            let value = event.to_avro_value().unwrap().resolve(schema).unwrap();
            let by_value = GenericDatumWriter::builder(schema)
                .build()
                .unwrap()
                .write_value_to_vec(value)
                .unwrap();
            let framed = codec.encode(&event).await.unwrap();
            assert_eq!(&framed[HEADER_LEN..], by_value.as_slice(), "{}", t.name());
            let resolved = GenericDatumReader::builder(schema)
                .reader_schema(schema)
                .build()
                .unwrap()
                .read_value(&mut &by_value[..])
                .unwrap();
            let read = Event::from_avro_value(t, &resolved).unwrap();
            assert_eq!(read, event, "{}", t.name());
            assert_eq!(codec.decode(Some(t), &framed).await.unwrap(), event);
        }
    }

    #[tokio::test]
    async fn a_payload_of_another_type_than_its_header_says_is_refused() {
        let codec = Codec::new(Arc::new(MemoryRegistry::default()));
        let bytes = codec.encode(&reserved()).await.unwrap();
        let err = codec
            .decode(Some(EventType::OrderCreated), &bytes)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DecodeError::TypeMismatch { header, payload }
                if header == "io.orderflow.events.OrderCreated"
                    && payload == "io.orderflow.events.InventoryReserved"),
            "{err}"
        );
        assert!(!err.is_transient());
        // A frame cut short of its header, and a datum cut short.
        let err = codec.decode(None, &bytes[..4]).await.unwrap_err();
        assert!(
            matches!(err, DecodeError::NotFramed { len: 4, .. }),
            "{err}"
        );
        let err = codec
            .decode(None, &bytes[..bytes.len() - 3])
            .await
            .unwrap_err();
        assert!(matches!(err, DecodeError::Avro { .. }), "{err}");
        let mut wrong_magic = bytes.clone();
        wrong_magic[0] = 1;
        let err = codec.decode(None, &wrong_magic).await.unwrap_err();
        assert!(matches!(err, DecodeError::NotFramed { .. }), "{err}");
    }

    /// A registry that refuses everything with this HTTP status.
    struct Refusing(u16);

    #[async_trait]
    impl SchemaRegistry for Refusing {
        async fn register(&self, subject: &str, _: &str) -> Result<u32, RegistryError> {
            Err(RegistryError::Rejected {
                what: subject.to_string(),
                status: self.0,
                code: 0,
                message: "refused".into(),
            })
        }
        async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
            Err(RegistryError::Rejected {
                what: format!("schema {id}"),
                status: self.0,
                code: 0,
                message: "refused".into(),
            })
        }
    }

    #[tokio::test]
    async fn a_registry_outage_is_worth_retrying_and_a_refusal_is_not() {
        let framed = [0, 0, 0, 0, 7, 2, 3];
        let down = Codec::new(Arc::new(Refusing(503)));
        let err = down.encode(&reserved()).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        let err = down.decode(None, &framed).await.unwrap_err();
        assert!(matches!(err, DecodeError::Registry { id: 7, .. }), "{err}");
        assert!(err.is_transient(), "{err}");
        let refusing = Codec::new(Arc::new(Refusing(409)));
        let err = refusing.encode(&reserved()).await.unwrap_err();
        assert!(matches!(
            err,
            EncodeError::Registry {
                event: "InventoryReserved",
                ..
            }
        ));
        assert!(!err.is_transient(), "{err}");
        let err = refusing.decode(None, &framed).await.unwrap_err();
        assert!(!err.is_transient(), "{err}");
    }

    #[tokio::test]
    async fn registering_at_start_registers_every_type_named() {
        let registry = Arc::new(MemoryRegistry::default());
        let codec = Codec::new(registry.clone());
        codec
            .register(&[EventType::OrderCreated, EventType::OrderCancelled])
            .await
            .unwrap();
        let subjects: Vec<String> = registry
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(s, _)| s.clone())
            .collect();
        assert_eq!(
            subjects,
            [
                "orders-io.orderflow.events.OrderCreated",
                "orders-io.orderflow.events.OrderCancelled"
            ]
        );
        let down = Codec::new(Arc::new(Refusing(503)));
        assert!(down.register(&[EventType::OrderCreated]).await.is_err());
    }

    #[tokio::test]
    async fn a_header_with_no_datum_is_framed_but_does_not_decode() {
        let registry = Arc::new(MemoryRegistry::default());
        let codec = Codec::new(registry.clone());
        let bytes = codec.encode(&reserved()).await.unwrap();
        // The five header bytes alone: framed (the schema is found), no datum.
        let err = codec.decode(None, &bytes[..5]).await.unwrap_err();
        assert!(matches!(err, DecodeError::Avro { .. }), "{err}");
        let err = codec.decode(None, &bytes[..4]).await.unwrap_err();
        assert!(
            matches!(err, DecodeError::NotFramed { len: 4, .. }),
            "{err}"
        );
    }

    /// `value` in the wire format, written with schema `writer` registered as `id`.
    fn frame(id: u32, writer: &Schema, value: apache_avro::types::Value) -> Vec<u8> {
        let mut framed = vec![0];
        framed.extend_from_slice(&id.to_be_bytes());
        let writer = GenericDatumWriter::builder(writer).build().unwrap();
        framed.extend(writer.write_value_to_vec(value).unwrap());
        framed
    }

    #[tokio::test]
    async fn an_old_reader_decodes_what_a_newer_writer_wrote() {
        let registry = Arc::new(MemoryRegistry::default());
        // v2 of ShipmentFailed adds an optional field with a default.
        let mut v2: serde_json::Value =
            serde_json::from_str(EventType::ShipmentFailed.schema_json()).unwrap();
        v2["fields"].as_array_mut().unwrap().push(serde_json::json!(
            {"name": "carrier_code", "type": ["null", "string"], "default": null}));
        let v2 = Schema::parse_str(&v2.to_string()).unwrap();
        let id = registry
            .register("shipments-x", &v2.canonical_form())
            .await
            .unwrap();
        let value = apache_avro::types::Value::Record(vec![
            ("order_id".into(), "o-9".into()),
            ("customer_id".into(), "c-9".into()),
            ("reason".into(), "country not served".into()),
            (
                "carrier_code".into(),
                apache_avro::types::Value::Union(1, Box::new("DHL".into())),
            ),
        ]);
        let framed = frame(id, &v2, value);

        let codec = Codec::new(registry);
        let event = codec.decode(None, &framed).await.unwrap();
        assert_eq!(
            event,
            Event::ShipmentFailed(ShipmentFailed {
                order_id: "o-9".into(),
                customer_id: "c-9".into(),
                reason: "country not served".into(),
            })
        );
    }

    /// A writer whose timestamps are microseconds has the same canonical
    /// form as ours (which drops logical types), but its data is not ours
    /// to read as milliseconds: refused, as resolving the schemas does.
    #[tokio::test]
    async fn a_writer_with_another_logical_type_is_not_read_as_our_own() {
        let registry = Arc::new(MemoryRegistry::default());
        let micros = EventType::OrderCancelled
            .schema_json()
            .replace("timestamp-millis", "timestamp-micros");
        let micros = Schema::parse_str(&micros).unwrap();
        assert_eq!(
            micros.canonical_form(),
            SCHEMAS[&EventType::OrderCancelled].canonical_form()
        );
        let id = registry
            .register("orders-x", &serde_json::to_string(&micros).unwrap())
            .await
            .unwrap();
        let value = apache_avro::types::Value::Record(vec![
            ("order_id".into(), "o-9".into()),
            ("customer_id".into(), "c-9".into()),
            ("reason".into(), "OUT_OF_STOCK".into()),
            (
                "cancelled_at".into(),
                apache_avro::types::Value::TimestampMicros(1_700_000_000_789_000),
            ),
        ]);
        let framed = frame(id, &micros, value);
        let codec = Codec::new(registry);
        let decoded = codec.decode(None, &framed).await;
        assert!(
            matches!(decoded, Err(DecodeError::Avro { .. })),
            "{decoded:?}"
        );
    }

    #[tokio::test]
    async fn garbage_is_a_clear_error() {
        let codec = Codec::new(Arc::new(MemoryRegistry::default()));
        let err = codec.decode(None, b"{\"hello\": 1}").await.unwrap_err();
        assert!(matches!(err, DecodeError::NotFramed { .. }), "{err}");
        assert!(!err.is_transient());
        let err = codec
            .decode(None, &[0, 0, 0, 0, 42, 1, 2])
            .await
            .unwrap_err();
        assert!(matches!(err, DecodeError::Registry { id: 42, .. }), "{err}");
    }

    /// A forged length prefix claiming a string of 100 MB is refused at the
    /// claim, not allocated and then found short.
    #[tokio::test]
    async fn a_forged_length_is_refused_before_it_is_allocated() {
        let codec = Codec::new(Arc::new(MemoryRegistry::default()));
        let bytes = codec.encode(&reserved()).await.unwrap();
        let mut forged = bytes[..HEADER_LEN].to_vec();
        // The first field (order_id) as a string of 100,000,000 bytes: the
        // zig-zag varint of 100,000,000.
        let mut n = 200_000_000u64;
        while n >= 0x80 {
            forged.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        forged.push(n as u8);
        let err = codec.decode(None, &forged).await.unwrap_err().to_string();
        assert!(err.contains("allocate"), "{err}");
    }

    proptest::proptest! {
        /// Whatever bytes follow a known schema's frame (random, or a real
        /// event with bytes changed or cut), decoding answers an event or
        /// an error and never panics.
        #[test]
        fn any_payload_decodes_or_is_refused(
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            flips in proptest::collection::vec((0usize..400, proptest::num::u8::ANY), 0..6),
            cut in 0usize..400,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                let codec = Codec::new(Arc::new(MemoryRegistry::default()));
                let bytes = codec.encode(&reserved()).await.unwrap();
                let mut random = bytes[..HEADER_LEN].to_vec();
                random.extend(&tail);
                let _ = codec.decode(None, &random).await;
                let mut changed = bytes.clone();
                for (at, byte) in &flips {
                    let at = HEADER_LEN + at % (changed.len() - HEADER_LEN);
                    changed[at] = *byte;
                }
                let _ = codec.decode(None, &changed).await;
                let _ = codec.decode(None, &bytes[..cut.min(bytes.len())]).await;
            });
        }
    }
}
