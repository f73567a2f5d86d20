# The coordinator's web dashboard (issue 15) in a real browser: headless
# Chromium loads /dashboard from a coordinator started with --dashboard
# while a job trains, and the DOM (after the page's JavaScript ran) shows
# the running job, the cluster's nodes with their health, and curves; a
# second load later shows the job's accuracy curve with more points (one per
# finished epoch). A screenshot is kept as build/test-artifacts/dashboard.png.
# Without the setting the page is not served.
. tests/integration/lib.sh
if ! command -v chromium >/dev/null 2>&1; then
  echo "# skipped: chromium is not installed (make deps installs it)"
  t_done
fi
T_COORD_ARGS="--dashboard true"
T_WORKER_ARGS_0="--batch-delay-ms 30"
t_cluster 1 1 || { t_fail "cluster started"; t_done; }
t_small_data "$T_DIR" 1024
cat >"$T_DIR/job.yaml" <<YAML
name: watched
model: {type: softmax, layers: [784, 10]}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: 400, batch_size: 128, optimizer: {lr: 0.1}}
cluster: {servers: 1, workers: 1}
YAML
job=$(t_submit "$T_DIR/job.yaml")
url="http://127.0.0.1:$(t_metrics_port coord)/dashboard"
epochs() { "$BIN/pandoctl" -o json status "$job" | t_json /dev/stdin 'len(j.get("history", []))'; }
i=0
while [ "$(epochs)" -lt 1 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
# dump DOM: loads the page, lets its timers run 4 s of (virtual) time, prints the DOM
dump() {
  timeout 120 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$T_DIR/chrome" \
    --virtual-time-budget=4000 --dump-dom "$url" 2>>"$T_DIR/chrome.err"
}
dump >"$T_DIR/dom1.html"
/usr/bin/python3 - "$T_DIR/dom1.html" "$job" >"$T_DIR/dom1.txt" <<'PY'
import re, sys
dom, job = open(sys.argv[1]).read(), sys.argv[2]
row = re.search(r'<tr id="job-%s" data-state="(\w+)">(.*?)</tr>' % re.escape(job), dom, re.S)
live = re.search(r'class="live" data-job="%s" data-points="(\d+)"' % re.escape(job), dom)
ep = re.search(r'class="epochs" data-job="%s" data-points="(\d+)"' % re.escape(job), dom)
nodes = re.findall(r'<tr data-role="(\w+)">', dom)
alive = dom.count('class="alive"')
print(row.group(1) if row else "none", live.group(1) if live else -1, ep.group(1) if ep else -1,
      ",".join(sorted(nodes)), alive)
PY
read -r state live ep nodes alive <"$T_DIR/dom1.txt"
t_check "the page shows the job RUNNING ($state)" [ "$state" = RUNNING ]
t_check "the nodes table lists the server and the worker, alive ($nodes, $alive alive)" \
  sh -c "[ '$nodes' = server,worker ] && [ '$alive' -eq 2 ]"
t_check "the live loss curve has points from the page's polls ($live)" [ "$live" -ge 2 ]
t_check "the accuracy curve has a point per finished epoch ($ep)" [ "$ep" -ge 1 ]
first=$ep
want=$((first + 2))
i=0
# (up to 3 minutes: two epochs of a sanitized build take over one)
while [ "$(epochs)" -lt $want ] && [ $i -lt 1800 ]; do sleep 0.1; i=$((i + 1)); done
# the page's data is the coordinator's snapshot, published now and then: a
# load right after the epoch may predate it, so up to 5 loads a second apart
tries=0
while :; do
  dump >"$T_DIR/dom2.html"
  /usr/bin/python3 - "$T_DIR/dom2.html" "$job" >"$T_DIR/dom2.txt" <<'PY'
import re, sys
dom, job = open(sys.argv[1]).read(), sys.argv[2]
ep = re.search(r'class="epochs" data-job="%s" data-points="(\d+)"' % re.escape(job), dom)
print(ep.group(1) if ep else -1)
PY
  ep=$(cat "$T_DIR/dom2.txt")
  tries=$((tries + 1))
  { [ "$ep" -ge "$want" ] || [ $tries -ge 5 ]; } && break
  sleep 1
done
t_check "a later load shows the accuracy curve with more points while the job trains ($first -> $ep)" \
  [ "$ep" -ge "$want" ]
mkdir -p "$BUILD/test-artifacts"
timeout 120 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$T_DIR/chrome" \
  --virtual-time-budget=8000 --window-size=1280,520 --screenshot="$BUILD/test-artifacts/dashboard.png" \
  "$url" 2>>"$T_DIR/chrome.err" >/dev/null
t_check "a screenshot is kept as $BUILD/test-artifacts/dashboard.png" \
  sh -c "head -c 8 '$BUILD/test-artifacts/dashboard.png' | od -An -c | grep -q 'P   N   G'"
"$BIN/pandoctl" cancel "$job" >/dev/null
state=$(curl -s "$url/state" | t_json /dev/stdin '[x["state"] for x in j["jobs"]][0]')
i=0
while [ "$state" != CANCELLED ] && [ $i -lt 50 ]; do
  sleep 0.1; i=$((i + 1))
  state=$(curl -s "$url/state" | t_json /dev/stdin '[x["state"] for x in j["jobs"]][0]')
done
t_check "the state the page polls follows the job (CANCELLED: $state)" [ "$state" = CANCELLED ]
# off by default
t_start plain "$BIN/pando-coordinator"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(t_metrics_port plain)/dashboard")
t_check "without --dashboard the page is not served (HTTP $code)" [ "$code" = 404 ]
t_done
