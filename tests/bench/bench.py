#!/usr/bin/python3
"""The benchmark: Glassbox against PyTorch 1.13 on this machine, in one run,
for the lenet and lstm presets.

Usage (tests/bench/run.sh builds first, then runs this; README.md beside it
says more):

  /usr/bin/python3 tests/bench/bench.py [--build DIR] [--model lenet|lstm|ig|all]
      [--quick] [--seeds K] [--retries N] [--dry-run] [--skip-glassbox]
      [--trial-batches N] [--out DIR]

--model all (the default) runs the LeNet benchmark, then the LSTM one, then
the explanation benchmark (--model ig, run_ig below: integrated gradients
with 32 Gauss-Legendre steps over 1,000 test images for both presets,
gb_ig_bench against torch_ig.py, target >= 2.0x); each is exactly what
--model lenet, lstm or ig runs alone. Both sides train
the preset on the 60,000 Fashion-MNIST training images (inputs x/255,
default initialisation, seeds 1..K, one run each) for 3 epochs (1 with
--quick), evaluating on the 10,000 test images after every epoch, each run
in its own process so that peak RSS is its own:

  lenet   batch 32, SGD lr 0.05 without momentum
  lstm    each image read row by row (28 steps of 28 features), LSTM hidden
          128, last hidden state, dense 10; batch 64, Adam lr 1e-3

  Glassbox  <build>/glassbox-client train --model M --data fashion-mnist
            --epochs 3 --batch N --lr LR --optimizer O --seed S
            --threads T --json
  PyTorch   tests/bench/torch_train.py --model M --batch N --lr LR
            --optimizer O --seed S --threads T (with OPENBLAS_NUM_THREADS=B)

Each side runs at its best thread setting, chosen per model by short timing
runs first: PyTorch over torch threads {1, 2} x OpenBLAS threads {1, 2}
(--trial-batches batches after a warm-up), Glassbox over --threads {1, 2}
(one epoch limited to --trial-batches batches); every setting is timed
--trial-rounds times (default 2, rounds interleaved) and its best round
counts, so that a burst of other load cannot pass over a side's fastest
setting (PyTorch's LSTM at OpenBLAS 2 threads drops from 6,200 to 2,100
samples/s while anything else runs). OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE are left as the environment has them, but for one case:
when OPENBLAS_CORETYPE is unset and OpenBLAS falls back to a core without
AVX2 on a CPU that has it, the run sets OPENBLAS_CORETYPE=Haswell for every
process, as Glassbox's binaries do for themselves (settle_blas_core). gb_sgemm_peak
measures OpenBLAS's square sgemm at 1 and 2 threads as a ceiling, at the
start and at the end of the whole run (the better counts).

Reported per model (targets from the issues; MODELS below): training
samples/s Glassbox / PyTorch (lenet >= 1.5, lstm >= 2.0), inference images/s
Glassbox / PyTorch (lenet >= 1.5, lstm >= 2.0), peak RSS PyTorch / Glassbox
(>= 5), test accuracy after epochs 1 and 3 within 1 point (means over the
seeds), and Glassbox's training GFLOP/s = samples/s x 3 x forward FLOPs per
sample (the forward pass, the input gradient and the weight gradient each
cost about one forward's FLOPs) beside the sgemm peak at the same thread
count. Speeds are medians of the per-epoch figures over every epoch of every
run. Every run's interference (CPU time other processes took while it ran) is
measured, and a run disturbed by more than 5% is repeated. The tables go to
stdout, a JSON summary per model to tests/bench/out/<model>-<UTC time>.json
and out/latest-<model>.json (out/latest.json is a copy of the last model's).
Nothing here is a ctest test.
"""

import argparse
import ctypes
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TORCH_PYTHON = "/usr/bin/python3"
DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
SEED = 1

# Forward FLOPs of one LeNet sample, multiply-adds counted as 2: conv1
# 16x24x24 outputs x 25 taps, conv2 32x8x8 x 400, dense 512x128 and 128x10.
LENET_FLOPS = 2 * (16 * 24 * 24 * 25 + 32 * 8 * 8 * 400 + 512 * 128 + 128 * 10)
# Forward FLOPs of one LSTM sample: 28 steps of the fused gate GEMM
# (4H x (F + H) = 512 x 156 per sample), then dense 128x10; the gates'
# elementwise work is left out (under 1%).
LSTM_FLOPS = 2 * (28 * 4 * 128 * (28 + 128) + 128 * 10)
INTERFERENCE = 0.05  # share of the CPUs others may use during a measured run

# Per model: the training setup both sides use, the title of its table, and
# the targets of its issue (ratios Glassbox over PyTorch, RSS PyTorch over
# Glassbox, accuracy difference in points).
MODELS = {
    "lenet": {"title": "LeNet", "batch": 32, "lr": 0.05, "optimizer": "sgd",
              "flops": LENET_FLOPS,
              "targets": {"train_ratio": 1.5, "infer_ratio": 1.5, "rss_ratio": 5.0,
                          "acc_points": 1.0}},
    "lstm": {"title": "LSTM (28 rows of 28, hidden 128, last state)", "batch": 64, "lr": 1e-3,
             "optimizer": "adam", "flops": LSTM_FLOPS,
             "targets": {"train_ratio": 2.0, "infer_ratio": 2.0, "rss_ratio": 5.0,
                         "acc_points": 1.0}},
}

