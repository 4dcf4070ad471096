#!/usr/bin/env bash
# The cluster tier: the chart in a real Kubernetes, in two parts.
#
# First the API server alone (tools/scripts/kube.sh: etcd, kube-apiserver and
# kube-controller-manager on 127.0.0.1, no node), with the CRDs the chart uses
# installed from their projects' own files, into a namespace that enforces the
# restricted Pod Security Standard:
#   1. helm install with hooks: the topics hook Job is created with its spec and
#      its Pod admitted; with no node it never completes, the install times
#      out, and a retry replaces the failed Job (which its TTL then removes)
#      and fails naming it;
#   2. the operator's way on from there (helm/orderflow/README.md, "Hooks"):
#      `helm upgrade --install --no-hooks`; every object is stored, the
#      controller manager makes each Deployment's ReplicaSet and Pods, and Pod
#      Security admits them; every pod template of the chart (Jobs too) passes a
#      server-side dry run; a privileged Pod and a privileged Deployment's Pods
#      are refused;
#   3. `kubectl scale` survives a `helm upgrade` with a changed value, unless
#      the values set replicaCount (then the chart owns the count; Helm 4's
#      server-side apply takes it from kubectl with --force-conflicts only);
#   4. `helm uninstall` leaves nothing of the release.
# Then the node joins (tools/scripts/kube-node.sh: containerd, kubelet,
# kube-proxy, kube-scheduler, CoreDNS), Kafka and PostgreSQL start on the
# node's host address, the images (tools/scripts/images.sh) are imported into
# its containerd, and libs/testkit/tests/cluster.rs runs the used-by story:
#   5. helm install with its hooks against the real broker (a SCRAM principal
#      per component, deploy/local/kafka-users.yaml's ACLs) and registry, every
#      Pod Ready, the four outcomes through the gateway's Service, the order's
#      trace in Jaeger and through the gateway, the NOTES' first order as
#      printed; under a steady load kubectl scale, helm upgrade, a rolling
#      upgrade to a new image tag and a deleted Pod, then the saga's
#      invariants over every order; helm uninstall leaving nothing.
# Everything the tier started is stopped, and everything the node changed on
# the machine restored, however it ends. Cold: kube-tools.sh builds Kubernetes,
# etcd and CoreDNS once (~15 min) and images.sh the release build; warm: ~5 min.
set -euo pipefail
cd "$(dirname "$0")/../.."

. tools/scripts/chart-tools.sh

PROMETHEUS_OPERATOR=github.com/prometheus-operator/prometheus-operator@v0.85.0
KEDA=github.com/kedacore/keda/v2@v2.21.0
NS=orderflow
RELEASE=orderflow
CHART=helm/orderflow
VALUES=(-f deploy/values/local.yaml
  --set metrics.serviceMonitor.enabled=true --set metrics.prometheusRule.enabled=true
  --set payment.keda.enabled=true)

