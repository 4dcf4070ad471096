//! The web console in a real headless Chromium (Debian's, through
//! chromedriver), against the whole stack: what an operator and a customer
//! see and do. Screenshots of every view go to
//! `<target>/console-screenshots/`; the measured page weight, first render and
//! stream latency are printed (`--nocapture`) for the README.

use std::time::Duration;

use anyhow::{Context, Result};
use orderflow_companions::Jaeger;
use orderflow_testkit::browser::Browser;
use orderflow_testkit::system::ProcessStack;
use orderflow_testkit::traces::{TraceQuery, SERVICES};
use orderflow_testkit::{order_body, Api, Stack};
use serde_json::Value;

const SOON: Duration = Duration::from_secs(15);

/// Opens the console signed in with `token` and waits for the orders table.
async fn sign_in(browser: &Browser, stack: &Api, token: &str) -> Result<()> {
    browser
        .goto(&format!("{}/console/#token={token}", stack.gateway))
        .await?;
    browser.wait_for("table#orders", SOON).await?;
    let url = browser.client.current_url().await?;
    assert!(
        !url.as_str().contains("token="),
        "the token left the address bar: {url}"
    );
    Ok(())
}

async fn show(browser: &Browser, route: &str) -> Result<()> {
    browser
        .eval(&format!(
            "location.hash = {}; return true",
            Value::from(route)
        ))
        .await?;
    Ok(())
}

