//! Where messages go: channel adapters behind one trait.

use std::time::Duration;

use async_trait::async_trait;
use orderflow_runtime::resilience::Retryable;

use crate::domain::Notification;

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("channel unavailable: {0}")]
    Unavailable(String),
    #[error("channel refused the message: {0}")]
    Refused(String),
}

impl Retryable for ChannelError {
    fn is_retryable(&self) -> bool {
        matches!(self, ChannelError::Unavailable(_))
    }
}

#[async_trait]
pub trait Channel: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    async fn send(&self, notification: &Notification) -> Result<(), ChannelError>;
}

/// Writes the message to the service's log.
pub struct LogChannel;

#[async_trait]
impl Channel for LogChannel {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn send(&self, n: &Notification) -> Result<(), ChannelError> {
        tracing::info!(customer_id = %n.customer_id, order_id = %n.order_id, kind = n.kind, "to customer: {}", n.message);
        Ok(())
    }
}

/// POSTs the notification as JSON, with its id as `Idempotency-Key`.
pub struct WebhookChannel {
    url: String,
    http: reqwest::Client,
}

impl WebhookChannel {
    pub fn new(url: String, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .expect("reqwest client builds");
        Self { url, http }
    }
}

#[async_trait]
impl Channel for WebhookChannel {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, n: &Notification) -> Result<(), ChannelError> {
        let response = self
            .http
            .post(&self.url)
            .header("idempotency-key", &n.notification_id)
            .json(n)
            .send()
            .await
            .map_err(|e| ChannelError::Unavailable(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() || status.as_u16() == 429 {
            Err(ChannelError::Unavailable(format!(
                "webhook answered {status}"
            )))
        } else {
            Err(ChannelError::Refused(format!("webhook answered {status}")))
        }
    }
}
