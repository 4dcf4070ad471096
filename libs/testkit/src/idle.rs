//! "Nothing left to do", as the tests mean it: every outbox empty, no order
//! waiting behind a retry, and every consumer group caught up on the topics
//! it consumes and on its retry tiers. Lag alone is not enough: an event
//! committed to an outbox but not yet published, or copied to a retry tier,
//! is work still to come.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use orderflow_runtime::sqlx::{self, Connection, Row};

use crate::kafka::KafkaProbe;

/// The consuming services, as a test stack runs them.
pub(crate) const SPECS: [&orderflow_runtime::ServiceSpec; 5] = [
    &orderflow_order::SPEC,
    &orderflow_inventory::SPEC,
    &orderflow_payment::SPEC,
    &orderflow_shipping::SPEC,
    &orderflow_notification::SPEC,
];

/// Waits (up to 60 s) until the stack is idle: outboxes and parked keys
/// empty, then no lag, then the outboxes still empty (a consumer that
/// caught up may have written rows meanwhile).
pub async fn wait_idle(
    kafka: &KafkaProbe,
    retry_tiers: &[Duration],
    databases: &BTreeMap<&'static str, String>,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut busy = pending_rows(databases).await?;
        if busy.is_empty() {
            busy = lags(kafka, retry_tiers).await?;
        }
        if busy.is_empty() {
            busy = pending_rows(databases).await?;
        }
        if busy.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not idle after 60 s: {busy:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Outbox rows not yet published and keys waiting behind a retry, per service.
async fn pending_rows(databases: &BTreeMap<&'static str, String>) -> Result<Vec<String>> {
    sqlx::any::install_default_drivers();
    let mut busy = Vec::new();
    for (service, url) in databases {
        let mut conn = sqlx::AnyConnection::connect(url)
            .await
            .with_context(|| format!("connecting to {service}'s database"))?;
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM orderflow_outbox) AS outbox,
                    (SELECT COUNT(*) FROM orderflow_parked_keys) AS waiting",
        )
        .fetch_one(&mut conn)
        .await
        .with_context(|| format!("reading {service}'s outbox"))?;
        let (outbox, waiting): (i64, i64) = (row.try_get("outbox")?, row.try_get("waiting")?);
        conn.close().await?;
        if outbox > 0 {
            busy.push(format!("{service}: {outbox} outbox row(s) unpublished"));
        }
        if waiting > 0 {
            busy.push(format!(
                "{service}: {waiting} order(s) waiting behind a retry"
            ));
        }
    }
    Ok(busy)
}

/// Each group's lag on what it consumes, its retry tier topics included.
async fn lags(kafka: &KafkaProbe, retry_tiers: &[Duration]) -> Result<Vec<String>> {
    let mut busy = Vec::new();
    for spec in SPECS {
        let mut topics: Vec<String> = spec.consumes.iter().map(|t| t.name().to_string()).collect();
        topics.extend(orderflow_runtime::topics::retry_topics(
            spec.name,
            retry_tiers,
        ));
        let lag = kafka.lag(&spec.group_id(), &topics).await?;
        if lag > 0 {
            busy.push(format!("{}: lag {lag}", spec.name));
        }
    }
    Ok(busy)
}

/// The lag of every consuming service's group, summed (retry tiers included).
pub(crate) async fn total_lag(kafka: &KafkaProbe, retry_tiers: &[Duration]) -> Result<i64> {
    let mut total = 0;
    for spec in SPECS {
        let mut topics: Vec<String> = spec.consumes.iter().map(|t| t.name().to_string()).collect();
        topics.extend(orderflow_runtime::topics::retry_topics(
            spec.name,
            retry_tiers,
        ));
        total += kafka.lag(&spec.group_id(), &topics).await?;
    }
    Ok(total)
}
