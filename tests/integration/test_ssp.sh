# SSP (stale synchronous parallel, Ho et al. 2013) on a real cluster: with
# one worker slowed down, no pull is answered more than `staleness` clocks
# ahead of the slowest worker (the servers' recorded max clock gap), and the
# fast worker really waits (blocked pulls). SSP with staleness 0 is BSP: the
# same job gives bit-identical parameters under both.
. tests/integration/lib.sh
t_small_data "$T_DIR" 2048
spec() { # spec NAME UPDATE-KEYS
  cat <<YAML
name: $1
model: {type: mlp, layers: [784, 32, 10], activation: relu, seed: 5}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: 2, batch_size: 32, $2, optimizer: {type: sgd, lr: 0.1}}
cluster: {servers: 2, workers: 2}
YAML
}
T_WORKER_ARGS_1="--batch-delay-ms 15"
t_cluster 2 2 || { t_fail "cluster started"; t_done; }

# 1. bounded staleness with a straggler
spec ssp-two "update: ssp, staleness: 2" >"$T_DIR/ssp.yaml"
job=$(t_submit "$T_DIR/ssp.yaml")
t_check "SSP job $job succeeded" [ "$(t_wait_job "$job" 120)" = SUCCEEDED ]
"$BIN/pandoctl" -o json status "$job" >"$T_DIR/ssp.json"
"$BIN/pandoctl" status "$job" >"$T_DIR/ssp.txt"
echo "# $(grep 'updates:' "$T_DIR/ssp.txt")"
t_check "both servers answered GetStats" [ "$(t_json "$T_DIR/ssp.json" 'j["stats"]["servers"]')" = 2 ]
gap=$(t_json "$T_DIR/ssp.json" 'j["stats"]["max_clock_gap"]')
t_check "the max clock gap the servers observed ($gap) is at most the staleness 2" [ "$gap" -le 2 ]
t_check "the straggler made the gap reach the bound ($gap = 2)" [ "$gap" = 2 ]
blocked=$(t_json "$T_DIR/ssp.json" 'j["stats"]["blocked"]')
t_check "the fast worker was blocked ($blocked pulls waited)" [ "$blocked" -gt 0 ]
t_check "every applied gradient is in the staleness histogram (2 workers x 64 clocks x 2 shards)" \
  [ "$(t_json "$T_DIR/ssp.json" 'sum(j["stats"]["staleness"].values())')" = 256 ]
t_check "some gradients were applied stale" \
  [ "$(t_json "$T_DIR/ssp.json" 'j["stats"]["staleness_sum"] > 0')" = True ]
t_check "pandoctl status shows the staleness block" \
  grep -Eq '^updates: +staleness: 0:[0-9]+.*, dropped 0, blocked [1-9][0-9]*, max clock gap 2 \(2 of 2 servers\)' "$T_DIR/ssp.txt"
mport=$(t_metrics_port ps0)
curl -s "http://127.0.0.1:$mport/metrics" >"$T_DIR/ps0.metrics"
t_check "/metrics has the staleness histogram with integer buckets" \
  grep -q "^pando_ps_staleness_bucket{job=\"$job\",le=\"32\"} " "$T_DIR/ps0.metrics"
t_check "/metrics has the blocked pulls, dropped gradients and clock gap" \
  sh -c "grep -q '^pando_ps_blocked_pulls_total{job=\"$job\"} [1-9]' '$T_DIR/ps0.metrics' &&
         grep -q '^pando_ps_dropped_gradients_total{job=\"$job\"} 0' '$T_DIR/ps0.metrics' &&
         grep -q '^pando_ps_max_clock_gap{job=\"$job\"} 2' '$T_DIR/ps0.metrics'"
t_check "/metrics has the job's SSP bound (pando_ps_staleness_bound 2), which the gap stays within" \
  grep -qx "pando_ps_staleness_bound{job=\"$job\"} 2" "$T_DIR/ps0.metrics"

# 2. staleness 0 is BSP, bit for bit
pull() { # pull JOB FILE: the job's parameters
  "$BUILD/tests/integration/pdtest" pull "$1" "$(t_json "$T_DIR/$1.json" 'j["shard_map"]["keys"]')" \
    "$(t_json "$T_DIR/$1.json" '",".join(s["address"] for s in j["shard_map"]["shards"])')" "$2" >/dev/null
}
spec bsp-ref "update: bsp" >"$T_DIR/bsp.yaml"
spec ssp-zero "update: ssp, staleness: 0" >"$T_DIR/ssp0.yaml"
bsp=$(t_submit "$T_DIR/bsp.yaml")
t_check "BSP job $bsp succeeded" [ "$(t_wait_job "$bsp" 120)" = SUCCEEDED ]
ssp0=$(t_submit "$T_DIR/ssp0.yaml")
t_check "SSP job $ssp0 with staleness 0 succeeded" [ "$(t_wait_job "$ssp0" 120)" = SUCCEEDED ]
pull "$bsp" "$T_DIR/bsp.f32"
pull "$ssp0" "$T_DIR/ssp0.f32"
t_check "SSP with staleness 0 ends with the BSP run's parameters, bit for bit" \
  cmp "$T_DIR/bsp.f32" "$T_DIR/ssp0.f32"
"$BIN/pandoctl" -o json status "$ssp0" >"$T_DIR/ssp0.json"
curl -s "http://127.0.0.1:$mport/metrics" >"$T_DIR/ps0.metrics"
t_check "no SSP bound is exported for BSP or SSP 0 jobs" \
  sh -c "! grep -Eq '^pando_ps_staleness_bound\\{job=\"($bsp|$ssp0)\"' '$T_DIR/ps0.metrics'"
t_check "under SSP 0 every gradient has staleness 0 and the gap stays 0" \
  [ "$(t_json "$T_DIR/ssp0.json" 'j["stats"]["staleness"]["0"] == 256 and j["stats"]["max_clock_gap"] == 0')" = True ]
t_done
