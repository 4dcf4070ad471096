//! The API the console is built on, used as an API client would: the live
//! stream of status changes (`GET /v1/orders/stream`, Server-Sent Events,
//! resumable with `Last-Event-ID`), the newest orders, the counts, the
//! catalogue and who the caller is — each scoped to what the caller may see.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use orderflow_testkit::{order_body, Stack};
use serde_json::Value;

/// One Server-Sent Event: its id and its data as JSON.
#[derive(Debug, Clone)]
struct Sse {
    id: String,
    data: Value,
}

/// Reads `GET /v1/orders/stream` until `done` says so (or 60 s pass).
async fn read_stream(
    client: &reqwest::Client,
    url: &str,
    last_event_id: Option<&str>,
    done: impl Fn(&[Sse]) -> bool,
) -> Result<Vec<Sse>> {
    let mut request = client.get(url);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await?;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut response = response;
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done(&events) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .with_context(|| format!("the stream did not finish; got {events:?}"))??
            .context("the stream ended")?;
        buffer.push_str(std::str::from_utf8(&chunk)?);
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut data, mut kind) = (None, String::new(), None);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                } else if let Some(v) = line.strip_prefix("event:") {
                    kind = Some(v.trim().to_string());
                }
            }
            if let (Some(id), Some("order")) = (id, kind.as_deref()) {
                events.push(Sse {
                    id,
                    data: serde_json::from_str(&data)?,
                });
            }
        }
    }
    Ok(events)
}

/// A GET's JSON body.
async fn get_json(client: &reqwest::Client, url: impl reqwest::IntoUrl) -> Result<Value> {
    Ok(client.get(url).send().await?.json().await?)
}

/// The order ids of a list, in its order.
fn order_ids(list: &Value) -> Vec<&str> {
    list["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect()
}

/// `statuses` are in `path`'s order, each once, from its first to its last.
fn assert_path(statuses: &[String], path: &[&str]) {
    let positions: Vec<Option<usize>> = statuses
        .iter()
        .map(|s| path.iter().position(|p| p == s))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]) && positions.iter().all(Option::is_some),
        "{statuses:?} is not along {path:?}"
    );
    assert_eq!(statuses.first().map(String::as_str), path.first().copied());
    assert_eq!(statuses.last().map(String::as_str), path.last().copied());
}

