//! `GET /v1/audit/orders`: the order service's account of every order, a
//! page at a time by order id, for the auditor (operators only).

use std::sync::Arc;

use axum::Router;
use orderflow_api::audit::{self, AuditPage, OrderRecord};
use orderflow_api::IdKind;
use orderflow_runtime::{sql, sqlx, Runtime};

pub fn routes(rt: Arc<Runtime>) -> Router {
    audit::route("/v1/audit/orders", IdKind::Order, rt, page)
}

/// Orders after `after`, at most `limit`.
async fn page(
    rt: Arc<Runtime>,
    after: String,
    limit: i64,
) -> Result<AuditPage<OrderRecord>, sqlx::Error> {
    let records = sql::query(
        "SELECT order_id, customer_id, status, reason, placed_at FROM orders
         WHERE order_id > $1 ORDER BY order_id LIMIT $2",
    )
    .bind(after)
    .bind(limit + 1)
    .fetch_all(rt.db().reader())
    .await?
    .iter()
    .map(|r| {
        Ok(OrderRecord {
            order_id: r.try_get("order_id")?,
            customer_id: r.try_get("customer_id")?,
            status: r.try_get("status")?,
            reason: r.try_get("reason")?,
            placed_at_ms: r.try_get("placed_at")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(AuditPage::from_one_more(records, limit, |r| {
        r.order_id.as_str()
    }))
}