/// Records, for every status a row of the live table takes, how long after
/// the change (the order service's `changed_at`) the table showed it.
const LATENCY_PROBE: &str = r#"
window.__latencies = [];
const seen = new Set();
const record = (row) => {
  const key = row.dataset.orderId + ' ' + row.dataset.status;
  if (!row.dataset.changedAt || seen.has(key)) return;
  seen.add(key);
  window.__latencies.push(Date.now() - Number(row.dataset.changedAt));
};
new MutationObserver((records) => {
  for (const r of records) {
    if (r.type === 'attributes') record(r.target);
    for (const n of r.addedNodes || []) if (n.dataset && n.dataset.orderId) record(n);
  }
}).observe(document.querySelector('table#orders tbody'),
  { subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'] });
return true;
"#;

/// What the first load of the console cost: bytes of the page and its own
/// files, bytes of API answers, first contentful paint.
const LOAD_FIGURES: &str = r#"
const nav = performance.getEntriesByType('navigation')[0];
const res = performance.getEntriesByType('resource');
const own = res.filter(r => r.name.includes('/console/'));
const api = res.filter(r => r.name.includes('/v1/'));
const sum = (xs, f) => xs.reduce((a, x) => a + (x[f] || 0), 0);
const fcp = performance.getEntriesByType('paint').find(p => p.name === 'first-contentful-paint');
return {
  page_bytes: nav.decodedBodySize + sum(own, 'decodedBodySize'),
  page_transfer_bytes: nav.transferSize + sum(own, 'transferSize'),
  files: 1 + own.length,
  api_bytes: sum(api, 'decodedBodySize'),
  first_contentful_paint_ms: fcp ? Math.round(fcp.startTime) : null,
  dom_content_loaded_ms: Math.round(nav.domContentLoadedEventEnd),
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_watches_orders_arrive_live_and_reads_each_saga_as_a_timeline() -> Result<()> {
    let stack = Stack::start().await?;
    let browser = Browser::start().await?;
    let operator = stack
        .issuer
        .mint("operator", true, Duration::from_secs(3_600));
    sign_in(&browser, &stack, &operator).await?;
    let load = browser.eval(LOAD_FIGURES).await?;
    browser
        .eval("window.__sameDocument = true; return true")
        .await?;
    browser.eval(LATENCY_PROBE).await?;

    // An order placed through the API appears and reaches SHIPPED, live.
    let shipped = stack
        .place(&order_body("c-console", "SKU-001", 2, "tok_visa", "DE"))
        .await?;
    let row = format!("tr[data-order-id='{shipped}']");
    browser.wait_for(&row, SOON).await?;
    browser
        .wait_text(&format!("{row} td.status"), SOON, |s| s == "SHIPPED")
        .await?;
    assert_eq!(stack.wait_terminal(&shipped).await?.status, "SHIPPED");
    let declined = stack
        .place(&order_body(
            "c-console",
            "SKU-002",
            1,
            "tok_chargeDeclined",
            "DE",
        ))
        .await?;
    let declined_row = format!("tr[data-order-id='{declined}']");
    browser
        .wait_text(&format!("{declined_row} td.status"), SOON, |s| {
            s == "CANCELLED"
        })
        .await?;
    browser
        .wait_text(&format!("{declined_row} td.reason"), SOON, |s| {
            s.contains("PAYMENT_DECLINED")
        })
        .await?;
    // More orders, for the stream latency figures.
    let mut more = Vec::new();
    for i in 0..8 {
        let customer = format!("c-console-{i}");
        more.push(
            stack
                .place(&order_body(&customer, "SKU-003", 1, "tok_visa", "DE"))
                .await?,
        );
    }
    for id in &more {
        browser
            .wait_text(&format!("tr[data-order-id='{id}'] td.status"), SOON, |s| {
                s == "SHIPPED"
            })
            .await?;
    }
    // Without a reload: the page's own state survived.
    assert_eq!(
        browser
            .eval("return window.__sameDocument === true")
            .await?,
        true
    );
    browser
        .wait_text("#counts [data-status='SHIPPED'] .count", SOON, |s| {
            s.trim() == "9"
        })
        .await?;
    browser
        .wait_text("#counts [data-status='CANCELLED'] .count", SOON, |s| {
            s.trim() == "1"
        })
        .await?;
    browser.screenshot("orders-live").await?;

    // Its timeline: the four steps, in order, from the services that took them.
    browser.click(&format!("{row} a")).await?;
    browser
        .wait_for("#timeline .step[data-type='ShipmentCreated']", SOON)
        .await?;
    let steps = timeline_steps(&browser).await?;
    assert_eq!(
        steps,
        [
            ("OrderCreated", "order", false),
            ("InventoryReserved", "inventory", false),
            ("PaymentProcessed", "payment", false),
            ("ShipmentCreated", "shipping", false),
        ]
        .map(|(t, s, c)| (t.to_string(), s.to_string(), c))
    );
    let sent = stack.notifications("c-console").await?;
    let sent_for_order = sent.iter().filter(|n| n.order_id == shipped).count();
    assert!(sent_for_order > 0);
    browser.wait_for("#notifications li", SOON).await?;
    assert_eq!(
        browser.all("#notifications li").await?.len(),
        sent_for_order
    );
    // No trace store configured here: the timeline alone, no trace card.
    assert!(browser.all("#trace-card").await?.is_empty());
    browser.screenshot("timeline-shipped").await?;

    // A declined payment: the reservation is released, drawn as a compensation.
    show(&browser, &format!("#/orders/{declined}")).await?;
    browser
        .wait_for(
            "#timeline .step.compensation[data-type='InventoryReleased']",
            SOON,
        )
        .await?;
    let steps = timeline_steps(&browser).await?;
    let types: Vec<&str> = steps.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "OrderCreated",
            "InventoryReserved",
            "PaymentFailed",
            "InventoryReleased"
        ]
    );
    let compensations: Vec<&str> = steps
        .iter()
        .filter(|(_, _, c)| *c)
        .map(|(t, _, _)| t.as_str())
        .collect();
    assert_eq!(compensations, ["InventoryReleased"]);
    assert!(!browser
        .all("#timeline .step.failure[data-type='PaymentFailed']")
        .await?
        .is_empty());
    let page = browser.text("main").await?;
    assert!(page.contains("PAYMENT_DECLINED"), "{page}");
    browser.screenshot("timeline-declined").await?;

    let latencies = browser.eval("return window.__latencies").await?;
    let mut ms: Vec<i64> = latencies
        .as_array()
        .context("latencies")?
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    ms.sort_unstable();
    assert!(ms.len() >= 20, "status changes seen: {ms:?}");
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "console figures: load {load}; stream latency over {} status changes: p50 {} ms, p95 {} ms, max {} ms",
        ms.len(),
        at(0.5),
        at(0.95),
        ms[ms.len() - 1]
    );
    browser.close().await?;
    stack.stop().await
}

