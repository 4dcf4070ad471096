//! The platform seen from outside: the gateway's API, plus the payment
//! service's operator view. Both test tiers drive the platform through it,
//! with tokens from a local issuer: an operator's by default, a customer's
//! for placing a customer's order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use orderflow_api::{
    GatewayClient, MoneyView, NotificationView, OrderView, PaymentView, SetStock, StockView,
};
use orderflow_auth::Issuer;
use serde_json::{json, Value};

pub struct Api {
    /// Sends an operator's token with every request.
    pub http: reqwest::Client,
    pub gateway: String,
    /// The same client the operator CLI uses (an operator's token).
    pub client: GatewayClient,
    /// Every payment replica's base URL.
    pub payments: Vec<String>,
    /// The issuer the gateway trusts, to mint any token a test needs.
    pub issuer: Arc<Issuer>,
    /// Each customer's token, minted once. Orders go through one client with
    /// the token per request: a client per request (TLS roots loaded, a new
    /// connection) held the chaos soak near 14 orders/s, and a client per
    /// customer ran a 1,000-customer soak out of file descriptors.
    tokens: Mutex<HashMap<String, String>>,
    /// A client without a default token.
    plain: reqwest::Client,
}

impl Api {
    pub fn new(gateway: String, payments: Vec<String>, issuer: Arc<Issuer>) -> Self {
        let operator = issuer.mint("operator", true, Duration::from_secs(24 * 3_600));
        let client = GatewayClient::with_token(gateway.clone(), &operator);
        Self {
            http: client.http.clone(),
            gateway,
            client,
            payments,
            issuer,
            tokens: Mutex::default(),
            plain: reqwest::Client::builder()
                .pool_idle_timeout(orderflow_http::CLIENT_POOL_IDLE)
                .build()
                .expect("reqwest client builds"),
        }
    }

    /// A customer's token (valid a day).
    pub fn customer_token(&self, customer_id: &str) -> String {
        self.tokens
            .lock()
            .expect("tokens lock")
            .entry(customer_id.to_string())
            .or_insert_with(|| {
                self.issuer
                    .mint(customer_id, false, Duration::from_secs(24 * 3_600))
            })
            .clone()
    }

    /// From now on, `customer_id`'s token carries `email` in its `email`
    /// claim (where their notifications go by email).
    pub fn give_email(&self, customer_id: &str, email: &str) {
        let token =
            self.issuer
                .mint_with_email(customer_id, email, Duration::from_secs(24 * 3_600));
        self.tokens
            .lock()
            .expect("tokens lock")
            .insert(customer_id.to_string(), token);
    }

