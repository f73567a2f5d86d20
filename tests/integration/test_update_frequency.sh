# training.frequency and training.threads on a real cluster (1 server, 1
# worker, a model small enough that one logical pull or push is one RPC):
#  - nfetch (Dean et al. 2012): with k batches per clock a worker pulls and
#    pushes exactly ceil(batches / k) times per epoch (k = 1, k = 3, and
#    epoch = all batches), counted by the server's /metrics;
#  - Hogwild (Recht et al. 2011): 2 threads sharing the worker's local copy
#    train sparse logistic regression (65,536 features) below a stated loss.
. tests/integration/lib.sh
t_cluster 1 1 || { t_fail "cluster started"; t_done; }
# 1000 rows in batches of 100: 10 batches per epoch, 2 epochs, no test set
# (so no evaluation pull)
count_spec() { # count_spec NAME FREQUENCY-KEYS
  cat <<YAML
name: $1
model: {type: logreg, layers: [4096, 1], seed: 1}
data:
  format: synthetic
  synthetic: {rows: 1000, features: 4096, nnz_per_row: 8, seed: 2}
training: {epochs: 2, batch_size: 100, update: bsp, $2, optimizer: {type: sgd, lr: 0.5}}
cluster: {servers: 1, workers: 1}
YAML
}
calls() { # calls METHOD: Pull or Push calls the server answered OK so far
  curl -s "http://127.0.0.1:$(t_metrics_port ps0)/metrics" |
    /usr/bin/python3 -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
total = 0
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        if s.name == "pando_rpc_server_handled_total" and s.labels.get("method", "").endswith("/" + sys.argv[1]) and s.labels.get("code") == "OK":
            total += s.value
print(int(total))' "$1"
}
count() { # count NAME FREQUENCY-KEYS PER-EPOCH: runs the job, checks pulls and pushes
  local pulls0 pushes0 job pulls pushes
  count_spec "$1" "$2" >"$T_DIR/$1.yaml"
  pulls0=$(calls Pull); pushes0=$(calls Push)
  job=$(t_submit "$T_DIR/$1.yaml")
  t_check "job $job ($2) succeeded" [ "$(t_wait_job "$job" 60)" = SUCCEEDED ]
  pulls=$(($(calls Pull) - pulls0)); pushes=$(($(calls Push) - pushes0))
  t_check "$2: $pulls pulls = 2 epochs x ceil(10 / k) = 2 x $3" [ "$pulls" = $((2 * $3)) ]
  t_check "$2: $pushes pushes = 2 epochs x ceil(10 / k) = 2 x $3" [ "$pushes" = $((2 * $3)) ]
}
count freq-batch "frequency: batch" 10
count freq-three "frequency: nbatches, nbatches: 3" 4
count freq-epoch "frequency: epoch" 1

# Hogwild: 2 threads, a push every 8 batches, ASP, AdaGrad
cat >"$T_DIR/hogwild.yaml" <<YAML
name: hogwild
model: {type: logreg, layers: [65536, 1], seed: 7}
data:
  format: synthetic
  synthetic: {rows: 40000, test_rows: 4000, features: 65536, nnz_per_row: 40, seed: 3}
training:
  epochs: 3
  batch_size: 128
  update: asp
  frequency: nbatches
  nbatches: 8
  threads: 2
  optimizer: {type: adagrad, lr: 0.1}
cluster: {servers: 1, workers: 1}
YAML
job=$(t_submit "$T_DIR/hogwild.yaml")
t_check "Hogwild job $job (2 threads) succeeded" [ "$(t_wait_job "$job" 120)" = SUCCEEDED ]
first=$(t_json "$T_DIR/$job.json" 'j["history"][0]["train_loss"]')
last=$(t_json "$T_DIR/$job.json" 'j["history"][-1]["train_loss"]')
echo "# Hogwild, 2 threads: train loss $first -> $last"
t_check "Hogwild with 2 threads converges: train loss of epoch 3 ($last) < 0.4 (ln 2 = 0.693 at the start)" \
  /usr/bin/python3 -c "import sys; sys.exit(not float(sys.argv[1]) < 0.4)" "$last"
t_check "the worker ran 2 compute threads" grep -q "2 compute threads" "$T_DIR/w0.log"
t_done
