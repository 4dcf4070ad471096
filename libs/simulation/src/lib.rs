//! A deterministic simulation of the saga: the services' real handlers and
//! the runtime's real batch, parking and outbox steps over real databases,
//! driven by a seeded scheduler that chooses every interleaving — which
//! replica takes which messages, duplicates and redeliveries, crashes
//! before and after a commit, rebalances, expired inboxes and offsets,
//! replays of old events, retry copies, deadlines, provider and mail
//! answers lost after success, handlers failing
//! transiently, outages, and (on PostgreSQL) two replicas' batches at
//! once. Then a calm: the operator replays the dead letters and the saga
//! finishes. After each run the saga's invariants are checked; a failing seed
//! prints its trace, and the same seed replays the same run. See
//! docs/testing.md.
#![forbid(unsafe_code)]

mod broker;
mod dice;
mod facts;
mod hiccups;
mod outside;
mod run;
mod world;

pub use orderflow_runtime::Backend;
pub use run::Options;
pub use world::Databases;

use orderflow_invariants::Violation;

/// What one seed came to.
pub struct Report {
    pub seed: u64,
    pub violations: Vec<Violation>,
    /// Whether the calm let everything finish.
    pub settled: bool,
    pub trace: Vec<String>,
    pub orders: usize,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.settled && self.violations.is_empty()
    }
}

/// Runs seed `seed` over `databases` (emptied first).
pub async fn run(databases: &Databases, seed: u64, options: Options) -> Result<Report, String> {
    let world = databases.world(seed, options.replicas).await?;
    world.dice.note(format!("seed {seed} {options:?}"));
    let mut run = run::Run::new(&world, options.replicas);
    run.stock().await?;
    run.storm(options).await?;
    let settled = run.calm(options.replicas).await?;
    let violations = facts::check(&world, &run)
        .await
        .map_err(|e| format!("reading the facts: {e}"))?;
    Ok(Report {
        seed,
        violations,
        settled,
        trace: world.dice.trace(),
        orders: run.placed,
    })
}
