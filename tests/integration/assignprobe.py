"""Per-job tokens of workers (test_tls.sh, test_mtls.sh): a worker of one job
holds that job's token only, from its Assignment, and cannot read another job.
  assignprobe.py COORD_ADDR PS_ADDR CERTS_DIR NODE_ID JOB_A JOB_A_TOKEN_FILE JOB_B
NODE_ID is a worker of JOB_A (RUNNING); JOB_B is another job held by the
server PS_ADDR. Speaks as a worker (its certificate and the cluster token to
the coordinator, the assignment's token to the server). Prints ok/FAIL lines."""
import os
import sys

import grpc

BUILD = os.environ.get("BUILD", "build")
sys.path.insert(0, os.path.join(BUILD, "gen", "python"))
import pando_pb2 as pb  # noqa: E402

coord_addr, ps_addr, certs, node_id, job_a, token_file, job_b = sys.argv[1:8]
failed = 0


def check(desc, cond):
    global failed
    print(("ok - " if cond else "FAIL - ") + desc, flush=True)
    failed += 0 if cond else 1


def read(name):
    with open(os.path.join(certs, name), "rb") as f:
        return f.read()


def channel(addr, role="worker"):
    creds = grpc.ssl_channel_credentials(root_certificates=read("ca.pem"),
                                         private_key=read(role + ".key"),
                                         certificate_chain=read(role + ".pem"))
    return grpc.secure_channel(addr, creds)


def stub(ch, service, name, req, resp):
    return ch.unary_unary("/%s/%s" % (service, name), request_serializer=req.SerializeToString,
                          response_deserializer=resp.FromString)


def code_of(fn, req, metadata):
    try:
        fn(req, timeout=10, metadata=metadata)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def bearer(token):
    return [("authorization", "Bearer " + token)]


cluster_token = read("token").decode().strip()
with open(token_file) as f:
    token_a = f.read().strip()
get_assignment = stub(channel(coord_addr), "pando.v1.Coordinator", "GetAssignment",
                      pb.AssignmentRequest, pb.Assignment)
a = get_assignment(pb.AssignmentRequest(node_id=int(node_id)), timeout=10,
                   metadata=bearer(cluster_token))
check("the assignment of job %s's worker carries the job's token" % job_a,
      a.job == job_a and a.job_token == token_a)
ps = channel(ps_addr)
pull = stub(ps, "pando.v1.ParameterServer", "Pull", pb.PullRequest, pb.PullResponse)
push = stub(ps, "pando.v1.ParameterServer", "Push", pb.PushRequest, pb.PushResponse)
stats = stub(ps, "pando.v1.ParameterServer", "GetStats", pb.StatsRequest, pb.StatsResponse)
mine = bearer(a.job_token)
code, msg = code_of(stats, pb.StatsRequest(job=job_a), mine)
check("with the assignment's token the worker reaches its own job (GetStats: %s)" % code,
      code == grpc.StatusCode.OK)
admin_stats = stub(channel(ps_addr, "admin"), "pando.v1.ParameterServer", "GetStats",
                   pb.StatsRequest, pb.StatsResponse)
before = admin_stats(pb.StatsRequest(job=job_b), timeout=10, metadata=bearer(cluster_token))
code, msg = code_of(pull, pb.PullRequest(job=job_b, begin=0, end=16), mine)
check("... but cannot Pull job %s (%s)" % (job_b, code),
      code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED))
grad = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[16], data=b"\0\0\x80\x7f" * 16)
code, msg = code_of(push, pb.PushRequest(job=job_b, begin=0, end=16, gradient=grad), mine)
check("... nor Push to it (%s)" % code,
      code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED))
code, msg = code_of(stats, pb.StatsRequest(job=job_b), mine)
check("... nor GetStats it (%s)" % code,
      code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED))
after = admin_stats(pb.StatsRequest(job=job_b), timeout=10, metadata=bearer(cluster_token))
check("... and job %s's shard is unchanged (version %d)" % (job_b, after.version),
      after == before)
sys.exit(1 if failed else 0)
