#!/usr/bin/env bash
# Where the saga's CPU goes (make profile): a release build with frame
# pointers and line tables (the `profiling` profile), the dev stack, and
# `perf record` of every process of it during a burst of ORDERS orders.
# Writes, under $target/profile/:
#   <component>.svg       a flame graph per process (inferno)
#   <component>.folded    its folded stacks
#   top.md                per component, the ten functions with the most
#                         self time (share of that process's samples)
# and prints top.md. The components: the dev process (embedded broker,
# schema registry, dev issuer) and the six services. Asserts nothing.
#
# perf records the whole machine (`-a`) and each process's samples are read
# back by its pid, every thread of it: threads a process starts during the
# burst count too (Tokio starts one whenever a worker blocks, as in a
# durable SQLite COMMIT). Following the threads that existed at the start
# (`-t`) missed those; `perf record -p` caught only a Tokio process's main
# thread on this machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
ORDERS=${ORDERS:-5000}
FREQ=${FREQ:-499}
target=${CARGO_TARGET_DIR:-target}
out="$target/profile"
inferno="$HOME/.cache/orderflow/tools/inferno-0.12.8/bin"
source tools/scripts/lib/stack.sh

command -v perf >/dev/null || { echo "perf is needed (Debian: apt-get install linux-perf)" >&2; exit 1; }
if [ ! -x "$inferno/inferno-flamegraph" ]; then
  echo "== installing inferno 0.12.8 (flame graphs) under ~/.cache/orderflow/tools"
  cargo install inferno --version 0.12.8 --locked --no-default-features --features cli \
    --root "$HOME/.cache/orderflow/tools/inferno-0.12.8"
fi
echo "== profiling build (release, frame pointers, line tables)"
RUSTFLAGS="-C force-frame-pointers=yes" CFLAGS="-fno-omit-frame-pointer -g1" \
  CXXFLAGS="-fno-omit-frame-pointer" cargo build --profile profiling --bins

STACK_BIN="$target/profiling"
STACK_PORT=${PORT:-18080}
STACK_DATA=$(mktemp -d)
perfs=()
cleanup() {
  for p in "${perfs[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  stack_stop
  rm -rf "$STACK_DATA"
}
trap cleanup EXIT
rm -rf "$out" && mkdir -p "$out"
stack_start

echo "== warm-up: 500 orders"
stack_warm_up

echo "== perf record of the machine during a burst of $ORDERS orders"
perf record -q -a -e cpu-clock -F "$FREQ" -g -o "$out/all.perf.data" >/dev/null 2>&1 &
perfs+=($!)
sleep 1
"$STACK_BIN/orderflow" load --gateway "$GATEWAY" --orders "$ORDERS" --concurrency 128 | grep -v '^RESULT'
for p in "${perfs[@]}"; do kill -INT "$p" 2>/dev/null || true; done
for p in "${perfs[@]}"; do wait "$p" 2>/dev/null || true; done
perfs=()

echo "== flame graphs and top functions"
: >"$out/top.md"
while read -r name pid; do
  perf script -i "$out/all.perf.data" --pid "$pid" 2>/dev/null | "$inferno/inferno-collapse-perf" >"$out/$name.folded"
  [ -s "$out/$name.folded" ] || continue
  "$inferno/inferno-flamegraph" --title "orderflow-$name, $ORDERS orders" <"$out/$name.folded" >"$out/$name.svg"
  tools/scripts/lib/top-self.py "$name" "$out/$name.folded" >>"$out/top.md"
done < <(stack_pids)
cat "$out/top.md"
echo "flame graphs: $out/*.svg"
