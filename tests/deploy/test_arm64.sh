#!/usr/bin/env bash
# deploy/test_arm64: the arm64 (aarch64) cross build for edge devices.
#
#   1. configures and builds the arm64 tree (Release, -DGLASSBOX_WERROR=ON)
#      with cmake/aarch64-linux-gnu.cmake: Debian's aarch64-linux-gnu-gcc,
#      the :arm64 -dev libraries, protoc-c of the host;
#   2. `file` says the binaries and the test executables are ARM aarch64;
#   3. runs the unit tests (ctest -L unit: the cmocka executables) under
#      qemu-aarch64 -L / (CMAKE_CROSSCOMPILING_EMULATOR; the loader and
#      libraries are the multiarch :arm64 ones: the cross toolchain's loader
#      in /usr/aarch64-linux-gnu is another glibc build than libc6:arm64's
#      libc.so.6 and the two together hang), and prints how long the build
#      and the run took.
#
# Left out of 3: the tests labelled torch (their fixtures come from
# PyTorch on the host; GLASSBOX_ARM64_TORCH=1 runs them too: the host's
# python3 writes the fixtures, the arm64 tests read them under qemu), and
# util/test_process, whose test re-executes itself with execv(): qemu-user
# runs only the first arm64 program, and exec of another needs binfmt_misc
# registered on the host (qemu-user-binfmt), which a container rarely has. It
# is run when binfmt_misc has qemu-aarch64 enabled.
#
# usage: test_arm64.sh SOURCE_DIR [CMAKE] [CTEST]
# Environment: GLASSBOX_ARM64=1 to run (exit 77, skipped, otherwise);
# GLASSBOX_ARM64_BUILD (default SOURCE_DIR/build-arm64) the arm64 tree;
# GLASSBOX_ARM64_JOBS (default nproc) parallel compile and test jobs;
# GLASSBOX_ARM64_TORCH=1 also the PyTorch cross-checks (python3-torch).
set -euo pipefail

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

if [ "${GLASSBOX_ARM64:-0}" != 1 ]; then
  skip "the arm64 cross build runs only with GLASSBOX_ARM64=1 (packages: GLASSBOX_ARM64=1 deploy/install-deps.sh)"
fi

src=$(cd "$1" && pwd)
cmake=${2:-cmake}
ctest=${3:-ctest}
build=${GLASSBOX_ARM64_BUILD:-$src/build-arm64}
jobs=${GLASSBOX_ARM64_JOBS:-$(nproc)}
triplet=aarch64-linux-gnu
hint="install them with: GLASSBOX_ARM64=1 deploy/install-deps.sh"

for tool in $triplet-gcc qemu-aarch64 protoc-c file pkg-config; do
  command -v "$tool" >/dev/null || fail "$tool not found; $hint"
done
[ -e /lib/ld-linux-aarch64.so.1 ] || fail "no /lib/ld-linux-aarch64.so.1 (libc6:arm64); $hint"
pcdir=/usr/lib/$triplet/pkgconfig
for pc in libzmq libprotobuf-c openssl zlib libpng cmocka libmicrohttpd jansson; do
  PKG_CONFIG_LIBDIR=$pcdir:/usr/share/pkgconfig pkg-config --exists "$pc" ||
    fail "no arm64 $pc.pc in $pcdir; $hint"
done
[ -e /usr/lib/$triplet/libopenblas.so ] || fail "no arm64 libopenblas.so; $hint"

# --- 1. the cross build --------------------------------------------------------
step "configure and build $build (aarch64, Release, -Werror)"
mkdir -p "$build"
log=$build/test_arm64
t0=$(date +%s)
"$cmake" -S "$src" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$src/cmake/$triplet.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DGLASSBOX_WERROR=ON \
  "-DCMAKE_CROSSCOMPILING_EMULATOR=$(command -v qemu-aarch64);-L;/" >"$log.configure.log" 2>&1 ||
  { tail -40 "$log.configure.log"; fail "configure failed (log: $log.configure.log)"; }
"$cmake" --build "$build" -j"$jobs" >"$log.build.log" 2>&1 ||
  { grep -E "error|Error" "$log.build.log" | head -40; fail "build failed (log: $log.build.log)"; }
t1=$(date +%s)
build_s=$((t1 - t0))
echo "cross build: ${build_s} s"

# --- 2. the binaries are arm64 -----------------------------------------------------
step "file: ARM aarch64"
checked=0
for bin in "$build/glassbox-client" "$build/glassbox-coordinator" "$build"/tests/test_*; do
  [ -f "$bin" ] && [ -x "$bin" ] || continue
  what=$(file -b "$bin")
  case $what in
    *"ARM aarch64"*) checked=$((checked + 1)) ;;
    *) fail "$bin is not an arm64 executable: $what" ;;
  esac
done
[ "$checked" -ge 3 ] || fail "only $checked arm64 executables in $build"
file "$build/glassbox-client" "$build/glassbox-coordinator"
echo "$checked executables are ARM aarch64"

# --- 3. the unit tests under qemu --------------------------------------------------
exclude='^(util/test_process)$'
if [ -r /proc/sys/fs/binfmt_misc/qemu-aarch64 ] &&
   head -1 /proc/sys/fs/binfmt_misc/qemu-aarch64 | grep -q enabled; then
  exclude=''
fi
labels=(-L unit -LE torch)
[ "${GLASSBOX_ARM64_TORCH:-0}" != 1 ] || labels=(-L unit)
step "ctest ${labels[*]}${exclude:+ -E '$exclude'} under qemu-aarch64 (-j$jobs)"
cd "$build"
t2=$(date +%s)
rc=0
"$ctest" "${labels[@]}" ${exclude:+-E "$exclude"} -j"$jobs" --timeout 1200 \
  --output-on-failure || rc=$?
t3=$(date +%s)
run_s=$((t3 - t2))
echo "arm64: cross build ${build_s} s, unit tests under qemu ${run_s} s"
[ -z "$exclude" ] || echo "left out: util/test_process (re-executes itself; needs binfmt_misc for qemu-aarch64)"
[ "$rc" -eq 0 ] || fail "unit tests failed under qemu-aarch64"
echo "PASS: arm64 build, binaries aarch64, unit tests pass under qemu"
