"""What ``logging.grad_stats=true`` costs a training step: step time with / without the statistics.

    python -m benchmarks grad_stats [--model resnet20] [--resolution 32] [--batch 64]
                                    [--reps 21] [--quick]

A training step (forward, cross-entropy, backward, SGD step) of ``--model`` with and without
``platform.run.grad_stats.GradStats.accumulate`` (the work its ``on_before_optimizer_step`` does:
mean |g| and ||g||_2 of the first conv, each stage's first conv and the classifier, added to
on-device sums) before ``opt.step()``; the epoch-end readout (one sync per epoch) is not per step
and is left out. Steps are interleaved (with, without, ...) after warm-up; ``ratio`` =
median(with) / median(without). Both share the machine's noise; to see the cost under the noise,
the accumulation alone is also timed (``--reps`` x 50 calls on the gradients of the last step)
and given as a share of the step without it (``isolated_share``). Target: ratio ≤ 1.02.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from benchmarks import common
from benchmarks.common import add_common_args, apply_common, interleaved, median, write_result

TARGET = 1.02


def _step_fn(model, x, y, stats=None):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        if stats is not None:
            stats.accumulate()
        opt.step()

    return step


def measure(a: argparse.Namespace) -> dict:
    import models
    from platform.run.grad_stats import GradStats

    torch.manual_seed(0)
    info = models.model_info(a.model)
    x = torch.randn(a.batch, 3, a.resolution, a.resolution)
    y = torch.randint(0, info.num_classes, (a.batch,))
    torch.manual_seed(0)
    with_stats = models.create_model(a.model).train()
    torch.manual_seed(0)
    without = models.create_model(a.model).train()
    stats = GradStats()
    stats.reset(with_stats, x.device)
    times = interleaved(
        {"with": _step_fn(with_stats, x, y, stats), "without": _step_fn(without, x, y)},
        reps=a.reps,
        warmup=2,
    )
    calls = 50
    alone = []
    for _ in range(a.reps):
        t0 = common.clock()
        for _ in range(calls):
            stats.accumulate()
        alone.append((common.clock() - t0) / calls)
    step = median(times["without"])
    return {
        "model": a.model,
        "layers": list(stats.layers),
        "median_s": {k: median(v) for k, v in times.items()},
        "raw_s": times,
        "ratio": median(times["with"]) / step,
        "isolated_s": median(alone),
        "isolated_share": median(alone) / step,
        "target": TARGET,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks grad_stats",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default="resnet20")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--reps", type=int, default=21)
    p.add_argument("--quick", action="store_true", help="smoke size: batch 4, 3 reps")
    add_common_args(p)
    a = p.parse_args(argv)
    if a.quick:
        a.batch, a.reps = 4, 3
    apply_common(a)
    r = measure(a)
    print(
        f"{r['model']} train step with / without grad_stats ({', '.join(r['layers'])}): "
        f"{r['median_s']['with'] * 1e3:.2f} ms / {r['median_s']['without'] * 1e3:.2f} ms = "
        f"ratio {r['ratio']:.4f} (target ≤ {TARGET}); the accumulation alone "
        f"{r['isolated_s'] * 1e3:.3f} ms = {100 * r['isolated_share']:.2f}% of a step",
        flush=True,
    )
    path = write_result("grad_stats", vars(a), r, argv, a.results_dir)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
