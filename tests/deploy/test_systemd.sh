#!/usr/bin/env bash
# deploy/test_systemd: the systemd packaging of deploy/systemd/.
#
#   1. both example configs are accepted by the binaries' --config parser
#      (every commented-out `#key = value` too), and a bad key is refused
#      with exit 2 naming it;
#   2. `cpack -G DEB` makes glassbox_<version>_<arch>.deb with Depends from
#      dpkg-shlibdeps and the maintainer scripts; `dpkg -x` unpacks it into
#      a throwaway root (never onto this machine) where every file is checked;
#   3. the maintainer scripts run against stub commands: postinst creates
#      the user and group only when missing, and none fails without systemd;
#   4. `systemd-analyze verify` on both units as packaged, with ExecStart
#      pointing at the unpacked binaries (it needs no running systemd).
#
# usage: test_systemd.sh BUILD_DIR SOURCE_DIR VERSION [CPACK]
# Exit 77 (skipped) when systemd-analyze, cpack or dpkg's tools are missing.
set -euo pipefail

build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
version=$3
cpack=${4:-cpack}
sd=$src/deploy/systemd

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

command -v systemd-analyze >/dev/null || skip "systemd-analyze not found (package systemd)"
command -v "$cpack" >/dev/null || skip "cpack not found (package cmake)"
command -v dpkg-shlibdeps >/dev/null || skip "dpkg-shlibdeps not found (package dpkg-dev)"
command -v dpkg-deb >/dev/null || skip "dpkg-deb not found (package dpkg)"
[ -f "$build/CPackConfig.cmake" ] || fail "no $build/CPackConfig.cmake (include(CPack) missing?)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gb-systemd.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export OPENBLAS_NUM_THREADS=1

# --- 1. the example configs --------------------------------------------------
# A config that parses makes the binary go on and fail (exit 1) on a file
# that is missing on purpose: the command line points the CA (serve) or the
# CA certificate (run) into $tmp, and wins over the file, whose values are
# still checked. A parse error is exit 2 and names "FILE:LINE:".
coord_dry=(serve --ca "$tmp/no-ca" --state "$tmp/state" --out "$tmp/out" --http none
           --listen tcp://127.0.0.1:0)
client_dry=(run --ca-file "$tmp/no-ca.crt")

# check_config BINARY CONFIG WHAT-THE-MISSING-FILE-ERROR-SAYS ARGS...
check_config() {
  local bin=$1 conf=$2 expect=$3 rc=0
  shift 3
  timeout 30 "$build/$bin" "$@" --config "$conf" >"$tmp/out.txt" 2>"$tmp/err.txt" || rc=$?
  if [ "$rc" -ne 1 ] || grep -qF -- "$conf:" "$tmp/err.txt" || ! grep -qF -- "$expect" "$tmp/err.txt"; then
    cat "$tmp/err.txt" >&2
    fail "$bin $1 --config $conf: exit $rc, expected 1 for the missing '$expect'"
  fi
}

# check_bad_key BINARY CONFIG ARGS...: CONFIG plus a line with an unknown key
check_bad_key() {
  local bin=$1 conf=$2 rc=0 bad=$tmp/bad.conf
  shift 2
  { cat "$conf"; echo "no-such-key = 1"; } >"$bad"
  local line
  line=$(wc -l <"$bad")
  timeout 30 "$build/$bin" "$@" --config "$bad" >/dev/null 2>"$tmp/err.txt" || rc=$?
  if [ "$rc" -ne 2 ] || ! grep -qF -- "$bad:$line: unknown key 'no-such-key'" "$tmp/err.txt"; then
    cat "$tmp/err.txt" >&2
    fail "$bin $1 with a bad key: exit $rc, expected 2 naming $bad:$line and the key"
  fi
}

# uncomment CONFIG OUT: every `#key = value` line made live, except keys
# already set (a key may appear once)
uncomment() {
  awk '
    /^[a-z][a-z-]* = / { split($0, f, " "); seen[f[1]] = 1; print; next }
    /^#[a-z][a-z-]* = / { sub(/^#/, ""); split($0, f, " ");
                          if (!(f[1] in seen)) { seen[f[1]] = 1; print } ; next }
    { print }' "$1" >"$2"
  grep -q '^[a-z]' "$2" || fail "no keys in $1"
}

