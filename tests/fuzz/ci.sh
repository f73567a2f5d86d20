#!/bin/sh
# `make fuzz-ci`: for each harness named, replays the committed seed corpus
# and every regression input (tests/fuzz/{corpus,regressions}/NAME), then
# fuzzes it for FUZZ_CI_SECONDS from the corpus. Prints "ok - ..." /
# "FAIL - ..." lines and exits 1 on any crash, leak or over-allocation.
BUILD=${BUILD:-build-fuzz}
SECONDS_EACH=${FUZZ_CI_SECONDS:-20}
FLAGS="-rss_limit_mb=1024 -malloc_limit_mb=512 -timeout=10 -max_len=65536"
failed=0
nok=0
nfail=0
mkdir -p "$BUILD/crashes"
for name in "$@"; do
  bin=$BUILD/fuzz/fuzz_$name
  log=$BUILD/fuzz_$name.ci.log
  dirs="tests/fuzz/corpus/$name"
  [ -d "tests/fuzz/regressions/$name" ] && dirs="$dirs tests/fuzz/regressions/$name"
  # shellcheck disable=SC2086 # flags and folders are words
  if "$bin" $FLAGS -runs=0 $dirs >"$log" 2>&1; then
    # shellcheck disable=SC2086
    echo "ok - fuzz_$name replays its $(find $dirs -type f | wc -l) corpus and regression inputs"
    nok=$((nok + 1))
  else
    echo "FAIL - fuzz_$name on its corpus"; tail -n 30 "$log"; failed=1; nfail=$((nfail + 1)); continue
  fi
  work=$BUILD/corpus-ci/$name
  rm -rf "$work"; mkdir -p "$work"
  # shellcheck disable=SC2086
  if "$bin" $FLAGS -max_total_time="$SECONDS_EACH" -artifact_prefix="$BUILD/crashes/$name-" \
    "$work" $dirs >"$log" 2>&1; then
    echo "ok - fuzz_$name for $SECONDS_EACH s: $(grep -o 'Done [0-9]* runs' "$log" | tail -n 1)"
    nok=$((nok + 1))
  else
    echo "FAIL - fuzz_$name for $SECONDS_EACH s"; tail -n 30 "$log"; failed=1; nfail=$((nfail + 1))
  fi
done
echo "$nok passed, $nfail failed"
exit $failed
