//! `GET /v1/audit/shipments`: the shipping service's account of every
//! order it booked or failed to, a page at a time by order id, for the
//! auditor (operators only).

use std::sync::Arc;

use axum::Router;
use orderflow_api::audit::{self, AuditPage, ShipmentRecord};
use orderflow_api::IdKind;
use orderflow_runtime::{sql, sqlx, Runtime};

pub fn routes(rt: Arc<Runtime>) -> Router {
    audit::route("/v1/audit/shipments", IdKind::Order, rt, page)
}

/// Shipments after `after`, at most `limit`.
async fn page(
    rt: Arc<Runtime>,
    after: String,
    limit: i64,
) -> Result<AuditPage<ShipmentRecord>, sqlx::Error> {
    let records = sql::query(
        "SELECT order_id, status FROM shipments WHERE order_id > $1 ORDER BY order_id LIMIT $2",
    )
    .bind(after)
    .bind(limit + 1)
    .fetch_all(rt.db().reader())
    .await?
    .iter()
    .map(|r| {
        Ok(ShipmentRecord {
            order_id: r.try_get("order_id")?,
            status: r.try_get("status")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(AuditPage::from_one_more(records, limit, |r| {
        r.order_id.as_str()
    }))
}