step "example configs"
for pair in "glassbox-coordinator coordinator CA key" "glassbox-client client --ca-file"; do
  read -r bin name expect <<<"$pair"
  conf=$sd/$name.conf.example
  [ -f "$conf" ] || fail "missing $conf"
  if [ "$name" = coordinator ]; then args=("${coord_dry[@]}"); else args=("${client_dry[@]}"); fi
  check_config "$bin" "$conf" "$expect" "${args[@]}"
  uncomment "$conf" "$tmp/$name.all.conf"
  check_config "$bin" "$tmp/$name.all.conf" "$expect" "${args[@]}"
  check_bad_key "$bin" "$conf" "${args[@]}"
  echo "ok: $name.conf.example ($(grep -c '^[a-z]' "$conf") keys, $(grep -c '^[a-z]' \
    "$tmp/$name.all.conf") with the commented ones)"
done
# the units name the configs by the paths the examples say they are for
grep -q '^ExecStart=/usr/bin/glassbox-coordinator serve --config /etc/glassbox/coordinator.conf$' \
  "$sd/glassbox-coordinator.service" || fail "coordinator unit: unexpected ExecStart"
grep -q '^ExecStart=/usr/bin/glassbox-client run --config /etc/glassbox/client.conf$' \
  "$sd/glassbox-client.service" || fail "client unit: unexpected ExecStart"

# --- 2. the .deb -------------------------------------------------------------
step "cpack -G DEB"
arch=$(dpkg --print-architecture)
deb_name=glassbox_${version}_${arch}.deb
(cd "$build" && "$cpack" -G DEB -B "$tmp/pkg" --config "$build/CPackConfig.cmake") \
  >"$tmp/cpack.log" 2>&1 || { cat "$tmp/cpack.log" >&2; fail "cpack -G DEB failed"; }
deb=$tmp/pkg/$deb_name
[ -f "$deb" ] || { ls -l "$tmp/pkg" >&2; fail "cpack made no $deb_name"; }
echo "ok: $deb_name ($(stat -c %s "$deb") bytes)"

[ "$(dpkg-deb -f "$deb" Package)" = glassbox ] || fail "Package is not glassbox"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "Version is not $version"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libc6 libzmq5 libssl3 libprotobuf-c1 libopenblas libmicrohttpd12 libjansson4 adduser; do
  [[ "$depends" == *"$lib"* ]] || fail "Depends lacks $lib (dpkg-shlibdeps?): $depends"
done
echo "ok: Depends: $depends"

dpkg-deb -e "$deb" "$tmp/control"
for s in postinst prerm postrm; do
  [ -x "$tmp/control/$s" ] || fail "maintainer script $s missing or not executable"
  sh -n "$tmp/control/$s" || fail "$s: syntax error"
  cmp -s "$tmp/control/$s" "$sd/$s" || fail "$s differs from deploy/systemd/$s"
done

root=$tmp/root
dpkg -x "$deb" "$root"
expected="usr/bin/glassbox-client
usr/bin/glassbox-coordinator
usr/lib/systemd/system/glassbox-client.service
usr/lib/systemd/system/glassbox-coordinator.service
usr/share/doc/glassbox/examples/client.conf.example
usr/share/doc/glassbox/examples/coordinator.conf.example
usr/share/glassbox/client.conf.example
usr/share/glassbox/coordinator.conf.example"
actual=$(cd "$root" && find . \( -type f -o -type l \) | sed 's|^\./||' | LC_ALL=C sort)
[ "$actual" = "$expected" ] || { diff <(echo "$expected") <(echo "$actual") >&2 || true
                                 fail "the package's files are not the expected ones"; }
for f in usr/lib/systemd/system/glassbox-client.service \
         usr/lib/systemd/system/glassbox-coordinator.service; do
  cmp -s "$root/$f" "$sd/$(basename "$f")" || fail "$f differs from deploy/systemd"
done
for f in client.conf.example coordinator.conf.example; do
  cmp -s "$root/usr/share/doc/glassbox/examples/$f" "$sd/$f" || fail "doc $f differs"
  cmp -s "$root/usr/share/glassbox/$f" "$sd/$f" || fail "share $f differs"
done
for b in glassbox-coordinator glassbox-client; do
  [ -x "$root/usr/bin/$b" ] || fail "usr/bin/$b not executable"
done
"$root/usr/bin/glassbox-coordinator" serve --help >/dev/null || fail "packaged coordinator does not run"
"$root/usr/bin/glassbox-client" run --help >/dev/null || fail "packaged client does not run"
echo "ok: dpkg -x: $(echo "$actual" | wc -l) files where they belong, binaries run"

