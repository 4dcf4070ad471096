use orderflow_runtime::{RuntimeConfig, ServiceConfig};
use serde::{Deserialize, Serialize};

use crate::smtp::{SmtpChannel, SmtpSettings, SmtpTls};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub runtime: RuntimeConfig,
    /// `log` (write the message to the service log), `webhook` (POST it as
    /// JSON) or `smtp` (email it to the order's address).
    pub channel: String,
    /// Where the webhook channel posts; required when `channel = "webhook"`.
    pub webhook_url: Option<String>,
    /// Timeout of one channel call, in milliseconds.
    pub channel_timeout_ms: u64,
    /// Let the webhook reach loopback, private and link-local addresses
    /// (off: a webhook posts to the internet).
    pub webhook_allow_private: bool,
    /// The SMTP server of the smtp channel; required with `channel = "smtp"`.
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    /// `starttls` (required STARTTLS), `tls` (implicit TLS) or `none`.
    pub smtp_tls: String,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    /// The sender, e.g. `orderflow <orders@example.com>`; required with smtp.
    pub smtp_from: Option<String>,
    /// A PEM certificate to trust for the SMTP server besides the system's.
    pub smtp_ca_file: Option<String>,
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
            smtp_host: None,
            smtp_port: 587,
            smtp_tls: "starttls".into(),
            smtp_username: None,
            smtp_password: None,
            smtp_from: None,
            smtp_ca_file: None,
        }
    }
}

impl Config {
    /// The smtp channel's settings, when they are complete and can work.
    pub fn smtp(&self) -> Result<SmtpSettings, String> {
        let Some(host) = self.smtp_host.clone().filter(|h| !h.is_empty()) else {
            return Err("channel is smtp but smtp_host is not set: set ORDERFLOW_SMTP_HOST".into());
        };
        let Some(from) = self.smtp_from.clone() else {
            return Err("channel is smtp but smtp_from is not set: set ORDERFLOW_SMTP_FROM, e.g. \"orderflow <orders@example.com>\"".into());
        };
        let credentials = match (&self.smtp_username, &self.smtp_password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (None, None) => None,
            _ => return Err("smtp_username and smtp_password go together: set both ORDERFLOW_SMTP_USERNAME and ORDERFLOW_SMTP_PASSWORD, or neither".into()),
        };
        Ok(SmtpSettings {
            host,
            port: self.smtp_port,
            tls: SmtpTls::parse(&self.smtp_tls)?,
            credentials,
            from,
            ca_file: self.smtp_ca_file.clone(),
            timeout: std::time::Duration::from_millis(self.channel_timeout_ms),
        })
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
            ("smtp", _) => {
                SmtpChannel::check(&self.smtp()?)?;
            }
            (other, _) => return Err(format!("channel `{other}` is unknown: set ORDERFLOW_CHANNEL to log, webhook or smtp")),
        }
        self.runtime.validate_api()?;
        self.runtime.validate()
    }
}
