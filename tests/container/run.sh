#!/bin/sh
# The container test: builds the Pando image and trains the example job with
# docker-compose on a private Docker engine, exactly as README.md ("Run with
# docker-compose") says, then removes everything it created.
#   sh tests/container/run.sh            (make test-container; root or sudo)
#
# 1. installs docker.io, docker-compose, debootstrap and nftables with apt if missing;
# 2. starts its own dockerd (data, exec root, socket, pid file under a temp
#    folder; its own bridge pando-ct0 and address pool 10.213.0.0/16), so it
#    neither uses nor disturbs a Docker engine the machine may run;
# 3. makes the base image with debootstrap (the root file system is cached in
#    ${XDG_CACHE_HOME:-$HOME/.cache}/pando) and tags it debian:bookworm-slim,
#    the Dockerfile's FROM (no registry is needed);
# 4. builds pando:latest with the classic builder, runs docker-compose.yml with
#    tests/container/compose.test.yml on top (a job of one epoch), and checks
#    that `submit` exits 0 with "test accuracy: 0.XXXX" >= 0.80;
# 5. with deploy/monitoring.yml on top, starts the daemons and Prometheus
#    (built from Debian's package) and checks through Prometheus's HTTP API
#    that every daemon's target is up and the alert rules loaded;
# 6. removes the containers, networks, volumes and images, stops its dockerd
#    by PID, deletes its bridges, restores iptables/ip6tables, nftables tables
#    and the sysctls dockerd changed, and checks that nothing is left. Also on
#    Ctrl-C or SIGTERM.
# Prints "ok - ..." / "FAIL - ..." per check and "N passed, N failed" last.
# KEEP_LOGS=1 keeps the logs (dockerd, build, compose) in the temp folder.
set -u
cd "$(dirname "$0")/../.." || exit 1

if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 && exec sudo -E sh "$0" "$@"
  echo "FAIL - the container test needs root (or sudo) to run dockerd"
  exit 1
fi

MIN_ACCURACY=0.80
BRIDGE=pando-ct0
BRIDGE_ADDR=10.213.0.1/24
POOL=10.213.16.0/20
NET_PREFIX=10.213.
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/pando
BASE_TAR=$CACHE/debian-bookworm-minbase.tar
# The socket path of dockerd's containerd must stay short (108 bytes).
STATE=$(mktemp -d /tmp/pando-ctest.XXXXXX) || exit 1
COMPOSE_FILE=docker-compose.yml:tests/container/compose.test.yml
COMPOSE_PROJECT_NAME=pando-ctest
DOCKER_HOST=unix://$STATE/docker.sock
DOCKER_CONFIG=$STATE/client
DOCKER_BUILDKIT=0
PANDO_TEST_JOB=$STATE/fashion-mlp-1epoch.yaml
export COMPOSE_FILE COMPOSE_PROJECT_NAME DOCKER_HOST DOCKER_CONFIG DOCKER_BUILDKIT PANDO_TEST_JOB
# Paths dockerd and containerd create at fixed places (the shims' sockets,
# the plugin folder); removed afterwards when they were not there before.
HOST_PATHS="/run/docker /run/containerd /run/mount"
SYSCTLS="/proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding
/proc/sys/net/bridge/bridge-nf-call-iptables /proc/sys/net/bridge/bridge-nf-call-ip6tables"

PASSED=0
FAILED=0
DOCKERD_PID=""
CHILD=""
MADE_BRIDGE=0
INTERRUPTED=0
SNAPSHOT=0
STARTED=$(date +%s)

ok() { echo "ok - $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL - $*"; FAILED=$((FAILED + 1)); }
since() { echo $(($(date +%s) - $1)); }
# Debian's client: the first docker on PATH may be a newer one without buildx.
docker() { /usr/bin/docker "$@"; }