# --- 3. the maintainer scripts, against stubs ---------------------------------
# PATH holds only stubs that log their arguments, so nothing touches this
# machine's users, /etc or /var; getent answers "missing" or "present".
step "maintainer scripts"
stubs=$tmp/stubs
mkdir -p "$stubs"
for c in adduser addgroup useradd groupadd install systemctl; do
  printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$c" "$tmp/calls" >"$stubs/$c"
  chmod +x "$stubs/$c"
done
run_script() { # run_script present|missing SCRIPT ARGS...
  local present=$1 script=$2
  shift 2
  printf '#!/bin/sh\n[ "%s" = present ] && echo "glassbox:x:999:999::/var/lib/glassbox:/usr/sbin/nologin"\n[ "%s" = present ]\n' \
    "$present" "$present" >"$stubs/getent"
  chmod +x "$stubs/getent"
  : >"$tmp/calls"
  PATH=$stubs /bin/sh "$tmp/control/$script" "$@" >"$tmp/script.out" 2>&1 ||
    { cat "$tmp/script.out" >&2; fail "$script $* failed"; }
}
run_script missing postinst configure
grep -q '^addgroup --system .*glassbox$' "$tmp/calls" || fail "postinst made no group"
grep -q '^adduser --system .*--ingroup glassbox --home /var/lib/glassbox .*glassbox$' \
  "$tmp/calls" || { cat "$tmp/calls" >&2; fail "postinst made no user"; }
run_script present postinst configure 0.0.9
if grep -q 'add\(user\|group\)' "$tmp/calls"; then fail "postinst re-made an existing user"; fi
if [ -d /run/systemd/system ]; then
  grep -q '^systemctl daemon-reload' "$tmp/calls" || fail "postinst: no daemon-reload"
else
  if grep -q '^systemctl' "$tmp/calls"; then fail "postinst ran systemctl without systemd"; fi
fi
run_script present prerm remove
grep -q '^systemctl disable' "$tmp/calls" || fail "prerm remove: units not disabled"
run_script present prerm upgrade 0.1.1
run_script present postrm remove
run_script present postrm purge
echo "ok: postinst makes user and group only when missing; scripts pass without systemd"

# --- 4. systemd-analyze verify -------------------------------------------------
# The units as packaged, ExecStart pointed at the unpacked binaries (verify
# checks that the command exists). Unknown keys and bad values are only
# warnings to verify, so any line about a glassbox unit fails the test;
# other units' warnings (this machine's) are shown but do not count.
step "systemd-analyze verify"
units=$tmp/units
mkdir -p "$units"
for u in glassbox-coordinator glassbox-client; do
  sed "s|^ExecStart=/usr/bin/|ExecStart=$root/usr/bin/|" \
    "$root/usr/lib/systemd/system/$u.service" >"$units/$u.service"
  grep -q "^ExecStart=$root/usr/bin/$u " "$units/$u.service" || fail "$u: no ExecStart to rewrite"
done
rc=0
SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no \
  "$units/glassbox-coordinator.service" "$units/glassbox-client.service" >"$tmp/verify.log" 2>&1 ||
  rc=$?
if [ "$rc" -ne 0 ] || grep -q 'glassbox' "$tmp/verify.log"; then
  cat "$tmp/verify.log" >&2
  fail "systemd-analyze verify: exit $rc"
fi
[ -s "$tmp/verify.log" ] && { echo "note: systemd-analyze about other units:"; cat "$tmp/verify.log"; }
# the sandbox the brief asks for, as systemd reads it
for u in glassbox-coordinator glassbox-client; do
  for want in User=glassbox DynamicUser=no StateDirectory=glassbox ConfigurationDirectory=glassbox \
              ProtectSystem=strict ProtectHome=yes NoNewPrivileges=yes PrivateTmp=yes \
              PrivateDevices=yes ProtectKernelTunables=yes ProtectKernelModules=yes \
              "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" Restart=on-failure \
              Environment=OPENBLAS_NUM_THREADS=1 After=network-online.target \
              Wants=network-online.target; do
    grep -qxF -- "$want" "$units/$u.service" || fail "$u.service lacks $want"
  done
done
grep -q '^LimitNOFILE=[0-9]\{5,\}$' "$units/glassbox-coordinator.service" ||
  fail "coordinator unit: LimitNOFILE below 10000"
echo "ok: systemd-analyze verify passes on both units"
echo "PASS"
