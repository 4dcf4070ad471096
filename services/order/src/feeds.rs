//! Reads across customers for operators and the console: the newest orders,
//! the status changes since a moment (the feed of the gateway's
//! `GET /v1/orders/stream`), and counts by status. A customer's reads are
//! the same with their id as a filter.

use std::collections::BTreeMap;

use orderflow_api::{OrderSummary, OrdersOverview};
use orderflow_runtime::sql::Reader;
use orderflow_runtime::sql::{self, Row};
use orderflow_runtime::sqlx;
use orderflow_runtime::Database;

use crate::domain::{CancelReason, Status};
use crate::store::{millis_to_rfc3339, total_of};

/// How long status changes are kept: a stream resumes within a day.
pub const CHANGES_KEPT_MS: i64 = 24 * 3_600_000;

/// Which orders a read covers.
#[derive(Debug, Default, Clone)]
pub struct Scope {
    /// Only this customer's.
    pub customer_id: Option<String>,
    /// Only orders in this status.
    pub status: Option<String>,
}

/// `$n` conditions for a scope, and their values in order.
fn conditions(scope: &Scope, first: usize, table: &str) -> (String, Vec<String>) {
    let mut sql = String::new();
    let mut values = Vec::new();
    for (column, value) in [
        ("customer_id", &scope.customer_id),
        ("status", &scope.status),
    ] {
        if let Some(value) = value {
            sql.push_str(&format!(
                " AND {table}.{column} = ${}",
                first + values.len()
            ));
            values.push(value.clone());
        }
    }
    (sql, values)
}

/// `query` with the scope's values bound, in order.
fn bind_all<'q>(mut query: sql::Query<'q>, values: Vec<String>) -> sql::Query<'q> {
    for v in values {
        query = query.bind(v);
    }
    query
}

fn summary(r: &Row, changed_at: i64) -> Result<OrderSummary, sqlx::Error> {
    Ok(OrderSummary {
        order_id: r.try_get("order_id")?,
        customer_id: r.try_get("customer_id")?,
        status: r.try_get("status")?,
        reason: r.try_get("reason")?,
        total: total_of(r)?,
        placed_at: millis_to_rfc3339(r.try_get("placed_at")?),
        changed_at: millis_rfc3339(changed_at),
    })
}

/// RFC 3339 with milliseconds: changes a few ms apart stay apart.
pub fn millis_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The newest `limit` orders in the scope, newest first.
pub async fn newest(
    pool: &Reader,
    scope: &Scope,
    limit: i64,
) -> Result<Vec<OrderSummary>, sqlx::Error> {
    let (filter, values) = conditions(scope, 1, "o");
    let statement = format!(
        "SELECT o.order_id, o.customer_id, o.status, o.reason, o.total_minor, o.currency,
                o.placed_at, o.updated_at
         FROM orders o WHERE 1 = 1{filter}
         ORDER BY o.placed_at DESC, o.order_id DESC LIMIT ${}",
        values.len() + 1
    );
    bind_all(sql::query(&statement), values)
        .bind(limit)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| summary(r, r.try_get("updated_at")?))
        .collect()
}

/// Status changes made at or after `since` (ms) and after `after` (a
/// change's time, order id and status: the last of a full page), in that
/// order, at most `limit`: each with the order as it is now (its total,
/// say), and the status and reason it took then.
pub async fn changes_since(
    pool: &Reader,
    scope: &Scope,
    since: i64,
    after: Option<(i64, String, String)>,
    limit: i64,
) -> Result<Vec<(i64, OrderSummary)>, sqlx::Error> {
    let (filter, values) = conditions(
        &Scope {
            status: None,
            ..scope.clone()
        },
        7,
        "o",
    );
    // With no `after`, the smallest key: every change qualifies.
    let (after_at, after_order, after_status) =
        after.unwrap_or((i64::MIN, String::new(), String::new()));
    let statement = format!(
        "SELECT c.order_id, o.customer_id, c.status, c.reason, o.total_minor, o.currency,
                o.placed_at, c.changed_at
         FROM order_changes c JOIN orders o ON o.order_id = c.order_id
         WHERE c.changed_at >= $1
           AND (c.changed_at > $2 OR (c.changed_at = $3
                AND (c.order_id > $4 OR (c.order_id = $5 AND c.status > $6)))){filter}
         ORDER BY c.changed_at, c.order_id, c.status LIMIT ${}",
        values.len() + 7
    );
    let query = sql::query(&statement)
        .bind(since)
        .bind(after_at)
        .bind(after_at)
        .bind(after_order.clone())
        .bind(after_order)
        .bind(after_status);
    bind_all(query, values)
        .bind(limit)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            let at: i64 = r.try_get("changed_at")?;
            Ok((at, summary(r, at)?))
        })
        .collect()
}

/// Orders by status and cancellations by reason (every status and reason
/// listed, zeros included), and orders placed in each of the last 60
/// seconds up to `now`.
pub async fn overview(
    pool: &Reader,
    scope: &Scope,
    now: i64,
) -> Result<OrdersOverview, sqlx::Error> {
    let (filter, values) = conditions(scope, 1, "o");
    let statement = format!(
        "SELECT o.status, o.reason, COUNT(*) AS n FROM orders o WHERE 1 = 1{filter}
         GROUP BY o.status, o.reason"
    );
    let query = bind_all(sql::query(&statement), values.clone());
    let mut counts: BTreeMap<String, i64> =
        Status::ALL.iter().map(|s| (s.as_str().into(), 0)).collect();
    let mut cancelled: BTreeMap<String, i64> = CancelReason::ALL
        .iter()
        .map(|r| (r.as_str().into(), 0))
        .collect();
    for r in query.fetch_all(pool).await? {
        let status: String = r.try_get("status")?;
        let n: i64 = r.try_get("n")?;
        *counts.entry(status.clone()).or_default() += n;
        if let (true, Some(reason)) = (
            status == Status::Cancelled.as_str(),
            r.try_get::<Option<String>, _>("reason")?,
        ) {
            *cancelled.entry(reason).or_default() += n;
        }
    }
    // Counted by the database, a row per second: not every order of the minute.
    let first_second = now / 1000 - 59;
    let statement = format!(
        "SELECT o.placed_at / 1000 AS second, COUNT(*) AS n FROM orders o
         WHERE 1 = 1{filter} AND o.placed_at >= ${}
         GROUP BY o.placed_at / 1000",
        values.len() + 1
    );
    let mut placed_per_second = vec![0; 60];
    let rows = bind_all(sql::query(&statement), values)
        .bind(first_second * 1000)
        .fetch_all(pool)
        .await?;
    for r in rows {
        let second = r.try_get::<i64, _>("second")? - first_second;
        if let Some(slot) = usize::try_from(second)
            .ok()
            .and_then(|i| placed_per_second.get_mut(i))
        {
            *slot += r.try_get::<i64, _>("n")?;
        }
    }
    Ok(OrdersOverview {
        counts,
        cancelled,
        placed_per_second,
        as_of: millis_rfc3339(now),
    })
}

/// Deletes up to `limit` status changes made before `before`; returns how many.
pub async fn prune_changes(db: &Database, before: i64, limit: i64) -> Result<u64, sqlx::Error> {
    let result = sql::query(
        "DELETE FROM order_changes WHERE (order_id, status) IN (
             SELECT order_id, status FROM order_changes WHERE changed_at < $1 LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(&mut db.acquire().await?)
    .await?;
    Ok(result.rows_affected())
}
