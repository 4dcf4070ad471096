#!/usr/bin/env bash
# Sourced by the chart and cluster tiers: the pinned tool versions, where they
# are cached, how they are installed (helm and kube-score with `go install`
# from the Go module proxy, kubernetes-validate from PyPI in a venv), and the
# ok / not_ok / check helpers that count results.

# Helm's current major. It takes the Kubernetes version it assumes when there is
# no cluster (`helm template`, `helm lint`: .Capabilities and the deprecation
# baseline) from the client-go it was built with, v0.37: Kubernetes 1.37.
HELM_VERSION=v4.3.2
KUBE_SCORE_VERSION=v1.20.0
KUBERNETES_VALIDATE_VERSION=1.37.0

CACHE="${ORDERFLOW_CACHE:-$HOME/.cache/orderflow}"
TOOLS="$CACHE/tools"
. tools/scripts/lib/tool-cache.sh
HELM="$TOOLS/helm-$HELM_VERSION"
KUBE_SCORE="$TOOLS/kube-score-$KUBE_SCORE_VERSION"
VENV="$TOOLS/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
PY="$VENV/bin/python"

started=$SECONDS
passed=0
failed=0
failures=()
ok() { passed=$((passed + 1)); echo "  ok    $1"; }
not_ok() { failed=$((failed + 1)); failures+=("$1"); echo "  FAIL  $1"; }
# check NAME COMMAND...: runs COMMAND, shows its output only when it fails.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name"; echo "$out" | sed 's/^/        /'; fi
}

# --- Tools -------------------------------------------------------------------

# go_install OUT PACKAGE@VERSION LDFLAGS: once, under a lock (lib/tool-cache.sh).
# Called as `go_install … || exit 1`, where set -e does not hold: every step
# that can fail exits by itself (here and in venv_install).
go_install() (
  out=$1 pkg=$2 ldflags=$3
  tool_lock "$(basename "$out")"
  [ -x "$out" ] && exit 0
  if ! command -v go >/dev/null 2>&1; then
    echo "chart-tools: building $(basename "$out") needs Go (https://go.dev/dl); 'go' is not on PATH" >&2
    exit 1
  fi
  echo "installing $(basename "$out") into $TOOLS (once; go install $pkg)"
  gobin=$(mktemp -d "$TOOLS/.gobin.XXXXXX") || exit 1
  trap 'rm -rf "$gobin"' EXIT
  if ! GOCACHE=$(go_build_cache "$gobin/gocache") CGO_ENABLED=0 GOBIN="$gobin/bin" \
    go install -ldflags "$ldflags" "$pkg"; then
    echo "chart-tools: go install $pkg failed" >&2
    exit 1
  fi
  mv "$gobin"/bin/* "$out" || exit 1
)

# A venv is tied to its path, so it is built in place; the stamp marks it complete.
venv_install() (
  tool_lock "$(basename "$VENV")"
  [ -f "$VENV/.complete" ] && exit 0
  echo "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $VENV (once)"
  rm -rf "$VENV" || exit 1
  if ! python3 -m venv "$VENV"; then
    echo "chart-tools: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" || exit 1
  touch "$VENV/.complete"
)

install_tools() {
  mkdir -p "$TOOLS"
  go_install "$HELM" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" \
    "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean" || exit 1
  go_install "$KUBE_SCORE" "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION" \
    "-s -w -X main.version=$KUBE_SCORE_VERSION" || exit 1
  venv_install || exit 1
}

