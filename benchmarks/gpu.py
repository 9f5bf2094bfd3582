"""GPU profile: ResNet-50 / ResNeXt-50 training steps at batch 256, bf16, channels_last, eager vs compiled.

    python -m benchmarks gpu [--models resnet50,resnext50_32x4d] [--batch 256] [--resolution 224]
                             [--steps 30] [--warmup-steps 10] [--no-compile] [--peak-tflops X]

Runs only where a CUDA device exists; elsewhere it prints "no CUDA device: skipped", writes a
record with ``"skipped": true`` and the reason, and exits 0.

Each run: our model, ``channels_last``, SGD (momentum 0.9, Nesterov, weight decay) under
``torch.autocast("cuda", torch.bfloat16)``, one fixed batch on the GPU (data loading is not
measured); ``--warmup-steps`` untimed steps (compilation happens there), then ``--steps`` timed
steps between two synchronisations.  With and without ``torch.compile`` (default mode).

**MFU** (model FLOPs utilisation) = achieved model FLOPs / the GPU's peak dense bf16 FLOPs, where the
achieved FLOPs of a training step are 3 x the forward multiply-adds (forward + the two backward
matmuls: input and weight gradients) x 2 FLOPs per multiply-add x images/s.  The multiply-adds are
our counter's (``platform.complexity.count_macs``: convolutions and matmuls only).  The peak comes
from :data:`PEAK_BF16_TFLOPS` by GPU name, or ``--peak-tflops``.

Anchors (:data:`ANCHORS`) are published numbers measured elsewhere, with other software: NVIDIA's
MLPerf Training ResNet-50 on 8x H100 (MXNet + DALI, ~57k img/s, ~7k per GPU) and timm's RTX 3090
AMP channels-last training table.  The comparison is a ratio of images/s per GPU, for orientation
only: a different GPU, data pipeline, framework and (MLPerf) heavily tuned kernels.
"""
from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import add_common_args, apply_common, median, write_result

# dense (no sparsity) bf16 tensor-core peak, TFLOP/s, by a substring of torch.cuda.get_device_name()
PEAK_BF16_TFLOPS: dict[str, float] = {
    "H200": 989.0,
    "H100": 989.0,  # SXM; the PCIe card is lower (756): pass --peak-tflops for it
    "A100": 312.0,
    "RTX 3090": 71.0,
}

# published training throughput, images/s per GPU: (value, source)
ANCHORS: dict[str, list[dict]] = {
    "resnet50": [
        {"source": "NVIDIA MLPerf Training, ResNet-50, 8x H100 (MXNet + DALI), ~57k img/s total",
         "gpu": "H100", "images_per_s_per_gpu": 57000 / 8},
        {"source": "timm benchmark, RTX 3090, AMP, channels_last, training", "gpu": "RTX 3090",
         "images_per_s_per_gpu": 1218.0},
    ],
    "resnext50_32x4d": [{"source": "timm benchmark, RTX 3090, AMP, channels_last, training", "gpu": "RTX 3090",
                         "images_per_s_per_gpu": 1001.0}],
    "densenet121": [{"source": "timm benchmark, RTX 3090, AMP, channels_last, training", "gpu": "RTX 3090",
                     "images_per_s_per_gpu": 914.0}],
    "efficientnet_b0": [{"source": "timm benchmark, RTX 3090, AMP, channels_last, training", "gpu": "RTX 3090",
                         "images_per_s_per_gpu": 1752.0}],
}


def peak_tflops(gpu_name: str | None, override: float | None = None) -> float | None:
    """Peak dense bf16 TFLOP/s of a GPU by name (``override`` wins); None when unknown."""
    if override:
        return float(override)
    if not gpu_name:
        return None
    for key, value in PEAK_BF16_TFLOPS.items():
        if key.lower() in gpu_name.lower():
            return value
    return None


def training_flops_per_image(forward_macs: int) -> float:
    """Model FLOPs of one training image: 3 passes' worth of multiply-adds, 2 FLOPs each."""
    return 3 * 2 * float(forward_macs)


