//! The SQL every service and the runtime write with, on SQLite (the embedded
//! default) and PostgreSQL alike. Statements use `$n` placeholders, which
//! both accept, and read like sqlx's: `sql::query(..).bind(..).execute(conn)`.
//!
//! PostgreSQL runs through sqlx. SQLite's writes run through rusqlite on the
//! calling thread, on one connection per process with its statements kept
//! prepared (see `sqlite.rs` for what that saves); its reads that need no
//! transaction (HTTP views) keep sqlx's pool, beside the writer in WAL mode.

pub(crate) mod answer;
mod connection;
mod reader;
mod row;
mod sqlite;
mod value;

pub use connection::Connection;
pub(crate) use connection::SqliteWriter;
pub use reader::Reader;
pub(crate) use reader::SqliteReaders;
pub use row::{ColumnIndex, Row};
pub use value::{Decode, Encode, Kind, Value};

/// A statement and its arguments.
#[must_use = "a query does nothing until it is executed or fetched"]
pub struct Query<'q> {
    sql: &'q str,
    args: Vec<Value>,
}

/// A statement to bind arguments to, then run.
pub fn query(sql: &str) -> Query<'_> {
    Query {
        sql,
        args: Vec::new(),
    }
}

/// Where a statement runs: a connection, or any of a service's read
/// connections ([`crate::Database::reader`]).
pub enum Target<'e> {
    Connection(&'e mut Connection),
    Reader(&'e Reader),
}

impl<'e> From<&'e Reader> for Target<'e> {
    fn from(reader: &'e Reader) -> Self {
        Target::Reader(reader)
    }
}

impl<'e> From<&'e mut Connection> for Target<'e> {
    fn from(conn: &'e mut Connection) -> Self {
        Target::Connection(conn)
    }
}

impl Target<'_> {
    async fn run(
        self,
        sql: &str,
        args: Vec<Value>,
        rows: bool,
    ) -> Result<(Vec<Row>, u64), sqlx::Error> {
        match self {
            Target::Connection(conn) => conn.run(sql, args, rows).await,
            Target::Reader(reader) => reader.acquire().await?.run(sql, args, rows).await,
        }
    }
}

/// What a statement that returns no rows did.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    rows_affected: u64,
}

impl Done {
    pub fn rows_affected(&self) -> u64 {
        self.rows_affected
    }
}

impl<'q> Query<'q> {
    /// Binds the next `$n`.
    pub fn bind(mut self, value: impl Encode) -> Self {
        self.args.push(value.encode());
        self
    }

    pub async fn execute<'e>(self, target: impl Into<Target<'e>>) -> Result<Done, sqlx::Error> {
        let (_, rows_affected) = target.into().run(self.sql, self.args, false).await?;
        Ok(Done { rows_affected })
    }

    pub async fn fetch_all<'e>(
        self,
        target: impl Into<Target<'e>>,
    ) -> Result<Vec<Row>, sqlx::Error> {
        Ok(target.into().run(self.sql, self.args, true).await?.0)
    }

    pub async fn fetch_optional<'e>(
        self,
        target: impl Into<Target<'e>>,
    ) -> Result<Option<Row>, sqlx::Error> {
        Ok(self.fetch_all(target).await?.into_iter().next())
    }

    /// The first row; `RowNotFound` if there is none.
    pub async fn fetch_one<'e>(self, target: impl Into<Target<'e>>) -> Result<Row, sqlx::Error> {
        self.fetch_optional(target)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

#[cfg(test)]
mod tests;
