#!/usr/bin/env bash
# A simulated federation in containers, from images built on this machine.
#
#   deploy/compose.sh build            the base image (debootstrap, once) and glassbox:latest
#   deploy/compose.sh up [N]           build, then the coordinator and N clients (default 8)
#                                      with docker-compose; waits for the rounds, checks every
#                                      publication with openssl, prints the figures
#   deploy/compose.sh stack [N]        the same on a Docker swarm (docker stack deploy with
#                                      deploy/docker-stack.yml: secrets, overlay network)
#   deploy/compose.sh down             removes the containers, the stack and the volumes
#
# The rest of the settings are the compose file's (ROUNDS, PARTITION, MODEL, LIMIT, ...;
# see deploy/docker-compose.yml). Needs docker and docker-compose (Debian's 1.29, or the
# `docker compose` v2 plugin), root for the base image's debootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."

project=${PROJECT:-glassbox}
file=deploy/docker-compose.yml
if command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose --compatibility -p "$project" -f "$file")
else
  compose=(docker compose --compatibility -p "$project" -f "$file")
fi

log() { echo "compose: $*" >&2; }

build() {
  local t0=$SECONDS
  bash deploy/docker/base-image.sh
  docker build -q -f deploy/Dockerfile -t "${IMAGE:-glassbox:latest}" . >/dev/null
  log "images ready in $((SECONDS - t0)) s"
}

# The coordinator's container (compose or swarm task).
coordinator_id() {
  if [ "${1:-compose}" = stack ]; then
    docker ps -aq --filter "label=com.docker.swarm.service.name=${project}_coordinator" | head -1
  else
    "${compose[@]}" ps -q coordinator
  fi
}

# Copies the publications out of the coordinator and checks each with openssl,
# as the README shows.
verify() {
  local id=$1 dir
  dir=$(mktemp -d)
  docker cp "$id:/var/lib/glassbox/out/." "$dir/" >/dev/null
  docker cp "$id:/var/lib/glassbox/ca/ca.crt" "$dir/ca.crt" >/dev/null
  openssl verify -CAfile "$dir/ca.crt" -purpose sslserver -verify_hostname coordinator \
    "$dir/coordinator.crt" >/dev/null
  openssl x509 -in "$dir/coordinator.crt" -pubkey -noout >"$dir/coordinator.pub.pem"
  local n=0 pub
  for pub in "$dir"/round-*.pub; do
    openssl dgst -sha256 -verify "$dir/coordinator.pub.pem" -signature "${pub%.pub}.sig" \
      "$pub" >/dev/null
    n=$((n + 1))
  done
  [ "$n" -ge "${ROUNDS:-3}" ] || { log "only $n publications in $dir"; return 1; }
  log "$n publications verified with openssl (files in $dir)"
}

# Waits for the coordinator's container to exit; returns its exit code.
wait_coordinator() {
  local mode=$1 id t0=$SECONDS
  while :; do
    id=$(coordinator_id "$mode")
    if [ -n "$id" ] && [ "$(docker inspect -f '{{.State.Status}}' "$id")" = exited ]; then
      break
    fi
    [ $((SECONDS - t0)) -lt "${TIMEOUT:-1800}" ] || { log "timed out"; return 1; }
    sleep 2
  done
  docker inspect -f '{{.State.ExitCode}}' "$id"
}

figures() {
  local id=$1
  docker logs "$id" 2>/dev/null | grep '^{' | tail -n "${ROUNDS:-3}" >&2 || true
  docker stats --no-stream --format '{{.Name}} {{.MemUsage}}' 2>/dev/null |
    grep -E "${project}[_-]client" | head -3 >&2 || true
}

# Waits for the coordinator of mode (compose or stack) started at $2, says
# how it ended with $3, and checks its publications when it exited 0.
finish() {
  local mode=$1 t0=$2 what=$3 rc id
  rc=$(wait_coordinator "$mode")
  id=$(coordinator_id "$mode")
  figures "$id"
  log "coordinator exited $rc after $((SECONDS - t0)) s with $what"
  [ "$rc" = 0 ] || return 1
  verify "$id"
}

up() {
  export CLIENTS=${1:-${CLIENTS:-8}}
  build
  "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  local t0=$SECONDS
  "${compose[@]}" up -d --scale client="$CLIENTS"
  finish compose "$t0" "$CLIENTS clients"
}

stack() {
  export CLIENTS=${1:-${CLIENTS:-8}}
  build
  if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
    docker swarm init --advertise-addr "${SWARM_ADDR:-127.0.0.1}" >/dev/null
  fi
  # The CA and the token first (the init job, run once here), then the
  # secrets the clients read them from.
  local image=${IMAGE:-glassbox:latest}
  local vols=(-v "${project}_ca:/var/lib/glassbox/ca" -v "${project}_enroll:/var/lib/glassbox/enroll")
  docker run --rm "${vols[@]}" "$image" init >/dev/null
  docker secret rm glassbox_enroll_token glassbox_ca_crt >/dev/null 2>&1 || true
  docker run --rm "${vols[@]}" "$image" cat /var/lib/glassbox/enroll/enroll.token |
    docker secret create glassbox_enroll_token - >/dev/null
  docker run --rm "${vols[@]}" "$image" cat /var/lib/glassbox/enroll/ca.crt |
    docker secret create glassbox_ca_crt - >/dev/null
  local t0=$SECONDS
  docker stack deploy -c "$file" -c deploy/docker-stack.yml "$project" >/dev/null
  finish stack "$t0" "$CLIENTS replicas on the swarm"
}

down() {
  docker stack rm "$project" >/dev/null 2>&1 || true
  docker secret rm glassbox_enroll_token glassbox_ca_crt >/dev/null 2>&1 || true
  "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
}

case "${1:-up}" in
  build) build ;;
  up) up "${2:-}" ;;
  stack) stack "${2:-}" ;;
  down) down ;;
  *) echo "usage: $0 build | up [N] | stack [N] | down" >&2; exit 2 ;;
esac
