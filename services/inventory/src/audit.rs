//! `GET /v1/audit/stock`: the inventory service's account of every SKU —
//! what it holds, what was put in and what its reservations shipped — a
//! page at a time by SKU, for the auditor (operators only).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use orderflow_api::audit::{self, AuditPage, StockRecord};
use orderflow_api::IdKind;
use orderflow_runtime::{sql, sqlx, Runtime};

pub fn routes(rt: Arc<Runtime>) -> Router {
    audit::route("/v1/audit/stock", IdKind::Sku, rt, page)
}

/// SKUs after `after`, at most `limit`, each with the units its
/// reservations shipped.
async fn page(
    rt: Arc<Runtime>,
    after: String,
    limit: i64,
) -> Result<AuditPage<StockRecord>, sqlx::Error> {
    let pool = rt.db().reader();
    let records = sql::query(
        "SELECT sku, available, reserved, initial_units, restocked_units FROM stock
         WHERE sku > $1 ORDER BY sku LIMIT $2",
    )
    .bind(&after)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok(StockRecord {
            sku: r.try_get("sku")?,
            available: r.try_get("available")?,
            reserved: r.try_get("reserved")?,
            initial: r.try_get("initial_units")?,
            restocked: r.try_get("restocked_units")?,
            shipped: 0,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let mut page = AuditPage::from_one_more(records, limit, |r| r.sku.as_str());
    let skus = |r: Option<&StockRecord>| r.map(|r| r.sku.clone());
    let (Some(first), Some(last)) = (skus(page.items.first()), skus(page.items.last())) else {
        return Ok(page);
    };
    // One pass over the reservations for the whole page.
    let shipped: BTreeMap<String, i64> = sql::query(
        "SELECT sku, CAST(SUM(quantity) AS BIGINT) AS units FROM reservations
         WHERE status = 'SHIPPED' AND sku >= $1 AND sku <= $2 GROUP BY sku",
    )
    .bind(first)
    .bind(last)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("sku")?, r.try_get("units")?)))
    .collect::<Result<_, sqlx::Error>>()?;
    for record in &mut page.items {
        record.shipped = shipped.get(&record.sku).copied().unwrap_or(0);
    }
    Ok(page)
}
