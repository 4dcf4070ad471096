//! The cluster tier's used-by story (`make test-cluster`): the chart
//! installed by `helm install` into a Kubernetes whose node runs its Pods
//! (tools/scripts/kube-node.sh: containerd, kubelet, kube-proxy, CoreDNS),
//! in a namespace that enforces the restricted Pod Security Standard. Kafka
//! and PostgreSQL (started by tools/scripts/cluster-tests.sh), the schema
//! registry, the OIDC issuer and Jaeger (started here) run on the host and
//! are reached by address and secret, as a cluster reaches managed
//! services. Each step checks what a user would see.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use orderflow_auth::Issuer;
use orderflow_companions::Jaeger;
use orderflow_envelope::{Codec, EventType};
use orderflow_testkit::cluster::{unready_pods, until, Cluster};
use orderflow_testkit::traces::TraceQuery;
use orderflow_testkit::{check_four_outcomes, Api, KafkaProbe};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

const NS: &str = "shop";
const RELEASE: &str = "orderflow";
const PARTITIONS: i32 = 12;
const COMPONENTS: [&str; 6] = [
    "gateway",
    "order",
    "inventory",
    "payment",
    "shipping",
    "notification",
];

/// The chart's values for this cluster: every address and credential a
/// production install would set for its managed services, nothing more.
fn values(cluster: &Cluster, registry: &str, issuer: &Issuer, jaeger: &Jaeger) -> String {
    format!(
        r#"image:
  registry: {images}
  tag: "{tag}"
  # Imported into the node's containerd; nothing is pulled.
  pullPolicy: Never
kafka:
  bootstrapServers: {kafka}
  partitions: {PARTITIONS}
  replicationFactor: 1
  sasl:
    enabled: false
schemaRegistry:
  url: {registry}
auth:
  issuer: {issuer}
  jwksUrl: {jwks}
database:
  existingSecret: orderflow-database
tracing:
  otlpEndpoint: {otlp}
  jaegerUiUrl: {jaeger_ui}
# One replica each: the node has two cores.
replicaCountOnInstall: 1
"#,
        images = cluster.images,
        tag = cluster.tag,
        kafka = cluster.kafka,
        issuer = issuer.auth_config().issuer,
        jwks = issuer.jwks_url(),
        otlp = jaeger.otlp_endpoint,
        jaeger_ui = jaeger.query_url,
    )
}

