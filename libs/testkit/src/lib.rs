//! Test kit: the platform started the way each test tier needs it, and the
//! client and checks the tiers share.
//!
//! - [`Stack`]: everything in one test process on librdkafka's mock cluster
//!   (the component tier);
//! - [`system::ProcessStack`]: every service as its own OS process on real
//!   Kafka and PostgreSQL (the system tier);
//! - [`Api`]: the gateway's API as a client, and checks on what it returns.

mod api;
pub mod browser;
pub mod chaos;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod harness;
pub mod idle;
mod kafka;
pub mod launch;
pub mod load;
pub mod metrics;
mod stack;
mod stray;
pub mod system;
pub mod traces;

pub use api::{check_four_outcomes, order_body, Api};
pub use kafka::{Duplicator, GroupMember, KafkaProbe, DUPLICATE_MARKER};
pub use stack::{Options, Stack};

use anyhow::Context as _;

/// A token issuer on a loopback port of its own thread (each test's Tokio
/// runtime ends with the test; the issuer lives as long as the process),
/// one per test binary: every stack's gateway trusts it.
pub fn shared_issuer() -> std::sync::Arc<orderflow_auth::Issuer> {
    use std::sync::{Arc, OnceLock};
    static ISSUER: OnceLock<Arc<orderflow_auth::Issuer>> = OnceLock::new();
    ISSUER.get_or_init(|| issuer_on("127.0.0.1")).clone()
}

/// A token issuer listening on `host` (a free port), for as long as the process lives.
pub fn issuer_on(host: &str) -> std::sync::Arc<orderflow_auth::Issuer> {
    serve_on_thread(host, |url| {
        let issuer = std::sync::Arc::new(
            orderflow_auth::Issuer::new(url, orderflow_auth::DEFAULT_AUDIENCE)
                .expect("the issuer's keys"),
        );
        (issuer.clone(), issuer.router())
    })
}

/// A schema registry listening on `host` (a free port), for as long as the
/// process lives; returns its URL.
pub fn registry_on(host: &str) -> String {
    serve_on_thread(host, |url| {
        (
            url.to_string(),
            orderflow_registry::Registry::new().router(),
        )
    })
}

/// Serves what `make` builds (given its own URL) on a free port of `host`,
/// from a thread of its own: each test's Tokio runtime ends with the test,
/// a server shared by the tests of a binary must outlive them.
fn serve_on_thread<T: Send + 'static>(
    host: &str,
    make: impl FnOnce(&str) -> (T, axum::Router) + Send + 'static,
) -> T {
    let bind = format!("{host}:0");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(&bind)
                .await
                .unwrap_or_else(|e| panic!("binding {bind}: {e}"));
            let url = format!("http://{}", listener.local_addr().expect("address"));
            let (handle, router) = make(&url);
            tx.send(handle).expect("the test waits");
            let _ = axum::serve(listener, router).await;
        });
    });
    rx.recv().expect("the server's thread reports")
}

/// Logs go to the test output when `RUST_LOG` is set.
pub(crate) fn init_test_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Where a service of this stack keeps its data. SQLite files in the stack's
/// folder by default; with `ORDERFLOW_TEST_DATABASE=postgres://user:pw@host:port`
/// (a role allowed to create databases), a fresh PostgreSQL database each.
pub async fn database_url(dir: &std::path::Path, service: &str) -> anyhow::Result<String> {
    let Ok(server) = std::env::var("ORDERFLOW_TEST_DATABASE") else {
        return Ok(format!("sqlite://{}/{service}.db", dir.display()));
    };
    use orderflow_runtime::sqlx::{self, Connection};
    sqlx::any::install_default_drivers();
    let server = server.trim_end_matches('/');
    let name = format!("of_{}_{service}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::AnyConnection::connect(&format!("{server}/postgres"))
        .await
        .with_context(|| format!("connecting to {server}/postgres (ORDERFLOW_TEST_DATABASE)"))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(format!("{server}/{name}"))
}
