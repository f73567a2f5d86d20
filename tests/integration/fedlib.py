"""Helpers of the federated integration tests: start real daemons on port 0,
check results, and play federated devices from Python grpcio (any language
can be a device: the messages come from proto/ only)."""
import os
import subprocess
import sys
import tempfile
import time

import grpc
import numpy as np

BUILD = os.environ.get("BUILD", "build")
# data_roots of the daemons (tests/run.sh sets the same): scratch, checkout, Debian data
os.environ.setdefault("PANDO_DATA_ROOTS", "/usr/share/datasets,%s,%s" % (
    os.environ.get("TMPDIR", "/tmp"), os.getcwd()))
sys.path.insert(0, os.path.join(BUILD, "gen", "python"))
import pando_pb2 as pb  # noqa: E402
import pdtls  # noqa: E402  (PANDO_TEST_TLS: TLS and the token)

failed = 0


def check(desc, cond):
    global failed
    print(("ok - " if cond else "FAIL - ") + desc, flush=True)
    failed += 0 if cond else 1


def code_of(fn, *args):
    """the status code and details of calling fn(*args)"""
    try:
        fn(*args, timeout=5)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def wait_file(path, seconds=10):
    for _ in range(int(seconds * 10)):
        if os.path.exists(path) and open(path).read().strip():
            return open(path).read().strip()
        time.sleep(0.1)
    raise RuntimeError("nothing in " + path)


