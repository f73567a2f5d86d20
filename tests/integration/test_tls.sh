# TLS and the cluster token (README "Security"): a cluster whose every port
# serves TLS and demands the token (t_tls) trains a small job to SUCCEEDED
# through pandoctl and exports it; pandoctl without the CA, with another CA or
# with a wrong token is refused; an independent grpcio client
# (tlsprobe.py) is refused in plaintext or with another CA, and gets
# UNAUTHENTICATED without the token with nothing changed (ReadCheckpoint
# takes the job's token only while the shard is held); the token is in no
# log and not in --check-config; unreadable or invalid PEM and token files
# stop a daemon at start with exit 2 and a message naming the setting and
# the file. Workers pull and push with their job's token from their
# Assignment (assignprobe.py: a worker of one job cannot read another; a
# holder of the cluster token cannot get another node's Assignment, nor
# heartbeat or report progress in its name, without its node secret). With
# T_TLS_MODE=mtls (test_mtls.sh) the servers also require client
# certificates and check the roles in them (a worker's certificate with only
# the cluster token cannot Pull or Push a job).
. tests/integration/lib.sh
mode=${T_TLS_MODE:-tls}
t_small_data "$T_DIR" 512
cat >"$T_DIR/job.yaml" <<YAML
name: tls
model: {type: mlp, layers: [784, 16, 10], activation: relu, seed: 5}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: 1, batch_size: 32, update: bsp, optimizer: {type: sgd, lr: 0.05}}
cluster: {servers: 2, workers: 2}
YAML
t_tls "$mode" || { t_fail "certificates made"; t_done; }
sh tools/certs.sh "$T_DIR/other" admin || { t_fail "second CA made"; t_done; }
token=$(cat "$T_CERTS/token")
echo "# $mode cluster: coordinator, 2 servers, 2 workers"
t_cluster 2 2 || { t_fail "$mode cluster started"; t_done; }
job=$(t_submit "$T_DIR/job.yaml")
t_check "job $job SUCCEEDED on the $mode cluster" [ "$(t_wait_job "$job")" = SUCCEEDED ]
t_check "pandoctl export (Pull from both servers over TLS)" \
  "$BIN/pandoctl" export "$job" -o "$T_DIR/model.safetensors"

echo "# pandoctl refused"
refused() { # refused WHAT-TO-GREP COMMAND...: exit 1 and the message names the cause
  local want=$1; shift
  "$@" >"$T_DIR/refused.out" 2>&1 && return 1
  grep -q "$want" "$T_DIR/refused.out" || { cat "$T_DIR/refused.out" >&2; return 1; }
}
t_check "pandoctl without the CA (plaintext) is refused" \
  refused UNAVAILABLE env -u PANDO_CA -u PANDO_CERT -u PANDO_KEY "$BIN/pandoctl" list
t_check "pandoctl trusting another CA is refused" \
  refused UNAVAILABLE "$BIN/pandoctl" --ca "$T_DIR/other/ca.pem" --cert "$T_DIR/other/admin.pem" \
  --key "$T_DIR/other/admin.key" list
t_check "pandoctl without the token is UNAUTHENTICATED" \
  refused UNAUTHENTICATED env -u PANDO_TOKEN_FILE "$BIN/pandoctl" list
t_check "pandoctl with a wrong token (PANDO_TOKEN) is UNAUTHENTICATED" \
  refused UNAUTHENTICATED env PANDO_TOKEN=not-the-token "$BIN/pandoctl" list
t_check "pandoctl health answers without a token" \
  env -u PANDO_TOKEN_FILE "$BIN/pandoctl" health "127.0.0.1:$(t_port ps0)"
if [ "$mode" = mtls ]; then
  t_check "under mTLS pandoctl without a client certificate is refused" \
    refused UNAVAILABLE env -u PANDO_CERT -u PANDO_KEY "$BIN/pandoctl" list
fi

echo "# per-job tokens"
jt=$(t_json "$T_DIR/submit.json" 'j.get("job_token", "")')
t_check "SubmitJob gave job $job a token of 64 hex digits" sh -c "echo '$jt' | grep -Eq '^[0-9a-f]{64}$'"
t_check "GetJob does not return the job token" \
  [ "$(t_json "$T_DIR/$job.json" 'j.get("job_token", "none")')" = none ]
as_job() { env -u PANDO_TOKEN_FILE PANDO_TOKEN="$jt" "$@"; }
t_check "with only its job token, pandoctl status $job works (GetJob, GetStats)" \
  sh -c "env -u PANDO_TOKEN_FILE PANDO_TOKEN='$jt' '$BIN/pandoctl' status '$job' | grep -q '(2 of 2 servers)'"
t_check "with only its job token, pandoctl export $job works (Pull)" \
  as_job "$BIN/pandoctl" export "$job" -o "$T_DIR/model2.safetensors"
t_check "... and exports the same model" cmp -s "$T_DIR/model.safetensors" "$T_DIR/model2.safetensors"
t_check "a job token cannot list jobs" refused UNAUTHENTICATED as_job "$BIN/pandoctl" list
t_check "a job token cannot list the cluster" refused UNAUTHENTICATED as_job "$BIN/pandoctl" cluster
t_check "a job token cannot submit" refused UNAUTHENTICATED as_job "$BIN/pandoctl" submit "$T_DIR/job.yaml"
sed -e "s/^name: tls/name: long/" -e "s/epochs: 1/epochs: 500/" "$T_DIR/job.yaml" >"$T_DIR/long.yaml"
"$BIN/pandoctl" submit "$T_DIR/long.yaml" --token-out "$T_DIR/long.token" >"$T_DIR/long.id"
long=$(cat "$T_DIR/long.id")
t_check "submit --token-out wrote job $long's token, mode 0600" \
  sh -c "grep -Eq '^[0-9a-f]{64}$' '$T_DIR/long.token' && [ \"\$(stat -c %a '$T_DIR/long.token')\" = 600 ]"
