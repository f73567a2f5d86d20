# Shared by the benchmarks that time cluster jobs (tools/bench-trace.sh,
# tools/bench-recovery.sh); sourced, not run.
#   train_rows SPEC     rows of the training features file SPEC names (IDX, gzip)
#   sps OUT ROWS        samples/s of the epochs after the first (the warm-up,
#                       with the data loading) in `pandoctl submit --wait`'s
#                       output OUT: their rows over the sum of their
#                       "epoch N: ... (S s)" lines
#   median              the median of the numbers on stdin (words or lines)
#   cpu_name            the CPU's model name
train_rows() {
  /usr/bin/python3 - "$1" <<'PY'
import gzip, re, struct, sys
path = re.search(r"train:\s*\{?\s*features:\s*([^,}\s]+)", open(sys.argv[1]).read()).group(1)
print(struct.unpack(">I", gzip.open(path).read(8)[4:8])[0])
PY
}
sps() {
  sed -n 's/^epoch [0-9]*: .*(\([0-9.]*\) s)$/\1/p' "$1" | sed 1d |
    awk -v rows="$2" '{ s += $1; n++ } END { printf "%.0f", n * rows / s }'
}
median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
cpu_name() { sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1; }
