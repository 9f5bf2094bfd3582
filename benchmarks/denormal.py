"""Denormals on the CPU: the same training step with and without flush-to-zero, interleaved.

    python -m benchmarks denormal [--models plain56,resnet56] [--resolution 28] [--batch 128]
                                  [--state vanished|init] [--grad-scale 1e-39] [--reps 3]
                                  [--platform-runs 0] [--quick]

Data: scikit-learn's digits (the platform's embedded dataset) upscaled to ``--resolution`` and
normalised, a fixed batch of ``--batch``.  State (``--state``):

* ``vanished`` (default): the net as initialised, its (batch-mean) loss multiplied by ``--batch`` x
  ``--grad-scale`` (1e-39) before the backward pass, so the logits' gradients are ~1e-39 per image and
  nearly every gradient lies below float32's smallest normal (1.18e-38; 98% of plain56's): the
  backward pass runs on denormals, as in a net whose gradients have vanished to that size.  The
  forward pass is untouched.  (A saturated softmax does not do it on its own: BatchNorm's backward
  mixes the normal-sized gradients of the batch's less confident images into every image's.)
* ``init``: the net as initialised, loss unscaled: the control (no denormals, ratio ~1).

Timed: zero_grad, forward, cross-entropy, backward, SGD step (momentum 0.9, Nesterov, weight decay,
lr 0 so the state is the same at every repetition), with ``torch.set_flush_denormal(False)``
("denormals") and ``(True)`` ("flushed"), alternating after warm-up.  The fraction of activation
gradients that are denormal is counted in an untimed step of each mode.  Ratio = denormals /
flushed step time (> 1: flushing helps).  The platform sets flush-to-zero on CPU runs by default
(``trainer.flush_denormal``, ``platform.run.train.apply_flush_denormal``).

``--platform-runs N`` also runs the main job, ``python -m platform.train model=<first model>
trainer.max_epochs=1`` with ``trainer.flush_denormal=false`` and with the default, alternating N
times each, and reports epoch 0's ``epoch_time_s`` from each run's ``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks import common
from benchmarks.common import ROOT, add_common_args, apply_common, interleaved, median, write_result

STATES = ("vanished", "init")


def digits_batch(resolution: int, batch: int) -> torch.Tensor:
    """The first ``batch`` digits as a normalised float ``(B, 3, R, R)`` batch (cycled if needed)."""
    from datamodules.digits import digits_arrays

    x, _ = digits_arrays(resolution)
    x = torch.from_numpy(x).permute(0, 3, 1, 2).float().div(255)
    x = (x - x.mean()) / x.std()
    idx = torch.arange(batch) % x.shape[0]
    return x[idx].contiguous()


def denormal_fraction(model: torch.nn.Module, step) -> float:
    """Fraction of the convolutions' output gradients that are denormal during one ``step()``."""
    tiny = torch.finfo(torch.float32).tiny
    counts = [0, 0]

    def count(g: torch.Tensor) -> None:
        counts[0] += int(((g != 0) & (g.abs() < tiny)).sum())
        counts[1] += g.numel()

    def hook(mod, inputs, out):
        if out.requires_grad:
            out.register_hook(count)

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    try:
        step()
    finally:
        for h in handles:
            h.remove()
    return counts[0] / max(counts[1], 1)


def measure(name: str, a) -> dict:
    import models
    from platform.run.module import param_groups

    torch.manual_seed(0)
    model = models.create_model(name, num_classes=10).train()
    x = digits_batch(a.resolution, a.batch)
    y = torch.randint(0, 10, (a.batch,), generator=torch.Generator().manual_seed(0))
    scale = a.grad_scale * a.batch if a.state == "vanished" else 1.0
    opt = torch.optim.SGD(param_groups(model, 5e-4), lr=0.0, momentum=0.9, nesterov=True)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        (torch.nn.functional.cross_entropy(model(x), y) * scale).backward()
        opt.step()

    def with_flush(on: bool):
        def run() -> None:
            torch.set_flush_denormal(on)
            step()

        return run

    fraction = {}
    for label, on in (("denormals", False), ("flushed", True)):
        torch.set_flush_denormal(on)
        fraction[label] = denormal_fraction(model, step)
    raw = interleaved(
        {"denormals": with_flush(False), "flushed": with_flush(True)}, reps=a.reps, warmup=a.warmup
    )
    torch.set_flush_denormal(False)
    med = {k: median(v) for k, v in raw.items()}
    return {
        "model": name,
        "state": a.state,
        "grad_scale": scale,
        "raw_s": raw,
        "step_s": med,
        "images_per_s": {k: a.batch / v for k, v in med.items()},
        "ratio": med["denormals"] / med["flushed"],
        "denormal_grad_fraction": fraction,
    }