i=0
while [ "$("$BIN/pandoctl" -o json status "$long" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" != RUNNING ]; do
  i=$((i + 1)); [ $i -gt 300 ] && break; sleep 0.1
done
"$BIN/pandoctl" -o json cluster >"$T_DIR/cluster.json"
w0=$(t_json "$T_DIR/cluster.json" '[n["node_id"] for n in j["nodes"] if n["name"] == "w0"][0]')
echo "# node $w0 (a worker of job $long) is bound to its secret; job $long's token reads job $long only"
/usr/bin/python3 tests/integration/assignprobe.py "$PANDO_COORDINATOR" "127.0.0.1:$(t_port ps0)" \
  "$T_CERTS" "$w0" "$long" "$T_DIR/long.token" "$job" "$T_DIR/probe.secret" || T_FAILED=1
t_check "job $job's token cannot cancel job $long" \
  refused UNAUTHENTICATED as_job "$BIN/pandoctl" cancel "$long"
t_check "job $job's token cannot ask about job $long" \
  refused UNAUTHENTICATED as_job "$BIN/pandoctl" status "$long"
t_check "a job token does not tell whether a job exists (UNAUTHENTICATED, not NOT_FOUND)" \
  refused UNAUTHENTICATED as_job "$BIN/pandoctl" status no-such-job
t_check "job $long's own token cancels it" \
  sh -c "env -u PANDO_TOKEN_FILE PANDO_TOKEN=\"\$(cat '$T_DIR/long.token')\" '$BIN/pandoctl' cancel '$long' | grep -q CANCELLED"

echo "# an independent client (grpcio)"
/usr/bin/python3 tests/integration/tlsprobe.py "127.0.0.1:$(t_port ps0)" "127.0.0.1:$(t_port coord)" \
  "$T_CERTS" "$T_DIR/other" "$mode" || T_FAILED=1

echo "# the token is never shown"
for d in coord ps0 ps1 w0 w1; do
  t_check "the tokens (cluster, jobs) and node secrets are not in $d's log" \
    sh -c "! grep -qF -e '$token' -e '$jt' -e '$(cat "$T_DIR/long.token")' \
      -e '$(cat "$T_DIR/probe.secret")' '$T_DIR/$d.log'"
done
"$BIN/pando-ps" $(t_tls_flags pando-ps) --check-config >"$T_DIR/check.out" 2>&1
t_check "--check-config shows token_file as (set), not the token" \
  sh -c "grep -q '^token_file = (set)' '$T_DIR/check.out' && ! grep -qF '$token' '$T_DIR/check.out'"

echo "# bad certificate, key and token files stop a daemon at start"
bad_start() { # bad_start MESSAGE FLAGS...: exit 2, the message on stderr
  local want=$1; shift
  "$BIN/pando-ps" --listen 127.0.0.1:0 --metrics-listen "" "$@" >"$T_DIR/bad.out" 2>&1
  [ $? -eq 2 ] && grep -qF "$want" "$T_DIR/bad.out" || { cat "$T_DIR/bad.out" >&2; return 1; }
}
c=$T_CERTS
printf 'not a certificate\n' >"$T_DIR/garbage.pem"
: >"$T_DIR/empty-token"
t_check "a missing tls_cert file" \
  bad_start "tls_cert: cannot read $T_DIR/nope.pem" --tls-cert "$T_DIR/nope.pem" --tls-key "$c/ps.key"
t_check "a tls_cert without a certificate" \
  bad_start "tls_cert: $T_DIR/garbage.pem holds no PEM certificate" --tls-cert "$T_DIR/garbage.pem" \
  --tls-key "$c/ps.key"
t_check "a tls_key of another certificate" \
  bad_start "tls_key: the key in $c/worker.key does not belong to the certificate in $c/ps.pem" \
  --tls-cert "$c/ps.pem" --tls-key "$c/worker.key"
t_check "a tls_key without a key" \
  bad_start "tls_key: $T_DIR/garbage.pem holds no PEM private key" --tls-cert "$c/ps.pem" \
  --tls-key "$T_DIR/garbage.pem"
t_check "--check-config checks the files too" \
  bad_start "tls_key: the key in $c/worker.key does not belong" --tls-cert "$c/ps.pem" \
  --tls-key "$c/worker.key" --check-config
t_check "tls_cert without tls_key" bad_start "tls_cert: must be set together with tls_key" \
  --tls-cert "$c/ps.pem"
t_check "a tls_ca without a certificate" \
  bad_start "tls_ca: $T_DIR/garbage.pem holds no PEM certificate" --tls-ca "$T_DIR/garbage.pem"
t_check "tls_client_auth require without tls_ca" bad_start "tls_client_auth: 'require' needs" \
  --tls-cert "$c/ps.pem" --tls-key "$c/ps.key" --tls-client-auth require
t_check "an empty token_file" bad_start "token_file: $T_DIR/empty-token: the token is empty" \
  --token-file "$T_DIR/empty-token"
t_check "a missing token_file" bad_start "token_file: cannot read $T_DIR/nope" \
  --token-file "$T_DIR/nope"
t_check "pandoctl with a missing --ca file is a usage error (2)" \
  sh -c "'$BIN/pandoctl' --ca '$T_DIR/nope.pem' list 2>'$T_DIR/bad.out'; [ \$? -eq 2 ] && grep -q -e '--ca (PANDO_CA): cannot read' '$T_DIR/bad.out'"
t_done
