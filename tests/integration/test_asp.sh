# An ASP job (each push applied when it arrives, pulls never wait) converges:
# its training loss falls below a stated bound and its test accuracy rises.
. tests/integration/lib.sh
t_small_data "$T_DIR" 8192
cat >"$T_DIR/job.yaml" <<YAML
name: asp
model: {type: mlp, layers: [784, 64, 10], seed: 5}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: 3, batch_size: 32, update: asp, optimizer: {type: sgd, lr: 0.05}}
cluster: {servers: 2, workers: 2}
YAML
t_cluster 2 2 || { t_fail "cluster started"; t_done; }
job=$(t_submit "$T_DIR/job.yaml")
t_check "ASP job $job succeeded" [ "$(t_wait_job "$job")" = SUCCEEDED ]
first=$(t_json "$T_DIR/$job.json" 'j["history"][0]["train_loss"]')
last=$(t_json "$T_DIR/$job.json" 'j["history"][-1]["train_loss"]')
acc=$(t_json "$T_DIR/$job.json" 'j["history"][-1]["test_accuracy"]')
echo "# train loss $first -> $last, test accuracy $acc"
t_check "final training loss $last is below 0.75" /usr/bin/python3 -c "import sys; sys.exit(not $last < 0.75)"
t_check "training loss fell ($first -> $last)" /usr/bin/python3 -c "import sys; sys.exit(not $last < $first)"
t_check "test accuracy $acc is above 0.70" /usr/bin/python3 -c "import sys; sys.exit(not $acc > 0.70)"
t_done
