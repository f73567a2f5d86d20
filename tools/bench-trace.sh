#!/bin/sh
# What tracing (pandoctl trace) costs: the same cluster job
# (tools/local-cluster.sh, M=2 servers, N=2 workers, BSP, plaintext), RUNS
# times with tracing on as by default (workers a ring of 8192 spans shipped
# 512 a report, servers 65536 per job) and RUNS times with it off
# (PANDO_TRACE_EVENTS=0 for the servers and the workers), alternating, and
# the median samples/s of each side over the job's epochs after the first
# (EPOCHS=8 by default). The phase counters of pandoctl stats stay on in both (they cannot
# be turned off). Prints a markdown table.
#   BUILD=build sh tools/bench-trace.sh [JOB.yaml]   (RUNS=3 by default)
set -eu
unset PANDO_TRACE_EVENTS # the "on" runs are the defaults
BUILD=${BUILD:-build}
SPEC=${1:-examples/fashion-mlp.yaml}
RUNS=${RUNS:-3}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pando-bench-trace.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
EPOCHS=${EPOCHS:-8}
sed "s/epochs: [0-9]*/epochs: $EPOCHS/" "$SPEC" >"$TMP/job.yaml"
rows=$(/usr/bin/python3 - "$TMP/job.yaml" <<'PY'
import gzip, re, struct, sys
path = re.search(r"train:\s*\{?\s*features:\s*([^,}\s]+)", open(sys.argv[1]).read()).group(1)
print(struct.unpack(">I", gzip.open(path).read(8)[4:8])[0])
PY
)
# sps OUT: samples/s of the epochs after the first (the warm-up, with the
# data loading): their rows over the sum of their "epoch N: ... (S s)" lines
sps() {
  sed -n 's/^epoch [0-9]*: .*(\([0-9.]*\) s)$/\1/p' "$1" | sed 1d |
    awk -v rows="$rows" '{ s += $1; n++ } END { printf "%.0f", n * rows / s }'
}
median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
on="" off=""
i=0
while [ $i -lt "$RUNS" ]; do
  i=$((i + 1))
  echo "bench-trace: run $i of $RUNS, tracing on" >&2
  TLS=0 TMPDIR=$TMP BUILD=$BUILD sh tools/local-cluster.sh "$TMP/job.yaml" >"$TMP/on" 2>/dev/null
  on="$on $(sps "$TMP/on")"
  echo "bench-trace: $(tail -n 1 "$TMP/on")" >&2
  echo "bench-trace: run $i of $RUNS, tracing off" >&2
  PANDO_TRACE_EVENTS=0 TLS=0 TMPDIR=$TMP BUILD=$BUILD sh tools/local-cluster.sh "$TMP/job.yaml" \
    >"$TMP/off" 2>/dev/null
  off="$off $(sps "$TMP/off")"
done
m_on=$(echo "$on" | median) m_off=$(echo "$off" | median)
cpu=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)
echo "### Tracing cost, $(basename "$SPEC") ($EPOCHS epochs) on a cluster (M=2, N=2, BSP), $cpu, $(nproc) cores"
echo
echo "| samples/s (epochs 2..$EPOCHS), median of $RUNS | tracing off | tracing on | on / off |"
echo "| --- | --- | --- | --- |"
echo "| runs:$off / $on | $m_off | $m_on | $(awk -v a="$m_on" -v b="$m_off" 'BEGIN { printf "%.3f", a / b }') |"
