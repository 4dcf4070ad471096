//! The idempotent consumer: a (consumer, event id) row written in the same
//! transaction as the handler's effects. A redelivered event finds its row and
//! changes nothing. A batch records all its events in one statement, which
//! also tells which of them were seen before (duplicates are skipped by the
//! insert itself, so the transaction stays usable on PostgreSQL).

use std::collections::HashSet;

use crate::db::{in_list, values_list, Database};
use crate::sql::{self, Connection};

/// Records the events as received; returns the ids not seen before.
pub async fn record_all(
    conn: &mut Connection,
    consumer: &str,
    events: &[(&str, &str)],
) -> Result<HashSet<String>, sqlx::Error> {
    let mut first = HashSet::with_capacity(events.len());
    let now = crate::now_millis();
    for chunk in events.chunks(200) {
        let statement = format!(
            "INSERT INTO orderflow_inbox (consumer, event_id, event_type, received_at) VALUES {}
             ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id",
            values_list(chunk.len(), 4, 1)
        );
        let mut query = sql::query(&statement);
        for (event_id, event_type) in chunk {
            query = query
                .bind(consumer)
                .bind(event_id.to_string())
                .bind(event_type.to_string())
                .bind(now);
        }
        for row in query.fetch_all(&mut *conn).await? {
            first.insert(row.try_get("event_id")?);
        }
    }
    Ok(first)
}

/// Takes back the rows of events that are not done after all (an external
/// call is still to come, or they go to a retry tier or a dead letter).
pub async fn forget(
    conn: &mut Connection,
    consumer: &str,
    event_ids: &[&str],
) -> Result<(), sqlx::Error> {
    for chunk in event_ids.chunks(200) {
        let statement = format!(
            "DELETE FROM orderflow_inbox WHERE consumer = $1 AND event_id IN ({})",
            in_list(chunk.len(), 2)
        );
        let mut query = sql::query(&statement).bind(consumer);
        for id in chunk {
            query = query.bind(id.to_string());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Deletes up to `limit` rows received before `before` (ms); returns how many.
pub async fn prune(db: &Database, before: i64, limit: i64) -> Result<u64, sqlx::Error> {
    let result = sql::query(
        "DELETE FROM orderflow_inbox WHERE received_at < $1 AND event_id IN (
             SELECT event_id FROM orderflow_inbox WHERE received_at < $2 LIMIT $3)",
    )
    .bind(before)
    .bind(before)
    .bind(limit)
    .execute(&mut db.acquire().await?)
    .await?;
    Ok(result.rows_affected())
}
