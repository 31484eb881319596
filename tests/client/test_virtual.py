#!/usr/bin/python3
"""`glassbox-client run --virtual 6`: six clients in one process make a whole
federation with `serve`, through the real binaries on loopback.

  ca init, `ca issue --out DIR` for client-0..client-5 -> serve --rounds 2
  --min-clients 6 --publish none -> ONE `glassbox-client run --virtual 6
  --clients 6 --json` on 600 Fashion-MNIST images -> serve's JSON lines show
  rounds 1 and 2 with 6 participants and all 600 samples (so the six slices
  are disjoint and cover the split), and the client process exits 0 with 12
  task lines, two per client, each naming its client; each client's samples
  are the same in both rounds; no two tasks of the process trained at once
  (their started_unix_ms + seconds intervals do not overlap: the clients
  share one run queue). The plain output names the client first.
  Then, with serve waiting for a seventh client, SIGTERM to the virtual
  process closes all six sessions (serve logs each one leaving) and it exits
  0 with no task line.

Usage: test_virtual.py BUILD_DIR
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "."
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import gbproc  # noqa: E402 (tests/support)
from gbproc import free_port  # noqa: E402 (tests/support)
CLIENT = os.path.join(BUILD, "glassbox-client")
COORD = os.path.join(BUILD, "glassbox-coordinator")
N = 6
LIMIT = 600


def run(*args, rc=0):
    return gbproc.run(*args, rc=rc, timeout=300)


def federation(work, ca, certs, json_out):
    """serve --rounds 2 and one virtual-client process; returns serve's JSON
    rounds and the client's stdout lines."""
    port = free_port()
    serve_log = open(os.path.join(work, "serve.log"), "a")
    server = subprocess.Popen([COORD, "serve", "--ca", ca,
                               "--listen", "tcp://127.0.0.1:%d" % port, "--publish", "none",
                               "--rounds", "2", "--min-clients", str(N), "--explain", "none",
                               "--deadline", "120", "--json"],
                              stdout=subprocess.PIPE, stderr=serve_log, text=True)
    client = None
    try:
        line = server.stdout.readline()
        assert line.startswith("listening on"), line
        client_log = open(os.path.join(work, "client.log"), "a")
        client = subprocess.Popen(
            [CLIENT, "run", "--virtual", str(N), "--clients", str(N), "--cert-dir", certs,
             "--coordinator", "tcp://127.0.0.1:%d" % port,
             "--ca-file", os.path.join(ca, "ca.crt"), "--data", "fashion-mnist",
             "--limit", str(LIMIT)] + (["--json"] if json_out else []),
            stdout=subprocess.PIPE, stderr=client_log, text=True)
        out, _ = server.communicate(timeout=240)
        assert server.returncode == 0, "serve exited %d" % server.returncode
        cout, _ = client.communicate(timeout=60)
        assert client.returncode == 0, "client exited %d:\n%s" % (
            client.returncode, open(os.path.join(work, "client.log")).read())
    finally:
        for p in (server, client):
            if p and p.poll() is None:
                p.kill()
                p.wait()
    rounds = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    return rounds, cout.splitlines()


def wait_for(path, text, count, proc, seconds=60):
    end = time.time() + seconds
    while time.time() < end:
        with open(path, encoding="utf-8", errors="replace") as f:
            if f.read().count(text) >= count:
                return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    with open(path, encoding="utf-8", errors="replace") as f:
        raise AssertionError("fewer than %d %r in %s:\n%s" % (count, text, path, f.read()))


def sigterm(work, ca, certs):
    """All six join a federation that never starts; SIGTERM stops all."""
    port = free_port()
    serve_log = os.path.join(work, "serve-sigterm.log")
    client_log = os.path.join(work, "client-sigterm.log")
    with open(serve_log, "w") as slog, open(client_log, "w") as clog:
        server = subprocess.Popen([COORD, "serve", "--ca", ca, "--listen",
                                   "tcp://127.0.0.1:%d" % port, "--publish", "none",
                                   "--min-clients", str(N + 1)],
                                  stdout=slog, stderr=subprocess.STDOUT)
        client = None
        try:
            wait_for(serve_log, "listening on", 1, server)
            client = subprocess.Popen(
                [CLIENT, "run", "--virtual", str(N), "--clients", str(N), "--cert-dir", certs,
                 "--coordinator", "tcp://127.0.0.1:%d" % port,
                 "--ca-file", os.path.join(ca, "ca.crt"), "--limit", str(LIMIT)],
                stdout=subprocess.PIPE, stderr=clog, text=True)
            # the round machine's count, once all N have joined (the front
            # door and the machine both log each join)
            wait_for(serve_log, "%d of %d known clients connected" % (N, N), 1, server)
            client.send_signal(signal.SIGTERM)
            out, _ = client.communicate(timeout=60)
            assert client.returncode == 0, "client exited %d" % client.returncode
            assert out == "", out
            wait_for(serve_log, "0 of %d known clients connected" % N, 1, server)
            with open(serve_log) as f:
                log = f.read()
            for k in range(N):
                assert "'client-%d' left" % k in log, log
        finally:
            for p in (client, server):
                if p and p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
    print("SIGTERM closes all %d sessions: ok" % N)


def main():
    work = tempfile.mkdtemp(prefix="gb-virtual-")
    ca = os.path.join(work, "ca")
    certs = os.path.join(work, "certs")
    run(COORD, "ca", "init", "--dir", ca)
    names = ["client-%d" % k for k in range(N)]
    for name in names:
        run(COORD, "ca", "issue", "--dir", ca, "--name", name, "--out", certs)

    rounds, lines = federation(work, ca, certs, json_out=True)
    assert [r["round"] for r in rounds] == [1, 2], rounds
    for r in rounds:
        assert r["participants"] == N and r["samples"] == LIMIT, r
    tasks = [json.loads(x) for x in lines]
    assert len(tasks) == 2 * N, lines
    by_client = {}
    for t in tasks:
        by_client.setdefault(t["client"], []).append(t)
    assert sorted(by_client) == names, sorted(by_client)
    for name, ts in by_client.items():
        assert sorted(t["round"] for t in ts) == [1, 2], (name, ts)
        assert ts[0]["samples"] == ts[1]["samples"] == LIMIT // N, (name, ts)
    assert len({t["task_id"] for t in tasks}) == 2 * N, tasks
    # one task at a time: sorted by start, each ends before the next starts
    # (1 ms of slack: the start is whole milliseconds, the time 3 decimals)
    runs = sorted((t["started_unix_ms"], t["started_unix_ms"] + 1000 * t["seconds"])
                  for t in tasks)
    for (s0, e0), (s1, _) in zip(runs, runs[1:]):
        assert s1 >= e0 - 1.0, ("two tasks trained at once", runs)
    assert all(t["queued_seconds"] >= 0 for t in tasks), tasks
    waited = max(t["queued_seconds"] for t in tasks)
    print("json: 2 rounds x %d participants, 12 task lines, one task at a time (the longest "
          "wait in the run queue %.3f s): ok" % (N, waited))

    rounds, lines = federation(work, ca, certs, json_out=False)
    assert [r["participants"] for r in rounds] == [N, N], rounds
    assert len(lines) == 2 * N, lines
    for name in names:
        for rnd in (1, 2):
            prefix = "%s: round %d task " % (name, rnd)
            assert sum(x.startswith(prefix) for x in lines) == 1, (prefix, lines)
    print("plain: every line names its client: ok")

    sigterm(work, ca, certs)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
