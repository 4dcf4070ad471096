//! How a [`crate::system::ProcessStack`] runs its processes: the binaries of
//! the test's own target folder, or each service's container image under
//! podman, the way a cluster runs it — as UID 65532, read-only root
//! filesystem, every capability dropped, no new privileges — on the host's
//! network (the stack's broker, registry and issuer listen on 127.0.0.1).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

#[derive(Debug, Clone)]
pub enum Launch {
    Binaries,
    Containers {
        /// The podman command and the arguments it always needs.
        podman: Vec<String>,
        /// Image names are `<images>/orderflow-<service>:<tag>`.
        images: String,
        tag: String,
    },
}

impl Launch {
    /// Containers as `make test-containers` sets them up:
    /// `ORDERFLOW_CONTAINER_PODMAN` (the command, space separated),
    /// `ORDERFLOW_CONTAINER_IMAGES` and `ORDERFLOW_CONTAINER_TAG`.
    pub fn containers_from_env() -> Result<Self> {
        let var = |name: &str| {
            std::env::var(name).with_context(|| {
                format!("{name} is not set: run the container tier through `make test-containers` (tools/scripts/container-tests.sh), which builds the images")
            })
        };
        Ok(Self::Containers {
            podman: var("ORDERFLOW_CONTAINER_PODMAN")?
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            images: var("ORDERFLOW_CONTAINER_IMAGES")?,
            tag: var("ORDERFLOW_CONTAINER_TAG")?,
        })
    }

    /// The container of a process, when it runs in one.
    pub fn container_name(&self, service: &str, replica: usize) -> Option<String> {
        match self {
            Self::Binaries => None,
            Self::Containers { .. } => Some(format!(
                "orderflow-test-{}-{service}-{replica}",
                std::process::id()
            )),
        }
    }

    /// The command that runs `orderflow-<service>` with `env`; `data` is the
    /// folder of its SQLite database (mounted at the same path).
    pub fn command(
        &self,
        bin_dir: &Path,
        service: &str,
        replica: usize,
        env: &[(String, String)],
        data: &Path,
    ) -> Command {
        match self {
            Self::Binaries => {
                let mut command = Command::new(bin_dir.join(format!("orderflow-{service}")));
                // As the images run them (their Dockerfile sets the same).
                command.envs(orderflow_runtime::allocator_env());
                command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                command
            }
            Self::Containers {
                podman,
                images,
                tag,
            } => {
                let mut command = Command::new(&podman[0]);
                command.args(&podman[1..]).args([
                    "run",
                    "--rm",
                    "--name",
                    &self.container_name(service, replica).expect("a container"),
                    "--network=host",
                    "--user=65532:65532",
                    "--read-only",
                    "--cap-drop=ALL",
                    "--security-opt=no-new-privileges",
                    "--tmpfs=/tmp",
                    &format!("--volume={0}:{0}", data.display()),
                ]);
                for (k, v) in env {
                    command.arg(format!("--env={k}={v}"));
                }
                command.arg(format!("{images}/orderflow-{service}:{tag}"));
                command
            }
        }
    }

    /// Removes a process's container if it is left (killed, say).
    pub fn remove(&self, service: &str, replica: usize) {
        if let (Self::Containers { podman, .. }, Some(name)) =
            (self, self.container_name(service, replica))
        {
            let _ = Command::new(&podman[0])
                .args(&podman[1..])
                .args(["rm", "--force", "--ignore", &name])
                .output();
        }
    }
}
