#!/bin/sh
# Federated averaging in McMahan et al.'s setting (make bench-federated):
# Fashion-MNIST, 100 simulated devices, C = 0.1 (10 reports a round, 13
# selected: over_selection 1.3), E = 5 local epochs, B = 10, MLP
# 784-200-200-10 with local SGD (lr LR), for three partitions of the
# training set (iid; dirichlet alpha 0.5, Hsu et al. 2019; shards, 2 per
# device, McMahan's pathological non-IID) and three server aggregations
# (fedavg; fedavgm, server momentum 0.9 and server_lr FEDAVGM_LR, Hsu et
# al. 2019; fedadam, Reddi et al. 2021, server_lr FEDADAM_LR; scaffold,
# Karimireddy et al. 2020, control variates, server_lr SCAFFOLD_LR), and fedavg
# and fedadam with "-swa": the servers evaluate the running average of the
# global models from round SWA_FROM on (training.federated.swa_from). One cluster
# (coordinator, 2 servers, a selector, one process of 100 devices per
# partition, each serving only its partition's jobs) runs the jobs one
# after another. Prints a table of the rounds and seconds to test accuracy
# 0.85, the accuracy after ROUNDS rounds (centrally evaluated after every
# round) and its mean over the last 10 rounds (non-IID curves oscillate),
# writes the curves of the PLOT aggregations with `pandoctl plot` to
# SVG, then, on a fresh cluster, runs 1,000 devices with 100 reports a round
# for BIG_ROUNDS rounds and reports the selector's and the devices'
# process's peak memory and the rounds per minute.
#   sh tools/bench-federated.sh
#   ROUNDS=30 BIG_ROUNDS=5 SVG=/tmp/f.svg RESULTS=/tmp/runs sh tools/bench-federated.sh
#   PARTITIONS="iid dirichlet" AGGREGATIONS=fedavg BIG_ROUNDS=0 LR=0.02 sh tools/bench-federated.sh
set -u
BUILD=${BUILD:-build}
BIN=$BUILD/bin
ROUNDS=${ROUNDS:-100}
BIG_ROUNDS=${BIG_ROUNDS:-10} # 0: no 1,000-device run
PARTITIONS=${PARTITIONS:-iid dirichlet shards}
AGGREGATIONS=${AGGREGATIONS:-fedavg fedavgm fedadam fedavg-swa fedadam-swa scaffold scaffold-swa}
LR=${LR:-0.05}
FEDADAM_LR=${FEDADAM_LR:-0.02} # 0.003 before (docs/benchmarks.md: 0.02 is better with -swa)
FEDAVGM_LR=${FEDAVGM_LR:-0.1} # with server_momentum 0.9: an effective server step of 1
FEDAVGM_MOMENTUM=${FEDAVGM_MOMENTUM:-0.9}
FEDPROX_MU=${FEDPROX_MU:-0.1}
SCAFFOLD_LR=${SCAFFOLD_LR:-1} # eta_g (Karimireddy et al.: 1 with local steps of eta_l)
SWA_FROM=${SWA_FROM:-$((ROUNDS / 2))} # AGGREGATION-swa: the served model averages rounds SWA_FROM..
LR_SCHEDULE=${LR_SCHEDULE:-} # e.g. "{type: cosine, min_lr: 0.005}": the devices' lr over the rounds
SVG=${SVG:-docs/federated.svg}
PLOT=${PLOT:-fedavg fedadam-swa scaffold} # the aggregations drawn (pandoctl plot: at most 10 jobs)
DIR=$(mktemp -d "${TMPDIR:-/tmp}/pando-bench-fed.XXXXXX")
TLS=0
. "$(dirname "$0")/cluster-lib.sh"
trap 'stop_daemons; rm -rf "$DIR"' EXIT
trap 'exit 130' INT TERM
PY=/usr/bin/python3

spec() { # spec NAME PARTITION AGGREGATION CLIENTS ROUNDS: a job spec on stdout
  case $2 in
    dirichlet) s_part="partition: dirichlet
  alpha: 0.5" ;;
    shards) s_part="partition: shards
  shards_per_device: 2" ;;
    *) s_part="partition: $2" ;;
  esac
  s_agg="aggregation: ${3%-swa}"
  case $3 in *-swa) s_swa=", swa_from: $SWA_FROM" ;; *) s_swa="" ;; esac
  case $3 in
    fedadam*) s_agg="aggregation: fedadam, server_lr: $FEDADAM_LR" ;;
    fedavgm*) s_agg="aggregation: fedavgm, server_lr: $FEDAVGM_LR, server_momentum: $FEDAVGM_MOMENTUM" ;;
    fedprox*) s_agg="aggregation: fedprox, mu: $FEDPROX_MU" ;;
    scaffold*) s_agg="aggregation: scaffold, server_lr: $SCAFFOLD_LR" ;;
  esac
  s_agg="$s_agg$s_swa"
  s_sched=""
  [ -n "$LR_SCHEDULE" ] && s_sched="
  lr_schedule: $LR_SCHEDULE"
  cat <<YAML
name: $1
model: {type: mlp, layers: [784, 200, 200, 10], activation: relu, seed: 42}
data:
  train:
    features: /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
    labels: /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz
  test:
    features: /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
    labels: /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
  $s_part
  seed: 1
