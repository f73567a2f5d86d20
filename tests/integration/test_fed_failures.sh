# Failures of a federated job are rounds, not crashes (issue 9): 30 simulated
# devices train a job of 8 rounds; after its second committed round the
# selector is killed with SIGKILL. While it is down the job says which
# selector it cannot reach; restarted on the same address, the devices check
# in again, the job SUCCEEDS with all 8 rounds, and the rounds committed
# before the kill are kept as they were (nothing committed is lost or redone).
. tests/integration/lib.sh
t_small_data "$T_DIR" 1500
cat >"$T_DIR/fed.yaml" <<YAML
name: survivor
model: {type: softmax, layers: [784, 10], seed: 3}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
  partition: iid
  seed: 2
training:
  update: fedavg
  optimizer: {type: sgd, lr: 0.1}
  federated: {rounds: 8, clients_per_round: 5, min_reports: 4, local_epochs: 1,
              local_batch_size: 10, round_timeout: 4, max_attempts: 20,
              selection_timeout: 1, seed: 5}
cluster: {servers: 2, wait_timeout: 90}
simulation: {devices: 30, dropout_rate: 0, seed: 9}
YAML
t_cluster 2 0 || { t_fail "cluster started"; t_done; }
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
selector() {
  "$BIN/pando-selector" --coordinator "$PANDO_COORDINATOR" --listen "127.0.0.1:$port" --name sel \
    --min-reconnect-ms 100 --idle-reconnect-ms 300 --metrics-listen "" $(t_tls_flags pando-selector) \
    >>"$T_DIR/sel.log" 2>&1 &
  SEL_PID=$!
  T_PIDS="$T_PIDS $SEL_PID"
}
selector
"$BIN/pando-worker" --role device --simulate 30 --data "$T_DIR/fed.yaml" --selector "127.0.0.1:$port" \
  --device-id sim --metrics-listen "" $(t_tls_flags pando-worker) >"$T_DIR/devices.log" 2>&1 &
T_PIDS="$T_PIDS $!"
id=$(t_submit "$T_DIR/fed.yaml")
status() { "$BIN/pandoctl" -o json status "$id" >"$T_DIR/st.json" 2>/dev/null; }
rounds_done() { status; t_json "$T_DIR/st.json" 'j.get("rounds_done", 0)'; }
i=0
while [ "$(rounds_done)" -lt 2 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
kill -KILL "$SEL_PID"
status
before=$(t_json "$T_DIR/st.json" '[(r["round"], round(r["test_accuracy"], 6)) for r in j["round_history"] if not r["abandoned"]]')
echo "# committed before the kill: $before"
t_check "two rounds were committed before the selector was killed ($before)" \
  [ "$(t_json "$T_DIR/st.json" 'j["rounds_done"] >= 2')" = True ]
# the coordinator notices (node timeout 5 s, or a failed call) and says which selector
i=0
msg=""
while [ $i -lt 200 ]; do
  status
  msg=$(t_json "$T_DIR/st.json" 'j["message"]')
  case $msg in *"127.0.0.1:$port"*) break ;; esac
  sleep 0.1; i=$((i + 1))
done
t_check "while the selector is down the job names it ($msg)" \
  sh -c "printf '%s' \"\$1\" | grep -q 'selector 127.0.0.1:$port'" _ "$msg"
t_check "the job keeps RUNNING while the selector is down" \
  [ "$(t_json "$T_DIR/st.json" 'j["state"]')" = RUNNING ]
selector
state=$(t_wait_job "$id" 180)
t_check "after the selector's restart the job SUCCEEDS ($state: $(t_json "$T_DIR/$id.json" 'j["message"]'))" \
  [ "$state" = SUCCEEDED ]
t_check "all 8 rounds were committed" [ "$(t_json "$T_DIR/$id.json" 'j["rounds_done"]')" = 8 ]
after=$(t_json "$T_DIR/$id.json" '[(r["round"], round(r["test_accuracy"], 6)) for r in j["round_history"] if not r["abandoned"]]')
echo "# committed in all: $after"
t_check "the rounds committed before the kill are kept as they were" \
  /usr/bin/python3 -c "import sys; b, a = eval(sys.argv[1]), eval(sys.argv[2]); sys.exit(not (a[:len(b)] == b and [r for r, _ in a] == list(range(1, 9))))" "$before" "$after"
t_done
