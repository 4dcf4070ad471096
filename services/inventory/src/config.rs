use orderflow_runtime::{RuntimeConfig, ServiceConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub runtime: RuntimeConfig,
}

impl Default for Config {
    fn default() -> Self {
        let mut runtime = RuntimeConfig::default();
        runtime.http_addr = ([127, 0, 0, 1], 8083).into();
        runtime.database_url = "sqlite://.data/inventory.db".into();
        Self { runtime }
    }
}

impl ServiceConfig for Config {
    fn validate(&self) -> Result<(), String> {
        self.runtime.validate()
    }
}
