//! Jaeger v2 all-in-one (assets/jaeger.yaml): OTLP/HTTP in, memory storage,
//! the query API out.

use anyhow::Result;
use tokio::process::{Child, Command};

use crate::process::{binary, spawn, wait_ready};

/// Its configuration: the ports come from the environment it is given.
const CONFIG: &str = include_str!("../assets/jaeger.yaml");

/// A running Jaeger; stopped when dropped.
pub struct Jaeger {
    /// Where services send spans: `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otlp_endpoint: String,
    /// The query API (and UI, when the binary has its assets).
    pub query_url: String,
    _child: Child,
    _config: tempfile::NamedTempFile,
}

impl Jaeger {
    /// Starts Jaeger with OTLP/HTTP on `otlp_port` and the query API on
    /// `query_port` (its gRPC query API on `grpc_port`), all on 127.0.0.1;
    /// its log goes to `log` (or nowhere). Returns once the query API answers.
    pub async fn start(
        otlp_port: u16,
        query_port: u16,
        grpc_port: u16,
        log: Option<std::fs::File>,
    ) -> Result<Self> {
        Self::launch("127.0.0.1", otlp_port, query_port, grpc_port, log).await
    }

    /// On free ports of `host` (where other machines' processes, a cluster's
    /// Pods say, send spans and read traces), its gRPC query API on
    /// 127.0.0.1; its log discarded.
    pub async fn start_receiving_on(host: &str) -> Result<Self> {
        use crate::process::free_port;
        Self::launch(host, free_port()?, free_port()?, free_port()?, None).await
    }

    async fn launch(
        host: &str,
        otlp_port: u16,
        query_port: u16,
        grpc_port: u16,
        log: Option<std::fs::File>,
    ) -> Result<Self> {
        let bin = binary("jaeger")?;
        let mut config = tempfile::Builder::new().suffix(".yaml").tempfile()?;
        std::io::Write::write_all(&mut config, CONFIG.as_bytes())?;
        let mut command = Command::new(&bin);
        command
            .arg("--config")
            .arg(config.path())
            .env("JAEGER_OTLP_HTTP_HOST", host)
            .env("JAEGER_QUERY_HOST", host)
            .env("JAEGER_OTLP_HTTP_PORT", otlp_port.to_string())
            .env("JAEGER_QUERY_PORT", query_port.to_string())
            .env("JAEGER_QUERY_GRPC_PORT", grpc_port.to_string());
        let mut child = spawn(&mut command, &bin, log)?;
        let query_url = format!("http://{host}:{query_port}");
        wait_ready("jaeger", &format!("{query_url}/api/services"), &mut child).await?;
        Ok(Self {
            otlp_endpoint: format!("http://{host}:{otlp_port}"),
            query_url,
            _child: child,
            _config: config,
        })
    }

    /// On free loopback ports, its log discarded (tests).
    pub async fn start_anywhere() -> Result<Self> {
        use crate::process::free_port;
        Self::start(free_port()?, free_port()?, free_port()?, None).await
    }
}
