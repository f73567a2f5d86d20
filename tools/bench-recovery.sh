#!/bin/sh
# What durability costs (`make bench-recovery`), measured side by side in
# one run, as three markdown tables on stdout (progress on stderr):
# 1. checkpoint bandwidth: tools/ckptbench (a 1 GiB adam shard written as a
#    checkpoint, durable and checksummed, next to a plain sequential write +
#    fsync of the same bytes; then read back, verified and restored);
# 2. training with a checkpoint every epoch next to the same job without,
#    RUNS times each, alternating, on one cluster (a coordinator, M=2
#    servers with a data_dir, N=2 workers, plaintext): the median samples/s
#    of the epochs after the first (EPOCHS=6 of examples/fashion-mlp.yaml);
# 3. the same for a model of 100M parameters on M=4 servers (softmax of
#    784 x 127551, Adam; 1,280 training rows, 4 epochs, one run each);
# 4. from a kill -9 of a server to training again: a job checkpointing every
#    20 clocks, one server killed and started again at once with its name
#    and data_dir; when the coordinator logs the job RECOVERING and RUNNING
#    again, KILLS times, at the default heartbeat (200 ms) and node_timeout
#    (10 s) and at node_timeout 3 s.
#   BUILD=build sh tools/bench-recovery.sh      (RUNS=3, KILLS=3)
# PARTS picks the parts (default "ckpt epoch big kill": 1, 2, 3, 4).
set -eu
BUILD=${BUILD:-build}
BIN=$BUILD/bin
RUNS=${RUNS:-3}
KILLS=${KILLS:-3}
EPOCHS=${EPOCHS:-6}
SPEC=examples/fashion-mlp.yaml
TLS=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pando-bench-recovery.XXXXXX")
DIR=$TMP
# the daemons read data under these folders only (the 100M job's cut is in $TMP)
PANDO_DATA_ROOTS=/usr/share/datasets,$TMP
export PANDO_DATA_ROOTS
. "$(dirname "$0")/cluster-lib.sh"
. "$(dirname "$0")/bench-lib.sh"
trap 'stop_daemons; rm -rf "$TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for bin in "$BIN/pando-coordinator" "$BIN/pando-ps" "$BIN/pando-worker" "$BUILD/tools/ckptbench"; do
  [ -x "$bin" ] || { echo "bench-recovery: $bin is missing; run make first" >&2; exit 1; }
done
cpu=$(cpu_name)

PARTS=${PARTS:-ckpt epoch big kill}
part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
if part ckpt; then
echo "bench-recovery: checkpoint bandwidth (ckptbench, 1 GiB)" >&2
TMPDIR=$TMP "$BUILD/tools/ckptbench" --reps "$RUNS" >"$TMP/ckpt" 2>/dev/null
line=$(grep '^BENCH' "$TMP/ckpt")
val() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
gbs() { awk -v b="$(val bytes)" -v s="$1" 'BEGIN { printf "%.2f", b / s / 1e9 }'; }
echo "### Checkpoints, $cpu, $(nproc) cores, the data dir on $(df -P "$TMP" | awk 'NR == 2 { print $1 }')"
echo
echo "| 1 GiB adam shard (median of $RUNS) | seconds | GB/s |"
echo "| --- | --- | --- |"
echo "| checkpoint write (data + manifest, fsync, CRC-32) | $(val ckpt_s) | $(gbs "$(val ckpt_s)") |"
echo "| plain sequential write + fsync, same bytes | $(val plain_s) | $(gbs "$(val plain_s)") |"
echo "| checkpoint / plain bandwidth | | $(val ratio) |"
echo "| read back, every checksum verified, restored | $(val restore_s) | $(gbs "$(val restore_s)") |"
echo
fi

# cluster NODE_TIMEOUT [SERVERS]: a coordinator, ps-0.. (2) with data_dirs, two workers
cluster() {
  stop_daemons
  rm -rf "$DIR"/data-ps-*
  start coordinator "$BIN/pando-coordinator" --node-timeout "$1"
  PANDO_COORDINATOR=127.0.0.1:$(cat "$DIR/coordinator.port")
  export PANDO_COORDINATOR
  for i in $(seq 0 $((${2:-2} - 1))); do
    start "ps-$i" "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR" --data-dir "$DIR/data-ps-$i"
  done
  for i in 0 1; do start "worker-$i" "$BIN/pando-worker" --coordinator "$PANDO_COORDINATOR"; done
}
if part epoch; then
cluster 10
sed "s/epochs: [0-9]*/epochs: $EPOCHS/" "$SPEC" >"$TMP/plain.yaml"
{ cat "$TMP/plain.yaml"; echo "checkpoint: {every_epochs: 1}"; } >"$TMP/ckpt.yaml"
rows=$(train_rows "$TMP/plain.yaml")
with="" without=""
i=0
while [ $i -lt "$RUNS" ]; do
  i=$((i + 1))
  echo "bench-recovery: run $i of $RUNS without checkpoints" >&2
  "$BIN/pandoctl" submit "$TMP/plain.yaml" --wait >"$TMP/out" 2>&1 || { cat "$TMP/out" >&2; exit 1; }
  without="$without $(sps "$TMP/out" "$rows")"
  echo "bench-recovery: run $i of $RUNS with a checkpoint every epoch" >&2
  "$BIN/pandoctl" submit "$TMP/ckpt.yaml" --wait >"$TMP/out" 2>&1 || { cat "$TMP/out" >&2; exit 1; }
  with="$with $(sps "$TMP/out" "$rows")"
