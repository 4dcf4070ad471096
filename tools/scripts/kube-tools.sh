#!/usr/bin/env bash
# Builds the Kubernetes the cluster tier runs — the control plane
# (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl v1.37.2 from
# tools/kube; etcd v3.7.3 from tools/etcd), the node (kubelet, kube-proxy from
# tools/kube) and cluster DNS (CoreDNS v1.15.0 from tools/coredns) — from the Go
# module proxy, once, into ${ORDERFLOW_CACHE:-~/.cache/orderflow}/tools/kube-<versions>/,
# and prints that folder. Cold: about 15 minutes and 2.7 GB of RAM on 2 cores
# (the Go build cache of ~4 GB is not kept); warm: nothing to do.
# The container runtime (containerd, runc, the CNI plugins) comes from Debian:
# tools/scripts/kube-node.sh installs it.
set -euo pipefail
cd "$(dirname "$0")/../.."

KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
COREDNS_VERSION=v1.15.0
CACHE="${ORDERFLOW_CACHE:-$HOME/.cache/orderflow}"
OUT="$CACHE/tools/kube-$KUBE_VERSION-etcd-$ETCD_VERSION-coredns-$COREDNS_VERSION"
. tools/scripts/lib/tool-cache.sh
tool_lock kube-tools

if [ -f "$OUT/.complete" ]; then
  echo "$OUT"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "kube-tools: building Kubernetes, etcd and CoreDNS needs Go (https://go.dev/dl); 'go' is not on PATH" >&2
  exit 1
fi

started=$SECONDS
echo "kube-tools: building Kubernetes $KUBE_VERSION (control plane, kubelet, kube-proxy, kubectl), etcd $ETCD_VERSION and CoreDNS $COREDNS_VERSION into $OUT (once, ~15 min)" >&2
mkdir -p "$CACHE/tools"
# What a build killed outright left (the lock says no other build runs).
rm -rf "$CACHE"/tools/.kube-build.* "$CACHE"/tools/.kube-gocache.*
tmp=$(mktemp -d "$CACHE/tools/.kube-build.XXXXXX")
own_cache=$(mktemp -d "$CACHE/tools/.kube-gocache.XXXXXX")
gocache=$(go_build_cache "$own_cache")
trap 'rm -rf "$tmp" "$own_cache"' EXIT
# Without the version stamps the server reports v0.0.0-master and helm refuses
# the chart's kubeVersion.
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  stamp+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
build() { # MODULE-DIR OUT PACKAGE [LDFLAGS]
  (cd "$1" && GOCACHE="$gocache" CGO_ENABLED=0 GOFLAGS=-mod=mod \
    nice go build -trimpath -ldflags "-s -w ${4:-}" -o "$2" "$3") >&2
}
build tools/etcd "$tmp/etcd" go.etcd.io/etcd/server/v3
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
  build tools/kube "$tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd" "$stamp"
done
build tools/coredns "$tmp/coredns" .
touch "$tmp/.complete"
rm -rf "$OUT"
mv "$tmp" "$OUT"
# Builds of other versions (or of fewer binaries) are not used any more.
for old in "$CACHE"/tools/kube-v*; do
  [ "$old" = "$OUT" ] || rm -rf "$old"
done
echo "kube-tools: built in $((SECONDS - started)) s" >&2
echo "$OUT"
