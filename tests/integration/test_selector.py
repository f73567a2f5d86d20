"""pando-selector driven from Python grpcio (messages generated from proto/):
devices check in, the population counts eligible devices, Select chooses the
same devices for the same seed on two selectors, a chosen device gets its
task at its next check-in (the others do not), bad check-ins are refused
naming the field, a check-in under a live device's id without its session
secret is UNAUTHENTICATED and changes nothing (the device still gets its
task), devices that stop checking in are forgotten (their ids may then open
new sessions), /metrics and health answer, SIGTERM stops it cleanly."""
import re
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import grpc

import fedlib
import pdtls  # noqa: E402  (PANDO_TEST_TLS: TLS and the token)
from fedlib import BUILD, check, code_of, pb, wait_file  # noqa: E402
import health_pb2  # noqa: E402


tmp = tempfile.mkdtemp(prefix="pando-selector-")
procs, logs = [], []


def start(name, extra=()):
    port_file = os.path.join(tmp, name + ".port")
    mport_file = os.path.join(tmp, name + ".mport")
    log = open(os.path.join(tmp, name + ".log"), "w")
    logs.append(log)
    p = subprocess.Popen([os.path.join(BUILD, "bin", "pando-selector"), "--listen", "127.0.0.1:0",
                          "--port-file", port_file, "--metrics-listen", "127.0.0.1:0",
                          "--metrics-port-file", mport_file, "--coordinator", "",
                          "--min-reconnect-ms", "100", "--idle-reconnect-ms", "200",
                          "--name", name] + list(extra) + pdtls.flags("pando-selector"), stdout=log, stderr=log)
    procs.append(p)
    return p, int(wait_file(port_file)), int(wait_file(mport_file))


secrets = {}  # (selector port, device id) -> CheckInResponse.session_secret


def session(port, rpc):
    """a CheckIn stub of selector `port` that keeps and sends each device's secret"""
    def call(req, timeout=5):
        req.session_secret = secrets.get((port, req.device_id), "")
        r = rpc(req, timeout=timeout)
        if r.session_secret:
            secrets[(port, req.device_id)] = r.session_secret
        return r
    return call