/// The timeline's steps: type, service, whether drawn as a compensation.
async fn timeline_steps(browser: &Browser) -> Result<Vec<(String, String, bool)>> {
    let mut out = Vec::new();
    for step in browser.all("#timeline .step").await? {
        let class = step.attr("class").await?.unwrap_or_default();
        out.push((
            step.attr("data-type").await?.unwrap_or_default(),
            step.attr("data-source").await?.unwrap_or_default(),
            class.split_whitespace().any(|c| c == "compensation"),
        ));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_replays_a_dead_letter_and_edits_stock_from_the_console() -> Result<()> {
    let stack = Stack::start().await?;
    // A reservation for an order the order service never created: it
    // dead-letters it at once (and the payment service declines its card:
    // the order service dead-letters that PaymentFailed too).
    stack.publish_stray_reservation("o-console-stray").await?;
    stack.wait_idle().await?;
    let letters = orderflow_dlq::DeadLetters::new(orderflow_runtime::LogSource::plain(
        &stack.bootstrap,
        &stack.registry,
    ))?;
    let by_order = orderflow_dlq::Filter {
        order_id: Some("o-console-stray".into()),
        event_type: Some("InventoryReserved".into()),
        ..Default::default()
    };
    let listed = letters.list(&by_order).await?.letters;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let id = listed[0].id.to_string();
    assert!(id.starts_with("order/"), "{id}");

    let browser = Browser::start().await?;
    let operator = stack
        .issuer
        .mint("operator", true, Duration::from_secs(3_600));
    sign_in(&browser, &stack, &operator).await?;
    show(&browser, "#/dead-letters").await?;
    let row = format!("table#dead-letters tr[data-id='{id}']");
    browser.wait_for(&row, SOON).await?;
    let listed_text = browser.text(&row).await?;
    assert!(listed_text.contains("o-console-stray"), "{listed_text}");
    browser.screenshot("dead-letters").await?;

    browser.click(&row).await?;
    browser
        .wait_text("pre#decoded", SOON, |s| {
            s.contains("o-console-stray") && s.contains("tok_chargeDeclined")
        })
        .await?;
    // Asked, then cancelled: nothing is replayed.
    browser.click("button#replay").await?;
    let dialog = browser
        .wait_text("dialog#replay-confirm", SOON, |s| {
            s.contains("inventory") && s.contains(&id)
        })
        .await?;
    assert!(dialog.contains("o-console-stray"), "{dialog}");
    browser.click("button#replay-cancel").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !letters.replays().await?.contains_key(&id),
        "replayed without a yes"
    );

    browser.click("button#replay").await?;
    browser
        .wait_for("dialog#replay-confirm[open]", SOON)
        .await?;
    browser.screenshot("dead-letter-replay-confirm").await?;
    browser.click("button#replay-confirm-yes").await?;
    let outcome = browser
        .wait_text("#replay-outcome", SOON, |s| s.contains("inventory/"))
        .await?;
    assert!(outcome.to_lowercase().contains("replayed"), "{outcome}");
    browser.screenshot("dead-letter-replayed").await?;
    // It went back onto `inventory` once, and (still about an order that
    // does not exist) the order service dead-lettered it again, its lineage kept.
    assert_eq!(letters.replays().await?.get(&id), Some(&1));
    stack.wait_idle().await?;
    let after = letters.list(&by_order).await?.letters;
    let again: Vec<_> = after
        .iter()
        .filter(|l| l.replayed_from.as_deref() == Some(id.as_str()))
        .collect();
    assert_eq!(again.len(), 1, "{after:?}");

    // Stock: a wrong value is refused where it was typed and nothing changes;
    // a right one is saved.
    let before = stack.stock("SKU-003").await?;
    show(&browser, "#/stock").await?;
    let row = "table#stock tr[data-sku='SKU-003']";
    browser.wait_for(row, SOON).await?;
    browser
        .type_into(&format!("{row} input[name=available]"), "-4")
        .await?;
    browser
        .wait_text(&format!("{row} .field-error"), SOON, |s| {
            !s.trim().is_empty()
        })
        .await?;
    let invalid = browser
        .all(&format!("{row} input[name=available][aria-invalid='true']"))
        .await?;
    assert_eq!(invalid.len(), 1);
    let save = browser
        .wait_for(&format!("{row} button.save"), SOON)
        .await?;
    assert!(
        !save.is_enabled().await?,
        "save is disabled while a field is wrong"
    );
    browser.screenshot("stock-invalid").await?;
    assert_eq!(stack.stock("SKU-003").await?, before);

    // The server's own check: every SKU in one currency.
    browser
        .type_into(&format!("{row} input[name=available]"), "77")
        .await?;
    browser
        .type_into(&format!("{row} input[name=currency]"), "USD")
        .await?;
    browser.click(&format!("{row} button.save")).await?;
    browser
        .wait_text(&format!("{row} .row-error"), SOON, |s| s.contains("EUR"))
        .await?;
    assert_eq!(stack.stock("SKU-003").await?, before);

    browser
        .type_into(&format!("{row} input[name=currency]"), "EUR")
        .await?;
    browser.click(&format!("{row} button.save")).await?;
    browser.wait_for(&format!("{row} .saved"), SOON).await?;
    let saved = stack.stock("SKU-003").await?;
    assert_eq!(saved.available, 77);
    assert_eq!(saved.unit_price, before.unit_price);
    browser.screenshot("stock-saved").await?;
    browser.close().await?;
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_customer_sees_only_their_own_orders_and_no_operator_page() -> Result<()> {
    let stack = Stack::start().await?;
    let own = stack
        .place(&order_body("c-ada", "SKU-001", 1, "tok_visa", "DE"))
        .await?;
    let other = stack
        .place(&order_body("c-bob", "SKU-001", 1, "tok_visa", "DE"))
        .await?;
    stack.wait_terminal(&own).await?;
    stack.wait_terminal(&other).await?;

    let browser = Browser::start().await?;
    let ada = stack.customer_token("c-ada");
    sign_in(&browser, &stack, &ada).await?;
    browser
        .wait_text(&format!("tr[data-order-id='{own}'] td.status"), SOON, |s| {
            s == "SHIPPED"
        })
        .await?;
    assert!(browser
        .all(&format!("tr[data-order-id='{other}']"))
        .await?
        .is_empty());
    for link in ["#/dead-letters", "#/stock"] {
        for a in browser.all(&format!("a[href='{link}']")).await? {
            assert!(!a.is_displayed().await?, "{link} is offered to a customer");
        }
    }
    browser.screenshot("customer-orders").await?;

    // Another customer's order: not found, and nothing of it shown.
    show(&browser, &format!("#/orders/{other}")).await?;
    let error = browser
        .wait_text("#error", SOON, |s| s.to_lowercase().contains("not found"))
        .await?;
    let page = browser.text("main").await?;
    assert!(!page.contains("c-bob"), "{page}");
    assert!(error.contains(&other));
    browser.screenshot("customer-other-order").await?;

    // The operator pages: refused, and no operator call made.
    for route in ["#/dead-letters", "#/stock"] {
        show(&browser, route).await?;
        browser.wait_for("#forbidden", SOON).await?;
        assert!(browser
            .all("table#dead-letters tbody tr, table#stock tbody tr")
            .await?
            .is_empty());
    }
    browser.screenshot("customer-forbidden").await?;
    let calls = browser
        .eval("return performance.getEntriesByType('resource').map(r => r.name).filter(n => n.includes('/v1/dead-letters') || n.includes('/v1/inventory'))")
        .await?;
    assert_eq!(
        calls,
        Value::Array(vec![]),
        "operator calls made for a customer"
    );

    // Signing out forgets the token.
    browser.click("button#sign-out").await?;
    browser.wait_for("textarea#token-input", SOON).await?;
    let token = browser
        .eval("return sessionStorage.getItem('orderflow.token')")
        .await?;
    assert_eq!(token, Value::Null);
    browser.screenshot("login").await?;
    browser.close().await?;
    stack.stop().await
}

/// With Jaeger (`ORDERFLOW_JAEGER_QUERY_URL`, as `make dev JAEGER=1` sets it)
/// an order's page draws its trace as a waterfall: a row per span, every
/// service of the saga in it, each bar within the trace's time axis.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_page_draws_its_trace_as_a_waterfall() -> Result<()> {
    let jaeger = Jaeger::start_anywhere().await?;
    let stack = ProcessStack::start_traced(&jaeger).await?;
    let shipped = stack
        .place(&order_body("c-trace", "SKU-001", 1, "tok_visa", "DE"))
        .await?;
    stack.wait_terminal(&shipped).await?;
    let services = SERVICES;
    // Until Jaeger has every service's spans (exported every 100 ms).
    TraceQuery::new(&jaeger.query_url)
        .trace_of_order(&shipped, &services)
        .await?;

    let browser = Browser::start().await?;
    let operator = stack.issuer.operator();
    sign_in(&browser, &stack, &operator).await?;
    show(&browser, &format!("#/orders/{shipped}")).await?;
    browser.wait_for("#trace .span-row", SOON).await?;
    let rows = browser
        .eval(
            "return [...document.querySelectorAll('#trace .span-row')].map((r) => {
               const track = r.querySelector('.span-track').getBoundingClientRect();
               const bar = r.querySelector('.span-bar').getBoundingClientRect();
               return { service: r.dataset.service, kind: r.dataset.kind,
                        inside: bar.left >= track.left - 0.5 && bar.right <= track.right + 0.5 && bar.width > 0 };
             })",
        )
        .await?;
    let rows = rows.as_array().context("rows")?;
    let drawn: std::collections::BTreeSet<&str> =
        rows.iter().filter_map(|r| r["service"].as_str()).collect();
    assert_eq!(drawn, services.into_iter().collect());
    assert!(
        rows.iter().all(|r| r["inside"] == true),
        "a bar outside its track: {rows:?}"
    );
    assert!(rows.iter().any(|r| r["kind"] == "consumer"));
    let status = browser.text("#trace-status").await?;
    assert!(status.contains("6 services"), "{status}");
    // The timeline is still there, above it.
    browser
        .wait_for("#timeline .step[data-type='ShipmentCreated']", SOON)
        .await?;
    browser.screenshot("trace-waterfall").await?;
    eprintln!("console trace: {} spans drawn ({status})", rows.len());
    browser.close().await?;
    stack.stop().await
}
