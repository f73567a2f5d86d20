"""An independent client (Python grpcio + messages generated from proto/)
drives a real pando-ps: create a shard, pull, push, errors, retried push,
health, unknown methods and malformed messages. Proves wire compatibility."""
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
import health_pb2  # noqa: E402  (grpc.health.v1, generated from Debian's grpc-proto)

failed = 0


def check(desc, cond):
    global failed
    print(("ok - " if cond else "FAIL - ") + desc, flush=True)
    failed += 0 if cond else 1


def code_of(fn, *args):
    try:
        fn(*args)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


SPEC = """
name: pyclient
model: {type: softmax, layers: [6, 3], seed: 7}
data: {train: {features: x, labels: y}}
training: {epochs: 1, batch_size: 2, update: asp, optimizer: {type: sgd, lr: 0.5}}
cluster: {servers: 1, workers: 2}
"""
KEYS = 6 * 3 + 3

tmp = tempfile.mkdtemp(prefix="pando-py-")
port_file = os.path.join(tmp, "ps.port")
log = open(os.path.join(tmp, "ps.log"), "w")
ps = subprocess.Popen([os.path.join(BUILD, "bin", "pando-ps"), "--listen", "127.0.0.1:0",
                       "--metrics-listen", "",
                       "--port-file", port_file] + pdtls.flags("pando-ps"), stdout=log, stderr=log)
