#!/bin/sh
# Runs a job on a local Pando cluster on loopback: a coordinator, SERVERS
# parameter servers and WORKERS workers on free ports, then submits the job
# with `pandoctl submit --wait` and stops every process it started (also on
# Ctrl-C). The last line printed is the job's "test accuracy: 0.XXXX".
# A federated job (training.update: fedavg) gets the job's cluster.servers
# servers, a selector and DEVICES simulated devices instead of workers
# (default: the job's simulation.devices, else 100), partitioned and
# dropping out as its data and simulation sections say.
# The cluster runs with mutual TLS and a cluster token (README "Security"):
# a throw-away CA, per-role certificates and a token are made in its folder
# (tools/certs.sh) and pandoctl uses them through PANDO_CA, PANDO_CERT,
# PANDO_KEY and PANDO_TOKEN_FILE. TLS=0 runs it in plaintext instead.
#   sh tools/local-cluster.sh [JOB.yaml]     (make run, make run JOB=...)
#   SERVERS=3 WORKERS=4 KEEP_LOGS=1 sh tools/local-cluster.sh examples/fashion-mlp.yaml
set -u
BUILD=${BUILD:-build}
BIN=$BUILD/bin
SPEC=${1:-examples/fashion-mlp.yaml}
SERVERS=${SERVERS:-2}
WORKERS=${WORKERS:-2}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/pando-cluster.XXXXXX")
STATUS=1
. "$(dirname "$0")/cluster-lib.sh"

stop_all() {
  stop_daemons
  if [ "$STATUS" -ne 0 ] || [ -n "${KEEP_LOGS:-}" ]; then
    echo "local-cluster: daemon logs are in $DIR" >&2
  else
    rm -rf "$DIR"
  fi
}
trap stop_all EXIT
trap 'echo "local-cluster: interrupted, stopping the cluster" >&2; exit 130' INT TERM

[ -f "$SPEC" ] || { echo "local-cluster: no job spec $SPEC" >&2; exit 2; }
# the value of a top-level `key: value` or a `  key: value` line of the spec
spec_value() { sed -n "s/^[[:space:]]*$1:[[:space:]]*\([^#[:space:]]*\).*/\1/p" "$SPEC" | head -n 1; }
spec_inline() { sed -n "s/.*[{ ,]$1:[[:space:]]*\([0-9.]*\).*/\1/p" "$SPEC" | head -n 1; }
FEDERATED=""
[ "$(spec_value update)" = fedavg ] && FEDERATED=1
make_certs
start coordinator "$BIN/pando-coordinator" --dashboard true
PANDO_COORDINATOR=127.0.0.1:$(cat "$DIR/coordinator.port")
export PANDO_COORDINATOR
echo "dashboard: http://127.0.0.1:$(cat "$DIR/coordinator.metrics-port")/dashboard" >&2
if [ -n "$FEDERATED" ]; then
  servers=$(spec_inline servers)
  SERVERS=${servers:-$SERVERS}
  devices=$(spec_inline devices)
  DEVICES=${DEVICES:-${devices:-100}}
  i=0
  while [ $i -lt "$SERVERS" ]; do start "ps-$i" "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR"; i=$((i + 1)); done
  # short reconnect windows: a local population of ~100 devices
  start selector "$BIN/pando-selector" --coordinator "$PANDO_COORDINATOR" --checkin-rate 400 \
    --min-reconnect-ms 100 --idle-reconnect-ms 1000
  SELECTOR=127.0.0.1:$(cat "$DIR/selector.port")
  start_devices devices "$SPEC" "$SELECTOR" "$DEVICES"
  echo "local-cluster: coordinator at $PANDO_COORDINATOR, $SERVERS servers, a selector at $SELECTOR, $DEVICES simulated devices, $SECURITY; submitting $SPEC" >&2
  "$BIN/pandoctl" submit "$SPEC" --wait
  STATUS=$?
  exit $STATUS
fi
i=0
while [ $i -lt "$SERVERS" ]; do start "ps-$i" "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR"; i=$((i + 1)); done
i=0
while [ $i -lt "$WORKERS" ]; do start "worker-$i" "$BIN/pando-worker" --coordinator "$PANDO_COORDINATOR"; i=$((i + 1)); done
echo "local-cluster: coordinator at $PANDO_COORDINATOR, $SERVERS servers, $WORKERS workers, $SECURITY; submitting $SPEC" >&2
"$BIN/pandoctl" submit "$SPEC" --wait
STATUS=$?
exit $STATUS
