"""Federated rounds end to end: a coordinator, M = 3 parameter servers and a
selector, with devices written in Python (grpcio, messages from proto/):
 - FedSGD identity: full participation, E = 1, B = all local data, fedavg
   with plain SGD: one round equals one full-batch gradient step on the
   union of the devices' data (relative error <= 1e-5), with Python devices
   and with Pando's own (C) devices holding CSV files of their own;
 - only the chosen device can report its task: a report in its name
   without its report_secret (none, a wrong one, another device's) is
   UNAUTHENTICATED and counts for nothing;
 - a round closes as soon as min_reports reports are in: 13 selected,
   min_reports 10, 3 stragglers; their later reports and pushes are late,
   discarded and counted, and the model is the average of the first 10;
 - 80% of the selected devices drop out: the round is abandoned at its
   deadline, the model stays bit for bit, the retry takes other devices,
   and after max_attempts the job fails with a message saying so;
 - selection waits for ceil(over_selection K) idle devices, and after
   selection_timeout selects the fewer there are (at least min_reports)."""
import re
import sys
import time

import grpc

import numpy as np

from fedlib import Cluster, check, code_of, pb, softmax_grad
import fedlib

INPUTS, CLASSES = 8, 3
KEYS = INPUTS * CLASSES + CLASSES


def spec(name, **fed):
    base = {"rounds": 1, "clients_per_round": 3, "local_epochs": 1, "local_batch_size": 0,
            "round_timeout": 30}
    base.update(fed)
    return """
name: %s
model: {type: softmax, layers: [%d, %d], seed: 11}
data: {train: {features: x, labels: y}}
training:
  update: fedavg
  optimizer: {type: sgd, lr: 0.5}
  federated: {%s}
cluster: {servers: 3, wait_timeout: 30}
""" % (name, INPUTS, CLASSES, ", ".join("%s: %s" % kv for kv in base.items()))


rng = np.random.default_rng(5)


def local_data(n):
    return rng.normal(0, 1, (n, INPUTS)), rng.integers(0, CLASSES, n)


