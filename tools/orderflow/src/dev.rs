//! `orderflow dev`: the platform on one machine, no Docker, no JVM. This
//! process hosts librdkafka's mock cluster (a real Kafka-protocol broker) and
//! a Confluent-compatible schema registry, then starts each service as its own
//! process, as in a cluster, and interleaves their logs with a prefix.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rdkafka::mocking::MockCluster;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

#[derive(clap::Args)]
pub struct Args {
    /// Where the services keep their SQLite files. Wiped at start unless
    /// --keep-data: the embedded broker starts empty every time, and state
    /// that refers to events it no longer has would only confuse.
    #[arg(long, default_value = ".data/dev")]
    data_dir: PathBuf,
    #[arg(long)]
    keep_data: bool,
    /// Use this Kafka instead of the embedded broker; missing topics are
    /// created (as `orderflow topics apply` does, replication factor 1).
    #[arg(long)]
    kafka: Option<String>,
    /// Use this schema registry instead of the embedded one.
    #[arg(long)]
    registry: Option<String>,
    /// Use this PostgreSQL server instead of SQLite files, one database per
    /// service (`<url>/order`, `<url>/inventory`, …), e.g.
    /// `postgres://orderflow:orderflow@127.0.0.1:15432`.
    #[arg(long)]
    database_server: Option<String>,
    /// The gateway's port; the embedded registry takes the next one, then
    /// order, inventory, payment, shipping and notification (8080 to 8086),
    /// then the token issuer (8087). Each process's health probes and
    /// metrics listen 1,000 above its API (9080, 9082 to 9086).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    #[arg(long, default_value_t = 12)]
    partitions: i32,
    /// Start Jaeger (built once from its Go module) beside the stack: the
    /// services send it their spans; query it on 127.0.0.1:16686.
    #[arg(long)]
    jaeger: bool,
    /// Start Mailpit (a real SMTP server, built once from its Go module)
    /// beside the stack and send notifications there by email; read them on
    /// 127.0.0.1:8025. Customers need an email in their token (`orderflow
    /// token --email`).
    #[arg(long)]
    mail: bool,
}

/// How far above its API port a process's operations port is.
const OPS_OFFSET: u16 = 1_000;

/// Jaeger's usual ports: OTLP/HTTP, query API and UI, gRPC query API.
const JAEGER_PORTS: (u16, u16, u16) = (4318, 16686, 16685);
/// Mailpit's usual ports: SMTP, HTTP API and UI.
const MAILPIT_PORTS: (u16, u16) = (1025, 8025);

/// The services, in start order; the gateway comes last.
const SERVICES: [&str; 6] = [
    "order",
    "inventory",
    "payment",
    "shipping",
    "notification",
    "gateway",
];

struct Service {
    name: &'static str,
    child: Child,
}

