#!/usr/bin/env bash
# `make images`: the seven images (gateway, five services, the operator CLI)
# with no Docker daemon and no image registry — Debian's podman, a Debian
# bookworm base made by mmdebstrap from Debian's packages, and the release
# binaries added by docker/Dockerfile's runtime stage (the same definition
# `docker build` uses; here with BINARIES=prebuilt and BASE=the mmdebstrap base).
#
#   REGISTRY   image name prefix (default: orderflow, as the chart's image.registry)
#   TAG        image tag (default: the workspace version, as the chart's appVersion)
#   BASE_REBUILD=1   make the base again (it is kept in podman's storage)
#
# The base holds ca-certificates, libssl3 and zlib1g with what they depend on
# (libc6, gcc-12-base, openssl, debconf), without documentation or iconv
# modules; the binaries are stripped. Cold: the release build (~11 min, link-time
# optimisation) and the base (~10 s);
# warm: about a minute. Prints each image's size.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/scripts/podman.sh

REGISTRY="${REGISTRY:-orderflow}"
REGISTRY="${REGISTRY%/}"
TAG="${TAG:-$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)}"
BINS="orderflow-gateway orderflow-order orderflow-inventory orderflow-payment orderflow-shipping orderflow-notification orderflow"
DEBIAN_RELEASE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
BASE_IMAGE="localhost/orderflow-base:$DEBIAN_RELEASE"
target="${CARGO_TARGET_DIR:-target}"
started=$SECONDS

podman_install
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- The base ------------------------------------------------------------------
if [ "${BASE_REBUILD:-0}" = 1 ] || ! pm image exists "$BASE_IMAGE"; then
  echo "== base: mmdebstrap $DEBIAN_RELEASE (ca-certificates, libssl3, zlib1g)"
  # `extract` unpacks the packages and what they depend on without running
  # their maintainer scripts (there is no shell in the image to run them) and
  # without running mmdebstrap's hooks, so what ca-certificates' script would
  # do is done here: the CA bundle. Then the nonroot user the images run as,
  # and nothing that no binary here uses: documentation, debconf's Perl
  # modules (there is no Perl), glibc's iconv modules (8 MB).
  root="$work/root"
  mmdebstrap --quiet --mode=root --variant=extract --format=directory \
    --include=ca-certificates,libssl3,zlib1g "$DEBIAN_RELEASE" "$root" \
    "deb $MIRROR $DEBIAN_RELEASE main" "deb $MIRROR $DEBIAN_RELEASE-updates main" \
    "deb $SECURITY_MIRROR $DEBIAN_RELEASE-security main"
  cat "$root"/usr/share/ca-certificates/mozilla/*.crt >"$root/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale "$root"/usr/share/info \
    "$root"/usr/share/lintian "$root"/usr/share/perl5 "$root"/usr/lib/x86_64-linux-gnu/gconv \
    "$root"/var/cache/* "$root"/var/lib/apt
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
  mkdir -p "$root/tmp" "$root/home/nonroot"
  chmod 1777 "$root/tmp"
  chown 65532:65532 "$root/home/nonroot"
  tar -C "$root" --numeric-owner --sort=name --mtime=@0 -cf "$work/base.tar" .
  rm -rf "$root"
  pm import --quiet "$work/base.tar" "$BASE_IMAGE" >/dev/null
  rm -f "$work/base.tar"
fi

# --- The binaries ----------------------------------------------------------------
echo "== release build"
cargo build --release --bins
mkdir -p "$work/context/bin"
for bin in $BINS; do
  objcopy --strip-all "$target/release/$bin" "$work/context/bin/$bin"
done

# --- The images --------------------------------------------------------------------
sizes=()
for bin in $BINS; do
  image="$REGISTRY/$bin:$TAG"
  pm build --quiet -f docker/Dockerfile \
    --build-arg BINARIES=prebuilt --build-arg BASE="$BASE_IMAGE" \
    --build-arg BIN="$bin" --build-arg VERSION="$TAG" \
    -t "$image" "$work/context" >/dev/null
  sizes+=("$(printf '%-40s %s' "$image" "$(pm image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.1f MB", $1 / 1e6 }')")")
done
pm image prune --force >/dev/null
echo "== images (uncompressed; the base $(pm image inspect --format '{{.Size}}' "$BASE_IMAGE" | awk '{ printf "%.1f MB", $1 / 1e6 }') is shared)"
printf '  %s\n' "${sizes[@]}"
echo "images took $((SECONDS - started)) s"
