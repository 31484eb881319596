#!/usr/bin/env bash
# The demo: installs what is missing, builds, and trains LeNet on
# Fashion-MNIST for 3 epochs with per-epoch test accuracy. (A later issue turns
# this into a local federation.) Extra arguments go to `glassbox-client train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
exec build/glassbox-client train --model lenet --data fashion-mnist --epochs 3 \
  --batch 32 --lr 0.05 --optimizer sgd --seed 1 --save build/lenet.gbm "$@"
