#!/usr/bin/env bash
# Installs and starts a Docker engine where one is missing, and builds the local Redis and
# PostgreSQL images the harness starts through testcontainers (the fault scenarios' Redis; both
# services when none is running). Idempotent: safe to run twice; a step already done is skipped.
#
# Root is needed only to install (apt-get install docker.io) and start (dockerd) the engine; on a
# machine whose Docker already answers, nothing here needs it.
#
# The engine runs with host networking only (--bridge=none, no iptables): containers share the
# host's loopback, and no traffic goes to a private-range bridge address. The images are built
# from this machine's own redis-server and PostgreSQL (no registry is reachable here): a root
# filesystem holding the binaries and the libraries ldd lists for them, imported with
# `docker import`. Where a binary is not installed its image is not built, and the harness pulls
# the official one instead (redis:7, postgres:16), which needs a reachable registry.
set -euo pipefail

IMAGE="${FLASHSALE_LOCAL_REDIS_IMAGE:-flashsale-redis-local:7}"
PG_IMAGE="${FLASHSALE_LOCAL_POSTGRES_IMAGE:-flashsale-postgres-local:latest}"
log() { echo "docker-setup: $*"; }
needs_root() {
  if [ "$(id -u)" != 0 ]; then
    log "$1 needs root: run  sudo scripts/docker-setup.sh  (or start Docker yourself)" >&2
    exit 1
  fi
}

if ! command -v dockerd >/dev/null 2>&1 && ! docker info >/dev/null 2>&1; then
  needs_root "installing the docker.io package"
  log "installing docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq docker.io >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  needs_root "starting dockerd"
  log "starting dockerd (vfs storage, host networking only)"
  mkdir -p /var/log
  nohup dockerd --storage-driver vfs --bridge=none --iptables=false --ip6tables=false \
    >/var/log/flashsale-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
fi
docker info >/dev/null 2>&1 || { log "dockerd did not come up; see /var/log/flashsale-dockerd.log" >&2; exit 1; }

# Copies into the image root $1 every library the ELF files $2… link, plus the dynamic loader,
# at the same paths.
copy_libraries() {
  local root=$1 file lib; shift
  for lib in $(for file in "$@"; do ldd "$file" 2>/dev/null | grep -o '/[^ ]*'; done | sort -u); do
    [ -e "$root$lib" ] && continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

root=$(mktemp -d)
trap 'rm -rf "$root" "$root.tar"' EXIT
# mktemp's 0700 would become the image's / and lock out the postgres user.
chmod 755 "$root"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "image $IMAGE already built"
elif ! server=$(command -v redis-server); then
  log "redis-server is not installed: not building $IMAGE (the harness will pull redis:7)"
else
  log "building $IMAGE from $server"
  mkdir -p "$root/usr/bin" "$root/tmp" "$root/data"
  chmod 1777 "$root/tmp"
  cp "$(readlink -f "$server")" "$root/usr/bin/redis-server"
  copy_libraries "$root" "$server"
  tar -C "$root" -cf "$root.tar" .
  # Same shape as the official image: `redis-server` on the PATH, the command given as arguments.
  docker import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' --change 'CMD ["redis-server"]' \
    --change 'WORKDIR /data' \
    "$root.tar" "$IMAGE" >/dev/null
  rm -rf "$root.tar" "$root" && mkdir -m 755 -p "$root"
fi

# PostgreSQL: the newest major version installed the Debian way (/usr/lib/postgresql/<major>).
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if docker image inspect "$PG_IMAGE" >/dev/null 2>&1; then
  log "image $PG_IMAGE already built"
elif [ -z "$pg_bin" ] || [ ! -x "$pg_bin/postgres" ]; then
  log "PostgreSQL is not installed: not building $PG_IMAGE (the harness will pull postgres:16)"
else
  pg_home=$(dirname "$pg_bin")
  major=$(basename "$pg_home")
  log "building $PG_IMAGE from $pg_home (PostgreSQL $major)"
  mkdir -p "$root$pg_bin" "$root/usr/share/postgresql" "$root/usr/share" "$root/etc" \
    "$root/tmp" "$root/var/run/postgresql" "$root/var/lib/postgresql" "$root/bin" \
    "$root/usr/local/bin"
  chmod 1777 "$root/tmp"
  # initdb needs postgres beside it, and runs it through /bin/sh.
  for tool in postgres initdb pg_ctl; do cp "$pg_bin/$tool" "$root$pg_bin/"; done
  cp "$(readlink -f /bin/sh)" "$root/bin/sh"
  # The server's modules (plpgsql, the text-search dictionaries initdb loads…), without the
  # LLVM JIT: it would pull in LLVM, and the command the harness gives turns JIT off.
  mkdir -p "$root$pg_home/lib"
  find "$pg_home/lib" -maxdepth 1 -name '*.so' ! -name 'llvmjit*' -exec cp {} "$root$pg_home/lib/" \;
  cp -r "/usr/share/postgresql/$major" "$root/usr/share/postgresql/"
  # Debian builds PostgreSQL --with-system-tzdata.
  cp -r /usr/share/zoneinfo "$root/usr/share/"
  copy_libraries "$root" "$root$pg_bin"/* "$root$pg_home"/lib/*.so /bin/sh
  # initdb refuses to run as root: the image runs as this user, as the official one does.
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'postgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh' >>"$root/etc/passwd"
  printf 'root:x:0:\npostgres:x:999:\n' >"$root/etc/group"
  chown 999:999 "$root/var/run/postgresql" "$root/var/lib/postgresql"
  # The official image's interface, as far as the harness uses it: a cluster with trust
  # authentication for user postgres is created on first start, then the command runs
  # (`postgres -p PORT -c …`).
  cat >"$root/usr/local/bin/docker-entrypoint.sh" <<'ENTRY'
#!/bin/sh
set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb --username=postgres --auth=trust --encoding=UTF8 --locale=C --no-sync -D "$PGDATA" >/dev/null
  echo "docker-entrypoint: cluster initialised in $PGDATA"
fi
exec "$@"
ENTRY
  chmod 755 "$root/usr/local/bin/docker-entrypoint.sh"
  tar -C "$root" -cf "$root.tar" .
  docker import --change "ENV PATH=/usr/local/bin:$pg_bin:/usr/bin:/bin" \
    --change 'ENV PGDATA=/var/lib/postgresql/data' --change 'USER postgres' \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' --change 'CMD ["postgres"]' \
    --change "LABEL org.flashsale.postgres-major=$major" \
    "$root.tar" "$PG_IMAGE" >/dev/null
fi
log "engine up, images ready: $(docker image ls --format '{{.Repository}}:{{.Tag}}' | grep -E '^flashsale-(redis|postgres)-local:' | tr '\n' ' ')"
