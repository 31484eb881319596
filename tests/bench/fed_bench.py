#!/usr/bin/python3
"""The federation benchmark: Glassbox's real federation against PyTorch's
sequential FedAvg simulation, on the same shards (issue 11).

Usage:

  /usr/bin/python3 tests/bench/fed_bench.py --build build-fed
      [--partition dirichlet:0.5|iid|both] [--rounds 20] [--quick]
      [--threads auto|1|2] [--torch-threads auto|T:B] [--limit N]
      [--eval-threads E] [--profile-rounds 3] [--profile-build DIR] [--ab-rounds R]
      [--skip-profile] [--skip-ab] [--skip-torch] [--out DIR]

--quick: 3 rounds on the first 12,000 training samples, Glassbox --threads 2
and PyTorch torch 2 / OpenBLAS 1 without trials: a check that everything
runs, in about 2 minutes for both partitions; its figures mean nothing.

Both sides: Fashion-MNIST, LeNet (conv 16 5, relu, maxpool 2, conv 32 5, relu,
maxpool 2, flatten, dense 128, relu, dense 10; each side's default
initialisation), 10 clients, every client every round, 1 local epoch,
batch 32, SGD lr 0.05 without momentum, FedAvg weighted by samples,
--rounds (20) rounds, the global model evaluated on the 10,000 test images
after every round. The shards: build/gb_fed_shards (fed_shards.c) prints the
sample indices of every client, cut by Glassbox's own partition function
(data/partition.h) with the federation's seed; PyTorch trains on those, and
the Glassbox clients' task reports are checked against their sizes.

Glassbox runs the real processes on loopback, mutual TLS and all:

  glassbox-coordinator serve --ca CA --listen tcp://127.0.0.1:P --http ... \\
      --model lenet --rounds R --min-clients 10 --epochs 1 --batch 32 \\
      --lr 0.05 --optimizer sgd --explain ig --explain-samples 64 \\
      --test-data fashion-mnist --threads E --out OUT --json \\
      --simulate-clients 10 --simulate-partition P --seed 1
  glassbox-client run --virtual 10 --cert-dir CERTS --coordinator ... \\
      --data fashion-mnist --shard-from-coordinator --threads T --json

Today's glassbox-client refuses --shard-from-coordinator together with
--virtual (client/cmd_run.c); then (shard mode "local", found out by trying)
the one --virtual 10 process cuts the same slices itself with --clients 10
--partition P --partition-seed 1: client-K takes slice K, which is exactly
gb_fed_shards' slice K (both call the same partition function on the same
labels with the same seed). The benchmark says which mode ran.

Order of the runs: PyTorch's thread trials (torch_train.py --trial at torch
1/2 x OpenBLAS 1/2, the fastest counts, as bench.py does); then, once, the
Glassbox --threads trial (3-round federations at --threads 1, 2, 1, 2; each
setting's best mean round after the first counts); then per partition the
measured Glassbox federation, PyTorch's right after it, a profiled Glassbox
federation of --profile-rounds rounds and a --explain none one of
--ab-rounds rounds (all --rounds by default: round 1 explains a random
model, whose IG doubles its steps, and weighs a fifth of a 5-round A/B).

Measured for each side and partition: the wall time of the whole federation
(Glassbox: from serve's start to the line of the last round published;
PyTorch: from its process's start, imports and data loading included, to the
last round's evaluation), the sum of the round times (serve's per-round
"seconds": first task out to checkpoint), the test accuracy after every round,
the share of the machine's CPUs other processes used meanwhile
("interference"). Where Glassbox's round time goes: serve's
glassbox_round_phase_seconds (aggregate, evaluate, publish, checkpoint; read
from /metrics as each round's line appears), the rest of the round being the
training phase (tasks out to the last update in), and the clients' task
reports (seconds of train + explain per client).

The explanation's share, three measures, the verdict the largest: timed,
the clients' explain_seconds (each task's explanation as its runner timed
it) over the measured run / its round times; profiled, the client process of
a further federation runs under `perf record -e cpu-clock --call-graph
fp` (a --profile-build configured with -DGLASSBOX_FRAME_POINTERS=ON; DWARF
unwinding, for any other build, stops inside the engine's kernels and
leaves most samples to the nearest-phase rule), each CPU sample is put in a phase by its stack (profile_phases:
explain, train, task setup, data loading, the client loop's links and
polling, other), and share = explain CPU seconds / (the client's CPU seconds
+ serve's); A/B, 1 - (round times with --explain none) / (the measured run's
first as many round times), which also counts serve's side of explaining;
the --explain none round times are first scaled by the ratio of the two
runs' client training seconds (the same arithmetic in both: the ratio is
the machine's speed between the runs, which on a shared VM swings by more
than the explanation's share).

Targets: Glassbox wall time at most half PyTorch's (ratio PyTorch/Glassbox
>= 2.0), its accuracy after the last round at least PyTorch's minus 1 point,
the explanation's share at most 15%. The results go to
tests/bench/out/fed-latest.json (and fed-<UTC time>.json).
"""

import argparse
import bisect
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from bench import check_build, proc_stat, settle_blas_core  # noqa: E402

CLIENTS = 10
SHOWN_ROUNDS = (1, 5, 10, 20)
TARGET_RATIO = 2.0
TARGET_ACC_POINTS = -1.0
TARGET_SHARE = 0.15
TORCH = os.path.join(HERE, "fed_torch.py")
PERF_HZ = 200       # samples a CPU-second in the profiled run
PERF_STACK = 8192   # bytes of stack copied per sample for the DWARF unwinder
DATA_DIR = "/usr/share/datasets/fashion-mnist"


LIVE = []  # processes started and not yet waited for: stopped if the benchmark is


def start(cmd, **kw):
    proc = subprocess.Popen(cmd, **kw)
    LIVE.append(proc)
    return proc


