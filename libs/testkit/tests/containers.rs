//! The container tier (`make test-containers`): every service and the gateway
//! from its image (`make images`), each in a podman container as a cluster
//! runs it — UID 65532, read-only root filesystem, no capabilities, no new
//! privileges — on the host network against the embedded (dev) broker, the
//! registry and the token issuer. The four saga outcomes through the
//! containerized gateway, and each container's process checked from /proc.

use anyhow::{ensure, Context, Result};
use orderflow_testkit::check_four_outcomes;
use orderflow_testkit::system::{Launch, ProcessStack, COMPONENTS};

/// What the kernel says about a container's main process.
fn process_of(launch: &Launch, service: &str) -> Result<(String, String)> {
    let Launch::Containers { podman, .. } = launch else {
        unreachable!("containers")
    };
    let name = launch.container_name(service, 0).context("a container")?;
    let out = std::process::Command::new(&podman[0])
        .args(&podman[1..])
        .args(["inspect", "--format", "{{.State.Pid}}", &name])
        .output()?;
    ensure!(out.status.success(), "podman inspect {name}: {out:?}");
    let pid = String::from_utf8(out.stdout)?.trim().to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
    Ok((status, mounts))
}

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map_or("", str::trim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_service_runs_in_its_container_and_the_saga_ends_four_ways() -> Result<()> {
    let launch = Launch::containers_from_env()?;
    // start_embedded_as waits for every container's /readyz.
    let stack = ProcessStack::start_embedded_as(&[], launch.clone()).await?;
    for service in COMPONENTS {
        let (status, mounts) = process_of(&launch, service)?;
        let uids: Vec<&str> = field(&status, "Uid").split_whitespace().collect();
        ensure!(
            uids.iter().all(|u| *u == "65532"),
            "{service} runs as {uids:?}"
        );
        ensure!(
            field(&status, "CapEff") == "0000000000000000"
                && field(&status, "CapBnd") == "0000000000000000",
            "{service} has capabilities: {}",
            field(&status, "CapEff")
        );
        ensure!(field(&status, "NoNewPrivs") == "1", "{service}: NoNewPrivs");
        // mountinfo: id parent major:minor root mountpoint options …
        let root = mounts
            .lines()
            .find(|l| l.split_whitespace().nth(4) == Some("/"))
            .context("no root mount")?;
        let options = root.split_whitespace().nth(5).unwrap_or_default();
        ensure!(
            options.split(',').any(|o| o == "ro"),
            "{service}'s root filesystem is writable: {root}"
        );
    }
    check_four_outcomes(&stack, stack.wait_idle()).await?;
    stack.stop().await
}
