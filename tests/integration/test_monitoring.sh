# The monitoring stack of deploy/prometheus: promtool checks both
# configurations and the alert rules and runs their unit tests
# (alerts_test.yml); the compose configuration scrapes every daemon of
# docker-compose.yml on its metrics port, and the Kubernetes one (relabelling
# simulated on the pods of k8s/) finds each daemon once on its metrics port.
# Then a real Prometheus on 127.0.0.1 scrapes a real local cluster with the
# real alerts.yml and scrape settings (1-2 s intervals): every target is up,
# the rules load, a job that fails fires PandoJobFailed, and a worker that
# dies fires PandoNodeDead and PandoTargetDown (pending: it waits 1 minute).
# Skipped only when Debian's prometheus (make deps) is not installed.
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  echo "# skipped: prometheus/promtool not installed (make deps installs Debian's prometheus)"
  exit 0
fi
. tests/integration/lib.sh
D=deploy/prometheus

# ---- 1. static checks
t_check "promtool check config $D/prometheus.yml" promtool check config "$D/prometheus.yml"
t_check "promtool check rules $D/alerts.yml" promtool check rules "$D/alerts.yml"
t_check "promtool test rules $D/alerts_test.yml (each alert fires and does not)" \
  promtool test rules "$D/alerts_test.yml"
# Debian's Prometheus is built without Kubernetes discovery: promtool checks
# the rest of prometheus-k8s.yml (relabelling, rule files) with the
# kubernetes_sd_configs replaced by a static target, and the relabelling is
# applied to the pods of k8s/ as Kubernetes would list them.
mkdir -p "$T_DIR/k8s"
cp "$D/alerts.yml" "$T_DIR/k8s/"
/usr/bin/python3 - "$D/prometheus-k8s.yml" "$T_DIR/k8s/prometheus.yml" <<'PY'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
for s in c["scrape_configs"]:
    if "kubernetes_sd_configs" in s:
        for sd in s.pop("kubernetes_sd_configs"):
            assert sd["role"] == "pod" and sd["namespaces"]["names"] == ["pando"], sd
        s["static_configs"] = [{"targets": ["pod:1"]}]
yaml.safe_dump(c, open(sys.argv[2], "w"))
PY
t_check "promtool check config $D/prometheus-k8s.yml (kubernetes_sd_configs as a static target)" \
  promtool check config "$T_DIR/k8s/prometheus.yml"
t_check "$D/prometheus-k8s.yml finds each Pando daemon of k8s/ once, on its metrics port, with its component" \
  /usr/bin/python3 - "$D/prometheus-k8s.yml" k8s <<'PY'
import glob, re, sys, yaml
conf = yaml.safe_load(open(sys.argv[1]))
job = next(s for s in conf["scrape_configs"] if s["job_name"] == "pando")
def norm(s):
    return re.sub(r"[^a-zA-Z0-9_]", "_", s)
def go_replacement(rep, m):
    return re.sub(r"\$\{?(\w+)\}?", lambda g: m.group(int(g.group(1))) or "" if g.group(1).isdigit() else "", rep)
def relabel(labels, rules):
    for r in rules:
        action = r.get("action", "replace")
        regex = re.compile("(?:" + r.get("regex", "(.*)") + ")$")
        if action == "labeldrop":
            labels = {k: v for k, v in labels.items() if not regex.match(k)}
            continue
        value = r.get("separator", ";").join(labels.get(l, "") for l in r.get("source_labels", []))
        m = regex.match(value)
        if action == "keep" and not m: return None
        if action == "drop" and m: return None
        if action == "replace" and m:
            out = go_replacement(r.get("replacement", "$1"), m)
            if out: labels[r["target_label"]] = out
            else: labels.pop(r["target_label"], None)
    return labels
