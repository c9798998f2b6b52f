#!/usr/bin/env bash
# Installs and starts a Docker engine where one is missing, and builds the local Redis image the
# fault scenarios start through testcontainers. Idempotent: safe to run twice.
#
# The engine runs with host networking only (--bridge=none, no iptables): containers share the
# host's loopback, and no traffic goes to a private-range bridge address. The image is built
# from this machine's own redis-server (no registry is reachable here): a root filesystem holding
# the binary and the libraries ldd lists for it, imported with `docker import`.
set -euo pipefail

IMAGE="${FLASHSALE_LOCAL_REDIS_IMAGE:-flashsale-redis-local:7}"
log() { echo "docker-setup: $*"; }

if ! command -v dockerd >/dev/null 2>&1; then
  log "installing docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq docker.io >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (vfs storage, host networking only)"
  mkdir -p /var/log
  nohup dockerd --storage-driver vfs --bridge=none --iptables=false --ip6tables=false \
    >/var/log/flashsale-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
fi
docker info >/dev/null 2>&1 || { log "dockerd did not come up; see /var/log/flashsale-dockerd.log" >&2; exit 1; }

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  server=$(command -v redis-server) || { log "redis-server is not installed" >&2; exit 1; }
  log "building $IMAGE from $server"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/usr/bin" "$root/tmp" "$root/data"
  cp "$(readlink -f "$server")" "$root/usr/bin/redis-server"
  # Every library the binary links, plus the dynamic loader, at the same paths.
  for lib in $(ldd "$server" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  tar -C "$root" -cf "$root.tar" .
  # Same shape as the official image: `redis-server` on the PATH, the command given as arguments.
  docker import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' --change 'CMD ["redis-server"]' \
    --change 'WORKDIR /data' \
    "$root.tar" "$IMAGE" >/dev/null
  rm -f "$root.tar"
fi
log "engine up, image $IMAGE ready"
