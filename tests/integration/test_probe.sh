# The independent probe (tests/integration/probe.py, issue 14): random
# requests built from proto/pando.proto's own descriptors, and byte-level
# mutations of them, sent to every method of a real pando-ps, coordinator
# and selector while a job trains on them. Every answer is OK or a refusal,
# no call stalls, every daemon keeps answering health within 1 s, the job
# SUCCEEDS and the daemons' memory stays bounded. PROBE_SEED and
# PROBE_CASES (requests a method) choose the run; the seed is printed.
. tests/integration/lib.sh
T_WORKER_ARGS_0="--batch-delay-ms 20"
t_cluster 1 1 || { t_fail "cluster started"; t_done; }
t_start sel "$BIN/pando-selector" --coordinator "$PANDO_COORDINATOR" ||
  { t_fail "selector started"; t_done; }
t_small_data "$T_DIR" 512
cat >"$T_DIR/job.yaml" <<YAML
name: bystander
model: {type: softmax, layers: [784, 10]}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: 40, batch_size: 64, optimizer: {lr: 0.1}}
cluster: {servers: 1, workers: 1}
YAML
job=$(t_submit "$T_DIR/job.yaml")
seed=${PROBE_SEED:-$(date +%s)}
T_DIR="$T_DIR" /usr/bin/python3 tests/integration/probe.py "$seed" "${PROBE_CASES:-500}" \
  "ps=127.0.0.1:$(t_port ps0)=$(t_pid ps0)" \
  "coordinator=127.0.0.1:$(t_port coord)=$(t_pid coord)" \
  "selector=127.0.0.1:$(t_port sel)=$(t_pid sel)" || T_FAILED=1
t_check "the bystander job SUCCEEDS after the probe (seed $seed)" \
  [ "$(t_wait_job "$job" 300)" = SUCCEEDED ]
for d in ps0 coord sel; do
  kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$(t_pid $d)/status")
  if [ -n "${SANITIZE:-}" ]; then
    echo "# $d: ${kib} KiB resident (not bounded under sanitizers)"
  else
    t_check "$d stays under 512 MiB resident after the probe (${kib} KiB)" [ "$kib" -lt 524288 ]
  fi
done
t_done
