"""Hostile clients for the integration tests: raw bytes and absurd messages
sent to a real daemon with Python's grpcio, each case checked for a clear
status, a daemon that still answers health, and nothing changed.

  /usr/bin/python3 tests/integration/hostile.py ps ADDRESS PID METRICS_PORT
  /usr/bin/python3 tests/integration/hostile.py coordinator ADDRESS PID TAKEN_NAME

prints "ok - ..." / "FAIL - ..." lines (the test runner counts them) and
exits 1 on any failure. ADDRESS is a pando-ps or pando-coordinator, PID its
process (for its memory), TAKEN_NAME the name of a node that is alive."""
import os
import random
import re
import sys
import time
import urllib.request

import grpc
import numpy as np

BUILD = os.environ.get("BUILD", "build")
sys.path.insert(0, os.path.join(BUILD, "gen", "python"))
import pando_pb2 as pb  # noqa: E402
import pdtls  # noqa: E402  (PANDO_TEST_TLS: TLS and the token)
import health_pb2  # noqa: E402

failed = 0
MIB = 1 << 20
# The wire limits of proto/pando.proto.
MAX_TENSOR = 64 * MIB


def check(desc, cond):
    global failed
    print(("ok - " if cond else "FAIL - ") + desc, flush=True)
    failed += 0 if cond else 1


# AddressSanitizer keeps freed memory in its quarantine and malloc_trim does
# not reach its allocator, so the RSS bounds (a property of the daemons'
# glibc allocator) are checked on normal and UBSan builds only.
ASAN = "address" in os.environ.get("SANITIZE", "")


def check_memory(desc, cond):
    if ASAN:
        print("# skipped under AddressSanitizer (its quarantine holds freed memory): " + desc,
              flush=True)
    else:
        check(desc, cond)


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return -1.0


class Daemon:
    """A channel to one daemon with raw (bytes in, bytes out) methods."""

    def __init__(self, address, service):
        opts = [("grpc.max_send_message_length", 512 * MIB),
                ("grpc.max_receive_message_length", 512 * MIB)]
        self.ch = pdtls.channel(address, options=opts)
        self.service = service

    def raw(self, method, data, timeout=10):
        """Sends `data` as the request; returns (code, details, response bytes)."""
        fn = self.ch.unary_unary("/%s/%s" % (self.service, method))
        try:
            return grpc.StatusCode.OK, "", fn(data, timeout=timeout)
        except grpc.RpcError as e:
            return e.code(), e.details() or "", None

    def call(self, method, req, resp_type, timeout=10):
        code, details, data = self.raw(method, req.SerializeToString(), timeout)
        return code, details, (resp_type.FromString(data) if data is not None else None)

    def healthy(self):
        """True when Health/Check answers SERVING within 1 s."""
        fn = self.ch.unary_unary("/grpc.health.v1.Health/Check",
                                 request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                                 response_deserializer=health_pb2.HealthCheckResponse.FromString)
        try:
            r = fn(health_pb2.HealthCheckRequest(service=""), timeout=1)
            return r.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def field(num, wire_type, payload=b"", value=None):
    """One protobuf field: a varint `value` or a LEN `payload`."""
    tag = varint(num << 3 | wire_type)
    if wire_type == 0:
        return tag + varint(value)
    return tag + varint(len(payload)) + payload


VICTIM_SPEC = """
name: victim
model: {type: softmax, layers: [6, 3], seed: 7}
data: {train: {features: x, labels: y}}
training: {epochs: 1, batch_size: 2, update: asp, optimizer: {type: sgd, lr: 0.5}}
cluster: {servers: 1, workers: 1}
"""
VICTIM_KEYS = 6 * 3 + 3


