//! The inventory service's SQL. Stock changes are conditional updates
//! (`available >= quantity`), so concurrent reservations can never oversell,
//! on SQLite or PostgreSQL alike.

use orderflow_api::{MoneyView, StockView};
use orderflow_envelope::{Money, OrderItem};
use orderflow_runtime::sql::Reader;
use orderflow_runtime::sql::{self, Connection};
use orderflow_runtime::sqlx;
use orderflow_runtime::Database;

/// Takes `quantity` from available into reserved; returns the SKU's unit
/// price, or None if not enough stock (or no such SKU).
pub async fn take(
    conn: &mut Connection,
    sku: &str,
    quantity: i64,
) -> Result<Option<Money>, sqlx::Error> {
    let row = sql::query(
        "UPDATE stock SET available = available - $1, reserved = reserved + $2, updated_at = $3
         WHERE sku = $4 AND available >= $5 RETURNING unit_price_minor, currency",
    )
    .bind(quantity)
    .bind(quantity)
    .bind(orderflow_runtime::now_millis())
    .bind(sku)
    .bind(quantity)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(Money::new(
            r.try_get("unit_price_minor")?,
            r.try_get::<String, _>("currency")?,
        ))
    })
    .transpose()
}

/// What inventory decided for this order before (RESERVED or UNAVAILABLE),
/// if it did.
pub async fn decision(
    conn: &mut Connection,
    order_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row = sql::query(
        "SELECT outcome FROM order_decisions WHERE order_id = $1
         UNION ALL SELECT 'RESERVED' AS outcome FROM reservations WHERE order_id = $2
         LIMIT 1",
    )
    .bind(order_id)
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| r.try_get("outcome")).transpose()
}

/// Records what inventory decided for the order (RESERVED or UNAVAILABLE).
pub async fn record_decision(
    conn: &mut Connection,
    order_id: &str,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    sql::query("INSERT INTO order_decisions (order_id, outcome, decided_at) VALUES ($1, $2, $3)")
        .bind(order_id)
        .bind(outcome)
        .bind(orderflow_runtime::now_millis())
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether the catalogue has this SKU at all.
pub async fn in_catalogue(conn: &mut Connection, sku: &str) -> Result<bool, sqlx::Error> {
    Ok(sql::query("SELECT 1 AS one FROM stock WHERE sku = $1")
        .bind(sku)
        .fetch_optional(conn)
        .await?
        .is_some())
}

/// The SKUs these orders hold reservations of.
pub async fn skus_held(
    conn: &mut Connection,
    order_ids: &[&str],
) -> Result<Vec<String>, sqlx::Error> {
    if order_ids.is_empty() {
        return Ok(Vec::new());
    }
    let statement = format!(
        "SELECT DISTINCT sku FROM reservations WHERE status = 'RESERVED' AND order_id IN ({})",
        orderflow_runtime::in_list(order_ids.len(), 1)
    );
    let mut query = sql::query(&statement);
    for id in order_ids {
        query = query.bind(id.to_string());
    }
    query
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| r.try_get("sku"))
        .collect()
}

/// Locks the stock rows of `skus` in SKU order (PostgreSQL), so concurrent
/// batches queue up instead of deadlocking.
pub async fn lock_stock(conn: &mut Connection, mut skus: Vec<String>) -> Result<(), sqlx::Error> {
    skus.sort_unstable();
    skus.dedup();
    if skus.is_empty() {
        return Ok(());
    }
    let statement = format!(
        "SELECT sku FROM stock WHERE sku IN ({}) ORDER BY sku FOR UPDATE",
        orderflow_runtime::in_list(skus.len(), 1)
    );
    let mut query = sql::query(&statement);
    for sku in skus {
        query = query.bind(sku);
    }
    query.fetch_all(conn).await?;
    Ok(())
}

/// Gives reserved units back to available.
pub async fn give_back(conn: &mut Connection, sku: &str, quantity: i64) -> Result<(), sqlx::Error> {
    sql::query(
        "UPDATE stock SET available = available + $1, reserved = reserved - $2, updated_at = $3 WHERE sku = $4",
    )
    .bind(quantity)
    .bind(quantity)
    .bind(orderflow_runtime::now_millis())
    .bind(sku)
    .execute(conn)
    .await?;
    Ok(())
}

