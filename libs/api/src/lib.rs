//! The public HTTP API (v1): request and response bodies and their validation,
//! shared by the gateway and the services behind it so both read and check a
//! body the same way.

pub mod audit;
mod caller;
mod client;
mod ids;
pub mod progress;
mod validate;

pub use client::{bearer_client, ClientError, GatewayClient};
pub use ids::{CustomerId, IdKind, OrderId, Sku};
pub use validate::{
    email_error, MAX_EMAIL_LEN, MAX_ID_LEN, MAX_LINES, MAX_POSTAL_CODE_LEN, MAX_QUANTITY,
    MAX_TEXT_LEN, MAX_UNITS_PER_ORDER, MAX_UNIT_PRICE_MINOR,
};

use orderflow_http::{Problem, ProblemType};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// Whose order: the token's subject. A customer leaves it out (or sends
    /// their own id); an operator placing an order for a customer names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    pub items: Vec<OrderLine>,
    pub payment: Payment,
    pub shipping_address: ShippingAddress,
    /// Where the order's notifications go by email. A customer leaves it
    /// out: it is the `email` claim of their token. An operator placing an
    /// order for a customer may name one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    pub sku: String,
    /// Signed so that a negative quantity is a validation error, not a parse error.
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    /// The payment provider's card token (`tok_visa`, `tok_chargeDeclined`, …).
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippingAddress {
    pub name: String,
    pub line1: String,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    pub country: String,
}

/// The body of `202 Accepted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAccepted {
    pub order_id: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoneyView {
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339.
    pub at: String,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub order_id: String,
    pub customer_id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    pub items: Vec<OrderLine>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub total: Option<MoneyView>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tracking_id: Option<String>,
    /// The trace the order was placed in (W3C trace id, 32 hex digits), when
    /// the services export traces.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trace_id: Option<String>,
    pub history: Vec<HistoryEntry>,
}

/// One order in a list across customers (`GET /v1/orders`) and in a
/// status change (`GET /v1/orders/stream`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    pub order_id: String,
    pub customer_id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub total: Option<MoneyView>,
    /// RFC 3339.
    pub placed_at: String,
    /// RFC 3339, milliseconds: when the order last changed (in a list), or
    /// when it took this status (in a change).
    pub changed_at: String,
}

/// The newest orders, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrdersList {
    pub orders: Vec<OrderSummary>,
}

/// Status changes in the order they were made (the order service's feed
/// behind `GET /v1/orders/stream`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderChanges {
    pub changes: Vec<OrderSummary>,
}

/// Orders by status, cancellations by reason, and orders placed per second
/// over the last minute (`GET /v1/orders/summary`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrdersOverview {
    pub counts: std::collections::BTreeMap<String, i64>,
    pub cancelled: std::collections::BTreeMap<String, i64>,
    /// 60 counts, oldest first; the last is the current second.
    pub placed_per_second: Vec<i64>,
    /// RFC 3339.
    pub as_of: String,
}

/// Every SKU's stock (`GET /v1/inventory`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockList {
    pub items: Vec<StockView>,
}

/// One order in a customer's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerOrderView {
    pub order_id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub total: Option<MoneyView>,
    /// RFC 3339.
    pub placed_at: String,
}

/// A page of a customer's orders, newest first; `next_cursor` fetches the
/// next (older) page, and is absent on the last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerOrdersPage {
    pub orders: Vec<CustomerOrderView>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockView {
    pub sku: String,
    pub available: i64,
    pub reserved: i64,
    pub unit_price: MoneyView,
}

/// The body of `PUT /v1/inventory/{sku}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetStock {
    pub available: i64,
    pub unit_price: MoneyView,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationView {
    pub notification_id: String,
    pub order_id: String,
    pub kind: String,
    pub channel: String,
    pub message: String,
    pub sent_at: String,
}

/// A payment as the payment service records it (an operator's view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentView {
    pub order_id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payment_id: Option<String>,
    pub amount: MoneyView,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// Charges the provider made for this order; more than one would be a double charge.
    pub provider_charges: u32,
    pub provider_refunds: u32,
}

/// An unknown SKU in an order.
pub fn unknown_sku(sku: &str) -> Problem {
    Problem::new(
        ProblemType::UnknownSku,
        format!("SKU {sku} is not in the catalogue"),
    )
}

/// The demo catalogue the dev stack and the tests start with: SKU-001 to
/// SKU-010, 100 units each, priced 9.99 EUR to 99.90 EUR.
pub fn demo_catalogue() -> Vec<(String, SetStock)> {
    (1..=10)
        .map(|i: i64| {
            let sku = format!("SKU-{i:03}");
            let price = MoneyView {
                amount_minor: 999 * i,
                currency: "EUR".into(),
            };
            (
                sku,
                SetStock {
                    available: 100,
                    unit_price: price,
                },
            )
        })
        .collect()
}

/// Whether nothing more happens to an order with this status by itself:
/// SHIPPED, CANCELLED, or REFUND_PENDING (which waits for an operator).
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "SHIPPED" | "CANCELLED" | "REFUND_PENDING")
}

/// Throughput and placed→terminal latency of a set of terminal orders, read
/// from their histories (first event to last), so how often a client polled
/// does not distort it.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaStats {
    pub orders: usize,
    /// Orders per status (and reason), e.g. `SHIPPED`, `CANCELLED(OUT_OF_STOCK)`.
    pub outcomes: std::collections::BTreeMap<String, usize>,
    /// First placement to last terminal event, in milliseconds.
    pub span_ms: i64,
    pub p50_ms: i64,
    pub p90_ms: i64,
    pub p99_ms: i64,
    pub max_ms: i64,
}

impl SagaStats {
    pub fn of(orders: &[OrderView]) -> Self {
        let at = |s: &str| chrono_millis(s);
        let mut outcomes = std::collections::BTreeMap::new();
        let mut latencies = Vec::with_capacity(orders.len());
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        for order in orders {
            let reason = order
                .reason
                .as_ref()
                .map(|r| format!("({r})"))
                .unwrap_or_default();
            *outcomes
                .entry(format!("{}{reason}", order.status))
                .or_default() += 1;
            let times: Vec<i64> = order.history.iter().filter_map(|h| at(&h.at)).collect();
            if let (Some(placed), Some(terminal)) = (times.iter().min(), times.iter().max()) {
                latencies.push(terminal - placed);
                first = first.min(*placed);
                last = last.max(*terminal);
            }
        }
        latencies.sort_unstable();
        let pct = |p: f64| {
            if latencies.is_empty() {
                return 0;
            }
            latencies[((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1]
        };
        Self {
            orders: orders.len(),
            outcomes,
            span_ms: (last - first).max(1),
            p50_ms: pct(0.50),
            p90_ms: pct(0.90),
            p99_ms: pct(0.99),
            max_ms: latencies.last().copied().unwrap_or_default(),
        }
    }

    pub fn per_second(&self) -> f64 {
        self.orders as f64 * 1000.0 / self.span_ms as f64
    }
}

impl std::fmt::Display for SagaStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "outcomes: {:?}", self.outcomes)?;
        writeln!(
            f,
            "throughput: {:.1} orders/s ({} orders, first placed → last terminal {:.2}s)",
            self.per_second(),
            self.orders,
            self.span_ms as f64 / 1000.0
        )?;
        write!(
            f,
            "placed→terminal latency ms: p50 {} p90 {} p99 {} max {}",
            self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms
        )
    }
}

/// Milliseconds since the epoch of an RFC 3339 time (the history's format).
fn chrono_millis(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}
