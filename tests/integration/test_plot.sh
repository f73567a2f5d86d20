# pandoctl plot (issue 15): two real jobs of 3 and 5 epochs through a local
# cluster, drawn into one SVG and one PNG. The SVG parses as XML, and holds
# for each job, in its own colour, four curves (loss and test accuracy
# against the epoch and against time) with one vertex per epoch; the PNG
# is a PNG of the stated size. Bad extensions, unknown jobs and jobs with
# no finished epoch are refused with a message.
. tests/integration/lib.sh
t_cluster 1 1 || { t_fail "cluster started"; t_done; }
t_small_data "$T_DIR" 512
job_spec() { # NAME EPOCHS LR
  cat >"$T_DIR/$1.yaml" <<YAML
name: $1
model: {type: softmax, layers: [784, 10]}
data:
  train: {features: $T_DIR/train-images.gz, labels: $T_DIR/train-labels.gz}
  test: {features: $T_DIR/test-images.gz, labels: $T_DIR/test-labels.gz}
training: {epochs: $2, batch_size: 64, optimizer: {lr: $3}}
cluster: {servers: 1, workers: 1}
YAML
}
job_spec three 3 0.1
job_spec five 5 0.02
a=$(t_submit "$T_DIR/three.yaml")
t_check "job $a SUCCEEDS" [ "$(t_wait_job "$a" 120)" = SUCCEEDED ]
b=$(t_submit "$T_DIR/five.yaml")
t_check "job $b SUCCEEDS" [ "$(t_wait_job "$b" 120)" = SUCCEEDED ]

"$BIN/pandoctl" plot "$a" "$b" -o "$T_DIR/curves.svg" >"$T_DIR/plot.out" 2>&1
t_check "plot writes the SVG and says so ($(cat "$T_DIR/plot.out"))" \
  sh -c "[ $? -eq 0 ] && grep -q 'wrote .*curves.svg: 2 jobs' '$T_DIR/plot.out'"
/usr/bin/python3 - "$T_DIR/curves.svg" <<'PY' || T_FAILED=1
import re, sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ok = root.tag.endswith("svg") and root.get("width", "").startswith("1200")
print(("ok" if ok else "FAIL") + " - the SVG parses, an <svg> of width 1200 (%s)" % root.get("width"))
# cairo writes each stroke as a <path> with its colour; the palette's first
# two colours are the two jobs'
colours = {"three": (0.122, 0.467, 0.706), "five": (1.000, 0.498, 0.055)}
def props(el):  # presentation attributes or a style="a:b;..." (cairo's choice varies)
    p = dict(kv.split(":", 1) for kv in (el.get("style") or "").replace(" ", "").split(";") if ":" in kv)
    for k in ("fill", "stroke"):
        p.setdefault(k, el.get(k, ""))
    return p
def rgb(value):
    m = re.match(r"rgb\(([\d.]+)%,\s*([\d.]+)%,\s*([\d.]+)%\)", value or "")
    return tuple(float(v) / 100 for v in m.groups()) if m else None
# a curve is a stroked line in the job's colour (cairo merges collinear
# segments, so it may have fewer vertices than points) and a filled path of
# one dot (a circle of Bezier arcs) per point
curves = {name: [] for name in colours}
dots = {name: [] for name in colours}
for el in root.iter():
    if not el.tag.endswith("path"):
        continue
    p, d = props(el), el.get("d", "")
    for name, want in colours.items():
        for key, out in (("stroke", curves), ("fill", dots)):
            c = rgb(p[key])
            if c and all(abs(a - b) < 0.005 for a, b in zip(c, want)):
                if key == "stroke" and p["fill"] == "none":
                    out[name].append(1 + d.count(" L "))
                elif key == "fill" and " C " in d:
                    out[name].append(1 + d.count(" M "))
for name, epochs in (("three", 3), ("five", 5)):
    ok = len(curves[name]) == 4 and all(2 <= n <= epochs for n in curves[name])
    print(("ok" if ok else "FAIL") + " - job %s: 4 lines in its colour (vertices %s)"
          % (name, curves[name]))
    ok = dots[name] == [epochs] * 4
    print(("ok" if ok else "FAIL") + " - job %s: 4 curves of %d points, one per epoch (%s)"
          % (name, epochs, dots[name]))
sys.exit(0)
PY
"$BIN/pandoctl" plot "$b" -o "$T_DIR/curves.png" >"$T_DIR/png.out" 2>&1
t_check "plot writes a PNG" [ $? -eq 0 ]
/usr/bin/python3 - "$T_DIR/curves.png" <<'PY' || T_FAILED=1
import struct, sys
data = open(sys.argv[1], "rb").read()
ok = data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
w, h = struct.unpack(">II", data[16:24]) if ok else (0, 0)
print(("ok" if ok and (w, h) == (1200, 860) else "FAIL") +
      " - the PNG has a PNG signature and is 1200 x 860 (%d x %d, %d bytes)" % (w, h, len(data)))
PY
"$BIN/pandoctl" plot "$a" -o "$T_DIR/curves.pdf" >"$T_DIR/bad.out" 2>&1
t_check "a file name that is not .svg or .png is refused ($(cat "$T_DIR/bad.out"))" \
  sh -c "[ $? -eq 1 ] && grep -q 'must end in .svg or .png' '$T_DIR/bad.out'"
"$BIN/pandoctl" plot no-such-job -o "$T_DIR/x.svg" >"$T_DIR/unknown.out" 2>&1
t_check "an unknown job is named ($(cat "$T_DIR/unknown.out"))" \
  sh -c "[ $? -eq 1 ] && grep -q 'no-such-job' '$T_DIR/unknown.out' && [ ! -e '$T_DIR/x.svg' ]"
# a job with no finished epoch yet: nothing to draw
sed 's/epochs: 5/epochs: 1/; s/name: five/name: pending/; s/servers: 1/servers: 3/' "$T_DIR/five.yaml" >"$T_DIR/pending.yaml"
p=$(t_submit "$T_DIR/pending.yaml")
"$BIN/pandoctl" plot "$p" -o "$T_DIR/p.svg" >"$T_DIR/pending.out" 2>&1
t_check "a job without a finished epoch has nothing to draw ($(cat "$T_DIR/pending.out"))" \
  sh -c "[ $? -eq 1 ] && grep -q 'nothing to draw' '$T_DIR/pending.out'"
t_done
