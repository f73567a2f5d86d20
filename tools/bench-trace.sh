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
. "$(dirname "$0")/bench-lib.sh"
rows=$(train_rows "$TMP/job.yaml")
on="" off=""
i=0
while [ $i -lt "$RUNS" ]; do
  i=$((i + 1))
  echo "bench-trace: run $i of $RUNS, tracing on" >&2
  TLS=0 TMPDIR=$TMP BUILD=$BUILD sh tools/local-cluster.sh "$TMP/job.yaml" >"$TMP/on" 2>/dev/null
  on="$on $(sps "$TMP/on" "$rows")"
  echo "bench-trace: $(tail -n 1 "$TMP/on")" >&2
  echo "bench-trace: run $i of $RUNS, tracing off" >&2
  PANDO_TRACE_EVENTS=0 TLS=0 TMPDIR=$TMP BUILD=$BUILD sh tools/local-cluster.sh "$TMP/job.yaml" \
    >"$TMP/off" 2>/dev/null
  off="$off $(sps "$TMP/off" "$rows")"
done
m_on=$(echo "$on" | median) m_off=$(echo "$off" | median)
cpu=$(cpu_name)
echo "### Tracing cost, $(basename "$SPEC") ($EPOCHS epochs) on a cluster (M=2, N=2, BSP), $cpu, $(nproc) cores"
echo
echo "| samples/s (epochs 2..$EPOCHS), median of $RUNS | tracing off | tracing on | on / off |"
echo "| --- | --- | --- | --- |"
echo "| runs:$off / $on | $m_off | $m_on | $(awk -v a="$m_on" -v b="$m_off" 'BEGIN { printf "%.3f", a / b }') |"
