# Several tenants at once (issue 9): two federated jobs (a softmax model and
# an MLP) and one data-centre job train at the same time on the same 2
# servers, with one selector whose 16 simulated devices serve any job, over
# TLS with a cluster token. All three SUCCEED; and each job's own token
# (SubmitJob's job_token) reads that job's model but not another's.
. tests/integration/lib.sh
t_tls tls || { t_fail "certificates made"; t_done; }
t_small_data "$T_DIR" 1600
t_cluster 2 1 || { t_fail "cluster started"; t_done; }
t_start sel "$BIN/pando-selector" --coordinator "$PANDO_COORDINATOR" \
  --min-reconnect-ms 100 --idle-reconnect-ms 300 || { t_fail "selector started"; t_done; }
fed() { # fed NAME LAYERS
  cat >"$T_DIR/$1.yaml" <<YAML
name: $1
model: {type: $2, seed: 3}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
  partition: iid
  seed: 2
training:
  update: fedavg
  optimizer: {type: sgd, lr: 0.05}
  federated: {rounds: 5, clients_per_round: 4, min_reports: 3, local_epochs: 1,
              local_batch_size: 10, round_timeout: 20, selection_timeout: 1, seed: 5}
cluster: {servers: 2, wait_timeout: 90}
simulation: {devices: 16, dropout_rate: 0, seed: 9}
YAML
}
fed tenant-a "softmax, layers: [784, 10]"
fed tenant-b "mlp, layers: [784, 32, 10]"
cat >"$T_DIR/tenant-c.yaml" <<YAML
name: tenant-c
model: {type: softmax, layers: [784, 10]}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: 20, batch_size: 32, optimizer: {lr: 0.05}}
cluster: {servers: 2, workers: 1}
YAML
# shellcheck disable=SC2046 # the TLS flags are words
"$BIN/pando-worker" --role device --simulate 16 --data "$T_DIR/tenant-a.yaml" \
  --selector "127.0.0.1:$(t_port sel)" --device-id dev --metrics-listen "" \
  $(t_tls_flags pando-worker) >"$T_DIR/devices.log" 2>&1 &
T_PIDS="$T_PIDS $!"
for t in a b c; do
  "$BIN/pandoctl" -o json submit "$T_DIR/tenant-$t.yaml" >"$T_DIR/submit-$t.json" || t_fail "tenant-$t submitted"
  eval "job_$t=\$(t_json '$T_DIR/submit-$t.json' 'j[\"job\"]')"
  eval "token_$t=\$(t_json '$T_DIR/submit-$t.json' 'j.get(\"job_token\", \"\")')"
done
# all three are running (or done) at the same time
running=0
i=0
while [ $i -lt 300 ]; do
  running=$("$BIN/pandoctl" -o json list | t_json /dev/stdin 'sum(1 for x in j["jobs"] if x["state"] == "RUNNING")')
  [ "$running" -ge 2 ] && break
  sleep 0.1; i=$((i + 1))
done
t_check "the tenants' jobs run at the same time ($running RUNNING at once)" [ "$running" -ge 2 ]
for t in a b c; do
  eval "id=\$job_$t"
  state=$(t_wait_job "$id" 240)
  t_check "tenant $t's job $id SUCCEEDS ($state: $(t_json "$T_DIR/$id.json" 'j["message"]'))" [ "$state" = SUCCEEDED ]
done
t_check "the federated jobs committed their 5 rounds each" \
  [ "$(t_json "$T_DIR/$job_a.json" 'j["rounds_done"]')$(t_json "$T_DIR/$job_b.json" 'j["rounds_done"]')" = 55 ]
labels=$(t_json "$T_DIR/$job_a.json" 'round(j["labels"]["mean_labels_90"], 2) if j["labels"] else 0')
t_check "IID devices: about 9 of the 10 labels hold 90% of a device's rows ($labels)" \
  /usr/bin/python3 -c "import sys; sys.exit(not 8 <= float(sys.argv[1]) <= 10)" "$labels"
t_check "each job has a token of its own" sh -c "[ -n '$token_a' ] && [ -n '$token_b' ] && [ '$token_a' != '$token_b' ]"
PANDO_TOKEN=$token_a "$BIN/pandoctl" export "$job_a" -o "$T_DIR/a.safetensors" >"$T_DIR/own.out" 2>&1
t_check "job A's token exports job A's model ($(cat "$T_DIR/own.out"))" [ $? -eq 0 ]
PANDO_TOKEN=$token_a "$BIN/pandoctl" export "$job_b" -o "$T_DIR/b.safetensors" >"$T_DIR/other.out" 2>&1
rc=$?
t_check "job A's token cannot read job B's model (exit $rc: $(cat "$T_DIR/other.out"))" \
  sh -c "[ $rc -ne 0 ] && grep -q UNAUTHENTICATED '$T_DIR/other.out' && [ ! -s '$T_DIR/b.safetensors' ]"
PANDO_TOKEN=$token_a "$BIN/pandoctl" cancel "$job_c" >"$T_DIR/cancel.out" 2>&1
rc=$?
t_check "nor cancel job C (exit $rc: $(cat "$T_DIR/cancel.out"))" \
  sh -c "[ $rc -ne 0 ] && grep -q UNAUTHENTICATED '$T_DIR/cancel.out'"
t_done
