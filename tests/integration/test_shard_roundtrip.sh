# M=3 servers, a weight tensor spanning both shard boundaries: pulls and
# pushes through the client library round-trip exactly, key for key.
. tests/integration/lib.sh
cat >"$T_DIR/job.yaml" <<YAML
name: roundtrip
model: {type: softmax, layers: [784, 10], seed: 11}
data: {train: {features: x, labels: y}}
training: {epochs: 1, batch_size: 1, update: asp, optimizer: {type: sgd, lr: 1}}
cluster: {servers: 3, workers: 1}
YAML
addrs=""
for i in 0 1 2; do
  t_start "ps$i" "$BIN/pando-ps" --name "ps$i" || t_fail "ps$i started"
  addrs="$addrs${addrs:+,}127.0.0.1:$(t_port "ps$i")"
done
# shards as the coordinator plans them: 7850 keys -> [0,2617) [2617,5234) [5234,7850)
/usr/bin/python3 - "$T_DIR/job.yaml" "$addrs" <<'PY' || t_fail "shards created"
import os, sys, grpc
sys.path.insert(0, os.path.join(os.environ.get("BUILD", "build"), "gen", "python"))
import pando_pb2 as pb
sys.path.insert(0, "tests/integration")
import pdtls  # PANDO_TEST_TLS: TLS and the token
spec = open(sys.argv[1]).read()
bounds = [0, 2617, 5234, 7850]
for i, addr in enumerate(sys.argv[2].split(",")):
    ch = pdtls.channel(addr)
    create = ch.unary_unary("/pando.v1.ParameterServer/CreateShard",
                            request_serializer=pb.CreateShardRequest.SerializeToString,
                            response_deserializer=pb.CreateShardResponse.FromString)
    create(pb.CreateShardRequest(job="rt", spec_yaml=spec, begin=bounds[i], end=bounds[i + 1],
                                 num_workers=1), timeout=10)
PY
"$BUILD/tests/integration/pdtest" roundtrip rt "$T_DIR/job.yaml" "$addrs" || T_FAILED=1
t_done
