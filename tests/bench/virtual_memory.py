#!/usr/bin/python3
"""Memory of virtual clients while they train and explain.

A short federation on loopback (LeNet, 2 rounds, 1 epoch on each client's
slice, integrated gradients on --explain-samples samples per round) is run
with `glassbox-client run --virtual N` for each N given, and the peak resident
memory of the client process (its rusage, as /usr/bin/time -v reports it) is
read for each. Printed: the peak for each N, the cost of each extra virtual
client (the slope between the smallest and the largest N), and, as the peer,
the peak of one plain `glassbox-client run` process: what N separate client
processes would cost each.

Usage: tests/bench/virtual_memory.py [--build DIR] [--counts 1,8] [--limit 8000]
       [--explain-samples 16] [--explain-steps 32]
The README's figure comes from the defaults.
"""
import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def peak_mb(cmd, log):
    """Runs cmd to its end; its peak RSS in MB (ru_maxrss of the child)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    _, status, ru = os.wait4(p.pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        sys.exit("%s exited %d; see %s" % (cmd[0], rc, log))
    return ru.ru_maxrss / 1024.0


def federation(a, work, n, virtual):
    coord = os.path.join(a.build, "glassbox-coordinator")
    client = os.path.join(a.build, "glassbox-client")
    port = free_port()
    serve = subprocess.Popen(
        [coord, "serve", "--ca", os.path.join(work, "ca"), "--listen",
         "tcp://127.0.0.1:%d" % port, "--http", "none", "--model", "lenet", "--rounds", "2",
         "--min-clients", str(n), "--epochs", "1", "--explain", "ig", "--explain-samples",
         str(a.explain_samples), "--explain-steps", str(a.explain_steps),
         "--finished-grace", "0"],
        stdout=subprocess.PIPE, stderr=open(os.path.join(work, "serve-%d.log" % n), "w"),
        text=True)
    assert serve.stdout.readline().startswith("listening on")
    common = ["--coordinator", "tcp://127.0.0.1:%d" % port, "--ca-file",
              os.path.join(work, "ca", "ca.crt"), "--data", "fashion-mnist", "--limit",
              str(a.limit), "--threads", "1"]
    if virtual:
        cmd = [client, "run", "--virtual", str(n), "--cert-dir", os.path.join(work, "certs"),
               "--clients", str(n)] + common
    else:
        certs = os.path.join(work, "certs")
        cmd = [client, "run", "--cert", os.path.join(certs, "client-0.crt"), "--key",
               os.path.join(certs, "client-0.key")] + common
    mb = peak_mb(cmd, os.path.join(work, "client-%d-%s.log" % (n, virtual)))
    serve.communicate(timeout=300)
    return mb


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--build", default=os.path.join(here, "..", "..", "build"))
    ap.add_argument("--counts", default="1,8")
    ap.add_argument("--limit", type=int, default=8000)
    ap.add_argument("--explain-samples", type=int, default=16)
    ap.add_argument("--explain-steps", type=int, default=32)
    a = ap.parse_args()
    counts = sorted(int(c) for c in a.counts.split(","))
    work = tempfile.mkdtemp(prefix="gb-vmem-")
    coord = os.path.join(a.build, "glassbox-coordinator")
    subprocess.run([coord, "ca", "init", "--dir", os.path.join(work, "ca"), "--federation",
                    "vmem"], check=True, capture_output=True)
    for k in range(max(counts)):
        subprocess.run([coord, "ca", "issue", "--dir", os.path.join(work, "ca"), "--name",
                        "client-%d" % k, "--out", os.path.join(work, "certs")], check=True,
                       capture_output=True)
    print("LeNet, 2 rounds, 1 epoch on --limit %d split among the clients, IG on %d samples "
          "x %d steps; peak resident memory of the client process:" %
          (a.limit, a.explain_samples, a.explain_steps))
    one = federation(a, work, 1, False)
    print("  one plain client process (the peer):  %7.1f MB" % one)
    peaks = {}
    for n in counts:
        peaks[n] = federation(a, work, n, True)
        print("  --virtual %-4d                        %7.1f MB" % (n, peaks[n]))
    lo, hi = counts[0], counts[-1]
    if hi > lo:
        per = (peaks[hi] - peaks[lo]) / (hi - lo)
        print("each extra virtual client: %.1f MB; %d clients in one process take %.2f x "
              "the memory of %d plain processes" % (per, hi, peaks[hi] / (hi * one), hi))
    print("(work directory %s; self: %.0f MB)" %
          (work, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))


if __name__ == "__main__":
    main()
