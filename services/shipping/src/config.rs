use orderflow_runtime::{RuntimeConfig, ServiceConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub runtime: RuntimeConfig,
    /// The carrier's name on shipments.
    pub carrier: String,
    /// ISO country codes the carrier does not deliver to.
    pub unserved_countries: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        let mut runtime = RuntimeConfig::default();
        runtime.http_addr = ([127, 0, 0, 1], 8085).into();
        runtime.database_url = "sqlite://.data/shipping.db".into();
        Self { runtime, carrier: "orderflow-post".into(), unserved_countries: vec!["AQ".into()] }
    }
}

impl ServiceConfig for Config {
    fn validate(&self) -> Result<(), String> {
        if self.carrier.trim().is_empty() {
            return Err("carrier must not be empty: set ORDERFLOW_CARRIER".into());
        }
        self.runtime.validate()
    }
}
