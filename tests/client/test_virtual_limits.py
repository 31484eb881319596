#!/usr/bin/python3
"""Descriptor and socket limits with real processes:

  1. `run --virtual N` under a hard descriptor limit too small for N is refused
     before anything starts, naming the limit and the fix;
  2. N virtual clients past ZeroMQ's default of 1,023 sockets a context (3 a
     client: 360 here, 1,000 with GLASSBOX_LONG=1) all join one coordinator;
     the descriptors each costs are measured and printed;
  3. a coordinator whose descriptors run out (hard limit 128, 200 connections
     held open) says so, refuses new connections without spinning (its CPU
     time while they are held stays small), takes connections again when they
     go, and then runs a round with a real client.

Usage: test_virtual_limits.py BUILD_DIR SOURCE_DIR
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

BUILD = sys.argv[1]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import gbproc  # noqa: E402 (tests/support)
from gbproc import free_port  # noqa: E402 (tests/support)
CLIENT = os.path.join(BUILD, "glassbox-client")
COORD = os.path.join(BUILD, "glassbox-coordinator")
N = 1000 if os.environ.get("GLASSBOX_LONG") == "1" else 360


def run(*args, rc=0, timeout=300):
    return gbproc.run(*args, rc=rc, timeout=timeout)


def wait_for(path, text, timeout, count=1):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path) and open(path).read().count(text) >= count:
            return
        time.sleep(0.1)
    raise AssertionError("%d x '%s' not in %s after %d s:\n%s" % (
        count, text, path, timeout, open(path).read()[-3000:]))


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(work, port, tag, *extra, prefix=()):
    log = os.path.join(work, "serve-%s.log" % tag)
    p = subprocess.Popen(list(prefix) + [COORD, "serve", "--ca", os.path.join(work, "ca"),
                                         "--listen", "tcp://127.0.0.1:%d" % port,
                                         "--http", "none", "--model", "mlp"] + list(extra),
                         stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)
    line = p.stdout.readline()
    assert line.startswith("listening on"), line
    return p, log


def virtual(work, port, n, prefix=(), log_name="virtual.log"):
    log = os.path.join(work, log_name)
    return subprocess.Popen(
        list(prefix) + [CLIENT, "run", "--virtual", str(n), "--cert-dir",
                        os.path.join(work, "certs"), "--coordinator",
                        "tcp://127.0.0.1:%d" % port, "--ca-file",
                        os.path.join(work, "ca", "ca.crt"), "--data", "fashion-mnist",
                        "--limit", str(10 * n), "--clients", str(n)],
        stdout=subprocess.DEVNULL, stderr=open(log, "w"), text=True), log


def refused_before_start(work, port):
    p = run("prlimit", "--nofile=256:256", CLIENT, "run", "--virtual", "100", "--cert-dir",
            os.path.join(work, "certs"), "--coordinator", "tcp://127.0.0.1:%d" % port,
            "--ca-file", os.path.join(work, "ca", "ca.crt"), "--data", "fashion-mnist",
            "--limit", "1000", "--clients", "100", rc=1, timeout=60)
    assert "--virtual 100 needs about 564 file descriptors" in p.stderr, p.stderr
    assert "hard limit is 256" in p.stderr and "LimitNOFILE=" in p.stderr, p.stderr
    print("--virtual 100 under a hard limit of 256: refused before it starts: ok")


def many_join(work, port):
    server, slog = serve(work, port, "many", "--min-clients", str(N + 1))
    v, vlog = virtual(work, port, N)
    try:
        wait_for(slog, "known clients connected", 300, count=N)
        fds = len(os.listdir("/proc/%d/fd" % v.pid))
        coord_fds = len(os.listdir("/proc/%d/fd" % server.pid))
    finally:
        for p in (v, server):
            p.terminate()
            p.wait(timeout=60)
    text = open(vlog).read()
    assert "Too many open files" not in text, text[-2000:]
    print("%d virtual clients joined (past 1,023 ZeroMQ sockets): %d descriptors, %.1f a "
          "client; the coordinator %d: ok" % (N, fds, fds / N, coord_fds))


def coordinator_out_of_descriptors(work, port):
    server, slog = serve(work, port, "lowfd", "--min-clients", "1", "--rounds", "1",
                         "--epochs", "1", "--explain", "none",
                         prefix=("prlimit", "--nofile=128:128"))
    held = []
    try:
        for _ in range(200):
            s = socket.socket()
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", port))
                held.append(s)
            except OSError:
                s.close()
        time.sleep(1)
        t0, c0 = time.time(), cpu_seconds(server.pid)
        time.sleep(3)
        busy = (cpu_seconds(server.pid) - c0) / (time.time() - t0)
        assert busy < 0.3, "the coordinator spins: %.0f%% of a core" % (100 * busy)
        wait_for(slog, "refuses new connections", 30)
        for s in held:
            s.close()
        held = []
        wait_for(slog, "takes new connections again", 30)
        c = subprocess.run(
            [CLIENT, "run", "--coordinator", "tcp://127.0.0.1:%d" % port,
             "--cert", os.path.join(work, "certs", "client-0.crt"),
             "--key", os.path.join(work, "certs", "client-0.key"),
             "--ca-file", os.path.join(work, "ca", "ca.crt"), "--data", "fashion-mnist",
             "--limit", "1000", "--threads", "1", "--give-up", "60"],
            capture_output=True, text=True, timeout=120)
        assert c.returncode == 0, c.stderr[-2000:]
        server.wait(timeout=60)
        assert server.returncode == 0, open(slog).read()[-3000:]
    finally:
        for s in held:
            s.close()
        if server.poll() is None:
            server.kill()
    print("coordinator at 128 descriptors: refused new connections at %.0f%% of a core, took "
          "them again, ran a round: ok" % (100 * busy))


def main():
    work = tempfile.mkdtemp(prefix="gb-vlimits-")
    ca = os.path.join(work, "ca")
    run(COORD, "ca", "init", "--dir", ca, "--federation", "limits")
    for k in range(N):
        run(COORD, "ca", "issue", "--dir", ca, "--name", "client-%d" % k, "--out",
            os.path.join(work, "certs"))
    refused_before_start(work, free_port())
    many_join(work, free_port())
    coordinator_out_of_descriptors(work, free_port())


if __name__ == "__main__":
    main()
