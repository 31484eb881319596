#!/usr/bin/env bash
# Every test: installs what is missing, builds three times and tests each:
#   build/       Release, -Werror: unit tests, command-line tests, PyTorch
#                cross-checks;
#   build-asan/  AddressSanitizer + UBSan, -Werror: the unit tests again;
#   build-fuzz/  clang with libFuzzer, ASan and UBSan, -Werror: every fuzz
#                target's seeds once (ctest -L fuzz), then each target
#                fuzzed for a few seconds from its seeds (tests/fuzz/run.sh).
# GLASSBOX_LONG=1 adds the long runs (ctest passes the variable through to
# the tests that read it): 1,000 virtual clients in one process
# (tests/client/test_virtual_limits.py) instead of 360, a coordinator gone
# for 30 s instead of 6 (tests/coordinator/test_faults_run.py), and a fourth
# build:
#   build-coverage/  gcc --coverage (GLASSBOX_COVERAGE): every test, then the
#                line coverage per top-level folder (deploy/coverage.sh, lcov).
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

echo "== libFuzzer build (clang): fuzz targets from their seed corpora"
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" \
      -DCMAKE_C_COMPILER=clang -DGLASSBOX_FUZZ=ON -DGLASSBOX_WERROR=ON >/dev/null
cmake --build build-fuzz -j"$jobs"
(cd build-fuzz && ctest --output-on-failure -j"$jobs" -L fuzz)
sh tests/fuzz/run.sh build-fuzz "${GLASSBOX_FUZZ_SECONDS:-10}"

if [ "${GLASSBOX_LONG:-0}" = 1 ]; then
  echo "== Coverage build (gcc --coverage): every test, then the line coverage per folder"
  cmake -S . -B build-coverage -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" \
        -DGLASSBOX_COVERAGE=ON -DGLASSBOX_WERROR=ON >/dev/null
  cmake --build build-coverage -j"$jobs"
  # counts of an earlier run would add into this one's
  find build-coverage -name '*.gcda' -delete
  (cd build-coverage && ctest --output-on-failure -j"$jobs")
  bash deploy/coverage.sh build-coverage
fi