def platform_epoch(model: str, flush: str | None, extra: list[str], workdir: Path) -> dict:
    """One ``python -m platform.train`` run of one epoch; its epoch-0 time and wall time."""
    name = f"denormal-{flush or 'default'}-{len(list(workdir.iterdir()))}"
    args = [
        sys.executable,
        "-m",
        "platform.train",
        f"model={model}",
        "trainer.max_epochs=1",
        "logging.wandb=disabled",
        "logging.progress_bar=false",
        f"run.root={workdir}",
        f"run.name={name}",
        *extra,
        *([f"trainer.flush_denormal={flush}"] if flush else []),
    ]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[1:])} failed ({proc.returncode}): {proc.stderr[-2000:]}"
        )
    lines = [
        json.loads(line)
        for line in (workdir / name / "metrics.jsonl").read_text().splitlines()
        if line
    ]
    epoch = [r for r in lines if r.get("epoch") == 0 and "epoch_time_s" in r]
    summary = json.loads((workdir / name / "summary.json").read_text())
    return {
        "flush_denormal": flush or "default",
        "epoch_time_s": epoch[-1]["epoch_time_s"],
        "wall_time_s": summary["wall_time_s"],
        "command": "python -m " + " ".join(args[2:]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks denormal", description=__doc__.split("\n")[0]
    )
    p.add_argument("--models", default="plain56,resnet56")
    p.add_argument("--resolution", type=int, default=28)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--state", choices=STATES, default="vanished")
    p.add_argument(
        "--grad-scale", type=float, default=1e-39, help="vanished: the loss's factor per image"
    )
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument(
        "--platform-runs",
        type=int,
        default=0,
        help="also time N alternating one-epoch platform.train runs, flush_denormal=false vs default",
    )
    p.add_argument(
        "--platform-args",
        default="",
        help="extra key=value overrides for those runs (space-separated)",
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke-test size: resnet20, 16 px, batch 8, 1 rep"
    )
    add_common_args(p)
    a = p.parse_args(argv)
    apply_common(a)
    if a.quick:
        a.models, a.resolution, a.batch, a.reps, a.warmup = "resnet20", 16, 8, 1, 0
    if not torch.set_flush_denormal(False):
        print(
            "this CPU has no flush-to-zero mode (torch.set_flush_denormal returned False): skipped"
        )
        path = write_result(
            "denormal",
            vars(a),
            {"rows": [], "skipped": True, "platform_runs": []},
            argv,
            a.results_dir,
        )
        print(f"wrote {path}")
        return 0
    rows = []
    print(
        f"training step, batch {a.batch}, {a.resolution} px digits, state {a.state}, median of "
        f"{a.reps} interleaved "
        f"repetitions ({common.clock.__name__})"
    )
    print(
        f"  {'model':10s} {'img/s denormals':>15s} {'img/s flushed':>13s} {'ratio':>6s} "
        f"{'denormal grads':>15s}"
    )
    for name in [m for m in a.models.split(",") if m]:
        r = measure(name, a)
        rows.append(r)
        print(
            f"  {name:10s} {r['images_per_s']['denormals']:15.1f} "
            f"{r['images_per_s']['flushed']:13.1f} "
            f"{r['ratio']:6.2f} {100 * r['denormal_grad_fraction']['denormals']:14.1f}%",
            flush=True,
        )
    runs = []
    if a.platform_runs:
        model = rows[0]["model"] if rows else "plain56"
        with tempfile.TemporaryDirectory(prefix="bench-denormal-") as tmp:
            for _ in range(a.platform_runs):
                for flush in ("false", None):
                    runs.append(platform_epoch(model, flush, a.platform_args.split(), Path(tmp)))
                    print(
                        f"  platform.train {model}, flush_denormal={runs[-1]['flush_denormal']}: "
                        "epoch 0 "
                        f"{runs[-1]['epoch_time_s']:.1f} s (run {runs[-1]['wall_time_s']:.1f} s)",
                        flush=True,
                    )
    epoch_ratio = None
    if runs:
        off = median([r["epoch_time_s"] for r in runs if r["flush_denormal"] == "false"])
        on = median([r["epoch_time_s"] for r in runs if r["flush_denormal"] == "default"])
        epoch_ratio = off / on
        print(f"  platform.train epoch 0: flush_denormal=false / default = {epoch_ratio:.3f}")
    path = write_result(
        "denormal",
        vars(a),
        {
            "rows": rows,
            "skipped": False,
            "platform_runs": runs,
            "platform_epoch_ratio": epoch_ratio,
        },
        argv,
        a.results_dir,
    )
    print(f"wrote {path}")
    return 0