# The targets on a CPU without AVX-512 (issue 11), where Glassbox runs its
# AVX2 kernels: measured here with --kernels avx2, both sides held to AVX2.
TARGETS_WITHOUT_AVX512 = {
    "lenet": {"train_ratio": 2.0, "infer_ratio": 2.5, "rss_ratio": 5.0, "acc_points": 1.0},
    "lstm": {"train_ratio": 3.0, "infer_ratio": 2.0, "rss_ratio": 5.0, "acc_points": 1.0},
}

# What --kernels below AVX-512 sets for PyTorch on a CPU that has AVX-512, so
# that the peer runs what it would run on a CPU without it: oneDNN's
# convolutions and ATen's vectorised loops held to AVX2 (its matrix products
# are OpenBLAS's, already held to Haswell's AVX2 kernels, see
# settle_blas_core).
TORCH_AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags():
    try:
        return open("/proc/cpuinfo").read().split("flags", 1)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        return []


def settle_kernels(name):
    """Sets the environment every process of the run inherits for the kernel
    path asked for: GLASSBOX_KERNELS for Glassbox, and for a path below
    AVX-512 on a CPU that has it, TORCH_AVX2_ENV for PyTorch. Returns what
    was set (a dict), for the report and the JSON."""
    set_ = {}
    if name == "auto":
        return set_
    os.environ["GLASSBOX_KERNELS"] = name
    set_["GLASSBOX_KERNELS"] = name
    if name != "avx512" and "avx512f" in cpu_flags():
        os.environ.update(TORCH_AVX2_ENV)
        set_.update(TORCH_AVX2_ENV)
    return set_


def log(msg):
    print(msg, file=sys.stderr, flush=True)


AVX2_CORES = ("haswell", "zen", "skylakex", "cooperlake", "sapphirerapids")


def settle_blas_core():
    """Gives every process of the run the OpenBLAS core Glassbox's binaries
    choose for themselves (util/process.c): when OPENBLAS_CORETYPE is unset
    and OpenBLAS picked a core without AVX2 on a CPU with AVX2 and FMA (Debian's
    0.3.21 does not know some virtual CPUs and falls back to SSE3 kernels),
    OPENBLAS_CORETYPE=Haswell, so that PyTorch's OpenBLAS calls and the sgemm
    ceiling run on the same kernels as Glassbox's. Returns what it set, or None."""
    if os.environ.get("OPENBLAS_CORETYPE"):
        return None
    try:
        flags = open("/proc/cpuinfo").read().split("flags", 1)[1].split("\n", 1)[0].split()
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        core = lib.openblas_get_corename().decode()
    except (OSError, IndexError, AttributeError):
        return None
    if "avx2" in flags and "fma" in flags and core.lower() not in AVX2_CORES:
        os.environ["OPENBLAS_CORETYPE"] = "Haswell"
        return "OpenBLAS chose %s on a CPU with AVX2: OPENBLAS_CORETYPE=Haswell" % core
    return None


def child_env(extra):
    env = dict(os.environ)
    env.update(extra)
    return env


def shown(cmd, extra):
    pre = " ".join("%s=%s" % kv for kv in sorted(extra.items()))
    return (pre + " " if pre else "") + " ".join(cmd)


def proc_stat():
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    total = sum(vals[:8])  # user nice system idle iowait irq softirq steal
    return (total - vals[3] - vals[4]) / hz, total / hz


def cpu_busy(seconds=1.0):
    """Fraction of all CPUs busy over `seconds`, before anything of ours runs."""
    b0, t0 = proc_stat()
    time.sleep(seconds)
    b1, t1 = proc_stat()
    return (b1 - b0) / max(1e-9, t1 - t0)


def run_once(cmd, extra):
    """Runs cmd with extra environment. Returns the JSON objects it printed
    (one a line), its peak RSS as the kernel accounted it (KiB), and the
    interference: CPU time used by anything but this child while it ran, as a
    fraction of all CPUs' time (the machine is shared; another process on one
    of the two vCPUs can halve a 2-thread figure)."""
    b0, _ = proc_stat()
    w0 = time.monotonic()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=child_env(extra))
        out = proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - w0
        b1, _ = proc_stat()
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            sys.stderr.write(err.read().decode(errors="replace"))
            raise SystemExit("bench: %s exited with %d" % (cmd[0], code))
    own = usage.ru_utime + usage.ru_stime
    others = max(0.0, (b1 - b0) - own) / (wall * (os.cpu_count() or 1))
    objs = []
    for line in out.decode().splitlines():
        line = line.strip()
        if line.startswith("{"):
            objs.append(json.loads(line))
    return {"objs": objs, "rss_kb": usage.ru_maxrss, "interference": others, "wall_s": wall}


