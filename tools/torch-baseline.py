#!/usr/bin/python3
"""PyTorch baseline for tools/bench-train.sh: trains the jobs of
examples/fashion-mlp.yaml and examples/fashion-lenet.yaml (for LeNet with its
standardised inputs and cosine learning-rate decay) with PyTorch on the CPU, as
`pando-worker --standalone` does, and prints the same lines:

    epoch N: train loss X, test accuracy Y, test loss Z (S s)

S is measured as Pando measures it: from the end of the previous epoch's line
to this one, i.e. the epoch's training loop (shuffle, batches, forward,
backward, Adam step) plus the evaluation on the test set. The data is loaded
into tensors before the clock starts, so the first epoch has no loading in it
(Pando's first epoch has; bench-train.sh uses the last epoch). A last line
"samples/s: ..." gives the last epoch's training rows / S, and the same for the
training loop alone.

    /usr/bin/python3 tools/torch-baseline.py --model mlp|lenet [--epochs N]
        [--threads T] [--blas-threads B] [--rows N] [--data DIR]

Debian's torch runs its convolutions in oneDNN (OpenMP threads) and its matrix
products in the system's OpenBLAS (pthreads), two thread pools: --threads sets
the first, --blas-threads the second. Both at 2 on 2 cores oversubscribe them
(OpenMP's threads spin while OpenBLAS's want the cores; the MLP runs 5-10 times
slower), so tools/bench-train.sh runs 2 threads as 2 x 1 and 1 x 2 and keeps
the faster.
"""
import argparse
import gzip
import math
import os
import sys
import time

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--model", choices=("mlp", "lenet"), default="mlp")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--threads", type=int, default=1,
                    help="torch's intra-op (OpenMP) and inter-op threads (default 1)")
parser.add_argument("--blas-threads", type=int, default=0,
                    help="OpenBLAS threads (default: --threads)")
parser.add_argument("--rows", type=int, default=0,
                    help="use the first ROWS training rows (default: all)")
parser.add_argument("--batch", type=int, default=64)
parser.add_argument("--lr", type=float, default=0.001)
parser.add_argument("--seed", type=int, default=42)
parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
args = parser.parse_args()

# Before numpy and torch are imported: OpenMP (torch's own kernels, oneDNN)
# and OpenBLAS (torch's matrix products; Debian's numpy and torch link the
# system libblas, which starts its threads when numpy loads it) read these
# when they start, and torch.set_num_threads does not reach OpenBLAS.
os.environ["OMP_NUM_THREADS"] = str(args.threads)
os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads or args.threads)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(args.threads)
torch.set_num_interop_threads(args.threads)
torch.manual_seed(args.seed)


def idx(path):
    """An IDX file (gzip) as a numpy array of its shape."""
    data = gzip.open(path).read()
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        sys.exit(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(split, rows):
    x = idx(f"{args.data}/{split}-images-idx3-ubyte.gz")
    y = idx(f"{args.data}/{split}-labels-idx1-ubyte.gz")
    if rows:
        x, y = x[:rows], y[:rows]
    # features scaled to [0, 1] as Pando's IDX reader does (byte / 255)
    x = torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / np.float32(255))
    if args.model == "lenet":
        x = x.reshape(len(x), 1, 28, 28)
    return x.contiguous(), torch.from_numpy(y.astype(np.int64))


train_x, train_y = load("train", args.rows)
test_x, test_y = load("t10k", 0)
if args.model == "lenet":
    # data.normalize: standard: per feature, the loaded training rows' mean and
    # standard deviation (population; 1 where it is 0), for both splits
    flat = train_x.reshape(len(train_x), -1).double()
    mean, sd = flat.mean(0), flat.std(0, unbiased=False)
    scale = torch.where(sd > 0, 1 / sd, torch.ones_like(sd))
    shape = (1,) + tuple(train_x.shape[1:])
    mean, scale = mean.float().reshape(shape), scale.float().reshape(shape)
    train_x = ((train_x - mean) * scale).contiguous()
    test_x = ((test_x - mean) * scale).contiguous()

if args.model == "mlp":  # model: {type: mlp, layers: [784, 256, 10], activation: relu}
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    shuffle = False  # fashion-mlp.yaml has no `shuffle`: batches in file order
else:  # model: {type: lenet, input_shape: [1, 28, 28]}, training.shuffle: true
    model = nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 512), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(512, 10))
    shuffle = True


def lr_of(epoch):
    """training.lr_schedule: cosine for LeNet (per epoch, min_lr 0, as
    pd_schedule_lr), none for the MLP."""
    if args.model != "lenet":
        return args.lr
    return args.lr * (1 + math.cos(math.pi * (epoch - 1) / args.epochs)) / 2


optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
loss_fn = nn.CrossEntropyLoss()  # softmax cross-entropy, mean over the batch
params = sum(p.numel() for p in model.parameters())
rows = len(train_x)
# Pando's schedule: ceil(rows / batch) steps, the last one takes the rest
steps = (rows + args.batch - 1) // args.batch
print(f"torch {torch.__version__}, {args.model}, {params} parameters, {rows} training rows, "
      f"{args.threads} OpenMP threads, {os.environ['OPENBLAS_NUM_THREADS']} OpenBLAS threads",
      file=sys.stderr)


# the test set in the chunks pd_model_evaluate uses: 128 rows for LeNet, the
# batch size otherwise
chunk = 128 if args.model == "lenet" else args.batch


def evaluate():
    model.eval()
    loss = correct = 0.0
    with torch.no_grad():
        for b in range(0, len(test_x), chunk):
            out = model(test_x[b:b + chunk])
            loss += nn.functional.cross_entropy(out, test_y[b:b + chunk], reduction="sum").item()
            correct += (out.argmax(1) == test_y[b:b + chunk]).sum().item()
    model.train()
    return correct / len(test_x), loss / len(test_x)


last_end = time.perf_counter()
for epoch in range(1, args.epochs + 1):
    start = time.perf_counter()
    for group in optimizer.param_groups:
        group["lr"] = lr_of(epoch)
    order = torch.randperm(rows) if shuffle else None
    loss_sum = 0.0
    for step in range(steps):
        b, e = step * args.batch, rows if step + 1 == steps else (step + 1) * args.batch
        if shuffle:
            x, y = train_x[order[b:e]], train_y[order[b:e]]
        else:
            x, y = train_x[b:e], train_y[b:e]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item()
    trained = time.perf_counter()
    accuracy, test_loss = evaluate()
    now = time.perf_counter()
    print(f"epoch {epoch}: train loss {loss_sum / steps:.4f}, test accuracy {accuracy:.4f}, "
          f"test loss {test_loss:.4f} ({now - last_end:.2f} s)", flush=True)
    print(f"epoch {epoch}: training loop {trained - start:.2f} s, evaluation {now - trained:.2f} s",
          file=sys.stderr)
    last_end = now
print(f"samples/s: {rows / (now - start):.0f} (last epoch with its evaluation, as in Pando's "
      f"line), {rows / (trained - start):.0f} (training loop alone)")
