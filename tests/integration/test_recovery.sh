# Jobs survive kill -9 of a pando-ps or a worker (docs/architecture.md
# "Recovery"): a BSP job (fixed seeds, M = 2 servers with a data_dir, N = 2
# workers, checkpoint every 4 clocks) whose server is killed after its first
# checkpoint and restarted with the same name and data_dir goes RECOVERING,
# then SUCCEEDS with final parameters (pandoctl export, compared with numpy)
# equal bit for bit to those of an undisturbed run of the same spec; the same
# for a worker killed and a replacement worker started, and for a job with
# checkpoint.every_seconds (worker 0 asks the shards for one). A job without
# checkpoints whose server is killed FAILS, saying a checkpoint: key would
# have let it recover; a worker killed before the first checkpoint makes the
# job start again from the seed. Every step waits on a state, a file or a
# log line.
. tests/integration/lib.sh
. tests/integration/recovery.sh
t_small_data "$T_DIR" 512
t_recovery_spec ref "checkpoint: {every_clocks: 4, keep: 3}" >"$T_DIR/ref.yaml"
t_recovery_spec psk "checkpoint: {every_clocks: 4, keep: 3}" >"$T_DIR/psk.yaml"
t_recovery_spec wk "checkpoint: {every_epochs: 1}" >"$T_DIR/wk.yaml"
t_recovery_spec early "checkpoint: {every_clocks: 40}" >"$T_DIR/early.yaml"
t_recovery_spec nock "" >"$T_DIR/nock.yaml"
t_recovery_spec secs "checkpoint: {every_seconds: 1, keep: 3}" >"$T_DIR/secs.yaml"
for mode in asp ssp; do
  for kind in ref kill; do
    t_recovery_spec "$mode-$kind" "checkpoint: {every_clocks: 4, keep: 3}" |
      sed "s/update: bsp/update: $mode$([ $mode = ssp ] && echo ', staleness: 2')/" \
        >"$T_DIR/$mode-$kind.yaml"
  done
done

# the workers take >= 0.1 s a batch: 48 clocks, the kills land mid-job
T_NODE_TIMEOUT=2
t_recovery_cluster


echo "# the undisturbed run"
ref=$(t_submit "$T_DIR/ref.yaml")
t_check "undisturbed job $ref succeeded" [ "$(t_wait_job "$ref")" = SUCCEEDED ]
"$BIN/pandoctl" export "$ref" -o "$T_DIR/ref.safetensors" >/dev/null

echo "# kill -9 of a server after the first checkpoint"
job=$(t_submit "$T_DIR/psk.yaml")
t_check "job $job took its first checkpoint on ps1" t_wait_ckpt "$T_DIR/data1" "$job" 4
kill -KILL "$(t_pid ps1)"
t_check "job $job went RECOVERING" t_wait_state "$job" RECOVERING
t_check "its message names server ps1" t_wait_message "$job" "server ps1 "
"$BIN/pandoctl" status "$job" >"$T_DIR/psk-status.txt" 2>&1
t_check "pandoctl status shows RECOVERING" grep -q RECOVERING "$T_DIR/psk-status.txt"
t_start ps1b "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR" --name ps1 --data-dir "$T_DIR/data1"
t_check "job $job succeeded after the server's restart" [ "$(t_wait_job "$job")" = SUCCEEDED ]
t_check "the coordinator rolled $job back to a checkpoint" \
  grep -q "job $job: RUNNING again from checkpoint" "$T_DIR/coord.log"
"$BIN/pandoctl" export "$job" -o "$T_DIR/psk.safetensors" >/dev/null
t_check "its final parameters equal the undisturbed run's, bit for bit" \
  t_same "$T_DIR/ref.safetensors" "$T_DIR/psk.safetensors"

echo "# checkpoint.every_seconds: kill -9 of a server after the first checkpoint"
job=$(t_submit "$T_DIR/secs.yaml")
# both_ckpt: both servers hold a durable manifest of some checkpoint of $job
both_ckpt() {
  ls "$T_DIR/data0/jobs/$job"/ckpt-*/*.manifest "$T_DIR/data1/jobs/$job"/ckpt-*/*.manifest \
    >/dev/null 2>&1
}
t_check "job $job took a checkpoint on both servers (worker 0 asks every second)" \
  t_wait_until "no checkpoint of $job" both_ckpt
kill -KILL "$(t_pid ps1b)"
t_check "job $job went RECOVERING" t_wait_state "$job" RECOVERING
t_start ps1c "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR" --name ps1 --data-dir "$T_DIR/data1"
t_check "job $job succeeded after the server's restart" [ "$(t_wait_job "$job")" = SUCCEEDED ]
t_check "the coordinator rolled $job back to a checkpoint after clock 0" \
  grep -q "job $job: RUNNING again from checkpoint [1-9]" "$T_DIR/coord.log"
"$BIN/pandoctl" export "$job" -o "$T_DIR/secs.safetensors" >/dev/null
t_check "its final parameters equal the undisturbed run's, bit for bit" \
  t_same "$T_DIR/ref.safetensors" "$T_DIR/secs.safetensors"

