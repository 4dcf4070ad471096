//! What the services' stores say, read through each service's own
//! `GET /v1/audit/...` route with an operator's token, page after page —
//! never by opening another service's database.

use std::collections::BTreeMap;

use orderflow_api::audit::{
    AuditPage, NotificationRecord, OrderRecord, PaymentRecord, ShipmentRecord, StockRecord,
    MAX_PAGE,
};
use orderflow_invariants::Account;
use serde::de::DeserializeOwned;

/// Where each service's own API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrls {
    pub order: String,
    pub inventory: String,
    pub payment: String,
    pub shipping: String,
    pub notification: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{service} at {url}: {error}")]
    Unreachable {
        service: &'static str,
        url: String,
        error: String,
    },
    #[error("{service} answered {status} to {url}: {body}")]
    Refused {
        service: &'static str,
        url: String,
        status: u16,
        body: String,
    },
}

/// Every service's account, keyed by order id (stock by SKU).
#[derive(Debug, Clone, Default)]
pub struct StoreBook {
    pub orders: BTreeMap<String, OrderRecord>,
    pub payments: BTreeMap<String, PaymentRecord>,
    pub shipments: BTreeMap<String, ShipmentRecord>,
    pub notifications: BTreeMap<String, Vec<String>>,
    pub stock: Vec<StockRecord>,
}

impl StoreBook {
    /// Reads every page of every service's account.
    pub async fn read(urls: &ServiceUrls, client: &reqwest::Client) -> Result<Self, StoreError> {
        let (orders, payments, shipments, notifications, stock) = tokio::try_join!(
            read_all::<OrderRecord>(client, "order", &urls.order, "orders"),
            read_all::<PaymentRecord>(client, "payment", &urls.payment, "payments"),
            read_all::<ShipmentRecord>(client, "shipping", &urls.shipping, "shipments"),
            read_all::<NotificationRecord>(
                client,
                "notification",
                &urls.notification,
                "notifications"
            ),
            read_all::<StockRecord>(client, "inventory", &urls.inventory, "stock"),
        )?;
        Ok(Self {
            orders: keyed(orders, |r| &r.order_id),
            payments: keyed(payments, |r| &r.order_id),
            shipments: keyed(shipments, |r| &r.order_id),
            notifications: notifications
                .into_iter()
                .map(|r| (r.order_id, r.kinds))
                .collect(),
            stock,
        })
    }

    /// The story the stores tell of `order_id`: the order service's status,
    /// the provider's ledger, the shipment, the notifications sent.
    pub fn account(&self, order_id: &str) -> Account {
        let ledger = self.payments.get(order_id);
        Account {
            status: self
                .orders
                .get(order_id)
                .map(|o| (o.status.clone(), o.reason.clone())),
            payment: ledger.is_some_and(|p| p.status.is_some()),
            charges: ledger.map_or(0, |p| p.provider_charges),
            refunds: ledger.map_or(0, |p| p.provider_refunds),
            shipment: self.shipments.get(order_id).map(|s| s.status.clone()),
            notifications: self
                .notifications
                .get(order_id)
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// Every order id any service holds.
    pub fn order_ids(&self) -> impl Iterator<Item = &String> {
        self.orders
            .keys()
            .chain(self.payments.keys())
            .chain(self.shipments.keys())
            .chain(self.notifications.keys())
    }
}

fn keyed<T>(records: Vec<T>, key: fn(&T) -> &String) -> BTreeMap<String, T> {
    records.into_iter().map(|r| (key(&r).clone(), r)).collect()
}

/// Every record of `{base}/v1/audit/{what}`, following `next_after`.
async fn read_all<T: DeserializeOwned>(
    client: &reqwest::Client,
    service: &'static str,
    base: &str,
    what: &str,
) -> Result<Vec<T>, StoreError> {
    let url = format!("{}/v1/audit/{what}", base.trim_end_matches('/'));
    let unreachable = |error: String| StoreError::Unreachable {
        service,
        url: url.clone(),
        error,
    };
    let mut records = Vec::new();
    let mut after: Option<String> = None;
    let mut previous: Option<String> = None;
    loop {
        let mut query = vec![("limit", MAX_PAGE.to_string())];
        query.extend(after.take().map(|a| ("after", a)));
        let response = client
            .get(&url)
            .query(&query)
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(StoreError::Refused {
                service,
                url,
                status,
                body: response.text().await.unwrap_or_default(),
            });
        }
        let page: AuditPage<T> = response
            .json()
            .await
            .map_err(|e| unreachable(format!("not an audit page: {e}")))?;
        records.extend(page.items);
        match page.next_after {
            // Keys only move forward; a page that does not is a broken service.
            Some(next) if previous.as_ref().is_some_and(|p| next <= *p) => {
                return Err(unreachable(format!(
                    "its pages went back: after {previous:?} it named {next:?} next"
                )));
            }
            Some(next) => {
                previous = Some(next.clone());
                after = Some(next);
            }
            None => return Ok(records),
        }
    }
}
