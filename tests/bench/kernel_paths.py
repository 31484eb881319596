#!/usr/bin/python3
"""The engine's kernel paths against each other (engine/kernels.h): what
Glassbox's own AVX2 and AVX-512 kernels gain over the portable path (plain
loops and OpenBLAS, the peer they must beat to be kept), per model, in one
run.

For each model (lenet: SGD, batch 32; lstm: Adam, batch 64) and each path
this CPU has (GLASSBOX_KERNELS=portable, avx2, avx512), `glassbox-client
train --threads 1 --limit N --epochs 1` runs R times, the paths interleaved so
that background load falls on all of them; each run's CPU seconds
(user + system, from wait4) count, minus those of the same command with
--limit 1 (loading the data set and the start-up, the same for every path).
One thread and CPU time, not wall time, because CPU time moves far less when
other processes share the machine. Printed: the median CPU seconds of the
training and evaluation of N training and N test samples per path, samples
per CPU second, and the ratio to the portable path.

Usage: tests/bench/kernel_paths.py [--build DIR] [--models lenet,lstm]
       [--limit 10000] [--repeats 3]
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PRESETS = {
    "lenet": ["--model", "lenet", "--batch", "32", "--lr", "0.05", "--optimizer", "sgd"],
    "lstm": ["--model", "lstm", "--batch", "64", "--lr", "0.001", "--optimizer", "adam"],
}


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def paths():
    flags = open("/proc/cpuinfo").read().split("flags", 1)[1].split("\n", 1)[0].split()
    out = ["portable"]
    if "avx2" in flags and "fma" in flags:
        out.append("avx2")
    if all(f in flags for f in ("avx512f", "avx512dq", "avx512bw", "avx512vl")):
        out.append("avx512")
    return out


def cpu_seconds(cmd, path):
    env = dict(os.environ, GLASSBOX_KERNELS=path)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                         text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("kernel_paths: %s failed" % " ".join(cmd))
    ran = [json.loads(line) for line in out.splitlines() if line.startswith('{"epoch"')]
    if not ran or ran[0].get("kernels") != path:
        sys.exit("kernel_paths: asked for %s, the client ran %s" % (
            path, ran[0].get("kernels") if ran else "nothing"))
    return ru.ru_utime + ru.ru_stime


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--models", default="lenet,lstm")
    ap.add_argument("--limit", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    client = os.path.join(a.build, "glassbox-client")
    have = paths()
    res = {"cpu_model": cpu_model(), "limit": a.limit, "repeats": a.repeats, "models": {}}
    print("CPU: %s; paths here: %s; %d training + %d test samples, 1 thread, median of %d"
          % (res["cpu_model"], ", ".join(have), a.limit, a.limit, a.repeats))
    for model in a.models.split(","):
        base = [client, "train"] + PRESETS[model] + ["--data", "fashion-mnist", "--epochs", "1",
                                                     "--seed", "1", "--threads", "1", "--json"]
        runs = {p: [] for p in have}
        for _ in range(a.repeats):
            for p in have:
                start = cpu_seconds(base + ["--limit", "1"], p)
                runs[p].append(cpu_seconds(base + ["--limit", str(a.limit)], p) - start)
        portable = median(runs["portable"])
        print("\n%-6s %-10s %12s %18s %12s" % (model, "path", "CPU s", "samples/CPU s",
                                              "vs portable"))
        res["models"][model] = {}
        for p in have:
            s = median(runs[p])
            res["models"][model][p] = {"cpu_s": s, "runs": runs[p]}
            print("%-6s %-10s %12.3f %18.0f %11.2fx" % ("", p, s, 2 * a.limit / s, portable / s))
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    with open(os.path.join(HERE, "out", "kernel-paths-latest.json"), "w") as f:
        json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
