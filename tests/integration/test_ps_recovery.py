"""Checkpoints and recovery of real pando-ps daemons, driven by an
independent client (grpcio + messages generated from proto/): a BSP job of
M = 2 shards on two servers and N = 2 (simulated) workers checkpoints every
2 clocks; one server is killed with SIGKILL in the middle of a round after a
worker's push was acknowledged, restarted on the same data_dir, and both
shards roll back to the last checkpoint both hold (CreateShard
restore_checkpoint, for attempt 1). A straggler of attempt 0 that pushes
after the roll back is ABORTED and changes nothing (the attempt fence); the
workers redo the clocks since then as attempt 1 and the final parameters
equal those of an undisturbed run of the same job bit for bit.
Then a flipped byte in the newest checkpoint is refused by its checksum (the
log says so) and the older one is used.

Then exactly once, as a ledger (issue "Durability"): an SGD job (lr 1)
whose worker w pushes at clock c a gradient that is zero but at coordinate
w * LEDGER_CLOCKS + c, so the final parameters minus the initial ones show
which updates were applied, and how often. Over LEDGER_TRIALS jobs, one
or two servers are killed with SIGKILL at random points between pushes
(half of the time once the clock's checkpoint is durable), restarted on their data_dir, and the shards roll back as the coordinator
does (a pass to each shard's newest checkpoint, then to the smallest
answer; none: anew from the seed), for the next attempt; a straggler's push
of the old attempt is ABORTED, retried pushes of acknowledged updates inside
the checkpoint are duplicates, and the workers redo the clocks since. Every
update ends up applied exactly once. PANDO_LEDGER_SEED replays a run.

Last, torn checkpoints: TORN_TRIALS times a shard of 500,000 keys that
checkpoints every clock takes 2-3 pushes (the checkpoints of all but the
last one complete) and its server is killed with SIGKILL 0-8 ms after the
last one, while its checkpoint is being written;
restarted, its newest checkpoint that verifies is restored: never older
than the one the server had reported durable before the kill, and always
bit for bit the model of that clock."""
import random
import glob
import os
import shutil
import signal
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


SPEC = """
name: recover
model: {type: softmax, layers: [6, 3], seed: 7}
data: {train: {features: x, labels: y}}
training: {epochs: 1, batch_size: 2, update: bsp, optimizer: {type: adam, lr: 0.05}}
cluster: {servers: 2, workers: 2}
checkpoint: {every_clocks: 2, keep: 2}
"""
KEYS = 6 * 3 + 3
SPLIT = 10  # server a holds [0, 10), server b [10, 21)
CLOCKS = 10
WORKERS = 2

tmp = tempfile.mkdtemp(prefix="pando-recovery-")
servers = {}


def start(name):
    """Starts pando-ps `name` on its data_dir; returns its stubs."""
    port_file = os.path.join(tmp, name + ".port")
    if os.path.exists(port_file):
        os.unlink(port_file)
    log = open(os.path.join(tmp, name + ".log"), "a")
    proc = subprocess.Popen([os.path.join(BUILD, "bin", "pando-ps"), "--listen", "127.0.0.1:0",
                             "--metrics-listen", "", "--port-file", port_file,
                             "--data-dir", os.path.join(tmp, "data-" + name)] + pdtls.flags("pando-ps"),
                            stdout=log, stderr=log)
    for _ in range(200):
        if os.path.exists(port_file) and open(port_file).read().strip():
            break
        time.sleep(0.05)
    ch = pdtls.channel("127.0.0.1:" + open(port_file).read().strip())

    def rpc(method, req, resp):
        return ch.unary_unary("/pando.v1.ParameterServer/" + method,
                              request_serializer=req.SerializeToString,
                              response_deserializer=resp.FromString)
    servers[name] = {
        "proc": proc, "log": log, "ch": ch,
        "create": rpc("CreateShard", pb.CreateShardRequest, pb.CreateShardResponse),
        "pull": rpc("Pull", pb.PullRequest, pb.PullResponse),
        "push": rpc("Push", pb.PushRequest, pb.PushResponse),
        "stats": rpc("GetStats", pb.StatsRequest, pb.StatsResponse),
        "drop": rpc("DropShard", pb.DropShardRequest, pb.DropShardResponse),
    }


