//! The gateway's contract: idempotent order placement, and bad input turned
//! away with a problem document before anything is written or published.

use orderflow_testkit::{order_body, Stack};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotency_key_replay_returns_the_same_order() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let body = order_body("c-idem", "SKU-005", 1, "tok_visa", "DE");

    let first = stack.post_order(&body, Some("key-1")).await?;
    assert_eq!(first.status(), 202);
    let location = first.headers()["location"].to_str()?.to_string();
    let first: Value = first.json().await?;
    let order_id = first["order_id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/v1/orders/{order_id}"));

    let replay = stack.post_order(&body, Some("key-1")).await?;
    assert_eq!(replay.status(), 202);
    let replay: Value = replay.json().await?;
    assert_eq!(replay["order_id"], first["order_id"]);

    let other_body = order_body("c-idem", "SKU-005", 2, "tok_visa", "DE");
    let conflict = stack.post_order(&other_body, Some("key-1")).await?;
    assert_eq!(conflict.status(), 422);
    assert_eq!(
        conflict.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = conflict.json().await?;
    assert_eq!(
        problem["type"],
        "https://orderflow.dev/problems/idempotency-key-reused"
    );

    stack.wait_terminal(&order_id).await?;
    stack.wait_idle().await?;
    // One order: one OrderCreated, one charge, 1 unit gone.
    let created = stack.kafka().read_all("orders").await?;
    let created = created
        .iter()
        .filter(|m| {
            use rdkafka::message::{Headers, Message};
            m.headers().is_some_and(|h| {
                h.iter().any(|h| {
                    h.key == "ce_type" && h.value == Some(b"io.orderflow.events.OrderCreated")
                })
            })
        })
        .count();
    assert_eq!(created, 1);
    assert_eq!(stack.stock("SKU-005").await?.available, 99);
    assert_eq!(stack.notifications("c-idem").await?.len(), 2);
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_a_problem_and_changes_nothing() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let good = order_body("c-bad", "SKU-006", 1, "tok_visa", "DE");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut body = good.clone();
        f(&mut body);
        body
    };
    let cases: Vec<(&str, Result<Value, &str>, u16, &str)> = vec![
        (
            "malformed JSON",
            Err("{\"customer_id\": \"c\", "),
            400,
            "malformed-body",
        ),
        ("not an object", Err("[1, 2, 3]"), 400, "malformed-body"),
        (
            "unknown top-level field",
            Ok(with(&|b| b["coupon"] = json!("FREE"))),
            400,
            "malformed-body",
        ),
        (
            "unknown nested field",
            Ok(with(&|b| b["items"][0]["price"] = json!(1))),
            400,
            "malformed-body",
        ),
        (
            "missing field",
            Ok(with(&|b| {
                b.as_object_mut().unwrap().remove("payment");
            })),
            400,
            "malformed-body",
        ),
        (
            "quantity zero",
            Ok(with(&|b| b["items"][0]["quantity"] = json!(0))),
            422,
            "validation-failed",
        ),
        (
            "negative quantity",
            Ok(with(&|b| b["items"][0]["quantity"] = json!(-3))),
            422,
            "validation-failed",
        ),
        (
            "empty items",
            Ok(with(&|b| b["items"] = json!([]))),
            422,
            "validation-failed",
        ),
        (
            "bad country",
            Ok(with(&|b| {
                b["shipping_address"]["country"] = json!("Germany")
            })),
            422,
            "validation-failed",
        ),
        (
            "unknown SKU",
            Ok(with(&|b| b["items"][0]["sku"] = json!("SKU-404"))),
            422,
            "unknown-sku",
        ),
        (
            "body too large",
            Ok(with(&|b| b["customer_id"] = json!("x".repeat(100_000)))),
            413,
            "payload-too-large",
        ),
    ];
    let before = stack.kafka().message_count("orders").await?;
    for (name, body, status, kind) in cases {
        let request = stack
            .http
            .post(stack.url("/v1/orders"))
            .header("content-type", "application/json");
        let request = match body {
            Ok(json) => request.body(json.to_string()),
            Err(raw) => request.body(raw.to_string()),
        };
        let response = request.send().await?;
        assert_eq!(response.status().as_u16(), status, "{name}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{name}"
        );
        let problem: Value = response.json().await?;
        assert_eq!(
            problem["type"],
            format!("https://orderflow.dev/problems/{kind}"),
            "{name}: {problem}"
        );
        assert_eq!(problem["status"], status, "{name}");
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}: a problem says what is wrong"
        );
    }
    let wrong_type = stack
        .http
        .post(stack.url("/v1/orders"))
        .body(good.to_string())
        .send()
        .await?;
    assert_eq!(wrong_type.status(), 415);

    // Nothing was published (once the relay has drained whatever was
    // written), nothing reserved, nobody notified.
    stack.wait_idle().await?;
    assert_eq!(stack.kafka().message_count("orders").await?, before);
    assert_eq!(stack.stock("SKU-006").await?.available, 100);
    assert!(stack.notifications("c-bad").await?.is_empty());
    let missing = stack
        .http
        .get(stack.url("/v1/orders/0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b"))
        .send()
        .await?;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );

    // The catalogue API refuses bad stock the same way.
    let bad_stock =
        json!({"available": -1, "unit_price": {"amount_minor": 100, "currency": "EUR"}});
    let response = stack
        .http
        .put(stack.url("/v1/inventory/SKU-006"))
        .json(&bad_stock)
        .send()
        .await?;
    assert_eq!(response.status(), 422);
    // One catalogue, one currency: an order could not be priced otherwise.
    let dollars = json!({"available": 5, "unit_price": {"amount_minor": 100, "currency": "USD"}});
    let response = stack
        .http
        .put(stack.url("/v1/inventory/SKU-006"))
        .json(&dollars)
        .send()
        .await?;
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await?;
    assert!(
        problem["detail"].as_str().unwrap().contains("EUR"),
        "{problem}"
    );
    assert_eq!(stack.stock("SKU-006").await?.available, 100);

    // Unknown paths and methods are problems too.
    for (method, path, status) in [("DELETE", "/v1/orders/x", 405), ("GET", "/v2/orders", 404)] {
        let response = stack
            .http
            .request(method.parse()?, stack.url(path))
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{method} {path}"
        );
    }
    stack.stop().await
}

