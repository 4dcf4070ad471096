//! What must hold once a load is done, whatever happened on the way: the
//! saga's invariants (`orderflow-invariants`), over facts read the way an
//! operator would — each order from the order service, its charges and
//! refunds from the payment provider's ledger, its notifications from the
//! customer's list, the stock from inventory, parked orders from each
//! service's database.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use orderflow_api::OrderView;
use orderflow_invariants::{self as invariants, OrderFacts, StockFacts, Violation};
use orderflow_runtime::sqlx;

use crate::api::Api;

/// What a check verified, for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checked {
    pub units_shipped: i64,
    pub charges: u64,
    pub refunds: u64,
    pub notifications: u64,
}

/// Every invariant over these orders (all terminal), the SKUs' `initial`
/// stock (nothing restocked since) and, with `databases` (each service's
/// database URL), what is parked; fails listing what broke.
pub async fn check_invariants(
    api: &Api,
    initial: &BTreeMap<String, i64>,
    done: &[OrderView],
    databases: Option<&BTreeMap<&'static str, String>>,
) -> Result<Checked> {
    let orders = order_facts(api, done).await?;
    let stock = stock_facts(api, initial).await?;
    let mut violations = invariants::check_orders(&orders, &stock);
    if let Some(databases) = databases {
        violations.extend(invariants::nothing_parked_at_rest(
            &parked_orders(databases).await?,
        ));
    }
    fail_on(&violations)?;
    let shipped: i64 = orders
        .iter()
        .filter(|o| o.status == "SHIPPED")
        .flat_map(|o| o.lines.iter().map(|(_, n)| n))
        .sum();
    Ok(Checked {
        units_shipped: shipped,
        charges: orders.iter().map(|o| u64::from(o.charges)).sum(),
        refunds: orders.iter().map(|o| u64::from(o.refunds)).sum(),
        notifications: orders.iter().map(|o| o.notifications.len() as u64).sum(),
    })
}

fn fail_on(violations: &[Violation]) -> Result<()> {
    if violations.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = violations
        .iter()
        .take(20)
        .map(ToString::to_string)
        .collect();
    bail!(
        "{} invariant violations {:?}:\n{}",
        violations.len(),
        invariants::summary(violations)
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect::<BTreeMap<_, _>>(),
        shown.join("\n")
    )
}

/// Each order's facts: its view, the provider's ledger for it, and the
/// notifications its customer got about it (each customer's list read once).
pub async fn order_facts(api: &Api, done: &[OrderView]) -> Result<Vec<OrderFacts>> {
    let mut told: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let customers: std::collections::BTreeSet<&str> =
        done.iter().map(|o| o.customer_id.as_str()).collect();
    for customer in customers {
        for n in api.notifications(customer).await? {
            told.entry(n.order_id).or_default().push(n.kind);
        }
    }
    let mut facts = Vec::with_capacity(done.len());
    for order in done {
        let (charges, refunds) = api
            .payment(&order.order_id)
            .await?
            .map(|p| (p.provider_charges, p.provider_refunds))
            .unwrap_or((0, 0));
        let placed_at_ms = order
            .history
            .first()
            .and_then(|h| chrono::DateTime::parse_from_rfc3339(&h.at).ok())
            .map_or(0, |at| at.timestamp_millis());
        facts.push(OrderFacts {
            order_id: order.order_id.clone(),
            status: order.status.clone(),
            reason: order.reason.clone(),
            lines: order
                .items
                .iter()
                .map(|l| (l.sku.clone(), l.quantity))
                .collect(),
            placed_at_ms,
            charges,
            refunds,
            notifications: told.remove(&order.order_id).unwrap_or_default(),
        });
    }
    Ok(facts)
}

/// The stock of each SKU of `initial`, as inventory holds it now.
pub async fn stock_facts(api: &Api, initial: &BTreeMap<String, i64>) -> Result<Vec<StockFacts>> {
    let mut facts = Vec::with_capacity(initial.len());
    for (sku, initial) in initial {
        let s = api.stock(sku).await?;
        facts.push(StockFacts {
            sku: sku.clone(),
            initial: *initial,
            restocked: 0,
            available: s.available,
            reserved: s.reserved,
            shipped: None,
        });
    }
    Ok(facts)
}

/// `orderflow audit` over the orders placed since `since_ms`, judged now
/// (everything must be at rest), as an operator runs it: each service's
/// own API in `urls` and an operator's token. Fails listing what it found.
pub async fn audit_clean(
    bootstrap: &str,
    registry: &str,
    urls: &BTreeMap<&'static str, String>,
    token: &str,
    since_ms: i64,
) -> Result<serde_json::Value> {
    let since = chrono::DateTime::from_timestamp_millis(since_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let args = [
        "--output",
        "json",
        "--since",
        &since,
        "--settle-ms",
        "0",
        "--step-deadline-ms",
        "3600000",
    ];
    let out = crate::cli::audit(bootstrap, registry, urls, token, &args).await?;
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    if out.status.code() != Some(0) {
        bail!(
            "orderflow audit exited {}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            serde_json::to_string_pretty(&report["findings"]).unwrap_or_default()
        );
    }
    Ok(report)
}

/// The orders each service has parked, from its database.
pub async fn parked_orders(
    databases: &BTreeMap<&'static str, String>,
) -> Result<Vec<(String, Vec<String>)>> {
    sqlx::any::install_default_drivers();
    let mut parked = Vec::new();
    for (service, url) in databases {
        let pool = sqlx::AnyPool::connect(url).await?;
        let mut conn = orderflow_runtime::sql::Connection::from(pool.acquire().await?);
        let keys = orderflow_runtime::parked_orders(&mut conn).await?;
        drop(conn);
        pool.close().await;
        parked.push((service.to_string(), keys));
    }
    Ok(parked)
}
