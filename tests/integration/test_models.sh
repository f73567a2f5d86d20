# Every kind of model trains on a real cluster, where the coordinator, the
# servers and the workers each build it: the example plugin (a factorization
# machine, loaded by all of them), sparse logistic regression, linear
# regression and LeNet; and plugins that cannot load are refused at submit
# with a message naming model.path.
. tests/integration/lib.sh
t_small_data "$T_DIR" 1024
plugin=$(cd "$BUILD/examples" && pwd)/libpando_example_plugin.so
plugins=$(cd "$BUILD/tests/plugins" && pwd)
t_cluster 2 2 || { t_fail "cluster started"; t_done; }

# job NAME MODEL DATA EPOCHS LR: writes $T_DIR/NAME.yaml.
job() {
  cat >"$T_DIR/$1.yaml" <<YAML
name: $1
model: $2
data: $3
training: {epochs: $4, batch_size: 32, update: bsp, optimizer: {type: adagrad, lr: $5}}
cluster: {servers: 2, workers: 2}
YAML
}
synthetic="{format: synthetic, synthetic: {rows: 4000, test_rows: 1000, features: 2000, nnz_per_row: 10, seed: 4}}"
fashion="{train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}, test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}}"

# run NAME WHAT: submits NAME.yaml, waits for SUCCEEDED; leaves the job id in $id.
run() {
  id=$(t_submit "$T_DIR/$1.yaml")
  t_check "$2 ($id) succeeded" [ "$(t_wait_job "$id")" = SUCCEEDED ]
}
metric() { t_json "$T_DIR/$id.json" "j['history'][-1].get('$1', 0)"; }

job fm "{type: plugin, path: $plugin, layers: [2000, 1], seed: 1, config: {factors: 4, loss: logistic}}" \
  "$synthetic" 3 0.1
run fm "a plugin job (factorization machine on sparse data)"
acc=$(metric test_accuracy)
first=$(t_json "$T_DIR/$id.json" "j['history'][0]['test_accuracy']")
t_check "the plugin's test accuracy rose ($first -> $acc) above 0.65" \
  /usr/bin/python3 -c "import sys; sys.exit(not ($acc > 0.65 and $acc > $first))"

job logreg "{type: logreg, layers: [2000, 1], seed: 1}" "$synthetic" 3 0.1
run logreg "sparse logistic regression"
acc=$(metric test_accuracy)
t_check "logreg's test accuracy $acc is above 0.7" /usr/bin/python3 -c "import sys; sys.exit(not $acc > 0.7)"

job linreg "{type: linreg, layers: [784, 1], seed: 1}" "$fashion" 2 0.01
run linreg "linear regression on the class number"
rmse=$(metric test_rmse)
loss=$(metric test_loss)
t_check "linreg reports a test RMSE ($rmse) below the labels' spread (2.9), and loss = RMSE^2 / 2" \
  /usr/bin/python3 -c "import sys; sys.exit(not (0 < $rmse < 2.9 and abs($loss - $rmse ** 2 / 2) < 1e-6))"

t_check "pandoctl status shows the regression's RMSE" sh -c "'$BIN/pandoctl' status $id | grep -q 'TEST RMSE'"

# Sparse logistic regression on libsvm files over 1,048,576 features: seeded
# synthetic rows (a hidden weight vector decides the label) written as libsvm.
/usr/bin/python3 - "$T_DIR" <<'PY'
import random, sys
out, features, nnz = sys.argv[1], 1 << 20, 20
rng = random.Random(5)
w = {}
def weight(j):
    if j not in w:
        w[j] = rng.gauss(0, 1)
    return w[j]
for name, rows in (("train.svm", 20000), ("test.svm", 2000)):
    with open(out + "/" + name, "w") as f:
        for _ in range(rows):
            cols = sorted(rng.sample(range(1, features + 1), nnz))
            score = sum(weight(j) for j in cols) + rng.gauss(0, 0.5)
            f.write("%d %s\n" % (1 if score > 0 else -1, " ".join("%d:1" % j for j in cols)))
PY
job libsvm "{type: logreg, layers: [1048576, 1], seed: 1}" \
  "{format: libsvm, train: {features: $T_DIR/train.svm}, test: {features: $T_DIR/test.svm}}" 3 0.1
sed -i 's/update: bsp/update: asp/' "$T_DIR/libsvm.yaml"
run libsvm "sparse logistic regression on libsvm input, 1,048,576 features (ASP)"
first=$(t_json "$T_DIR/$id.json" "j['history'][0]['train_loss']")
last=$(t_json "$T_DIR/$id.json" "j['history'][-1]['train_loss']")
t_check "its training loss falls ($first -> $last)" \
  /usr/bin/python3 -c "import sys; sys.exit(not $last < $first)"

job lenet "{type: lenet, layers: [784, 10], input_shape: [1, 28, 28], seed: 1}" "$fashion" 1 0.01
run lenet "LeNet on 1024 Fashion-MNIST rows"
acc=$(metric test_accuracy)
t_check "LeNet's test accuracy $acc is above 0.5 after one epoch" \
  /usr/bin/python3 -c "import sys; sys.exit(not $acc > 0.5)"

# refused NAME PATH TEXT: a plugin job with model.path PATH is refused (exit 2)
# with a message containing TEXT.
refused() {
  job "$1" "{type: plugin, path: $2, layers: [2000, 1]}" "$synthetic" 1 0.1
  "$BIN/pandoctl" submit "$T_DIR/$1.yaml" >"$T_DIR/$1.out" 2>&1
  rc=$?
  if [ $rc -eq 2 ] && grep -qF -- "$3" "$T_DIR/$1.out"; then
    t_ok "$1 is refused: $(tail -n 1 "$T_DIR/$1.out")"
  else
    t_fail "$1 is refused with '$3' (exit $rc: $(cat "$T_DIR/$1.out"))"
  fi
}
refused missing "$T_DIR/no-such-plugin.so" "model.path: cannot load plugin $T_DIR/no-such-plugin.so"
refused abi "$plugins/libbad_abi.so" "plugin ABI version 99, but this Pando loads version 1"
refused entry "$plugins/libno_entry.so" "does not export pando_plugin_entry()"
t_done
