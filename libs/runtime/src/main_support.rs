//! What every service binary's `main` does, once: logging, configuration (exit
//! 64 with a message when it is wrong), a Tokio runtime, and the service's
//! `run` until SIGTERM or Ctrl-C.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

use crate::config::{load_or_exit, ServiceConfig};
use crate::error::RuntimeError;

/// The shutdown future handed to a service's `run`.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

pub fn main<C, F, Fut>(binary: &'static str, run: F) -> ExitCode
where
    C: ServiceConfig,
    F: FnOnce(C, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), RuntimeError>>,
{
    // Dropped when main returns, which flushes the spans still buffered.
    let _telemetry = orderflow_telemetry::trace::init(binary);
    let config = load_or_exit::<C>(binary);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{binary}: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, Box::pin(crate::shutdown::signal()))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ RuntimeError::Config(_)) => {
            eprintln!("{binary}: {e}");
            ExitCode::from(64)
        }
        Err(e) => {
            eprintln!("{binary}: {e}");
            ExitCode::FAILURE
        }
    }
}