want = {"pando-coordinator": (9070, "coordinator"), "pando-ps": (9000, "ps"), "pando-worker": (9100, "worker")}
ok, seen = True, {}
for f in sorted(glob.glob(sys.argv[2] + "/*.yaml")):
    for obj in yaml.safe_load_all(open(f)):
        t = (obj or {}).get("spec", {}).get("template")
        if not t: continue
        meta = t.get("metadata", {})
        base = {"__meta_kubernetes_namespace": "pando", "__meta_kubernetes_pod_name": obj["metadata"]["name"] + "-0",
                "__metrics_path__": "/metrics", "job": "pando"}
        for k, v in meta.get("labels", {}).items(): base["__meta_kubernetes_pod_label_" + norm(k)] = v
        for k, v in meta.get("annotations", {}).items(): base["__meta_kubernetes_pod_annotation_" + norm(k)] = v
        targets = set()
        for c in t["spec"]["containers"]:
            for p in c.get("ports", []) or [None]:
                l = dict(base, __address__="10.0.0.1" + (":%d" % p["containerPort"] if p else ""))
                if p: l["__meta_kubernetes_pod_container_port_name"] = p.get("name", "")
                out = relabel(l, job.get("relabel_configs", []))
                if out: targets.add(tuple(sorted((k, v) for k, v in out.items() if not k.startswith("__meta_"))))
            daemon = (c.get("command") or [""])[0]
            if daemon in want:
                port, role = want[daemon]
                expect = {("10.0.0.1:%d" % port, "/metrics", role)}
                got = {(dict(x)["__address__"], dict(x)["__metrics_path__"], dict(x).get("component")) for x in targets}
                if got != expect:
                    ok = False
                    print("# %s %s: targets %s, want %s" % (f, obj["metadata"]["name"], got, expect))
                seen[daemon] = True
            elif targets:
                ok = False
                print("# %s %s (%s) would be scraped: %s" % (f, obj["metadata"]["name"], daemon, targets))
if set(seen) != set(want):
    ok = False
    print("# daemons of k8s/ found: %s" % sorted(seen))
sys.exit(0 if ok else 1)
PY
t_check "$D/prometheus.yml scrapes every daemon of docker-compose.yml on its metrics port, with its component" \
  /usr/bin/python3 - "$D/prometheus.yml" docker-compose.yml <<'PY'
import sys, yaml
conf = yaml.safe_load(open(sys.argv[1]))
compose = yaml.safe_load(open(sys.argv[2]))
defaults = {"pando-coordinator": ("9070", "coordinator"), "pando-ps": ("9000", "ps"), "pando-worker": ("9100", "worker")}
want = set()
for name, s in compose["services"].items():
    daemon = (s.get("command") or [""])[0]
    if daemon in defaults:
        env = s.get("environment") or {}
        port = env.get("PANDO_METRICS_LISTEN", "0.0.0.0:" + defaults[daemon][0]).rsplit(":", 1)[1]
        want.add(("%s:%s" % (name, port), defaults[daemon][1]))
job = next(s for s in conf["scrape_configs"] if s["job_name"] == "pando")
got = {(t, sc.get("labels", {}).get("component")) for sc in job["static_configs"] for t in sc["targets"]}
if got != want:
    print("# targets %s, want %s" % (sorted(got), sorted(want)))
    sys.exit(1)
PY

# ---- 2. a real Prometheus scraping a real cluster
t_small_data "$T_DIR" 512
t_cluster 1 1 || { t_fail "cluster started"; t_done; }
PROM_PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PROM=http://127.0.0.1:$PROM_PORT
cp "$D/alerts.yml" "$T_DIR/alerts.yml"
# The real prometheus.yml with the test cluster's ports and short intervals.
/usr/bin/python3 - "$D/prometheus.yml" "$T_DIR/prometheus.yml" "$PROM_PORT" \
  "coordinator=127.0.0.1:$(t_metrics_port coord)" "ps=127.0.0.1:$(t_metrics_port ps0)" \
  "worker=127.0.0.1:$(t_metrics_port w0)" <<'PY'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
c["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"}
# a slow answer under load is not a down target: 2 s to answer
for sc in c["scrape_configs"]:
    sc["scrape_interval"] = sc["scrape_timeout"] = "2s"
c["rule_files"] = ["alerts.yml"]
targets = dict(a.split("=", 1) for a in sys.argv[4:])
for s in c["scrape_configs"]:
    if s["job_name"] == "pando":
        s["static_configs"] = [{"targets": [addr], "labels": {"component": c}} for c, addr in targets.items()]
    else:
        s["static_configs"] = [{"targets": ["127.0.0.1:" + sys.argv[3]]}]
yaml.safe_dump(c, open(sys.argv[2], "w"))
PY
prometheus --config.file="$T_DIR/prometheus.yml" --storage.tsdb.path="$T_DIR/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$T_DIR/prometheus.log" 2>&1 &
T_PIDS="$T_PIDS $!"
PROM_PID=$!
# prom_until SECONDS PATH PYTHON-EXPR: polls the API at PATH (JSON as j) until
# the expression is true; prints its last value.
prom_until() {
  local n=0 last=""
  while [ $n -lt $(($1 * 2)) ]; do
    if curl -sf "$PROM$2" >"$T_DIR/api.json" 2>/dev/null; then
      last=$(t_json "$T_DIR/api.json" "$3" 2>/dev/null)
      [ "$last" = True ] && return 0
    fi
    kill -0 "$PROM_PID" 2>/dev/null || { echo "# prometheus exited" >&2; return 1; }
    n=$((n + 1))
    sleep 0.5
  done
  return 1
}
prom_ready() {
  local n=0
  until curl -sf "$PROM/-/ready" >/dev/null 2>&1; do
    kill -0 "$PROM_PID" 2>/dev/null || return 1
    n=$((n + 1))
    [ $n -gt 240 ] && return 1
    sleep 0.5
  done
}
t_check "prometheus $(prometheus --version 2>&1 | head -n 1 | cut -d' ' -f3) ready on 127.0.0.1:$PROM_PORT" prom_ready
t_check "/api/v1/targets: the coordinator, server and worker targets are all up" \
  prom_until 120 /api/v1/targets \
  'sorted((t["labels"]["component"], t["health"]) for t in j["data"]["activeTargets"] if t["labels"]["job"] == "pando") == [("coordinator", "up"), ("ps", "up"), ("worker", "up")]'
