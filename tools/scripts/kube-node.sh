#!/usr/bin/env bash
# The cluster tier's node, beside the control plane of tools/scripts/kube.sh:
# containerd (Debian's, with runc and the CNI plugins), kubelet, kube-proxy,
# kube-scheduler and CoreDNS as cluster DNS, all on this machine. Pods get
# addresses on a bridge (10.244.0.0/24, the host is 10.244.0.1), Services
# 10.96.0.0/16 through kube-proxy's iptables rules, names from CoreDNS on
# 10.244.0.1:53 (the cluster.local zone only: no query leaves the machine).
# Servers a Pod should reach on the host (Kafka, PostgreSQL, a registry, an
# OIDC issuer, Jaeger) listen on 10.244.0.1, which exists from `start` on.
#
#   tools/scripts/kube-node.sh start          after kube.sh start; waits for the
#                                             node to be Ready
#   tools/scripts/kube-node.sh import TAR...  loads image archives (docker-archive
#                                             or OCI) into the node's containerd
#   tools/scripts/kube-node.sh stop           stops every process and Pod and
#                                             restores what the node changed
#
# What it changes on the machine, and `stop` restores whatever happened: the
# sysctls kubelet, kube-proxy and the bridge plugin set (recorded first), a
# line in /etc/hosts for the node's name, the bridge and its routes, iptables
# chains (KUBE-*, CNI-*) and the nf_tables tables iptables made, network namespaces, mounts under its folder, the
# kubepods cgroups, /var/lib/cni. Everything else lives in KUBE_RUN/node.
#
# Settings this sandbox forces, which a production node does not carry (and
# the chart does not either):
#   - no CAP_SYS_RESOURCE: kubelet gives Pod sandboxes oom_score_adj -998,
#     which the kernel refuses, and every Pod would fail in runc; containerd
#     runs with restrict_oom_score_adj and kubelet with --oom-score-adj=0;
#   - cgroup v1 with cgroupfs (no systemd), swap not refused;
#   - the node's address: kubelet detects eth0's and refuses loopback, so the
#     API server reaches kubelet by the node's name, which resolves to
#     127.0.0.1 where kubelet listens (kube.sh sets
#     --kubelet-preferred-address-types=Hostname);
#   - kubelet's API is anonymous and allows everything: it listens on loopback
#     only, for the API server's logs, exec and port-forward;
#   - the pause image is built here (a static build of Kubernetes' own
#     pause.c), since no registry can be reached.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${ORDERFLOW_CACHE:-$HOME/.cache/orderflow}"
KUBE="${KUBE_RUN:-$CACHE/kube-run}"
RUN="$KUBE/node"
NODE=orderflow-node
BRIDGE=ofcni0
HOST_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
PAUSE_IMAGE=registry.k8s.io/pause:3.10
HOSTS_MARK="# orderflow kube-node"
# Kernel settings the node's components change, by name pattern.
SYSCTLS='^(kernel\.(panic|panic_on_oops|keys\.root_max(keys|bytes))|vm\.(overcommit_memory|panic_on_oom)|net\.ipv4\.ip_forward|net\.ipv4\.conf\.[^.]+\.(route_localnet|forwarding)|net\.bridge\.bridge-nf-call-ip6?tables|net\.netfilter\.nf_conntrack_(max|tcp_timeout_(established|close_wait))) '
say() { echo "kube-node.sh: $*" >&2; }
. tools/scripts/lib/daemons.sh

install_packages() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  [ -x /usr/sbin/runc ] || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  command -v nft >/dev/null || missing+=(nftables)
  command -v gcc >/dev/null || missing+=(gcc libc6-dev)
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} from Debian (once)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

ctr_() { ctr --address "$RUN/containerd/containerd.sock" -n k8s.io "$@"; }

# --- Restoring the machine -------------------------------------------------------

record_machine() {
  sysctl -a 2>/dev/null | grep -E "$SYSCTLS" >"$RUN/sysctls.before" || true
  # iptables (Debian's, on nf_tables) makes the tables it is first asked for.
  nft list tables >"$RUN/nft-tables.before"
  [ -d /var/lib/cni ] && touch "$RUN/var-lib-cni.existed"
  if ! grep -q " $NODE $HOSTS_MARK\$" /etc/hosts; then
    # /etc/hosts may be a bind mount: written in place, never replaced.
    echo "127.0.0.1 $NODE $HOSTS_MARK" >>/etc/hosts
  fi
}