/// Reserved units left the warehouse.
pub async fn ship(conn: &mut Connection, sku: &str, quantity: i64) -> Result<(), sqlx::Error> {
    sql::query("UPDATE stock SET reserved = reserved - $1, updated_at = $2 WHERE sku = $3")
        .bind(quantity)
        .bind(orderflow_runtime::now_millis())
        .bind(sku)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn insert_reservation(
    conn: &mut Connection,
    order_id: &str,
    item: &OrderItem,
) -> Result<(), sqlx::Error> {
    sql::query(
        "INSERT INTO reservations (order_id, sku, quantity, status, updated_at) VALUES ($1, $2, $3, 'RESERVED', $4)",
    )
    .bind(order_id)
    .bind(&item.sku)
    .bind(i64::from(item.quantity))
    .bind(orderflow_runtime::now_millis())
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the order's RESERVED lines to `status` (RELEASED, SHIPPED) and
/// returns them: nothing when none were held any more.
pub async fn settle_reservation(
    conn: &mut Connection,
    order_id: &str,
    status: &str,
) -> Result<Vec<OrderItem>, sqlx::Error> {
    let rows = sql::query(
        "UPDATE reservations SET status = $1, updated_at = $2 WHERE order_id = $3 AND status = 'RESERVED'
         RETURNING sku, quantity",
    )
    .bind(status)
    .bind(orderflow_runtime::now_millis())
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    let mut lines = rows
        .iter()
        .map(|r| {
            let quantity: i64 = r.try_get("quantity")?;
            Ok(OrderItem {
                sku: r.try_get("sku")?,
                quantity: quantity as i32,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    // RETURNING promises no order; events list lines by SKU.
    lines.sort_by(|a, b| a.sku.cmp(&b.sku));
    Ok(lines)
}

pub async fn stock(pool: &Reader, sku: &str) -> Result<Option<StockView>, sqlx::Error> {
    let row = sql::query(
        "SELECT sku, available, reserved, unit_price_minor, currency FROM stock WHERE sku = $1",
    )
    .bind(sku)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(stock_view).transpose()
}

/// Every SKU's stock, by SKU, at most `limit`.
pub async fn all_stock(pool: &Reader, limit: i64) -> Result<Vec<StockView>, sqlx::Error> {
    sql::query(
        "SELECT sku, available, reserved, unit_price_minor, currency FROM stock ORDER BY sku LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?
    .iter()
    .map(stock_view)
    .collect()
}

fn stock_view(r: &sql::Row) -> Result<StockView, sqlx::Error> {
    Ok(StockView {
        sku: r.try_get("sku")?,
        available: r.try_get("available")?,
        reserved: r.try_get("reserved")?,
        unit_price: MoneyView {
            amount_minor: r.try_get("unit_price_minor")?,
            currency: r.try_get("currency")?,
        },
    })
}

/// A currency other SKUs are priced in, if it differs from `currency`.
pub async fn other_currency(
    pool: &Reader,
    sku: &str,
    currency: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row = sql::query("SELECT currency FROM stock WHERE sku <> $1 AND currency <> $2 LIMIT 1")
        .bind(sku)
        .bind(currency)
        .fetch_optional(pool)
        .await?;
    row.map(|r| r.try_get("currency")).transpose()
}

/// Sets a SKU's available stock and price, creating it if new; reserved
/// units are left as they are. The first level is the SKU's initial stock;
/// every later change adds to what was restocked (the audit's account).
pub async fn set_stock(
    db: &Database,
    sku: &str,
    available: i64,
    price: &MoneyView,
) -> Result<(), sqlx::Error> {
    sql::query(
        "INSERT INTO stock (sku, available, reserved, unit_price_minor, currency, updated_at, initial_units, restocked_units)
         VALUES ($1, $2, 0, $3, $4, $5, $6, 0)
         ON CONFLICT (sku) DO UPDATE SET available = excluded.available,
             restocked_units = stock.restocked_units + excluded.available - stock.available,
             unit_price_minor = excluded.unit_price_minor, currency = excluded.currency,
             updated_at = excluded.updated_at",
    )
    .bind(sku)
    .bind(available)
    .bind(price.amount_minor)
    .bind(&price.currency)
    .bind(orderflow_runtime::now_millis())
    .bind(available)
    .execute(&mut db.acquire().await?)
    .await?;
    Ok(())
}
