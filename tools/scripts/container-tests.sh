#!/usr/bin/env bash
# The container tier (`make test-containers`, part of `make test`): builds the
# seven images (tools/scripts/images.sh: podman, an mmdebstrap base, the
# release binaries) and runs every service and the gateway from its image in
# podman as a cluster would — UID 65532, read-only root filesystem, no
# capabilities, no new privileges, host network — against the embedded broker,
# registry and token issuer of the test (libs/testkit/tests/containers.rs):
# each /readyz, each container's process checked in /proc, the four saga
# outcomes through the containerized gateway.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/scripts/podman.sh

started=$SECONDS
tools/scripts/images.sh
export CONTAINERS_CONF="$PODMAN_HOME/containers.conf"
export ORDERFLOW_CONTAINER_PODMAN="podman --root $PODMAN_HOME/storage --runroot $PODMAN_HOME/run --runtime runc --cgroup-manager=cgroupfs"
export ORDERFLOW_CONTAINER_IMAGES="${REGISTRY:-orderflow}"
export ORDERFLOW_CONTAINER_TAG="${TAG:-$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)}"
cargo test -p orderflow-testkit --features containers --test containers -- --nocapture
echo "container tier took $((SECONDS - started)) s"