def reap(proc):
    """os.wait4 on proc: (exit code, rusage)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc in LIVE:
        LIVE.remove(proc)
    return proc.returncode, usage


def stop_live(*_):
    """SIGTERM to every live child (perf passes it on to its workload), then
    SIGKILL to those still there after 3 s."""
    for proc in list(LIVE):
        if proc.poll() is None:
            proc.terminate()
    for proc in list(LIVE):
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    raise SystemExit("fed: stopped")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def cpu_flags():
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            return line.split(":", 1)[1].split()
    return []


def interference(b0, b1, own_cpu, wall):
    """Share of all CPUs' time used by anything but our processes."""
    return max(0.0, (b1 - b0) - own_cpu) / (wall * (os.cpu_count() or 1))


class Reader(threading.Thread):
    """Reads a process's stdout line by line, keeping each JSON object with
    the monotonic time it arrived; calls on_obj(obj) for each."""

    def __init__(self, stream, on_obj=None):
        super().__init__(daemon=True)
        self.stream, self.on_obj = stream, on_obj
        self.objs, self.lines = [], []

    def run(self):
        for line in self.stream:
            now = time.monotonic()
            self.lines.append(line)
            line = line.strip()
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                obj["_t"] = now
                if self.on_obj:
                    self.on_obj(obj)
                self.objs.append(obj)


def phase_seconds(http):
    """glassbox_round_phase_seconds and glassbox_round_seconds from serve's
    /metrics: the last finished round's."""
    try:
        text = urllib.request.urlopen("http://%s/metrics" % http, timeout=2).read().decode()
    except OSError:
        return {}
    out = {}
    for m in re.finditer(r'^glassbox_round_phase_seconds\{phase="(\w+)"\} (\S+)$', text, re.M):
        out[m.group(1)] = float(m.group(2))
    m = re.search(r"^glassbox_round_seconds (\S+)$", text, re.M)
    if m:
        out["round"] = float(m.group(1))
    return out


class Glassbox:
    """The CA, the certificates and the runs of the real federation."""

    def __init__(self, args, work):
        self.a, self.work = args, work
        self.coord = os.path.join(args.build, "glassbox-coordinator")
        self.client = os.path.join(args.build, "glassbox-client")
        self.ca = os.path.join(work, "ca")
        self.certs = os.path.join(work, "certs")
        self.mode = args.shard_mode  # auto: dealt, falling back to local
        subprocess.run([self.coord, "ca", "init", "--dir", self.ca, "--federation", "fedbench"],
                       check=True, capture_output=True)
        for k in range(CLIENTS):
            subprocess.run([self.coord, "ca", "issue", "--dir", self.ca, "--name",
                            "client-%d" % k, "--out", self.certs], check=True,
                           capture_output=True)

    def commands(self, partition, explain, threads, rounds, tag, mode):
        a = self.a
        port, http = free_port(), "127.0.0.1:%d" % free_port()
        out = os.path.join(self.work, "out-" + tag)
        shutil.rmtree(out, ignore_errors=True)
        serve = [self.coord, "serve", "--ca", self.ca, "--listen", "tcp://127.0.0.1:%d" % port,
                 "--http", http, "--model", "lenet", "--model-seed", str(a.seed),
                 "--seed", str(a.seed), "--rounds", str(rounds),
                 "--min-clients", str(CLIENTS), "--epochs", "1", "--batch", "32",
                 "--lr", "0.05", "--optimizer", "sgd", "--explain", explain,
                 "--explain-samples", str(a.explain_samples), "--test-data", a.data,
                 "--threads", str(a.eval_threads), "--out", out, "--finished-grace", "0",
                 "--json"]
        client = [self.client, "run", "--virtual", str(CLIENTS), "--cert-dir", self.certs,
                  "--coordinator", "tcp://127.0.0.1:%d" % port, "--ca-file",
                  os.path.join(self.ca, "ca.crt"), "--data", a.data, "--threads",
                  str(threads), "--json"]
        if a.limit:
            client += ["--limit", str(a.limit)]
        if mode == "dealt":
            serve += ["--simulate-clients", str(CLIENTS), "--simulate-partition", partition]
            client += ["--shard-from-coordinator"]
        else:
            client += ["--clients", str(CLIENTS), "--partition", partition,
                       "--partition-seed", str(a.seed)]
        return serve, client, http

    def run(self, partition, explain, threads, rounds, tag, perf=None):
        """One federation; returns its figures. In shard mode auto, tries the
        coordinator's dealing first and falls back to local cuts when the
        client refuses the combination (exit 2 naming the flag). perf: a
        file to record the client's CPU profile into (perf record)."""
        modes = ["dealt", "local"] if self.mode == "auto" else [self.mode]
        for mode in modes:
            res = self._run(partition, explain, threads, rounds, tag, mode, perf)
            if res is not None:
                if self.mode == "auto":
                    log("fed: shard mode %s (%s)" % (mode, "the coordinator deals the slices"
                        if mode == "dealt" else "glassbox-client refuses "
                        "--shard-from-coordinator with --virtual today: the one process "
                        "cuts slice K for client-K itself, --clients 10 --partition P "
                        "--partition-seed %d" % self.a.seed))
                self.mode = mode
                return res
        raise SystemExit("fed: no shard mode worked")

    def _run(self, partition, explain, threads, rounds, tag, mode, perf):
        serve_cmd, client_cmd, http = self.commands(partition, explain, threads, rounds, tag,
                                                    mode)
        if perf:
            client_cmd[0] = os.path.join(self.a.profile_build, "glassbox-client")
            graph = "fp" if frame_pointers(self.a.profile_build) else "dwarf,%d" % PERF_STACK
            client_cmd = ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(PERF_HZ),
                          "--call-graph", graph, "-o", perf, "--"] + client_cmd
        log("$ " + " ".join(serve_cmd))
        log("$ " + " ".join(client_cmd))
        serve_log = os.path.join(self.work, "serve-%s.log" % tag)
        client_log = os.path.join(self.work, "client-%s.log" % tag)
        phases = {}

        def on_round(obj):
            if "round" in obj:
                phases[obj["round"]] = phase_seconds(http)
                log("  glassbox %s round %d: %.2f s, test accuracy %.2f%%"
                    % (tag, obj["round"], obj["seconds"], 100 * obj.get("test_accuracy", 0)))

        b0, _ = proc_stat()
        t0 = time.monotonic()
        serve = start(serve_cmd, stdout=subprocess.PIPE, text=True,
                      stderr=open(serve_log, "w"))
        sr = Reader(serve.stdout, on_round)
        sr.start()
        # the listening line first, so the client's first connection finds it
        while not any(line.startswith("listening on") for line in sr.lines):
            if serve.poll() is not None:
                raise SystemExit("fed: serve exited %d; see %s" % (serve.returncode, serve_log))
            time.sleep(0.01)
        client = start(client_cmd, stdout=subprocess.PIPE, text=True,
                       stderr=open(client_log, "w"))
        cr = Reader(client.stdout)
        cr.start()
        crc, cusage = reap(client)
        if crc == 2 and mode == "dealt" and "--shard-from-coordinator" in open(client_log).read():
            serve.terminate()
            reap(serve)
            return None
        if crc != 0:
            serve.kill()
            reap(serve)
            raise SystemExit("fed: glassbox-client exited %d; see %s" % (crc, client_log))
        src, susage = reap(serve)
        sr.join(timeout=10)
        cr.join(timeout=10)
        t_end = time.monotonic()
        b1, _ = proc_stat()
        if src != 0:
            raise SystemExit("fed: serve exited %d; see %s" % (src, serve_log))
        rounds_out = [o for o in sr.objs if "round" in o]
        tasks = [o for o in cr.objs if "task_id" in o]
        if len(rounds_out) != rounds:
            raise SystemExit("fed: serve finished %d rounds of %d; see %s"
                             % (len(rounds_out), rounds, serve_log))
        own = (cusage.ru_utime + cusage.ru_stime + susage.ru_utime + susage.ru_stime)
        per_round = []
        for r in rounds_out:
            ph = phases.get(r["round"], {})
            mine = [t for t in tasks if t["round"] == r["round"]]
            per_round.append({
                "round": r["round"], "seconds": r["seconds"],
                "test_accuracy": r.get("test_accuracy"), "test_loss": r.get("test_loss"),
                "train_loss": r.get("train_loss"), "samples": r.get("samples"),
                "participants": r.get("participants"),
                "phases": {k: v for k, v in ph.items() if k != "round"},
                "task_seconds_max": max((t["seconds"] for t in mine), default=None),
                "task_seconds_mean": (sum(t["seconds"] for t in mine) / len(mine)
                                      if mine else None),
                "explained": sum(t.get("explained", 0) for t in mine),
                "explain_seconds": sum(t.get("explain_seconds") or 0 for t in mine),
                "train_seconds": sum(t.get("train_seconds") or 0 for t in mine)})
        sizes = {}
        for t in tasks:
            sizes.setdefault(t["client"], t["samples"])
        wall = rounds_out[-1]["_t"] - t0
        return {"mode": mode, "explain": explain, "threads": threads,
                "eval_threads": self.a.eval_threads, "serve": serve_cmd, "client": client_cmd,
                "wall_s": wall, "process_wall_s": t_end - t0,
                "rounds_sum_s": sum(r["seconds"] for r in rounds_out), "rounds": per_round,
                "client_sizes": sizes,
                "client_cpu_s": cusage.ru_utime + cusage.ru_stime,
                "serve_cpu_s": susage.ru_utime + susage.ru_stime,
                "client_peak_rss_mib": cusage.ru_maxrss / 1024.0,
                "serve_peak_rss_mib": susage.ru_maxrss / 1024.0,
                "interference": interference(b0, b1, own, t_end - t0),
                "logs": [serve_log, client_log]}


