"""An independent probe of every RPC (issue 14's "done when"): no case here
is written by hand. For each method of the ParameterServer, Coordinator and
Selector services in proto/pando.proto it builds random requests from the
method's own message descriptor (every field filled or left out at random:
extreme integers, NaN and infinities, empty, huge and odd strings, unknown
enum values, repeated fields of up to 5,000 entries, nested messages) and
byte-level mutations of them (flips, truncations, splices, random bytes),
sends them to the real daemons, and checks after each method that

  - every answer is OK or a status that refuses the request (never UNKNOWN,
    INTERNAL or DATA_LOSS: those would mean a handler failed on its input);
  - no call stalls: each answers within its deadline (calls the protocol
    lets wait, such as a Pull for a later clock, are not sent: the probe's
    job names are random, so no pull finds a shard to wait on);
  - every daemon still answers health within 1 s and is alive.

  /usr/bin/python3 tests/integration/probe.py SEED CASES NAME=ADDRESS=PID...

NAME is ps, coordinator or selector. Prints "ok - ..." / "FAIL - ..."
lines and exits 1 on a failure; a failing case's request is written to
$T_DIR/probe-NAME-METHOD.bin for replay."""
import os
import random
import struct
import sys
import time

import grpc

BUILD = os.environ.get("BUILD", "build")
sys.path.insert(0, os.path.join(BUILD, "gen", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pando_pb2 as pb  # noqa: E402
import hostile  # noqa: E402  (its Daemon: a raw channel and the health check)
from google.protobuf import descriptor as D  # noqa: E402

SERVICES = {"ps": "ParameterServer", "coordinator": "Coordinator", "selector": "Selector"}
# What a daemon may answer a request it refuses; anything else is a defect.
REFUSALS = {
    grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.ABORTED,
    grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAVAILABLE,
}
DEADLINE = 10.0  # seconds per call: a stall, not a slow machine

failed = 0
VICTIM_SPEC = """
name: victim
model: {type: softmax, layers: [6, 3], seed: 7}
data: {train: {features: x, labels: y}}
training: {epochs: 1, batch_size: 2, update: asp, optimizer: {type: sgd, lr: 0.5}}
cluster: {servers: 1, workers: 1}
"""


def check(desc, cond):
    global failed
    print(("ok - " if cond else "FAIL - ") + desc, flush=True)
    failed += 0 if cond else 1


INTS = [0, 1, 2, 3, 7, 255, 256, 4096, 4097, 65535, 1 << 31, (1 << 31) - 1, 1 << 32,
        (1 << 53) + 1, (1 << 62), (1 << 63) - 1]
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-45, 1e38, 3.5e38, 1e308, float("nan"), float("inf"),
          float("-inf")]
FLOATS32 = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-45, 1e38, 3.4e38, float("nan"), float("inf"),
            float("-inf")]
STRINGS = ["", "a", "x" * 200, "y" * 70000, "../../../etc/passwd", "/dev/zero", "\u00e9\u4e2d\U0001f600",
           "name with spaces", "a\nb", "%s%n%x", "ps0", "w0", "coordinator", "127.0.0.1:1",
           "name: j\nmodel: {type: mlp, layers: [1000000, 1000000]}\n", "-1", "1e999", "{",
           "\x7f\x01"]


def rand_int(rng, fd):
    v = rng.choice(INTS) if rng.random() < 0.7 else rng.getrandbits(rng.choice([8, 16, 32, 64]))
    t = fd.type
    if t in (D.FieldDescriptor.TYPE_INT32, D.FieldDescriptor.TYPE_SINT32,
             D.FieldDescriptor.TYPE_SFIXED32):
        v = (v & 0xFFFFFFFF) - (1 << 32 if v & 0x80000000 else 0)
        return -v if rng.random() < 0.2 else v
    if t in (D.FieldDescriptor.TYPE_UINT32, D.FieldDescriptor.TYPE_FIXED32):
        return v & 0xFFFFFFFF
    if t in (D.FieldDescriptor.TYPE_INT64, D.FieldDescriptor.TYPE_SINT64,
             D.FieldDescriptor.TYPE_SFIXED64):
        v &= (1 << 63) - 1
        return -v if rng.random() < 0.3 else v
    return v & 0xFFFFFFFFFFFFFFFF  # uint64, fixed64


