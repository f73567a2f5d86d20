"""A real pando-ps applies the learning-rate schedule: each push (ASP) and
each BSP round is applied with the learning rate of the epoch its clock
falls in, worked out from CreateShard's min_partition_rows and the batch
size of each epoch. Learning rates are powers of two, so the expected
values are exact in float32. Also: the new optimizers are accepted and
named in the server's log, and a schedule without min_partition_rows is
refused."""
import os
import subprocess
import sys
import tempfile
import time

import grpc
import numpy as np

BUILD = os.environ.get("BUILD", "build")
sys.path.insert(0, os.path.join(BUILD, "gen", "python"))
import pando_pb2 as pb  # noqa: E402
import pdtls  # noqa: E402  (PANDO_TEST_TLS: TLS and the token)

failed = 0


def check(desc, cond):
    global failed
    print(("ok - " if cond else "FAIL - ") + desc, flush=True)
    failed += 0 if cond else 1


def spec(update, optimizer, schedules=""):
    return ("name: lrs\n"
            "model: {type: softmax, layers: [6, 3], seed: 7}\n"
            "data: {train: {features: x, labels: y}}\n"
            "training: {epochs: 6, batch_size: 10, update: %s, optimizer: %s%s}\n"
            "cluster: {servers: 1, workers: 2}\n") % (update, optimizer, schedules)


KEYS = 6 * 3 + 3
ROWS = 25  # smallest partition: batch 10 takes 3 steps

tmp = tempfile.mkdtemp(prefix="pando-lrs-")
port_file = os.path.join(tmp, "ps.port")
log_path = os.path.join(tmp, "ps.log")
log = open(log_path, "w")
ps = subprocess.Popen([os.path.join(BUILD, "bin", "pando-ps"), "--listen", "127.0.0.1:0",
                       "--metrics-listen", "", "--port-file", port_file] + pdtls.flags("pando-ps"), stdout=log, stderr=log)