done
m_with=$(echo "$with" | median) m_without=$(echo "$without" | median)
echo "### A checkpoint every epoch, $(basename "$SPEC") ($EPOCHS epochs, M=2, N=2, BSP), $cpu"
echo
echo "| samples/s (epochs 2..$EPOCHS), median of $RUNS | without | with | with / without |"
echo "| --- | --- | --- | --- |"
echo "| runs:$without / $with | $m_without | $m_with | $(awk -v a="$m_with" -v b="$m_without" 'BEGIN { printf "%.3f", a / b }') |"
echo
fi

if part big; then
  /usr/bin/python3 tools/fmnist-cut.py "$TMP" 1280
  big() { # big NAME EXTRA: the 100M-parameter job
    cat <<YAML
name: $1
model: {type: softmax, layers: [784, 127551], seed: 3}
data:
  train: {features: $TMP/train-images.gz, labels: $TMP/train-labels.gz}
  test: {features: $TMP/test-images.gz, labels: $TMP/test-labels.gz}
training: {epochs: 4, batch_size: 64, update: bsp, optimizer: {type: adam, lr: 0.001}}
cluster: {servers: 4, workers: 2}
$2
YAML
  }
  big big-plain "" >"$TMP/big-plain.yaml"
  big big-ckpt "checkpoint: {every_epochs: 1}" >"$TMP/big-ckpt.yaml"
  cluster 10 4
  echo "bench-recovery: 100M parameters on 4 servers without checkpoints" >&2
  "$BIN/pandoctl" submit "$TMP/big-plain.yaml" --wait >"$TMP/out" 2>&1 || { cat "$TMP/out" >&2; exit 1; }
  b_without=$(sps "$TMP/out" 1280)
  echo "bench-recovery: 100M parameters on 4 servers with a checkpoint every epoch" >&2
  "$BIN/pandoctl" submit "$TMP/big-ckpt.yaml" --wait >"$TMP/out" 2>&1 || { cat "$TMP/out" >&2; exit 1; }
  b_with=$(sps "$TMP/out" 1280)
  state=$(du -sb "$DIR"/data-ps-* | awk '{ s += $1 } END { printf "%.2f", s / 2^30 }')
  echo "### A checkpoint every epoch, 100M parameters (softmax 784 x 127551, Adam) on M=4 servers, N=2 workers, BSP, $cpu"
  echo
  echo "| samples/s (epochs 2..4), one run each | without | with | with / without | checkpoint files on disk at the end |"
  echo "| --- | --- | --- | --- | --- |"
  echo "| 1,280 rows, batch 64 | $b_without | $b_with | $(awk -v a="$b_with" -v b="$b_without" 'BEGIN { printf "%.3f", a / b }') | $state GiB |"
  echo
fi

# now: seconds since the epoch, with ms
now() { date +%s.%N | cut -c1-14; }
# wait_log FILE TEXT COUNT: waits until FILE has COUNT lines matching TEXT; prints when
wait_log() {
  while [ "$(grep -c "$2" "$1" 2>/dev/null || true)" -lt "$3" ]; do sleep 0.05; done
  now
}
part kill || exit 0
{ sed "s/epochs: [0-9]*/epochs: 50/" "$SPEC"; echo "checkpoint: {every_clocks: 20, keep: 2}"; } >"$TMP/kill.yaml"
echo "### From a kill -9 of a server to training again, $(basename "$SPEC"), $cpu"
echo
echo "| heartbeat, node_timeout | kill -> RECOVERING (s) | kill -> RUNNING again (s) | runs |"
echo "| --- | --- | --- | --- |"
for timeout in 10 3; do
  cluster "$timeout"
  job=$("$BIN/pandoctl" submit "$TMP/kill.yaml")
  [ -n "$job" ] || { echo "bench-recovery: the submit printed no job id" >&2; exit 1; }
  detect="" back=""
  k=0
  while [ $k -lt "$KILLS" ]; do
    k=$((k + 1))
    # a checkpoint of this job on ps-1 first, then the kill
    n=$(find "$DIR/data-ps-1/jobs/$job" -name '*.manifest' 2>/dev/null | wc -l)
    while [ "$(find "$DIR/data-ps-1/jobs/$job" -name '*.manifest' 2>/dev/null | wc -l)" -le "$n" ]; do sleep 0.1; done
    echo "bench-recovery: node_timeout $timeout s, kill $k of $KILLS" >&2
    t0=$(now)
    kill -KILL "$(cat "$DIR/ps-1.pid")"
    mv "$DIR/ps-1.log" "$DIR/ps-1.log.$timeout.$k"
    rm -f "$DIR/ps-1.port"
    start ps-1 "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR" --data-dir "$DIR/data-ps-1"
    t1=$(wait_log "$DIR/coordinator.log" "job $job: RECOVERING" "$k")
    t2=$(wait_log "$DIR/coordinator.log" "job $job: RUNNING again" "$k")
    detect="$detect $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
    back="$back $(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.2f", b - a }')"
  done
  "$BIN/pandoctl" cancel "$job" >/dev/null
  echo "| 200 ms, $timeout s | $(echo "$detect" | median) | $(echo "$back" | median) | $KILLS:$detect /$back |"
done
