//! One SQL code path for SQLite (the embedded default) and PostgreSQL, through
//! sqlx's `Any` driver. Queries use `$n` placeholders, which both accept.

use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::AnyPool;

use crate::error::RuntimeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A service's database: its pool and which backend it is.
#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
}

impl Database {
    /// Connects, creating a SQLite file (and its folder) when missing, and
    /// creates the runtime's own tables (inbox, outbox).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, RuntimeError> {
        install_default_drivers();
        let err = |source| RuntimeError::Database {
            url: url.to_string(),
            source,
        };
        let (backend, url, max_connections) = if url.starts_with("sqlite:") {
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
            // SQLite serializes writers anyway; one connection per process avoids
            // SQLITE_BUSY on lock upgrades instead of retrying them.
            (Backend::Sqlite, url, 1)
        } else {
            (Backend::Postgres, url.to_string(), max_connections)
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; NORMAL syncs at
                        // checkpoints, which WAL keeps crash-safe. Per connection,
                        // since the pool may replace it.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(err)?;
        let db = Self { pool, backend };
        // Replicas starting together race on CREATE TABLE IF NOT EXISTS (it is
        // not atomic in PostgreSQL's catalog); an advisory lock serializes them.
        let mut tx = db.pool.begin().await.map_err(err)?;
        if backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7315002)")
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        for statement in db.runtime_tables() {
            sqlx::query(&statement)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(db)
    }

    /// Runs a service's migrations.
    pub async fn migrate(&self, migrator: &Migrator) -> Result<(), RuntimeError> {
        migrator.run(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The inbox and outbox. They are created here rather than in each
    /// service's migrations so the schema of a shared mechanism lives once.
    fn runtime_tables(&self) -> Vec<String> {
        let bytes = match self.backend {
            Backend::Sqlite => "BLOB",
            Backend::Postgres => "BYTEA",
        };
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
        ]
    }
}