RANGES = {"a": (0, SPLIT), "b": (SPLIT, KEYS)}


def create(job, restore=0, attempt=0, spec=SPEC, only=None):
    """CreateShard of `job` on both servers (or those in `only`); returns
    the checkpoints restored."""
    out = {}
    for name, (begin, end) in RANGES.items():
        if only is not None and name not in only:
            continue
        r = servers[name]["create"](pb.CreateShardRequest(
            job=job, spec_yaml=spec, begin=begin, end=end, num_workers=WORKERS,
            min_partition_rows=4, restore_checkpoint=restore, attempt=attempt), timeout=10)
        out[name] = r.checkpoint
    return out


def gradient(worker, clock):
    rng = np.random.default_rng(1000 * worker + clock)
    return (rng.standard_normal(KEYS) * 0.1).astype("<f4")


def push(job, worker, clock, attempt=0, only=None, g=None, checkpoint=False):
    """Pushes the worker's gradient of `clock` (or `g`) to both shards (or
    server `only`); returns the responses."""
    g = gradient(worker, clock) if g is None else g
    out = []
    for name, (begin, end) in RANGES.items():
        if only and name != only:
            continue
        t = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[end - begin], data=g[begin:end].tobytes())
        out.append(servers[name]["push"](pb.PushRequest(
            job=job, begin=begin, end=end, worker=worker, clock=clock, gradient=t,
            attempt=attempt, checkpoint=checkpoint), timeout=10))
    return out


def values(job, clock):
    """The model pulled by worker 0 at `clock` from both shards."""
    parts = []
    for name, (begin, end) in RANGES.items():
        p = servers[name]["pull"](pb.PullRequest(job=job, begin=begin, end=end, worker=0,
                                                 clock=clock), timeout=10)
        parts.append(np.frombuffer(p.values.data, dtype="<f4"))
    return np.concatenate(parts)


def newest_checkpoint(job, name):
    return servers[name]["stats"](pb.StatsRequest(job=job), timeout=10).checkpoint


def wait_checkpoint(job, want):
    """Waits (bounded) until both servers report checkpoint `want` durable."""
    for _ in range(400):
        if all(newest_checkpoint(job, n) >= want for n in RANGES):
            return True
        time.sleep(0.05)
    return False


def kill9(name):
    servers[name]["proc"].send_signal(signal.SIGKILL)
    servers[name]["proc"].wait(timeout=10)
    servers[name]["ch"].close()


LEDGER_SPEC = SPEC.replace("{type: adam, lr: 0.05}", "{type: sgd, lr: 1.0}")
LEDGER_CLOCKS = 10  # W * LEDGER_CLOCKS coordinates of the KEYS are the ledger
LEDGER_TRIALS = 20
NEWEST = (1 << 64) - 1  # restore_checkpoint: each shard's newest (PD_RECOVERY_NEWEST)


def ledger_gradient(worker, clock):
    """Zero but at the update's own coordinate: -W there, so that the
    server's mean over the W workers times -lr adds exactly 1."""
    g = np.zeros(KEYS, dtype="<f4")
    g[worker * LEDGER_CLOCKS + clock] = -WORKERS
    return g


def roll_back(job, attempt, spec=LEDGER_SPEC):
    """The coordinator's restore passes (recovery.c) for `attempt`: every
    shard to its newest checkpoint, then the shards above the smallest
    answer to it, until all agree; a shard with none <= the target answers
    0, and 0 is DropShard and anew from the seed. Returns the clock the
    workers redo from."""
    target, todo, restored = NEWEST, list(RANGES), {}
    while True:
        for name in todo:
            try:
                restored.update(create(job, target, attempt, spec, [name]))
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                restored[name] = 0  # none <= target on its disk (or keep: pruned it)
        cut = min(restored.values())
        if cut == 0:
            for name in RANGES:
                try:
                    servers[name]["drop"](pb.DropShardRequest(job=job), timeout=10)
                except grpc.RpcError:
                    pass  # NOT_FOUND: not held
            create(job, 0, attempt, spec)
            return 0
        if all(v == cut for v in restored.values()):
            return cut
        target, todo = cut, [n for n in restored if restored[n] != cut]


