//! `orderflow audit` against a running stack (embedded broker, SQLite):
//! after the four outcomes the books balance; then each way a defect
//! would break them — a charge without its event, a refund lost, a
//! shipment lost, stock changed behind inventory's back, a notification
//! dropped, an order whose `OrderCreated` never reached the log — is named
//! by the audit: exactly that order (or SKU) and those invariants, with
//! everything broken before still named and nothing else.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use orderflow_runtime::sqlx;
use orderflow_testkit::cli;
use orderflow_testkit::{check_four_outcomes, Stack};
use serde_json::Value;

/// (subject, invariant) pairs: what an audit names.
type Named = BTreeSet<(String, String)>;
/// Each service's API, by name.
type Urls = BTreeMap<&'static str, String>;

/// What one `orderflow audit` run gave: exit code, stdout, stderr.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn report(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or(Value::Null)
    }

    /// (subject, invariant) of every finding.
    fn named(&self) -> Named {
        let report = self.report();
        report["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let text = |k: &str| f[k].as_str().unwrap_or_default().to_string();
                (text("subject"), text("invariant"))
            })
            .collect()
    }
}

/// `orderflow audit args…` with these service URLs and this token.
async fn audit_as(stack: &Stack, urls: &Urls, token: &str, args: &[&str]) -> Result<Run> {
    let out = cli::audit(&stack.bootstrap, &stack.registry, urls, token, args).await?;
    Ok(Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `orderflow audit args…` as an operator.
async fn audit_with(stack: &Stack, args: &[&str]) -> Result<Run> {
    audit_as(stack, &stack.urls, &stack.issuer.operator(), args).await
}

/// `orderflow audit --output json`, judging everything now (the stack is
/// idle), with the default step deadline whatever the environment says.
async fn audit(stack: &Stack) -> Result<Run> {
    let args = [
        "--output",
        "json",
        "--settle-ms",
        "0",
        "--step-deadline-ms",
        "3600000",
    ];
    audit_with(stack, &args).await
}

/// Runs `statement` on a service's database, behind the service's back.
async fn tamper(stack: &Stack, service: &str, statement: &str) -> Result<()> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&stack.databases[service]).await?;
    let done = sqlx::query(statement).execute(&pool).await?;
    pool.close().await;
    anyhow::ensure!(done.rows_affected() == 1, "{statement}: {done:?}");
    Ok(())
}

