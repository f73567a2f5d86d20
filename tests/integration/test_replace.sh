# A restarted daemon takes its old self's place without waiting for
# node_timeout (services/coordinator/probe.h): with node_timeout 60 s (longer
# than the job's wait_timeout, so only the fast path can save it), a server
# killed with SIGKILL during a job with checkpoints and started again on
# another port registers under its name as soon as the coordinator's health
# probe of the old address is refused, and the job SUCCEEDS with the
# undisturbed run's parameters bit for bit; the same for a server started
# again on its old port (the old node missed its heartbeats: the newcomer
# holds its port), and for a worker. A registration under the name of a node
# that is alive and answers is still refused, and that node keeps its place.
. tests/integration/lib.sh
. tests/integration/recovery.sh
t_small_data "$T_DIR" 512
CK="checkpoint: {every_clocks: 4, keep: 3}"
for name in ref moved same worker; do t_recovery_spec "$name" "$CK" >"$T_DIR/$name.yaml"; done
T_NODE_TIMEOUT=60
t_recovery_cluster

echo "# the undisturbed run"
ref=$(t_submit "$T_DIR/ref.yaml")
t_check "undisturbed job $ref succeeded" [ "$(t_wait_job "$ref")" = SUCCEEDED ]
"$BIN/pandoctl" export "$ref" -o "$T_DIR/ref.safetensors" >/dev/null

# run_kill SPEC DATA-DIR VICTIM RESTART...: a job, VICTIM killed after its
# first checkpoint in DATA-DIR, RESTART run; the job must succeed bit for bit
run_kill() {
  local spec=$1 dir=$2 victim=$3 job
  shift 3
  job=$(t_submit "$T_DIR/$spec.yaml")
  t_check "job $job took its first checkpoint" t_wait_ckpt "$dir" "$job" 4
  kill -KILL "$(t_pid "$victim")"
  "$@"
  t_check "job $job succeeded after $victim's restart" [ "$(t_wait_job "$job")" = SUCCEEDED ]
  t_check "it was rolled back to a checkpoint" grep -q "job $job: RUNNING again from checkpoint [1-9]" \
    "$T_DIR/coord.log"
  "$BIN/pandoctl" export "$job" -o "$T_DIR/$spec.safetensors" >/dev/null
  t_check "its final parameters equal the undisturbed run's, bit for bit" \
    t_same "$T_DIR/ref.safetensors" "$T_DIR/$spec.safetensors"
}

echo "# a server killed and started again on another port"
run_kill moved "$T_DIR/data1" ps1 \
  t_start ps1b "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR" --name ps1 --data-dir "$T_DIR/data1"
t_check "the coordinator's probe of the old address was refused, so it declared the old ps1 dead" \
  grep -q "(ps1 at .*) does not answer at its address .*declaring it dead now" "$T_DIR/coord.log"

echo "# a server killed and started again on its port"
port0=$(t_port ps0)
start_same() {
  # shellcheck disable=SC2046 # the TLS flags are words
  "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR" --name ps0 --data-dir "$T_DIR/data0" \
    --listen "127.0.0.1:$port0" --metrics-listen 127.0.0.1:0 $(t_tls_flags pando-ps) \
    >"$T_DIR/ps0b.log" 2>&1 &
  T_PIDS="$T_PIDS $!"
}
run_kill same "$T_DIR/data0" ps0 start_same
t_check "the old ps0 was declared dead when its restart registered from its address" \
  grep -q "(ps0 at 127.0.0.1:$port0) was replaced by a node of its name" "$T_DIR/coord.log"

echo "# a worker killed and started again"
run_kill worker "$T_DIR/data0" w1 \
  t_start w1b "$BIN/pando-worker" --coordinator "$PANDO_COORDINATOR" --name w1 --batch-delay-ms 100
t_check "the old w1 was declared dead once its restart registered" \
  grep -q "(w1 at .*) \(does not answer at its address\|was replaced by a node of its name\)" \
  "$T_DIR/coord.log"

echo "# a registration under the name of a node that is alive"
/usr/bin/python3 - "$PANDO_COORDINATOR" >"$T_DIR/dup.txt" 2>&1 <<'PY'
import os, sys
sys.path.insert(0, os.path.join(os.environ.get("BUILD", "build"), "gen", "python"))
sys.path.insert(0, "tests/integration")
import grpc, pando_pb2 as pb, pdtls
ch = pdtls.channel(sys.argv[1], role="ps")
reg = ch.unary_unary("/pando.v1.Coordinator/RegisterNode",
                     request_serializer=pb.RegisterRequest.SerializeToString,
                     response_deserializer=pb.RegisterResponse.FromString)
for _ in range(3):
    try:
        reg(pb.RegisterRequest(role=pb.ROLE_SERVER, address="127.0.0.1:1", name="ps1"),
            timeout=5)
        print("registered")
    except grpc.RpcError as e:
        print(e.code().name, e.details())
PY
t_check "it is refused each time (ALREADY_EXISTS)" sh -c "[ \$(grep -c ALREADY_EXISTS '$T_DIR/dup.txt') -eq 3 ]"
sleep 1 # a cron or more: the probe of the live ps1 has been answered
"$BIN/pandoctl" cluster -o json >"$T_DIR/cluster.json"
t_check "the live ps1 keeps its place: one alive node named ps1, at its own address" \
  [ "$(t_json "$T_DIR/cluster.json" '[n["address"] for n in j["nodes"] if n["name"] == "ps1" and n["alive"]]')" = "['127.0.0.1:$(t_port ps1b)']" ]
t_done
