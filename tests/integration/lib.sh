# Shared helpers of the integration tests (POSIX sh plus `local`, sourced). They start real
# Pando daemons on 127.0.0.1 with port 0 and port files, and stop everything
# they started when the test exits.
#   BUILD     build folder (default build)
#   T_DIR     the test's scratch folder (made here, removed on success)

BUILD=${BUILD:-build}
BIN=$BUILD/bin
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pando-test.XXXXXX")
# data_roots of the daemons (tests/run.sh sets the same): scratch, checkout, Debian data
PANDO_DATA_ROOTS=${PANDO_DATA_ROOTS:-/usr/share/datasets,${TMPDIR:-/tmp},$PWD}
export PANDO_DATA_ROOTS
T_PIDS=""
T_FAILED=0
T_NAME=$(basename "$0")

t_cleanup() {
  local pid i f
  for pid in $T_PIDS; do kill -TERM "$pid" 2>/dev/null; done
  for pid in $T_PIDS; do
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$pid" 2>/dev/null
  done
  if [ "$T_FAILED" -ne 0 ]; then
    echo "# logs of $T_NAME:" >&2
    for f in "$T_DIR"/*.log; do [ -f "$f" ] && { echo "## $f" >&2; tail -n 20 "$f" >&2; }; done
  else
    rm -rf "$T_DIR"
  fi
}
trap t_cleanup EXIT
trap 'exit 130' INT TERM

t_fail() { echo "FAIL - $*"; T_FAILED=1; }
t_ok() { echo "ok - $*"; }
# t_check DESCRIPTION COMMAND...: runs the command, reports ok/FAIL.
t_check() {
  local desc=$1; shift
  if "$@"; then t_ok "$desc"; else t_fail "$desc"; fi
}
t_done() { exit "$T_FAILED"; }

# t_wait_file FILE [SECONDS]: waits until FILE exists and is not empty.
t_wait_file() {
  local n=0
  while [ ! -s "$1" ]; do
    n=$((n + 1))
    [ $n -gt $((${2:-10} * 10)) ] && { echo "timed out waiting for $1" >&2; return 1; }
    sleep 0.1
  done
}

# t_tls [mtls]: from now on the daemons t_start starts use TLS and a cluster
# token, with a throw-away CA and per-role certificates made in $T_CERTS
# (tools/certs.sh); with "mtls" their servers also require client
# certificates. Exports PANDO_CA, PANDO_CERT, PANDO_KEY (role admin) and
# PANDO_TOKEN_FILE so that pandoctl talks to them, and T_CERTS and
# PANDO_TEST_TLS for the Python helpers (tests/integration/pdtls.py).
# With PANDO_TEST_TLS=1 (make test-tls; mtls: with client certificates) every
# test runs so from the start (at the end of this file).
T_TLS=""
t_tls() {
  T_CERTS=$T_DIR/certs
  sh tools/certs.sh "$T_CERTS" || return 1
  T_TLS=${1:-tls}
  PANDO_CA=$T_CERTS/ca.pem PANDO_CERT=$T_CERTS/admin.pem PANDO_KEY=$T_CERTS/admin.key
  PANDO_TOKEN_FILE=$T_CERTS/token PANDO_TEST_TLS=$T_TLS
  export PANDO_CA PANDO_CERT PANDO_KEY PANDO_TOKEN_FILE T_CERTS PANDO_TEST_TLS
}
# t_tls_flags PROGRAM: the TLS flags of a daemon (role from the program's name).
t_tls_flags() {
  local role
  [ -n "$T_TLS" ] || return 0
  role=$(basename "$1"); role=${role#pando-}
  echo "--tls-cert $T_CERTS/$role.pem --tls-key $T_CERTS/$role.key --tls-ca $T_CERTS/ca.pem" \
    "--token-file $T_CERTS/token --tls-client-auth $([ "$T_TLS" = mtls ] && echo require || echo none)"
}

# t_start NAME COMMAND...: starts a daemon in the background, logging to
# $T_DIR/NAME.log; its port file is $T_DIR/NAME.port. After t_tls, with TLS.
t_start() {
  local name=$1; shift
  # shellcheck disable=SC2046 # the TLS flags are words
  "$@" --listen 127.0.0.1:0 --port-file "$T_DIR/$name.port" --metrics-listen 127.0.0.1:0 \
    --metrics-port-file "$T_DIR/$name.mport" --plugin-dir "$PWD/$BUILD" $(t_tls_flags "$1") \
    >"$T_DIR/$name.log" 2>&1 &
  T_PIDS="$T_PIDS $!"
  eval "PID_$(echo "$name" | tr -c 'a-zA-Z0-9\n' _)=$!"
  t_wait_file "$T_DIR/$name.port"
}
t_port() { cat "$T_DIR/$1.port"; }
t_metrics_port() { cat "$T_DIR/$1.mport"; }
t_pid() { eval "echo \$PID_$(echo "$1" | tr -c 'a-zA-Z0-9\n' _)"; }

# t_cluster SERVERS WORKERS: a coordinator, servers ps0.., workers w0..;
# exports PANDO_COORDINATOR and waits until every node registered. Worker i
# gets the extra flags in T_WORKER_ARGS_i (e.g. T_WORKER_ARGS_1="--slowdown 5"),
# server i those in T_PS_ARGS_i (e.g. T_PS_ARGS_0="--data-dir DIR"), the
# coordinator those in T_COORD_ARGS.
t_cluster() {
  local i want extra
  # shellcheck disable=SC2086 # extra flags are words
  t_start coord "$BIN/pando-coordinator" --heartbeat-ms 100 --node-timeout "${T_NODE_TIMEOUT:-5}" ${T_COORD_ARGS:-} || return 1
  PANDO_COORDINATOR=127.0.0.1:$(t_port coord)
  export PANDO_COORDINATOR
  i=0
  while [ $i -lt "$1" ]; do
    eval "extra=\${T_PS_ARGS_$i:-}"
    # shellcheck disable=SC2086 # extra flags are words
    t_start "ps$i" "$BIN/pando-ps" --coordinator "$PANDO_COORDINATOR" --name "ps$i" $extra || return 1
    i=$((i + 1))
  done
  i=0
  while [ $i -lt "$2" ]; do
    eval "extra=\${T_WORKER_ARGS_$i:-}"
    # shellcheck disable=SC2086 # extra flags are words
    t_start "w$i" "$BIN/pando-worker" --coordinator "$PANDO_COORDINATOR" --name "w$i" $extra || return 1
    i=$((i + 1))
  done
  want=$(($1 + $2))
  i=0
  while [ "$("$BIN/pandoctl" cluster -o json 2>/dev/null | grep -o '"node_id"' | wc -l)" -lt $want ]; do
    i=$((i + 1))
    [ $i -gt 100 ] && { echo "nodes did not register" >&2; return 1; }
    sleep 0.1
  done
}

# t_json FILE EXPR: evaluates a Python expression over the JSON in FILE (as j).
t_json() {
  /usr/bin/python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"
}

# t_small_data DIR ROWS: writes the first ROWS Fashion-MNIST training rows and
# the first ROWS/4 test rows as gzipped IDX files into DIR.
t_small_data() { /usr/bin/python3 tools/fmnist-cut.py "$1" "$2"; }

# t_submit SPEC: submits with pandoctl; prints the job id.
t_submit() {
  "$BIN/pandoctl" -o json submit "$1" >"$T_DIR/submit.json" || return 1
  t_json "$T_DIR/submit.json" 'j["job"]'
}

# t_wait_job JOB [SECONDS]: waits until the job ends; leaves its status in
# $T_DIR/JOB.json and prints its state.
t_wait_job() {
  local i=0 state
  while :; do
    "$BIN/pandoctl" -o json status "$1" >"$T_DIR/$1.json" 2>/dev/null || true
    state=$(t_json "$T_DIR/$1.json" 'j.get("state","")' 2>/dev/null)
    case $state in SUCCEEDED|FAILED|CANCELLED) echo "$state"; return 0 ;; esac
    i=$((i + 1))
    [ $i -gt $((${2:-120} * 5)) ] && { echo "TIMEOUT"; return 1; }
    sleep 0.2
  done
}

case ${PANDO_TEST_TLS:-0} in
  0 | "") ;;
  mtls) t_tls mtls || { t_fail "test certificates made"; t_done; } ;;
  *) t_tls tls || { t_fail "test certificates made"; t_done; } ;;
esac
if [ -n "$T_TLS" ]; then echo "# PANDO_TEST_TLS: the daemons run with $T_TLS and a cluster token"; fi