pub async fn run(args: Args) -> Result<()> {
    if args.port.checked_add(7 + OPS_OFFSET).is_none() {
        return Err(crate::UsageError(format!(
            "--port {} leaves no room for the stack's ports (it takes --port to --port + {}): use 1024 to {}",
            args.port,
            7 + OPS_OFFSET,
            u16::MAX - 7 - OPS_OFFSET
        ))
        .into());
    }
    let bin_dir = std::env::current_exe()?
        .parent()
        .context("the binary's folder")?
        .to_path_buf();
    for name in SERVICES {
        let path = bin_dir.join(format!("orderflow-{name}"));
        if !path.exists() {
            bail!(
                "{} is missing: build the services first (`cargo build --bins`, or `make dev`)",
                path.display()
            );
        }
    }
    if !args.keep_data && args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("clearing {}", args.data_dir.display()))?;
    }
    std::fs::create_dir_all(&args.data_dir)?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;

    // The broker: embedded unless told otherwise; it lives as long as this
    // function. The embedded one does not serve the admin API's CreateTopics,
    // so its topics come from its own call; a real one gets `topics apply`.
    let (cluster, bootstrap) = match &args.kafka {
        Some(kafka) => {
            let config = orderflow_runtime::RuntimeConfig {
                kafka_bootstrap_servers: kafka.clone(),
                kafka_partitions: args.partitions,
                ..Default::default()
            };
            let report = orderflow_runtime::topics::apply(&config, 1, None)
                .await
                .context("creating topics")?;
            say(format_args!(
                "topics created on {kafka}: {}",
                if report.created.is_empty() {
                    "none (all exist)".into()
                } else {
                    report.created.join(", ")
                }
            ));
            for weaker in &report.weaker {
                say(format_args!("weaker than wanted: {weaker}"));
            }
            (None, kafka.clone())
        }
        None => {
            let cluster = MockCluster::new(1).context("starting the embedded broker")?;
            let tiers = orderflow_runtime::RuntimeConfig::default().retry_tiers();
            for topic in orderflow_runtime::topics::layout(args.partitions, &tiers) {
                cluster.create_topic(&topic.name, topic.partitions, 1)?;
            }
            let bootstrap = cluster.bootstrap_servers();
            (Some(cluster), bootstrap)
        }
    };

    // The companions, before the services that talk to them.
    let log_file = |name: &str| std::fs::File::create(data_dir.join(format!("{name}.log")));
    let jaeger = if args.jaeger {
        let (otlp, query, grpc) = JAEGER_PORTS;
        Some(
            orderflow_companions::Jaeger::start(otlp, query, grpc, Some(log_file("jaeger")?))
                .await
                .context("starting Jaeger (--jaeger); its log is in the data folder")?,
        )
    } else {
        None
    };
    let mailpit = if args.mail {
        let (smtp, http) = MAILPIT_PORTS;
        let log = Some(log_file("mailpit")?);
        Some(
            orderflow_companions::Mailpit::start(smtp, http, &Default::default(), log)
                .await
                .context("starting Mailpit (--mail); its log is in the data folder")?,
        )
    } else {
        None
    };

    let port = |i: u16| args.port + i;
    let registry = match &args.registry {
        Some(url) => url.clone(),
        None => {
            let addr = format!("127.0.0.1:{}", port(1));
            let listener = TcpListener::bind(&addr)
                .await
                .with_context(|| format!("binding the registry to {addr}"))?;
            let app = orderflow_registry::Registry::new().router();
            tokio::spawn(async move { axum::serve(listener, app).await });
            format!("http://{addr}")
        }
    };

    // The token issuer: keys made now, tokens for anyone who asks (this
    // machine only). The gateway trusts it; `orderflow token` asks it.
    let issuer_addr = format!("127.0.0.1:{}", port(7));
    let issuer_listener = TcpListener::bind(&issuer_addr)
        .await
        .with_context(|| format!("binding the token issuer to {issuer_addr}"))?;
    let issuer = std::sync::Arc::new(
        orderflow_auth::Issuer::new(
            &format!("http://{issuer_addr}"),
            orderflow_auth::DEFAULT_AUDIENCE,
        )
        .context("making the token issuer's keys")?,
    );
    let issuer_app = issuer.clone().router();
    tokio::spawn(async move { axum::serve(issuer_listener, issuer_app).await });

    let url = |name: &str| {
        let i = SERVICES
            .iter()
            .position(|s| *s == name)
            .expect("a known service");
        let port = if name == "gateway" {
            port(0)
        } else {
            port(i as u16 + 2)
        };
        (
            format!("127.0.0.1:{port}"),
            format!("http://127.0.0.1:{port}"),
            format!("127.0.0.1:{}", port + OPS_OFFSET),
        )
    };
    let mut services = Vec::new();
    for name in SERVICES {
        let mut command = Command::new(bin_dir.join(format!("orderflow-{name}")));
        // Every API checks the caller's token against the dev issuer.
        command
            .env("ORDERFLOW_HTTP_ADDR", url(name).0)
            .env("ORDERFLOW_OPS_ADDR", url(name).2)
            .env("ORDERFLOW_AUTH_JWKS_URL", issuer.jwks_url())
            .env("ORDERFLOW_AUTH_ISSUER", &issuer.url)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG")
                    .unwrap_or_else(|_| "info,rdkafka=warn,librdkafka=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command.envs(orderflow_runtime::allocator_env());
        if let Some(jaeger) = &jaeger {
            command
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", &jaeger.otlp_endpoint)
                .env("OTEL_BSP_SCHEDULE_DELAY", "500");
        }
        if let (Some(mailpit), "notification") = (&mailpit, name) {
            command
                .env("ORDERFLOW_CHANNEL", "smtp")
                .env("ORDERFLOW_SMTP_HOST", "127.0.0.1")
                .env("ORDERFLOW_SMTP_PORT", mailpit.smtp_port.to_string())
                .env("ORDERFLOW_SMTP_TLS", "none")
                .env(
                    "ORDERFLOW_SMTP_FROM",
                    "orderflow <orders@orderflow.localhost>",
                );
        }
        if name == "gateway" {
            command
                .env("ORDERFLOW_ORDER_URL", url("order").1)
                .env("ORDERFLOW_INVENTORY_URL", url("inventory").1)
                .env("ORDERFLOW_NOTIFICATION_URL", url("notification").1)
                .env("ORDERFLOW_PAYMENT_URL", url("payment").1);
            if let Some(jaeger) = &jaeger {
                // Its UI for the link, its query API for the waterfall: one port.
                command
                    .env("ORDERFLOW_CONSOLE_JAEGER_URL", &jaeger.query_url)
                    .env("ORDERFLOW_JAEGER_QUERY_URL", &jaeger.query_url);
            }
        } else {
            let database = match &args.database_server {
                Some(server) => format!("{}/{name}", server.trim_end_matches('/')),
                None => format!("sqlite://{}/{name}.db", data_dir.display()),
            };
            command
                .env("ORDERFLOW_DATABASE_URL", database)
                .env("ORDERFLOW_KAFKA_PARTITIONS", args.partitions.to_string());
            // The embedded broker's fetch wait, unless the caller chose one.
            if cluster.is_some() && std::env::var_os("ORDERFLOW_KAFKA_FETCH_WAIT_MAX_MS").is_none()
            {
                command.env(
                    "ORDERFLOW_KAFKA_FETCH_WAIT_MAX_MS",
                    orderflow_runtime::EMBEDDED_BROKER_FETCH_WAIT_MS.to_string(),
                );
            }
            if name == "payment" {
                // The sandbox's weather may be changed while it runs (an
                // operator's call): a demo stack's knob.
                command.env("ORDERFLOW_SANDBOX_API", "true");
            }
        }
        // Every service talks to Kafka and the registry; the gateway for the operator
        // API's dead letters (the console's too).
        command
            .env("ORDERFLOW_KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
            .env("ORDERFLOW_SCHEMA_REGISTRY_URL", &registry);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting orderflow-{name}"))?;
        for stream in [
            child
                .stdout
                .take()
                .map(Box::new)
                .map(|s| s as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child
                .stderr
                .take()
                .map(Box::new)
                .map(|s| s as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            tokio::spawn(async move {
                // Read to the end whatever becomes of our stdout: a child
                // whose pipe fills stops.
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    say(format_args!("{name:>12} | {line}"));
                }
            });
        }
        services.push(Service { name, child });
    }

    let gateway = url("gateway").1;
    let operator = issuer.operator();
    let outcome = tokio::select! {
        r = start_up(&gateway, &operator) => r,
        exited = first_exit(&mut services) => Err(exited),
    };
    if let Err(e) = outcome {
        stop(&mut services).await;
        return Err(e);
    }
    let data = match &args.database_server {
        Some(server) => format!("PostgreSQL {}", orderflow_runtime::redact(server)),
        None => data_dir.display().to_string(),
    };
    // Where the operator tools (`orderflow dlq`, `orderflow rebuild`,
    // `orderflow audit`) find
    // this stack when they are given no other address.
    crate::connect::DevConnect {
        bootstrap_servers: bootstrap.clone(),
        registry_url: registry.clone(),
        gateway_url: gateway.clone(),
        issuer_url: issuer.url.clone(),
        service_urls: SERVICES
            .iter()
            .filter(|name| **name != "gateway")
            .map(|name| (name.to_string(), url(name).1))
            .collect(),
    }
    .write(&data_dir)?;
    // A console signed in as an operator, for as long as `make dev` usually runs.
    let console_token = issuer.mint("operator", true, std::time::Duration::from_secs(12 * 3_600));
    banner(
        &gateway,
        &bootstrap,
        &registry,
        &issuer.url,
        &data,
        &console_token,
    );
    if let Some(jaeger) = &jaeger {
        say(format_args!(
            "Traces: Jaeger's query API at {url} (e.g. {url}/api/traces?service=orderflow-gateway).\n  This Jaeger is built from its Go module, without the UI's assets: {url} shows a placeholder page.\n",
            url = jaeger.query_url
        ));
    }
    if let Some(mailpit) = &mailpit {
        say(format_args!(
            "Email: notifications go to Mailpit (SMTP 127.0.0.1:{}); read them with\n  curl -s {}/api/v1/messages\n  A customer gets email when their token has an address: token --customer c-42 --email ada@example.com\n",
            mailpit.smtp_port, mailpit.http_url
        ));
    }

    let result = tokio::select! {
        _ = orderflow_runtime::shutdown::signal() => Ok(()),
        exited = first_exit(&mut services) => Err(exited),
    };
    say(format_args!("stopping…"));
    stop(&mut services).await;
    drop(cluster);
    drop((jaeger, mailpit));
    result
}

/// Waits for the gateway and the catalogue, then seeds the demo catalogue.
async fn start_up(gateway: &str, operator_token: &str) -> Result<()> {
    let client = orderflow_api::GatewayClient::with_token(gateway, operator_token);
    let http = client.http.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let probe = http
            .get(format!("{gateway}/v1/inventory/SKU-001"))
            .send()
            .await;
        if probe.is_ok_and(|r| r.status() == 404 || r.status().is_success()) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the stack did not come up within 60s; see the logs above");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.seed_demo_catalogue().await?;
    Ok(())
}

async fn first_exit(services: &mut [Service]) -> anyhow::Error {
    loop {
        for s in services.iter_mut() {
            if let Ok(Some(status)) = s.child.try_wait() {
                return anyhow::anyhow!(
                    "orderflow-{} exited ({status}); stopping the stack",
                    s.name
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SIGTERM to every service, gateway first, then wait; SIGKILL after 20s.
async fn stop(services: &mut [Service]) {
    for s in services.iter().rev() {
        if let Some(pid) = s.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    for s in services.iter_mut().rev() {
        match tokio::time::timeout(Duration::from_secs(20), s.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("orderflow-{} did not stop within 20s; killing it", s.name);
                let _ = s.child.kill().await;
            }
        }
    }
}

fn banner(
    gateway: &str,
    bootstrap: &str,
    registry: &str,
    issuer: &str,
    data: &str,
    console_token: &str,
) {
    let ops = gateway
        .rsplit_once(':')
        .and_then(|(host, port)| Some(format!("{host}:{}", port.parse::<u16>().ok()? + OPS_OFFSET)))
        .unwrap_or_default();
    say(format_args!(
        r#"
orderflow is running.
  gateway         {gateway}
  kafka           {bootstrap}
  schema registry {registry}
  token issuer    {issuer}  (dev only: it signs a token for anyone on this machine)
  health, metrics each process's API port + 1000 (gateway: {ops}/readyz, /metrics)
  data            {data}

Every API call needs a bearer token. Get one for customer c-42 (an operator's: --operator):
  TOKEN=$(cargo run -q --bin orderflow -- token --customer c-42)
Place an order as c-42:
  curl -si -X POST {gateway}/v1/orders -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -H 'Idempotency-Key: first-order' \
    -d '{{"items":[{{"sku":"SKU-001","quantity":2}}],"payment":{{"token":"tok_visa"}},"shipping_address":{{"name":"Ada","line1":"1 Main St","city":"Berlin","postal_code":"10115","country":"DE"}}}}'
Then follow it (use the order_id from the answer):
  curl -s {gateway}/v1/orders/<order_id> -H "authorization: Bearer $TOKEN"
Dead letters (this stack is found through .data/dev/connect.json):
  cargo run -q --bin orderflow -- dlq list
Console (signed in as an operator for 12 hours):
  {gateway}/console/#token={console_token}
  A customer's console: {gateway}/console/#token=$(cargo run -q --bin orderflow -- token --customer c-42)

Ctrl-C stops everything.
"#
    ));
}

/// What `orderflow dev` prints. A closed stdout (`orderflow dev | head`)
/// drops the lines and nothing else: the stack runs until it is stopped,
/// and stopping it stops its services (exiting here would leave them
/// running).
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{line}");
}
