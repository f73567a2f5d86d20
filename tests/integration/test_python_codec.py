"""A Python grpcio client that knows only proto/pando.proto (enum Codec's
byte layouts) talks compressed tensors to a real pando-ps: it decodes fp16,
bf16 and int8 pull answers, encodes onebit and topk pushes the server
applies exactly as documented, and compressed pushes whose lengths, counts,
indices or method do not match are refused with INVALID_ARGUMENT naming what
is wrong (and change nothing)."""
import math
import os
import struct
import subprocess
import sys
import tempfile
import time

import grpc
import numpy as np

BUILD = os.environ.get("BUILD", "build")
sys.path.insert(0, os.path.join(BUILD, "gen", "python"))
import pando_pb2 as pb  # noqa: E402
import pdtls  # noqa: E402

failed = 0


def check(desc, cond):
    global failed
    print(("ok - " if cond else "FAIL - ") + desc, flush=True)
    failed += 0 if cond else 1


def code_of(fn, *args):
    try:
        fn(*args, timeout=5)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


# ---- the layouts of enum Codec, from the proto comments alone

def blocks(n, block):
    return (n + block - 1) // block


def decode(tensor):
    n = int(np.prod(tensor.shape))
    data, method, block = tensor.data, tensor.codec.method, tensor.codec.block
    if method == pb.CODEC_NONE:
        return np.frombuffer(data, dtype="<f4")
    if method == pb.CODEC_FP16:
        assert len(data) == 2 * n
        return np.frombuffer(data, dtype="<f2").astype(np.float32)
    if method == pb.CODEC_BF16:
        assert len(data) == 2 * n
        return (np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    if method == pb.CODEC_INT8:
        block = block or 2048
        nb = blocks(n, block)
        assert len(data) == 4 * nb + n
        scales = np.frombuffer(data[:4 * nb], dtype="<f4")
        q = np.frombuffer(data[4 * nb:], dtype="i1").astype(np.float32)
        return q * np.repeat(scales, block)[:n]
    if method == pb.CODEC_ONEBIT:
        block = block or 32768
        nb = blocks(n, block)
        assert len(data) == 8 * nb + (n + 7) // 8
        means = np.frombuffer(data[:8 * nb], dtype="<f4").reshape(nb, 2)
        bits = np.unpackbits(np.frombuffer(data[8 * nb:], dtype="u1"), bitorder="little")[:n]
        b = np.arange(n) // block
        return np.where(bits == 1, means[b, 0], means[b, 1]).astype(np.float32)
    # sparse: uint32 k, k float32, k varints (first index, then gaps - 1)
    k = struct.unpack_from("<I", data, 0)[0]
    values = np.frombuffer(data[4:4 + 4 * k], dtype="<f4")
    out, at, index, prev = np.zeros(n, np.float32), 4 + 4 * k, 0, -1
    for j in range(k):
        v, shift = 0, 0
        while True:
            byte = data[at]
            at += 1
            v |= (byte & 0x7f) << shift
            shift += 7
            if not byte & 0x80:
                break
        index = prev + 1 + v
        out[index] = values[j]
        prev = index
    assert at == len(data)
    return out


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7f) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def encode_sparse(indices, values):
    data = struct.pack("<I", len(indices)) + np.asarray(values, "<f4").tobytes()
    prev = -1
    for i in indices:
        data += varint(i - prev - 1)
        prev = i
    return data


def encode_onebit(g, block):
    n, nb = g.size, blocks(g.size, block)
    head = b""
    for b in range(nb):
        part = g[b * block:(b + 1) * block]
        pos, neg = part[part >= 0], part[part < 0]
        head += struct.pack("<ff", pos.mean() if pos.size else 0.0, neg.mean() if neg.size else 0.0)
    return head + np.packbits(g >= 0, bitorder="little").tobytes()


SPEC = """
name: pycodec
model: {type: softmax, layers: [300, 10], seed: 7}
data: {train: {features: x, labels: y}}
training: {epochs: 1, batch_size: 2, update: asp, optimizer: {type: sgd, lr: 0.5}}
cluster: {servers: 1, workers: 1}
"""
KEYS = 300 * 10 + 10