    /// A client that acts as `customer_id` (a customer's token).
    pub fn as_customer(&self, customer_id: &str) -> reqwest::Client {
        orderflow_api::bearer_client(&self.customer_token(customer_id))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway)
    }

    pub async fn set_stock(&self, sku: &str, available: i64, price_minor: i64) -> Result<()> {
        let unit_price = MoneyView {
            amount_minor: price_minor,
            currency: "EUR".into(),
        };
        Ok(self
            .client
            .set_stock(
                sku,
                &SetStock {
                    available,
                    unit_price,
                },
            )
            .await?)
    }

    /// Places `body` as the customer it names (or as an operator when it
    /// names none).
    pub async fn post_order(
        &self,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut request = match body["customer_id"].as_str() {
            Some(customer) => self
                .plain
                .post(self.url("/v1/orders"))
                .bearer_auth(self.customer_token(customer)),
            None => self.http.post(self.url("/v1/orders")),
        }
        .json(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        Ok(request.send().await?)
    }

    /// Places an order that must be accepted; returns its id.
    pub async fn place(&self, body: &Value) -> Result<String> {
        let response = self.post_order(body, None).await?;
        let status = response.status();
        let text = response.text().await?;
        if status.as_u16() != 202 {
            bail!("order not accepted: {status} {text}");
        }
        let accepted: Value = serde_json::from_str(&text)?;
        Ok(accepted["order_id"]
            .as_str()
            .context("order_id")?
            .to_string())
    }

    pub async fn order(&self, order_id: &str) -> Result<OrderView> {
        Ok(self.client.order(order_id).await?)
    }

    /// Waits until the order is terminal (SHIPPED, CANCELLED or REFUND_PENDING).
    pub async fn wait_terminal(&self, order_id: &str) -> Result<OrderView> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let order = self.order(order_id).await?;
            if orderflow_api::is_terminal(&order.status) {
                return Ok(order);
            }
            if Instant::now() > deadline {
                bail!(
                    "order {order_id} still {} after 60s: {:?}",
                    order.status,
                    order.history
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Places every order (up to `concurrency` requests in flight); returns their ids.
    pub async fn place_all(&self, bodies: &[Value], concurrency: usize) -> Result<Vec<String>> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        stream::iter(bodies)
            .map(|body| self.place(body))
            .buffered(concurrency)
            .try_collect()
            .await
    }

    /// Waits until every order is terminal; returns them.
    pub async fn wait_all_terminal(
        &self,
        ids: &[String],
        timeout: Duration,
    ) -> Result<Vec<OrderView>> {
        Ok(self.client.wait_all_terminal(ids, timeout).await?)
    }

    pub async fn stock(&self, sku: &str) -> Result<StockView> {
        Ok(self
            .http
            .get(self.url(&format!("/v1/inventory/{sku}")))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// An order's payment as the payment service shows it. Replicas share
    /// one database, provider ledger included, so any of them will do; the
    /// first that answers is asked.
    pub async fn payment(&self, order_id: &str) -> Result<Option<PaymentView>> {
        let mut last_error = None;
        for base in &self.payments {
            let response = match self
                .http
                .get(format!("{base}/v1/payments/{order_id}"))
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    last_error = Some(e); // that replica is down (a kill test)
                    continue;
                }
            };
            if response.status() == 404 {
                return Ok(None);
            }
            return Ok(Some(response.error_for_status()?.json().await?));
        }
        Err(last_error
            .map(anyhow::Error::from)
            .unwrap_or_else(|| anyhow::anyhow!("no payment replica")))
    }

    pub async fn notifications(&self, customer_id: &str) -> Result<Vec<NotificationView>> {
        let url = self.url(&format!("/v1/customers/{customer_id}/notifications"));
        Ok(self
            .http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// The kinds of every notification the customer got, sorted.
    pub async fn notification_kinds(&self, customer_id: &str) -> Result<Vec<String>> {
        let mut kinds: Vec<String> = self
            .notifications(customer_id)
            .await?
            .into_iter()
            .map(|n| n.kind)
            .collect();
        kinds.sort();
        Ok(kinds)
    }
}

/// The order of docs/api.md, with a customer, quantity, token and country of the test's choosing.
pub fn order_body(
    customer_id: &str,
    sku: &str,
    quantity: i64,
    token: &str,
    country: &str,
) -> Value {
    json!({
        "customer_id": customer_id,
        "items": [{"sku": sku, "quantity": quantity}],
        "payment": {"token": token},
        "shipping_address": {"name": "Ada", "line1": "1 Main St", "city": "Berlin",
                             "postal_code": "10115", "country": country}
    })
}

fn kinds(notifications: &[NotificationView], order_id: &str) -> Vec<String> {
    let mut kinds: Vec<String> = notifications
        .iter()
        .filter(|n| n.order_id == order_id)
        .map(|n| n.kind.clone())
        .collect();
    kinds.sort();
    kinds
}

/// Places one order for each outcome of the saga and checks, once they are
/// terminal, the status, the stock, the payment and the notifications. Expects
/// the demo catalogue, untouched. Returns the shipped order's id.
pub async fn check_four_outcomes(
    api: &Api,
    wait_idle: impl std::future::Future<Output = Result<()>>,
) -> Result<String> {
    // Happy path: 2 × SKU-001 at 9.99 EUR.
    let shipped = api
        .place(&order_body("c-happy", "SKU-001", 2, "tok_visa", "DE"))
        .await?;
    // Out of stock: more than the 100 units there are.
    let out_of_stock = api
        .place(&order_body("c-oos", "SKU-002", 101, "tok_visa", "DE"))
        .await?;
    // Declined card.
    let declined = api
        .place(&order_body(
            "c-declined",
            "SKU-003",
            3,
            "tok_chargeDeclined",
            "DE",
        ))
        .await?;
    // A country the carrier does not serve: 4 × SKU-004 at 39.96 EUR.
    let unshippable = api
        .place(&order_body("c-aq", "SKU-004", 4, "tok_visa", "AQ"))
        .await?;

    let order = api.wait_terminal(&shipped).await?;
    assert_eq!(order.status, "SHIPPED");
    assert_eq!(order.reason, None);
    assert_eq!(
        order
            .total
            .as_ref()
            .map(|t| (t.amount_minor, t.currency.as_str())),
        Some((1998, "EUR"))
    );
    assert!(order
        .tracking_id
        .as_deref()
        .is_some_and(|t| t.starts_with("TRK")));
    let history: Vec<&str> = order
        .history
        .iter()
        .map(|h| h.event_type.as_str())
        .collect();
    for step in [
        "OrderCreated",
        "InventoryReserved",
        "PaymentProcessed",
        "ShipmentCreated",
    ] {
        assert!(history.contains(&step), "history {history:?} lacks {step}");
    }
    assert_eq!(order.history[0].source, "/orderflow/order");

    let order = api.wait_terminal(&out_of_stock).await?;
    assert_eq!(
        (order.status.as_str(), order.reason.as_deref()),
        ("CANCELLED", Some("OUT_OF_STOCK"))
    );
    let order = api.wait_terminal(&declined).await?;
    assert_eq!(
        (order.status.as_str(), order.reason.as_deref()),
        ("CANCELLED", Some("PAYMENT_DECLINED"))
    );
    let order = api.wait_terminal(&unshippable).await?;
    assert_eq!(
        (order.status.as_str(), order.reason.as_deref()),
        ("CANCELLED", Some("SHIPPING_FAILED"))
    );
    wait_idle.await?;

    // Stock: shipped units are gone, everything else is back on the shelf.
    let s = api.stock("SKU-001").await?;
    assert_eq!((s.available, s.reserved), (98, 0));
    for sku in ["SKU-002", "SKU-003", "SKU-004"] {
        let s = api.stock(sku).await?;
        assert_eq!((s.available, s.reserved), (100, 0), "{sku}");
    }

    // Payments: charged once, never charged, declined, refunded.
    let p = api.payment(&shipped).await?.context("a payment")?;
    assert_eq!(
        (
            p.status.as_str(),
            p.amount.amount_minor,
            p.provider_charges,
            p.provider_refunds
        ),
        ("CHARGED", 1998, 1, 0)
    );
    assert!(
        api.payment(&out_of_stock).await?.is_none(),
        "an out-of-stock order is never charged"
    );
    let p = api.payment(&declined).await?.context("a payment")?;
    assert_eq!((p.status.as_str(), p.provider_charges), ("DECLINED", 0));
    let p = api.payment(&unshippable).await?.context("a payment")?;
    assert_eq!(
        (
            p.status.as_str(),
            p.amount.amount_minor,
            p.provider_charges,
            p.provider_refunds
        ),
        ("REFUNDED", 4 * 3996, 1, 1)
    );

    // Notifications: one per outcome.
    assert_eq!(
        kinds(&api.notifications("c-happy").await?, &shipped),
        ["payment_received", "shipped"]
    );
    assert_eq!(
        kinds(&api.notifications("c-oos").await?, &out_of_stock),
        ["out_of_stock"]
    );
    assert_eq!(
        kinds(&api.notifications("c-declined").await?, &declined),
        ["payment_declined"]
    );
    assert_eq!(
        kinds(&api.notifications("c-aq").await?, &unshippable),
        ["payment_received", "shipping_failed"]
    );
    Ok(shipped)
}
