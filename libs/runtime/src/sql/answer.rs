//! A database's refusal as sqlx reports it (`sqlx::Error::Database`): a code
//! (a SQLSTATE, a SQLite extended result code), a message and the kind of
//! refusal, which `failure::is_transient` classifies.

use std::borrow::Cow;

use sqlx::error::{DatabaseError, ErrorKind};

#[derive(Debug)]
pub(crate) struct DatabaseAnswer {
    pub code: String,
    pub message: String,
    /// `ErrorKind` is not `Clone`: a function that makes it.
    pub kind: fn() -> ErrorKind,
}

impl DatabaseAnswer {
    pub(crate) fn into_error(self) -> sqlx::Error {
        sqlx::Error::Database(Box::new(self))
    }
}

impl std::fmt::Display for DatabaseAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for DatabaseAnswer {}

impl DatabaseError for DatabaseAnswer {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.code))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        (self.kind)()
    }
}
