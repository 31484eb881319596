#!/bin/sh
# Fuzzes every libFuzzer target of a GLASSBOX_FUZZ build for a few seconds:
#   tests/fuzz/run.sh BUILD_DIR [SECONDS]
# Each target gb_fuzz_<name> starts from a COPY of its checked-in seeds
# (tests/fuzz/corpus/<name>/; the checked-in corpus never changes) and runs
# SECONDS (default 10) with leak detection. Targets run one after another, so
# six of them take about a minute on this machine. A crash, a leak, a
# timeout or an out-of-memory stops nothing else but fails the script at the
# end, with the target's log tail and the reproducer kept in
# BUILD_DIR/fuzz-artifacts/. GB_SOURCE_DIR and GB_BINARY_DIR are exported and
# the test certificates made (tests/net/make_test_pki.sh, when present) for
# targets that need them.
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: tests/fuzz/run.sh BUILD_DIR [SECONDS]" >&2
    exit 2
fi
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)
secs=${2:-10}
case $secs in ''|*[!0-9]*) echo "run.sh: SECONDS must be a whole number, got '$secs'" >&2; exit 2;; esac

export GB_SOURCE_DIR="$src" GB_BINARY_DIR="$build"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

if [ -f "$src/tests/net/make_test_pki.sh" ]; then
    sh "$src/tests/net/make_test_pki.sh" "$build/test-pki" >/dev/null
fi

targets=$(ls "$build"/tests/gb_fuzz_* 2>/dev/null || true)
if [ -z "$targets" ]; then
    echo "run.sh: no gb_fuzz_* targets in $build/tests (configure with -DGLASSBOX_FUZZ=ON -DCMAKE_C_COMPILER=clang)" >&2
    exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/gb-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"
failed=""
for bin in $targets; do
    name=${bin##*/gb_fuzz_}
    corpus="$work/corpus-$name"
    mkdir -p "$corpus"
    if [ -d "$src/tests/fuzz/corpus/$name" ]; then
        cp "$src/tests/fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null || true
    else
        echo "run.sh: warning: no seed corpus for $name (tests/fuzz/corpus/$name/)" >&2
    fi
    seeds=$(ls "$corpus" | wc -l)
    log="$work/$name.log"
    start=$(date +%s)
    if "$bin" -max_total_time="$secs" -detect_leaks=1 -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$artifacts/$name-" "$corpus" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
        echo "fuzz $name: ok, ${runs:-?} runs in $(( $(date +%s) - start )) s from $seeds seeds, $cov, corpus grew to $(ls "$corpus" | wc -l)"
    else
        echo "fuzz $name: FAILED (log tail below; reproducer in $artifacts/)"
        tail -n 40 "$log"
        failed="$failed $name"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzzing failed:$failed" >&2
    exit 1
fi
