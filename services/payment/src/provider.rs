//! The payment provider behind a trait. The built-in sandbox follows the
//! card-provider test-token convention (`tok_visa` succeeds,
//! `tok_chargeDeclined` is declined) and, like real providers, makes at most
//! one charge per idempotency key, so a redelivered event cannot charge
//! twice. Its ledger lives in the payment service's database, so a payment
//! process killed between a charge and its record finds the charge there.
//!
//! Deterministic triggers for demos and tests: `tok_flaky` times out on the
//! first three calls for an order and then succeeds; `tok_unavailable`
//! always times out; `tok_refundDeclined` charges, but refuses the refund. A timeout is the provider not answering: the call
//! waits until the caller's timeout ends it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orderflow_envelope::Money;
use orderflow_runtime::group_commit::{Failed, GroupCommit, Tx, Work};
use orderflow_runtime::resilience::Retryable;
use orderflow_runtime::sql;
use orderflow_runtime::sql::Reader;
use orderflow_runtime::sqlx;
use rand::Rng;

use crate::domain;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Charged {
        payment_id: String,
    },
    Declined {
        reason: String,
    },
    /// Nothing was charged under the key, and nothing will be: the provider
    /// closed it ([`PaymentProvider::close_charge`]).
    NotCharged,
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
    /// Ends the charge under `idempotency_key` whatever became of it: what
    /// was charged or declined under the key, or, when nothing was, closes
    /// the key so that no request under it charges later (a request still in
    /// flight included), and answers [`ChargeOutcome::NotCharged`]. Asked when
    /// the answer to a charge never came, before the saga decides (card
    /// providers offer this as a lookup by idempotency key, or a "technical
    /// cancel" by the merchant's reference).
    async fn close_charge(&self, idempotency_key: &str) -> Result<ChargeOutcome, ProviderError>;
    /// Refunds a charge; the same `idempotency_key` never refunds twice.
    /// Refused once the key was closed ([`PaymentProvider::close_refund`]).
    async fn refund(
        &self,
        idempotency_key: &str,
        payment_id: &str,
        amount: &Money,
    ) -> Result<(), ProviderError>;
    /// Ends the refund under `idempotency_key` whatever became of it: true
    /// when it was made; false when nothing was refunded, after closing the
    /// key so that no request under it refunds later. Asked when the answer
    /// to a refund never came, before the saga decides.
    async fn close_refund(&self, idempotency_key: &str) -> Result<bool, ProviderError>;
    /// How many charges and refunds the provider made for this order.
    async fn ledger(&self, order_id: &str) -> Result<(u32, u32), ProviderError>;
    /// The same for every order the provider knows with an id after `after`
    /// and, given `through`, not after it: what a reconciliation reads from
    /// a provider's settlement report.
    async fn ledgers(&self, after: &str, through: Option<&str>) -> Result<Ledgers, ProviderError>;
}

/// Charges and refunds made, by order id.
pub type Ledgers = BTreeMap<String, (u32, u32)>;

/// The sandbox's behaviour, changeable while it runs (`PUT /v1/sandbox`).
#[derive(Debug, Default)]
pub struct Weather {
    latency_ms: AtomicU64,
    /// Failure rate in millionths.
    failure_ppm: AtomicU64,
}

impl Weather {
    pub fn new(latency: Duration, failure_rate: f64) -> Self {
        let w = Self::default();
        w.set(latency, failure_rate);
        w
    }

