"""Model step time, ours vs torchvision's implementation of the same architecture.

    python -m benchmarks models [--models resnet50,...] [--batch 8] [--resolution 224] [--reps 5]

Forward+backward of a training step (no optimizer: the same for both) at the given batch and
resolution, float32 on the CPU (or the GPU where present), interleaved A B A B after warm-up;
prints the median times and the ratio ours/torchvision (< 1: ours is faster).
"""
from __future__ import annotations

import argparse

import torch
import torchvision

import models
from benchmarks.common import interleaved, median, write_result

DEFAULT = ("resnet50", "resnext50_32x4d", "densenet121", "efficientnet_b0", "mobilenet_v2")


def _step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    def run() -> None:
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return run


def bench(names: list[str], batch: int, resolution: int, reps: int) -> list[dict]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    for name in names:
        tv_name = models.model_info(name).torchvision
        if tv_name is None:
            print(f"{name}: torchvision has no such architecture; skipped")
            continue
        torch.manual_seed(0)
        ours = models.create_model(name).to(device).train()
        theirs = torchvision.models.get_model(tv_name, weights=None).to(device).train()
        x = torch.randn(batch, 3, resolution, resolution, device=device)
        y = torch.randint(0, 1000, (batch,), device=device)
        times = interleaved({"ours": _step(ours, x, y), "torchvision": _step(theirs, x, y)}, reps=reps)
        row = {"model": name, "ours_s": median(times["ours"]), "torchvision_s": median(times["torchvision"]),
               "raw": times}
        row["ratio"] = row["ours_s"] / row["torchvision_s"]
        rows.append(row)
        print(f"{name:18s} ours {row['ours_s'] * 1e3:8.1f} ms   torchvision {row['torchvision_s'] * 1e3:8.1f} ms"
              f"   ratio {row['ratio']:.3f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks models", description=__doc__.split("\n")[0])
    p.add_argument("--models", default=",".join(DEFAULT))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args(argv)
    rows = bench([m for m in a.models.split(",") if m], a.batch, a.resolution, a.reps)
    path = write_result("models", {"batch": a.batch, "resolution": a.resolution, "reps": a.reps, "rows": rows})
    print(f"wrote {path}")
    return 0