restore_sysctls() {
  [ -f "$RUN/sysctls.before" ] || return 0
  local name value now
  while IFS= read -r line; do
    name=${line%% = *}
    value=${line#* = }
    now=$(sysctl -n "$name" 2>/dev/null) || continue # its interface is gone
    if [ "$now" != "$value" ]; then
      sysctl -qw "$name=$value" 2>/dev/null && say "restored $name = $value (was $now)" ||
        say "could not restore $name = $value (is $now)"
    fi
  done <"$RUN/sysctls.before"
}

remove_iptables_chains() {
  local tool table chain
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    for table in filter nat mangle raw; do
      # Rules of the built-in chains that jump to the node's chains, then the chains.
      local rules chains
      rules=$("$tool-save" -t "$table" 2>/dev/null | grep -E '^-A [A-Z]+ .*-j (KUBE-|CNI-)' | sed 's/^-A /-D /' || true)
      while IFS= read -r rule; do
        [ -n "$rule" ] && eval "$tool -t $table $rule" 2>/dev/null || true
      done <<<"$rules"
      chains=$("$tool-save" -t "$table" 2>/dev/null | sed -n 's/^:\(\(KUBE\|CNI\)-[^ ]*\) .*/\1/p' || true)
      for chain in $chains; do "$tool" -t "$table" -F "$chain" 2>/dev/null || true; done
      for chain in $chains; do "$tool" -t "$table" -X "$chain" 2>/dev/null || true; done
    done
  done
  # The tables that did not exist before the node, now empty.
  [ -f "$RUN/nft-tables.before" ] || return 0
  local t
  while IFS= read -r t; do
    [ -n "$t" ] && ! grep -qxF "$t" "$RUN/nft-tables.before" && nft delete $t 2>/dev/null || true
  done <<<"$(nft list tables 2>/dev/null || true)"
}

remove_cgroups() {
  local dir
  for dir in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice /sys/fs/cgroup/unified/kubepods; do
    [ -d "$dir" ] || continue
    # Deepest first; a cgroup with processes left cannot go (they were killed above).
    find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

stop() {
  local name pid
  for name in kube-proxy kubelet kube-scheduler coredns; do stop_daemon "$name"; done
  # The Pods' processes, then their shims, then containerd.
  local procs
  procs=$(cat /sys/fs/cgroup/pids/kubepods/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/cgroup.procs \
    /sys/fs/cgroup/pids/kubepods/*/*/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/*/*/cgroup.procs 2>/dev/null || true)
  [ -n "$procs" ] && kill -9 $procs 2>/dev/null || true
  for pid in $(pgrep -f "containerd-shim.*-address $RUN/containerd/containerd.sock" || true); do
    kill -9 "$pid" 2>/dev/null || true
  done
  stop_daemon containerd
  # Whatever a start whose pid files are gone left running.
  for pid in $(pgrep -f -- "$RUN/|--hostname-override=$NODE|kube-scheduler .*--secure-port=30259" || true); do
    [ "$pid" = $$ ] || kill -9 "$pid" 2>/dev/null || true
  done
  # Mounts under the node's folder (Pods' volumes, rootfs, sandboxes' netns);
  # they can stack (kubelet binds its root onto itself): until none is left.
  local mounts
  for _ in 1 2 3 4 5; do
    mounts=$(findmnt -rn -o TARGET | grep -F "$RUN/" | sort -r || true)
    [ -n "$mounts" ] || break
    while IFS= read -r m; do
      umount -l "$m" 2>/dev/null || true
    done <<<"$mounts"
  done
  for ns in /var/run/netns/cni-*; do
    [ -e "$ns" ] || continue
    umount -l "$ns" 2>/dev/null || true
    rm -f "$ns"
  done
  ip route del "$SERVICE_CIDR" dev "$BRIDGE" 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  remove_iptables_chains
  remove_cgroups
  if [ -d "$RUN" ] && [ ! -f "$RUN/var-lib-cni.existed" ]; then rm -rf /var/lib/cni; fi
  restore_sysctls
  if grep -q "$HOSTS_MARK\$" /etc/hosts; then
    local kept
    kept=$(grep -v "$HOSTS_MARK\$" /etc/hosts)
    printf '%s\n' "$kept" >/etc/hosts
  fi
}

# --- Starting ----------------------------------------------------------------------

write_configs() {
  local kc=$1
  mkdir -p "$RUN/containerd" "$RUN/cni/net.d" "$RUN/cni/ipam" "$RUN/kubelet/manifests" "$RUN/kubelet/root" "$RUN/kubelet/logs"
  cat >"$RUN/containerd/config.toml" <<EOF
version = 2
root = "$RUN/containerd/root"
state = "$RUN/containerd/state"
[grpc]
  address = "$RUN/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/cni/net.d"
EOF
  # No default route in a Pod: it reaches Pods, Services and the host, nothing else.
  cat >"$RUN/cni/net.d/10-bridge.conflist" <<EOF
{ "cniVersion": "0.4.0", "name": "orderflow-node",
  "plugins": [
    { "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": { "type": "host-local", "dataDir": "$RUN/cni/ipam",
                "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$HOST_IP"}]],
                "routes": [{"dst": "10.244.0.0/16"}, {"dst": "$SERVICE_CIDR"}] } },
    { "type": "portmap", "capabilities": {"portMappings": true} }
  ] }
