# pandoctl export: a trained job's model written as safetensors is read by a
# reader written from the format's description (8-byte little-endian header
# length, JSON header with dtype, shape and data_offsets, raw little-endian
# data; numpy, no Pando code), and its predictions on the test set give the
# test accuracy the job reported for its last epoch. A job started from the
# file (model.init) with a learning rate too small to change a float32
# parameter reports that accuracy after its first epoch; a model.init whose
# tensors do not fit the model is refused at submit, naming the tensor.
. tests/integration/lib.sh
t_small_data "$T_DIR" 1024
cat >"$T_DIR/job.yaml" <<YAML
name: export
model: {type: mlp, layers: [784, 32, 10], activation: relu, seed: 5}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: 2, batch_size: 32, update: bsp, optimizer: {type: adam, lr: 0.003}}
cluster: {servers: 2, workers: 2}
YAML
t_cluster 2 2 || { t_fail "cluster started"; t_done; }
job=$(t_submit "$T_DIR/job.yaml")
t_check "job $job succeeded" [ "$(t_wait_job "$job")" = SUCCEEDED ]
t_check "pandoctl export $job -o model.safetensors" \
  "$BIN/pandoctl" export "$job" -o "$T_DIR/model.safetensors"
acc=$(t_json "$T_DIR/$job.json" 'j["history"][-1]["test_accuracy"]')
t_check "the exported model's test accuracy is the job's ($acc)" \
  /usr/bin/python3 - "$T_DIR" "$acc" <<'PY'
import gzip, json, struct, sys
import numpy as np
tmp, reported = sys.argv[1], float(sys.argv[2])
raw = open(tmp + "/model.safetensors", "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
t = {}
for name, d in header.items():
    if name == "__metadata__":
        continue
    assert d["dtype"] == "F32"
    b, e = d["data_offsets"]
    t[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(d["shape"])
print("# tensors:", {k: list(v.shape) for k, v in t.items()}, "metadata:", header.get("__metadata__"))
def idx(path):
    buf = gzip.open(path).read()
    ndim = buf[3]
    dims = struct.unpack(">" + "I" * ndim, buf[4:4 + 4 * ndim])
    return np.frombuffer(buf, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
x = idx(tmp + "/test-images.gz").reshape(-1, 784).astype(np.float32) / np.float32(255)
y = idx(tmp + "/test-labels.gz")
h = np.maximum(x @ t["layer0.weight"] + t["layer0.bias"], 0)
pred = np.argmax(h @ t["layer1.weight"] + t["layer1.bias"], axis=1)
acc = float(np.mean(pred == y))
print("# accuracy from the file %.6f, reported %.6f" % (acc, reported))
sys.exit(0 if abs(acc - reported) < 1e-9 and acc > 0.5 else 1)
PY
sed -e "s/^name: export/name: warm/" -e "s/epochs: 2/epochs: 1/" \
  -e "s|seed: 5}|seed: 5, init: $T_DIR/model.safetensors}|" \
  -e "s/optimizer: {type: adam, lr: 0.003}/optimizer: {type: sgd, lr: 1e-30}/" \
  "$T_DIR/job.yaml" >"$T_DIR/warm.yaml"
warm=$(t_submit "$T_DIR/warm.yaml")
t_check "warm-start job $warm from the exported model succeeded" [ "$(t_wait_job "$warm")" = SUCCEEDED ]
t_check "it starts at the exported model's accuracy ($acc)" \
  [ "$(t_json "$T_DIR/$warm.json" 'j["history"][0]["test_accuracy"]')" = "$acc" ]
sed -e "s/layers: \[784, 32, 10\]/layers: [784, 64, 10]/" "$T_DIR/warm.yaml" >"$T_DIR/bad.yaml"
"$BIN/pandoctl" submit "$T_DIR/bad.yaml" >"$T_DIR/bad.out" 2>&1
t_check "a model.init that does not fit is refused naming the tensor and shapes" \
  grep -q "model.init: .*tensor 'layer0.weight' has shape \[784, 32\], the model needs \[784, 64\]" \
  "$T_DIR/bad.out"
"$BIN/pandoctl" export nope-1 -o "$T_DIR/x.safetensors" >"$T_DIR/nope.out" 2>&1
t_check "export of an unknown job fails naming it, writing nothing" \
  sh -c "grep -q \"job 'nope-1' not found\" '$T_DIR/nope.out' && [ ! -e '$T_DIR/x.safetensors' ]"
t_done
