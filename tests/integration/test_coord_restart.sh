# The coordinator's state survives kill -9 (its data_dir, SQLite; README
# "Job states and recovery"): a finished job still shows in pandoctl status
# with its history after the restart; a BSP job with checkpoints that was
# RUNNING when the coordinator was killed goes RECOVERING, rolls back to its
# last complete checkpoint and SUCCEEDS with final parameters equal bit for
# bit to an undisturbed run's; a job without checkpoints FAILS, saying the
# coordinator restarted and a checkpoint: key would have let it continue,
# and its shards are dropped from both servers; job and node ids are never
# reused (a resubmitted job of the same name gets a new id, fresh shards
# and trains every epoch). pandoctl resume of a job cancelled after a
# checkpoint (across one more restart) rolls it back and it SUCCEEDS with
# the undisturbed run's parameters; resume refuses a job without
# checkpoints and one that is not FAILED or CANCELLED. Every step waits on a state, a file or a log
# line.
. tests/integration/lib.sh
t_small_data "$T_DIR" 512
spec() { # spec NAME CHECKPOINT-LINE
  cat <<YAML
name: $1
model: {type: softmax, layers: [784, 10], seed: 11}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: 3, batch_size: 16, update: bsp, shuffle: true, optimizer: {type: adam, lr: 0.002}}
cluster: {servers: 2, workers: 2, wait_timeout: 60}
$2
YAML
}
spec ref "checkpoint: {every_clocks: 4, keep: 3}" >"$T_DIR/ref.yaml"
spec ck "checkpoint: {every_clocks: 4, keep: 3}" >"$T_DIR/ck.yaml"
spec nock "" >"$T_DIR/nock.yaml"

# the workers take >= 0.1 s a batch: 48 clocks, the kills land mid-job
T_NODE_TIMEOUT=2
T_COORD_ARGS="--data-dir $T_DIR/coord"
T_WORKER_ARGS_0="--batch-delay-ms 100" T_WORKER_ARGS_1="--batch-delay-ms 100" \
  T_PS_ARGS_0="--data-dir $T_DIR/data0" T_PS_ARGS_1="--data-dir $T_DIR/data1" t_cluster 2 2 ||
  { t_fail "cluster started"; t_done; }
COORD_PORT=$(t_port coord)

# t_restart_coord N: kill -9 of the coordinator, started again (log coordN.log)
# on its port with its data_dir.
t_restart_coord() {
  kill -KILL "$(t_pid coord)"
  while kill -0 "$(t_pid coord)" 2>/dev/null; do sleep 0.1; done
  rm -f "$T_DIR/coord.port"
  # shellcheck disable=SC2046 # the TLS flags are words
  "$BIN/pando-coordinator" --heartbeat-ms 100 --node-timeout 2 --data-dir "$T_DIR/coord" \
    --listen "127.0.0.1:$COORD_PORT" --port-file "$T_DIR/coord.port" \
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
# t_wait_ckpt DIR JOB ID: waits until DIR holds a durable manifest of checkpoint ID of JOB.
t_wait_ckpt() {
  local i=0
  while ! ls "$1/jobs/$2/ckpt-$(printf %08d "$3")/"*.manifest >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -gt 600 ] && { echo "# no checkpoint $3 of $2 in $1" >&2; return 1; }
    sleep 0.1
  done
}
# t_wait_log FILE TEXT: waits until FILE has a line matching TEXT (grep).
t_wait_log() {
  local i=0
  until grep -q "$2" "$1" 2>/dev/null; do
    i=$((i + 1))
    [ $i -gt 600 ] && { echo "# $1 never said: $2" >&2; return 1; }
    sleep 0.1
  done
}
# t_epochs FILE: the epochs of the history in a job's status JSON, e.g. "1 2 3".
t_epochs() { t_json "$1" '" ".join(str(h["epoch"]) for h in j.get("history", []))'; }
# t_node_ids: the ids of the registered nodes, one a line.
t_node_ids() {
  "$BIN/pandoctl" cluster -o json |
    /usr/bin/python3 -c 'import json,sys; [print(n["node_id"]) for n in json.load(sys.stdin)["nodes"]]'
}
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

echo "# the undisturbed run"
ref=$(t_submit "$T_DIR/ref.yaml")
t_check "undisturbed job $ref succeeded" [ "$(t_wait_job "$ref")" = SUCCEEDED ]
t_check "its history has epochs 1 2 3" [ "$(t_epochs "$T_DIR/$ref.json")" = "1 2 3" ]
"$BIN/pandoctl" export "$ref" -o "$T_DIR/ref.safetensors" >/dev/null

echo "# kill -9 of the coordinator while a job with checkpoints runs"
job=$(t_submit "$T_DIR/ck.yaml")
t_check "job $job took checkpoint 4 on ps0" t_wait_ckpt "$T_DIR/data0" "$job" 4
t_check "job $job took checkpoint 4 on ps1" t_wait_ckpt "$T_DIR/data1" "$job" 4
ids_before=$(t_node_ids | sort -n | tail -n 1)
t_restart_coord 2
t_check "job $job went RECOVERING because the coordinator restarted" \
  t_wait_log "$T_DIR/coord2.log" "job $job: RECOVERING: the coordinator restarted while the job was RUNNING"
t_check "job $job succeeded after the coordinator's restart" [ "$(t_wait_job "$job")" = SUCCEEDED ]
t_check "the coordinator rolled $job back to a checkpoint" \
  grep -q "job $job: RUNNING again from checkpoint [1-9]" "$T_DIR/coord2.log"
