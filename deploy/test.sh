#!/usr/bin/env bash
# Every test: installs what is missing, builds twice and runs ctest in both:
#   build/       Release, -Werror: unit tests, command-line tests, PyTorch
#                cross-checks;
#   build-asan/  AddressSanitizer + UBSan, -Werror: the unit tests again.
# GLASSBOX_LONG=1 adds the long runs (none yet beyond the default set).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
bash deploy/install-deps.sh

echo "== Release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGLASSBOX_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

echo "== AddressSanitizer + UBSan build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DGLASSBOX_SANITIZE=ON -DGLASSBOX_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure -j"$jobs" -L unit)
