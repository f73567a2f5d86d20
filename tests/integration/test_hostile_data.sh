# Hostile data files (issue 14): while a job runs (the bystander), jobs whose
# data is a FIFO, a folder, a sparse 64 GiB file, a gzip bomb, a path outside
# data_roots (directly, by "..", or by a symlink) or /etc/passwd are
# submitted. Each is refused with INVALID_ARGUMENT naming the spec field; the
# coordinator answers health (within 1 s) all along; no message quotes a line
# of a file; outside and missing paths get the same message; the bystander
# SUCCEEDS.
. tests/integration/lib.sh
mkdir -p "$T_DIR/data" "$T_DIR/outside"
# every daemon of this test reads data only under $T_DIR/data and the Debian data
PANDO_DATA_ROOTS="$T_DIR/data,/usr/share/datasets"
PANDO_DATA_MAX_INFLATED_BYTES=100000000 # the bomb below inflates to 200 MB
PANDO_DATA_MAX_GZIP_RATIO=5000          # (so that the inflate limit is what stops it)
export PANDO_DATA_ROOTS PANDO_DATA_MAX_INFLATED_BYTES PANDO_DATA_MAX_GZIP_RATIO
T_WORKER_ARGS_0="--batch-delay-ms 20"
t_cluster 1 1 || { t_fail "cluster started"; t_done; }
t_small_data "$T_DIR/data" 512
cat >"$T_DIR/job.yaml" <<YAML
name: bystander
model: {type: softmax, layers: [784, 10]}
data:
  train: {features: $T_DIR/data/train-images.gz, labels: $T_DIR/data/train-labels.gz}
  test: {features: $T_DIR/data/test-images.gz, labels: $T_DIR/data/test-labels.gz}
training: {epochs: 60, batch_size: 64, optimizer: {lr: 0.1}}
cluster: {servers: 1, workers: 1}
YAML
job=$(t_submit "$T_DIR/job.yaml")
i=0
while [ "$("$BIN/pandoctl" -o json status "$job" | t_json /dev/stdin 'j["state"]')" != RUNNING ] && [ $i -lt 200 ]; do
  sleep 0.1; i=$((i + 1))
done
t_check "the bystander job runs before the hostile data is submitted" \
  [ "$("$BIN/pandoctl" -o json status "$job" | t_json /dev/stdin 'j["state"]')" = RUNNING ]

# The hostile files.
mkfifo "$T_DIR/data/fifo.csv"
truncate -s 64G "$T_DIR/data/sparse.csv"
/usr/bin/python3 - "$T_DIR/data/bomb.csv.gz" <<'PY'
import gzip, sys
with gzip.open(sys.argv[1], "wb") as f:
    block = b"0" * (1 << 20)
    for _ in range(200):
        f.write(block)
PY
printf '1,2\n3,4\n' >"$T_DIR/outside/secret.csv"
ln -s "$T_DIR/outside/secret.csv" "$T_DIR/data/link.csv"
ln -s /etc/passwd "$T_DIR/data/passwd-link.csv"
cp /etc/passwd "$T_DIR/data/passwd.csv" # inside the roots: read, but never quoted back

# Health of the coordinator, checked every 0.1 s while the files are
# submitted: each check must answer SERVING within 1 s.
rm -f "$T_DIR/probe.stop"
/usr/bin/python3 - "127.0.0.1:$(t_port coord)" "$T_DIR/probe.stop" >"$T_DIR/probe.out" 2>&1 <<'PY' &
import os, sys, time
import grpc
sys.path.insert(0, os.path.join(os.environ.get("BUILD", "build"), "gen", "python"))
sys.path.insert(0, "tests/integration")
import health_pb2  # noqa: E402
import pdtls  # noqa: E402
ch = pdtls.channel(sys.argv[1])
check = ch.unary_unary("/grpc.health.v1.Health/Check",
                       request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                       response_deserializer=health_pb2.HealthCheckResponse.FromString)
ok = bad = 0
while not os.path.exists(sys.argv[2]):
    try:
        r = check(health_pb2.HealthCheckRequest(service=""), timeout=1)
        ok += r.status == health_pb2.HealthCheckResponse.SERVING
        bad += r.status != health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError as e:
        bad += 1
        print("health check failed: %s" % e.code())
    time.sleep(0.1)
print("checks %d failed %d" % (ok + bad, bad))
PY
probe=$!

