//! The order service's read model, rebuilt from the log. Domain topics keep
//! their events forever, so reading `orders` (every `OrderCreated`) and then
//! `inventory`, `payments` and `shipments` from the beginning up to where
//! they end when the rebuild starts gives back every order: items, total,
//! tracking id, history, status and reason, and each customer's order list.
//! It runs beside the live service: it reads with a consumer group of its
//! own, assigning partitions and committing nothing, and writes only to the
//! fresh database it is given.
//!
//! Derivable from the log: everything a reader of an order sees (the status
//! is derived from the set of events, as the live handler derives it).
//! Not derivable: `Idempotency-Key` claims (they come with requests, not
//! events: after a swap, a request retried within its key's day places a
//! second order); when the service processed each event (`updated_at` and
//! `terminal_at` take the events' own times instead); the status changes
//! behind `GET /v1/orders/stream` (a swapped-in database streams from the
//! swap on); and the runtime's inbox, outbox and parked keys, which a
//! swapped-in database starts empty.

use std::time::Instant;

use orderflow_envelope::{CloudEventHeaders, Codec, Event, EventType, Topic};
use orderflow_runtime::log_reader::LogError;
use orderflow_runtime::sql;
use orderflow_runtime::sql::Reader;
use orderflow_runtime::sqlx;
use orderflow_runtime::{Database, Logged};
use tokio::sync::mpsc;

use crate::domain::{derive_status, FOLLOWED};
use crate::store;

