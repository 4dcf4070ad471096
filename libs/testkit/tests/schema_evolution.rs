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

/// The schemas hook (`orderflow schemas register`, the chart's pre-upgrade Job)
/// run by hand against a registry whose PaymentProcessed history the build's
/// schema cannot read: it fails, and its output names the subject and the
/// registry's reason (what an operator reads in `kubectl logs job/…-schemas`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schemas_hook_names_an_incompatible_schema() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, orderflow_registry::Registry::new().router()).await;
    });
    // An earlier PaymentProcessed without payment_id: the build's schema (where
    // it has no default) cannot read events written with it.
    let subject = Codec::subject(EventType::PaymentProcessed);
    let mut earlier: Value = serde_json::from_str(EventType::PaymentProcessed.schema_json())?;
    earlier["fields"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["name"] != "payment_id");
    HttpSchemaRegistry::new(&url)
        .register(&subject, &earlier.to_string())
        .await?;

    let out = tokio::process::Command::new(orderflow_testkit::cli::binary("orderflow")?)
        .args(["schemas", "register", "--registry-url", &url])
        .env_remove("ORDERFLOW_SCHEMA_REGISTRY_BASIC_AUTH")
        .kill_on_drop(true)
        .output()
        .await?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{subject}: schema registry rejected"))
            && err.contains("HTTP 409")
            && err.contains("incompatible"),
        "{err}"
    );
    // The subjects before it in the build's order were registered; the
    // refused one still holds only the earlier version.
    let versions: Vec<i64> = reqwest::get(format!("{url}/subjects/{subject}/versions"))
        .await?
        .json()
        .await?;
    assert_eq!(versions, [1], "nothing registered over the refusal");
    server.abort();
    Ok(())
}
