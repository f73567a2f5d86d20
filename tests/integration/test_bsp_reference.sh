# BSP with N=2 workers on M=2 servers is synchronous gradient descent on the
# union of the workers' batches: the parameters after every step of a real
# cluster run equal a single-process reference computation.
. tests/integration/lib.sh
t_small_data "$T_DIR" 1024
cat >"$T_DIR/job.yaml" <<YAML
name: bsp-reference
model: {type: mlp, layers: [784, 32, 10], activation: relu, seed: 3}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: 2, batch_size: 32, update: bsp, optimizer: {type: sgd, lr: 0.1}}
cluster: {servers: 2, workers: 2}
YAML
t_cluster 2 2 || { t_fail "cluster started"; t_done; }
job=$(t_submit "$T_DIR/job.yaml")
t_check "BSP job $job succeeded" [ "$(t_wait_job "$job")" = SUCCEEDED ]
keys=$(t_json "$T_DIR/$job.json" 'j["shard_map"]["keys"]')
addrs=$(t_json "$T_DIR/$job.json" '",".join(s["address"] for s in j["shard_map"]["shards"])')
t_check "2 shards in the shard map" [ "$(t_json "$T_DIR/$job.json" 'len(j["shard_map"]["shards"])')" = 2 ]
"$BUILD/tests/integration/pdtest" pull "$job" "$keys" "$addrs" "$T_DIR/cluster.f32" >/dev/null
"$BUILD/tests/integration/pdtest" reference "$T_DIR/job.yaml" 2 "$T_DIR/reference.f32" >/dev/null
t_check "parameters after 32 BSP steps match the single-process reference (relative error <= 1e-5)" \
  /usr/bin/python3 - "$T_DIR/cluster.f32" "$T_DIR/reference.f32" <<'PY'
import sys
import numpy as np
a = np.fromfile(sys.argv[1], dtype="<f4").astype(np.float64)
b = np.fromfile(sys.argv[2], dtype="<f4").astype(np.float64)
init_diff = 0
rel = np.linalg.norm(a - b) / np.linalg.norm(b)
worst = np.max(np.abs(a - b) / (np.abs(b) + 1e-3))
print("# relative error %.3g, worst element %.3g, %d keys" % (rel, worst, a.size))
sys.exit(0 if a.size == b.size and rel <= 1e-5 and worst <= 1e-4 else 1)
PY
t_check "epoch history has 2 records with test accuracy" \
  [ "$(t_json "$T_DIR/$job.json" 'len(j["history"])')" = 2 ]
t_done
