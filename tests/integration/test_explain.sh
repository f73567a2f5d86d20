# pandoctl explain (issue 15) against what the job then does on a real
# cluster of 2 servers and 2 workers: the key ranges it prints are the shard
# map the job gets, each server's memory is what the server then counts
# (pando_ps_shard_memory_bytes), and the pull and push bytes per clock are
# within 10% of the bytes the servers received and sent per clock and
# worker; steps per epoch are those the job runs. Its warnings name a job
# that needs more servers than are registered, a shard larger than every
# server's memory_limit, and a partition smaller than a batch; a bad spec
# is refused naming the field.
. tests/integration/lib.sh
t_cluster 2 2 || { t_fail "cluster started"; t_done; }
t_small_data "$T_DIR" 2048
ctl="$BIN/pandoctl"
cat >"$T_DIR/job.yaml" <<YAML
name: planned
model: {type: mlp, layers: [784, 64, 10], seed: 5}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: 2, batch_size: 64, update: bsp, optimizer: {type: adam, lr: 0.001}}
cluster: {servers: 2, workers: 2}
YAML
"$ctl" -o json explain "$T_DIR/job.yaml" >"$T_DIR/plan.json" 2>"$T_DIR/plan.err"
t_check "explain answers with a plan ($(cat "$T_DIR/plan.err"))" [ $? -eq 0 ]
"$ctl" explain "$T_DIR/job.yaml" >"$T_DIR/plan.txt" 2>&1
echo "# explain's text:"; sed 's/^/#   /' "$T_DIR/plan.txt"
t_check "its text names the tensors, the servers' memory and the consistency model" \
  sh -c "grep -q 'layer0.weight  \[784, 64\]' '$T_DIR/plan.txt' && grep -q 'MiB' '$T_DIR/plan.txt' && grep -q '^consistency: bsp' '$T_DIR/plan.txt' && grep -q '^warnings: none' '$T_DIR/plan.txt'"
job=$(t_submit "$T_DIR/job.yaml")
t_check "the job SUCCEEDS" [ "$(t_wait_job "$job" 120)" = SUCCEEDED ]
metrics() { curl -s "http://127.0.0.1:$(t_metrics_port "$1")/metrics"; }
metrics ps0 >"$T_DIR/ps0.prom"
metrics ps1 >"$T_DIR/ps1.prom"
/usr/bin/python3 - "$T_DIR/plan.json" "$T_DIR/$job.json" "$T_DIR/ps0.prom" "$T_DIR/ps1.prom" <<'PY' || T_FAILED=1
import json, re, sys
plan, st = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
proms = [open(p).read() for p in sys.argv[3:5]]
def check(desc, ok):
    print(("ok" if ok else "FAIL") + " - " + desc)
def metric(text, name, labels=""):
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^%s(\{[^}]*\})? (\S+)$" % re.escape(name), line)
        if m and labels in (m.group(1) or ""):
            total += float(m.group(2))
    return total
want = [(s["begin"], s["end"]) for s in plan["shards"]]
got = [(int(s["begin"]), int(s["end"])) for s in st["shard_map"]["shards"]]
check("explain's key ranges are the job's shard map (%s)" % want, want == got)
mem = [metric(p, "pando_ps_shard_memory_bytes") for p in proms]
check("each server's memory is what explain said (%s; the servers count %s)"
      % ([s["memory_bytes"] for s in plan["shards"]], mem),
      sorted(mem) == sorted(float(s["memory_bytes"]) for s in plan["shards"]))
check("steps per epoch: explain %d, the job %d" % (plan["steps_per_epoch"], st["steps_per_epoch"]),
      plan["steps_per_epoch"] == st["steps_per_epoch"])
clocks = plan["clocks_per_epoch"] * 2 * plan["workers"]  # 2 epochs
push = sum(metric(p, "pando_rpc_server_received_bytes_total", "Push") for p in proms) / clocks
pull = sum(metric(p, "pando_rpc_server_sent_bytes_total", "/Pull") for p in proms) / clocks
for name, est, real in (("push", plan["push_bytes_per_clock"], push),
                        ("pull", plan["pull_bytes_per_clock"], pull)):
    check("%s bytes per clock and worker: explain %d, measured %.0f (within 10%%)" % (name, est, real),
          real > 0 and abs(est - real) <= 0.1 * real)
PY
# warnings
sed 's/servers: 2, workers: 2/servers: 5, workers: 2/' "$T_DIR/job.yaml" >"$T_DIR/five.yaml"
"$ctl" explain "$T_DIR/five.yaml" >"$T_DIR/five.txt" 2>&1
t_check "a job needing 5 servers is warned about ($(grep warning "$T_DIR/five.txt"))" \
  grep -q 'warning: 2 servers are registered, the job needs 5' "$T_DIR/five.txt"
sed 's/layers: \[784, 64, 10\]/layers: [784, 1000000000, 10]/' "$T_DIR/job.yaml" >"$T_DIR/big.yaml"
"$ctl" explain "$T_DIR/big.yaml" >"$T_DIR/big.txt" 2>&1
t_check "a shard larger than every server's memory_limit is warned about ($(grep warning "$T_DIR/big.txt"))" \
  grep -q 'warning: memory: a shard needs .* MiB but only 0 of the 2 registered servers' "$T_DIR/big.txt"
sed 's/batch_size: 64/batch_size: 4096/' "$T_DIR/job.yaml" >"$T_DIR/batch.yaml"
"$ctl" explain "$T_DIR/batch.yaml" >"$T_DIR/batch.txt" 2>&1
t_check "a partition smaller than a batch is warned about ($(grep warning "$T_DIR/batch.txt"))" \
  grep -q "warning: a worker's partition (1024 rows) is smaller than a batch" "$T_DIR/batch.txt"
sed 's/epochs: 2/epochs: 0/' "$T_DIR/job.yaml" >"$T_DIR/bad.yaml"
"$ctl" explain "$T_DIR/bad.yaml" >"$T_DIR/bad.txt" 2>&1
t_check "a bad spec is refused naming the field (exit 2: $(cat "$T_DIR/bad.txt"))" \
  sh -c "[ $? -eq 2 ] && grep -q 'training.epochs' '$T_DIR/bad.txt'"
t_check "explain created no job" \
  [ "$("$ctl" -o json list | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')" = 1 ]
t_done