names=$(/usr/bin/python3 -c 'import sys, yaml; print(sorted(r["alert"] for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"]))' "$D/alerts.yml")
t_check "/api/v1/rules: every rule of alerts.yml loaded and evaluates ($names)" \
  prom_until 60 /api/v1/rules \
  "sorted(r['name'] for g in j['data']['groups'] for r in g['rules'] if r['health'] == 'ok' and r['type'] == 'alerting') == $names"
t_check "pando_jobs_finished_total{state=FAILED} was scraped at 0 before any job ended" \
  prom_until 60 "/api/v1/query?query=pando_jobs_finished_total%7Bstate%3D%22FAILED%22%7D" \
  '[r["value"][1] for r in j["data"]["result"]] == ["0"]'
active() { # active PYTHON-CONDITION-ON-a: whether such an alert is pending or firing
  prom_until 120 /api/v1/alerts "any($1 for a in j['data']['alerts'] if a['state'] in ('pending', 'firing'))"
}

cat >"$T_DIR/good.yaml" <<YAML
name: good
model: {type: softmax, layers: [784, 10]}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
training: {epochs: 1, batch_size: 64, optimizer: {lr: 0.1}}
cluster: {servers: 1, workers: 1}
YAML
good=$(t_submit "$T_DIR/good.yaml")
t_check "job $good succeeded" [ "$(t_wait_job "$good" 120)" = SUCCEEDED ]
# Pando's own job label arrives as pando_job (metric_relabel_configs).
t_check "the job's series carry pando_job=\"$good\" (metric_relabel_configs), none exported_job" \
  prom_until 60 "/api/v1/query?query=count(%7Bpando_job%3D%22$good%22%7D)%20and%20absent(%7Bexported_job!%3D%22%22%7D)" \
  'len(j["data"]["result"]) == 1'
# A job that fails: labels beyond the model's classes (as test_bad_input).
/usr/bin/python3 - "$T_DIR" <<'PY'
import gzip, struct, sys
out, n = sys.argv[1], 256
imgs = gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").read()
gzip.open(out + "/x.gz", "wb").write(imgs[:4] + struct.pack(">I", n) + imgs[8:16] + imgs[16:16 + n * 784])
gzip.open(out + "/y.gz", "wb").write(struct.pack(">II", 0x801, n) + bytes(i % 12 for i in range(n)))
PY
sed "s|$T_DIR/train-images.gz|$T_DIR/x.gz|; s|$T_DIR/train-labels.gz|$T_DIR/y.gz|; s/^name: good/name: bad/" \
  "$T_DIR/good.yaml" >"$T_DIR/bad.yaml"
t_check "neither PandoJobFailed nor PandoNodeDead is pending or firing while every job succeeded" \
  prom_until 10 /api/v1/alerts 'not [a for a in j["data"]["alerts"] if a["labels"]["alertname"] in ("PandoJobFailed", "PandoNodeDead")]'
bad=$(t_submit "$T_DIR/bad.yaml")
t_check "job $bad with bad labels failed" [ "$(t_wait_job "$bad" 60)" = FAILED ]
t_check "/api/v1/alerts: PandoJobFailed is pending or firing (state=FAILED, with its summary)" \
  active "a['labels']['alertname'] == 'PandoJobFailed' and a['labels']['state'] == 'FAILED' and a['annotations']['summary'] == 'A Pando job failed'"
# A worker that dies: the coordinator declares it dead (node timeout 5 s)
# and Prometheus can no longer scrape it.
kill -KILL "$(t_pid w0)"
t_check "/api/v1/alerts: PandoNodeDead is pending or firing for role=worker" \
  active "a['labels']['alertname'] == 'PandoNodeDead' and a['labels']['role'] == 'worker'"
t_check "/api/v1/alerts: PandoTargetDown is pending or firing for the worker's target" \
  active "a['labels']['alertname'] == 'PandoTargetDown' and a['labels']['instance'] == '127.0.0.1:$(t_metrics_port w0)'"
t_done
