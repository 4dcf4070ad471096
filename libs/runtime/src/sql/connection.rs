//! A connection a statement runs on: one of the pool's (PostgreSQL, and
//! SQLite's readers), or SQLite's one writing connection.

use std::sync::Arc;

use sqlx::any::AnyRow;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Column, Row as _, ValueRef};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::reader::ReadConnection;
use super::row::Row;
use super::sqlite;
use super::value::{Kind, Value};

/// A connection, in a transaction or not. A transaction not committed is
/// rolled back when its connection is dropped.
pub struct Connection {
    inner: Inner,
}

enum Inner {
    Pooled(PoolConnection<Any>),
    Transaction(sqlx::Transaction<'static, Any>),
    Sqlite(Writer),
    SqliteRead(ReadConnection),
}

/// SQLite's writing connection, held.
struct Writer {
    conn: OwnedMutexGuard<rusqlite::Connection>,
    /// COMMIT syncs the WAL to disk (`PRAGMA synchronous = FULL`).
    durable: bool,
}

/// SQLite's one writing connection of a process, shared.
#[derive(Clone)]
pub(crate) struct SqliteWriter {
    conn: Arc<Mutex<rusqlite::Connection>>,
    durable: bool,
}

impl SqliteWriter {
    pub(crate) fn open(path: &str, durable: bool) -> Result<Self, sqlx::Error> {
        Ok(Self {
            conn: Arc::new(Mutex::new(sqlite::open(path, durable)?)),
            durable,
        })
    }

    /// Waits for the connection; in a transaction (`BEGIN IMMEDIATE`: the
    /// write lock at once, so it never has to be upgraded) if `begin`.
    pub(crate) async fn acquire(&self, begin: bool) -> Result<Connection, sqlx::Error> {
        let conn = self.conn.clone().lock_owned().await;
        if !conn.is_autocommit() {
            // A transaction whose rollback failed when it was dropped.
            sqlite::command(&conn, "ROLLBACK")?;
        }
        if begin {
            sqlite::command(&conn, "BEGIN IMMEDIATE")?;
        }
        Ok(Connection {
            inner: Inner::Sqlite(Writer {
                conn,
                durable: self.durable,
            }),
        })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.conn.is_autocommit() {
            if let Err(e) = sqlite::command(&self.conn, "ROLLBACK") {
                tracing::warn!(error = %e, "rolling back a transaction failed");
            }
        }
    }
}

impl From<PoolConnection<Any>> for Connection {
    fn from(conn: PoolConnection<Any>) -> Self {
        Self {
            inner: Inner::Pooled(conn),
        }
    }
}

impl From<ReadConnection> for Connection {
    fn from(conn: ReadConnection) -> Self {
        Self {
            inner: Inner::SqliteRead(conn),
        }
    }
}

impl From<sqlx::Transaction<'static, Any>> for Connection {
    fn from(tx: sqlx::Transaction<'static, Any>) -> Self {
        Self {
            inner: Inner::Transaction(tx),
        }
    }
}

impl Connection {
    /// Commits the transaction (nothing to do outside one).
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self.inner {
            Inner::Pooled(_) | Inner::SqliteRead(_) => Ok(()),
            Inner::Transaction(tx) => tx.commit().await,
            Inner::Sqlite(writer) => {
                if writer.conn.is_autocommit() {
                    return Ok(());
                }
                // If COMMIT fails, the transaction is still open and dropping
                // `writer` rolls it back.
                if writer.durable {
                    // The WAL's fsync: keep this runtime thread's other tasks going.
                    blocking(|| sqlite::command(&writer.conn, "COMMIT"))
                } else {
                    sqlite::command(&writer.conn, "COMMIT")
                }
            }
        }
    }

    /// Rolls the transaction back (what dropping it does, with its error).
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self.inner {
            Inner::Pooled(_) | Inner::SqliteRead(_) => Ok(()),
            Inner::Transaction(tx) => tx.rollback().await,
            Inner::Sqlite(writer) if writer.conn.is_autocommit() => Ok(()),
            Inner::Sqlite(writer) => sqlite::command(&writer.conn, "ROLLBACK"),
        }
    }

    /// Runs a statement; its rows if `rows`, and how many rows it changed.
    pub(crate) async fn run(
        &mut self,
        sql: &str,
        args: Vec<Value>,
        rows: bool,
    ) -> Result<(Vec<Row>, u64), sqlx::Error> {
        match &mut self.inner {
            Inner::Pooled(conn) => run_any(conn, sql, args, rows).await,
            Inner::Transaction(tx) => run_any(tx, sql, args, rows).await,
            Inner::Sqlite(writer) => sqlite::run(&writer.conn, sql, &args, rows),
            Inner::SqliteRead(reader) => sqlite::run(reader.conn(), sql, &args, rows),
        }
    }
}

/// Runs `work` off this runtime thread's queue if the runtime can (a
/// multi-threaded one moves its other tasks to another thread meanwhile).
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

async fn run_any(
    conn: &mut AnyConnection,
    sql: &str,
    args: Vec<Value>,
    rows: bool,
) -> Result<(Vec<Row>, u64), sqlx::Error> {
    let mut query = sqlx::query(sql);
    for arg in args {
        query = match arg {
            Value::Null(Kind::Int) => query.bind(None::<i64>),
            Value::Null(Kind::Real) => query.bind(None::<f64>),
            Value::Null(Kind::Text) => query.bind(None::<String>),
            Value::Null(Kind::Blob) => query.bind(None::<Vec<u8>>),
            Value::Null(Kind::Bool) => query.bind(None::<bool>),
            Value::Int(v) => query.bind(v),
            Value::Real(v) => query.bind(v),
            Value::Text(v) => query.bind(v),
            Value::Blob(v) => query.bind(v),
            Value::Bool(v) => query.bind(v),
        };
    }
    if !rows {
        return Ok((Vec::new(), query.execute(conn).await?.rows_affected()));
    }
    let found = query.fetch_all(conn).await?;
    let Some(first) = found.first() else {
        return Ok((Vec::new(), 0));
    };
    let columns: Arc<[String]> = first
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let count = found.len() as u64;
    let rows = found
        .iter()
        .map(|row| {
            Ok(Row {
                columns: columns.clone(),
                values: (0..columns.len())
                    .map(|i| any_value(row, i))
                    .collect::<Result<_, sqlx::Error>>()?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok((rows, count))
}

fn any_value(row: &AnyRow, i: usize) -> Result<Value, sqlx::Error> {
    use sqlx::any::AnyTypeInfoKind as K;
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Value::Null(Kind::Text));
    }
    let kind = raw.type_info().kind();
    Ok(match kind {
        K::Null => Value::Null(Kind::Text),
        K::Bool => Value::Bool(row.try_get(i)?),
        K::SmallInt => Value::Int(row.try_get::<i16, _>(i)?.into()),
        K::Integer => Value::Int(row.try_get::<i32, _>(i)?.into()),
        K::BigInt => Value::Int(row.try_get(i)?),
        K::Real => Value::Real(row.try_get::<f32, _>(i)?.into()),
        K::Double => Value::Real(row.try_get(i)?),
        K::Text => Value::Text(row.try_get(i)?),
        K::Blob => Value::Blob(row.try_get(i)?),
    })
}
