//! ChromeDriver, the WebDriver server of Debian's `chromium-driver`: the
//! console tests drive a real headless Chromium through it.

use anyhow::{bail, Result};
use tokio::process::{Child, Command};

use crate::process::{free_port, spawn, wait_ready};

/// A running ChromeDriver; stopped with the browsers it started when
/// dropped, a test that fails half-way included.
pub struct Chromedriver {
    /// The WebDriver endpoint.
    pub url: String,
    child: Child,
}

impl Drop for Chromedriver {
    /// The browsers are ChromeDriver's children in its own process group:
    /// killing ChromeDriver alone would leave them running.
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Chromedriver {
    /// Starts ChromeDriver (`ORDERFLOW_CHROMEDRIVER_BIN`, else
    /// `chromedriver` on the PATH) on a free loopback port.
    pub async fn start() -> Result<Self> {
        let bin =
            std::env::var("ORDERFLOW_CHROMEDRIVER_BIN").unwrap_or_else(|_| "chromedriver".into());
        let Some(bin) = find(&bin) else {
            bail!("{bin} is not installed: `make deps` installs Debian's chromium and chromium-driver (or set ORDERFLOW_CHROMEDRIVER_BIN)");
        };
        let port = free_port()?;
        let mut command = Command::new(&bin);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .process_group(0);
        let mut child = spawn(&mut command, &bin, None)?;
        let url = format!("http://127.0.0.1:{port}");
        wait_ready("chromedriver", &format!("{url}/status"), &mut child).await?;
        Ok(Self { url, child })
    }
}

/// `name` as a path, or found on the PATH.
fn find(name: &str) -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(name);
    if path.components().count() > 1 {
        return path.is_file().then(|| path.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
