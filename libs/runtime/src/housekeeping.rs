//! Background upkeep of the runtime's tables. Inbox rows are needed only as
//! long as a redelivery can come (a rebalance, a restart, a replay of the
//! retry topics, whose retention is a week): rows older than the retention
//! (7 days by default) are deleted, in small batches so no statement holds
//! the database for long.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::inbox;
use crate::service::Runtime;

/// Rows deleted per statement.
const BATCH: i64 = 1_000;

pub async fn run(rt: Arc<Runtime>, stop: CancellationToken) {
    let retention = rt.config().inbox_retention_ms as i64;
    // Soon after start, then every minute (more often while there is a backlog).
    let mut wait = Duration::from_secs(5);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
        let before = crate::now_millis() - retention;
        wait = match inbox::prune(rt.db(), before, BATCH).await {
            Ok(n) if n as i64 == BATCH => Duration::from_millis(200),
            Ok(n) => {
                if n > 0 {
                    tracing::debug!(rows = n, "pruned old inbox rows");
                }
                Duration::from_secs(60)
            }
            Err(e) => {
                tracing::debug!(error = %e, "could not prune the inbox");
                Duration::from_secs(60)
            }
        };
    }
}
