//! SQLite through rusqlite, on the calling thread. sqlx's SQLite driver runs
//! every statement on a worker thread of its own and hands the rows back: two
//! thread wake-ups per statement, which measured 46 µs of CPU per statement
//! against 10 µs here (`make bench`, (i)). A service has one writing
//! connection; statements are prepared once and kept.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use sqlx::error::ErrorKind;

use super::answer::DatabaseAnswer;
use super::row::Row;
use super::value::{Kind, Value};

/// Statements a connection keeps prepared (multi-row inserts have one per
/// row count, so more than a service's hand-written statements).
const PREPARED: usize = 256;

/// Opens the writing connection of the database at `path`: WAL, foreign
/// keys on, waiting up to five seconds for a lock, as sqlx's pool does.
pub(crate) fn open(path: &str, durable: bool) -> Result<rusqlite::Connection, sqlx::Error> {
    let conn = connect(path)?;
    let synchronous = if durable { "FULL" } else { "NORMAL" };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;"
    ))
    .map_err(error)?;
    Ok(conn)
}

/// Opens a read connection of the database at `path`: it reads only
/// (`query_only`), waiting up to five seconds for a lock.
pub(crate) fn open_reader(path: &str) -> Result<rusqlite::Connection, sqlx::Error> {
    let conn = connect(path)?;
    conn.execute_batch("PRAGMA query_only = ON;")
        .map_err(error)?;
    Ok(conn)
}

/// A connection that waits up to five seconds for a lock and keeps its
/// statements prepared.
fn connect(path: &str) -> Result<rusqlite::Connection, sqlx::Error> {
    let conn = rusqlite::Connection::open(path).map_err(error)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(error)?;
    conn.set_prepared_statement_cache_capacity(PREPARED);
    Ok(conn)
}

/// Runs `sql` with `args` bound to its `$n` parameters; returns its rows (if
/// `rows`) and how many rows it changed.
pub(crate) fn run(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Value],
    rows: bool,
) -> Result<(Vec<Row>, u64), sqlx::Error> {
    let mut statement = conn.prepare_cached(&numbered(sql)).map_err(error)?;
    for index in 1..=statement.parameter_count() {
        let value = index
            .checked_sub(1)
            .and_then(|i| args.get(i))
            .ok_or_else(|| refused(format!("no argument for parameter ${index} of {sql}")))?;
        statement.raw_bind_parameter(index, value).map_err(error)?;
    }
    let mut found = Vec::new();
    // The column names once a row comes, shared by the result's rows.
    let mut columns: Option<Arc<[String]>> = None;
    let mut cursor = statement.raw_query();
    while let Some(row) = cursor.next().map_err(error)? {
        if rows {
            let columns = columns.get_or_insert_with(|| {
                let statement: &rusqlite::Statement<'_> = row.as_ref();
                statement
                    .column_names()
                    .into_iter()
                    .map(str::to_string)
                    .collect()
            });
            let values = (0..columns.len())
                .map(|i| row.get_ref(i).map(value).map_err(error))
                .collect::<Result<_, _>>()?;
            found.push(Row {
                columns: columns.clone(),
                values,
            });
        }
    }
    Ok((found, conn.changes()))
}

/// `sql` with each `$n` written `?n`. Both name the n-th argument wherever
/// it stands, as in PostgreSQL, but SQLite numbers a `?n` n while it numbers
/// `$n`s in the order they first appear, so binding `$n`s needs each one's
/// name: a linear search per parameter inside SQLite, 1.5–4.5 % of a
/// consumer's CPU in the profile, worst in multi-row inserts. Quoted text
/// and identifiers are left as they are.
fn numbered(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    // Bytes, not characters: `$`, digits and quotes are ASCII, and no byte
    // of a longer UTF-8 character equals one of them.
    let bytes = sql.as_bytes();
    let mut out = sql.to_owned();
    let mut quote = None;
    for (i, &b) in bytes.iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b'$' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                out.replace_range(i..=i, "?");
            }
            None => {}
        }
    }
    Cow::Owned(out)
}

/// Runs a statement without arguments or rows (BEGIN, COMMIT, ROLLBACK).
pub(crate) fn command(conn: &rusqlite::Connection, sql: &str) -> Result<(), sqlx::Error> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.raw_execute())
        .map(drop)
        .map_err(error)
}

fn value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null(Kind::Text),
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null(_) => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Real(r) => ToSqlOutput::Borrowed(ValueRef::Real(*r)),
            Value::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// SQLite's generic error code, for what rusqlite refuses itself.
const SQLITE_ERROR: i32 = 1;

