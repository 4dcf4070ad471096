#!/usr/bin/env bash
# Builds one image per orderflow binary from docker/Dockerfile:
#   $REGISTRY/orderflow-gateway:$TAG, …/orderflow-order, …/orderflow-inventory,
#   …/orderflow-payment, …/orderflow-shipping, …/orderflow-notification and
#   $REGISTRY/orderflow:$TAG (the operator CLI, used by the chart's hook Jobs).
#
#   REGISTRY   image name prefix            (default: orderflow)
#   TAG        image tag                    (default: the workspace version in Cargo.toml)
#   PUSH=1     push every image after building it
#   BINS       a space-separated subset     (default: all seven)
#   PLATFORM   e.g. linux/amd64             (default: the builder's own)
#   DOCKER     the client to use            (default: docker; podman works too)
#
# Example: REGISTRY=ghcr.io/acme TAG=0.1.0 PUSH=1 docker/build-images.sh
# The chart's image.registry and image.tag must name the same REGISTRY and TAG.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER="${DOCKER:-docker}"
REGISTRY="${REGISTRY:-orderflow}"
REGISTRY="${REGISTRY%/}"
TAG="${TAG:-$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)}"
BINS="${BINS:-orderflow-gateway orderflow-order orderflow-inventory orderflow-payment orderflow-shipping orderflow-notification orderflow}"

if ! command -v "$DOCKER" >/dev/null 2>&1; then
  echo "error: '$DOCKER' is not installed. Building the images needs a container engine with BuildKit" >&2
  echo "       (Docker 23+, or DOCKER=podman). Install one, or build on a machine that has it." >&2
  exit 1
fi
if ! "$DOCKER" info >/dev/null 2>&1; then
  echo "error: '$DOCKER' is installed but cannot reach its engine ('$DOCKER info' fails)." >&2
  echo "       Start the daemon (or Docker Desktop), or point DOCKER_HOST at one." >&2
  exit 1
fi
if [ -z "$TAG" ]; then
  echo "error: no TAG given and no version found in Cargo.toml" >&2
  exit 1
fi

platform_args=()
[ -n "${PLATFORM:-}" ] && platform_args=(--platform "$PLATFORM")

export DOCKER_BUILDKIT=1
built=()
for bin in $BINS; do
  image="$REGISTRY/$bin:$TAG"
  echo "==> building $image"
  start=$SECONDS
  "$DOCKER" build "${platform_args[@]}" \
    -f docker/Dockerfile \
    --build-arg BIN="$bin" \
    --build-arg VERSION="$TAG" \
    -t "$image" .
  echo "    built $image in $((SECONDS - start))s"
  if [ "${PUSH:-0}" = 1 ]; then
    echo "==> pushing $image"
    "$DOCKER" push "$image"
  fi
  built+=("$image")
done

echo
echo "images:"
printf '  %s\n' "${built[@]}"
echo "install with: helm upgrade --install orderflow helm/orderflow --set image.registry=$REGISTRY --set image.tag=$TAG"