def hostile_ps(address, pid, metrics_port):
    ps = Daemon(address, "pando.v1.ParameterServer")
    code, msg, r = ps.call("CreateShard", pb.CreateShardRequest(
        job="victim-1", spec_yaml=VICTIM_SPEC, begin=0, end=VICTIM_KEYS, num_workers=1),
        pb.CreateShardResponse)
    check("a victim shard is created (%s %s)" % (code, msg), code == grpc.StatusCode.OK)

    def victim_values():
        c, _, p = ps.call("Pull", pb.PullRequest(job="victim-1", begin=0, end=VICTIM_KEYS),
                          pb.PullResponse)
        return np.frombuffer(p.values.data, dtype="<f4").copy() if c == grpc.StatusCode.OK else None

    x0 = victim_values()
    check("the victim's parameters are read", x0 is not None and x0.size == VICTIM_KEYS)

    def after(desc, code, msg, want):
        check("%s: %s (%s)" % (desc, want.name, msg[:160]), code == want)
        check("%s: the server answers health within 1 s" % desc, ps.healthy())

    # Issue 14's 15-byte Push: a one-byte tensor whose data length (2^56)
    # lies past the tensor's end.
    push15 = bytes([0x0A, 0x01, ord("j"), 0x32, 0x01, 0x1A]) + varint(1 << 56)
    check("the regression message is 15 bytes", len(push15) == 15)
    code, msg, _ = ps.raw("Push", push15)
    after("the 15-byte Push", code, msg, grpc.StatusCode.INVALID_ARGUMENT)
    check("its refusal names the tensor (%s)" % msg, "tensor" in msg)

    # Lengths that fit the message but not their enclosing field, at every
    # level: shape, data and unknown fields of the tensor; huge lengths.
    cases = {
        "packed shape past the tensor": field(6, 2, bytes([0x12]) + varint(8)) + b"\x01" * 8,
        "data past the tensor": field(6, 2, bytes([0x1A]) + varint(8)) + b"\x01" * 8,
        "unknown field past the tensor": field(6, 2, bytes([0x4A]) + varint(8)) + b"\x01" * 8,
        "tensor of 2^63 bytes": varint(6 << 3 | 2) + varint(1 << 63) + b"\x1a\x01x",
        "data of 2^64-1 bytes": field(6, 2, bytes([0x1A]) + varint((1 << 64) - 1) + b"x"),
        "job of 2^62 bytes": varint(1 << 3 | 2) + varint(1 << 62) + b"abc",
        "varint of 11 bytes": b"\x10" + b"\xff" * 10 + b"\x01",
        "a group wire type": b"\x0b\x0c",
    }
    for desc, data in cases.items():
        code, msg, _ = ps.raw("Push", data)
        after("Push with " + desc, code, msg, grpc.StatusCode.INVALID_ARGUMENT)
        code, msg, _ = ps.raw("Pull", data)  # field 6 is unknown to a Pull: may be skipped
        check("Pull with %s: %s (%s)" % (desc, code.name, msg[:120]),
              code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND))

    # 3,000 mutations of a valid push (to a job this server does not hold):
    # every answer a clear refusal, never a dropped connection.
    base = pb.PushRequest(job="not-a-job", begin=0, end=4, worker=0, clock=3,
                          gradient=pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[4],
                                             data=np.ones(4, "<f4").tobytes())).SerializeToString()
    rng = random.Random(14)
    codes = {}
    for _ in range(3000):
        m = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(m)) if m else 0
            op = rng.randrange(4)
            if op == 0 and m:
                m[at] = rng.randrange(256)
            elif op == 1:
                m[at:at] = varint(rng.choice([1 << 56, 1 << 63, 0x7FFFFFFF, rng.randrange(1 << 20)]))
            elif op == 2 and m:
                del m[at]
            else:
                m[at:at] = bytes([rng.choice([0x12, 0x1A, 0x32, 0x0A, 0x4A])])
        code, _, _ = ps.raw(rng.choice(["Push", "Pull"]), bytes(m))
        codes[code.name] = codes.get(code.name, 0) + 1
    clear = {"INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION"}
    check("3000 mutated Push/Pull messages get clear statuses only (%s)" % codes,
          set(codes) <= clear)
    check("after the mutations the server answers health within 1 s", ps.healthy())

    # Payload limits: a tensor over 64 MiB in a message gRPC still accepts,
    # and a message over the receive limit, refused before the handler.
    over = field(1, 2, b"victim-1") + field(3, 0, value=VICTIM_KEYS) + \
        field(6, 2, field(3, 2, b"\0" * (MAX_TENSOR + 4)))
    code, msg, _ = ps.raw("Push", over, timeout=30)
    after("a Push of 64 MiB + 4 bytes of data", code, msg, grpc.StatusCode.RESOURCE_EXHAUSTED)
    check("its refusal names the limit (%s)" % msg, "limit" in msg)
    huge = field(1, 2, b"victim-1") + field(6, 2, field(3, 2, b"\0" * (100 * MIB)))
    code, msg, _ = ps.raw("Push", huge, timeout=30)
    after("a Push of 100 MiB", code, msg, grpc.StatusCode.RESOURCE_EXHAUSTED)

    # Memory comes back: refused pushes of 60 MB (right size for 15M keys,
    # wrong for the victim) allocate nothing of their own, and the daemon
    # gives gRPC's receive buffers back to the system after them (pd_rpc_trim,
    # every 50 ms). Bound: within 16 MiB of the RSS before, 0.5 s after the
    # last; at most 3 messages of the 65 MiB limit above it meanwhile.
    time.sleep(0.5)
    rss0 = rss_mib(pid)
    big = pb.PushRequest(job="victim-1", begin=0, end=15 * MIB, worker=0, clock=0,
                         gradient=pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[15 * MIB],
                                            data=b"\0" * (60 * MIB))).SerializeToString()
    rss = []
    for i in range(20):
        code, msg, _ = ps.raw("Push", big, timeout=30)
        if i == 0:
            after("a 60 MiB Push outside the victim's keys", code, msg,
                  grpc.StatusCode.INVALID_ARGUMENT)
        rss.append(rss_mib(pid))
    del big
    time.sleep(0.5)
    rss1 = rss_mib(pid)
    check_memory("20 refused 60 MiB pushes: RSS %.0f MiB before, at most %.0f meanwhile, %.0f 0.5 s "
          "after (bound: within 16 MiB of before)" % (rss0, max(rss), rss1), rss1 - rss0 <= 16)
    check_memory("RSS meanwhile within 3 x 65 MiB of before", max(rss) - rss0 <= 3 * 65)

    # protobuf-c allocates a record per field: a million unknown fields in
    # one Pull (2 MB) are refused before it runs; so is a string or a spec
    # over its limit (pando/wire.h).
    flood = pb.PullRequest(job="victim-1", begin=0, end=VICTIM_KEYS).SerializeToString() + \
        field(99, 0, value=1) * 1000000
    code, msg, _ = ps.raw("Pull", flood, timeout=30)
    after("a Pull with a million unknown fields", code, msg, grpc.StatusCode.RESOURCE_EXHAUSTED)
    check("its refusal names the limit (%s)" % msg, "more than 4096 fields" in msg)
    code, msg, _ = ps.call("Pull", pb.PullRequest(job="v" * 5000, begin=0, end=1), pb.PullResponse)
    after("a Pull with a job name of 5000 bytes", code, msg, grpc.StatusCode.RESOURCE_EXHAUSTED)
    check("its refusal names the field (%s)" % msg, "PullRequest.job is 5000 bytes" in msg)
    code, msg, _ = ps.call("CreateShard", pb.CreateShardRequest(
        job="big-1", spec_yaml="#" * (2 * MIB), begin=0, end=1, num_workers=1),
        pb.CreateShardResponse)
    after("a CreateShard with a spec of 2 MiB", code, msg, grpc.StatusCode.RESOURCE_EXHAUSTED)
    check("its refusal names the field (%s)" % msg, "spec_yaml is 2097152 bytes" in msg)

    # Poison: NaN and infinity (on_nonfinite fail, the default: refused);
    # clocks no consistency model allows (far future, INT64_MAX, negative).
    def push_victim(grad, clock=0, job="victim-1"):
        return ps.call("Push", pb.PushRequest(
            job=job, begin=0, end=VICTIM_KEYS, worker=0, clock=clock,
            gradient=pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[VICTIM_KEYS],
                               data=np.asarray(grad, "<f4").tobytes())), pb.PushResponse)
    for desc, value in [("NaN", np.nan), ("+Inf", np.inf), ("-Inf", -np.inf)]:
        g = np.zeros(VICTIM_KEYS, "<f4")
        g[5] = value
        code, msg, _ = push_victim(g)
        after("a gradient with one %s" % desc, code, msg, grpc.StatusCode.INVALID_ARGUMENT)
        check("its refusal says what and where (%s)" % msg,
              "1 non-finite values" in msg and "first at key 5" in msg)
    # (a negative clock is a bad argument; a far one a bad state of the worker)
    for clock in [10 ** 15, 2 ** 63 - 1, -1]:
        want = grpc.StatusCode.INVALID_ARGUMENT if clock < 0 else grpc.StatusCode.FAILED_PRECONDITION
        code, msg, _ = push_victim(np.ones(VICTIM_KEYS, "<f4"), clock=clock)
        after("a push at clock %d" % clock, code, msg, want)
        code, msg, _ = ps.call("Pull", pb.PullRequest(job="victim-1", begin=0, end=VICTIM_KEYS,
                                                      clock=clock), pb.PullResponse)
        check("a pull at clock %d: %s (%s)" % (clock, want.name, msg), code == want)

    # Shards the server cannot hold: refused with what is needed and free,
    # not an abort (the spec is issue 14's: 795 G keys).
    huge_spec = VICTIM_SPEC.replace("layers: [6, 3]", "layers: [784, 1000000000, 10]").replace(
        "softmax", "mlp")
    keys = 784 * 10 ** 9 + 10 ** 9 + 10 ** 10 + 10
    code, msg, _ = ps.call("CreateShard", pb.CreateShardRequest(
        job="huge-1", spec_yaml=huge_spec, begin=0, end=keys, num_workers=1),
        pb.CreateShardResponse)
    after("a CreateShard of 795 G keys", code, msg, grpc.StatusCode.RESOURCE_EXHAUSTED)
    check("its refusal says what is needed and what is free (%s)" % msg,
          re.search(r"need 6065\d{3}\.\d MiB", msg) and "MiB free of its memory_limit" in msg)
    code, msg, _ = ps.call("CreateShard", pb.CreateShardRequest(
        job="many-1", spec_yaml=VICTIM_SPEC, begin=0, end=VICTIM_KEYS, num_workers=2 ** 32 - 1),
        pb.CreateShardResponse)
    after("a CreateShard for 2^32 - 1 workers", code, msg, grpc.StatusCode.RESOURCE_EXHAUSTED)

    # A job id that would end its /metrics label and add a line of its own.
    evil = 'x"} 1\nfake_metric{a="b'
    code, msg, _ = ps.call("CreateShard", pb.CreateShardRequest(
        job=evil, spec_yaml=VICTIM_SPEC, begin=0, end=VICTIM_KEYS, num_workers=1),
        pb.CreateShardResponse)
    check("a shard whose job id has quotes and a newline (%s)" % code.name,
          code == grpc.StatusCode.OK)
    push_victim(np.ones(VICTIM_KEYS, "<f4"), job=evil)
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port, timeout=5).read()
    lines = text.decode().split("\n")
    check("/metrics has no line injected by it",
          not any(line.startswith("fake_metric") for line in lines))
    check("/metrics shows it escaped",
          any('job="x\\"} 1\\nfake_metric{a=\\"b"' in line for line in lines))
    ps.call("DropShard", pb.DropShardRequest(job=evil), pb.DropShardResponse)

    x1 = victim_values()
    check("the victim's parameters are unchanged by all of it",
          x1 is not None and np.array_equal(x0, x1))
    code, _, _ = push_victim(np.ones(VICTIM_KEYS, "<f4"), clock=0)
    x2 = victim_values()
    check("the worker's honest push at clock 0 is then applied (%s)" % code.name,
          code == grpc.StatusCode.OK and x2 is not None and np.allclose(x2, x0 - 0.5))

    # on_nonfinite: skip: the push counts for its clock with a zero gradient.
    code, msg, _ = ps.call("CreateShard", pb.CreateShardRequest(
        job="skip-1", spec_yaml=VICTIM_SPEC.replace("update: asp,", "update: asp, on_nonfinite: skip,"),
        begin=0, end=VICTIM_KEYS, num_workers=1), pb.CreateShardResponse)
    check("a shard with on_nonfinite: skip is created (%s %s)" % (code.name, msg),
          code == grpc.StatusCode.OK)
    c, _, p0 = ps.call("Pull", pb.PullRequest(job="skip-1", begin=0, end=VICTIM_KEYS), pb.PullResponse)
    g = np.ones(VICTIM_KEYS, "<f4")
    g[0] = np.nan
    code, msg, r = push_victim(g, job="skip-1")
    c, _, p1 = ps.call("Pull", pb.PullRequest(job="skip-1", begin=0, end=VICTIM_KEYS), pb.PullResponse)
    check("skip: the NaN push is acknowledged and counts (version %s), nothing applied" %
          (r.version if r else None),
          code == grpc.StatusCode.OK and r.version == 1 and p0.values.data == p1.values.data)
    ps.call("DropShard", pb.DropShardRequest(job="skip-1"), pb.DropShardResponse)
    code, msg, _ = ps.call("DropShard", pb.DropShardRequest(job="victim-1"), pb.DropShardResponse)
    check("the victim shard is dropped (%s)" % code.name, code == grpc.StatusCode.OK)
    check("the server process is alive", os.path.exists("/proc/%d" % pid))