def ledger_trial(trial, rng, stats):
    """One job with 1 or 2 kills; returns (applied-count vector, init)."""
    job = "ledger-%d" % trial
    create(job, spec=LEDGER_SPEC)
    init = values(job, 0)
    plan = sorted(rng.sample(range(1, LEDGER_CLOCKS * WORKERS * len(RANGES)), rng.choice([1, 2])))
    kills = {p: rng.choice(sorted(RANGES)) for p in plan}
    acked, attempt, step, clock = set(), 0, 0, 0
    while clock < LEDGER_CLOCKS:
        redo = None
        for w in range(WORKERS):
            for name in sorted(RANGES):
                step += 1
                if step in kills:
                    if rng.random() < 0.5 and clock >= 2:  # once a checkpoint is durable
                        wait_checkpoint(job, clock - clock % 2)
                    kill9(kills.pop(step))
                    redo = True
                    break
                r = push(job, w, clock, attempt, name, ledger_gradient(w, clock))
                if r[0].duplicate:
                    stats["unexpected_duplicates"] += 1
                acked.add((name, w, clock))
            if redo:
                break
        if not redo:
            clock += 1
            continue
        for name in RANGES:  # the killed one comes back (same name and data_dir)
            if servers[name]["proc"].poll() is not None:
                start(name)
        attempt += 1
        cut = roll_back(job, attempt)
        stats["kills"] += 1
        stats["cuts"].append(cut)
        w = rng.randrange(WORKERS)  # a straggler of the old attempt
        try:
            push(job, w, cut, attempt - 1, None, ledger_gradient(w, cut))
            stats["straggler_applied"] += 1
        except grpc.RpcError as e:
            stats["straggler_aborted"] += e.code() == grpc.StatusCode.ABORTED
        inside = [a for a in acked if a[2] < cut]
        for name, w, c in rng.sample(inside, min(3, len(inside))):  # retried across the crash
            stats["retried"] += 1
            stats["retried_dup"] += push(job, w, c, attempt, name, ledger_gradient(w, c))[0].duplicate
        clock = cut
    final = values(job, LEDGER_CLOCKS)
    for name in RANGES:
        servers[name]["drop"](pb.DropShardRequest(job=job), timeout=10)
    return final.astype(np.float64) - init.astype(np.float64)


def checkpoint_ids(job, name):
    return sorted(int(os.path.basename(d)[5:]) for d in
                  glob.glob(os.path.join(tmp, "data-" + name, "jobs", job, "ckpt-*"))
                  if glob.glob(os.path.join(d, "*.manifest")))


