"""Speed of benchbench's verifiers, and of auto_LiRPA on the same models where it is available.

    python benchmarks/verify.py [--rows 1000] [--cnn-rows 200] [--mip-rows 200] [--eps 0.05]
                                [--checkpoint PATH] [--mip-checkpoint PATH] [--mip-mlp-rows 100]
                                [--lirpa-python PATH] [--threads N]

* IBP and CROWN (float64 bounds, L-inf) on the founding study's MLP (784-200-300-10) for
  ``--rows`` MNIST test images (synthetic images where MNIST is not on disk), and on a small CNN
  (Wong and Kolter's "small": conv 16 4x4/2, conv 32 4x4/2, 100, 10) for ``--cnn-rows``: seconds,
  images per second and the certified fraction at ``--eps``. The MLP is ``--checkpoint`` (a
  study's ``checkpoints/<cell>/epoch_NNNN.safetensors`` or a ``torch.save``d ``state_dict`` of
  ``build_mlp``, bounded in float64 whatever its dtype) or trained here for ``--train-steps``
  Adam steps, as is the CNN; certified fractions of such briefly trained models say nothing
  about the study's. ``--cnn-rows 0`` skips the CNN.
* auto_LiRPA's ``compute_bounds`` (method IBP and CROWN, same options as the fixture:
  ``compare_crown_with_ibp``, ``minimum_sparsity=1.0``) on the same weights and images, timed in
  a subprocess of ``--lirpa-python`` (an interpreter with auto_LiRPA installed; by default this
  one, if it imports auto_LiRPA; skipped otherwise), with the largest difference of its margin
  bounds from benchbench's, for each of ``--lirpa-batch`` (100 and 20 images per call); the
  ratio is to its fastest. auto_LiRPA's bound of an example can depend on its batch (its
  sparse intermediate bounds are computed for the neurons unstable in any example of the batch,
  and the output's interval bounds gain from those of neurons stable in this one); benchbench's
  never do, and equal auto_LiRPA's for the example alone. Both sides are timed after a warm-up
  call on two images (auto_LiRPA's ``BoundedModule`` is built outside its timing; benchbench's
  network inside), with glibc's malloc keeping freed memory as ``benchbench run`` sets it
  (``benchbench/engine/memory.py``) in both processes.
* MIP: the fraction of ``--mip-rows`` digits test images decided (robust or not) within
  ``--time-limit`` (10 s) each on a 64-64-10 MLP trained here, at eps 0.1, with the step that
  decided each (``--mip-rows 0`` skips it); with ``--mip-checkpoint`` (a founding-MLP
  checkpoint, as ``--checkpoint``) the same for its first ``--mip-mlp-rows`` MNIST test images
  at ``--eps``, the model in its own dtype.

Every measurement prints the load average before and after it (other jobs on the machine move
the times). Ends with one summary line.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from benchbench.models.mlp import build_mlp
from benchbench.verify.api import margin_bounds, threshold

LIRPA = r"""
import ctypes, json, sys, time, torch
from safetensors.torch import load_file
libc = ctypes.CDLL("libc.so.6")  # glibc's malloc as benchbench/engine/memory.py sets it
libc.mallopt(-1, 1 << 30), libc.mallopt(-3, 1 << 25)
from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm
torch.set_num_threads(int(sys.argv[3]))
spec = json.loads(sys.argv[2])
t = load_file(sys.argv[1])
model = eval(spec["model"], {"nn": torch.nn, "torch": torch}).double().eval()
model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("state.")})
x, y, eps = t["x"], t["y"], spec["eps"]
K = 10
C = torch.stack([torch.stack([torch.eye(K, dtype=torch.float64)[int(c)]
                 - torch.eye(K, dtype=torch.float64)[j] for j in range(K) if j != int(c)])
                 for c in y])
