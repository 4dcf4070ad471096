use std::net::SocketAddr;

use orderflow_runtime::ServiceConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub http_addr: SocketAddr,
    pub order_url: String,
    pub inventory_url: String,
    pub notification_url: String,
    /// Timeout of one call to a service behind the gateway, in milliseconds.
    pub upstream_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_addr: ([127, 0, 0, 1], 8080).into(),
            order_url: "http://127.0.0.1:8082".into(),
            inventory_url: "http://127.0.0.1:8083".into(),
            notification_url: "http://127.0.0.1:8086".into(),
            upstream_timeout_ms: 5_000,
        }
    }
}

impl ServiceConfig for Config {
    fn validate(&self) -> Result<(), String> {
        for (name, url) in [
            ("order_url", &self.order_url),
            ("inventory_url", &self.inventory_url),
            ("notification_url", &self.notification_url),
        ] {
            if reqwest::Url::parse(url)
                .map(|u| u.scheme().starts_with("http"))
                .unwrap_or(false)
            {
                continue;
            }
            return Err(format!(
                "{name} `{url}` is not an http(s) URL: set ORDERFLOW_{}",
                name.to_uppercase()
            ));
        }
        Ok(())
    }
}
