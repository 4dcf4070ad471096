#!/usr/bin/env bash
# Sourced by the image and container scripts: Debian's podman, set up the way
# this kind of machine needs it, with no Docker daemon and no image registry.
#
#   - installs podman, runc, mmdebstrap and uidmap from Debian when missing;
#   - runc, not crun, and cgroupfs, not systemd: crun and systemd's cgroup
#     manager are refused in sandboxed kernels (CI runners in containers, this
#     machine), runc with cgroupfs works in both;
#   - `default_ulimits = []`: podman's default raises nofile/nproc limits, which
#     an unprivileged sandbox refuses;
#   - its own storage under ${ORDERFLOW_CACHE:-~/.cache/orderflow}/podman, so
#     images persist between runs and nothing of the machine's podman is touched.
# Then `pm ARGS…` runs podman with that setup.
CACHE="${ORDERFLOW_CACHE:-$HOME/.cache/orderflow}"
PODMAN_HOME="$CACHE/podman"

podman_install() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v runc >/dev/null || [ -x /usr/sbin/runc ] || missing+=(runc)
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  command -v newuidmap >/dev/null || missing+=(uidmap)
  command -v objcopy >/dev/null || missing+=(binutils)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]} from Debian (once)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  mkdir -p "$PODMAN_HOME"
  cat >"$PODMAN_HOME/containers.conf" <<'CONF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
}

pm() {
  CONTAINERS_CONF="$PODMAN_HOME/containers.conf" podman \
    --root "$PODMAN_HOME/storage" --runroot "$PODMAN_HOME/run" \
    --runtime runc --cgroup-manager=cgroupfs "$@"
}
