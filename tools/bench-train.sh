#!/bin/sh
# Training throughput, side by side in one run (`make bench` runs it after
# tools/bench.sh): first the kernels' GFLOP/s next to the core's peak
# (tools/kernelbench), then the gradient of one batch of 64 on 1 and 2 compute
# threads (tools/modelbench), and whole jobs trained standalone (pando-worker
# --standalone --threads 1 and 2) and on a local cluster (M=2 servers, N=2
# workers, BSP), and
# the same jobs trained with PyTorch on 1 and 2 threads (tools/torch-baseline.py;
# `make bench` installs python3-torch, the rows say n/a without it). The jobs'
# samples/s come from the duration of their last epoch (training and test
# evaluation; data loading excluded). Prints a markdown table on stdout.
set -eu
BUILD=${BUILD:-build}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pando-bench-train.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A Fashion-MNIST subset of ROWS training rows (the full test set) for the
# slower CNN, so that the benchmark stays short.
subset() { # subset ROWS DIR
  /usr/bin/python3 - "$1" "$2" <<'PY'
import gzip, struct, sys
rows, out = int(sys.argv[1]), sys.argv[2]
src = "/usr/share/datasets/fashion-mnist/"
for name, per in (("train-images-idx3-ubyte.gz", 784), ("train-labels-idx1-ubyte.gz", 1)):
    data = gzip.open(src + name).read()
    ndim = data[3]
    head = data[:4] + struct.pack(">I", rows) + data[8:4 + 4 * ndim]
    off = 4 + 4 * ndim
    gzip.open(out + "/" + name, "wb").write(head + data[off:off + rows * per])
PY
}
# job NAME SPEC EPOCHS: writes a copy of SPEC with EPOCHS epochs (and the CNN's
# data subset) to $TMP/NAME.yaml
job() {
  sed "s/epochs: [0-9]*/epochs: $3/" "$2" >"$TMP/$1.yaml"
  if [ "$1" = lenet ]; then
    sed -i "s|/usr/share/datasets/fashion-mnist/train|$TMP/train|" "$TMP/$1.yaml"
  fi
}
# last_epoch_sps OUT ROWS: samples/s of the last "epoch N: ... (S s)" line
last_epoch_sps() {
  sed -n 's/^epoch [0-9]*: .*(\([0-9.]*\) s)$/\1/p' "$1" | tail -n 1 |
    awk -v rows="$2" '{ printf "%.0f", rows / $1 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# vs_torch PANDO1 TORCH1 PANDO2 TORCH2: the cell of the Pando / PyTorch row
vs_torch() {
  if [ "$2" = n/a ]; then echo n/a; else echo "$(ratio "$1" "$2") (1 thread), $(ratio "$3" "$4") (2 threads)"; fi
}
torch=yes
/usr/bin/python3 -c 'import torch' 2>/dev/null || {
  torch=no
  echo "bench-train: no PyTorch (apt-get install python3-torch), its rows say n/a" >&2
}

cpu=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)
echo "bench-train: kernels" >&2
echo "### Kernels, one core of $cpu"
echo
"$BUILD/tools/kernelbench" 0.5 | grep -v '^BENCH' | tail -n +3
echo

