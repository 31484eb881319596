#!/usr/bin/python3
"""The attack benchmark of issue 12: a real federation with 2 attackers of 10
clients, every attack against every aggregator, with and without the guard.

Usage:

  /usr/bin/python3 tests/bench/attack_bench.py --build build-dev
      [--shards iid,dirichlet:0.5,dirichlet:0.1]
      [--attacks none,backdoor,labelflip,modelpoison]
      [--aggregators fedavg,median,trimmed_mean,krum,multi_krum]
      [--guard off,flags] [--rounds 20] [--limit N] [--model lenet]
      [--explain ig] [--explain-samples 32] [--seed 1] [--out FILE.json] [--quick]

Every run is one `glassbox-coordinator serve` and ten `glassbox-client run`
processes on loopback, mutual TLS and all, each client with its own
certificate from `ca issue`. Clients client-0 and client-1 are the attackers
(ATTACKERS). Each client gets an IDX directory of its own holding exactly its
training slice: build/gb_fed_shards (fed_shards.c) prints every client's
sample indices of the first --limit training images, cut by Glassbox's own
partition function for 10 clients with --seed, and this script writes those
images (clean, or poisoned for an attacker) as train-*-idx?-ubyte, beside
links to Fashion-MNIST's test files. The attacks:

- none: every client honest (the attack-free baseline of each cell);
- backdoor: on a fixed half of each attacker's images (numpy seeded by --seed
  and the client) a white 4x4 patch (pixels 255) in the bottom-right corner,
  rows and columns 24-27, and the label set to TARGET (0, T-shirt/top);
- labelflip: every label of an attacker's images y -> 9 - y;
- modelpoison: the attackers run gb_poison_client (tests/bench/attack.cmake:
  glassbox-client's sources with GB_BENCH_POISON_SCALE=-10) on clean data, so
  each of their updates is -10 x (trained - global).

serve runs --model lenet --epochs 1 --batch 32 --lr 0.05 --optimizer sgd
--explain M (default ig) --explain-samples E --test-data fashion-mnist --aggregator A
[--guard flags] --state STATE --out OUT --json, every client every round;
every other setting at serve's default but one: --max-norm-ratio is 1e9 unless
--max-norm-ratio says otherwise. serve's default of 10 refuses an update whose
L2 norm is past 10x the last round's median before the aggregator or the
guard sees it, and the x10 model poisoning lands right on that line (measured:
5.5 against a median of 0.49, 11.3x, refused in most rounds); a refused
update also holds its round open until --deadline, since the attacker never
answers again. Off, the benchmark measures what the issue asks about: the
aggregators and the guard. The norm refusals per client are still counted
(they matter when --max-norm-ratio 10 is given). The aggregator names are
serve's: fedavg, median, and, with the parameters chosen here for 2 attackers of 10, trimmed_mean:0.2, krum:2 and
multi_krum:2:6 (M = 6 so that the rule still has its 2F + 3 = 7 and M + F = 8
updates when the guard leaves the two attackers out); a full spec such as
trimmed_mean:0.1 is taken as given.

Measured per run:
- clean accuracy: the test_accuracy of serve's last round line (the final
  global model on the 10,000 test images);
- attack success rate (ASR), of the final model file (STATE/model-R.gbm)
  through `glassbox-client eval --model-file ... --data idx:DIR --json` on a
  test set written for it: backdoor, the test images whose class is not
  TARGET with the patch applied, all labelled TARGET (ASR = eval's accuracy =
  the share classified as TARGET); labelflip, all test images labelled 9 - y
  (ASR = the share classified as the flipped label); modelpoison: no ASR, the
  accuracy drop from the attack-free run is the figure. Attack-free runs get
  both rates too (what a clean model does on those sets: the floor);
- flags: the rounds in which each client was flagged (the "flagged" list of
  each round line), the first round of each attacker, and the most rounds any
  honest client was flagged; the guard's exclusions and the norm refusals per
  client are counted from serve's log.

The bar (issue 12), checked per shard, attack and aggregator for the runs
with the guard, PASS or MISS, never assumed: ASR <= 0.05 (backdoor,
labelflip), clean accuracy at least the attack-free run's (same shard and
aggregator, guard off) minus 1 point, both attackers flagged in round 3 or
earlier; and per shard and aggregator, on the attack-free runs, no honest
client flagged in more than 1 round of 20 (with and without the guard).

--quick: iid, backdoor and modelpoison, fedavg, guard off and flags, 5 rounds
on 6,000 samples with mlp, rounds given up after 5 s (a diverged federation
stalls): runs at all? Its figures mean nothing.

Everything goes to --out (default tests/bench/out/attack-latest.json); the
work files (certificates, client directories, logs, states) to --work
(default tests/bench/out/attack-work), replaced on every run.
"""

