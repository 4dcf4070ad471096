//! Keys waiting behind a retry, in the service database so they survive a
//! restart and every replica sees them. While an event of order X waits in a
//! retry tier, X is *parked* with that event at its head; later events of X
//! are stored behind it (in order) and their offsets move on, so X's events
//! are never handled out of order and no partition waits for X. When the
//! head is resolved (handled, failed in domain terms at its deadline, or
//! dead-lettered), the next stored event becomes the head and is handled
//! from the database, and so on until X has nothing left waiting. Every step
//! is one transaction with the work it records; on PostgreSQL the key's row
//! is locked for it, so a replica parking an event behind X and another
//! releasing X never miss each other.

use std::collections::HashMap;

use crate::db::{headers_from, headers_json, in_list, Backend, Database};
use crate::sql::{self, Connection};

use super::retry::Source;

/// An event stored behind its key's head.
#[derive(Debug, Clone)]
pub struct ParkedEvent {
    pub key: String,
    pub seq: i64,
    pub event_id: String,
    pub source: Source,
    pub headers: Vec<(String, Vec<u8>)>,
    pub payload: Vec<u8>,
}

/// The head event of each of `keys` that is parked.
pub async fn heads(
    conn: &mut Connection,
    backend: Backend,
    consumer: &str,
    keys: &[&str],
) -> Result<HashMap<String, String>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let lock = match backend {
        Backend::Postgres => " ORDER BY message_key FOR UPDATE",
        Backend::Sqlite => "",
    };
    let statement = format!(
        "SELECT message_key, head_event_id FROM orderflow_parked_keys
         WHERE consumer = $1 AND message_key IN ({}){lock}",
        in_list(keys.len(), 2)
    );
    let mut query = sql::query(&statement).bind(consumer);
    for key in keys {
        query = query.bind(key.to_string());
    }
    query
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("message_key")?, r.try_get("head_event_id")?)))
        .collect()
}

