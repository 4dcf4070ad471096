//! `GET /v1/audit/notifications`: the kinds of notification sent about
//! each order, a page at a time by order id, for the auditor (operators
//! only). Only sent ones count: an intent not yet delivered, or one that
//! waits for an address, told the customer nothing yet.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use orderflow_api::audit::{self, AuditPage, NotificationRecord};
use orderflow_api::IdKind;
use orderflow_runtime::{sql, sqlx, Runtime};

pub fn routes(rt: Arc<Runtime>) -> Router {
    audit::route("/v1/audit/notifications", IdKind::Order, rt, page)
}

/// The orders after `after` with a notification sent, at most `limit`, and
/// every kind sent about each.
async fn page(
    rt: Arc<Runtime>,
    after: String,
    limit: i64,
) -> Result<AuditPage<NotificationRecord>, sqlx::Error> {
    let pool = rt.db().reader();
    let orders: Vec<String> = sql::query(
        "SELECT DISTINCT order_id FROM notifications WHERE status = 'SENT' AND order_id > $1
         ORDER BY order_id LIMIT $2",
    )
    .bind(&after)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| r.try_get("order_id"))
    .collect::<Result<_, _>>()?;
    let mut page = AuditPage::from_one_more(orders, limit, String::as_str);
    let (Some(first), Some(last)) = (page.items.first(), page.items.last()) else {
        return Ok(AuditPage {
            items: Vec::new(),
            next_after: None,
        });
    };
    let rows = sql::query(
        "SELECT order_id, kind FROM notifications WHERE status = 'SENT' AND order_id >= $1 AND order_id <= $2",
    )
    .bind(first)
    .bind(last)
    .fetch_all(pool)
    .await?;
    let mut kinds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        kinds
            .entry(r.try_get("order_id")?)
            .or_default()
            .push(r.try_get("kind")?);
    }
    let items = kinds
        .into_iter()
        .map(|(order_id, mut kinds)| {
            kinds.sort_unstable();
            NotificationRecord { order_id, kinds }
        })
        .collect();
    Ok(AuditPage {
        items,
        next_after: page.next_after.take(),
    })
}
