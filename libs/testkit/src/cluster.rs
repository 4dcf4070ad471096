//! The cluster tier's handles: `kubectl` and `helm` against the cluster that
//! tools/scripts/cluster-tests.sh started (control plane and node), and the
//! servers it started on the host — Kafka and PostgreSQL — which the chart
//! reaches as a cluster reaches managed services, by address.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// What tools/scripts/cluster-tests.sh hands the test.
pub struct Cluster {
    kubectl: PathBuf,
    helm: PathBuf,
    /// The node's bridge address: where Pods reach servers on the host.
    pub host: String,
    /// Kafka's PLAINTEXT listener on loopback: the test's own look at the
    /// broker, as its operator (a super user).
    pub kafka: String,
    /// Kafka's SASL listener on `host`, for the Pods: SCRAM-SHA-512, ACLs.
    pub kafka_sasl: String,
    /// Each component's Kafka principal and its password.
    pub kafka_users: Vec<(String, String)>,
    /// PostgreSQL as `postgres://user:password@host:port`, on `host`.
    pub database: String,
    /// The images' name prefix and tag, imported into the node's containerd,
    /// and a second tag of the same images to roll an upgrade to.
    pub images: String,
    pub tag: String,
    pub next_tag: String,
    /// The chart's folder.
    pub chart: PathBuf,
}

fn required(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| {
        format!("{name} is not set: run the cluster tier through `make test-cluster`, which starts the cluster and the servers on its host")
    })
}

impl Cluster {
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            kubectl: required("ORDERFLOW_CLUSTER_KUBECTL")?.into(),
            helm: required("ORDERFLOW_CLUSTER_HELM")?.into(),
            host: required("ORDERFLOW_CLUSTER_HOST")?,
            kafka: required("ORDERFLOW_CLUSTER_KAFKA")?,
            kafka_sasl: required("ORDERFLOW_CLUSTER_KAFKA_SASL")?,
            kafka_users: required("ORDERFLOW_CLUSTER_KAFKA_USERS")?
                .split_whitespace()
                .filter_map(|u| u.split_once('='))
                .map(|(name, password)| (name.to_string(), password.to_string()))
                .collect(),
            database: required("ORDERFLOW_CLUSTER_DATABASE")?,
            images: required("ORDERFLOW_CLUSTER_IMAGES")?,
            tag: required("ORDERFLOW_CLUSTER_TAG")?,
            next_tag: required("ORDERFLOW_CLUSTER_NEXT_TAG")?,
            chart: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../helm/orderflow")),
        })
    }

    /// The kubectl binary, for a shell that runs what a reader would type.
    pub fn kubectl_path(&self) -> &std::path::Path {
        &self.kubectl
    }

    /// Runs kubectl; its standard output, or an error with everything it said.
    pub fn kubectl<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        run(&self.kubectl, args)
    }

    /// Runs helm; its standard output, or an error with everything it said.
    pub fn helm<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        run(&self.helm, args)
    }

    /// `kubectl -n NS get WHAT... -o json`.
    pub fn get(&self, ns: &str, what: &[&str]) -> Result<Value> {
        let mut args = vec!["-n", ns, "get"];
        args.extend(what);
        args.extend(["-o", "json"]);
        let out = self.kubectl(&args)?;
        serde_json::from_str(&out).with_context(|| format!("kubectl get {what:?}: {out}"))
    }

    /// The Pods of a component of `release` (`None`: all of the namespace's).
    pub fn pods(&self, ns: &str, release: &str, component: Option<&str>) -> Result<Value> {
        let selector = match component {
            Some(c) => {
                format!("app.kubernetes.io/instance={release},app.kubernetes.io/component={c}")
            }
            None => format!("app.kubernetes.io/instance={release}"),
        };
        self.get(ns, &["pods", "-l", &selector])
    }

    /// `http://<cluster IP>:<first port>` of a Service: reached from the host
    /// through kube-proxy's rules, as a Pod reaches it.
    pub fn service_url(&self, ns: &str, service: &str) -> Result<String> {
        let svc = self.get(ns, &[&format!("service/{service}")])?;
        let ip = svc["spec"]["clusterIP"].as_str().context("a cluster IP")?;
        let port = svc["spec"]["ports"][0]["port"].as_i64().context("a port")?;
        Ok(format!("http://{ip}:{port}"))
    }

    /// A database URL of the host's PostgreSQL.
    pub fn database_url(&self, database: &str) -> String {
        format!("{}/{database}", self.database)
    }
}

fn run<I, S>(program: &PathBuf, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(program);
    command.args(args);
    let shown = format!("{command:?}");
    let out = command
        .output()
        .with_context(|| format!("running {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Polls `check` every half second until it says `Some`, for up to `limit`;
/// the error names `what` and the last answer it gave.
pub async fn until<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        let last = match check() {
            Ok(Some(found)) => return Ok(found),
            Ok(None) => String::from("not yet"),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!("{what}: not after {limit:?} ({last})");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Pods of `pods` (a `kubectl get pods -o json`) that are not Running and
/// Ready, each with what its status says.
pub fn unready_pods(pods: &Value) -> Vec<String> {
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["status"]["phase"] != "Succeeded")
        .filter(|p| {
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            p["status"]["phase"] != "Running" || !ready
        })
        .map(|p| {
            let waiting: Vec<String> = p["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["state"]["waiting"]["reason"].as_str().map(String::from))
                .collect();
            format!(
                "{} {} {waiting:?}",
                p["metadata"]["name"].as_str().unwrap_or("?"),
                p["status"]["phase"].as_str().unwrap_or("?")
            )
        })
        .collect()
}
