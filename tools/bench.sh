#!/bin/sh
# Pando's benchmark (`make bench`): pull/push throughput of 64 MiB and
# small-call latency (psbench) against one and two pando-ps started here on
# 127.0.0.1 without a coordinator, each next to the raw TCP loopback baseline
# (tcpbench, 1 MiB writes; 64 KiB writes for reference) measured just before. Prints a markdown table on stdout
# (progress, the machine and the tools' own lines go to stderr); everything
# started is killed on exit. Environment: BUILD (default build), ITERS (timed
# 64 MiB transfers of each kind, default 50), SMALL_ITERS (timed small calls of
# each kind, default 5000).
set -eu

BUILD=${BUILD:-build}
ITERS=${ITERS:-50}
SMALL_ITERS=${SMALL_ITERS:-5000}
PS=$BUILD/bin/pando-ps
for bin in "$PS" "$BUILD/tools/tcpbench" "$BUILD/tools/psbench"; do
  if [ ! -x "$bin" ]; then
    echo "bench.sh: $bin is missing; run make first" >&2
    exit 1
  fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pando-bench.XXXXXX")
PIDS=""  # the servers
CHILD="" # the tool running now
cleanup() {
  for pid in $CHILD $PIDS; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $CHILD $PIDS; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_ps N: starts pando-ps number N on a free port; its port goes to $TMP/portN.
start_ps() {
  "$PS" --listen 127.0.0.1:0 --port-file "$TMP/port$1" --name "bench-ps$1" --metrics-listen "" \
    --log-level warn >"$TMP/ps$1.log" 2>&1 &
  PIDS="$PIDS $!"
}

# wait_port N: prints the port of pando-ps number N once it is serving.
wait_port() {
  i=0
  while [ ! -s "$TMP/port$1" ]; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then
      echo "bench.sh: pando-ps $1 did not start:" >&2
      cat "$TMP/ps$1.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  cat "$TMP/port$1"
}

start_ps 1
start_ps 2
P1=$(wait_port 1)
P2=$(wait_port 2)
echo "bench.sh: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')" >&2

# tool OUT COMMAND...: runs COMMAND with stdout to OUT, in the background so
# that a signal stops the script (and the command) at once.
tool() {
  out=$1
  shift
  "$@" >"$out" &
  CHILD=$!
  wait "$CHILD"
  CHILD=""
}

# run M SERVERS: the TCP baseline, then psbench against the M SERVERS.
run() {
  echo "bench.sh: raw TCP baseline, then psbench with $1 server(s)" >&2
  tool "$TMP/tcp$1.out" "$BUILD/tools/tcpbench" --reps "$ITERS"
  tool "$TMP/tcpsmall$1.out" "$BUILD/tools/tcpbench" --reps "$ITERS" --io-bytes 65536
  tool "$TMP/m$1.out" "$BUILD/tools/psbench" --servers "$2" --iters "$ITERS" \
    --small-iters "$SMALL_ITERS"
  cat "$TMP/tcp$1.out" "$TMP/tcpsmall$1.out" "$TMP/m$1.out" >&2
}
run 1 "127.0.0.1:$P1"
run 2 "127.0.0.1:$P1,127.0.0.1:$P2"

# field FILE FIGURE KEY: the value of KEY on FILE's "BENCH FIGURE ..." line.
field() {
  awk -v fig="$2" -v key="$3" '$1 == "BENCH" && $2 == fig {
    for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) print kv[2] } }' "$1"
}
# tcp FILE: the median of a tcpbench run.
tcp() {
  awk -v t="$(field "$1" tcp median_gbps)" 'BEGIN { printf "%.2f GB/s", t }'
}
# gbps M FIGURE: "X.XX GB/s (NN% of TCP)", against that baseline.
gbps() {
  awk -v v="$(field "$TMP/m$1.out" "$2" median_gbps)" \
    -v t="$(field "$TMP/tcp$1.out" tcp median_gbps)" \
    'BEGIN { printf "%.2f GB/s (%.0f%% of TCP)", v, 100 * v / t }'
}
# lat M FIGURE: "P50 / P99 µs".
lat() {
  printf '%s / %s µs' "$(field "$TMP/m$1.out" "$2" p50_us)" "$(field "$TMP/m$1.out" "$2" p99_us)"
}

echo "| figure (medians of $ITERS runs; GB = 1e9 bytes) | M=1 server | M=2 servers |"
echo "| --- | --- | --- |"
echo "| raw TCP loopback, 1 connection, 1 MiB writes/reads: the baseline for % |" \
  "$(tcp "$TMP/tcp1.out") | $(tcp "$TMP/tcp2.out") |"
echo "| raw TCP loopback, 1 connection, 64 KiB writes/reads (for reference) |" \
  "$(tcp "$TMP/tcpsmall1.out") | $(tcp "$TMP/tcpsmall2.out") |"
echo "| pull 64 MiB (16,777,216 float32 keys) | $(gbps 1 pull) | $(gbps 2 pull) |"
echo "| push 64 MiB | $(gbps 1 push) | $(gbps 2 push) |"
echo "| small pull, 256 keys, p50 / p99 ($SMALL_ITERS calls, 1 in flight) |" \
  "$(lat 1 small_pull) | $(lat 2 small_pull) |"
echo "| small push, 256 keys, p50 / p99 | $(lat 1 small_push) | $(lat 2 small_push) |"
