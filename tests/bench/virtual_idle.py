#!/usr/bin/python3
"""CPU time of idle virtual clients.

A coordinator (`serve --min-clients N+1`, so no round ever starts) takes N
virtual clients of one `glassbox-client run --virtual N` process; once all N
have joined (and a second has passed for their first heartbeats), the client
process's CPU time (user + system, /proc/PID/stat) is read over --seconds
seconds of wall time. Printed for each N: that time as a percentage of one
core, and per client. An idle client should cost nothing but its heartbeats
(one every 5 s by default) and ZeroMQ's own keepalives.

Usage: tests/bench/virtual_idle.py [--build DIR] [--counts 1,20,100] [--seconds 10]
The README's figure comes from the defaults.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from gbproc import cpu_seconds, free_port, stop  # noqa: E402


def wait_for_text(path, text, proc, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if text in open(path).read():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    sys.exit("'%s' not in %s after %d s:\n%s" % (text, path, timeout,
                                                open(path).read()[-3000:]))


def idle_cpu(build, work, n, seconds, extra=()):
    """Percent of one core the process of `run --virtual n` uses while idle."""
    coord = os.path.join(build, "glassbox-coordinator")
    client = os.path.join(build, "glassbox-client")
    port = free_port()
    slog = os.path.join(work, "serve-%d.log" % n)
    serve = subprocess.Popen(
        [coord, "serve", "--ca", os.path.join(work, "ca"), "--listen",
         "tcp://127.0.0.1:%d" % port, "--publish", "none", "--http", "none", "--model", "mlp",
         "--min-clients", str(n + 1)],
        stdout=subprocess.PIPE, stderr=open(slog, "w"), text=True)
    v = None
    try:
        line = serve.stdout.readline()
        assert line.startswith("listening on"), line
        v = subprocess.Popen(
            [client, "run", "--virtual", str(n), "--cert-dir", os.path.join(work, "certs"),
             "--coordinator", "tcp://127.0.0.1:%d" % port, "--ca-file",
             os.path.join(work, "ca", "ca.crt"), "--data", "fashion-mnist", "--limit",
             str(10 * n), "--clients", str(n)] + list(extra),
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "client-%d.log" % n), "w"))
        wait_for_text(slog, "%d of %d known clients connected" % (n, n), serve, 120)
        time.sleep(1.0)
        t0, c0 = time.monotonic(), cpu_seconds(v.pid)
        time.sleep(seconds)
        c1, t1 = cpu_seconds(v.pid), time.monotonic()
        return 100.0 * (c1 - c0) / (t1 - t0)
    finally:
        stop(v, serve)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--build", default=os.path.join(here, "..", "..", "build"))
    ap.add_argument("--counts", default="1,20,100")
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    counts = [int(c) for c in a.counts.split(",")]
    work = tempfile.mkdtemp(prefix="gb-vidle-")
    coord = os.path.join(a.build, "glassbox-coordinator")
    subprocess.run([coord, "ca", "init", "--dir", os.path.join(work, "ca"), "--federation",
                    "vidle"], check=True, capture_output=True)
    for k in range(max(counts)):
        subprocess.run([coord, "ca", "issue", "--dir", os.path.join(work, "ca"), "--name",
                        "client-%d" % k, "--out", os.path.join(work, "certs")], check=True,
                       capture_output=True)
    print("idle virtual clients, welcomed, no round running; CPU time of the client "
          "process over %.0f s:" % a.seconds)
    for n in counts:
        pct = idle_cpu(a.build, work, n, a.seconds)
        print("  --virtual %-4d %6.2f%% of a core  (%.3f%% per client)" % (n, pct, pct / n))
    print("(work directory %s)" % work)


if __name__ == "__main__":
    main()
