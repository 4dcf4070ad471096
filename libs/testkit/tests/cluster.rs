//! The cluster tier's used-by story (`make test-cluster`): the chart
//! installed by `helm install` into a Kubernetes whose node runs its Pods
//! (tools/scripts/kube-node.sh: containerd, kubelet, kube-proxy, CoreDNS),
//! in a namespace that enforces the restricted Pod Security Standard. Kafka
//! and PostgreSQL (started by tools/scripts/cluster-tests.sh), the schema
//! registry, the OIDC issuer and Jaeger (started here) run on the host and
//! are reached by address and secret, as a cluster reaches managed
//! services. Each step checks what a user would see, and prints what it
//! measured:
//!
//! 1. `helm install --wait` with its hooks: every topic and schema there,
//!    every Pod Running and Ready under the restricted profile;
//! 2. the four outcomes through the gateway's Service, stock, charges and
//!    notifications read back; the shipped order one trace in Jaeger; the
//!    first order of the install's NOTES, its commands run as printed;
//! 3. under a steady load: `kubectl scale` of inventory to 3 (the new Pods
//!    join its consumer group and own partitions), a `helm upgrade` that
//!    keeps the 3, a rolling `helm upgrade` to a new image tag, `kubectl
//!    delete pod` of a consumer — then every order terminal and the saga's
//!    invariants over all of them: nothing lost, nothing done twice;
//! 4. `helm uninstall` leaves nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use orderflow_auth::Issuer;
use orderflow_companions::Jaeger;
use orderflow_envelope::{Codec, EventType};
use orderflow_testkit::checks::check_invariants;
use orderflow_testkit::cluster::{unready_pods, until, Cluster};
use orderflow_testkit::load::SteadyLoad;
use orderflow_testkit::system::COMPONENTS;
use orderflow_testkit::traces::{TraceQuery, SERVICES};
use orderflow_testkit::{check_four_outcomes, Api, KafkaProbe};

const NS: &str = "shop";
const RELEASE: &str = "orderflow";
const PARTITIONS: i32 = 12;

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
  # A principal per component; each password in the Secret of its name.
  sasl:
    enabled: true
    mechanism: SCRAM-SHA-512
    perComponent:
      enabled: true
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
gateway:
  console:
    # The order page's trace waterfall, read by the gateway.
    jaegerQueryUrl: {jaeger_ui}
