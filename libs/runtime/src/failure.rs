//! Which database failures are worth retrying. Retrying what can never
//! succeed (a constraint violation, a value that does not decode) only delays
//! the dead letter an operator needs to see; not retrying what passes (a lost
//! connection, a deadlock victim) strands an order.

use sqlx::error::ErrorKind;

/// Connection loss, timeouts, pool exhaustion, serialization failures,
/// deadlocks and a busy database are transient; everything the database
/// refuses for what was asked (constraints, syntax, types) and every decoding
/// error is permanent.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => {
            if !matches!(db.kind(), ErrorKind::Other) {
                return false; // unique, foreign key, not null, check
            }
            db.code().is_some_and(|code| is_transient_code(&code))
        }
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs and SQLite result codes of passing trouble.
fn is_transient_code(code: &str) -> bool {
    const POSTGRES: [&str; 9] = [
        "40001", // serialization_failure
        "40P01", // deadlock_detected
        "55P03", // lock_not_available
        "57014", // query_canceled (statement timeout)
        "57P01", // admin_shutdown
        "57P02", // crash_shutdown
        "57P03", // cannot_connect_now
        "25P03", // idle_in_transaction_session_timeout
        "53300", // too_many_connections
    ];
    const POSTGRES_CLASSES: [&str; 3] = [
        "08", // connection exception
        "53", // insufficient resources (disk full, out of memory)
        "58", // system error (I/O)
    ];
    const SQLITE: [&str; 6] = [
        "5",   // SQLITE_BUSY
        "6",   // SQLITE_LOCKED
        "13",  // SQLITE_FULL: the disk may be freed
        "261", // SQLITE_BUSY_RECOVERY
        "517", // SQLITE_BUSY_SNAPSHOT
        "262", // SQLITE_LOCKED_SHAREDCACHE
    ];
    POSTGRES.contains(&code)
        || SQLITE.contains(&code)
        || POSTGRES_CLASSES
            .iter()
            .any(|class| code.len() == 5 && code.starts_with(class))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_trouble_is_transient_and_refusals_are_not() {
        for code in ["40001", "40P01", "08006", "53100", "57P01", "5", "517"] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in ["23505", "23503", "42601", "22P02", "19", "2067", "1"] {
            assert!(!is_transient_code(code), "{code}");
        }
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
        assert!(!is_transient(&sqlx::Error::ColumnNotFound("x".into())));
    }

    /// A database's answer with this SQLSTATE (or SQLite code) and kind.
    fn answer(code: &'static str, kind: fn() -> ErrorKind) -> sqlx::Error {
        crate::sql::answer::DatabaseAnswer {
            code: code.into(),
            message: format!("database said {code}"),
            kind,
        }
        .into_error()
    }

    #[test]
    fn the_database_answer_decides_by_its_kind_then_its_code() {
        assert!(
            is_transient(&answer("40001", || ErrorKind::Other)),
            "serialization failure"
        );
        assert!(
            is_transient(&answer("5", || ErrorKind::Other)),
            "SQLite busy"
        );
        assert!(
            !is_transient(&answer("22021", || ErrorKind::Other)),
            "NUL in a key"
        );
        assert!(
            !is_transient(&answer("54000", || ErrorKind::Other)),
            "over the index limit"
        );
        // A constraint is a refusal, whatever its code looks like.
        assert!(!is_transient(&answer("40001", || {
            ErrorKind::UniqueViolation
        })));
        assert!(!is_transient(&answer("5", || ErrorKind::CheckViolation)));
    }
}