try:
    for _ in range(100):
        if os.path.exists(port_file) and open(port_file).read().strip():
            break
        time.sleep(0.1)
    ch = pdtls.channel("127.0.0.1:" + open(port_file).read().strip())

    def rpc(name, req, resp):
        return ch.unary_unary("/pando.v1.ParameterServer/" + name,
                              request_serializer=req.SerializeToString,
                              response_deserializer=resp.FromString)

    create = rpc("CreateShard", pb.CreateShardRequest, pb.CreateShardResponse)
    pull_rpc = rpc("Pull", pb.PullRequest, pb.PullResponse)
    push_rpc = rpc("Push", pb.PushRequest, pb.PushResponse)

    def pull(job, clock=0):
        r = pull_rpc(pb.PullRequest(job=job, begin=0, end=KEYS, worker=0, clock=clock), timeout=5)
        return np.frombuffer(r.values.data, dtype="<f4").copy()

    def push(job, worker, clock, g):
        t = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[KEYS], data=g.tobytes())
        return push_rpc(pb.PushRequest(job=job, begin=0, end=KEYS, worker=worker, clock=clock,
                                       gradient=t), timeout=5)

    g = (np.arange(KEYS, dtype="<f4") - 10) / 4

    # A schedule needs the partition's rows to place clocks in epochs.
    step = ", lr_schedule: {type: step, step_epochs: 1, gamma: 0.5}"
    try:
        create(pb.CreateShardRequest(job="no-rows", spec_yaml=spec("asp", "{type: sgd, lr: 1}", step),
                                     begin=0, end=KEYS, num_workers=1), timeout=5)
        check("CreateShard with an lr schedule and no min_partition_rows is refused", False)
    except grpc.RpcError as e:
        check("CreateShard with an lr schedule and no min_partition_rows is refused (%s)"
              % e.details(),
              e.code() == grpc.StatusCode.INVALID_ARGUMENT and "min_partition_rows" in e.details())

    # ASP, step schedule halving every epoch, 3 steps per epoch: clocks 0-2
    # at lr 1, 3-5 at 0.5, 6-8 at 0.25; clock 30 is in epoch 11 (after the
    # job's 6 epochs the schedule goes on): 2^-10.
    create(pb.CreateShardRequest(job="asp-step", spec_yaml=spec("asp", "{type: sgd, lr: 1}", step),
                                 begin=0, end=KEYS, num_workers=1, min_partition_rows=ROWS),
           timeout=5)
    x = pull("asp-step")
    ok = True
    for clock, lr in [(0, 1), (1, 1), (2, 1), (3, .5), (4, .5), (5, .5), (6, .25), (8, .25),
                      (30, 2.0 ** -10)]:
        push("asp-step", 0, clock, g)
        want = x - np.float32(lr) * g
        x = pull("asp-step")
        ok = ok and np.array_equal(x, want)
    check("ASP: each push is applied with the lr of its clock's epoch (step schedule)", ok)

    # ASP with an increasing batch: batch 10, 20, 40 (max) -> 3, 2, 1 steps,
    # so clocks 0-2 are epoch 1, 3-4 epoch 2, 5 epoch 3, 6 epoch 4;
    # exponential schedule lr 0.5^(e-1).
    sched = (", lr_schedule: {type: exponential, gamma: 0.5}, "
             "batch_schedule: {type: increase, step_epochs: 1, factor: 2, max_batch_size: 40}")
    create(pb.CreateShardRequest(job="asp-batch", spec_yaml=spec("asp", "{type: sgd, lr: 1}", sched),
                                 begin=0, end=KEYS, num_workers=1, min_partition_rows=ROWS),
           timeout=5)
    x = pull("asp-batch")
    ok = True
    for clock, lr in [(0, 1), (2, 1), (3, .5), (4, .5), (5, .25), (6, .125), (7, .0625)]:
        push("asp-batch", 0, clock, g)
        want = x - np.float32(lr) * g
        x = pull("asp-batch")
        ok = ok and np.array_equal(x, want)
    check("ASP: with an increasing batch size the epochs get shorter, and the lr follows", ok)

    # BSP, 2 workers: a round's average is applied once, with the lr of the
    # round's epoch.
    create(pb.CreateShardRequest(job="bsp-step", spec_yaml=spec("bsp", "{type: sgd, lr: 1}", step),
                                 begin=0, end=KEYS, num_workers=2, min_partition_rows=ROWS),
           timeout=5)
    x = pull("bsp-step")
    g1 = g[::-1].copy()
    ok = True
    for clock in range(7):
        lr = 0.5 ** (clock // 3)
        push("bsp-step", 0, clock, g)
        push("bsp-step", 1, clock, g1)
        want = x - np.float32(lr) * ((g + g1) * np.float32(0.5))
        x = pull("bsp-step", clock + 1)
        ok = ok and np.allclose(x, want, rtol=1e-6, atol=1e-7)
    check("BSP: every round's average is applied with the lr of the round's epoch", ok)

    # Every optimizer is accepted, and the log names it.
    names = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]
    for name in names:
        create(pb.CreateShardRequest(
            job="opt-" + name, spec_yaml=spec("asp", "{type: %s, lr: 0.5, weight_decay: 0.1}" % name),
            begin=0, end=KEYS, num_workers=1), timeout=5)
        x0 = pull("opt-" + name)
        push("opt-" + name, 0, 0, g)
        x1 = pull("opt-" + name)
        ok = np.all(np.isfinite(x1)) and not np.array_equal(x0, x1)
        check("CreateShard with optimizer %s: a push changes the parameters" % name, ok)
    time.sleep(0.2)
    text = open(log_path).read()
    check("the server's log names each shard's optimizer",
          all(("job opt-%s:" % n in text and "%s lr=0.5" % n in text) for n in names))

    ps.terminate()
    check("SIGTERM stops the server cleanly (exit 0)", ps.wait(timeout=10) == 0)
finally:
    if ps.poll() is None:
        ps.kill()
    log.close()
    if failed:
        print(open(log_path).read(), file=sys.stderr)
sys.exit(1 if failed else 0)