import argparse
import datetime
import gzip
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA_DIR = "/usr/share/datasets/fashion-mnist"
CLIENTS = 10
ATTACKERS = (0, 1)          # client-0 and client-1
TARGET = 0                  # the backdoor's class: T-shirt/top
PATCH = (24, 28, 24, 28)    # rows 24-27, columns 24-27: bottom right, 4x4
ATTACKS = ("none", "backdoor", "labelflip", "modelpoison")
AGG_SPECS = {"fedavg": "fedavg", "median": "median", "trimmed_mean": "trimmed_mean:0.2",
             "krum": "krum:2", "multi_krum": "multi_krum:2:6"}
GUARDS = {"off": "none", "flags": "flags"}
BAR_ASR = 0.05
BAR_ACC_POINTS = 1.0
BAR_FLAG_ROUND = 3
BAR_HONEST_ROUNDS = 1

LIVE = []  # processes started and not yet reaped: stopped if the benchmark is


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def stop_live(*_):
    for p in list(LIVE):
        if p.poll() is None:
            p.terminate()
    for p in list(LIVE):
        try:
            p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    raise SystemExit("attack: stopped")


def start(cmd, **kw):
    p = subprocess.Popen(cmd, **kw)
    LIVE.append(p)
    return p


def finish(p, timeout):
    """Waits for p (killing it past timeout); returns its exit code."""
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    if p in LIVE:
        LIVE.remove(p)
    return p.returncode


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


# --- IDX files -------------------------------------------------------------

def read_idx(path):
    """An IDX file (gzipped or not) as a numpy uint8 array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndims = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype == 0x08, "%s: not a ubyte IDX file" % path
    dims = struct.unpack(">%dI" % ndims, raw[4:4 + 4 * ndims])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndims).reshape(dims)


def write_idx(path, arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x08, arr.ndim))
        f.write(struct.pack(">%dI" % arr.ndim, *arr.shape))
        f.write(arr.tobytes())


def fashion(split):
    pre = "train" if split == "train" else "t10k"
    x = read_idx(os.path.join(DATA_DIR, "%s-images-idx3-ubyte.gz" % pre))
    y = read_idx(os.path.join(DATA_DIR, "%s-labels-idx1-ubyte.gz" % pre))
    return x, y


def link_other_split(d, split):
    """Links Fashion-MNIST's files of `split` into d: a client's test split, or
    for an evaluation set the training labels, from which the loader counts
    the 10 classes when the set's own labels are all one class."""
    pre = "train" if split == "train" else "t10k"
    for kind in ("images-idx3", "labels-idx1"):
        name = "%s-%s-ubyte.gz" % (pre, kind)
        os.symlink(os.path.join(DATA_DIR, name), os.path.join(d, name))


def patch(images):
    r0, r1, c0, c1 = PATCH
    out = images.copy()
    out[:, r0:r1, c0:c1] = 255
    return out


