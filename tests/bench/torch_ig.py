#!/usr/bin/python3
"""PyTorch's side of the explanation benchmark (tests/bench/bench.py --model ig
runs it; gb_ig_bench is Glassbox's side).

Integrated gradients with the same batched computation Glassbox's
gb_explain does: the first --images (1,000) Fashion-MNIST test images, x/255,
targets their true labels, zero baseline, the --steps (32) Gauss-Legendre
points of numpy.polynomial.legendre.leggauss mapped to [0, 1]. The points of
--per images go through the network together (per x steps rows): one
forward, the target logits summed, one torch.autograd.grad for the gradients
w.r.t. the scaled inputs alpha * x; attribution = (x - baseline) * the
weighted sum of the gradients. Like gb_explain it also runs f(x) and
f(baseline) for each image and reports the mean relative completeness error
|sum(attr) - (f(x) - f(0))| / |f(x) - f(0)|. Parameters have
requires_grad False, so no weight gradients are computed (Glassbox's backward
skips them too). The model is the preset's architecture with PyTorch's
default initialisation (torch.manual_seed(--seed)); trained weights are not
needed to measure speed:

  lenet  Conv2d(1,16,5), ReLU, MaxPool2d(2), Conv2d(16,32,5), ReLU,
         MaxPool2d(2), Flatten, Linear(512,128), ReLU, Linear(128,10)
  lstm   nn.LSTM(28, 128, batch_first=True) from a zero state, the last
         hidden state into Linear(128, 10); images read row by row

--per takes a comma-separated list (default 1,2,4,8,16,32 images a pass, 32
to 1,024 rows): each is timed once on the first --trial-images (200) after a
warm-up, and the fastest is used for the measured rounds. Then --rounds (3)
timed passes over all the images; the fastest counts. Prints one JSON line
with the keys gb_ig_bench prints (model, steps, images, seconds,
images_per_s, threads, batch = rows a pass, mean_completeness, rounds) plus
per, per_trials, torch_threads and openblas_threads. --threads sets
torch.set_num_threads; OPENBLAS_NUM_THREADS must be set in the environment
(bench.py does). Needs /usr/bin/python3 with python3-torch and numpy.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train import find, read_idx  # noqa: E402


class LastHidden(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(28, 128, batch_first=True)

    def forward(self, x):
        seq, _ = self.rnn(x)
        return seq[:, -1]


def build(model):
    if model == "lenet":
        return nn.Sequential(
            nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, 10))
    return nn.Sequential(LastHidden(), nn.Linear(128, 10))


def ig(model, x, y, alpha, weight, per):
    """IG of every image in x for its label y, `per` images a pass; returns
    (attributions, relative completeness errors)."""
    n, shape = x.shape[0], tuple(x.shape[1:])
    S = alpha.numel()
    vshape = (1, S) + (1,) * len(shape)
    a, w = alpha.view(vshape), weight.view(vshape)
    out = torch.empty_like(x)
    comp = torch.empty(n, dtype=torch.float64)
    base = torch.zeros((1,) + shape)
    for i0 in range(0, n, per):
        xb, yb = x[i0:i0 + per], y[i0:i0 + per]
        B = xb.shape[0]
        pts = (a * xb.unsqueeze(1)).reshape((B * S,) + shape).requires_grad_(True)
        tgt = yb.repeat_interleave(S)
        (g,) = torch.autograd.grad(model(pts)[torch.arange(B * S), tgt].sum(), pts)
        attr = (xb - base) * (g.reshape((B, S) + shape) * w).sum(1)
        out[i0:i0 + B] = attr
        with torch.no_grad():
            ends = model(torch.cat([xb, base]))
            fx = ends[torch.arange(B), yb].double()
            f0 = ends[B, yb].double()
        d = fx - f0
        s = attr.reshape(B, -1).double().sum(1)
        floor = torch.maximum(1e-4 * torch.maximum(fx.abs(), f0.abs()),
                              torch.full_like(d, 1e-30))
        comp[i0:i0 + B] = (s - d).abs() / torch.maximum(d.abs(), floor)
    return out, comp


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=("lenet", "lstm"), default="lenet")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--per", default="1,2,4,8,16,32")
    ap.add_argument("--trial-images", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    images = read_idx(find(args.data, "t10k-images-idx3-ubyte"))[:args.images]
    labels = read_idx(find(args.data, "t10k-labels-idx1-ubyte"))[:args.images]
    n = images.shape[0]
    shape = (1, 28, 28) if args.model == "lenet" else (28, 28)
    x = torch.from_numpy(images.astype(np.float32) / 255.0).reshape((n,) + shape)
    y = torch.from_numpy(labels.astype(np.int64))
    torch.manual_seed(args.seed)
    model = build(args.model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    t, w = np.polynomial.legendre.leggauss(args.steps)
    alpha = torch.tensor((t + 1.0) / 2.0, dtype=torch.float32)
    weight = torch.tensor(w / 2.0, dtype=torch.float32)

    pers = [int(p) for p in args.per.split(",")]
    m = min(n, args.trial_images)
    ig(model, x[:m], y[:m], alpha, weight, max(pers))  # warm-up
    trials = {}
    for per in pers:
        t0 = time.perf_counter()
        ig(model, x[:m], y[:m], alpha, weight, per)
        trials[str(per)] = m / (time.perf_counter() - t0)
    per = max(pers, key=lambda p: trials[str(p)])

    secs = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        _, comp = ig(model, x, y, alpha, weight, per)
        secs.append(time.perf_counter() - t0)
    best = min(secs)
    print(json.dumps({
        "model": args.model, "steps": args.steps, "images": n, "seconds": best,
        "images_per_s": n / best, "threads": args.threads, "batch": per * args.steps,
        "mean_completeness": float(comp.mean()), "rounds": secs, "per": per,
        "per_trials": trials, "torch_threads": args.threads,
        "openblas_threads": int(os.environ.get("OPENBLAS_NUM_THREADS", "0") or 0)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
