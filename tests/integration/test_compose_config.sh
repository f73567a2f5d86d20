# docker-compose.yml, alone and with the container test's override
# (tests/container/compose.test.yml) or the monitoring overlay
# (deploy/monitoring.yml), passes `docker-compose config -q` (the
# Compose schema, no engine needed), and its services are wired as
# docs/deploy.md says: every daemon health-checked with `pandoctl health` on
# its listen port, servers and workers advertising SERVICE:PORT, `submit`
# waiting for all of them to be healthy, one image; mTLS and the cluster token
# from Compose secrets (the CA, the token and each role's certificate and key
# mounted under /run/secrets, the PANDO_TLS_* settings pointing there). The real run is
# tests/container/run.sh (make test-container).
set -u
if ! command -v docker-compose >/dev/null 2>&1; then
  echo "ok - skipped: docker-compose not installed"
  exit 0
fi
failed=0
check() { # check DESCRIPTION COMMAND...
  desc=$1; shift
  if "$@"; then echo "ok - $desc"; else echo "FAIL - $desc"; failed=1; fi
}
out=$(mktemp "${TMPDIR:-/tmp}/pando-compose.XXXXXX")
trap 'rm -f "$out"' EXIT
check "docker-compose config -q (docker-compose.yml)" docker-compose -f docker-compose.yml config -q
check "docker-compose config -q (with tests/container/compose.test.yml)" \
  env PANDO_TEST_JOB=./examples/fashion-mlp.yaml docker-compose -f docker-compose.yml -f tests/container/compose.test.yml config -q
check "docker-compose config -q (with the monitoring overlay deploy/monitoring.yml)" \
  docker-compose -f docker-compose.yml -f deploy/monitoring.yml config -q
docker-compose -f docker-compose.yml config >"$out" 2>/dev/null || exit 1
/usr/bin/python3 - "$out" <<'PY' || failed=1
import os, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
services = c["services"]
def check(desc, errors):
    print(("ok - " if not errors else "FAIL - ") + desc)
    for e in errors:
        print("#   " + e)
    return not errors
ok = True
roles = {}
for name, s in services.items():
    roles.setdefault((s.get("command") or [""])[0], []).append(name)
errors = []
if len(roles.get("pando-coordinator", [])) != 1: errors.append("not one coordinator")
if len(roles.get("pando-ps", [])) < 2: errors.append("fewer than 2 parameter servers")
if len(roles.get("pando-worker", [])) < 2: errors.append("fewer than 2 workers")
if services.get("submit", {}).get("command") != ["pandoctl", "submit", "--wait", "examples/fashion-mlp.yaml"]:
    errors.append("submit does not run pandoctl submit --wait examples/fashion-mlp.yaml")
if not os.path.exists("examples/fashion-mlp.yaml"): errors.append("examples/fashion-mlp.yaml is missing")
ok &= check("a coordinator, 2+ servers, 2+ workers, submit of the example job", errors)
errors = []
defaults = {"pando-coordinator": "0.0.0.0:7070", "pando-ps": "0.0.0.0:7000", "pando-worker": "0.0.0.0:0"}
for name, s in services.items():
    daemon = (s.get("command") or [""])[0]
    env = s.get("environment") or {}
    if daemon not in defaults:
        continue
    port = env.get("PANDO_LISTEN", defaults[daemon]).rsplit(":", 1)[1]
    if port == "0": errors.append(f"{name}: listens on a free port: the health check can't know it")
    test = (s.get("healthcheck") or {}).get("test")
    if test != ["CMD", "pandoctl", "health", f"127.0.0.1:{port}"]:
        errors.append(f"{name}: health check is {test}, not pandoctl health 127.0.0.1:{port}")
    if daemon != "pando-coordinator":
        if env.get("PANDO_ADVERTISE") != f"{name}:{port}":
            errors.append(f"{name}: PANDO_ADVERTISE is {env.get('PANDO_ADVERTISE')}, not {name}:{port}")
        if env.get("PANDO_COORDINATOR") != f"{roles['pando-coordinator'][0]}:7070":
            errors.append(f"{name}: PANDO_COORDINATOR is not the coordinator service")
        if s.get("depends_on", {}).get(roles["pando-coordinator"][0], {}).get("condition") != "service_healthy":
            errors.append(f"{name}: does not wait for a healthy coordinator")
ok &= check("daemons: pandoctl health on their listen port, advertise SERVICE:PORT, wait for the coordinator", errors)
errors = []
deps = services.get("submit", {}).get("depends_on", {})
for name in services:
    if name != "submit" and deps.get(name, {}).get("condition") != "service_healthy":
        errors.append(f"submit does not wait for {name} to be healthy")
if (services.get("submit", {}).get("environment") or {}).get("PANDO_COORDINATOR") != "coordinator:7070":
    errors.append("submit: PANDO_COORDINATOR is not coordinator:7070")
ok &= check("submit waits for every daemon to be healthy", errors)
images = {s.get("image") for s in services.values()}
ok &= check("one image for every service", [] if len(images) == 1 else [f"images: {images}"])
named = set(c.get("volumes") or {})
used = [v for s in services.values() for v in (s.get("volumes") or [])
        if (v.get("source") if isinstance(v, dict) else v.split(":")[0]) in named]
ok &= check("a named volume for checkpoints and outputs", [] if used else ["no service mounts a named volume"])
errors = []
role_of = {"pando-coordinator": "coordinator", "pando-ps": "ps", "pando-worker": "worker",
           "pandoctl": "admin"}
for name, s in services.items():
    role = role_of.get((s.get("command") or [""])[0])
    if not role:
        continue
    env = s.get("environment") or {}
    mounted = {m.get("source"): m.get("target") for m in s.get("secrets") or []}
    want = {"pando-ca": "ca.pem", "pando-token": "token", f"pando-{role}-cert": f"{role}.pem",
            f"pando-{role}-key": f"{role}.key"}
    if mounted != want:
        errors.append(f"{name}: secrets {mounted}, not {want}")
    for key, value in [("PANDO_TLS_CERT", f"/run/secrets/{role}.pem"),
                       ("PANDO_TLS_KEY", f"/run/secrets/{role}.key"),
                       ("PANDO_TLS_CA", "/run/secrets/ca.pem"), ("PANDO_TLS_CLIENT_AUTH", "require"),
                       ("PANDO_TOKEN_FILE", "/run/secrets/token"), ("PANDO_CA", "/run/secrets/ca.pem"),
                       ("PANDO_CERT", f"/run/secrets/{role}.pem"), ("PANDO_KEY", f"/run/secrets/{role}.key")]:
        if env.get(key) != value:
            errors.append(f"{name}: {key} is {env.get(key)}, not {value}")
    if "PANDO_TOKEN" in env:
        errors.append(f"{name}: the token itself is in the environment (PANDO_TOKEN)")
for key, secret in (c.get("secrets") or {}).items():
    if not secret.get("file", "").startswith(os.path.abspath(os.environ.get("PANDO_SECRETS") or "secrets") + "/"):
        errors.append(f"secret {key} is not a file of ./secrets: {secret}")
if not (c.get("secrets") or {}):
    errors.append("no secrets")
ok &= check("mTLS and the token from secrets: each daemon and submit mount the CA, the token and "
            "their role's certificate and key under /run/secrets, and their settings point there",
            errors)
sys.exit(0 if ok else 1)
PY
exit $failed
