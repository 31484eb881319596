#!/usr/bin/python3
"""A certified client that lies, against the real coordinator.

serve --rounds 1 --min-clients 3 --quorum 2 on the MLP; two honest
`glassbox-client run` on Fashion-MNIST and a third client played here
(tests/support/gblink.py) that sends what glassbox-client never would:

  a Join claiming 2^40 training samples      -> ERROR_INVALID_VALUE
  (then an honest Join, so it is selected)
  a 300 MiB transfer (its first chunk)        -> ERROR_TOO_LARGE, nothing
                                                 set aside for it
  an Update claiming 2^40 samples            -> ERROR_INVALID_VALUE
  an Update claiming more than it joined with -> ERROR_INVALID_VALUE
  an Update whose delta is 1e30 everywhere    -> ERROR_NORM
  an Update with train_accuracy 7            -> ERROR_INVALID_VALUE
  an EvalResult with loss 1e300               -> ERROR_INVALID_VALUE

  an EvalResult claiming more test samples than it joined with -> refused
  300 misshapen Updates in a row             -> each ERROR_SHAPE, the log
                                                 lines about them rate-limited

then stalls past the deadline: round 1 closes with the two honest updates
at --deadline, and its late update for round 1, sent once round 2 has begun,
is refused as stale; then it leaves without a word, and round 2 does not
wait for it. Every refusal is logged and counted in /metrics
(glassbox_updates_refused_total by reason); both rounds aggregate the two
honest updates (participants 2, a finite model that evaluates), serve and
both honest clients exit 0.

Usage: test_hostile_run.py BUILD_DIR SOURCE_DIR
"""
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

BUILD, SOURCE = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(SOURCE, "tests", "support"))
import gblink  # noqa: E402 (tests/support)
from gbproc import free_port, rss_mib, run  # noqa: E402

CLIENT = os.path.join(BUILD, "glassbox-client")
COORD = os.path.join(BUILD, "glassbox-coordinator")
pb = gblink.load_protocol(SOURCE)
E = pb.ErrorCode
DEADLINE_S = 8






def metric(http, name, reason):
    text = urllib.request.urlopen("http://%s/metrics" % http, timeout=5).read().decode()
    want = '%s{reason="%s"} ' % (name, reason)
    for line in text.splitlines():
        if line.startswith(want):
            return float(line[len(want):])
    return 0.0




def expect_error(evil, seq, code, what):
    e = evil.reply_to(seq)
    assert e.WhichOneof("body") == "error", "%s: accepted" % what
    assert e.error.code == code, "%s: %s (%s), want %s" % (
        what, E.Name(e.error.code), e.error.message, E.Name(code))
    print("refused as it should be: %s: %s: %s" % (what, E.Name(code), e.error.message))


def update(task, delta, samples, accuracy=None):
    raw = struct.pack("<%df" % len(delta), *delta)
    u = pb.Update(round=task.round, task_id=task.task_id, num_samples=samples, delta=raw,
                  param_count=len(delta), delta_sha256=hashlib.sha256(raw).digest())
    u.metrics.add(name="train_loss", value=0.5)
    if accuracy is not None:
        u.metrics.add(name="train_accuracy", value=accuracy)
    return u


