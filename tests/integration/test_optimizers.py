"""The six optimizers, weight decay and the lr/batch schedules against an
independent numpy reference in float64, written here from the formulas of
the job spec (README, "Job spec"), not from the C code.

For each configuration the same seeded gradients (S steps x 1000 keys, S =
the job's clocks) go through build/tests/integration/optdriver, which runs
libpando's optimizer and schedule the way a parameter server does (each
step split into three key ranges), and through the reference below. The
parameter trajectory (every key after every step) must match to 1e-6, the
epoch and lr of every clock exactly (lr to 1e-12).

Tolerance: the C side computes in float32 and stores every parameter in
float32, so each step rounds a value by up to 2^-24 of its magnitude (6e-8
for |x| in [1, 2)). These roundings add up like a random walk: after 50
steps the worst of the 50,000 values compared is typically 4e-7 to 8e-7, so
1e-6 is about the tightest bound float32 storage allows at this length (the
inputs are fixed, so the test is deterministic). The error of a key is
measured relative to max(|reference|, 1), as in
tests/unit/common/test_optimizer.c: parameters start in [-1, 1] and move by
about 1, so a value that happens to pass near zero is judged at the
parameters' scale (its float32 rounding is that of the larger values it was
computed from), not at its own, where rounding alone would exceed any useful
bound. For the same reason the learning rates and gradient scales keep the
parameters at that scale: a trajectory that wanders to |x| = 10 carries ten
times the absolute rounding error. A formula mistake (a sign, a missing bias
correction, a wrong epoch or lr) moves values by 1e-3 or more."""
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

BUILD = os.environ.get("BUILD", "build")
DRIVER = os.path.join(BUILD, "tests", "integration", "optdriver")
KEYS = 1000
TOL = 1e-6

failed = 0


def check(desc, cond):
    global failed
    print(("ok - " if cond else "FAIL - ") + desc, flush=True)
    failed += 0 if cond else 1


# ---------------------------------------------------------------- schedules

