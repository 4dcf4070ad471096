#!/usr/bin/env bash
# The saga's yardstick, in one run on one broker (release build):
#   (a) a raw relay chain of the saga's hop count on the stack's broker, msg/s
#       (on the dev stack after (d), so its messages are not in (e));
#   (b) a burst of BURST orders, orders/s;
#   (c) open loop at half the burst rate, p50/p99 placed→terminal;
#   (d) the same burst with 200 ms of sandbox provider latency;
#   (e) RSS of the whole stack after (b), and its peak over (b)–(d);
#   (f) the order read model rebuilt from the log, seconds per 10,000 orders;
#   (g) dead letters replayed per second;
#   (h) the CPU the whole stack uses idle, % of one core over 10 s;
#   (i) on the dev stack, CPU per SQLite statement handed to another thread
#       (sqlx, as the services run it) and not (rusqlite): orderflow-sqlite-hop;
# and the ratio of (b) to (a); on the system stack also what one order of (b)
# costs: records and bytes written to and read from Kafka, PostgreSQL commits
# and WAL syncs (tools/scripts/saga-volume.py; the chart's sizing guide uses
# them). Prints the figures; asserts nothing.
#
#   tools/scripts/bench.sh           the dev stack: embedded broker, SQLite (make bench)
#   tools/scripts/bench.sh system    Kafka and PostgreSQL, started and stopped here (make bench-system)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:-dev}
BURST=${BURST:-10000}
CHAIN=${CHAIN:-40000}
LATENCY_MS=${LATENCY_MS:-200}
PORT=${PORT:-18080}
target=${CARGO_TARGET_DIR:-target}

cargo build --release --bins
source tools/scripts/lib/stack.sh
STACK_BIN="$target/release"
STACK_PORT=$PORT
STACK_DATA=$(mktemp -d)
bin=$STACK_BIN
data=$STACK_DATA
rss_log=$(mktemp)
sampler=""
cleanup() {
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
  stack_stop
  if [ "$MODE" = system ]; then
    tools/scripts/kafka.sh stop || true
    tools/scripts/postgres.sh stop || true
  fi
  rm -rf "$data" "$data-kafka" "$rss_log"
}
trap cleanup EXIT

dev_args=()
if [ "$MODE" = system ]; then
  export KAFKA_PORT=${KAFKA_PORT:-19092} PG_PORT=${PG_PORT:-15432}
  # Its own data folder, so the per-order volume reads this run's logs only
  # (not under $data: `orderflow dev` empties that at start).
  export KAFKA_DATA="$data-kafka"
  pg_url="postgres://orderflow:orderflow@127.0.0.1:$PG_PORT"
  KAFKA_CLEAN=1 tools/scripts/kafka.sh start
  # Durable PostgreSQL, as a production server runs it (the test tier turns fsync off).
  PG_CLEAN=1 PG_DURABLE=1 tools/scripts/postgres.sh start
  dev_args+=(--kafka "127.0.0.1:$KAFKA_PORT" --database-server "postgres://orderflow:orderflow@127.0.0.1:$PG_PORT")
elif [ "$MODE" != dev ]; then
  echo "usage: $0 [dev|system]" >&2
  exit 64
fi

stack_start "${dev_args[@]}"
gateway=$GATEWAY
payment=$PAYMENT
bootstrap=$BOOTSTRAP

# Resident memory of the stack: the dev process (which hosts the embedded
# broker) and the six services, summed; "name kB" per process with `each`.
stack_rss() {
  local total=0 name pid kb
  while read -r name pid; do
    kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "${1:-}" = each ] && echo "$name $((${kb:-0} / 1024))"
    total=$((total + ${kb:-0}))
  done < <(stack_pids)
  [ "${1:-}" = each ] || echo "$total"
}
# Its peak over the whole run, sampled twice a second.
(
  while true; do
    stack_rss >>"$rss_log"
    sleep 0.5
  done
) &
sampler=$!

result() { sed -n "s/^RESULT .*$1=\([0-9.]*\).*/\1/p" | tail -1; }
# The sandbox's weather is an operator's call on the payment service's own API.
operator_token=$("$bin/orderflow" token --operator)
sandbox() {
  curl -sf -X PUT "$payment/v1/sandbox" -H 'content-type: application/json' \
    -H "authorization: Bearer $operator_token" \
    -d "{\"latency_ms\": $1, \"failure_rate\": 0.0}" >/dev/null
}

echo "== warm-up: 500 orders"
stack_warm_up

echo "== (h) idle: the whole stack's CPU over 10 s, after 5 s of quiet"
sleep 5
stack_cpu >"$data/idle-before"
sleep 10
stack_cpu >"$data/idle-after"
# cpu_ms_per over 10 s: ms of CPU per second of quiet; ÷ 10 is % of a core.
idle=$(cpu_ms_per 10 "$data/idle-before" "$data/idle-after" | awk '{ printf "%.1f", $NF / 10 }')

raw_chain() {
  echo "== (a) raw relay chain: $CHAIN messages, 5 hops, on $bootstrap"
  chain_out=$("$bin/orderflow" bench-chain --bootstrap-servers "$bootstrap" --hops 5 --messages "$CHAIN")
  echo "$chain_out" | grep -v '^RESULT'
  chain=$(echo "$chain_out" | result chain_msgs_per_s)
}
# On Kafka the raw chain runs first, as it always did: the broker's JVM
# (its memory is not counted) warms up on it before the saga's figures.
if [ "$MODE" = system ]; then raw_chain; fi