echo "# kill -9 of a worker, a replacement worker started"
job=$(t_submit "$T_DIR/wk.yaml")
t_check "job $job took its first checkpoint (every_epochs: 1, epoch 1's end: clock 16)" \
  t_wait_ckpt "$T_DIR/data0" "$job" 16
kill -KILL "$(t_pid w1)"
t_check "job $job went RECOVERING" t_wait_state "$job" RECOVERING
t_check "it waits for a worker to take rank 1" \
  t_wait_message "$job" "waiting for an idle worker to take rank 1"
t_start w2 "$BIN/pando-worker" --coordinator "$PANDO_COORDINATOR" --name w2 --batch-delay-ms 100
t_check "job $job succeeded with the replacement worker" [ "$(t_wait_job "$job")" = SUCCEEDED ]
t_check "the replacement w2 took rank 1" grep -q "job $job: worker w2 (node [0-9]*) takes rank 1" \
  "$T_DIR/coord.log"
t_check "w2 resumed from a checkpoint's clock" grep -q "job $job: resuming at clock [1-9]" "$T_DIR/w2.log"
"$BIN/pandoctl" export "$job" -o "$T_DIR/wk.safetensors" >/dev/null
t_check "its final parameters equal the undisturbed run's, bit for bit" \
  t_same "$T_DIR/ref.safetensors" "$T_DIR/wk.safetensors"

echo "# kill -9 of a worker before the job's first checkpoint (clock 40)"
job=$(t_submit "$T_DIR/early.yaml")
t_check "job $job is RUNNING" t_wait_state "$job" RUNNING
kill -KILL "$(t_pid w2)"
t_check "job $job went RECOVERING" t_wait_state "$job" RECOVERING
t_check "it waits for a worker to take rank 1" \
  t_wait_message "$job" "waiting for an idle worker to take rank 1"
t_start w3 "$BIN/pando-worker" --coordinator "$PANDO_COORDINATOR" --name w3 --batch-delay-ms 100
t_check "job $job succeeded with the replacement w3" [ "$(t_wait_job "$job")" = SUCCEEDED ]
# the workers take >= 4 s to reach clock 40; should this machine have been slower still:
if grep -q "job $job: RUNNING again from checkpoint 40 " "$T_DIR/coord.log"; then
  echo "# the kill came after checkpoint 40: the start from the seed is not tested"
else
  t_check "the coordinator started $job again from clock 0" \
    grep -q "job $job: RUNNING again from checkpoint 0 (the start)" "$T_DIR/coord.log"
fi
"$BIN/pandoctl" export "$job" -o "$T_DIR/early.safetensors" >/dev/null
t_check "its final parameters equal the undisturbed run's, bit for bit" \
  t_same "$T_DIR/ref.safetensors" "$T_DIR/early.safetensors"

# accuracy JSON: the last epoch's test accuracy
accuracy() { t_json "$1" 'j["history"][-1]["test_accuracy"]'; }
for mode in asp ssp; do
  echo "# $mode: kill -9 of a server after the first checkpoint (taken at the slowest worker's clock)"
  ref=$(t_submit "$T_DIR/$mode-ref.yaml")
  t_check "undisturbed $mode job $ref succeeded" [ "$(t_wait_job "$ref")" = SUCCEEDED ]
  job=$(t_submit "$T_DIR/$mode-kill.yaml")
  t_check "$mode job $job took its first checkpoint on ps0" t_wait_ckpt "$T_DIR/data0" "$job" 4
  kill -KILL "$(t_pid ps0)"
  t_check "$mode job $job went RECOVERING" t_wait_state "$job" RECOVERING
  t_start "ps0$mode" "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR" --name ps0 \
    --data-dir "$T_DIR/data0"
  PID_ps0=$(t_pid "ps0$mode")
  t_check "$mode job $job succeeded after the server's restart" \
    [ "$(t_wait_job "$job")" = SUCCEEDED ]
  t_check "the coordinator rolled $job back to a checkpoint after clock 0" \
    grep -q "job $job: RUNNING again from checkpoint [1-9]" "$T_DIR/coord.log"
  t_check "$job's history has every epoch ($(t_epochs "$T_DIR/$job.json"))" \
    [ "$(t_epochs "$T_DIR/$job.json")" = "1 2 3" ]
  # ASP and SSP apply gradients in their order of arrival, so two undisturbed
  # runs differ too: on these 128 test rows they were 0.0547 apart (7 rows)
  # in a clean-clone make test; the bound is 0.1 (13 rows). That every
  # gradient is applied exactly once is the ledger's (test_ps_recovery.py).
  ra=$(accuracy "$T_DIR/$ref.json") ka=$(accuracy "$T_DIR/$job.json")
  t_check "its test accuracy $ka is within 0.1 of the undisturbed $mode run's $ra" \
    /usr/bin/python3 -c "import sys; sys.exit(abs($ka - $ra) > 0.1)"
done

echo "# a job without checkpoints"
job=$(t_submit "$T_DIR/nock.yaml")
t_check "job $job is RUNNING" t_wait_state "$job" RUNNING
kill -KILL "$(t_pid ps0)"
t_check "job $job without checkpoints FAILED" [ "$(t_wait_job "$job")" = FAILED ]
t_check "its message says a checkpoint: key would have let it recover" \
  grep -q "a checkpoint: key in the job spec" "$T_DIR/$job.json"
t_done
