#!/usr/bin/env bash
# A Kubernetes control plane on 127.0.0.1 for the cluster tier: etcd, kube-apiserver
# (Pod Security admission on, RBAC) and kube-controller-manager. Alone, Pods are
# admitted and stay Pending; tools/scripts/kube-node.sh adds the node that runs
# them (and the scheduler). Binaries from tools/scripts/kube-tools.sh.
#
#   tools/scripts/kube.sh start   wipes and starts it; prints the kubeconfig path
#   tools/scripts/kube.sh stop    stops all three (and keeps the logs)
#
# KUBE_RUN (default ~/.cache/orderflow/kube-run) holds data, keys, logs and the
# kubeconfig; KUBE_PORT (26443) is the API server's port, etcd uses 23790/23800,
# the controller manager 30257.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${ORDERFLOW_CACHE:-$HOME/.cache/orderflow}"
RUN="${KUBE_RUN:-$CACHE/kube-run}"
PORT="${KUBE_PORT:-26443}"
say() { echo "kube.sh: $*" >&2; }

. tools/scripts/lib/daemons.sh

stop() {
  local name
  for name in kube-controller-manager kube-apiserver etcd; do stop_daemon "$name"; done
}

start() {
  local bin
  bin=$(tools/scripts/kube-tools.sh)
  stop
  rm -rf "$RUN"
  mkdir -p "$RUN/etcd" "$RUN/certs"
  openssl genrsa -out "$RUN/sa.key" 2048 2>/dev/null
  openssl rsa -in "$RUN/sa.key" -pubout -out "$RUN/sa.pub" 2>/dev/null
  local token
  token=$(openssl rand -hex 16)
  echo "$token,admin,admin-uid,\"system:masters\"" >"$RUN/tokens.csv"
  # The node's kubelet (tools/scripts/kube-node.sh), authorized by the Node authorizer.
  echo "$(openssl rand -hex 16),system:node:orderflow-node,node-uid,\"system:nodes\"" >>"$RUN/tokens.csv"

  setsid "$bin/etcd" --name default --data-dir "$RUN/etcd" \
    --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
    --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
    --initial-cluster default=http://127.0.0.1:23800 >"$RUN/etcd.log" 2>&1 < /dev/null &
  echo $! >"$RUN/etcd.pid"
  wait_for etcd 20 curl -fsS http://127.0.0.1:23790/health

  # --endpoint-reconciler-type=none: it refuses 127.0.0.1 otherwise;
  # --allow-privileged: so Pod Security, not plain validation, refuses privileged pods;
  # --kubelet-preferred-address-types=Hostname: the node's name resolves to
  # 127.0.0.1, where its kubelet listens (kube-node.sh).
  setsid "$bin/kube-apiserver" --etcd-servers=http://127.0.0.1:23790 \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$PORT" \
    --cert-dir="$RUN/certs" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-signing-key-file="$RUN/sa.key" --service-account-key-file="$RUN/sa.pub" \
    --token-auth-file="$RUN/tokens.csv" --authorization-mode=Node,RBAC \
    --service-cluster-ip-range=10.96.0.0/16 --allow-privileged=true \
    --endpoint-reconciler-type=none --kubelet-preferred-address-types=Hostname \
    >"$RUN/kube-apiserver.log" 2>&1 < /dev/null &
  echo $! >"$RUN/kube-apiserver.pid"
  wait_for kube-apiserver 60 curl -fsSk -H "Authorization: Bearer $token" "https://127.0.0.1:$PORT/readyz"

  local kc="$RUN/kubeconfig"
  KUBECONFIG="$kc" "$bin/kubectl" config set-cluster local --server="https://127.0.0.1:$PORT" \
    --certificate-authority="$RUN/certs/apiserver.crt" --embed-certs=true >/dev/null
  KUBECONFIG="$kc" "$bin/kubectl" config set-credentials admin --token="$token" >/dev/null
  KUBECONFIG="$kc" "$bin/kubectl" config set-context local --cluster=local --user=admin >/dev/null
  KUBECONFIG="$kc" "$bin/kubectl" config use-context local >/dev/null

  setsid "$bin/kube-controller-manager" --kubeconfig="$kc" --authentication-kubeconfig="$kc" \
    --authorization-kubeconfig="$kc" --bind-address=127.0.0.1 --secure-port=30257 \
    --leader-elect=false --service-account-private-key-file="$RUN/sa.key" \
    --root-ca-file="$RUN/certs/apiserver.crt" --controllers='*' \
    >"$RUN/kube-controller-manager.log" 2>&1 < /dev/null &
  echo $! >"$RUN/kube-controller-manager.pid"
  wait_for kube-controller-manager 60 curl -fsSk https://127.0.0.1:30257/healthz
  # It creates each namespace's `default` ServiceAccount.
  wait_for kube-controller-manager 60 env KUBECONFIG="$kc" "$bin/kubectl" get serviceaccount default -n default
  say "ready: API server https://127.0.0.1:$PORT (KUBECONFIG=$kc)"
  echo "$kc"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 64 ;;
esac
