//! A client of the gateway's API, for the operator CLI and the tests: set
//! stock, read orders, and wait until a set of orders is terminal. It sends
//! the bearer token it was built with on every request.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use crate::{demo_catalogue, OrderView, SetStock};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("gateway request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{what}: HTTP {status}: {body}")]
    Rejected {
        what: String,
        status: u16,
        body: String,
    },
    #[error("{pending} of {total} orders not terminal after {timeout:?}, e.g. {example}")]
    NotTerminal {
        pending: usize,
        total: usize,
        timeout: Duration,
        example: String,
    },
}

impl ClientError {
    /// Whether trying again later may succeed: the gateway or a service
    /// behind it could not be reached or did not answer (502, 503, 504).
    pub fn is_unavailable(&self) -> bool {
        match self {
            ClientError::Http(e) => e.is_connect() || e.is_timeout(),
            ClientError::Rejected { status, .. } => matches!(status, 502..=504),
            ClientError::NotTerminal { .. } => false,
        }
    }
}

/// The response if it is a success; otherwise an error with its status and body.
async fn success(
    response: reqwest::Response,
    what: impl FnOnce() -> String,
) -> Result<reqwest::Response, ClientError> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    let body = response.text().await?;
    Err(ClientError::Rejected {
        what: what(),
        status,
        body,
    })
}

#[derive(Clone)]
pub struct GatewayClient {
    pub http: reqwest::Client,
    /// The gateway's base URL, e.g. `http://127.0.0.1:8080`.
    pub base: String,
}

impl GatewayClient {
    /// A client with no token (the gateway refuses every /v1 call).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.into(),
        }
    }

    /// A client that sends `token` (`Authorization: Bearer …`) with every request.
    pub fn with_token(base: impl Into<String>, token: &str) -> Self {
        Self {
            http: bearer_client(token),
            base: base.into(),
        }
    }

    /// `PUT /v1/inventory/{sku}`.
    pub async fn set_stock(&self, sku: &str, stock: &SetStock) -> Result<(), ClientError> {
        let response = self
            .http
            .put(format!("{}/v1/inventory/{sku}", self.base))
            .json(stock)
            .send()
            .await?;
        success(response, || format!("setting stock of {sku}")).await?;
        Ok(())
    }

    /// Stocks SKU-001 to SKU-010 as the dev stack and the tests start with.
    pub async fn seed_demo_catalogue(&self) -> Result<(), ClientError> {
        for (sku, stock) in demo_catalogue() {
            self.set_stock(&sku, &stock).await?;
        }
        Ok(())
    }

    /// `GET /v1/orders/{order_id}`.
    pub async fn order(&self, order_id: &str) -> Result<OrderView, ClientError> {
        let response = self
            .http
            .get(format!("{}/v1/orders/{order_id}", self.base))
            .send()
            .await?;
        let response = success(response, || format!("reading order {order_id}")).await?;
        Ok(response.json().await?)
    }

    /// Polls until every order is terminal ([`crate::is_terminal`]); returns
    /// them. Orders finish roughly in the order they were placed, so a round
    /// reads them in that order, a chunk at a time, and stops at the first
    /// chunk with an order still running: waiting for ten thousand orders
    /// costs about one read each, not one per order and round.
    pub async fn wait_all_terminal(
        &self,
        ids: &[String],
        timeout: Duration,
    ) -> Result<Vec<OrderView>, ClientError> {
        self.wait_all_terminal_reporting(ids, timeout, &|_| {})
            .await
    }

    /// [`Self::wait_all_terminal`], telling `report` how many are terminal
    /// after each round.
    pub async fn wait_all_terminal_reporting(
        &self,
        ids: &[String],
        timeout: Duration,
        report: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<OrderView>, ClientError> {
        const CHUNK: usize = 32;
        let deadline = Instant::now() + timeout;
        let mut pending: std::collections::VecDeque<String> = ids.iter().cloned().collect();
        let mut done = Vec::with_capacity(ids.len());
        while !pending.is_empty() {
            if Instant::now() > deadline {
                return Err(ClientError::NotTerminal {
                    pending: pending.len(),
                    total: ids.len(),
                    timeout,
                    example: pending[0].clone(),
                });
            }
            let mut still_running = Vec::new();
            while still_running.is_empty() && !pending.is_empty() {
                let chunk: Vec<String> = pending.drain(..CHUNK.min(pending.len())).collect();
                let reads: Vec<(&String, Result<OrderView, ClientError>)> = stream::iter(&chunk)
                    .map(|id| async move { (id, self.order(id).await) })
                    .buffered(CHUNK)
                    .collect()
                    .await;
                for (id, read) in reads {
                    match read {
                        Ok(view) if crate::is_terminal(&view.status) => done.push(view),
                        Ok(view) => still_running.push(view.order_id),
                        // A replica restarting, say: the API says try again.
                        Err(e) if e.is_unavailable() => still_running.push(id.clone()),
                        Err(e) => return Err(e),
                    }
                }
            }
            for id in still_running.into_iter().rev() {
                pending.push_front(id);
            }
            report(done.len());
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(done)
    }
}

/// An HTTP client that sends `Authorization: Bearer <token>` with every request.
pub fn bearer_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .expect("a token is ASCII");
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .pool_idle_timeout(orderflow_http::CLIENT_POOL_IDLE)
        .build()
        .expect("reqwest client builds")
}