tmp = tempfile.mkdtemp(prefix="pando-pycodec-")
port_file = os.path.join(tmp, "ps.port")
log = open(os.path.join(tmp, "ps.log"), "w")
ps = subprocess.Popen([os.path.join(BUILD, "bin", "pando-ps"), "--listen", "127.0.0.1:0",
                       "--metrics-listen", "", "--port-file", port_file] + pdtls.flags("pando-ps"),
                      stdout=log, stderr=log)
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
    pull = rpc("Pull", pb.PullRequest, pb.PullResponse)
    push = rpc("Push", pb.PushRequest, pb.PushResponse)
    create(pb.CreateShardRequest(job="c", spec_yaml=SPEC, begin=0, end=KEYS, num_workers=1),
           timeout=5)

    def values(**codec):
        req = pb.PullRequest(job="c", begin=0, end=KEYS, worker=0)
        if codec:
            req.codec.CopyFrom(pb.TensorCodec(**codec))
        return pull(req, timeout=5).values

    x0 = decode(values())
    check("an uncompressed pull has no codec", not values().HasField("codec"))
    v = values(method=pb.CODEC_FP16)
    got = decode(v)
    check("an fp16 pull is 2 bytes a value and within 2^-11 relative (%d bytes)" % len(v.data),
          v.codec.method == pb.CODEC_FP16 and len(v.data) == 2 * KEYS and
          np.all(np.abs(got - x0) <= np.maximum(np.abs(x0) * 2.0 ** -11, 2.0 ** -25)))
    v = values(method=pb.CODEC_BF16)
    got = decode(v)
    check("a bf16 pull is 2 bytes a value and within 2^-8 relative",
          len(v.data) == 2 * KEYS and np.all(np.abs(got - x0) <= np.abs(x0) * 2.0 ** -8))
    v = values(method=pb.CODEC_INT8, block=512)
    got = decode(v)
    bound = np.repeat([np.abs(x0[i:i + 512]).max() / 254 for i in range(0, KEYS, 512)], 512)[:KEYS]
    check("an int8 pull (block 512) is 4 bytes a block + 1 a value, within max|v|/254 of its block",
          v.codec.block == 512 and len(v.data) == 4 * blocks(KEYS, 512) + KEYS and
          np.all(np.abs(got - x0) <= bound * 1.0001 + 1e-12))
    code, msg = code_of(pull, pb.PullRequest(job="c", begin=0, end=KEYS, worker=0,
                                             codec=pb.TensorCodec(method=pb.CODEC_TOPK)))
    check("a topk pull is INVALID_ARGUMENT (%s)" % msg,
          code == grpc.StatusCode.INVALID_ARGUMENT and "fp16, bf16 or int8 only, got topk" in msg)

    # onebit push: the server applies x - lr * decode(g)
    rng = np.random.default_rng(1)
    g = rng.standard_normal(KEYS).astype(np.float32)
    t = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[KEYS], data=encode_onebit(g, 1000),
                  codec=pb.TensorCodec(method=pb.CODEC_ONEBIT, block=1000))
    sent = decode(t)
    push(pb.PushRequest(job="c", begin=0, end=KEYS, worker=0, clock=0, gradient=t), timeout=5)
    x1 = decode(values())
    check("a onebit push is applied as its documented decoding: x1 = x0 - lr * decode(g)",
          np.allclose(x1, x0 - np.float32(0.5) * sent, rtol=0, atol=1e-6) and
          np.array_equal(np.sign(sent) >= 0, g >= 0))
    idx = np.sort(np.argsort(-np.abs(g))[:30])
    t = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[KEYS], data=encode_sparse(idx, g[idx]),
                  codec=pb.TensorCodec(method=pb.CODEC_TOPK))
    push(pb.PushRequest(job="c", begin=0, end=KEYS, worker=0, clock=1, gradient=t), timeout=5)
    x2 = decode(values())
    want = x1.copy()
    want[idx] -= np.float32(0.5) * g[idx]
    check("a topk push changes exactly its 30 keys", np.array_equal(x2, want))

    def bad(data, method, desc, needle, block=0, shape=None):
        t = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=shape or [KEYS], data=data,
                      codec=pb.TensorCodec(method=method, block=block))
        code, msg = code_of(push, pb.PushRequest(job="c", begin=0, end=KEYS, worker=0, clock=2,
                                                 gradient=t))
        check("%s is INVALID_ARGUMENT naming it (%s)" % (desc, msg),
              code == grpc.StatusCode.INVALID_ARGUMENT and needle in msg)

    bad(b"\0" * (2 * KEYS - 1), pb.CODEC_FP16, "an fp16 gradient a byte short", "got %d" % (2 * KEYS - 1))
    bad(b"\0" * (2 * KEYS + 2), pb.CODEC_BF16, "a bf16 gradient too long", "does not fit")
    bad(b"\0" * 10, 99, "an unknown method", "unknown method 99")
    bad(encode_sparse([KEYS], [1.0]), pb.CODEC_TOPK, "a topk index beyond the keys", "beyond")
    bad(struct.pack("<I", KEYS + 1) + b"\0" * 8, pb.CODEC_TOPK, "a count beyond the keys",
        "count %d" % (KEYS + 1))
    bad(encode_sparse([1, 2], [1.0, 2.0])[:-1], pb.CODEC_RANDOMK, "a truncated index list",
        "truncated")
    bad(encode_sparse([1], [1.0]) + b"\0", pb.CODEC_THRESHOLD, "bytes after the indices",
        "bytes after")
    bad(b"\0" * 20, pb.CODEC_INT8, "an int8 block over the limit", "block", block=1 << 30)
    bad(encode_onebit(g, 1000), pb.CODEC_ONEBIT, "a onebit gradient of another block",
        "take", block=500)
    check("refused pushes changed nothing", np.array_equal(decode(values()), x2))
    ps.terminate()
    check("SIGTERM stops the server cleanly (exit 0)", ps.wait(timeout=10) == 0)
finally:
    if ps.poll() is None:
        ps.kill()
    log.close()
    if failed:
        print(open(os.path.join(tmp, "ps.log")).read(), file=sys.stderr)
sys.exit(1 if failed else 0)
