# Placing a job while a server is dead but not declared so yet (the
# coordinator's node timeout is long, 30 s): its CreateShard is UNAVAILABLE,
# the placement is undone and the job is placed again on live servers (3
# servers, ps0 killed: a 2-server job SUCCEEDS on ps1 and ps2), or waits,
# PENDING with a message naming the server it avoids (2 servers, qs0
# killed): it SUCCEEDS once qs0 is restarted with the same name, or FAILS at
# its cluster.wait_timeout naming the placement it tried
# (docs/architecture.md "Job life"). Every step waits on a state or a
# message; nothing asserts a duration.
. tests/integration/lib.sh
t_small_data "$T_DIR" 256
spec() { # spec NAME WAIT-TIMEOUT
  cat <<YAML
name: $1
model: {type: softmax, layers: [784, 10], seed: 3}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
training: {epochs: 1, batch_size: 32, update: bsp, optimizer: {lr: 0.01}}
cluster: {servers: 2, workers: 1, wait_timeout: $2}
YAML
}
spec live 120 >"$T_DIR/live.yaml"
spec gives-up 2 >"$T_DIR/gives-up.yaml"
spec waits 300 >"$T_DIR/waits.yaml"
# wait_pending_message JOB TEXT: waits until JOB is PENDING and its message contains TEXT.
wait_pending_message() {
  local i=0
  while :; do
    "$BIN/pandoctl" -o json status "$1" >"$T_DIR/$1.json" 2>/dev/null
    /usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))
sys.exit(0 if j["state"] == "PENDING" and sys.argv[2] in j["message"] else 1)' \
      "$T_DIR/$1.json" "$2" 2>/dev/null && return 0
    i=$((i + 1))
    [ $i -gt 600 ] && { echo "# $1 never PENDING saying: $2" >&2; return 1; }
    sleep 0.1
  done
}
# servers_of JOB: the ports of the servers holding JOB's shards, sorted.
servers_of() {
  "$BIN/pandoctl" -o json status "$1" >"$T_DIR/$1.json" &&
    t_json "$T_DIR/$1.json" '" ".join(sorted(s["address"].rsplit(":", 1)[1] for s in j["shard_map"]["shards"]))'
}
sorted_ports() { for p in "$@"; do echo "$p"; done | sort | tr '\n' ' ' | sed 's/ $//'; }

echo "# 3 servers, ps0 killed: placed again on ps1 and ps2"
T_NODE_TIMEOUT=30
t_cluster 3 1 || { t_fail "cluster started"; t_done; }
kill -KILL "$(t_pid ps0)"
job=$(t_submit "$T_DIR/live.yaml")
state=$(t_wait_job "$job")
t_check "job $job SUCCEEDED although ps0 was dead ($state: $(t_json "$T_DIR/$job.json" 'j["message"]'))" \
  [ "$state" = SUCCEEDED ]
t_check "its shards are on ps1 and ps2" \
  [ "$(servers_of "$job")" = "$(sorted_ports "$(t_port ps1)" "$(t_port ps2)")" ]
t_check "the coordinator undid its placement on ps0 because ps0 was unreachable" \
  grep -q "job $job: placement on ps0, ps1 undone (creating the shard on server ps0 at .* failed: UNAVAILABLE" \
  "$T_DIR/coord.log"
t_check "ps0 was not declared dead meanwhile" sh -c "! grep -q '(ps0 at .*marked dead' '$T_DIR/coord.log'"

echo "# 2 servers, qs0 killed: the job waits for it"
t_start coord2 "$BIN/pando-coordinator" --heartbeat-ms 100 --node-timeout 30 ||
  { t_fail "second coordinator started"; t_done; }
PANDO_COORDINATOR=127.0.0.1:$(t_port coord2)
for n in qs0 qs1; do t_start "$n" "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR" --name "$n"; done
t_start qw0 "$BIN/pando-worker" --coordinator "$PANDO_COORDINATOR" --name qw0
i=0
while [ "$("$BIN/pandoctl" cluster -o json 2>/dev/null | grep -o '"node_id"' | wc -l)" -lt 3 ]; do
  i=$((i + 1)); [ $i -gt 100 ] && break; sleep 0.1
done
kill -KILL "$(t_pid qs0)"
job=$(t_submit "$T_DIR/gives-up.yaml")
state=$(t_wait_job "$job")
msg=$(t_json "$T_DIR/$job.json" 'j["message"]')
t_check "a job of wait_timeout 2 FAILED ($state: $msg)" [ "$state" = FAILED ]
t_check "its message says it waited for a server other than qs0" \
  sh -c "echo \"\$1\" | grep -q 'cluster.wait_timeout (2 s) expired waiting for 2 servers it can be placed on .* not placed on server qs0 at '" _ "$msg"
t_check "and names the placement it tried on qs0 and why it failed" \
  sh -c "echo \"\$1\" | grep -q 'the placements it tried failed: creating the shard on server qs0 at 127.0.0.1:$(t_port qs0) failed: UNAVAILABLE'" _ "$msg"

job=$(t_submit "$T_DIR/waits.yaml")
t_check "job $job waits, PENDING, naming qs0 as unreachable" \
  wait_pending_message "$job" "not placed on server qs0 at 127.0.0.1:$(t_port qs0) (its CreateShard found it unreachable"
rm -f "$T_DIR/qs0.port"
t_start qs0b "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR" --name qs0
state=$(t_wait_job "$job" 300)
t_check "job $job SUCCEEDED once qs0 was restarted with its name ($state: $(t_json "$T_DIR/$job.json" 'j["message"]'))" \
  [ "$state" = SUCCEEDED ]
t_check "its shards are on the restarted qs0 and on qs1" \
  [ "$(servers_of "$job")" = "$(sorted_ports "$(t_port qs0b)" "$(t_port qs1)")" ]
t_check "the coordinator is still healthy" "$BIN/pandoctl" health "$PANDO_COORDINATOR"
t_done