# What a profiled client's CPU sample was doing: the first frame from the leaf
# up that names a phase decides (perf script's symbols; static functions
# keep theirs in a Release build).
PHASE_FRAMES = [
    ("explain", ("s_explain", "s_explain_batch", "gb_explain", "gb_explain_gradients_run",
                 "gb_summary_")),
    ("train", ("s_train", "gb_train")),
    ("client evaluate", ("s_evaluate", "gb_evaluate")),
    ("task setup (runner, params, plan)", ("gb_task_runner_", "s_prepare", "s_commit")),
    ("data load and cut", ("gb_dataset_", "gb_pixels_", "gb_data_source_", "gb_idx_",
                           "gb_partition_", "s_cut")),
    ("client loop: links, TLS, ZeroMQ, polling", (
        "SSL_", "ssl", "tls", "EVP_", "gb_channel", "gb_link", "zmq", "gb_frame", "gb_envelope",
        "protobuf_c", "glassbox__", "gb_daemon_step", "gb_virtual_step")),
]
POOL_THREAD = "s_worker"  # util/pool.c's thread function: the engine's extra threads
OTHER = "other (poll, syscalls, page faults, not unwound)"
PROFILE_ATTEMPTS = 3
PROFILE_MAX_OTHER = 0.25  # a profile with more than this share without a phase is redone
NEAREST_S = 0.5          # a sample without a phase takes its thread's nearest one's


def frame_pointers(build):
    """True when build was configured with GLASSBOX_FRAME_POINTERS=ON: its
    stacks unwind by frame pointers, whole, where DWARF unwinding of the
    8 KiB perf copies stops inside the engine's kernels."""
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            return any(l.strip() == "GLASSBOX_FRAME_POINTERS:BOOL=ON" for l in f)
    except OSError:
        return False


