//! ChromeDriver, the WebDriver server of Debian's `chromium-driver`: the
//! console tests drive a real headless Chromium through it.

use anyhow::{Context, Result};
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
        let bin = std::path::PathBuf::from(
            std::env::var("ORDERFLOW_CHROMEDRIVER_BIN").unwrap_or_else(|_| "chromedriver".into()),
        );
        let port = free_port()?;
        let mut command = Command::new(&bin);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .process_group(0);
        let mut child = spawn(&mut command, &bin, None).context(
            "`make deps` installs Debian's chromium and chromium-driver (or set ORDERFLOW_CHROMEDRIVER_BIN)",
        )?;
        let url = format!("http://127.0.0.1:{port}");
        wait_ready("chromedriver", &format!("{url}/status"), &mut child).await?;
        Ok(Self { url, child })
    }
}
