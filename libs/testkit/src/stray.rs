//! Events no orderflow service would write, put straight on a topic: what
//! the dead-letter tests and the console's dead-letter test work on.

use anyhow::Result;
use orderflow_envelope::{
    Address, CloudEventHeaders, Codec, Event, HttpSchemaRegistry, InventoryReserved, Money,
    ReservedLine,
};

use crate::Stack;

impl Stack {
    /// An `InventoryReserved`, framed and headed as the inventory service
    /// writes one, for `order_id`, which the order service never created
    /// (it dead-letters it at once). The card is declined, so nothing but
    /// payment and order act on it. Returns where it landed on `inventory`
    /// (partition, offset) and the headers it carries.
    pub async fn publish_stray_reservation(
        &self,
        order_id: &str,
    ) -> Result<(i32, i64, Vec<(&'static str, String)>)> {
        let codec = Codec::new(std::sync::Arc::new(HttpSchemaRegistry::new(&self.registry)));
        let stray = Event::InventoryReserved(InventoryReserved {
            order_id: order_id.into(),
            customer_id: "c-stray".into(),
            lines: vec![ReservedLine {
                sku: "SKU-001".into(),
                quantity: 1,
                unit_price: Money::new(999, "EUR"),
            }],
            total: Money::new(999, "EUR"),
            payment_token: "tok_chargeDeclined".into(),
            shipping_address: Address {
                name: "Ada".into(),
                line1: "1 Main St".into(),
                city: "Berlin".into(),
                postal_code: "10115".into(),
                country: "DE".into(),
            },
        });
        self.publish_as_owner(&codec, &stray).await
    }

    /// Writes `event` onto its topic as its owning service would (CloudEvents
    /// headers, Avro in the Confluent framing), bypassing every service;
    /// returns where it landed (partition, offset) and its headers.
    pub async fn publish_as_owner(
        &self,
        codec: &Codec,
        event: &Event,
    ) -> Result<(i32, i64, Vec<(&'static str, String)>)> {
        let owner = event.event_type().topic().owner();
        let ce = CloudEventHeaders::new(owner, event.event_type().ce_type(), event.order_id());
        let envelope = codec.envelope(event, ce).await?;
        let pairs = envelope.headers.to_pairs();
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (partition, offset) = self
            .kafka()
            .produce_raw(envelope.topic, &envelope.key, &refs, &envelope.payload)
            .await?;
        Ok((partition, offset, pairs))
    }
}