def profile_phases(perf_file, hz):
    """Classifies every CPU sample of a perf record; returns {phase: CPU
    seconds}. A sample's phase is the first frame from the leaf up that
    names one (PHASE_FRAMES). Where the DWARF unwinder stopped early (in
    OpenBLAS's assembly kernels, say), the sample takes the phase of the
    nearest sample in time of the same thread that has one (within
    NEAREST_S): a client's worker thread runs its task's phases one after
    another. The engine's pool threads (--threads 2) never show the task's
    frames: their samples are split among explain, train and evaluate in
    the proportion of those phases' samples on the clients' own threads."""
    p = subprocess.run(["perf", "script", "-i", perf_file, "-F", "tid,time,ip,sym"],
                       capture_output=True, text=True)
    samples = []  # (tid, time, frames)
    head, frames = None, []
    for line in p.stdout.splitlines() + [""]:
        if not line.strip():
            if head:
                samples.append((head[0], head[1], frames))
            head, frames = None, []
        elif line.startswith("\t"):
            parts = line.split(None, 1)
            frames.append(parts[1].strip() if len(parts) > 1 else "?")
        else:
            f = line.split()
            try:
                head = (int(f[0]), float(f[1].rstrip(":")))
            except (IndexError, ValueError):
                head = None
    pool_tids = {tid for tid, _, fr in samples if POOL_THREAD in fr}

    def phase_of(fr):
        for f in fr:
            for name, marks in PHASE_FRAMES:
                if any(f.startswith(m) for m in marks):
                    return name
        return None

    by_tid = {}
    for tid, t, fr in samples:
        by_tid.setdefault(tid, []).append((t, phase_of(fr)))
    counts, nearest = {}, 0
    pool_n = 0
    for tid, seq in by_tid.items():
        if tid in pool_tids:
            pool_n += len(seq)
            continue
        known = [(t, ph) for t, ph in seq if ph]
        for t, ph in seq:
            if ph is None and known:
                i = bisect.bisect_left(known, (t, ""))
                best = min((known[j] for j in (i - 1, i) if 0 <= j < len(known)),
                           key=lambda k: abs(k[0] - t))
                if abs(best[0] - t) <= NEAREST_S:
                    ph = best[1]
                    nearest += 1
            ph = ph or OTHER
            counts[ph] = counts.get(ph, 0) + 1
    secs = {k: v / float(hz) for k, v in counts.items()}
    pool = pool_n / float(hz)
    work = {k: secs.get(k, 0.0) for k in ("explain", "train", "client evaluate")}
    tot = sum(work.values())
    if pool and tot:
        for k, v in work.items():
            secs[k] = secs.get(k, 0.0) + pool * v / tot
    elif pool:
        secs["engine pool threads"] = pool
    return {"seconds": secs, "pool_split_s": pool, "samples": len(samples),
            "by_nearest": nearest}


def torch_run(args, shards_file, rounds, tt, bt):
    cmd = [sys.executable, TORCH, "--shards", shards_file, "--rounds", str(rounds),
           "--threads", str(tt), "--seed", str(args.seed)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(bt))
    log("$ OPENBLAS_NUM_THREADS=%d %s" % (bt, " ".join(cmd)))
    b0, _ = proc_stat()
    t0 = time.monotonic()
    p = start(cmd, stdout=subprocess.PIPE, text=True, env=env)

    def on_round(obj):
        if "round" in obj:
            log("  pytorch round %d: %.2f s, test accuracy %.2f%%"
                % (obj["round"], obj["seconds"], 100 * obj["test_accuracy"]))

    r = Reader(p.stdout, on_round)
    r.start()
    code, usage = reap(p)
    r.join(timeout=10)
    t_end = time.monotonic()
    b1, _ = proc_stat()
    if code != 0:
        raise SystemExit("fed: fed_torch.py exited %d" % code)
    rounds_out = [o for o in r.objs if "round" in o]
    head = next(o for o in r.objs if o.get("start"))
    return {"cmd": cmd, "torch_threads": tt, "openblas_threads": bt,
            "wall_s": rounds_out[-1]["_t"] - t0, "process_wall_s": t_end - t0,
            "rounds_sum_s": sum(o["seconds"] for o in rounds_out),
            "load_s": head["load_seconds"], "sizes": head["sizes"],
            "rounds": [{k: v for k, v in o.items() if k != "_t"} for o in rounds_out],
            "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024.0,
            "interference": interference(b0, b1, usage.ru_utime + usage.ru_stime, t_end - t0)}


def torch_best_threads(args):
    """PyTorch's fastest thread setting for LeNet training, as bench.py finds
    it: torch_train.py --trial N at torch 1/2 x OpenBLAS 1/2; or the one given."""
    if args.torch_threads != "auto":
        tt, bt = (int(v) for v in args.torch_threads.split(":"))
        return tt, bt, "given (--torch-threads %d:%d)" % (tt, bt), []
    trials = []
    for tt in (1, 2):
        for bt in (1, 2):
            cmd = [sys.executable, os.path.join(HERE, "torch_train.py"), "--model", "lenet",
                   "--threads", str(tt), "--trial", str(args.trial_batches)]
            p = subprocess.run(cmd, capture_output=True, text=True,
                               env=dict(os.environ, OPENBLAS_NUM_THREADS=str(bt)))
            obj = json.loads([line for line in p.stdout.splitlines() if line.startswith("{")][-1])
            trials.append({"torch_threads": tt, "openblas_threads": bt,
                           "samples_per_s": obj["samples_per_s"]})
            log("  pytorch trial torch %d / OpenBLAS %d: %.0f samples/s"
                % (tt, bt, obj["samples_per_s"]))
    best = max(trials, key=lambda t: t["samples_per_s"])
    return (best["torch_threads"], best["openblas_threads"],
            "fastest of the trials (torch_train.py --trial %d at torch 1/2 x OpenBLAS 1/2)"
            % args.trial_batches, trials)


def shards_of(args, partition, work):
    path = os.path.join(work, "shards-%s.json" % partition.replace(":", "-"))
    cmd = [os.path.join(args.build, "gb_fed_shards"), "--data", args.data, "--partition",
           partition, "--clients", str(CLIENTS), "--seed", str(args.seed)]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    with open(path, "w") as f:
        subprocess.run(cmd, check=True, stdout=f)
    with open(path) as f:
        spec = json.load(f)
    return path, spec


