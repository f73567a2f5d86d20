"""An independent client (Python grpcio) probes a Pando cluster that runs with
TLS and a cluster token (test_tls.sh, test_mtls.sh):
  tlsprobe.py PS_ADDR COORD_ADDR CERTS_DIR OTHER_CA_DIR tls|mtls
Plaintext, a wrong CA and (under mTLS) no client certificate are refused at
the handshake; calls without the token or with a wrong one are UNAUTHENTICATED
and change nothing (a refused Push leaves the parameters bit-for-bit the same);
the health service answers without a token; under mTLS a worker's certificate
cannot CreateShard nor register as a server, and with only the cluster token
cannot Pull or Push a job (it needs the job's token, as Assignment.job_token
gives it). Prints ok/FAIL lines."""
import os
import sys

import grpc
import numpy as np

BUILD = os.environ.get("BUILD", "build")
sys.path.insert(0, os.path.join(BUILD, "gen", "python"))
import pando_pb2 as pb  # noqa: E402
import health_pb2  # noqa: E402

ps_addr, coord_addr, certs, other, mode = sys.argv[1:6]
mtls = mode == "mtls"
failed = 0


def check(desc, cond):
    global failed
    print(("ok - " if cond else "FAIL - ") + desc, flush=True)
    failed += 0 if cond else 1


def read(name, folder=certs):
    with open(os.path.join(folder, name), "rb") as f:
        return f.read()


TOKEN = read("token").decode().strip()
GOOD = [("authorization", "Bearer " + TOKEN)]
WRONG = [("authorization", "Bearer " + TOKEN[:-1] + ("0" if TOKEN[-1] != "0" else "1"))]


def channel(addr, role=None, ca=None):
    """A TLS channel trusting `ca` (default: the cluster's), with `role`'s
    client certificate (None: none); ca="plaintext" gives an insecure one."""
    if ca == "plaintext":
        return grpc.insecure_channel(addr)
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca or read("ca.pem"),
        private_key=read(role + ".key") if role else None,
        certificate_chain=read(role + ".pem") if role else None)
    return grpc.secure_channel(addr, creds)


def stub(ch, service, name, req, resp):
    return ch.unary_unary("/%s/%s" % (service, name), request_serializer=req.SerializeToString,
                          response_deserializer=resp.FromString)


def ps_stubs(ch):
    s = "pando.v1.ParameterServer"
    return (stub(ch, s, "CreateShard", pb.CreateShardRequest, pb.CreateShardResponse),
            stub(ch, s, "Pull", pb.PullRequest, pb.PullResponse),
            stub(ch, s, "Push", pb.PushRequest, pb.PushResponse),
            stub(ch, s, "DropShard", pb.DropShardRequest, pb.DropShardResponse))


def health_of(ch):
    return stub(ch, "grpc.health.v1.Health", "Check", health_pb2.HealthCheckRequest,
                health_pb2.HealthCheckResponse)


def code_of(fn, req, metadata=None):
    try:
        fn(req, timeout=10, metadata=metadata)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


SPEC = """
name: tlsprobe
model: {type: softmax, layers: [6, 3], seed: 7}
data: {train: {features: x, labels: y}}
training: {epochs: 1, batch_size: 2, update: asp, optimizer: {type: sgd, lr: 0.5}}
cluster: {servers: 1, workers: 1}
"""
KEYS = 6 * 3 + 3
JOB = "tlsprobe"
hreq = health_pb2.HealthCheckRequest(service="")
# the coordinator's certificate may do everything on a server; admin's (pandoctl) all but
# CreateShard, DropShard and CommitRound under mTLS
boss = "coordinator"
client = "admin" if mtls else None

code, msg = code_of(health_of(channel(ps_addr, ca="plaintext")), hreq)
check("a plaintext client is refused (%s)" % code, code == grpc.StatusCode.UNAVAILABLE)
code, msg = code_of(health_of(channel(ps_addr, role=client, ca=read("ca.pem", other))), hreq)
check("a client trusting another CA is refused (%s)" % code, code == grpc.StatusCode.UNAVAILABLE)
code, msg = code_of(health_of(channel(ps_addr, role=client)), hreq)
check("the health service answers over TLS without a token (%s)" % code,
      code == grpc.StatusCode.OK)
if mtls:
    code, msg = code_of(health_of(channel(ps_addr)), hreq)
    check("under mTLS a client without a certificate is refused (%s)" % code,
          code == grpc.StatusCode.UNAVAILABLE)
    code, msg = code_of(health_of(channel(coord_addr)), hreq)
    check("under mTLS the coordinator refuses a client without a certificate (%s)" % code,
          code == grpc.StatusCode.UNAVAILABLE)

