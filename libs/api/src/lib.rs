//! The public HTTP API (v1): request and response bodies and their validation,
//! shared by the gateway and the services behind it so both read and check a
//! body the same way.

mod client;

pub use client::{ClientError, GatewayClient};

use orderflow_http::{Problem, ProblemType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Most units of one SKU a single order line may ask for.
pub const MAX_QUANTITY: i64 = 1_000;
/// Most lines an order may have.
pub const MAX_LINES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    pub customer_id: String,
    pub items: Vec<OrderLine>,
    pub payment: Payment,
    pub shipping_address: ShippingAddress,
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

impl PlaceOrder {
    /// Checks what the JSON shape cannot: non-empty fields, sane quantities.
    pub fn validate(&self) -> Result<(), Problem> {
        let mut errors = Vec::new();
        if self.customer_id.trim().is_empty() {
            errors.push("customer_id must not be empty".to_string());
        }
        if self.items.is_empty() {
            errors.push("items must name at least one SKU".to_string());
        }
        if self.items.len() > MAX_LINES {
            errors.push(format!("items may have at most {MAX_LINES} lines"));
        }
        for (i, line) in self.items.iter().enumerate() {
            if line.sku.trim().is_empty() {
                errors.push(format!("items[{i}].sku must not be empty"));
            }
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                errors.push(format!(
                    "items[{i}].quantity must be between 1 and {MAX_QUANTITY}, got {}",
                    line.quantity
                ));
            }
        }
        if self.payment.token.trim().is_empty() {
            errors.push("payment.token must not be empty".to_string());
        }
        let a = &self.shipping_address;
        for (field, value) in [
            ("name", &a.name),
            ("line1", &a.line1),
            ("city", &a.city),
            ("postal_code", &a.postal_code),
        ] {
            if value.trim().is_empty() {
                errors.push(format!("shipping_address.{field} must not be empty"));
            }
        }
        if a.country.len() != 2 || !a.country.chars().all(|c| c.is_ascii_uppercase()) {
            errors.push(format!(
                "shipping_address.country must be an ISO 3166-1 alpha-2 code like DE, got {:?}",
                a.country
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::validation(errors.join("; ")))
        }
    }

    /// A fingerprint of the request, to tell an `Idempotency-Key` replay from a
    /// reuse of the key with another body.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("a request serializes");
        hex::encode(Sha256::digest(canonical))
    }
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
    pub history: Vec<HistoryEntry>,
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

impl SetStock {
    pub fn validate(&self) -> Result<(), Problem> {
        let mut errors = Vec::new();
        if self.available < 0 {
            errors.push(format!(
                "available must not be negative, got {}",
                self.available
            ));
        }
        if self.unit_price.amount_minor < 1 {
            // Payment providers refuse zero charges; orderflow sells nothing for free.
            errors.push("unit_price.amount_minor must be at least 1".to_string());
        }
        let c = &self.unit_price.currency;
        if c.len() != 3 || !c.chars().all(|c| c.is_ascii_uppercase()) {
            errors.push(format!(
                "unit_price.currency must be an ISO 4217 code like EUR, got {c:?}"
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::validation(errors.join("; ")))
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> PlaceOrder {
        serde_json::from_str(
            r#"{"customer_id": "c-42", "items": [{"sku": "SKU-001", "quantity": 2}],
                "payment": {"token": "tok_visa"},
                "shipping_address": {"name": "Ada", "line1": "1 Main St", "city": "Berlin",
                                     "postal_code": "10115", "country": "DE"}}"#,
        )
        .unwrap()
    }

    #[test]
    fn the_documented_example_is_valid() {
        assert_eq!(order().validate(), Ok(()));
    }

    #[test]
    fn bad_quantities_and_empty_orders_are_rejected_with_every_reason() {
        let mut o = order();
        o.items.push(OrderLine {
            sku: "SKU-002".into(),
            quantity: 0,
        });
        o.items.push(OrderLine {
            sku: "SKU-003".into(),
            quantity: -1,
        });
        let detail = o.validate().unwrap_err().detail.unwrap();
        assert!(
            detail.contains("items[1].quantity") && detail.contains("items[2].quantity"),
            "{detail}"
        );
        o.items.clear();
        assert!(o
            .validate()
            .unwrap_err()
            .detail
            .unwrap()
            .contains("at least one"));
    }

    #[test]
    fn unknown_fields_do_not_parse() {
        let err = serde_json::from_str::<PlaceOrder>(
            r#"{"customer_id": "c", "items": [], "payment": {"token": "t"}, "coupon": "FREE",
                "shipping_address": {"name": "A", "line1": "1", "city": "B", "postal_code": "1", "country": "DE"}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `coupon`"), "{err}");
    }

    #[test]
    fn the_fingerprint_tells_bodies_apart() {
        let mut other = order();
        other.items[0].quantity = 3;
        assert_eq!(order().fingerprint(), order().fingerprint());
        assert_ne!(order().fingerprint(), other.fingerprint());
    }
}
