#!/usr/bin/python3
"""One coordinator carrying many clients (issue 11): P client processes of
`glassbox-client run --virtual N` each (default 4 x 250 = 1,000 clients) join
one `glassbox-coordinator serve` on loopback; LeNet, a few local steps a
round, --per-round clients selected a round (default 100), --rounds rounds
(default 5), no explanations unless --explain is given.

Printed:
  - per round: its time (serve's --json "seconds": from the tasks going out
    to the round's publication), the coordinator's CPU seconds over the round
    (from /proc/PID/stat between round lines), and the clients that took part;
  - the coordinator's peak RSS (its VmHWM, read until it exits) and descriptors
    once every client joined;
  - memory per idle virtual client beyond its data shard: a process with all
    N clients joined and idle against one with a single client joined, both
    before any round (VmRSS), the difference over N - 1, with the shard's own
    bytes (its slice of the packed training images) taken out;
  - descriptors per client process and per client.

Usage: tests/bench/scale_bench.py [--build DIR] [--processes 4] [--per-process 250]
       [--per-round 100] [--rounds 5] [--steps 5] [--explain none]
The figures in tests/bench/README.md come from the defaults. Not a ctest test:
it takes a few minutes, most of them making 1,000 certificates.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
from gbproc import cpu_seconds, free_port, rss_mib, run, wait_for_text  # noqa: E402

TRAIN_IMAGES = 60000  # Fashion-MNIST's training split
IMAGE_BYTES = 28 * 28  # the shard's images as uint8 (held packed: an upper bound)


def hwm_mib(pid):
    """Peak resident memory of a live process so far (VmHWM), MiB."""
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def certificates(coord, work, count):
    ca = os.path.join(work, "ca")
    run(coord, "ca", "init", "--dir", ca, "--federation", "scale")
    t0 = time.time()
    for k in range(count):
        run(coord, "ca", "issue", "--dir", ca, "--name", "client-%d" % k, "--out",
            os.path.join(work, "certs"))
        if k % 100 == 99:
            print("  %d certificates (%.0f s)" % (k + 1, time.time() - t0), file=sys.stderr,
                  flush=True)


def client_process(a, work, port, index, count, total, log):
    return subprocess.Popen(
        [os.path.join(a.build, "glassbox-client"), "run", "--virtual", str(count),
         "--index", str(index), "--clients", str(total), "--cert-dir",
         os.path.join(work, "certs"), "--coordinator", "tcp://127.0.0.1:%d" % port,
         "--ca-file", os.path.join(work, "ca", "ca.crt"), "--data", "fashion-mnist",
         "--give-up", "120"],
        stdout=subprocess.DEVNULL, stderr=open(log, "w"))


def idle_memory(a, work):
    """VmRSS of one process with N idle virtual clients and of one with a
    single client, both joined to a coordinator that starts no round."""
    out = {}
    total = a.processes * a.per_process
    for n in (1, a.per_process):
        port = free_port()
        slog = os.path.join(work, "idle-serve-%d.log" % n)
        serve = subprocess.Popen(
            [os.path.join(a.build, "glassbox-coordinator"), "serve", "--ca",
             os.path.join(work, "ca"), "--listen", "tcp://127.0.0.1:%d" % port, "--http",
             "none", "--model", "lenet", "--min-clients", str(total + 1)],
            stdout=subprocess.PIPE, stderr=open(slog, "w"), text=True)
        assert serve.stdout.readline().startswith("listening on")
        c = client_process(a, work, port, 0, n, total, os.path.join(work, "idle-%d.log" % n))
        try:
            wait_for_text(slog, "known clients connected", count=n, timeout=300)
            time.sleep(2)
            out[n] = {"rss_mib": rss_mib(c.pid), "fds": fds(c.pid)}
        finally:
            for p in (c, serve):
                p.terminate()
                p.wait(timeout=60)
    return out


def federation(a, work):
    total = a.processes * a.per_process
    port = free_port()
    slog = os.path.join(work, "serve.log")
    cmd = [os.path.join(a.build, "glassbox-coordinator"), "serve", "--ca",
           os.path.join(work, "ca"), "--listen", "tcp://127.0.0.1:%d" % port, "--http", "none",
           "--model", "lenet", "--rounds", str(a.rounds), "--min-clients", str(total),
           "--per-round", str(a.per_round), "--fraction", str(a.per_round / total),
           "--steps", str(a.steps), "--explain", a.explain, "--finished-grace", "5",
           "--json", "--deadline", "300"]
    serve = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(slog, "w"), text=True)
    assert serve.stdout.readline().startswith("listening on")
    rounds, lines = [], []
    reader = threading.Thread(target=lambda: lines.extend(serve.stdout), daemon=True)
    reader.start()
    t_start = time.time()
    clients = []
    for p in range(a.processes):
        clients.append(client_process(a, work, port, p * a.per_process, a.per_process, total,
                                      os.path.join(work, "clients-%d.log" % p)))
    wait_for_text(slog, "known clients connected", count=total, timeout=600)
    joined_s = time.time() - t_start
    coord_fds = fds(serve.pid)
    client_fds = [fds(c.pid) for c in clients]
    print("  all %d clients joined in %.1f s" % (total, joined_s), file=sys.stderr, flush=True)
    cpu0 = cpu_seconds(serve.pid)
    seen, peak = 0, hwm_mib(serve.pid)
    while serve.poll() is None or seen < len(lines):
        peak = max(peak, hwm_mib(serve.pid))
        while seen < len(lines):
            line = lines[seen]
            seen += 1
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            now = cpu_seconds(serve.pid) if serve.poll() is None else cpu0
            r["coordinator_cpu_s"] = now - cpu0
            cpu0 = now
            rounds.append(r)
            print("  round %d: %d clients, %.2f s, coordinator %.2f CPU s"
                  % (r["round"], r["participants"], r["seconds"], r["coordinator_cpu_s"]),
                  file=sys.stderr, flush=True)
        time.sleep(0.05)
    for c in clients:
        try:
            c.wait(timeout=120)
        except subprocess.TimeoutExpired:
            c.kill()
    return {"rounds": rounds, "joined_s": joined_s, "coordinator_fds": coord_fds,
            "client_fds": client_fds, "coordinator_peak_rss_mib": peak,
            "serve_rc": serve.returncode}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--per-process", type=int, default=250)
    ap.add_argument("--per-round", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--explain", default="none")
    a = ap.parse_args()
    total = a.processes * a.per_process
    work = tempfile.mkdtemp(prefix="gb-scale-")
    print("scale bench: %d processes x %d virtual clients, %d selected a round, %d rounds of "
          "%d local steps; work in %s" % (a.processes, a.per_process, a.per_round, a.rounds,
                                           a.steps, work), file=sys.stderr, flush=True)
    certificates(os.path.join(a.build, "glassbox-coordinator"), work, total)
    idle = idle_memory(a, work)
    fed = federation(a, work)
    shard_mib = TRAIN_IMAGES / total * IMAGE_BYTES / 2**20
    n = a.per_process
    per_client = (idle[n]["rss_mib"] - idle[1]["rss_mib"]) / (n - 1) if n > 1 else 0.0
    beyond = per_client - shard_mib
    rounds = fed["rounds"]
    times = sorted(r["seconds"] for r in rounds)
    cpus = [r["coordinator_cpu_s"] for r in rounds]
    res = {"cpu_model": open("/proc/cpuinfo").read().split("model name", 1)[1]
           .split(":", 1)[1].split("\n", 1)[0].strip(), "cpus": os.cpu_count(),
           "clients": total, "processes": a.processes, "per_round": a.per_round,
           "steps": a.steps, "explain": a.explain, "idle": idle,
           "memory_per_idle_client_mib": per_client, "shard_mib": shard_mib,
           "memory_beyond_shard_mib": beyond, **fed}
    print()
    print("%d clients (%d processes of --virtual %d) on one coordinator, %s, %d CPUs"
          % (total, a.processes, n, res["cpu_model"], res["cpus"]))
    print("%-44s %s" % ("rounds completed", "%d of %d" % (len(rounds), a.rounds)))
    if rounds:
        print("%-44s %.2f s (min %.2f, max %.2f)" % ("round time, median", times[len(times) // 2],
                                                      times[0], times[-1]))
        print("%-44s %.2f s" % ("coordinator CPU per round, median",
                                sorted(cpus)[len(cpus) // 2]))
    print("%-44s %s" % ("coordinator peak RSS", "%.1f MiB" % fed["coordinator_peak_rss_mib"]
                        if fed["coordinator_peak_rss_mib"] else "?"))
    print("%-44s %d (%.2f a client)" % ("coordinator descriptors, all joined",
                                        fed["coordinator_fds"], fed["coordinator_fds"] / total))
    print("%-44s %s (%.2f a client)" % ("descriptors per client process",
                                        ", ".join(str(x) for x in fed["client_fds"]),
                                        sum(fed["client_fds"]) / total))
    print("%-44s %.2f MiB, its shard included (a shard's images are at most %.2f MiB; target: "
          "at most 1 MiB beyond them)" % ("memory per idle virtual client", per_client,
                                          shard_mib))
    ok = len(rounds) == a.rounds and beyond <= 1.0
    print("%-6s rounds complete and <= 1 MB per idle virtual client beyond its shard"
          % ("PASS" if ok else "MISS"))
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    with open(os.path.join(HERE, "out", "scale-latest.json"), "w") as f:
        json.dump(res, f, indent=1)
    return 0 if len(rounds) == a.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
