//! The notification service: tells the customer about each outcome of their
//! order (payment received, shipped, out of stock, payment declined, shipping
//! failed) exactly once, through a channel adapter.

mod audit;
pub mod channel;
mod config;
mod destination;
pub mod domain;
mod handlers;
mod http;
mod smtp;
mod store;

use std::sync::Arc;
use std::time::Duration;

use orderflow_envelope::{EventType, Topic};
use orderflow_http::Listeners;
use orderflow_runtime::resilience::Policy;
use orderflow_runtime::{Handler, Runtime, RuntimeError, ServiceSpec, Shutdown};

use channel::{Channel, LogChannel, WebhookChannel};
pub use config::Config;

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "notification",
    migrations: orderflow_runtime::sqlx::migrate!("./migrations"),
    produces: &[EventType::NotificationSent],
    consumes: &[Topic::Payments, Topic::Orders],
};

/// Binds the configured addresses and runs until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), RuntimeError> {
    let runtime = &config.runtime;
    let listeners = Listeners::bind(runtime.http_addr, runtime.ops_addr).await?;
    serve(config, listeners, shutdown).await
}

/// Runs on already-bound listeners (tests bind `127.0.0.1:0`).
pub async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: Shutdown,
) -> Result<(), RuntimeError> {
    let timeout = Duration::from_millis(config.channel_timeout_ms);
    let channel: Arc<dyn Channel> = match (config.channel.as_str(), config.webhook_url.clone()) {
        ("webhook", Some(url)) => Arc::new(WebhookChannel::new(
            url,
            timeout,
            config.webhook_allow_private,
        )),
        // Validated at start: these settings build.
        ("smtp", _) => Arc::new(
            config
                .smtp()
                .and_then(|s| smtp::SmtpChannel::new(&s))
                .map_err(RuntimeError::Config)?,
        ),
        _ => Arc::new(LogChannel),
    };
    let breaker = config.runtime.breaker();
    let rt = Runtime::connect(&SPEC, config.runtime).await?;
    let policy = Policy::new("notification-channel")
        .with_timeout(timeout)
        .with_breaker(breaker)
        .with_metrics(rt.metrics());
    let handler = handler(channel, policy);
    let routes = http::routes(rt.clone()).merge(audit::routes(rt.clone()));
    rt.serve(listeners, routes, Some(handler), shutdown).await
}

/// One message per outcome through `channel`, each send under `policy`.
pub fn handler(channel: Arc<dyn Channel>, policy: Policy) -> Arc<dyn Handler> {
    Arc::new(handlers::NotificationHandler {
        channel,
        policy: Arc::new(policy),
    })
}
