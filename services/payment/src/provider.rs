//! The payment provider behind a trait. The built-in sandbox follows the
//! card-provider test-token convention (`tok_visa` succeeds,
//! `tok_chargeDeclined` is declined) and, like real providers, makes at most
//! one charge per idempotency key, so a redelivered event cannot charge twice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use orderflow_envelope::Money;
use orderflow_runtime::resilience::Retryable;
use rand::Rng;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Charged { payment_id: String },
    Declined { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    #[error("payment provider refused the request: {0}")]
    Invalid(String),
}

impl Retryable for ProviderError {
    fn is_retryable(&self) -> bool {
        matches!(self, ProviderError::Unavailable(_))
    }
}

#[async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// Charges `amount` to `token`; the same `idempotency_key` never charges twice.
    async fn charge(
        &self,
        idempotency_key: &str,
        token: &str,
        amount: &Money,
    ) -> Result<ChargeOutcome, ProviderError>;
    /// Refunds a charge; the same `idempotency_key` never refunds twice.
    async fn refund(
        &self,
        idempotency_key: &str,
        payment_id: &str,
        amount: &Money,
    ) -> Result<(), ProviderError>;
    /// How many charges and refunds the provider made under this key's order.
    fn ledger(&self, order_id: &str) -> (u32, u32);
}

/// The built-in sandbox provider.
pub struct SandboxProvider {
    latency: Duration,
    failure_rate: f64,
    charges: Mutex<HashMap<String, ChargeOutcome>>,
    refunds: Mutex<HashMap<String, String>>,
}

impl SandboxProvider {
    pub fn new(latency: Duration, failure_rate: f64) -> Self {
        Self {
            latency,
            failure_rate,
            charges: Default::default(),
            refunds: Default::default(),
        }
    }

    async fn weather(&self) -> Result<(), ProviderError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if self.failure_rate > 0.0 && rand::rng().random_bool(self.failure_rate) {
            return Err(ProviderError::Unavailable(
                "sandbox injected failure".into(),
            ));
        }
        Ok(())
    }
}

pub const DECLINED_TOKEN: &str = "tok_chargeDeclined";

#[async_trait]
impl PaymentProvider for SandboxProvider {
    async fn charge(
        &self,
        idempotency_key: &str,
        token: &str,
        amount: &Money,
    ) -> Result<ChargeOutcome, ProviderError> {
        self.weather().await?;
        if amount.amount_minor <= 0 {
            return Err(ProviderError::Invalid(format!(
                "amount must be positive, got {}",
                amount.amount_minor
            )));
        }
        let mut charges = self.charges.lock().expect("sandbox lock");
        let outcome = charges
            .entry(idempotency_key.to_string())
            .or_insert_with(|| {
                if token == DECLINED_TOKEN {
                    ChargeOutcome::Declined {
                        reason: "card_declined".into(),
                    }
                } else {
                    ChargeOutcome::Charged {
                        payment_id: format!("pay_{}", uuid::Uuid::now_v7().simple()),
                    }
                }
            });
        Ok(outcome.clone())
    }

    async fn refund(
        &self,
        idempotency_key: &str,
        payment_id: &str,
        _amount: &Money,
    ) -> Result<(), ProviderError> {
        self.weather().await?;
        self.refunds
            .lock()
            .expect("sandbox lock")
            .entry(idempotency_key.to_string())
            .or_insert(payment_id.to_string());
        Ok(())
    }

    fn ledger(&self, order_id: &str) -> (u32, u32) {
        let charges = self
            .charges
            .lock()
            .expect("sandbox lock")
            .iter()
            .filter(|(k, v)| {
                k.starts_with(&format!("{order_id}/")) && matches!(v, ChargeOutcome::Charged { .. })
            })
            .count();
        let refunds = self
            .refunds
            .lock()
            .expect("sandbox lock")
            .keys()
            .filter(|k| k.starts_with(&format!("{order_id}/")))
            .count();
        (charges as u32, refunds as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_key_charges_once() {
        let sandbox = SandboxProvider::new(Duration::ZERO, 0.0);
        let eur = Money::new(100, "EUR");
        let first = sandbox
            .charge("o-1/charge", "tok_visa", &eur)
            .await
            .unwrap();
        let again = sandbox
            .charge("o-1/charge", "tok_visa", &eur)
            .await
            .unwrap();
        assert_eq!(first, again);
        assert_eq!(sandbox.ledger("o-1"), (1, 0));
        assert!(matches!(
            sandbox
                .charge("o-2/charge", DECLINED_TOKEN, &eur)
                .await
                .unwrap(),
            ChargeOutcome::Declined { .. }
        ));
        assert_eq!(sandbox.ledger("o-2"), (0, 0));
    }
}
