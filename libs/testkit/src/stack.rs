//! The whole platform in one test process: librdkafka's mock cluster as the
//! broker, the schema registry, and the six services started through their
//! `serve` entry points on `127.0.0.1:0`, each with its own database. Tests
//! talk to it as users do, through the gateway's HTTP API, and look at Kafka
//! through real clients.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use orderflow_http::Listeners;
use orderflow_runtime::{RuntimeConfig, RuntimeError, Shutdown};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::Api;
use crate::kafka::KafkaProbe;

/// Knobs a test may turn.
#[derive(Debug, Clone)]
pub struct Options {
    pub partitions: i32,
    /// The fast retry tiers (short in tests; production's are 1 s, 4 s, 9 s).
    pub retry_backoff_ms: Vec<u64>,
    /// The slow tiers that follow, the last repeating until the deadline.
    pub retry_slow_tiers_ms: Vec<u64>,
    /// How long a step may keep failing before it fails in domain terms.
    pub step_deadline_ms: u64,
    /// The payment provider's timeout per call.
    pub provider_timeout_ms: u64,
    /// The sandbox provider's added latency per call.
    pub sandbox_latency_ms: u64,
    /// Whether payment serves `/v1/sandbox` (tests change the weather).
    pub sandbox_api: bool,
    pub idempotency_key_ttl_ms: u64,
    /// Publish attempts of an outbox row before it is parked.
    pub outbox_max_attempts: u32,
    pub inbox_retention_ms: u64,
    /// Calls in ten seconds before the circuit breakers judge at all.
    pub breaker_minimum_calls: u32,
    /// How long an open breaker fails calls before it lets a trial through.
    pub breaker_open_ms: u64,
    /// Orders a caller may place per second, and at once.
    pub orders_per_second: f64,
    pub orders_burst: u32,
    /// How long the gateway waits for a request's headers.
    pub header_read_timeout_ms: u64,
    /// Requests one caller may have in progress at the gateway.
    pub max_requests_in_flight_per_caller: usize,
    /// `key:secret` the registry demands of every caller (as a managed
    /// registry's API key), given to the services; none by default.
    pub registry_basic_auth: Option<(String, String)>,
    /// The notification service's settings (its runtime part is the
    /// stack's): the log channel by default.
    pub notification: orderflow_notification::Config,
    /// Notification replicas sharing its database and consumer group (the
    /// chart runs two); the stack's URL names the first.
    pub notification_replicas: usize,
    /// Topics with a partition count of their own instead of `partitions`.
    pub topic_partitions: Vec<(&'static str, i32)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            partitions: 12,
            retry_backoff_ms: vec![100, 200, 400],
            retry_slow_tiers_ms: vec![800],
            step_deadline_ms: 60_000,
            provider_timeout_ms: 2_000,
            sandbox_latency_ms: 0,
            sandbox_api: true,
            idempotency_key_ttl_ms: 24 * 3_600_000,
            outbox_max_attempts: 10,
            inbox_retention_ms: 7 * 24 * 3_600_000,
            breaker_minimum_calls: 20,
            breaker_open_ms: 10_000,
            // Generous: the tests that are not about rate limits place many
            // orders for a few customers at once.
            orders_per_second: 10_000.0,
            orders_burst: 10_000,
            header_read_timeout_ms: 10_000,
            max_requests_in_flight_per_caller: 64,
            registry_basic_auth: None,
            notification: Default::default(),
            notification_replicas: 1,
            topic_partitions: Vec::new(),
        }
    }
}