create, pull, push, drop = ps_stubs(channel(ps_addr, role=boss))
nope = stub(channel(ps_addr, role=boss), "pando.v1.ParameterServer", "Nope", pb.DropShardRequest,
            pb.DropShardResponse)
code, msg = code_of(nope, pb.DropShardRequest())
check("an unknown method without the token is UNAUTHENTICATED (%s)" % code,
      code == grpc.StatusCode.UNAUTHENTICATED)
code, msg = code_of(nope, pb.DropShardRequest(), GOOD)
check("an unknown method with the token is UNIMPLEMENTED (%s)" % code,
      code == grpc.StatusCode.UNIMPLEMENTED)
JOB_TOKEN = "probe-job-token"
creq = pb.CreateShardRequest(job=JOB, spec_yaml=SPEC, begin=0, end=KEYS, num_workers=1,
                             job_token=JOB_TOKEN)
code, msg = code_of(create, creq)
check("CreateShard without the token is UNAUTHENTICATED (%s)" % msg,
      code == grpc.StatusCode.UNAUTHENTICATED)
code, msg = code_of(pull, pb.PullRequest(job=JOB, begin=0, end=KEYS), GOOD)
check("... and created nothing: the job is NOT_FOUND (%s)" % code,
      code == grpc.StatusCode.NOT_FOUND)
r = create(creq, timeout=10, metadata=GOOD)
check("CreateShard with the token holds %d keys" % KEYS, r.keys == KEYS)


def params():
    p = pull(pb.PullRequest(job=JOB, begin=0, end=KEYS, worker=0, clock=0), timeout=10,
             metadata=GOOD)
    return p.version, p.values.data


v0, x0 = params()
g = np.arange(KEYS, dtype="<f4") - 10
preq = pb.PushRequest(job=JOB, begin=0, end=KEYS, worker=0, clock=0,
                      gradient=pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[KEYS], data=g.tobytes()))
code, msg = code_of(pull, pb.PullRequest(job=JOB, begin=0, end=KEYS))
check("a Pull without the token is UNAUTHENTICATED (%s)" % msg,
      code == grpc.StatusCode.UNAUTHENTICATED)
code, msg = code_of(push, preq)
check("a Push without the token is UNAUTHENTICATED", code == grpc.StatusCode.UNAUTHENTICATED)
code, msg = code_of(push, preq, WRONG)
check("a Push with a wrong token is UNAUTHENTICATED", code == grpc.StatusCode.UNAUTHENTICATED)
code, msg = code_of(push, preq, [("authorization", "Bearer")])
check("a Push with an empty bearer is UNAUTHENTICATED", code == grpc.StatusCode.UNAUTHENTICATED)
v1, x1 = params()
check("the refused pushes left the parameters bit-for-bit the same (version %d)" % v1,
      v1 == v0 and x1 == x0)
r = push(preq, timeout=10, metadata=GOOD)
v2, x2 = params()
x0f, x2f = np.frombuffer(x0, dtype="<f4"), np.frombuffer(x2, dtype="<f4")
check("a Push with the token is applied: x = x0 - lr * g",
      not r.duplicate and np.array_equal(x2f, x0f - np.float32(0.5) * g))

AS_JOB = [("authorization", "Bearer " + JOB_TOKEN)]
p = pull(pb.PullRequest(job=JOB, begin=0, end=KEYS, worker=0, clock=0), timeout=10,
         metadata=AS_JOB)
check("a Pull with the job's own token works", p.values.data == x2)
code, msg = code_of(pull, pb.PullRequest(job="other", begin=0, end=KEYS), AS_JOB)
check("the job token of one job cannot pull another (%s)" % code,
      code == grpc.StatusCode.UNAUTHENTICATED)
code, msg = code_of(drop, pb.DropShardRequest(job=JOB), AS_JOB)
check("the job token cannot DropShard (%s)" % code, code == grpc.StatusCode.UNAUTHENTICATED)
code, msg = code_of(create, pb.CreateShardRequest(job=JOB + "3", spec_yaml=SPEC, begin=0, end=KEYS,
                                                  num_workers=1), AS_JOB)
check("the job token cannot CreateShard (%s)" % code, code == grpc.StatusCode.UNAUTHENTICATED)

