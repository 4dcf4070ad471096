//! Finding a companion's binary and waiting for it to answer.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The binary of `tool` (`jaeger`, `mailpit`): `ORDERFLOW_<TOOL>_BIN` if set,
/// else what `tools/scripts/observability-tools.sh` prints — building it
/// first if it is not cached.
pub(crate) fn binary(tool: &str) -> Result<PathBuf> {
    let var = format!("ORDERFLOW_{}_BIN", tool.to_uppercase());
    if let Ok(path) = std::env::var(&var) {
        return Ok(PathBuf::from(path));
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tools/scripts/observability-tools.sh"
    );
    let out = std::process::Command::new(script)
        .arg(tool)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {script} (or set {var} to a {tool} binary)"))?;
    if !out.status.success() {
        bail!(
            "{script} {tool} failed ({}); set {var} to a {tool} binary instead",
            out.status
        );
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// Starts `command` (running `bin`) with its output to `log`, or nowhere;
/// the child is killed when dropped.
pub(crate) fn spawn(
    command: &mut tokio::process::Command,
    bin: &Path,
    log: Option<std::fs::File>,
) -> Result<tokio::process::Child> {
    let (out, err) = match log {
        Some(f) => (Stdio::from(f.try_clone()?), Stdio::from(f)),
        None => (Stdio::null(), Stdio::null()),
    };
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

/// A loopback port nobody listens on now.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until `url` answers 2xx, or `child` exits, or 60 s pass.
pub(crate) async fn wait_ready(
    what: &str,
    url: &str,
    child: &mut tokio::process::Child,
) -> Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if http
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited ({status}) before it answered {url}");
        }
        if Instant::now() > deadline {
            bail!("{what} did not answer {url} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