/// A running stack; dropping it without [`Stack::stop`] aborts the services.
pub struct Stack {
    pub api: Api,
    /// Each service's base URL, by name (`gateway`, `order`, …): its API,
    /// where every call needs a token.
    pub urls: std::collections::BTreeMap<&'static str, String>,
    /// Each one's operations port: `/healthz`, `/readyz`, `/metrics`.
    pub ops: std::collections::BTreeMap<&'static str, String>,
    /// The operations port of each notification replica.
    pub notification_ops: Vec<String>,
    pub bootstrap: String,
    pub registry: String,
    /// Each consuming service's database URL, by name.
    pub databases: std::collections::BTreeMap<&'static str, String>,
    /// The base URL of each notification replica ([`Options::notification_replicas`]).
    pub notification_replicas: Vec<String>,
    retry_tiers: Vec<Duration>,
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

/// A service's two listeners, and the URLs of its API and operations port.
async fn bind_both() -> Result<(Listeners, String, String)> {
    let listeners = Listeners::local().await?;
    let (api, ops) = listeners.urls()?;
    Ok((listeners, api, ops))
}

impl Stack {
    pub async fn start() -> Result<Self> {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Result<Self> {
        crate::init_test_logging();
        let cluster = MockCluster::new(1).context("mock cluster")?;
        let bootstrap = cluster.bootstrap_servers();
        let dir = tempfile::tempdir()?;

        let (registry_listener, registry) = bind().await?;
        let registry_app = match &options.registry_basic_auth {
            Some((user, password)) => orderflow_registry::Registry::new().router_requiring(
                orderflow_registry::Credential::Basic {
                    user: user.clone(),
                    password: password.clone(),
                },
            ),
            None => orderflow_registry::Registry::new().router(),
        };
        let registry_task = tokio::spawn(async move {
            let _ = axum::serve(registry_listener, registry_app).await;
        });

        let registry_basic_auth = options
            .registry_basic_auth
            .as_ref()
            .map(|(user, password)| format!("{user}:{password}"))
            .unwrap_or_default();
        let mut configs = std::collections::HashMap::new();
        for service in orderflow_runtime::topics::CONSUMING_SERVICES {
            configs.insert(service, crate::database_url(dir.path(), service).await?);
        }
        let issuer = crate::shared_issuer();
        let runtime = |service: &str, listeners: &Listeners| -> Result<RuntimeConfig> {
            Ok(RuntimeConfig {
                http_addr: listeners.api.local_addr()?,
                ops_addr: listeners.ops.local_addr()?,
                auth: issuer.auth_config(),
                database_url: configs[service].clone(),
                schema_registry_url: registry.clone(),
                schema_registry_basic_auth: registry_basic_auth.clone(),
                kafka_bootstrap_servers: bootstrap.clone(),
                kafka_partitions: options.partitions,
                kafka_fetch_wait_max_ms: orderflow_runtime::EMBEDDED_BROKER_FETCH_WAIT_MS,
                kafka_auto_commit_interval_ms: 100,
                kafka_session_timeout_ms: 6_000,
                retry_backoff_ms: options.retry_backoff_ms.clone(),
                retry_slow_tiers_ms: options.retry_slow_tiers_ms.clone(),
                step_deadline_ms: options.step_deadline_ms,
                outbox_poll_ms: 100,
                outbox_max_attempts: options.outbox_max_attempts,
                inbox_retention_ms: options.inbox_retention_ms,
                breaker_minimum_calls: options.breaker_minimum_calls,
                breaker_open_ms: options.breaker_open_ms,
                ..Default::default()
            })
        };
        // The mock cluster does not serve the admin API's CreateTopics; it has its own call.
        let tiers = RuntimeConfig {
            retry_backoff_ms: options.retry_backoff_ms.clone(),
            retry_slow_tiers_ms: options.retry_slow_tiers_ms.clone(),
            ..Default::default()
        }
        .retry_tiers();
        for topic in orderflow_runtime::topics::layout(options.partitions, &tiers) {
            let partitions = options
                .topic_partitions
                .iter()
                .find(|(name, _)| *name == topic.name)
                .map_or(topic.partitions, |(_, n)| *n);
            cluster
                .create_topic(&topic.name, partitions, 1)
                .context("creating topics")?;
        }

        let shutdown = CancellationToken::new();
        let stop = || -> Shutdown { Box::pin(shutdown.clone().cancelled_owned()) };
        let mut services = Vec::new();

        let mut ops = std::collections::BTreeMap::new();
        let (l, order_url, o) = bind_both().await?;
        ops.insert("order", o);
        let config = orderflow_order::Config {
            runtime: runtime("order", &l)?,
            idempotency_key_ttl_ms: options.idempotency_key_ttl_ms,
        };
        services.push((
            "order",
            tokio::spawn(orderflow_order::serve(config, l, stop())),
        ));

        let (l, inventory_url, o) = bind_both().await?;
        ops.insert("inventory", o);
        let config = orderflow_inventory::Config {
            runtime: runtime("inventory", &l)?,
        };
        services.push((
            "inventory",
            tokio::spawn(orderflow_inventory::serve(config, l, stop())),
        ));

        let (l, payment, o) = bind_both().await?;
        ops.insert("payment", o);
        let config = orderflow_payment::Config {
            runtime: runtime("payment", &l)?,
            provider_timeout_ms: options.provider_timeout_ms,
            sandbox_latency_ms: options.sandbox_latency_ms,
            sandbox_api: options.sandbox_api,
            ..Default::default()
        };
        services.push((
            "payment",
            tokio::spawn(orderflow_payment::serve(config, l, stop())),
        ));

        let (l, shipping_url, o) = bind_both().await?;
        ops.insert("shipping", o);
        let config = orderflow_shipping::Config {
            runtime: runtime("shipping", &l)?,
            ..Default::default()
        };
        services.push((
            "shipping",
            tokio::spawn(orderflow_shipping::serve(config, l, stop())),
        ));

        let mut notification_urls = Vec::new();
        let mut notification_ops = Vec::new();
        for _ in 0..options.notification_replicas.max(1) {
            let (l, url, o) = bind_both().await?;
            notification_ops.push(o);
            let config = orderflow_notification::Config {
                runtime: runtime("notification", &l)?,
                ..options.notification.clone()
            };
            services.push((
                "notification",
                tokio::spawn(orderflow_notification::serve(config, l, stop())),
            ));
            notification_urls.push(url);
        }
        let notification_url = notification_urls[0].clone();
        ops.insert("notification", notification_ops[0].clone());

        let (l, gateway, o) = bind_both().await?;
        ops.insert("gateway", o);
        let config = orderflow_gateway::Config {
            http_addr: l.api.local_addr()?,
            ops_addr: l.ops.local_addr()?,
            order_url: order_url.clone(),
            inventory_url: inventory_url.clone(),
            notification_url: notification_url.clone(),
            payment_url: payment.clone(),
            upstream_timeout_ms: 10_000,
            auth: issuer.auth_config(),
            orders_per_second: options.orders_per_second,
            orders_burst: options.orders_burst,
            header_read_timeout_ms: options.header_read_timeout_ms,
            max_requests_in_flight_per_caller: options.max_requests_in_flight_per_caller,
            // Dead letters for the operator API, as `orderflow dev` gives them.
            kafka_bootstrap_servers: bootstrap.clone(),
            schema_registry_url: registry.clone(),
            schema_registry_basic_auth: registry_basic_auth.clone(),
            ..Default::default()
        };
        services.push((
            "gateway",
            tokio::spawn(orderflow_gateway::serve(config, l, stop())),
        ));

        let urls = [
            ("gateway", gateway.clone()),
            ("order", order_url.clone()),
            ("inventory", inventory_url.clone()),
            ("payment", payment.clone()),
            ("shipping", shipping_url),
            ("notification", notification_url.clone()),
        ]
        .into_iter()
        .collect();
        let databases = configs.into_iter().collect();
        let stack = Self {
            urls,
            ops,
            notification_ops,
            databases,
            notification_replicas: notification_urls,
            retry_tiers: tiers,
            api: Api::new(gateway, vec![payment], issuer),
            bootstrap,
            registry,
            shutdown,
            services,
            registry_task,
            _cluster: cluster,
            _dir: dir,
        };
        stack.wait_ready().await?;
        stack.api.client.seed_demo_catalogue().await?;
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
                .get(format!("{}/readyz", self.ops["gateway"]))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                // The gateway is ready; the services behind it answer through it.
                let probe = self
                    .http
                    .get(format!("{}/v1/inventory/none", self.api.gateway))
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

    /// The embedded broker, to inject errors.
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self._cluster
    }

    /// A Kafka client on the stack's broker.
    pub fn kafka(&self) -> KafkaProbe {
        KafkaProbe::new(&self.bootstrap)
    }

    /// Waits until nothing is left to do: outboxes published, no order
    /// waiting behind a retry, every group caught up (retry tiers included).
    pub async fn wait_idle(&self) -> Result<()> {
        crate::idle::wait_idle(&self.kafka(), &self.retry_tiers, &self.databases).await
    }
}

impl std::ops::Deref for Stack {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}