def mfu(forward_macs: int, images_per_s: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation in [0, 1] (None without a peak)."""
    if not peak:
        return None
    return training_flops_per_image(forward_macs) * images_per_s / (peak * 1e12)


def anchor_comparison(model: str, images_per_s_per_gpu: float) -> list[dict]:
    """Our images/s/GPU over each published anchor for ``model`` (empty when there is none)."""
    return [{**a, "ours_images_per_s_per_gpu": images_per_s_per_gpu,
             "ratio": images_per_s_per_gpu / a["images_per_s_per_gpu"]} for a in ANCHORS.get(model, [])]


def run_one(name: str, batch: int, resolution: int, steps: int, warmup: int, compiled: bool) -> dict:
    import models
    from platform.module import param_groups

    torch.manual_seed(0)
    model = models.create_model(name).cuda().to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(param_groups(model, 5e-5), lr=0.1, momentum=0.9, nesterov=True)
    fwd = torch.compile(model) if compiled else model
    x = torch.randn(batch, 3, resolution, resolution, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device="cuda")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(fwd(x).float(), y)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    warmup_s = time.perf_counter() - t0
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        torch.cuda.synchronize()  # per step, for the raw list; the total below is the headline
        times.append(time.perf_counter() - t)
    total = sum(times)
    return {"model": name, "compiled": compiled, "step_s": total / steps, "median_step_s": median(times),
            "images_per_s": batch * steps / total, "raw_step_s": times, "warmup_s": warmup_s,
            "max_memory_allocated_mb": torch.cuda.max_memory_allocated() / 2**20}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks gpu", description=__doc__.split("\n")[0])
    p.add_argument("--models", default="resnet50,resnext50_32x4d")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--no-compile", action="store_true", help="eager only")
    p.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, if not in the table")
    p.add_argument("--quick", action="store_true", help="smoke-test size: resnet50, batch 8, 64 px, 3 steps")
    add_common_args(p)
    a = p.parse_args(argv)
    apply_common(a)
    if a.quick:
        a.models, a.batch, a.resolution, a.steps, a.warmup_steps = "resnet50", 8, 64, 3, 2
    if not torch.cuda.is_available():
        reason = "no CUDA device"
        print(f"{reason}: skipped")
        path = write_result("gpu", vars(a), {"skipped": True, "reason": reason, "rows": []}, argv, a.results_dir)
        print(f"wrote {path}")
        return 0
    from platform.complexity import complexity

    torch.backends.cudnn.benchmark = True
    gpu = torch.cuda.get_device_name(0)
    peak = peak_tflops(gpu, a.peak_tflops)
    rows = []
    print(f"{gpu}: batch {a.batch}, {a.resolution} px, bf16 autocast, channels_last; peak "
          f"{'unknown (pass --peak-tflops)' if peak is None else f'{peak:.0f} TFLOP/s bf16 dense'}")
    print(f"  {'model':18s} {'compile':7s} {'img/s/GPU':>10s} {'MFU':>6s} {'ms/step':>8s} {'peak MB':>8s}")
    for name in [m for m in a.models.split(",") if m]:
        macs = complexity(name, a.resolution).macs
        for compiled in ((False,) if a.no_compile else (False, True)):
            r = run_one(name, a.batch, a.resolution, a.steps, a.warmup_steps, compiled)
            r["forward_macs"], r["mfu"] = macs, mfu(macs, r["images_per_s"], peak)
            r["anchors"] = anchor_comparison(name, r["images_per_s"])
            rows.append(r)
            m = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
            print(f"  {name:18s} {str(compiled):7s} {r['images_per_s']:10.0f} {m:>6s} {r['step_s'] * 1e3:8.1f} "
                  f"{r['max_memory_allocated_mb']:8.0f}", flush=True)
    print("published anchors (images/s per GPU; other GPUs and software, for orientation):")
    for r in rows:
        for c in r["anchors"]:
            print(f"  {r['model']:18s} compile={r['compiled']!s:5s} {r['images_per_s']:8.0f} vs {c['images_per_s_per_gpu']:7.0f}"
                  f" ({c['source']}): {c['ratio']:.2f}x")
    path = write_result("gpu", vars(a), {"skipped": False, "reason": None, "gpu": gpu, "peak_tflops": peak,
                                         "rows": rows}, argv, a.results_dir)
    print(f"wrote {path}")
    return 0