install_tools
BIN=$(tools/scripts/kube-tools.sh)
WORK=$(mktemp -d)
# The servers for the node, on ports of their own: Kafka's PLAINTEXT listener
# on loopback for the test's own look at the broker, its SASL listener (a
# principal per component, ACLs as deploy/local/kafka-users.yaml grants them)
# and PostgreSQL on the node's host address, for the Pods.
export KAFKA_PORT=29092 KAFKA_CONTROLLER_PORT=29093 KAFKA_SASL_LISTENER=10.244.0.1:29094
export PG_LISTEN=10.244.0.1 PG_PORT=25432
cleanup() {
  tools/scripts/kube-node.sh stop || true
  tools/scripts/kafka.sh stop >/dev/null || true
  tools/scripts/postgres.sh stop >/dev/null || true
  tools/scripts/kube.sh stop || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export KUBECONFIG
KUBECONFIG=$(tools/scripts/kube.sh start)
k() { "$BIN/kubectl" "$@"; }
helm() { "$HELM" "$@"; }
echo "tools: $(helm version --short), $(k version -o json | python3 -c 'import json,sys; print("Kubernetes", json.load(sys.stdin)["serverVersion"]["gitVersion"])')"

# jsonpath of one object, or "" when it does not exist.
get() { k -n "$NS" get "$1" -o "jsonpath=$2" 2>/dev/null || true; }
# until_true SECONDS COMMAND...: polls COMMAND every half second.
until_true() {
  local secs=$1
  shift
  for _ in $(seq $((secs * 2))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  return 1
}
pods_of() { # the number of Pods of a component
  k -n "$NS" get pods -l "app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=$1" \
    -o name 2>/dev/null | grep -c . || true
}
replicas_are() { # COMPONENT N: spec.replicas and the Pods the controller made
  [ "$(get "deploy/$RELEASE-$1" '{.spec.replicas}')" = "$2" ] && [ "$(pods_of "$1")" = "$2" ]
}
# After an upgrade that changes the pod template the rollout never ends without
# a kubelet (old and new Pods stay Pending side by side), so only the count asked for.
spec_replicas_are() { [ "$(get "deploy/$RELEASE-$1" '{.spec.replicas}')" = "$2" ]; }

# --- The CRDs the chart uses, from their projects' own files --------------------

echo
echo "== CRDs"
crd_dir() { # MODULE@VERSION: where the module proxy's copy is unpacked
  (cd "$WORK" && GOFLAGS=-mod=mod go mod download -json "$1") |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["Dir"]) if "Dir" in d else sys.exit(d.get("Error","no Dir"))'
}
po=$(crd_dir "$PROMETHEUS_OPERATOR")
keda=$(crd_dir "$KEDA")
check "CRDs applied: ServiceMonitor, PrometheusRule (prometheus-operator), ScaledObject, TriggerAuthentication (KEDA)" \
  k apply --server-side \
  -f "$po/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
  -f "$po/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml" \
  -f "$keda/config/crd/bases/keda.sh_scaledobjects.yaml" \
  -f "$keda/config/crd/bases/keda.sh_triggerauthentications.yaml"
check "CRDs established" k wait --for condition=established --timeout=60s \
  crd/servicemonitors.monitoring.coreos.com crd/prometheusrules.monitoring.coreos.com \
  crd/scaledobjects.keda.sh crd/triggerauthentications.keda.sh

k create namespace "$NS" >/dev/null
k label namespace "$NS" pod-security.kubernetes.io/enforce=restricted \
  pod-security.kubernetes.io/enforce-version=latest >/dev/null
until_true 30 k -n "$NS" get serviceaccount default || true

# --- 1. helm install with its hooks ---------------------------------------------

echo
echo "== helm install with hooks (no node yet: the hook Jobs cannot complete)"
if out=$(helm install "$RELEASE" "$CHART" -n "$NS" "${VALUES[@]}" --timeout 20s 2>&1); then
  not_ok "helm install waits for the topics hook and times out (it succeeded)"
else
  if grep -Eqi "timed out|deadline exceeded" <<<"$out"; then
    ok "helm install waits for the topics hook Job and times out"
  else
    not_ok "helm install failed for another reason"
    echo "$out" | sed 's/^/        /'
  fi
fi
job=$(k -n "$NS" get job "$RELEASE-topics" -o json 2>/dev/null || echo '{}')
check_job() {
  python3 - "$job" "$@" <<'EOF'
import json, sys
job = json.loads(sys.argv[1])
assert job, "no Job orderflow-topics"
spec = job["spec"]
pod = spec["template"]["spec"]
c = pod["containers"][0]
ann = job["metadata"]["annotations"]
problems = []
want = {
    "hook": (ann.get("helm.sh/hook"), "pre-install,pre-upgrade"),
    "hook-delete-policy": (ann.get("helm.sh/hook-delete-policy"), "before-hook-creation,hook-succeeded"),
    "image": (c["image"], "orderflow/orderflow:0.1.0"),
    "command": (c.get("args", [])[:2], ["topics", "apply"]),
    "backoffLimit": (spec.get("backoffLimit"), 4),
    "activeDeadlineSeconds": (spec.get("activeDeadlineSeconds"), 600),
    "ttlSecondsAfterFinished": (spec.get("ttlSecondsAfterFinished"), 86400),
    "restartPolicy": (pod.get("restartPolicy"), "Never"),
    "runAsNonRoot": (pod.get("securityContext", {}).get("runAsNonRoot"), True),
    "readOnlyRootFilesystem": (c.get("securityContext", {}).get("readOnlyRootFilesystem"), True),
    "capabilities dropped": (c.get("securityContext", {}).get("capabilities", {}).get("drop"), ["ALL"]),
}
for name, (got, wanted) in want.items():
    if got != wanted:
        problems.append(f"{name}: {got!r}, want {wanted!r}")
if not any(e["name"] == "ORDERFLOW_KAFKA_BOOTSTRAP_SERVERS" for e in c.get("env", [])) and not c.get("envFrom"):
    problems.append("no Kafka settings in its environment")
assert not problems, "; ".join(problems)
EOF
}
check "the topics hook Job: orderflow topics apply, pre-install/pre-upgrade, retries, deadline, TTL, restricted security context" check_job
hook_pod() { [ -n "$(k -n "$NS" get pods -l "job-name=$RELEASE-topics" -o name)" ]; }
no_deployments() { [ -z "$(k -n "$NS" get deploy -o name)" ]; }
check "the Job controller made the hook's Pod, and Pod Security admitted it (Pending: no kubelet)" \
  until_true 30 hook_pod
check "nothing but hooks was installed" no_deployments
uid=$(get "job/$RELEASE-topics" '{.metadata.uid}')

echo
echo "== a second attempt: the failed hook Job is replaced, and helm names it"
out=$(helm upgrade --install "$RELEASE" "$CHART" -n "$NS" "${VALUES[@]}" --timeout 120s \
  --set hooks.activeDeadlineSeconds=30 --set hooks.ttlSecondsAfterFinished=0 2>&1) || true
if grep -q "pre-upgrade hooks failed: resource Job/$NS/$RELEASE-topics not ready. status: Failed" <<<"$out"; then
  ok "helm names the hook's failure: pre-upgrade hooks failed: Job/$NS/$RELEASE-topics status Failed"
else
  not_ok "helm names the hook's failure"
  echo "$out" | sed 's/^/        /'
fi
new_uid=$(get "job/$RELEASE-topics" '{.metadata.uid}')
if [ -z "$new_uid" ] || [ "$new_uid" != "$uid" ]; then
  ok "the failed Job of the first attempt was replaced (before-hook-creation)"
else
  not_ok "the failed Job of the first attempt was replaced (same uid $uid)"
fi
no_job() { ! k -n "$NS" get job "$RELEASE-topics" >/dev/null 2>&1; }
check "the failed Job is removed after hooks.ttlSecondsAfterFinished (0 here)" until_true 60 no_job

# --- 2. The operator's way on: hook steps by hand, then --no-hooks ---------------

echo
echo "== helm upgrade --install --no-hooks (README \"Hooks\": topics and schemas applied by hand)"
check "helm upgrade --install --no-hooks" \
  helm upgrade --install "$RELEASE" "$CHART" -n "$NS" "${VALUES[@]}" --no-hooks --timeout 60s
# Read once more if the first read comes back empty (seen once on a busy
# machine, right after the upgrade returned).
deployed() { [ "$(helm status "$RELEASE" -n "$NS" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["info"]["status"])')" = deployed ]; }
check "the release is deployed" until_true 30 deployed
kinds="deployment,service,configmap,serviceaccount,networkpolicy,poddisruptionbudget,ingress,servicemonitor,prometheusrule,scaledobject"
count_kind() { k -n "$NS" get "$1" -l "app.kubernetes.io/instance=$RELEASE" -o name 2>/dev/null | grep -c . || true; }
for kind_n in deployment:6 service:6 servicemonitor:1 prometheusrule:1 scaledobject:1 ingress:1; do
  kind=${kind_n%%:*} n=${kind_n##*:}
  got=$(count_kind "$kind")
  if [ "$got" = "$n" ]; then ok "$n $kind stored"; else not_ok "$n $kind stored (found $got)"; fi
done
for c in gateway order inventory shipping notification; do
  check "deploy/$RELEASE-$c: 1 replica (replicaCountOnInstall), its ReplicaSet made 1 Pod, admitted by Pod Security" \
    until_true 30 replicas_are "$c" 1
done
check "payment: KEDA owns its count (no replicas in the chart), the controller made its Pod" \
  until_true 30 replicas_are payment 1

echo
echo "== Pod Security (restricted) on every pod template, and on a privileged pod"
helm template "$RELEASE" "$CHART" -n "$NS" "${VALUES[@]}" >"$WORK/rendered.yaml"
"$PY" - "$WORK/rendered.yaml" "$WORK/pods" <<'EOF'
import os, sys, yaml
os.makedirs(sys.argv[2], exist_ok=True)
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] in ("Deployment", "Job"):
        t = d["spec"]["template"]
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"dry-run-{d['metadata']['name']}", "labels": t["metadata"].get("labels", {})},
               "spec": t["spec"]}
        with open(os.path.join(sys.argv[2], f"{d['kind']}-{d['metadata']['name']}.yaml"), "w") as f:
            yaml.safe_dump(pod, f)