"$BIN/pandoctl" export "$job" -o "$T_DIR/ck.safetensors" >/dev/null
t_check "its final parameters equal the undisturbed run's, bit for bit" \
  t_same "$T_DIR/ref.safetensors" "$T_DIR/ck.safetensors"
"$BIN/pandoctl" -o json status "$ref" >"$T_DIR/ref-after.json"
t_check "the finished $ref still shows SUCCEEDED with its history" \
  [ "$(t_json "$T_DIR/ref-after.json" 'j["state"]')/$(t_epochs "$T_DIR/ref-after.json")" = "SUCCEEDED/1 2 3" ]
t_check "every node re-registered with a new id, above every id before the restart ($ids_before)" \
  [ "$(t_node_ids | sort -n | head -n 1)" -gt "$ids_before" ]
t_check "the restarted coordinator has the 4 nodes" [ "$(t_node_ids | wc -l)" -eq 4 ]

echo "# a resubmitted job of the same name"
again=$(t_submit "$T_DIR/ref.yaml")
t_check "it has a new id ($again, not $ref)" [ -n "$again" ] && [ "$again" != "$ref" ] && [ "$again" != "$job" ]
t_check "job $again succeeded" [ "$(t_wait_job "$again")" = SUCCEEDED ]
t_check "it trained: its history has every epoch" [ "$(t_epochs "$T_DIR/$again.json")" = "1 2 3" ]
t_check "both servers hold a fresh shard of $again" \
  sh -c "grep -q 'job $again: holding keys' '$T_DIR/ps0.log' && grep -q 'job $again: holding keys' '$T_DIR/ps1.log'"
"$BIN/pandoctl" export "$again" -o "$T_DIR/again.safetensors" >/dev/null
t_check "its parameters equal the undisturbed run's" t_same "$T_DIR/ref.safetensors" "$T_DIR/again.safetensors"

echo "# kill -9 of the coordinator while a job without checkpoints runs"
job=$(t_submit "$T_DIR/nock.yaml")
t_check "job $job is RUNNING" t_wait_state "$job" RUNNING
t_wait_log "$T_DIR/ps1.log" "job $job: holding keys"
t_restart_coord 3
t_check "job $job FAILED" [ "$(t_wait_job "$job")" = FAILED ]
t_check "its message says the coordinator restarted and a checkpoint: key would have let it continue" \
  sh -c "grep -q 'the coordinator restarted while the job was RUNNING' '$T_DIR/$job.json' &&
         grep -q 'a checkpoint: key in the job spec' '$T_DIR/$job.json'"
t_check "its shard was dropped from ps0" t_wait_log "$T_DIR/ps0.log" "job $job: dropped"
t_check "its shard was dropped from ps1" t_wait_log "$T_DIR/ps1.log" "job $job: dropped"
t_check "the jobs before are all still known" \
  sh -c "'$BIN/pandoctl' status '$ref' >/dev/null && '$BIN/pandoctl' status '$again' >/dev/null"
t_check "pandoctl resume refuses the job without checkpoints, saying why" \
  sh -c "! '$BIN/pandoctl' resume '$job' >'$T_DIR/resume-nock.txt' 2>&1 &&
         grep -q 'takes no checkpoints' '$T_DIR/resume-nock.txt'"

echo "# pandoctl resume of a cancelled job, across a restart of the coordinator"
job=$(t_submit "$T_DIR/ck.yaml")
t_check "job $job took checkpoint 8 on ps0" t_wait_ckpt "$T_DIR/data0" "$job" 8
t_check "job $job took checkpoint 8 on ps1" t_wait_ckpt "$T_DIR/data1" "$job" 8
"$BIN/pandoctl" cancel "$job" >/dev/null
t_check "job $job is CANCELLED" [ "$(t_wait_job "$job")" = CANCELLED ]
t_check "pandoctl resume refuses a job that is not FAILED or CANCELLED" \
  sh -c "! '$BIN/pandoctl' resume '$ref' >'$T_DIR/resume-ref.txt' 2>&1 &&
         grep -q 'only a FAILED or CANCELLED job can be resumed' '$T_DIR/resume-ref.txt'"
t_restart_coord 4
t_check "the restarted coordinator still has $job CANCELLED" [ "$(t_wait_job "$job")" = CANCELLED ]
t_check "pandoctl resume $job answers RECOVERING" \
  sh -c "'$BIN/pandoctl' resume '$job' | grep -q RECOVERING"
state=$(t_wait_job "$job")
[ "$state" = SUCCEEDED ] || # what to look at when it did not
  echo "# $job: $state: $(t_json "$T_DIR/$job.json" 'j.get("message","")' 2>/dev/null)"
t_check "job $job succeeded after its resume" [ "$state" = SUCCEEDED ]
t_check "it was rolled back to a checkpoint of its own" \
  grep -q "job $job: RUNNING again from checkpoint [1-9]" "$T_DIR/coord4.log"
t_check "its history has every epoch" [ "$(t_epochs "$T_DIR/$job.json")" = "1 2 3" ]
"$BIN/pandoctl" export "$job" -o "$T_DIR/resumed.safetensors" >/dev/null
t_check "its final parameters equal the undisturbed run's, bit for bit" \
  t_same "$T_DIR/ref.safetensors" "$T_DIR/resumed.safetensors"
t_done