EOF
  cat >"$RUN/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://$RUN/containerd/containerd.sock
address: 127.0.0.1
port: 30250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 30248
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
staticPodPath: $RUN/kubelet/manifests
podLogsDir: $RUN/kubelet/logs
enforceNodeAllocatable: []
cgroupsPerQOS: true
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
clusterDomain: cluster.local
clusterDNS: [$HOST_IP]
resolvConf: ""
podCIDR: $POD_CIDR
maxPods: 60
serializeImagePulls: false
EOF
  # The node's own identity (Node authorizer): kube.sh's token file has it.
  local node_token
  node_token=$(sed -n "s/^\([^,]*\),system:node:$NODE,.*/\1/p" "$KUBE/tokens.csv")
  [ -n "$node_token" ] || { say "no token for system:node:$NODE in $KUBE/tokens.csv: start the control plane with tools/scripts/kube.sh"; exit 1; }
  local server
  server=$(KUBECONFIG="$kc" "$BIN/kubectl" config view -o jsonpath='{.clusters[0].cluster.server}')
  KUBECONFIG="$RUN/kubelet/kubeconfig" "$BIN/kubectl" config set-cluster local --server="$server" \
    --certificate-authority="$KUBE/certs/apiserver.crt" --embed-certs=true >/dev/null
  KUBECONFIG="$RUN/kubelet/kubeconfig" "$BIN/kubectl" config set-credentials "$NODE" --token="$node_token" >/dev/null
  KUBECONFIG="$RUN/kubelet/kubeconfig" "$BIN/kubectl" config set-context local --cluster=local --user="$NODE" >/dev/null
  KUBECONFIG="$RUN/kubelet/kubeconfig" "$BIN/kubectl" config use-context local >/dev/null
  cat >"$RUN/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $HOST_IP
    errors
    health 127.0.0.1:30180
    ready 127.0.0.1:30181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $kc local
        pods insecure
    }
    cache 5
}
EOF
}

