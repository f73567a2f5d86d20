# The Kubernetes manifests of k8s/, validated offline (no cluster is needed):
# every object against the Kubernetes OpenAPI schemas of the npm package
# kubernetes-models with unknown fields rejected, then Pando's own checks and
# a self-test of them (tests/k8s/validate.mjs). Its node_modules comes from
# `npm ci` of tests/k8s/package-lock.json into
# ${XDG_CACHE_HOME:-$HOME/.cache}/pando/k8s-validate, reused while the lock
# file is unchanged.
set -u
BUILD=${BUILD:-build}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/pando/k8s-validate
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "FAIL - node and npm are needed (apt-get install nodejs npm)"
  exit 1
fi
mkdir -p "$CACHE" || exit 1
stamp=$(cat tests/k8s/package.json tests/k8s/package-lock.json | sha256sum | cut -d' ' -f1)
# One install at a time; a changed lock file installs afresh.
(
  flock 9
  if [ "$(cat "$CACHE/stamp" 2>/dev/null)" != "$stamp" ] || [ ! -d "$CACHE/node_modules" ]; then
    echo "# npm ci into $CACHE"
    rm -rf "$CACHE/node_modules" "$CACHE/stamp"
    cp tests/k8s/package.json tests/k8s/package-lock.json "$CACHE/" &&
      (cd "$CACHE" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) >"$CACHE/npm.log" 2>&1 ||
      { echo "FAIL - npm ci of tests/k8s/package-lock.json; its log:"; sed 's/^/#   /' "$CACHE/npm.log"; exit 1; }
    echo "$stamp" >"$CACHE/stamp"
  fi
) 9>"$CACHE/lock" || exit 1
# The script runs from the cache so that its imports find node_modules there.
script="$CACHE/validate.$$.mjs"
cp tests/k8s/validate.mjs "$script" || exit 1
node "$script" --root "$PWD" --bin "$BUILD/bin"
rc=$?
rm -f "$script"
exit $rc
