# Hostile input to a parameter server and the coordinator (issue 14):
# malformed, oversized and poisoned messages, impossible clocks, stolen names
# and a registration flood from tests/integration/hostile.py, while a real
# job trains on the same daemons. Each is refused with a clear status, the
# daemons keep answering health, a victim shard's parameters stay unchanged,
# memory comes back, and the job that runs meanwhile SUCCEEDS.
. tests/integration/lib.sh
T_WORKER_ARGS_0="--batch-delay-ms 40"
t_cluster 1 1 || { t_fail "cluster started"; t_done; }
t_small_data "$T_DIR" 512
cat >"$T_DIR/job.yaml" <<YAML
name: bystander
model: {type: softmax, layers: [784, 10]}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: 150, batch_size: 64, optimizer: {lr: 0.1}}
cluster: {servers: 1, workers: 1}
YAML
job=$(t_submit "$T_DIR/job.yaml")
i=0
while [ "$("$BIN/pandoctl" -o json status "$job" | t_json /dev/stdin 'j["state"]')" != RUNNING ] && [ $i -lt 100 ]; do
  sleep 0.1; i=$((i + 1))
done
t_check "the bystander job runs before the hostile input starts" \
  [ "$("$BIN/pandoctl" -o json status "$job" | t_json /dev/stdin 'j["state"]')" = RUNNING ]
# Steps done when the hostile input starts and when it ends: the job must
# have trained meanwhile (or finished), whatever the machine's speed.
done_steps='j["epoch"] * j["steps_per_epoch"] + j["step"]'
step0=$("$BIN/pandoctl" -o json status "$job" | t_json /dev/stdin "$done_steps")
/usr/bin/python3 tests/integration/hostile.py ps "127.0.0.1:$(t_port ps0)" "$(t_pid ps0)" "$(t_metrics_port ps0)" || T_FAILED=1
/usr/bin/python3 tests/integration/hostile.py coordinator "127.0.0.1:$(t_port coord)" "$(t_pid coord)" w0 || T_FAILED=1
"$BIN/pandoctl" -o json status "$job" >"$T_DIR/bystander.json"
state=$(t_json "$T_DIR/bystander.json" 'j["state"]')
step1=$(t_json "$T_DIR/bystander.json" "$done_steps")
t_check "the bystander job trained during the hostile input (step $step0 -> $step1, $state)" \
  sh -c "[ '$state' = SUCCEEDED ] || { [ '$state' = RUNNING ] && [ '$step1' -gt '$step0' ]; }"
t_check "the bystander job SUCCEEDS" [ "$(t_wait_job "$job" 120)" = SUCCEEDED ]
# A job whose gradients overflow (lr 1e38) fails, naming the poison, instead
# of training on NaN.
sed 's/name: bystander/name: diverge/; s/epochs: 60/epochs: 2/; s/lr: 0.1/lr: 1e38/' "$T_DIR/job.yaml" >"$T_DIR/diverge.yaml"
job=$(t_submit "$T_DIR/diverge.yaml")
state=$(t_wait_job "$job" 60)
msg=$(t_json "$T_DIR/$job.json" 'j["message"]')
t_check "a diverging job FAILS naming the non-finite gradient ($state: $msg)" \
  sh -c "[ '$state' = FAILED ] && printf '%s' \"\$1\" | grep -q 'non-finite values'" _ "$msg"
t_check "pando-ps is alive" kill -0 "$(t_pid ps0)"
t_done
