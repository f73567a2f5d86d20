#!/bin/sh
# The update strategies under a straggler (make bench-strategies): the
# Fashion-MNIST MLP (examples/fashion-mlp.yaml's model, Adam) with N = 3
# workers of which one is a 3x straggler (worker setting `slowdown 3`), for
# BSP, BSP with 1 backup worker (N + 1 = 4 workers run, the straggler among
# them), SSP with staleness 2 and ASP, each on a fresh local cluster of 2
# servers. Every worker also simulates BATCH_DELAY_MS (default 5) of compute
# per batch (worker setting batch_delay_ms): the MLP's own gradient takes
# about a millisecond, less than a pull and a push, so without it a 3x
# slower computation would hardly slow the straggler down. Prints a table of the time to test accuracy 0.85 and the final
# accuracy (from `pandoctl status -o json`'s epoch history) and writes a plot
# of test accuracy over time to docs/strategies.svg (tools/strategies_plot.py).
#   sh tools/strategies.sh                  EPOCHS=5 by default
#   EPOCHS=3 BATCH_DELAY_MS=0 SVG=/tmp/s.svg RESULTS=/tmp/runs sh tools/strategies.sh
# (RESULTS: keep each run's status JSON there)
set -u
BUILD=${BUILD:-build}
BIN=$BUILD/bin
EPOCHS=${EPOCHS:-5}
BATCH_DELAY_MS=${BATCH_DELAY_MS:-5}
SVG=${SVG:-docs/strategies.svg}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/pando-strategies.XXXXXX")
TLS=0
. "$(dirname "$0")/cluster-lib.sh"
trap 'stop_daemons; rm -rf "$DIR"' EXIT
trap 'exit 130' INT TERM

run() { # run LABEL WORKERS UPDATE-KEYS: one job on a fresh cluster; status in $DIR/LABEL.json
  label=$1 workers=$2 keys=$3
  start coordinator "$BIN/pando-coordinator"
  PANDO_COORDINATOR=127.0.0.1:$(cat "$DIR/coordinator.port")
  export PANDO_COORDINATOR
  start ps-0 "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR"
  start ps-1 "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR"
  # the straggler registers last, so that it is not rank 0 (which evaluates
  # and so times the epochs of the history)
  i=1
  while [ $i -lt "$workers" ]; do
    start "worker-$i" "$BIN/pando-worker" --coordinator "$PANDO_COORDINATOR" \
      --batch-delay-ms "$BATCH_DELAY_MS"
    i=$((i + 1))
  done
  start worker-0 "$BIN/pando-worker" --coordinator "$PANDO_COORDINATOR" --slowdown 3 \
    --batch-delay-ms "$BATCH_DELAY_MS"
  sleep 1 # every node registered
  cat >"$DIR/$label.yaml" <<YAML
name: strategies
model: {type: mlp, layers: [784, 256, 10], activation: relu, seed: 42}
data:
  train:
    features: /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
    labels: /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz
  test:
    features: /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
    labels: /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
training: {epochs: $EPOCHS, batch_size: 64, $keys, optimizer: {type: adam, lr: 0.001}}
cluster: {servers: 2, workers: 3, wait_timeout: 30}
YAML
  echo "strategies: $label ($workers workers, worker-0 slowed 3x)" >&2
  job=$("$BIN/pandoctl" -o json submit "$DIR/$label.yaml" |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["job"])')
  waited=0
  while :; do
    "$BIN/pandoctl" -o json status "$job" >"$DIR/$label.json" 2>/dev/null
    state=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$DIR/$label.json" 2>/dev/null)
    case $state in SUCCEEDED|FAILED|CANCELLED) break ;; esac
    waited=$((waited + 1))
    [ $waited -gt 3600 ] && { state=TIMEOUT; break; }
    sleep 1
  done
  echo "strategies: $label: $state; the straggler was $(grep -o 'rank [0-9]* of [0-9]*' "$DIR/worker-0.log" | head -n 1)" >&2
  [ "$state" = SUCCEEDED ] || { echo "strategies: $label did not succeed; logs:" >&2; tail -n 5 "$DIR"/*.log >&2; exit 1; }
  stop_daemons
}

run bsp 3 "update: bsp"
run bsp-backup 4 "update: bsp, backup_workers: 1"
run ssp 3 "update: ssp, staleness: 2"
run asp 3 "update: asp"
[ -n "${RESULTS:-}" ] && mkdir -p "$RESULTS" && cp "$DIR"/*.json "$RESULTS"/
/usr/bin/python3 tools/strategies_plot.py "$SVG" \
  "BSP=$DIR/bsp.json" "BSP + 1 backup=$DIR/bsp-backup.json" \
  "SSP (s = 2)=$DIR/ssp.json" "ASP=$DIR/asp.json"
