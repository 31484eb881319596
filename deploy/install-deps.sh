#!/usr/bin/env bash
# Installs, with apt-get, every Debian 12 package that Glassbox's build, tests
# and benchmarks use. Idempotent: installs only what is missing, and runs
# `apt-get update` only when something is. Run as root.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config clang
  # libFuzzer runtime for the fuzz targets (clang -fsanitize=fuzzer)
  libclang-rt-14-dev
  # libraries
  libzmq3-dev libprotobuf-c-dev protobuf-c-compiler libssl-dev
  libopenblas-dev libopenblas-pthread-dev zlib1g-dev libpng-dev
  # the HTTP endpoint (/healthz, /metrics) and its /status JSON
  libmicrohttpd-dev libjansson-dev
  # tests
  libcmocka-dev python3 python3-numpy python3-torch
  # Prometheus's own parser checks /metrics in the tests
  python3-prometheus-client
  # a real browser loads the coordinator's report page in the tests
  # (tests/coordinator/test_report_run.py: chromium --headless)
  chromium
  # the openssl command (certificate fixtures, verifying publications) and the
  # independent TLS peer of the interoperability test: Python's ssl over pyzmq
  openssl python3-zmq python3-protobuf protobuf-compiler python3-cryptography
  # data: Fashion-MNIST, and the sunspot series shipped with statsmodels
  dataset-fashion-mnist python3-statsmodels
  # benchmarks: tests/bench/fed_bench.py profiles the federation with perf
  linux-perf
  # the coverage build of deploy/test.sh's long mode: lcov and genhtml
  # (deploy/coverage.sh) read gcc's gcov counts
  lcov
  # packaging test (tests/deploy): dpkg-shlibdeps for the .deb's Depends,
  # systemd-analyze verify for the units
  dpkg-dev systemd
)
# The container tests (GLASSBOX_DOCKER=1): the base image is made from
# Debian's packages with debootstrap, the federation run with docker-compose.
if [ "${GLASSBOX_DOCKER:-0}" = 1 ]; then
  packages+=(debootstrap docker.io docker-compose)
fi
# The arm64 cross build and its unit tests under qemu-user (GLASSBOX_ARM64=1,
# tests/deploy/test_arm64.sh): Debian's cross compiler and the :arm64 builds
# of the libraries, installed beside the host's by multiarch.
if [ "${GLASSBOX_ARM64:-0}" = 1 ]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "install-deps: GLASSBOX_ARM64=1 needs dpkg --add-architecture arm64; run as root" >&2
      exit 1
    fi
    dpkg --add-architecture arm64
  fi
  packages+=(crossbuild-essential-arm64 qemu-user file
             libzmq3-dev:arm64 libprotobuf-c-dev:arm64 libssl-dev:arm64
             libopenblas-dev:arm64 libopenblas-pthread-dev:arm64 zlib1g-dev:arm64
             libpng-dev:arm64 libcmocka-dev:arm64 libmicrohttpd-dev:arm64
             libjansson-dev:arm64)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${missing[*]}; run as root to install them" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