def every_seconds():
    """checkpoint.every_seconds: worker 0 flags its push of clock k
    (PushRequest.checkpoint) and every shard checkpoints at clock k + 1 and
    no other: under BSP when round k completes, under ASP when the slowest
    worker reaches k + 1."""
    for mode in ("bsp", "asp"):
        spec = SPEC.replace("update: bsp", "update: " + mode).replace(
            "every_clocks: 2, keep: 2", "every_seconds: 3600, keep: 5")
        job = "secs-" + mode
        create(job, spec=spec)
        if mode == "asp":  # worker 0 runs ahead; worker 1 is the slowest
            for c in range(4):
                push(job, 0, c, checkpoint=c == 2)  # worker 0 asks for checkpoint 3
            push(job, 1, 0)
            push(job, 1, 1)
        else:
            for c in range(2):
                for w in range(WORKERS):
                    push(job, w, c)
            push(job, 0, 2, checkpoint=True)  # worker 0 asks for checkpoint 3
        time.sleep(0.2)
        early = [checkpoint_ids(job, n) for n in sorted(RANGES)]
        push(job, 1, 2)  # BSP: round 2 completes (version 3); ASP: the slowest reaches clock 3
        for c in range(3, 6):
            for w in range(WORKERS):
                if not (mode == "asp" and w == 0 and c == 3):
                    push(job, w, c)
        ok = wait_checkpoint(job, 3)
        ids = [checkpoint_ids(job, n) for n in sorted(RANGES)]
        check("%s every_seconds: worker 0's flagged push of clock 2 makes both shards checkpoint "
              "at clock 3 and no other (before the cut %s, after %s)" % (mode, early, ids),
              ok and early == [[], []] and ids == [[3], [3]])
        for name in RANGES:
            servers[name]["drop"](pb.DropShardRequest(job=job), timeout=10)
    # federated: the coordinator asks in CommitRound (CommitRoundRequest.checkpoint)
    spec = ("name: fedsecs\nmodel: {type: softmax, layers: [6, 3], seed: 7}\n"
            "data: {train: {features: x, labels: y}, partition: iid}\n"
            "training: {update: fedavg, optimizer: {lr: 0.1}, federated: {rounds: 5}}\n"
            "cluster: {servers: 2}\ncheckpoint: {every_seconds: 3600, keep: 5}\n")
    job = "fedsecs"
    create(job, spec=spec)
    commit = {n: servers[n]["ch"].unary_unary(
        "/pando.v1.ParameterServer/CommitRound",
        request_serializer=pb.CommitRoundRequest.SerializeToString,
        response_deserializer=pb.CommitRoundResponse.FromString) for n in RANGES}
    for rnd in (1, 2, 3):
        for name, (begin, end) in RANGES.items():
            t = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[end - begin],
                          data=gradient(0, rnd)[begin:end].tobytes())
            servers[name]["push"](pb.PushRequest(job=job, begin=begin, end=end, clock=rnd,
                                                 device="d0", weight=4, gradient=t), timeout=10)
            commit[name](pb.CommitRoundRequest(job=job, round=rnd, devices=["d0"],
                                               checkpoint=rnd == 2), timeout=10)
    ok = wait_checkpoint(job, 2)
    time.sleep(0.2)
    ids = [checkpoint_ids(job, n) for n in sorted(RANGES)]
    check("federated every_seconds: the CommitRound that asks (round 2 of 3) makes both shards "
          "checkpoint its 2 committed rounds, and no other commit does (%s)" % ids,
          ok and ids == [[2], [2]])
    for name in RANGES:
        servers[name]["drop"](pb.DropShardRequest(job=job), timeout=10)


ASYNC_CLOCKS = 5  # per shard, coordinate w * ASYNC_CLOCKS + c of its keys is the ledger
ASYNC_TRIALS = 10
ASYNC_SPECS = {
    "asp": LEDGER_SPEC.replace("update: bsp", "update: asp")
                      .replace("every_clocks: 2, keep: 2", "every_clocks: 1, keep: 2"),
    "ssp": LEDGER_SPEC.replace("update: bsp", "update: ssp, staleness: 2")
                      .replace("every_clocks: 2, keep: 2", "every_clocks: 1, keep: 2"),
}


def async_gradient(worker, clock):
    """-1 at coordinate w * ASYNC_CLOCKS + c of each shard's keys and zero
    elsewhere: ASP and SSP apply each gradient as it comes (sgd, lr 1), so
    each shard's ledger counts the applications of its own (worker, clock)."""
    g = np.zeros(KEYS, dtype="<f4")
    for begin, _ in RANGES.values():
        g[begin + worker * ASYNC_CLOCKS + clock] = -1
    return g


