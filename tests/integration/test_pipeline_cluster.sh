# Pipeline model parallelism (README "Pipelines") through real daemons:
# an MLP split into S = 2 and 3 stages on their own workers, 4 micro-batches
# per mini-batch, GPipe and 1F1B, BSP on M = 2 servers. The final
# parameters equal the single-process reference of the same mini-batch SGD
# (pdtest reference: pd_model_gradient on each whole mini-batch) to a
# relative error <= 1e-5 (only the order of the sums over micro-batches
# differs); GPipe and 1F1B, which accumulate the micro-batches in the same
# order, give the same parameters bit for bit. Hybrid: 2 replicas x 2
# stages equal data-parallel BSP with 2 workers. The Peer metrics count
# what went between the stages, and a killed stage worker fails the job
# with a message naming it.
. tests/integration/lib.sh
t_small_data "$T_DIR" 1024

# job NAME STAGES SCHEDULE WORKERS EPOCHS: writes $T_DIR/NAME.yaml
job() {
  cat >"$T_DIR/$1.yaml" <<YAML
name: $1
model: {type: mlp, layers: [784, 32, 16, 10], activation: relu, seed: 3}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training:
  epochs: $5
  batch_size: 32
  update: bsp
  micro_batches: 4
  pipeline_schedule: $3
  optimizer: {type: sgd, lr: 0.1}
cluster: {servers: 2, workers: $4, stages: $2}
YAML
}

# run NAME: submits NAME.yaml, waits, pulls the final parameters to NAME.f32
run() {
  local id
  id=$(t_submit "$T_DIR/$1.yaml")
  t_check "$1: job $id succeeded" [ "$(t_wait_job "$id" 300)" = SUCCEEDED ]
  t_json "$T_DIR/$id.json" 'j.get("message","")' | sed 's/^/# /'
  keys=$(t_json "$T_DIR/$id.json" 'j["shard_map"]["keys"]')
  addrs=$(t_json "$T_DIR/$id.json" '",".join(s["address"] for s in j["shard_map"]["shards"])')
  "$BUILD/tests/integration/pdtest" pull "$id" "$keys" "$addrs" "$T_DIR/$1.f32" >/dev/null
  t_check "$1: epoch history has test accuracy" \
    [ "$(t_json "$T_DIR/$id.json" 'len(j["history"])')" -ge 1 ]
}

# close A B: A's parameters equal B's to a relative error <= 1e-5
close() {
  /usr/bin/python3 - "$T_DIR/$1.f32" "$T_DIR/$2.f32" <<'PY'
import sys
import numpy as np
a = np.fromfile(sys.argv[1], dtype="<f4").astype(np.float64)
b = np.fromfile(sys.argv[2], dtype="<f4").astype(np.float64)
if a.size != b.size or a.size == 0:
    sys.exit(1)
rel = np.linalg.norm(a - b) / np.linalg.norm(b)
worst = np.max(np.abs(a - b) / (np.abs(b) + 1e-3))
print("# relative error %.3g, worst element %.3g, %d keys" % (rel, worst, a.size))
sys.exit(0 if rel <= 1e-5 and worst <= 1e-4 else 1)
PY
}

t_cluster 2 4 || { t_fail "cluster started"; t_done; }

job two-gpipe 2 gpipe 1 2
job two-1f1b 2 1f1b 1 2
job three-1f1b 3 1f1b 1 2
job hybrid 2 gpipe 2 1
# the plan: 3 stages of one affine layer each, their keys side by side
"$BIN/pandoctl" -o json explain "$T_DIR/three-1f1b.yaml" >"$T_DIR/plan.json" 2>/dev/null
t_check "explain shows the 3 stages' layers, keys, sends and in-flight bound" \
  [ "$(t_json "$T_DIR/plan.json" '[(s["layer_begin"], s["layer_end"], s["key_end"], s["activation_bytes_per_micro_batch"], s["max_in_flight"]) for s in j["pipeline"]["stage_plan"]]')" = \
    "[(0, 1, 25120, 1024, 3), (1, 2, 25648, 512, 2), (2, 3, 25818, 0, 1)]" ]
"$BIN/pandoctl" explain "$T_DIR/three-1f1b.yaml" 2>/dev/null | sed -n '/^pipeline/,/^  each/p' | sed 's/^/# /'
run two-gpipe
run two-1f1b
run three-1f1b
run hybrid
"$BUILD/tests/integration/pdtest" reference "$T_DIR/two-gpipe.yaml" 1 "$T_DIR/ref1.f32" >/dev/null
"$BUILD/tests/integration/pdtest" reference "$T_DIR/hybrid.yaml" 2 "$T_DIR/ref2.f32" >/dev/null
t_check "2 stages, gpipe: the parameters after 64 steps match the single-process reference" \
  close two-gpipe ref1
t_check "2 stages, 1f1b: match the reference" close two-1f1b ref1
t_check "2 stages: gpipe and 1f1b give the same parameters bit for bit" \
  cmp -s "$T_DIR/two-gpipe.f32" "$T_DIR/two-1f1b.f32"
t_check "3 stages, 1f1b: match the reference" close three-1f1b ref1
t_check "hybrid 2 replicas x 2 stages: match data-parallel BSP with 2 workers" close hybrid ref2

# what went between the stages, in /metrics of every worker
sent=0
for w in w0 w1 w2 w3; do
  n=$(curl -s "http://127.0.0.1:$(t_metrics_port $w)/metrics" |
    awk '/^pando_peer_calls_total\{direction="forward",side="sent"\}/ {s += $2} END {print s + 0}')
  sent=$((sent + ${n%.*}))
done
# 32 steps x 4 micro-batches x (1 + 1 + 2 boundaries) per epoch, x 2 epochs; hybrid: 16 steps x 4 x 2
t_check "Peer metrics: $sent forward sends (want 32 x 4 x 8 + 16 x 4 x 2 = 1152)" [ "$sent" -eq 1152 ]

# a killed stage worker: the job FAILS naming the peer or the worker
job killed 2 1f1b 1 200
id=$(t_submit "$T_DIR/killed.yaml")
victim=""
i=0
while [ -z "$victim" ] && [ $i -lt 300 ]; do
  for w in w0 w1 w2 w3; do
    grep -q "job $id: replica 0 stage 1 of 2" "$T_DIR/$w.log" 2>/dev/null && victim=$w
  done
  i=$((i + 1))
  sleep 0.1
done
t_check "a worker runs stage 1 of job $id" [ -n "$victim" ]
sleep 1
kill -9 "$(t_pid "$victim")"
t_check "job $id with a killed stage worker FAILED" [ "$(t_wait_job "$id" 120)" = FAILED ]
msg=$(t_json "$T_DIR/$id.json" 'j.get("message","")')
echo "# $msg"
t_check "the failure names the pipeline peer or the lost worker" \
  sh -c 'echo "$1" | grep -Eq "pipeline peer stage 1 of replica 0|worker .*$2|$2"' _ "$msg" "$victim"
t_done
