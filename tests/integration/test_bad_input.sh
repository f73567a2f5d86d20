# Bad input reaches the user as a message naming the field, line or value,
# and leaves nothing behind: bad job specs at submit, unknown jobs, bad flags.
. tests/integration/lib.sh
t_cluster 1 1 || { t_fail "cluster started"; t_done; }
ctl="$BIN/pandoctl"
good="$T_DIR/good.yaml"
cat >"$good" <<'YAML'
name: good
model: {type: softmax, layers: [784, 10]}
data:
  train:
    features: /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
    labels: /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz
training: {epochs: 1, batch_size: 64, optimizer: {lr: 0.1}}
cluster: {servers: 1, workers: 1}
YAML
# expect_reject NAME SED-EXPRESSION TEXT: the spec edited by SED is refused at
# submit with exit 2 and a message containing TEXT.
expect_reject() {
  sed "$2" "$good" >"$T_DIR/$1.yaml"
  "$ctl" submit "$T_DIR/$1.yaml" >"$T_DIR/$1.out" 2>&1
  rc=$?
  if [ $rc -eq 2 ] && grep -qF -- "$3" "$T_DIR/$1.out"; then
    t_ok "$1 is refused: $(tail -n 1 "$T_DIR/$1.out")"
  else
    t_fail "$1 is refused with '$3' (exit $rc: $(cat "$T_DIR/$1.out"))"
  fi
}
expect_reject batch_size 's/batch_size: 64/batch_size: 0/' "training.batch_size: must be between 1 and 65536, got 0 (line 7)"
expect_reject typo_key 's/^training:/trainig:/' "unknown key 'trainig' (line 7)"
expect_reject update 's/epochs: 1,/epochs: 1, update: bsq,/' "training.update: unknown value 'bsq'"
expect_reject missing_lr 's/optimizer: {lr: 0.1}/optimizer: {type: sgd}/' "training.optimizer.lr: required"
expect_reject data_file 's/train-images-idx3/no-such-file/' "data.train.features:"
expect_reject inputs 's/layers: \[784, 10\]/layers: [100, 10]/' "model.layers[0]: the model takes 100 inputs"
# admission control: a model no server's memory_limit can hold is refused
# at submit (exit 1: the spec is valid, the cluster too small)
sed 's/type: softmax, layers: \[784, 10\]/type: mlp, layers: [784, 1000000000, 10]/' "$good" >"$T_DIR/too_big.yaml"
"$ctl" submit "$T_DIR/too_big.yaml" >"$T_DIR/too_big.out" 2>&1
t_check "a job too big for every server is refused at submit, saying what it needs and what there is ($(cat "$T_DIR/too_big.out"))" \
  sh -c "[ $? -eq 1 ] && grep -q 'the cluster cannot hold it: the job needs 9098053.0 MiB on each of its 1 servers' '$T_DIR/too_big.out' && grep -q 'the largest has' '$T_DIR/too_big.out'"
expect_reject yaml_syntax 's/^name: good/name: [good/' "YAML syntax error"
t_check "a missing spec file is named" sh -c "'$ctl' submit '$T_DIR/nope.yaml' 2>&1 | grep -q 'nope.yaml'"
t_check "no job was created by the refused submits" \
  [ "$("$ctl" -o json list | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')" = 0 ]
"$ctl" status no-such-job >"$T_DIR/status.out" 2>&1
t_check "status of an unknown job exits 1 and names it" sh -c "[ $? -eq 1 ] && grep -q \"no-such-job\" '$T_DIR/status.out'"
"$BIN/pando-ps" --heartbeat 5 >"$T_DIR/flag.out" 2>&1
t_check "a daemon's unknown flag is named ($(cat "$T_DIR/flag.out"))" sh -c "[ $? -eq 2 ] && grep -q -- '--heartbeat' '$T_DIR/flag.out'"
PANDO_LOG_LEVEL=loud "$BIN/pando-ps" --check-config >"$T_DIR/env.out" 2>&1
t_check "a bad log level is refused, naming the value and its source ($(cat "$T_DIR/env.out"))" \
  grep -q "log_level: unknown value 'loud'.*(env PANDO_LOG_LEVEL)" "$T_DIR/env.out"
/usr/bin/python3 - "$T_DIR" <<'PY'
import gzip, struct, sys
out, n = sys.argv[1], 256
imgs = gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").read()
gzip.open(out + "/x.gz", "wb").write(imgs[:4] + struct.pack(">I", n) + imgs[8:16] + imgs[16:16 + n * 784])
gzip.open(out + "/y.gz", "wb").write(struct.pack(">II", 0x801, n) + bytes(i % 12 for i in range(n)))
PY
sed "s|features: /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz|features: $T_DIR/x.gz|; s|labels: /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz|labels: $T_DIR/y.gz|" "$good" >"$T_DIR/labels.yaml"
job=$(t_submit "$T_DIR/labels.yaml")
state=$(t_wait_job "$job" 30)
msg=$(t_json "$T_DIR/$job.json" 'j["message"]')
failed_on_labels() { [ "$state" = FAILED ] && printf '%s' "$msg" | grep -q 'has label 10, but the model has 10 classes'; }
t_check "labels beyond the model's classes fail the job with a message ($state: $msg)" failed_on_labels
t_check "the worker survived the bad labels" kill -0 "$(t_pid w0)"
job=$(t_submit "$good")
t_check "the good spec still runs after all that ($job)" [ "$(t_wait_job "$job")" = SUCCEEDED ]
t_done
