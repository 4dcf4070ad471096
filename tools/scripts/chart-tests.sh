#!/usr/bin/env bash
# The chart tier (docs/testing.md, tier 4): helm lint and helm template of
# helm/orderflow with its default values and every profile, every rendered
# manifest validated offline against the Kubernetes $KUBERNETES_VERSION schemas,
# the restricted Pod Security Standard checked, kube-score on the manifests, and
# values.schema.json's rule that no consumer may have more replicas than
# kafka.partitions. No cluster is needed.
#
# Tools are built or installed once into ${ORDERFLOW_CACHE:-~/.cache/orderflow}/tools
# (helm and kube-score with `go install` from the Go module proxy, kubernetes-validate
# from PyPI in a venv); later runs take seconds. Bumping a pin below installs the
# new version next to the old one.
set -euo pipefail
cd "$(dirname "$0")/../.."

. tools/scripts/chart-tools.sh

# The Kubernetes version manifests are validated against (and rendered for).
KUBERNETES_VERSION=1.30.0

CHART=helm/orderflow
# name:values-file ("" = the chart's defaults).
PROFILES=(
  "default:"
  "local:deploy/values/local.yaml"
  "managed:deploy/values/managed.yaml"
  "all-features:helm/tests/all-features.yaml"
)
# Custom resources: kubernetes-validate ships the Kubernetes schemas only.
CRD_KINDS="ScaledObject TriggerAuthentication ServiceMonitor PrometheusRule"

# kube-score exclusions, each with its reason:
KUBE_SCORE_ARGS=(
  --kubernetes-version "v${KUBERNETES_VERSION%.*}"
  # CPU is governed by requests (and the HPA); a CFS quota throttles a
  # latency-sensitive consumer even on an idle node. Memory limits are set.
  --ignore-container-cpu-limit
  # Images are pinned to immutable release tags, and the local recipe imports
  # them into the cluster (Always would try to pull them). Overwriting tags is
  # the case for image.pullPolicy=Always, which the chart supports.
  --ignore-test container-image-pull-policy
  # The chart sets seccomp (restricted PSS): check it too.
  --enable-optional-test container-seccomp-profile
  --output-format ci
  --color never
)

install_tools
echo "tools: $("$HELM" version --short), kube-score $KUBE_SCORE_VERSION, kubernetes-validate $KUBERNETES_VALIDATE_VERSION (Kubernetes $KUBERNETES_VERSION schemas)"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# --- Manifest checks the tools do not make (restricted PSS, probes, caps, hooks) ---

cat >"$WORK/inspect.py" <<'EOF'
"""Splits a rendered chart into one file per object and checks what neither
kubernetes-validate nor kube-score does. Prints `ok NAME` / `FAIL NAME: why`
lines, then `count N KIND=n …`."""
import os
import sys
from collections import Counter

import yaml

rendered, outdir, crd_kinds = sys.argv[1], sys.argv[2], set(sys.argv[3].split())
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
os.makedirs(os.path.join(outdir, "core"), exist_ok=True)
os.makedirs(os.path.join(outdir, "crd"), exist_ok=True)
for i, d in enumerate(docs):
    sub = "crd" if d["kind"] in crd_kinds else "core"
    path = os.path.join(outdir, sub, f"{i:03d}-{d['kind']}-{d['metadata']['name']}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(d, f, sort_keys=False)

results = []


def check(name, problems):
    results.append((name, problems))


consumers = {"order", "inventory", "payment", "shipping", "notification"}
# The peers a profile adds to every service's API port (networkPolicy.extraIngressFrom).
extra_from = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "operators"}}}]
pod_owners = [d for d in docs if d["kind"] in ("Deployment", "Job")]

