#!/usr/bin/python3
"""Faults with real processes on loopback (issue: a federation that never waits
on a client it knows is gone):

  1. a selected client is stopped (SIGSTOP) while it trains: its session is
     lost at --timeout-ms, the round stops waiting for it and closes with the
     other two long before --deadline; after SIGCONT it rejoins, its old result
     is not counted (stale, or its task replaced), it takes part in round 2,
     and every client exits 0 when the federation finishes;
  2. the coordinator restarted on the finished federation answers a client
     that comes back with "finished" (Welcome names the last round) for
     --finished-grace, and the client exits 0 instead of retrying for ever;
  3. a client whose coordinator is away exits 1 after --give-up seconds,
     naming the coordinator;
  4. --out on a full disk (a tmpfs too small for one round): serve logs the
     failure, keeps the round, exits 1 naming it; restarted once there is
     room, it writes the round (signature and publication, no temporary file
     left) from what it kept in --state, and exits 0;
  5. a checkpoint that takes longer than --deadline (GLASSBOX_TEST_CHECKPOINT_
     DELAY_MS) does not eat the next round's deadline;
  6. --state on a tmpfs too small for --keep checkpoints is refused at start
     with the room it needs; one that fills up during the run stops serve
     with that message instead of retrying for ever.
  7. a selected client killed (SIGKILL) while it trains: the round closes
     with the quorum of the other two when its session is lost, long before
     --deadline, and the others exit 0;
  8. the coordinator gone (SIGKILL) after round 1 for 6 s (30 s with
     GLASSBOX_LONG=1): the clients, never restarted, reconnect to the new
     serve on the same --state, which resumes at round 2; all exit 0.
Tests 4 and 6 mount tmpfs file systems and need root; without them they say
so and are skipped.

Usage: test_faults_run.py BUILD_DIR SOURCE_DIR
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

BUILD, SOURCE = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(SOURCE, "tests", "support"))
import gbproc  # noqa: E402 (tests/support)
from gbproc import free_port  # noqa: E402 (tests/support)
CLIENT = os.path.join(BUILD, "glassbox-client")
COORD = os.path.join(BUILD, "glassbox-coordinator")
N = 3
DEADLINE_S = 600  # a round that waited for the stopped client would take this long


def run(*args, rc=0):
    return gbproc.run(*args, rc=rc, timeout=300)


def wait_for(path, text, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path) and text in open(path).read():
            return
        time.sleep(0.05)
    raise AssertionError("no '%s' in %s after %d s:\n%s" % (text, path, timeout,
                                                             open(path).read()[-3000:]))


def serve(work, port, tag, *extra, state=None, deadline=DEADLINE_S, env=None, fast=False):
    log = open(os.path.join(work, "serve-%s.log" % tag), "w")
    model = ["--model", "mlp", "--explain", "none"] if fast else [
        "--model", "lenet", "--explain", "ig", "--explain-samples", "16", "--explain-steps", "8"]
    p = subprocess.Popen([COORD, "serve", "--ca", os.path.join(work, "ca"),
                          "--listen", "tcp://127.0.0.1:%d" % port, "--http", "none"] + model +
                         ["--state", state or os.path.join(work, "state"),
                          "--epochs", "1", "--deadline", str(deadline),
                          "--heartbeat-ms", "500", "--timeout-ms", "3000", "--json"]
                         + list(extra), stdout=subprocess.PIPE, stderr=log, text=True,
                         env=dict(os.environ, **(env or {})))
    line = p.stdout.readline()
    if not line.startswith("listening on"):
        p.wait(timeout=30)
    return p


def client(work, port, k, *extra):
    name = os.path.join(work, "ca", "clients", "client-%d" % k)
    log = open(os.path.join(work, "client-%d.log" % k), "a")
    return subprocess.Popen(
        [CLIENT, "run", "--coordinator", "tcp://127.0.0.1:%d" % port,
         "--cert", name + ".crt", "--key", name + ".key",
         "--ca-file", os.path.join(work, "ca", "ca.crt"),
         "--data", "fashion-mnist", "--limit", "3000", "--clients", str(N),
         "--index", str(k), "--threads", "1", "--json"] + list(extra),
        stdout=subprocess.PIPE, stderr=log, text=True)


def stopped_client_is_not_waited_for(work, port):
    server = serve(work, port, "stop", "--rounds", "2", "--min-clients", str(N),
                   "--quorum", "2")
    ps = [client(work, port, k) for k in range(N)]
    try:
        log2 = os.path.join(work, "client-2.log")
        wait_for(log2, "of round 1 started", 120)
        ps[2].send_signal(signal.SIGSTOP)
        t0 = time.time()
        first = server.stdout.readline()
        took = time.time() - t0
        r1 = json.loads(first)
        assert r1["round"] == 1 and r1["participants"] == 2, r1
        assert took < DEADLINE_S / 10, "round 1 waited %.0f s for the stopped client" % took
        serve_log = os.path.join(work, "serve-stop.log")
        wait_for(serve_log, "the round no longer waits for it", 1)
        ps[2].send_signal(signal.SIGCONT)
        out, _ = server.communicate(timeout=240)
        assert server.returncode == 0, "serve exited %d" % server.returncode
        r2 = json.loads(out.splitlines()[0])
        assert r2["round"] == 2 and r2["participants"] == N, r2
        for k, p in enumerate(ps):
            cout, _ = p.communicate(timeout=60)
            assert p.returncode == 0, "client-%d exited %d" % (k, p.returncode)
            rounds = [json.loads(line)["round"] for line in cout.splitlines()
                      if line.startswith("{")]
            assert rounds[-1] == 2, (k, rounds)
    finally:
        for p in [server] + ps:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
    text = open(log2).read()
    assert "stale" in text or "cancelled" in text or "replaces task" in text, text[-3000:]
    dropped = open(serve_log).read()
    assert "client 'client-2' left holding its task" in dropped, dropped[-3000:]
    print("stopped client: round 1 closed in %.1f s with 2 of 3, round 2 with all 3: ok" % took)


def finished_federation_tells_returning_clients(work, port):
    server = serve(work, port, "again", "--rounds", "2", "--min-clients", str(N),
                   "--finished-grace", "6")
    t0 = time.time()
    c = client(work, port, 0)
    try:
        cout, _ = c.communicate(timeout=60)
        assert c.returncode == 0, "client exited %d" % c.returncode
        took = time.time() - t0
        assert took < 15, "the client took %.0f s to hear the federation has finished" % took
        out, _ = server.communicate(timeout=60)
        assert server.returncode == 0, "serve exited %d" % server.returncode
    finally:
        for p in (server, c):
            if p.poll() is None:
                p.kill()
    log = open(os.path.join(work, "client-0.log")).read()
    assert "federation finished" in log, log[-2000:]
    assert "(round 2," in log, log[-2000:]  # Welcome carries the federation's round
    serve_log = open(os.path.join(work, "serve-again.log")).read()
    assert "all done" in serve_log and "telling clients that come back" in serve_log, serve_log
    print("restarted finished federation: the client heard it in %.1f s and exited 0: ok" % took)


def client_gives_up(work):
    port = free_port()  # nothing listens there
    t0 = time.time()
    c = client(work, port, 1, "--give-up", "2")
    c.communicate(timeout=60)
    took = time.time() - t0
    assert c.returncode == 1, "client exited %d" % c.returncode
    log = open(os.path.join(work, "client-1.log")).read()
    assert "giving up" in log and "127.0.0.1:%d" % port in log, log[-2000:]
    assert took < 30, took
    print("--give-up 2: exit 1 after %.1f s: ok" % took)


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path],
                       capture_output=True, text=True)
    return r.returncode == 0


def umount(path):
    subprocess.run(["umount", "-l", path], capture_output=True)


def run_clients(work, port):
    ps = [client(work, port, k) for k in range(N)]
    return ps


def stop_all(ps):
    for p in ps:
        if p.poll() is None:
            p.kill()
        p.wait()


def full_out_is_loud_and_mended(work, port):
    fs = os.path.join(work, "outfs")
    if not mount_tmpfs(fs, "64k"):
        print("full --out: skipped (cannot mount a tmpfs here)")
        return
    try:
        out, state = os.path.join(fs, "out"), os.path.join(work, "state-out")
        server = serve(work, port, "fullout", "--rounds", "1", "--min-clients", str(N),
                       "--out", out, state=state)
        ps = run_clients(work, port)
        try:
            sout, _ = server.communicate(timeout=240)
        finally:
            stop_all([server] + ps)
        log = open(os.path.join(work, "serve-fullout.log")).read()
        assert server.returncode == 1, "serve exited %d\n%s" % (server.returncode, log[-3000:])
        assert "the publication files were not written" in log, log[-3000:]
        assert "not published to --out" in log, log[-3000:]
        assert os.path.exists(os.path.join(state, "unpublished-000001.pb"))
        assert not os.path.exists(os.path.join(out, "round-000001.pub"))
        subprocess.run(["mount", "-o", "remount,size=16m", fs], check=True)
        server = serve(work, port, "fullout-again", "--rounds", "1", "--out", out,
                       "--finished-grace", "0", state=state)
        server.communicate(timeout=60)
        log = open(os.path.join(work, "serve-fullout-again.log")).read()
        assert server.returncode == 0, "serve exited %d\n%s" % (server.returncode, log[-3000:])
        names = os.listdir(out)
        assert "round-000001.pub" in names and "round-000001.sig" in names, names
        assert "explanation-1.json" in names, names
        assert not [n for n in names if ".tmp-" in n], names
        assert not os.path.exists(os.path.join(state, "unpublished-000001.pb"))
        print("full --out: exit 1 naming round 1, written by the next run: ok")
    finally:
        umount(fs)


def small_state_is_an_error(work, port):
    fs = os.path.join(work, "statefs")
    if not mount_tmpfs(fs, "1m"):
        print("small --state: skipped (cannot mount a tmpfs here)")
        return
    try:
        state = os.path.join(fs, "state")
        server = serve(work, port, "smallstate", "--rounds", "3", "--keep", "3", state=state)
        server.communicate(timeout=60)
        log = open(os.path.join(work, "serve-smallstate.log")).read()
        assert server.returncode == 1, "serve exited %d" % server.returncode
        assert "cannot hold 3 checkpoints" in log and "lower --keep" in log, log[-2000:]
        # with room for --keep 1, it starts; the disk then fills up during the run
        subprocess.run(["mount", "-o", "remount,size=2m", fs], check=True)
        server = serve(work, port, "fills", "--rounds", "3", "--keep", "1",
                       "--min-clients", str(N), state=state)
        ps = run_clients(work, port)
        try:
            first = server.stdout.readline()
            assert json.loads(first)["round"] == 1, first
            with open(os.path.join(fs, "filler"), "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass
            t0 = time.time()
            server.communicate(timeout=120)
            took = time.time() - t0
        finally:
            stop_all([server] + ps)
        log = open(os.path.join(work, "serve-fills.log")).read()
        assert server.returncode == 1, "serve exited %d\n%s" % (server.returncode, log[-3000:])
        assert "round 2 cannot be checkpointed" in log, log[-3000:]
        print("small --state: refused at start; filled mid-run: stopped in %.1f s: ok" % took)
    finally:
        umount(fs)


def deadline_counts_after_the_checkpoint(work, port):
    """A checkpoint longer than --deadline (a slow disk, by the test hook):
    the next round's deadline counts from when its tasks go out, so it is not
    over before it starts."""
    server = serve(work, port, "slowdisk", "--rounds", "2", "--min-clients", str(N),
                   state=os.path.join(work, "state-slow"), deadline=4, fast=True,
                   env={"GLASSBOX_TEST_CHECKPOINT_DELAY_MS": "5000"})
    ps = run_clients(work, port)
    try:
        out, _ = server.communicate(timeout=120)
    finally:
        stop_all([server] + ps)
    log = open(os.path.join(work, "serve-slowdisk.log")).read()
    assert server.returncode == 0, "serve exited %d\n%s" % (server.returncode, log[-3000:])
    rounds = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["participants"] for r in rounds] == [N, N], rounds
    assert "deadline passed" not in log and "abandoned" not in log, log[-3000:]
    print("checkpoint of 5 s, deadline of 4 s: round 2 ran whole: ok")


def fresh_client_logs(work):
    for k in range(N):
        path = os.path.join(work, "client-%d.log" % k)
        if os.path.exists(path):
            os.remove(path)


def killed_client_quorum(work, port):
    fresh_client_logs(work)
    server = serve(work, port, "kill", "--rounds", "1", "--min-clients", str(N),
                   "--quorum", "2", "--finished-grace", "0",
                   state=os.path.join(work, "state-kill"))
    ps = [client(work, port, k) for k in range(N)]
    try:
        wait_for(os.path.join(work, "client-2.log"), "of round 1 started", 120)
        ps[2].kill()
        t0 = time.time()
        first = server.stdout.readline()
        took = time.time() - t0
        r1 = json.loads(first)
        assert r1["round"] == 1 and r1["participants"] == 2, r1
        assert took < DEADLINE_S / 10, "round 1 waited %.0f s for the killed client" % took
        server.communicate(timeout=120)
        assert server.returncode == 0, "serve exited %d" % server.returncode
        for k in range(2):
            ps[k].communicate(timeout=60)
            assert ps[k].returncode == 0, "client-%d exited %d" % (k, ps[k].returncode)
    finally:
        stop_all([server] + ps)
    print("killed client: round 1 closed %.1f s later with the other 2: ok" % took)


def coordinator_away(work, port):
    gap = 30 if os.environ.get("GLASSBOX_LONG") == "1" else 6
    state = os.path.join(work, "state-away")
    fresh_client_logs(work)
    server = serve(work, port, "away-1", "--rounds", "2", "--min-clients", str(N),
                   state=state, fast=True)
    ps = [client(work, port, k) for k in range(N)]
    again = None
    try:
        r1 = json.loads(server.stdout.readline())
        assert r1["round"] == 1, r1
        wait_for(os.path.join(state, "latest"), "", 30)
        server.kill()
        server.wait()
        time.sleep(gap)
        assert all(p.poll() is None for p in ps), "a client gave up while the coordinator was away"
        t0 = time.time()
        again = serve(work, port, "away-2", "--rounds", "2", "--min-clients", str(N),
                      state=state, fast=True)
        out, _ = again.communicate(timeout=180)
        took = time.time() - t0
        assert again.returncode == 0, "serve exited %d" % again.returncode
        rounds = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert [r["round"] for r in rounds] == [2], rounds
        assert rounds[0]["participants"] == N, rounds
        for k, p in enumerate(ps):
            p.communicate(timeout=60)
            assert p.returncode == 0, "client-%d exited %d" % (k, p.returncode)
    finally:
        stop_all([server] + ps + ([again] if again else []))
    print("coordinator away %d s: every client reconnected, round 2 finished %.1f s after "
          "the restart: ok" % (gap, took))


def main():
    work = tempfile.mkdtemp(prefix="gb-faults-")
    ca = os.path.join(work, "ca")
    run(COORD, "ca", "init", "--dir", ca, "--federation", "faults")
    for k in range(N):
        run(COORD, "ca", "issue", "--dir", ca, "--name", "client-%d" % k)
    port = free_port()
    stopped_client_is_not_waited_for(work, port)
    finished_federation_tells_returning_clients(work, port)
    client_gives_up(work)
    deadline_counts_after_the_checkpoint(work, free_port())
    full_out_is_loud_and_mended(work, free_port())
    small_state_is_an_error(work, free_port())
    killed_client_quorum(work, free_port())
    coordinator_away(work, free_port())


if __name__ == "__main__":
    main()
