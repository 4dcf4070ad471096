#!/usr/bin/env bash
# The tiers that need real servers: starts Apache Kafka (KRaft, from Maven
# Central) and PostgreSQL on loopback, runs the component suite again on
# PostgreSQL and then the system tests (services as separate processes), and
# stops both servers whatever happened.
#
#   tools/scripts/system-tests.sh          the component and system tiers (make test)
#   tools/scripts/system-tests.sh chaos    the long chaos soak alone (make chaos):
#                                          ORDERS (20000) at RATE (100) per second
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts=tools/scripts
export KAFKA_PORT=${KAFKA_PORT:-19092}
export PG_PORT=${PG_PORT:-15432}

cleanup() {
  "$scripts/kafka.sh" stop || true
  "$scripts/postgres.sh" stop || true
}
trap cleanup EXIT

# A real Prometheus scrapes the services in the system tests.
if ! command -v prometheus >/dev/null; then
  echo "installing Prometheus"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus
fi

started=$(date +%s)
KAFKA_CLEAN=1 "$scripts/kafka.sh" start
PG_CLEAN=1 "$scripts/postgres.sh" start

export ORDERFLOW_SYSTEM_KAFKA="127.0.0.1:$KAFKA_PORT"
export ORDERFLOW_TEST_DATABASE="postgres://orderflow:orderflow@127.0.0.1:$PG_PORT"

if [ "${1:-}" = "chaos" ]; then
  # The long soak runs the release build, as shipped: unoptimized services fall
  # behind 100 orders/s on two cores and the soak would measure that instead.
  cargo build --release --bins
  echo "== chaos soak: ${ORDERS:-20000} orders at ${RATE:-100}/s"
  CHAOS_ORDERS=${ORDERS:-20000} CHAOS_RATE=${RATE:-100} \
    cargo test --release -p orderflow-testkit --features system --test system -- \
    under_faults_nothing_is_lost_or_done_twice --exact --nocapture
  echo "chaos soak took $(( $(date +%s) - started ))s"
  exit 0
fi
cargo build --bins
echo "== component tests and the saga simulation (two replicas per service) on PostgreSQL"
tools/scripts/nextest.sh run --profile postgres -p orderflow-testkit -p orderflow-simulation
echo "== system tests on Kafka and PostgreSQL"
cargo test -p orderflow-testkit --features system --test system -- --test-threads=1 --nocapture
echo "system tier took $(( $(date +%s) - started ))s"
