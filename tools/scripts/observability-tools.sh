#!/usr/bin/env bash
# Builds Jaeger v2 (all-in-one, tools/jaeger) or Mailpit (tools/mailpit) from
# the Go module proxy, once, into ${ORDERFLOW_CACHE:-~/.cache/orderflow}/tools/,
# and prints the binary's path:
#
#   tools/scripts/observability-tools.sh jaeger     Jaeger v1.75.0 (~3 min cold)
#   tools/scripts/observability-tools.sh mailpit    Mailpit v1.33.1 (~2 min cold)
#
# The versions are the tools modules' (go.mod); warm: nothing to do. The Go
# module builds have no web UI assets (Jaeger's UI and Mailpit's are built by
# npm in their release pipelines): Jaeger serves its query API and a
# placeholder page; Mailpit serves its API. README, "Traces" and "Email".
set -euo pipefail
cd "$(dirname "$0")/../.."

tool=${1:?usage: observability-tools.sh jaeger|mailpit}
case "$tool" in
  jaeger)
    module=github.com/jaegertracing/jaeger
    package=$module/cmd/jaeger
    stamp="-X $module/internal/version.latestVersion=%s"
    ;;
  mailpit)
    module=github.com/axllent/mailpit
    package=$module
    stamp="-X $module/config.Version=%s"
    ;;
  *) echo "observability-tools: unknown tool '$tool' (jaeger or mailpit)" >&2; exit 64 ;;
esac
version=$(awk -v m="$module" '$1 == m { print $2 }' "tools/$tool/go.mod")
[ -n "$version" ] || { echo "observability-tools: tools/$tool/go.mod does not require $module" >&2; exit 1; }
CACHE="${ORDERFLOW_CACHE:-$HOME/.cache/orderflow}"
. tools/scripts/lib/tool-cache.sh
out="$CACHE/tools/$tool-$version/$tool"
tool_lock "$tool"
if [ -x "$out" ]; then
  echo "$out"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "observability-tools: building $tool needs Go (https://go.dev/dl); 'go' is not on PATH" >&2
  exit 1
fi
started=$SECONDS
echo "observability-tools: building $tool $version into $(dirname "$out") (once)" >&2
mkdir -p "$CACHE/tools"
# What a build killed outright left (the lock says no other build runs).
rm -rf "$CACHE/tools/.$tool-build."*
tmp=$(mktemp -d "$CACHE/tools/.$tool-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2059 # the stamp is a format with the version as its one argument
(cd "tools/$tool" && GOCACHE="$(go_build_cache "$tmp/gocache")" CGO_ENABLED=0 GOFLAGS=-mod=mod \
  nice go build -trimpath -ldflags "-s -w $(printf -- "$stamp" "$version")" -o "$tmp/$tool" "$package") >&2
mkdir -p "$(dirname "$out")"
mv "$tmp/$tool" "$out"
echo "observability-tools: $tool built in $((SECONDS - started)) s" >&2
echo "$out"
