# A job with a learning-rate schedule and one of the newer optimizers runs
# on a real cluster: the coordinator sends every server the rows of the
# smallest partition (CreateShard refuses a schedule without them), the
# servers name the optimizer, and training still converges.
. tests/integration/lib.sh
t_small_data "$T_DIR" 2048
cat >"$T_DIR/job.yaml" <<YAML
name: schedule
model: {type: mlp, layers: [784, 32, 10], seed: 9}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training:
  epochs: 3
  batch_size: 32
  update: bsp
  optimizer: {type: nesterov, lr: 0.05, momentum: 0.9, weight_decay: 0.0001}
  lr_schedule: {type: cosine, min_lr: 0.005}
cluster: {servers: 2, workers: 2}
YAML
t_cluster 2 2 || { t_fail "cluster started"; t_done; }
job=$(t_submit "$T_DIR/job.yaml")
t_check "job $job with a cosine lr schedule succeeded" [ "$(t_wait_job "$job")" = SUCCEEDED ]
t_check "the servers hold the shards with nesterov" grep -q "job $job: holding keys .* nesterov lr=0.05" "$T_DIR/ps0.log"
first=$(t_json "$T_DIR/$job.json" 'j["history"][0]["train_loss"]')
last=$(t_json "$T_DIR/$job.json" 'j["history"][-1]["train_loss"]')
echo "# train loss $first -> $last"
t_check "training loss fell ($first -> $last)" /usr/bin/python3 -c "import sys; sys.exit(not $last < $first)"
t_done