def async_trial(mode, trial, rng, stats):
    """One ASP or SSP job with 1 or 2 kills -9 of a server at random points.
    The workers run at their own pace (a random one pushes next; under SSP
    one may be at most `staleness` clocks ahead of the slowest, as its pull
    would wait), each pushing its clock to both shards in a random order
    before the next. A roll back restores every shard to a checkpoint taken
    at the slowest worker's clock c, with the later gradients of faster
    workers it held; the workers redo from c. Returns the applied counts."""
    job, spec = "%s-ledger-%d" % (mode, trial), ASYNC_SPECS[mode]
    create(job, spec=spec)
    init = values(job, 0)
    total = WORKERS * ASYNC_CLOCKS * len(RANGES)
    kills = set(rng.sample(range(1, total), rng.choice([1, 2])))
    acked, attempt, step = set(), 0, 0
    at = [0] * WORKERS  # each worker's clock
    todo = [[] for _ in range(WORKERS)]  # the shards it still pushes its clock to
    while min(at) < ASYNC_CLOCKS:
        ready = [w for w in range(WORKERS) if at[w] < ASYNC_CLOCKS and
                 (mode == "asp" or at[w] - min(at) <= 2)]
        w = rng.choice(ready)
        if not todo[w]:
            todo[w] = rng.sample(sorted(RANGES), len(RANGES))
        step += 1
        if step in kills:
            kills.discard(step)
            slowest = min(at)
            if rng.random() < 0.5 and slowest >= 1:  # once the slowest clock's checkpoint is durable
                wait_checkpoint(job, slowest)
            kill9(rng.choice(sorted(RANGES)))
            start([n for n in RANGES if servers[n]["proc"].poll() is not None][0])
            attempt += 1
            cut = roll_back(job, attempt, spec)
            stats["kills"] += 1
            stats["cuts"].append((cut, tuple(at)))
            try:  # a straggler of the old attempt
                push(job, w, at[w], attempt - 1, None, async_gradient(w, at[w]))
                stats["straggler_applied"] += 1
            except grpc.RpcError as e:
                stats["straggler_aborted"] += e.code() == grpc.StatusCode.ABORTED
            inside = sorted(a for a in acked if a[2] < cut)
            for name, v, c in rng.sample(inside, min(3, len(inside))):  # retried across the crash
                stats["retried"] += 1
                stats["retried_dup"] += push(job, v, c, attempt, name,
                                             async_gradient(v, c))[0].duplicate
            at = [cut] * WORKERS  # every worker redoes from the checkpoint's clock
            todo = [[] for _ in range(WORKERS)]
            continue
        name = todo[w].pop()
        r = push(job, w, at[w], attempt, name, async_gradient(w, at[w]))[0]
        if r.duplicate:
            # only what a shard took before, and kept in its checkpoint
            stats["redo_dup"] += 1
            stats["unexpected_duplicates"] += (name, w, at[w]) not in acked
        acked.add((name, w, at[w]))
        if not todo[w]:
            at[w] += 1
    final = values(job, ASYNC_CLOCKS)
    for name in RANGES:
        servers[name]["drop"](pb.DropShardRequest(job=job), timeout=10)
    return final.astype(np.float64) - init.astype(np.float64)


def async_ledger(mode):
    seed = int(os.environ.get("PANDO_LEDGER_SEED", str(int(time.time()) % 100000)))
    print("# %s ledger: %d trials, seed %d (PANDO_LEDGER_SEED)" % (mode, ASYNC_TRIALS, seed),
          flush=True)
    rng = random.Random(seed + (2 if mode == "asp" else 3))
    stats = {"kills": 0, "cuts": [], "unexpected_duplicates": 0, "straggler_applied": 0,
             "straggler_aborted": 0, "retried": 0, "retried_dup": 0, "redo_dup": 0}
    want = np.zeros(KEYS)
    for begin, _ in RANGES.values():
        want[begin:begin + WORKERS * ASYNC_CLOCKS] = 1
    wrong = []
    for trial in range(1, ASYNC_TRIALS + 1):
        c = np.round(async_trial(mode, trial, rng, stats), 3)
        if not np.array_equal(c, want):
            wrong.append((trial, [(k, c[k]) for k in range(KEYS) if c[k] != want[k]]))
    check("%s ledger: %d kills -9 over %d jobs, rolled back to clocks (cut, workers' clocks) %s" %
          (mode, stats["kills"], ASYNC_TRIALS, stats["cuts"]), stats["kills"] >= ASYNC_TRIALS)
    check("%s ledger: every (shard, worker, clock) update is applied exactly once after the roll "
          "backs, %d redone pushes a shard held already taken for duplicates%s" %
          (mode, stats["redo_dup"],
           "" if not wrong else " (job, [(coordinate, times)]: %s)" % wrong[:3]), not wrong)
    check("%s ledger: no push a shard had not taken before was a duplicate (%d)" %
          (mode, stats["unexpected_duplicates"]), stats["unexpected_duplicates"] == 0)
    check("%s ledger: every straggler's push of the old attempt was ABORTED (%d of %d)" %
          (mode, stats["straggler_aborted"], stats["kills"]),
          stats["straggler_aborted"] == stats["kills"] and stats["straggler_applied"] == 0)
    check("%s ledger: acknowledged pushes inside the checkpoint, retried, are duplicates (%d of %d)"
          % (mode, stats["retried_dup"], stats["retried"]),
          stats["retried_dup"] == stats["retried"])


