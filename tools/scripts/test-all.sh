#!/usr/bin/env bash
# make test: every tier, one after another (each is its own make target),
# then how long each took.
#
# Several tiers need tools built from Go modules — Jaeger and Mailpit (unit),
# helm and kube-score (chart, cluster), Kubernetes, etcd and CoreDNS
# (cluster): about 25 minutes of compiling on a machine that has none of them.
# They build in the background at the lowest CPU priority from the start, so
# on a cold machine they use the time the tests spend waiting (on brokers,
# databases, Pods, timeouts) instead of adding to it. A tier that needs a tool
# still in the making waits for it (each builds once, under a lock:
# lib/tool-cache.sh); warm, everything is cached and the background finds
# nothing to do. The cluster tier runs last for that reason: Kubernetes takes
# longest to build.
#
#   tools/scripts/test-all.sh [TIER...]   default: unit observability chart
#                                         containers cpu system cluster
set -euo pipefail
cd "$(dirname "$0")/../.."

tiers=("$@")
[ ${#tiers[@]} -gt 0 ] || tiers=(unit observability chart containers cpu system cluster)
for tier in "${tiers[@]}"; do
  case $tier in
    unit|observability|chart|containers|cpu|system|cluster) ;;
    *) echo "test-all: unknown tier '$tier' (unit observability chart containers cpu system cluster)" >&2; exit 64 ;;
  esac
done

CACHE="${ORDERFLOW_CACHE:-$HOME/.cache/orderflow}"
mkdir -p "$CACHE/tools"
# One Go build cache for this run's tool builds (the standard library and
# shared modules compile once), removed at the end.
ORDERFLOW_GOCACHE=$(mktemp -d "$CACHE/tools/.gocache.XXXXXX")
export ORDERFLOW_GOCACHE
log="$CACHE/tools/background.log"

background() {
  tools/scripts/observability-tools.sh jaeger
  tools/scripts/observability-tools.sh mailpit
  bash -c '. tools/scripts/chart-tools.sh && install_tools'
  tools/scripts/kube-tools.sh
}
# Its own session, so the whole tree can be stopped at the end.
setsid nice -n 19 bash -c "$(declare -f background); background" >"$log" 2>&1 &
builder=$!

started=$SECONDS
rows=()
finish() {
  local status=$?
  kill -TERM -- "-$builder" 2>/dev/null || true
  wait "$builder" 2>/dev/null || true
  rm -rf "$ORDERFLOW_GOCACHE" || true
  echo
  echo "make test: seconds per tier"
  printf '  %-14s %6s  %s\n' "${rows[@]}"
  printf '  %-14s %6s\n' total $((SECONDS - started))
  exit "$status"
}
trap finish EXIT

for tier in "${tiers[@]}"; do
  t0=$SECONDS
  if ! make --no-print-directory "test-$tier"; then
    rows+=("$tier" $((SECONDS - t0)) FAILED)
    exit 1
  fi
  rows+=("$tier" $((SECONDS - t0)) ok)
done
