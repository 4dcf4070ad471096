//! The registry over HTTP, through the same client the services use.

use std::sync::Arc;

use orderflow_envelope::{Codec, EventType, HttpSchemaRegistry, RegistryError, SchemaRegistry};
use orderflow_registry::Registry;
use serde_json::{json, Value};

async fn start() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Registry::new().router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn record(fields: Value) -> String {
    json!({"type": "record", "name": "Thing", "namespace": "io.test", "fields": fields}).to_string()
}

#[tokio::test]
async fn every_event_schema_registers_and_is_found_by_id() {
    let url = start().await;
    let client = HttpSchemaRegistry::new(&url);
    for &t in EventType::ALL {
        let id = client
            .register(&Codec::subject(t), t.schema_json())
            .await
            .unwrap();
        assert_eq!(
            client
                .register(&Codec::subject(t), t.schema_json())
                .await
                .unwrap(),
            id,
            "same schema, same id"
        );
        let back = client.schema_by_id(id).await.unwrap();
        let back = apache_avro::Schema::parse_str(&back).unwrap();
        let original = apache_avro::Schema::parse_str(t.schema_json()).unwrap();
        assert_eq!(
            back.canonical_form(),
            original.canonical_form(),
            "{}",
            t.name()
        );
    }
    assert!(matches!(
        client.schema_by_id(9999).await,
        Err(RegistryError::UnknownId(9999))
    ));
    let latest: Value = reqwest::get(format!(
        "{url}/subjects/orders-io.orderflow.events.OrderCreated/versions/latest"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(latest["version"], 1);
}

#[tokio::test]
async fn only_backward_transitive_changes_are_accepted() {
    let url = start().await;
    let client = HttpSchemaRegistry::new(&url);
    let v1 = record(json!([{"name": "a", "type": "string"}]));
    let v2 = record(
        json!([{"name": "a", "type": "string"}, {"name": "b", "type": "string", "default": "x"}]),
    );
    // Reads v2 data, but not v1 data (b has no default): only a transitive check catches it.
    let v3 = record(json!([{"name": "a", "type": "string"}, {"name": "b", "type": "string"}]));
    let retyped = record(
        json!([{"name": "a", "type": "long"}, {"name": "b", "type": "string", "default": "x"}]),
    );

    let id1 = client.register("things-io.test.Thing", &v1).await.unwrap();
    let id2 = client.register("things-io.test.Thing", &v2).await.unwrap();
    assert_ne!(id1, id2);
    for bad in [&v3, &retyped] {
        match client.register("things-io.test.Thing", bad).await {
            Err(RegistryError::Rejected {
                status: 409,
                message,
                ..
            }) => {
                assert!(message.contains("BACKWARD_TRANSITIVE"), "{message}")
            }
            other => panic!("an incompatible schema was not rejected: {other:?}"),
        }
    }
    let http = reqwest::Client::new();
    let check: Value = http
        .post(format!(
            "{url}/compatibility/subjects/things-io.test.Thing/versions/latest"
        ))
        .json(&json!({"schema": v3}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(check["is_compatible"], false);
    // Under plain BACKWARD only the latest version counts, and v3 passes.
    http.put(format!("{url}/config/things-io.test.Thing"))
        .json(&json!({"compatibility": "BACKWARD"}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    client.register("things-io.test.Thing", &v3).await.unwrap();
}

/// The schemas of `history_dir` (`<Event>.v<N>.avsc`, oldest first), then
/// `current(event)`, registered event by event under BACKWARD_TRANSITIVE: the
/// first refusal, naming the event and the version, or Ok.
async fn check_evolution(
    history_dir: &std::path::Path,
    current: impl Fn(EventType) -> String,
) -> Result<(), String> {
    let url = start().await;
    let client = Arc::new(HttpSchemaRegistry::new(&url));
    for &t in EventType::ALL {
        let mut versions: Vec<(u32, String)> = std::fs::read_dir(history_dir)
            .map_err(|e| format!("{}: {e}", history_dir.display()))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let n = name
                    .strip_prefix(&format!("{}.v", t.name()))?
                    .strip_suffix(".avsc")?
                    .parse()
                    .ok()?;
                Some((n, std::fs::read_to_string(e.path()).ok()?))
            })
            .collect();
        if versions.is_empty() {
            return Err(format!(
                "{} has no released version in {}",
                t.name(),
                history_dir.display()
            ));
        }
        versions.sort();
        let subject = Codec::subject(t);
        for (n, schema) in &versions {
            client
                .register(&subject, schema)
                .await
                .map_err(|e| format!("{}.v{n}: {e}", t.name()))?;
        }
        client.register(&subject, &current(t)).await.map_err(|e| {
            format!(
                "schemas/{}.avsc is not compatible with its history: {e}",
                t.name()
            )
        })?;
    }
    Ok(())
}

fn history_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/history")
}

/// Each event's released versions and then its current schema must register
/// under BACKWARD_TRANSITIVE.
#[tokio::test]
async fn the_schemas_in_the_repository_evolve_compatibly() {
    check_evolution(&history_dir(), |t| t.schema_json().to_string())
        .await
        .unwrap();
}

/// The check bites: a field added without a default to a released event (a
/// consumer on the new schema cannot read what was written with the old one)
/// fails it, naming the event; the same field with a default passes.
#[tokio::test]
async fn an_incompatible_edit_of_a_released_schema_fails_the_check() {
    let edit = |default: Option<Value>| {
        move |t: EventType| {
            let mut schema: Value = serde_json::from_str(t.schema_json()).unwrap();
            if t == EventType::PaymentProcessed {
                let mut field = json!({"name": "merchant_note", "type": "string"});
                if let Some(d) = &default {
                    field["default"] = d.clone();
                }
                schema["fields"].as_array_mut().unwrap().push(field);
            }
            schema.to_string()
        }
    };
    let error = check_evolution(&history_dir(), edit(None))
        .await
        .expect_err("a field without a default must be refused");
    assert!(
        error.contains("schemas/PaymentProcessed.avsc is not compatible")
            && error.contains("BACKWARD_TRANSITIVE"),
        "{error}"
    );
    check_evolution(&history_dir(), edit(Some(json!(""))))
        .await
        .expect("a field with a default is compatible");
}

async fn start_requiring(credential: orderflow_registry::Credential) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Registry::new().router_requiring(credential);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn connection(
    url: &str,
    basic: Option<&str>,
    bearer: Option<&str>,
) -> orderflow_envelope::RegistryConnection {
    orderflow_envelope::RegistryConnection {
        url: url.to_string(),
        basic_auth: basic.map(str::to_string),
        bearer_token: bearer.map(str::to_string),
        ca_pem: None,
    }
}

#[tokio::test]
async fn a_registry_with_basic_auth_takes_its_key_and_refuses_anything_else() {
    let url = start_requiring(orderflow_registry::Credential::Basic {
        user: "KEY1".into(),
        password: "s3cret".into(),
    })
    .await;
    let schema = EventType::OrderCreated.schema_json();
    let subject = Codec::subject(EventType::OrderCreated);
    for (basic, bearer) in [
        (None, None),
        (Some("KEY1:wrong"), None),
        (Some("KEY1"), None),
        (None, Some("s3cret")),
    ] {
        let client = HttpSchemaRegistry::connect(&connection(&url, basic, bearer)).unwrap();
        let refused = client.register(&subject, schema).await.unwrap_err();
        assert!(refused.is_unauthorized(), "{basic:?}/{bearer:?}: {refused}");
        assert!(
            !refused.is_transient(),
            "wrong credentials are not worth retrying"
        );
        let text = refused.to_string();
        assert!(
            text.contains("ORDERFLOW_SCHEMA_REGISTRY_BASIC_AUTH"),
            "{text}"
        );
        assert!(
            !text.contains("s3cret") && !text.contains("wrong"),
            "{text}"
        );
    }
    // Nothing was registered by the refused calls.
    let subjects: Value = reqwest::Client::new()
        .get(format!("{url}/subjects"))
        .basic_auth("KEY1", Some("s3cret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(subjects, json!([]));

    let client = HttpSchemaRegistry::connect(&connection(&url, Some("KEY1:s3cret"), None)).unwrap();
    let id = client.register(&subject, schema).await.unwrap();
    let back = client.schema_by_id(id).await.unwrap();
    assert!(back.contains("OrderCreated"));
}

#[tokio::test]
async fn a_registry_with_a_bearer_token_takes_it() {
    let url = start_requiring(orderflow_registry::Credential::Bearer("tok-1".into())).await;
    let subject = Codec::subject(EventType::OrderCreated);
    let schema = EventType::OrderCreated.schema_json();
    let anonymous = HttpSchemaRegistry::new(&url);
    assert!(anonymous
        .register(&subject, schema)
        .await
        .unwrap_err()
        .is_unauthorized());
    let client = HttpSchemaRegistry::connect(&connection(&url, None, Some("tok-1"))).unwrap();
    assert_eq!(client.register(&subject, schema).await.unwrap(), 1);
}

#[tokio::test]
async fn both_kinds_of_credential_at_once_is_a_settings_error() {
    let err =
        HttpSchemaRegistry::connect(&connection("http://127.0.0.1:1", Some("k:s"), Some("t")))
            .err()
            .expect("two credentials are refused");
    assert!(matches!(err, RegistryError::Settings(_)), "{err}");
    let bad_ca = orderflow_envelope::RegistryConnection {
        ca_pem: Some(b"not a certificate".to_vec()),
        ..connection("https://127.0.0.1:1", None, None)
    };
    let err = HttpSchemaRegistry::connect(&bad_ca)
        .err()
        .expect("a CA that is not PEM is refused");
    assert!(
        err.to_string()
            .contains("ORDERFLOW_SCHEMA_REGISTRY_CA_FILE"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_registry_is_worth_retrying() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = HttpSchemaRegistry::new(&url)
        .register("s", EventType::OrderCreated.schema_json())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
}