TORN_SPEC = """
name: torn
model: {type: softmax, layers: [999, 500], seed: 3}
data: {train: {features: x, labels: y}}
training: {epochs: 1, batch_size: 2, update: bsp, optimizer: {type: sgd, lr: 1.0}}
cluster: {servers: 1, workers: 1}
checkpoint: {every_clocks: 1, keep: 2}
"""
TORN_KEYS = 999 * 500 + 500
TORN_TRIALS = 100


def torn_trial(trial, rng, stats):
    """One shard killed while checkpointing; returns a failure or None."""
    job, a = "torn-%d" % trial, servers["a"]
    a["create"](pb.CreateShardRequest(job=job, spec_yaml=TORN_SPEC, begin=0, end=TORN_KEYS,
                                      num_workers=1, min_partition_rows=4), timeout=10)

    def pull(clock):
        r = a["pull"](pb.PullRequest(job=job, begin=0, end=TORN_KEYS, worker=0, clock=clock),
                      timeout=10)
        return np.frombuffer(r.values.data, dtype="<f4")
    model = pull(0).copy()
    expected = {0: model.tobytes()}
    pushes = rng.randint(2, 3)
    for c in range(pushes):
        g = np.full(TORN_KEYS, -(c + 1) * 0.25, dtype="<f4")
        t = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[TORN_KEYS], data=g.tobytes())
        a["push"](pb.PushRequest(job=job, begin=0, end=TORN_KEYS, worker=0, clock=c, gradient=t),
                  timeout=10)
        model = (model - g).astype("<f4")  # sgd, lr 1, one worker: x - g, as the server does
        expected[c + 1] = model.tobytes()
        if c + 1 < pushes:  # the checkpoints before the last are complete
            for _ in range(400):
                if newest_checkpoint(job, "a") >= c + 1:
                    break
                time.sleep(0.01)
    durable = newest_checkpoint(job, "a")
    time.sleep(rng.uniform(0, 0.008))
    kill9("a")
    folder = os.path.join(tmp, "data-a", "jobs", job)
    stats["torn"] += sum(not glob.glob(os.path.join(d, "*.manifest"))
                         for d in glob.glob(os.path.join(folder, "ckpt-*")))
    start("a")
    a = servers["a"]
    try:
        got = a["create"](pb.CreateShardRequest(
            job=job, spec_yaml=TORN_SPEC, begin=0, end=TORN_KEYS, num_workers=1,
            min_partition_rows=4, restore_checkpoint=NEWEST), timeout=10).checkpoint
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.FAILED_PRECONDITION or durable > 0:
            return "trial %d: no restore (%s) though checkpoint %d was durable" % (
                trial, e.details(), durable)
        stats["none"] += 1
        return None
    stats["restored"][got] = stats["restored"].get(got, 0) + 1
    if got < durable or got not in expected:
        return "trial %d: restored checkpoint %d, durable before the kill %d, pushed %d" % (
            trial, got, durable, pushes)
    if pull(got).tobytes() != expected[got]:
        return "trial %d: checkpoint %d does not hold the model of clock %d" % (trial, got, got)
    a["drop"](pb.DropShardRequest(job=job), timeout=10)
    return None


