#!/usr/bin/env bash
# The demo: installs what is missing, builds, and runs a local federation on
# this machine: a coordinator and three clients, each training LeNet on its
# own third of Fashion-MNIST's training images, for 5 rounds. The
# coordinator evaluates every round's global model on the 10,000 test
# images, collects the clients' integrated-gradients explanations into an
# aggregate one, and signs and publishes both. Everything it writes goes to
# $GLASSBOX_DEMO_DIR (default build/demo): the CA, checkpoints, signed
# publications, explanation heatmaps and the logs.
#
# Extra arguments go to `glassbox-coordinator serve` (e.g. --rounds 10,
# --aggregator trimmed_mean:0.2, --server-optimizer fedadam).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"

B=build
W=${GLASSBOX_DEMO_DIR:-build/demo}
CLIENTS=3
PORT=${GLASSBOX_DEMO_PORT:-7700}
rm -rf "$W"
mkdir -p "$W/logs"
"$B/glassbox-coordinator" ca init --dir "$W/ca" --federation demo >/dev/null 2>&1
for k in $(seq 0 $((CLIENTS - 1))); do
  "$B/glassbox-coordinator" ca issue --dir "$W/ca" --name "client-$k" >/dev/null 2>&1
done

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT

echo "coordinator: 5 rounds of LeNet, $CLIENTS clients, logs in $W/logs"
"$B/glassbox-coordinator" serve --ca "$W/ca" --listen "tcp://127.0.0.1:$PORT" \
  --publish "tcp://127.0.0.1:$((PORT + 1))" --rounds 5 --min-clients "$CLIENTS" \
  --model lenet --epochs 1 --batch 32 --lr 0.05 --test-data fashion-mnist --threads 1 \
  --explain ig --explain-samples 64 --state "$W/state" --out "$W/out" "$@" \
  2>"$W/logs/coordinator.log" &
serve=$!
pids+=("$serve")
sleep 0.5
for k in $(seq 0 $((CLIENTS - 1))); do
  "$B/glassbox-client" run --coordinator "tcp://127.0.0.1:$PORT" \
    --cert "$W/ca/clients/client-$k.crt" --key "$W/ca/clients/client-$k.key" \
    --ca-file "$W/ca/ca.crt" --data fashion-mnist --partition iid \
    --clients "$CLIENTS" --index "$k" --threads 1 \
    >"$W/logs/client-$k.out" 2>"$W/logs/client-$k.log" &
  pids+=("$!")
done
wait "$serve"
for pid in "${pids[@]:1}"; do wait "$pid" || true; done
trap - EXIT

last=$(ls "$W/out" | sed -n 's/^round-0*\([0-9]*\)\.pub$/\1/p' | sort -n | tail -1)
printf -v padded '%06d' "$last"
echo
echo "global model:      $W/state/model-$last.gbm"
echo "   (build/glassbox-client eval --model-file $W/state/model-$last.gbm --data fashion-mnist)"
echo "explanation:       $W/out/explanation-$last.json and its heatmaps"
echo "signed publication: $W/out/round-$padded.pub, checked with openssl:"
openssl verify -CAfile "$W/ca/ca.crt" -purpose sslserver -verify_hostname localhost \
  "$W/out/coordinator.crt"
openssl x509 -in "$W/out/coordinator.crt" -pubkey -noout >"$W/out/coordinator.pub.pem"
openssl dgst -sha256 -verify "$W/out/coordinator.pub.pem" \
  -signature "$W/out/round-$padded.sig" "$W/out/round-$padded.pub"
