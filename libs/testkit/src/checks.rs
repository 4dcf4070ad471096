//! What must hold once a load is done, whatever happened on the way:
//! stock accounted for by shipped orders, charges and refunds exactly where
//! the saga called for them, and one notification per outcome. Each check
//! returns the counts it verified, for reports.

use std::collections::BTreeMap;

use anyhow::{ensure, Result};
use orderflow_api::OrderView;

use crate::api::Api;

/// Units shipped per SKU by these orders.
pub fn shipped_units(done: &[OrderView]) -> BTreeMap<String, i64> {
    let mut shipped: BTreeMap<String, i64> = BTreeMap::new();
    for order in done.iter().filter(|o| o.status == "SHIPPED") {
        for line in &order.items {
            *shipped.entry(line.sku.clone()).or_default() += line.quantity;
        }
    }
    shipped
}

/// For each SKU with its initial stock: never negative, nothing left
/// reserved, and initial − available = the units SHIPPED orders took.
pub async fn check_stock(
    api: &Api,
    initial: &BTreeMap<String, i64>,
    done: &[OrderView],
) -> Result<i64> {
    let shipped = shipped_units(done);
    let mut total = 0;
    for (sku, initial) in initial {
        let s = api.stock(sku).await?;
        ensure!(s.available >= 0, "{sku} oversold: {s:?}");
        ensure!(
            s.reserved == 0,
            "{sku} still has {} units reserved",
            s.reserved
        );
        let took = shipped.get(sku).copied().unwrap_or(0);
        ensure!(
            initial - s.available == took,
            "{sku}: {initial} − {} available ≠ {took} units shipped",
            s.available
        );
        total += took;
    }
    Ok(total)
}

/// Charges and refunds as the saga calls for them: an order is charged at
/// most once (a shipped one exactly once), and refunded exactly when it was
/// cancelled after its payment (SHIPPING_FAILED), never otherwise.
/// Returns (charges, refunds).
pub async fn check_payments(api: &Api, done: &[OrderView]) -> Result<(u64, u64)> {
    let (mut charges, mut refunds) = (0u64, 0u64);
    for order in done {
        let (c, r) = api
            .payment(&order.order_id)
            .await?
            .map(|p| (p.provider_charges, p.provider_refunds))
            .unwrap_or((0, 0));
        ensure!(c <= 1, "order {} charged {c} times", order.order_id);
        if order.status == "SHIPPED" {
            ensure!(c == 1, "order {} shipped without a charge", order.order_id);
        }
        let refunded = order.reason.as_deref() == Some("SHIPPING_FAILED");
        ensure!(
            r == u32::from(refunded),
            "order {} ({} {:?}) refunded {r} times",
            order.order_id,
            order.status,
            order.reason
        );
        charges += u64::from(c);
        refunds += u64::from(r);
    }
    Ok((charges, refunds))
}

/// The notifications an order's outcome calls for, sorted.
pub fn expected_notifications(order: &OrderView) -> Vec<&'static str> {
    match (order.status.as_str(), order.reason.as_deref()) {
        ("SHIPPED", _) => vec!["payment_received", "shipped"],
        ("CANCELLED", Some("OUT_OF_STOCK")) => vec!["out_of_stock"],
        ("CANCELLED", Some("PAYMENT_DECLINED")) => vec!["payment_declined"],
        ("CANCELLED", Some("PAYMENT_UNAVAILABLE")) => vec!["payment_unavailable"],
        ("CANCELLED", Some("SHIPPING_FAILED")) => vec!["payment_received", "shipping_failed"],
        _ => vec![],
    }
}

/// Exactly one notification per outcome per order, reading each customer's
/// list once. Returns how many notifications were checked.
pub async fn check_notifications(api: &Api, done: &[OrderView]) -> Result<u64> {
    let mut by_customer: BTreeMap<&str, Vec<&OrderView>> = BTreeMap::new();
    for order in done {
        by_customer
            .entry(&order.customer_id)
            .or_default()
            .push(order);
    }
    let mut checked = 0;
    for (customer, orders) in by_customer {
        let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for n in api.notifications(customer).await? {
            got.entry(n.order_id).or_default().push(n.kind);
        }
        for order in orders {
            let mut kinds = got.remove(&order.order_id).unwrap_or_default();
            kinds.sort();
            ensure!(
                kinds == expected_notifications(order),
                "order {} ({} {:?}) got notifications {kinds:?}",
                order.order_id,
                order.status,
                order.reason
            );
            checked += kinds.len() as u64;
        }
    }
    Ok(checked)
}
