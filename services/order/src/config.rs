use orderflow_runtime::{RuntimeConfig, ServiceConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub runtime: RuntimeConfig,
    /// How long an `Idempotency-Key` stands for the order it created (a day,
    /// the widely used convention); after that the key is free again.
    pub idempotency_key_ttl_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        let runtime = RuntimeConfig::for_service("order", 8082);
        Self {
            runtime,
            idempotency_key_ttl_ms: 24 * 3_600_000,
        }
    }
}

impl ServiceConfig for Config {
    fn validate(&self) -> Result<(), String> {
        if self.idempotency_key_ttl_ms == 0 {
            return Err(
                "idempotency_key_ttl_ms must be above 0: set ORDERFLOW_IDEMPOTENCY_KEY_TTL_MS"
                    .into(),
            );
        }
        self.runtime.validate_api()?;
        self.runtime.validate()
    }
}
