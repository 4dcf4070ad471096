#!/usr/bin/env bash
# make test: every tier, one after another (each is its own make target),
# then how long each took.
#
# Several tiers need tools built from source — Jaeger, Mailpit and
# cargo-nextest (unit), helm and kube-score (chart, cluster), Kubernetes, etcd
# and CoreDNS (cluster): about 25 minutes of compiling on a machine that has
# none of them.
# They build in the background from the start, so on a cold machine they use
# the time the tests spend waiting (on brokers, databases, Pods, timeouts)
# instead of adding to it. (At nice 19, in a session of their own: Linux's
# autogroup scheduling shares the CPU between sessions first, so they still
# get up to half of it while a tier keeps both cores busy.) A tier that needs a tool
# still in the making waits for it (each builds once, under a lock:
# lib/tool-cache.sh); warm, everything is cached and the background finds
# nothing to do. The cluster tier runs last for that reason: Kubernetes takes
# longest to build.
#
#   tools/scripts/test-all.sh [TIER...]   default: unit observability chart
#                                         containers cpu system cluster
#   ORDERFLOW_BACKGROUND_ALSO=mutants     builds cargo-mutants too, after the
#                                         rest (CI's last step runs it)
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
log="$CACHE/tools/background.log"

# The tools the chosen tiers need, in the order they need them.
wanted=()
for tier in "${tiers[@]}"; do
  case $tier in
    unit) wanted+=(jaeger mailpit nextest) ;;
    chart) wanted+=(chart) ;;
    system) wanted+=(nextest) ;;
    cluster) wanted+=(chart kube) ;;
  esac
done
# Tools a caller needs after make test, built last (CI: mutants).
for tool in ${ORDERFLOW_BACKGROUND_ALSO:-}; do
  case $tool in
    mutants) wanted+=(mutants) ;;
    *) echo "test-all: ORDERFLOW_BACKGROUND_ALSO names '$tool'; only 'mutants' can be built" >&2; exit 64 ;;
  esac
done

builder=""
started=$SECONDS
rows=()
finish() {
  local status=$?
  if [ -n "$builder" ]; then
    # The whole background tree, and then its build cache once nothing writes to it.
    kill -TERM -- "-$builder" 2>/dev/null || true
    kill -CONT -- "-$builder" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 -- "-$builder" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$builder" 2>/dev/null || true
  fi
  rm -rf "${ORDERFLOW_GOCACHE:-}" || true
  echo
  echo "make test: seconds per tier"
  printf '  %-14s %6s  %s\n' "${rows[@]}"
  printf '  %-14s %6s\n' total $((SECONDS - started))
  exit "$status"
}
trap finish EXIT

# One Go build cache for this run's tool builds (the standard library and the
# modules they share compile once), removed at the end; a run killed outright
# leaves its cache behind, which the next run removes.
find "$CACHE/tools" -maxdepth 1 -name '.gocache.*' -mmin +10 -exec rm -rf {} + 2>/dev/null || true
ORDERFLOW_GOCACHE=$(mktemp -d "$CACHE/tools/.gocache.XXXXXX")
export ORDERFLOW_GOCACHE

background() { # TOOL...: builds each (a failure is left for the tier to report), then drops the cache
  local ok=1 tool
  for tool in "$@"; do
    case $tool in
      jaeger|mailpit) tools/scripts/observability-tools.sh "$tool" || ok=0 ;;
      chart) bash -c '. tools/scripts/chart-tools.sh && install_tools' || ok=0 ;;
      kube) tools/scripts/kube-tools.sh || ok=0 ;;
      nextest) tools/scripts/nextest.sh --install || ok=0 ;;
      mutants) tools/scripts/mutants.sh --install || ok=0 ;;
    esac
  done
  # Every tool is made: no build needs the cache any more (Kubernetes' is 4 GB).
  [ "$ok" = 0 ] || rm -rf "${ORDERFLOW_GOCACHE:?}"/*
}
if [ ${#wanted[@]} -gt 0 ]; then
  # Its own session, so the whole tree can be stopped (and paused) at once.
  setsid nice -n 19 bash -c "$(declare -f background); background ${wanted[*]}" >"$log" 2>&1 &
  builder=$!
fi

for tier in "${tiers[@]}"; do
  t0=$SECONDS
  # The CPU budget counts CPU in two runs it compares: nothing builds meanwhile.
  [ "$tier" != cpu ] || [ -z "$builder" ] || kill -STOP -- "-$builder" 2>/dev/null || true
  if ! make --no-print-directory "test-$tier"; then
    rows+=("$tier" $((SECONDS - t0)) FAILED)
    exit 1
  fi
  [ "$tier" != cpu ] || [ -z "$builder" ] || kill -CONT -- "-$builder" 2>/dev/null || true
  rows+=("$tier" $((SECONDS - t0)) ok)
done
