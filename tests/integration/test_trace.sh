# pandoctl trace (issue 15) on a real cluster of 2 servers and 2 BSP
# workers: the file is valid JSON in the Chrome trace event format, with one
# process (pid) per worker and per server, each named by one process_name
# event; complete events ("ph": "X") with ts and dur; spans on one lane
# (pid, tid) never overlap; every server span of a pull or push nests inside
# the span of the worker's call it answers (same worker, clock and kind;
# a pull an evaluation made is inside its "eval" span); each server traced
# one push per worker and step, and every worker a gradient and a push span
# per step: tracing is on by default and the workers ship all their spans
# (512 a report, in several reports when more wait). --from-step/--to-step
# keep that window only; the window asked for (steps 10..100) holds more
# spans than a GetTrace page (512) on the coordinator and on each server, so
# pandoctl pages, and every span of it is there once.
. tests/integration/lib.sh
t_cluster 2 2 || { t_fail "cluster started"; t_done; }
t_small_data "$T_DIR" 2048
ctl="$BIN/pandoctl"
cat >"$T_DIR/job.yaml" <<YAML
name: traced
model: {type: mlp, layers: [784, 32, 10], seed: 4}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: 4, batch_size: 32, update: bsp, optimizer: {type: sgd, lr: 0.05}}
cluster: {servers: 2, workers: 2}
YAML
job=$(t_submit "$T_DIR/job.yaml")
t_check "the job SUCCEEDS" [ "$(t_wait_job "$job" 180)" = SUCCEEDED ]
"$ctl" trace "$job" -o "$T_DIR/trace.json" >"$T_DIR/trace.out" 2>&1
t_check "trace writes the file ($(cat "$T_DIR/trace.out"))" [ $? -eq 0 ]
"$ctl" trace "$job" -o "$T_DIR/window.json" --from-step 10 --to-step 100 >"$T_DIR/window.out" 2>&1
t_check "trace --from-step 10 --to-step 100 writes the file ($(cat "$T_DIR/window.out"))" [ $? -eq 0 ]
"$ctl" trace "$job" >"$T_DIR/usage.out" 2>&1
t_check "trace without -o is a usage error ($(cat "$T_DIR/usage.out"))" [ $? -eq 2 ]
/usr/bin/python3 - "$T_DIR/trace.json" "$T_DIR/window.json" "$T_DIR/$job.json" <<'PY' || T_FAILED=1
import collections, json, sys
failed = []
def check(desc, ok):
    print(("ok" if ok else "FAIL") + " - " + desc)
    if not ok:
        failed.append(desc)
try:
    trace, window = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
except ValueError as e:
    check("the trace files are JSON (%s)" % e, False)
    sys.exit(1)
st = json.load(open(sys.argv[3]))
steps = st["steps_per_epoch"] * st["epochs"]
events = trace.get("traceEvents")
check("a JSON object with a traceEvents array", isinstance(events, list))
spans = [e for e in events if e.get("ph") == "X"]
meta = [e for e in events if e.get("ph") == "M" and e.get("name") == "process_name"]
check("complete events with integer ts and dur >= 0, pid, tid, name (%d)" % len(spans),
      spans and all(isinstance(e.get("ts"), int) and isinstance(e.get("dur"), int) and e["dur"] >= 0
                    and "pid" in e and "tid" in e and e.get("name") for e in spans))
names = collections.Counter(e["pid"] for e in meta)
check("one process_name per process (%s)" % sorted(e["args"]["name"] for e in meta),
      all(n == 1 for n in names.values()))
pids = {e["pid"] for e in spans}
check("every process with spans is named", pids <= set(names))
proc = {e["pid"]: e["args"]["name"] for e in meta}
workers = {p for p, n in proc.items() if n.startswith("worker ")}
servers = {p for p, n in proc.items() if n.startswith("server ")}
check("one track per worker and per server (%d workers, %d servers, spans in %d)"
      % (len(workers), len(servers), len(pids)), len(workers) == 2 and len(servers) == 2 and pids == workers | servers)
lanes = collections.defaultdict(list)
for e in spans:
    lanes[(e["pid"], e["tid"])].append(e)
