#!/usr/bin/python3
"""The PyTorch side of the benchmark (tests/bench/bench.py runs it).

Trains one of Glassbox's presets with PyTorch's default initialisation on
Fashion-MNIST: inputs x/255, mean cross-entropy, the training split shuffled
every epoch, the last short batch used too (as Glassbox does), and evaluates
on the 10,000 test images after every epoch, in order, under
torch.inference_mode() with the same batch size. --model picks the network:

  lenet  (default) conv 16 5, relu, maxpool 2, conv 32 5, relu, maxpool 2,
         flatten, dense 128, relu, dense 10, as an nn.Sequential;
  lstm   each 28x28 image read row by row as 28 steps of 28 features:
         nn.LSTM(28, 128, batch_first=True) from a zero state, its last
         hidden state h_T into nn.Linear(128, 10) (Glassbox's
         "input 28 28 / lstm 128 / dense 10").

--optimizer sgd (plain SGD, no momentum; the LeNet benchmark: batch 32,
lr 0.05) or adam (torch.optim.Adam with its defaults but lr; the LSTM
benchmark: batch 64, lr 1e-3). It measures what glassbox-client train --json
reports, and prints the same keys, one JSON object per line:

  {"epoch": E, "samples": N, "samples_per_s": ..., "train_loss": ...,
   "test_loss": ..., "test_accuracy": 0..1, "seconds": ...,
   "eval_samples_per_s": ..., "torch_threads": T, "openblas_threads": B,
   "batch": N, "model": M}                        one per epoch, then
  {"peak_rss_kb": N}                              resource.getrusage ru_maxrss

samples_per_s counts the whole training loop of the epoch (gathering the
batch, converting it to float, forward, loss, backward, step); seconds is that
loop's wall time. The images stay uint8 in memory and are converted one batch
at a time, like Glassbox's dataset (188 MB of floats would only make PyTorch's
peak RSS look worse).

--trial N trains N batches after 20 untimed warm-up batches and runs N test
batches, then prints one line {"trial": true, "samples_per_s": ...,
"eval_samples_per_s": ...}: bench.py uses it to find PyTorch's fastest thread
setting.

The thread counts: --threads sets torch.set_num_threads; OpenBLAS's pool is
sized by OPENBLAS_NUM_THREADS in the environment, which must be set before
this process starts (bench.py does). Needs /usr/bin/python3 with
python3-torch and numpy.
"""

import argparse
import gzip
import json
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

WARMUP_BATCHES = 20


def read_idx(path):
    """An IDX file (gzipped or not) as a numpy array of its shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, rank = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError("%s: not an unsigned-byte IDX file" % path)
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank)
    if arr.size != int(np.prod(dims)):
        raise ValueError("%s: %d bytes of data for shape %s" % (path, arr.size, dims))
    return arr.reshape(dims)


def find(data_dir, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError("%s/%s[.gz]" % (data_dir, stem))


def load_split(data_dir, prefix):
    images = read_idx(find(data_dir, prefix + "-images-idx3-ubyte"))
    labels = read_idx(find(data_dir, prefix + "-labels-idx1-ubyte"))
    x = torch.from_numpy(images.copy()).reshape(-1, 1, 28, 28)  # uint8
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10))


class LstmNet(nn.Module):
    """The lstm preset: rows of the image as time steps, last hidden state."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(28, 128, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        _, (h, _) = self.lstm(x.reshape(x.shape[0], 28, 28))
        return self.fc(h[-1])


MODELS = {"lenet": lenet, "lstm": LstmNet}


def batch_of(x, y, idx):
    return x[idx].float().div_(255.0), y[idx]


def train_batches(model, opt, x, y, order, batch):
    """Trains over `order` in mini-batches; returns (samples, loss sum)."""
    model.train()
    total = 0.0
    for start in range(0, order.numel(), batch):
        xb, yb = batch_of(x, y, order[start:start + batch])
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        total += loss.item() * yb.numel()
    return order.numel(), total


def evaluate(model, x, y, batch, limit=None):
    """Returns (samples, loss sum, correct, seconds) over the first `limit`
    samples in order."""
    model.eval()
    n = x.shape[0] if limit is None else min(limit, x.shape[0])
    loss_sum = 0.0
    correct = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, n, batch):
            xb = x[start:min(start + batch, n)].float().div_(255.0)
            yb = y[start:min(start + batch, n)]
            out = model(xb)
            loss_sum += F.cross_entropy(out, yb, reduction="sum").item()
            correct += int((out.argmax(1) == yb).sum())
    return n, loss_sum, correct, time.perf_counter() - t0


def peak_rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--model", choices=sorted(MODELS), default="lenet")
    ap.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--trial", type=int, default=0, metavar="N",
                    help="time N batches of training and of inference only")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    common = {"torch_threads": torch.get_num_threads(),
              "openblas_threads": int(os.environ.get("OPENBLAS_NUM_THREADS", "0") or 0),
              "batch": args.batch, "model": args.model}

    train_x, train_y = load_split(args.data, "train")
    test_x, test_y = load_split(args.data, "t10k")
    model = MODELS[args.model]()
    if args.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)

    if args.trial:
        order = torch.randperm(train_x.shape[0], generator=gen)
        warm = WARMUP_BATCHES * args.batch
        train_batches(model, opt, train_x, train_y, order[:warm], args.batch)
        evaluate(model, test_x, test_y, args.batch, limit=warm)
        t0 = time.perf_counter()
        n, _ = train_batches(model, opt, train_x, train_y,
                             order[warm:warm + args.trial * args.batch], args.batch)
        train_s = time.perf_counter() - t0
        en, _, _, eval_s = evaluate(model, test_x, test_y, args.batch,
                                    limit=args.trial * args.batch)
        print(json.dumps(dict(trial=True, samples_per_s=round(n / train_s, 1),
                              eval_samples_per_s=round(en / eval_s, 1), **common)))
        return 0

    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(train_x.shape[0], generator=gen)
        t0 = time.perf_counter()
        n, loss_total = train_batches(model, opt, train_x, train_y, order, args.batch)
        train_s = time.perf_counter() - t0
        en, loss_sum, correct, eval_s = evaluate(model, test_x, test_y, args.batch)
        print(json.dumps(dict(epoch=epoch, samples=n, samples_per_s=round(n / train_s, 1),
                              train_loss=round(loss_total / n, 6),
                              test_loss=round(loss_sum / en, 6),
                              test_accuracy=round(correct / en, 6), seconds=round(train_s, 3),
                              eval_samples_per_s=round(en / eval_s, 1), **common)), flush=True)
    print(json.dumps({"peak_rss_kb": peak_rss_kb()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
