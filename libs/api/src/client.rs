//! A client of the gateway's API, for the operator CLI and the tests: set
//! stock, read orders, and wait until a set of orders is terminal.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt, TryStreamExt};

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
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
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

    /// Polls until every order is SHIPPED or CANCELLED; returns them.
    pub async fn wait_all_terminal(
        &self,
        ids: &[String],
        timeout: Duration,
    ) -> Result<Vec<OrderView>, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut pending: Vec<String> = ids.to_vec();
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
            let views: Vec<OrderView> = stream::iter(&pending)
                .map(|id| self.order(id))
                .buffer_unordered(32)
                .try_collect()
                .await?;
            pending.clear();
            for view in views {
                if view.status == "SHIPPED" || view.status == "CANCELLED" {
                    done.push(view);
                } else {
                    pending.push(view.order_id);
                }
            }
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(done)
    }
}
