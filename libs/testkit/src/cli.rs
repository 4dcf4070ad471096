//! The operator CLI (`orderflow`) as a test runs it: the binary from the same
//! target folder as the test (`cargo build --bins` first), pointed at a
//! stack's broker and registry through the variables the services read.

use std::process::Output;

use anyhow::{bail, Context, Result};

/// A binary of the workspace (`orderflow`, `orderflow-inventory`, …) from
/// the test's own target folder.
pub fn binary(name: &str) -> Result<std::path::PathBuf> {
    let bin = std::env::current_exe()?
        .parent()
        .and_then(|p| p.parent())
        .context("target folder")?
        .join(name);
    if !bin.exists() {
        bail!(
            "{} is missing: run `cargo build --bins` first",
            bin.display()
        );
    }
    Ok(bin)
}

/// What every service process needs besides its own settings: loopback
/// ports for its API and operations port, and the token issuer the tests
/// share (a service with an API refuses to start without one).
pub fn service_env() -> Vec<(&'static str, String)> {
    listening_env("127.0.0.1:0", "127.0.0.1:0")
}

/// A process's API and operations addresses, and the shared token issuer.
pub fn listening_env(api: &str, ops: &str) -> Vec<(&'static str, String)> {
    let issuer = crate::shared_issuer();
    vec![
        ("ORDERFLOW_HTTP_ADDR", api.into()),
        ("ORDERFLOW_OPS_ADDR", ops.into()),
        ("ORDERFLOW_AUTH_JWKS_URL", issuer.jwks_url()),
        ("ORDERFLOW_AUTH_ISSUER", issuer.url.clone()),
    ]
}

/// Runs `orderflow args…` against `bootstrap` and `registry`.
pub async fn orderflow(bootstrap: &str, registry: &str, args: &[&str]) -> Result<Output> {
    orderflow_env(bootstrap, registry, &[], args).await
}

/// `orderflow audit args…` as an operator runs it: each service's own API
/// (`urls`, by service name) and an operator's `token` in the variables
/// the services' own settings use.
pub async fn audit(
    bootstrap: &str,
    registry: &str,
    urls: &std::collections::BTreeMap<&'static str, String>,
    token: &str,
    args: &[&str],
) -> Result<Output> {
    let mut env: Vec<(String, String)> = orderflow_runtime::topics::CONSUMING_SERVICES
        .iter()
        .filter_map(|s| {
            let url = urls.get(s)?;
            Some((format!("ORDERFLOW_{}_URL", s.to_uppercase()), url.clone()))
        })
        .collect();
    env.push(("ORDERFLOW_TOKEN".into(), token.to_string()));
    orderflow_env(bootstrap, registry, &env, &[&["audit"], args].concat()).await
}

/// Runs `orderflow args…` against `bootstrap` and `registry`, with `env` too.
pub async fn orderflow_env(
    bootstrap: &str,
    registry: &str,
    env: &[(String, String)],
    args: &[&str],
) -> Result<Output> {
    let bin = binary("orderflow")?;
    let output = tokio::process::Command::new(&bin)
        .args(args)
        .env("ORDERFLOW_KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("ORDERFLOW_SCHEMA_REGISTRY_URL", registry)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("ORDERFLOW_DATABASE_URL")
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", bin.display()))?;
    Ok(output)
}

/// Runs `orderflow args…`, which must succeed; returns what it printed.
pub async fn orderflow_ok(bootstrap: &str, registry: &str, args: &[&str]) -> Result<String> {
    let output = orderflow(bootstrap, registry, args).await?;
    if !output.status.success() {
        bail!(
            "orderflow {} exited {}:\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