fn pairs(list: &[(&str, &str)]) -> Named {
    list.iter()
        .map(|(s, i)| (s.to_string(), i.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_audit_names_each_broken_promise() -> Result<()> {
    let stack = Stack::start().await?;
    let shipped = check_four_outcomes(&stack, stack.wait_idle()).await?;
    let mut orders = Vec::new();
    for customer in ["c-oos", "c-declined", "c-aq"] {
        let told = stack.notifications(customer).await?;
        orders.push(told.first().context("a notification")?.order_id.clone());
    }
    let [oos, declined, unshippable] = <[String; 3]>::try_from(orders).expect("three orders");

    let clean = audit(&stack).await?;
    assert_eq!(clean.code, Some(0), "{}{}", clean.stdout, clean.stderr);
    let report = clean.report();
    assert_eq!(
        (
            &report["orders"],
            &report["judged"],
            &report["in_flight"],
            &report["skus"],
            &report["stock_checked"]
        ),
        (
            &Value::from(4),
            &Value::from(4),
            &Value::from(0),
            &Value::from(10),
            &Value::from(true)
        ),
        "{report}"
    );
    assert!(clean.named().is_empty(), "{report}");
    assert!(
        report["violations"]
            .as_object()
            .is_some_and(|v| v.len() == 7 && v.values().all(|n| n == 0)),
        "{report}"
    );

    let placed_long_ago = orderflow_runtime::now_millis() - 6 * 3_600_000;
    let stranded = "0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b";
    let breaks: Vec<(&str, String, Named)> = vec![
        // The provider charged a cancelled order and no event says so.
        (
            "payment",
            format!(
                "INSERT INTO sandbox_charges (idempotency_key, token, amount_minor, currency, payment_id, decline_reason, created_at)
                 VALUES ('{oos}/charge', 'tok_visa', 999, 'EUR', 'pay-forged', NULL, 0)"
            ),
            pairs(&[
                (&oos, "cancelled_keeps_no_charge"),
                (&oos, "charged_is_shipped_or_refunded"),
                (&oos, "log_and_stores_agree"),
            ]),
        ),
        // The refund the log announces is not in the provider's ledger.
        (
            "payment",
            format!("DELETE FROM sandbox_refunds WHERE idempotency_key = '{unshippable}/refund'"),
            pairs(&[
                (&unshippable, "cancelled_keeps_no_charge"),
                (&unshippable, "charged_is_shipped_or_refunded"),
                (&unshippable, "log_and_stores_agree"),
            ]),
        ),
        // A shipment the log announces, lost by shipping.
        (
            "shipping",
            format!("DELETE FROM shipments WHERE order_id = '{shipped}'"),
            pairs(&[(&shipped, "log_and_stores_agree")]),
        ),
        // Five units appear on the shelf with no restock.
        (
            "inventory",
            "UPDATE stock SET available = available + 5 WHERE sku = 'SKU-003'".into(),
            pairs(&[("SKU-003", "stock_conserved")]),
        ),
        // The customer was never told their card was declined.
        (
            "notification",
            format!("DELETE FROM notifications WHERE order_id = '{declined}'"),
            pairs(&[
                (&declined, "one_notification_per_outcome"),
                (&declined, "log_and_stores_agree"),
            ]),
        ),
        // An order accepted six hours ago whose `OrderCreated` never
        // reached the log: nothing will ever move it.
        (
            "order",
            format!(
                "INSERT INTO orders (order_id, customer_id, status, items, placed_at, updated_at)
                 VALUES ('{stranded}', 'c-lost', 'PENDING', '[]', {placed_long_ago}, {placed_long_ago})"
            ),
            pairs(&[
                (stranded, "terminal_by_deadline"),
                (stranded, "log_and_stores_agree"),
            ]),
        ),
    ];
    let mut expected = BTreeSet::new();
    for (service, statement, named) in breaks {
        tamper(&stack, service, &statement).await?;
        expected.extend(named);
        let run = audit(&stack).await?;
        assert_eq!(
            run.code,
            Some(1),
            "{statement}\n{}{}",
            run.stdout,
            run.stderr
        );
        assert_eq!(run.named(), expected, "{statement}\n{}", run.stdout);
    }

    // Each finding tells both sides and where to look.
    let run = audit(&stack).await?;
    let report = run.report();
    let charge = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["subject"] == oos.as_str() && f["invariant"] == "log_and_stores_agree")
        .context("the forged charge's finding")?;
    assert_eq!(charge["detail"], "charges differ");
    assert_eq!(
        charge["log"],
        "CANCELLED OUT_OF_STOCK; payment none, 0 charges, 0 refunds; shipment none; notified out_of_stock"
    );
    assert_eq!(
        charge["stores"],
        "CANCELLED OUT_OF_STOCK; payment none, 1 charges, 0 refunds; shipment none; notified out_of_stock"
    );
    assert_eq!(charge["more"], format!("orderflow audit --order {oos}"));

    // That command: the order's events and both stories.
    let one = audit_with(&stack, &["--order", &oos, "--settle-ms", "0"]).await?;
    assert_eq!(one.code, Some(1), "{}", one.stderr);
    for line in [
        "OrderCreated",
        "InventoryUnavailable",
        "log says:    CANCELLED OUT_OF_STOCK; payment none, 0 charges",
        "stores say:  CANCELLED OUT_OF_STOCK; payment none, 1 charges",
        "cancelled_keeps_no_charge",
    ] {
        assert!(one.stdout.contains(line), "{line}:\n{}", one.stdout);
    }
    let sku = audit_with(&stack, &["--sku", "SKU-003", "--settle-ms", "0"]).await?;
    assert_eq!(sku.code, Some(1), "{}", sku.stderr);
    assert!(
        sku.stdout
            .contains("SKU-003: initial 100 + restocked 0 = 100; available 105 + reserved 0 + shipped 0 = 105"),
        "{}",
        sku.stdout
    );
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_audit_refuses_bad_usage_and_says_what_it_cannot_read() -> Result<()> {
    let stack = Stack::start().await?;
    let usage = [
        vec!["--order", "../../etc"],
        vec!["--sku", "SKU 1"],
        vec!["--since", "yesterday"],
        vec!["--since", "2026-12-01"],
        vec!["--since", "2999-01-01T00:00:00Z"],
        vec![
            "--since",
            "1h",
            "--order",
            "0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b",
        ],
        vec!["--bogus"],
        vec!["--output", "xml"],
    ];
    for args in usage {
        let run = audit_with(&stack, &args).await?;
        assert_eq!(run.code, Some(64), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    // A malformed query: 422 for an operator, and for a customer the 403
    // of any audit route (a customer learns nothing).
    let url = format!("{}/v1/audit/orders?limit=many", stack.urls["order"]);
    let operator = stack.http.get(&url).send().await?.status();
    let customer = stack.as_customer("c-1").get(&url).send().await?.status();
    assert_eq!((operator.as_u16(), customer.as_u16()), (422, 403));
    // A customer's token reads nothing.
    let run = audit_as(&stack, &stack.urls, &stack.customer_token("c-1"), &[]).await?;
    assert_eq!(run.code, Some(64), "{}", run.stderr);
    assert!(run.stderr.contains("operator"), "{}", run.stderr);
    // A service that does not answer.
    let mut gone = stack.urls.clone();
    gone.insert("shipping", "http://127.0.0.1:9".into());
    let run = audit_as(&stack, &gone, &stack.issuer.operator(), &[]).await?;
    assert_eq!(run.code, Some(69), "{}", run.stderr);
    assert!(
        run.stderr.contains("shipping at http://127.0.0.1:9"),
        "{}",
        run.stderr
    );
    // An order nobody knows.
    let unknown = "0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b";
    let run = audit_with(&stack, &["--order", unknown]).await?;
    assert_eq!(run.code, Some(64), "{}", run.stderr);
    assert!(run
        .stderr
        .contains("neither the log nor any service knows it"));
    stack.stop().await
}