out = {}
for method in ("IBP", "CROWN"):
    bm = BoundedModule(model, torch.zeros((1, *x.shape[1:]), dtype=torch.float64),
                       bound_opts={"compare_crown_with_ibp": True, "minimum_sparsity": 1.0},
                       device="cpu")
    xb, eps_box = x[:2], PerturbationLpNorm(norm=float("inf"), eps=eps, x_L=(x[:2] - eps).clamp(
        min=0), x_U=(x[:2] + eps).clamp(max=1))
    with torch.no_grad():  # warm-up, as benchbench's side
        bm.compute_bounds(x=(BoundedTensor(xb, eps_box),), C=C[:2], method=method,
                          bound_upper=False)
    start, lows = time.perf_counter(), []
    for s in range(0, len(x), spec["batch"]):
        xb = x[s:s + spec["batch"]]
        box = PerturbationLpNorm(norm=float("inf"), eps=eps, x_L=(xb - eps).clamp(min=0),
                                 x_U=(xb + eps).clamp(max=1))
        with torch.no_grad():
            lb, _ = bm.compute_bounds(x=(BoundedTensor(xb, box),), C=C[s:s + spec["batch"]],
                                      method=method, bound_upper=False)
        lows.append(lb)
    out[method] = {"seconds": time.perf_counter() - start,
                   "lower": torch.cat(lows).tolist()}
print("RESULT" + json.dumps(out))
"""

CNN = ("nn.Sequential(nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(), "
       "nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(), nn.Flatten(), "
       "nn.Linear(32 * 7 * 7, 100), nn.ReLU(), nn.Linear(100, 10))")
MLP = ("nn.Sequential(nn.Flatten(), nn.Linear(784, 200), nn.ReLU(), nn.Linear(200, 300), "
       "nn.ReLU(), nn.Linear(300, 10))")


def mnist(n_train: int, n_test: int):
    try:
        from benchbench.datasets.mnist import MNIST
        from benchbench.datasets.mnist_source import default_data_dir, is_materialised

        if is_materialised(default_data_dir()):
            xt, yt = MNIST().load("train", data_dir=None)
            xs, ys = MNIST().load("test", data_dir=None)
            return (xt[:n_train].float(), yt[:n_train], xs[:n_test].float(), ys[:n_test],
                    "MNIST")
    except Exception as exc:  # the benchmark still runs without the data
        print(f"(MNIST unavailable: {exc}; using synthetic data)")
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n_train + n_test, 1, 28, 28), generator=g).float() / 255
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:], "synthetic"


def load() -> str:
    return "load " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def founding_mlp(path: Path):
    """The 784-200-300-10 MLP from a checkpoint, in the checkpoint's dtype."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        state = load_file(path)
        with safe_open(path, "pt") as f:
            meta = f.metadata() or {}
        print(f"checkpoint {path}: cell {meta.get('cell_id', '?')}, epoch "
              f"{meta.get('epoch', '?')}")
    else:
        state = torch.load(path, map_location="cpu")
    dtype = next(iter(state.values())).dtype
    model = build_mlp(input_shape=(1, 28, 28), num_classes=10).to(dtype)
    model.load_state_dict(state)
    return model.eval()


