"""Scaling of cost with work: step time vs batch and resolution, and MACs vs measured time across the zoo.

    python -m benchmarks scaling [--model resnet50] [--batches 1,2,4,8,16] [--batch-resolution 128]
                                 [--resolutions 64,96,128,160,192,224] [--resolution-batch 4]
                                 [--zoo resnet18,...] [--zoo-resolution 128] [--zoo-batch 4]
                                 [--reps 3] [--dtype fp32|bf16] [--quick]

All timings are training steps of our models (zero_grad, forward, cross-entropy, backward, SGD
step with momentum), median of ``--reps`` repetitions after a warm-up round, with the
contenders of each sweep interleaved (batch 1, batch 2, ..., batch 1, ...) so that the noise of
a shared machine falls on all of them alike.

* **batch sweep** (``--model`` at ``--batch-resolution``): time per step and per image for each
  batch, the per-image time relative to the largest batch (1.00 = as efficient as the largest
  batch; 2.0 = each image costs twice as much), a least-squares line ``t = fixed + per_image * b``
  with its R², and ``saturates_at``: the smallest batch whose per-image time is within 10% of the
  largest batch's.
* **resolution sweep** (``--model`` at ``--resolution-batch``): the same against the model's
  multiply-adds at each resolution (MACs grow with the pixel count), relative to the largest
  resolution: time per GMAC.
* **zoo**: one training step of each ``--zoo`` model at ``--zoo-resolution``; ``ms_per_gmac`` =
  step time / (batch x forward GMACs per image) (a training step is ~3x the forward MACs), and
  ``vs_median`` = that over the zoo's median: above 1.5 the model is flagged as slower than its
  MACs suggest (on CPUs: depthwise and grouped convolutions, concatenation-heavy DenseNets).
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext

import torch

import models
from benchmarks.common import (
    add_common_args,
    apply_common,
    interleaved,
    linear_fit,
    median,
    write_result,
)
from models.complexity import count_macs

DEFAULT_ZOO = (
    "resnet18",
    "resnet50",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "se_resnet50",
    "densenet121",
    "mobilenet_v1",
    "mobilenet_v2",
    "efficientnet_b0",
    "inception_resnet_v1",
    "highway19",
)
FLAG_ABOVE = 1.5  # x the zoo median ms/GMAC


def _ints(s: str) -> list[int]:
    return [int(v) for v in s.split(",") if v]


def train_step(model: torch.nn.Module, batch: int, resolution: int, dtype: str, num_classes: int):
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, resolution, resolution, generator=g).to(dev)
    y = torch.randint(0, num_classes, (batch,), generator=g).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    cast = torch.autocast(dev.type, dtype=torch.bfloat16) if dtype == "bf16" else nullcontext()

    def run() -> None:
        opt.zero_grad(set_to_none=True)
        with cast:
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()

    return run


def build(name: str, dev: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    return models.create_model(name, num_classes=1000).to(dev).train()  # CIFAR models default to 10


def macs_at(name: str, resolution: int) -> int:
    with torch.device("meta"):
        return count_macs(models.create_model(name), resolution)


def sweep(values: list[int], times: dict[str, list[float]], work: list[float], label: str) -> dict:
    """Rows for a sweep: median step time, time per unit of ``work``, relative to the largest value."""
    rows = []
    for v, w in zip(values, work, strict=False):
        t = median(times[str(v)])
        rows.append({label: v, "step_s": t, "work": w, "s_per_work": t / w, "raw_s": times[str(v)]})
    ref = rows[-1]["s_per_work"]
    for r in rows:
        r["relative_to_largest"] = r["s_per_work"] / ref
    fit = linear_fit([r["work"] for r in rows], [r["step_s"] for r in rows])
    saturated = [r[label] for r in rows if r["relative_to_largest"] <= 1.10]
    return {"rows": rows, "fit": fit, "saturates_at": min(saturated) if saturated else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks scaling", description=__doc__.split("\n")[0]
    )
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batches", default="1,2,4,8,16")
    p.add_argument("--batch-resolution", type=int, default=128)
    p.add_argument("--resolutions", default="64,96,128,160,192,224")
    p.add_argument("--resolution-batch", type=int, default=4)
    p.add_argument(
        "--zoo", default=",".join(DEFAULT_ZOO), help="comma-separated models ('' to skip)"
    )
    p.add_argument("--zoo-resolution", type=int, default=128)
    p.add_argument("--zoo-batch", type=int, default=4)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    p.add_argument(
        "--quick", action="store_true", help="smoke-test size: resnet18, tiny sweeps, 2-model zoo"
    )
    add_common_args(p)
    a = p.parse_args(argv)
    apply_common(a)
    if a.quick:
        a.model, a.batches, a.batch_resolution, a.resolutions, a.resolution_batch = (
            "resnet18",
            "2,4",
            32,
            "32,48",
            2,
        )
        a.zoo, a.zoo_resolution, a.zoo_batch, a.reps, a.warmup = (
            "resnet18,mobilenet_v2",
            32,
            2,
            1,
            1,
        )
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    nc = 1000
    print(f"training-step scaling on {dev}, {a.dtype}, median of {a.reps}", flush=True)

    # ---- batch sweep
    model = build(a.model, dev)
    batches = _ints(a.batches)
    times = interleaved(
        {str(b): train_step(model, b, a.batch_resolution, a.dtype, nc) for b in batches},
        reps=a.reps,
        warmup=a.warmup,
    )
    by_batch = sweep(batches, times, [float(b) for b in batches], "batch")
    print(f"\n{a.model} at {a.batch_resolution} px, time vs batch")
    print(f"  {'batch':>5s} {'ms/step':>9s} {'ms/image':>9s} {'rel. to largest':>16s}")
    for r in by_batch["rows"]:
        print(
            f"  {r['batch']:5d} {r['step_s'] * 1e3:9.1f} {r['s_per_work'] * 1e3:9.2f} "
            f"{r['relative_to_largest']:16.2f}"
        )
    f = by_batch["fit"]
    print(
        f"  fit: {f['intercept'] * 1e3:.1f} ms fixed + {f['slope'] * 1e3:.2f} ms/image (R² "
        f"{f['r2']:.4f}); "
        f"per-image cost within 10% of the largest batch from batch {by_batch['saturates_at']}"
    )

    # ---- resolution sweep
    resolutions = _ints(a.resolutions)
    macs = [macs_at(a.model, r) for r in resolutions]
    times = interleaved(
        {str(r): train_step(model, a.resolution_batch, r, a.dtype, nc) for r in resolutions},
        reps=a.reps,
        warmup=a.warmup,
    )
    gmacs = [a.resolution_batch * m / 1e9 for m in macs]
    by_res = sweep(resolutions, times, gmacs, "resolution")
    print(
        f"\n{a.model} at batch {a.resolution_batch}, time vs resolution (work = forward GMACs per "
        "step)"
    )
    print(f"  {'px':>5s} {'GMACs':>7s} {'ms/step':>9s} {'ms/GMAC':>8s} {'rel. to largest':>16s}")
    for r in by_res["rows"]:
        print(
            f"  {r['resolution']:5d} {r['work']:7.2f} {r['step_s'] * 1e3:9.1f} "
            f"{r['s_per_work'] * 1e3:8.1f} "
            f"{r['relative_to_largest']:16.2f}"
        )
    f = by_res["fit"]
    print(
        f"  fit: {f['intercept'] * 1e3:.1f} ms fixed + {f['slope'] * 1e3:.1f} ms/GMAC (R² "
        f"{f['r2']:.4f})"
    )
    del model

    # ---- zoo: MACs vs time
    zoo_names = [n for n in a.zoo.split(",") if n]
    zoo = []
    if zoo_names:
        zoo_models = {n: build(n, dev) for n in zoo_names}
        times = interleaved(
            {
                n: train_step(m, a.zoo_batch, a.zoo_resolution, a.dtype, nc)
                for n, m in zoo_models.items()
            },
            reps=a.reps,
            warmup=a.warmup,
        )
        del zoo_models
        for n in zoo_names:
            info = models.model_info(n)
            m = macs_at(n, a.zoo_resolution)
            t = median(times[n])
            zoo.append(
                {
                    "model": n,
                    "family": info.family,
                    "macs": m,
                    "step_s": t,
                    "raw_s": times[n],
                    "ms_per_gmac": 1e3 * t / (a.zoo_batch * m / 1e9),
                    "effective_gmacs_per_s": 3 * a.zoo_batch * m / 1e9 / t,
                }
            )
        mid = median([r["ms_per_gmac"] for r in zoo])
        for r in zoo:
            r["vs_median"] = r["ms_per_gmac"] / mid
            r["flagged"] = r["vs_median"] > FLAG_ABOVE
        print(
            f"\nzoo at {a.zoo_resolution} px, batch {a.zoo_batch}: ms per forward-GMAC (training "
            "step), "
            f"flagged above {FLAG_ABOVE}x the median"
        )
        print(
            f"  {'model':22s} {'family':17s} {'GMACs':>6s} {'ms/step':>8s} {'ms/GMAC':>8s} "
            f"{'x median':>8s}"
        )
        for r in sorted(zoo, key=lambda r: r["ms_per_gmac"]):
            flag = "  <- slower than its MACs suggest" if r["flagged"] else ""
            print(
                f"  {r['model']:22s} {r['family']:17s} {r['macs'] / 1e9:6.2f} "
                f"{r['step_s'] * 1e3:8.1f} "
                f"{r['ms_per_gmac']:8.1f} {r['vs_median']:8.2f}{flag}"
            )
    path = write_result(
        "scaling",
        vars(a),
        {
            "device": str(dev),
            "model": a.model,
            "batch_sweep": by_batch,
            "resolution_sweep": by_res,
            "zoo": zoo,
        },
        argv,
        a.results_dir,
    )
    print(f"wrote {path}")
    return 0
