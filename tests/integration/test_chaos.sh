# Twenty kills during one job (issue "Durability"): a BSP job with
# checkpoints (M = 2 servers with a data_dir, N = 2 workers, a coordinator
# with a data_dir) while, one after another, a random daemon (a server, a
# worker or the coordinator) is killed with SIGKILL at a random moment and
# started again with its name and data_dir. After each kill the test waits
# until the job runs again (the coordinator logs "RUNNING again"), then lets
# it train a random while before the next kill. The job SUCCEEDS with every
# epoch in its history, its test accuracy within 0.5 points of an
# undisturbed run's and, BSP being deterministic, its final parameters equal
# to the undisturbed run's bit for bit. PANDO_CHAOS_SEED replays a run.
. tests/integration/lib.sh
. tests/integration/recovery.sh
t_small_data "$T_DIR" 512
KILLS=${PANDO_CHAOS_KILLS:-20}
SEED=${PANDO_CHAOS_SEED:-$(($(date +%s) % 100000))}
echo "# $KILLS kills, seed $SEED (PANDO_CHAOS_SEED)"
CK="checkpoint: {every_clocks: 4, keep: 3}"
t_recovery_spec ref "$CK" 10 8 >"$T_DIR/ref.yaml"
t_recovery_spec chaos "$CK" 10 8 >"$T_DIR/chaos.yaml"

# 320 clocks of >= 0.05 s: the kills, a random 0.2-0.8 s of training apart,
# land before its end
T_NODE_TIMEOUT=2
T_COORD_ARGS="--data-dir $T_DIR/coord"
t_recovery_cluster 50
COORD_PORT=$(t_port coord)

# the number of roll backs the coordinator logged, over all its lives
rollbacks() { cat "$T_DIR"/coord*.log | grep -c "job $1: RUNNING again from checkpoint"; }
# accuracy JSON: the last epoch's test accuracy
accuracy() { t_json "$1" 'j["history"][-1]["test_accuracy"]'; }

echo "# the undisturbed run"
ref=$(t_submit "$T_DIR/ref.yaml")
t_check "undisturbed job $ref succeeded" [ "$(t_wait_job "$ref" 300)" = SUCCEEDED ]
"$BIN/pandoctl" export "$ref" -o "$T_DIR/ref.safetensors" >/dev/null

echo "# the run with kills"
job=$(t_submit "$T_DIR/chaos.yaml")
t_check "job $job is RUNNING" t_wait_state "$job" RUNNING
draw() { # draw N: R = a number in [0, N) of the seeded stream (no subshell: SEED moves on)
  SEED=$(((SEED * 1103515245 + 12345) % 2147483648))
  R=$(((SEED / 65536) % $1))
}
k=0 victims="" lost=""
while [ $k -lt "$KILLS" ]; do
  draw 7
  sleep "0.$((2 + R))"
  "$BIN/pandoctl" -o json status "$job" >"$T_DIR/$job.json" 2>/dev/null
  case $(t_json "$T_DIR/$job.json" 'j.get("state","")' 2>/dev/null) in
    RUNNING) ;;
    *) lost="the job was $(t_json "$T_DIR/$job.json" 'j.get("state","")') before kill $((k + 1))"; break ;;
  esac
  k=$((k + 1))
  before=$(rollbacks "$job")
  draw 5
  set -- ps0 ps1 w0 w1 coord
  shift "$R"
  victim=$1
  victims="$victims $victim"
  case $victim in
    coord) t_restart_coord "$k" ;;
    *)
      kill -KILL "$(t_pid "$victim")"
      t_wait_state "$job" RECOVERING 30 || { lost="no RECOVERING after kill $k ($victim)"; break; }
      case $victim in
        ps*) t_start "$victim-$k" "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR" \
          --name "$victim" --data-dir "$T_DIR/data${victim#ps}" ;;
        w*) t_start "$victim-$k" "$BIN/pando-worker" --coordinator "$PANDO_COORDINATOR" \
          --name "$victim" --batch-delay-ms 50 ;;
      esac
      eval "PID_$victim=\$(t_pid $victim-$k)"
      ;;
  esac
  i=0
  while [ "$(rollbacks "$job")" -le "$before" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
  [ "$(rollbacks "$job")" -gt "$before" ] || { lost="job $job did not run again after kill $k ($victim)"; break; }
done
echo "# killed:$victims"
t_check "$KILLS daemons were killed during the job, each time it ran again${lost:+ ($lost)}" \
  [ $k -eq "$KILLS" ] && [ -z "$lost" ]
state=$(t_wait_job "$job" 300)
[ "$state" = SUCCEEDED ] ||
  echo "# $job: $state: $(t_json "$T_DIR/$job.json" 'j.get("message","")' 2>/dev/null)"
t_check "job $job succeeded after $k kills" [ "$state" = SUCCEEDED ]
t_check "its history has every epoch" \
  [ "$(t_epochs "$T_DIR/$job.json")" = "1 2 3 4 5 6 7 8 9 10" ]
ra=$(accuracy "$T_DIR/$ref.json") ca=$(accuracy "$T_DIR/$job.json")
t_check "its test accuracy $ca is within 0.5 points of the undisturbed run's $ra" \
  /usr/bin/python3 -c "import sys; sys.exit(abs($ca - $ra) > 0.005)"
"$BIN/pandoctl" export "$job" -o "$T_DIR/chaos.safetensors" >/dev/null
t_check "its final parameters equal the undisturbed run's, bit for bit" \
  t_same "$T_DIR/ref.safetensors" "$T_DIR/chaos.safetensors"
t_done
