//! Where reads that need no transaction run (HTTP views, gauges, the
//! consumers' look for stalled keys). On PostgreSQL, the service's pool. On
//! SQLite, read connections of their own beside the one writer (WAL lets
//! them read while it writes), each statement run on the calling thread as
//! the writer's are: sqlx's SQLite pool ran every statement on a thread of
//! its connection's own, which was 14 % of the order service's CPU in the
//! profile, serving the reads of its orders.

use std::sync::{Arc, Mutex};

use sqlx::AnyPool;

use super::connection::Connection;
use super::sqlite;

/// Read connections kept open between reads; more are opened while more
/// reads run at once, and closed after.
const KEPT: usize = 4;

/// Where a service's reads run.
#[derive(Clone)]
pub struct Reader(Readers);

#[derive(Clone)]
enum Readers {
    Pool(AnyPool),
    Sqlite(SqliteReaders),
}

impl From<AnyPool> for Reader {
    fn from(pool: AnyPool) -> Self {
        Reader(Readers::Pool(pool))
    }
}

impl From<SqliteReaders> for Reader {
    fn from(readers: SqliteReaders) -> Self {
        Reader(Readers::Sqlite(readers))
    }
}

impl Reader {
    /// A connection for reads, outside a transaction.
    pub async fn acquire(&self) -> Result<Connection, sqlx::Error> {
        match &self.0 {
            Readers::Pool(pool) => Ok(pool.acquire().await?.into()),
            Readers::Sqlite(readers) => readers.acquire().map(Connection::from),
        }
    }
}

/// SQLite's read connections of a process.
#[derive(Clone)]
pub(crate) struct SqliteReaders {
    path: Arc<str>,
    idle: Arc<Mutex<Vec<rusqlite::Connection>>>,
}

impl SqliteReaders {
    /// Opens the first connection, so a database that cannot be read is
    /// found at start.
    pub(crate) fn open(path: &str) -> Result<Self, sqlx::Error> {
        let first = sqlite::open_reader(path)?;
        Ok(Self {
            path: path.into(),
            idle: Arc::new(Mutex::new(vec![first])),
        })
    }

    pub(crate) fn acquire(&self) -> Result<ReadConnection, sqlx::Error> {
        let idle = self.idle.lock().expect("readers lock").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => sqlite::open_reader(&self.path)?,
        };
        Ok(ReadConnection {
            conn: Some(conn),
            idle: self.idle.clone(),
        })
    }
}

/// A read connection, back among the idle ones when dropped.
pub(crate) struct ReadConnection {
    conn: Option<rusqlite::Connection>,
    idle: Arc<Mutex<Vec<rusqlite::Connection>>>,
}

impl ReadConnection {
    pub(crate) fn conn(&self) -> &rusqlite::Connection {
        self.conn.as_ref().expect("a read connection until dropped")
    }
}

impl Drop for ReadConnection {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let mut idle = self.idle.lock().expect("readers lock");
        if idle.len() < KEPT {
            idle.push(conn);
        }
    }
}
