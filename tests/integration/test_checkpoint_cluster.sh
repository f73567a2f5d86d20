# A BSP job on a real cluster (M = 2 servers with a data_dir, N = 2 workers)
# with checkpoint: {every_epochs: 1, keep: 2}: it succeeds, each server holds
# the checkpoints of the last two epochs (ids = the clocks at the epochs'
# ends) with one manifest for its shard, and the last one's parameters,
# read from the data file by a reader written from the format description,
# equal the job's final parameters pulled from the servers. pandoctl export
# --checkpoint N reads a checkpoint through the servers (ReadCheckpoint):
# checkpoint 48 equals the live export, checkpoint 32 (epoch 2's end) equals
# bit for bit the final model of the same spec with epochs: 2, also once the
# job's model was dropped from the servers (keep_models 1); a checkpoint the
# servers do not hold is an error naming the ids they hold.
. tests/integration/lib.sh
. tests/integration/recovery.sh # t_same, t_wait_log
t_small_data "$T_DIR" 1024
spec() { # spec NAME EPOCHS
  cat <<YAML
name: $1
model: {type: mlp, layers: [784, 32, 10], activation: relu, seed: 3}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: $2, batch_size: 32, update: bsp, optimizer: {type: adam, lr: 0.001}}
cluster: {servers: 2, workers: 2}
checkpoint: {every_epochs: 1, keep: 2}
YAML
}
spec ckpt-cluster 3 >"$T_DIR/job.yaml"
spec two-epochs 2 >"$T_DIR/two.yaml"
T_COORD_ARGS="--keep-models 1" \
  T_PS_ARGS_0="--data-dir $T_DIR/data0" T_PS_ARGS_1="--data-dir $T_DIR/data1" t_cluster 2 2 ||
  { t_fail "cluster started"; t_done; }
job=$(t_submit "$T_DIR/job.yaml")
t_check "BSP job $job with checkpoints succeeded" [ "$(t_wait_job "$job")" = SUCCEEDED ]
keys=$(t_json "$T_DIR/$job.json" 'j["shard_map"]["keys"]')
addrs=$(t_json "$T_DIR/$job.json" '",".join(s["address"] for s in j["shard_map"]["shards"])')
"$BUILD/tests/integration/pdtest" pull "$job" "$keys" "$addrs" "$T_DIR/final.f32" >/dev/null
# 512 rows per worker, batches of 32: 16 clocks an epoch; keep 2 leaves 32 and 48
# (the last write may end after the job: its log line comes after the pruning)
for s in 0 1; do
  t_wait_log "$T_DIR/ps$s.log" "job $job: checkpoint 48 of keys .* is durable"
done
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

echo "# pandoctl export --checkpoint"
ctl="$BIN/pandoctl"
"$ctl" export "$job" -o "$T_DIR/live.safetensors" >/dev/null
t_check "export --checkpoint 48 says it wrote checkpoint 48" \
  sh -c "'$ctl' export '$job' --checkpoint 48 -o '$T_DIR/c48.safetensors' | grep -q '(checkpoint 48)'"
t_check "checkpoint 48 equals the live export of the finished job, bit for bit" \
  t_same "$T_DIR/live.safetensors" "$T_DIR/c48.safetensors"
"$ctl" export "$job" --checkpoint 16 -o "$T_DIR/c16.safetensors" >"$T_DIR/c16.out" 2>&1
rc=$?
t_check "export --checkpoint 16 (pruned by keep: 2) fails ($rc: $(cat "$T_DIR/c16.out"))" [ "$rc" -eq 1 ]
t_check "its message names checkpoint 16 and the ids the server holds, 32 and 48" \
  grep -q "NOT_FOUND: job '$job': this server holds no checkpoint 16 of keys .* it holds checkpoints 32, 48" "$T_DIR/c16.out"
t_check "and no file was written" [ ! -e "$T_DIR/c16.safetensors" ]
two=$(t_submit "$T_DIR/two.yaml")
t_check "the same spec with epochs: 2, $two, succeeded" [ "$(t_wait_job "$two")" = SUCCEEDED ]
"$ctl" export "$two" -o "$T_DIR/two.safetensors" >/dev/null
i=0
until grep -q "job $job: model dropped" "$T_DIR/coord.log" || [ $i -gt 100 ]; do sleep 0.1; i=$((i + 1)); done
t_check "keep_models 1 dropped $job's model from the servers" \
  grep -q "job $job: dropped" "$T_DIR/ps0.log"
t_check "a live export of $job now fails: no shards" \
  sh -c "! '$ctl' export '$job' -o '$T_DIR/gone.safetensors' 2>&1 | grep -q wrote"
"$ctl" export "$job" --checkpoint 32 -o "$T_DIR/c32.safetensors" >"$T_DIR/c32.out" 2>&1
t_check "export --checkpoint 32 of $job reads the dropped job's checkpoint ($(cat "$T_DIR/c32.out"))" \
  grep -q "wrote .* of job $job (checkpoint 32)" "$T_DIR/c32.out"
t_check "checkpoint 32 (epoch 2's end) equals $two's final model, bit for bit" \
  t_same "$T_DIR/two.safetensors" "$T_DIR/c32.safetensors"
/usr/bin/python3 - "$T_DIR/data0/jobs/$job/ckpt-00000032" <<'PY'
import glob, sys  # flips one bit of the last byte of server 0's data file of checkpoint 32
path = glob.glob(sys.argv[1] + "/*.data")[0]
raw = bytearray(open(path, "rb").read())
raw[-1] ^= 1
open(path, "wb").write(raw)
PY
"$ctl" export "$job" --checkpoint 32 -o "$T_DIR/bad.safetensors" >"$T_DIR/bad.out" 2>&1
rc=$?
t_check "a damaged checkpoint file fails the export ($rc: $(cat "$T_DIR/bad.out"))" [ "$rc" -eq 1 ]
t_check "with DATA_LOSS naming the file's checksum mismatch" \
  grep -q "DATA_LOSS: checkpoint 32 of job '$job': .*ckpt-00000032/.*: checksum mismatch" "$T_DIR/bad.out"
t_done
