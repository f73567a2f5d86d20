# A BSP job on a real cluster (M = 2 servers with a data_dir, N = 2 workers)
# with checkpoint: {every_epochs: 1, keep: 2}: it succeeds, each server holds
# the checkpoints of the last two epochs (ids = the clocks at the epochs'
# ends) with one manifest for its shard, and the last one's parameters,
# read from the data file by a reader written from the format description,
# equal the job's final parameters pulled from the servers.
. tests/integration/lib.sh
t_small_data "$T_DIR" 1024
cat >"$T_DIR/job.yaml" <<YAML
name: ckpt-cluster
model: {type: mlp, layers: [784, 32, 10], activation: relu, seed: 3}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: 3, batch_size: 32, update: bsp, optimizer: {type: adam, lr: 0.001}}
cluster: {servers: 2, workers: 2}
checkpoint: {every_epochs: 1, keep: 2}
YAML
T_PS_ARGS_0="--data-dir $T_DIR/data0" T_PS_ARGS_1="--data-dir $T_DIR/data1" t_cluster 2 2 ||
  { t_fail "cluster started"; t_done; }
job=$(t_submit "$T_DIR/job.yaml")
t_check "BSP job $job with checkpoints succeeded" [ "$(t_wait_job "$job")" = SUCCEEDED ]
keys=$(t_json "$T_DIR/$job.json" 'j["shard_map"]["keys"]')
addrs=$(t_json "$T_DIR/$job.json" '",".join(s["address"] for s in j["shard_map"]["shards"])')
"$BUILD/tests/integration/pdtest" pull "$job" "$keys" "$addrs" "$T_DIR/final.f32" >/dev/null
# 512 rows per worker, batches of 32: 16 clocks an epoch; keep 2 leaves 32 and 48
for s in 0 1; do
  t_check "server $s keeps checkpoints 32 and 48 of $job" \
    [ "$(ls "$T_DIR/data$s/jobs/$job" | tr '\n' ' ')" = "ckpt-00000032 ckpt-00000048 " ]
done
t_check "the checkpoints are logged as durable" grep -q "checkpoint 48 of keys .* is durable" "$T_DIR/ps0.log"
t_check "checkpoint 48 of both shards holds the final parameters, bit for bit" \
  /usr/bin/python3 - "$T_DIR" "$job" "$T_DIR/final.f32" <<'PY'
import glob, struct, sys
import numpy as np
tmp, job, final = sys.argv[1], sys.argv[2], np.fromfile(sys.argv[3], dtype="<f4")
model = np.zeros_like(final)
covered = 0
for manifest in glob.glob("%s/data*/jobs/%s/ckpt-00000048/*.manifest" % (tmp, job)):
    fields = dict(line.split(" ", 1) for line in open(manifest).read().splitlines()[1:])
    begin, end = int(fields["begin"]), int(fields["end"])
    data = open(manifest.rsplit("/", 1)[0] + "/" + fields["data"], "rb").read()
    assert data[:8] == b"PDSHARD1" and len(data) == int(fields["bytes"])
    (count,) = struct.unpack_from("<I", data, 8)
    for i in range(count):  # name[16], offset u64, bytes u64, crc32 u32, pad u32
        name, offset, size, crc, _ = struct.unpack_from("<16sQQII", data, 16 + 40 * i)
        if name.rstrip(b"\0") == b"values":
            model[begin:end] = np.frombuffer(data, dtype="<f4", count=size // 4, offset=offset)
            covered += end - begin
print("# %d of %d keys from the checkpoint" % (covered, final.size))
sys.exit(0 if covered == final.size and model.tobytes() == final.tobytes() else 1)
PY
t_done