# Restricted Pod Security Standard (v1.30), the fields it constrains.
ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                   "persistentVolumeClaim", "projected", "secret"}
problems = []
for d in pod_owners:
    name = f"{d['kind']}/{d['metadata']['name']}"
    spec = d["spec"]["template"]["spec"]
    psc = spec.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(f"{name}: {flag}")
    for v in spec.get("volumes", []):
        kinds = set(v) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            problems.append(f"{name}: volume {v['name']} is {kinds}")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        csc = c.get("securityContext", {})
        where = f"{name}/{c['name']}"
        if csc.get("privileged"):
            problems.append(f"{where}: privileged")
        if csc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if "ALL" not in csc.get("capabilities", {}).get("drop", []):
            problems.append(f"{where}: capabilities do not drop ALL")
        if set(csc.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}: adds capabilities")
        if not (csc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            problems.append(f"{where}: runAsNonRoot is not true")
        if csc.get("runAsUser", psc.get("runAsUser")) == 0:
            problems.append(f"{where}: runs as UID 0")
        seccomp = csc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}: seccompProfile is {seccomp}")
        if csc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: root filesystem is writable")
        if not any(m["mountPath"] == "/tmp" for m in c.get("volumeMounts", [])):
            problems.append(f"{where}: no /tmp emptyDir")
check("Pod Security Standard 'restricted' (every Deployment and Job)", problems)

problems = []
for d in (d for d in docs if d["kind"] == "Deployment"):
    name = d["metadata"]["name"]
    spec = d["spec"]["template"]["spec"]
    if spec.get("terminationGracePeriodSeconds", 30) < 30:
        problems.append(f"{name}: terminationGracePeriodSeconds < 30")
    c = spec["containers"][0]
    if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
        problems.append(f"{name}: liveness probe is not GET /healthz")
    if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
        problems.append(f"{name}: readiness probe is not GET /readyz")
    if not c.get("resources", {}).get("requests"):
        problems.append(f"{name}: no resource requests")
check("probes /healthz and /readyz, grace period >= 30s, requests", problems)