training:
  update: fedavg
  optimizer: {type: sgd, lr: $LR}$s_sched
  federated: {rounds: $5, clients_per_round: $4, local_epochs: 5, local_batch_size: 10,
              round_timeout: 120, eval_every: 1, seed: 7, $s_agg}
cluster: {servers: 2}
YAML
}

cluster() { # cluster: a coordinator, 2 servers and a selector
  start coordinator "$BIN/pando-coordinator"
  PANDO_COORDINATOR=127.0.0.1:$(cat "$DIR/coordinator.port")
  export PANDO_COORDINATOR
  start ps-0 "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR"
  start ps-1 "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR"
  start selector "$BIN/pando-selector" --coordinator "$PANDO_COORDINATOR" --checkin-rate 400 \
    --min-reconnect-ms 100 --idle-reconnect-ms 1000
  SELECTOR=127.0.0.1:$(cat "$DIR/selector.port")
}

run() { # run NAME AGGREGATION: submits $DIR/NAME.yaml, waits, keeps its status in $DIR/NAME.json
  "$BIN/pandoctl" -o json submit "$DIR/$1.yaml" --wait >"$DIR/$1.json" ||
    { echo "bench-federated: $1 was refused or failed: $(cat "$DIR/$1.json")" >&2; exit 1; }
  job=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["job"])' "$DIR/$1.json")
  state=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$DIR/$1.json")
  echo "bench-federated: $job: $state, test accuracy $($PY -c 'import json,sys; h=[r for r in json.load(open(sys.argv[1])).get("round_history", []) if r.get("has_eval")]; print(h[-1]["test_accuracy"] if h else "none")' "$DIR/$1.json")" >&2
  [ "$state" = SUCCEEDED ] || { echo "bench-federated: $job did not succeed; logs:" >&2; tail -n 5 "$DIR"/*.log >&2; exit 1; }
  case " $PLOT " in *" $2 "*) PLOT_JOBS="$PLOT_JOBS $job" ;; esac
}

PLOT_JOBS=""
cluster
for part in $PARTITIONS; do
  spec "fb-$part" "$part" fedavg 0.1 1 >"$DIR/devices-$part.yaml"
  start_devices "devices-$part" "$DIR/devices-$part.yaml" "$SELECTOR" 100 --device-id "$part" \
    --jobs "$(for agg in $AGGREGATIONS; do printf 'fb-%s-%s,' "$part" "$agg"; done)"
done
echo "bench-federated: $ROUNDS rounds each, 100 devices, C = 0.1, E = 5, B = 10, MLP 784-200-200-10, local lr $LR" >&2
for part in $PARTITIONS; do
  for agg in $AGGREGATIONS; do
    spec "fb-$part-$agg" "$part" "$agg" 0.1 "$ROUNDS" >"$DIR/fb-$part-$agg.yaml"
    run "fb-$part-$agg" "$agg"
  done
done
# shellcheck disable=SC2086 # the job ids are words
"$BIN/pandoctl" plot $PLOT_JOBS -o "$SVG" && echo "bench-federated: wrote $SVG" >&2
[ -n "${RESULTS:-}" ] && mkdir -p "$RESULTS" && cp "$DIR"/*.json "$RESULTS"/
stop_daemons

# 1,000 devices, 100 reports a round, on a fresh cluster
if [ "$BIG_ROUNDS" -gt 0 ]; then
  cluster
  spec fb-1000 iid fedavg 100 "$BIG_ROUNDS" >"$DIR/fb-1000.yaml"
  start_devices devices-1000 "$DIR/fb-1000.yaml" "$SELECTOR" 1000 --device-id big
  run fb-1000 none
  SELECTOR_KIB=$(peak_rss selector)
  DEVICES_KIB=$(peak_rss devices-1000)
fi

echo
echo "| partition | aggregation | rounds to 0.85 | seconds to 0.85 | accuracy after $ROUNDS rounds | mean of its last 10 rounds |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
for part in $PARTITIONS; do
  for agg in $AGGREGATIONS; do
    $PY - "$DIR/fb-$part-$agg.json" "$part" "$agg" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
h = [r for r in st.get("round_history", []) if r.get("has_eval") and not r.get("abandoned")]
hit = next((r for r in h if r["test_accuracy"] >= 0.85), None)
label = {"dirichlet": "dirichlet alpha 0.5", "shards": "shards, 2 per device"}.get(sys.argv[2], sys.argv[2])
last = [r["test_accuracy"] for r in h[-10:]]
print("| %s | %s | %s | %s | %.4f | %.4f |" % (label, sys.argv[3],
      hit["round"] if hit else "not reached", "%.0f" % hit["finished_sec"] if hit else "-",
      h[-1]["test_accuracy"], sum(last) / len(last)))
PY
  done
done
[ "$BIG_ROUNDS" -gt 0 ] || exit 0
echo
$PY - "$DIR/fb-1000.json" "$SELECTOR_KIB" "$DEVICES_KIB" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
h = [r for r in st.get("round_history", []) if not r.get("abandoned")]
minutes = h[-1]["finished_sec"] / 60
print("1,000 devices, 100 reports a round (130 selected), %d rounds: %.1f rounds per minute; "
      "peak memory: selector %.1f MiB, the 1,000 devices' process %.1f MiB"
      % (len(h), len(h) / minutes, int(sys.argv[2]) / 1024, int(sys.argv[3]) / 1024))
PY