def run(cmd, extra, dry, retries):
    """run_once, repeated up to `retries` more times while other processes
    took more than INTERFERENCE of the CPUs; returns the least disturbed
    attempt (with "attempts" set)."""
    log("$ " + shown(cmd, extra))
    if dry:
        return {"objs": [], "rss_kb": 0, "interference": 0.0, "wall_s": 0.0, "attempts": 0}
    best = None
    for attempt in range(1, retries + 2):
        r = run_once(cmd, extra)
        r["attempts"] = attempt
        if best is None or r["interference"] < best["interference"]:
            best = r
        if r["interference"] <= INTERFERENCE:
            break
        log("  other processes used %.0f%% of the CPUs meanwhile%s"
            % (100 * r["interference"], "; again" if attempt <= retries else ""))
    return best


def check_build(build):
    """Refuses a sanitised or unoptimised build; returns its build type."""
    cache = os.path.join(build, "CMakeCache.txt")
    info = {"build_type": "?", "sanitize": "?"}
    if os.path.exists(cache):
        with open(cache) as f:
            for line in f:
                if line.startswith("CMAKE_BUILD_TYPE:"):
                    info["build_type"] = line.split("=", 1)[1].strip()
                if line.startswith("GLASSBOX_SANITIZE:"):
                    info["sanitize"] = line.split("=", 1)[1].strip()
    if info["sanitize"].upper() in ("ON", "TRUE", "1") or info["build_type"] in ("Debug",):
        raise SystemExit("bench: %s is a %s build with GLASSBOX_SANITIZE=%s; benchmark a Release "
                         "build (GB_BUILD_DIR=build-bench tests/bench/run.sh)"
                         % (build, info["build_type"], info["sanitize"]))
    return info


def per_epoch(objs):
    return [o for o in objs if "epoch" in o and o.get("epoch", 0) >= 1]


def rss_of(objs, fallback):
    for o in objs:
        if "peak_rss_kb" in o:
            return int(o["peak_rss_kb"])
    return fallback


