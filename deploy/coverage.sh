#!/usr/bin/env bash
# Line coverage of a GLASSBOX_COVERAGE build after its tests ran: collects the
# gcov counts with lcov, writes the HTML report (genhtml) to
# BUILD/coverage-html/ and prints the line coverage per top-level folder of
# the product code (common/<area>, client, coordinator; tests/ and the
# generated protobuf-c code are left out), then the total.
#   deploy/coverage.sh [BUILD]      (default build-coverage)
# deploy/test.sh runs it in its long mode (GLASSBOX_LONG=1).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-coverage}
src=$(pwd)
info=$build/coverage.info
# Debian's lcov 1.16 prints Perl "Subroutine redefined" noise on stderr:
# kept in a log, shown only when the capture fails.
if ! lcov --quiet --capture --directory "$build" --base-directory "$src" \
     --output-file "$info.all" >"$build/coverage.log" 2>&1; then
  cat "$build/coverage.log" >&2
  exit 1
fi
lcov --quiet --extract "$info.all" "$src/common/*" "$src/client/*" "$src/coordinator/*" \
     --output-file "$info" >/dev/null
rm -f "$info.all"
genhtml --quiet --output-directory "$build/coverage-html" "$info" >/dev/null
# A tracefile names each source (SF:) with its lines found (LF:) and hit (LH:).
awk -v src="$src/" '
  /^SF:/ { f = substr($0, 4); sub("^" src, "", f)
           n = split(f, p, "/"); dir = (p[1] == "common" && n > 2) ? p[1] "/" p[2] : p[1] }
  /^LF:/ { lf[dir] += substr($0, 4); tf += substr($0, 4) }
  /^LH:/ { lh[dir] += substr($0, 4); th += substr($0, 4) }
  END {
    split("common/util common/engine common/data common/explain common/net client coordinator", order, " ")
    printf "%-16s %8s %8s %7s\n", "folder", "lines", "hit", "cover"
    for (i = 1; i <= 7; i++) { d = order[i]; if (lf[d])
      printf "%-16s %8d %8d %6.1f%%\n", d, lf[d], lh[d], 100 * lh[d] / lf[d] }
    printf "%-16s %8d %8d %6.1f%%\n", "total", tf, th, tf ? 100 * th / tf : 0
  }' "$info"
echo "coverage: HTML report in $build/coverage-html/index.html"
