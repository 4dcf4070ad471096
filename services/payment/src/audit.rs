//! `GET /v1/audit/payments`: the payment service's account of every order
//! it charged or tried to, with what the provider's ledger holds for it,
//! a page at a time by order id, for the auditor (operators only). Orders
//! only the ledger knows (a charge whose payment row was lost) are listed
//! too: the ledger is read over the same range of order ids as the page.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use orderflow_api::audit::{self, AuditPage, PaymentRecord};
use orderflow_api::IdKind;
use orderflow_runtime::{sql, sqlx, Runtime};

use crate::provider::PaymentProvider;

#[derive(Clone)]
struct AppState {
    rt: Arc<Runtime>,
    provider: Arc<dyn PaymentProvider>,
}

pub fn routes(rt: Arc<Runtime>, provider: Arc<dyn PaymentProvider>) -> Router {
    let state = AppState { rt, provider };
    audit::route("/v1/audit/payments", IdKind::Order, state, page)
}

/// At most `limit` payments after `after`, with every ledger entry in the
/// same range of order ids.
async fn page(s: AppState, after: String, limit: i64) -> Result<AuditPage<PaymentRecord>, String> {
    let rows = sql::query(
        "SELECT order_id, status FROM payments WHERE order_id > $1 ORDER BY order_id LIMIT $2",
    )
    .bind(&after)
    .bind(limit + 1)
    .fetch_all(s.rt.db().reader())
    .await
    .map_err(|e| e.to_string())?;
    let payments = rows
        .iter()
        .map(|r| Ok((r.try_get("order_id")?, r.try_get("status")?)))
        .collect::<Result<Vec<(String, String)>, sqlx::Error>>()
        .map_err(|e| e.to_string())?;
    let payments = AuditPage::from_one_more(payments, limit, |(order_id, _)| order_id.as_str());
    let next_after = payments.next_after;
    let ledgers = s
        .provider
        .ledgers(&after, next_after.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    let mut records: BTreeMap<String, PaymentRecord> = payments
        .items
        .into_iter()
        .map(|(order_id, status)| {
            let record = PaymentRecord {
                order_id: order_id.clone(),
                status: Some(status),
                provider_charges: 0,
                provider_refunds: 0,
            };
            (order_id, record)
        })
        .collect();
    for (order_id, (charges, refunds)) in ledgers {
        let record = records
            .entry(order_id.clone())
            .or_insert_with(|| PaymentRecord {
                order_id,
                status: None,
                provider_charges: 0,
                provider_refunds: 0,
            });
        record.provider_charges = charges;
        record.provider_refunds = refunds;
    }
    Ok(AuditPage {
        items: records.into_values().collect(),
        next_after,
    })
}