try:
    for _ in range(100):
        if os.path.exists(port_file) and open(port_file).read().strip():
            break
        time.sleep(0.1)
    addr = "127.0.0.1:" + open(port_file).read().strip()
    ch = pdtls.channel(addr)

    def rpc(name, req, resp, service="pando.v1.ParameterServer"):
        return ch.unary_unary("/%s/%s" % (service, name), request_serializer=req.SerializeToString,
                              response_deserializer=resp.FromString)

    create = rpc("CreateShard", pb.CreateShardRequest, pb.CreateShardResponse)
    pull = rpc("Pull", pb.PullRequest, pb.PullResponse)
    push = rpc("Push", pb.PushRequest, pb.PushResponse)
    health = ch.unary_unary("/grpc.health.v1.Health/Check",
                            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                            response_deserializer=health_pb2.HealthCheckResponse.FromString)

    h = health(health_pb2.HealthCheckRequest(service=""), timeout=5)
    check("health answers SERVING", h.status == health_pb2.HealthCheckResponse.SERVING)
    h = health(health_pb2.HealthCheckRequest(service="pando.v1.ParameterServer"), timeout=5)
    check("health of the ParameterServer service answers SERVING",
          h.status == health_pb2.HealthCheckResponse.SERVING)
    code, _ = code_of(health, health_pb2.HealthCheckRequest(service="nope"))
    check("health of an unknown service is NOT_FOUND", code == grpc.StatusCode.NOT_FOUND)

    r = create(pb.CreateShardRequest(job="j1", spec_yaml=SPEC, begin=0, end=KEYS, num_workers=2))
    check("CreateShard holds %d keys" % KEYS, r.keys == KEYS)
    r = create(pb.CreateShardRequest(job="j1", spec_yaml=SPEC, begin=0, end=KEYS, num_workers=2))
    check("a repeated CreateShard of the same request is OK", r.keys == KEYS)
    code, msg = code_of(create, pb.CreateShardRequest(job="j1", spec_yaml=SPEC, begin=0, end=KEYS,
                                                      num_workers=3))
    check("a CreateShard of the job with other num_workers is ALREADY_EXISTS (%s)" % msg,
          code == grpc.StatusCode.ALREADY_EXISTS and "num_workers 2, not 3" in msg)
    code, msg = code_of(create, pb.CreateShardRequest(job="j1", spec_yaml=SPEC + "\n# changed\n",
                                                      begin=0, end=KEYS, num_workers=2))
    check("a CreateShard of the job with another spec is ALREADY_EXISTS (%s)" % msg,
          code == grpc.StatusCode.ALREADY_EXISTS and "another spec_yaml" in msg)
    code, msg = code_of(pull, pb.PullRequest(job="j1", begin=0, end=KEYS, worker=0, clock=-1))
    check("a pull at a negative clock is INVALID_ARGUMENT (%s)" % msg,
          code == grpc.StatusCode.INVALID_ARGUMENT and "clock: must be >= 0, got -1" in msg)

    p = pull(pb.PullRequest(job="j1", begin=0, end=KEYS, worker=0, clock=0), timeout=5)
    x0 = np.frombuffer(p.values.data, dtype="<f4")
    check("pull returns a float32 tensor of shape [%d]" % KEYS,
          p.values.dtype == pb.DTYPE_FLOAT32 and list(p.values.shape) == [KEYS] and x0.size == KEYS)
    check("weights are initialised (non-zero), biases are zero",
          np.count_nonzero(x0[:18]) == 18 and not x0[18:].any())

    g = np.arange(KEYS, dtype="<f4") - 10
    t = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[KEYS], data=g.tobytes())
    r = push(pb.PushRequest(job="j1", begin=0, end=KEYS, worker=1, clock=0, gradient=t), timeout=5)
    check("push is applied (not a duplicate), version 1", not r.duplicate and r.version == 1)
    x1 = np.frombuffer(pull(pb.PullRequest(job="j1", begin=0, end=KEYS, worker=0)).values.data,
                       dtype="<f4")
    check("SGD step applied exactly: x1 = x0 - lr * g", np.array_equal(x1, (x0 - np.float32(0.5) * g)))

    r = push(pb.PushRequest(job="j1", begin=0, end=KEYS, worker=1, clock=0, gradient=t), timeout=5)
    x2 = np.frombuffer(pull(pb.PullRequest(job="j1", begin=0, end=KEYS, worker=0)).values.data,
                       dtype="<f4")
    check("a retried push (same worker and clock) is acknowledged as duplicate", r.duplicate)
    check("a retried push is applied once", np.array_equal(x1, x2))

    sub = pull(pb.PullRequest(job="j1", begin=5, end=9, worker=0), timeout=5)
    check("pull of a sub-range [5, 9)",
          np.array_equal(np.frombuffer(sub.values.data, dtype="<f4"), x2[5:9]))

    code, msg = code_of(pull, pb.PullRequest(job="j1", begin=0, end=KEYS + 1, worker=0))
    check("out-of-range pull is INVALID_ARGUMENT (%s)" % msg,
          code == grpc.StatusCode.INVALID_ARGUMENT and "outside" in msg)
    bad = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[3], data=g[:3].tobytes())
    code, msg = code_of(push, pb.PushRequest(job="j1", begin=0, end=4, worker=0, clock=0,
                                             gradient=bad))
    check("length mismatch is INVALID_ARGUMENT (%s)" % msg,
          code == grpc.StatusCode.INVALID_ARGUMENT and "shape [4]" in msg)
    untyped = pb.Tensor(shape=[4], data=g[:4].tobytes())
    code, msg = code_of(push, pb.PushRequest(job="j1", begin=0, end=4, worker=0, clock=0,
                                             gradient=untyped))
    check("a gradient without dtype names it (%s)" % msg,
          code == grpc.StatusCode.INVALID_ARGUMENT and "got dtype UNSPECIFIED (0)" in msg)
    code, msg = code_of(pull, pb.PullRequest(job="nope", begin=0, end=1))
    check("unknown job is NOT_FOUND (%s)" % msg, code == grpc.StatusCode.NOT_FOUND and "nope" in msg)
    code, msg = code_of(pull, pb.PullRequest(job="j1", begin=0, end=1, worker=5))
    check("unknown worker rank is INVALID_ARGUMENT (%s)" % msg,
          code == grpc.StatusCode.INVALID_ARGUMENT and "worker 5" in msg)
    raw = ch.unary_unary("/pando.v1.ParameterServer/Push")
    code, msg = code_of(raw, b"\x0a\xff\xff\xff\x0f")
    check("a malformed message is INVALID_ARGUMENT (%s)" % msg,
          code == grpc.StatusCode.INVALID_ARGUMENT)
    code, msg = code_of(create, pb.CreateShardRequest(job="j2", spec_yaml="name: [", begin=0, end=1,
                                                      num_workers=1))
    check("CreateShard with a bad spec names the problem (%s)" % msg,
          code == grpc.StatusCode.INVALID_ARGUMENT and "spec_yaml" in msg)
    unknown = ch.unary_unary("/pando.v1.ParameterServer/Nope")
    code, _ = code_of(unknown, b"")
    check("an unknown method is UNIMPLEMENTED", code == grpc.StatusCode.UNIMPLEMENTED)
    x3 = np.frombuffer(pull(pb.PullRequest(job="j1", begin=0, end=KEYS)).values.data, dtype="<f4")
    check("bad requests changed nothing and the server still serves", np.array_equal(x2, x3))

    ps.terminate()
    rc = ps.wait(timeout=10)
    check("SIGTERM stops the server cleanly (exit 0)", rc == 0)
finally:
    if ps.poll() is None:
        ps.kill()
    log.close()
    if failed:
        print(open(os.path.join(tmp, "ps.log")).read(), file=sys.stderr)
sys.exit(1 if failed else 0)
