//! The security suite: who may call what, and what bad callers cannot do.
//! Every refusal is checked for its status AND for nothing having changed.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use jsonwebtoken::Algorithm;
use orderflow_envelope::{CloudEventHeaders, Codec, Event, HttpSchemaRegistry, ShipmentFailed};
use orderflow_testkit::metrics::scrape;
use orderflow_testkit::{order_body, Options, Stack};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Messages on `orders` so far: a refused request must add none.
async fn published(stack: &Stack) -> Result<i64> {
    stack.wait_idle().await?;
    stack.kafka().message_count("orders").await
}

async fn problem(response: reqwest::Response) -> Result<(u16, Value, reqwest::header::HeaderMap)> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "a refusal is a problem document"
    );
    Ok((status, response.json().await?, headers))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_valid_token_nothing_happens() -> Result<()> {
    let stack = Stack::start().await?;
    let issuer = stack.issuer.clone();
    let before = published(&stack).await?;
    let claims = |f: &dyn Fn(&mut Value)| {
        let mut c = issuer.claims("c-1", false, Duration::from_secs(300));
        f(&mut c);
        c
    };
    let now = chrono::Utc::now().timestamp();
    let tokens: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        (
            "expired",
            Some(issuer.sign(&claims(&|c| c["exp"] = json!(now - 120)), Algorithm::ES256)),
        ),
        (
            "not yet valid",
            Some(issuer.sign(&claims(&|c| c["nbf"] = json!(now + 600)), Algorithm::ES256)),
        ),
        (
            "wrong issuer",
            Some(issuer.sign(
                &claims(&|c| c["iss"] = json!("https://evil.example")),
                Algorithm::ES256,
            )),
        ),
        (
            "wrong audience",
            Some(issuer.sign(&claims(&|c| c["aud"] = json!("billing")), Algorithm::RS256)),
        ),
        (
            "bad signature",
            Some({
                let good = issuer.customer("c-1");
                let (head, sig) = good.rsplit_once('.').unwrap();
                format!("{head}.{}", sig.chars().rev().collect::<String>())
            }),
        ),
        (
            "alg none",
            Some({
                use base64::Engine as _;
                let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
                format!(
                    "{}.{}.",
                    b64(r#"{"alg":"none","typ":"JWT"}"#),
                    b64(&claims(&|_| {}).to_string())
                )
            }),
        ),
        ("garbage", Some("not-a-jwt".into())),
    ];
    let body = order_body("c-1", "SKU-001", 1, "tok_visa", "DE");
    let http = reqwest::Client::new();
    for (name, token) in tokens {
        for (method, path) in [
            ("POST", "/v1/orders"),
            ("GET", "/v1/inventory/SKU-001"),
            ("GET", "/v1/customers/c-1/notifications"),
        ] {
            let mut request = http.request(method.parse()?, stack.url(path));
            if method == "POST" {
                request = request.json(&body);
            }
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            let (status, p, headers) = problem(request.send().await?).await?;
            assert_eq!(status, 401, "{name}: {method} {path}: {p}");
            assert_eq!(p["type"], "https://orderflow.dev/problems/unauthorized");
            let challenge = headers["www-authenticate"].to_str()?;
            if token.is_none() {
                assert_eq!(challenge, r#"Bearer realm="orderflow""#);
            } else {
                assert!(
                    challenge.contains(r#"error="invalid_token""#),
                    "{name}: {challenge}"
                );
            }
        }
    }
    // The API description needs no token; health and readiness are on the
    // operations port, apart from the API.
    assert_eq!(
        http.get(stack.url("/openapi.json")).send().await?.status(),
        200
    );
    for (service, ops) in &stack.ops {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let status = http.get(format!("{ops}{path}")).send().await?.status();
            assert_eq!(status, 200, "{service} {path}");
            let status = http
                .get(format!("{}{path}", stack.urls[service]))
                .send()
                .await?
                .status();
            assert_eq!(status, 404, "{service}'s API port serves no {path}");
        }
    }
    assert_eq!(published(&stack).await?, before, "nothing was placed");
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_customer_sees_and_does_only_their_own() -> Result<()> {
    let stack = Stack::start().await?;
    let alice = stack.as_customer("c-alice");
    let bob = stack.as_customer("c-bob");
    let body = json!({
        "items": [{"sku": "SKU-003", "quantity": 1}],
        "payment": {"token": "tok_visa"},
        "shipping_address": {"name": "Alice", "line1": "1 Main St", "city": "Berlin",
                             "postal_code": "10115", "country": "DE"}
    });
    // The customer comes from the token.
    let placed: Value = alice
        .post(stack.url("/v1/orders"))
        .json(&body)
        .header("idempotency-key", "same-key")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let order_id = placed["order_id"].as_str().context("order_id")?.to_string();
    let order = stack.wait_terminal(&order_id).await?;
    assert_eq!(
        (order.customer_id.as_str(), order.status.as_str()),
        ("c-alice", "SHIPPED")
    );
    stack.wait_idle().await?;
    let before = published(&stack).await?;

    // Bob cannot read Alice's order, her notifications or her order list:
    // "not found", as if they did not exist.
    for path in [
        format!("/v1/orders/{order_id}"),
        "/v1/customers/c-alice/notifications".to_string(),
        "/v1/customers/c-alice/orders".to_string(),
    ] {
        let (status, p, _) = problem(bob.get(stack.url(&path)).send().await?).await?;
        assert_eq!(status, 404, "{path}: {p}");
        assert!(
            !p.to_string().contains("c-alice") || path.contains("customers"),
            "{p}"
        );
    }
    let unknown = bob
        .get(stack.url("/v1/orders/0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b"))
        .send()
        .await?;
    let (_, unknown, _) = problem(unknown).await?;
    let (_, theirs, _) = problem(
        bob.get(stack.url(&format!("/v1/orders/{order_id}")))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(
        theirs["title"], unknown["title"],
        "someone else's order reads like one that does not exist"
    );
    // Alice reads her own.
    assert_eq!(
        alice
            .get(stack.url(&format!("/v1/orders/{order_id}")))
            .send()
            .await?
            .status(),
        200
    );
    assert_eq!(
        alice
            .get(stack.url("/v1/customers/c-alice/notifications"))
            .send()
            .await?
            .status(),
        200
    );

    // Bob cannot place an order as Alice.
    let mut as_alice = body.clone();
    as_alice["customer_id"] = json!("c-alice");
    let (status, p, _) = problem(
        bob.post(stack.url("/v1/orders"))
            .json(&as_alice)
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 403, "{p}");
    assert_eq!(p["type"], "https://orderflow.dev/problems/forbidden");

    // The same Idempotency-Key is Bob's own key: a new order of his.
    let bobs: Value = bob
        .post(stack.url("/v1/orders"))
        .json(&body)
        .header("idempotency-key", "same-key")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_ne!(bobs["order_id"], placed["order_id"]);
    let bobs_id = bobs["order_id"].as_str().context("order_id")?.to_string();
    assert_eq!(stack.wait_terminal(&bobs_id).await?.customer_id, "c-bob");
    // Alice reusing her key with another body: 422, naming no order.
    let mut other = body.clone();
    other["items"][0]["quantity"] = json!(2);
    let (status, p, _) = problem(
        alice
            .post(stack.url("/v1/orders"))
            .json(&other)
            .header("idempotency-key", "same-key")
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 422);
    assert!(
        !p.to_string().contains(&order_id) && !p.to_string().contains(&bobs_id),
        "{p}"
    );

    // Operator calls: a customer gets 403 and nothing changes.
    stack.wait_idle().await?;
    let stock_before = stack.stock("SKU-003").await?;
    let set = json!({"available": 1_000_000, "unit_price": {"amount_minor": 1, "currency": "EUR"}});
    let (status, _, _) = problem(
        bob.put(stack.url("/v1/inventory/SKU-003"))
            .json(&set)
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 403);
    let (status, _, _) = problem(
        bob.get(stack.url(&format!("/v1/payments/{order_id}")))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 403);
    stack.wait_idle().await?;
    let stock_after = stack.stock("SKU-003").await?;
    assert_eq!(stock_after, stock_before, "stock and price unchanged");
    // The operator's payment view goes through the gateway.
    let payment: Value = stack
        .http
        .get(stack.url(&format!("/v1/payments/{order_id}")))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(payment["provider_charges"], 1);
    assert_eq!(
        published(&stack).await?,
        before + 2,
        "only Bob's own order (created and completed)"
    );
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_are_enforced_and_leave_nothing_behind() -> Result<()> {
    let stack = Stack::start_with(Options {
        orders_per_second: 1.0,
        orders_burst: 3,
        header_read_timeout_ms: 1_000,
        ..Default::default()
    })
    .await?;
    let before = published(&stack).await?;
    let before_stock = stack.stock("SKU-005").await?;
    // A price above the maximum: 422, the price stays.
    for amount in [orderflow_api::MAX_UNIT_PRICE_MINOR + 1, i64::MAX] {
        let set =
            json!({"available": 5, "unit_price": {"amount_minor": amount, "currency": "EUR"}});
        let (status, _, _) = problem(
            stack
                .http
                .put(stack.url("/v1/inventory/SKU-005"))
                .json(&set)
                .send()
                .await?,
        )
        .await?;
        assert_eq!(status, 422, "{amount}");
    }
    assert_eq!(stack.stock("SKU-005").await?, before_stock);
    // 65-character ids and an oversized address line: 422.
    let c65 = "c".repeat(65);
    let customer = stack.as_customer("c-limits");
    for (name, body) in [
        (
            "sku",
            order_body("c-limits", &"S".repeat(65), 1, "tok_visa", "DE"),
        ),
        (
            "token",
            order_body("c-limits", "SKU-005", 1, &"t".repeat(65), "DE"),
        ),
        ("line1", {
            let mut b = order_body("c-limits", "SKU-005", 1, "tok_visa", "DE");
            b["shipping_address"]["line1"] = json!("x".repeat(201));
            b
        }),
    ] {
        let (status, p, _) = problem(
            customer
                .post(stack.url("/v1/orders"))
                .json(&body)
                .send()
                .await?,
        )
        .await?;
        assert_eq!(status, 422, "{name}: {p}");
    }
    let (status, _, _) = problem(
        stack
            .as_customer(&c65)
            .post(stack.url("/v1/orders"))
            .json(&order_body(&c65, "SKU-005", 1, "tok_visa", "DE"))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 401, "a 65-character subject is no valid token");
    let (status, _, _) = problem(
        stack
            .http
            .post(stack.url("/v1/orders"))
            .json(&order_body(&c65, "SKU-005", 1, "tok_visa", "DE"))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 422, "an operator naming a 65-character customer");
    assert_eq!(published(&stack).await?, before, "nothing placed");

    // Three at once, then one a second: the fourth is refused.
    let body = order_body("c-rate", "SKU-005", 1, "tok_visa", "DE");
    let rate = stack.as_customer("c-rate");
    let mut accepted = Vec::new();
    for i in 0..3 {
        let r = rate
            .post(stack.url("/v1/orders"))
            .json(&body)
            .send()
            .await?;
        assert_eq!(r.status(), 202, "order {i} of the burst");
        assert!(r.headers().contains_key("ratelimit"));
        accepted.push(
            r.json::<Value>().await?["order_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let refused = rate
        .post(stack.url("/v1/orders"))
        .json(&body)
        .send()
        .await?;
    let (status, p, headers) = problem(refused).await?;
    assert_eq!(status, 429, "{p}");
    let retry_after: u64 = headers["retry-after"].to_str()?.parse()?;
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert!(headers["ratelimit-policy"].to_str()?.contains("q=3"));
    assert!(headers["ratelimit"].to_str()?.contains("r=0"));
    // Another caller is not slowed.
    assert_eq!(
        stack
            .as_customer("c-other")
            .post(stack.url("/v1/orders"))
            .json(&order_body("c-other", "SKU-005", 1, "tok_visa", "DE"))
            .send()
            .await?
            .status(),
        202
    );
    stack
        .wait_all_terminal(&accepted, Duration::from_secs(60))
        .await?;
    assert_eq!(
        published(&stack).await?,
        before + 2 * 4,
        "three orders of c-rate and one of c-other, each created and completed"
    );

    // A client that sends its headers a byte at a time is cut off.
    let addr = stack.gateway.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await?;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await?;
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let closed = loop {
        if started.elapsed() > Duration::from_secs(5) {
            break false;
        }
        // One more header byte now and then, never the end of the headers.
        let _ = slow.write_all(b"X").await;
        match tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => break true, // an answer (408) ends it too
            Err(_) => continue,
        }
    };
    assert!(closed, "the connection was still open after 5 s");
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "closed after {:?}",
        started.elapsed()
    );
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_events_are_dead_lettered_and_refund_nothing() -> Result<()> {
    let stack = Stack::start().await?;
    let id = stack
        .place(&order_body("c-forged", "SKU-004", 1, "tok_visa", "DE"))
        .await?;
    assert_eq!(stack.wait_terminal(&id).await?.status, "SHIPPED");
    stack.wait_idle().await?;
    let codec = Codec::new(std::sync::Arc::new(HttpSchemaRegistry::new(
        &stack.registry,
    )));
    let failed = Event::ShipmentFailed(ShipmentFailed {
        order_id: id.clone(),
        customer_id: "c-forged".into(),
        reason: "lost in transit (forged)".into(),
    });
    let send = |topic: &'static str, source: &'static str| {
        let (codec, failed, kafka) = (&codec, failed.clone(), stack.kafka());
        async move {
            let envelope = codec
                .envelope(
                    &failed,
                    CloudEventHeaders::new(
                        source,
                        failed.event_type().ce_type(),
                        failed.order_id(),
                    ),
                )
                .await?;
            let pairs = envelope.headers.to_pairs();
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            kafka
                .produce_raw(topic, &envelope.key, &pairs, &envelope.payload)
                .await
        }
    };
    // On a topic it does not belong to, and from a service that does not write it.
    send("inventory", "shipping").await?;
    send("shipments", "inventory").await?;
    stack.wait_idle().await?;
    for service in ["payment", "order", "inventory"] {
        let parked = stack
            .kafka()
            .read_all(&orderflow_runtime::topics::dead_letter_topic(service))
            .await?;
        let forged: Vec<String> = parked
            .iter()
            .filter_map(|m| {
                use rdkafka::message::{Headers, Message};
                m.headers()?
                    .iter()
                    .find(|h| h.key == "x-orderflow-dlq-error")
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
            .collect();
        let expected = if service == "payment" || service == "order" {
            2
        } else {
            1
        };
        assert_eq!(forged.len(), expected, "{service}: {forged:?}");
        assert!(
            forged.iter().all(|e| e.contains("forged")),
            "{service}: {forged:?}"
        );
    }
    let p = stack.payment(&id).await?.context("payment")?;
    assert_eq!(
        (p.status.as_str(), p.provider_refunds),
        ("CHARGED", 0),
        "no refund"
    );

    // Even from the right topic and source (a compromised shipping
    // service), a failed shipment of a shipped order refunds nothing.
    send("shipments", "shipping").await?;
    stack.wait_idle().await?;
    let p = stack.payment(&id).await?.context("payment")?;
    assert_eq!(
        (p.status.as_str(), p.provider_charges, p.provider_refunds),
        ("CHARGED", 1, 0)
    );
    assert_eq!(
        stack.order(&id).await?.status,
        "SHIPPED",
        "the order stays shipped"
    );
    let stock = stack.stock("SKU-004").await?;
    assert_eq!(
        (stock.available, stock.reserved),
        (99, 0),
        "nothing released"
    );
    let payment = scrape(&stack.http, &stack.ops["payment"]).await?;
    assert_eq!(
        payment.sum_where(
            "orderflow_events_produced_total",
            &[("event_type", "PaymentRefunded")]
        ),
        0.0
    );
    stack.stop().await
}

/// A server error says nothing of the inside: no internal address, only a
/// trace id to quote; the detail is in the gateway's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_error_names_nothing_internal() -> Result<()> {
    let issuer = orderflow_testkit::shared_issuer();
    let listeners = orderflow_http::Listeners::local().await?;
    let (gateway, _) = listeners.urls()?;
    let config = orderflow_gateway::Config {
        http_addr: listeners.api.local_addr()?,
        ops_addr: listeners.ops.local_addr()?,
        // Nothing listens on these ports.
        order_url: "http://127.0.0.1:9/internal".into(),
        inventory_url: "http://127.0.0.1:9/internal".into(),
        notification_url: "http://127.0.0.1:9/internal".into(),
        payment_url: "http://127.0.0.1:9/internal".into(),
        auth: issuer.auth_config(),
        ..Default::default()
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(orderflow_gateway::serve(
        config,
        listeners,
        Box::pin(stop.clone().cancelled_owned()),
    ));
    let http = orderflow_api::bearer_client(&issuer.operator());
    for path in [
        "/v1/orders/0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b",
        "/v1/inventory/SKU-001",
        "/v1/payments/0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b",
    ] {
        let response = http.get(format!("{gateway}{path}")).send().await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        assert_eq!(status, 503, "{path}: {body}");
        assert!(
            !body.contains("127.0.0.1") && !body.contains(":9") && !body.contains("internal"),
            "{path}: {body}"
        );
        let p: Value = serde_json::from_str(&body)?;
        let trace_id = p["trace_id"].as_str().context("a trace id to quote")?;
        assert!(p["detail"].as_str().unwrap().contains(trace_id));
    }
    stop.cancel();
    task.await??;
    Ok(())
}

/// `--print-config` and a failed database connection never show a password.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_stay_out_of_what_a_service_prints() -> Result<()> {
    let bin = orderflow_testkit::cli::binary("orderflow-inventory")?;
    let run = |args: &[&str]| {
        tokio::process::Command::new(&bin)
            .args(args)
            .env(
                "ORDERFLOW_DATABASE_URL",
                "postgres://u:s3cret@127.0.0.1:9/db",
            )
            .env(
                "ORDERFLOW_KAFKA_PROPERTIES",
                "security.protocol=SASL_SSL,sasl.password=s3cret",
            )
            .envs(orderflow_testkit::cli::service_env())
            .kill_on_drop(true)
            .output()
    };
    let printed = run(&["--print-config"]).await?;
    let out = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.status.success());
    assert!(out.contains("postgres://u:***@127.0.0.1:9/db"), "{out}");
    assert!(out.contains("sasl.password=***"), "{out}");
    assert!(!out.contains("s3cret"), "{out}");
    let failed = tokio::time::timeout(Duration::from_secs(90), run(&[])).await??;
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&failed.stdout),
        String::from_utf8_lossy(&failed.stderr)
    );
    assert!(!failed.status.success(), "{all}");
    assert!(all.contains("postgres://u:***@127.0.0.1:9/db"), "{all}");
    assert!(!all.contains("s3cret"), "{all}");
    Ok(())
}

/// A registry that wants credentials (as a managed one does): the services
/// given them run the saga; a service without them, or with wrong ones, stops
/// at once with exit 64 naming the setting, and never prints the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registry_that_wants_credentials_gets_them() -> Result<()> {
    let stack = Stack::start_with(Options {
        registry_basic_auth: Some(("svc-key".into(), "s3cret-registry".into())),
        ..Options::default()
    })
    .await?;
    orderflow_testkit::check_four_outcomes(&stack, stack.wait_idle()).await?;

    let bin = orderflow_testkit::cli::binary("orderflow-inventory")?;
    let dir = tempfile::tempdir()?;
    for basic_auth in [None, Some("svc-key:wrong-s3cret")] {
        let mut command = tokio::process::Command::new(&bin);
        command
            .envs(orderflow_testkit::cli::service_env())
            .env(
                "ORDERFLOW_DATABASE_URL",
                format!("sqlite://{}/inventory.db", dir.path().display()),
            )
            .env("ORDERFLOW_KAFKA_BOOTSTRAP_SERVERS", &stack.bootstrap)
            .env("ORDERFLOW_SCHEMA_REGISTRY_URL", &stack.registry)
            .env_remove("ORDERFLOW_SCHEMA_REGISTRY_BASIC_AUTH")
            .kill_on_drop(true);
        if let Some(basic_auth) = basic_auth {
            command.env("ORDERFLOW_SCHEMA_REGISTRY_BASIC_AUTH", basic_auth);
        }
        let out = tokio::time::timeout(Duration::from_secs(60), command.output()).await??;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{basic_auth:?}: {err}");
        assert!(err.contains("refused the credentials"), "{err}");
        assert!(
            err.contains("ORDERFLOW_SCHEMA_REGISTRY_BASIC_AUTH"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }

    // The operator CLI takes the same setting.
    let register = |basic_auth: Option<&'static str>| {
        let mut command = tokio::process::Command::new(
            orderflow_testkit::cli::binary("orderflow").expect("the CLI is built"),
        );
        command
            .args(["schemas", "register", "--registry-url", &stack.registry])
            .env_remove("ORDERFLOW_SCHEMA_REGISTRY_BASIC_AUTH")
            .kill_on_drop(true);
        if let Some(basic_auth) = basic_auth {
            command.env("ORDERFLOW_SCHEMA_REGISTRY_BASIC_AUTH", basic_auth);
        }
        command.output()
    };
    let refused = register(None).await?;
    assert_eq!(refused.status.code(), Some(64), "{refused:?}");
    let registered = register(Some("svc-key:s3cret-registry")).await?;
    assert!(registered.status.success(), "{registered:?}");
    let out = String::from_utf8_lossy(&registered.stdout);
    assert!(
        out.contains("orders-io.orderflow.events.OrderCreated: id"),
        "{out}"
    );
    stack.stop().await
}

/// Sends `method path` exactly as written (an HTTP client would resolve
/// `.` and `..` away first) and returns the status and body.
async fn raw(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> Result<(u16, String)> {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await??;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{method} {path}: no status in {answer:?}"))?;
    Ok((status, answer))
}

/// Every path parameter has one grammar, checked at the gateway and again
/// at the service: dot segments, separators, control characters, the
/// overlong and the non-ASCII are 422 on every route that takes one, and
/// change nothing. (Before, `GET /v1/inventory/%2E%2E` from a customer
/// reached the operators' catalogue listing, and an order for SKU `..` was
/// accepted and dead-lettered.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_path_parameter_reaches_a_service_as_another_path() -> Result<()> {
    let stack = Stack::start().await?;
    let customer = stack.customer_token("c-alice");
    let operator = stack.issuer.operator();
    let catalogue = || async {
        let list: Value = stack
            .http
            .get(stack.url("/v1/inventory"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        anyhow::Ok(list)
    };
    let dead_letters = || async {
        let kafka = stack.kafka();
        let mut n = 0;
        for service in ["inventory", "payment", "shipping", "notification", "order"] {
            n += kafka
                .message_count(&orderflow_runtime::topics::dead_letter_topic(service))
                .await?;
        }
        anyhow::Ok(n)
    };
    let (orders_before, catalogue_before, dead_before) = (
        published(&stack).await?,
        catalogue().await?,
        dead_letters().await?,
    );

    let overlong = "A".repeat(65);
    let bad = [
        ".",
        "..",
        "%2E",
        "%2E%2E",
        "%2e%2E",
        "...",
        "%2F",
        "a%2Fb",
        "SKU-001%09",
        "a%0Ab",
        "a%0D%0Ab",
        "a%00b",
        "%C3%A4",
        "%FF",
        "a%20b",
        "%25",
        "a%3Fb",
        "a%23b",
        &overlong,
    ];
    let stock = r#"{"available": 1, "unit_price": {"amount_minor": 100, "currency": "EUR"}}"#;
    let gateway = stack.url("");
    for segment in bad {
        for (method, path, body) in [
            ("GET", format!("/v1/orders/{segment}"), ""),
            ("GET", format!("/v1/payments/{segment}"), ""),
            ("GET", format!("/v1/inventory/{segment}"), ""),
            ("PUT", format!("/v1/inventory/{segment}"), stock),
            ("GET", format!("/v1/customers/{segment}/orders"), ""),
            ("GET", format!("/v1/customers/{segment}/notifications"), ""),
        ] {
            for token in [&customer, &operator] {
                let (status, answer) = raw(&gateway, method, &path, token, body).await?;
                assert_eq!(status, 422, "gateway {method} {path}: {answer}");
                assert!(answer.contains("application/problem+json"), "{answer}");
            }
        }
        // A dead letter's id: an operator's 422; a customer's 403 (422 when
        // the segment is not even UTF-8: the path is refused before the role).
        for (method, path) in [
            ("GET", format!("/v1/dead-letters/{segment}/0/0")),
            ("GET", format!("/v1/dead-letters/inventory/{segment}/0")),
            (
                "POST",
                format!("/v1/dead-letters/inventory/0/{segment}/replay"),
            ),
        ] {
            let (status, answer) = raw(&gateway, method, &path, &customer, "").await?;
            assert!(
                [403, 422].contains(&status),
                "gateway {method} {path}: {answer}"
            );
            let (status, answer) = raw(&gateway, method, &path, &operator, "").await?;
            assert_eq!(status, 422, "gateway {method} {path}: {answer}");
        }
        // The services check the same grammar.
        for (service, method, path, body) in [
            ("order", "GET", format!("/v1/orders/{segment}"), ""),
            (
                "order",
                "GET",
                format!("/v1/customers/{segment}/orders"),
                "",
            ),
            ("payment", "GET", format!("/v1/payments/{segment}"), ""),
            ("inventory", "GET", format!("/v1/inventory/{segment}"), ""),
            (
                "inventory",
                "PUT",
                format!("/v1/inventory/{segment}"),
                stock,
            ),
            (
                "notification",
                "GET",
                format!("/v1/customers/{segment}/notifications"),
                "",
            ),
        ] {
            let (status, answer) =
                raw(&stack.urls[service], method, &path, &operator, body).await?;
            assert_eq!(status, 422, "{service} {method} {path}: {answer}");
        }
    }
    // Filters that name an order or a customer follow it too.
    for query in [
        "/v1/dead-letters?order_id=..",
        "/v1/orders?customer_id=..",
        "/v1/orders/summary?customer_id=a%2Fb",
    ] {
        let (status, answer) = raw(&gateway, "GET", query, &operator, "").await?;
        assert_eq!(status, 422, "{query}: {answer}");
    }
    // An order naming such a SKU is refused before anything is written.
    for sku in [".", "..", "SKU-001\t", "%2E%2E", "SKU-001/..", "ä"] {
        let response = stack
            .as_customer("c-alice")
            .post(stack.url("/v1/orders"))
            .json(&order_body("c-alice", sku, 1, "tok_visa", "DE"))
            .send()
            .await?;
        let (status, p, _) = problem(response).await?;
        assert_eq!(status, 422, "SKU {sku:?}: {p}");
    }

    assert_eq!(
        published(&stack).await?,
        orders_before,
        "no order was placed"
    );
    assert_eq!(catalogue().await?, catalogue_before, "no stock was set");
    assert_eq!(
        dead_letters().await?,
        dead_before,
        "nothing was dead-lettered"
    );
    stack.stop().await
}

/// One caller sending request bodies slowly holds only their own share of
/// the gateway's requests in progress: their next request is 429, another
/// caller is served. (Before, the cap was one for everyone, taken before the
/// token was checked and held while the body trickled in: 503 for all.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_bodies_hold_only_their_callers_share() -> Result<()> {
    let stack = Stack::start_with(Options {
        max_requests_in_flight_per_caller: 3,
        ..Default::default()
    })
    .await?;
    let addr = stack.url("").trim_start_matches("http://").to_string();
    let token = stack.customer_token("c-mallory");
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(&addr).await?;
        s.write_all(
            format!(
                "POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{{\"items\": ["
            )
            .as_bytes(),
        )
        .await?;
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, p, headers) = problem(
        stack
            .as_customer("c-mallory")
            .get(stack.url("/v1/customers/c-mallory/orders"))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 429, "{p}");
    assert!(headers.contains_key("retry-after"));
    // Another caller is served (placed as Alice: 202 or it fails).
    let order_id = stack
        .place(&order_body("c-alice", "SKU-001", 1, "tok_visa", "DE"))
        .await?;
    stack.wait_terminal(&order_id).await?;
    // The slow bodies never completed: nothing of theirs was placed.
    drop(slow);
    let mallory: Value = stack
        .as_customer("c-mallory")
        .get(stack.url("/v1/customers/c-mallory/orders"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(
        mallory["orders"],
        json!([]),
        "once they let go, they are served again"
    );
    stack.stop().await
}

/// Nothing behind the gateway trusts a call for where it comes from: each
/// service checks the bearer token itself and decides what the caller may
/// do. Called directly, as a stolen pod would: no token 401, a customer
/// reading another's 404, a customer on an operator route 403, a customer
/// placing an order for another 403 — and nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_service_checks_the_caller_itself() -> Result<()> {
    let stack = Stack::start().await?;
    let alice = stack.as_customer("c-alice");
    let order_id = stack
        .place(&order_body("c-alice", "SKU-002", 1, "tok_visa", "DE"))
        .await?;
    let order = stack.wait_terminal(&order_id).await?;
    stack.wait_idle().await?;
    let before = published(&stack).await?;
    let stock_before = stack.stock("SKU-002").await?;
    let sandbox_before: Value = stack
        .http
        .get(format!("{}/v1/sandbox", stack.urls["payment"]))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;

    let (order_svc, inventory, payment, shipping, notification) = (
        &stack.urls["order"],
        &stack.urls["inventory"],
        &stack.urls["payment"],
        &stack.urls["shipping"],
        &stack.urls["notification"],
    );
    let stock = json!({"available": 0, "unit_price": {"amount_minor": 1, "currency": "EUR"}});
    let sandbox = json!({"latency_ms": 0, "failure_rate": 1.0});
    let for_alice = order_body("c-alice", "SKU-002", 1, "tok_visa", "DE");
    let calls: Vec<(&str, String, Option<&Value>)> = vec![
        ("POST", format!("{order_svc}/v1/orders"), Some(&for_alice)),
        ("GET", format!("{order_svc}/v1/orders/{order_id}"), None),
        ("GET", format!("{order_svc}/v1/orders"), None),
        ("GET", format!("{order_svc}/v1/orders/summary"), None),
        ("GET", format!("{order_svc}/v1/order-changes?since=0"), None),
        (
            "GET",
            format!("{order_svc}/v1/customers/c-alice/orders"),
            None,
        ),
        ("GET", format!("{inventory}/v1/inventory"), None),
        ("GET", format!("{inventory}/v1/inventory/SKU-002"), None),
        (
            "PUT",
            format!("{inventory}/v1/inventory/SKU-002"),
            Some(&stock),
        ),
        ("GET", format!("{payment}/v1/payments/{order_id}"), None),
        ("GET", format!("{payment}/v1/sandbox"), None),
        ("PUT", format!("{payment}/v1/sandbox"), Some(&sandbox)),
        (
            "GET",
            format!("{notification}/v1/customers/c-alice/notifications"),
            None,
        ),
        // The auditor's pages: operators only.
        ("GET", format!("{order_svc}/v1/audit/orders"), None),
        ("GET", format!("{inventory}/v1/audit/stock"), None),
        ("GET", format!("{payment}/v1/audit/payments"), None),
        ("GET", format!("{shipping}/v1/audit/shipments"), None),
        (
            "GET",
            format!("{notification}/v1/audit/notifications"),
            None,
        ),
    ];
    let send = |client: &reqwest::Client, method: &str, url: &str, body: Option<&Value>| {
        let mut request = client.request(method.parse().expect("a method"), url);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send()
    };
    // No token, or a forged one: 401 everywhere.
    let plain = reqwest::Client::new();
    let forged = orderflow_api::bearer_client(&format!("{}x", stack.customer_token("c-alice")));
    for client in [&plain, &forged] {
        for (method, url, body) in &calls {
            let (status, p, _) = problem(send(client, method, url, *body).await?).await?;
            assert_eq!(status, 401, "{method} {url}: {p}");
        }
    }
    // Bob, a customer: Alice's things are not found, operators' are
    // forbidden, an order in her name is forbidden.
    let bob = stack.as_customer("c-bob");
    let expected = [
        403, 404, 200, 200, 200, 404, 403, 200, 403, 403, 403, 403, 404, 403, 403, 403, 403, 403,
    ];
    for ((method, url, body), want) in calls.iter().zip(expected) {
        let response = send(&bob, method, url, *body).await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        assert_eq!(status, want, "bob: {method} {url}: {text}");
        if want == 200 {
            assert!(!text.contains(&order_id), "{url}: {text}");
        }
    }
    // The lists a customer reads are their own whatever they ask for.
    for url in [
        format!("{order_svc}/v1/orders?customer_id=c-alice"),
        format!("{order_svc}/v1/order-changes?since=0&customer_id=c-alice"),
    ] {
        let text = bob.get(&url).send().await?.text().await?;
        assert!(!text.contains(&order_id), "{url}: {text}");
    }
    // Alice and an operator are served.
    for client in [&alice, &stack.http] {
        let got: Value = client
            .get(format!("{order_svc}/v1/orders/{order_id}"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        assert_eq!(got["status"], order.status.as_str());
    }

    stack.wait_idle().await?;
    assert_eq!(published(&stack).await?, before, "no order was placed");
    assert_eq!(
        stack.stock("SKU-002").await?,
        stock_before,
        "no stock was set"
    );
    let sandbox_after: Value = stack
        .http
        .get(format!("{payment}/v1/sandbox"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        sandbox_after, sandbox_before,
        "the sandbox's weather is as it was"
    );
    assert_eq!(
        stack.wait_terminal(&order_id).await?.status,
        order.status,
        "Alice's order is as it was"
    );
    stack.stop().await
}

/// The sandbox's settings are a test and demo tool: unless configured, the
/// payment service does not serve them, not even to an operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sandbox_settings_are_off_unless_configured() -> Result<()> {
    let stack = Stack::start_with(Options {
        sandbox_api: false,
        ..Default::default()
    })
    .await?;
    let sandbox = format!("{}/v1/sandbox", stack.urls["payment"]);
    let response = stack.http.get(&sandbox).send().await?;
    assert_eq!(response.status(), 404);
    let response = stack
        .http
        .put(&sandbox)
        .json(&json!({"latency_ms": 0, "failure_rate": 1.0}))
        .send()
        .await?;
    assert_eq!(response.status(), 404);
    stack.stop().await
}
