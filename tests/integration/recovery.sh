# Helpers of the recovery tests (test_recovery, test_coord_restart,
# test_chaos): waits on a job's state, message, checkpoint files and log
# lines, and bit-for-bit comparison of exported models. Sourced after lib.sh.
# t_restart_coord N: kill -9 of the coordinator, started again (log coordN.log)
# on its port with its data_dir.
# COORD_PORT is its port (t_port coord after t_cluster).
t_restart_coord() {
  kill -KILL "$(t_pid coord)"
  while kill -0 "$(t_pid coord)" 2>/dev/null; do sleep 0.1; done
  rm -f "$T_DIR/coord.port"
  # shellcheck disable=SC2046 # the TLS flags are words
  "$BIN/pando-coordinator" --heartbeat-ms 100 --node-timeout "${T_NODE_TIMEOUT:-5}" \
    --data-dir "$T_DIR/coord" --listen "127.0.0.1:$COORD_PORT" --port-file "$T_DIR/coord.port" \
    --metrics-listen 127.0.0.1:0 --plugin-dir "$PWD/$BUILD" $(t_tls_flags pando-coordinator) \
    >"$T_DIR/coord$1.log" 2>&1 &
  T_PIDS="$T_PIDS $!"
  PID_coord=$!
  t_wait_file "$T_DIR/coord.port"
}
# t_wait_state JOB STATE [SECONDS]: waits until JOB is in STATE (0) or ended in another (1).
t_wait_state() {
  local i=0 state
  while :; do
    state=$("$BIN/pandoctl" -o json status "$1" 2>/dev/null |
      /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin).get("state",""))' 2>/dev/null)
    [ "$state" = "$2" ] && return 0
    case $state in SUCCEEDED|FAILED|CANCELLED) echo "# $1 ended $state" >&2; return 1 ;; esac
    i=$((i + 1))
    [ $i -gt $((${3:-60} * 10)) ] && { echo "# $1 never $2" >&2; return 1; }
    sleep 0.1
  done
}
# t_wait_until WHAT COMMAND...: waits (60 s at most) until COMMAND succeeds;
# else says "# WHAT" and fails.
t_wait_until() {
  local i=0 what=$1
  shift
  until "$@"; do
    i=$((i + 1))
    [ $i -gt 600 ] && { echo "# $what" >&2; return 1; }
    sleep 0.1
  done
}
# t_wait_message JOB TEXT: waits until JOB's status message contains TEXT.
t_wait_message() {
  t_wait_until "the message of $1 never said: $2" \
    sh -c '"$0" -o json status "$1" 2>/dev/null | grep -q "$2"' "$BIN/pandoctl" "$1" "$2"
}
# t_wait_ckpt DIR JOB ID: waits until DIR holds a durable manifest of checkpoint ID of JOB.
t_wait_ckpt() {
  t_wait_until "no checkpoint $3 of $2 in $1" \
    sh -c 'ls "$0"/*.manifest >/dev/null 2>&1' "$1/jobs/$2/ckpt-$(printf %08d "$3")"
}
# t_wait_log FILE TEXT: waits until FILE has a line matching TEXT (grep).
t_wait_log() { t_wait_until "$1 never said: $2" grep -q "$2" "$1"; }
# t_recovery_cluster [DELAY-MS]: t_cluster 2 2 for the recovery tests: the
# servers with data_dirs $T_DIR/data0 and data1, the workers taking >= DELAY
# ms a batch (default 100: the kills land mid-job); T_NODE_TIMEOUT and
# T_COORD_ARGS as t_cluster has them. Fails the test if it does not start.
t_recovery_cluster() {
  T_WORKER_ARGS_0="--batch-delay-ms ${1:-100}" T_WORKER_ARGS_1="--batch-delay-ms ${1:-100}" \
    T_PS_ARGS_0="--data-dir $T_DIR/data0" T_PS_ARGS_1="--data-dir $T_DIR/data1" t_cluster 2 2 ||
    { t_fail "cluster started"; t_done; }
}
# t_recovery_spec NAME EXTRA [EPOCHS BATCH]: the recovery tests' BSP job of
# softmax on t_small_data's rows (fixed seeds: deterministic), M = N = 2,
# with the lines EXTRA (e.g. its checkpoint: key).
t_recovery_spec() {
  cat <<YAML
name: $1
model: {type: softmax, layers: [784, 10], seed: 11}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: ${3:-3}, batch_size: ${4:-16}, update: bsp, shuffle: true, optimizer: {type: adam, lr: 0.002}}
cluster: {servers: 2, workers: 2, wait_timeout: 60}
$2
YAML
}
# t_epochs FILE: the epochs of the history in a job's status JSON, e.g. "1 2 3".
t_epochs() { t_json "$1" '" ".join(str(h["epoch"]) for h in j.get("history", []))'; }
# t_same A.safetensors B.safetensors: the same tensors, names, shapes and float32 bits.
t_same() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, struct, sys
import numpy as np
def load(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    return {k: (d["dtype"], d["shape"], np.frombuffer(raw[8 + n + d["data_offsets"][0]:
                                                        8 + n + d["data_offsets"][1]], dtype="<u4"))
            for k, d in header.items()}
a, b = load(sys.argv[1]), load(sys.argv[2])
ok = a.keys() == b.keys() and all(
    a[k][0] == b[k][0] and a[k][1] == b[k][1] and np.array_equal(a[k][2], b[k][2]) for k in a)
for k in a:
    if k in b and a[k][2].size == b[k][2].size:
        print("# %s: %d of %d values differ" % (k, int(np.sum(a[k][2] != b[k][2])), a[k][2].size))
sys.exit(0 if ok else 1)
PY
}