/// What SQLite said, as sqlx reports its SQLite driver's errors: the
/// extended result code as the code, constraint kinds named, so
/// `failure::is_transient` classifies both drivers alike.
fn answer(code: i32, message: String) -> sqlx::Error {
    let kind: fn() -> ErrorKind = match code {
        2067 | 1555 => || ErrorKind::UniqueViolation, // SQLITE_CONSTRAINT_UNIQUE, _PRIMARYKEY
        787 => || ErrorKind::ForeignKeyViolation,     // SQLITE_CONSTRAINT_FOREIGNKEY
        1299 => || ErrorKind::NotNullViolation,       // SQLITE_CONSTRAINT_NOTNULL
        275 => || ErrorKind::CheckViolation,          // SQLITE_CONSTRAINT_CHECK
        _ => || ErrorKind::Other,
    };
    DatabaseAnswer {
        code: code.to_string(),
        message,
        kind,
    }
    .into_error()
}

fn refused(message: String) -> sqlx::Error {
    answer(SQLITE_ERROR, message)
}

pub(crate) fn error(e: rusqlite::Error) -> sqlx::Error {
    let code = match &e {
        rusqlite::Error::SqliteFailure(failure, _) => failure.extended_code,
        _ => SQLITE_ERROR,
    };
    answer(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT, b BLOB)")
            .unwrap();
        conn
    }

    #[test]
    fn parameters_are_bound_by_their_number_not_their_place() {
        let conn = memory();
        let args = [
            Value::Int(7),
            Value::Text("k".into()),
            Value::Null(Kind::Blob),
        ];
        let (_, changed) = run(
            &conn,
            "INSERT INTO t (n, k, b) VALUES ($1, $2, $3)",
            &args,
            false,
        )
        .unwrap();
        assert_eq!(changed, 1);
        // $2 before $1, and $1 twice.
        let (rows, _) = run(
            &conn,
            "SELECT k, n + $1 AS m, b FROM t WHERE k = $2 AND n = $1",
            &[Value::Int(7), Value::Text("k".into())],
            true,
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].try_get::<String, _>("k").unwrap(), "k");
        assert_eq!(rows[0].try_get::<i64, _>("m").unwrap(), 14);
        assert_eq!(rows[0].try_get::<Option<Vec<u8>>, _>("b").unwrap(), None);
    }

    #[test]
    fn a_dollar_in_quoted_text_is_text_not_a_parameter() {
        let conn = memory();
        let (rows, _) = run(
            &conn,
            r#"SELECT '$1 and ''$2''' AS s, "$3" AS q, $1 AS n FROM (SELECT 1 AS "$3")"#,
            &[Value::Int(5)],
            true,
        )
        .unwrap();
        assert_eq!(rows[0].try_get::<String, _>("s").unwrap(), "$1 and '$2'");
        assert_eq!(rows[0].try_get::<i64, _>("q").unwrap(), 1);
        assert_eq!(rows[0].try_get::<i64, _>("n").unwrap(), 5);
        assert_eq!(numbered("SELECT k FROM t"), "SELECT k FROM t");
        assert_eq!(
            numbered("VALUES ($1, $12), ('$3', $)"),
            "VALUES (?1, ?12), ('$3', $)"
        );
    }

    #[test]
    fn a_missing_argument_is_refused_not_bound_as_null() {
        let conn = memory();
        let e = run(
            &conn,
            "INSERT INTO t (k, n) VALUES ($1, $2)",
            &[Value::Text("k".into())],
            false,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("no argument for parameter $2"),
            "{e}"
        );
        assert!(!crate::failure::is_transient(&e));
    }

    #[test]
    fn constraint_violations_are_classified_like_sqlx_does() {
        let conn = memory();
        let insert = "INSERT INTO t (k) VALUES ($1)";
        run(&conn, insert, &[Value::Text("k".into())], false).unwrap();
        let e = run(&conn, insert, &[Value::Text("k".into())], false).unwrap_err();
        let sqlx::Error::Database(db) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(db.kind(), ErrorKind::UniqueViolation);
        assert_eq!(db.code().as_deref(), Some("1555"));
        assert!(!crate::failure::is_transient(&e));
    }

    #[test]
    fn returning_rows_of_a_write_are_read_and_counted() {
        let conn = memory();
        let (rows, changed) = run(
            &conn,
            "INSERT INTO t (k) VALUES ($1), ($2) ON CONFLICT (k) DO NOTHING RETURNING k",
            &[Value::Text("a".into()), Value::Text("b".into())],
            true,
        )
        .unwrap();
        assert_eq!((rows.len(), changed), (2, 2));
        let (_, changed) = run(
            &conn,
            "INSERT INTO t (k) VALUES ($1) ON CONFLICT (k) DO NOTHING RETURNING k",
            &[Value::Text("a".into())],
            false,
        )
        .unwrap();
        assert_eq!(changed, 0);
    }
}
