//! The whole platform in one test process: librdkafka's mock cluster as the
//! broker, the schema registry, and the six services started through their
//! `serve` entry points on `127.0.0.1:0`, each with its own SQLite file. Tests
//! talk to it as users do, through the gateway's HTTP API, and look at Kafka
//! through real clients.

mod kafka;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use orderflow_api::{NotificationView, OrderView, PaymentView, StockView};
use orderflow_runtime::{RuntimeConfig, RuntimeError, Shutdown};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use kafka::{Duplicator, KafkaProbe};

/// Knobs a test may turn.
#[derive(Debug, Clone)]
pub struct Options {
    pub partitions: i32,
    /// Retry waits for transient handler failures (short in tests).
    pub retry_backoff_ms: Vec<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            partitions: 12,
            retry_backoff_ms: vec![100, 200, 400],
        }
    }
}

/// A running stack; dropping it without [`Stack::stop`] aborts the services.
pub struct Stack {
    pub gateway: String,
    pub payment: String,
    pub bootstrap: String,
    pub registry: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    services: Vec<(&'static str, JoinHandle<Result<(), RuntimeError>>)>,
    registry_task: JoinHandle<()>,
    // Kept alive for the stack's lifetime; dropped last.
    _cluster: MockCluster<'static, DefaultProducerContext>,
    _dir: tempfile::TempDir,
}

async fn bind() -> Result<(TcpListener, String)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    Ok((listener, url))
}

/// Logs go to the test output when `RUST_LOG` is set.
fn init_test_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

