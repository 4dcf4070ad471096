//! The world outside orderflow, simulated: the schema registry, the card
//! provider and the mail server. The provider keeps a ledger by
//! idempotency key, as real ones do, and a call to it or to the mail server
//! can fail before it acts, or act and lose its answer — decided by the
//! run's seeded dice, so a seed replays the same answers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use orderflow_envelope::{Money, RegistryError, SchemaRegistry};
use orderflow_notification::channel::{Channel, ChannelError};
use orderflow_notification::domain::Notification;
use orderflow_payment::provider::{ChargeOutcome, Ledgers, PaymentProvider, ProviderError};

use crate::dice::Dice;

/// Schemas by id, in memory.
#[derive(Default)]
pub struct Registry {
    schemas: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl SchemaRegistry for Registry {
    async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let mut schemas = self.schemas.lock().expect("registry lock");
        if let Some(i) = schemas
            .iter()
            .position(|(s, v)| s == subject && v == schema)
        {
            return Ok(i as u32 + 1);
        }
        schemas.push((subject.to_string(), schema.to_string()));
        Ok(schemas.len() as u32)
    }

    async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        let schemas = self.schemas.lock().expect("registry lock");
        schemas
            .get((id as usize).wrapping_sub(1))
            .map(|(_, schema)| schema.clone())
            .ok_or(RegistryError::UnknownId(id))
    }
}

/// How a call to the outside goes this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Acts,
    /// Fails before acting (down, refused at the door).
    FailsBefore,
    /// Acts, and the answer never arrives (a timeout after success).
    LostAfter,
}

/// One call to the outside: the dice say (and the trace records) whether it
/// fails before `act`, or runs it and then loses the answer (`fail` makes
/// the caller's error either way); an error of `act` itself is its answer.
fn through<T, E>(
    dice: &Dice,
    what: &str,
    fail: impl Fn(Answer) -> E,
    act: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let answer = dice.outside();
    if answer != Answer::Acts {
        dice.note(format!("  outside: {what} -> {answer:?}"));
    }
    if answer == Answer::FailsBefore {
        return Err(fail(answer));
    }
    let value = act()?;
    if answer == Answer::LostAfter {
        return Err(fail(answer));
    }
    Ok(value)
}

