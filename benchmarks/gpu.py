"""GPU check: ResNet-50 / ResNeXt-101 32x4d training steps, ours vs torchvision, bf16, MFU, FFCV, anchors.

    python -m benchmarks gpu [--models resnet50,resnext101_32x4d] [--batch 256] [--resolution 224]
                             [--steps 20] [--warmup-steps 5] [--no-compile] [--peak-tflops X]
                             [--budget-s 450] [--loader-images 2048]

One prepared script for one GPU, sized to finish in under 8 minutes (``--budget-s`` stops starting
new measurements once spent; what was skipped is recorded).  Runs only where a CUDA device exists;
elsewhere it prints "no CUDA device: skipped", writes a record with ``"skipped": true`` and the
reason, and exits 0.

* **Peak**: a bf16 matmul (``--matmul-n`` square, default 8192) timed in the same run; MFU is
  against that measured peak (the datasheet value by GPU name, :data:`PEAK_BF16_TFLOPS`, is printed
  beside it; ``--peak-tflops`` overrides both).
* **Training step** of each model, ours and torchvision's same architecture (torchvision has no
  ResNeXt-101 32x4d builder: its ``ResNet(Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=4)``),
  in the same process, alternating (ours, torchvision, ours compiled, torchvision compiled):
  ``channels_last``, SGD (momentum 0.9, Nesterov, weight decay) under
  ``torch.autocast("cuda", torch.bfloat16)`` (Lightning's ``bf16-mixed``), one fixed batch on the
  GPU; batch ``--batch`` or, on out-of-memory, the largest power-of-two fraction that fits;
  ``--warmup-steps`` untimed steps (compilation happens there), then ``--steps`` timed steps.
  Compiled = ``model.compile()`` in place, as ``trainer.compile=true`` does.
* **MFU** = 3 x forward multiply-adds x 2 FLOPs x images/s / peak (forward + the two backward
  matmuls), multiply-adds from ``models.complexity`` (convolutions and matmuls).
* **Normalisation dtype**: :func:`normalize_ab` times ``DeviceNormalize`` to float32 vs to bf16 on
  the GPU, alone and followed by the model's forward under autocast (what the datamodule now does
  with ``trainer.precision=bf16-mixed``), interleaved.
* **data.jpeg_decode** (issue 28): ResNet-50 training at ``--decode-resolution`` (160) fed by the
  FFCV loader with the full and the n/8-scaled JPEG decode, interleaved
  (``benchmarks/jpeg_decode.py`` ``gpu_training``); ``--decode-batches 0`` skips it.
* **FFCV loader** images/s at the machine's core count (workers = cores): a jpg ``.beton`` of
  ``--loader-images`` natural-image JPEGs (``benchmarks.data_loading``), random-resized crop to
  ``--resolution``, uint8 batches on the CPU side, 2 epochs after a warm-up.

Anchors (:data:`ANCHORS`, printed beside ours) are published numbers measured elsewhere, with other
software: NVIDIA DeepLearningExamples ResNeXt101-32x4d (PyTorch, AMP) 908 img/s on 1x A100 80GB and
6,888 img/s on 8x; ffcv-imagenet ResNet-50 73.8% top-1 in 15 min on 8x A100 (a time-to-accuracy
anchor, no images/s); NVIDIA MLPerf ResNet-50 on 8x H100; timm's RTX 3090 table.  For orientation
only: different GPUs, data pipelines and kernels.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from benchmarks.common import add_common_args, apply_common, median, write_result

# dense (no sparsity) bf16 tensor-core peak, TFLOP/s, by a substring of torch.cuda.get_device_name()
PEAK_BF16_TFLOPS: dict[str, float] = {
    "H200": 989.0,
    "H100": 989.0,  # SXM; the PCIe card is lower (756): pass --peak-tflops for it
    "A100": 312.0,
    "RTX 3090": 71.0,
}

# published training throughput, images/s per GPU: (value, source); None = a time-to-accuracy anchor
ANCHORS: dict[str, list[dict]] = {
    "resnet50": [
        {
            "source": "ffcv-imagenet ResNet-50: 73.8% top-1 in 15 min on 8x A100 (time to accuracy)",
            "gpu": "A100",
            "images_per_s_per_gpu": None,
        },
        {
            "source": "NVIDIA MLPerf Training, ResNet-50, 8x H100 (MXNet + DALI), ~57k img/s total",
            "gpu": "H100",
            "images_per_s_per_gpu": 57000 / 8,
        },
        {
            "source": "timm benchmark, RTX 3090, AMP, channels_last, training",
            "gpu": "RTX 3090",
            "images_per_s_per_gpu": 1218.0,
        },
    ],
    "resnext101_32x4d": [
        {
            "source": "NVIDIA DeepLearningExamples ResNeXt101-32x4d, PyTorch AMP, 1x A100 80GB",
            "gpu": "A100",
            "images_per_s_per_gpu": 908.0,
        },
        {
            "source": "NVIDIA DeepLearningExamples ResNeXt101-32x4d, PyTorch AMP, 8x A100 80GB: 6,888 img/s total",
            "gpu": "A100",
            "images_per_s_per_gpu": 6888.0 / 8,
        },
    ],
    "resnext50_32x4d": [
        {
            "source": "timm benchmark, RTX 3090, AMP, channels_last, training",
            "gpu": "RTX 3090",
            "images_per_s_per_gpu": 1001.0,
        }
    ],
    "densenet121": [
        {
            "source": "timm benchmark, RTX 3090, AMP, channels_last, training",
            "gpu": "RTX 3090",
            "images_per_s_per_gpu": 914.0,
        }
    ],
    "efficientnet_b0": [
        {
            "source": "timm benchmark, RTX 3090, AMP, channels_last, training",
            "gpu": "RTX 3090",
            "images_per_s_per_gpu": 1752.0,
        }
    ],
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
    """Our images/s/GPU over each published anchor for ``model`` (empty when there is none; ratio None
    for a time-to-accuracy anchor)."""
    return [
        {
            **a,
            "ours_images_per_s_per_gpu": images_per_s_per_gpu,
            "ratio": images_per_s_per_gpu / a["images_per_s_per_gpu"]
            if a["images_per_s_per_gpu"]
            else None,
        }
        for a in ANCHORS.get(model, [])
    ]


def matmul_tflops(
    device: str = "cuda", n: int = 8192, reps: int = 20, dtype: torch.dtype = torch.bfloat16
) -> float:
    """Measured dense matmul throughput, TFLOP/s: ``2 n^3`` FLOPs per ``n x n`` product, best of ``reps``."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(reps):
        sync_device(device)
        t = time.perf_counter()
        a @ b
        sync_device(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e12


def sync_device(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def build_model(name: str, impl: str) -> torch.nn.Module:
    """Our registry model, or torchvision's implementation of the same architecture."""
    import torchvision

    import models

    if impl == "ours":
        return models.create_model(name)
    tv = models.model_info(name).torchvision
    if tv:
        return torchvision.models.get_model(tv, weights=None)
    if (
        name == "resnext101_32x4d"
    ):  # torchvision has 32x8d and 64x4d builders only; its class, these widths
        from torchvision.models.resnet import Bottleneck, ResNet

        return ResNet(Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=4)
    raise ValueError(f"{name}: torchvision has no such architecture")


def fitting_batches(batch: int, minimum: int = 8) -> list[int]:
    """``batch`` and its halvings down to ``minimum``: the sizes tried, largest first, on out-of-memory."""
    out = [batch]
    while out[-1] // 2 >= minimum:
        out.append(out[-1] // 2)
    return out


def normalize_ab(
    device: str,
    batch: int,
    resolution: int,
    reps: int = 10,
    model: torch.nn.Module | None = None,
    dtype: str = "bf16",
) -> dict:
    """Time ``DeviceNormalize`` to float32 vs to ``dtype`` on ``device`` (with ``model``: then the
    model's forward under autocast in ``dtype``), interleaved, median seconds and the ratio lowp / fp32."""
    from benchmarks.common import interleaved
    from datamodules.normalize import DTYPES, DeviceNormalize

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    dev = torch.device(device)
    norms = {
        "fp32": DeviceNormalize(mean, std, channels_last=True),
        dtype: DeviceNormalize(
            mean, std, channels_last=True, dtype=dtype, lowp_devices=(dev.type,)
        ),
    }
    images = torch.randint(
        0, 256, (batch, 3, resolution, resolution), dtype=torch.uint8, device=dev
    )
    ac = DTYPES[dtype]

    def runner(norm):
        def run() -> None:
            x = norm.images(images)
            if model is not None:
                with torch.no_grad(), torch.autocast(dev.type, dtype=ac):
                    model(x)

        return run

    raw = interleaved({k: runner(n) for k, n in norms.items()}, reps=reps, warmup=2)
    med = {k: median(v) for k, v in raw.items()}
    out_dtypes = {k: str(n.output_dtype(dev)).removeprefix("torch.") for k, n in norms.items()}
    return {
        "device": str(dev),
        "batch": batch,
        "resolution": resolution,
        "with_model": model is not None,
        "median_s": med,
        "raw_s": raw,
        "output_dtype": out_dtypes,
        "ratio": med[dtype] / med["fp32"],
    }


def run_one(
    name: str,
    batch: int,
    resolution: int,
    steps: int,
    warmup: int,
    compiled: bool,
    impl: str = "ours",
) -> dict:
    from platform.run.module import param_groups

    torch.manual_seed(0)
    model = build_model(name, impl).cuda().to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(param_groups(model, 5e-5), lr=0.1, momentum=0.9, nesterov=True)
    if compiled:
        model.compile()  # in place, as trainer.compile=true does (platform/run/train.py)
    fwd = model
    x = torch.randn(batch, 3, resolution, resolution, device="cuda").contiguous(
        memory_format=torch.channels_last
    )
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
    return {
        "model": name,
        "impl": impl,
        "batch": batch,
        "compiled": compiled,
        "step_s": total / steps,
        "median_step_s": median(times),
        "images_per_s": batch * steps / total,
        "raw_step_s": times,
        "warmup_s": warmup_s,
        "max_memory_allocated_mb": torch.cuda.max_memory_allocated() / 2**20,
    }


def run_fitting(name: str, impl: str, a, compiled: bool) -> dict:
    """:func:`run_one` at ``--batch``, halving it on CUDA out-of-memory."""
    for batch in fitting_batches(a.batch):
        try:
            return run_one(name, batch, a.resolution, a.steps, a.warmup_steps, compiled, impl)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            print(f"  {name} {impl}: batch {batch} does not fit; halving", flush=True)
    raise RuntimeError(f"{name}: no batch size down to {fitting_batches(a.batch)[-1]} fits")


def ffcv_loader_rate(a, workers: int) -> dict:
    """FFCV train-loader images/s at ``workers`` threads on a jpg .beton of natural-image JPEGs."""
    from benchmarks.data_loading import TREE_VERSION, _epoch, make_tree
    from datamodules.ffcv import FFCVDataModule
    from datamodules.imagefolder_writer import write_imagefolder

    base = Path(a.dir)
    tree = make_tree(base / f"tree-v{TREE_VERSION}-{a.loader_images}-10-q90", a.loader_images, 10)
    out = base / f"beton-v{TREE_VERSION}-{a.loader_images}-10-jpg-500-q90"
    if not (out / "meta.json").exists():
        write_imagefolder(tree, out, num_workers=workers, write_mode="jpg")
    dm = FFCVDataModule(
        out / "train.beton",
        out / "val.beton",
        batch_size=a.batch,
        num_workers=workers,
        resolution=a.resolution,
        os_cache=True,
    )
    dm.setup("fit")
    loader = dm.train_dataloader()
    warmup_s = _epoch(loader, a.resolution)[1]
    rates = [n / dt for n, dt in (_epoch(loader, a.resolution) for _ in range(2))]
    return {
        "workers": workers,
        "images": a.loader_images,
        "storage": "jpg",
        "resolution": a.resolution,
        "images_per_s": median(rates),
        "raw_images_per_s": rates,
        "warmup_epoch_s": warmup_s,
    }


def jpeg_decode_training(a, workers: int) -> dict:
    """End-to-end ResNet-50 images/s (bf16, channels_last) at ``--decode-resolution`` with
    ``data.jpeg_decode=full`` and ``scaled`` (``benchmarks/jpeg_decode.py`` ``gpu_training``), on
    the same jpg ``.beton`` as :func:`ffcv_loader_rate`."""
    from benchmarks.data_loading import TREE_VERSION, make_tree
    from benchmarks.jpeg_decode import gpu_training
    from datamodules.imagefolder_writer import write_imagefolder

    base = Path(a.dir)
    tree = make_tree(base / f"tree-v{TREE_VERSION}-{a.loader_images}-10-q90", a.loader_images, 10)
    out = base / f"beton-v{TREE_VERSION}-{a.loader_images}-10-jpg-500-q90"
    if not (out / "meta.json").exists():
        write_imagefolder(tree, out, num_workers=workers, write_mode="jpg")
    r = gpu_training(out, a.batch, workers, a.decode_resolution, a.decode_batches)
    print(
        f"  ResNet-50 {r['side']} px fed by FFCV ({workers} workers): full "
        f"{r['full_images_per_s']:.0f} img/s, scaled {r['scaled_images_per_s']:.0f} img/s, "
        f"scaled/full {r['ratio']:.2f}"
    )
    return r


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks gpu", description=__doc__.split("\n")[0])
    p.add_argument("--models", default="resnet50,resnext101_32x4d")
    p.add_argument("--batch", type=int, default=256, help="per GPU; halved on out-of-memory")
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--no-compile", action="store_true", help="eager only")
    p.add_argument("--impls", default="ours,torchvision")
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="use this bf16 peak instead of the measured one",
    )
    p.add_argument("--matmul-n", type=int, default=8192)
    p.add_argument("--loader-images", type=int, default=2048, help="FFCV loader check; 0 = skip it")
    p.add_argument("--dir", default="/tmp/cnn-platform-bench-data")
    p.add_argument(
        "--budget-s",
        type=float,
        default=450.0,
        help="start no new measurement after this many seconds",
    )
    p.add_argument(
        "--no-cpu-normalize",
        action="store_true",
        help="without CUDA: skip the CPU bf16-vs-fp32 normalisation measurement too",
    )
    p.add_argument(
        "--decode-resolution",
        type=int,
        default=160,
        help="data.jpeg_decode full vs scaled: ResNet-50 training side (ffcv-imagenet's 160)",
    )
    p.add_argument(
        "--decode-batches", type=int, default=30, help="batches per decoder per round; 0 = skip"
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke-test size: resnet50, batch 8, 64 px, 3 steps"
    )
    add_common_args(p)
    a = p.parse_args(argv)
    apply_common(a)
    if a.quick:
        a.models, a.batch, a.resolution, a.steps, a.warmup_steps = "resnet50", 8, 64, 3, 2
        a.matmul_n, a.loader_images, a.decode_resolution, a.decode_batches = 1024, 64, 64, 3
    if not torch.cuda.is_available():
        reason = "no CUDA device"
        print(f"{reason}: skipped")
        norm = None
        if (
            not a.no_cpu_normalize
        ):  # what the GPU check can measure on the CPU: bf16 vs fp32 normalisation
            import models

            b, r = (2, 16) if a.quick else (32, 160)
            model = models.create_model("resnet18").to(memory_format=torch.channels_last).eval()
            norm = {
                "alone": normalize_ab("cpu", b, r, reps=5),
                "with_forward": normalize_ab("cpu", b, r, reps=3, model=model),
            }
            print(
                f"  CPU, batch {b}, {r} px: DeviceNormalize bf16 / fp32 time alone "
                f"{norm['alone']['ratio']:.3f}, followed by a resnet18 forward under bf16 autocast "
                f"{norm['with_forward']['ratio']:.3f}"
            )
        path = write_result(
            "gpu",
            vars(a),
            {"skipped": True, "reason": reason, "rows": [], "normalize": norm},
            argv,
            a.results_dir,
        )
        print(f"wrote {path}")
        return 0
    from models.complexity import complexity

    started = time.perf_counter()
    torch.backends.cudnn.benchmark = True
    gpu = torch.cuda.get_device_name(0)
    measured = matmul_tflops("cuda", a.matmul_n)
    datasheet = peak_tflops(gpu)
    peak = a.peak_tflops or measured
    rows, skipped = [], []
    print(
        f"{gpu}: batch {a.batch}, {a.resolution} px, bf16 autocast, channels_last; measured bf16 "
        "matmul "
        f"{measured:.0f} TFLOP/s (n={a.matmul_n}; datasheet {datasheet or 'unknown'}); MFU "
        f"against {peak:.0f}"
    )
    print(
        f"  {'model':18s} {'impl':11s} {'compile':7s} {'batch':>5s} {'img/s/GPU':>10s} "
        f"{'MFU':>6s} {'ms/step':>8s} "
        f"{'peak MB':>8s}"
    )
    impls = [i for i in a.impls.split(",") if i]
    for name in [m for m in a.models.split(",") if m]:
        macs = complexity(name, a.resolution).macs
        for compiled in (False,) if a.no_compile else (False, True):
            for impl in impls:
                if time.perf_counter() - started > a.budget_s:
                    skipped.append(f"{name} {impl} compile={compiled}")
                    continue
                r = run_fitting(name, impl, a, compiled)
                r["forward_macs"], r["mfu"] = macs, mfu(macs, r["images_per_s"], peak)
                r["anchors"] = anchor_comparison(name, r["images_per_s"]) if impl == "ours" else []
                rows.append(r)
                m = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
                print(
                    f"  {name:18s} {impl:11s} {str(compiled):7s} {r['batch']:5d} "
                    f"{r['images_per_s']:10.0f} {m:>6s} "
                    f"{r['step_s'] * 1e3:8.1f} {r['max_memory_allocated_mb']:8.0f}",
                    flush=True,
                )
                torch.cuda.empty_cache()
    ratios = []
    for r in rows:
        if r["impl"] == "ours":
            tv = [
                t
                for t in rows
                if t["impl"] == "torchvision"
                and t["model"] == r["model"]
                and t["compiled"] == r["compiled"]
            ]
            if tv:
                ratios.append(
                    {
                        "model": r["model"],
                        "compiled": r["compiled"],
                        "ratio": tv[0]["step_s"] / r["step_s"] * r["batch"] / tv[0]["batch"],
                    }
                )
    for q in ratios:
        print(
            f"  ours / torchvision images/s, {q['model']} compile={q['compiled']}: {q['ratio']:.3f}"
        )
    norm = None
    if time.perf_counter() - started < a.budget_s:
        import models

        model = models.create_model("resnet50").cuda().to(memory_format=torch.channels_last).eval()
        norm = {
            "alone": normalize_ab("cuda", a.batch, a.resolution),
            "with_forward": normalize_ab("cuda", a.batch, a.resolution, model=model),
        }
        del model
        print(
            f"  DeviceNormalize bf16 / fp32 time: alone {norm['alone']['ratio']:.3f}, with a "
            "resnet50 forward "
            f"{norm['with_forward']['ratio']:.3f}"
        )
    else:
        skipped.append("normalize")
    loader = None
    if a.loader_images and time.perf_counter() - started < a.budget_s:
        loader = ffcv_loader_rate(a, len(os.sched_getaffinity(0)))
        print(
            f"  FFCV jpg loader, {loader['workers']} workers, crop {a.resolution}: "
            f"{loader['images_per_s']:.0f} img/s"
        )
    elif a.loader_images:
        skipped.append("ffcv loader")
    decoders = None  # issue 28: ResNet-50 at --decode-resolution fed by each data.jpeg_decode
    if a.loader_images and a.decode_batches and time.perf_counter() - started < a.budget_s:
        decoders = jpeg_decode_training(a, len(os.sched_getaffinity(0)))
    elif a.loader_images and a.decode_batches:
        skipped.append("jpeg_decode full vs scaled")
    print("published anchors (images/s per GPU; other GPUs and software, for orientation):")
    for r in rows:
        for c in r["anchors"]:
            ratio = "time-to-accuracy anchor" if c["ratio"] is None else f"{c['ratio']:.2f}x"
            ref = "-" if c["images_per_s_per_gpu"] is None else f"{c['images_per_s_per_gpu']:.0f}"
            print(
                f"  {r['model']:18s} compile={r['compiled']!s:5s} {r['images_per_s']:8.0f} vs "
                f"{ref:>7s}"
                f" ({c['source']}): {ratio}"
            )
    if skipped:
        print(f"budget {a.budget_s:.0f} s spent: skipped {', '.join(skipped)}")
    path = write_result(
        "gpu",
        vars(a),
        {
            "skipped": False,
            "reason": None,
            "gpu": gpu,
            "peak_tflops": peak,
            "measured_matmul_tflops": measured,
            "datasheet_tflops": datasheet,
            "rows": rows,
            "ours_vs_torchvision": ratios,
            "normalize": norm,
            "ffcv_loader": loader,
            "jpeg_decode": decoders,
            "not_run": skipped,
            "elapsed_s": time.perf_counter() - started,
        },
        argv,
        a.results_dir,
    )
    print(f"wrote {path}")
    return 0