def poison(attack, k, x, y, seed):
    """Client k's slice as that attack leaves it (attackers only)."""
    if k not in ATTACKERS or attack in ("none", "modelpoison"):
        return x, y
    if attack == "labelflip":
        return x, (9 - y.astype(np.int64)).astype(np.uint8)
    # backdoor: a fixed half of the images, chosen by seed and client
    rng = np.random.default_rng([seed, k])
    pick = rng.choice(len(x), size=len(x) // 2, replace=False)
    x, y = x.copy(), y.copy()
    x[pick] = patch(x[pick])
    y[pick] = TARGET
    return x, y


# --- the runs --------------------------------------------------------------

class Bench:
    def __init__(self, a):
        self.a = a
        self.coord = os.path.join(a.build, "glassbox-coordinator")
        self.client = os.path.join(a.build, "glassbox-client")
        self.poison_client = os.path.join(a.build, "gb_poison_client")
        for b in (self.coord, self.client, self.poison_client,
                  os.path.join(a.build, "gb_fed_shards")):
            if not os.access(b, os.X_OK):
                raise SystemExit("attack: %s is missing: build it (cmake --build %s)"
                                 % (b, a.build))
        self.work = a.work
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        self.ca = os.path.join(self.work, "ca")
        self.certs = os.path.join(self.work, "certs")
        subprocess.run([self.coord, "ca", "init", "--dir", self.ca, "--federation",
                        "attackbench"], check=True, capture_output=True)
        for k in range(CLIENTS):
            subprocess.run([self.coord, "ca", "issue", "--dir", self.ca, "--name",
                            "client-%d" % k, "--out", self.certs], check=True,
                           capture_output=True)
        self.train_x, self.train_y = fashion("train")
        self.test_x, self.test_y = fashion("test")
        self.shards = {}
        self.dirs = {}
        self.eval_sets = self._eval_sets()

    def _eval_sets(self):
        """The two attack test sets, as IDX directories for `eval`."""
        sets = {}
        keep = self.test_y != TARGET
        for name, x, y in (
                ("backdoor", patch(self.test_x[keep]),
                 np.full(int(keep.sum()), TARGET, np.uint8)),
                ("labelflip", self.test_x,
                 (9 - self.test_y.astype(np.int64)).astype(np.uint8))):
            d = os.path.join(self.work, "eval-" + name)
            os.makedirs(d)
            write_idx(os.path.join(d, "t10k-images-idx3-ubyte"), x)
            write_idx(os.path.join(d, "t10k-labels-idx1-ubyte"), y)
            link_other_split(d, "train")
            sets[name] = d
        return sets

    def shard(self, partition):
        if partition not in self.shards:
            cmd = [os.path.join(self.a.build, "gb_fed_shards"), "--data", "fashion-mnist",
                   "--partition", partition, "--clients", str(CLIENTS), "--seed",
                   str(self.a.seed)]
            if self.a.limit:
                cmd += ["--limit", str(self.a.limit)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            self.shards[partition] = json.loads(out)
        return self.shards[partition]

    def client_dirs(self, partition, attack):
        """One IDX directory per client for this partition and attack."""
        key = (partition, "none" if attack == "modelpoison" else attack)
        if key in self.dirs:
            return self.dirs[key]
        sh = self.shard(partition)
        dirs = []
        for k, idx in enumerate(sh["shards"]):
            idx = np.asarray(idx, np.int64)
            x, y = poison(key[1], k, self.train_x[idx], self.train_y[idx], self.a.seed)
            d = os.path.join(self.work, "data-%s-%s" % (partition.replace(":", ""), key[1]),
                             "client-%d" % k)
            os.makedirs(d)
            write_idx(os.path.join(d, "train-images-idx3-ubyte"), x)
            write_idx(os.path.join(d, "train-labels-idx1-ubyte"), y)
            link_other_split(d, "test")
            dirs.append(d)
        self.dirs[key] = dirs
        return dirs

    def run(self, partition, attack, agg, guard):
        a = self.a
        spec = AGG_SPECS.get(agg, agg)
        tag = "%s-%s-%s-%s" % (partition.replace(":", ""), attack, spec.replace(":", ""),
                               guard)
        base = os.path.join(self.work, "run-" + tag)
        os.makedirs(base)
        state, out = os.path.join(base, "state"), os.path.join(base, "out")
        port = free_port()
        serve_cmd = [
            self.coord, "serve", "--ca", self.ca, "--listen", "tcp://127.0.0.1:%d" % port,
            "--http", "none", "--model", a.model, "--model-seed", str(a.seed),
            "--seed", str(a.seed), "--rounds", str(a.rounds), "--min-clients", str(CLIENTS),
            "--quorum", str(CLIENTS - len(ATTACKERS) - 2), "--deadline", str(a.deadline),
            "--epochs", "1", "--batch", "32", "--lr", "0.05", "--optimizer", "sgd",
            "--aggregator", spec, "--guard", GUARDS[guard], "--explain", a.explain,
            "--explain-samples", str(a.explain_samples), "--test-data", "fashion-mnist",
            "--max-norm-ratio", "%g" % a.max_norm_ratio,
            "--threads", str(a.eval_threads), "--state", state, "--out", out,
            "--finished-grace", "0", "--json"]
        dirs = self.client_dirs(partition, attack)
        serve_log = os.path.join(base, "serve.log")
        t0 = time.monotonic()
        serve = start(["nice", "-n", str(a.nice)] + serve_cmd, stdout=subprocess.PIPE,
                      stderr=open(serve_log, "w"), text=True)
        lines = []
        first = serve.stdout.readline()
        if not first.startswith("listening on"):
            finish(serve, 5)
            raise SystemExit("attack: serve did not start: %s; see %s" % (first, serve_log))
        reader = threading.Thread(target=lambda: lines.extend(
            json.loads(s) for s in serve.stdout if s.startswith("{")), daemon=True)
        reader.start()
        clients = []
        for k, d in enumerate(dirs):
            binary = (self.poison_client if attack == "modelpoison" and k in ATTACKERS
                      else self.client)
            key = os.path.join(self.certs, "client-%d" % k)
            cmd = [binary, "run", "--coordinator", "tcp://127.0.0.1:%d" % port,
                   "--cert", key + ".crt", "--key", key + ".key",
                   "--ca-file", os.path.join(self.ca, "ca.crt"), "--data", "idx:" + d,
                   "--threads", "1", "--give-up", "60", "--json"]
            clients.append(start(["nice", "-n", str(a.nice)] + cmd, stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(base, "client-%d.log" % k), "w")))
        src = finish(serve, a.rounds * a.round_timeout)
        reader.join(timeout=10)
        crcs = [finish(c, 30) for c in clients]
        wall = time.monotonic() - t0
        rounds = [o for o in lines if "round" in o]
        res = {"partition": partition, "attack": attack, "aggregator": agg,
               "aggregator_spec": spec, "guard": guard, "serve": serve_cmd,
               "client_binary": {"attackers": "gb_poison_client" if attack == "modelpoison"
                                 else "glassbox-client", "honest": "glassbox-client"},
               "wall_s": wall, "serve_rc": src, "client_rcs": crcs, "rounds_done": len(rounds),
               "work": base}
        if src != 0 or len(rounds) != a.rounds:
            res["error"] = "serve exited %d after %d of %d rounds; see %s" % (
                src, len(rounds), a.rounds, serve_log)
            return res
        res["accuracy"] = rounds[-1]["test_accuracy"]
        res["accuracy_by_round"] = [o.get("test_accuracy") for o in rounds]
        res["flagged_by_round"] = [o.get("flagged", []) for o in rounds]
        flagged = {"client-%d" % k: [o["round"] for o in rounds
                                     if "client-%d" % k in o.get("flagged", [])]
                   for k in range(CLIENTS)}
        res["flagged_rounds"] = flagged
        attackers = ["client-%d" % k for k in ATTACKERS] if attack != "none" else []
        res["attackers"] = attackers
        res["attacker_first_flag"] = {c: (flagged[c][0] if flagged[c] else None)
                                      for c in attackers}
        honest = [c for c in flagged if c not in attackers]
        res["honest_max_flag_rounds"] = max(len(flagged[c]) for c in honest)
        res["honest_flag_rounds_total"] = sum(len(flagged[c]) for c in honest)
        text = open(serve_log).read()
        res["guarded"] = {c: len(re.findall(r"the update of '%s' is left out" % c, text))
                          for c in flagged}
        res["norm_refused"] = {c: len(re.findall(r"'%s': refused: update.delta's L2 norm" % c,
                                                 text)) for c in flagged}
        res["asr"] = {}
        model = self.final_model(state)
        for name, d in self.eval_sets.items():
            if attack == name or attack == "none":
                res["asr"][name] = self.evaluate(model, d)
        # keep the logs, history.json, index.html, heatmaps and the final
        # model; the signed publications and checkpoints of 80 runs would
        # fill gigabytes
        for folder, pat in ((out, r"round-\d+\.(pub|sig)$"), (state, r"checkpoint-\d+\.gbc$")):
            for f in os.listdir(folder):
                if re.match(pat, f):
                    os.remove(os.path.join(folder, f))
        return res

    def final_model(self, state):
        best = max((int(m.group(1)), f) for f in os.listdir(state)
                   for m in [re.match(r"model-(\d+)\.gbm$", f)] if m)
        assert best[0] == self.a.rounds, "last model file is round %d" % best[0]
        return os.path.join(state, best[1])

    def evaluate(self, model, d):
        p = subprocess.run([self.client, "eval", "--model-file", model, "--data", "idx:" + d,
                            "--threads", "2", "--json"], capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit("attack: eval of %s on %s failed: %s" % (model, d, p.stderr))
        objs = [json.loads(s) for s in p.stdout.splitlines() if s.startswith("{")]
        return next(o["test_accuracy"] for o in objs if "test_accuracy" in o)


# --- the report ------------------------------------------------------------

def fmt_flags(r):
    if r["attack"] == "none":
        return "-"
    return " ".join("%s" % (r["attacker_first_flag"][c] or "never") for c in r["attackers"])


def line_of(r):
    if "error" in r:
        return "ERROR %s" % r["error"]
    asr = r["asr"].get(r["attack"])
    return ("acc %5.2f%%  ASR %s  attackers first flagged %-11s honest max %d round(s)%s%s"
            % (100 * r["accuracy"], "%.3f" % asr if asr is not None else "  n/a",
               fmt_flags(r), r["honest_max_flag_rounds"],
               "  guarded %d" % sum(r["guarded"].values()) if r["guard"] == "flags" else "",
               "  norm-refused %d" % sum(r["norm_refused"].values())
               if sum(r["norm_refused"].values()) else ""))


def verdicts(runs, rounds):
    """The issue's bar per cell, from the figures."""
    by = {(r["partition"], r["attack"], r["aggregator"], r["guard"]): r for r in runs}
    out = []
    for (part, attack, agg, guard), r in sorted(by.items()):
        if "error" in r:
            continue
        if attack == "none":
            ok = r["honest_max_flag_rounds"] <= BAR_HONEST_ROUNDS
            out.append({"partition": part, "aggregator": agg, "guard": guard, "attack": "none",
                        "check": "no honest client flagged in more than %d of %d rounds"
                                 % (BAR_HONEST_ROUNDS, rounds),
                        "value": r["honest_max_flag_rounds"], "pass": ok})
            continue
        if guard != "flags":
            continue
        base = by.get((part, "none", agg, "off"))
        asr = r["asr"].get(attack)
        if asr is not None:
            out.append({"partition": part, "aggregator": agg, "guard": guard, "attack": attack,
                        "check": "ASR <= %.2f" % BAR_ASR, "value": asr, "pass": asr <= BAR_ASR})
        if base and "error" not in base:
            d = 100 * (r["accuracy"] - base["accuracy"])
            out.append({"partition": part, "aggregator": agg, "guard": guard, "attack": attack,
                        "check": "clean accuracy within %g point of the attack-free run "
                                 "(guard off)" % BAR_ACC_POINTS,
                        "value": round(d, 2), "pass": d >= -BAR_ACC_POINTS})
        first = [r["attacker_first_flag"][c] for c in r["attackers"]]
        out.append({"partition": part, "aggregator": agg, "guard": guard, "attack": attack,
                    "check": "both attackers flagged by round %d" % BAR_FLAG_ROUND,
                    "value": first,
                    "pass": all(f is not None and f <= BAR_FLAG_ROUND for f in first)})
    return out


def print_tables(runs):
    parts = sorted({r["partition"] for r in runs})
    for part in parts:
        print("\n%s: accuracy %% / ASR / first flagged round of client-0, client-1" % part)
        attacks = [x for x in ATTACKS if any(r["attack"] == x and r["partition"] == part
                                             for r in runs)]
        print("| aggregator | guard | " + " | ".join(attacks) + " |")
        print("| --- | --- | " + " | ".join("---" for _ in attacks) + " |")
        cells = sorted({(r["aggregator"], r["guard"]) for r in runs if r["partition"] == part})
        for agg, guard in cells:
            row = []
            for x in attacks:
                r = next((r for r in runs if (r["partition"], r["attack"], r["aggregator"],
                                              r["guard"]) == (part, x, agg, guard)), None)
                if r is None:
                    row.append("")
                elif "error" in r:
                    row.append("error")
                elif x == "none":
                    row.append("%.2f / honest flagged max %d" % (100 * r["accuracy"],
                                                                 r["honest_max_flag_rounds"]))
                else:
                    asr = r["asr"].get(x)
                    row.append("%.2f / %s / %s" % (100 * r["accuracy"],
                                                   "%.3f" % asr if asr is not None else "n/a",
                                                   fmt_flags(r).replace(" ", ", ")))
            print("| %s | %s | %s |" % (agg, guard, " | ".join(row)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--shards", default="iid,dirichlet:0.5,dirichlet:0.1")
    ap.add_argument("--attacks", default=",".join(ATTACKS))
    ap.add_argument("--aggregators", default="fedavg,median,trimmed_mean,krum,multi_krum")
    ap.add_argument("--guard", default="off,flags")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--limit", type=int, default=0,
                    help="training samples kept before sharding (0: all 60,000)")
    ap.add_argument("--model", default="lenet")
    ap.add_argument("--explain", default="ig",
                    help="serve --explain: the attribution method the clients' explanations "
                         "use (ig, saliency, gradxinput, ...)")
    ap.add_argument("--explain-samples", type=int, default=32)
    ap.add_argument("--eval-threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--deadline", type=float, default=120,
                    help="serve --deadline: seconds a round waits for updates")
    ap.add_argument("--round-timeout", type=float, default=90,
                    help="a run is given up after rounds x this many seconds")
    ap.add_argument("--max-norm-ratio", type=float, default=1e9,
                    help="serve --max-norm-ratio (default 1e9: off, see the top of this file; "
                         "serve's own default is 10)")
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "out", "attack-latest.json"))
    ap.add_argument("--work", default=os.path.join(HERE, "out", "attack-work"))
    a = ap.parse_args()
    if a.quick:
        a.shards, a.attacks, a.aggregators = "iid", "backdoor,modelpoison", "fedavg"
        a.rounds, a.limit, a.model = 5, 6000, "mlp"
        # unguarded fedavg diverges under model poisoning and serve then
        # refuses every update: give such a run up soon
        a.deadline, a.round_timeout = 5, 8
    shards = [s for s in a.shards.split(",") if s]
    attacks = [x for x in a.attacks.split(",") if x]
    aggs = [x for x in a.aggregators.split(",") if x]
    guards = [g for g in a.guard.split(",") if g]
    for x in attacks:
        if x not in ATTACKS:
            raise SystemExit("attack: unknown attack '%s' (%s)" % (x, ", ".join(ATTACKS)))
    for g in guards:
        if g not in GUARDS:
            raise SystemExit("attack: --guard takes off and flags, not '%s'" % g)
    if "none" not in attacks:
        attacks.insert(0, "none")  # every cell is judged against its attack-free run
    else:
        attacks.remove("none")
        attacks.insert(0, "none")
    signal.signal(signal.SIGTERM, stop_live)
    signal.signal(signal.SIGINT, stop_live)
    plan = [(s, x, g_agg, g) for s in shards for g_agg in aggs for g in guards for x in attacks]
    # the attack-free baseline needs guard off for the accuracy bar
    for s in shards:
        for agg in aggs:
            if ("off" not in guards and
                    (s, "none", agg, "off") not in plan):
                plan.insert(0, (s, "none", agg, "off"))
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    log("attack: %d runs; CPU %s; build %s" % (len(plan), cpu_model(), a.build))
    bench = Bench(a)
    runs = []
    for i, (s, x, agg, g) in enumerate(plan, 1):
        t1 = time.monotonic()
        r = bench.run(s, x, agg, g)
        runs.append(r)
        print("[%2d/%d] %-14s %-12s %-12s guard %-5s %s  (%.0f s, %.0f s in all)"
              % (i, len(plan), s, agg, x, g, line_of(r), time.monotonic() - t1,
                 time.monotonic() - t0), flush=True)
    print_tables(runs)
    v = verdicts(runs, a.rounds)
    print("\nThe bar (issue 12):")
    for c in v:
        print("  %-4s %-14s %-12s guard %-5s %-12s %s: %s"
              % ("PASS" if c["pass"] else "MISS", c["partition"], c["aggregator"], c["guard"],
                 c["attack"], c["check"], c["value"]))
    summary = {
        "benchmark": "attack", "issue": 12, "started_utc": started.isoformat(),
        "seconds": time.monotonic() - t0, "cpu": cpu_model(), "command": sys.argv,
        "settings": {"clients": CLIENTS, "attackers": ["client-%d" % k for k in ATTACKERS],
                     "target": TARGET, "patch_rows_cols": PATCH, "rounds": a.rounds,
                     "limit": a.limit, "model": a.model, "explain": a.explain, "explain_samples": a.explain_samples,
                     "seed": a.seed, "aggregators": {g: AGG_SPECS.get(g, g) for g in aggs},
                     "shard_sizes": {s: bench.shard(s)["sizes"] for s in shards}},
        "runs": runs, "bar": v}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(summary, f, indent=1)
    log("attack: wrote %s (%.0f s)" % (a.out, time.monotonic() - t0))
    return 1 if any("error" in r for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