if mtls:
    wcreate, wpull, wpush, wdrop = ps_stubs(channel(ps_addr, role="worker"))
    other_req = pb.CreateShardRequest(job=JOB + "2", spec_yaml=SPEC, begin=0, end=KEYS,
                                      num_workers=1)
    code, msg = code_of(wcreate, other_req, GOOD)
    check("a worker's certificate cannot CreateShard (%s: %s)" % (code, msg),
          code == grpc.StatusCode.PERMISSION_DENIED and "coordinator" in msg)
    code, msg = code_of(pull, pb.PullRequest(job=JOB + "2", begin=0, end=KEYS), GOOD)
    check("... and nothing was created (%s)" % code, code == grpc.StatusCode.NOT_FOUND)
    code, msg = code_of(wdrop, pb.DropShardRequest(job=JOB), GOOD)
    check("a worker's certificate cannot DropShard (%s)" % code,
          code == grpc.StatusCode.PERMISSION_DENIED)
    code, msg = code_of(wpull, pb.PullRequest(job=JOB, begin=0, end=KEYS, worker=0, clock=0), GOOD)
    check("a worker's certificate with only the cluster token cannot Pull a job (%s: %s)"
          % (code, msg), code == grpc.StatusCode.PERMISSION_DENIED and "job token" in msg)
    code, msg = code_of(wpush, preq, GOOD)
    check("... nor Push to it (%s)" % code, code == grpc.StatusCode.PERMISSION_DENIED)
    v3, x3 = params()
    check("... and the refused push changed nothing (version %d)" % v3, v3 == v2 and x3 == x2)
    code, msg = code_of(wpull, pb.PullRequest(job=JOB, begin=0, end=KEYS, worker=0, clock=0),
                        AS_JOB)
    check("a worker's certificate with the job's token may Pull it (%s)" % code,
          code == grpc.StatusCode.OK)
    code, msg = code_of(create, other_req, WRONG)
    check("the coordinator's certificate with a wrong token is UNAUTHENTICATED (%s)" % code,
          code == grpc.StatusCode.UNAUTHENTICATED)
    register = stub(channel(coord_addr, role="worker"), "pando.v1.Coordinator", "RegisterNode",
                    pb.RegisterRequest, pb.RegisterResponse)
    code, msg = code_of(register, pb.RegisterRequest(role=pb.ROLE_SERVER, address="127.0.0.1:1",
                                                     name="impostor"), GOOD)
    check("a worker's certificate cannot register as a server (%s: %s)" % (code, msg),
          code == grpc.StatusCode.PERMISSION_DENIED and "role ps" in msg)

# ReadCheckpoint (pandoctl export --checkpoint) is authorized as Pull; past the
# authorization this server, without a data_dir, answers FAILED_PRECONDITION
read_ckpt = stub(channel(ps_addr, role=client), "pando.v1.ParameterServer", "ReadCheckpoint",
                 pb.ReadCheckpointRequest, pb.ReadCheckpointResponse)
rreq = pb.ReadCheckpointRequest(job=JOB, shard_begin=0, shard_end=KEYS, checkpoint=1, begin=0,
                                end=KEYS)
PAST_AUTH = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)
code, msg = code_of(read_ckpt, rreq)
check("a ReadCheckpoint without the token is UNAUTHENTICATED (%s)" % code,
      code == grpc.StatusCode.UNAUTHENTICATED)
code, msg = code_of(read_ckpt, rreq, AS_JOB)
check("a ReadCheckpoint with the job's own token passes, the shard held (%s: %s)" % (code, msg),
      code in PAST_AUTH)
code, msg = code_of(read_ckpt, pb.ReadCheckpointRequest(job="other", shard_begin=0,
                                                        shard_end=KEYS, checkpoint=1, begin=0,
                                                        end=KEYS), AS_JOB)
check("the job token of one job cannot ReadCheckpoint another (%s)" % code,
      code == grpc.StatusCode.UNAUTHENTICATED)
if mtls:
    wread = stub(channel(ps_addr, role="worker"), "pando.v1.ParameterServer", "ReadCheckpoint",
                 pb.ReadCheckpointRequest, pb.ReadCheckpointResponse)
    code, msg = code_of(wread, rreq, GOOD)
    check("a worker's certificate with only the cluster token cannot ReadCheckpoint (%s)" % code,
          code == grpc.StatusCode.PERMISSION_DENIED)

drop(pb.DropShardRequest(job=JOB), timeout=10, metadata=GOOD)
code, msg = code_of(pull, pb.PullRequest(job=JOB, begin=0, end=KEYS), GOOD)
check("DropShard with the token dropped the probe's shard", code == grpc.StatusCode.NOT_FOUND)
code, msg = code_of(read_ckpt, rreq, AS_JOB)
check("once dropped, the job's token is forgotten: ReadCheckpoint is UNAUTHENTICATED (%s)" % code,
      code == grpc.StatusCode.UNAUTHENTICATED)
code, msg = code_of(read_ckpt, rreq, GOOD)
check("... and the cluster token passes (%s: %s)" % (code, msg), code in PAST_AUTH)
sys.exit(1 if failed else 0)
