"""SCAFFOLD (training.federated.aggregation scaffold; Karimireddy et al.,
ICML 2020, Algorithm 1 with option II) end to end against a numpy reference
of the paper's algorithm: a coordinator, M = 3 parameter servers, a
selector, 3 of Pando's own (C) devices with unequal data of their own (40,
90 and 150 rows, each with a different label mix) and a fourth device,
played from Python, that stays online and busy, so the population is N = 4
and |S| = 3 each round. Softmax regression, E = 3 local steps of the whole
local data (B = 0), 2 rounds, server_lr eta_g = 0.7. After each round the
model x every shard serves and the server control variate c every shard
holds (PullRequest.control) equal the reference's to 1e-5 (relative): x +=
eta_g mean(Delta y), c += (|S| / N) mean(Delta c), with each device's c_i
carried from round 1 into round 2. Also: the spec needs local sgd; a pull
of c from a fedavg job and a scaffold push without Delta c are refused."""
import os
import sys
import threading
import time

import grpc
import numpy as np

from fedlib import Cluster, check, code_of, pb, softmax_grad
import fedlib

INPUTS, CLASSES = 6, 3
KEYS = INPUTS * CLASSES + CLASSES
LR, ETA_G, EPOCHS, ROUNDS = 0.4, 0.7, 3, 2


def spec(name, aggregation="scaffold, server_lr: %g" % ETA_G, optimizer="sgd"):
    return """
name: %s
model: {type: softmax, layers: [%d, %d], seed: 3}
data: {train: {features: x, labels: y}}
training:
  update: fedavg
  optimizer: {type: %s, lr: %g}
  federated: {rounds: %d, clients_per_round: 3, over_selection: 1, min_reports: 3,
              local_epochs: %d, local_batch_size: 0, round_timeout: 30,
              aggregation: %s}
cluster: {servers: 3, wait_timeout: 30}
""" % (name, INPUTS, CLASSES, optimizer, LR, ROUNDS, EPOCHS, aggregation)


def pull_with_control(c, shard_map, job):
    """the committed model and c from every shard (round 0: as committed)"""
    xs, cs = [], []
    for s in shard_map.shards:
        r = c.ps(s.address, "Pull", pb.PullRequest, pb.PullResponse)(
            pb.PullRequest(job=job, begin=s.begin, end=s.end, clock=0, control=True), timeout=10)
        xs.append(np.frombuffer(r.values.data, dtype="<f4"))
        cs.append(np.frombuffer(r.control.data, dtype="<f4"))
    return np.concatenate(xs).astype(np.float64), np.concatenate(cs).astype(np.float64)


def rel_err(got, want):
    return np.max(np.abs(got - want)) / max(1e-3, np.max(np.abs(want)))


