# orderflow — the two commands a newcomer needs are `make dev` and `make test`.

CARGO ?= cargo
# Runs the tests of every binary side by side (.config/nextest.toml).
NEXTEST ?= tools/scripts/nextest.sh
DEV_ARGS ?=

.PHONY: dev companions test test-unit test-observability test-chart test-cluster test-containers test-cpu test-system images chaos build lint fmt bench bench-system profile mutants deps clean

deps:
	@tools/scripts/ensure-build-deps.sh

build: deps
	$(CARGO) build --bins

## Everything on this machine: embedded broker, schema registry, six services.
## JAEGER=1 adds Jaeger (traces), MAIL=1 Mailpit (notifications by email).
DEV_FLAGS = $(if $(filter 1,$(JAEGER)),--jaeger) $(if $(filter 1,$(MAIL)),--mail) $(DEV_ARGS)
dev: build
	$(CARGO) run -q --bin orderflow -- dev $(DEV_FLAGS)

## Every tier: unit and component tests on the embedded broker, the chart
## offline, the containers, the CPU budget, the system tier on real Kafka and
## PostgreSQL, then the chart in a real Kubernetes (all started and stopped
## here). The Go-built tools build in the background meanwhile; a table of
## seconds per tier ends the run (tools/scripts/test-all.sh).
test: deps
	+tools/scripts/test-all.sh

## Unit and component tests (the whole saga on the embedded broker and SQLite),
## with a real Jaeger and Mailpit (built once from their Go modules), run by
## cargo-nextest; the parsers' property tests again in release mode.
test-unit: deps
	$(CARGO) build --bins
	$(CARGO) test --workspace --no-run
	$(MAKE) --no-print-directory companions
	$(NEXTEST) run --workspace
	# The parsers' property tests optimised as shipped, too (no librdkafka here).
	$(CARGO) test --release --lib -p orderflow-api -p orderflow-envelope

## Jaeger and Mailpit, built once into ~/.cache/orderflow/tools.
companions:
	tools/scripts/observability-tools.sh jaeger >/dev/null
	tools/scripts/observability-tools.sh mailpit >/dev/null

## Alert rules (promtool unit tests) and the Grafana dashboard.
test-observability:
	tools/scripts/observability-tests.sh

## The Helm chart: lint, render every profile, validate against the Kubernetes
## schemas, kube-score, and the values schema's replica cap.
test-chart:
	tools/scripts/chart-tests.sh

## The chart in a real Kubernetes built once from its Go modules: the API
## server alone (hooks, Pod Security both ways, kubectl scale across upgrades,
## uninstall), then with a node (containerd, kubelet, kube-proxy, CoreDNS) that
## runs the Pods: helm install, orders through the gateway, traces, uninstall.
test-cluster:
	tools/scripts/cluster-tests.sh

## The seven container images without Docker: podman, a Debian base made by
## mmdebstrap, the release binaries (docker/Dockerfile's runtime stage).
images: deps
	tools/scripts/images.sh

## Every service from its image in podman (non-root, read-only, no
## capabilities) on the embedded broker: /readyz and the four outcomes.
test-containers: deps
	tools/scripts/container-tests.sh

## The saga's CPU per order on the dev stack (release build, which the
## container tier made), against a yardstick measured in the same run and
## the budget in tools/cpu-budget.conf: counted CPU, not time.
test-cpu: deps
	tools/scripts/cpu-budget.sh

## Real Apache Kafka and PostgreSQL, services as separate processes.
test-system: deps
	tools/scripts/system-tests.sh

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p orderflow-testkit --features system,containers,cluster --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## The long chaos soak on real Kafka and PostgreSQL: ORDERS (20000) at
## RATE (100) per second under kill -9, a broker restart, a stopped consumer,
## a provider outage, duplicates and poison; every invariant checked.
chaos: deps
	tools/scripts/system-tests.sh chaos

## Mutation testing of the code where decisions live (cargo-mutants; the
## scope is .cargo/mutants.toml): every mutant must make a unit test fail.
mutants: deps
	tools/scripts/mutants.sh

## Throughput, latency and memory of the saga on the dev stack (release
## build, embedded broker, SQLite), with a raw relay chain as the yardstick.
bench: deps
	tools/scripts/bench.sh dev

## The same on real Kafka and PostgreSQL (started and stopped by the script).
bench-system: deps
	tools/scripts/bench.sh system

## Where the CPU goes: perf of every process of the dev stack during a burst
## (release build with frame pointers), a flame graph per service and each
## one's top functions, under $CARGO_TARGET_DIR/profile (or target/profile).
profile: deps
	tools/scripts/profile.sh

clean:
	$(CARGO) clean
	rm -rf .data
