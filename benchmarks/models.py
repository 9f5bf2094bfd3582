"""Model step throughput, ours vs torchvision's implementation of the same architecture.

    python -m benchmarks models [--models resnet50,...|all] [--batch 8] [--resolution 224] [--reps 5]
                                [--dtype fp32|bf16|fp32,bf16] [--memory-format contiguous|channels_last|both]
                                [--modes train,infer] [--memory subprocess|off] [--quick]

For each model, each dtype and each memory format, two timings per contender:

* **train**: one training step, ``zero_grad`` + forward + cross-entropy + backward + SGD step
  (momentum 0.9, weight decay 5e-5, the same optimizer for both), model in train mode;
* **infer**: a forward pass in eval mode under ``torch.no_grad()``.

``bf16`` runs under ``torch.autocast(<device>, torch.bfloat16)``; ``channels_last`` converts the
model and the input.  The contenders run interleaved (ours, torchvision, ours, ...) after
``--warmup`` untimed rounds; the table shows medians, images/s and the ratio ours/torchvision of
the step *time* (< 1: ours is faster).  Both models start from the same seed, on the same input.

**Peak memory** is measured per contender in a fresh subprocess (``--memory subprocess``, the
default), so the other contender, the first-touch of the allocator and earlier configurations
cannot leak into it: the child builds the one model, runs three training steps and reports its
peak RSS (``VmHWM``; not ``ru_maxrss``, which a child inherits from its parent) and the growth of
RSS over what the process held just before building the model (the interpreter, torch and the
input batch).  On a GPU it reports
``torch.cuda.max_memory_allocated()`` instead (and the growth the same way).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from contextlib import nullcontext

import torch
import torchvision

import models
from benchmarks.common import (
    ROOT,
    add_common_args,
    apply_common,
    current_rss_mb,
    interleaved,
    median,
    peak_rss_mb,
    write_result,
)

NAMED = (
    "resnet50",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "densenet121",
    "mobilenet_v2",
    "efficientnet_b0",
)
FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def with_torchvision() -> list[str]:
    """Every registered model that torchvision also implements."""
    return [n for n in models.list_models() if models.model_info(n).torchvision]


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(dtype: str, dev: torch.device):
    return torch.autocast(dev.type, dtype=torch.bfloat16) if dtype == "bf16" else nullcontext()


def build(name: str, impl: str, dev: torch.device, memory_format: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if impl == "ours":
        model = models.create_model(name)
    else:
        model = torchvision.models.get_model(models.model_info(name).torchvision, weights=None)
    return model.to(dev, memory_format=FORMATS[memory_format])


def make_batch(batch: int, resolution: int, dev: torch.device, memory_format: str):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, resolution, resolution, generator=g).to(
        dev, memory_format=FORMATS[memory_format]
    )
    y = torch.randint(0, 1000, (batch,), generator=g).to(dev)
    return x, y


def train_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, dtype: str):
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-5)

    def run() -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        with autocast(dtype, x.device):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()

    return run


def infer_step(model: torch.nn.Module, x: torch.Tensor, dtype: str):
    def run() -> None:
        model.eval()
        with torch.no_grad(), autocast(dtype, x.device):
            model(x)

    return run


# ---------------------------------------------------------------------------- memory (child process)
def measure_memory(
    name: str,
    impl: str,
    dtype: str,
    memory_format: str,
    batch: int,
    resolution: int,
    steps: int = 3,
) -> dict:
    """Peak memory of ``steps`` training steps of one contender, in *this* process (call it in a fresh one)."""
    dev = device()
    x, y = make_batch(batch, resolution, dev, memory_format)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        before = current_rss_mb()
    step = train_step(build(name, impl, dev, memory_format), x, y, dtype)
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
        return {"kind": "cuda_max_allocated", "peak_mb": peak, "growth_mb": peak - before / 2**20}
    peak = peak_rss_mb()
    return {"kind": "rss", "peak_mb": peak, "growth_mb": peak - before}


def memory_in_subprocess(
    name: str, impl: str, dtype: str, memory_format: str, batch: int, resolution: int
) -> dict:
    spec = json.dumps(
        dict(
            name=name,
            impl=impl,
            dtype=dtype,
            memory_format=memory_format,
            batch=batch,
            resolution=resolution,
        )
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.models",
            "--memory-child",
            spec,
            "--threads",
            str(torch.get_num_threads()),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        return {
            "kind": "error",
            "peak_mb": None,
            "growth_mb": None,
            "error": proc.stderr.strip()[-500:],
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- the benchmark
def bench(
    names: list[str],
    batch: int,
    resolution: int,
    reps: int,
    warmup: int,
    dtypes: list[str],
    formats: list[str],
    modes: list[str],
    memory: str,
) -> list[dict]:
    dev = device()
    rows = []
    for name in names:
        if models.model_info(name).torchvision is None:
            print(f"{name}: torchvision has no such architecture; skipped", flush=True)
            continue
        contenders = {
            impl: build(name, impl, dev, "contiguous") for impl in ("ours", "torchvision")
        }
        for fmt in formats:
            for m in contenders.values():
                m.to(memory_format=FORMATS[fmt])
            x, y = make_batch(batch, resolution, dev, fmt)
            for dtype in dtypes:
                row = {
                    "model": name,
                    "torchvision_name": models.model_info(name).torchvision,
                    "dtype": dtype,
                    "memory_format": fmt,
                    "batch": batch,
                    "resolution": resolution,
                }
                for mode in modes:
                    fns = {
                        impl: (
                            train_step(m, x, y, dtype)
                            if mode == "train"
                            else infer_step(m, x, dtype)
                        )
                        for impl, m in contenders.items()
                    }
                    raw = interleaved(fns, reps=reps, warmup=warmup)
                    t_ours, t_tv = median(raw["ours"]), median(raw["torchvision"])
                    row[mode] = {
                        "raw_s": raw,
                        "ours_s": t_ours,
                        "torchvision_s": t_tv,
                        "ours_images_per_s": batch / t_ours,
                        "torchvision_images_per_s": batch / t_tv,
                        "ratio": t_ours / t_tv,
                    }
                if memory == "subprocess":
                    row["memory"] = {
                        impl: memory_in_subprocess(name, impl, dtype, fmt, batch, resolution)
                        for impl in contenders
                    }
                rows.append(row)
                print_row(row, modes)
        del contenders
    return rows


def _mb(mem: dict | None) -> str:
    return "-" if not mem or mem.get("peak_mb") is None else f"{mem['peak_mb']:.0f}"


def print_row(row: dict, modes: list[str]) -> None:
    parts = [f"{row['model']:18s} {row['dtype']:4s} {row['memory_format'][:8]:8s}"]
    for mode in modes:
        r = row[mode]
        parts.append(
            f"{mode} {r['ours_images_per_s']:7.1f} vs {r['torchvision_images_per_s']:7.1f} img/s "
            f"ratio {r['ratio']:.3f}"
        )
    if "memory" in row:
        parts.append(f"peak MB {_mb(row['memory']['ours'])} vs {_mb(row['memory']['torchvision'])}")
    print(" | ".join(parts), flush=True)


def _list(value: str, allowed) -> list[str]:
    items = [v for v in value.split(",") if v]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise SystemExit(f"unknown value(s) {bad}; expected some of {list(allowed)}")
    return items


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks models", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--models",
        default="all",
        help="comma-separated registry names; 'all' = every model torchvision also has; "
        f"'named' = {','.join(NAMED)}",
    )
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument(
        "--reps", type=int, default=5, help="timed repetitions per contender (median reported)"
    )
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds before timing")
    p.add_argument("--dtype", default="fp32", help="fp32, bf16 (autocast) or both: fp32,bf16")
    p.add_argument(
        "--memory-format", default="contiguous", help="contiguous, channels_last or both"
    )
    p.add_argument(
        "--channels-last", action="store_true", help="same as --memory-format channels_last"
    )
    p.add_argument("--modes", default="train,infer", help="train, infer or both")
    p.add_argument(
        "--memory",
        choices=("subprocess", "off"),
        default="subprocess",
        help="peak memory per contender measured in a fresh process (default) or not at all",
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke-test size: resnet18, batch 2, 64 px, 1 rep"
    )
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    add_common_args(p)
    a = p.parse_args(argv)
    apply_common(a)
    if a.memory_child:
        spec = json.loads(a.memory_child)
        print(json.dumps(measure_memory(**spec)))
        return 0
    if a.quick:
        a.models, a.batch, a.resolution, a.reps, a.warmup = "resnet18", 2, 64, 1, 1
    if a.channels_last:
        a.memory_format = "channels_last"
    if a.memory_format == "both":
        a.memory_format = "contiguous,channels_last"
    if a.dtype == "both":
        a.dtype = "fp32,bf16"
    choices = with_torchvision()
    names = {"all": choices, "named": list(NAMED)}.get(a.models) or _list(
        a.models, models.list_models()
    )
    dtypes, formats = _list(a.dtype, ("fp32", "bf16")), _list(a.memory_format, FORMATS)
    modes = _list(a.modes, ("train", "infer"))
    print(
        f"ours vs torchvision on {device()}: batch {a.batch}, {a.resolution} px, median of "
        f"{a.reps} "
        f"(after {a.warmup} warm-up), ratio = time ours / time torchvision",
        flush=True,
    )
    rows = bench(names, a.batch, a.resolution, a.reps, a.warmup, dtypes, formats, modes, a.memory)
    path = write_result(
        "models", vars(a), {"device": str(device()), "rows": rows}, argv, a.results_dir
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
