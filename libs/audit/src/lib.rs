//! The auditor: whether the books balance across services. It folds the
//! saga's log from the beginning into each order's story ([`log`]), reads
//! each service's own account of what it holds through its API
//! ([`stores`]), and judges both by the saga's invariants
//! (`orderflow-invariants`, the same functions the simulation and the
//! chaos soak use) — [`check`]. `orderflow audit` runs it.
#![forbid(unsafe_code)]

pub mod check;
pub mod log;
pub mod read;
pub mod stores;

pub use check::{audit, more_about, Audit, Finding, Limits};
pub use log::{LogBook, OrderLog};
pub use read::{read_log, ReadError};
pub use stores::{ServiceUrls, StoreBook, StoreError};

/// An order passes through at most five steps — reserve, charge, ship,
/// then refund and release when shipping fails — and each may retry for
/// up to the services' step deadline: the longest an order may take is
/// this many step deadlines (plus a margin).
pub const STEPS: i64 = 5;