def torn():
    seed = int(os.environ.get("PANDO_LEDGER_SEED", str(int(time.time()) % 100000)))
    rng = random.Random(seed + 1)
    stats = {"torn": 0, "none": 0, "restored": {}}
    failures = [f for f in (torn_trial(t, rng, stats) for t in range(1, TORN_TRIALS + 1)) if f]
    print("# torn checkpoints: %d checkpoint folders without a manifest were left by the kills; "
          "restored ids: %s; no checkpoint yet: %d" %
          (stats["torn"], sorted(stats["restored"].items()), stats["none"]), flush=True)
    check("torn: after %d kills -9 while checkpointing, each restore is a complete checkpoint, "
          "never older than the one durable before the kill, holding that clock's model bit for "
          "bit%s" % (TORN_TRIALS, (": " + "; ".join(failures[:3])) if failures else ""),
          not failures)


def ledger():
    seed = int(os.environ.get("PANDO_LEDGER_SEED", str(int(time.time()) % 100000)))
    print("# ledger: %d trials, seed %d (PANDO_LEDGER_SEED)" % (LEDGER_TRIALS, seed), flush=True)
    rng = random.Random(seed)
    stats = {"kills": 0, "cuts": [], "unexpected_duplicates": 0, "straggler_applied": 0,
             "straggler_aborted": 0, "retried": 0, "retried_dup": 0}
    want = np.zeros(KEYS)
    want[:WORKERS * LEDGER_CLOCKS] = 1
    counts = []
    for trial in range(1, LEDGER_TRIALS + 1):
        delta = ledger_trial(trial, rng, stats)
        counts.append(np.round(delta, 3))
    wrong = [(t + 1, [(k, c[k]) for k in range(KEYS) if c[k] != want[k]])
             for t, c in enumerate(counts) if not np.array_equal(c, want)]
    check("ledger: %d kills -9 over %d jobs, rolled back to clocks %s" %
          (stats["kills"], LEDGER_TRIALS, stats["cuts"]),
          stats["kills"] >= LEDGER_TRIALS)
    check("ledger: every update is applied exactly once after the roll backs%s" %
          ("" if not wrong else " (job, [(coordinate, times)]: %s)" % wrong[:3]), not wrong)
    check("ledger: no first push of an update was taken for a duplicate (%d)" %
          stats["unexpected_duplicates"], stats["unexpected_duplicates"] == 0)
    check("ledger: every straggler's push of the old attempt was ABORTED (%d of %d)" %
          (stats["straggler_aborted"], stats["kills"]),
          stats["straggler_aborted"] == stats["kills"] and stats["straggler_applied"] == 0)
    check("ledger: acknowledged pushes inside the checkpoint, retried, are duplicates (%d of %d)" %
          (stats["retried_dup"], stats["retried"]), stats["retried_dup"] == stats["retried"])


