# Shared by the scripts that start local clusters (tools/local-cluster.sh,
# tools/strategies.sh, tools/bench-federated.sh); sourced, not run. The
# sourcing script sets BUILD, BIN and DIR (its scratch folder) first.
#   start NAME BINARY ARGS...   a daemon on a free port of 127.0.0.1; waits
#                               for its port file; its log is $DIR/NAME.log
#   stop_daemons                SIGTERM every daemon started, SIGKILL after 5 s
#   make_certs                  a throw-away CA, per-role certificates and a
#                               cluster token in $DIR/certs (unless TLS=0), and
#                               pandoctl's PANDO_CA/CERT/KEY/TOKEN_FILE
#   start_devices NAME SPEC SELECTORS N   simulated devices (below)
#   tls_flags BINARY            that daemon's TLS and token flags (none with TLS=0)
#   peak_rss NAME               the daemon's peak resident memory (VmHWM) in KiB
PIDS=""
SECURITY="mutual TLS and a cluster token"
[ "${TLS:-1}" = 0 ] && SECURITY="plaintext (TLS=0)"

stop_daemons() {
  for pid in $PIDS; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $PIDS; do
    n=0
    while kill -0 "$pid" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
    kill -KILL "$pid" 2>/dev/null || true # under set -e too: most are gone by now
  done
  PIDS=""
  rm -f "$DIR"/*.port "$DIR"/*.pid
}

# The role is the binary's name without pando-: its certificate's name.
tls_flags() {
  [ "${TLS:-1}" = 0 ] && return 0
  role=$(basename "$1"); role=${role#pando-}
  echo "--tls-cert $DIR/certs/$role.pem --tls-key $DIR/certs/$role.key --tls-ca $DIR/certs/ca.pem" \
    "--tls-client-auth require --token-file $DIR/certs/token"
}

make_certs() {
  [ "${TLS:-1}" = 0 ] && return 0
  sh "$(dirname "$0")/certs.sh" "$DIR/certs" || { echo "$(basename "$0"): cannot make certificates (openssl)" >&2; exit 1; }
  PANDO_CA=$DIR/certs/ca.pem PANDO_CERT=$DIR/certs/admin.pem PANDO_KEY=$DIR/certs/admin.key
  PANDO_TOKEN_FILE=$DIR/certs/token
  export PANDO_CA PANDO_CERT PANDO_KEY PANDO_TOKEN_FILE
}

start() {
  name=$1; shift
  # shellcheck disable=SC2046 # the TLS flags are words
  "$@" --listen 127.0.0.1:0 --port-file "$DIR/$name.port" --name "$name" \
    --metrics-listen 127.0.0.1:0 --metrics-port-file "$DIR/$name.metrics-port" \
    --plugin-dir "${PLUGIN_DIR:-$BUILD/examples}" $(tls_flags "$1") >"$DIR/$name.log" 2>&1 &
  PIDS="$PIDS $!"
  echo $! >"$DIR/$name.pid"
  n=0
  while [ ! -s "$DIR/$name.port" ]; do
    n=$((n + 1))
    if [ $n -gt 100 ] || ! kill -0 "$!" 2>/dev/null; then
      echo "$(basename "$0"): $name did not start; its log:" >&2
      cat "$DIR/$name.log" >&2
      exit 1
    fi
    sleep 0.1
  done
}

peak_rss() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$(cat "$DIR/$1.pid")/status"; }

# start_devices NAME SPEC SELECTORS N [ARGS...]: a process of N simulated
# devices (pando-worker --role device --simulate N) on SPEC's data section,
# checking in with SELECTORS; they serve no gRPC, so there is no port to wait for.
start_devices() {
  name=$1 spec=$2 selectors=$3 n=$4; shift 4
  # shellcheck disable=SC2046 # the TLS flags are words
  "$BIN/pando-worker" --role device --simulate "$n" --data "$spec" --selector "$selectors" \
    --device-threads 2 --metrics-listen "" --name "$name" --plugin-dir "${PLUGIN_DIR:-$BUILD/examples}" \
    $(tls_flags pando-worker) "$@" >"$DIR/$name.log" 2>&1 &
  PIDS="$PIDS $!"
  echo $! >"$DIR/$name.pid"
}