impl Stack {
    pub async fn start() -> Result<Self> {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Result<Self> {
        init_test_logging();
        let cluster = MockCluster::new(1).context("mock cluster")?;
        let bootstrap = cluster.bootstrap_servers();
        let dir = tempfile::tempdir()?;

        let (registry_listener, registry) = bind().await?;
        let registry_app = orderflow_registry::Registry::new().router();
        let registry_task = tokio::spawn(async move {
            let _ = axum::serve(registry_listener, registry_app).await;
        });

        let runtime = |service: &str, listener: &TcpListener| -> Result<RuntimeConfig> {
            Ok(RuntimeConfig {
                http_addr: listener.local_addr()?,
                database_url: format!("sqlite://{}/{service}.db", dir.path().display()),
                schema_registry_url: registry.clone(),
                kafka_bootstrap_servers: bootstrap.clone(),
                kafka_partitions: options.partitions,
                kafka_auto_commit_interval_ms: 100,
                kafka_session_timeout_ms: 6_000,
                retry_backoff_ms: options.retry_backoff_ms.clone(),
                outbox_poll_ms: 100,
                ..Default::default()
            })
        };
        // The mock cluster does not serve the admin API's CreateTopics; it has its own call.
        for topic in orderflow_runtime::topics::layout(options.partitions) {
            cluster
                .create_topic(&topic.name, topic.partitions, 1)
                .context("creating topics")?;
        }

        let shutdown = CancellationToken::new();
        let stop = || -> Shutdown { Box::pin(shutdown.clone().cancelled_owned()) };
        let mut services = Vec::new();

        let (l, order_url) = bind().await?;
        let config = orderflow_order::Config {
            runtime: runtime("order", &l)?,
        };
        services.push((
            "order",
            tokio::spawn(orderflow_order::serve(config, l, stop())),
        ));

        let (l, inventory_url) = bind().await?;
        let config = orderflow_inventory::Config {
            runtime: runtime("inventory", &l)?,
        };
        services.push((
            "inventory",
            tokio::spawn(orderflow_inventory::serve(config, l, stop())),
        ));

        let (l, payment) = bind().await?;
        let config = orderflow_payment::Config {
            runtime: runtime("payment", &l)?,
            ..Default::default()
        };
        services.push((
            "payment",
            tokio::spawn(orderflow_payment::serve(config, l, stop())),
        ));

        let (l, _) = bind().await?;
        let config = orderflow_shipping::Config {
            runtime: runtime("shipping", &l)?,
            ..Default::default()
        };
        services.push((
            "shipping",
            tokio::spawn(orderflow_shipping::serve(config, l, stop())),
        ));

        let (l, notification_url) = bind().await?;
        let config = orderflow_notification::Config {
            runtime: runtime("notification", &l)?,
            ..Default::default()
        };
        services.push((
            "notification",
            tokio::spawn(orderflow_notification::serve(config, l, stop())),
        ));

        let (l, gateway) = bind().await?;
        let config = orderflow_gateway::Config {
            http_addr: l.local_addr()?,
            order_url,
            inventory_url,
            notification_url,
            upstream_timeout_ms: 10_000,
        };
        services.push((
            "gateway",
            tokio::spawn(orderflow_gateway::serve(config, l, stop())),
        ));

        let stack = Self {
            gateway,
            payment,
            bootstrap,
            registry,
            http: reqwest::Client::new(),
            shutdown,
            services,
            registry_task,
            _cluster: cluster,
            _dir: dir,
        };
        stack.wait_ready().await?;
        for (sku, stock) in orderflow_api::demo_catalogue() {
            stack
                .set_stock(&sku, stock.available, stock.unit_price.amount_minor)
                .await?;
        }
        Ok(stack)
    }

    async fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        for (name, task) in &self.services {
            if task.is_finished() {
                bail!("service {name} stopped during start-up");
            }
        }
        loop {
            let ready = self
                .http
                .get(format!("{}/readyz", self.gateway))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                // The gateway is ready; the services behind it answer through it.
                let probe = self
                    .http
                    .get(format!("{}/v1/inventory/none", self.gateway))
                    .send()
                    .await;
                if probe.is_ok_and(|r| r.status() == 404) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("stack not ready after 30s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every service as SIGTERM would, and checks they stopped cleanly.
    pub async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        for (name, task) in self.services {
            match tokio::time::timeout(Duration::from_secs(30), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => bail!("service {name} failed: {e}"),
                Ok(Err(e)) => bail!("service {name} panicked: {e}"),
                Err(_) => bail!("service {name} did not stop within 30s"),
            }
        }
        self.registry_task.abort();
        Ok(())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway)
    }

    pub async fn set_stock(&self, sku: &str, available: i64, price_minor: i64) -> Result<()> {
        let body = json!({"available": available, "unit_price": {"amount_minor": price_minor, "currency": "EUR"}});
        let response = self
            .http
            .put(self.url(&format!("/v1/inventory/{sku}")))
            .json(&body)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "setting stock of {sku}: {} {}",
                response.status(),
                response.text().await?
            );
        }
        Ok(())
    }

    /// Places an order; returns the raw response.
    pub async fn post_order(
        &self,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut request = self.http.post(self.url("/v1/orders")).json(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        Ok(request.send().await?)
    }

    /// Places an order that must be accepted; returns its id.
    pub async fn place(&self, body: &Value) -> Result<String> {
        let response = self.post_order(body, None).await?;
        let status = response.status();
        let text = response.text().await?;
        if status.as_u16() != 202 {
            bail!("order not accepted: {status} {text}");
        }
        let accepted: Value = serde_json::from_str(&text)?;
        Ok(accepted["order_id"]
            .as_str()
            .context("order_id")?
            .to_string())
    }

    pub async fn order(&self, order_id: &str) -> Result<OrderView> {
        let response = self
            .http
            .get(self.url(&format!("/v1/orders/{order_id}")))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("GET order {order_id}: {}", response.status());
        }
        Ok(response.json().await?)
    }

    /// Waits until the order is SHIPPED or CANCELLED.
    pub async fn wait_terminal(&self, order_id: &str) -> Result<OrderView> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let order = self.order(order_id).await?;
            if order.status == "SHIPPED" || order.status == "CANCELLED" {
                return Ok(order);
            }
            if Instant::now() > deadline {
                bail!(
                    "order {order_id} still {} after 60s: {:?}",
                    order.status,
                    order.history
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn stock(&self, sku: &str) -> Result<StockView> {
        Ok(self
            .http
            .get(self.url(&format!("/v1/inventory/{sku}")))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// The payment record for an order, as the payment service keeps it.
    pub async fn payment(&self, order_id: &str) -> Result<Option<PaymentView>> {
        let response = self
            .http
            .get(format!("{}/v1/payments/{order_id}", self.payment))
            .send()
            .await?;
        if response.status() == 404 {
            return Ok(None);
        }
        Ok(Some(response.error_for_status()?.json().await?))
    }

    pub async fn notifications(&self, customer_id: &str) -> Result<Vec<NotificationView>> {
        let url = self.url(&format!("/v1/customers/{customer_id}/notifications"));
        Ok(self
            .http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// A Kafka client on the stack's broker.
    pub fn kafka(&self) -> KafkaProbe {
        KafkaProbe::new(&self.bootstrap)
    }

    /// Waits until every service's consumer group has committed every message
    /// on the topics it consumes: nothing is left to process.
    pub async fn wait_idle(&self) -> Result<()> {
        let specs = [
            &orderflow_order::SPEC,
            &orderflow_inventory::SPEC,
            &orderflow_payment::SPEC,
            &orderflow_shipping::SPEC,
            &orderflow_notification::SPEC,
        ];
        let probe = self.kafka();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut behind = Vec::new();
            for spec in specs {
                let lag = probe.lag(&spec.group_id(), spec.consumes).await?;
                if lag > 0 {
                    behind.push(format!("{}: {lag}", spec.name));
                }
            }
            if behind.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("consumers still behind after 60s: {behind:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The order from SPEC §8, with a customer, quantity, token and country of the test's choosing.
pub fn order_body(
    customer_id: &str,
    sku: &str,
    quantity: i64,
    token: &str,
    country: &str,
) -> Value {
    json!({
        "customer_id": customer_id,
        "items": [{"sku": sku, "quantity": quantity}],
        "payment": {"token": token},
        "shipping_address": {"name": "Ada", "line1": "1 Main St", "city": "Berlin",
                             "postal_code": "10115", "country": country}
    })
}