try:
    start("a")
    start("b")

    # The undisturbed run.
    create("ref-1")
    for c in range(CLOCKS):
        for w in range(WORKERS):
            push("ref-1", w, c)
        if c == 3:
            ref4 = values("ref-1", 4)
    ref_final = values("ref-1", CLOCKS)

    # The run with a crash: clocks 0..4, a checkpoint at 4, then worker 0's
    # push of clock 5 is acknowledged by both servers and server a dies.
    create("rec-1")
    for c in range(5):
        for w in range(WORKERS):
            push("rec-1", w, c)
    check("both servers report checkpoint 4 durable", wait_checkpoint("rec-1", 4))
    acked = push("rec-1", 0, 5)
    check("worker 0's push of clock 5 is acknowledged", all(not r.duplicate for r in acked))
    kill9("a")
    check("server a was killed with SIGKILL", servers["a"]["proc"].returncode == -signal.SIGKILL)
    ckpts = sorted(os.path.basename(d) for d in
                   glob.glob(os.path.join(tmp, "data-a", "jobs", "rec-1", "ckpt-*")))
    check("keep: 2 leaves checkpoints 2 and 4 on server a's disk (%s)" % ckpts,
          ckpts == ["ckpt-00000002", "ckpt-00000004"])

    start("a")  # the same name and data_dir, as a StatefulSet pod comes back
    cut = min(newest_checkpoint("rec-1", "b"), 4)  # what b holds and a had durable
    restored = create("rec-1", restore=cut, attempt=1)
    check("both shards roll back to checkpoint 4 (%s)" % restored,
          restored == {"a": 4, "b": 4})
    # worker 1 of attempt 0 had not heard of the roll back: its push of
    # clock 4 to server b (rolled back in place) must not land
    try:
        push("rec-1", 1, 4, attempt=0, only="b")
        code, msg = grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        code, msg = e.code(), e.details()
    check("a straggler's push of attempt 0 after the roll back is ABORTED, naming the attempts "
          "(%s)" % msg, code == grpc.StatusCode.ABORTED and "attempt 0 is over" in msg
          and "runs attempt 1" in msg)
    check("the rolled back model is the undisturbed run's model of clock 4, bit for bit",
          values("rec-1", 4).tobytes() == ref4.tobytes() and not np.array_equal(ref4, ref_final))
    check("a retried push of clock 3 (in the checkpoint) is a duplicate",
          all(r.duplicate for r in push("rec-1", 1, 3, attempt=1)))
    for c in range(4, CLOCKS):  # the workers redo the clocks since the checkpoint
        for w in range(WORKERS):
            push("rec-1", w, c, attempt=1)
    final = values("rec-1", CLOCKS)
    check("after the crash and roll back the parameters equal the undisturbed run bit for bit",
          final.tobytes() == ref_final.tobytes())

    # A flipped byte in server a's newest checkpoint (10): refused, 8 used.
    check("checkpoint 10 is durable on both servers", wait_checkpoint("rec-1", 10))
    kill9("a")
    data = glob.glob(os.path.join(tmp, "data-a", "jobs", "rec-1", "ckpt-00000010", "*.data"))
    check("checkpoint 10 has a data file", len(data) == 1)
    with open(data[0], "r+b") as f:
        f.seek(200)
        b = f.read(1)
        f.seek(200)
        f.write(bytes([b[0] ^ 0x10]))
    start("a")
    restored = create("rec-1", restore=10, attempt=2)
    log = open(os.path.join(tmp, "a.log")).read()
    check("the damaged checkpoint is refused by its checksum and named in the log",
          "checkpoint 10 of job rec-1 refused" in log and "checksum mismatch" in log)
    check("server a restores the older checkpoint 8 instead (%s)" % restored, restored["a"] == 8)

    # A job id that would name a folder outside the data_dir is refused.
    try:
        servers["b"]["create"](pb.CreateShardRequest(
            job="../../escape", spec_yaml=SPEC, begin=0, end=KEYS, num_workers=WORKERS,
            min_partition_rows=4), timeout=10)
        code, msg = grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        code, msg = e.code(), e.details()
    check("a job id with '..' and '/' is refused when it would be a checkpoint folder (%s)" % msg,
          code == grpc.StatusCode.INVALID_ARGUMENT and "cannot name a checkpoint folder" in msg
          and not os.path.exists(os.path.join(tmp, "escape")))

    every_seconds()
    ledger()
    async_ledger("asp")
    async_ledger("ssp")
    torn()
finally:
    for s in servers.values():
        if s["proc"].poll() is None:
            s["proc"].terminate()
            s["proc"].wait(timeout=10)
        s["log"].close()
    if failed:
        for name in servers:
            print("## %s.log\n%s" % (name, open(os.path.join(tmp, name + ".log")).read()),
                  file=sys.stderr)
    else:
        shutil.rmtree(tmp)
sys.exit(1 if failed else 0)
