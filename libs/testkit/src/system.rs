//! The system tier: every service as its own OS process, as in a cluster, on
//! a real Kafka broker and PostgreSQL. The binaries come from the same target
//! folder as the test (`cargo build --bins` first); Kafka and PostgreSQL from
//! `tools/scripts/kafka.sh` and `postgres.sh`, named by environment:
//! `ORDERFLOW_SYSTEM_KAFKA` (bootstrap servers) and `ORDERFLOW_TEST_DATABASE`.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use orderflow_companions::free_port;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::api::Api;
use crate::kafka::KafkaProbe;
pub use crate::launch::Launch;

/// Every process a stack runs: the gateway and the five services.
pub const COMPONENTS: [&str; 6] = [
    "gateway",
    "order",
    "inventory",
    "payment",
    "shipping",
    "notification",
];

/// How many processes of each consuming service to run.
#[derive(Debug, Clone)]
pub struct Replicas(pub BTreeMap<&'static str, usize>);

impl Replicas {
    pub fn one_each() -> Self {
        Self(
            orderflow_runtime::topics::CONSUMING_SERVICES
                .iter()
                .map(|s| (*s, 1))
                .collect(),
        )
    }

    pub fn with(mut self, service: &'static str, n: usize) -> Self {
        self.0.insert(service, n);
        self
    }
}

struct Process {
    service: &'static str,
    replica: usize,
    env: Vec<(String, String)>,
    log: PathBuf,
    /// Behind a lock so a test can kill and restart processes while it places orders.
    child: Mutex<Option<Child>>,
}

impl Process {
    /// Its operations port (`/readyz`, `/metrics`), as `host:port`.
    fn ops_addr(&self) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == "ORDERFLOW_OPS_ADDR")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// What every process needs to check tokens, and to listen on two ports.
fn listen_and_verify() -> Result<Vec<(String, String)>> {
    let api = format!("127.0.0.1:{}", free_port()?);
    let ops = format!("127.0.0.1:{}", free_port()?);
    Ok(crate::cli::listening_env(&api, &ops)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect())
}

pub struct ProcessStack {
    pub api: Api,
    pub bootstrap: String,
    /// Each consuming service's database URL (its replicas share it).
    pub databases: BTreeMap<&'static str, String>,
    /// The schema registry every process uses.
    pub registry: String,
    /// Each service's API (its first replica's), by name.
    pub urls: BTreeMap<&'static str, String>,
    /// When it started, ms since the epoch: its orders were placed after.
    pub started_at_ms: i64,
    bin_dir: PathBuf,
    processes: Vec<Process>,
    logs: tempfile::TempDir,
    /// Added to every process's environment.
    extra_env: Vec<(String, String)>,
    /// Binaries or containers.
    launch: Launch,
    /// `stop` ran and every process exited cleanly; otherwise the logs are
    /// kept for whoever reads the failure.
    stopped_cleanly: bool,
    /// The embedded broker, when there is one; dropped after the processes.
    _cluster: Option<MockCluster<'static, DefaultProducerContext>>,
}

/// One schema registry for every test in the binary, as a cluster has one:
/// the tests share the broker's topics, and a schema id must mean the same
/// schema to all of them. It runs on its own thread, since each test's Tokio
/// runtime ends with the test.
fn shared_registry() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| crate::registry_on("127.0.0.1"))
}

fn required_env(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| {
        format!("{name} is not set: run the system tier through `make test` (or `make test-system`), which starts Kafka and PostgreSQL")
    })
}

/// The retry tiers of the processes (short, so tests see retries through):
/// `ORDERFLOW_RETRY_BACKOFF_MS` and `ORDERFLOW_RETRY_SLOW_TIERS_MS`.
const FAST_TIERS_MS: [u64; 3] = [200, 400, 800];
const SLOW_TIERS_MS: [u64; 1] = [1_600];

/// The retry tiers the processes run with.
pub(crate) fn retry_tiers() -> Vec<Duration> {
    test_tiers().retry_tiers()
}

fn test_tiers() -> orderflow_runtime::RuntimeConfig {
    orderflow_runtime::RuntimeConfig {
        retry_backoff_ms: FAST_TIERS_MS.to_vec(),
        retry_slow_tiers_ms: SLOW_TIERS_MS.to_vec(),
        ..Default::default()
    }
}

