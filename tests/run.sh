#!/bin/sh
# Pando's test runner: the layer check (tests/check_layers.sh), every unit
# test binary in $BUILD/tests/unit and every integration test
# tests/integration/test_*.{sh,py}. Each prints "ok - X" or
# "FAIL - X" lines; the runner adds them up and ends with "N passed, N failed".
#   sh tests/run.sh            everything
#   sh tests/run.sh NAME...    only tests (binaries, cases or scripts) named NAME
# With PANDO_TEST_TLS=1 (make test-tls) the integration tests run their
# daemons with TLS and a cluster token (tests/integration/lib.sh, pdtls.py);
# the layer check and the unit tests, which start no daemon, then run only
# when named.
BUILD=${BUILD:-build}
export BUILD
# The daemons read job data only under data_roots: the tests' scratch folders
# (under $TMPDIR), the checkout and the Debian data sets.
PANDO_DATA_ROOTS=${PANDO_DATA_ROOTS:-/usr/share/datasets,${TMPDIR:-/tmp},$PWD}
export PANDO_DATA_ROOTS
# A test that hangs fails after this many seconds instead of blocking CI, and
# says which phase it was in: the last check it passed or failed, or the last
# "# ..." note it printed (integration tests print one per phase).
LIMIT=${TEST_TIMEOUT:-600}
out=$(mktemp)
passed=0
failed=0
selected() {
  [ $# -eq 1 ] && return 0
  want=$1; shift
  for f in "$@"; do [ "$f" = "$want" ] && return 0; done
  return 1
}
count() { # count LOGFILE NAME: adds up ok/FAIL lines; a silent failure counts once
  p=$(grep -c '^ok - ' "$1")
  f=$(grep -c '^FAIL - ' "$1")
  if [ "$2" -eq 124 ]; then
    f=$((f + 1))
    phase=$(grep -E '^(ok - |FAIL - |# )' "$1" | tail -n 1)
    echo "FAIL - $3 (timed out after $LIMIT s; its last step: ${phase:-none, it printed nothing})"
  elif [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "FAIL - $3 (exit code $2)"; fi
  passed=$((passed + p))
  failed=$((failed + f))
}
tls_only() { [ "${PANDO_TEST_TLS:-0}" != 0 ] && [ $# -eq 0 ]; }
if ! tls_only "$@" && selected check_layers "$@"; then # libpando's layers (tests/check_layers.sh)
  echo "# check_layers"
  sh tests/check_layers.sh >"$out" 2>&1; rc=$?
  cat "$out"
  count "$out" $rc check_layers
fi
for bin in "$BUILD"/tests/unit/*/test_*; do
  case $bin in *.o|*.d) continue ;; esac
  [ -x "$bin" ] || continue
  tls_only "$@" && continue
  name=$(basename "$bin")
  if [ $# -gt 0 ] && ! selected "$name" "$@"; then
    # a case name selects the binary that has it
    cases=$("$bin" -l 2>/dev/null)
    hit=""
    for c in $cases; do selected "$c" "$@" && hit="$hit $c"; done
    [ -z "$hit" ] && continue
    echo "# $name$hit"
    timeout "$LIMIT" "$bin" $hit >"$out" 2>&1; rc=$?
  else
    echo "# $name"
    timeout "$LIMIT" "$bin" >"$out" 2>&1; rc=$?
  fi
  grep -v '^[0-9]* passed, [0-9]* failed$' "$out"
  count "$out" $rc "$name"
done
for t in tests/integration/test_*.sh tests/integration/test_*.py; do
  [ -f "$t" ] || continue
  name=$(basename "$t"); name=${name%.*}
  if [ $# -gt 0 ] && ! selected "$name" "$@"; then continue; fi
  echo "# $name"
  start=$(date +%s)
  case $t in
    *.py) timeout "$LIMIT" /usr/bin/python3 "$t" >"$out" 2>&1; rc=$? ;;
    *) timeout "$LIMIT" sh "$t" >"$out" 2>&1; rc=$? ;;
  esac
  cat "$out"
  echo "# $name: $(($(date +%s) - start)) s"
  count "$out" $rc "$name"
done
rm -f "$out"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
