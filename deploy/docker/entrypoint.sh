#!/bin/bash
# The image's entry point (deploy/Dockerfile): the first argument picks the
# role, the rest go to the binary.
#
#   init         once per federation: the CA in $CA (the coordinator's name
#                on its certificate is $GLASSBOX_COORDINATOR, default
#                coordinator) and an enrollment token; the token and ca.crt
#                are copied to $ENROLL for the clients. Does nothing twice.
#   coordinator  glassbox-coordinator serve with the CA, state and out
#                volumes (waits for init's CA first); more flags follow.
#   client       enrolls with the token on first start (its own key, its own
#                certificate, named after the container's host name), then
#                glassbox-client run; more flags follow (the compose file
#                passes --shard-from-coordinator: the coordinator deals the
#                slice by that name). A restarted container keeps its key and
#                certificate, so it gets its old slice back.
#   health       the HEALTHCHECK: the coordinator's /healthz, or for a client
#                that its daemon runs.
#   anything else is run as it is (e.g. glassbox-client eval ...).
#
# The token and CA certificate are read from /run/secrets/glassbox_enroll_token
# and /run/secrets/glassbox_ca_crt when those exist (swarm secrets), else
# from $ENROLL (the shared volume that init fills).
set -euo pipefail

base=/var/lib/glassbox
CA=${GLASSBOX_CA_DIR:-$base/ca}
ENROLL=${GLASSBOX_ENROLL_DIR:-$base/enroll}
coord=${GLASSBOX_COORDINATOR:-coordinator}
role_file=/tmp/glassbox.role

log() { echo "glassbox-entrypoint: $*" >&2; }

# Waits up to $2 seconds for file $1 to exist and be non-empty.
wait_for() {
  local i
  for ((i = 0; i < $2; i++)); do
    [ -s "$1" ] && return 0
    sleep 1
  done
  log "gave up waiting for $1"
  return 1
}

secret_or() {
  if [ -s "/run/secrets/$1" ]; then echo "/run/secrets/$1"; else echo "$2"; fi
}

role=${1:-coordinator}
[ $# -gt 0 ] && shift

case "$role" in
init)
  if [ ! -s "$CA/ca.crt" ]; then
    glassbox-coordinator ca init --dir "$CA" --federation "${GLASSBOX_FEDERATION:-glassbox}" \
      --name "$coord"
  fi
  if [ ! -s "$ENROLL/enroll.token" ]; then
    glassbox-coordinator token create --dir "$CA" --uses "${GLASSBOX_TOKEN_USES:-10000}" \
      --ttl "${GLASSBOX_TOKEN_TTL:-2592000}" --out "$ENROLL/enroll.token.new"
    mv "$ENROLL/enroll.token.new" "$ENROLL/enroll.token"
  fi
  cp "$CA/ca.crt" "$ENROLL/ca.crt.new" && mv "$ENROLL/ca.crt.new" "$ENROLL/ca.crt"
  log "CA in $CA, token and ca.crt in $ENROLL"
  ;;
coordinator)
  echo coordinator >"$role_file"
  wait_for "$CA/coordinator.crt" "${GLASSBOX_WAIT:-300}"
  exec glassbox-coordinator serve --ca "$CA" --listen tcp://0.0.0.0:7700 \
    --publish tcp://0.0.0.0:7701 --state "$base/state" --out "$base/out" "$@"
  ;;
client)
  echo client >"$role_file"
  dir=$base/client
  name=${GLASSBOX_NAME:-$(hostname)}
  endpoint=tcp://$coord:${GLASSBOX_PORT:-7700}
  token=$(secret_or glassbox_enroll_token "$ENROLL/enroll.token")
  ca=$(secret_or glassbox_ca_crt "$ENROLL/ca.crt")
  if [ ! -s "$dir/$name.crt" ]; then
    wait_for "$token" "${GLASSBOX_WAIT:-300}"
    wait_for "$ca" "${GLASSBOX_WAIT:-300}"
    # The coordinator may not listen yet: enrollment is retried, with the
    # same key (enroll keeps it), until it answers.
    for ((try = 1; ; try++)); do
      if glassbox-client enroll --coordinator "$endpoint" --token-file "$token" \
           --ca-file "$ca" --out "$dir" --name "$name" --timeout 10; then
        break
      fi
      [ "$try" -ge "${GLASSBOX_ENROLL_TRIES:-30}" ] && { log "enrollment failed"; exit 1; }
      sleep 2
    done
  fi
  exec glassbox-client run --coordinator "$endpoint" --server-name "$coord" \
    --cert "$dir/$name.crt" --key "$dir/$name.key" --ca-file "$dir/ca.crt" "$@"
  ;;
health)
  case "$(cat "$role_file" 2>/dev/null)" in
    coordinator) exec glassbox-coordinator health "$@" ;;
    client) kill -0 1 ;;
    *) exit 0 ;;
  esac
  ;;
*)
  exec "$role" "$@"
  ;;
esac
