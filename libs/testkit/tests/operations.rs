//! Operating the platform with the `orderflow` CLI, as an operator would:
//! dead letters found, inspected, replayed and marked reviewed; the order
//! service's read model rebuilt from the log and compared with the live one;
//! and each customer's order list, a projection kept from the events.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use orderflow_testkit::cli::{orderflow, orderflow_ok};
use orderflow_testkit::metrics::scrape;
use orderflow_testkit::{check_four_outcomes, order_body, Stack};
use serde_json::Value;

/// `orderflow dlq list --output json` with these filters.
async fn dlq_list(stack: &Stack, filters: &[&str]) -> Result<Vec<Value>> {
    let mut args = vec!["dlq", "list", "--output", "json"];
    args.extend_from_slice(filters);
    let out = orderflow_ok(&stack.bootstrap, &stack.registry, &args).await?;
    let listing: Value = serde_json::from_str(&out).with_context(|| format!("not JSON: {out}"))?;
    Ok(listing["letters"].as_array().cloned().unwrap_or_default())
}

/// Waits until the service's dead-letter listing has `n` entries.
async fn wait_for_dead_letters(stack: &Stack, filters: &[&str], n: usize) -> Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let letters = dlq_list(stack, filters).await?;
        if letters.len() >= n {
            return Ok(letters);
        }
        if Instant::now() > deadline {
            bail!(
                "{} dead letter(s) for {filters:?} after 30 s, expected {n}",
                letters.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An order placed behind the gateway's back (on the order service's own
/// API) for a SKU the catalogue does not have: inventory cannot reserve it
/// and dead-letters the `OrderCreated` (a broken invariant, not an
/// out-of-stock). The operator finds it, reads it decoded, adds the SKU and
/// replays it: the order ships. Replaying it again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_letter_is_found_shown_replayed_and_its_order_completes() -> Result<()> {
    let stack = Stack::start().await?;
    let body = order_body("c-dlq", "SKU-777", 2, "tok_visa", "DE");
    let placed: Value = stack
        .http
        .post(format!("{}/v1/orders", stack.urls["order"]))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let order_id = placed["order_id"].as_str().context("order_id")?.to_string();

    let letters = wait_for_dead_letters(&stack, &["--service", "inventory"], 1).await?;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    let id = letter["id"].as_str().context("id")?.to_string();
    assert!(id.starts_with("inventory/"), "{id}");
    assert_eq!(letter["event_type"], "OrderCreated");
    assert_eq!(letter["order_id"], order_id.as_str());
    assert_eq!(letter["attempts"], 1);
    assert!(
        letter["error"]
            .as_str()
            .is_some_and(|e| e.contains("SKU SKU-777") && e.contains("not in the catalogue")),
        "{letter}"
    );
    assert_eq!(stack.order(&order_id).await?.status, "PENDING");

    // Shown with its payload decoded through the registry.
    let shown: Value = serde_json::from_str(
        &orderflow_ok(
            &stack.bootstrap,
            &stack.registry,
            &["dlq", "show", &id, "--output", "json"],
        )
        .await?,
    )?;
    assert_eq!(shown["payload"]["as"], "json");
    assert_eq!(shown["payload"]["value"]["order_id"], order_id.as_str());
    assert_eq!(shown["payload"]["value"]["items"][0]["sku"], "SKU-777");
    assert_eq!(shown["dead_letter"]["source"][0], "orders");
    let text = orderflow_ok(&stack.bootstrap, &stack.registry, &["dlq", "show", &id]).await?;
    assert!(text.contains("\"sku\": \"SKU-777\""), "{text}");

    // The operator fixes the data the handler depends on, then replays.
    stack.set_stock("SKU-777", 10, 1_250).await?;
    let out = orderflow_ok(&stack.bootstrap, &stack.registry, &["dlq", "replay", &id]).await?;
    assert!(out.contains("1 replayed, 0 skipped, 0 failed"), "{out}");
    let order = stack.wait_terminal(&order_id).await?;
    assert_eq!(order.status, "SHIPPED", "{:?}", order.history);
    assert_eq!(
        order.total.map(|t| t.amount_minor),
        Some(2 * 1_250),
        "priced from the catalogue at replay time"
    );
    stack.wait_idle().await?;

    // Again: skipped by default; forced, the inbox makes it a no-op.
    let out = orderflow_ok(&stack.bootstrap, &stack.registry, &["dlq", "replay", &id]).await?;
    assert!(out.contains("0 replayed, 1 skipped, 0 failed"), "{out}");
    let out = orderflow_ok(
        &stack.bootstrap,
        &stack.registry,
        &["dlq", "replay", &id, "--again"],
    )
    .await?;
    assert!(out.contains("(replay 2)"), "{out}");
    stack.wait_idle().await?;
    let inventory = scrape(&stack.http, &stack.ops["inventory"]).await?;
    assert_eq!(
        inventory.sum_where(
            "orderflow_events_consumed_total",
            &[("event_type", "OrderCreated"), ("outcome", "duplicate")]
        ),
        1.0,
        "the second replay was a duplicate to inventory's inbox"
    );
    let stock = stack.stock("SKU-777").await?;
    assert_eq!(
        (stock.available, stock.reserved),
        (8, 0),
        "reserved and shipped once"
    );
    let p = stack.payment(&order_id).await?.context("payment")?;
    assert_eq!((p.provider_charges, p.provider_refunds), (1, 0));
    assert_eq!(stack.notifications("c-dlq").await?.len(), 2);
    assert_eq!(
        dlq_list(&stack, &["--service", "inventory"]).await?.len(),
        1,
        "the replays succeeded: no new dead letter"
    );

    // Unknown ids and a missing broker are clear errors.
    let out = orderflow(
        &stack.bootstrap,
        &stack.registry,
        &["dlq", "show", "inventory/0/99999"],
    )
    .await?;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no dead letter inventory/0/99999"), "{err}");
    let out = orderflow(
        &stack.bootstrap,
        &stack.registry,
        &["dlq", "show", "billing/0/1"],
    )
    .await?;
    assert_eq!(out.status.code(), Some(64), "a usage error");
    let out = orderflow("127.0.0.1:1", &stack.registry, &["dlq", "list"]).await?;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach Kafka at 127.0.0.1:1"), "{err}");
    stack.stop().await
}

/// A replay that fails again returns to the dead-letter topic with its
/// lineage: where it was replayed from and how many replays it has seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_that_fails_again_comes_back_with_its_lineage() -> Result<()> {
    let stack = Stack::start().await?;
    stack
        .kafka()
        .produce_raw("orders", "o-poison", &[], b"not an event")
        .await?;
    let letters = wait_for_dead_letters(&stack, &["--service", "inventory"], 1).await?;
    let id = letters[0]["id"].as_str().context("id")?.to_string();
    let out = orderflow_ok(&stack.bootstrap, &stack.registry, &["dlq", "replay", &id]).await?;
    assert!(out.contains("1 replayed"), "{out}");
    let letters = wait_for_dead_letters(&stack, &["--service", "inventory"], 2).await?;
    let again = letters
        .iter()
        .find(|l| l["id"] != id.as_str())
        .context("the replay's dead letter")?;
    assert_eq!(again["replayed_from"], id.as_str());
    assert_eq!(again["replay_count"], 1);
    assert_eq!(again["order_id"], "o-poison");
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_are_filtered_and_marked_reviewed() -> Result<()> {
    let stack = Stack::start().await?;
    let kafka = stack.kafka();
    // Garbage on `orders`: inventory and notification park it.
    kafka
        .produce_raw("orders", "o-garbage", &[], b"garbage")
        .await?;
    // A dead letter from two days ago, as an older service left it.
    let two_days_ago = (chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339();
    kafka
        .produce_raw(
            "payment.dlq",
            "o-old",
            &[
                ("ce_type", "io.orderflow.events.InventoryReserved"),
                ("ce_subject", "o-old"),
                ("x-orderflow-dlq-error", "provider said no"),
                ("x-orderflow-dlq-source-topic", "inventory"),
                ("x-orderflow-dlq-source-partition", "0"),
                ("x-orderflow-dlq-source-offset", "7"),
                ("x-orderflow-dlq-attempts", "4"),
                ("x-orderflow-dlq-service", "payment"),
                ("x-orderflow-dlq-failed-at", &two_days_ago),
            ],
            b"\x00\x00\x00\x00\x01",
        )
        .await?;
    // With the old one, three in all.
    let all = wait_for_dead_letters(&stack, &[], 3).await?;
    let ids: BTreeMap<String, String> = all
        .iter()
        .map(|l| {
            (
                l["id"].as_str().unwrap().to_string(),
                l["order_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(all.len(), 3, "{ids:?}");
    // Newest first: the old one last.
    assert_eq!(all[2]["order_id"], "o-old");

    let count = |filters: &'static [&'static str]| {
        let stack = &stack;
        async move { anyhow::Ok(dlq_list(stack, filters).await?.len()) }
    };
    assert_eq!(count(&["--service", "inventory"]).await?, 1);
    assert_eq!(count(&["--service", "notification"]).await?, 1);
    assert_eq!(count(&["--service", "payment"]).await?, 1);
    assert_eq!(count(&["--event-type", "InventoryReserved"]).await?, 1);
    assert_eq!(count(&["--order", "o-garbage"]).await?, 2);
    assert_eq!(count(&["--order", "o-old"]).await?, 1);
    assert_eq!(
        count(&["--since", "1d"]).await?,
        2,
        "the two-day-old one is out"
    );
    assert_eq!(count(&["--since", "3d"]).await?, 3);
    assert_eq!(count(&["--error", "PROVIDER SAID"]).await?, 1);
    assert_eq!(count(&["--limit", "1"]).await?, 1);
    let table = orderflow_ok(&stack.bootstrap, &stack.registry, &["dlq", "list"]).await?;
    assert_eq!(
        table.lines().count(),
        1 + 3,
        "a header and a line each:\n{table}"
    );
    assert!(table.contains("provider said no"), "{table}");

    // Purge marks them reviewed: hidden from then on, and the marker shows.
    let out = orderflow_ok(
        &stack.bootstrap,
        &stack.registry,
        &["dlq", "purge", "--service", "inventory"],
    )
    .await?;
    assert!(out.contains("inventory.dlq partition"), "{out}");
    assert_eq!(count(&["--service", "inventory"]).await?, 0);
    assert_eq!(
        count(&["--service", "inventory", "--include-reviewed"]).await?,
        1
    );
    assert_eq!(count(&[]).await?, 2, "the other services' stay");
    let markers = orderflow_ok(
        &stack.bootstrap,
        &stack.registry,
        &["dlq", "markers", "--service", "inventory"],
    )
    .await?;
    assert!(
        markers.contains("reviewed up to offset 1") && markers.contains("marked at"),
        "{markers}"
    );
    let table = orderflow_ok(
        &stack.bootstrap,
        &stack.registry,
        &["dlq", "list", "--service", "inventory"],
    )
    .await?;
    assert!(
        table.contains("1 reviewed dead letter(s) not shown"),
        "{table}"
    );
    let dry = orderflow_ok(
        &stack.bootstrap,
        &stack.registry,
        &[
            "dlq",
            "replay",
            "--all",
            "--service",
            "payment",
            "--dry-run",
        ],
    )
    .await?;
    assert!(
        dry.contains("would replay payment/") && dry.contains("→ inventory"),
        "{dry}"
    );
    assert!(
        dry.contains("dry run: 1 replayed, 0 skipped, 0 failed"),
        "{dry}"
    );
    stack.stop().await
}

/// The order read model rebuilt from the log equals the live one, order by
/// order with its history, and so does every customer's order list.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_order_read_model_rebuilt_from_the_log_equals_the_live_one() -> Result<()> {
    let stack = Stack::start().await?;
    check_four_outcomes(&stack, stack.wait_idle()).await?;
    let bodies: Vec<Value> = (0..200)
        .map(|i| {
            let (token, country) = match i % 10 {
                0 => ("tok_chargeDeclined", "DE"),
                1 => ("tok_visa", "AQ"),
                _ => ("tok_visa", "DE"),
            };
            order_body(
                &format!("c-rebuild-{}", i % 7),
                &format!("SKU-{:03}", i % 10 + 1),
                1 + i % 3,
                token,
                country,
            )
        })
        .collect();
    let ids = stack.place_all(&bodies, 32).await?;
    stack
        .wait_all_terminal(&ids, Duration::from_secs(120))
        .await?;
    stack.wait_idle().await?;

    let dir = tempfile::tempdir()?;
    let into = format!("sqlite://{}/rebuilt.db", dir.path().display());
    let started = Instant::now();
    let out = orderflow_ok(
        &stack.bootstrap,
        &stack.registry,
        &[
            "rebuild",
            "order",
            "--into",
            &into,
            "--live",
            &stack.databases["order"],
        ],
    )
    .await?;
    println!("{out}(in {:.1} s)", started.elapsed().as_secs_f64());
    assert!(out.contains("rebuilt 204 orders"), "{out}");
    assert!(
        out.contains("204 live orders, 204 rebuilt; 204 equal, 0 differ, 0 missing"),
        "{out}"
    );
    assert!(out.contains("0 customer lists differ"), "{out}");
    assert!(
        out.contains("the rebuilt read model equals the live one"),
        "{out}"
    );
    // Into a database that holds orders already: refused.
    let refused = orderflow(
        &stack.bootstrap,
        &stack.registry,
        &["rebuild", "order", "--into", &into],
    )
    .await?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("fresh database"));
    stack.stop().await
}

/// GET /v1/customers/{id}/orders: newest first, a page at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_customers_orders_come_newest_first_a_page_at_a_time() -> Result<()> {
    let stack = Stack::start().await?;
    let mut placed = Vec::new();
    for i in 0..5 {
        let token = if i == 2 {
            "tok_chargeDeclined"
        } else {
            "tok_visa"
        };
        placed.push(
            stack
                .place(&order_body("c-pages", "SKU-002", 1, token, "DE"))
                .await?,
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stack
        .place(&order_body("c-other", "SKU-002", 1, "tok_visa", "DE"))
        .await?;
    stack
        .wait_all_terminal(&placed, Duration::from_secs(60))
        .await?;
    stack.wait_idle().await?;
    let page = |query: String| {
        let url = stack.url(&format!("/v1/customers/c-pages/orders{query}"));
        let http = stack.http.clone();
        async move {
            let r = http.get(url).send().await?;
            anyhow::Ok((r.status().as_u16(), r.json::<Value>().await?))
        }
    };
    let (status, first) = page("?limit=2".into()).await?;
    assert_eq!(status, 200);
    let ids = |p: &Value| -> Vec<String> {
        p["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["order_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&first), vec![placed[4].clone(), placed[3].clone()]);
    let cursor = first["next_cursor"]
        .as_str()
        .context("a next page")?
        .to_string();
    let (_, second) = page(format!("?limit=2&cursor={cursor}")).await?;
    assert_eq!(ids(&second), vec![placed[2].clone(), placed[1].clone()]);
    assert_eq!(second["orders"][0]["status"], "CANCELLED");
    assert_eq!(second["orders"][0]["reason"], "PAYMENT_DECLINED");
    assert_eq!(second["orders"][1]["status"], "SHIPPED");
    assert_eq!(second["orders"][1]["total"]["amount_minor"], 1998);
    let cursor = second["next_cursor"]
        .as_str()
        .context("a third page")?
        .to_string();
    let (_, last) = page(format!("?limit=2&cursor={cursor}")).await?;
    assert_eq!(ids(&last), vec![placed[0].clone()]);
    assert!(last.get("next_cursor").is_none(), "the last page says so");
    let (_, all) = page(String::new()).await?;
    assert_eq!(
        ids(&all).len(),
        5,
        "20 by default, and only this customer's"
    );
    for bad in ["?limit=0", "?limit=101", "?cursor=zz", "?size=3"] {
        let (status, problem) = page(bad.into()).await?;
        assert_eq!(status, 422, "{bad}: {problem}");
    }
    stack.stop().await
}
