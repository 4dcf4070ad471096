use orderflow_runtime::{RuntimeConfig, ServiceConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub runtime: RuntimeConfig,
    /// Added latency of each sandbox provider call, in milliseconds.
    pub sandbox_latency_ms: u64,
    /// Share of sandbox provider calls that fail transiently (0.0 to 1.0), to
    /// exercise retries and the circuit breaker.
    pub sandbox_failure_rate: f64,
    /// Timeout of one provider call, in milliseconds.
    pub provider_timeout_ms: u64,
    /// Serve `GET`/`PUT /v1/sandbox` (operators only) to change the sandbox's
    /// latency and failure rate while it runs: for tests and demos; off by
    /// default.
    pub sandbox_api: bool,
}

impl Default for Config {
    fn default() -> Self {
        let runtime = RuntimeConfig::for_service("payment", 8084);
        Self {
            runtime,
            sandbox_latency_ms: 0,
            sandbox_failure_rate: 0.0,
            provider_timeout_ms: 2_000,
            sandbox_api: false,
        }
    }
}

impl ServiceConfig for Config {
    fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sandbox_failure_rate) {
            return Err(format!(
                "sandbox_failure_rate must be between 0 and 1, got {}: set ORDERFLOW_SANDBOX_FAILURE_RATE",
                self.sandbox_failure_rate
            ));
        }
        self.runtime.validate_api()?;
        self.runtime.validate()
    }
}