/// Where the log is: the services' own Kafka and registry settings.
pub type Source = orderflow_runtime::LogSource;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("{0} already holds orders: rebuild into a fresh database")]
    NotFresh(String),
    #[error("reading the log: {0}")]
    Log(#[from] LogError),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("writing the read model: {0}")]
    Database(#[from] sqlx::Error),
    #[error("schema registry: {0}")]
    Registry(String),
    #[error("{0}")]
    Runtime(#[from] orderflow_runtime::RuntimeError),
    #[error("the event {id} does not decode: {error}")]
    Decode { id: String, error: String },
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Rebuilt {
    /// Events read from the log.
    pub events: u64,
    /// Messages that are not orderflow events (garbage, dead letters'
    /// causes), skipped.
    pub skipped: u64,
    pub orders: u64,
    pub seconds: f64,
}

/// Events written per transaction.
const BATCH: usize = 500;

/// Rebuilds the read model into `into`, which must hold no orders yet (its
/// migrations are run). `progress` is told how many events were read.
pub async fn rebuild(
    source: &Source,
    into: &Database,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Rebuilt, RebuildError> {
    let started = Instant::now();
    into.migrate(&crate::SPEC.migrations).await?;
    let existing: i64 = sql::query("SELECT COUNT(*) AS n FROM orders")
        .fetch_one(into.reader())
        .await?
        .try_get("n")?;
    if existing > 0 {
        return Err(RebuildError::NotFresh(format!(
            "the database ({existing} orders)"
        )));
    }
    let codec = source
        .codec()
        .map_err(|e| RebuildError::Registry(e.to_string()))?;
    let mut rebuilt = Rebuilt::default();
    // Every order first, so that each later event finds its order.
    for topics in [
        vec![Topic::Orders],
        vec![Topic::Inventory, Topic::Payments, Topic::Shipments],
    ] {
        let (tx, mut rx) = mpsc::channel::<Logged>(4 * BATCH);
        let names = topics.iter().map(|t| t.name()).collect();
        let reader = source.read_to_end("order-rebuild", names, tx)?;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let logged = rx.recv().await;
            let done = logged.is_none();
            batch.extend(logged);
            if batch.len() >= BATCH || (done && !batch.is_empty()) {
                apply(into, &codec, &batch, &mut rebuilt).await?;
                batch.clear();
                progress(rebuilt.events + rebuilt.skipped);
            }
            if done {
                break;
            }
        }
        reader.await.expect("the reader does not panic")?;
    }
    rebuilt.orders = derive_statuses(into).await?;
    rebuilt.seconds = started.elapsed().as_secs_f64();
    Ok(rebuilt)
}

/// Applies a batch of the log in one transaction: orders and their history,
/// and what events add to an order (total, tracking id, payment failure).
/// A redelivered event (the same id) adds nothing.
async fn apply(
    into: &Database,
    codec: &Codec,
    batch: &[Logged],
    rebuilt: &mut Rebuilt,
) -> Result<(), RebuildError> {
    let mut tx = into.begin().await?;
    for logged in batch {
        let Ok(meta) = CloudEventHeaders::from_pairs(logged.header_pairs()) else {
            rebuilt.skipped += 1;
            continue;
        };
        let Some(event_type) = EventType::from_ce_type(&meta.event_type) else {
            rebuilt.skipped += 1;
            continue;
        };
        if event_type != EventType::OrderCreated && !FOLLOWED.contains(&event_type) {
            rebuilt.events += 1; // read, and not part of the read model
            continue;
        }
        let event = match codec.decode(Some(event_type), &logged.payload).await {
            Ok(event) => event,
            // Poison on a topic is no part of any order (the consumers
            // dead-lettered it); a registry that cannot be reached is.
            Err(e) if e.is_transient() => {
                return Err(RebuildError::Decode {
                    id: meta.id,
                    error: e.to_string(),
                })
            }
            Err(_) => {
                rebuilt.skipped += 1;
                continue;
            }
        };
        rebuilt.events += 1;
        let order_id = event.order_id().to_string();
        if let Event::OrderCreated(created) = &event {
            let items: Vec<orderflow_api::OrderLine> = created
                .items
                .iter()
                .map(|i| orderflow_api::OrderLine {
                    sku: i.sku.clone(),
                    quantity: i64::from(i.quantity),
                })
                .collect();
            store::insert_order(
                &mut tx,
                &order_id,
                &created.customer_id,
                &items,
                created.placed_at,
                meta.trace_id(),
            )
            .await?;
            store::record_history(
                &mut tx,
                &order_id,
                &meta.id,
                event_type,
                &meta.source,
                created.placed_at,
            )
            .await?;
            continue;
        }
        store::record_history(
            &mut tx,
            &order_id,
            &meta.id,
            event_type,
            &meta.source,
            meta.time.timestamp_millis(),
        )
        .await?;
        store::record_detail(&mut tx, &event).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Every order's status and reason from the events in its history, as the
/// live handler derives them; returns how many orders there are.
async fn derive_statuses(into: &Database) -> Result<u64, RebuildError> {
    let orders = sql::query("SELECT order_id, payment_failure FROM orders")
        .fetch_all(into.reader())
        .await?;
    let mut tx = into.begin().await?;
    for (i, row) in orders.iter().enumerate() {
        let order_id: String = row.try_get("order_id")?;
        let failure: Option<String> = row.try_get("payment_failure")?;
        let seen = store::seen_events(&mut tx, &order_id).await?;
        let unavailable =
            failure.as_deref() == Some(orderflow_envelope::reasons::PROVIDER_UNAVAILABLE);
        let (status, reason) = derive_status(&seen, unavailable);
        store::set_derived_status(&mut tx, &order_id, status, reason).await?;
        if (i + 1) % BATCH == 0 {
            tx.commit().await?;
            tx = into.begin().await?;
        }
    }
    tx.commit().await?;
    Ok(orders.len() as u64)
}

/// How a rebuilt read model compares with the live one.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Comparison {
    pub live_orders: usize,
    pub rebuilt_orders: usize,
    /// Orders equal in every field a reader sees, history included.
    pub equal: usize,
    /// Orders that differ, with the first difference, at most 20 of them.
    pub mismatches: Vec<String>,
    pub mismatched: usize,
    /// In the live model and not rebuilt (placed after the rebuild read the log).
    pub missing: usize,
    /// Rebuilt and not in the live model.
    pub extra: usize,
    /// Customers whose order lists differ.
    pub customer_lists_differing: usize,
}

/// Compares two read models order by order, and the customers' lists.
pub async fn compare(live: &Reader, rebuilt: &Reader) -> Result<Comparison, RebuildError> {
    let live_orders = store::all_order_views(live).await?;
    let rebuilt_orders = store::all_order_views(rebuilt).await?;
    let mut c = Comparison {
        live_orders: live_orders.len(),
        rebuilt_orders: rebuilt_orders.len(),
        ..Default::default()
    };
    for (id, live) in &live_orders {
        match rebuilt_orders.get(id) {
            None => c.missing += 1,
            Some(rebuilt) if rebuilt == live => c.equal += 1,
            Some(rebuilt) => {
                c.mismatched += 1;
                if c.mismatches.len() < 20 {
                    c.mismatches
                        .push(format!("{id}: {}", first_difference(live, rebuilt)));
                }
            }
        }
    }
    c.extra = rebuilt_orders
        .keys()
        .filter(|id| !live_orders.contains_key(*id))
        .count();
    let live_lists = store::all_customer_lists(live).await?;
    let rebuilt_lists = store::all_customer_lists(rebuilt).await?;
    c.customer_lists_differing = live_lists
        .iter()
        .filter(|(customer, list)| rebuilt_lists.get(*customer) != Some(list))
        .count()
        + rebuilt_lists
            .keys()
            .filter(|customer| !live_lists.contains_key(*customer))
            .count();
    Ok(c)
}

fn first_difference(live: &orderflow_api::OrderView, rebuilt: &orderflow_api::OrderView) -> String {
    let field = |name: &str, a: String, b: String| {
        (a != b).then(|| format!("{name} live {a}, rebuilt {b}"))
    };
    field("status", live.status.clone(), rebuilt.status.clone())
        .or_else(|| {
            field(
                "reason",
                format!("{:?}", live.reason),
                format!("{:?}", rebuilt.reason),
            )
        })
        .or_else(|| {
            field(
                "total",
                format!("{:?}", live.total),
                format!("{:?}", rebuilt.total),
            )
        })
        .or_else(|| {
            field(
                "tracking id",
                format!("{:?}", live.tracking_id),
                format!("{:?}", rebuilt.tracking_id),
            )
        })
        .or_else(|| {
            field(
                "items",
                format!("{:?}", live.items),
                format!("{:?}", rebuilt.items),
            )
        })
        .or_else(|| {
            field(
                "customer",
                live.customer_id.clone(),
                rebuilt.customer_id.clone(),
            )
        })
        .unwrap_or_else(|| {
            format!(
                "history live {:?}, rebuilt {:?}",
                live.history
                    .iter()
                    .map(|h| &h.event_type)
                    .collect::<Vec<_>>(),
                rebuilt
                    .history
                    .iter()
                    .map(|h| &h.event_type)
                    .collect::<Vec<_>>()
            )
        })
}