/// The limits hold at their exact edges: 1,000 units of a line and 100 lines
/// are accepted, 1,001 and 101 are not; a body of exactly 64 KiB is read, one
/// byte more is 413. What is refused publishes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_hold_at_their_exact_boundaries() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let post = |body: String| {
        stack
            .http
            .post(stack.url("/v1/orders"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // Each kind of order on its own SKU (100 units each), so the outcomes
    // do not depend on which saga runs first.
    let lines = |n: usize| {
        let mut body = order_body("c-limits", "SKU-008", 1, "tok_visa", "DE");
        body["items"] = json!(vec![json!({"sku": "SKU-008", "quantity": 1}); n]);
        body
    };
    let quantity = |q: i64| order_body("c-limits", "SKU-009", q, "tok_visa", "DE");
    // A valid body padded with spaces to exactly `len` bytes.
    let sized = |len: usize| {
        let mut body = order_body("c-limits", "SKU-007", 1, "tok_visa", "DE").to_string();
        assert!(body.len() < len);
        body.push_str(&" ".repeat(len - body.len()));
        body
    };
    let limit = orderflow_http::MAX_BODY_BYTES;
    assert_eq!(limit, 64 * 1024);
    let before = stack.kafka().message_count("orders").await?;
    let mut accepted = Vec::new();
    for (name, body, status) in [
        ("1000 units", quantity(1000).to_string(), 202),
        ("1001 units", quantity(1001).to_string(), 422),
        ("100 lines", lines(100).to_string(), 202),
        ("101 lines", lines(101).to_string(), 422),
        ("a body of 64 KiB", sized(limit), 202),
        ("a body of 64 KiB + 1", sized(limit + 1), 413),
    ] {
        let response = post(body).await?;
        assert_eq!(response.status().as_u16(), status, "{name}");
        let answer: Value = response.json().await?;
        if status == 202 {
            accepted.push(answer["order_id"].as_str().unwrap().to_string());
        } else {
            assert_eq!(answer["status"], status, "{name}: {answer}");
        }
    }
    let outcomes: Vec<(String, Option<String>)> = {
        let mut outcomes = Vec::new();
        for id in &accepted {
            let order = stack.wait_terminal(id).await?;
            outcomes.push((order.status, order.reason));
        }
        outcomes
    };
    let out_of_stock = ("CANCELLED".to_string(), Some("OUT_OF_STOCK".to_string()));
    let shipped = ("SHIPPED".to_string(), None);
    assert_eq!(
        outcomes,
        vec![out_of_stock, shipped.clone(), shipped],
        "1000 units is more than the 100 in stock; 100 lines of one unit are 100 units"
    );
    stack.wait_idle().await?;
    assert_eq!(
        stack.kafka().message_count("orders").await? - before,
        3 + 3,
        "three OrderCreated and their three outcomes, nothing for the refused"
    );
    for (sku, left) in [("SKU-009", 100), ("SKU-008", 0), ("SKU-007", 99)] {
        let stock = stack.stock(sku).await?;
        assert_eq!((stock.available, stock.reserved), (left, 0), "{sku}");
    }
    stack.stop().await
}