fn statuses_of(events: &[Sse], order_id: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.data["order_id"] == order_id)
        .map(|e| e.data["status"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stream_sends_each_status_change_once_and_resumes_from_an_event_id() -> Result<()> {
    let stack = Stack::start().await?;
    let url = stack.url("/v1/orders/stream");
    let operator = stack.http.clone();
    let reader = {
        let url = url.clone();
        tokio::spawn(async move {
            read_stream(&operator, &url, None, |events| {
                events
                    .iter()
                    .filter(|e| e.data["status"] == "SHIPPED")
                    .count()
                    >= 1
                    && events.iter().any(|e| e.data["status"] == "CANCELLED")
            })
            .await
        })
    };
    // The stream is open before the orders are placed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let shipped = stack
        .place(&order_body("c-stream", "SKU-001", 1, "tok_visa", "DE"))
        .await?;
    let declined = stack
        .place(&order_body(
            "c-other",
            "SKU-002",
            1,
            "tok_chargeDeclined",
            "DE",
        ))
        .await?;
    let events = reader.await??;
    stack.wait_terminal(&shipped).await?;
    stack.wait_terminal(&declined).await?;

    // One event per status change, in the order they were made. (A status
    // may be skipped: a payment that overtakes its reservation makes the
    // order PAID straight from PENDING.)
    assert_path(
        &statuses_of(&events, &shipped),
        &["PENDING", "RESERVED", "PAID", "SHIPPED"],
    );
    assert_path(
        &statuses_of(&events, &declined),
        &["PENDING", "RESERVED", "CANCELLED"],
    );
    let last = events
        .iter()
        .rfind(|e| e.data["order_id"] == declined.as_str())
        .unwrap();
    assert_eq!(last.data["reason"], "PAYMENT_DECLINED");
    assert_eq!(last.data["customer_id"], "c-other");
    assert!(last.data["changed_at"].as_str().unwrap().ends_with('Z'));
    let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "every event has its own id");

    // Resumed after the order's first event: what followed comes again,
    // nothing is lost, the event resumed from is not sent again.
    let first = events
        .iter()
        .find(|e| e.data["order_id"] == shipped.as_str())
        .unwrap();
    let resumed = read_stream(&stack.http, &url, Some(&first.id), |events| {
        statuses_of(events, &shipped).contains(&"SHIPPED".to_string())
    })
    .await?;
    let before = statuses_of(&events, &shipped);
    assert_eq!(statuses_of(&resumed, &shipped), before[1..]);
    assert!(resumed.iter().all(|e| e.id != first.id));

    // A customer's stream carries their own orders only.
    let mine = stack
        .place(&order_body("c-stream", "SKU-001", 1, "tok_visa", "DE"))
        .await?;
    let theirs = stack
        .place(&order_body("c-other", "SKU-001", 1, "tok_visa", "DE"))
        .await?;
    let as_customer = stack.as_customer("c-stream");
    let seen = read_stream(
        &as_customer,
        &format!("{url}?customer_id=c-other"),
        Some(&first.id),
        |events| statuses_of(events, &mine).contains(&"SHIPPED".to_string()),
    )
    .await?;
    stack.wait_terminal(&theirs).await?;
    assert!(
        seen.iter().all(|e| e.data["customer_id"] == "c-stream"),
        "{seen:?}"
    );

    // A Last-Event-ID the stream never sent is refused, not guessed at.
    let bad = stack
        .http
        .get(&url)
        .header("last-event-id", "yesterday")
        .send()
        .await?;
    assert_eq!(bad.status(), 422);
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lists_counts_and_the_catalogue_show_each_caller_what_is_theirs() -> Result<()> {
    let stack = Stack::start().await?;
    let a = stack
        .place(&order_body("c-list-a", "SKU-001", 1, "tok_visa", "DE"))
        .await?;
    let b = stack
        .place(&order_body(
            "c-list-b",
            "SKU-002",
            1,
            "tok_chargeDeclined",
            "DE",
        ))
        .await?;
    stack.wait_terminal(&a).await?;
    stack.wait_terminal(&b).await?;

    // The operator: every order, newest first; counts of all; the catalogue.
    let all: Value = get_json(&stack.http, stack.url("/v1/orders")).await?;
    let ids: Vec<&str> = order_ids(&all);
    assert_eq!(ids, [b.as_str(), a.as_str()]);
    let cancelled: Value = get_json(&stack.http, stack.url("/v1/orders?status=CANCELLED")).await?;
    assert_eq!(cancelled["orders"].as_array().unwrap().len(), 1);
    assert_eq!(cancelled["orders"][0]["reason"], "PAYMENT_DECLINED");
    let summary: Value = get_json(&stack.http, stack.url("/v1/orders/summary")).await?;
    assert_eq!(summary["counts"]["SHIPPED"], 1);
    assert_eq!(summary["counts"]["CANCELLED"], 1);
    assert_eq!(summary["counts"]["PENDING"], 0);
    assert_eq!(summary["cancelled"]["PAYMENT_DECLINED"], 1);
    let per_second = summary["placed_per_second"].as_array().unwrap();
    assert_eq!(per_second.len(), 60);
    assert_eq!(
        per_second.iter().map(|n| n.as_i64().unwrap()).sum::<i64>(),
        2
    );
    let stock: Value = get_json(&stack.http, stack.url("/v1/inventory")).await?;
    let skus: HashMap<&str, &Value> = stock["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["sku"].as_str().unwrap(), i))
        .collect();
    assert_eq!(
        skus["SKU-001"]["available"],
        stack.stock("SKU-001").await?.available
    );
    let me: Value = get_json(&stack.http, stack.url("/v1/me")).await?;
    assert_eq!(me["operator"], true);

    // A customer: their own orders and counts, even when asking for another's;
    // the catalogue and the dead letters are operators' business.
    let customer = stack.as_customer("c-list-a");
    let own: Value = get_json(&customer, stack.url("/v1/orders?customer_id=c-list-b")).await?;
    let own_ids: Vec<&str> = order_ids(&own);
    assert_eq!(own_ids, [a.as_str()]);
    let summary: Value = get_json(&customer, stack.url("/v1/orders/summary")).await?;
    assert_eq!(summary["counts"]["SHIPPED"], 1);
    assert_eq!(summary["counts"]["CANCELLED"], 0);
    for path in [
        "/v1/inventory",
        "/v1/dead-letters",
        "/v1/dead-letters/inventory/0/0",
    ] {
        let r = customer.get(stack.url(path)).send().await?;
        assert_eq!(r.status(), 403, "{path}");
    }
    let replay = customer
        .post(stack.url("/v1/dead-letters/inventory/0/0/replay"))
        .send()
        .await?;
    assert_eq!(replay.status(), 403);
    let me: Value = get_json(&customer, stack.url("/v1/me")).await?;
    assert_eq!(
        (me["subject"].as_str(), me["operator"].as_bool()),
        (Some("c-list-a"), Some(false))
    );

    // Bad filters get a clear problem; a token is still needed.
    for path in [
        "/v1/orders?status=LOST",
        "/v1/orders?limit=0",
        "/v1/orders?colour=red",
    ] {
        let r = stack.http.get(stack.url(path)).send().await?;
        assert_eq!(r.status(), 422, "{path}");
        let problem: Value = r.json().await?;
        assert!(problem["detail"].as_str().is_some(), "{path}");
    }
    let anonymous = reqwest::get(stack.url("/v1/orders/stream")).await?;
    assert_eq!(anonymous.status(), 401);

    // The order service's feed read a page at a time (a burst bigger than a
    // read): every change once, in the same order as in one read.
    let feed = format!("{}/v1/order-changes", stack.urls["order"]);
    let plain = stack.http.clone();
    let all: Value = get_json(&plain, format!("{feed}?since=0")).await?;
    let all = all["changes"].as_array().unwrap().clone();
    assert!(
        all.len() >= 4,
        "PENDING and the outcome of two orders: {all:?}"
    );
    let mut paged = Vec::new();
    let mut url = format!("{feed}?since=0&limit=2");
    loop {
        let page: Value = get_json(&plain, &url).await?;
        let page = page["changes"].as_array().unwrap().clone();
        let Some(last) = page.last().cloned() else {
            break;
        };
        paged.extend(page);
        let at = chrono::DateTime::parse_from_rfc3339(last["changed_at"].as_str().unwrap())?
            .timestamp_millis();
        url = format!(
            "{feed}?since=0&limit=2&after_at={at}&after_order_id={}&after_status={}",
            last["order_id"].as_str().unwrap(),
            last["status"].as_str().unwrap()
        );
    }
    assert_eq!(paged, all);

    // Streams are held open: a caller may have 8, the ninth is 429.
    let mut open = Vec::new();
    for _ in 0..8 {
        let r = customer.get(stack.url("/v1/orders/stream")).send().await?;
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let ninth = customer.get(stack.url("/v1/orders/stream")).send().await?;
    assert_eq!(ninth.status(), 429);
    let other = stack.as_customer("c-list-b");
    assert_eq!(
        other
            .get(stack.url("/v1/orders/stream"))
            .send()
            .await?
            .status(),
        200
    );
    drop(open.pop());
    let mut reopened = false;
    // The gateway notices a closed stream at its next write (a keep-alive
    // within 15 s at most).
    for _ in 0..200 {
        if customer
            .get(stack.url("/v1/orders/stream"))
            .send()
            .await?
            .status()
            == 200
        {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened, "a closed stream frees its slot");
    stack.stop().await
}