c = Cluster(3)
try:
    # ---- FedSGD identity
    job = c.submit(spec("fedsgd", clients_per_round=3, over_selection=1, min_reports=3))
    sizes = {"py-a": 5, "py-b": 9, "py-c": 14}
    data = {d: local_data(n) for d, n in sizes.items()}
    tasks = c.tasks(sizes, 3)
    check("3 Python devices check in and are selected for round 1", len(tasks) == 3)
    task = next(iter(tasks.values()))
    theta0 = c.pull(task.shard_map, job, task.round)
    check("the task names the job's 3 shards and the round", task.job == job and
          len(task.shard_map.shards) == 3 and task.shard_map.keys == KEYS)
    secrets = {d: t.report_secret for d, t in tasks.items()}
    check("each task carries its device's own report secret (64 hex digits)",
          all(re.fullmatch("[0-9a-f]{64}", v) for v in secrets.values()) and
          len(set(secrets.values())) == 3)
    victim, other = "py-a", "py-b"
    for secret, how in [("", "without a report secret"), ("0" * 64, "with a wrong one"),
                        (secrets[other], "with device %s's" % other)]:
        code, msg = code_of(c.coord["ReportDevice"], pb.DeviceReport(
            job=job, round=tasks[victim].round, device_id=victim, num_samples=5,
            error="spoofed drop", report_secret=secret))
        check("a report in device %s's name %s is UNAUTHENTICATED (%s)" % (victim, how, msg),
              code == grpc.StatusCode.UNAUTHENTICATED and "report_secret" in msg)
    for d, t in tasks.items():
        x, y = data[d]
        theta = c.pull(t.shard_map, job, t.round).astype(np.float64)
        theta_k = theta - 0.5 * softmax_grad(theta, x, y, INPUTS, CLASSES)  # B = all, E = 1
        c.push(t.shard_map, job, t.round, d, sizes[d], (theta_k - theta).astype("<f4"))
        ack = c.report(t, d, sizes[d])
        check("device %s's report is accepted" % d, ack.accepted and not ack.late)
    st = c.wait(job)
    check("the job SUCCEEDED after its round (%s)" % st.message,
          st.state == pb.JOB_STATE_SUCCEEDED and st.rounds_done == 1)
    theta1 = c.pull(task.shard_map, job, task.round + 1).astype(np.float64)
    x = np.concatenate([data[d][0] for d in sizes])
    y = np.concatenate([data[d][1] for d in sizes])
    ref = theta0.astype(np.float64) - 0.5 * softmax_grad(theta0, x, y, INPUTS, CLASSES)
    rel = np.linalg.norm(theta1 - ref) / np.linalg.norm(ref)
    check("FedSGD: the round equals a full-batch GD step on the union, M = 3 (rel err %.1e <= "
          "1e-5)" % rel, rel <= 1e-5)
    rec = st.round_history[0]
    check("the round record: 3 selected, 3 reported, 0 dropped, 0 late",
          (rec.selected, rec.reported, rec.dropped, rec.late, rec.abandoned) == (3, 3, 0, 0, False))

    # ---- early close at min_reports, stragglers late
    job = c.submit(spec("early", clients_per_round=10, min_reports=10, round_timeout=60))
    sizes = {"early-%02d" % i: 10 + i for i in range(13)}
    tasks = c.tasks(sizes, 13)
    check("13 = ceil(1.3 x 10) devices selected", len(tasks) == 13)
    order = sorted(tasks)
    theta0 = c.pull(tasks[order[0]].shard_map, job, tasks[order[0]].round).astype(np.float64)
    updates = {d: rng.normal(0, 0.1, KEYS) for d in order}
    for d in order[:10]:
        t = tasks[d]
        c.push(t.shard_map, job, t.round, d, sizes[d], updates[d].astype("<f4"))
        ack = c.report(t, d, sizes[d])
    tenth = time.time()
    st = c.wait(job, seconds=60)
    latency = time.time() - tenth
    check("the round commits after its 10th report with 3 stragglers outstanding, long before "
          "its 60 s deadline (%.3f s after the 10th report)" % latency,
          st.state == pb.JOB_STATE_SUCCEEDED and st.round_history[0].seconds < 60)
    late = []
    for d in order[10:]:
        t = tasks[d]
        late.append(c.push(t.shard_map, job, t.round, d, sizes[d], updates[d].astype("<f4")))
        late.append(c.report(t, d, sizes[d]).late)
    check("the stragglers' pushes and reports are answered as late", all(late))
    st = c.status(job)
    rec = st.round_history[0]
    check("the round record counts 10 reported, 3 late, 0 dropped (%d, %d, %d)"
          % (rec.reported, rec.late, rec.dropped),
          (rec.selected, rec.reported, rec.late, rec.dropped) == (13, 10, 3, 0))
    w = np.array([sizes[d] for d in order[:10]], dtype=np.float64)
    want = theta0 + sum(w[i] * updates[d] for i, d in enumerate(order[:10])) / w.sum()
    got = c.pull(tasks[order[0]].shard_map, job, tasks[order[0]].round + 1)
    err = np.max(np.abs(got - want))
    check("the model is theta_0 + the n_k-weighted average of the first 10 updates only "
          "(max error %.1e <= 1e-6)" % err, err <= 1e-6)

    # ---- 80% dropout: abandoned, retried with other devices, then failed
    job = c.submit(spec("dropout", rounds=2, clients_per_round=10, min_reports=10,
                        round_timeout=1.5, max_attempts=2))
    sizes = {"drop-%02d" % i: 20 for i in range(30)}
    attempts, theta0 = [], None
    for attempt in range(2):
        tasks = c.tasks({d: n for d, n in sizes.items()
                         if all(d not in a for a in attempts)}, 13)
        attempts.append(set(tasks))
        if theta0 is None and tasks:
            t0 = next(iter(tasks.values()))
            theta0 = c.pull(t0.shard_map, job, t0.round)
        for d in sorted(tasks)[:3]:  # 3 of 13 report: 77% drop out
            t = tasks[d]
            c.push(t.shard_map, job, t.round, d, 20, rng.normal(0, 1, KEYS).astype("<f4"))
            c.report(t, d, 20)
        if attempt == 0:  # the abandoned attempt changed nothing on any shard
            for _ in range(500):
                if len(c.status(job).round_history) >= 1:
                    break
                time.sleep(0.01)
            unchanged = np.array_equal(c.pull(t0.shard_map, job, t0.round + 1), theta0)
    check("each attempt selected 13 devices, the retry none of the first attempt's",
          [len(a) for a in attempts] == [13, 13] and not attempts[0] & attempts[1])
    st = c.wait(job, seconds=30)
    check("after 2 abandoned attempts the job FAILED saying why (%s)" % st.message,
          st.state == pb.JOB_STATE_FAILED and "abandoned 2 times" in st.message and
          "3 of the 10 reports" in st.message)
    recs = list(st.round_history)
    check("both attempts are recorded as abandoned, 3 reported and 10 dropped each",
          len(recs) == 2 and all(r.abandoned and r.reported == 3 and r.dropped == 10
                                 for r in recs) and [r.attempt for r in recs] == [1, 2])
    check("the model is unchanged bit for bit on every shard after an abandoned attempt",
          unchanged)

    # ---- selection waits for ceil(over_selection K) devices, then selection_timeout
    job = c.submit(spec("patient", clients_per_round=3, over_selection=2, min_reports=3,
                        selection_timeout=1, round_timeout=30))
    sizes = {"few-%d" % i: 7 for i in range(4)}
    for d, n in sizes.items():
        c.checkin(d, n)
    waiting = ""
    for _ in range(1000):  # the coordinator polls the selectors every 0.5 s
        waiting = c.status(job).message
        if "selection_timeout" in waiting:
            break
        time.sleep(0.01)
    tasks = c.tasks(sizes, 4, seconds=30)
    check("with 4 of the 6 devices it selects idle, the round waits for more (%s), then "
          "selects the 4 after selection_timeout" % waiting,
          "selection_timeout" in waiting and len(tasks) == 4)
    for d, t in tasks.items():
        c.push(t.shard_map, job, t.round, d, 7, np.zeros(KEYS, dtype="<f4"))
        c.report(t, d, 7)
    st = c.wait(job, seconds=30)
    rec = st.round_history[0]
    check("the round of 4 selected commits at its 3rd report (%s; %d selected, %d reported)" % (st.message, rec.selected,
          rec.reported), st.state == pb.JOB_STATE_SUCCEEDED and
          (rec.selected, rec.reported) == (4, 3))

    # ---- FedSGD identity with Pando's own devices (pando-worker --role device,
    # C), each with its own CSV file; 2,300 rows exceed one model call's 1,024,
    # so the whole-data gradient is taken in chunks
    import os
    sizes = {"c-a": 700, "c-b": 1500, "c-c": 2300}
    job = c.submit(spec("fedsgd-c", clients_per_round=3, over_selection=1, min_reports=3))
    theta0, st = None, c.status(job)
    for _ in range(500):
        st = c.status(job)
        if st.shard_map.shards:
            break
        time.sleep(0.02)
    theta0 = c.pull(st.shard_map, job, 0).astype(np.float64)
    xs, ys = [], []
    for d, n in sizes.items():
        x, y = local_data(n)
        x = x.astype(np.float32)
        xs.append(x.astype(np.float64))
        ys.append(y)
        path = os.path.join(c.dir, d + ".csv")
        np.savetxt(path, np.column_stack([y, x]), delimiter=",", fmt="%.9g")
        dspec = os.path.join(c.dir, d + ".yaml")
        with open(dspec, "w") as f:
            f.write(spec("fedsgd-c", clients_per_round=3).replace(
                "data: {train: {features: x, labels: y}}",
                "data: {format: csv, train: {features: %s}}" % path))
        c.spawn(d, "pando-worker", "--role", "device", "--data", dspec, "--selector", c.selector,
                "--device-id", d, "--jobs", "fedsgd-c", "--metrics-listen", "")
    st = c.wait(job, seconds=60)
    check("3 C devices with 700, 1500 and 2300 rows of their own train the round (%s)"
          % st.message, st.state == pb.JOB_STATE_SUCCEEDED and st.rounds_done == 1)
    theta1 = c.pull(st.shard_map, job, 0).astype(np.float64)
    x, y = np.concatenate(xs), np.concatenate(ys)
    ref = theta0 - 0.5 * softmax_grad(theta0, x, y, INPUTS, CLASSES)
    rel = np.linalg.norm(theta1 - ref) / np.linalg.norm(ref)
    check("FedSGD with C devices: the round equals a full-batch GD step on the union of their "
          "4,500 rows, M = 3 (rel err %.1e <= 1e-5)" % rel, rel <= 1e-5)
finally:
    codes = c.close()
check("every daemon stops cleanly on SIGTERM", all(code == 0 for code in codes))
sys.exit(1 if fedlib.failed else 0)
