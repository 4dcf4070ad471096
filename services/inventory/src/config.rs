use orderflow_runtime::{RuntimeConfig, ServiceConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub runtime: RuntimeConfig,
}

impl Default for Config {
    fn default() -> Self {
        let runtime = RuntimeConfig::for_service("inventory", 8083);
        Self { runtime }
    }
}

impl ServiceConfig for Config {
    fn validate(&self) -> Result<(), String> {
        self.runtime.validate_api()?;
        self.runtime.validate()
    }
}
