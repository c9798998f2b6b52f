#!/usr/bin/env bash
# The whole test suite from a clean clone: the README's test command, and the last step of
# .ci/run. Arguments go to `cargo test` (e.g. scripts/test.sh own_services: only those tests).
#
# On the way, each step only when it is not already done (safe to run again):
#  1. scripts/docker-setup.sh: a Docker engine (the fault tests start Redis in containers) and
#     the local Redis and PostgreSQL images. Installing or starting the engine needs root; on a
#     machine whose Docker already answers nothing does.
#  2. PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379, which the tests use, when nothing
#     answers there: containers (host networking, left running for the next run), or, without
#     Docker, the machine's installed services (scripts/ensure-services.sh).
#  3. cargo test --workspace --locked "$@"; its summary lines are the last output (skipped when
#     FLASHSALE_SETUP_ONLY is set: .ci/run sets up first, fuzzes, then runs this again).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "test.sh: $*" >&2; }
answers() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
has_image() { docker image inspect "$1" >/dev/null 2>&1; }
# The harness's rule (harness/src/target/dependencies.rs): the setting, else the official image
# when Docker has it, else the locally built one, else the official one (pulled).
image_for() {
  local setting=$1 local_image=$2 official=$3
  if [ -n "${!setting:-}" ]; then echo "${!setting}"
  elif has_image "$official"; then echo "$official"
  elif has_image "$local_image"; then echo "$local_image"
  else echo "$official"
  fi
}

# Runs container $1 (or starts it again if it exists, stopped) from image $2 with command $3…,
# then waits for port $port to answer.
container_on() {
  local name=$1 image=$2; shift 2
  if docker container inspect "$name" >/dev/null 2>&1; then
    log "starting the existing container $name"
    docker start "$name" >/dev/null
  else
    log "starting $name ($image) on 127.0.0.1:$port"
    docker run -d --name "$name" --network host -e POSTGRES_HOST_AUTH_METHOD=trust \
      "$image" "$@" >/dev/null
  fi
  for _ in $(seq 1 120); do answers "$port" && return 0; sleep 0.5; done
  log "$name did not answer on 127.0.0.1:$port within 60s; see: docker logs $name"
  exit 1
}

log "step 1/3: Docker engine and local images (scripts/docker-setup.sh)"
scripts/docker-setup.sh

log "step 2/3: PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379"
if answers 5432 && answers 6379; then
  log "both answer: using them"
elif docker info >/dev/null 2>&1; then
  if ! answers 5432; then
    port=5432 container_on flashsale-test-postgres \
      "$(image_for FLASHSALE_POSTGRES_IMAGE flashsale-postgres-local:latest postgres:16)" \
      postgres -p 5432 -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
      -c full_page_writes=off -c jit=off -c max_connections=200
  fi
  if ! answers 6379; then
    port=6379 container_on flashsale-test-redis \
      "$(image_for FLASHSALE_REDIS_IMAGE flashsale-redis-local:7 redis:7)" \
      redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no
  fi
  log "up; the containers stay for the next run (remove them with:" \
      "docker rm -f flashsale-test-postgres flashsale-test-redis)"
else
  scripts/ensure-services.sh
fi

# .ci/run sets this to get the services up for the API fuzzer before the test suite.
if [ -n "${FLASHSALE_SETUP_ONLY:-}" ]; then
  log "set-up done (FLASHSALE_SETUP_ONLY): not running the tests"
  exit 0
fi

log "step 3/3: cargo test --workspace --locked $*"
exec cargo test --workspace --locked "$@"
