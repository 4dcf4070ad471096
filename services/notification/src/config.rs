use orderflow_runtime::{RuntimeConfig, ServiceConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub runtime: RuntimeConfig,
    /// `log` (write the message to the service log) or `webhook` (POST it as JSON).
    pub channel: String,
    /// Where the webhook channel posts; required when `channel = "webhook"`.
    pub webhook_url: Option<String>,
    /// Timeout of one channel call, in milliseconds.
    pub channel_timeout_ms: u64,
    /// Let the webhook reach loopback, private and link-local addresses
    /// (off: a webhook posts to the internet).
    pub webhook_allow_private: bool,
}

impl Default for Config {
    fn default() -> Self {
        let runtime = RuntimeConfig::for_service("notification", 8086);
        Self {
            runtime,
            channel: "log".into(),
            webhook_url: None,
            channel_timeout_ms: 2_000,
            webhook_allow_private: false,
        }
    }
}

impl ServiceConfig for Config {
    fn validate(&self) -> Result<(), String> {
        match (self.channel.as_str(), &self.webhook_url) {
            ("log", _) => {}
            ("webhook", Some(url)) if url.starts_with("http") => {
                if let Some(why) = crate::destination::refuse_literal(url) {
                    if !self.webhook_allow_private {
                        return Err(format!(
                            "webhook_url {}: {why}; set ORDERFLOW_WEBHOOK_ALLOW_PRIVATE=true if it is meant to be internal",
                            orderflow_runtime::redact(url)
                        ));
                    }
                }
            }
            ("webhook", _) => {
                return Err("channel is webhook but webhook_url is not an http(s) URL: set ORDERFLOW_WEBHOOK_URL".into())
            }
            (other, _) => return Err(format!("channel `{other}` is unknown: set ORDERFLOW_CHANNEL to log or webhook")),
        }
        self.runtime.validate()
    }
}
