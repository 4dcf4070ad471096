#!/usr/bin/env bash
# Throughput and placed→terminal latency of the saga on the dev stack (release
# build, embedded broker, SQLite): a burst of ORDERS, then an open-loop run at
# RATE orders/s. Prints the figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
ORDERS=${ORDERS:-1000}
RATE=${RATE:-100}
PORT=${PORT:-18080}
target=${CARGO_TARGET_DIR:-target}

cargo build --release --bins
log=$(mktemp)
"$target/release/orderflow" dev --port "$PORT" --data-dir "$(mktemp -d)" >"$log" 2>&1 &
dev=$!
trap 'kill -TERM $dev 2>/dev/null; wait $dev 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 300); do
  grep -q "orderflow is running" "$log" && break
  kill -0 $dev 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
grep -q "orderflow is running" "$log" || { echo "dev stack did not start"; tail -50 "$log"; exit 1; }
gateway="http://127.0.0.1:$PORT"

echo "== burst: $ORDERS orders, 64 in flight"
"$target/release/orderflow" load --gateway "$gateway" --orders "$ORDERS" --concurrency 64
echo "== open loop: $ORDERS orders at $RATE/s"
"$target/release/orderflow" load --gateway "$gateway" --orders "$ORDERS" --rate "$RATE" --concurrency 256
