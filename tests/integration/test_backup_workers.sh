# BSP with backup workers (Abadi et al. 2016): N = 2 gradients per round from
# N + b = 3 workers. With one worker 5x slower, rounds go on without it: it
# misses (loses or skips) most of the job's clocks, while plain BSP with the
# same straggler waits for it: the other worker's pulls block in most rounds
# and the straggler misses none. Every gradient the servers dropped is one
# the straggler (or another late worker) lost. Each worker simulates 20 ms of
# compute per batch (--batch-delay-ms). The checks count work done (clocks,
# gradients, blocked pulls), never time: they hold on any CPU.
. tests/integration/lib.sh
# Stopped workers are noticed after this many seconds without heartbeats;
# 1 s failed live workers whose heartbeats were late on a loaded machine.
T_NODE_TIMEOUT=5
t_small_data "$T_DIR" 2048
spec() { # spec NAME BACKUPS WORKERS
  cat <<YAML
name: $1
model: {type: mlp, layers: [784, 32, 10], seed: 2}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: 3, batch_size: 32, update: bsp, backup_workers: $2, optimizer: {lr: 0.1}}
cluster: {servers: 1, workers: $3}
YAML
}
T_WORKER_ARGS_0="--batch-delay-ms 20"
T_WORKER_ARGS_1="--batch-delay-ms 20"
T_WORKER_ARGS_2="--batch-delay-ms 20"
t_cluster 1 3 || { t_fail "cluster started"; t_done; }
alive_workers() {
  "$BIN/pandoctl" -o json cluster | /usr/bin/python3 -c 'import json,sys; print(sum(1 for n in json.load(sys.stdin)["nodes"] if n["role"] == "WORKER" and n["alive"]))'
}
stop_worker() { # stop_worker NAME: stops it and waits until the coordinator sees it gone
  local before i=0
  before=$(alive_workers)
  kill -TERM "$(t_pid "$1")"
  while [ "$(alive_workers)" -ge "$before" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
}
clocks() { # clocks JOB: the job's clocks (one per step of every epoch)
  t_json "$T_DIR/$1.json" 'j["epochs"] * j["steps_per_epoch"]'
}
missed() { # missed JOB WORKER: clocks WORKER lost (gradient dropped) or skipped in JOB
  sed -n "s/.*job $1: \([0-9]*\) gradients dropped.*, \([0-9]*\) clocks skipped.*/\1 \2/p" \
    "$T_DIR/$2.log" | awk '{s += $1 + $2} END {print s + 0}'
}
run() { # run NAME BACKUPS WORKERS: runs a job to the end, prints its id
  local job
  spec "$1" "$2" "$3" >"$T_DIR/$1.yaml"
  job=$(t_submit "$T_DIR/$1.yaml")
  [ "$(t_wait_job "$job" 120)" = SUCCEEDED ] || echo "# $job did not succeed" >&2
  echo "$job"
}

# A: N = 2 with a backup worker, nobody slow
a=$(run fast 1 2)
t_check "backup job $a without a straggler succeeded" [ "$(t_json "$T_DIR/$a.json" 'j["state"]')" = SUCCEEDED ]
t_check "it ran N + b = 3 workers" [ "$(t_json "$T_DIR/$a.json" 'j["workers"]')" = 3 ]

# B: the same with worker w2 replaced by a 5x straggler
stop_worker w2
t_start slow "$BIN/pando-worker" --coordinator "$PANDO_COORDINATOR" --name slow \
  --batch-delay-ms 20 --slowdown 5
i=0; while [ "$(alive_workers)" != 3 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
b=$(run straggler 1 2)
t_check "backup job $b with a 5x straggler succeeded" [ "$(t_json "$T_DIR/$b.json" 'j["state"]')" = SUCCEEDED ]
"$BIN/pandoctl" -o json status "$b" >"$T_DIR/$b.json"
nb=$(clocks "$b"); slow_missed=$(missed "$b" slow)
echo "# the straggler missed $slow_missed of $nb clocks"
t_check "rounds went on without the straggler: it missed most clocks ($slow_missed of $nb)" \
  [ $((slow_missed * 2)) -ge "$nb" ]
dropped=$(t_json "$T_DIR/$b.json" 'j["stats"]["dropped"]')
lost=$(cat "$T_DIR"/w0.log "$T_DIR"/w1.log "$T_DIR"/slow.log |
  sed -n "s/.*job $b: \([0-9]*\) gradients dropped.*/\1/p" | awk '{s += $1} END {print s + 0}')
slow_lost=$(sed -n "s/.*job $b: \([0-9]*\) gradients dropped.*/\1/p" "$T_DIR/slow.log")
echo "# dropped $dropped gradients; the straggler lost $slow_lost clocks, all workers $lost"
t_check "the server dropped gradients ($dropped)" [ "$dropped" -gt 0 ]
t_check "the dropped count equals the clocks the workers lost ($dropped = $lost)" [ "$dropped" = "$lost" ]
t_check "the straggler lost most of them ($slow_lost of $dropped)" [ $((slow_lost * 2)) -gt "$dropped" ]
t_check "every round averaged fresh gradients (staleness 0 only)" \
  [ "$(t_json "$T_DIR/$b.json" 'sum(j["stats"]["staleness"].values()) == j["stats"]["staleness"]["0"]')" = True ]

# C: plain BSP, N = 2, one of them the straggler
stop_worker w1
c=$(run plain 0 2)
t_check "plain BSP job $c with the straggler succeeded" [ "$(t_json "$T_DIR/$c.json" 'j["state"]')" = SUCCEEDED ]
"$BIN/pandoctl" -o json status "$c" >"$T_DIR/$c.json"
nc=$(clocks "$c"); blocked=$(t_json "$T_DIR/$c.json" 'j["stats"]["blocked"]')
echo "# plain BSP with the straggler: $blocked blocked pulls in $nc clocks"
t_check "plain BSP waits for the straggler: pulls blocked in most rounds ($blocked of $nc)" \
  [ $((blocked * 2)) -ge "$nc" ]
t_check "and the straggler missed no clock ($(missed "$c" slow))" [ "$(missed "$c" slow)" = 0 ]
t_check "no gradient was dropped ($(t_json "$T_DIR/$c.json" 'j["stats"]["dropped"]'))" \
  [ "$(t_json "$T_DIR/$c.json" 'j["stats"]["dropped"]')" = 0 ]
t_done
