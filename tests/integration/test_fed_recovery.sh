# A federated job survives kill -9 of a server and of the coordinator
# (issue "Durability"): a job of 10 rounds over M = 2 servers with
# checkpoint: {every_clocks: 2} (a checkpoint after every 2nd committed
# round, written by each server to its data_dir). A server killed after
# checkpoint 2 and restarted with its name and data_dir: the job goes
# RECOVERING, every shard rolls back to the newest checkpoint both hold, and
# the rounds go on from the round after it. Then the coordinator is killed
# and restarted on its data_dir: it reloads the job with its rounds' history,
# rolls the shards back to their newest common checkpoint and goes on. The
# job SUCCEEDS with every round 1..10 committed exactly once in its history,
# the rounds of before each checkpoint kept as they were. Every step waits
# on a state, a file or a log line.
. tests/integration/lib.sh
. tests/integration/recovery.sh
t_small_data "$T_DIR" 1500
cat >"$T_DIR/fed.yaml" <<YAML
name: fedrec
model: {type: softmax, layers: [784, 10], seed: 3}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
  partition: iid
  seed: 2
training:
  update: fedavg
  optimizer: {type: sgd, lr: 0.1}
  federated: {rounds: 10, clients_per_round: 5, min_reports: 4, local_epochs: 1,
              local_batch_size: 10, round_timeout: 4, max_attempts: 20,
              selection_timeout: 1, seed: 5, aggregation: fedadam, server_lr: 0.01}
cluster: {servers: 2, wait_timeout: 90}
simulation: {devices: 30, dropout_rate: 0, seed: 9}
checkpoint: {every_clocks: 2, keep: 3}
YAML
T_NODE_TIMEOUT=2
T_COORD_ARGS="--data-dir $T_DIR/coord" T_PS_ARGS_0="--data-dir $T_DIR/data0" \
  T_PS_ARGS_1="--data-dir $T_DIR/data1" t_cluster 2 0 || { t_fail "cluster started"; t_done; }
COORD_PORT=$(t_port coord)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# shellcheck disable=SC2046 # the TLS flags are words
"$BIN/pando-selector" --coordinator "$PANDO_COORDINATOR" --listen "127.0.0.1:$port" --name sel \
  --min-reconnect-ms 100 --idle-reconnect-ms 300 --metrics-listen "" $(t_tls_flags pando-selector) \
  >>"$T_DIR/sel.log" 2>&1 &
T_PIDS="$T_PIDS $!"
# shellcheck disable=SC2046
"$BIN/pando-worker" --role device --simulate 30 --data "$T_DIR/fed.yaml" --selector "127.0.0.1:$port" \
  --device-id sim --metrics-listen "" $(t_tls_flags pando-worker) >"$T_DIR/devices.log" 2>&1 &
T_PIDS="$T_PIDS $!"
id=$(t_submit "$T_DIR/fed.yaml")
# committed JSON: the (round, accuracy) of the committed rounds in a status file
committed() {
  t_json "$1" '[(r["round"], round(r.get("test_accuracy", 0), 6)) for r in j.get("round_history", []) if not r.get("abandoned")]'
}
rounds_done() {
  "$BIN/pandoctl" -o json status "$id" >"$T_DIR/st.json" 2>/dev/null
  [ "$(t_json "$T_DIR/st.json" 'j.get("rounds_done", 0)')" -ge "$1" ]
}

echo "# kill -9 of a server after checkpoint 2"
t_check "job $id took checkpoint 2 on ps1" t_wait_ckpt "$T_DIR/data1" "$id" 2
t_check "job $id took checkpoint 2 on ps0" t_wait_ckpt "$T_DIR/data0" "$id" 2
kill -KILL "$(t_pid ps1)"
t_check "job $id went RECOVERING" t_wait_state "$id" RECOVERING
t_start ps1b "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR" --name ps1 --data-dir "$T_DIR/data1"
t_check "job $id is RUNNING again" t_wait_state "$id" RUNNING
t_check "the coordinator rolled $id back to a checkpoint of committed rounds" \
  grep -q "job $id: RUNNING again from checkpoint [1-9]" "$T_DIR/coord.log"
cut=$(sed -n "s/.*job $id: RUNNING again from checkpoint \([0-9]*\).*/\1/p" "$T_DIR/coord.log" | tail -1)
t_check "the rounds go on from round $((cut + 1))" \
  t_wait_log "$T_DIR/coord.log" "job $id: rounds go on from round $((cut + 1)) "

echo "# kill -9 of the coordinator after checkpoint 6"
t_check "job $id took checkpoint 6 on ps0" t_wait_ckpt "$T_DIR/data0" "$id" 6
t_check "job $id took checkpoint 6 on ps1" t_wait_ckpt "$T_DIR/data1" "$id" 6
t_wait_until "job $id never committed round 6" rounds_done 6
# (a round being evaluated is not in the status's history yet)
before=$(committed "$T_DIR/st.json")
echo "# committed before the coordinator's kill: $before"
t_restart_coord 2
t_check "the restarted coordinator reloaded $id and rolls it back" \
  t_wait_log "$T_DIR/coord2.log" "job $id: reloaded, RUNNING -> RECOVERING"
state=$(t_wait_job "$id" 240)
t_check "job $id SUCCEEDS after both kills ($state: $(t_json "$T_DIR/$id.json" 'j["message"]'))" \
  [ "$state" = SUCCEEDED ]
t_check "the new coordinator went on from a checkpoint of committed rounds" \
  grep -q "job $id: rounds go on from round [1-9]" "$T_DIR/coord2.log"
t_check "all 10 rounds were committed" [ "$(t_json "$T_DIR/$id.json" 'j["rounds_done"]')" = 10 ]
after=$(committed "$T_DIR/$id.json")
echo "# committed in all: $after"
cut=$(sed -n "s/.*job $id: rounds go on from round \([0-9]*\).*/\1/p" "$T_DIR/coord2.log" | tail -1)
t_check "the history holds rounds 1..10 once each, those before the checkpoint as they were" \
  /usr/bin/python3 -c "import sys; b, a, c = eval(sys.argv[1]), eval(sys.argv[2]), int(sys.argv[3]) - 1; k = [x for x in b if x[0] <= c]; sys.exit(not ([r for r, _ in a] == list(range(1, 11)) and len(k) >= c - 1 and a[:len(k)] == k))" "$before" "$after" "$cut"
t_check "the job's final test accuracy is that of a trained model" \
  /usr/bin/python3 -c "import sys; sys.exit(not eval(sys.argv[1])[-1][1] > 0.5)" "$after"
t_done
