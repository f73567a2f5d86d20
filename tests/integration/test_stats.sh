# pandoctl stats (issue 15) on a real cluster of 2 servers and 2 BSP
# workers training an MLP on Fashion-MNIST rows: asked while the job runs,
# every worker and shard has a row with counts above 0 and below the final
# ones; after it, each worker's phases account for >= 95% of its measured
# wall time, the pull, gradient and push counts equal the steps it ran, and
# each shard handled one push per worker and step and took one optimizer
# step per BSP round. Text and -o json agree on the rows; json parses.
# (No speed is asserted: the workers' --batch-delay-ms only makes the job
# last long enough to be asked mid-way.)
. tests/integration/lib.sh
T_WORKER_ARGS_0="--batch-delay-ms 10"
T_WORKER_ARGS_1="--batch-delay-ms 10"
t_cluster 2 2 || { t_fail "cluster started"; t_done; }
t_small_data "$T_DIR" 2048
ctl="$BIN/pandoctl"
cat >"$T_DIR/job.yaml" <<YAML
name: timed
model: {type: mlp, layers: [784, 32, 10], seed: 3}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: 3, batch_size: 32, update: bsp, optimizer: {type: sgd, lr: 0.05}}
cluster: {servers: 2, workers: 2}
YAML
job=$(t_submit "$T_DIR/job.yaml")
t_check "the job is submitted" [ -n "$job" ]
# live: the first answer where both workers and both shards have counts
i=0
while :; do
  "$ctl" -o json stats "$job" >"$T_DIR/live.json" 2>"$T_DIR/live.err"
  live=$(t_json "$T_DIR/live.json" 'int(j["state"] == "RUNNING" and len(j["workers"]) == 2 and all(s.get("phases") for s in j["servers"]))' 2>/dev/null)
  [ "$live" = 1 ] && break
  i=$((i + 1))
  [ $i -gt 600 ] && break
  sleep 0.05
done
t_check "stats answers while the job runs, with both workers and both shards ($(cat "$T_DIR/live.err"))" [ "$live" = 1 ]
t_check "the job SUCCEEDS" [ "$(t_wait_job "$job" 180)" = SUCCEEDED ]
"$ctl" -o json stats "$job" >"$T_DIR/final.json"
t_check "stats -o json parses" /usr/bin/python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T_DIR/final.json"
"$ctl" stats "$job" >"$T_DIR/final.txt" 2>&1
t_check "stats answers in text" [ $? -eq 0 ]
echo "# stats' text:"; sed 's/^/#   /' "$T_DIR/final.txt"
/usr/bin/python3 - "$T_DIR/live.json" "$T_DIR/final.json" "$T_DIR/$job.json" "$T_DIR/final.txt" <<'PY' || T_FAILED=1
import json, sys
live, final, st = (json.load(open(p)) for p in sys.argv[1:4])
text = open(sys.argv[4]).read()
def check(desc, ok):
    print(("ok" if ok else "FAIL") + " - " + desc)
    if not ok:
        check.failed = True
check.failed = False
def phases(row):
    return {p["phase"]: p for p in row.get("phases") or []}
steps = st["steps_per_epoch"] * st["epochs"]
workers = {w["rank"]: w for w in final["workers"]}
check("a row per worker (%s)" % sorted(workers), sorted(workers) == [0, 1])
for rank, w in sorted(workers.items()):
    ph = phases(w)
    share = w["phases_sec"] / w["wall_sec"] if w["wall_sec"] else 0
    check("worker %d: the phases account for %.1f%% (>= 95%%) of its wall time %.3f s"
          % (rank, 100 * share, w["wall_sec"]), share >= 0.95 and share <= 1.0001)
    for name in ("gradient", "push"):
        got = ph.get(name, {}).get("count")
        check("worker %d: %s count %s == the %d steps run" % (rank, name, got, steps), got == steps)
    # an evaluation pulls the next clock's model (counted in eval), so that
    # clock pulls nothing: every epoch's evaluation but the last saves a pull
    evals = ph.get("eval", {}).get("count", 0)
    got = ph.get("pull", {}).get("count")
    check("worker %d: pull count %s == the %d steps run minus %d pulled by evaluations"
          % (rank, got, steps, max(evals - 1, 0)), got == steps - max(evals - 1, 0))
    check("worker %d: data loading counted once (%s)" % (rank, ph.get("load", {}).get("count")),
          ph.get("load", {}).get("count") == 1)
    check("worker %d: phases sorted by time" % rank,
          [p["total_sec"] for p in w["phases"]] == sorted((p["total_sec"] for p in w["phases"]), reverse=True))
    check("worker %d: its row in the text" % rank, ("\nworker %d: " % rank) in text)
check("rank 0 evaluated each epoch (eval count %s)" % phases(workers[0]).get("eval", {}).get("count"),
      phases(workers[0]).get("eval", {}).get("count") == st["epochs"])
servers = final["servers"]
check("a row per shard (%d)" % len(servers), len(servers) == 2 and all(s["answered"] for s in servers))
for s in servers:
    ph = phases(s)
    count = lambda name: ph.get(name, {}).get("count", 0)
    check("shard %d: push count %d == 2 workers x %d steps" % (s["shard"], count("push"), steps),
          count("push") == 2 * steps)
    check("shard %d: optimizer steps %d == the %d BSP rounds, aggregations %d == the other pushes"
          % (s["shard"], count("optimizer"), steps, count("aggregate")),
          count("optimizer") == steps and count("aggregate") == steps)
    check("shard %d: pulls %d >= 2 x %d steps, answered %d, waited %d <= pulls"
          % (s["shard"], count("pull"), steps, count("broadcast"), count("pull_wait")),
          count("pull") >= 2 * steps and count("broadcast") == count("pull")
          and count("pull_wait") <= count("pull"))
    check("shard %d: its row in the text" % s["shard"], ("\nserver %d (" % s["shard"]) in text)
for w in live["workers"]:
    got = phases(w).get("gradient", {}).get("count", 0)
    check("live: worker %d's gradient count %d is between 0 and the final %d"
          % (w["rank"], got, steps), 0 < got < steps)
for s in live["servers"]:
    got = phases(s).get("push", {}).get("count", 0)
    check("live: shard %d's push count %d is between 0 and the final %d" % (s["shard"], got, 2 * steps),
          0 < got < 2 * steps)
sys.exit(1 if check.failed else 0)
PY
t_done
