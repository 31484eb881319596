#!/usr/bin/python3
"""PyTorch reference attributions for tests/explain/test_explain_torch.c.

Usage:  /usr/bin/python3 tests/explain/torch_explain.py OUT_DIR

Writes OUT_DIR/explain_lenet.bin and OUT_DIR/explain_lstm.bin: the presets
`lenet` and `lstm` of Glassbox (common/engine/spec.c) built as an
nn.Sequential in float32 on one thread with PyTorch's seeded default
initialisation, a batch of inputs, one baseline, target classes, and the
attributions torch.autograd computes for the target LOGITS:

  integrated gradients  straight path from the baseline, the 32-point
                        Gauss-Legendre rule of numpy.polynomial.legendre.leggauss
                        mapped to [0, 1] (nodes (t + 1)/2, weights w/2), all
                        (sample, node) points in one batched forward and
                        backward: IG = (x - x') * sum_k w_k grad_k, the sum in
                        float64 (as Glassbox accumulates);
  gradient x input      x * grad at x;
  Grad-CAM (lenet)      on the last conv layer (Conv2d(16, 32, 5), output
                        32 x 8 x 8, before its ReLU): alpha_k = mean over
                        positions of d logit / d A_k, map = sum_k alpha_k A_k,
                        signed, 8 x 8 (Captum's LayerGradCam without ReLU or
                        upsampling).

The path points are formed as x' + float32(alpha) * (x - x') in float32, the
expression Glassbox evaluates, so both sides start from the same inputs.

Flat parameter layout (Glassbox's): torch.cat of model.parameters() of the
nn.Sequential in spec order. lenet: Conv2d(1, 16, 5), ReLU, MaxPool2d(2),
Conv2d(16, 32, 5), ReLU, MaxPool2d(2), Flatten, Linear(512, 128), ReLU,
Linear(128, 10). lstm: nn.LSTM(28, 128, batch_first=True) from a zero state,
its last hidden state into Linear(128, 10); parameters weight_ih_l0,
weight_hh_l0, bias_ih_l0, bias_hh_l0 (gates i, f, g, o), then the Linear's
weight and bias.

File format (tests/support/torch_fixture.h reads it), little-endian:

    magic     8 bytes  b"GBTORCH1"
    records   until end of file, each: u32 name length L, L bytes of name,
              u32 count N, N float32 values

Records (B = 6 samples, D = 784 input floats, P = parameter count):

    params            P      flat parameters
    x                 B*D    inputs, uniform in [0, 1) (x/255-like)
    baseline          D      one baseline for all samples, uniform in [0, 0.5)
    targets           B      target classes (exact small integers)
    logits            B*10   forward pass of x
    gl_alpha          32     the Gauss-Legendre nodes on [0, 1] (numpy)
    gl_weight         32     and weights
    ig                B*D    integrated gradients, 32 nodes
    ig_completeness   B      |sum(ig) - (f(x) - f(x'))| / |f(x) - f(x')|
    gradxinput        B*D    gradient x input
    gradcam           B*64   Grad-CAM maps (lenet only)

Tolerance (the C test's; keep the two in step): for each record,
max over elements of |glassbox - torch| / max(|glassbox|, |torch|, floor)
with floor = 0.02 x the record's largest |torch value| (as for gradients in
tests/fixtures/torch_reference.py: float32 sums carry absolute, not
relative, rounding), must be <= 1e-4; ig_completeness within 1e-4 absolute;
logits (a check that the weights loaded) 1e-5 with floor 0.25 x the largest.

Like tests/fixtures/torch_reference.py, the script refuses to write a
fixture on a numerical knife edge (a ReLU or max-pool switching at some path
point under rounding): everything is computed again in float64 from the same
float32 parameters and inputs, and the float32 records must agree with it to
a quarter of the tolerance.
"""

import os
import struct
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
except ImportError as exc:  # the wrong python3, or python3-torch missing
    sys.stderr.write("torch_explain.py: cannot import torch/numpy (%s); run it with "
                     "/usr/bin/python3 and install python3-torch\n" % exc)
    sys.exit(1)

MAGIC = b"GBTORCH1"
BATCH = 6
CLASSES = 10
STEPS = 32
TOL = 1e-4
FLOOR = 0.02
GUARD = 0.25
LOGITS_TOL = 1e-5   # logits: as tests/fixtures/torch_reference.py
LOGITS_FLOOR = 0.25
SEEDS = {"lenet": 20261301, "lstm": 20261302}


class LastHidden(nn.Module):
    """nn.LSTM(batch_first) from a zero state; returns the last step's h."""

    def __init__(self, features, hidden):
        super().__init__()
        self.rnn = nn.LSTM(features, hidden, batch_first=True)

    def forward(self, x):
        seq, _ = self.rnn(x)
        return seq[:, -1]


def build(preset):
    if preset == "lenet":
        return nn.Sequential(
            nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, CLASSES))
    if preset == "lstm":
        return nn.Sequential(LastHidden(28, 128), nn.Linear(128, CLASSES))
    raise ValueError(preset)


def input_shape(preset):
    return (1, 28, 28) if preset == "lenet" else (28, 28)


def flat(tensors):
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def load_flat(model, vec):
    off = 0
    with torch.no_grad():
        for p in model.parameters():
            n = p.numel()
            p.copy_(vec[off:off + n].view_as(p))
            off += n
    assert off == vec.numel()


def gauss_legendre(n):
    t, w = np.polynomial.legendre.leggauss(n)  # ascending nodes on [-1, 1]
    return (t + 1.0) / 2.0, w / 2.0


