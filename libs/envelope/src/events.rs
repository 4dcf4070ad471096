//! The saga's events. Each type mirrors one `.avsc` file in `schemas/`, which is
//! the source of truth; the Rust field names and types follow the Avro ones.

use serde::{Deserialize, Serialize};

/// Integer minor units plus an ISO 4217 currency code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: String,
}

impl Money {
    pub fn new(amount_minor: i64, currency: impl Into<String>) -> Self {
        Self {
            amount_minor,
            currency: currency.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub name: String,
    pub line1: String,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    pub sku: String,
    pub quantity: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedLine {
    pub sku: String,
    pub quantity: i32,
    pub unit_price: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCreated {
    pub order_id: String,
    pub customer_id: String,
    pub items: Vec<OrderItem>,
    pub payment_token: String,
    pub shipping_address: Address,
    /// Milliseconds since the Unix epoch (Avro `timestamp-millis`).
    pub placed_at: i64,
    /// Where the customer's notifications go by email (schema v2; absent
    /// from events written before it).
    #[serde(default)]
    pub customer_email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCompleted {
    pub order_id: String,
    pub customer_id: String,
    pub tracking_id: String,
    pub total: Money,
    pub completed_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub order_id: String,
    pub customer_id: String,
    pub reason: String,
    pub cancelled_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryReserved {
    pub order_id: String,
    pub customer_id: String,
    pub lines: Vec<ReservedLine>,
    pub total: Money,
    pub payment_token: String,
    pub shipping_address: Address,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryUnavailable {
    pub order_id: String,
    pub customer_id: String,
    pub missing_skus: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryReleased {
    pub order_id: String,
    pub customer_id: String,
    pub lines: Vec<OrderItem>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentProcessed {
    pub order_id: String,
    pub customer_id: String,
    pub payment_id: String,
    pub amount: Money,
    pub shipping_address: Address,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    pub order_id: String,
    pub customer_id: String,
    pub amount: Money,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    pub order_id: String,
    pub customer_id: String,
    pub payment_id: String,
    pub amount: Money,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefundFailed {
    pub order_id: String,
    pub customer_id: String,
    pub payment_id: String,
    pub amount: Money,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentCreated {
    pub order_id: String,
    pub customer_id: String,
    pub shipment_id: String,
    pub tracking_id: String,
    pub carrier: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentFailed {
    pub order_id: String,
    pub customer_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationSent {
    pub order_id: String,
    pub customer_id: String,
    pub notification_id: String,
    pub kind: String,
    pub channel: String,
}

/// Reasons events carry that other services act on.
pub mod reasons {
    /// A `PaymentFailed` because the payment provider could not be reached
    /// before the step's deadline (not a decline): the order is cancelled
    /// with PAYMENT_UNAVAILABLE.
    pub const PROVIDER_UNAVAILABLE: &str = "PROVIDER_UNAVAILABLE";
}

/// The topics that carry domain events: one per owning service
/// (docs/architecture.md, "Topics and events").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Orders,
    Inventory,
    Payments,
    Shipments,
    Notifications,
}

impl Topic {
    pub const ALL: [Topic; 5] = [
        Topic::Orders,
        Topic::Inventory,
        Topic::Payments,
        Topic::Shipments,
        Topic::Notifications,
    ];

    /// The service that writes this topic, and no other.
    pub fn owner(self) -> &'static str {
        match self {
            Topic::Orders => "order",
            Topic::Inventory => "inventory",
            Topic::Payments => "payment",
            Topic::Shipments => "shipping",
            Topic::Notifications => "notification",
        }
    }

    /// The `ce_source` of every event on this topic.
    pub fn source(self) -> String {
        format!("/orderflow/{}", self.owner())
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Topic::Orders => "orders",
            Topic::Inventory => "inventory",
            Topic::Payments => "payments",
            Topic::Shipments => "shipments",
            Topic::Notifications => "notifications",
        }
    }
}

/// Declares the event enum once, with each variant's topic and schema file, so the
/// mapping between Rust type, CloudEvents type, Avro record and topic lives in one place.
macro_rules! events {
    ($($name:ident => $topic:ident),+ $(,)?) => {
        /// Every event of the saga.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Event {
            $($name($name),)+
        }

        /// The kind of an event, without its payload.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $($name,)+
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$name,)+];

            /// The short name, as used in logs, metrics and the order history.
            pub fn name(self) -> &'static str {
                match self { $(EventType::$name => stringify!($name),)+ }
            }

            /// The topic this event is published on.
            pub fn topic(self) -> Topic {
                match self { $(EventType::$name => Topic::$topic,)+ }
            }

            /// The Avro schema from `schemas/`, compiled into the binary.
            pub fn schema_json(self) -> &'static str {
                match self {
                    $(EventType::$name => include_str!(concat!("../../../schemas/", stringify!($name), ".avsc")),)+
                }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                match name { $(stringify!($name) => Some(EventType::$name),)+ _ => None }
            }
        }

        impl Event {
            pub fn event_type(&self) -> EventType {
                match self { $(Event::$name(_) => EventType::$name,)+ }
            }

            pub fn order_id(&self) -> &str {
                match self { $(Event::$name(e) => &e.order_id,)+ }
            }

            pub fn customer_id(&self) -> &str {
                match self { $(Event::$name(e) => &e.customer_id,)+ }
            }

            /// The event's fields as JSON, for people to read.
            pub fn to_json(&self) -> serde_json::Value {
                match self { $(Event::$name(e) => serde_json::to_value(e).expect("an event serializes"),)+ }
            }

            /// The event's Avro datum, serialized straight from its fields.
            pub(crate) fn write_avro(
                &self,
                writer: &apache_avro::writer::datum::GenericDatumWriter<'_>,
            ) -> Result<Vec<u8>, apache_avro::Error> {
                match self { $(Event::$name(e) => writer.write_ser_to_vec(e),)+ }
            }

            /// An event of type `event_type` read straight from a datum
            /// written with the reader's own schema.
            pub(crate) fn read_avro(
                event_type: EventType,
                reader: &apache_avro::reader::datum::GenericDatumReader<'_>,
                datum: &mut &[u8],
            ) -> Result<Self, apache_avro::Error> {
                match event_type {
                    $(EventType::$name => reader.read_deser::<$name>(datum).map(Event::$name),)+
                }
            }

            /// An event of type `event_type` from an Avro value already
            /// resolved to this build's schema.
            pub(crate) fn from_avro_value(
                event_type: EventType,
                value: &apache_avro::types::Value,
            ) -> Result<Self, apache_avro::Error> {
                match event_type {
                    $(EventType::$name => apache_avro::from_value::<$name>(value).map(Event::$name),)+
                }
            }

            #[cfg(test)]
            pub(crate) fn to_avro_value(&self) -> Result<apache_avro::types::Value, apache_avro::Error> {
                match self { $(Event::$name(e) => apache_avro::to_value(e),)+ }
            }
        }

        $(impl From<$name> for Event {
            fn from(e: $name) -> Self { Event::$name(e) }
        })+
    };
}

events! {
    OrderCreated => Orders,
    OrderCompleted => Orders,
    OrderCancelled => Orders,
    InventoryReserved => Inventory,
    InventoryUnavailable => Inventory,
    InventoryReleased => Inventory,
    PaymentProcessed => Payments,
    PaymentFailed => Payments,
    PaymentRefunded => Payments,
    PaymentRefundFailed => Payments,
    ShipmentCreated => Shipments,
    ShipmentFailed => Shipments,
    NotificationSent => Notifications,
}

/// The Avro namespace of every event record.
pub const NAMESPACE: &str = "io.orderflow.events";

impl EventType {
    /// The CloudEvents `ce_type`, which is also the Avro record's full name.
    pub fn ce_type(self) -> String {
        format!("{NAMESPACE}.{}", self.name())
    }

    pub fn from_ce_type(ce_type: &str) -> Option<Self> {
        ce_type
            .strip_prefix(NAMESPACE)?
            .strip_prefix('.')
            .and_then(Self::from_name)
    }
}
