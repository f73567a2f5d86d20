"""Node ids bound to their nodes, and per-job tokens of workers (test_tls.sh,
test_mtls.sh).
  assignprobe.py COORD_ADDR PS_ADDR CERTS_DIR NODE_ID JOB_A JOB_A_TOKEN_FILE JOB_B SECRET_OUT
NODE_ID is a worker of JOB_A (RUNNING); JOB_B is another job held by the
server PS_ADDR. Speaks as a worker (its certificate and the cluster token):
GetAssignment, Heartbeat and ReportProgress in NODE_ID's name without its
node_secret (none, a wrong one, the probe's own) are UNAUTHENTICATED and
change nothing (JOB_A goes on RUNNING on its workers, which keep reporting);
with JOB_A's token the probe reaches JOB_A's shard, not JOB_B's. Writes the
node secret it registered with to SECRET_OUT (the caller checks no log shows
it). Prints ok/FAIL lines."""
import os
import sys
import time

import grpc

BUILD = os.environ.get("BUILD", "build")
sys.path.insert(0, os.path.join(BUILD, "gen", "python"))
import pando_pb2 as pb  # noqa: E402

coord_addr, ps_addr, certs, node_id, job_a, token_file, job_b, secret_out = sys.argv[1:9]
node_id = int(node_id)
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
coord = channel(coord_addr)
cluster_md = bearer(cluster_token)


def coord_rpc(name, req, resp):
    return stub(coord, "pando.v1.Coordinator", name, req, resp)


get_assignment = coord_rpc("GetAssignment", pb.AssignmentRequest, pb.Assignment)
heartbeat = coord_rpc("Heartbeat", pb.HeartbeatRequest, pb.HeartbeatResponse)
report = coord_rpc("ReportProgress", pb.ProgressReport, pb.ProgressAck)
register = coord_rpc("RegisterNode", pb.RegisterRequest, pb.RegisterResponse)
get_job = coord_rpc("GetJob", pb.JobRequest, pb.JobStatus)
cluster = coord_rpc("Cluster", pb.ClusterRequest, pb.ClusterResponse)


def job_a_now():
    # (under mTLS a worker's certificate needs the job's own token for GetJob)
    st = get_job(pb.JobRequest(job=job_a), timeout=10, metadata=bearer(token_a))
    # the newest epoch recorded (a spoofed `done` of epoch 500 would record 500)
    return st.state, (st.epoch, st.step), max([h.epoch for h in st.history] + [0])


def node_of(nid):
    nodes = cluster(pb.ClusterRequest(), timeout=10, metadata=cluster_md).nodes
    return next((n for n in nodes if n.node_id == nid), None)


# the probe is a node of its own: a valid id and secret, just not NODE_ID's
probe_node = register(pb.RegisterRequest(role=pb.ROLE_WORKER, name="assignprobe"), timeout=10,
                metadata=cluster_md)
check("RegisterNode answers a node secret of 64 hex digits",
      len(probe_node.node_secret) == 64 and all(ch in "0123456789abcdef" for ch in probe_node.node_secret))
with open(secret_out, "w") as f:
    f.write(probe_node.node_secret)
own = get_assignment(pb.AssignmentRequest(node_id=probe_node.node_id, node_secret=probe_node.node_secret),
                     timeout=10, metadata=cluster_md)
check("with its own id and secret a node gets its assignment (idle: none)", own.job == "")
state0, _, _ = job_a_now()
w = node_of(node_id)
check("worker node %d runs job %s (%s)" % (node_id, job_a, pb.JobState.Name(state0)),
      w is not None and w.job == job_a and state0 == pb.JOB_STATE_RUNNING)
secrets = [("without a node secret", ""), ("with a wrong node secret", "0" * 64),
           ("with another node's (valid) secret", probe_node.node_secret)]
same_msg = set()
for how, secret in secrets:
    code, msg = code_of(get_assignment, pb.AssignmentRequest(node_id=node_id, node_secret=secret),
                        cluster_md)
    same_msg.add(msg)
    check("GetAssignment for node %d %s is UNAUTHENTICATED (%s)" % (node_id, how, msg),
          code == grpc.StatusCode.UNAUTHENTICATED)
    code, msg = code_of(heartbeat, pb.HeartbeatRequest(node_id=node_id, node_secret=secret),
                        cluster_md)
    check("Heartbeat for node %d %s is UNAUTHENTICATED (%s)" % (node_id, how, code),
          code == grpc.StatusCode.UNAUTHENTICATED)
    for rank in (0, 1):  # what would end the job: a failure, all epochs done
        for what, spoof in (("a failure", pb.ProgressReport(error="spoofed failure", epoch=1)),
                            ("all epochs done", pb.ProgressReport(done=True, epoch=500,
                                                                  has_eval=True,
                                                                  test_accuracy=1))):
            spoof.job, spoof.rank, spoof.node_id, spoof.node_secret = job_a, rank, node_id, secret
            code, msg = code_of(report, spoof, cluster_md)
            check("ReportProgress (%s) for job %s rank %d as node %d %s is UNAUTHENTICATED (%s)"
                  % (what, job_a, rank, node_id, how, code),
                  code == grpc.StatusCode.UNAUTHENTICATED)
code, msg = code_of(get_assignment, pb.AssignmentRequest(node_id=1 << 40, node_secret="0" * 64),
                    cluster_md)
check("GetAssignment for an unknown node id is UNAUTHENTICATED with the same message "
      "(%s)" % code, code == grpc.StatusCode.UNAUTHENTICATED and same_msg == {msg})
# with a valid id and secret of its own, the probe cannot speak for a rank of job A
for rank in (0, 1):
    r = report(pb.ProgressReport(job=job_a, rank=rank, error="spoofed failure", epoch=1,
                                 node_id=probe_node.node_id, node_secret=probe_node.node_secret),
               timeout=10, metadata=cluster_md)
    check("ReportProgress for job %s rank %d from node %d, not its worker, is told to stop "
          "(cancel %s)" % (job_a, rank, probe_node.node_id, r.cancel), r.cancel)
state1, progress1, history1 = job_a_now()
w = node_of(node_id)
check("... and nothing changed: job %s RUNNING (%s), node %d alive on it, no spoofed epoch "
      "recorded (newest %d)" % (job_a, pb.JobState.Name(state1), node_id, history1),
      state1 == pb.JOB_STATE_RUNNING and w.alive and w.job == job_a and history1 < 500)
for _ in range(300):  # the real workers still train and report
    if job_a_now()[1] > progress1:
        break
    time.sleep(0.1)
state2, progress2, _ = job_a_now()
check("... and job %s's workers still report progress (epoch, step %s, then %s)"
      % (job_a, progress1, progress2), state2 == pb.JOB_STATE_RUNNING and progress2 > progress1)

ps = channel(ps_addr)
pull = stub(ps, "pando.v1.ParameterServer", "Pull", pb.PullRequest, pb.PullResponse)
push = stub(ps, "pando.v1.ParameterServer", "Push", pb.PushRequest, pb.PushResponse)
stats = stub(ps, "pando.v1.ParameterServer", "GetStats", pb.StatsRequest, pb.StatsResponse)
mine = bearer(token_a)
code, msg = code_of(stats, pb.StatsRequest(job=job_a), mine)
check("with job %s's token a worker reaches its own job (GetStats: %s)" % (job_a, code),
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
