//! What each service tells the auditor about what it holds: operator-only
//! `GET /v1/audit/...` routes on the services' own APIs, a page at a time in
//! key order (order id, or SKU for stock), so that `orderflow audit` reads
//! 100,000 orders' facts in a few dozen requests. Each record is the
//! service's own account; the auditor compares it with the log.

use std::future::Future;

use axum::{Extension, Json, Router};
use orderflow_auth::{require_operator, Principal};
use orderflow_http::{Problem, Query};
use serde::{Deserialize, Serialize};

use crate::IdKind;

/// Records per page unless the request asks otherwise.
pub const DEFAULT_PAGE: i64 = 1_000;
/// The most records a page holds.
pub const MAX_PAGE: i64 = 5_000;

/// The query of an audit route: records with keys after `after`, at most
/// `limit` of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub after: Option<String>,
    pub limit: Option<i64>,
}

impl PageQuery {
    /// The key to start after and the page size, checked: `after` must be a
    /// key of `kind`, `limit` between 1 and [`MAX_PAGE`].
    pub fn checked(&self, kind: IdKind) -> Result<(Option<&str>, i64), Problem> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Problem::validation(format!(
                "limit must be between 1 and {MAX_PAGE}, got {limit}"
            )));
        }
        let after = self.after.as_deref();
        if let Some(error) = after.and_then(|a| kind.error(a)) {
            return Err(Problem::validation(format!("after: {error}")));
        }
        Ok((after, limit))
    }
}

/// One page: the records, and the key to ask `after` for the next page
/// (none on the last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage<T> {
    pub items: Vec<T>,
    pub next_after: Option<String>,
}

impl<T> AuditPage<T> {
    /// A page of `items` fetched with `limit + 1` asked for: a further
    /// record means there is a next page, which starts after the last kept.
    pub fn from_one_more(mut items: Vec<T>, limit: i64, key: impl Fn(&T) -> &str) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_after = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|last| key(last).to_string())
        } else {
            None
        };
        Self { items, next_after }
    }
}

/// One audit route, `GET {path}`: an operator's request only, its query
/// checked against the grammar of `kind`, then `fetch(state, after,
/// limit)` reads the page (`after` is empty for the first: every key sorts
/// after it).
pub fn route<S, T, E, Fut>(
    path: &str,
    kind: IdKind,
    state: S,
    fetch: fn(S, String, i64) -> Fut,
) -> Router
where
    S: Clone + Send + Sync + 'static,
    T: Serialize + Send + 'static,
    E: std::fmt::Display,
    Fut: Future<Output = Result<AuditPage<T>, E>> + Send + 'static,
{
    let serve = move |Extension(caller): Extension<Principal>,
                      query: Result<Query<PageQuery>, Problem>| {
        let state = state.clone();
        async move {
            // Who asks first: a customer learns nothing, not even that a
            // query was malformed.
            require_operator(&caller)?;
            let Query(query) = query?;
            let (after, limit) = query.checked(kind)?;
            fetch(state, after.unwrap_or_default().to_string(), limit)
                .await
                .map(Json)
                .map_err(Problem::internal)
        }
    };
    Router::new().route(path, axum::routing::get(serve))
}

/// The order service's account of an order (`GET /v1/audit/orders`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub order_id: String,
    pub customer_id: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was placed, ms since the epoch.
    pub placed_at_ms: i64,
}

/// The payment service's account of an order (`GET /v1/audit/payments`):
/// its payment (none when only the provider's ledger knows the order) and
/// what the provider's ledger holds for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub order_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    pub provider_charges: u32,
    pub provider_refunds: u32,
}

/// The shipping service's account of an order (`GET /v1/audit/shipments`):
/// CREATED (booked with the carrier) or FAILED.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentRecord {
    pub order_id: String,
    pub status: String,
}

/// The notifications sent about an order (`GET /v1/audit/notifications`),
/// their kinds sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRecord {
    pub order_id: String,
    pub kinds: Vec<String>,
}

/// The inventory service's account of a SKU (`GET /v1/audit/stock`): what
/// it holds, what was put in (the first level set, then every later
/// change), and what its reservations shipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockRecord {
    pub sku: String,
    pub available: i64,
    pub reserved: i64,
    pub initial: i64,
    pub restocked: i64,
    pub shipped: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_query_is_checked() {
        let q = |after: Option<&str>, limit| PageQuery {
            after: after.map(str::to_string),
            limit,
        };
        assert_eq!(
            q(None, None).checked(IdKind::Order).ok(),
            Some((None, DEFAULT_PAGE))
        );
        assert!(q(None, Some(0)).checked(IdKind::Order).is_err());
        assert!(q(None, Some(MAX_PAGE + 1)).checked(IdKind::Order).is_err());
        assert!(q(Some("../x"), None).checked(IdKind::Order).is_err());
        assert!(q(Some("SKU-001"), Some(5)).checked(IdKind::Sku).is_ok());
    }

    #[test]
    fn one_record_more_than_asked_means_a_next_page() {
        let page = AuditPage::from_one_more(vec!["a", "b", "c"], 2, |s| s);
        assert_eq!(page.items, ["a", "b"]);
        assert_eq!(page.next_after.as_deref(), Some("b"));
        let last = AuditPage::from_one_more(vec!["a", "b"], 2, |s| s);
        assert_eq!(last.next_after, None);
    }
}