    pub fn set(&self, latency: Duration, failure_rate: f64) {
        self.latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
        self.failure_ppm.store(
            (failure_rate.clamp(0.0, 1.0) * 1e6) as u64,
            Ordering::Relaxed,
        );
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::Relaxed))
    }

    pub fn failure_rate(&self) -> f64 {
        self.failure_ppm.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// The built-in sandbox provider.
pub struct SandboxProvider {
    pub weather: Arc<Weather>,
    ledger: GroupCommit<LedgerEntry>,
    reader: Reader,
    /// Calls per `tok_flaky` order so far (per process, like any sandbox state).
    flaky_calls: Mutex<HashMap<String, u32>>,
}

impl SandboxProvider {
    pub fn new(weather: Arc<Weather>, ledger: GroupCommit<LedgerEntry>, reader: Reader) -> Self {
        Self {
            weather,
            ledger,
            reader,
            flaky_calls: Mutex::new(HashMap::new()),
        }
    }

    /// The sandbox's weather for one call: its latency, no answer at all
    /// when `times_out`, or an injected transient failure.
    async fn weather(&self, times_out: bool) -> Result<(), ProviderError> {
        let latency = self.weather.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if times_out {
            // No answer: the caller's timeout ends the call.
            std::future::pending::<()>().await;
        }
        let rate = self.weather.failure_rate();
        if rate > 0.0 && rand::rng().random_bool(rate) {
            return Err(ProviderError::Unavailable(
                "sandbox injected failure".into(),
            ));
        }
        Ok(())
    }

    /// Which call under `idempotency_key` this is (from 1). Only the flaky
    /// token's answer depends on it: only its calls are counted (a map
    /// entry per charge would only grow).
    fn call_number(&self, idempotency_key: &str, token: &str) -> u32 {
        if token != domain::FLAKY_TOKEN {
            return 1;
        }
        let mut calls = self.flaky_calls.lock().expect("sandbox lock");
        let n = calls.entry(idempotency_key.to_string()).or_default();
        *n += 1;
        *n
    }

    async fn write(&self, entry: LedgerEntry) -> Result<LedgerEntry, ProviderError> {
        match self.ledger.run(entry).await {
            (Some(entry), Ok(())) => Ok(entry),
            (_, Err(e)) => Err(ProviderError::Unavailable(format!("sandbox ledger: {e}"))),
            (None, Ok(())) => Err(ProviderError::Unavailable("sandbox ledger stopped".into())),
        }
    }
}

#[async_trait]
impl PaymentProvider for SandboxProvider {
    async fn charge(
        &self,
        idempotency_key: &str,
        token: &str,
        amount: &Money,
    ) -> Result<ChargeOutcome, ProviderError> {
        let call = self.call_number(idempotency_key, token);
        self.weather(domain::sandbox_times_out(token, call)).await?;
        if amount.amount_minor <= 0 {
            return Err(ProviderError::Invalid(format!(
                "amount must be positive, got {}",
                amount.amount_minor
            )));
        }
        let outcome = if domain::sandbox_declines(token) {
            ChargeOutcome::Declined {
                reason: "card_declined".into(),
            }
        } else {
            ChargeOutcome::Charged {
                payment_id: format!("pay_{}", uuid::Uuid::now_v7().simple()),
            }
        };
        let entry = self
            .write(LedgerEntry::charge(idempotency_key, token, amount, outcome))
            .await?;
        if domain::sandbox_loses_answer(token) {
            // Charged, and the reply is lost: the caller's timeout ends the call.
            std::future::pending::<()>().await;
        }
        Ok(entry.recorded.expect("a written charge has its outcome"))
    }

    async fn close_charge(&self, idempotency_key: &str) -> Result<ChargeOutcome, ProviderError> {
        self.weather(false).await?;
        let entry = self.write(LedgerEntry::close(idempotency_key)).await?;
        Ok(entry.recorded.expect("a written charge has its outcome"))
    }

    async fn refund(
        &self,
        idempotency_key: &str,
        payment_id: &str,
        amount: &Money,
    ) -> Result<(), ProviderError> {
        let token: Option<String> =
            sql::query("SELECT token FROM sandbox_charges WHERE payment_id = $1")
                .bind(payment_id)
                .fetch_optional(&self.reader)
                .await
                .and_then(|r| r.map(|r| r.try_get("token")).transpose())
                .map_err(|e| ProviderError::Unavailable(format!("sandbox ledger: {e}")))?;
        self.weather(
            token
                .as_deref()
                .is_some_and(domain::sandbox_refund_times_out),
        )
        .await?;
        if token.as_deref().is_some_and(domain::sandbox_refuses_refund) {
            return Err(ProviderError::Invalid(format!(
                "refund of {payment_id} declined"
            )));
        }
        let entry = self
            .write(LedgerEntry::refund(idempotency_key, payment_id, amount))
            .await?;
        if entry.refunded != Some(true) {
            return Err(ProviderError::Invalid(format!(
                "refund {idempotency_key} was closed without a refund"
            )));
        }
        if token
            .as_deref()
            .is_some_and(domain::sandbox_loses_refund_answer)
        {
            // Refunded, and the reply is lost: the caller's timeout ends the call.
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn close_refund(&self, idempotency_key: &str) -> Result<bool, ProviderError> {
        self.weather(false).await?;
        let entry = self
            .write(LedgerEntry::refund(idempotency_key, "", &Money::new(0, "")))
            .await?;
        Ok(entry.refunded == Some(true))
    }

    async fn ledger(&self, order_id: &str) -> Result<(u32, u32), ProviderError> {
        let prefix = format!("{order_id}/%");
        let count = |(table, made): (&str, &str)| {
            let statement = format!(
                "SELECT COUNT(*) AS n FROM {table} WHERE idempotency_key LIKE $1 AND {made}"
            );
            let prefix = prefix.clone();
            async move {
                sql::query(&statement)
                    .bind(prefix)
                    .fetch_one(&self.reader)
                    .await
                    .and_then(|r| r.try_get::<i64, _>("n"))
                    .map(|n| n as u32)
                    .map_err(|e| ProviderError::Unavailable(format!("sandbox ledger: {e}")))
            }
        };
        let [charges, refunds] = MADE;
        Ok((count(charges).await?, count(refunds).await?))
    }

    async fn ledgers(&self, after: &str, through: Option<&str>) -> Result<Ledgers, ProviderError> {
        // Keys are `{order_id}/charge` and `{order_id}/refund`; order ids
        // are 36-character UUIDs.
        let mut ledgers = Ledgers::new();
        for ((table, made), refund) in MADE.into_iter().zip([false, true]) {
            let statement = format!(
                "SELECT substr(idempotency_key, 1, 36) AS order_id, COUNT(*) AS n FROM {table}
                 WHERE {made} AND substr(idempotency_key, 1, 36) > $1 AND substr(idempotency_key, 1, 36) <= $2
                 GROUP BY substr(idempotency_key, 1, 36)"
            );
            let rows = sql::query(&statement)
                .bind(after)
                // Above every UUID.
                .bind(through.unwrap_or("g"))
                .fetch_all(&self.reader)
                .await
                .map_err(|e| ProviderError::Unavailable(format!("sandbox ledger: {e}")))?;
            for r in rows {
                let (order_id, n): (String, i64) = r
                    .try_get("order_id")
                    .and_then(|id| Ok((id, r.try_get("n")?)))
                    .map_err(|e| ProviderError::Unavailable(format!("sandbox ledger: {e}")))?;
                let entry = ledgers.entry(order_id).or_default();
                let count = u32::try_from(n).unwrap_or(u32::MAX);
                if refund {
                    entry.1 = count;
                } else {
                    entry.0 = count;
                }
            }
        }
        Ok(ledgers)
    }
}

/// The sandbox ledger's tables of charges and refunds, each with what
/// makes a row one that was made: a declined charge holds no payment, and a
/// key closed without a refund holds a row with an empty one.
const MADE: [(&str, &str); 2] = [
    ("sandbox_charges", "payment_id IS NOT NULL"),
    ("sandbox_refunds", "payment_id <> ''"),
];

/// One write to the sandbox's ledger: a charge or a refund, once per key.
pub struct LedgerEntry {
    key: String,
    kind: LedgerKind,
    amount: Money,
    /// The charge's outcome as the ledger holds it (the first one under the key).
    recorded: Option<ChargeOutcome>,
    /// Whether the ledger holds a refund under the key (and not a closed key).
    refunded: Option<bool>,
}

enum LedgerKind {
    Charge {
        token: String,
        outcome: ChargeOutcome,
    },
    Refund {
        payment_id: String,
    },
}

impl LedgerEntry {
    fn charge(key: &str, token: &str, amount: &Money, outcome: ChargeOutcome) -> Self {
        Self {
            key: key.to_string(),
            kind: LedgerKind::Charge {
                token: token.to_string(),
                outcome,
            },
            amount: amount.clone(),
            recorded: None,
            refunded: None,
        }
    }

    /// Closes the key: a row that charges nothing, unless a charge is there.
    fn close(key: &str) -> Self {
        Self {
            key: key.to_string(),
            kind: LedgerKind::Charge {
                token: String::new(),
                outcome: ChargeOutcome::NotCharged,
            },
            amount: Money::new(0, ""),
            recorded: None,
            refunded: None,
        }
    }

    /// A refund of `payment_id`; with no payment, it closes the key.
    fn refund(key: &str, payment_id: &str, amount: &Money) -> Self {
        Self {
            key: key.to_string(),
            kind: LedgerKind::Refund {
                payment_id: payment_id.to_string(),
            },
            amount: amount.clone(),
            recorded: None,
            refunded: None,
        }
    }

    async fn apply_one(&mut self, tx: &mut Tx<'_>) -> Result<(), sqlx::Error> {
        let now = orderflow_runtime::now_millis();
        match &self.kind {
            LedgerKind::Charge { token, outcome } => {
                let (payment_id, reason) = match outcome {
                    ChargeOutcome::Charged { payment_id } => (Some(payment_id.as_str()), None),
                    ChargeOutcome::Declined { reason } => (None, Some(reason.as_str())),
                    ChargeOutcome::NotCharged => (None, None),
                };
                sql::query(
                    "INSERT INTO sandbox_charges (idempotency_key, token, amount_minor, currency, payment_id, decline_reason, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING",
                )
                .bind(&self.key)
                .bind(token)
                .bind(self.amount.amount_minor)
                .bind(&self.amount.currency)
                .bind(payment_id)
                .bind(reason)
                .bind(now)
                .execute(&mut *tx.conn)
                .await?;
                let row = sql::query(
                    "SELECT payment_id, decline_reason FROM sandbox_charges WHERE idempotency_key = $1",
                )
                .bind(&self.key)
                .fetch_one(&mut *tx.conn)
                .await?;
                let payment_id: Option<String> = row.try_get("payment_id")?;
                let reason: Option<String> = row.try_get("decline_reason")?;
                self.recorded = Some(match (payment_id, reason) {
                    (Some(payment_id), _) => ChargeOutcome::Charged { payment_id },
                    (None, Some(reason)) => ChargeOutcome::Declined { reason },
                    // Closed before any charge came: none ever will.
                    (None, None) => ChargeOutcome::NotCharged,
                });
            }
            LedgerKind::Refund { payment_id } => {
                sql::query(
                    "INSERT INTO sandbox_refunds (idempotency_key, payment_id, amount_minor, currency, created_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (idempotency_key) DO NOTHING",
                )
                .bind(&self.key)
                .bind(payment_id)
                .bind(self.amount.amount_minor)
                .bind(&self.amount.currency)
                .bind(now)
                .execute(&mut *tx.conn)
                .await?;
                let held: String =
                    sql::query("SELECT payment_id FROM sandbox_refunds WHERE idempotency_key = $1")
                        .bind(&self.key)
                        .fetch_one(&mut *tx.conn)
                        .await?
                        .try_get("payment_id")?;
                self.refunded = Some(!held.is_empty());
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Work for LedgerEntry {
    type Context = ();

    async fn apply(_: &(), items: &mut [Self], tx: &mut Tx<'_>) -> Result<(), Failed> {
        for (i, item) in items.iter_mut().enumerate() {
            item.recorded = None;
            item.refunded = None;
            item.apply_one(tx).await.map_err(|e| Failed::at(i, e))?;
        }
        Ok(())
    }
}