/// The topics the hook Job made, as the broker lists them.
fn topics(bootstrap: &str) -> Result<BTreeMap<String, usize>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| !t.name().starts_with("__"))
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn install_order_trace_uninstall() -> Result<()> {
    let cluster = Cluster::from_env()?;
    let registry = orderflow_testkit::registry_on(&cluster.host);
    let issuer = orderflow_testkit::issuer_on(&cluster.host);
    let jaeger = Jaeger::start_receiving_on(&cluster.host).await?;

    // --- helm install, hooks and all ---------------------------------------------
    cluster.kubectl(["create", "namespace", NS])?;
    cluster.kubectl([
        "label",
        "namespace",
        NS,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    ])?;
    // The databases' addresses and password, as an operator (or the
    // External Secrets Operator) stores them before the install.
    let mut secret = vec![
        "-n".to_string(),
        NS.into(),
        "create".into(),
        "secret".into(),
        "generic".into(),
        "orderflow-database".into(),
    ];
    for service in &COMPONENTS[1..] {
        secret.push(format!(
            "--from-literal={service}={}",
            cluster.database_url(service)
        ));
    }
    cluster.kubectl(&secret)?;
    let values_file = tempfile::Builder::new().suffix(".yaml").tempfile()?;
    std::fs::write(
        values_file.path(),
        values(&cluster, &registry, &issuer, &jaeger),
    )?;
    let values_path = values_file.path().to_str().context("a path")?;
    let chart = cluster.chart.to_str().context("a path")?;
    let started = Instant::now();
    let notes = cluster.helm([
        "install",
        RELEASE,
        chart,
        "-n",
        NS,
        "-f",
        values_path,
        "--wait",
        "--timeout",
        "10m",
    ])?;
    let installed = started.elapsed();
    println!("helm install --wait (hooks, then every Deployment available): {installed:.1?}");
    ensure!(
        notes.contains("STATUS: deployed"),
        "helm install said:\n{notes}"
    );

    // The topics hook: every topic of the layout, with its partitions.
    let tiers = orderflow_runtime::RuntimeConfig::default().retry_tiers();
    let found = topics(&cluster.kafka)?;
    for spec in orderflow_runtime::topics::layout(PARTITIONS, &tiers) {
        ensure!(
            found.get(&spec.name) == Some(&(spec.partitions as usize)),
            "topic {} with {} partitions: the broker has {:?}",
            spec.name,
            spec.partitions,
            found.get(&spec.name)
        );
    }
    // The schemas hook: every event's subject registered.
    let subjects: BTreeSet<String> = reqwest::get(format!("{registry}/subjects"))
        .await?
        .error_for_status()?
        .json()
        .await?;
    for t in EventType::ALL {
        let subject = Codec::subject(*t);
        ensure!(
            subjects.contains(&subject),
            "no schema under {subject}: {subjects:?}"
        );
    }
    println!("hooks: {} topics, {} subjects", found.len(), subjects.len());

    // Every Pod of the release Running and Ready, none restarted.
    let pods = cluster.get(NS, "pods")?;
    let unready = unready_pods(&pods);
    ensure!(
        unready.is_empty(),
        "Pods not ready after helm install --wait: {unready:?}"
    );
    let mut running = Vec::new();
    for pod in pods["items"].as_array().into_iter().flatten() {
        let name = pod["metadata"]["name"].as_str().unwrap_or("?").to_string();
        for c in pod["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
        {
            ensure!(
                c["restartCount"] == 0,
                "{name}'s container {} restarted {} times",
                c["name"],
                c["restartCount"]
            );
        }
        running.push(name);
    }
    for component in COMPONENTS {
        ensure!(
            running
                .iter()
                .any(|p| p.starts_with(&format!("{RELEASE}-{component}-"))),
            "no Pod of {component}: {running:?}"
        );
    }
    println!("Pods Ready: {}", running.len());

    // --- Orders through the gateway's Service ------------------------------------
    let gateway = cluster.service_url(NS, &format!("{RELEASE}-gateway"))?;
    let payment = cluster.service_url(NS, &format!("{RELEASE}-payment"))?;
    let api = Api::new(gateway, vec![payment], issuer.clone());
    api.client.seed_demo_catalogue().await?;
    let databases: BTreeMap<&'static str, String> = COMPONENTS[1..]
        .iter()
        .map(|s| (*s, cluster.database_url(s)))
        .collect();
    let kafka = KafkaProbe::new(&cluster.kafka);
    let placed = Instant::now();
    let orders = check_four_outcomes(
        &api,
        orderflow_testkit::idle::wait_idle(&kafka, &tiers, &databases),
    )
    .await?;
    println!(
        "four outcomes, stock, charges and notifications read back: {:.1?}",
        placed.elapsed()
    );

    // --- The order's trace in Jaeger ---------------------------------------------
    let services: Vec<String> = COMPONENTS
        .iter()
        .map(|c| format!("orderflow-{c}"))
        .collect();
    let services: Vec<&str> = services.iter().map(String::as_str).collect();
    let trace = TraceQuery::new(&jaeger.query_url)
        .trace_of_order(&orders.shipped, &services)
        .await?;
    println!(
        "the shipped order's trace: {} spans from {} services",
        trace.len(),
        services.len()
    );

    // --- helm uninstall leaves nothing --------------------------------------------
    cluster.helm(["uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "2m"])?;
    let left = until(
        "nothing of the release left",
        Duration::from_secs(90),
        || {
            let out = cluster.kubectl([
                "-n",
                NS,
                "get",
                "all,configmap,secret,serviceaccount,job,networkpolicy,poddisruptionbudget",
                "-o",
                "name",
            ])?;
            let left: Vec<&str> = out
                .lines()
                .filter(|l| {
                    !matches!(
                        *l,
                        "configmap/kube-root-ca.crt"
                            | "serviceaccount/default"
                            | "secret/orderflow-database"
                    )
                })
                .collect();
            Ok(left.is_empty().then_some(()))
        },
    )
    .await;
    left?;
    cluster.kubectl(["delete", "namespace", NS, "--wait=true", "--timeout=120s"])?;
    Ok(())
}
