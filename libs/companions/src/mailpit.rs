//! Mailpit: a real SMTP server that keeps what it receives and shows it
//! through an HTTP API (`/api/v1/messages`).

use anyhow::Result;
use tokio::process::{Child, Command};

use crate::process::{binary, spawn, wait_ready};

/// How Mailpit's SMTP side is set up; the default takes plain SMTP from
/// anyone, as a development mail catcher does.
#[derive(Debug, Clone, Default)]
pub struct MailpitOptions {
    /// A PEM certificate and key: Mailpit offers STARTTLS with them…
    pub tls_cert_and_key: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// …and refuses mail until the client has started TLS.
    pub require_starttls: bool,
    /// `user:password` pairs (htpasswd), making authentication required.
    pub auth: Option<String>,
}

/// A running Mailpit; stopped (and its mailbox removed) when dropped.
pub struct Mailpit {
    pub smtp_port: u16,
    /// Its HTTP API (`/api/v1/messages`) and web UI, when it has its assets.
    pub http_url: String,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl Mailpit {
    /// Starts Mailpit with SMTP on `smtp_port` and HTTP on `http_port`, both
    /// on 127.0.0.1; its log goes to `log` (or nowhere). Returns once both answer.
    pub async fn start(
        smtp_port: u16,
        http_port: u16,
        options: &MailpitOptions,
        log: Option<std::fs::File>,
    ) -> Result<Self> {
        let bin = binary("mailpit")?;
        let dir = tempfile::tempdir()?;
        let mut command = Command::new(&bin);
        command
            .arg(format!("--smtp=127.0.0.1:{smtp_port}"))
            .arg(format!("--listen=127.0.0.1:{http_port}"))
            .arg(format!(
                "--database={}",
                dir.path().join("mailpit.db").display()
            ))
            .arg("--disable-version-check")
            .arg("--smtp-disable-rdns")
            .arg("--quiet");
        if let Some((cert, key)) = &options.tls_cert_and_key {
            command
                .arg(format!("--smtp-tls-cert={}", cert.display()))
                .arg(format!("--smtp-tls-key={}", key.display()));
        }
        if options.require_starttls {
            command.arg("--smtp-require-starttls");
        }
        if let Some(auth) = &options.auth {
            let file = dir.path().join("auth");
            std::fs::write(&file, auth)?;
            command.arg(format!("--smtp-auth-file={}", file.display()));
        }
        let mut child = spawn(&mut command, &bin, log)?;
        let http_url = format!("http://127.0.0.1:{http_port}");
        wait_ready("mailpit", &format!("{http_url}/readyz"), &mut child).await?;
        // Its HTTP side comes up first: wait for the SMTP port too.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", smtp_port))
            .await
            .is_err()
        {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "mailpit's SMTP port {smtp_port} did not open within 30 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(Self {
            smtp_port,
            http_url,
            _child: child,
            _dir: dir,
        })
    }

    /// On free loopback ports, its log discarded (tests).
    pub async fn start_anywhere(options: &MailpitOptions) -> Result<Self> {
        use crate::process::free_port;
        Self::start(free_port()?, free_port()?, options, None).await
    }
}
