"""Federated aggregation on M = 3 sharded servers, driven from Python grpcio
(the devices and the coordinator are played by this script): devices with
unequal n_k pull theta_t range-based from every shard and push
theta_k - theta_t in chunks; CommitRound with the same set on every shard
makes each shard hold sum n_k theta_k / sum n_k of exactly that set (1e-6);
late pushes and pulls are refused and counted; an abandoned round leaves the
model unchanged bit for bit; a retried CommitRound applies nothing twice."""
import os
import subprocess
import sys
import tempfile

import grpc
import numpy as np

import fedlib
import pdtls  # noqa: E402  (PANDO_TEST_TLS: TLS and the token)
from fedlib import BUILD, check, code_of, pb, wait_file  # noqa: E402


SPEC = """
name: fedshards
model: {type: softmax, layers: [20, 3], seed: 5}
data: {train: {features: x, labels: y}}
training:
  update: fedavg
  optimizer: {type: sgd, lr: 0.1}
  federated: {rounds: 3, clients_per_round: 3}
cluster: {servers: 3}
"""
KEYS = 20 * 3 + 3
RANGES = [(0, 21), (21, 42), (42, KEYS)]

tmp = tempfile.mkdtemp(prefix="pando-fed-")
procs, logs, stubs = [], [], []
try:
    for i in range(3):
        port_file = os.path.join(tmp, "ps%d.port" % i)
        log = open(os.path.join(tmp, "ps%d.log" % i), "w")
        logs.append(log)
        procs.append(subprocess.Popen([os.path.join(BUILD, "bin", "pando-ps"), "--listen",
                                       "127.0.0.1:0", "--metrics-listen", "", "--port-file",
                                       port_file, "--name", "ps-%d" % i] + pdtls.flags("pando-ps"), stdout=log, stderr=log))
    for i in range(3):
        ch = pdtls.channel("127.0.0.1:" + wait_file(os.path.join(tmp, "ps%d.port" % i)))

        def rpc(name, req, resp, ch=ch):
            return ch.unary_unary("/pando.v1.ParameterServer/" + name,
                                  request_serializer=req.SerializeToString,
                                  response_deserializer=resp.FromString)
        stubs.append({"create": rpc("CreateShard", pb.CreateShardRequest, pb.CreateShardResponse),
                      "pull": rpc("Pull", pb.PullRequest, pb.PullResponse),
                      "push": rpc("Push", pb.PushRequest, pb.PushResponse),
                      "commit": rpc("CommitRound", pb.CommitRoundRequest, pb.CommitRoundResponse),
                      "stats": rpc("GetStats", pb.StatsRequest, pb.StatsResponse)})
    for s, (b, e) in zip(stubs, RANGES):
        s["create"](pb.CreateShardRequest(job="fed-1", spec_yaml=SPEC, begin=b, end=e,
                                          num_workers=1), timeout=5)

    def pull_model(rnd):
        parts = []
        for s, (b, e) in zip(stubs, RANGES):
            r = s["pull"](pb.PullRequest(job="fed-1", begin=b, end=e, clock=rnd), timeout=5)
            parts.append(np.frombuffer(r.values.data, dtype="<f4"))
        return np.concatenate(parts)

    def push_update(device, rnd, n_k, delta, shards=(0, 1, 2)):
        """range-based: two chunks per shard, the second first"""
        results = []
        for i in shards:
            b, e = RANGES[i]
            mid = (b + e) // 2
            for lo, hi in ((mid, e), (b, mid)):
                t = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[hi - lo],
                              data=delta[lo:hi].astype("<f4").tobytes())
                results.append(stubs[i]["push"](pb.PushRequest(
                    job="fed-1", begin=lo, end=hi, clock=rnd, device=device, weight=n_k,
                    gradient=t), timeout=5))
        return results

    def commit(rnd, devices, abandon=False):
        return [s["commit"](pb.CommitRoundRequest(job="fed-1", round=rnd, devices=devices,
                                                   abandon=abandon), timeout=5) for s in stubs]

    rng = np.random.default_rng(3)
    theta0 = pull_model(1)
    check("round 1: every shard answers the pull of theta_0 (%d keys)" % theta0.size,
          theta0.size == KEYS and np.count_nonzero(theta0) > 0)
    n_k = {"dev-a": 600.0, "dev-b": 37.0, "dev-c": 1234.0, "dev-d": 10.0}
    theta_k = {d: (theta0 + rng.normal(0, 0.5, KEYS)).astype("<f4") for d in n_k}
    for d in ("dev-a", "dev-b", "dev-c"):
        r = push_update(d, 1, n_k[d], theta_k[d] - theta0)
        ok = all(not x.dropped and not x.duplicate for x in r)
    check("devices push their updates range-based to every shard", ok)
    r = push_update("dev-a", 1, n_k["dev-a"], theta_k["dev-a"] - theta0, shards=(1,))
    check("a retried chunk is acknowledged as a duplicate", all(x.duplicate for x in r))
    push_update("dev-d", 1, n_k["dev-d"], theta_k["dev-d"] - theta0, shards=(0, 1))

    res = commit(1, ["dev-c", "dev-a"])
    check("CommitRound on every shard commits the same 2 devices (weights %s)"
          % [x.weight for x in res],
          all(x.committed == 2 and x.weight == 1834 and x.version == 1 for x in res))
    check("each shard discards the buffered updates outside the set (%s)"
          % [x.discarded for x in res],
          [x.discarded for x in res] == [2, 2, 1])
    theta1 = pull_model(2)
    want = (n_k["dev-a"] * theta_k["dev-a"].astype(np.float64) +
            n_k["dev-c"] * theta_k["dev-c"].astype(np.float64)) / (n_k["dev-a"] + n_k["dev-c"])
    # float32 end to end (theta_k - theta_t on the device, theta_t + the
    # average on the shard): errors of a few ulps of values of order 1,
    # measured against the largest value of the range
    for i, (b, e) in enumerate(RANGES):
        err = np.max(np.abs(theta1[b:e] - want[b:e])) / max(1.0, np.max(np.abs(want[b:e])))
        check("shard %d holds sum n_k theta_k / sum n_k of the set (max error %.2e <= 1e-6)"
              % (i, err), err <= 1e-6)

    r = push_update("dev-b", 1, n_k["dev-b"], theta_k["dev-b"] - theta0, shards=(0,))
    check("a push for a closed round is answered as dropped (late)", all(x.dropped for x in r))
    code, msg = code_of(stubs[0]["pull"], pb.PullRequest(job="fed-1", begin=0, end=21, clock=1))
    check("a pull for a closed round is FAILED_PRECONDITION (%s)" % msg,
          code == grpc.StatusCode.FAILED_PRECONDITION and "round 1 is closed" in msg)
    again = commit(1, ["dev-c", "dev-a"])
    check("a retried CommitRound answers the same and applies nothing twice",
          all(x.committed == 2 and x.version == 1 for x in again) and
          np.array_equal(pull_model(2), theta1))

    for d in ("dev-a", "dev-b"):
        push_update(d, 2, n_k[d], theta_k[d] - theta1)
    res = commit(2, [], abandon=True)
    check("an abandoned round commits nothing and discards the updates",
          all(x.committed == 0 and x.version == 1 and x.discarded == 2 for x in res))
    check("after an abandoned round the model is unchanged bit for bit",
          np.array_equal(pull_model(3), theta1))

    code, msg = code_of(stubs[0]["commit"], pb.CommitRoundRequest(job="fed-1", round=3,
                                                                  devices=["ghost"]))
    check("committing a device without an update is refused naming it (%s)" % msg,
          code == grpc.StatusCode.FAILED_PRECONDITION and "device ghost has pushed 0" in msg)
    t = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[21], data=np.zeros(21, "<f4").tobytes())
    code, msg = code_of(stubs[0]["push"], pb.PushRequest(job="fed-1", begin=0, end=21, clock=3,
                                                         gradient=t, weight=1))
    check("a federated push without a device id is INVALID_ARGUMENT (%s)" % msg,
          code == grpc.StatusCode.INVALID_ARGUMENT and "device" in msg)
    stubs[0]["create"](pb.CreateShardRequest(
        job="dc-1", spec_yaml=SPEC.replace("update: fedavg", "update: bsp").replace(
            "  federated: {rounds: 3, clients_per_round: 3}\n", "  epochs: 1\n  batch_size: 1\n")
        .replace("cluster: {servers: 3}", "cluster: {servers: 1, workers: 1}"),
        begin=0, end=KEYS, num_workers=1), timeout=5)
    code, msg = code_of(stubs[0]["commit"], pb.CommitRoundRequest(job="dc-1", round=1,
                                                                  devices=["a"]))
    check("CommitRound of a data-centre job is FAILED_PRECONDITION (%s)" % msg,
          code == grpc.StatusCode.FAILED_PRECONDITION and "not federated" in msg)

    for p in procs:
        p.terminate()
    check("SIGTERM stops the servers cleanly", all(p.wait(timeout=10) == 0 for p in procs))
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
    for log in logs:
        log.close()
    if fedlib.failed:
        for i in range(3):
            print(open(os.path.join(tmp, "ps%d.log" % i)).read(), file=sys.stderr)
sys.exit(1 if fedlib.failed else 0)
