#!/usr/bin/python3
"""Idle virtual clients cost (almost) nothing: `glassbox-client run --virtual
100` against `serve --min-clients 101`, so no round ever starts; once all 100
have joined (and their first heartbeats have gone), the client process's CPU
time (user + system, /proc/PID/stat) over 10 s of wall time must stay under
10% of one core. The figure is printed. Before one poll served every daemon
the same process kept most of a core busy (tests/bench/README.md).

Usage: test_virtual_idle.py BUILD_DIR
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import gbproc  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 else "."
CLIENT = os.path.join(BUILD, "glassbox-client")
COORD = os.path.join(BUILD, "glassbox-coordinator")
N = 100
SECONDS = 10.0
BOUND = 0.10  # of one core; measured here: about 0.006


def main():
    work = tempfile.mkdtemp(prefix="gb-vidle-")
    ca = os.path.join(work, "ca")
    certs = os.path.join(work, "certs")
    gbproc.run(COORD, "ca", "init", "--dir", ca, "--federation", "idle")
    for k in range(N):
        gbproc.run(COORD, "ca", "issue", "--dir", ca, "--name", "client-%d" % k, "--out", certs)
    port = gbproc.free_port()
    slog = os.path.join(work, "serve.log")
    clog = os.path.join(work, "client.log")
    server = client = None
    with open(slog, "w") as so, open(clog, "w") as co:
        try:
            server = subprocess.Popen(
                [COORD, "serve", "--ca", ca, "--listen", "tcp://127.0.0.1:%d" % port,
                 "--publish", "none", "--http", "none", "--model", "mlp",
                 "--min-clients", str(N + 1)],
                stdout=so, stderr=subprocess.STDOUT)
            gbproc.wait_for_text(slog, "listening on", timeout=60)
            client = subprocess.Popen(
                [CLIENT, "run", "--virtual", str(N), "--clients", str(N), "--cert-dir", certs,
                 "--coordinator", "tcp://127.0.0.1:%d" % port, "--ca-file",
                 os.path.join(ca, "ca.crt"), "--data", "fashion-mnist", "--limit",
                 str(10 * N)],
                stdout=subprocess.DEVNULL, stderr=co)
            gbproc.wait_for_text(slog, "%d of %d known clients connected" % (N, N),
                                 timeout=180)
            time.sleep(1.0)  # the Welcomes' first heartbeats
            assert client.poll() is None, open(clog).read()[-3000:]
            t0, c0 = time.monotonic(), gbproc.cpu_seconds(client.pid)
            time.sleep(SECONDS)
            c1, t1 = gbproc.cpu_seconds(client.pid), time.monotonic()
            busy = (c1 - c0) / (t1 - t0)
            print("%d idle virtual clients: %.2f%% of a core over %.0f s (%.4f%% each)" %
                  (N, 100 * busy, t1 - t0, 100 * busy / N))
            assert busy < BOUND, "idle virtual clients use %.1f%% of a core (bound %.0f%%)" % (
                100 * busy, 100 * BOUND)
            with open(slog) as f:
                log = f.read()
            after = log.split("%d of %d known clients connected" % (N, N), 1)[1]
            assert not re.search(r"'client-\d+' left", after), \
                "a client left while idle (heartbeats late?):\n" + log[-3000:]
            client.send_signal(signal.SIGTERM)
            client.wait(timeout=60)
            assert client.returncode == 0, "client exited %d" % client.returncode
        finally:
            gbproc.stop(client, server)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