# spec FORMAT FEATURES [TEST_FEATURES] [EXTRA]: a job spec on these files.
spec() {
  cat <<YAML
name: hostile
model: {type: softmax, layers: [784, 10]}
data:
  format: $1
  header: true
  label_column: nosuch
YAML
  local labels="" test_labels=""
  if [ "$1" = idx ]; then
    labels=", labels: $T_DIR/data/train-labels.gz"
    test_labels=", labels: $T_DIR/data/test-labels.gz"
  fi
  echo "  train: {features: \"$2\"$labels}"
  if [ -n "${3:-}" ]; then echo "  test: {features: \"$3\"$test_labels}"; fi
  echo "training: {epochs: 1, batch_size: 8, optimizer: {lr: 0.1}}"
  echo "cluster: {servers: 1, workers: 1}"
}
# submit SPEC: SubmitJob straight to the coordinator (pandoctl would check
# the files itself first); prints "CODE: message".
submit() {
  /usr/bin/python3 - "127.0.0.1:$(t_port coord)" "$1" <<'PY'
import os, sys
import grpc
sys.path.insert(0, os.path.join(os.environ.get("BUILD", "build"), "gen", "python"))
import pando_pb2 as pb  # noqa: E402
sys.path.insert(0, "tests/integration")
import pdtls  # noqa: E402
call = pdtls.channel(sys.argv[1]).unary_unary(
    "/pando.v1.Coordinator/SubmitJob",
    request_serializer=pb.SubmitJobRequest.SerializeToString,
    response_deserializer=pb.JobStatus.FromString)
try:
    st = call(pb.SubmitJobRequest(spec_yaml=open(sys.argv[2]).read()), timeout=120)
    print("OK: job %s" % st.job)
except grpc.RpcError as e:
    print("%s: %s" % (e.code().name, e.details()))
PY
}
# refused NAME WANT FORMAT FEATURES [TEST_FEATURES]: the submit fails with
# INVALID_ARGUMENT and a message containing WANT; the message is left in
# $T_DIR/NAME.msg.
refused() {
  local name=$1 want=$2; shift 2
  spec "$@" >"$T_DIR/$name.yaml"
  submit "$T_DIR/$name.yaml" >"$T_DIR/$name.msg" 2>&1
  if grep -q "^OK" "$T_DIR/$name.msg"; then
    t_fail "$name: submit was accepted"; return
  fi
  t_check "$name: refused with INVALID_ARGUMENT: $want ($(head -c 300 "$T_DIR/$name.msg"))" \
    sh -c 'grep -q INVALID_ARGUMENT "$1" && grep -qF -- "$2" "$1"' _ "$T_DIR/$name.msg" "$want"
}

refused fifo "data.train.features: $T_DIR/data/fifo.csv: is a FIFO, not a regular file" \
  csv "$T_DIR/data/fifo.csv"
refused fifo-test "data.test.features: $T_DIR/data/fifo.csv: is a FIFO" \
  idx "$T_DIR/data/train-images.gz" "$T_DIR/data/fifo.csv"
refused fifo-idx "data.train.features: $T_DIR/data/fifo.csv: is a FIFO" idx "$T_DIR/data/fifo.csv"
refused folder "data.train.features: $T_DIR/data: is a folder" csv "$T_DIR/data"
refused sparse "data.train.features: $T_DIR/data/sparse.csv: 68719476736 bytes, more than the" \
  csv "$T_DIR/data/sparse.csv"
t_check "the message of the sparse file names data_max_bytes" grep -q "(data_max_bytes)" "$T_DIR/sparse.msg"
refused bomb "data.train.features: $T_DIR/data/bomb.csv.gz: the gzip data inflates to more than the 100000000 bytes" \
  csv "$T_DIR/data/bomb.csv.gz"
t_check "the message of the gzip bomb names data_max_inflated_bytes" \
  grep -q "(data_max_inflated_bytes)" "$T_DIR/bomb.msg"
outside="no such file under data_roots"
refused outside "data.train.features: $T_DIR/outside/secret.csv: $outside" csv "$T_DIR/outside/secret.csv"
refused missing "data.train.features: $T_DIR/outside/none.csv: $outside" csv "$T_DIR/outside/none.csv"
refused dotdot "data.train.features: $T_DIR/data/../outside/secret.csv: $outside" \
  csv "$T_DIR/data/../outside/secret.csv"
refused symlink "data.train.features: $T_DIR/data/link.csv: $outside" csv "$T_DIR/data/link.csv"
refused passwd "data.train.features: /etc/passwd: $outside" csv /etc/passwd
refused passwd-link "data.train.features: $T_DIR/data/passwd-link.csv: $outside" csv "$T_DIR/data/passwd-link.csv"
refused proc-fd "data.train.features: /proc/self/fd/2: $outside" libsvm /proc/self/fd/2
refused passwd-csv "data.label_column: $T_DIR/data/passwd.csv has no column named 'nosuch'" \
  csv "$T_DIR/data/passwd.csv"
refused passwd-libsvm "data.train.features: $T_DIR/data/passwd.csv:1: expected a label (a number)" \
  libsvm "$T_DIR/data/passwd.csv"
t_check "an existing and a missing file outside data_roots get the same message" \
  sh -c '[ "$(sed "s/secret/X/" "$1")" = "$(sed "s/none/X/" "$2")" ]' _ "$T_DIR/outside.msg" "$T_DIR/missing.msg"
# No message quotes a line (or the start of one) of /etc/passwd.
t_check "no message contains a line of /etc/passwd" /usr/bin/python3 - "$T_DIR" <<'PY'
import glob, sys
lines = [l for l in open("/etc/passwd").read().splitlines() if l]
for path in glob.glob(sys.argv[1] + "/*.msg"):
    text = open(path).read()
    for l in lines:
        if l in text or l.split(":")[0] + ":x:" in text or l[:20] in text:
            sys.exit("%s quotes the line %r" % (path, l))
PY

touch "$T_DIR/probe.stop"
wait "$probe"
t_check "the coordinator answered every health check within 1 s ($(tail -n 1 "$T_DIR/probe.out"))" \
  sh -c 'tail -n 1 "$1" | grep -q "failed 0$" && ! grep -q "checks 0 " "$1"' _ "$T_DIR/probe.out"
t_check "the coordinator is alive" kill -0 "$(t_pid coord)"
t_check "the bystander job SUCCEEDS" [ "$(t_wait_job "$job" 180)" = SUCCEEDED ]
t_done
