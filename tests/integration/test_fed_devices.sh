# Federated jobs with pando-worker's simulated devices (C): 40 devices with
# their own Dirichlet partitions, 30% of the selected dropping out: every
# round commits with the first min_reports reports, the late ones counted;
# then pace steering: 1000 devices checking in while a job needs 13 a round
# keep the selector's check-ins at about checkin_rate a second instead of
# the population's size per window.
. tests/integration/lib.sh
t_small_data "$T_DIR" 2000
job() { # job NAME ROUNDS K MIN DEVICES
  cat >"$T_DIR/$1.yaml" <<YAML
name: $1
model: {type: softmax, layers: [784, 10], seed: 3}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
  partition: dirichlet
  alpha: 0.5
  seed: 2
training:
  update: fedavg
  optimizer: {type: sgd, lr: 0.1}
  federated: {rounds: $2, clients_per_round: $3, min_reports: $4, local_epochs: 1,
              local_batch_size: 10, round_timeout: 20, seed: 5}
cluster: {servers: 2, wait_timeout: 60}
simulation: {devices: $5, dropout_rate: 0.3, seed: 9}
YAML
}
t_cluster 2 0 || { t_fail "cluster started"; t_done; }
t_start sel "$BIN/pando-selector" --coordinator "$PANDO_COORDINATOR" --checkin-rate 50 \
  --min-reconnect-ms 100 --idle-reconnect-ms 500 || { t_fail "selector started"; t_done; }
SEL=127.0.0.1:$(t_port sel)

# ---- 30% dropout: rounds commit with the first min_reports reports
job drop30 4 5 4 40
"$BIN/pando-worker" --role device --simulate 40 --data "$T_DIR/drop30.yaml" --selector "$SEL" \
  --device-id sim --metrics-listen "" $(t_tls_flags pando-worker) >"$T_DIR/devices.log" 2>&1 &
DEV=$!
T_PIDS="$T_PIDS $DEV"
id=$(t_submit "$T_DIR/drop30.yaml")
state=$(t_wait_job "$id" 120)
t_check "a job of 4 rounds with 30% of the selected devices dropping out SUCCEEDED ($state)" \
  [ "$state" = SUCCEEDED ]
t_check "every committed round selected ceil(1.3 x 5) = 7 and committed the first 4 reports" \
  [ "$(t_json "$T_DIR/$id.json" 'all(r["selected"] == 7 and r["reported"] == 4 for r in j["round_history"] if not r["abandoned"]) and j["rounds_done"] == 4')" = True ]
t_check "selected = reported + dropped + late in every round" \
  [ "$(t_json "$T_DIR/$id.json" 'all(r["selected"] == r["reported"] + r["dropped"] + r["late"] for r in j["round_history"])')" = True ]
t_check "the global model was evaluated centrally after each round (accuracy > 0.1)" \
  [ "$(t_json "$T_DIR/$id.json" 'all(r["has_eval"] and r["test_accuracy"] > 0.1 for r in j["round_history"] if not r["abandoned"])')" = True ]
labels=$(t_json "$T_DIR/$id.json" '(j["labels"]["reports"], round(j["labels"]["mean_labels_90"], 2), len(j["labels"]["totals"]), sum(j["labels"]["totals"])) if j["labels"] else None')
# every report that arrived in time counts: 4 per committed round, and
# those of an attempt abandoned at round_timeout (a slow, sanitized build)
in_time=$(t_json "$T_DIR/$id.json" 'sum(r["reported"] for r in j["round_history"])')
echo "# label summary (reports, labels for 90% of a device's rows, labels, rows): $labels; reports in time: $in_time"
t_check "the devices' label histograms are summarised: every report in time ($in_time), 10 labels, Dirichlet(0.5) skew (fewer than 8 labels hold 90% of a device's rows on average: $labels)" \
  /usr/bin/python3 -c "import sys; r, m, n, rows = eval(sys.argv[1]); sys.exit(not (r == int(sys.argv[2]) >= 16 and n == 10 and rows > 0 and 1 <= m < 8))" "$labels" "$in_time"
"$BIN/pandoctl" status "$id" >"$T_DIR/status.txt"
t_check "pandoctl status shows the summary ($(grep '^labels:' "$T_DIR/status.txt"))" \
  grep -q "^labels: *$in_time device reports; 90% of a device's rows lie in" "$T_DIR/status.txt"
abandoned=$(t_json "$T_DIR/$id.json" 'sum(1 for r in j["round_history"] if r["abandoned"])')
curl -s "http://127.0.0.1:$(t_metrics_port coord)/metrics" >"$T_DIR/coord.metrics"
t_check "pando_fed_rounds_abandoned_total is exported (even at 0) and equals the abandoned attempts ($abandoned)" \
  grep -qx "pando_fed_rounds_abandoned_total{job=\"$id\"} $abandoned" "$T_DIR/coord.metrics"
kill -TERM "$DEV"
wait "$DEV"
t_check "the simulated devices stop cleanly on SIGTERM" [ $? -eq 0 ]

# ---- pace steering: 1000 devices, 13 needed a round
job pace 1000 10 10 1000
id=$(t_submit "$T_DIR/pace.yaml")
"$BIN/pando-worker" --role device --simulate 1000 --data "$T_DIR/pace.yaml" --selector "$SEL" \
  --device-id many --dropout-rate 1 --metrics-listen "" $(t_tls_flags pando-worker) \
  >"$T_DIR/devices-1000.log" 2>&1 &
T_PIDS="$T_PIDS $!"
checkins() {
  curl -s "http://127.0.0.1:$(t_metrics_port sel)/metrics" |
    sed -n 's/^pando_selector_checkins_total \([0-9.e+]*\)$/\1/p'
}
# every device checks in once at start (spread over 1 s); told windows of
# 1000 / 50 = 20 s (+-25%), the population then comes back at ~50 a second
sleep 4
c1=$(checkins)
sleep 10
c2=$(checkins)
rate=$(/usr/bin/python3 -c "print(round(($c2 - $c1) / 10.0, 1))")
echo "# check-ins per second with 1000 devices and checkin_rate 50: $rate"
t_check "1000 devices keep the selector's check-ins at or below checkin_rate 50/s x 1.5 ($rate/s; without pace steering they would come every min_reconnect 0.1 s: 10000/s)" \
  [ "$(/usr/bin/python3 -c "print($rate <= 75)")" = True ]
t_check "and they do check in (the population stays online: $rate/s > 0)" \
  [ "$(/usr/bin/python3 -c "print($rate > 0)")" = True ]
online=$(curl -s "http://127.0.0.1:$(t_metrics_port sel)/metrics" | sed -n 's/^pando_selector_devices_online \([0-9]*\)$/\1/p')
# (with those of the first part whose round or window has not run out yet)
t_check "the selector holds all 1000 devices online ($online)" \
  [ "$online" -ge 1000 -a "$online" -le 1040 ]
"$BIN/pandoctl" cancel "$id" >/dev/null
t_done