# Two ports per pod: the API (http, 8080: every call needs a token) and the
# operations port (ops, 9090: probes and /metrics), and the API's settings.
problems = []
for d in (d for d in docs if d["kind"] == "Deployment"):
    name = d["metadata"]["name"]
    c = d["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if ports != {"http": 8080, "ops": 9090}:
        problems.append(f"{name}: ports {ports}")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        if c.get(probe, {}).get("httpGet", {}).get("port") != "ops":
            problems.append(f"{name}: {probe} is not on the ops port")
for cm in (d for d in docs if d["kind"] == "ConfigMap" and "ORDERFLOW_HTTP_ADDR" in d.get("data", {})):
    data = cm["data"]
    if data.get("ORDERFLOW_OPS_ADDR") != "0.0.0.0:9090":
        problems.append(f"{cm['metadata']['name']}: ORDERFLOW_OPS_ADDR is {data.get('ORDERFLOW_OPS_ADDR')}")
    if not data.get("ORDERFLOW_AUTH_ISSUER") or "ORDERFLOW_AUTH_JWKS_URL" not in data:
        problems.append(f"{cm['metadata']['name']}: no token issuer for its API")
    if cm["metadata"]["name"].endswith("-payment") and data.get("ORDERFLOW_SANDBOX_API") not in ("false", "true"):
        problems.append("payment: ORDERFLOW_SANDBOX_API unset")
for m in (d for d in docs if d["kind"] == "ServiceMonitor"):
    if m["spec"]["endpoints"][0].get("port") != "ops":
        problems.append("ServiceMonitor does not scrape the ops port")
check("API on http (8080), probes and /metrics on ops (9090), every API given the token issuer", problems)

# Who may reach what: a service's API port only from the gateway's pods (and
# extraIngressFrom); the ops port only from Prometheus's pods in its own
# namespace; no rule admits every namespace.
problems = []
policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
gateway_peer = None
for name, pol in policies.items():
    component = pol["metadata"]["labels"].get("app.kubernetes.io/component")
    for rule in pol["spec"].get("ingress", []):
        ports = {p["port"] for p in rule.get("ports", [])}
        peers = rule.get("from", [])
        for peer in peers:
            ns = peer.get("namespaceSelector")
            if ns is not None and not ns.get("matchLabels") and not ns.get("matchExpressions"):
                problems.append(f"{name}: a rule admits every namespace: {peer}")
        if "ops" in ports:
            if ports != {"ops"}:
                problems.append(f"{name}: the ops rule opens {ports}")
            for peer in peers:
                if not (peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                        and peer.get("podSelector", {}).get("matchLabels")):
                    problems.append(f"{name}: ops admits {peer}, not Prometheus's pods in one namespace")
        if "http" in ports and component in consumers:
            for peer in peers:
                labels = peer.get("podSelector", {}).get("matchLabels", {})
                from_gateway = labels.get("app.kubernetes.io/component") == "gateway" and "namespaceSelector" not in peer
                if not from_gateway and peer not in extra_from:
                    problems.append(f"{name}: its API admits {peer}")
check("NetworkPolicy: APIs from the gateway only, /metrics from Prometheus's namespace only", problems)

# What values.schema.json promises, seen in the output: no consumer can be
# scaled (statically, by the HPA, or by KEDA) past the partition count.
partitions = None
deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
for d in deployments.values():
    for e in d["spec"]["template"]["spec"]["containers"][0].get("env", []):
        if e["name"] == "ORDERFLOW_KAFKA_PARTITIONS":
            partitions = int(e["value"])
problems = [] if partitions else ["no ORDERFLOW_KAFKA_PARTITIONS in any Deployment"]
for d in docs:
    target, bound = None, None
    if d["kind"] == "HorizontalPodAutoscaler":
        target, bound = d["spec"]["scaleTargetRef"]["name"], d["spec"]["maxReplicas"]
    elif d["kind"] == "ScaledObject":
        target, bound = d["spec"]["scaleTargetRef"]["name"], d["spec"]["maxReplicaCount"]
        for t in d["spec"]["triggers"]:
            if t["metadata"].get("allowIdleConsumers") != "false":
                problems.append(f"ScaledObject/{d['metadata']['name']}: allowIdleConsumers is not false")
    elif d["kind"] == "Deployment" and "replicas" in d["spec"]:
        target, bound = d["metadata"]["name"], d["spec"]["replicas"]
    if target is None:
        continue
    component = deployments.get(target, {}).get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component")
    if component is None:
        problems.append(f"{d['kind']}/{d['metadata']['name']} targets unknown Deployment {target}")
    elif component in consumers and partitions and bound > partitions:
        problems.append(f"{d['kind']}/{d['metadata']['name']}: {bound} replicas > {partitions} partitions")
check(f"no consumer scales past kafka.partitions ({partitions})", problems)

problems = []
jobs = {d["metadata"]["name"].rsplit("-", 1)[-1]: d for d in docs if d["kind"] == "Job"}
for step, weight in (("topics", "-5"), ("schemas", "0")):
    job = jobs.get(step)
    if job is None:
        problems.append(f"no {step} Job")
        continue
    a = job["metadata"].get("annotations", {})
    if a.get("helm.sh/hook") != "pre-install,pre-upgrade":
        problems.append(f"{step}: hook is {a.get('helm.sh/hook')}")
    if a.get("helm.sh/hook-weight") != weight:
        problems.append(f"{step}: hook weight {a.get('helm.sh/hook-weight')}, want {weight}")
    if "hook-succeeded" not in a.get("helm.sh/hook-delete-policy", ""):
        problems.append(f"{step}: succeeded Jobs are not deleted")
    args = job["spec"]["template"]["spec"]["containers"][0].get("args", [])
    if args[:2] != [step, "apply" if step == "topics" else "register"]:
        problems.append(f"{step}: runs {args}")
check("hook Jobs: topics apply (weight -5), then schemas register (weight 0)", problems)

monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
if monitors:
    problems = []
    for m in monitors:
        label = m["spec"].get("jobLabel")
        if not label:
            problems.append(f"ServiceMonitor/{m['metadata']['name']}: no jobLabel")
            continue
        for s in (d for d in docs if d["kind"] == "Service"):
            component = s["metadata"]["labels"].get("app.kubernetes.io/component")
            if s["metadata"]["labels"].get(label) != f"orderflow-{component}":
                problems.append(f"Service/{s['metadata']['name']}: {label} is not orderflow-{component}")
        if m["spec"]["endpoints"][0].get("path") != "/metrics":
            problems.append("ServiceMonitor does not scrape /metrics")
    check("ServiceMonitor: /metrics, job=orderflow-<component> for any release name", problems)

for name, problems in results:
    if problems:
        print(f"FAIL {name}: " + "; ".join(problems))
    else:
        print(f"ok {name}")
kinds = Counter(d["kind"] for d in docs)
print("count", len(docs), " ".join(f"{k}={v}" for k, v in sorted(kinds.items())))
EOF

# --- Per profile: lint, render, validate, inspect, kube-score ------------------

declare -A COUNTS
for profile in "${PROFILES[@]}"; do
  name=${profile%%:*}
  file=${profile#*:}
  values=()
  [ -n "$file" ] && values=(-f "$file")
  echo
  echo "== profile $name${file:+ ($file)}"
  check "helm lint --strict ($name)" "$HELM" lint --strict --kube-version "$KUBERNETES_VERSION" "$CHART" "${values[@]}"
  out="$WORK/$name"
  mkdir -p "$out"
  if ! "$HELM" template orderflow "$CHART" --namespace orderflow --kube-version "$KUBERNETES_VERSION" \
      "${values[@]}" >"$out/rendered.yaml" 2>"$out/template.err"; then
    not_ok "helm template ($name)"
    sed 's/^/        /' "$out/template.err"
    continue
  fi
  ok "helm template ($name)"

  inspect=$("$PY" "$WORK/inspect.py" "$out/rendered.yaml" "$out/split" "$CRD_KINDS")
  while IFS= read -r line; do
    case $line in
      ok\ *) ok "${line#ok } ($name)" ;;
      FAIL\ *) not_ok "${line#FAIL } ($name)" ;;
      count\ *)
        set -- $line
        COUNTS[$name]=$2
        shift 2
        echo "  rendered ${COUNTS[$name]} manifests: $*"
        ;;
    esac
  done <<<"$inspect"

  mapfile -t core < <(find "$out/split/core" -name '*.yaml' | sort)
  mapfile -t crds < <(find "$out/split/crd" -name '*.yaml' | sort)
  check "${#core[@]} manifests valid against the Kubernetes $KUBERNETES_VERSION schemas, strict ($name)" \
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$KUBERNETES_VERSION" "${core[@]}"
  if [ ${#crds[@]} -gt 0 ]; then
    echo "  skipped schema validation of ${#crds[@]} custom resources ($(printf '%s\n' "${crds[@]}" | sed 's/.*\/[0-9]*-\([A-Za-z]*\)-.*/\1/' | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}')): kubernetes-validate has no schema for CRDs; the checks above cover their caps"
  fi

  if score=$("$KUBE_SCORE" score "${KUBE_SCORE_ARGS[@]}" "$out/rendered.yaml" 2>&1); then
    ok "kube-score: no critical findings ($name)"
  else
    not_ok "kube-score: critical findings ($name)"
  fi
  echo "$score" | grep -E '^\[(CRITICAL|WARNING)\]' | sed 's/^/        /' || true
done

# --- values.schema.json: replicas never above kafka.partitions -----------------

echo
echo "== values.schema.json"
check "values.schema.json is what helm/values-schema.py generates" "$PY" helm/values-schema.py --check

# expect_reject NAME PATTERN ARGS...: helm template must fail, saying PATTERN.
expect_reject() {
  local name=$1 pattern=$2 err
  shift 2
  if err=$("$HELM" template orderflow "$CHART" --kube-version "$KUBERNETES_VERSION" "$@" 2>&1 >/dev/null); then
    not_ok "$name (was accepted)"
  elif grep -q -- "$pattern" <<<"$err"; then
    ok "$name"
  else
    not_ok "$name (failed for another reason)"
    echo "$err" | sed 's/^/        /'
  fi
}
expect_accept() {
  local name=$1
  shift
  check "$name" "$HELM" template orderflow "$CHART" --kube-version "$KUBERNETES_VERSION" "$@"
}

expect_accept "accepts the defaults (12 partitions)"
expect_reject "rejects inventory.autoscaling.maxReplicas=13 with 12 partitions" \
  "/inventory/autoscaling/maxReplicas': maximum: got 13, want 12" --set inventory.autoscaling.maxReplicas=13
expect_reject "rejects inventory.keda.maxReplicas=13 with 12 partitions" \
  "/inventory/keda/maxReplicas': maximum: got 13, want 12" --set inventory.keda.maxReplicas=13
expect_reject "rejects inventory.replicaCount=13 with 12 partitions" \
  "/inventory/replicaCount': maximum: got 13, want 12" --set inventory.replicaCount=13
expect_reject "rejects replicaCountOnInstall=13 with 12 partitions" \
  "/replicaCountOnInstall': maximum: got 13, want 12" --set replicaCountOnInstall=13
expect_accept "accepts replicaCount=null (kubectl owns the count)" --set inventory.replicaCount=null
expect_reject "rejects kafka.partitions=6 while keda.maxReplicas stay 12" \
  "keda/maxReplicas': maximum: got 12, want 6" --set kafka.partitions=6
expect_reject "rejects maxReplicas above the hard cap of 100 even with 200 partitions" \
  "maximum: got 101, want 100" --set kafka.partitions=200 --set payment.keda.maxReplicas=101
expect_accept "accepts inventory.keda.maxReplicas=24 with 24 partitions" \
  --set kafka.partitions=24 --set inventory.keda.enabled=true --set inventory.keda.maxReplicas=24
expect_accept "accepts maxReplicas=100 with 200 partitions" \
  --set kafka.partitions=200 --set shipping.autoscaling.maxReplicas=100
expect_accept "accepts every consumer at 6 with 6 partitions" --set kafka.partitions=6 \
  --set order.keda.maxReplicas=6 --set inventory.keda.maxReplicas=6 --set payment.keda.maxReplicas=6 \
  --set shipping.keda.maxReplicas=6 --set notification.keda.maxReplicas=6
expect_reject "rejects the CPU HPA and KEDA on one service" \
  "/inventory/keda/enabled': value must be false" --set inventory.autoscaling.enabled=true --set inventory.keda.enabled=true
expect_reject "rejects an unknown value (typo guard)" \
  "additional properties 'inventroy' not allowed" --set inventroy.replicaCount=2
expect_reject "the templates refuse the same values when schema validation is skipped" \
  "inventory.keda.maxReplicas (13) exceeds kafka.partitions (12)" \
  --skip-schema-validation --set inventory.keda.maxReplicas=13

# --- Security values -------------------------------------------------------------
expect_reject "the gateway needs an OIDC issuer" "auth: set auth.issuer and auth.jwksUrl" \
  --skip-schema-validation --set auth.issuer=
expect_reject "the JWKS is an http(s) URL" "/auth/jwksUrl'" --set auth.jwksUrl=keys.json
expect_reject "an Ingress that would route /metrics is refused" "would serve /metrics publicly" \
  --set gateway.ingress.enabled=true --set 'gateway.ingress.hosts[0].paths[0].path=/' \
  --set 'gateway.ingress.hosts[0].paths[0].pathType=Prefix'
expect_reject "an Ingress path /metrics is refused" "would serve /metrics publicly" \
  --set gateway.ingress.enabled=true --set 'gateway.ingress.hosts[0].paths[0].path=/metrics' \
  --set 'gateway.ingress.hosts[0].paths[0].pathType=Exact'
ingress=$("$HELM" template orderflow "$CHART" --kube-version "$KUBERNETES_VERSION" --set gateway.ingress.enabled=true --show-only templates/ingress.yaml)
if grep -q 'path: /v1$' <<<"$ingress" && grep -q 'path: /openapi.json$' <<<"$ingress" && ! grep -Eq 'path: /$|/metrics|/healthz|/readyz' <<<"$ingress"; then
  ok "the default Ingress routes /v1 and /openapi.json only"
else
  not_ok "the default Ingress routes more than the public API"; echo "$ingress" | sed 's/^/        /'
fi
gateway_config=$("$HELM" template orderflow "$CHART" --kube-version "$KUBERNETES_VERSION" --show-only templates/configmaps.yaml)
for var in ORDERFLOW_AUTH_JWKS_URL ORDERFLOW_AUTH_ISSUER ORDERFLOW_AUTH_AUDIENCE ORDERFLOW_AUTH_OPERATOR_ROLE ORDERFLOW_PAYMENT_URL ORDERFLOW_ORDERS_PER_SECOND ORDERFLOW_HEADER_READ_TIMEOUT_MS; do
  if grep -q "  $var:" <<<"$gateway_config"; then ok "the gateway's ConfigMap sets $var"; else not_ok "the gateway's ConfigMap lacks $var"; fi
done
# One Kafka principal per component: each Deployment's SASL user is its own,
# its password from the Secret Strimzi writes for it; the hook is `ops`.
principals=$("$HELM" template orderflow "$CHART" --kube-version "$KUBERNETES_VERSION" \
  --set kafka.sasl.enabled=true --set kafka.sasl.perComponent.enabled=true \
  --set inventory.keda.enabled=true --set schemaRegistry.auth.existingSecret=registry-key)
export principals
if "$PY" - <<'PYEOF'
import os, sys, yaml
docs = [d for d in yaml.safe_load_all(os.environ["principals"]) if d]
problems = []
def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}
for d in docs:
    if d["kind"] == "Deployment" and d["metadata"]["name"] != "orderflow-gateway":
        component = d["metadata"]["name"].removeprefix("orderflow-")
        env = env_of(d["spec"]["template"]["spec"]["containers"][0])
        if env["KAFKA_SASL_USERNAME"].get("value") != f"orderflow-{component}":
            problems.append(f"{component}: username {env['KAFKA_SASL_USERNAME']}")
        ref = env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        if ref != {"name": f"orderflow-{component}", "key": "password"}:
            problems.append(f"{component}: password from {ref}")
        reg = env.get("ORDERFLOW_SCHEMA_REGISTRY_BASIC_AUTH", {}).get("valueFrom", {}).get("secretKeyRef")
        if reg != {"name": "registry-key", "key": "credentials"}:
            problems.append(f"{component}: registry credentials from {reg}")
    if d["kind"] == "Job" and d["metadata"]["name"] == "orderflow-topics":
        env = env_of(d["spec"]["template"]["spec"]["containers"][0])
        if env["KAFKA_SASL_USERNAME"].get("value") != "orderflow-ops":
            problems.append(f"topics hook: username {env['KAFKA_SASL_USERNAME']}")
    if d["kind"] == "TriggerAuthentication":
        refs = {r["parameter"]: r for r in d["spec"]["secretTargetRef"]}
        if d["metadata"]["name"] != "orderflow-kafka-inventory" or refs["password"]["name"] != "orderflow-inventory":
            problems.append(f"KEDA authentication {d['metadata']['name']}: {refs}")
    if d["kind"] == "Secret" and d["metadata"]["name"] in ("orderflow-kafka", "orderflow-kafka-hook"):
        problems.append(f"a shared SASL Secret {d['metadata']['name']} was rendered")
print("\n".join(problems))
sys.exit(1 if problems else 0)
PYEOF
then ok "one Kafka principal per component (and ops for the hook), registry credentials from their Secret"
else not_ok "per-component Kafka principals"
fi

# --- Email: the smtp channel's settings, its password from a Secret --------------
expect_reject "channel smtp without a server is refused" \
  "set notification.smtp.host and notification.smtp.from" --set notification.channel=smtp
smtp=$("$HELM" template orderflow "$CHART" --kube-version "$KUBERNETES_VERSION" --set networkPolicy.enabled=true \
  --set notification.channel=smtp --set notification.smtp.host=smtp.example.com \
  --set 'notification.smtp.from=orderflow <orders@example.com>' --set notification.smtp.username=orderflow \
  --set notification.smtp.passwordSecret.name=smtp-login)
printf '%s\n' "$smtp" >"$WORK/smtp.yaml"
if "$PY" - "$WORK/smtp.yaml" <<'PYEOF'
import sys
import yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
def one(kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
data = one("ConfigMap", "orderflow-notification")["data"]
want = {"ORDERFLOW_CHANNEL": "smtp", "ORDERFLOW_SMTP_HOST": "smtp.example.com", "ORDERFLOW_SMTP_PORT": "587",
        "ORDERFLOW_SMTP_TLS": "starttls", "ORDERFLOW_SMTP_FROM": "orderflow <orders@example.com>",
        "ORDERFLOW_SMTP_USERNAME": "orderflow"}
problems = [f"{k}={data.get(k)!r}" for k, v in want.items() if data.get(k) != v]
problems += ["the password is in the ConfigMap"] if any("PASSWORD" in k for k in data) else []
env = one("Deployment", "orderflow-notification")["spec"]["template"]["spec"]["containers"][0]["env"]
password = [e for e in env if e["name"] == "ORDERFLOW_SMTP_PASSWORD"]
if password != [{"name": "ORDERFLOW_SMTP_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "smtp-login", "key": "password"}}}]:
    problems.append(f"password env {password}")
egress = one("NetworkPolicy", "orderflow-notification")["spec"]["egress"]
if not any({p["port"] for p in rule.get("ports", [])} == {587, 465, 25} for rule in egress):
    problems.append("no egress to SMTP ports")
print("\n".join(problems))
sys.exit(1 if problems else 0)
PYEOF
then ok "channel smtp: server, TLS mode and sender in the ConfigMap, the password from its Secret, egress to SMTP"
else not_ok "channel smtp settings"
fi

# --- The console and dead letters: the gateway reads Kafka only when asked ------
for dead_letters in true false; do
  rendered=$("$HELM" template orderflow "$CHART" --kube-version "$KUBERNETES_VERSION" --set networkPolicy.enabled=true \
    --set gateway.deadLetters.enabled=$dead_letters --set gateway.console.jaegerUrl=https://jaeger.example.com)
  printf '%s\n' "$rendered" >"$WORK/console-$dead_letters.yaml"
  if "$PY" - "$WORK/console-$dead_letters.yaml" "$dead_letters" <<'PYEOF'
import sys
import yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
enabled = sys.argv[2] == "true"
def one(kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
problems = []
data = one("ConfigMap", "orderflow-gateway")["data"]
if data.get("ORDERFLOW_CONSOLE_JAEGER_URL") != "https://jaeger.example.com":
    problems.append(f"jaeger url {data.get('ORDERFLOW_CONSOLE_JAEGER_URL')!r}")
env = {e["name"]: e for e in one("Deployment", "orderflow-gateway")["spec"]["template"]["spec"]["containers"][0]["env"]}
kafka = {"ORDERFLOW_KAFKA_BOOTSTRAP_SERVERS", "ORDERFLOW_SCHEMA_REGISTRY_URL", "KAFKA_SASL_USERNAME"}
if enabled != kafka.issubset(env):
    problems.append(f"Kafka settings {sorted(kafka & env.keys())} with deadLetters={enabled}")
if enabled and env["KAFKA_SASL_USERNAME"].get("value") != "orderflow-gateway":
    problems.append(f"principal {env['KAFKA_SASL_USERNAME']}")
egress = one("NetworkPolicy", "orderflow-gateway")["spec"]["egress"]
ports = {p["port"] for rule in egress for p in rule.get("ports", [])}
if enabled != (9092 in ports or 9093 in ports):
    problems.append(f"egress ports {sorted(ports)} with deadLetters={enabled}")
print("\n".join(problems))
sys.exit(1 if problems else 0)
PYEOF
  then ok "gateway.deadLetters.enabled=$dead_letters: Kafka and registry settings and egress only when on (as orderflow-gateway); the console's Jaeger URL set"
  else not_ok "gateway dead letters ($dead_letters)"
  fi
done

# --- PrometheusRule: only when files/prometheus-rules.yaml has groups ----------

echo
echo "== PrometheusRule and NOTES"
count_kind() { grep -c "^kind: $1\$" || true; }
# The chart carries the rules of deploy/observability (helm cannot read files
# outside the chart); the copy must not drift.
if cmp -s "$CHART/files/prometheus-rules.yaml" deploy/observability/rules.yaml; then
  ok "files/prometheus-rules.yaml is deploy/observability/rules.yaml"
else
  not_ok "files/prometheus-rules.yaml differs from deploy/observability/rules.yaml: cp deploy/observability/rules.yaml $CHART/files/prometheus-rules.yaml"
fi
real=$("$HELM" template orderflow "$CHART" --kube-version "$KUBERNETES_VERSION" --set metrics.prometheusRule.enabled=true)
if [ "$(count_kind PrometheusRule <<<"$real")" = 1 ] && grep -q 'OrderflowSagaStuck' <<<"$real"; then
  ok "the PrometheusRule carries the alert rules"
else
  not_ok "no PrometheusRule with the alert rules was rendered"
fi
cp -r "$CHART" "$WORK/chart-with-rules"
cat >"$WORK/chart-with-rules/files/prometheus-rules.yaml" <<'EOF'
groups:
  - name: orderflow-test
    rules:
      - alert: OrderflowTestAlert
        expr: vector(1) > 2
        labels: {severity: warning}
        annotations: {summary: "{{ $labels.service }} test"}
EOF
rules=$("$HELM" template orderflow "$WORK/chart-with-rules" --kube-version "$KUBERNETES_VERSION" --set metrics.prometheusRule.enabled=true)
if [ "$(count_kind PrometheusRule <<<"$rules")" = 1 ] && grep -q 'OrderflowTestAlert' <<<"$rules" && grep -q '{{ $labels.service }} test' <<<"$rules"; then
  ok "one PrometheusRule, rules and their {{ \$labels }} templates kept, once the file has groups"
else
  not_ok "PrometheusRule from a rules file with groups"
fi
n=$("$HELM" template orderflow "$WORK/chart-with-rules" --kube-version "$KUBERNETES_VERSION" | count_kind PrometheusRule)
if [ "$n" = 0 ]; then ok "no PrometheusRule unless metrics.prometheusRule.enabled"; else not_ok "PrometheusRule rendered while disabled"; fi

# NOTES.txt: how to place the first order, Jaeger, kubectl scale. `helm install
# --dry-run` wants a cluster, so a copy of the chart renders NOTES.txt into a
# ConfigMap with helm template.
cp -r "$CHART" "$WORK/chart-notes"
cat >"$WORK/chart-notes/templates/zz-notes.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: notes
data:
  notes: {{ include (print .Template.BasePath "/NOTES.txt") . | quote }}
EOF
notes_check() { # NAME WANT... -- HELM-ARGS...
  local name=$1 notes want wants=()
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do wants+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  if ! notes=$("$HELM" template orderflow "$WORK/chart-notes" -n orderflow --kube-version "$KUBERNETES_VERSION" \
      --show-only templates/zz-notes.yaml "$@" 2>&1 | "$PY" -c 'import sys, yaml; print(yaml.safe_load(sys.stdin)["data"]["notes"])' 2>&1); then
    not_ok "$name: NOTES.txt does not render"
    echo "$notes" | sed 's/^/        /'
    return
  fi
  for want in "${wants[@]}"; do
    if ! grep -qF -- "$want" <<<"$notes"; then
      not_ok "$name: NOTES lack '$want'"
      return
    fi
  done
  ok "$name"
}
FIRST_ORDER=(
  'curl -si -X POST $GATEWAY/v1/orders -H "authorization: Bearer $CUSTOMER"'
  'Every /v1 call needs a bearer JWT from '
  "kubectl -n orderflow scale deploy/orderflow-inventory --replicas=4"
  "At most 12 replicas"
)
notes_check "NOTES (defaults): port-forward, first order, Jaeger, kubectl scale" "${FIRST_ORDER[@]}" \
  "kubectl -n orderflow port-forward svc/orderflow-gateway 8080:8080" \
  "kubectl -n observability port-forward svc/jaeger 16686:16686" --
notes_check "NOTES (local): the Ingress URL, first order, Jaeger URL, kubectl scale, who owns the count" "${FIRST_ORDER[@]}" \
  "GATEWAY=http://orderflow.localhost:8080" "Open Jaeger at http://jaeger.localhost:8080" \
  "OPERATOR=\$(token ops); CUSTOMER=\$(token c-42)" \
  "inventory: kubectl; upgrades keep the live count (now 1)." -- -f deploy/values/local.yaml
notes_check "NOTES (replicaCount set): the chart owns that count" \
  "inventory: the chart (inventory.replicaCount=3); every upgrade sets it again." \
  "order: kubectl; upgrades keep the live count (now 2)." -- --set inventory.replicaCount=3
notes_check "NOTES (managed): HTTPS Ingress, autoscaler notes" "${FIRST_ORDER[@]}" \
  "GATEWAY=https://api.orderflow.example.com" "inventory is autoscaled by KEDA" -- -f deploy/values/managed.yaml

# --- Summary -------------------------------------------------------------------

echo
for profile in "${PROFILES[@]}"; do
  name=${profile%%:*}
  echo "rendered manifests, $name: ${COUNTS[$name]:-none}"
done
echo "took $((SECONDS - started))s"
if [ "$failed" -gt 0 ]; then
  echo "failed:"
  printf '  %s\n' "${failures[@]}"
fi
echo "chart: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
