//! A steady stream of orders through the gateway while a test changes the
//! platform under it (scales, upgrades, kills): every order is placed with
//! its `Idempotency-Key`, and an attempt that fails is tried again with the
//! same key, as the API tells clients to. What the client saw — every
//! failed attempt and why — is kept for the test to judge.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Api;

/// A failed attempt: which order, and what the client got.
#[derive(Debug, Clone)]
pub struct FailedAttempt {
    pub order: usize,
    pub error: String,
}

/// What the load saw once stopped.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// The orders the gateway accepted, in the order they were placed.
    pub accepted: Vec<String>,
    /// Attempts that failed and were tried again.
    pub failed: Vec<FailedAttempt>,
}

pub struct SteadyLoad {
    stop: CancellationToken,
    task: JoinHandle<Result<Vec<String>>>,
    failed: Arc<Mutex<Vec<FailedAttempt>>>,
}

impl SteadyLoad {
    /// Places `rate` orders a second until stopped (round-robin over the
    /// demo catalogue's SKUs, a card that is charged, a served country).
    pub fn start(api: Arc<Api>, rate: f64, run: &str) -> Self {
        let stop = CancellationToken::new();
        let failed = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(place(
            api,
            rate,
            run.to_string(),
            stop.clone(),
            failed.clone(),
        ));
        Self { stop, task, failed }
    }

    /// Failed attempts so far.
    pub fn failed(&self) -> usize {
        self.failed.lock().expect("failures").len()
    }

    /// Stops placing (orders in flight finish) and reports.
    pub async fn stop(self) -> Result<LoadReport> {
        self.stop.cancel();
        let accepted = self.task.await.context("the load task")??;
        let failed = self.failed.lock().expect("failures").clone();
        Ok(LoadReport { accepted, failed })
    }
}

async fn place(
    api: Arc<Api>,
    rate: f64,
    run: String,
    stop: CancellationToken,
    failed: Arc<Mutex<Vec<FailedAttempt>>>,
) -> Result<Vec<String>> {
    const SKUS: [&str; 8] = [
        "SKU-003", "SKU-004", "SKU-005", "SKU-006", "SKU-007", "SKU-008", "SKU-009", "SKU-010",
    ];
    let started = tokio::time::Instant::now();
    let mut placing = tokio::task::JoinSet::new();
    let mut i = 0usize;
    loop {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(due) => {}
        }
        let (api, failed) = (api.clone(), failed.clone());
        let body = crate::order_body(
            &format!("c-load-{}", i % 50),
            SKUS[i % SKUS.len()],
            1,
            "tok_visa",
            "DE",
        );
        let key = format!("load-{run}-{i}");
        placing.spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            loop {
                let error = match api.post_order(&body, Some(&key)).await {
                    Ok(r) if r.status() == 202 => {
                        let body: serde_json::Value = r.json().await?;
                        let id = body["order_id"].as_str().context("order_id")?;
                        return Ok((i, id.to_string()));
                    }
                    Ok(r) if r.status().is_client_error() => {
                        bail!("order {i} refused: {} {}", r.status(), r.text().await?)
                    }
                    Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                    Err(e) => format!("{e:#}"),
                };
                failed
                    .lock()
                    .expect("failures")
                    .push(FailedAttempt { order: i, error });
                if tokio::time::Instant::now() > deadline {
                    bail!("order {i} not accepted within 120 s");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        i += 1;
    }
    let mut ids = vec![String::new(); i];
    while let Some(done) = placing.join_next().await {
        let (n, id) = done??;
        ids[n] = id;
    }
    Ok(ids)
}