volume() { sleep 2; tools/scripts/saga-volume.py snapshot "$KAFKA_DATA/logs" "$pg_url"; }
echo "== (b) burst: $BURST orders, 128 in flight"
[ "$MODE" = system ] && volume >"$data/before.json"
stack_cpu >"$data/cpu-before"
burst_out=$("$bin/orderflow" load --gateway "$gateway" --orders "$BURST" --concurrency 128)
stack_cpu >"$data/cpu-after"
cpu_per_order=$(cpu_ms_per "$BURST" "$data/cpu-before" "$data/cpu-after")
echo "$burst_out" | grep -v '^RESULT'
burst=$(echo "$burst_out" | result orders_per_s)
# What the burst leaves resident (the target is set after a burst).
rss_burst_kb=$(stack_rss)
echo "RSS after the burst, MB: $(stack_rss each | tr '\n' ' ')"
volume_out=""
if [ "$MODE" = system ]; then
  volume >"$data/after.json"
  volume_out=$(tools/scripts/saga-volume.py per-order "$data/before.json" "$data/after.json" "$BURST")
  echo "$volume_out" | grep -v '^RESULT'
fi

rate=$(awk -v b="$burst" 'BEGIN { printf "%d", b / 2 }')
open_orders=$((rate * 20))
echo "== (c) open loop: $open_orders orders at $rate/s (half the burst rate)"
open_out=$("$bin/orderflow" load --gateway "$gateway" --orders "$open_orders" --rate "$rate" --concurrency 512)
echo "$open_out" | grep -v '^RESULT'
open_p50=$(echo "$open_out" | result p50_ms)
open_p99=$(echo "$open_out" | result p99_ms)

echo "== (d) burst with ${LATENCY_MS} ms sandbox provider latency: $BURST orders"
sandbox "$LATENCY_MS"
slow_out=$("$bin/orderflow" load --gateway "$gateway" --orders "$BURST" --concurrency 128)
sandbox 0
echo "$slow_out" | grep -v '^RESULT'
slow=$(echo "$slow_out" | result orders_per_s)

kill "$sampler" 2>/dev/null || true
sampler=""
peak_kb=$(sort -n "$rss_log" | tail -1)

# On the dev stack the raw chain runs here, after the saga's figures and
# the memory sampler: its 200,000 messages stay in the embedded broker's
# memory (the dev process), which is the yardstick's data, not the stack's;
# it has topics of its own, so the saga's data there does not slow it.
if [ "$MODE" = dev ]; then raw_chain; fi

connect=(--bootstrap-servers "$bootstrap" --registry-url "$REGISTRY")
if [ "$MODE" = system ]; then
  live="postgres://orderflow:orderflow@127.0.0.1:$PG_PORT/order"
else
  live="sqlite://$data/order.db"
fi
echo "== (f) the order read model rebuilt from the log"
rebuild_out=$("$bin/orderflow" rebuild order --into "sqlite://$data/rebuilt/order.db" --live "$live" "${connect[@]}")
echo "$rebuild_out"
per_10k=$(echo "$rebuild_out" | sed -n 's/^rebuilt \([0-9]*\) orders from \([0-9]*\) events in \([0-9.]*\) s.*/\1 \3/p' \
  | awk '{ printf "%.1f", $2 * 10000 / $1 }')

echo "== (g) replaying 2,000 dead letters"
replay_out=$("$bin/orderflow" bench-replay --messages 2000 "${connect[@]}")
echo "$replay_out" | grep -v '^RESULT'
replays=$(echo "$replay_out" | result replays_per_s)

hop_out=""
if [ "$MODE" = dev ]; then
  echo "== (i) CPU per SQLite statement, with and without a thread hop each"
  hop_out=$("$bin/orderflow-sqlite-hop")
  echo "$hop_out" | grep -v '^RESULT'
fi

echo
echo "== summary ($MODE stack; $(nproc) cores)"
printf '%-58s %s\n' "(a) raw relay chain, 5 hops" "$chain msg/s"
printf '%-58s %s\n' "(b) saga burst, $BURST orders" "$burst orders/s"
printf '%-58s %s\n' "(c) open loop at $rate/s, placed→terminal p50 / p99" "$open_p50 ms / $open_p99 ms"
printf '%-58s %s\n' "(d) burst with ${LATENCY_MS} ms provider latency" "$slow orders/s"
printf '%-58s %s\n' "(e) RSS of the whole stack after (b) / peak over the run" "$((rss_burst_kb / 1024)) MB / $((peak_kb / 1024)) MB"
printf '%-58s %s\n' "(f) order read model rebuilt from the log" "$per_10k s per 10,000 orders"
printf '%-58s %s\n' "(g) dead letters replayed" "$replays per second"
printf '%-58s %s\n' "(h) the whole stack idle" "$idle % of one core"
if [ -n "$hop_out" ]; then
  printf '%-58s %s\n' "(i) CPU per SQLite statement: sqlx / rusqlite, µs" \
    "$(echo "$hop_out" | result sqlx_any_us) / $(echo "$hop_out" | result rusqlite_thread_us) (a hop per transaction) / $(echo "$hop_out" | result rusqlite_here_us) (none)"
fi
printf '%-58s %s\n' "CPU per order of (b), ms" "$cpu_per_order"
if [ -n "$volume_out" ]; then
  printf '%-58s %s\n' "per order: Kafka records, bytes in / out" \
    "$(echo "$volume_out" | result records_per_order), $(echo "$volume_out" | result bytes_in_per_order) B / $(echo "$volume_out" | result bytes_out_per_order) B"
  printf '%-58s %s\n' "per order: PostgreSQL commits, WAL syncs" \
    "$(echo "$volume_out" | result commits_per_order), $(echo "$volume_out" | result wal_syncs_per_order)"
fi
printf '%-58s %s\n' "saga / raw chain" "$(awk -v s="$burst" -v c="$chain" 'BEGIN { printf "%.4f", s / c }')"
