//! Schema evolution on the wire. A newer payment service adds an optional
//! field to PaymentProcessed (v2), registers it through the registry's HTTP
//! API and publishes with it; the shipping service, built on v1, keeps
//! processing. An incompatible change is refused by the registry.

use apache_avro::types::Value as Avro;
use orderflow_envelope::{Codec, EventType, HttpSchemaRegistry, RegistryError, SchemaRegistry};
use orderflow_testkit::Stack;
use rdkafka::message::{Headers, Message};
use serde_json::{json, Value};

fn v2_schema() -> String {
    let mut schema: Value =
        serde_json::from_str(EventType::PaymentProcessed.schema_json()).unwrap();
    schema["fields"].as_array_mut().unwrap().push(json!(
        {"name": "receipt_url", "type": ["null", "string"], "default": null, "doc": "added in v2"}));
    schema.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_v1_consumer_keeps_processing_v2_events() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let registry = HttpSchemaRegistry::new(&stack.registry);
    let subject = Codec::subject(EventType::PaymentProcessed);

    // Every service registered what it produces at start.
    let subjects: Vec<String> = reqwest::get(format!("{}/subjects", stack.registry))
        .await?
        .json()
        .await?;
    for &t in EventType::ALL {
        assert!(
            subjects.contains(&Codec::subject(t)),
            "{} not registered: {subjects:?}",
            t.name()
        );
    }

    let v2 = v2_schema();
    let v2_id = registry.register(&subject, &v2).await?;
    let schema = apache_avro::Schema::parse_str(&v2)?;
    let address = Avro::Record(
        [
            ("name", "Ada"),
            ("line1", "1 Main St"),
            ("city", "Berlin"),
            ("postal_code", "10115"),
            ("country", "DE"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Avro::String(v.to_string())))
        .collect(),
    );
    let value = Avro::Record(vec![
        ("order_id".into(), Avro::String("o-v2".into())),
        ("customer_id".into(), Avro::String("c-v2".into())),
        ("payment_id".into(), Avro::String("pay_v2".into())),
        (
            "amount".into(),
            Avro::Record(vec![
                ("amount_minor".into(), Avro::Long(999)),
                ("currency".into(), Avro::String("EUR".into())),
            ]),
        ),
        ("shipping_address".into(), address),
        (
            "receipt_url".into(),
            Avro::Union(1, Box::new(Avro::String("https://receipts/pay_v2".into()))),
        ),
    ]);
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema).build()?;
    let mut payload = vec![0u8];
    payload.extend_from_slice(&v2_id.to_be_bytes());
    payload.extend(writer.write_value_to_vec(value)?);
    let headers = [
        ("ce_specversion", "1.0"),
        ("ce_id", "0190d3c4-0000-7000-8000-0000000000v2"),
        ("ce_source", "/orderflow/payment"),
        ("ce_type", "io.orderflow.events.PaymentProcessed"),
        ("ce_time", "2026-11-21T12:00:00Z"),
        ("ce_subject", "o-v2"),
        ("content-type", "application/avro"),
    ];
    stack
        .kafka()
        .produce_raw("payments", "o-v2", &headers, &payload)
        .await?;
    stack.wait_idle().await?;

    // Shipping read the v2 event with its v1 schema and booked the shipment.
    let shipments = stack.kafka().read_all("shipments").await?;
    let booked = shipments
        .iter()
        .find(|m| m.key() == Some(b"o-v2".as_slice()))
        .expect("a shipment for o-v2");
    let ce_type = booked
        .headers()
        .unwrap()
        .iter()
        .find(|h| h.key == "ce_type")
        .and_then(|h| h.value)
        .unwrap();
    assert_eq!(ce_type, b"io.orderflow.events.ShipmentCreated");
    assert!(
        stack.kafka().read_all("shipping.dlq").await?.is_empty(),
        "the v2 event was not dead-lettered"
    );

    // A change old consumers could not read is refused: a new field without a default.
    let mut v3: Value = serde_json::from_str(&v2)?;
    v3["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "loyalty_points", "type": "long"}));
    match registry.register(&subject, &v3.to_string()).await {
        Err(RegistryError::Rejected { status: 409, .. }) => {}
        other => panic!("an incompatible PaymentProcessed was accepted: {other:?}"),
    }
    stack.stop().await
}
