#!/usr/bin/env bash
# The CPU-per-order budget (make test-cpu, in make test): on the dev stack
# from the release binaries, the CPU every process uses for a burst of ORDERS
# orders, read from /proc before and after, divided by a yardstick measured
# in the same run on the same machine: the CPU per message per hop of the raw
# relay chain (`orderflow bench-chain`, the chain's process plus the broker's).
# Machines of one kind differ by half in CPU per order; the ratio travels.
# Prints every figure; fails when the ratio exceeds tools/cpu-budget.conf's
# budget × margin. This is counted CPU, not time: the one such check in CI.
#
#   tools/scripts/cpu-budget.sh          measure and check
#   tools/scripts/cpu-budget.sh measure  measure and print only
#   BIN=DIR tools/scripts/cpu-budget.sh measure
#                                        the binaries in DIR, as built (A/B)
#   DEV_ARGS='--partitions 4' tools/scripts/cpu-budget.sh measure
#                                        the stack started with those options
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:-check}
ORDERS=${ORDERS:-3000}
CHAIN=${CHAIN:-40000}
HOPS=5
target=${CARGO_TARGET_DIR:-target}
source tools/scripts/lib/stack.sh
source tools/cpu-budget.conf
case "$MODE" in check | measure) ;; *) echo "usage: $0 [check|measure]" >&2; exit 64 ;; esac

if [ -z "${BIN:-}" ]; then
  cargo build --release --bins
fi
STACK_BIN=${BIN:-$target/release}
STACK_PORT=${PORT:-18180}
STACK_DATA=$(mktemp -d)
trap 'stack_stop; rm -rf "$STACK_DATA"' EXIT
# shellcheck disable=SC2086 # options, split as a shell splits words
stack_start ${DEV_ARGS:-}

stack_warm_up

# The yardstick: CPU per message per hop of the raw chain, the chain's own
# (bash's `time` of the process) plus the broker's (the dev process).
hz=$(getconf CLK_TCK)
dev_ticks() { stack_cpu | awk '$1 == "dev" { print $2 }'; }
chain_us_per_hop() {
  local before after cpu
  before=$(dev_ticks)
  cpu=$( { TIMEFORMAT='%U %S'; time "$STACK_BIN/orderflow" bench-chain --bootstrap-servers "$BOOTSTRAP" \
    --hops "$HOPS" --messages "$CHAIN" >/dev/null; } 2>&1 | tail -1)
  after=$(dev_ticks)
  awk -v c="$cpu" -v d=$((after - before)) -v hz="$hz" -v n=$((CHAIN * HOPS)) \
    'BEGIN { split(c, t, " "); printf "%.2f\n", (t[1] + t[2] + d / hz) * 1e6 / n }'
}
# The saga: CPU of every process per order of a burst.
saga_ms_per_order() {
  stack_cpu >"$STACK_DATA/cpu-before"
  "$STACK_BIN/orderflow" load --gateway "$GATEWAY" --orders "$ORDERS" --concurrency 128 >"$STACK_DATA/load.out"
  stack_cpu >"$STACK_DATA/cpu-after"
  grep -v '^RESULT' "$STACK_DATA/load.out" | sed -n 's/^throughput: //p' >&2
  cpu_ms_per "$ORDERS" "$STACK_DATA/cpu-before" "$STACK_DATA/cpu-after"
  echo
}
# Each twice, in turn, and the lower of each kept: what else the machine
# does only ever adds CPU, so the lower figure is the steadier one.
chain_1=$(chain_us_per_hop)
saga_1=$(saga_ms_per_order)
chain_2=$(chain_us_per_hop)
saga_2=$(saga_ms_per_order)
chain_us=$(printf '%s\n%s\n' "$chain_1" "$chain_2" | sort -g | head -1)
per_order=$(printf '%s\n%s\n' "$saga_1" "$saga_2" | awk '{ print $NF, $0 }' | sort -g | head -1 | cut -d' ' -f2-)
total_ms=${per_order##*total }
ratio=$(awk -v s="$total_ms" -v c="$chain_us" 'BEGIN { printf "%.0f", s * 1000 / c }')
limit=$(awk -v b="$budget" -v m="$margin" 'BEGIN { printf "%.0f", b * m }')

echo "CPU per order, ms (all processes, $ORDERS orders, the lower of two bursts): $per_order"
echo "raw chain CPU per message per hop: $chain_us µs (the lower of $chain_1 and $chain_2)"
echo "saga ÷ chain: $ratio (budget $budget, fails above $limit)"
echo "RESULT cpu_ms_per_order=$total_ms chain_us_per_hop=$chain_us ratio=$ratio"
if [ "$MODE" = check ] && [ "$ratio" -gt "$limit" ]; then
  echo "the saga's CPU per order is over budget: $ratio > $budget × $margin." >&2
  echo "Profile it (make profile) and take the cost back; or, if the cost is meant," >&2
  echo "raise the budget in tools/cpu-budget.conf in this commit and say why." >&2
  exit 1
fi