/// Stores an event behind its key's head. Storing the same event twice
/// changes nothing.
pub async fn park_behind(
    conn: &mut Connection,
    consumer: &str,
    key: &str,
    event_id: &str,
    source: &Source,
    headers: &[(String, Vec<u8>)],
    payload: &[u8],
) -> Result<(), sqlx::Error> {
    sql::query(
        "INSERT INTO orderflow_parked_events
            (consumer, message_key, seq, event_id, source_topic, source_partition, source_offset, headers, payload, parked_at)
         VALUES ($1, $2,
            (SELECT COALESCE(MAX(seq), 0) + 1 FROM orderflow_parked_events WHERE consumer = $3 AND message_key = $4),
            $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(key)
    .bind(consumer)
    .bind(key)
    .bind(event_id)
    .bind(&source.topic)
    .bind(i64::from(source.partition))
    .bind(source.offset)
    .bind(headers_json(headers))
    .bind(payload)
    .bind(crate::now_millis())
    .execute(conn)
    .await?;
    Ok(())
}

/// Where an event that failed transiently stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Parked {
    /// Its key is parked with it at the head: it goes to a retry tier.
    Head,
    /// Another event of its key was parked first: it was stored behind that one.
    Behind,
}

/// An event failed transiently: in a transaction of its own (the key's lock
/// taken first on PostgreSQL, as every batch takes it), its key is parked
/// with it at the head, unless another event of the key is the head already
/// (then it is stored behind it).
#[allow(clippy::too_many_arguments)]
pub async fn hold(
    db: &Database,
    consumer: &str,
    key: &str,
    event_id: &str,
    source: &Source,
    headers: &[(String, Vec<u8>)],
    payload: &[u8],
) -> Result<Parked, sqlx::Error> {
    let mut tx = db.begin().await?;
    lock_key(&mut tx, db.backend(), consumer, key).await?;
    sql::query(
        "INSERT INTO orderflow_parked_keys (consumer, message_key, head_event_id, parked_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (consumer, message_key) DO NOTHING",
    )
    .bind(consumer)
    .bind(key)
    .bind(event_id)
    .bind(crate::now_millis())
    .execute(&mut tx)
    .await?;
    let head = heads(&mut tx, db.backend(), consumer, &[key]).await?;
    let parked = if head.get(key).map(String::as_str) == Some(event_id) {
        Parked::Head
    } else {
        park_behind(&mut tx, consumer, key, event_id, source, headers, payload).await?;
        Parked::Behind
    };
    tx.commit().await?;
    Ok(parked)
}

/// An event is resolved without a handler's transaction (dead-lettered, or
/// of a type this build does not handle): in a transaction of its own, its
/// stored copy (`parked_seq`) is forgotten and, if it was its key's head,
/// the next waiting event becomes the head and is returned to be handled.
pub async fn resolve_unhandled(
    db: &Database,
    consumer: &str,
    key: &str,
    event_id: &str,
    parked_seq: Option<i64>,
) -> Result<Option<ParkedEvent>, sqlx::Error> {
    let mut tx = db.begin().await?;
    lock_key(&mut tx, db.backend(), consumer, key).await?;
    if let Some(seq) = parked_seq {
        forget(&mut tx, consumer, key, seq).await?;
    }
    let heads = heads(&mut tx, db.backend(), consumer, &[key]).await?;
    let next = if heads.get(key).map(String::as_str) == Some(event_id) {
        release(&mut tx, consumer, key).await?
    } else {
        None
    };
    tx.commit().await?;
    Ok(next)
}

/// The order's lock (PostgreSQL), taken first as every batch takes it.
async fn lock_key(
    conn: &mut Connection,
    backend: Backend,
    consumer: &str,
    key: &str,
) -> Result<(), sqlx::Error> {
    if backend == Backend::Postgres {
        super::key_lock::lock_keys(conn, consumer, &[key]).await?;
    }
    Ok(())
}

/// The key's head is resolved: the next stored event becomes the head and is
/// returned to be handled, or the key is no longer parked.
pub async fn release(
    conn: &mut Connection,
    consumer: &str,
    key: &str,
) -> Result<Option<ParkedEvent>, sqlx::Error> {
    let next = sql::query(
        "SELECT seq, event_id, source_topic, source_partition, source_offset, headers, payload
         FROM orderflow_parked_events WHERE consumer = $1 AND message_key = $2 ORDER BY seq LIMIT 1",
    )
    .bind(consumer)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = next else {
        sql::query("DELETE FROM orderflow_parked_keys WHERE consumer = $1 AND message_key = $2")
            .bind(consumer)
            .bind(key)
            .execute(&mut *conn)
            .await?;
        return Ok(None);
    };
    let event = parked_event(key, &row)?;
    sql::query(
        "UPDATE orderflow_parked_keys SET head_event_id = $1, parked_at = $2
         WHERE consumer = $3 AND message_key = $4",
    )
    .bind(&event.event_id)
    .bind(crate::now_millis())
    .bind(consumer)
    .bind(key)
    .execute(&mut *conn)
    .await?;
    Ok(Some(event))
}

/// A stored event was handled (or went to a retry tier of its own).
pub async fn forget(
    conn: &mut Connection,
    consumer: &str,
    key: &str,
    seq: i64,
) -> Result<(), sqlx::Error> {
    sql::query(
        "DELETE FROM orderflow_parked_events WHERE consumer = $1 AND message_key = $2 AND seq = $3",
    )
    .bind(consumer)
    .bind(key)
    .bind(seq)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stored events that became their key's head at least `older_than_ms` ago
/// and were not handled (their handler stopped in between): to be handled now.
pub async fn stalled_heads(
    conn: &mut Connection,
    consumer: &str,
    older_than_ms: i64,
) -> Result<Vec<ParkedEvent>, sqlx::Error> {
    let rows = sql::query(
        "SELECT e.message_key, e.seq, e.event_id, e.source_topic, e.source_partition, e.source_offset, e.headers, e.payload
         FROM orderflow_parked_keys k JOIN orderflow_parked_events e
           ON e.consumer = k.consumer AND e.message_key = k.message_key AND e.event_id = k.head_event_id
         WHERE k.consumer = $1 AND k.parked_at < $2 LIMIT 100",
    )
    .bind(consumer)
    .bind(crate::now_millis() - older_than_ms)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| parked_event(&r.try_get::<String, _>("message_key")?, r))
        .collect()
}

/// Takes a stalled head for this process: true when it was still the key's
/// head and still stalled, and is now marked as just taken (so no other
/// replica, looking at the same moment, takes it too); false when another
/// did first or the key moved on.
pub async fn claim_stalled(
    conn: &mut Connection,
    consumer: &str,
    stalled: &ParkedEvent,
    older_than_ms: i64,
) -> Result<bool, sqlx::Error> {
    let now = crate::now_millis();
    let claimed = sql::query(
        "UPDATE orderflow_parked_keys SET parked_at = $1
         WHERE consumer = $2 AND message_key = $3 AND head_event_id = $4 AND parked_at < $5",
    )
    .bind(now)
    .bind(consumer)
    .bind(&stalled.key)
    .bind(&stalled.event_id)
    .bind(now - older_than_ms)
    .execute(conn)
    .await?;
    Ok(claimed.rows_affected() == 1)
}

/// How many keys of this consumer are parked.
pub async fn count(conn: &mut Connection, consumer: &str) -> Result<i64, sqlx::Error> {
    sql::query("SELECT COUNT(*) AS n FROM orderflow_parked_keys WHERE consumer = $1")
        .bind(consumer)
        .fetch_one(conn)
        .await?
        .try_get("n")
}

/// Every order a service database holds parked, of any consumer: a key's
/// row or an event stored behind one. At rest both are empty; an event
/// whose key has no row would never be resumed.
pub async fn parked_orders(conn: &mut Connection) -> Result<Vec<String>, sqlx::Error> {
    sql::query(
        "SELECT message_key FROM orderflow_parked_keys
         UNION SELECT message_key FROM orderflow_parked_events ORDER BY 1",
    )
    .fetch_all(conn)
    .await?
    .iter()
    .map(|r| r.try_get("message_key"))
    .collect()
}

fn parked_event(key: &str, row: &sql::Row) -> Result<ParkedEvent, sqlx::Error> {
    Ok(ParkedEvent {
        key: key.to_string(),
        seq: row.try_get("seq")?,
        event_id: row.try_get("event_id")?,
        source: Source {
            topic: row.try_get("source_topic")?,
            partition: row.try_get::<i64, _>("source_partition")? as i32,
            offset: row.try_get("source_offset")?,
        },
        headers: headers_from(row, "headers")?,
        payload: row.try_get("payload")?,
    })
}