class Cluster:
    """A coordinator, `servers` parameter servers and a selector."""

    def __init__(self, servers, selector_args=()):
        self.dir = tempfile.mkdtemp(prefix="pando-fed-")
        self.procs, self.logs = [], []
        self.secrets = {}  # device id -> CheckInResponse.session_secret
        self.coordinator = "127.0.0.1:%s" % self.start("coord", "pando-coordinator",
                                                       "--heartbeat-ms", "100")
        for i in range(servers):
            self.start("ps%d" % i, "pando-ps", "--coordinator", self.coordinator)
        self.selector = "127.0.0.1:%s" % self.start(
            "selector", "pando-selector", "--coordinator", self.coordinator,
            "--min-reconnect-ms", "50", "--idle-reconnect-ms", "100", "--checkin-rate", "1000",
            *selector_args)
        ch = pdtls.channel(self.coordinator)
        self.coord = {n: ch.unary_unary("/pando.v1.Coordinator/" + n,
                                        request_serializer=q.SerializeToString,
                                        response_deserializer=r.FromString)
                      for n, q, r in [("SubmitJob", pb.SubmitJobRequest, pb.JobStatus),
                                      ("GetJob", pb.JobRequest, pb.JobStatus),
                                      ("Cluster", pb.ClusterRequest, pb.ClusterResponse),
                                      ("ReportDevice", pb.DeviceReport, pb.DeviceReportAck)]}
        sch = pdtls.channel(self.selector)
        self.checkin_rpc = sch.unary_unary("/pando.v1.Selector/CheckIn",
                                           request_serializer=pb.CheckInRequest.SerializeToString,
                                           response_deserializer=pb.CheckInResponse.FromString)
        for _ in range(100):  # every server and the selector registered
            if len(self.coord["Cluster"](pb.ClusterRequest(), timeout=5).nodes) == servers + 1:
                break
            time.sleep(0.1)
        self.channels = {}

    def start(self, name, binary, *args):
        port_file = os.path.join(self.dir, name + ".port")
        log = open(os.path.join(self.dir, name + ".log"), "w")
        self.logs.append(log)
        self.procs.append(subprocess.Popen(
            [os.path.join(BUILD, "bin", binary), "--listen", "127.0.0.1:0", "--port-file",
             port_file, "--metrics-listen", "", "--name", name, *args] + pdtls.flags(binary),
            stdout=log, stderr=log))
        return wait_file(port_file)

    def spawn(self, name, *argv):
        """a process without a port (the C devices)"""
        log = open(os.path.join(self.dir, name + ".log"), "w")
        self.logs.append(log)
        p = subprocess.Popen([os.path.join(BUILD, "bin", argv[0]), *argv[1:]] + pdtls.flags(argv[0]),
                             stdout=log, stderr=log)
        self.procs.append(p)
        return p

    def submit(self, spec):
        return self.coord["SubmitJob"](pb.SubmitJobRequest(spec_yaml=spec), timeout=10).job

    def status(self, job):
        return self.coord["GetJob"](pb.JobRequest(job=job), timeout=5)

    def wait(self, job, states=("SUCCEEDED", "FAILED", "CANCELLED"), seconds=60):
        end = time.time() + seconds
        while time.time() < end:
            st = self.status(job)
            if pb.JobState.Name(st.state).replace("JOB_STATE_", "") in states:
                return st
            time.sleep(0.01)
        return self.status(job)

    def ps(self, address, method, req, resp):
        if address not in self.channels:
            self.channels[address] = pdtls.channel(address)
        return self.channels[address].unary_unary(
            "/pando.v1.ParameterServer/" + method, request_serializer=req.SerializeToString,
            response_deserializer=resp.FromString)

    def pull(self, shard_map, job, round_id):
        parts = []
        for s in shard_map.shards:
            r = self.ps(s.address, "Pull", pb.PullRequest, pb.PullResponse)(
                pb.PullRequest(job=job, begin=s.begin, end=s.end, clock=round_id), timeout=10)
            parts.append(np.frombuffer(r.values.data, dtype="<f4"))
        return np.concatenate(parts)

    def push(self, shard_map, job, round_id, device, weight, delta):
        dropped = False
        for s in shard_map.shards:
            t = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[s.end - s.begin],
                          data=delta[s.begin:s.end].astype("<f4").tobytes())
            r = self.ps(s.address, "Push", pb.PushRequest, pb.PushResponse)(
                pb.PushRequest(job=job, begin=s.begin, end=s.end, clock=round_id, device=device,
                               weight=weight, gradient=t), timeout=10)
            dropped |= r.dropped
        return dropped

    def checkin(self, device, samples, busy=False):
        """checks `device` in, sending the session secret its first check-in got"""
        r = self.checkin_rpc(pb.CheckInRequest(device_id=device, num_samples=samples, busy=busy,
                                               session_secret=self.secrets.get(device, "")),
                             timeout=5)
        if r.session_secret:
            self.secrets[device] = r.session_secret
        return r

    def report(self, task, device, samples, error=""):
        return self.coord["ReportDevice"](pb.DeviceReport(
            job=task.job, round=task.round, device_id=device, num_samples=samples,
            error=error, report_secret=task.report_secret), timeout=5)

    def tasks(self, devices, want, seconds=20):
        """checks `devices` ({id: n_k}) in until `want` of them hold a task"""
        got = {}
        end = time.time() + seconds
        while len(got) < want and time.time() < end:
            for d, n in devices.items():
                if d in got:
                    continue
                r = self.checkin(d, n)
                if r.HasField("task"):
                    got[d] = r.task
            time.sleep(0.02)
        return got

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        codes = []
        for p in self.procs:
            try:
                codes.append(p.wait(timeout=10))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(-9)
        for log in self.logs:
            log.close()
        if failed:
            for f in sorted(os.listdir(self.dir)):
                if f.endswith(".log"):
                    print("## " + f + "\n" + open(os.path.join(self.dir, f)).read()[-3000:],
                          file=sys.stderr)
        return codes


def softmax_grad(theta, x, y, inputs, classes):
    """the gradient of the mean softmax cross-entropy (Pando's layout:
    layer0.weight [inputs, classes] row-major, then layer0.bias)"""
    w = theta[:inputs * classes].reshape(inputs, classes).astype(np.float64)
    b = theta[inputs * classes:].astype(np.float64)
    z = x @ w + b
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    p /= len(y)
    return np.concatenate([(x.T @ p).ravel(), p.sum(axis=0)])