overlaps = []
for lane, es in lanes.items():
    es.sort(key=lambda e: (e["ts"], e["dur"]))
    for a, b in zip(es, es[1:]):
        if a["ts"] + a["dur"] > b["ts"]:
            overlaps.append((proc[lane[0]], lane[1], a["name"], a["ts"], a["dur"], b["name"], b["ts"]))
check("spans on one lane (pid, tid) never overlap (%d lanes; first overlaps: %s)" % (len(lanes), overlaps[:3]),
      not overlaps)
calls = collections.defaultdict(list)
for e in spans:
    if e["pid"] in workers and e["name"] in ("pull", "push", "eval"):
        calls[(e["args"]["worker"], e["args"]["clock"])].append(e)
unnested, served = [], collections.Counter()
for e in spans:
    if e["pid"] not in servers or e["name"] not in ("pull", "push"):
        continue
    served[(e["pid"], e["name"])] += 1
    a = e["args"]
    kinds = ("pull", "eval") if e["name"] == "pull" else ("push",)
    if not any(w["name"] in kinds and w["ts"] <= e["ts"] and e["ts"] + e["dur"] <= w["ts"] + w["dur"]
               for w in calls.get((a["worker"], a["clock"]), [])):
        unnested.append((proc[e["pid"]], e["name"], a["worker"], a["clock"], e["ts"], e["dur"]))
check("every server pull and push span nests in the worker's call (%d served; not nested: %s)"
      % (sum(served.values()), unnested[:3]), sum(served.values()) > 0 and not unnested)
for pid in sorted(servers):
    check("%s: %d push spans == 2 workers x %d steps" % (proc[pid], served[(pid, "push")], steps),
          served[(pid, "push")] == 2 * steps)
for pid in sorted(workers):
    names = collections.Counter(e["name"] for e in spans if e["pid"] == pid)
    check("%s: a gradient and a push span per step (%d, %d of %d)" % (proc[pid], names["gradient"], names["push"], steps),
          names["gradient"] == steps and names["push"] == steps)
wspans = [e for e in window["traceEvents"] if e.get("ph") == "X"]
wproc = {e["pid"]: e["args"]["name"] for e in window["traceEvents"]
         if e.get("ph") == "M" and e.get("name") == "process_name"}
clocks = sorted({e["args"]["clock"] for e in wspans})
check("the window has spans of clocks 10..100 only (%s)" % (clocks[:1] + clocks[-1:]),
      wspans and clocks[0] >= 10 and clocks[-1] <= 100)
# the window is the full trace's spans of clocks 10..100, each as often (a
# page twice or a lost one would show here and in the counts below; two
# spans of one lane cannot be alike but for zero-length ones, the overlap
# check above sees the rest)
full = collections.Counter(json.dumps({k: e[k] for k in ("name", "pid", "tid", "dur", "args")}, sort_keys=True)
                           for e in spans if 10 <= e["args"]["clock"] <= 100)
part = collections.Counter(json.dumps({k: e[k] for k in ("name", "pid", "tid", "dur", "args")}, sort_keys=True)
                           for e in wspans)
check("the window holds the full trace's %d spans of clocks 10..100 (%d)" % (sum(full.values()), len(wspans)),
      full == part)
wcount = collections.Counter(wproc[e["pid"]].split(" (")[0] for e in wspans)
wworkers = sum(n for p, n in wcount.items() if p.startswith("worker "))
check("the window is more than a page (512) of the coordinator's spans (%d) and of each server's (%s)"
      % (wworkers, sorted(wcount.items())),
      wworkers > 512 and all(n > 512 for p, n in wcount.items() if p.startswith("server ")))
for name in sorted(set(wproc.values())):
    kinds = collections.Counter(e["name"] for e in wspans if wproc[e["pid"]] == name)
    if name.startswith("worker "):
        check("window, %s: a gradient and a push span per step (%d, %d of 91)" % (name, kinds["gradient"], kinds["push"]),
              kinds["gradient"] == 91 and kinds["push"] == 91)
    else:
        check("window, %s: 2 workers x 91 steps of push spans (%d)" % (name, kinds["push"]), kinds["push"] == 182)
sys.exit(1 if failed else 0)
PY
t_done