# run LOG COMMAND...: runs a long step in the background (so a signal stops
# it at once through the trap) with its output in LOG; returns its status.
run() {
  log=$1; shift
  "$@" >"$log" 2>&1 &
  CHILD=$!
  wait "$CHILD"
  rc=$?
  CHILD=""
  return $rc
}
show_log() { echo "# last lines of $1:"; tail -n "${2:-30}" "$1" | sed 's/^/#   /'; }

# ---- iptables, nftables and sysctls: saved before dockerd, restored after

# ipt_keyed FAMILY: the rules and chains of every table as "table|line".
ipt_keyed() {
  "$1-save" 2>/dev/null | sed 's/ \[[0-9]*:[0-9]*\]$//' |
    awk '/^\*/ { t = substr($0, 2) } /^[-:]/ { print t "|" $0 }'
}
net_snapshot() {
  for fam in iptables ip6tables; do
    command -v "$fam-save" >/dev/null 2>&1 && ipt_keyed "$fam" >"$STATE/before.$fam"
  done
  if command -v nft >/dev/null 2>&1; then nft list tables >"$STATE/before.nft" 2>/dev/null; fi
  for f in $SYSCTLS; do [ -f "$f" ] && echo "$f $(cat "$f")"; done >"$STATE/before.sysctl"
  for p in $HOST_PATHS; do [ -e "$p" ] && echo "$p"; done >"$STATE/before.paths"
  SNAPSHOT=1
}
# ipt_restore FAMILY: deletes the rules and chains that were not there before
# and puts the built-in chains' policies back.
ipt_restore() {
  fam=$1
  ipt_keyed "$fam" >"$STATE/now.$fam"
  grep -vxF -f "$STATE/before.$fam" "$STATE/now.$fam" >"$STATE/new.$fam"
  # new user chains: "table|:NAME -"
  sed -n 's/^\([a-z]*\)|:\([^ ]*\) -$/\1 \2/p' "$STATE/new.$fam" >"$STATE/newchains.$fam"
  while IFS='|' read -r table line; do
    case $line in -A\ *) ;; *) continue ;; esac
    chain=${line#-A }; chain=${chain%% *}
    grep -qxF "$table $chain" "$STATE/newchains.$fam" && continue
    eval "$fam -t $table -D ${line#-A }" 2>/dev/null
  done <"$STATE/new.$fam"
  while read -r table chain; do "$fam" -t "$table" -F "$chain" 2>/dev/null; done <"$STATE/newchains.$fam"
  while read -r table chain; do "$fam" -t "$table" -X "$chain" 2>/dev/null; done <"$STATE/newchains.$fam"
  # built-in chains: the policy they had, ACCEPT in a table that was not there
  sed -n 's/^\([a-z]*\)|:\([^ ]*\) \([A-Z]*\)$/\1 \2 \3/p' "$STATE/now.$fam" |
    while read -r table chain policy; do
      want=$(sed -n "s/^$table|:$chain \\([A-Z]*\\)\$/\\1/p" "$STATE/before.$fam")
      [ "$policy" = "${want:-ACCEPT}" ] || "$fam" -t "$table" -P "$chain" "${want:-ACCEPT}"
    done
}
net_restore() {
  [ "$SNAPSHOT" -eq 1 ] || return 0
  for fam in iptables ip6tables; do [ -f "$STATE/before.$fam" ] && ipt_restore "$fam"; done
  # iptables-nft creates the tables it needs: drop those that were not there.
  if [ -f "$STATE/before.nft" ]; then
    nft list tables 2>/dev/null | while read -r _ family name; do
      grep -qxF "table $family $name" "$STATE/before.nft" || nft delete table "$family" "$name"
    done
  fi
  while read -r f value; do
    [ "$(cat "$f")" = "$value" ] || echo "$value" >"$f"
  done <"$STATE/before.sysctl"
  for p in $HOST_PATHS; do
    grep -qxF "$p" "$STATE/before.paths" && continue
    case $p in /run/mount) rmdir "$p" 2>/dev/null ;; *) rm -rf "$p" ;; esac
  done
}
net_unchanged() {
  for fam in iptables ip6tables; do
    [ -f "$STATE/before.$fam" ] || continue
    ipt_keyed "$fam" | cmp -s - "$STATE/before.$fam" || { echo "# $fam differs" >&2; return 1; }
  done
  if [ -f "$STATE/before.nft" ]; then
    nft list tables 2>/dev/null | cmp -s - "$STATE/before.nft" || { echo "# nftables tables differ" >&2; return 1; }
  fi
  while read -r f value; do
    [ "$(cat "$f")" = "$value" ] || { echo "# $f is $(cat "$f"), was $value" >&2; return 1; }
  done <"$STATE/before.sysctl"
  for p in $HOST_PATHS; do
    [ -e "$p" ] && ! grep -qxF "$p" "$STATE/before.paths" && { echo "# $p is left" >&2; return 1; }
  done
  return 0
}
# our_links: the bridges (and their veths' peers) with an address of ours.
our_links() {
  ip -o -4 addr show 2>/dev/null | awk -v p="$NET_PREFIX" 'index($4, p) == 1 { print $2 }' | sort -u
}
our_mounts() {
  awk -v p="$STATE/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

# ---- cleanup: everything this test created, in reverse order
cleanup() {
  trap '' INT TERM HUP
  [ -n "$CHILD" ] && kill -TERM "$CHILD" 2>/dev/null && wait "$CHILD" 2>/dev/null
  echo "# cleaning up"
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    timeout 120 docker-compose down --volumes --rmi all >"$STATE/down.log" 2>&1 ||
      show_log "$STATE/down.log" 10
    # an interrupted build may still be removing its container: retry
    n=0
    while :; do
      for c in $(docker ps -aq); do docker rm -f "$c" >/dev/null 2>&1; done
      timeout 120 docker system prune --all --force --volumes >/dev/null 2>&1
      left=$({ docker ps -aq; docker images -q; docker volume ls -q
        docker network ls -q --filter type=custom; } | tr '\n' ' ' | sed 's/ *$//')
      n=$((n + 1))
      [ -z "$left" ] || [ $n -ge 10 ] && break
      sleep 1
    done
    if [ -z "$left" ]; then ok "cleanup: no container, image, volume or network left in the engine"
    else fail "cleanup: the engine still has: $left"; fi
    kill -TERM "$DOCKERD_PID"
    n=0
    while kill -0 "$DOCKERD_PID" 2>/dev/null && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
    kill -KILL "$DOCKERD_PID" 2>/dev/null
    wait "$DOCKERD_PID" 2>/dev/null
  fi
  # containerd and shims that dockerd started, if it died without them
  for pid in $(pgrep -f -- "$STATE/"); do [ "$pid" != $$ ] && kill -KILL "$pid" 2>/dev/null; done
  for m in $(our_mounts); do umount -l "$m" 2>/dev/null; done
  for link in $(our_links); do ip link delete "${link%@*}" 2>/dev/null; done
  [ "$MADE_BRIDGE" -eq 1 ] && ip link delete "$BRIDGE" 2>/dev/null
  net_restore
  if [ -n "$DOCKERD_PID" ]; then
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then fail "cleanup: dockerd $DOCKERD_PID still runs"
    elif [ -n "$(pgrep -f -- "$STATE/")" ]; then fail "cleanup: processes left: $(pgrep -f -- "$STATE/" | tr '\n' ' ')"
    else ok "cleanup: dockerd (pid $DOCKERD_PID) and its containerd stopped"; fi
    if [ -z "$(our_mounts)" ] && [ -z "$(our_links)" ] && ! ip link show "$BRIDGE" >/dev/null 2>&1; then
      ok "cleanup: no mount, network namespace, bridge or veth left"
    else fail "cleanup: left behind: $(our_mounts) $(our_links)"; fi
  fi
  if [ "$SNAPSHOT" -eq 1 ]; then
    if net_unchanged; then ok "cleanup: iptables, ip6tables, nftables, sysctls and /run as before"
    else fail "cleanup: iptables/nftables/sysctls or /run differ from before the test"; fi
  fi
  if { [ "$FAILED" -ne 0 ] && [ "$INTERRUPTED" -eq 0 ]; } || [ -n "${KEEP_LOGS:-}" ]; then
    rm -rf "$STATE/data" "$STATE/exec" "$STATE/rootfs"
    echo "# logs are in $STATE"
  else
    rm -rf "$STATE"
    [ -e "$STATE" ] && fail "cleanup: could not remove $STATE"
  fi
  echo "# container test: $(since "$STARTED") s"
  echo "$PASSED passed, $FAILED failed"
  [ "$INTERRUPTED" -ne 0 ] && exit "$INTERRUPTED"
  [ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]
  exit $?
}
trap cleanup EXIT
trap 'echo "FAIL - interrupted"; FAILED=$((FAILED + 1)); INTERRUPTED=130; exit 130' INT HUP
trap 'echo "FAIL - terminated"; FAILED=$((FAILED + 1)); INTERRUPTED=143; exit 143' TERM

# ---- 1. tools
t=$(date +%s)
missing=""
for p in docker.io docker-compose debootstrap nftables; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "# installing$missing"
  if run "$STATE/apt.log" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends $missing"; then
    ok "tools installed:$missing ($(since "$t") s)"
  else
    fail "installing$missing"; show_log "$STATE/apt.log"; exit 1
  fi
else
  ok "tools: docker.io, docker-compose, debootstrap, nftables already installed"
fi

# ---- 2. a private dockerd
if ip link show "$BRIDGE" >/dev/null 2>&1 || [ -n "$(our_links)" ] ||
   ip route show | grep -q "^$(echo "$NET_PREFIX" | sed 's/\./\\./g')"; then
  fail "bridge $BRIDGE or addresses $NET_PREFIX* exist already (another run of this test?)"
  exit 1
fi
net_snapshot
mkdir -p "$STATE/data" "$STATE/exec" "$DOCKER_CONFIG"
# Its own config file (not /etc/docker/daemon.json), and its key there too
# (dockerd 20.10 writes /etc/docker/key.json otherwise).
echo "{\"deprecated-key-path\": \"$STATE/key.json\"}" >"$STATE/daemon.json"
ip link add "$BRIDGE" type bridge && MADE_BRIDGE=1 &&
  ip addr add "$BRIDGE_ADDR" dev "$BRIDGE" && ip link set "$BRIDGE" up ||
  { fail "could not create the bridge $BRIDGE"; exit 1; }
t=$(date +%s)
# In a session of its own: a Ctrl-C in the terminal must not stop it before
# the cleanup has removed what runs in it.
setsid dockerd --config-file "$STATE/daemon.json" --data-root "$STATE/data" --exec-root "$STATE/exec" \
  --pidfile "$STATE/dockerd.pid" -H "$DOCKER_HOST" --bridge "$BRIDGE" \
  --default-address-pool "base=$POOL,size=24" \
  --containerd-namespace pando-ctest --containerd-plugins-namespace pando-ctest-plugins \
  >"$STATE/dockerd.log" 2>&1 &
DOCKERD_PID=$!
n=0
until docker version >/dev/null 2>&1; do
  n=$((n + 1))
  if [ $n -gt 300 ] || ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
    fail "dockerd did not start"; show_log "$STATE/dockerd.log"; exit 1
  fi
  sleep 0.1
done
DOCKERD_PID=$(cat "$STATE/dockerd.pid")
ok "private dockerd (pid $DOCKERD_PID) ready at $DOCKER_HOST ($(since "$t") s)"

# ---- 3. the base image, from a cached debootstrap root file system
t=$(date +%s)
if [ ! -s "$BASE_TAR" ]; then
  mirror=${PANDO_DEBIAN_MIRROR:-$(grep -h -E '^(URIs:|deb )' /etc/apt/sources.list \
    /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
    grep -o -m1 'https\?://[^ ]*/debian/\?\( \|$\)' | tr -d ' ')}
  mirror=${mirror:-http://deb.debian.org/debian}
  echo "# debootstrap bookworm from $mirror (cached in $BASE_TAR afterwards)"
  mkdir -p "$CACHE"
  if run "$STATE/debootstrap.log" debootstrap --variant=minbase bookworm "$STATE/rootfs" "$mirror" &&
     rm -rf "$STATE/rootfs/var/cache/apt/archives/"*.deb "$STATE/rootfs/var/lib/apt/lists/"* &&
     tar --numeric-owner -C "$STATE/rootfs" -cf "$BASE_TAR.tmp.$$" . &&
     mv "$BASE_TAR.tmp.$$" "$BASE_TAR"; then
    rm -rf "$STATE/rootfs"
  else
    rm -f "$BASE_TAR.tmp.$$"
    fail "debootstrap"; show_log "$STATE/debootstrap.log"; exit 1
  fi
fi
if docker import --change 'CMD ["bash"]' "$BASE_TAR" debian:bookworm-slim >"$STATE/import.log" 2>&1; then
  ok "base image debian:bookworm-slim imported from $BASE_TAR ($(since "$t") s)"
else
  fail "docker import"; show_log "$STATE/import.log"; exit 1
fi

# ---- 4. the README's commands: build, then compose up
t=$(date +%s)
if run "$STATE/build.log" docker build -t pando:latest .; then
  ok "docker build -t pando:latest . ($(since "$t") s, $(docker image inspect -f '{{.Size}}' pando:latest | awk '{printf "%d MB", $1 / 1e6}'))"
else
  fail "docker build"; show_log "$STATE/build.log"; exit 1
fi
user=$(docker image inspect -f '{{.Config.User}}' pando:latest)
uid=$(docker run --rm pando:latest id -u 2>&1)
if [ "$user" = "10001:10001" ] && [ "$uid" = 10001 ]; then ok "the image runs as the non-root user 10001"
else fail "the image's user is '$user', id -u says '$uid'"; fi
if docker run --rm pando:latest sh -c 'for b in pando-ps pando-worker pando-coordinator; do
     $b --check-config >/dev/null || exit 1; done; pandoctl --version >/dev/null &&
     test -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz &&
     test -r examples/fashion-mlp.yaml' >"$STATE/run.log" 2>&1; then
  ok "every binary starts in the image (libraries present), data and examples readable"
else
  fail "binaries or data in the image"; show_log "$STATE/run.log"
fi

sed 's/\(epochs: *\)[0-9][0-9]*/\11/' examples/fashion-mlp.yaml >"$PANDO_TEST_JOB"
if grep -Eq 'epochs: *1([^0-9]|$)' "$PANDO_TEST_JOB" && ! cmp -s examples/fashion-mlp.yaml "$PANDO_TEST_JOB"; then ok "the job: examples/fashion-mlp.yaml with epochs: 1"
else fail "could not set epochs: 1 in a copy of examples/fashion-mlp.yaml"; exit 1; fi
# the compose file's secrets: a throw-away CA, certificates for the service
# names and a token, readable by the image's user only (as docker-compose.yml says)
PANDO_SECRETS=$STATE/secrets
export PANDO_SECRETS
if PANDO_CERT_HOSTS="coordinator ps0 ps1 worker0 worker1" sh tools/certs.sh "$PANDO_SECRETS" &&
  chown -R 10001:10001 "$PANDO_SECRETS"; then ok "secrets made with tools/certs.sh (mTLS and a cluster token)"
else fail "tools/certs.sh $PANDO_SECRETS"; exit 1; fi
t=$(date +%s)
run "$STATE/compose.log" timeout 900 docker-compose up --exit-code-from submit
rc=$?
if [ $rc -eq 0 ]; then ok "docker-compose up --exit-code-from submit: submit exited 0 ($(since "$t") s)"
else fail "docker-compose up --exit-code-from submit exited $rc"; show_log "$STATE/compose.log" 60; fi
docker-compose logs --no-color --no-log-prefix submit >"$STATE/submit.log" 2>&1
last=$(grep -v '^[[:space:]]*$' "$STATE/submit.log" | tail -n 1 | tr -d '\r')
accuracy=$(echo "$last" | sed -n 's/^test accuracy: \([0-9.]*\)$/\1/p')
if [ -n "$accuracy" ] && awk -v a="$accuracy" -v m="$MIN_ACCURACY" 'BEGIN { exit !(a >= m) }'; then
  ok "submit's last line '$last' >= $MIN_ACCURACY"
else
  fail "submit's last line is '$last', wanted 'test accuracy: X' with X >= $MIN_ACCURACY"
  show_log "$STATE/submit.log"
fi
# Health.Status reads "unhealthy" once a container stopped: look at the log of its checks.
for s in coordinator ps0 ps1 worker0 worker1; do
  if docker inspect -f '{{range .State.Health.Log}}{{.ExitCode}} {{end}}' "$(docker-compose ps -q $s)" |
     grep -qw 0; then ok "health check of $s (pandoctl health) passed"
  else fail "health check of $s never passed"; fi
done

# ---- 5. the monitoring overlay (README "Monitoring"): Prometheus from
# Debian's package (deploy/prometheus/Dockerfile) scrapes every daemon and
# loads the alert rules. Its port is published on the host's loopback only.
COMPOSE_FILE=$COMPOSE_FILE:deploy/monitoring.yml
PANDO_PROMETHEUS_PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export COMPOSE_FILE PANDO_PROMETHEUS_PORT
PROM=http://127.0.0.1:$PANDO_PROMETHEUS_PORT
t=$(date +%s)
if run "$STATE/prom-build.log" docker-compose build prometheus; then
  ok "docker-compose -f ... -f deploy/monitoring.yml build prometheus ($(since "$t") s)"
else
  fail "building the Prometheus image"; show_log "$STATE/prom-build.log"; exit 1
fi
t=$(date +%s)
if run "$STATE/mon-up.log" timeout 600 docker-compose up -d coordinator ps0 ps1 worker0 worker1 prometheus; then
  ok "docker-compose up -d the daemons and prometheus ($(since "$t") s)"
else
  fail "docker-compose up -d with deploy/monitoring.yml"; show_log "$STATE/mon-up.log" 40; exit 1
fi
# prom_until SECONDS PATH PYTHON-EXPR: polls Prometheus's API at PATH (its
# JSON as j) until the expression is true.
prom_until() {
  n=0
  while [ $n -lt $(($1 * 2)) ]; do
    curl -sf "$PROM$2" >"$STATE/api.json" 2>/dev/null &&
      [ "$(/usr/bin/python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($3)" "$STATE/api.json" 2>/dev/null)" = True ] &&
      return 0
    n=$((n + 1))
    sleep 0.5
  done
  return 1
}
want='[("coordinator:9070", "up"), ("ps0:9000", "up"), ("ps1:9000", "up"), ("worker0:9100", "up"), ("worker1:9100", "up")]'
if prom_until 180 /api/v1/targets "sorted((t['labels']['instance'], t['health']) for t in j['data']['activeTargets'] if t['labels']['job'] == 'pando') == $want"; then
  ok "Prometheus reports every daemon's target up (coordinator, ps0, ps1, worker0, worker1)"
else
  fail "Prometheus targets: $(cat "$STATE/api.json" 2>/dev/null | head -c 2000)"
  docker-compose logs --no-color --tail 20 prometheus 2>&1 | sed 's/^/#   /'
fi
rules=$(/usr/bin/python3 -c 'import sys, yaml; print(sorted(r["alert"] for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"]))' deploy/prometheus/alerts.yml)
if prom_until 60 /api/v1/rules "sorted(r['name'] for g in j['data']['groups'] for r in g['rules'] if r['type'] == 'alerting' and r['health'] == 'ok') == $rules"; then
  ok "Prometheus loaded and evaluates the alert rules of deploy/prometheus/alerts.yml ($rules)"
else
  fail "Prometheus rules: $(cat "$STATE/api.json" 2>/dev/null | head -c 2000)"
fi
exit 0
