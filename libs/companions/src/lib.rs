//! The servers orderflow runs beside itself on one machine — Jaeger for
//! traces, Mailpit for email — for the tests and for `orderflow dev
//! --jaeger` / `--mail`. Each is built once from its Go module by
//! `tools/scripts/observability-tools.sh` (cached under
//! `~/.cache/orderflow/tools`), started on loopback ports the caller
//! chooses, and stopped when its handle is dropped. ChromeDriver (Debian's
//! package) drives the console tests' headless Chromium.

mod chromedriver;
mod jaeger;
mod mailpit;
mod process;

pub use chromedriver::Chromedriver;
pub use jaeger::Jaeger;
pub use mailpit::{Mailpit, MailpitOptions};
pub use process::free_port;