def hostile_coordinator(address, pid, taken):
    co = Daemon(address, "pando.v1.Coordinator")

    def after(desc, code, msg, want):
        check("%s: %s (%s)" % (desc, want.name, msg[:160]), code == want)
        check("%s: the coordinator answers health within 1 s" % desc, co.healthy())

    code, msg, _ = co.call("RegisterNode", pb.RegisterRequest(
        role=pb.ROLE_WORKER, address="127.0.0.1:1", name=taken), pb.RegisterResponse)
    after("RegisterNode under the name of alive node '%s'" % taken, code, msg,
          grpc.StatusCode.ALREADY_EXISTS)
    check("its refusal names the name (%s)" % msg, "'%s' is registered and alive" % taken in msg)

    code, msg, _ = co.call("SubmitJob", pb.SubmitJobRequest(spec_yaml="#" * (2 * MIB)), pb.JobStatus)
    after("a SubmitJob of 2 MiB", code, msg, grpc.StatusCode.RESOURCE_EXHAUSTED)
    # (it used to keep libyaml busy for ~45 s, and heartbeats unanswered)
    code, msg, _ = co.call("SubmitJob", pb.SubmitJobRequest(
        spec_yaml="name: a\nmodel: " + "[" * 80000 + "]" * 80000 + "\n"), pb.JobStatus)
    after("a SubmitJob of 160 KB of nested brackets", code, msg, grpc.StatusCode.INVALID_ARGUMENT)
    check("its refusal names the bound (%s)" % msg, "more than 16 deep" in msg)
    code, msg, _ = co.raw("Heartbeat", field(1, 0, value=1) + field(50, 0, value=1) * 100000)
    after("a Heartbeat with 100000 unknown fields", code, msg, grpc.StatusCode.RESOURCE_EXHAUSTED)
    code, msg, _ = co.raw("ReportProgress", varint(1 << 3 | 2) + varint(1 << 40) + b"j")
    after("a ReportProgress whose job length lies", code, msg, grpc.StatusCode.INVALID_ARGUMENT)

    # A flood of registrations without heartbeats: bounded, never a crash.
    # (As workers: jobs take idle workers in the order they registered, so a
    # later job still gets the real one; fake servers would be preferred as
    # the least loaded. Only authentication keeps fakes out: see README.)
    rss0 = rss_mib(pid)
    codes = {}
    for i in range(9000):
        code, msg, _ = co.call("RegisterNode", pb.RegisterRequest(
            role=pb.ROLE_WORKER, address="10.255.0.1:%d" % (i % 60000 + 1), name="flood-%d" % i),
            pb.RegisterResponse)
        codes[code.name] = codes.get(code.name, 0) + 1
    check("9000 fake registrations: each accepted or RESOURCE_EXHAUSTED (%s)" % codes,
          set(codes) <= {"OK", "RESOURCE_EXHAUSTED"})
    code, _, cl = co.call("Cluster", pb.ClusterRequest(), pb.ClusterResponse)
    held = len(cl.nodes) if cl else -1
    check("the registry holds at most 8192 nodes (%d; the dead are forgotten when it is full)"
          % held, code == grpc.StatusCode.OK and 0 < held <= 8192)
    check("after the flood the coordinator answers health within 1 s", co.healthy())
    check_memory("its memory grew by less than 64 MiB (%.0f -> %.0f MiB)" % (rss0, rss_mib(pid)),
          rss_mib(pid) - rss0 < 64)
    check("the coordinator process is alive", os.path.exists("/proc/%d" % pid))


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "ps":
        hostile_ps(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) == 5 and sys.argv[1] == "coordinator":
        hostile_coordinator(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