fn json_list(ms: &[u64]) -> String {
    format!(
        "[{}]",
        ms.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
    )
}

impl ProcessStack {
    /// `orderflow audit` over the orders placed since this stack started
    /// (the broker's topics hold earlier tests' orders too), at rest: it
    /// must find every promise kept.
    pub async fn audit_clean(&self) -> Result<serde_json::Value> {
        let token = self.api.issuer.operator();
        let (bootstrap, registry) = (&self.bootstrap, &self.registry);
        crate::checks::audit_clean(bootstrap, registry, &self.urls, &token, self.started_at_ms)
            .await
    }

    /// On the real Kafka and PostgreSQL named by ORDERFLOW_SYSTEM_KAFKA and
    /// ORDERFLOW_TEST_DATABASE.
    pub async fn start(replicas: Replicas) -> Result<Self> {
        let bootstrap = required_env("ORDERFLOW_SYSTEM_KAFKA")?;
        required_env("ORDERFLOW_TEST_DATABASE")?;
        let topics = orderflow_runtime::RuntimeConfig {
            kafka_bootstrap_servers: bootstrap.clone(),
            ..test_tiers()
        };
        orderflow_runtime::topics::apply(&topics, 1, None)
            .await
            .context("creating topics")?;
        Self::launch(replicas, bootstrap, None, &[], Launch::Binaries).await
    }

    /// On an embedded broker (librdkafka's mock cluster, hosted by the test
    /// process) and SQLite, as `orderflow dev` runs: the processes are as in a
    /// cluster, with nothing to install. `env` is added to every process's.
    pub async fn start_embedded(env: &[(&str, &str)]) -> Result<Self> {
        Self::start_embedded_as(env, Launch::Binaries).await
    }