fn unavailable(answer: Answer) -> ProviderError {
    ProviderError::Unavailable(format!("simulated: {answer:?}"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Charge {
    Made(String),
    Declined(String),
    Closed,
}

#[derive(Default)]
struct Ledger {
    charges: HashMap<String, Charge>,
    /// Refund key → made (true) or closed unmade (false).
    refunds: HashMap<String, bool>,
}

/// A card provider with idempotency keys: `tok_chargeDeclined` is declined.
pub struct Provider {
    dice: Arc<Dice>,
    ledger: Mutex<Ledger>,
}

impl Provider {
    pub fn new(dice: Arc<Dice>) -> Self {
        Self {
            dice,
            ledger: Mutex::new(Ledger::default()),
        }
    }

    /// Charges and refunds made per order (keys are `<order>/charge`, `<order>/refund`).
    pub fn made(&self) -> BTreeMap<String, (u32, u32)> {
        let ledger = self.ledger.lock().expect("ledger lock");
        let mut made: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        for (key, charge) in &ledger.charges {
            if matches!(charge, Charge::Made(_)) {
                made.entry(order_of(key)).or_default().0 += 1;
            }
        }
        for (key, refunded) in &ledger.refunds {
            if *refunded {
                made.entry(order_of(key)).or_default().1 += 1;
            }
        }
        made
    }
}

fn order_of(key: &str) -> String {
    key.rsplit_once('/')
        .map_or(key, |(order, _)| order)
        .to_string()
}

impl Provider {
    /// A request to the provider, acting on its ledger.
    fn request<T>(
        &self,
        what: &str,
        act: impl FnOnce(&mut Ledger) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        through(&self.dice, what, unavailable, || {
            act(&mut self.ledger.lock().expect("ledger lock"))
        })
    }
}

#[async_trait]
impl PaymentProvider for Provider {
    async fn charge(
        &self,
        idempotency_key: &str,
        token: &str,
        _amount: &Money,
    ) -> Result<ChargeOutcome, ProviderError> {
        self.request(&format!("charge {idempotency_key}"), |ledger| {
            let charge = ledger
                .charges
                .entry(idempotency_key.to_string())
                .or_insert_with(|| {
                    if token == "tok_chargeDeclined" {
                        Charge::Declined("card declined".into())
                    } else {
                        Charge::Made(format!("pay-{idempotency_key}"))
                    }
                });
            Ok(outcome(charge))
        })
    }

    async fn close_charge(&self, idempotency_key: &str) -> Result<ChargeOutcome, ProviderError> {
        self.request(&format!("close charge {idempotency_key}"), |ledger| {
            let charge = ledger
                .charges
                .entry(idempotency_key.to_string())
                .or_insert(Charge::Closed);
            Ok(outcome(charge))
        })
    }

    async fn refund(
        &self,
        idempotency_key: &str,
        _payment_id: &str,
        _amount: &Money,
    ) -> Result<(), ProviderError> {
        self.request(&format!("refund {idempotency_key}"), |ledger| {
            let made = *ledger
                .refunds
                .entry(idempotency_key.to_string())
                .or_insert(true);
            if made {
                Ok(())
            } else {
                Err(ProviderError::Invalid(format!(
                    "refund {idempotency_key} was closed without a refund"
                )))
            }
        })
    }

    async fn close_refund(&self, idempotency_key: &str) -> Result<bool, ProviderError> {
        self.request(&format!("close refund {idempotency_key}"), |ledger| {
            Ok(*ledger
                .refunds
                .entry(idempotency_key.to_string())
                .or_insert(false))
        })
    }

    async fn ledger(&self, order_id: &str) -> Result<(u32, u32), ProviderError> {
        Ok(self.made().get(order_id).copied().unwrap_or_default())
    }

    async fn ledgers(&self, after: &str, through: Option<&str>) -> Result<Ledgers, ProviderError> {
        let mut made = self.made();
        made.retain(|order, _| {
            order.as_str() > after && through.is_none_or(|t| order.as_str() <= t)
        });
        Ok(made)
    }
}

fn outcome(charge: &Charge) -> ChargeOutcome {
    match charge {
        Charge::Made(payment_id) => ChargeOutcome::Charged {
            payment_id: payment_id.clone(),
        },
        Charge::Declined(reason) => ChargeOutcome::Declined {
            reason: reason.clone(),
        },
        Charge::Closed => ChargeOutcome::NotCharged,
    }
}

/// A mail server: what it accepted, by Message-ID (the notification id),
/// as a receiver that drops a message it already has.
pub struct Mailbox {
    dice: Arc<Dice>,
    /// Notification id → (order, kind).
    received: Mutex<BTreeMap<String, (String, String)>>,
}

impl Mailbox {
    pub fn new(dice: Arc<Dice>) -> Self {
        Self {
            dice,
            received: Mutex::new(BTreeMap::new()),
        }
    }

    /// The kinds of message each order's customer got.
    pub fn kinds(&self) -> BTreeMap<String, Vec<String>> {
        let mut kinds: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (order, kind) in self.received.lock().expect("mailbox lock").values() {
            kinds.entry(order.clone()).or_default().push(kind.clone());
        }
        kinds
    }
}

#[async_trait]
impl Channel for Mailbox {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn needs_address(&self) -> bool {
        true
    }

    async fn send(&self, n: &Notification) -> Result<(), ChannelError> {
        let what = format!("mail {} {}", n.order_id, n.kind);
        let fail = |answer| ChannelError::Unavailable(format!("simulated: {answer:?}"));
        through(&self.dice, &what, fail, || {
            if n.email.is_none() {
                return Err(ChannelError::Refused("no address".into()));
            }
            self.received.lock().expect("mailbox lock").insert(
                n.notification_id.clone(),
                (n.order_id.clone(), n.kind.to_string()),
            );
            Ok(())
        })
    }
}