def rand_scalar(rng, fd):
    t = fd.type
    if t in (D.FieldDescriptor.TYPE_DOUBLE, D.FieldDescriptor.TYPE_FLOAT):
        v = rng.choice(FLOATS) if rng.random() < 0.7 else rng.uniform(-1e6, 1e6)
        if t == D.FieldDescriptor.TYPE_FLOAT and abs(v) > 3.4e38 and v == v and abs(v) != float("inf"):
            v = float("inf")
        return v
    if t == D.FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if t == D.FieldDescriptor.TYPE_STRING:
        return rng.choice(STRINGS)
    if t == D.FieldDescriptor.TYPE_BYTES:
        n = rng.choice([0, 1, 3, 4, 7, 64, 84, 4096, 1 << 20])
        if rng.random() < 0.5:  # float32 values, finite or not
            k = max(n // 4, 1)
            vals = [rng.choice(FLOATS32) for _ in range(min(k, 64))]
            return struct.pack("<%df" % (len(vals) * (k // len(vals))), *(vals * (k // len(vals))))
        return rng.randbytes(n)
    if t == D.FieldDescriptor.TYPE_ENUM:
        values = [v.number for v in fd.enum_type.values]
        return rng.choice(values) if rng.random() < 0.8 else rng.randint(-5, 1000)
    return rand_int(rng, fd)


def fill(rng, msg, depth):
    for fd in msg.DESCRIPTOR.fields:
        if rng.random() < 0.35:
            continue  # left out
        if fd.label == D.FieldDescriptor.LABEL_REPEATED:
            n = rng.choice([0, 1, 2, 3, 5, 17]) if rng.random() < 0.95 else rng.choice([4097, 5000])
            if fd.type == D.FieldDescriptor.TYPE_MESSAGE:
                if fd.message_type.GetOptions().map_entry:
                    continue
                if depth >= 3:
                    n = min(n, 1)
                for _ in range(n if depth < 3 else 0):
                    fill(rng, getattr(msg, fd.name).add(), depth + 1)
            else:
                vals = [rand_scalar(rng, fd) for _ in range(min(n, 50))]
                reps = (n // len(vals)) if vals else 0
                getattr(msg, fd.name).extend(vals * max(reps, 1))
        elif fd.type == D.FieldDescriptor.TYPE_MESSAGE:
            if depth < 3:
                fill(rng, getattr(msg, fd.name), depth + 1)
        else:
            try:
                setattr(msg, fd.name, rand_scalar(rng, fd))
            except (ValueError, TypeError):
                pass  # a value protobuf itself will not encode
    return msg


def mutate(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        if op < 0.3 and b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif op < 0.5 and b:
            del b[rng.randrange(len(b)):]
        elif op < 0.7:
            at = rng.randrange(len(b) + 1)
            b[at:at] = rng.randbytes(rng.randint(1, 16))
        elif op < 0.85 and b:
            at = rng.randrange(len(b))
            b[at:at] = bytes([0xFF] * rng.randint(1, 10))  # runaway varints and lengths
        else:
            b = bytearray(rng.randbytes(rng.randint(0, 64)))
    return bytes(b)


class Daemon(hostile.Daemon):
    """hostile.py's raw channel to one daemon, with its role and process."""

    def __init__(self, name, address, pid):
        super().__init__(address, "pando.v1." + SERVICES[name])
        self.name, self.pid = name, pid

    def alive(self):
        try:
            os.kill(self.pid, 0)
            return True
        except OSError:
            return False


def main():
    seed, cases = int(sys.argv[1]), int(sys.argv[2])
    daemons = []
    for arg in sys.argv[3:]:
        name, address, pid = arg.split("=")
        daemons.append(Daemon(name, address, int(pid)))
    rng = random.Random(seed)
    out_dir = os.environ.get("T_DIR", "/tmp")
    # Victims the random requests can reach past "no such job": a shard on
    # the server and a job on the coordinator (pending: the only worker is
    # busy), their names in the pool of strings.
    by = {d.name: d for d in daemons}
    if "ps" in by:
        code, details, _ = by["ps"].call("CreateShard", pb.CreateShardRequest(
            job="victim-1", spec_yaml=VICTIM_SPEC, begin=0, end=21, num_workers=1),
            pb.CreateShardResponse, DEADLINE)
        check("a victim shard for the probe (%s %s)" % (code.name, details[:80]),
              code == grpc.StatusCode.OK)
        STRINGS.append("victim-1")
    if "coordinator" in by:
        spec = VICTIM_SPEC.replace("cluster: {", "cluster: {wait_timeout: 3600, ").replace(
            "{features: x, labels: y}", "{features: %s/train-images.gz, labels: %s/train-labels.gz}"
            % (out_dir, out_dir)).replace("layers: [6, 3]", "layers: [784, 10]")
        code, details, st = by["coordinator"].call("SubmitJob", pb.SubmitJobRequest(spec_yaml=spec),
                                                   pb.JobStatus, DEADLINE)
        check("a victim job on the coordinator (%s %s %s)"
              % (code.name, st.job if st else "", details[:80]), code == grpc.StatusCode.OK)
        if st:
            STRINGS.append(st.job)
    print("# probe: seed %d, %d cases a method" % (seed, cases), flush=True)
    for d in daemons:
        service = pb.DESCRIPTOR.services_by_name[SERVICES[d.name]]
        for method in service.methods:
            cls = getattr(pb, method.input_type.name)
            bad, stalls, sent, worst = [], 0, 0, None
            start = time.monotonic()
            for i in range(cases):
                data = fill(rng, cls(), 0).SerializeToString()
                if i % 2:
                    data = mutate(rng, data)
                t0 = time.monotonic()
                code, details, _ = d.raw(method.name, data, DEADLINE)
                sent += 1
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    stalls += 1
                    worst = worst or data
                elif code not in REFUSALS:
                    bad.append("%s %s" % (code.name, details[:120]))
                    worst = worst or data
                if time.monotonic() - t0 > DEADLINE or not d.alive():
                    break
            if worst is not None:
                with open(os.path.join(out_dir, "probe-%s-%s.bin" % (d.name, method.name)),
                          "wb") as f:
                    f.write(worst)
            check("%s %s: %d random requests, none answered UNKNOWN/INTERNAL/DATA_LOSS%s"
                  % (d.name, method.name, sent, ": " + "; ".join(sorted(set(bad))[:3]) if bad else ""),
                  not bad)
            check("%s %s: no call stalled past %.0f s (%d did)" % (d.name, method.name, DEADLINE,
                                                                   stalls), stalls == 0)
            everyone = all(x.alive() and x.healthy() for x in daemons)
            check("%s %s: every daemon alive and answering health within 1 s after it (%.1f s)"
                  % (d.name, method.name, time.monotonic() - start), everyone)
            if not everyone:
                return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
