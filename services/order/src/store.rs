//! The order service's SQL.

use orderflow_api::{CustomerOrderView, HistoryEntry, MoneyView, OrderLine, OrderView};

pub use crate::cursor::Cursor;
use crate::domain::{CancelReason, Status};
use orderflow_envelope::{EventType, Money};
use orderflow_runtime::sql::Reader;
use orderflow_runtime::sql::{self, Connection};
use orderflow_runtime::sqlx;
use orderflow_runtime::Database;

/// The columns of an order that its events update.
pub struct OrderRow {
    pub customer_id: String,
    pub status: String,
    pub total: Option<Money>,
    pub tracking_id: Option<String>,
    pub placed_at: i64,
    /// Why the payment failed, once it did.
    pub payment_failure: Option<String>,
    /// The types of the events in its history.
    pub seen: Vec<EventType>,
}

/// A new order, PENDING; an order with this id already there is kept.
pub async fn insert_order(
    conn: &mut Connection,
    order_id: &str,
    customer_id: &str,
    items: &[OrderLine],
    placed_at: i64,
    trace_id: Option<&str>,
) -> Result<(), sqlx::Error> {
    let items = serde_json::to_string(items).expect("order lines serialize");
    sql::query(
        "INSERT INTO orders (order_id, customer_id, status, items, placed_at, updated_at, trace_id)
         VALUES ($1, $2, 'PENDING', $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(customer_id)
    .bind(items)
    .bind(placed_at)
    .bind(placed_at)
    .bind(trace_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that the order took `status` now (the feed of
/// `GET /v1/orders/stream`); an order takes each status once.
pub async fn record_change(
    conn: &mut Connection,
    order_id: &str,
    status: Status,
    reason: Option<CancelReason>,
    at: i64,
) -> Result<(), sqlx::Error> {
    sql::query(
        "INSERT INTO order_changes (order_id, status, reason, changed_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (order_id, status) DO NOTHING",
    )
    .bind(order_id)
    .bind(status.as_str())
    .bind(reason.map(|r| r.as_str()))
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// An order's status, if it exists.
pub async fn status(conn: &mut Connection, order_id: &str) -> Result<Option<String>, sqlx::Error> {
    sql::query("SELECT status FROM orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(conn)
        .await?
        .map(|r| r.try_get("status"))
        .transpose()
}

/// Locks the rows of these orders in id order (PostgreSQL).
pub async fn lock_orders(conn: &mut Connection, mut ids: Vec<&str>) -> Result<(), sqlx::Error> {
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let statement = format!(
        "SELECT order_id FROM orders WHERE order_id IN ({}) ORDER BY order_id FOR UPDATE",
        orderflow_runtime::in_list(ids.len(), 1)
    );
    let mut query = sql::query(&statement);
    for id in ids {
        query = query.bind(id.to_string());
    }
    query.fetch_all(conn).await?;
    Ok(())
}

/// The order's row and the types of the events in its history, in one
/// statement (a row per history entry).
pub async fn load(conn: &mut Connection, order_id: &str) -> Result<Option<OrderRow>, sqlx::Error> {
    let rows = sql::query(
        "SELECT o.customer_id, o.status, o.total_minor, o.currency, o.tracking_id, o.placed_at,
                o.payment_failure, h.event_type
         FROM orders o LEFT JOIN order_history h ON h.order_id = o.order_id
         WHERE o.order_id = $1",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let total_minor: Option<i64> = r.try_get("total_minor")?;
    let currency: Option<String> = r.try_get("currency")?;
    Ok(Some(OrderRow {
        customer_id: r.try_get("customer_id")?,
        status: r.try_get("status")?,
        total: total_minor.zip(currency).map(|(a, c)| Money::new(a, c)),
        tracking_id: r.try_get("tracking_id")?,
        placed_at: r.try_get("placed_at")?,
        payment_failure: r.try_get("payment_failure")?,
        seen: event_types(&rows, "event_type"),
    }))
}

/// The event types named in `column` of `rows` (unknown names skipped).
fn event_types(rows: &[sql::Row], column: &str) -> Vec<EventType> {
    rows.iter()
        .filter_map(|r| r.try_get::<Option<String>, _>(column).ok().flatten())
        .filter_map(|t| EventType::from_name(&t))
        .collect()
}

/// Appends an event to the order's history; false if it was there already.
pub async fn record_history(
    conn: &mut Connection,
    order_id: &str,
    event_id: &str,
    event_type: EventType,
    source: &str,
    at: i64,
) -> Result<bool, sqlx::Error> {
    let result = sql::query(
        "INSERT INTO order_history (order_id, event_id, event_type, source, at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id, event_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(event_id)
    .bind(event_type.name())
    .bind(source)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn seen_events(
    conn: &mut Connection,
    order_id: &str,
) -> Result<Vec<EventType>, sqlx::Error> {
    let rows = sql::query("SELECT event_type FROM order_history WHERE order_id = $1")
        .bind(order_id)
        .fetch_all(conn)
        .await?;
    Ok(event_types(&rows, "event_type"))
}

/// Writes what the order's events added (total, tracking id, payment
/// failure) and, when given, its new status and reason.
pub async fn update(
    conn: &mut Connection,
    order_id: &str,
    order: &OrderRow,
    status: Option<(Status, Option<CancelReason>)>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let (total_minor, currency) = match &order.total {
        Some(m) => (Some(m.amount_minor), Some(m.currency.as_str())),
        None => (None, None),
    };
    if let Some((status, reason)) = status {
        record_change(&mut *conn, order_id, status, reason, now).await?;
    }
    let query = match status {
        Some((status, reason)) => sql::query(
            "UPDATE orders SET total_minor = $1, currency = $2, tracking_id = $3, payment_failure = $4,
                    updated_at = $5, status = $6, reason = $7,
                    terminal_at = CASE WHEN $8 = 1 THEN $9 ELSE terminal_at END
             WHERE order_id = $10",
        )
        .bind(total_minor)
        .bind(currency)
        .bind(order.tracking_id.as_deref())
        .bind(order.payment_failure.as_deref())
        .bind(now)
        .bind(status.as_str())
        .bind(reason.map(|r| r.as_str()))
        .bind(i64::from(status.is_terminal()))
        .bind(now)
        .bind(order_id),
        None => sql::query(
            "UPDATE orders SET total_minor = $1, currency = $2, tracking_id = $3, payment_failure = $4,
                    updated_at = $5
             WHERE order_id = $6",
        )
        .bind(total_minor)
        .bind(currency)
        .bind(order.tracking_id.as_deref())
        .bind(order.payment_failure.as_deref())
        .bind(now)
        .bind(order_id),
    };
    query.execute(conn).await?;
    Ok(())
}

/// Up to `limit` of the customer's orders, newest first, below `after`.
pub async fn customer_orders(
    pool: &Reader,
    customer_id: &str,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<(Cursor, CustomerOrderView)>, sqlx::Error> {
    let (placed_at, order_id) = match after {
        Some(c) => (c.placed_at, c.order_id.clone()),
        None => (i64::MAX, String::new()),
    };
    let rows = sql::query(
        "SELECT order_id, placed_at, status, reason, total_minor, currency FROM orders
         WHERE customer_id = $1 AND (placed_at < $2 OR (placed_at = $3 AND order_id < $4) OR $5 = 0)
         ORDER BY placed_at DESC, order_id DESC LIMIT $6",
    )
    .bind(customer_id)
    .bind(placed_at)
    .bind(placed_at)
    .bind(order_id)
    .bind(i64::from(after.is_some()))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let placed_at: i64 = r.try_get("placed_at")?;
            let order_id: String = r.try_get("order_id")?;
            Ok((
                Cursor {
                    placed_at,
                    order_id: order_id.clone(),
                },
                CustomerOrderView {
                    order_id,
                    status: r.try_get("status")?,
                    reason: r.try_get("reason")?,
                    total: total_of(r)?,
                    placed_at: millis_to_rfc3339(placed_at),
                },
            ))
        })
        .collect()
}

/// A row's total (`total_minor`, `currency`), once the order has one.
pub(crate) fn total_of(r: &sql::Row) -> Result<Option<MoneyView>, sqlx::Error> {
    let total_minor: Option<i64> = r.try_get("total_minor")?;
    let currency: Option<String> = r.try_get("currency")?;
    Ok(total_minor
        .zip(currency)
        .map(|(amount_minor, currency)| MoneyView {
            amount_minor,
            currency,
        }))
}

pub(crate) fn millis_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339()
}

/// Orders not yet terminal, when the oldest of them was placed, and orders
/// waiting for an operator because their refund failed.
pub async fn in_flight(pool: &Reader) -> Result<(i64, Option<i64>, i64), sqlx::Error> {
    let row = sql::query(
        "SELECT COUNT(*) AS n, MIN(placed_at) AS oldest FROM orders WHERE status NOT IN ('SHIPPED', 'CANCELLED', 'REFUND_PENDING')",
    )
    .fetch_one(pool)
    .await?;
    let refund_pending: i64 =
        sql::query("SELECT COUNT(*) AS n FROM orders WHERE status = 'REFUND_PENDING'")
            .fetch_one(pool)
            .await?
            .try_get("n")?;
    Ok((row.try_get("n")?, row.try_get("oldest")?, refund_pending))
}

/// What an earlier request with the same `Idempotency-Key` left behind.
pub struct KeyUse {
    pub fingerprint: String,
    pub order_id: String,
}

/// Claims the key for `order_id`; returns the earlier use if it was taken
/// within `ttl_ms`. An older use has expired: the key starts afresh.
pub async fn claim_idempotency_key(
    conn: &mut Connection,
    key: &str,
    fingerprint: &str,
    order_id: &str,
    now: i64,
    ttl_ms: i64,
) -> Result<Option<KeyUse>, sqlx::Error> {
    sql::query("DELETE FROM idempotency_keys WHERE idempotency_key = $1 AND created_at < $2")
        .bind(key)
        .bind(now - ttl_ms)
        .execute(&mut *conn)
        .await?;
    let inserted = sql::query(
        "INSERT INTO idempotency_keys (idempotency_key, fingerprint, order_id, created_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(key)
    .bind(fingerprint)
    .bind(order_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(None);
    }
    let row =
        sql::query("SELECT fingerprint, order_id FROM idempotency_keys WHERE idempotency_key = $1")
            .bind(key)
            .fetch_one(conn)
            .await?;
    Ok(Some(KeyUse {
        fingerprint: row.try_get("fingerprint")?,
        order_id: row.try_get("order_id")?,
    }))
}

/// Deletes up to `limit` idempotency keys created before `before`; returns how many.
pub async fn prune_idempotency_keys(
    db: &Database,
    before: i64,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let result = sql::query(
        "DELETE FROM idempotency_keys WHERE created_at < $1 AND idempotency_key IN (
             SELECT idempotency_key FROM idempotency_keys WHERE created_at < $2 LIMIT $3)",
    )
    .bind(before)
    .bind(before)
    .bind(limit)
    .execute(&mut db.acquire().await?)
    .await?;
    Ok(result.rows_affected())
}

const ORDER_COLUMNS: &str =
    "order_id, customer_id, status, reason, items, total_minor, currency, tracking_id, trace_id";

pub async fn order_view(pool: &Reader, order_id: &str) -> Result<Option<OrderView>, sqlx::Error> {
    let Some(r) = sql::query(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1"
    ))
    .bind(order_id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let history = sql::query(
        "SELECT event_type, source, at FROM order_history WHERE order_id = $1 ORDER BY at, event_id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(history_entry)
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Some(view_of(&r, history)?))
}

/// Every order as `GET /v1/orders/{id}` shows it, by id (to compare read models).
pub async fn all_order_views(
    pool: &Reader,
) -> Result<std::collections::BTreeMap<String, OrderView>, sqlx::Error> {
    let mut histories: std::collections::HashMap<String, Vec<HistoryEntry>> =
        std::collections::HashMap::new();
    for h in sql::query(
        "SELECT order_id, event_type, source, at FROM order_history ORDER BY order_id, at, event_id",
    )
    .fetch_all(pool)
    .await?
    {
        histories
            .entry(h.try_get("order_id")?)
            .or_default()
            .push(history_entry(&h)?);
    }
    sql::query(&format!("SELECT {ORDER_COLUMNS} FROM orders"))
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            let order_id: String = r.try_get("order_id")?;
            let history = histories.remove(&order_id).unwrap_or_default();
            Ok((order_id, view_of(r, history)?))
        })
        .collect()
}

/// Every customer's list (order, placed at, status, reason, total), newest
/// first (to compare read models: what a customer sees, not when it was written).
pub async fn all_customer_lists(
    pool: &Reader,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, sqlx::Error> {
    let mut lists: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in sql::query(
        "SELECT customer_id, order_id, placed_at, status, reason, total_minor, currency FROM orders
         ORDER BY customer_id, placed_at DESC, order_id DESC",
    )
    .fetch_all(pool)
    .await?
    {
        let entry = format!(
            "{} {} {} {:?} {:?} {:?}",
            r.try_get::<String, _>("order_id")?,
            r.try_get::<i64, _>("placed_at")?,
            r.try_get::<String, _>("status")?,
            r.try_get::<Option<String>, _>("reason")?,
            r.try_get::<Option<i64>, _>("total_minor")?,
            r.try_get::<Option<String>, _>("currency")?,
        );
        lists
            .entry(r.try_get("customer_id")?)
            .or_default()
            .push(entry);
    }
    Ok(lists)
}

fn history_entry(h: &sql::Row) -> Result<HistoryEntry, sqlx::Error> {
    let at: i64 = h.try_get("at")?;
    Ok(HistoryEntry {
        event_type: h.try_get("event_type")?,
        at: millis_to_rfc3339(at),
        source: h.try_get("source")?,
    })
}

fn view_of(r: &sql::Row, history: Vec<HistoryEntry>) -> Result<OrderView, sqlx::Error> {
    let items: String = r.try_get("items")?;
    Ok(OrderView {
        order_id: r.try_get("order_id")?,
        customer_id: r.try_get("customer_id")?,
        status: r.try_get("status")?,
        reason: r.try_get("reason")?,
        items: serde_json::from_str(&items).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        total: total_of(r)?,
        tracking_id: r.try_get("tracking_id")?,
        trace_id: r.try_get("trace_id")?,
        history,
    })
}

/// What an event adds to its order, written on its own (a rebuild applies
/// events one by one; the live handler writes all of it with the status).
pub async fn record_detail(
    conn: &mut Connection,
    event: &orderflow_envelope::Event,
) -> Result<(), sqlx::Error> {
    use orderflow_envelope::Event;
    let query = match event {
        Event::InventoryReserved(e) => {
            sql::query("UPDATE orders SET total_minor = $1, currency = $2 WHERE order_id = $3")
                .bind(e.total.amount_minor)
                .bind(e.total.currency.clone())
                .bind(e.order_id.clone())
        }
        Event::ShipmentCreated(e) => {
            sql::query("UPDATE orders SET tracking_id = $1 WHERE order_id = $2")
                .bind(e.tracking_id.clone())
                .bind(e.order_id.clone())
        }
        Event::PaymentFailed(e) => {
            sql::query("UPDATE orders SET payment_failure = $1 WHERE order_id = $2")
                .bind(e.reason.clone())
                .bind(e.order_id.clone())
        }
        _ => return Ok(()),
    };
    query.execute(conn).await?;
    Ok(())
}

/// Sets a derived status; the order's last event's time is when it changed.
pub async fn set_derived_status(
    conn: &mut Connection,
    order_id: &str,
    status: Status,
    reason: Option<CancelReason>,
) -> Result<(), sqlx::Error> {
    let last: Option<i64> =
        sql::query("SELECT MAX(at) AS at FROM order_history WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&mut *conn)
            .await?
            .try_get("at")?;
    sql::query(
        "UPDATE orders SET status = $1, reason = $2, updated_at = COALESCE($3, placed_at),
                terminal_at = $4 WHERE order_id = $5",
    )
    .bind(status.as_str())
    .bind(reason.map(|r| r.as_str()))
    .bind(last)
    .bind(if status.is_terminal() { last } else { None })
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(())
}