def mean_std(xs):
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, 0.0
    return m, (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return 0.0 if n == 0 else xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def summarise(runs):
    """One side's figures over every epoch of every run (one run per seed),
    with the same formulas for both sides: speeds are medians of the
    per-epoch figures (a burst of background load spoils an epoch, not the
    result), totals are kept too; accuracy is mean and standard deviation
    over the seeds; peak RSS the largest of the runs."""
    epochs = [e for r in runs for e in r["epochs"]]
    train_s = sum(e["seconds"] for e in epochs)
    samples = sum(e.get("samples", 60000) for e in epochs)
    eval_s = sum(10000.0 / e["eval_samples_per_s"] for e in epochs)
    acc = {}
    for e in epochs:
        acc.setdefault("epoch%d" % e["epoch"], []).append(e["test_accuracy"])
    accuracy = {}
    for k, xs in acc.items():
        m, sd = mean_std(xs)
        accuracy[k] = {"mean": m, "std": sd, "seeds": xs}
    return {"samples_per_s": median([e["samples_per_s"] for e in epochs]),
            "eval_samples_per_s": median([e["eval_samples_per_s"] for e in epochs]),
            "samples_per_s_total": samples / train_s if train_s else 0.0,
            "eval_samples_per_s_total": 10000.0 * len(epochs) / eval_s if eval_s else 0.0,
            "accuracy": accuracy,
            "peak_rss_kb": max(r["peak_rss_kb"] for r in runs),
            "peak_rss_kb_wait4": max(r["peak_rss_kb_wait4"] for r in runs),
            "flops_per_sample": epochs[0].get("flops_per_sample") if epochs else None,
            "kernels": epochs[0].get("kernels") if epochs else None,
            "runs": runs}


def one_run(cmd, extra, seed, args, dry):
    r = run(cmd, extra, dry, args.retries)
    ep = per_epoch(r["objs"])
    if not dry and not ep:
        raise SystemExit("bench: %s printed no epoch lines" % cmd[0])
    return {"seed": seed, "command": shown(cmd, extra), "epochs": ep,
            "peak_rss_kb": rss_of(r["objs"], r["rss_kb"]), "peak_rss_kb_wait4": r["rss_kb"],
            "interference": r["interference"], "attempts": r["attempts"]}


def torch_cmd(args, seed, torch_threads):
    m = MODELS[args.model]
    return [TORCH_PYTHON, os.path.join(HERE, "torch_train.py"), "--model", args.model,
            "--data", args.data, "--batch", str(m["batch"]), "--lr", str(m["lr"]),
            "--optimizer", m["optimizer"], "--seed", str(seed), "--threads", str(torch_threads)]


def glassbox_cmd(args, seed, threads):
    m = MODELS[args.model]
    data = "fashion-mnist" if args.data == DEFAULT_DATA else "idx:" + args.data
    return [os.path.join(args.build, "glassbox-client"), "train", "--model", args.model,
            "--data", data, "--batch", str(m["batch"]), "--lr", str(m["lr"]),
            "--optimizer", m["optimizer"], "--seed", str(seed), "--threads", str(threads),
            "--json"]


def keep_best(trials, key, new):
    """Adds one trial of setting `key` to trials, or raises the figures of an
    earlier round of the same setting to the better of the two: background
    work only ever lowers a figure, and a setting that lost a round to a
    burst of someone else's load must not be passed over."""
    for t in trials:
        if all(t[k] == v for k, v in key.items()):
            t["rounds"] += 1
            if new["samples_per_s"] > t["samples_per_s"]:
                t.update(new)
            t["eval_samples_per_s"] = max(t["eval_samples_per_s"], new["eval_samples_per_s"])
            return
    trials.append(dict(key, rounds=1, **new))


def torch_trials(args, dry):
    """PyTorch over torch threads {1, 2} x OpenBLAS threads {1, 2}, each
    setting timed --trial-rounds times (rounds interleaved), its best round
    counting; returns (trials, the fastest setting for training)."""
    trials = []
    for _ in range(max(1, args.trial_rounds)):
        for tt in (1, 2):
            for bt in (1, 2):
                extra = {"OPENBLAS_NUM_THREADS": str(bt)}
                got = run(torch_cmd(args, SEED, tt) + ["--trial", str(args.trial_batches)],
                          extra, dry, args.retries)
                objs = got["objs"]
                r = objs[-1] if objs else {"samples_per_s": 0.0, "eval_samples_per_s": 0.0}
                keep_best(trials, {"torch_threads": tt, "openblas_threads": bt},
                          {"samples_per_s": r["samples_per_s"],
                           "eval_samples_per_s": r["eval_samples_per_s"],
                           "interference": got["interference"]})
                log("  torch %d / openblas %d: %.0f samples/s training, %.0f images/s inference"
                    % (tt, bt, r["samples_per_s"], r["eval_samples_per_s"]))
    best = trials[2] if dry else max(trials, key=lambda t: t["samples_per_s"])
    return trials, best


def glassbox_trials(args, dry):
    """Glassbox at --threads {1, 2}, as torch_trials does it."""
    client = os.path.join(args.build, "glassbox-client")
    if not dry and not os.access(client, os.X_OK):
        raise SystemExit("bench: %s not built (tests/bench/run.sh builds it)" % client)
    trials = []
    for _ in range(max(1, args.trial_rounds)):
        for t in (1, 2):
            cmd = glassbox_cmd(args, SEED, t) + [
                "--epochs", "1", "--limit", str(args.trial_batches * MODELS[args.model]["batch"])]
            got = run(cmd, {}, dry, args.retries)
            ep = per_epoch(got["objs"])
            r = ep[-1] if ep else {"samples_per_s": 0.0, "eval_samples_per_s": 0.0}
            keep_best(trials, {"threads": t},
                      {"samples_per_s": r["samples_per_s"],
                       "eval_samples_per_s": r["eval_samples_per_s"],
                       "interference": got["interference"]})
            log("  glassbox --threads %d: %.0f samples/s training, %.0f images/s inference"
                % (t, r["samples_per_s"], r["eval_samples_per_s"]))
    best = trials[1] if dry else max(trials, key=lambda t: t["samples_per_s"])
    return trials, best


def verdict(ok):
    return "PASS" if ok else "MISS"


def report(res, quick):
    gb, pt = res.get("glassbox"), res["pytorch"]
    m = MODELS[res["model"]]
    lines = []
    add = lines.append
    add("")
    add("%s on Fashion-MNIST, batch %d, %s lr %g, %d epoch(s), seed(s) %s; %s"
        % (m["title"], m["batch"], m["optimizer"].upper().replace("ADAM", "Adam"), m["lr"],
           res["epochs"], ", ".join(str(s) for s in res["seeds"]), res["when"]))
    add("CPU: %s, %s CPUs" % (res.get("cpu_model", "unknown"), res.get("cpus")))
    add("%-34s %18s %18s %8s" % ("", "Glassbox", "PyTorch 1.13", "ratio"))
    add("%-34s %18s %18s" % ("thread setting", "--threads %d" % gb["threads"] if gb else "-",
                             "torch %d / BLAS %d" % (pt["torch_threads"],
                                                        pt["openblas_threads"])))

    def row(name, g, p, ratio=None, fmt="%18.0f"):
        gs = fmt % g if g is not None else "%18s" % "-"
        ps = fmt % p if p is not None else "%18s" % "-"
        add("%-34s %s %s %8s" % (name, gs, ps, "" if ratio is None else "%.2fx" % ratio))

    def acc(side, ep):
        a = side["accuracy"][ep]
        if len(a["seeds"]) < 2:
            return "%18.2f" % (100 * a["mean"])
        return "%18s" % ("%.2f +- %.2f" % (100 * a["mean"], 100 * a["std"]))

    g = gb or {}
    row("training samples/s", g.get("samples_per_s"), pt["samples_per_s"],
        res["ratios"].get("train"))
    row("inference images/s", g.get("eval_samples_per_s"), pt["eval_samples_per_s"],
        res["ratios"].get("infer"))
    row("peak RSS MiB", g["peak_rss_kb"] / 1024 if gb else None, pt["peak_rss_kb"] / 1024,
        res["ratios"].get("rss"), fmt="%18.1f")
    for ep in ("epoch1", "epoch3"):
        if ep in pt["accuracy"]:
            add("%-34s %s %s" % ("test accuracy %% after %s" % ep.replace("epoch", "epoch "),
                                 acc(gb, ep) if gb else "%18s" % "-", acc(pt, ep)))
    fl = res["flops"]
    row("training GFLOP/s (3 x fwd FLOPs)", fl.get("glassbox_gflops"), fl.get("pytorch_gflops"),
        None, fmt="%18.1f")
    if fl.get("sgemm_peak") is not None:
        add("%-34s %18.1f   (%d thread(s); Glassbox reaches %.0f%% of it)"
            % ("OpenBLAS sgemm peak GFLOP/s", fl["sgemm_peak"], fl["sgemm_threads"],
               100 * fl["glassbox_share_of_peak"]))
    if gb:
        held = res.get("kernels_env", {})
        add("%-34s %18s %18s   (%s)"
            % ("kernel path", gb.get("kernels") or "?",
               "AVX2" if "ONEDNN_MAX_CPU_ISA" in held else "its own best",
               " ".join("%s=%s" % kv for kv in sorted(held.items())) or "each side's best"))
    worst = res.get("interference_max", 0.0)
    add("%-34s %17.0f%%   (the most other processes took during a measured run%s)"
        % ("interference", 100 * worst, "; figures unreliable" if worst > INTERFERENCE else ""))
    add("")
    for t in res["targets"].values():
        add("%-6s %s" % (t["verdict"], t["text"]))
    if quick:
        add("(--quick: 1 epoch, so accuracy after 3 epochs was not measured)")
    return "\n".join(lines)


def targets_of(gb, pt, seeds, targets):
    ratios = {"train": gb["samples_per_s"] / pt["samples_per_s"],
              "infer": gb["eval_samples_per_s"] / pt["eval_samples_per_s"],
              "rss": pt["peak_rss_kb"] / gb["peak_rss_kb"]}
    t = {}

    def ratio_target(key, what, limit):
        t[key] = {"value": ratios[key], "target": limit,
                  "verdict": verdict(ratios[key] >= limit),
                  "text": "%s %.2fx (target >= %.1fx)" % (what, ratios[key], limit)}

    ratio_target("train", "training samples/s Glassbox / PyTorch", targets["train_ratio"])
    ratio_target("infer", "inference images/s Glassbox / PyTorch", targets["infer_ratio"])
    ratio_target("rss", "peak RSS PyTorch / Glassbox", targets["rss_ratio"])
    for ep in ("epoch1", "epoch3"):
        if ep not in gb["accuracy"] or ep not in pt["accuracy"]:
            continue
        a, b = gb["accuracy"][ep], pt["accuracy"][ep]
        d = 100 * (a["mean"] - b["mean"])
        se = 100 * ((a["std"] ** 2 + b["std"] ** 2) / seeds) ** 0.5
        noise = " +- %.2f (standard error over %d seeds)" % (se, seeds) if seeds > 1 else ""
        t["accuracy_" + ep] = {
            "value": d, "standard_error": se if seeds > 1 else None,
            "target": targets["acc_points"], "verdict": verdict(abs(d) <= targets["acc_points"]),
            "text": "test accuracy after %s: Glassbox %.2f%%, PyTorch %.2f%%, difference %+.2f "
                    "points%s (target within %.0f)"
                    % (ep.replace("epoch", "epoch "), 100 * a["mean"], 100 * b["mean"], d, noise,
                       targets["acc_points"])}
    return ratios, t


def measure(args, model, dry):
    """One model's trials and measured runs; returns its partial result
    (finish() adds the ratios once the closing sgemm peak is known)."""
    args.model = model
    m = MODELS[model]
    seeds = list(range(SEED, SEED + max(1, args.seeds)))
    res = {"model": model, "epochs": args.epochs, "batch": m["batch"], "lr": m["lr"],
           "optimizer": m["optimizer"], "seeds": seeds, "trial_batches": args.trial_batches,
           "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    log("bench: %s: PyTorch thread settings" % model)
    pt_trials, pt_best = torch_trials(args, dry)
    pt_extra = {"OPENBLAS_NUM_THREADS": str(pt_best["openblas_threads"])}
    gb_trials = gb_best = None
    if not args.skip_glassbox:
        log("bench: %s: Glassbox thread settings" % model)
        gb_trials, gb_best = glassbox_trials(args, dry)

    # Measured runs, alternating sides so that a change in background load
    # falls on both.
    gb_runs, pt_runs = [], []
    for seed in seeds:
        if gb_best:
            log("bench: %s: Glassbox, seed %d, %d epoch(s) at --threads %d"
                % (model, seed, args.epochs, gb_best["threads"]))
            gb_runs.append(one_run(glassbox_cmd(args, seed, gb_best["threads"]) +
                                   ["--epochs", str(args.epochs)], {}, seed, args, dry))
        log("bench: %s: PyTorch, seed %d, %d epoch(s) at torch %d / OpenBLAS %d threads"
            % (model, seed, args.epochs, pt_best["torch_threads"], pt_best["openblas_threads"]))
        pt_runs.append(one_run(torch_cmd(args, seed, pt_best["torch_threads"]) +
                               ["--epochs", str(args.epochs)], pt_extra, seed, args, dry))
    if dry:
        return res
    pt = summarise(pt_runs)
    pt.update(torch_threads=pt_best["torch_threads"], openblas_threads=pt_best["openblas_threads"],
              trials=pt_trials)
    gb = None
    if gb_runs:
        gb = summarise(gb_runs)
        gb.update(threads=gb_best["threads"], trials=gb_trials)
    res["glassbox"], res["pytorch"] = gb, pt
    res["interference_max"] = max(r["interference"] for r in pt_runs + gb_runs)
    if res["interference_max"] > INTERFERENCE:
        log("bench: WARNING other processes used up to %.0f%% of the CPUs during the measured "
            "runs even after retries: the speed figures are unreliable; run again on a quiet "
            "machine" % (100 * res["interference_max"]))
    return res


def finish(res, sgemm, args):
    """Ratios, verdicts and GFLOP/s of one model's result; prints its table
    and writes its JSON."""
    m = MODELS[res["model"]]
    gb, pt = res["glassbox"], res["pytorch"]
    res["sgemm"] = sgemm
    goals = m["targets"]
    if gb and gb.get("kernels") in ("avx2", "portable"):
        goals = TARGETS_WITHOUT_AVX512[res["model"]]
    ratios, targets = targets_of(gb, pt, len(res["seeds"]), goals) if gb else ({}, {})
    flops = {"flops_per_sample": m["flops"],
             "pytorch_gflops": pt["samples_per_s"] * 3 * m["flops"] / 1e9}
    if gb:
        if gb["flops_per_sample"] != m["flops"]:
            log("bench: WARNING glassbox-client reports %s forward FLOPs per sample for %s, "
                "bench.py counts %d" % (gb["flops_per_sample"], res["model"], m["flops"]))
        fps = gb["flops_per_sample"] or m["flops"]
        flops["glassbox_gflops"] = gb["samples_per_s"] * 3 * fps / 1e9
        if sgemm:
            key = str(min(gb["threads"], 2))
            flops["sgemm_threads"] = int(key)
            flops["sgemm_peak"] = sgemm["peak"][key]
            flops["glassbox_share_of_peak"] = flops["glassbox_gflops"] / flops["sgemm_peak"]
    res["ratios"], res["targets"], res["flops"] = ratios, targets, flops

    print(report(res, args.quick), flush=True)
    os.makedirs(args.out, exist_ok=True)
    stamp = res["when"].replace(":", "").replace("-", "")
    path = os.path.join(args.out, "%s-%s%s.json" % (res["model"], stamp,
                                                     "" if gb else "-torch-only"))
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    shutil.copyfile(path, os.path.join(args.out, "latest-%s.json" % res["model"]))
    shutil.copyfile(path, os.path.join(args.out, "latest.json"))
    log("bench: wrote %s" % path)


# ---- the explanation benchmark (--model ig) ---------------------------------
# Integrated gradients, Gauss-Legendre with IG_STEPS points, over the first
# IG_IMAGES Fashion-MNIST test images, for the lenet and lstm presets:
# gb_ig_bench (Glassbox's gb_explain, max_doublings 0) against torch_ig.py
# (the same batched computation with torch.autograd), target >= 2.0x.
IG_STEPS = 32
IG_IMAGES = 1000
IG_TARGET = 2.0
IG_MODELS = ("lenet", "lstm")
IG_GB_THREADS = (1, 2)
IG_GB_BATCHES = (32, 64, 128)  # rows per engine batch (1, 2, 4 images x 32 points)


def ig_glassbox_cmd(args, model, threads, batch):
    cmd = [os.path.join(args.build, "gb_ig_bench"), "--model", model, "--threads", str(threads),
           "--batch", str(batch), "--steps", str(IG_STEPS), "--images", str(IG_IMAGES)]
    if args.data != DEFAULT_DATA:
        cmd += ["--data", args.data]
    return cmd


def ig_torch_cmd(args, model, threads):
    return [TORCH_PYTHON, os.path.join(HERE, "torch_ig.py"), "--model", model,
            "--threads", str(threads), "--steps", str(IG_STEPS), "--images", str(IG_IMAGES),
            "--data", args.data]


def ig_settings(runs, dry, retries):
    """Runs every (command, extra environment, key) once; returns the trials
    (key + the program's JSON + interference) and the fastest."""
    trials = []
    for cmd, extra, key in runs:
        got = run(cmd, extra, dry, retries)
        obj = got["objs"][-1] if got["objs"] else {"images_per_s": 0.0}
        t = dict(key, interference=got["interference"], attempts=got["attempts"],
                 command=shown(cmd, extra), **obj)
        trials.append(t)
        log("  %s: %.1f images/s" % (", ".join("%s %s" % kv for kv in key.items()),
                                      t["images_per_s"]))
    return trials, (None if dry else max(trials, key=lambda t: t["images_per_s"]))



def run_ig(args, common, dry):
    """The explanation benchmark: per model, Glassbox at --threads {1, 2} x
    batch {32, 64, 128} and PyTorch at torch threads {1, 2} x OpenBLAS
    threads {1, 2} (torch_ig.py picks its own images per pass), each setting
    run once (gb_ig_bench and torch_ig.py time 3 rounds each and keep the
    fastest; a run disturbed by other processes is repeated as run() does),
    PyTorch's settings first, then Glassbox's; the fastest setting of each
    side counts. Prints the table and writes out/ig-<time>.json."""
    gb_bin = os.path.join(args.build, "gb_ig_bench")
    skip_gb = args.skip_glassbox
    if not skip_gb and not dry and not os.access(gb_bin, os.X_OK):
        raise SystemExit("bench: %s not built (tests/bench/run.sh builds it)" % gb_bin)
    res = dict(common)
    res.update({"model": "ig", "steps": IG_STEPS, "images": IG_IMAGES, "rule": "gauss-legendre",
                "baseline": "zero", "max_doublings": 0, "target_ratio": IG_TARGET,
                "when": datetime.datetime.now(datetime.timezone.utc)
                .strftime("%Y-%m-%dT%H:%M:%SZ"), "models": {}})
    for model in IG_MODELS:
        log("bench: ig %s: PyTorch settings" % model)
        pt_runs = [(ig_torch_cmd(args, model, tt), {"OPENBLAS_NUM_THREADS": str(bt)},
                    {"torch_threads": tt, "openblas_threads": bt})
                   for tt in (1, 2) for bt in (1, 2)]
        pt_trials, pt_best = ig_settings(pt_runs, dry, args.retries)
        gb_trials = gb_best = None
        if not skip_gb:
            log("bench: ig %s: Glassbox settings" % model)
            gb_runs = [(ig_glassbox_cmd(args, model, t, b), {}, {"threads": t, "batch": b})
                       for t in IG_GB_THREADS for b in IG_GB_BATCHES]
            gb_trials, gb_best = ig_settings(gb_runs, dry, args.retries)
        if dry:
            continue
        r = {"pytorch": pt_best, "pytorch_trials": pt_trials,
             "glassbox": gb_best, "glassbox_trials": gb_trials}
        if gb_best:
            ratio = gb_best["images_per_s"] / pt_best["images_per_s"]
            r["ratio"] = ratio
            r["verdict"] = verdict(ratio >= IG_TARGET)
        r["interference_max"] = max(t["interference"] for t in
                                    [pt_best] + ([gb_best] if gb_best else []))
        res["models"][model] = r
    if dry:
        return
    print(ig_report(res), flush=True)
    os.makedirs(args.out, exist_ok=True)
    stamp = res["when"].replace(":", "").replace("-", "")
    path = os.path.join(args.out, "ig-%s%s.json" % (stamp, "-torch-only" if skip_gb else ""))
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    shutil.copyfile(path, os.path.join(args.out, "latest-ig.json"))
    shutil.copyfile(path, os.path.join(args.out, "latest.json"))
    log("bench: wrote %s" % path)


def ig_report(res):
    lines = []
    add = lines.append
    add("")
    add("Integrated gradients, %d Gauss-Legendre steps, zero baseline, target = true label, "
        "over the first %d Fashion-MNIST test images (untrained weights); %s"
        % (res["steps"], res["images"], res["when"]))
    add("%-8s %30s %38s %8s %17s %13s" % ("model", "Glassbox images/s", "PyTorch 1.13 images/s",
                                         "ratio", "completeness", "interference"))
    for model, r in res["models"].items():
        g, p = r["glassbox"], r["pytorch"]
        gs = ("%.0f (--threads %d, batch %d)" % (g["images_per_s"], g["threads"], g["batch"])
              if g else "-")
        ps = "%.0f (torch %d / BLAS %d, %d img/pass)" % (
            p["images_per_s"], p["torch_threads"], p["openblas_threads"], p["per"])
        comp = "%.3g / %.3g" % (g["mean_completeness"] if g else float("nan"),
                                p["mean_completeness"])
        add("%-8s %30s %38s %8s %17s %12.0f%%%s"
            % (model, gs, ps, "%.2fx" % r["ratio"] if g else "", comp,
               100 * r["interference_max"],
               " unreliable" if r["interference_max"] > INTERFERENCE else ""))
    add("")
    for model, r in res["models"].items():
        if r.get("verdict"):
            add("%-6s %s: IG images/s Glassbox / PyTorch %.2fx (target >= %.1fx)"
                % (r["verdict"], model, r["ratio"], res["target_ratio"]))
    add("(completeness: mean relative error |sum(attr) - (f(x) - f(0))| / |f(x) - f(0)|, "
        "Glassbox / PyTorch)")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description="Glassbox against PyTorch 1.13: LeNet and LSTM")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--model", choices=sorted(MODELS) + ["ig", "channel", "all"],
                    default="all",
                    help="which benchmark; all (the default) runs lenet, lstm, then ig "
                    "(integrated gradients for both presets), then channel (the secure "
                    "channel's throughput and handshakes beside raw AES-256-GCM)")
    ap.add_argument("--quick", action="store_true", help="1 epoch instead of 3")
    ap.add_argument("--kernels", choices=("auto", "avx512", "avx2", "portable"), default="auto",
                    help="Glassbox's kernel path (GLASSBOX_KERNELS); below avx512 on an "
                    "AVX-512 CPU PyTorch is held to AVX2 too, and the targets for CPUs "
                    "without AVX-512 apply")
    ap.add_argument("--seeds", type=int, default=3,
                    help="measured runs per side, seeds 1..K (accuracy is their mean)")
    ap.add_argument("--trial-batches", type=int, default=200)
    ap.add_argument("--trial-rounds", type=int, default=2,
                    help="time every thread setting this many times; its best round counts")
    ap.add_argument("--retries", type=int, default=2,
                    help="repeat a run during which other processes used over 5%% of the CPUs")
    ap.add_argument("--skip-glassbox", action="store_true", help="measure PyTorch only")
    ap.add_argument("--dry-run", action="store_true", help="print the commands only")
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    args = ap.parse_args()
    args.epochs = 1 if args.quick else 3
    models = ["lenet", "lstm"] if args.model == "all" else [args.model]
    do_ig = args.model in ("ig", "all")
    do_channel = args.model in ("channel", "all") and not args.skip_glassbox
    models = [m for m in models if m not in ("ig", "channel")]
    dry = args.dry_run

    settled = settle_blas_core()
    if settled:
        log("bench: %s, for both sides" % settled)
    kernels_env = settle_kernels(args.kernels)
    if kernels_env:
        log("bench: kernel path %s: %s" % (args.kernels, " ".join(
            "%s=%s" % kv for kv in sorted(kernels_env.items()))))
    env_note = dict((k, os.environ.get(k)) for k in
                    ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                     "OMP_NUM_THREADS"))
    busy = cpu_busy()
    common = {"host": platform.node(), "cpus": os.cpu_count(), "cpu_busy_at_start": busy,
              "env": env_note, "kernels_env": kernels_env, "cpu_model": cpu_model()}
    log("bench: environment %s; CPUs %.0f%% busy before starting"
        % (env_note, 100 * (busy or 0)))
    if busy is not None and busy > 0.1:
        log("bench: WARNING something else is using the CPUs (%.0f%%): the figures will be "
            "low and noisy, PyTorch's more than Glassbox's" % (100 * busy))

    peak_bin = None
    sgemm_runs = []
    if not args.skip_glassbox:
        common["build"] = {} if dry else check_build(args.build)
    if not args.skip_glassbox and models:
        peak_bin = os.path.join(args.build, "gb_sgemm_peak")
        if not dry and not os.access(peak_bin, os.X_OK):
            log("bench: %s not built; no sgemm ceiling" % peak_bin)
            peak_bin = None
    if peak_bin:
        sgemm_runs += run([peak_bin], {"OPENBLAS_NUM_THREADS": "2"}, dry, args.retries)["objs"]

    results = []
    for model in models:
        res = dict(common)
        res.update(measure(args, model, dry))
        results.append(res)
    if peak_bin:
        sgemm_runs += run([peak_bin], {"OPENBLAS_NUM_THREADS": "2"}, dry, args.retries)["objs"]
    if dry:
        if do_ig:
            run_ig(args, common, dry)
        if do_channel:
            run_channel(args, dry)
        return 0
    sgemm = None
    if sgemm_runs:
        # The better of the two measurements per thread count: background
        # work only ever lowers a figure.
        sgemm = {"runs": sgemm_runs, "peak": {}}
        for t in ("1", "2"):
            sgemm["peak"][t] = max(r["threads"][t]["peak"] for r in sgemm_runs)
    for res in results:
        finish(res, sgemm, args)
    if do_ig:
        run_ig(args, common, dry)
    if do_channel:
        run_channel(args, dry)
    return 0


def run_channel(args, dry):
    """The secure channel (issue 5): gb_channel_bench measures raw AES-256-GCM
    (openssl speed and EVP), then 64 MiB of update data in 1 MiB messages
    through a client and a server channel on one core, then full mutual
    handshakes, and prints each against its target in the same run."""
    bench = os.path.join(args.build, "tests", "bench", "gb_channel_bench")
    cmd = [bench, "--pki", os.path.join(args.build, "test-pki")]
    log("bench: channel: %s" % " ".join(cmd))
    if dry:
        return
    subprocess.run(cmd, check=True)


if __name__ == "__main__":
    sys.exit(main())