# The sandbox image: Kubernetes' pause.c (in the module the binaries came
# from), built static, imported under the name containerd asks for.
pause_image() {
  local src work
  src=$(cd tools/kube && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
  [ -f "$src" ] || (cd tools/kube && GOFLAGS=-mod=mod go mod download k8s.io/kubernetes)
  work=$(mktemp -d)
  gcc -static -O2 -o "$work/pause" "$src"
  python3 - "$work" "$PAUSE_IMAGE" <<'EOF'
# An OCI image archive holding /pause, its entrypoint, named for containerd.
import hashlib, io, json, os, sys, tarfile
work, name = sys.argv[1], sys.argv[2]
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w") as t:
    info = t.gettarinfo(os.path.join(work, "pause"), arcname="pause")
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    info.mode = 0o755
    with open(os.path.join(work, "pause"), "rb") as f:
        t.addfile(info, f)
blobs = {}
def blob(data, media):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media, "digest": digest, "size": len(data)}
layer_desc = blob(layer.getvalue(), "application/vnd.oci.image.layer.v1.tar")
config = {"architecture": "amd64", "os": "linux",
          "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
          "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]}}
config_desc = blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc, "layers": [layer_desc]}
manifest_desc = blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
manifest_desc["annotations"] = {"io.containerd.image.name": name,
                                "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}
index = {"schemaVersion": 2, "manifests": [manifest_desc]}
with tarfile.open(os.path.join(work, "pause.tar"), "w") as t:
    def add(path, data):
        info = tarfile.TarInfo(path)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    add("index.json", json.dumps(index).encode())
    for digest, data in blobs.items():
        add("blobs/sha256/" + digest.split(":")[1], data)
EOF
  ctr_ images import "$work/pause.tar" >/dev/null
  rm -rf "$work"
}

start() {
  [ "$(id -u)" -eq 0 ] || { say "the node needs root (containerd, kubelet, iptables)"; exit 1; }
  [ -f "$KUBE/kubeconfig" ] || { say "no control plane: run tools/scripts/kube.sh start first"; exit 1; }
  install_packages
  BIN=$(tools/scripts/kube-tools.sh)
  local kc="$KUBE/kubeconfig"
  stop
  rm -rf "$RUN"
  mkdir -p "$RUN"
  record_machine
  write_configs "$kc"

  # The bridge first, so servers on the host can listen on $HOST_IP before any Pod.
  ip link add "$BRIDGE" type bridge
  ip addr add "$HOST_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Service addresses kube-proxy did not translate stay on this machine.
  ip route add "$SERVICE_CIDR" dev "$BRIDGE"

  setsid containerd --config "$RUN/containerd/config.toml" >"$RUN/containerd.log" 2>&1 </dev/null &
  echo $! >"$RUN/containerd.pid"
  wait_for containerd 30 ctr_ version
  pause_image

  setsid "$BIN/coredns" -conf "$RUN/Corefile" >"$RUN/coredns.log" 2>&1 </dev/null &
  echo $! >"$RUN/coredns.pid"
  wait_for coredns 30 curl -fsS http://127.0.0.1:30181/ready

  setsid "$BIN/kube-scheduler" --kubeconfig="$kc" --authentication-kubeconfig="$kc" \
    --authorization-kubeconfig="$kc" --leader-elect=false --bind-address=127.0.0.1 --secure-port=30259 \
    >"$RUN/kube-scheduler.log" 2>&1 </dev/null &
  echo $! >"$RUN/kube-scheduler.pid"
  wait_for kube-scheduler 60 curl -fsSk https://127.0.0.1:30259/healthz

  setsid "$BIN/kubelet" --config="$RUN/kubelet/config.yaml" --kubeconfig="$RUN/kubelet/kubeconfig" \
    --root-dir="$RUN/kubelet/root" --hostname-override="$NODE" --oom-score-adj=0 \
    >"$RUN/kubelet.log" 2>&1 </dev/null &
  echo $! >"$RUN/kubelet.pid"

  # NodePorts on the bridge's address only: none on loopback, so no route_localnet.
  setsid "$BIN/kube-proxy" --kubeconfig="$kc" --hostname-override="$NODE" --proxy-mode=iptables \
    --cluster-cidr=10.244.0.0/16 --nodeport-addresses="$HOST_IP/32" --conntrack-max-per-core=0 \
    --metrics-bind-address=127.0.0.1:30249 --healthz-bind-address=127.0.0.1:30256 \
    >"$RUN/kube-proxy.log" 2>&1 </dev/null &
  echo $! >"$RUN/kube-proxy.pid"

  node_ready() {
    [ "$(KUBECONFIG="$kc" "$BIN/kubectl" get node "$NODE" \
      -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
  }
  wait_for kubelet 90 node_ready
  wait_for kube-proxy 30 curl -fsS http://127.0.0.1:30256/healthz
  say "ready: node $NODE (Pods $POD_CIDR, Services $SERVICE_CIDR, DNS $HOST_IP, host $HOST_IP)"
}

import_images() {
  [ -S "$RUN/containerd/containerd.sock" ] || { say "the node is not running"; exit 1; }
  local tar
  for tar in "$@"; do
    ctr_ images import "$tar" >/dev/null
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  import) shift; import_images "$@" ;;
  *) echo "usage: $0 start|stop|import TAR..." >&2; exit 64 ;;
esac
