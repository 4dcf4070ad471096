//! The order service's SQL.

use orderflow_api::{HistoryEntry, MoneyView, OrderLine, OrderView};

use crate::domain::{CancelReason, Status};
use orderflow_envelope::{EventType, Money};
use orderflow_runtime::sqlx::{self, AnyConnection, AnyPool, Row};

/// The columns of an order that its events update.
pub struct OrderRow {
    pub customer_id: String,
    pub status: String,
    pub total: Option<Money>,
    pub tracking_id: Option<String>,
    pub placed_at: i64,
    /// Why the payment failed, once it did.
    pub payment_failure: Option<String>,
}

pub async fn insert_order(
    conn: &mut AnyConnection,
    order_id: &str,
    customer_id: &str,
    items: &[OrderLine],
    placed_at: i64,
) -> Result<(), sqlx::Error> {
    let items = serde_json::to_string(items).expect("order lines serialize");
    sqlx::query(
        "INSERT INTO orders (order_id, customer_id, status, items, placed_at, updated_at)
         VALUES ($1, $2, 'PENDING', $3, $4, $5)",
    )
    .bind(order_id)
    .bind(customer_id)
    .bind(items)
    .bind(placed_at)
    .bind(placed_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// An order's status, if it exists.
pub async fn status(
    conn: &mut AnyConnection,
    order_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query("SELECT status FROM orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(conn)
        .await?
        .map(|r| r.try_get("status"))
        .transpose()
}

/// Locks the rows of these orders in id order (PostgreSQL).
pub async fn lock_orders(conn: &mut AnyConnection, mut ids: Vec<&str>) -> Result<(), sqlx::Error> {
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT order_id FROM orders WHERE order_id IN ({}) ORDER BY order_id FOR UPDATE",
        orderflow_runtime::in_list(ids.len(), 1)
    );
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(id.to_string());
    }
    query.fetch_all(conn).await?;
    Ok(())
}

pub async fn load(
    conn: &mut AnyConnection,
    order_id: &str,
) -> Result<Option<OrderRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT customer_id, status, total_minor, currency, tracking_id, placed_at, payment_failure FROM orders WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        let total_minor: Option<i64> = r.try_get("total_minor")?;
        let currency: Option<String> = r.try_get("currency")?;
        Ok(OrderRow {
            customer_id: r.try_get("customer_id")?,
            status: r.try_get("status")?,
            total: total_minor.zip(currency).map(|(a, c)| Money::new(a, c)),
            tracking_id: r.try_get("tracking_id")?,
            placed_at: r.try_get("placed_at")?,
            payment_failure: r.try_get("payment_failure")?,
        })
    })
    .transpose()
}

/// Appends an event to the order's history; false if it was there already.
pub async fn record_history(
    conn: &mut AnyConnection,
    order_id: &str,
    event_id: &str,
    event_type: EventType,
    source: &str,
    at: i64,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
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
    conn: &mut AnyConnection,
    order_id: &str,
) -> Result<Vec<EventType>, sqlx::Error> {
    let rows = sqlx::query("SELECT event_type FROM order_history WHERE order_id = $1")
        .bind(order_id)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get::<String, _>("event_type").ok())
        .filter_map(|t| EventType::from_name(&t))
        .collect())
}

/// Writes what the order's events added (total, tracking id, payment
/// failure) and, when given, its new status and reason.
pub async fn update(
    conn: &mut AnyConnection,
    order_id: &str,
    order: &OrderRow,
    status: Option<(Status, Option<CancelReason>)>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let (total_minor, currency) = match &order.total {
        Some(m) => (Some(m.amount_minor), Some(m.currency.as_str())),
        None => (None, None),
    };
    let query = match status {
        Some((status, reason)) => sqlx::query(
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
        None => sqlx::query(
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

/// Orders not yet terminal, when the oldest of them was placed, and orders
/// waiting for an operator because their refund failed.
pub async fn in_flight(pool: &AnyPool) -> Result<(i64, Option<i64>, i64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(placed_at) AS oldest FROM orders WHERE status NOT IN ('SHIPPED', 'CANCELLED', 'REFUND_PENDING')",
    )
    .fetch_one(pool)
    .await?;
    let refund_pending: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM orders WHERE status = 'REFUND_PENDING'")
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
    conn: &mut AnyConnection,
    key: &str,
    fingerprint: &str,
    order_id: &str,
    now: i64,
    ttl_ms: i64,
) -> Result<Option<KeyUse>, sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_keys WHERE idempotency_key = $1 AND created_at < $2")
        .bind(key)
        .bind(now - ttl_ms)
        .execute(&mut *conn)
        .await?;
    let inserted = sqlx::query(
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
    let row = sqlx::query(
        "SELECT fingerprint, order_id FROM idempotency_keys WHERE idempotency_key = $1",
    )
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
    pool: &AnyPool,
    before: i64,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "DELETE FROM idempotency_keys WHERE created_at < $1 AND idempotency_key IN (
             SELECT idempotency_key FROM idempotency_keys WHERE created_at < $2 LIMIT $3)",
    )
    .bind(before)
    .bind(before)
    .bind(limit)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

pub async fn order_view(pool: &AnyPool, order_id: &str) -> Result<Option<OrderView>, sqlx::Error> {
    let Some(r) = sqlx::query(
        "SELECT order_id, customer_id, status, reason, items, total_minor, currency, tracking_id
         FROM orders WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let items: String = r.try_get("items")?;
    let total_minor: Option<i64> = r.try_get("total_minor")?;
    let currency: Option<String> = r.try_get("currency")?;
    let history = sqlx::query(
        "SELECT event_type, source, at FROM order_history WHERE order_id = $1 ORDER BY at, event_id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|h| {
        let at: i64 = h.try_get("at")?;
        Ok(HistoryEntry {
            event_type: h.try_get("event_type")?,
            at: chrono::DateTime::from_timestamp_millis(at).unwrap_or_default().to_rfc3339(),
            source: h.try_get("source")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Some(OrderView {
        order_id: r.try_get("order_id")?,
        customer_id: r.try_get("customer_id")?,
        status: r.try_get("status")?,
        reason: r.try_get("reason")?,
        items: serde_json::from_str(&items).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        total: total_minor
            .zip(currency)
            .map(|(amount_minor, currency)| MoneyView {
                amount_minor,
                currency,
            }),
        tracking_id: r.try_get("tracking_id")?,
        history,
    }))
}
