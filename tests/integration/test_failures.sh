# What happens when things go wrong: a worker killed mid-job fails the job
# with a message naming it and frees the other workers; a cancelled job stops
# its workers; a job whose nodes never come fails after cluster.wait_timeout
# naming what is missing; a killed server fails its job.
. tests/integration/lib.sh
T_NODE_TIMEOUT=2
t_cluster 2 2 || { t_fail "cluster started"; t_done; }
ctl="$BIN/pandoctl"
spec() { # spec NAME SERVERS WORKERS [EXTRA-CLUSTER-KEYS]
  cat <<YAML
name: $1
model: {type: mlp, layers: [784, 64, 10]}
data:
  train:
    features: /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
    labels: /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz
training: {epochs: 1000, batch_size: 16, update: bsp, optimizer: {lr: 0.01}}
cluster: {servers: $2, workers: $3 $4}
YAML
}
wait_running() { # wait_running JOB: until a progress report arrived
  local i=0
  while [ $i -lt 100 ]; do
    "$ctl" -o json status "$1" >"$T_DIR/$1.json" 2>/dev/null
    [ "$(t_json "$T_DIR/$1.json" 'j["state"] == "RUNNING" and j["epoch"] >= 1')" = True ] && return 0
    i=$((i + 1)); sleep 0.1
  done
  return 1
}
idle_workers() {
  "$ctl" -o json cluster | /usr/bin/python3 -c 'import json,sys; print(sum(1 for n in json.load(sys.stdin)["nodes"] if n["role"] == "WORKER" and n["alive"] and not n["job"]))'
}

# 1. a worker dies
spec kill-worker 2 2 >"$T_DIR/kill.yaml"
job=$(t_submit "$T_DIR/kill.yaml")
t_check "job $job runs" wait_running "$job"
kill -KILL "$(t_pid w1)"
state=$(t_wait_job "$job" 20)
msg=$(t_json "$T_DIR/$job.json" 'j["message"]')
t_check "killing worker w1 fails the job ($state: $msg)" [ "$state" = FAILED ]
t_check "the message names the dead worker" sh -c "echo '$msg' | grep -q 'worker w1 at 127.0.0.1:.* stopped sending heartbeats'"
i=0; while [ "$(idle_workers)" != 1 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
t_check "the surviving worker w0 is idle again" [ "$(idle_workers)" = 1 ]

# 2. cancel
spec cancel-me 2 1 >"$T_DIR/cancel.yaml"
job=$(t_submit "$T_DIR/cancel.yaml")
t_check "job $job runs on the surviving worker" wait_running "$job"
"$ctl" cancel "$job" >"$T_DIR/cancel.out" 2>&1
t_check "pandoctl cancel answers CANCELLED" grep -q CANCELLED "$T_DIR/cancel.out"
i=0; while [ "$(idle_workers)" != 1 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
t_check "the cancelled job's worker is idle again" [ "$(idle_workers)" = 1 ]
t_check "the worker log says it stopped" grep -q "stopped by the coordinator" "$T_DIR/w0.log"

# 3. nodes that never come
spec too-big 2 3 ", wait_timeout: 1" >"$T_DIR/big.yaml"
job=$(t_submit "$T_DIR/big.yaml")
state=$(t_wait_job "$job" 10)
msg=$(t_json "$T_DIR/$job.json" 'j["message"]')
t_check "a job waiting for 3 workers fails after wait_timeout ($state: $msg)" [ "$state" = FAILED ]
t_check "the message says what is missing" sh -c "echo '$msg' | grep -q 'cluster.wait_timeout (1 s) expired waiting for 2 servers and 3 idle workers; 2 servers and 1 idle workers are registered'"

# 4. a server dies
spec kill-server 2 1 >"$T_DIR/server.yaml"
job=$(t_submit "$T_DIR/server.yaml")
t_check "job $job runs" wait_running "$job"
kill -KILL "$(t_pid ps1)"
state=$(t_wait_job "$job" 20)
msg=$(t_json "$T_DIR/$job.json" 'j["message"]')
t_check "killing server ps1 fails the job ($state: $msg)" [ "$state" = FAILED ]
t_check "the message names the server" sh -c "echo '$msg' | grep -Eq 'ps1|127.0.0.1:$(t_port ps1)'"
t_check "the coordinator is still healthy" "$ctl" health "$PANDO_COORDINATOR"
t_done