def check_sizes(gb, spec):
    """The clients' task reports against gb_fed_shards' slices: by name in
    local mode (client-K holds slice K), as a multiset when dealt."""
    reported = gb["client_sizes"]
    if gb["mode"] == "local":
        want = {"client-%d" % k: n for k, n in enumerate(spec["sizes"])}
        ok = reported == want
    else:
        ok = sorted(reported.values()) == sorted(spec["sizes"])
    return ok, reported


def acc_at(rounds, r):
    for o in rounds:
        if o["round"] == r:
            return o.get("test_accuracy")
    return None


def verdict(ok):
    return "PASS" if ok else "MISS"


def breakdown(gb):
    """Where a Glassbox round's time goes, summed over the rounds."""
    total = gb["rounds_sum_s"]
    ph = {}
    for r in gb["rounds"]:
        for k, v in r["phases"].items():
            ph[k] = ph.get(k, 0.0) + v
    server = sum(ph.values())
    tasks = sum(r["task_seconds_max"] or 0 for r in gb["rounds"])
    return {"rounds_sum_s": total, "server_phases_s": ph, "server_s": server,
            "training_phase_s": total - server, "slowest_task_s": tasks,
            "outside_rounds_s": gb["wall_s"] - total,
            "client_cpu_s": gb["client_cpu_s"], "serve_cpu_s": gb["serve_cpu_s"],
            "cpu_use": (gb["client_cpu_s"] + gb["serve_cpu_s"]) /
                       (gb["process_wall_s"] * (os.cpu_count() or 1))}


def table(res):
    p, gb, pt = res["partition"], res["glassbox"], res.get("pytorch")
    lines = ["", "== %s: %d clients, %d rounds, LeNet, 1 local epoch, batch 32, SGD 0.05 =="
             % (p, CLIENTS, res["rounds"])]
    add = lines.append
    add("%-44s %14s %14s %9s" % ("", "Glassbox", "PyTorch", "ratio"))

    def row(name, g, t, ratio=None):
        fmt = lambda v: ("%14.1f" % v) if isinstance(v, float) else "%14s" % (v if v is not None
                                                                             else "-")
        add("%-44s %s %s %9s" % (name, fmt(g), fmt(t), ("%8.2fx" % ratio) if ratio else ""))

    row("wall time s (start to last round)", gb["wall_s"], pt and pt["wall_s"],
        pt and pt["wall_s"] / gb["wall_s"])
    row("sum of round times s", gb["rounds_sum_s"], pt and pt["rounds_sum_s"],
        pt and pt["rounds_sum_s"] / gb["rounds_sum_s"])
    gcpu = gb["client_cpu_s"] + gb["serve_cpu_s"]
    row("CPU seconds, user + sys (all processes)", gcpu, pt and pt["cpu_s"],
        pt and pt["cpu_s"] / gcpu)
    for r in SHOWN_ROUNDS:
        if r > res["rounds"]:
            continue
        g, t = acc_at(gb["rounds"], r), pt and acc_at(pt["rounds"], r)
        d = "%+.2f pt" % (100 * (g - t)) if g is not None and t is not None else ""
        add("%-44s %14s %14s %9s" % ("test accuracy %% after round %d" % r,
                                     "%.2f" % (100 * g) if g is not None else "-",
                                     "%.2f" % (100 * t) if t is not None else "-", d))
    last = res["rounds"]
    add("%-44s %14s %14s" % ("settings", "--threads %d, eval %d" % (gb["threads"],
                                                                 gb["eval_threads"]),
                             pt and "torch %d / BLAS %d" % (pt["torch_threads"],
                                                           pt["openblas_threads"]) or "-"))
    add("%-44s %13.0f%% %13.0f%%" % ("interference (others' CPU share)",
                                     100 * gb["interference"],
                                     100 * pt["interference"] if pt else 0))
    add("%-44s %14.1f %14.1f" % ("peak RSS MiB (client process / torch)",
                                 gb["client_peak_rss_mib"], pt["peak_rss_mib"] if pt else 0))
    b = res["breakdown"]
    add("Glassbox, where the %.1f s of rounds went (summed over rounds):" % b["rounds_sum_s"])
    add("  training phase (tasks out to last update in)  %6.1f s  (slowest client's task, "
        "train + explain: %.1f s)" % (b["training_phase_s"], b["slowest_task_s"]))
    for k in ("aggregate", "evaluate", "publish", "checkpoint"):
        if k in b["server_phases_s"]:
            add("  server %-38s %6.1f s" % (k, b["server_phases_s"][k]))
    add("  outside rounds (start, TLS joins, data load)  %6.1f s" % b["outside_rounds_s"])
    add("  CPU: client %.1f s, serve %.1f s: %.0f%% of the machine's %d CPUs over the run"
        % (b["client_cpu_s"], b["serve_cpu_s"], 100 * b["cpu_use"], os.cpu_count()))
    prof, ab = res.get("profile"), res.get("share_ab")
    tm = res["share_timed"]
    add("explanation share, timed in the clients over all %d rounds: explain %.1f s / %.1f s "
        "of rounds = %.1f%%" % (len(gb["rounds"]), tm["explain_s"], tm["rounds_sum_s"],
                                100 * tm["share"]))
    if prof:
        ph = prof["client_phases_cpu_s"]
        add("explanation share (profiled %d-round run, %.1f s of rounds): explain %.1f CPU s / "
            "(client %.1f + serve %.1f CPU s) = %.1f%%"
            % (prof["rounds"], prof["rounds_sum_s"], ph.get("explain", 0),
               sum(ph.values()), prof["serve_cpu_s"], 100 * prof["explain_cpu_share"]))
        add("  client CPU by phase: " + ", ".join(
            "%s %.1f s" % (k, v) for k, v in sorted(ph.items(), key=lambda kv: -kv[1])) +
            (" (engine pool threads' %.1f s split among explain/train/evaluate)"
             % prof["pool_split_s"] if prof["pool_split_s"] else ""))
        add("  explain as wall time on %d CPUs: %.1f%% of the round time"
            % (os.cpu_count(), 100 * prof["explain_round_share"]))
        add("  stacks unwound by %s; %d of %d samples took their thread's nearest phase%s"
            % ("frame pointers" if prof.get("unwinding") == "fp" else "DWARF",
               prof["by_nearest"], prof["samples"],
               "" if prof.get("unwinding") == "fp" else
               " (DWARF stops inside the engine's kernels: phases approximate; profile a build "
               "configured with -DGLASSBOX_FRAME_POINTERS=ON, --profile-build DIR)"))
    if ab:
        add("explanation share, A/B over %d rounds: 1 - %.1f s (--explain none) x %.3f "
            "(training %.1f s with / %.1f s without: the machine's speed between the runs) / "
            "%.1f s (--explain ig) = %.1f%% (uncorrected %.1f%%, median round %.1f%%; clients' "
            "mean task %.2f s with, %.2f s without; interference %.0f%%)"
            % (ab["rounds"], ab["none_rounds_sum_s"], ab.get("speed_ratio") or 1.0,
               ab.get("ig_train_s", 0), ab.get("none_train_s", 0), ab["ig_rounds_sum_s"],
               100 * ab["share"], 100 * ab.get("raw_share", ab["share"]),
               100 * ab["median_round_share"], ab["ig_task_mean_s"], ab["none_task_mean_s"],
               100 * ab["interference"]))
    add("shards: %s; sizes %s (clients' reports %s)" % (
        gb["mode"], res["shard_sizes"], "match" if res["sizes_match"] else "DIFFER: %s"
        % res["reported_sizes"]))
    t = res["targets"]
    if "ratio" in t:
        add("%s wall-time ratio PyTorch / Glassbox %.2fx (target >= %.1fx)"
            % (verdict(t["ratio"]["ok"]), t["ratio"]["value"], TARGET_RATIO))
    if "accuracy" in t:
        add("%s accuracy after round %d: %+.2f points (target >= %+.1f)"
            % (verdict(t["accuracy"]["ok"]), last, t["accuracy"]["value"], TARGET_ACC_POINTS))
    if "share" in t:
        add("%s explanation share %.1f%% (%s; target <= %.0f%%)"
            % (verdict(t["share"]["ok"]), 100 * t["share"]["value"],
               {"profile": "of the CPU, profiled", "ab": "A/B wall time",
                "timed": "timed in the clients"}[t["share"]["from"]] +
               ", the largest of the measures",
               100 * TARGET_SHARE))
    return "\n".join(lines)


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def gb_threads_trial(args, gbx, partition):
    """--threads 1 against 2 per virtual client: short federations of this
    partition (explanations on), alternating 1, 2, 1, 2 so that background
    load falls on both; each setting's best mean round time after the first
    round counts (other processes only ever slow a run down)."""
    rounds = 3
    runs = []
    for rep in range(args.trial_reps):
        for t in (1, 2):
            r = gbx.run(partition, "ig", t, rounds, "trial-t%d-%d" % (t, rep))
            later = [x["seconds"] for x in r["rounds"][1:]]
            runs.append({"threads": t, "round_s": sum(later) / len(later),
                         "interference": r["interference"]})
            log("  glassbox trial --threads %d: %.2f s a round (rounds 2-%d), interference "
                "%.0f%%" % (t, runs[-1]["round_s"], rounds, 100 * r["interference"]))
    best = {t: min(r["round_s"] for r in runs if r["threads"] == t) for t in (1, 2)}
    return min(best, key=best.get), {"runs": runs, "best_round_s": best,
                                     "partition": partition, "rounds": rounds}