rng = np.random.default_rng(17)
c = Cluster(3)
stop = threading.Event()
try:
    code, msg = code_of(c.coord["SubmitJob"], pb.SubmitJobRequest(
        spec_yaml=spec("scaffold-adam", optimizer="adam")))
    check("scaffold with a local adam optimizer is refused naming the key (%s)" % msg,
          code == grpc.StatusCode.INVALID_ARGUMENT and "training.optimizer.type" in msg)

    # the bystander: online and busy for the whole job, so N = 4, |S| = 3
    c.checkin("py-bystander", 10, busy=True)

    def keep_online():
        while not stop.wait(0.05):
            try:
                c.checkin("py-bystander", 10, busy=True)
            except grpc.RpcError:
                pass
    threading.Thread(target=keep_online, daemon=True).start()

    job = c.submit(spec("scaffold"))
    st = c.status(job)
    for _ in range(500):
        st = c.status(job)
        if st.shard_map.shards:
            break
        time.sleep(0.02)
    check("the scaffold job has its 3 shards", len(st.shard_map.shards) == 3)
    x0, c0 = pull_with_control(c, st.shard_map, job)
    check("before round 1 every shard serves theta_0 and c = 0 (%d keys)" % x0.size,
          x0.size == KEYS and c0.size == KEYS and not c0.any() and x0.any())

    sizes = {"sc-a": 40, "sc-b": 90, "sc-c": 150}
    mixes = {"sc-a": [0.8, 0.1, 0.1], "sc-b": [0.1, 0.2, 0.7], "sc-c": [0.3, 0.6, 0.1]}
    data = {}
    for d, n in sizes.items():
        y = rng.choice(CLASSES, n, p=mixes[d])
        xd = (rng.normal(0, 1, (n, INPUTS)) + y[:, None] * 0.5).astype(np.float32)
        data[d] = (xd.astype(np.float64), y)
        path = os.path.join(c.dir, d + ".csv")
        np.savetxt(path, np.column_stack([y, xd]), delimiter=",", fmt="%.9g")
        dspec = os.path.join(c.dir, d + ".yaml")
        with open(dspec, "w") as f:
            f.write(spec("scaffold").replace(
                "data: {train: {features: x, labels: y}}",
                "data: {format: csv, train: {features: %s}}" % path))
        c.spawn(d, "pando-worker", "--role", "device", "--data", dspec, "--selector", c.selector,
                "--device-id", d, "--jobs", "scaffold", "--metrics-listen", "")

    # the reference: Algorithm 1 of the paper, option II, in float64
    def algorithm1(keep_c_i=True):
        x, cs = x0.copy(), c0.copy()
        c_i = {d: np.zeros(KEYS) for d in sizes}
        for _ in range(ROUNDS):
            dys, dcs = [], []
            for d in sizes:
                xd, yd = data[d]
                y = x.copy()
                for _ in range(EPOCHS):  # B = all: one step an epoch, K = E
                    y -= LR * (softmax_grad(y, xd, yd, INPUTS, CLASSES) + cs - c_i[d])
                plus = c_i[d] - cs + (x - y) / (EPOCHS * LR)
                dys.append(y - x)
                dcs.append(plus - c_i[d])
                c_i[d] = plus if keep_c_i else np.zeros(KEYS)
            x = x + ETA_G * np.mean(dys, axis=0)
            cs = cs + (len(sizes) / 4.0) * np.mean(dcs, axis=0)
        return x, cs
    want_x, want_c = algorithm1()
    forgetful_x, _ = algorithm1(keep_c_i=False)

    st = c.wait(job, seconds=90)
    check("3 C devices train 2 scaffold rounds (%s)" % st.message,
          st.state == pb.JOB_STATE_SUCCEEDED and st.rounds_done == ROUNDS)
    check("each round selected 3 and committed 3 reports",
          [(r.selected, r.reported, r.abandoned) for r in st.round_history] ==
          [(3, 3, False)] * ROUNDS)
    got_x, got_c = pull_with_control(c, st.shard_map, job)
    ex, ec = rel_err(got_x, want_x), rel_err(got_c, want_c)
    check("after 2 rounds the model on the 3 shards equals Algorithm 1's x (rel err %.1e <= "
          "1e-5)" % ex, ex <= 1e-5)
    check("after 2 rounds the server control variate on the 3 shards equals Algorithm 1's c "
          "with N = 4 (rel err %.1e <= 1e-5; |c| up to %.3f)" % (ec, np.max(np.abs(want_c))),
          ec <= 1e-5 and np.max(np.abs(want_c)) > 1e-2)
    ef = rel_err(got_x, forgetful_x)
    check("the devices carry c_i from round 1 into round 2: with c_i reset to 0 the model "
          "would differ by %.1e (> 1e-3)" % ef, ef > 1e-3)

    # refusals
    s = st.shard_map.shards[0]
    push = c.ps(s.address, "Push", pb.PushRequest, pb.PushResponse)
    t = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[s.end - s.begin],
                  data=np.zeros(s.end - s.begin, "<f4").tobytes())
    code, msg = code_of(push, pb.PushRequest(job=job, begin=s.begin, end=s.end, clock=99,
                                             device="py-x", weight=1, gradient=t))
    check("a scaffold push without control_delta is INVALID_ARGUMENT (%s)" % msg,
          code == grpc.StatusCode.INVALID_ARGUMENT and "control_delta" in msg)
    fedavg = c.submit(spec("plain", aggregation="fedavg"))
    for _ in range(500):
        st2 = c.status(fedavg)
        if st2.shard_map.shards:
            break
        time.sleep(0.02)
    s2 = st2.shard_map.shards[0]
    code, msg = code_of(c.ps(s2.address, "Pull", pb.PullRequest, pb.PullResponse),
                        pb.PullRequest(job=fedavg, begin=s2.begin, end=s2.end, clock=0,
                                       control=True))
    check("pulling the control variate of a fedavg job is FAILED_PRECONDITION (%s)" % msg,
          code == grpc.StatusCode.FAILED_PRECONDITION and "control" in msg)
    t2 = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[s2.end - s2.begin],
                   data=np.zeros(s2.end - s2.begin, "<f4").tobytes())
    code, msg = code_of(c.ps(s2.address, "Push", pb.PushRequest, pb.PushResponse),
                        pb.PushRequest(job=fedavg, begin=s2.begin, end=s2.end, clock=1,
                                       device="py-x", weight=1, gradient=t2, control_delta=t2))
    check("a fedavg push with control_delta is INVALID_ARGUMENT (%s)" % msg,
          code == grpc.StatusCode.INVALID_ARGUMENT and "control_delta" in msg)
finally:
    stop.set()
    codes = c.close()
check("every daemon stops cleanly on SIGTERM", all(code == 0 for code in codes))
sys.exit(1 if fedlib.failed else 0)
