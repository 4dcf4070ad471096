# orderflow — the two commands a newcomer needs are `make dev` and `make test`.

CARGO ?= cargo
DEV_ARGS ?=

.PHONY: dev test build lint fmt bench deps clean

deps:
	@tools/scripts/ensure-build-deps.sh

build: deps
	$(CARGO) build --bins

## Everything on this machine: embedded broker, schema registry, six services.
dev: build
	$(CARGO) run -q --bin orderflow -- dev $(DEV_ARGS)

## Unit and component tests (the whole saga on the embedded broker).
test: deps
	$(CARGO) test --workspace --no-fail-fast

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Throughput and latency of the saga on the dev stack (release build).
bench: deps
	tools/scripts/bench.sh

clean:
	$(CARGO) clean
	rm -rf .data