def compute(preset, params0, x, base, targets, dtype):
    """The attributions in `dtype` from the same float32 starting values."""
    out = {}
    model = build(preset).to(dtype)
    load_flat(model, params0.to(dtype))
    model.eval()
    xd, bd = x.to(dtype), base.to(dtype)
    idx = torch.arange(BATCH)
    logits = model(xd)
    out["logits"] = logits.detach()

    # Integrated gradients: all B x STEPS points in one batch.
    alpha, weight = gauss_legendre(STEPS)
    a = torch.tensor(alpha, dtype=torch.float32).to(dtype)
    shape = (1, STEPS) + (1,) * (x.dim() - 1)
    pts = bd.unsqueeze(0).unsqueeze(0) + a.view(shape) * (xd - bd).unsqueeze(1)
    pts = pts.reshape((BATCH * STEPS,) + tuple(x.shape[1:])).detach().requires_grad_(True)
    rows = torch.arange(BATCH * STEPS)
    tgt = targets.repeat_interleave(STEPS)
    (grads,) = torch.autograd.grad(model(pts)[rows, tgt].sum(), pts)
    grads = grads.reshape((BATCH, STEPS) + tuple(x.shape[1:])).double()
    wsum = (grads * torch.tensor(weight).view(shape)).sum(1)
    ig = ((xd.double() - bd.double()) * wsum).to(dtype)
    out["ig"] = ig
    fx = logits[idx, targets].double()
    fb = model(bd.unsqueeze(0))[0, targets].double()
    total = ig.double().reshape(BATCH, -1).sum(1)
    out["ig_completeness"] = ((total - (fx - fb)).abs() / (fx - fb).abs()).detach()

    # Gradient x input.
    xr = xd.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xr)[idx, targets].sum(), xr)
    out["gradxinput"] = (xd.double() * g.double()).to(dtype)

    if preset == "lenet":
        conv = model[3]
        saved = {}

        def keep(module, inputs, output):
            output.retain_grad()
            saved["a"] = output

        handle = conv.register_forward_hook(keep)
        xr = xd.clone().requires_grad_(True)
        model(xr)[idx, targets].sum().backward()
        handle.remove()
        acts = saved["a"].detach().double()
        dacts = saved["a"].grad.detach().double()
        alphas = dacts.mean(dim=(2, 3), keepdim=True)
        out["gradcam"] = (alphas * acts).sum(1).to(dtype)
    return out


def rel_diff(a, b, floor_fraction=FLOOR):
    """The C test's measure: a is the candidate, b the reference."""
    a = a.double().reshape(-1)
    b = b.double().reshape(-1)
    floor = floor_fraction * float(b.abs().max())
    scale = torch.maximum(torch.maximum(a.abs(), b.abs()), torch.full_like(a, floor))
    rel = (a - b).abs() / scale
    rel = torch.where(torch.isnan(rel), torch.full_like(rel, float("inf")), rel)
    return float(rel.max())


def write_fixture(path, records):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        for name, values in records:
            raw = name.encode("ascii")
            vals = torch.as_tensor(values).detach().to(torch.float32).contiguous().reshape(-1)
            f.write(struct.pack("<I", len(raw)))
            f.write(raw)
            f.write(struct.pack("<I", vals.numel()))
            f.write(vals.numpy().astype("<f4").tobytes())
    os.replace(tmp, path)


def make(preset, out_dir):
    torch.manual_seed(SEEDS[preset])
    params0 = flat(build(preset).parameters()).to(torch.float32)
    x = torch.rand((BATCH,) + input_shape(preset), dtype=torch.float32)
    base = 0.5 * torch.rand(input_shape(preset), dtype=torch.float32)
    targets = torch.randint(0, CLASSES, (BATCH,), dtype=torch.int64)

    r32 = compute(preset, params0, x, base, targets, torch.float32)
    r64 = compute(preset, params0, x, base, targets, torch.float64)
    ok = True
    report = []
    for name in r32:
        if name == "ig_completeness":
            d = float((r32[name].double() - r64[name].double()).abs().max())
            limit = GUARD * TOL
        elif name == "logits":
            d = rel_diff(r32[name], r64[name], LOGITS_FLOOR)
            limit = GUARD * LOGITS_TOL
        else:
            d = rel_diff(r32[name], r64[name])
            limit = GUARD * TOL
        report.append("%s %.0e" % (name, d))
        if not d <= limit:
            sys.stderr.write("torch_explain.py: %s: float32 differs from float64 by %.2e in %s "
                             "(limit %.1e): the fixture is numerically fragile; change its "
                             "seed\n" % (preset, d, name, limit))
            ok = False
    if not ok:
        return False
    alpha, weight = gauss_legendre(STEPS)
    records = [
        ("params", params0),
        ("x", x),
        ("baseline", base),
        ("targets", targets.to(torch.float32)),
        ("logits", r32["logits"]),
        ("gl_alpha", torch.tensor(alpha)),
        ("gl_weight", torch.tensor(weight)),
        ("ig", r32["ig"]),
        ("ig_completeness", r32["ig_completeness"]),
        ("gradxinput", r32["gradxinput"]),
    ]
    if "gradcam" in r32:
        records.append(("gradcam", r32["gradcam"]))
    path = os.path.join(out_dir, "explain_%s.bin" % preset)
    write_fixture(path, records)
    print("torch_explain.py: wrote %s (%d parameters); float32 vs float64: %s; "
          "ig completeness %s" % (path, params0.numel(), ", ".join(report),
                                  ", ".join("%.2e" % v for v in r32["ig_completeness"])))
    return True


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: torch_explain.py OUT_DIR\n")
        return 2
    out_dir = argv[1]
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    ok = True
    for preset in ("lenet", "lstm"):
        ok = make(preset, out_dir) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
