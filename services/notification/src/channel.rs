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
    /// Whether a notification needs the customer's email address to go.
    fn needs_address(&self) -> bool {
        false
    }
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
    /// Redirects are never followed (a webhook answers, it does not send
    /// us elsewhere); internal addresses are refused unless `allow_private`.
    pub fn new(url: String, timeout: Duration, allow_private: bool) -> Self {
        let mut http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none());
        if !allow_private {
            http = http.dns_resolver(std::sync::Arc::new(crate::destination::PublicOnly));
        }
        Self {
            url,
            http: http.build().expect("reqwest client builds"),
        }
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
            .map_err(|e| {
                // Its URL may carry a token: the error names no URL.
                let e = e.without_url();
                match crate::destination::NotPublic::in_chain(&e) {
                    Some(refused) => ChannelError::Refused(refused.to_string()),
                    None => ChannelError::Unavailable(e.to_string()),
                }
            })?;
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