# One replica each: the node has two cores.
replicaCountOnInstall: 1
"#,
        images = cluster.images,
        tag = cluster.tag,
        kafka = cluster.kafka_sasl,
        issuer = issuer.auth_config().issuer,
        jwks = issuer.jwks_url(),
        otlp = jaeger.otlp_endpoint,
        jaeger_ui = jaeger.query_url,
    )
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
    // The databases' addresses and password and each component's Kafka
    // password, as an operator (or the External Secrets Operator) stores
    // them before the install.
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
    for (user, password) in &cluster.kafka_users {
        cluster.kubectl([
            "-n",
            NS,
            "create",
            "secret",
            "generic",
            user.as_str(),
            &format!("--from-literal=password={password}"),
        ])?;
    }
    let values_file = tempfile::Builder::new().suffix(".yaml").tempfile()?;
    std::fs::write(
        values_file.path(),
        values(&cluster, &registry, &issuer, &jaeger),
    )?;
    let values_path = values_file.path().to_str().context("a path")?;
    let chart = cluster.chart.to_str().context("a path")?;
    let started = Instant::now();
    let release = |verb: &'static str, timeout: &'static str| {
        [
            verb,
            RELEASE,
            chart,
            "-n",
            NS,
            "-f",
            values_path,
            "--wait",
            "--timeout",
            timeout,
        ]
    };
    let notes = cluster.helm(release("install", "10m"))?;
    let installed = started.elapsed();
    println!("helm install --wait (hooks, then every Deployment available): {installed:.1?}");
    let status: serde_json::Value =
        serde_json::from_str(&cluster.helm(["status", RELEASE, "-n", NS, "-o", "json"])?)?;
    ensure!(
        status["info"]["status"] == "deployed",
        "helm status: {status}"
    );

    // The topics hook: every topic of the layout, with its partitions.
    let tiers = orderflow_runtime::RuntimeConfig::default().retry_tiers();
    let kafka = KafkaProbe::new(&cluster.kafka);
    let found = kafka.topics()?;
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
    let pods = cluster.pods(NS, RELEASE, None)?;
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
    // Ready Pods are endpoints once kube-proxy has written their rules.
    let served = Instant::now();
    let openapi = format!("{gateway}/openapi.json");
    let plain = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !plain
        .get(&openapi)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        ensure!(
            Instant::now() < deadline,
            "the gateway's Service does not answer at {openapi}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "the gateway answers through its Service {:.1?} after helm returned",
        served.elapsed()
    );
    let api = Arc::new(Api::new(gateway, vec![payment], issuer.clone()));
    api.client.seed_demo_catalogue().await?;
    let databases: BTreeMap<&'static str, String> = COMPONENTS[1..]
        .iter()
        .map(|s| (*s, cluster.database_url(s)))
        .collect();
    let placed = Instant::now();
    let shipped = check_four_outcomes(
        &api,
        orderflow_testkit::idle::wait_idle(&kafka, &tiers, &databases),
    )
    .await?;
    println!(
        "four outcomes, stock, charges and notifications read back: {:.1?}",
        placed.elapsed()
    );

    // --- The order's trace in Jaeger ---------------------------------------------
    let services = SERVICES;
    let trace = TraceQuery::new(&jaeger.query_url)
        .trace_of_order(&shipped, &services)
        .await?;
    // The same trace through the gateway, as the console's waterfall reads it.
    let drawn: serde_json::Value = api
        .http
        .get(api.url(&format!("/v1/orders/{}/trace", shipped)))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let drawn: BTreeSet<&str> = drawn["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["service"].as_str())
        .collect();
    ensure!(
        drawn == services.iter().copied().collect(),
        "GET /v1/orders/{{id}}/trace through the gateway: {drawn:?}"
    );
    println!(
        "the shipped order's trace: {} spans from {} services, in Jaeger and through the gateway",
        trace.len(),
        services.len()
    );

    notes_first_order(&cluster, &api, &notes).await?;

    // --- Scale, upgrade, roll, kill: under a steady load ----------------------------
    let initial: BTreeMap<String, i64> =
        (3..=10).map(|i| (format!("SKU-{i:03}"), 10_000)).collect();
    for (sku, available) in &initial {
        api.set_stock(sku, *available, 999).await?;
    }
    let load = SteadyLoad::start(
        api.clone(),
        10.0,
        &uuid::Uuid::new_v4().simple().to_string(),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    scale_inventory_to_three(&cluster, &kafka).await?;
    let upgrade = release("upgrade", "5m");
    cluster.helm(upgrade)?;
    ensure!(
        cluster.kubectl([
            "-n",
            NS,
            "get",
            &format!("deploy/{RELEASE}-inventory"),
            "-o",
            "jsonpath={.spec.replicas}"
        ])? == "3",
        "helm upgrade changed inventory's 3 replicas"
    );
    println!("helm upgrade with the same values: inventory keeps its 3 replicas");

    let failed_before = load.failed();
    let rolled = Instant::now();
    let next = format!("image.tag={}", cluster.next_tag);
    let mut roll = upgrade.to_vec();
    roll.extend(["--set", &next]);
    cluster.helm(&roll)?;
    // helm returns once the new Pods are Ready; the old ones are still
    // draining (preStop sleep, then a graceful shutdown).
    let suffix = format!(":{}", cluster.next_tag);
    until(
        "every Pod on the new tag, the old ones gone",
        Duration::from_secs(180),
        || {
            let pods = cluster.pods(NS, RELEASE, None)?;
            let old: Vec<String> = pods["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| {
                    p["spec"]["containers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| !c["image"].as_str().unwrap_or_default().ends_with(&suffix))
                })
                .map(|p| p["metadata"]["name"].as_str().unwrap_or("?").to_string())
                .collect();
            Ok((old.is_empty() && unready_pods(&pods).is_empty()).then_some(()))
        },
    )
    .await?;
    println!(
        "rolling helm upgrade to {} under load: {:.1?}, {} failed requests at the gateway",
        cluster.next_tag,
        rolled.elapsed(),
        load.failed() - failed_before
    );

    let victim = pod_of(&cluster, "payment")?;
    cluster.kubectl(["-n", NS, "delete", "pod", &victim, "--wait=false"])?;
    until("a new payment Pod Ready", Duration::from_secs(120), || {
        let pods = cluster.pods(NS, RELEASE, Some("payment"))?;
        Ok(unready_pods(&pods).is_empty().then_some(()))
    })
    .await?;
    println!("kubectl delete pod {victim} under load: its replacement is Ready");
    tokio::time::sleep(Duration::from_secs(5)).await;

    let report = load.stop().await?;
    let done = api
        .wait_all_terminal(&report.accepted, Duration::from_secs(180))
        .await?;
    orderflow_testkit::idle::wait_idle(&kafka, &tiers, &databases).await?;
    let checked = check_invariants(&api, &initial, &done, Some(&databases)).await?;
    let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &done {
        *statuses.entry(o.status.as_str()).or_default() += 1;
    }
    println!(
        "the load: {} orders {statuses:?}, {} failed attempts (tried again with their Idempotency-Key): {:?}; invariants hold ({checked:?})",
        done.len(),
        report.failed.len(),
        report.failed.iter().take(5).collect::<Vec<_>>()
    );
    ensure!(
        statuses.get("SHIPPED") == Some(&done.len()),
        "every load order ships: {statuses:?}"
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
                // What was there before the install.
                .filter(|l| {
                    !matches!(
                        *l,
                        "configmap/kube-root-ca.crt"
                            | "serviceaccount/default"
                            | "secret/orderflow-database"
                    ) && !cluster
                        .kafka_users
                        .iter()
                        .any(|(user, _)| *l == format!("secret/{user}"))
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

/// `kubectl scale` inventory to 3: the new Pods Ready, then in its consumer
/// group, each owning partitions.
async fn scale_inventory_to_three(cluster: &Cluster, kafka: &KafkaProbe) -> Result<()> {
    let group = "orderflow-inventory";
    let before = kafka.members(group)?;
    ensure!(
        before.len() == 1,
        "inventory's group before scaling: {before:?}"
    );
    let started = Instant::now();
    cluster.kubectl([
        "-n",
        NS,
        "scale",
        &format!("deploy/{RELEASE}-inventory"),
        "--replicas=3",
    ])?;
    until("3 inventory Pods Ready", Duration::from_secs(120), || {
        let pods = cluster.pods(NS, RELEASE, Some("inventory"))?;
        let n = pods["items"].as_array().map_or(0, Vec::len);
        Ok((n == 3 && unready_pods(&pods).is_empty()).then_some(()))
    })
    .await?;
    let ready = started.elapsed();
    let members = until(
        "3 members of orderflow-inventory, each with partitions",
        Duration::from_secs(120),
        || {
            let members = kafka.members(group)?;
            Ok(
                (members.len() == 3 && members.iter().all(|m| !m.partitions.is_empty()))
                    .then_some(members),
            )
        },
    )
    .await?;
    println!(
        "kubectl scale inventory 1 → 3: Pods Ready in {ready:.1?}, 3 group members in {:.1?}; partitions per member before {:?}, after {:?}",
        started.elapsed(),
        before.iter().map(|m| m.partitions.len()).collect::<Vec<_>>(),
        members.iter().map(|m| (m.host.as_str(), m.partitions.len())).collect::<Vec<_>>()
    );
    Ok(())
}

/// The name of a Pod of `component`.
fn pod_of(cluster: &Cluster, component: &str) -> Result<String> {
    let pods = cluster.pods(NS, RELEASE, Some(component))?;
    pods["items"][0]["metadata"]["name"]
        .as_str()
        .map(String::from)
        .with_context(|| format!("no Pod of {component}"))
}

/// The commands the NOTES print to reach the gateway, stock a SKU and place
/// the first order, run as printed in a shell (with a customer's and an
/// operator's token, which the NOTES leave to the reader); then the order,
/// followed with the command they print, until SHIPPED.
async fn notes_first_order(cluster: &Cluster, api: &Api, notes: &str) -> Result<()> {
    let lines: Vec<&str> = notes.lines().collect();
    // The first command that says `what`, with its continuation lines.
    let command = |what: &str| -> Result<String> {
        let first = lines
            .iter()
            .position(|l| l.contains(what))
            .with_context(|| format!("the NOTES have no command with {what:?}:\n{notes}"))?;
        // Continued by a trailing backslash, or by a quote still open.
        let mut command = String::new();
        for line in &lines[first..] {
            command.push_str(line.trim());
            command.push('\n');
            let open_quote = command.matches('\'').count() % 2 == 1;
            if !line.ends_with('\\') && !open_quote {
                break;
            }
        }
        Ok(command)
    };
    let forward = command("port-forward svc/")?;
    let script = format!(
        "set -e\nexport KUBECONFIG={kubeconfig} PATH={tools}:$PATH\n\
         OPERATOR={operator}\nCUSTOMER={customer}\n{forward}FORWARD=$!\ntrap 'kill $FORWARD' EXIT\n{gateway}\
         for _ in $(seq 100); do curl -s -o /dev/null \"$GATEWAY/openapi.json\" && break; sleep 0.1; done\n{put}{post}",
        kubeconfig = std::env::var("KUBECONFIG").context("KUBECONFIG")?,
        tools = cluster.kubectl_path().parent().context("kubectl's folder")?.display(),
        operator = api.issuer.operator(),
        customer = api.customer_token("c-42"),
        gateway = command("GATEWAY=")?,
        put = command("curl -s -X PUT")?,
        post = command("curl -si -X POST")?,
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()?;
    let said = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && said.contains(" 202 "),
        "the NOTES' commands: {}\n{said}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let location = said
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("location: ")
                .map(|v| v.trim().to_string())
        })
        .context("no Location in the answer to the NOTES' POST")?;
    let order_id = location.rsplit('/').next().unwrap_or_default();
    let order = api.wait_terminal(order_id).await?;
    ensure!(
        order.status == "SHIPPED",
        "the NOTES' first order: {order:?}"
    );
    println!("the NOTES' first order, placed with their commands as printed: {order_id} SHIPPED");
    Ok(())
}