def rss_kib(proc):
    with open("/proc/%d/status" % proc.pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def stubs(port):
    ch = pdtls.channel("127.0.0.1:%d" % port)

    def rpc(name, req, resp, service="pando.v1.Selector"):
        return ch.unary_unary("/%s/%s" % (service, name), request_serializer=req.SerializeToString,
                              response_deserializer=resp.FromString)
    return (rpc("CheckIn", pb.CheckInRequest, pb.CheckInResponse),
            rpc("Select", pb.SelectRequest, pb.SelectResponse),
            rpc("Population", pb.PopulationRequest, pb.PopulationResponse),
            rpc("Check", health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse,
                "grpc.health.v1.Health"))


try:
    a, port_a, mport_a = start("sel-a")
    b, port_b, _ = start("sel-b")
    raw_checkin, select, population, health = stubs(port_a)
    checkin_b, select_b, _, _ = stubs(port_b)
    checkin, checkin_b = session(port_a, raw_checkin), session(port_b, checkin_b)

    h = health(health_pb2.HealthCheckRequest(service="pando.v1.Selector"), timeout=5)
    check("health of the Selector service answers SERVING",
          h.status == health_pb2.HealthCheckResponse.SERVING)

    devices = ["phone-%02d" % i for i in range(20)]
    for i, d in enumerate(devices):
        attrs = ["charging", "unmetered"] if i % 2 == 0 else ["unmetered"]
        req = pb.CheckInRequest(device_id=d, num_samples=100 + i, jobs=["fed"], attributes=attrs)
        r = checkin(req, timeout=5)
        checkin_b(req, timeout=5)
        if i == 0:
            check("a check-in is answered with a reconnect window and no task (%d ms)"
                  % r.reconnect_ms, r.reconnect_ms > 0 and not r.HasField("task"))
            check("the first check-in opens a session: a secret of 64 hex digits",
                  re.fullmatch("[0-9a-f]{64}", r.session_secret) is not None)
            r = checkin(req, timeout=5)
            check("a later check-in with the secret is answered without a new one",
                  r.reconnect_ms > 0 and r.session_secret == "")
    checkin(pb.CheckInRequest(device_id="other-job", num_samples=5, jobs=["else"]), timeout=5)

    pop = population(pb.PopulationRequest(job_name="fed", require=["charging"], demand=5), timeout=5)
    check("population: 21 online, 10 eligible for fed with charging (%d, %d)"
          % (pop.online, pop.eligible), pop.online == 21 and pop.eligible == 10 and pop.idle == 10)
    pop = population(pb.PopulationRequest(job_name="fed"), timeout=5)
    check("population: 20 serve fed", pop.eligible == 20)

    shard_map = pb.ShardMap(version=1, keys=10, shards=[pb.Shard(begin=0, end=10,
                                                                 address="127.0.0.1:1")])
    task = pb.RoundTask(job="fed-1", round=1, spec_yaml="name: fed", shard_map=shard_map,
                        coordinator="127.0.0.1:2", deadline_ms=3000)
    sel = pb.SelectRequest(job="fed-1", job_name="fed", round=1, count=5, seed=99,
                           require=["unmetered"], exclude=["phone-03"], task=task)
    ra = select(sel, timeout=5)
    rb = select_b(sel, timeout=5)
    chosen = list(ra.devices)
    check("Select chooses 5 of the 19 eligible devices (%s)" % ",".join(chosen),
          len(chosen) == 5 and ra.eligible == 19 and len(set(chosen)) == 5)
    check("the same seed and population choose the same devices on another selector",
          chosen == list(rb.devices))
    check("an excluded device is not chosen", "phone-03" not in chosen)
    pop = population(pb.PopulationRequest(job_name="fed"), timeout=5)
    check("chosen devices are no longer idle (%d)" % pop.idle, pop.idle == 15)
    again = select(pb.SelectRequest(job="fed-1", job_name="fed", round=2, count=100, seed=99,
                                    task=task), timeout=5)
    check("a second Select does not choose devices holding a task (%d)" % len(again.devices),
          len(again.devices) == 15 and not set(again.devices) & set(chosen))

    # another client checks in under chosen[0]'s id (as in a stolen task):
    # without the secret, with a wrong one, with the other selector's one
    wrong = [("", "without a session secret"), ("0" * 64, "with a wrong session secret"),
             (secrets[(port_b, chosen[0])], "with its session secret of another selector")]
    for secret, how in wrong:
        code, msg = code_of(raw_checkin, pb.CheckInRequest(
            device_id=chosen[0], num_samples=1, jobs=["else"], busy=True, session_secret=secret))
        check("a check-in under live device %s's id %s is UNAUTHENTICATED (%s)"
              % (chosen[0], how, msg), code == grpc.StatusCode.UNAUTHENTICATED and
              "session_secret" in msg)
    pop = population(pb.PopulationRequest(job_name="fed"), timeout=5)
    check("... and changed nothing (20 still serve fed: %d)" % pop.eligible, pop.eligible == 20)
    r = checkin(pb.CheckInRequest(device_id=chosen[0], num_samples=1, jobs=["fed"]), timeout=5)
    check("a chosen device gets its task at its next check-in",
          r.HasField("task") and r.task.job == "fed-1" and r.task.round == 1 and
          r.task.shard_map.keys == 10 and r.task.coordinator == "127.0.0.1:2" and
          0 < r.task.deadline_ms <= 3000)
    r = checkin(pb.CheckInRequest(device_id=chosen[0], num_samples=1, jobs=["fed"], busy=True),
                timeout=5)
    check("the task is handed out once", not r.HasField("task"))
    r = checkin(pb.CheckInRequest(device_id="other-job", num_samples=5, jobs=["else"]), timeout=5)
    check("a device not chosen gets no task", not r.HasField("task"))

    for req, field in [(pb.CheckInRequest(device_id=""), "device_id"),
                       (pb.CheckInRequest(device_id="a b"), "device_id"),
                       (pb.CheckInRequest(device_id="x" * 129), "device_id"),
                       (pb.CheckInRequest(device_id="ok", attributes=["Bad Attr"]),
                        "attributes[0]"),
                       (pb.CheckInRequest(device_id="ok", jobs=["j%d" % i for i in range(17)]),
                        "jobs: at most 16")]:
        code, msg = code_of(checkin, req)
        check("a bad check-in is INVALID_ARGUMENT naming %s (%s)" % (field, msg),
              code == grpc.StatusCode.INVALID_ARGUMENT and field in msg)
    code, msg = code_of(select, pb.SelectRequest(job="fed-1", count=0, task=task))
    check("Select of 0 devices is INVALID_ARGUMENT (%s)" % msg,
          code == grpc.StatusCode.INVALID_ARGUMENT and "count" in msg)
    raw = pdtls.channel("127.0.0.1:%d" % port_a).unary_unary("/pando.v1.Selector/CheckIn")
    code, msg = code_of(raw, b"\x0a\xff\xff\xff\x0f")
    check("a malformed check-in is INVALID_ARGUMENT", code == grpc.StatusCode.INVALID_ARGUMENT)

    time.sleep(0.3)
    metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport_a, timeout=5).read()
    metrics = metrics.decode()
    check("/metrics exports the online devices and check-ins",
          "pando_selector_devices_online 21" in metrics and
          "pando_selector_checkins_total" in metrics)

    # devices that do not check in again are forgotten (windows of 0.1-0.2 s,
    # 2 windows + 1 s grace); the 19 chosen ones that were not told a new
    # window since are kept until their round has timed out (3 s); chosen[0]
    # checked in busy and was told a new window, which ran out
    time.sleep(2.0)
    pop = population(pb.PopulationRequest(), timeout=5)
    check("devices that stopped checking in are forgotten, those chosen are kept (%d online)"
          % pop.online, pop.online == 19)
    time.sleep(3.0)
    pop = population(pb.PopulationRequest(), timeout=5)
    check("after their round timed out they are forgotten too (%d online)" % pop.online,
          pop.online == 0)
    r = raw_checkin(pb.CheckInRequest(device_id=chosen[1], num_samples=1, jobs=["fed"]),
                    timeout=5)
    check("once its session expired, a device id opens a new session without a secret",
          re.fullmatch("[0-9a-f]{64}", r.session_secret) is not None and
          r.session_secret != secrets[(port_a, chosen[1])])

    # 10,000 devices online (windows of a minute) cost the selector about
    # 2 MB (README: ~200 bytes a device); the bound leaves room for malloc's
    # and gRPC's own growth, not for a per-device leak of a kilobyte
    big, port_big, _ = start("sel-big", ["--min-reconnect-ms", "60000", "--max-reconnect-ms",
                                         "60000", "--idle-reconnect-ms", "60000",
                                         "--checkin-rate", "1000000"])
    checkin_big, _, population_big, _ = stubs(port_big)

    def check_in_all(ids):
        for start_i in range(0, len(ids), 500):
            futures = [checkin_big.future(pb.CheckInRequest(
                device_id=d, num_samples=600, jobs=["fed"], attributes=["charging", "unmetered"]),
                timeout=30) for d in ids[start_i:start_i + 500]]
            for f in futures:
                f.result()
    check_in_all(["warm-%04d" % i for i in range(1000)])  # gRPC's buffers, malloc's arenas
    before = rss_kib(big)
    check_in_all(["device-%010d" % i for i in range(10000)])
    grown = rss_kib(big) - before
    pop = population_big(pb.PopulationRequest(job_name="fed"), timeout=10)
    check("10,000 devices are online at one selector (%d online, %d eligible)"
          % (pop.online, pop.eligible), pop.online == 11000 and pop.eligible == 11000)
    if os.environ.get("SANITIZE"):  # ASan's shadow memory and quarantine are not the selector's
        print("# skipped under SANITIZE=%s: the memory bound (%.1f MiB grown)"
              % (os.environ["SANITIZE"], grown / 1024))
    else:
        check("they cost the selector %.1f MiB of resident memory (bound: 8 MiB)"
              % (grown / 1024), grown < 8 * 1024)

    a.terminate()
    b.terminate()
    big.terminate()
    check("SIGTERM stops the selectors cleanly (exit 0)",
          a.wait(timeout=10) == 0 and b.wait(timeout=10) == 0 and big.wait(timeout=10) == 0)
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
    for log in logs:
        log.close()
    if fedlib.failed:
        for name in ("sel-a", "sel-b", "sel-big"):
            print(open(os.path.join(tmp, name + ".log")).read(), file=sys.stderr)
sys.exit(1 if fedlib.failed else 0)