    /// The same, every process exporting its spans to `jaeger` (a batch
    /// every 100 ms) and the gateway reading traces there.
    pub async fn start_traced(jaeger: &orderflow_companions::Jaeger) -> Result<Self> {
        Self::start_embedded(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("ORDERFLOW_JAEGER_QUERY_URL", jaeger.query_url.as_str()),
        ])
        .await
    }

    /// The same, each process run as `launch` says (in its container, say).
    pub async fn start_embedded_as(env: &[(&str, &str)], launch: Launch) -> Result<Self> {
        let cluster = MockCluster::new(1).context("mock cluster")?;
        for topic in orderflow_runtime::topics::layout(12, &test_tiers().retry_tiers()) {
            cluster.create_topic(&topic.name, topic.partitions, 1)?;
        }
        let bootstrap = cluster.bootstrap_servers();
        Self::launch(Replicas::one_each(), bootstrap, Some(cluster), env, launch).await
    }

    async fn launch(
        replicas: Replicas,
        bootstrap: String,
        cluster: Option<MockCluster<'static, DefaultProducerContext>>,
        extra_env: &[(&str, &str)],
        launch: Launch,
    ) -> Result<Self> {
        crate::init_test_logging();
        // target/<profile>/deps/<test binary> → target/<profile>
        let bin_dir = std::env::current_exe()?
            .parent()
            .and_then(|p| p.parent())
            .context("target folder")?
            .to_path_buf();
        for name in COMPONENTS {
            let path = bin_dir.join(format!("orderflow-{name}"));
            if matches!(launch, Launch::Binaries) && !path.exists() {
                bail!(
                    "{} is missing: run `cargo build --bins` first",
                    path.display()
                );
            }
        }
        let logs = tempfile::tempdir()?;
        // A container's user (65532) writes its SQLite database here.
        std::fs::set_permissions(
            logs.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )?;

        let registry = shared_registry().to_string();

        let issuer = crate::shared_issuer();
        let mut processes = Vec::new();
        let mut urls: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        let mut databases = BTreeMap::new();
        for (&service, &n) in &replicas.0 {
            let database = crate::database_url(logs.path(), service).await?;
            databases.insert(service, database.clone());
            for replica in 0..n {
                let mut env = listen_and_verify()?;
                urls.entry(service)
                    .or_default()
                    .push(format!("http://{}", env[0].1));
                if service == "payment" {
                    env.push(("ORDERFLOW_SANDBOX_API".into(), "true".into()));
                }
                env.extend([
                    ("ORDERFLOW_DATABASE_URL".into(), database.clone()),
                    (
                        "ORDERFLOW_KAFKA_BOOTSTRAP_SERVERS".into(),
                        bootstrap.clone(),
                    ),
                    ("ORDERFLOW_SCHEMA_REGISTRY_URL".into(), registry.clone()),
                    ("ORDERFLOW_KAFKA_SESSION_TIMEOUT_MS".into(), "6000".into()),
                    (
                        "ORDERFLOW_KAFKA_AUTO_COMMIT_INTERVAL_MS".into(),
                        "200".into(),
                    ),
                    (
                        "ORDERFLOW_RETRY_BACKOFF_MS".into(),
                        json_list(&FAST_TIERS_MS),
                    ),
                    (
                        "ORDERFLOW_RETRY_SLOW_TIERS_MS".into(),
                        json_list(&SLOW_TIERS_MS),
                    ),
                    ("ORDERFLOW_OUTBOX_POLL_MS".into(), "200".into()),
                ]);
                if cluster.is_some() {
                    env.push((
                        "ORDERFLOW_KAFKA_FETCH_WAIT_MAX_MS".into(),
                        orderflow_runtime::EMBEDDED_BROKER_FETCH_WAIT_MS.to_string(),
                    ));
                }
                let log = logs.path().join(format!("{service}-{replica}.log"));
                processes.push(Process {
                    service,
                    replica,
                    env,
                    log,
                    child: Mutex::new(None),
                });
            }
        }
        let first = |s: &str| urls[s][0].clone();
        let mut env = listen_and_verify()?;
        let gateway = format!("http://{}", env[0].1);
        env.extend([
            ("ORDERFLOW_ORDER_URL".into(), first("order")),
            ("ORDERFLOW_INVENTORY_URL".into(), first("inventory")),
            ("ORDERFLOW_NOTIFICATION_URL".into(), first("notification")),
            ("ORDERFLOW_PAYMENT_URL".into(), first("payment")),
            ("ORDERFLOW_ORDERS_PER_SECOND".into(), "10000".into()),
            ("ORDERFLOW_ORDERS_BURST".into(), "10000".into()),
        ]);
        processes.push(Process {
            service: "gateway",
            replica: 0,
            env,
            log: logs.path().join("gateway-0.log"),
            child: Mutex::new(None),
        });

        let api = Api::new(gateway, urls["payment"].clone(), issuer.clone());
        let extra_env = extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let stack = Self {
            api,
            bootstrap,
            databases,
            registry,
            urls: urls
                .iter()
                .map(|(&service, replicas)| (service, replicas[0].clone()))
                .collect(),
            started_at_ms: orderflow_runtime::now_millis(),
            bin_dir,
            processes,
            logs,
            extra_env,
            launch,
            stopped_cleanly: false,
            _cluster: cluster,
        };
        for i in 0..stack.processes.len() {
            stack.spawn(i)?;
        }
        stack.wait_ready().await?;
        stack.api.client.seed_demo_catalogue().await?;
        Ok(stack)
    }

    fn spawn(&self, i: usize) -> Result<()> {
        let p = &self.processes[i];
        let log = OpenOptions::new().create(true).append(true).open(&p.log)?;
        let mut env = p.env.clone();
        env.extend(self.extra_env.iter().cloned());
        // ORDERFLOW_TEST_SERVICE_LOG sets the services' levels when a run is
        // to be looked into (`orderflow_runtime::consumer=debug`, say).
        env.push((
            "RUST_LOG".into(),
            std::env::var("ORDERFLOW_TEST_SERVICE_LOG")
                .unwrap_or_else(|_| "info,librdkafka=warn,rdkafka=warn".into()),
        ));
        // A container left from a killed run of this process.
        self.launch.remove(p.service, p.replica);
        let child = self
            .launch
            .command(&self.bin_dir, p.service, p.replica, &env, self.logs.path())
            // The test's own settings are not the services'.
            .env_remove("ORDERFLOW_SYSTEM_KAFKA")
            .env_remove("ORDERFLOW_TEST_DATABASE")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting orderflow-{}", p.service))?;
        *p.child.lock().expect("child lock") = Some(child);
        Ok(())
    }

    async fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 0..self.processes.len() {
            let addr = self.processes[i].ops_addr();
            loop {
                let exited = self.processes[i]
                    .child
                    .lock()
                    .expect("child lock")
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                if let Some(status) = exited {
                    let p = &self.processes[i];
                    bail!(
                        "orderflow-{} exited at start ({status}):\n{}",
                        p.service,
                        self.log_of(p.service, p.replica)
                    );
                }
                let ready = self
                    .api
                    .http
                    .get(format!("http://{addr}/readyz"))
                    .send()
                    .await;
                if ready.is_ok_and(|r| r.status().is_success()) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "orderflow-{} not ready after 60s",
                        self.processes[i].service
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    fn index(&self, service: &str, replica: usize) -> Result<usize> {
        self.processes
            .iter()
            .position(|p| p.service == service && p.replica == replica)
            .with_context(|| format!("no process {service}#{replica}"))
    }

    /// The embedded broker, when the stack has one (to inject errors).
    pub fn cluster(&self) -> Option<&MockCluster<'static, DefaultProducerContext>> {
        self._cluster.as_ref()
    }

    /// Where a process's health probes and metrics listen (`127.0.0.1:port`).
    pub fn ops_addr(&self, service: &str, replica: usize) -> Result<String> {
        Ok(self.processes[self.index(service, replica)?].ops_addr())
    }

    /// SIGTERM to one process; it must exit cleanly within 30 s.
    pub async fn stop_one(&self, service: &str, replica: usize) -> Result<()> {
        let i = self.index(service, replica)?;
        if let Some(child) = self.processes[i].child.lock().expect("child lock").as_ref() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        }
        let status = self
            .wait_exit(service, replica, Duration::from_secs(30))
            .await?;
        if !status.success() {
            bail!("orderflow-{service}#{replica} exited {status} on SIGTERM");
        }
        Ok(())
    }

    /// Waits for a process to exit by itself; returns how it exited.
    pub async fn wait_exit(
        &self,
        service: &str,
        replica: usize,
        timeout: Duration,
    ) -> Result<std::process::ExitStatus> {
        let i = self.index(service, replica)?;
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut child = self.processes[i].child.lock().expect("child lock");
                if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    *child = None;
                    return Ok(status);
                }
            }
            if Instant::now() > deadline {
                bail!("orderflow-{service}#{replica} still running after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every consuming service's replicas, as (service, replica).
    pub fn consumers(&self) -> Vec<(&'static str, usize)> {
        self.processes
            .iter()
            .filter(|p| p.service != "gateway")
            .map(|p| (p.service, p.replica))
            .collect()
    }

    /// Sends `signal` to one process (SIGSTOP and SIGCONT, say).
    pub fn signal(&self, service: &str, replica: usize, signal: Signal) -> Result<()> {
        let i = self.index(service, replica)?;
        if let Some(child) = self.processes[i].child.lock().expect("child lock").as_ref() {
            kill(Pid::from_raw(child.id() as i32), signal)?;
        }
        Ok(())
    }

    /// `kill -9`: no shutdown, no commit, no flush.
    pub fn kill_9(&self, service: &str, replica: usize) -> Result<()> {
        let i = self.index(service, replica)?;
        let child = self.processes[i].child.lock().expect("child lock").take();
        if let Some(mut child) = child {
            child.kill()?; // SIGKILL
            child.wait()?;
        }
        Ok(())
    }

    /// Starts a killed process again, with the same configuration.
    pub async fn restart(&self, service: &str, replica: usize) -> Result<()> {
        let i = self.index(service, replica)?;
        self.spawn(i)?;
        self.wait_ready().await
    }

    /// What a process has logged so far (over all its lives).
    pub fn log_of(&self, service: &str, replica: usize) -> String {
        std::fs::read_to_string(self.logs.path().join(format!("{service}-{replica}.log")))
            .unwrap_or_default()
    }

    /// Every process's operations port by scrape job name (`orderflow-<service>`).
    pub fn scrape_targets(&self) -> BTreeMap<String, Vec<String>> {
        let mut jobs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in &self.processes {
            jobs.entry(format!("orderflow-{}", p.service))
                .or_default()
                .push(p.ops_addr());
        }
        jobs
    }

    pub fn kafka(&self) -> KafkaProbe {
        KafkaProbe::new(&self.bootstrap)
    }

    /// Waits until nothing is left to do (see [`crate::Stack::wait_idle`]).
    pub async fn wait_idle(&self) -> Result<()> {
        crate::idle::wait_idle(&self.kafka(), &test_tiers().retry_tiers(), &self.databases).await
    }

    /// SIGTERM to every process; each must exit cleanly within 30 s.
    pub async fn stop(mut self) -> Result<()> {
        for p in self.processes.iter().rev() {
            if let Some(child) = p.child.lock().expect("child lock").as_ref() {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            }
        }
        let mut failures = Vec::new();
        for p in self.processes.iter_mut() {
            let Some(child) = p.child.get_mut().expect("child lock").as_mut() else {
                continue;
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = child.try_wait()? {
                    if !status.success() {
                        failures.push(format!(
                            "orderflow-{}#{} exited {status}",
                            p.service, p.replica
                        ));
                    }
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    failures.push(format!(
                        "orderflow-{}#{} did not stop within 30s",
                        p.service, p.replica
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if !failures.is_empty() {
            bail!(
                "unclean shutdown: {failures:?} (the processes' logs are kept in {})",
                self.logs.path().display()
            );
        }
        self.stopped_cleanly = true;
        Ok(())
    }
}

impl Drop for ProcessStack {
    /// A failing test must not leave processes behind; it leaves their logs.
    fn drop(&mut self) {
        if !self.stopped_cleanly {
            self.logs.disable_cleanup(true);
            eprintln!(
                "the stack did not stop cleanly: its processes' logs are kept in {}",
                self.logs.path().display()
            );
        }
        for p in &mut self.processes {
            if let Some(child) = p.child.get_mut().ok().and_then(|c| c.as_mut()) {
                let _ = child.kill();
                let _ = child.wait();
            }
            // Killing `podman run` does not stop its container.
            self.launch.remove(p.service, p.replica);
        }
    }
}

impl std::ops::Deref for ProcessStack {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

/// A real Prometheus (Debian's package) scraping the stack every second, on a
/// loopback port; stopped when dropped.
pub struct Prometheus {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub async fn start(targets: &BTreeMap<String, Vec<String>>) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for (job, addresses) in targets {
            let list = addresses
                .iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(", ");
            config.push_str(&format!(
                "  - job_name: '{job}'\n    static_configs:\n      - targets: [{list}]\n"
            ));
        }
        std::fs::write(dir.path().join("prometheus.yml"), config)?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting prometheus (Debian's `prometheus` package; tools/scripts/system-tests.sh installs it)")?;
        let prometheus = Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http
            .get(format!("{}/-/ready", prometheus.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            if Instant::now() > deadline {
                bail!("prometheus not ready after 30s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(prometheus)
    }

    /// The value of an instant query that returns one sample.
    pub async fn query(&self, promql: &str) -> Result<Option<f64>> {
        let body: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let value = body["data"]["result"][0]["value"][1]
            .as_str()
            .map(|v| v.parse::<f64>())
            .transpose()?;
        Ok(value)
    }

    /// What the scrape of `job` told Prometheus about the family `metric`
    /// (its metadata API): `(type, help)`, if anything.
    pub async fn metadata(&self, job: &str, metric: &str) -> Result<Option<(String, String)>> {
        let body: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/api/v1/targets/metadata", self.url))
            .query(&[
                ("match_target", format!("{{job=\"{job}\"}}")),
                ("metric", metric.to_string()),
            ])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(body["data"][0].as_object().map(|m| {
            let text = |k: &str| {
                m.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            (text("type"), text("help"))
        }))
    }

    /// Waits until `promql` yields `expected` (scrapes lag by a second or two).
    pub async fn wait_for(&self, promql: &str, expected: f64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.query(promql).await?;
            if value == Some(expected) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{promql} = {value:?} after 30s, expected {expected}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}