EOF
templates=0
for f in "$WORK"/pods/*.yaml; do
  templates=$((templates + 1))
  check "admitted (server-side dry run): the pod of $(basename "$f" .yaml)" \
    k -n "$NS" create --dry-run=server -f "$f"
done
[ "$templates" -ge 8 ] && ok "$templates pod templates tried (6 Deployments, 2 hook Jobs)" || not_ok "only $templates pod templates"
cat >"$WORK/privileged.yaml" <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: privileged}
spec:
  containers:
    - name: app
      image: orderflow/orderflow-gateway:0.1.0
      securityContext: {privileged: true}
EOF
if out=$(k -n "$NS" create --dry-run=server -f "$WORK/privileged.yaml" 2>&1); then
  not_ok "a privileged pod is refused (it was admitted)"
elif grep -q 'violates PodSecurity "restricted' <<<"$out"; then
  ok "a privileged pod is refused: violates PodSecurity \"restricted\""
else
  not_ok "a privileged pod is refused for the Pod Security reason"
  echo "$out" | sed 's/^/        /'
fi
k -n "$NS" create deployment privileged --image=orderflow/orderflow-gateway:0.1.0 \
  --dry-run=client -o yaml | "$PY" -c '
import sys, yaml
d = yaml.safe_load(sys.stdin)
d["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
print(yaml.safe_dump(d))' >"$WORK/privileged-deploy.yaml"
k -n "$NS" apply -f "$WORK/privileged-deploy.yaml" >/dev/null 2>&1 || true
refused() {
  k -n "$NS" get replicasets -l app=privileged -o json | python3 -c '
import json, sys
rs = json.load(sys.stdin)["items"]
conds = [c for r in rs for c in r.get("status", {}).get("conditions", [])]
sys.exit(0 if any(c["type"] == "ReplicaFailure" and "violates PodSecurity" in c.get("message", "") for c in conds) else 1)'
}
no_privileged_pods() { [ -z "$(k -n "$NS" get pods -l app=privileged -o name)" ]; }
check "a privileged Deployment: its ReplicaSet's Pods are refused by Pod Security (ReplicaFailure)" until_true 30 refused
check "no Pod of the privileged Deployment exists" no_privileged_pods
k -n "$NS" delete deployment privileged --wait=false >/dev/null

# --- 3. Who owns the replica count ------------------------------------------------

echo
echo "== kubectl scale, then helm upgrade"
k -n "$NS" scale "deploy/$RELEASE-inventory" --replicas=3 >/dev/null
check "kubectl scale deploy/$RELEASE-inventory --replicas=3: read back, 3 Pods" until_true 30 replicas_are inventory 3
check "helm upgrade with a changed value (logs.level)" \
  helm upgrade "$RELEASE" "$CHART" -n "$NS" "${VALUES[@]}" --no-hooks --set logs.level=debug
debug_logs() { k -n "$NS" get configmap -l "app.kubernetes.io/instance=$RELEASE" -o yaml | grep -q 'RUST_LOG: debug'; }
check "the changed value reached the ConfigMap" debug_logs
check "inventory still has 3 replicas (replicaCount unset: kubectl owns the count)" spec_replicas_are inventory 3
check "the others kept theirs (order: 1)" spec_replicas_are order 1
notes_say_kubectl() { helm get notes "$RELEASE" -n "$NS" | grep -qF "inventory: kubectl; upgrades keep the live count (now 3)."; }
check "the release's NOTES say kubectl owns inventory's count, now 3" notes_say_kubectl
# Helm 4 applies on the server, where kubectl scale made kubectl an owner of
# .spec.replicas: taking the count back is a conflict until --force-conflicts.
if out=$(helm upgrade "$RELEASE" "$CHART" -n "$NS" "${VALUES[@]}" --no-hooks --set inventory.replicaCount=2 2>&1); then
  not_ok "helm upgrade --set inventory.replicaCount=2 is refused as a conflict with kubectl's scale (it passed)"
elif grep -q 'conflict with "kubectl" with subresource "scale"' <<<"$out"; then
  ok "helm upgrade --set inventory.replicaCount=2 is refused: a conflict with kubectl's scale over .spec.replicas"
else
  not_ok "helm upgrade --set inventory.replicaCount=2 is refused for that conflict"
  echo "$out" | sed 's/^/        /'
fi
check "helm upgrade --set inventory.replicaCount=2 --force-conflicts" \
  helm upgrade "$RELEASE" "$CHART" -n "$NS" "${VALUES[@]}" --no-hooks --set inventory.replicaCount=2 --force-conflicts
check "inventory has 2 replicas (replicaCount set: the chart owns the count)" spec_replicas_are inventory 2
check "helm upgrade back to replicaCount unset" \
  helm upgrade "$RELEASE" "$CHART" -n "$NS" "${VALUES[@]}" --no-hooks
check "inventory keeps its 2 replicas" spec_replicas_are inventory 2
revisions() { helm history "$RELEASE" -n "$NS" -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
seven_revisions() { [ "$(revisions)" = 7 ]; }
check "the release's history: 2 failed attempts, 4 upgrades and the refused one" seven_revisions

# --- 4. helm uninstall -------------------------------------------------------------

echo
echo "== helm uninstall"
check "helm uninstall --wait" helm uninstall "$RELEASE" -n "$NS" --wait --timeout 60s
left() {
  k -n "$NS" get "$kinds,secret,replicaset,pod,job,horizontalpodautoscaler" -o name 2>/dev/null |
    grep -v -e '^configmap/kube-root-ca.crt$' -e '^serviceaccount/default$' || true
}
nothing_left() { [ -z "$(left)" ]; }
check "nothing of the release is left in the namespace (garbage collection included)" until_true 60 nothing_left
if [ -n "$(left)" ]; then left | sed 's/^/        left: /'; fi

# --- 5. The node: the used-by story ------------------------------------------------

echo
echo "== the node, the servers on its host, the images"
node_started=$SECONDS
tools/scripts/kube-node.sh start
echo "  node Ready in $((SECONDS - node_started)) s"
KAFKA_SCRAM_USERS=""
for user in $("$PY" -c 'import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d.get("kind") == "KafkaUser": print(d["metadata"]["name"])' deploy/local/kafka-users.yaml); do
  KAFKA_SCRAM_USERS+="$user=$(openssl rand -hex 12) "
done
export KAFKA_SCRAM_USERS
KAFKA_CLEAN=1 tools/scripts/kafka.sh start >/dev/null
acls_started=$SECONDS
grants=$("$PY" tools/scripts/lib/kafka-acls.py deploy/local/kafka-users.yaml)
(set -f; while read -r line; do printf '%s\0' "$line"; done <<<"$grants") |
  xargs -0 -P 3 -I{} sh -c 'set -f; tools/scripts/kafka.sh acl {} >/dev/null'
echo "  Kafka: a SCRAM principal per component, $(wc -l <<<"$grants") ACL grants from deploy/local/kafka-users.yaml ($((SECONDS - acls_started)) s)"
PG_CLEAN=1 tools/scripts/postgres.sh start >/dev/null
tools/scripts/images.sh >/dev/null
. tools/scripts/podman.sh
TAG=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
# The same images under a second tag, for a rolling upgrade to a new tag.
NEXT_TAG="$TAG-next"
images=()
for bin in orderflow-gateway orderflow-order orderflow-inventory orderflow-payment \
  orderflow-shipping orderflow-notification orderflow; do
  pm tag "localhost/orderflow/$bin:$TAG" "localhost/orderflow/$bin:$NEXT_TAG"
  images+=("localhost/orderflow/$bin:$TAG" "localhost/orderflow/$bin:$NEXT_TAG")
done
pm save --quiet --multi-image-archive --format docker-archive -o "$WORK/images.tar" "${images[@]}"
tools/scripts/kube-node.sh import "$WORK/images.tar" >/dev/null

echo
echo "== the used-by story (libs/testkit/tests/cluster.rs)"
if ORDERFLOW_CLUSTER_KUBECTL="$BIN/kubectl" ORDERFLOW_CLUSTER_HELM="$HELM" \
  ORDERFLOW_CLUSTER_HOST=10.244.0.1 ORDERFLOW_CLUSTER_KAFKA="127.0.0.1:$KAFKA_PORT" \
  ORDERFLOW_CLUSTER_KAFKA_SASL="$KAFKA_SASL_LISTENER" ORDERFLOW_CLUSTER_KAFKA_USERS="$KAFKA_SCRAM_USERS" \
  ORDERFLOW_CLUSTER_DATABASE="postgres://orderflow:orderflow@10.244.0.1:$PG_PORT" \
  ORDERFLOW_CLUSTER_IMAGES=localhost/orderflow ORDERFLOW_CLUSTER_TAG="$TAG" ORDERFLOW_CLUSTER_NEXT_TAG="$NEXT_TAG" \
  cargo test -p orderflow-testkit --features cluster --test cluster -- --nocapture; then
  ok "on a node: helm install, four outcomes, one trace, scale, upgrades and a killed Pod under load, uninstall"
else
  not_ok "on a node: helm install, four outcomes, one trace, scale, upgrades and a killed Pod under load, uninstall"
  k get pods -A -o wide 2>&1 | sed 's/^/        /' || true
  k get events -A --sort-by=.lastTimestamp 2>&1 | tail -30 | sed 's/^/        /' || true
fi

# --- Summary -----------------------------------------------------------------------

echo
echo "took $((SECONDS - started))s"
if [ "$failed" -gt 0 ]; then
  echo "failed:"
  printf '  %s\n' "${failures[@]}"
fi
echo "cluster: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
