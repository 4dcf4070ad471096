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
        let runtime = RuntimeConfig::for_service("shipping", 8085);
        Self {
            runtime,
            carrier: "orderflow-post".into(),
            unserved_countries: vec!["AQ".into()],
        }
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
