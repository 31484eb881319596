#!/usr/bin/python3
"""The PyTorch side of the federation benchmark (tests/bench/fed_bench.py).

A sequential FedAvg simulation, the usual way a federation is simulated in
PyTorch: one process, one global model, and per round every client in turn

  - copies the global model (load_state_dict into one local nn.Module),
  - trains --epochs (1) local epochs over its shard: the shard's samples
    shuffled by a torch.Generator, mini-batches of --batch (32, the last
    short one too), plain SGD at --lr (0.05, no momentum), mean
    cross-entropy, inputs x/255;

then the server averages the clients' parameters weighted by their sample
counts (FedAvg) into the global model and evaluates it on the 10,000 test
images in order under torch.inference_mode(), --eval-batch at a time.

The network is tests/bench/torch_train.py's LeNet (conv 16 5, relu, maxpool
2, conv 32 5, relu, maxpool 2, flatten, dense 128, relu, dense 10, PyTorch's
default initialisation); the data is read by the same functions and stays
uint8 in memory, converted one batch at a time.

The shards come from --shards FILE, the JSON that build/gb_fed_shards prints
(tests/bench/fed_shards.c): the exact sample indices each Glassbox client
holds, cut by Glassbox's own partition function with the same seed.

Prints one JSON object a line:

  {"start": true, "clients": 10, "sizes": [...], "torch_threads": T,
   "openblas_threads": B, "load_seconds": S}              once, then per round
  {"round": R, "test_accuracy": 0..1, "test_loss": ..., "train_loss": ...,
   "seconds": S, "train_seconds": S, "aggregate_seconds": S,
   "eval_seconds": S, "samples": N}
  {"peak_rss_kb": N}                                       at the end

"seconds" is the round's wall time: every client's copy and local training,
the averaging and the evaluation. --threads sets torch.set_num_threads;
OpenBLAS's pool is sized by OPENBLAS_NUM_THREADS in the environment, set
before this process starts (fed_bench.py does). Needs /usr/bin/python3 with
python3-torch and numpy.
"""

import argparse
import json
import os
import sys
import time

T_START = time.perf_counter()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train import batch_of, evaluate, lenet, load_split, peak_rss_kb  # noqa: E402


def local_train(model, x, y, shard, gen, epochs, batch, lr):
    """Trains model in place over shard (a LongTensor of sample indices);
    returns the sum of the batch losses times their sizes."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    total = 0.0
    for _ in range(epochs):
        order = shard[torch.randperm(shard.numel(), generator=gen)]
        for start in range(0, order.numel(), batch):
            xb, yb = batch_of(x, y, order[start:start + batch])
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * yb.numel()
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shards", required=True, help="gb_fed_shards' JSON")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--eval-batch", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with open(args.shards) as f:
        spec = json.load(f)
    shards = [torch.tensor(s, dtype=torch.int64) for s in spec["shards"]]
    train_x, train_y = load_split(args.data, "train")
    test_x, test_y = load_split(args.data, "t10k")
    limit = spec.get("samples", train_x.shape[0])
    train_x, train_y = train_x[:limit], train_y[:limit]  # gb_fed_shards --limit
    sizes = [int(s.numel()) for s in shards]
    print(json.dumps({"start": True, "clients": len(shards), "sizes": sizes,
                      "partition": spec.get("partition"), "seed": spec.get("seed"),
                      "torch_threads": torch.get_num_threads(),
                      "openblas_threads": int(os.environ.get("OPENBLAS_NUM_THREADS", "0") or 0),
                      "load_seconds": round(time.perf_counter() - T_START, 3)}), flush=True)

    global_model = lenet()
    local = lenet()
    gen = torch.Generator().manual_seed(args.seed)
    total = float(sum(sizes))
    for rnd in range(1, args.rounds + 1):
        t0 = time.perf_counter()
        g_state = {k: v.clone() for k, v in global_model.state_dict().items()}
        acc = {k: torch.zeros_like(v) for k, v in g_state.items()}
        loss_sum = 0.0
        train_s = 0.0
        agg_s = 0.0
        for shard in shards:
            local.load_state_dict(g_state)
            t1 = time.perf_counter()
            loss_sum += local_train(local, train_x, train_y, shard, gen, args.epochs,
                                    args.batch, args.lr)
            t2 = time.perf_counter()
            w = shard.numel() / total
            with torch.no_grad():
                for k, v in local.state_dict().items():
                    acc[k].add_(v, alpha=w)
            agg_s += time.perf_counter() - t2
            train_s += t2 - t1
        global_model.load_state_dict(acc)
        t3 = time.perf_counter()
        n, test_loss, correct, eval_s = evaluate(global_model, test_x, test_y, args.eval_batch)
        seconds = time.perf_counter() - t0
        print(json.dumps({"round": rnd, "test_accuracy": round(correct / n, 6),
                          "test_loss": round(test_loss / n, 6),
                          "train_loss": round(loss_sum / (total * args.epochs), 6),
                          "seconds": round(seconds, 3), "train_seconds": round(train_s, 3),
                          "aggregate_seconds": round(agg_s, 3),
                          "eval_seconds": round(time.perf_counter() - t3, 3),
                          "samples": int(total)}), flush=True)
    print(json.dumps({"peak_rss_kb": peak_rss_kb()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
