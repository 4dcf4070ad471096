//! A service's database, SQLite (the embedded default) or PostgreSQL: where
//! it writes and where it reads. Statements go through [`crate::sql`].

use crate::secrets::redact;
use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};

use crate::error::RuntimeError;
use crate::sql::{Connection, Reader, SqliteReaders, SqliteWriter};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A service's database: where it writes, where it reads, and which backend it is.
#[derive(Clone)]
pub struct Database {
    /// Migrations, and every write on PostgreSQL.
    pool: AnyPool,
    reader: Reader,
    backend: Backend,
    /// SQLite's writing connection (writes do not go through `pool` there).
    writer: Option<SqliteWriter>,
}

impl Database {
    /// Connects, creating a SQLite file (and its folder) when missing, and
    /// brings the runtime's own tables (inbox, outbox, parking) up to date.
    /// `durable` (SQLite): sync the WAL at every commit; false syncs at
    /// checkpoints only, which a crash of the process survives but a power
    /// cut may not.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        durable: bool,
    ) -> Result<Self, RuntimeError> {
        install_default_drivers();
        let err = |source| RuntimeError::Database {
            url: redact(url),
            source,
        };
        if !url.starts_with("sqlite:") {
            let pool = AnyPoolOptions::new()
                .max_connections(max_connections)
                .connect(url)
                .await
                .map_err(err)?;
            let db = Self {
                reader: pool.clone().into(),
                pool,
                backend: Backend::Postgres,
                writer: None,
            };
            db.upgrade_runtime_tables().await.map_err(err)?;
            return Ok(db);
        }
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let path = path.split('?').next().unwrap_or(path);
        if let Some(dir) = std::path::Path::new(path).parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(sqlx::Error::Io(e)))?;
        }
        let url = if url.contains("mode=") {
            url.to_string()
        } else if url.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        };
        let synchronous = if durable {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        };
        // The pool runs the migrations; SQLite serializes writers anyway, so
        // one connection. Writes go through the one writing connection
        // (`SqliteWriter`: no SQLITE_BUSY on lock upgrades, and group commit,
        // crate::group_commit, batches what waits for it), reads through
        // connections of their own.
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // WAL lets readers run beside the writer. FULL syncs the WAL
                    // at every commit: once a transaction has committed, its
                    // offset may reach Kafka, so it must survive a power cut
                    // (NORMAL may lose the last transactions then). Per
                    // connection, since the pool may replace one.
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        synchronous,
                        "PRAGMA busy_timeout = 5000",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(err)?;
        let db = Self {
            reader: SqliteReaders::open(path).map_err(err)?.into(),
            writer: Some(SqliteWriter::open(path, durable).map_err(err)?),
            pool,
            backend: Backend::Sqlite,
        };
        db.upgrade_runtime_tables().await.map_err(err)?;
        Ok(db)
    }

    /// Runs a service's migrations.
    pub async fn migrate(&self, migrator: &Migrator) -> Result<(), RuntimeError> {
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// A connection in a new transaction, for writes; dropping it without
    /// [`Connection::commit`] rolls back. On SQLite it holds the process's
    /// one writing connection until then.
    pub async fn begin(&self) -> Result<Connection, sqlx::Error> {
        match &self.writer {
            Some(writer) => writer.acquire(true).await,
            None => Ok(self.pool.begin().await?.into()),
        }
    }

    /// A connection for writes outside a transaction (each statement
    /// commits on its own).
    pub async fn acquire(&self) -> Result<Connection, sqlx::Error> {
        match &self.writer {
            Some(writer) => writer.acquire(false).await,
            None => Ok(self.pool.acquire().await?.into()),
        }
    }

    /// A connection for reads that need no transaction, from [`Self::reader`].
    pub async fn read(&self) -> Result<Connection, sqlx::Error> {
        self.reader.acquire().await
    }

    /// Where reads that need no transaction run (HTTP views, gauges): on
    /// SQLite, connections of their own, so a read never waits for a commit.
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the runtime's table versions this database has not seen. They
    /// live here rather than in each service's migrations so the schema of a
    /// shared mechanism is written once. Replicas starting together race on
    /// DDL (it is not atomic in PostgreSQL's catalog): an advisory lock
    /// serializes them.
    async fn upgrade_runtime_tables(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7315002)")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS orderflow_runtime_version (version BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let current: i64 =
            sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM orderflow_runtime_version")
                .fetch_one(&mut *tx)
                .await?
                .try_get("v")?;
        for (version, statements) in runtime_tables(self.backend).iter().enumerate() {
            let version = version as i64 + 1;
            if version <= current {
                continue;
            }
            for statement in statements {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            sqlx::query("DELETE FROM orderflow_runtime_version")
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO orderflow_runtime_version (version) VALUES ($1)")
                .bind(version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
}

/// The runtime's tables, one list of statements per version.
fn runtime_tables(backend: Backend) -> Vec<Vec<String>> {
    let bytes = match backend {
        Backend::Sqlite => "BLOB",
        Backend::Postgres => "BYTEA",
    };
    vec![
        // 1: the inbox and the outbox.
        vec![
            "CREATE TABLE IF NOT EXISTS orderflow_inbox (
                consumer TEXT NOT NULL,
                event_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                received_at BIGINT NOT NULL,
                PRIMARY KEY (consumer, event_id))"
                .to_string(),
            format!(
                "CREATE TABLE IF NOT EXISTS orderflow_outbox (
                    id TEXT PRIMARY KEY,
                    topic TEXT NOT NULL,
                    message_key TEXT NOT NULL,
                    headers TEXT NOT NULL,
                    payload {bytes} NOT NULL,
                    created_at BIGINT NOT NULL)"
            ),
        ],
        // 2: outbox leases and attempts, parked outbox rows, inbox pruning,
        // keys waiting behind a retry, and dead letters that could not be written.
        vec![
            "ALTER TABLE orderflow_outbox ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0".into(),
            "ALTER TABLE orderflow_outbox ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0".into(),
            "ALTER TABLE orderflow_outbox ADD COLUMN last_error TEXT".into(),
            "CREATE INDEX orderflow_outbox_due ON orderflow_outbox (lease_until, id)".into(),
            format!(
                "CREATE TABLE orderflow_outbox_parked (
                    id TEXT PRIMARY KEY,
                    topic TEXT NOT NULL,
                    message_key TEXT NOT NULL,
                    headers TEXT NOT NULL,
                    payload {bytes} NOT NULL,
                    created_at BIGINT NOT NULL,
                    attempts BIGINT NOT NULL,
                    error TEXT NOT NULL,
                    parked_at BIGINT NOT NULL)"
            ),
            "CREATE INDEX orderflow_inbox_received ON orderflow_inbox (received_at)".into(),
            "CREATE TABLE orderflow_parked_keys (
                consumer TEXT NOT NULL,
                message_key TEXT NOT NULL,
                head_event_id TEXT NOT NULL,
                parked_at BIGINT NOT NULL,
                PRIMARY KEY (consumer, message_key))"
                .into(),
            format!(
                "CREATE TABLE orderflow_parked_events (
                    consumer TEXT NOT NULL,
                    message_key TEXT NOT NULL,
                    seq BIGINT NOT NULL,
                    event_id TEXT NOT NULL,
                    source_topic TEXT NOT NULL,
                    source_partition BIGINT NOT NULL,
                    source_offset BIGINT NOT NULL,
                    headers TEXT NOT NULL,
                    payload {bytes} NOT NULL,
                    parked_at BIGINT NOT NULL,
                    PRIMARY KEY (consumer, message_key, seq),
                    UNIQUE (consumer, event_id))"
            ),
            format!(
                "CREATE TABLE orderflow_dead_letters_unwritten (
                    consumer TEXT NOT NULL,
                    source_topic TEXT NOT NULL,
                    source_partition BIGINT NOT NULL,
                    source_offset BIGINT NOT NULL,
                    message_key {bytes},
                    headers TEXT NOT NULL,
                    payload {bytes},
                    error TEXT NOT NULL,
                    produce_error TEXT NOT NULL,
                    parked_at BIGINT NOT NULL,
                    PRIMARY KEY (consumer, source_topic, source_partition, source_offset))"
            ),
        ],
    ]
}

/// `($1, $2, $3), ($4, $5, $6), …`: the VALUES of a multi-row insert of
/// `rows` rows of `columns` columns, numbered from `$first`.
pub fn values_list(rows: usize, columns: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(first + row * columns + column).to_string());
        }
        sql.push(')');
    }
    sql
}

/// `$first, $first+1, …`: the list inside `IN (…)` for `n` values.
pub fn in_list(n: usize, first: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Message headers as the runtime's tables keep them: a JSON list of
/// name/value pairs (values as text).
pub(crate) fn headers_json(headers: &[(String, Vec<u8>)]) -> String {
    let pairs: Vec<(&str, std::borrow::Cow<'_, str>)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v)))
        .collect();
    serde_json::to_string(&pairs).expect("headers serialize")
}

/// The headers kept in `column` of `row` (see [`headers_json`]).
pub(crate) fn headers_from(
    row: &crate::sql::Row,
    column: &str,
) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
    let json: String = row.try_get(column)?;
    let pairs: Vec<(String, String)> =
        serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(pairs
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_and_columns() {
        assert_eq!(values_list(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_list(1, 2, 4), "($4, $5)");
        assert_eq!(in_list(3, 2), "$2, $3, $4");
    }
}