def main():
    work = tempfile.mkdtemp(prefix="gb-hostile-")
    ca = os.path.join(work, "ca")
    run(COORD, "ca", "init", "--dir", ca, "--federation", "hostile")
    for name in ("honest-0", "honest-1", "evil"):
        run(COORD, "ca", "issue", "--dir", ca, "--name", name)
    port, http = free_port(), "127.0.0.1:%d" % free_port()
    endpoint = "tcp://127.0.0.1:%d" % port
    serve_log = os.path.join(work, "serve.log")
    server = subprocess.Popen(
        [COORD, "serve", "--ca", ca, "--listen", endpoint, "--http", http, "--model", "mlp",
         "--rounds", "2", "--min-clients", "3", "--quorum", "2", "--epochs", "1",
         "--explain", "none", "--deadline", str(DEADLINE_S), "--timeout-ms", "1500",
         "--heartbeat-ms", "300", "--max-client-samples", "100000",
         "--state", os.path.join(work, "state"), "--finished-grace", "0", "--json"],
        stdout=subprocess.PIPE, stderr=open(serve_log, "w"), text=True)
    honest = []
    try:
        assert server.stdout.readline().startswith("listening on")
        clients_dir = os.path.join(ca, "clients")
        evil = gblink.Session(pb, endpoint, "localhost", os.path.join(ca, "ca.crt"),
                              os.path.join(clients_dir, "evil.crt"),
                              os.path.join(clients_dir, "evil.key"))
        seq = evil.send(join=pb.Join(min_protocol_version=1, max_protocol_version=1,
                                     client_name="evil", train_samples=1 << 40,
                                     test_samples=10))
        evil.expect("welcome")  # the Welcome goes out before the federation hears of it
        expect_error(evil, seq, E.ERROR_INVALID_VALUE, "Join with 2^40 samples")
        evil.send(join=pb.Join(min_protocol_version=1, max_protocol_version=1,
                               client_name="evil", train_samples=500, test_samples=10))
        evil.expect("welcome")

        for k in range(2):
            name = os.path.join(clients_dir, "honest-%d" % k)
            honest.append(subprocess.Popen(
                [CLIENT, "run", "--coordinator", endpoint, "--cert", name + ".crt",
                 "--key", name + ".key", "--ca-file", os.path.join(ca, "ca.crt"),
                 "--data", "fashion-mnist", "--limit", "1000", "--clients", "2",
                 "--index", str(k), "--threads", "1"],
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(work, "honest-%d.log" % k), "w")))
        task = evil.expect("task", 60).task
        n = task.model.param_count
        print("evil was given task %d of round %d (%d parameters)" % (task.task_id, task.round,
                                                                   n))

        # a transfer the model could never need: refused at its first chunk
        before = rss_mib(server.pid)
        seq = evil.send(chunk=pb.TensorChunk(transfer_id=1, index=0, count=300 * 16,
                                             offset=0, total_bytes=300 << 20,
                                             data=b"\0" * 65536))
        expect_error(evil, seq, E.ERROR_TOO_LARGE, "a 300 MiB transfer")
        for i in range(1, 32):  # its later chunks are dropped without a word
            evil.send(chunk=pb.TensorChunk(transfer_id=1, index=i, count=300 * 16,
                                           offset=i * 65536, total_bytes=300 << 20,
                                           data=b"\0" * 65536))
        small = [1e-4] * n
        seq = evil.send(update=update(task, small, 1 << 40))
        expect_error(evil, seq, E.ERROR_INVALID_VALUE, "an Update claiming 2^40 samples")
        seq = evil.send(update=update(task, small, 501))
        expect_error(evil, seq, E.ERROR_INVALID_VALUE, "an Update past its Join's 500")
        seq = evil.send(update=update(task, [1e30] * n, 500))
        expect_error(evil, seq, E.ERROR_NORM, "an Update of 1e30 everywhere")
        seq = evil.send(update=update(task, small, 500, accuracy=7))
        expect_error(evil, seq, E.ERROR_INVALID_VALUE, "an Update with accuracy 7")
        seq = evil.send(eval_result=pb.EvalResult(round=task.round, task_id=task.task_id,
                                                  num_samples=10, loss=1e300, accuracy=0.5))
        expect_error(evil, seq, E.ERROR_INVALID_VALUE, "an EvalResult with loss 1e300")
        seq = evil.send(eval_result=pb.EvalResult(round=task.round, task_id=task.task_id,
                                                  num_samples=11, loss=0.5, accuracy=0.5))
        expect_error(evil, seq, E.ERROR_INVALID_VALUE, "an EvalResult past its Join's 10")
        grown = rss_mib(server.pid) - before
        print("the coordinator grew %.1f MiB while refusing all that" % grown)
        assert grown < 32, "the coordinator grew %.1f MiB" % grown
        for reason, least in (("samples", 3), ("norm", 1), ("invalid", 2)):
            got = metric(http, "glassbox_updates_refused_total", reason)
            assert got >= least, "refused{reason=%s} = %g, want >= %d" % (reason, got, least)
        # a stream of refusable updates: answered each, logged within a budget
        wrong = update(task, small[:10], 500)
        for _ in range(300):
            seq = evil.send(update=wrong)
        expect_error(evil, seq, E.ERROR_SHAPE, "the 300th misshapen Update")
        evil.got = [e for e in evil.got if e.WhichOneof("body") != "error"]

        # stalled past the deadline: round 1 goes on without it
        t0 = time.time()
        task2 = evil.expect("task", 3 * DEADLINE_S).task
        assert task2.round == 2, task2.round
        print("round 1 closed %.1f s after the lies, at its deadline, without the stalled "
              "client" % (time.time() - t0))
        seq = evil.send(update=update(task, small, 500))
        expect_error(evil, seq, E.ERROR_STALE, "round 1's update, sent in round 2")
        evil.close()  # gone without a word: round 2 does not wait for it

        out, _ = server.communicate(timeout=180)
        assert server.returncode == 0, "serve exited %d" % server.returncode
        rounds = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert [r["participants"] for r in rounds] == [2, 2], rounds
        for p in honest:
            p.wait(timeout=60)
            assert p.returncode == 0, "an honest client exited %d" % p.returncode
        log = open(serve_log).read()
        about_evil = [line for line in log.splitlines() if "'evil'" in line]
        print("serve logged %d lines about the liar for its ~320 lies" % len(about_evil))
        assert len(about_evil) < 120, "%d lines about the liar" % len(about_evil)
        assert "log lines caused by peers held back" in log, "no count of the lines held back"
        for needle in ("join claims 1099511627776 training", "L2 norm",
                       "train_accuracy 7 is outside"):
            assert needle in log, "the log does not say %r" % needle
        model = os.path.join(work, "state", "model-2.gbm")
        ev = run(CLIENT, "eval", "--model-file", model, "--data", "fashion-mnist", "--limit", "500")
        said = [line for line in ev.stdout.splitlines() if "accuracy" in line]
        assert said, ev.stdout
        print("round 2 without the liar: %s" % said[-1])
    finally:
        for p in [server] + honest:
            if p.poll() is None:
                p.kill()
    print("ok: every lie refused and counted; the honest round completed")


if __name__ == "__main__":
    main()
