#!/usr/bin/env bash
# Installs what building and testing orderflow needs beyond Rust and Go:
# librdkafka is compiled from source (cmake, a C/C++ compiler) and links
# OpenSSL and zlib; the tests parse OpenMetrics with Python's
# prometheus_client, make a certificate with openssl and drive the console
# in a headless Chromium through chromedriver. Does nothing when
# everything is there; installs from Debian's packages otherwise.
set -euo pipefail

missing=()
command -v cargo >/dev/null || { echo "cargo is missing: install Rust (https://rustup.rs) first" >&2; exit 1; }
command -v cmake >/dev/null || missing+=(cmake)
command -v c++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
command -v pkg-config >/dev/null || missing+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
pkg-config --exists zlib 2>/dev/null || missing+=(zlib1g-dev)
# The tests: the OpenMetrics parser the metrics test reads /metrics with, and
# openssl's CLI for the SMTP test's certificate.
/usr/bin/python3 -c 'import prometheus_client.openmetrics.parser' 2>/dev/null || missing+=(python3-prometheus-client)
command -v openssl >/dev/null || missing+=(openssl)
# The console tests: Debian's Chromium and its WebDriver server.
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing build dependencies: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
