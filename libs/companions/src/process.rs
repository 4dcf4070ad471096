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

/// The ports [`free_port`] hands out: below the kernel's ephemeral range
/// (32768–60999 by default), so no outgoing connection is given one between
/// the moment it is found free and the moment its process binds it (a port
/// from `bind(0)` is an ephemeral one: a Kafka client's connection took one
/// once, and the service meant to listen on it exited "Address already in
/// use"). Clear of the fixed ports of the scripts (15432, 18080, 19092–3,
/// 23790, 23800, 26443).
const PORTS: std::ops::Range<u16> = 20000..23700;

/// Where a process starts in [`PORTS`]: from its id and the clock, so test
/// processes started together start far apart.
fn seed() -> u32 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    std::process::id().hash(&mut h);
    std::time::SystemTime::now().hash(&mut h);
    h.finish() as u32
}

/// A loopback port nobody listens on now, and that no outgoing connection
/// will take: each call in a process tries the next one of [`PORTS`], from a
/// start that differs between processes (two processes may still meet:
/// `cargo test` runs one test binary at a time).
pub fn free_port() -> Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(PORTS.end - PORTS.start);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        seed() % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = PORTS.start + offset as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free loopback port in {PORTS:?}")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_below_the_ephemeral_range_and_not_handed_out_twice() {
        let ports: Vec<u16> = (0..50).map(|_| free_port().unwrap()).collect();
        assert!(ports.iter().all(|p| PORTS.contains(p)), "{ports:?}");
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "{ports:?}");
        // A port somebody listens on is not handed out.
        let taken = std::net::TcpListener::bind(("127.0.0.1", free_port().unwrap())).unwrap();
        let taken = taken.local_addr().unwrap().port();
        assert!((0..50).all(|_| free_port().unwrap() != taken));
    }
}