subset 16000 "$TMP"
job mlp examples/fashion-mlp.yaml 2
job lenet examples/fashion-lenet.yaml 2
# grad MODEL THREADS SECONDS: samples/s of modelbench's gradient
grad() {
  "$BUILD/tools/modelbench" "$1" 64 "$3" "$2" | sed -n 's/^BENCH .* samples_per_sec=\([0-9]*\).*/\1/p'
}
echo "bench-train: gradient throughput" >&2
mlp_grad1=$(grad mlp 1 3); mlp_grad2=$(grad mlp 2 3)
lenet_grad1=$(grad lenet 1 5); lenet_grad2=$(grad lenet 2 5)
for name in mlp lenet; do
  rows=60000
  [ "$name" = lenet ] && rows=16000
  for threads in 1 2; do
    echo "bench-train: $name standalone, $threads compute threads" >&2
    "$BUILD/bin/pando-worker" --standalone "$TMP/$name.yaml" --threads "$threads" \
      >"$TMP/$name.s$threads" 2>/dev/null
    eval "${name}_s$threads=$(last_epoch_sps "$TMP/$name.s$threads" $rows)"
  done
  # PyTorch: OpenMP threads x OpenBLAS threads (two pools, see
  # tools/torch-baseline.py); 2 threads is the faster of 2 x 1 and 1 x 2
  eval "${name}_t1=n/a ${name}_t2=n/a"
  for split in 1x1 2x1 1x2; do
    [ "$torch" = yes ] || break
    omp=${split%x*} blas=${split#*x}
    echo "bench-train: $name with PyTorch, $omp OpenMP x $blas OpenBLAS threads" >&2
    /usr/bin/python3 tools/torch-baseline.py --model "$name" --epochs 2 --threads "$omp" \
      --blas-threads "$blas" --rows "$rows" >"$TMP/$name.t$split" 2>/dev/null
    sps=$(last_epoch_sps "$TMP/$name.t$split" $rows)
    echo "bench-train: $sps samples/s" >&2
    t=$((omp + blas - 1))
    eval "best=\$${name}_t$t"
    if [ "$best" = n/a ] || [ "$sps" -gt "$best" ]; then eval "${name}_t$t=$sps"; fi
  done
  echo "bench-train: $name on a cluster, M=2, N=2" >&2
  # plaintext (TLS=0): the figures measure training, as they did before TLS existed
  TLS=0 TMPDIR=$TMP sh tools/local-cluster.sh "$TMP/$name.yaml" >"$TMP/$name.c" 2>/dev/null
  eval "${name}_c=$(last_epoch_sps "$TMP/$name.c" $rows)"
done

echo "### Training, $cpu, 2 cores; math: $("$BUILD/tools/modelbench" softmax 1 0.01 | sed -n 's/^math: //p')"
echo
echo "| samples/s (batch 64 per worker) | MLP 784-256-10 | LeNet CNN |"
echo "| --- | --- | --- |"
echo "| gradient only, 1 compute thread (modelbench) | $mlp_grad1 | $lenet_grad1 |"
echo "| gradient only, 2 compute threads (modelbench) | $mlp_grad2 | $lenet_grad2 |"
echo "| 2 threads / 1 thread, gradient only | $(ratio "$mlp_grad2" "$mlp_grad1") | $(ratio "$lenet_grad2" "$lenet_grad1") |"
echo "| standalone job, 1 compute thread | $mlp_s1 | $lenet_s1 |"
echo "| standalone job, 2 compute threads | $mlp_s2 | $lenet_s2 |"
echo "| PyTorch 1.13 (same job), 1 thread | $mlp_t1 | $lenet_t1 |"
echo "| PyTorch 1.13 (same job), 2 threads (faster of 2 OpenMP x 1 BLAS, 1 x 2) | $mlp_t2 | $lenet_t2 |"
echo "| Pando standalone / PyTorch (same threads) | $(vs_torch "$mlp_s1" "$mlp_t1" "$mlp_s2" "$mlp_t2") | $(vs_torch "$lenet_s1" "$lenet_t1" "$lenet_s2" "$lenet_t2") |"
echo "| cluster job, M=2 servers, N=2 workers (1 compute thread each), BSP | $mlp_c | $lenet_c |"
echo "| cluster / standalone with 2 threads (same 2 cores) | $(ratio "$mlp_c" "$mlp_s2") | $(ratio "$lenet_c" "$lenet_s2") |"
echo "| standalone job / gradient only (1 thread) | $(ratio "$mlp_s1" "$mlp_grad1") | $(ratio "$lenet_s1" "$lenet_grad1") |"
