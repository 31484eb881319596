#!/bin/sh
# The benchmark in one command: builds glassbox-client, gb_sgemm_peak and
# gb_ig_bench (Release) and runs tests/bench/bench.py, which measures Glassbox
# and PyTorch 1.13 in the same run, for the lenet and then the lstm preset, then
# integrated gradients for both (ig), then the secure channel against raw
# AES-256-GCM (channel), and prints a table and ratios per benchmark.
# Arguments go to bench.py (--model lenet|lstm|ig|channel|all,
# --quick, --dry-run, --skip-glassbox, --trial-batches N, --trial-rounds N). The build
# directory is $GB_BUILD_DIR, default <repo>/build; a new one is configured as
# Release, an existing one is used as it is (bench.py refuses Debug and
# sanitiser builds). See tests/bench/README.md.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${GB_BUILD_DIR:-$root/build}
if [ -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" >/dev/null
else
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j "$(nproc)" --target glassbox-client gb_sgemm_peak gb_ig_bench \
    gb_channel_bench >/dev/null
exec /usr/bin/python3 "$root/tests/bench/bench.py" --build "$build" "$@"
