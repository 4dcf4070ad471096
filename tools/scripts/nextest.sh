#!/usr/bin/env bash
# cargo-nextest, installed once into ${ORDERFLOW_CACHE:-~/.cache/orderflow}/tools
# (from the crate registry, ~4 minutes cold), then run with the arguments
# given: `tools/scripts/nextest.sh run --workspace` is `cargo nextest run
# --workspace`. `--install` only installs it (make test does that in the
# background while its first builds run).
#
# Why nextest: the component tests start whole platforms and mostly wait on
# them (a quarter of a core each), and `cargo test` runs one test binary
# after another. nextest runs every test as its own process, tests of all
# binaries side by side (.config/nextest.toml says how many), which keeps the
# two cores busy; each test's process also keeps its own globals.
set -euo pipefail
cd "$(dirname "$0")/../.."

version=0.9.151
CACHE="${ORDERFLOW_CACHE:-$HOME/.cache/orderflow}"
. tools/scripts/lib/tool-cache.sh
cargo_tool_install cargo-nextest "$version"
[ "${1:-}" != --install ] || exit 0
exec "$CACHE/tools/bin/cargo-nextest" nextest "$@"
