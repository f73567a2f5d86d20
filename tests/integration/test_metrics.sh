# Every daemon serves Prometheus text exposition on /metrics: it parses with
# an independent parser (prometheus_client), and its counters move when a job
# runs (RPCs by method and code, bytes, pushes applied, job progress).
. tests/integration/lib.sh
t_small_data "$T_DIR" 1024
cat >"$T_DIR/job.yaml" <<YAML
name: metrics
model: {type: softmax, layers: [784, 10]}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: 2, batch_size: 32, optimizer: {lr: 0.1}}
cluster: {servers: 1, workers: 1}
YAML
t_cluster 1 1 || { t_fail "cluster started"; t_done; }
scrape() { # scrape NAME FILE
  /usr/bin/python3 - "http://127.0.0.1:$(t_metrics_port "$1")/metrics" "$2" <<'PY'
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
resp = urllib.request.urlopen(sys.argv[1], timeout=5)
assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4"), resp.headers["Content-Type"]
text = resp.read().decode()
open(sys.argv[2], "w").write(text)
families = list(text_string_to_metric_families(text))  # raises on bad syntax
print("# %d families, %d samples" % (len(families), sum(len(f.samples) for f in families)))
PY
}
# value FILE NAME LABEL-SUBSTRING...: sums the samples of NAME whose labels contain every substring
value() {
  /usr/bin/python3 - "$@" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
text, name, wants = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3:]
total = 0.0
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        labels = ",".join('%s="%s"' % kv for kv in sorted(s.labels.items()))
        if s.name == name and all(w in labels for w in wants):
            total += s.value
print(total)
PY
}
for d in coord ps0 w0; do
  t_check "$d: /metrics parses as Prometheus text" scrape "$d" "$T_DIR/$d.before"
done
# counters that alerts watch exist at 0 before anything happened (an
# increase() sees their first step): deploy/prometheus/alerts.yml
for st in FAILED SUCCEEDED CANCELLED; do
  t_check "coordinator: pando_jobs_finished_total{state=$st} is exported at 0 before any job ended" \
    grep -qx "pando_jobs_finished_total{state=\"$st\"} 0" "$T_DIR/coord.before"
done
t_check "coordinator: pando_nodes_dead_total{role=worker} is exported at 0" \
  grep -qx 'pando_nodes_dead_total{role="worker"} 0' "$T_DIR/coord.before"
# which math runs: an info metric on every daemon, its start log, and each
# node's registration as `pandoctl cluster` shows it (the same line)
math=$(grep -o 'math: .*' "$T_DIR/w0.log" | head -n 1 | cut -c7-)
t_check "worker: logs 'math: LIBRARY (ISA), BLAS (CORE)' at start ($math)" \
  sh -c 'echo "$1" | grep -Eq "^oneDNN [0-9.]+ \([a-z0-9_]+\), OpenBLAS [0-9.]+ \([A-Za-z0-9]+\)$"' - "$math"
for d in coord ps0 w0; do
  t_check "$d: logs the same math line" grep -qF "math: $math" "$T_DIR/$d.log"
  info=$(value "$T_DIR/$d.before" pando_math_info 'library="oneDNN' 'isa="' 'blas="OpenBLAS')
  t_check "$d: pando_math_info{library,isa,blas,blas_core} is 1 ($info)" [ "$info" = 1.0 ]
done
"$BIN/pandoctl" cluster -o json >"$T_DIR/cluster.json"
nmath=$(t_json "$T_DIR/cluster.json" "sum(n['math'] == '''$math''' for n in j['nodes'])")
t_check "pandoctl cluster: both nodes registered with their math ($nmath of 2)" [ "$nmath" = 2 ]
t_check "pandoctl cluster: a MATH column" sh -c '"$1" cluster | head -n 1 | grep -q "MATH"' - "$BIN/pandoctl"
job=$(t_submit "$T_DIR/job.yaml")
t_check "job $job succeeded" [ "$(t_wait_job "$job")" = SUCCEEDED ]
for d in coord ps0 w0; do scrape "$d" "$T_DIR/$d.after" >/dev/null; done
gt() { /usr/bin/python3 -c "import sys; sys.exit(not float(sys.argv[1]) > float(sys.argv[2]))" "$1" "$2"; }
pushes=$(value "$T_DIR/ps0.after" pando_ps_pushes_total 'job="'"$job"'"' 'result="applied"')
t_check "ps: pando_ps_pushes_total{result=applied} counts the job's pushes ($pushes)" gt "$pushes" 0
handled=$(value "$T_DIR/ps0.after" pando_rpc_server_handled_total 'Push' 'code="OK"')
handled0=$(value "$T_DIR/ps0.before" pando_rpc_server_handled_total 'Push' 'code="OK"')
t_check "ps: Push calls handled moved ($handled0 -> $handled)" gt "$handled" "$handled0"
bytes=$(value "$T_DIR/ps0.after" pando_rpc_server_sent_bytes_total 'Pull')
t_check "ps: bytes sent for pulls ($bytes) are at least one model per step" gt "$bytes" $((7850 * 4 * 32))
lat=$(value "$T_DIR/ps0.after" pando_rpc_server_seconds_count 'Pull')
t_check "ps: the Pull latency histogram has observations ($lat)" gt "$lat" 0
wpull=$(value "$T_DIR/w0.after" pando_rpc_client_handled_total 'Pull' 'code="OK"')
t_check "worker: client Pull calls counted ($wpull)" gt "$wpull" 0
acc=$(value "$T_DIR/coord.after" pando_job_test_accuracy 'job="'"$job"'"')
t_check "coordinator: pando_job_test_accuracy of the job ($acc)" gt "$acc" 0.5
fin=$(value "$T_DIR/coord.after" pando_jobs_finished_total 'state="SUCCEEDED"')
t_check "coordinator: pando_jobs_finished_total{state=SUCCEEDED} ($fin)" gt "$fin" 0
alive=$(value "$T_DIR/coord.after" pando_nodes 'role="server"' 'state="alive"'),$(value "$T_DIR/coord.after" pando_nodes 'role="worker"' 'state="alive"'),$(value "$T_DIR/coord.after" pando_nodes 'state="dead"')
t_check "coordinator: pando_nodes counts 1 alive server, 1 alive worker, 0 dead ($alive)" [ "$alive" = 1.0,1.0,0.0 ]
code=$(/usr/bin/python3 -c "
import urllib.request, urllib.error
try: urllib.request.urlopen('http://127.0.0.1:$(t_metrics_port ps0)/other', timeout=5); print(200)
except urllib.error.HTTPError as e: print(e.code)")
t_check "another path is 404 ($code)" [ "$code" = 404 ]
t_done