def batch_size(t, e):
    """Rows per worker per step in epoch e (1-based)."""
    bs = t.get("batch_schedule", {"type": "constant"})
    if bs["type"] == "constant":
        return t["batch_size"]
    grown = t["batch_size"] * bs["factor"] ** ((e - 1) // bs["step_epochs"])
    return int(math.floor(min(bs["max_batch_size"], grown) + 0.5))


def epoch_lr(t, e):
    lr = t["optimizer"]["lr"]
    s = t.get("lr_schedule", {"type": "constant"})
    if s["type"] == "step":
        return lr * s["gamma"] ** ((e - 1) // s["step_epochs"])
    if s["type"] == "exponential":
        return lr * s["gamma"] ** (e - 1)
    if s["type"] == "cosine":
        return s["min_lr"] + (lr - s["min_lr"]) * (1 + math.cos(math.pi * (e - 1) / t["epochs"])) / 2
    return lr


def clocks(t, rows):
    """(epoch, step within the epoch) of every clock of the job."""
    out = []
    for e in range(1, t["epochs"] + 1):
        steps = -(-rows // batch_size(t, e))
        out += [(e, s) for s in range(steps)]
    return out


# ---------------------------------------------------------------- optimizers

def reference(opt, x0, grads, lrs):
    """Parameters after every step, in float64."""
    x = x0.astype(np.float64)
    a = np.zeros_like(x)  # v (momentum, nesterov), c (adagrad, rmsprop), m (adam)
    b = np.zeros_like(x)  # v (adam)
    kind, wd = opt["type"], opt.get("weight_decay", 0.0)
    mu = opt.get("momentum", 0.9)
    eps = opt.get("epsilon", 1e-8)
    out = np.empty((len(grads), x.size))
    for t, (g32, lr) in enumerate(zip(grads, lrs), start=1):
        g = g32.astype(np.float64) + wd * x
        if kind == "sgd":
            x = x - lr * g
        elif kind == "momentum":
            a = mu * a - lr * g
            x = x + a
        elif kind == "nesterov":
            v0 = a
            a = mu * a - lr * g
            x = x - mu * v0 + (1 + mu) * a
        elif kind == "adagrad":
            a = a + g * g
            x = x - lr * g / (np.sqrt(a) + eps)
        elif kind == "rmsprop":
            dr = opt.get("decay_rate", 0.9)
            a = dr * a + (1 - dr) * g * g
            x = x - lr * g / (np.sqrt(a) + eps)
        elif kind == "adam":
            b1, b2 = opt.get("beta1", 0.9), opt.get("beta2", 0.999)
            a = b1 * a + (1 - b1) * g
            b = b2 * b + (1 - b2) * g * g
            m_hat = a / (1 - b1 ** t)
            v_hat = b / (1 - b2 ** t)
            x = x - lr * m_hat / (np.sqrt(v_hat) + eps)
        else:
            raise ValueError(kind)
        out[t - 1] = x
    return out


# ---------------------------------------------------------------- configurations

BASE = {
    "sgd": {"type": "sgd", "lr": 0.05},
    "momentum": {"type": "momentum", "lr": 0.01, "momentum": 0.9},
    "nesterov": {"type": "nesterov", "lr": 0.005, "momentum": 0.95},
    "adagrad": {"type": "adagrad", "lr": 0.05},
    "rmsprop": {"type": "rmsprop", "lr": 0.005, "decay_rate": 0.95, "epsilon": 1e-6},
    "adam": {"type": "adam", "lr": 0.005, "beta1": 0.8, "beta2": 0.99},
}
STEP = {"type": "step", "step_epochs": 3, "gamma": 0.5}
EXPONENTIAL = {"type": "exponential", "gamma": 0.8}
COSINE = {"type": "cosine", "min_lr": 0.1}  # min_lr is scaled to the optimizer's lr below
INCREASE = {"type": "increase", "step_epochs": 3, "factor": 2, "max_batch_size": 50}
SCHEDULED = {
    "sgd": (STEP, None),
    "momentum": (EXPONENTIAL, None),
    "nesterov": (COSINE, None),
    "adagrad": (STEP, INCREASE),
    "rmsprop": (COSINE, INCREASE),
    "adam": (COSINE, INCREASE),
}
ROWS = 100  # rows of the smallest partition: batch 20 takes 5 steps


def configurations():
    for name, opt in BASE.items():
        yield name, "constant lr", {"epochs": 10, "batch_size": 20, "optimizer": dict(opt)}
        yield name, "weight decay 0.05", {
            "epochs": 10, "batch_size": 20, "optimizer": dict(opt, weight_decay=0.05)}
        lr_schedule, batch_schedule = SCHEDULED[name]
        lr_schedule = dict(lr_schedule)
        if "min_lr" in lr_schedule:
            lr_schedule["min_lr"] *= opt["lr"]
        t = {"epochs": 10, "batch_size": 20, "optimizer": dict(opt, weight_decay=0.01),
             "lr_schedule": lr_schedule}
        what = "%s lr schedule, weight decay 0.01" % lr_schedule["type"]
        if batch_schedule:
            t["batch_schedule"] = dict(batch_schedule)
            what += ", increasing batch"
        yield name, what, t


def flow(d):
    return "{" + ", ".join("%s: %s" % (k, flow(v) if isinstance(v, dict) else repr(v).strip("'"))
                           for k, v in d.items()) + "}"


def job_yaml(t):
    return ("name: optimizers\n"
            "model: {type: softmax, layers: [4, 2]}\n"
            "data: {train: {features: unused, labels: unused}}\n"
            "training: %s\n"
            "cluster: {servers: 1, workers: 1}\n") % flow(dict(t, update="asp"))


def main():
    if not os.access(DRIVER, os.X_OK):
        check("%s is built" % DRIVER, False)
        return 1
    worst_by_opt = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, (name, what, t) in enumerate(configurations()):
            rng = np.random.default_rng(1000 + n)
            plan = clocks(t, ROWS)
            x0 = rng.uniform(-1, 1, KEYS).astype("<f4")
            # gradients over three orders of magnitude per key, so the
            # adaptive rules see both tiny and large ones
            scale = 10.0 ** rng.uniform(-3, 0, KEYS)
            grads = (rng.standard_normal((len(plan), KEYS)) * scale).astype("<f4")
            paths = [os.path.join(tmp, f) for f in ("job.yaml", "x0.f32", "g.f32", "out.f32")]
            with open(paths[0], "w") as f:
                f.write(job_yaml(t))
            x0.tofile(paths[1])
            grads.tofile(paths[2])
            run = subprocess.run([DRIVER, paths[0], str(ROWS)] + paths[1:],
                                 capture_output=True, text=True)
            desc = "%s, %s: %d steps x %d keys" % (name, what, len(plan), KEYS)
            if run.returncode != 0:
                check(desc + " (driver failed: %s)" % run.stderr.strip(), False)
                continue
            lines = [line.split() for line in run.stdout.split("\n") if line]
            lrs = [epoch_lr(t, e) for e, _ in plan]
            schedule_ok = len(lines) == len(plan) and all(
                int(c) == i and int(e) == plan[i][0] and int(s) == plan[i][1]
                and abs(float(lr) - lrs[i]) <= 1e-12 * lrs[i]
                for i, (c, e, s, lr) in enumerate(lines))
            got = np.fromfile(paths[3], dtype="<f4").astype(np.float64).reshape(len(plan), KEYS)
            want = reference(t["optimizer"], x0, grads, lrs)
            err = np.abs(got - want) / np.maximum(np.abs(want), 1.0)
            worst = float(np.max(err)) if np.all(np.isfinite(err)) else math.inf
            moved = float(np.max(np.abs(want[-1] - x0)))
            worst_by_opt[name] = max(worst_by_opt.get(name, 0.0), worst)
            check("%s: epoch and lr of every clock as the schedule says" % desc, schedule_ok)
            check("%s: trajectory matches numpy float64 (worst relative error %.2g, "
                  "parameters moved up to %.2g)" % (desc, worst, moved),
                  worst <= TOL and moved > 1e-2)
    print("# worst relative error per optimizer: " +
          ", ".join("%s %.2g" % kv for kv in worst_by_opt.items()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
