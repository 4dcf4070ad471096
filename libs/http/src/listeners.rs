//! A server's two ports: the API, where every call needs a token, and the
//! operations port with the health probes and the metrics, which the
//! network admits only kubelet and Prometheus to.

use std::net::SocketAddr;

use tokio::net::TcpListener;

pub struct Listeners {
    pub api: TcpListener,
    pub ops: TcpListener,
}

impl Listeners {
    pub async fn bind(api: SocketAddr, ops: SocketAddr) -> std::io::Result<Self> {
        Ok(Self {
            api: TcpListener::bind(api).await?,
            ops: TcpListener::bind(ops).await?,
        })
    }

    /// Two free ports on loopback (tests).
    pub async fn local() -> std::io::Result<Self> {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::bind(loopback, loopback).await
    }

    /// The API's base URL and the operations port's, as `http://host:port`.
    pub fn urls(&self) -> std::io::Result<(String, String)> {
        Ok((
            format!("http://{}", self.api.local_addr()?),
            format!("http://{}", self.ops.local_addr()?),
        ))
    }
}
