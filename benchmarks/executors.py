"""Where units run: inline against a local pool of 2 workers against Ray with 2 CPUs.

    python benchmarks/executors.py [--rounds 2] [--cells 8] [--epochs 5] [--trivial 10]

A grid of ``--cells`` digits cells that cannot stack (one seed, a different hidden size each),
run end to end by ``run_suite`` (validation, store, report included) on each executor, the
three interleaved (A B C A B C ...) in this one process; wall times, and each parallel
executor's speed-up over inline as the median of per-round ratios. Ray is started once
(``ray.init(num_cpus=2)``), before the rounds; its start is timed on its own. Then Ray's
per-unit overhead: one trivial unit (1 epoch on 100 images, nothing attacked) run ``--trivial``
times through ``Inline.run`` and ``RayTasks.run`` (median of each; the difference is what Ray
adds to a unit: scheduling, shipping the unit and its outcome, a worker's first imports
excepted since its workers are warm after the grid). Ends with one summary line.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

SUITE = """
[suite]
name = "executors"
seeds = [0]

[dataset]
name = "digits"
train = "train"
test = "test"
{models}
[regime]
name = "standard"
lr = 0.01
batch_size = 50
epochs = {epochs}
checkpoints = [1, {epochs}]

[[attacks]]
name = "fgsm"
eps = [0.05, 0.1]
"""
MODEL = '\n[[model]]\nname = "mlp"\nlabel = "h{h}"\nhidden = [{h}, {h}]\n'
TRIVIAL = """
[suite]
name = "trivial"
seeds = [0]

[dataset]
name = "digits"
train = "train[:100]"
test = "test[:100]"

[model]
name = "mlp"
hidden = [8]

[regime]
name = "standard"
epochs = 1
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--trivial", type=int, default=10)
    args = parser.parse_args()

    import ray

    from benchbench.engine.data import DataCache
    from benchbench.engine.executors.inline import Inline
    from benchbench.engine.executors.ray_tasks import RayTasks
    from benchbench.engine.runner import plan, run_suite
    from benchbench.engine.units import hosted
    from benchbench.plugins import load_registry
    from benchbench.suite.load import load_suite

    registry = load_registry(load_entry_points=False)
    work = Path(tempfile.mkdtemp(prefix="bb-executors-"))
    path = work / "grid.toml"
    path.write_text(SUITE.format(epochs=args.epochs, models="".join(
        MODEL.format(h=32 + 8 * i) for i in range(args.cells))))
    suite = load_suite(path, registry)
    print(f"# {platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, ray {ray.__version__}; load "
          f"{os.getloadavg()[0]:.2f}; {args.cells} cells x {args.epochs} epochs (digits)")
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    ray_start = time.perf_counter() - t0
    print(f"ray.init(num_cpus=2): {ray_start:.2f} s")
    variants = {"inline": ("inline", {}), "local x2": ("local", {"workers": 2}),
                "ray 2 cpus": ("ray", {"cpus_per_unit": 1})}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(args.rounds):
        for name, (executor, options) in variants.items():
            out = work / f"{executor}-{r}"
            t0 = time.perf_counter()
            summary = run_suite(suite, registry=registry, out_dir=out, device="cpu",
                                executor=executor, executor_options=options)
            times[name].append(time.perf_counter() - t0)
            assert len(summary.ran) == args.cells and not summary.failed
            print(f"round {r + 1} {name:11s} {times[name][-1]:7.2f} s  (load "
                  f"{os.getloadavg()[0]:.2f})", flush=True)
    for name in variants:
        ratios = [i / t for i, t in zip(times["inline"], times[name], strict=True)]
        print(f"{name:11s} median {statistics.median(times[name]):7.2f} s  speed-up over inline "
              f"x{statistics.median(ratios):.2f} (per round: "
              f"{', '.join(f'{x:.2f}' for x in ratios)})")

    tiny = work / "trivial.toml"
    tiny.write_text(TRIVIAL)
    tiny_suite = load_suite(tiny, registry)
    data = DataCache(registry, None)
    per: dict[str, list[float]] = {"inline": [], "ray": []}
    with hosted(registry, data) as token:
        for i in range(args.trivial):
            for name, runner in (("inline", Inline()), ("ray", RayTasks())):
                [unit] = plan(tiny_suite.cells(), registry, engine="auto", device="cpu",
                              out_dir=work / f"trivial-{name}-{i}", data_dir=None,
                              plugins={**registry.recipe, "token": token})
                t0 = time.perf_counter()
                [done] = list(runner.run([unit], emit=lambda p: None, retries=0))
                per[name].append(time.perf_counter() - t0)
                assert done.error is None, done.error
    inline_ms, ray_ms = (1000 * statistics.median(per[k]) for k in ("inline", "ray"))
    print(f"trivial unit: inline {inline_ms:.1f} ms, ray {ray_ms:.1f} ms (median of "
          f"{args.trivial}); ray adds {ray_ms - inline_ms:.1f} ms per unit")
    ray.shutdown()
    local = statistics.median(i / t for i, t in zip(times["inline"], times["local x2"],
                                                     strict=True))
    on_ray = statistics.median(i / t for i, t in zip(times["inline"], times["ray 2 cpus"],
                                                      strict=True))
    print(f"local2_speedup={local:.2f} ray2_speedup={on_ray:.2f} "
          f"ray_unit_overhead_ms={ray_ms - inline_ms:.1f} ray_init_s={ray_start:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
