//! The facts the invariants judge, read after a run: each order as the
//! order service holds it, what the provider's ledger made for it, what
//! the mail server received, the stock as inventory holds it, and what each
//! service still has parked.

use orderflow_api::OrderLine;
use orderflow_invariants::{self as invariants, OrderFacts, StockFacts, Violation};
use orderflow_runtime::sql;
use orderflow_runtime::sqlx;

use crate::run::{Run, INITIAL_STOCK};
use crate::world::{World, INVENTORY, ORDER};

/// Every invariant over the run's end state.
pub async fn check(world: &World, run: &Run<'_>) -> Result<Vec<Violation>, sqlx::Error> {
    let made = world.provider.made();
    let mut mail = world.mailbox.kinds();
    let rows = sql::query(
        "SELECT order_id, status, reason, items, placed_at FROM orders ORDER BY order_id",
    )
    .fetch_all(world.services[ORDER].db.reader())
    .await?;
    let mut orders = Vec::new();
    for row in rows {
        let order_id: String = row.try_get("order_id")?;
        let items: String = row.try_get("items")?;
        let lines: Vec<OrderLine> =
            serde_json::from_str(&items).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let (charges, refunds) = made.get(&order_id).copied().unwrap_or_default();
        orders.push(OrderFacts {
            status: row.try_get("status")?,
            reason: row.try_get("reason")?,
            lines: lines.into_iter().map(|l| (l.sku, l.quantity)).collect(),
            placed_at_ms: row.try_get("placed_at")?,
            charges,
            refunds,
            notifications: mail.remove(&order_id).unwrap_or_default(),
            order_id,
        });
    }
    let stock = sql::query("SELECT sku, available, reserved FROM stock ORDER BY sku")
        .fetch_all(world.services[INVENTORY].db.reader())
        .await?
        .iter()
        .map(|row| {
            let sku: String = row.try_get("sku")?;
            Ok(StockFacts {
                initial: INITIAL_STOCK,
                restocked: run.restocked.get(&sku).copied().unwrap_or(0),
                available: row.try_get("available")?,
                reserved: row.try_get("reserved")?,
                shipped: None,
                sku,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    for o in &orders {
        world.dice.note(format!(
            "end: {} {} {:?} charges {} refunds {} mail {:?}",
            o.order_id, o.status, o.reason, o.charges, o.refunds, o.notifications
        ));
    }
    let mut violations = invariants::check_orders(&orders, &stock);
    // The run is over: any order not terminal now never will be.
    violations.extend(
        orders
            .iter()
            .filter_map(|o| invariants::terminal_by_deadline(o, i64::MAX / 2, 0)),
    );
    let mut parked = Vec::new();
    for service in &world.services {
        parked.push((
            service.spec.name.to_string(),
            service.replicas[0].parked().await?,
        ));
    }
    violations.extend(invariants::nothing_parked_at_rest(&parked));
    violations.sort_by(|a, b| (a.invariant, &a.subject).cmp(&(b.invariant, &b.subject)));
    violations.dedup();
    Ok(violations)
}