def main():
    ap = argparse.ArgumentParser(description="Glassbox's federation against PyTorch's "
                                 "sequential FedAvg on the same shards")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--partition", default="both",
                    help="dirichlet:ALPHA, iid, shards:K or both (dirichlet:0.5 and iid)")
    ap.add_argument("--rounds", type=int, default=None, help="default 20 (3 with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help="3 rounds on --limit 12000, no thread trials (threads 2, torch 2:1), "
                    "no --explain none run")
    ap.add_argument("--limit", type=int, default=None,
                    help="first N training samples (default all; 12000 with --quick)")
    ap.add_argument("--threads", default=None,
                    help="glassbox-client --threads per virtual client: 1, 2 or auto (a "
                    "3-round trial of each; default auto, 2 with --quick)")
    ap.add_argument("--eval-threads", type=int, default=2,
                    help="serve --threads for its test-set evaluation (default 2)")
    ap.add_argument("--torch-threads", default=None,
                    help="T:B (torch threads : OpenBLAS threads) or auto (trials; the default, "
                    "2:1 with --quick)")
    ap.add_argument("--trial-batches", type=int, default=200,
                    help="batches of each PyTorch thread trial (torch_train.py --trial)")
    ap.add_argument("--trial-reps", type=int, default=2,
                    help="runs of each --threads setting in the Glassbox trial (default 2)")
    ap.add_argument("--explain-samples", type=int, default=64)
    ap.add_argument("--shard-mode", choices=("auto", "dealt", "local"), default="auto",
                    help="dealt: serve deals the slices (run --shard-from-coordinator); "
                    "local: the client cuts them (--clients 10 --partition P); auto: dealt "
                    "if the client takes it, else local")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--skip-profile", action="store_true",
                    help="no profiled Glassbox run (perf record): no explain CPU share")
    ap.add_argument("--profile-build", default=None,
                    help="build whose glassbox-client the profiled run uses (default "
                    "--build); one configured with -DGLASSBOX_FRAME_POINTERS=ON is unwound "
                    "by frame pointers (perf --call-graph fp), any other by DWARF")
    ap.add_argument("--profile-rounds", type=int, default=3,
                    help="rounds of the profiled run (default 3)")
    ap.add_argument("--skip-ab", action="store_true",
                    help="no Glassbox run with --explain none (the A/B explanation share)")
    ap.add_argument("--ab-rounds", type=int, default=None,
                    help="rounds of the --explain none run, compared with as many of the "
                    "measured run (default: all of them, --rounds)")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, stop_live)
    signal.signal(signal.SIGINT, stop_live)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 20
    if args.limit is None:
        args.limit = 12000 if args.quick else 0
    if args.threads is None:
        args.threads = "2" if args.quick else "auto"
    if args.torch_threads is None:
        args.torch_threads = "2:1" if args.quick else "auto"
    parts = ["dirichlet:0.5", "iid"] if args.partition == "both" else [args.partition]
    build = check_build(args.build)
    args.profile_build = args.profile_build or args.build
    if not args.skip_profile and not os.access(
            os.path.join(args.profile_build, "glassbox-client"), os.X_OK):
        raise SystemExit("fed: %s/glassbox-client not built" % args.profile_build)
    for b in ("glassbox-coordinator", "glassbox-client", "gb_fed_shards"):
        if not os.access(os.path.join(args.build, b), os.X_OK):
            raise SystemExit("fed: %s/%s not built (cmake --build %s)" % (args.build, b,
                                                                        args.build))
    settled = settle_blas_core()
    if settled:
        log("fed: %s, for both sides" % settled)
    b0, t0 = proc_stat()
    time.sleep(1)
    b1, t1 = proc_stat()
    busy = (b1 - b0) / max(1e-9, t1 - t0)
    flags = cpu_flags()
    env_note = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                               "GLASSBOX_KERNELS", "OMP_NUM_THREADS")}
    log("fed: CPU %s, %d vCPUs, AVX-512 %s; %.0f%% busy before starting; %s"
        % (cpu_model(), os.cpu_count(), "yes" if "avx512f" in flags else "no", 100 * busy,
           env_note))
    work = tempfile.mkdtemp(prefix="gb-fed-")
    gbx = Glassbox(args, work)
    tt, bt, why, torch_trials = (None, None, None, [])
    if not args.skip_torch:
        tt, bt, why, torch_trials = torch_best_threads(args)
        log("fed: PyTorch at torch %d / OpenBLAS %d threads: %s" % (tt, bt, why))
    results = []
    kernels = None
    trial = None  # the --threads trial, run once on the first partition
    threads = None if args.threads == "auto" else int(args.threads)
    stamp = datetime.datetime.utcnow().strftime("%Y%m%d-%H%M%S")
    os.makedirs(args.out, exist_ok=True)

    def save():
        """The JSON summary so far: written after every partition."""
        summary = {"when_utc": stamp, "cpu": cpu_model(), "cpus": os.cpu_count(),
                   "avx512": "avx512f" in flags, "kernels": kernels, "build": build,
                   "build_dir": args.build, "cpu_busy_at_start": busy, "env": env_note,
                   "blas_core_settled": settled, "shard_mode": gbx.mode,
                   "torch_threads": tt, "openblas_threads": bt, "torch_threads_why": why,
                   "torch_trials": torch_trials, "glassbox_threads": threads,
                   "glassbox_threads_trial": trial, "quick": args.quick,
                   "partitions": parts, "results": results, "work_dir": work}
        for name in ("fed-%s.json" % stamp, "fed-latest.json"):
            with open(os.path.join(args.out, name), "w") as f:
                json.dump(summary, f, indent=1, default=str)

    for p in parts:
        shards_file, spec = shards_of(args, p, work)
        kernels = spec["kernels"]
        log("fed: %s shards %s (seed %d, kernels %s)" % (p, spec["sizes"], args.seed, kernels))
        if args.threads == "auto" and trial is None:
            threads, trial = gb_threads_trial(args, gbx, p)
            log("fed: glassbox --threads %d is faster today (best round %s s)"
                % (threads, trial["best_round_s"]))
        elif args.threads != "auto":
            threads = int(args.threads)
        gb = gbx.run(p, "ig", threads, args.rounds, "%s-ig" % p)
        res = {"partition": p, "rounds": args.rounds, "limit": args.limit,
               "explain_samples": args.explain_samples, "glassbox": gb,
               "glassbox_threads_trial": trial if trial and trial["partition"] == p else None,
               "shard_sizes": spec["sizes"]}
        res["sizes_match"], res["reported_sizes"] = check_sizes(gb, spec)
        # PyTorch right after the measured Glassbox run, so that the two meet
        # the machine's background load as closely as they can
        if not args.skip_torch:
            pt = torch_run(args, shards_file, args.rounds, tt, bt)
            res["pytorch"] = pt
            if pt["sizes"] != spec["sizes"]:
                raise SystemExit("fed: fed_torch.py read other shard sizes")
        if not args.skip_profile:
            # perf's DWARF unwinder now and then unwinds no user stack at all
            # for a whole recording (every sample a lone leaf frame): such a
            # profile is recorded again, up to PROFILE_ATTEMPTS times
            for attempt in range(1, PROFILE_ATTEMPTS + 1):
                pf = os.path.join(work, "perf-%s-%d.data" % (p.replace(":", "-"), attempt))
                prof = gbx.run(p, "ig", threads, args.profile_rounds, "%s-perf" % p, perf=pf)
                ph = profile_phases(pf, PERF_HZ)
                lost = ph["seconds"].get(OTHER, 0.0) / max(1e-9, sum(ph["seconds"].values()))
                if lost <= PROFILE_MAX_OTHER:
                    break
                log("fed: %.0f%% of the profile has no phase (the unwinder failed)%s"
                    % (100 * lost, "; again" if attempt < PROFILE_ATTEMPTS else ""))
            ph["attempts"] = attempt
            client_s = sum(ph["seconds"].values())
            ours = client_s + prof["serve_cpu_s"]
            ex = ph["seconds"].get("explain", 0.0)
            res["profile"] = {
                "rounds": args.profile_rounds, "hz": PERF_HZ,
                "client_phases_cpu_s": ph["seconds"], "pool_split_s": ph["pool_split_s"],
                "samples": ph["samples"], "by_nearest": ph["by_nearest"], "perf_data": pf,
                "attempts": ph["attempts"],
                "serve_cpu_s": prof["serve_cpu_s"], "rounds_sum_s": prof["rounds_sum_s"],
                "wall_s": prof["wall_s"], "interference": prof["interference"],
                "explain_cpu_share": ex / ours if ours else None,
                "explain_round_share": (ex / (os.cpu_count() or 1)) / prof["rounds_sum_s"],
                "unwinding": "fp" if frame_pointers(args.profile_build) else "dwarf",
                "how": "perf record -e cpu-clock -F %d --call-graph %s of the client process "
                       "in a %d-round federation like the measured one: explain CPU seconds "
                       "(samples under s_explain / gb_explain) / (all client CPU seconds + "
                       "serve's CPU seconds)"
                       % (PERF_HZ, "fp" if frame_pointers(args.profile_build) else "dwarf",
                          args.profile_rounds)}
        if not args.skip_ab:
            k = min(args.ab_rounds or args.rounds, args.rounds)
            none = gbx.run(p, "none", threads, k, "%s-none" % p)
            with_ig = gb["rounds"][:k]
            ig_sum = sum(r["seconds"] for r in with_ig)
            per = [1 - n["seconds"] / g["seconds"] for g, n in zip(with_ig, none["rounds"])]
            res["glassbox_no_explain"] = none
            # The two runs train the same shards with the same epochs and
            # batches: the same arithmetic, so the ratio of their clients'
            # training times is the machine's speed between the runs (this
            # VM's swings by 10% and more within minutes), and the --explain
            # none rounds are scaled by it before they are compared.
            ig_train = sum(r["train_seconds"] for r in with_ig)
            none_train = sum(r["train_seconds"] for r in none["rounds"])
            speed = ig_train / none_train if ig_train > 0 and none_train > 0 else None
            res["share_ab"] = {
                "rounds": k, "share": 1 - none["rounds_sum_s"] * (speed or 1.0) / ig_sum,
                "raw_share": 1 - none["rounds_sum_s"] / ig_sum, "speed_ratio": speed,
                "ig_train_s": ig_train, "none_train_s": none_train,
                "ig_rounds_sum_s": ig_sum, "none_rounds_sum_s": none["rounds_sum_s"],
                "median_round_share": median(per),
                "ig_task_mean_s": sum(r["task_seconds_mean"] for r in with_ig) / k,
                "none_task_mean_s": sum(r["task_seconds_mean"] for r in none["rounds"]) / k,
                "interference": none["interference"],
                "how": "1 - sum of the first %d round times with --explain none, times the "
                       "ratio of the two runs' client training seconds (the machine's speed "
                       "between them), / with --explain ig (the measured run), same "
                       "partition, threads and seed" % k}
        ex_s = sum(r["explain_seconds"] for r in gb["rounds"])
        res["share_timed"] = {
            "explain_s": ex_s, "rounds_sum_s": gb["rounds_sum_s"],
            "share": ex_s / gb["rounds_sum_s"],
            "how": "the clients' explain_seconds (each task's explanation, wall time, timed "
                   "by the task runner) summed over the measured run / its round times: "
                   "the virtual clients run their tasks one at a time on all cores"}
        res["breakdown"] = breakdown(gb)
        t = {}
        if "pytorch" in res:
            ratio = res["pytorch"]["wall_s"] / gb["wall_s"]
            t["ratio"] = {"value": ratio, "target": TARGET_RATIO, "ok": ratio >= TARGET_RATIO}
            d = 100 * (acc_at(gb["rounds"], args.rounds) -
                       acc_at(res["pytorch"]["rounds"], args.rounds))
            t["accuracy"] = {"value": d, "target": TARGET_ACC_POINTS,
                             "ok": d >= TARGET_ACC_POINTS}
        # The verdict takes the largest measure: the timed one counts only the
        # clients' explaining; the profile can
        # leave the engine's pool threads' CPU unattributed (it splits them
        # evenly among the phases), which understates the explanation when
        # its batches keep the pool busier than training's do; the A/B is a
        # wall-time difference, fair when the machine was quiet for both.
        shares = [(res["share_timed"]["share"], "timed")]
        if "profile" in res:
            shares.append((res["profile"]["explain_cpu_share"], "profile"))
        if "share_ab" in res and res["share_ab"].get("interference", 1) <= 0.05:
            shares.append((res["share_ab"]["share"], "ab"))
        if shares:
            share, frm = max(shares)
            t["share"] = {"value": share, "target": TARGET_SHARE, "ok": share <= TARGET_SHARE,
                          "from": frm}
        res["targets"] = t
        results.append(res)
        save()
        print(table(res), flush=True)
    print("\nCPU: %s, %d vCPUs, AVX-512 %s; Glassbox engine kernel path: %s "
          "(gb_fed_shards' gb_kernels(), the same process environment)"
          % (cpu_model(), os.cpu_count(), "yes" if "avx512f" in flags else "no", kernels))
    if trial:
        print("Glassbox --threads per virtual client: %d (trial, best mean round after the "
              "first: --threads 1 %.2f s, --threads 2 %.2f s)"
              % (threads, trial["best_round_s"][1], trial["best_round_s"][2]))
    else:
        print("Glassbox --threads per virtual client: %d (given)" % threads)
    if tt:
        print("PyTorch 1.13: torch %d threads, OPENBLAS_NUM_THREADS=%d: %s" % (tt, bt, why))
    print("shards: %s" % ("dealt by serve --simulate-clients (run --shard-from-coordinator)"
                          if gbx.mode == "dealt" else
                          "cut by the one run --virtual 10 process (--clients 10 --partition P "
                          "--partition-seed %d); today's run refuses --shard-from-coordinator "
                          "with --virtual" % args.seed))
    print("results: %s (work directory %s)" % (os.path.join(args.out, "fed-latest.json"), work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