def train(model, x, y, steps: int, *, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (100,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model.eval()


def ours(model, x, y, eps: float, method: str):
    start = time.perf_counter()
    lower = margin_bounds(model, x, y, eps=eps, method=method)
    seconds = time.perf_counter() - start
    proved = (lower.amin(1) > threshold(model, x)).float().mean().item()
    return seconds, proved, lower


def lirpa(python: str | None, model, spec: str, x, y, eps: float, threads: int,
          batch: int) -> dict | None:
    from safetensors.torch import save_file

    if python is None:
        try:
            import auto_LiRPA  # noqa: F401
        except ImportError:
            return None
        python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "case.safetensors"
        tensors = {f"state.{k}": v.double().contiguous() for k, v in model.state_dict().items()}
        save_file({**tensors, "x": x.double().contiguous(), "y": y}, path)
        done = subprocess.run([python, "-c", LIRPA, str(path),
                               json.dumps({"model": spec, "eps": eps, "batch": batch}),
                               str(threads)], capture_output=True, text=True)
    line = next((s for s in done.stdout.splitlines() if s.startswith("RESULT")), None)
    if line is None:
        print(f"(auto_LiRPA failed: {done.stderr.strip().splitlines()[-1:]})")
        return None
    return json.loads(line[6:])


def bound_rows(name, model, spec, x, y, eps, args) -> dict:
    """Both sides on the float64 copy of the model and images (bounds are float64 anyway; the
    float32 images' own box, which benchbench adds, would move the margins by ~1e-6)."""
    model, x = copy.deepcopy(model).double(), x.double()
    row = {}
    for method in ("ibp", "crown"):
        ours(model, x[:2], y[:2], eps, method)  # warm-up (first calls), as auto_LiRPA's side
        before = load()
        seconds, proved, lower = ours(model, x, y, eps, method)
        row[method] = (seconds, proved, lower)
        print(f"{name:4s} {method:6s} benchbench: {seconds:8.2f} s for {len(x)} images "
              f"({len(x) / seconds:8.1f}/s), certified {proved:.3f} ({before}; after: "
              f"{load()})")
    for method in ("ibp", "crown"):
        row[f"lirpa_{method}"] = float("nan")
    for batch in args.lirpa_batch:
        before = load()
        ref = lirpa(args.lirpa_python, model, spec, x, y, eps, args.threads, batch)
        if ref is None:
            print(f"{name:4s} auto_LiRPA: skipped (not importable or failed)")
            break
        print(f"{name:4s} auto_LiRPA batch {batch} ({before}; after: {load()})")
        for method, key in (("ibp", "IBP"), ("crown", "CROWN")):
            theirs = torch.tensor(ref[key]["lower"], dtype=torch.float64)
            mine = row[method][2]
            mine = mine[torch.isfinite(mine)].view(len(x), -1)
            diff = (mine - theirs).abs().max().item()
            rows = ((mine - theirs).abs().amax(1) > 1e-9)  # auto_LiRPA's bounds of an example
            looser = int(((mine - theirs).amin(1) < -1e-9).sum())  # can depend on its batch
            seconds = ref[key]["seconds"]
            row[f"lirpa_{method}"] = min(seconds, row[f"lirpa_{method}"]) if math.isfinite(
                row[f"lirpa_{method}"]) else seconds
            print(f"{name:4s} {method:6s} auto_LiRPA: {seconds:8.2f} s ({len(x) / seconds:8.1f}/s; "
                  f"benchbench {seconds / row[method][0]:.2f}x as fast), max |difference| "
                  f"{diff:.1e}; {int(rows.sum())} images differ by > 1e-9 (benchbench looser "
                  f"on {looser})")
    for method in ("ibp", "crown"):
        best = row[f"lirpa_{method}"]
        if math.isfinite(best):
            print(f"{name:4s} {method:6s} benchbench {best / row[method][0]:.2f}x as fast as "
                  f"auto_LiRPA's fastest batch")
    return row


def mip_row(name: str, model, x, y, eps: float, time_limit: float) -> tuple[float, dict, float]:
    from benchbench.verify.mip import mip_verdicts

    before = load()
    start = time.perf_counter()
    r = mip_verdicts(model, x, y, eps=eps, time_limit=time_limit)
    seconds = time.perf_counter() - start
    decided = float((r.codes != 0).float().mean())
    stages = {s: r.stage.count(s) for s in sorted(set(r.stage))}
    robust = float((r.codes == 1).float().mean())
    print(f"mip  {name} eps {eps:g}: decided {decided:.3f} of {len(x)} within "
          f"{time_limit:g} s each ({seconds:.1f} s in all; exact robust accuracy {robust:.3f}; "
          f"decided by {stages}; slowest solve {max(r.seconds):.2f} s) ({before}; after: "
          f"{load()})")
    return decided, stages, seconds


def mip_digits(rows: int, time_limit: float) -> tuple[float, dict, float]:
    from benchbench.datasets.digits import Digits

    xt, yt = Digits().load("train")
    xs, ys = Digits().load("test")
    torch.manual_seed(0)
    model = train(build_mlp(input_shape=(1, 8, 8), num_classes=10, hidden=[64, 64]),
                  xt.float(), yt, 1500)
    return mip_row("digits 64-64-10", model, xs[:rows].float(), ys[:rows], 0.1, time_limit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--cnn-rows", type=int, default=200)
    parser.add_argument("--mip-rows", type=int, default=200)
    parser.add_argument("--eps", type=float, default=0.05)
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--mip-checkpoint", type=Path)
    parser.add_argument("--mip-mlp-rows", type=int, default=100)
    parser.add_argument("--lirpa-python")
    parser.add_argument("--lirpa-batch", type=lambda v: [int(b) for b in v.split(",")],
                        default=[100, 20], help="auto_LiRPA's batch sizes, each timed "
                        "(comma-separated; the ratio is to the fastest)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--time-limit", type=float, default=10.0)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each line as it is measured, even into a file
    torch.set_num_threads(args.threads)
    # as `benchbench run` does (engine/memory.py); auto_LiRPA's process gets the same settings
    from benchbench.engine.memory import keep_freed_memory

    keep_freed_memory()
    n_test = max(args.rows, args.cnn_rows, args.mip_mlp_rows if args.mip_checkpoint else 0)
    xt, yt, xs, ys, source = mnist(20_000, n_test)
    print(f"data: {source}; threads {args.threads}; torch {torch.__version__}; eps {args.eps}; "
          f"{load()}")
    torch.manual_seed(0)
    if args.checkpoint:
        mlp = founding_mlp(args.checkpoint)
    else:
        mlp = train(build_mlp(input_shape=(1, 28, 28), num_classes=10), xt.float(), yt,
                    args.train_steps)
    m = bound_rows("mlp", mlp, MLP, xs[:args.rows], ys[:args.rows], args.eps, args)
    nan = (float("nan"), 0.0, None)
    c = {"ibp": nan, "crown": nan, "lirpa_ibp": float("nan"), "lirpa_crown": float("nan")}
    if args.cnn_rows:
        cnn = train(eval(CNN), xt.float(), yt, args.train_steps)  # noqa: S307 - our constant
        c = bound_rows("cnn", cnn, CNN, xs[:args.cnn_rows], ys[:args.cnn_rows], args.eps, args)
    decided = mip_seconds = founding = float("nan")
    if args.mip_rows:
        decided, _, mip_seconds = mip_digits(args.mip_rows, args.time_limit)
    if args.mip_checkpoint:
        model = founding_mlp(args.mip_checkpoint)
        n = args.mip_mlp_rows
        dtype = next(model.parameters()).dtype
        founding, _, _ = mip_row("founding MLP 784-200-300-10", model, xs[:n].to(dtype),
                                 ys[:n], args.eps, args.time_limit)
    per_10k = m["crown"][0] / args.rows * 10_000
    print(f"summary mlp_crown_s_per_10k={per_10k:.1f} mlp_ibp_s={m['ibp'][0]:.2f} "
          f"mlp_crown_s={m['crown'][0]:.2f} cnn_crown_s={c['crown'][0]:.2f} "
          f"lirpa_mlp_crown_s={m['lirpa_crown']:.2f} lirpa_cnn_crown_s={c['lirpa_crown']:.2f} "
          f"speedup_mlp_ibp={m['lirpa_ibp'] / m['ibp'][0]:.2f} "
          f"speedup_mlp_crown={m['lirpa_crown'] / m['crown'][0]:.2f} "
          f"speedup_cnn_ibp={c['lirpa_ibp'] / c['ibp'][0]:.2f} "
          f"speedup_cnn_crown={c['lirpa_crown'] / c['crown'][0]:.2f} "
          f"mip_decided={decided:.3f} mip_s={mip_seconds:.1f} mip_founding_decided={founding:.3f} "
          f"{load()}")


if __name__ == "__main__":
    main()
