# training.compression end to end: the same small BSP job trained with float32,
# with onebit pushes (error feedback) and bf16 pulls, and with topk 1% pushes
# (error feedback) and int8 pulls, through pandoctl. Every job succeeds, the
# compressed ones reach a test accuracy close to float32's, and the servers'
# /metrics count the push bytes before and after encoding.
. tests/integration/lib.sh
t_small_data "$T_DIR" 8192
job_spec() { # job_spec NAME COMPRESSION
  cat >"$T_DIR/$1.yaml" <<YAML
name: $1
model: {type: mlp, layers: [784, 64, 10], seed: 5}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training:
  epochs: 3
  batch_size: 32
  optimizer: {type: sgd, lr: 0.05}
  compression: $2
cluster: {servers: 2, workers: 2}
YAML
}
job_spec fp32 "{push: none}"
job_spec onebit "{push: onebit, pull: bf16}"
job_spec topk "{push: topk, ratio: 0.01, pull: int8}"
t_cluster 2 2 || { t_fail "cluster started"; t_done; }
for name in fp32 onebit topk; do
  job=$(t_submit "$T_DIR/$name.yaml")
  state=$(t_wait_job "$job" 300)
  t_check "$name job $job succeeded (got $state)" [ "$state" = SUCCEEDED ]
  acc=$(t_json "$T_DIR/$job.json" 'j["history"][-1]["test_accuracy"]')
  eval "acc_$name=$acc"
  echo "# $name: test accuracy $acc"
done
t_check "onebit's accuracy $acc_onebit is within 0.03 of float32's $acc_fp32" \
  /usr/bin/python3 -c "import sys; sys.exit(not $acc_onebit > $acc_fp32 - 0.03)"
t_check "topk's accuracy $acc_topk is within 0.03 of float32's $acc_fp32" \
  /usr/bin/python3 -c "import sys; sys.exit(not $acc_topk > $acc_fp32 - 0.03)"
# bytes <- value FILE DIRECTION CODEC STAGE: summed over both servers
bytes() {
  /usr/bin/python3 - "$T_DIR/m0.txt" "$T_DIR/m1.txt" "$@" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
direction, codec, stage = sys.argv[3:]
total = 0.0
for path in sys.argv[1:3]:
    for fam in text_string_to_metric_families(open(path).read()):
        for s in fam.samples:
            if (s.name == "pando_ps_tensor_bytes_total" and s.labels["direction"] == direction
                    and s.labels["codec"] == codec and s.labels["stage"] == stage):
                total += s.value
print(int(total))
PY
}
for i in 0 1; do
  curl -s "http://127.0.0.1:$(t_metrics_port "ps$i")/metrics" >"$T_DIR/m$i.txt"
done
for codec in onebit:25 topk:30; do
  name=${codec%:*} want=${codec#*:}
  raw=$(bytes push "$name" raw) wire=$(bytes push "$name" wire)
  echo "# push $name: $raw bytes as float32, $wire on the wire"
  t_check "push $name sends at least ${want}x fewer bytes ($raw -> $wire)" \
    /usr/bin/python3 -c "import sys; sys.exit(not ($wire > 0 and $raw >= $want * $wire))"
done
raw=$(bytes push none raw) wire=$(bytes push none wire)
t_check "uncompressed pushes are counted as is ($raw = $wire > 0)" \
  /usr/bin/python3 -c "import sys; sys.exit(not ($raw == $wire > 0))"
raw=$(bytes pull bf16 raw) wire=$(bytes pull bf16 wire)
t_check "bf16 pulls are exactly half as long ($raw -> $wire)" \
  /usr/bin/python3 -c "import sys; sys.exit(not ($raw == 2 * $wire > 0))"
t_done
