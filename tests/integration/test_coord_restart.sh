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
# checkpoints and one that is not FAILED or CANCELLED. A coordinator frozen
# (SIGSTOP) over the end of epoch 1 and then killed loses no epoch: worker 0
# keeps retrying the report that holds the evaluation, so the job cannot
# pass checkpoint 16, and after the roll back to it the workers replay the
# epoch's end from the checkpoint (services/worker/train.c). Every step
# waits on a state, a file or a log line.
. tests/integration/lib.sh
. tests/integration/recovery.sh
t_small_data "$T_DIR" 512
t_recovery_spec ref "checkpoint: {every_clocks: 4, keep: 3}" >"$T_DIR/ref.yaml"
t_recovery_spec ck "checkpoint: {every_clocks: 4, keep: 3}" >"$T_DIR/ck.yaml"
t_recovery_spec nock "" >"$T_DIR/nock.yaml"

# the workers take >= 0.1 s a batch: 48 clocks, the kills land mid-job
T_NODE_TIMEOUT=2
T_COORD_ARGS="--data-dir $T_DIR/coord"
t_recovery_cluster
COORD_PORT=$(t_port coord)

# t_node_ids: the ids of the registered nodes, one a line.
t_node_ids() {
  "$BIN/pandoctl" cluster -o json |
    /usr/bin/python3 -c 'import json,sys; [print(n["node_id"]) for n in json.load(sys.stdin)["nodes"]]'
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
echo "# the coordinator frozen over the end of epoch 1, then killed: the epoch's evaluation is not lost"
job=$(t_submit "$T_DIR/ck.yaml")
t_check "job $job took checkpoint 8 on ps0" t_wait_ckpt "$T_DIR/data0" "$job" 8
kill -STOP "$(t_pid coord)"
# the workers train on; worker 0's report of epoch 1 (clock 16) waits for an answer
t_check "checkpoint 16, the end of epoch 1, is durable on ps0 while the coordinator is frozen" \
  t_wait_ckpt "$T_DIR/data0" "$job" 16
t_check "and on ps1" t_wait_ckpt "$T_DIR/data1" "$job" 16
t_restart_coord 5
t_check "job $job succeeded" [ "$(t_wait_job "$job")" = SUCCEEDED ]
t_check "it was rolled back to checkpoint 16, the end of epoch 1" \
  grep -q "job $job: RUNNING again from checkpoint 16 " "$T_DIR/coord5.log"
t_check "the restarted coordinator recorded epoch 1, evaluated again from the checkpoint" \
  grep -q "job $job: epoch 1: train loss" "$T_DIR/coord5.log"
t_check "its history has every epoch" [ "$(t_epochs "$T_DIR/$job.json")" = "1 2 3" ]
"$BIN/pandoctl" export "$job" -o "$T_DIR/frozen.safetensors" >/dev/null
t_check "its final parameters equal the undisturbed run's, bit for bit" \
  t_same "$T_DIR/ref.safetensors" "$T_DIR/frozen.safetensors"
t_done
