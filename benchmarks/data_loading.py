"""Data loading: our FFCV train loader vs the torchvision ImageFolder loader, same images.

    python -m benchmarks data [--images 2000] [--classes 10] [--resolution 160] [--workers 2] [--epochs 2]

Generates an ImageNet-layout tree of random-content JPEGs at ImageNet-like sizes (cached under
``--dir``), writes it once with ``python -m datamodules.write``'s defaults, then times full
training epochs of both datamodules (random-resized crop + flip to ``--resolution``, uint8
batches, the same batch size and worker count) after one untimed warm-up epoch each, alternating
FFCV / torchvision per epoch. Prints images/s, the ratio FFCV / torchvision and peak RSS.
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

from benchmarks.common import median, write_result


def make_tree(root: Path, images: int, classes: int, seed: int = 0) -> Path:
    """``root/{train,val}/<class>/*.JPEG``: smooth random images, 333-500 x 375-500 px (ImageNet-like)."""
    from PIL import Image

    marker = root / f".complete-{images}-{classes}"
    if marker.exists():
        return root
    rng = np.random.default_rng(seed)
    for split, n in (("train", images), ("val", max(classes, images // 10))):
        for i in range(n):
            c = i % classes
            d = root / split / f"n{c:08d}"
            d.mkdir(parents=True, exist_ok=True)
            h, w = int(rng.integers(333, 501)), int(rng.integers(375, 501))
            small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
            img = Image.fromarray(small).resize((w, h), Image.BILINEAR)
            img.save(d / f"{split}_{i:06d}.JPEG", quality=90)
    marker.touch()
    return root


def _epoch(loader) -> tuple[int, float]:
    t0, n = time.perf_counter(), 0
    for images, _ in loader:
        n += images.shape[0]
    return n, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks data", description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--resolution", type=int, default=160)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per loader (after one warm-up)")
    p.add_argument("--dir", default="/tmp/cnn-platform-bench-data")
    a = p.parse_args(argv)

    from datamodules.ffcv import FFCVDataModule
    from datamodules.imagefolder import ImageFolderDataModule
    from datamodules.write import write_imagefolder

    base = Path(a.dir)
    tree = make_tree(base / "tree", a.images, a.classes)
    out = base / f"beton-{a.images}-{a.classes}"
    if not (out / "meta.json").exists():
        t0 = time.perf_counter()
        write_imagefolder(tree, out, num_workers=a.workers)
        print(f"wrote {out} in {time.perf_counter() - t0:.1f} s")
    common = dict(batch_size=a.batch, num_workers=a.workers, resolution=a.resolution)
    ffcv = FFCVDataModule(out / "train.beton", out / "val.beton", **common)
    ffcv.setup("fit")
    tv = ImageFolderDataModule(tree, **common)
    tv.setup("fit")
    loaders = {"ffcv": ffcv.train_dataloader(), "torchvision": tv.train_dataloader()}
    for loader in loaders.values():
        _epoch(loader)  # warm-up: FFCV compiles its pipeline, the page cache fills
    rates: dict[str, list[float]] = {k: [] for k in loaders}
    for _ in range(a.epochs):
        for name, loader in loaders.items():
            n, dt = _epoch(loader)
            rates[name].append(n / dt)
    rss_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                 resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    ffcv_rate, tv_rate = median(rates["ffcv"]), median(rates["torchvision"])
    print(f"train loader, {a.images} images, {a.resolution} px, batch {a.batch}, {a.workers} workers")
    print(f"  ffcv         {ffcv_rate:8.1f} images/s")
    print(f"  torchvision  {tv_rate:8.1f} images/s")
    print(f"  ratio ffcv/torchvision {ffcv_rate / tv_rate:.2f}   peak RSS {rss_mb:.0f} MB")
    path = write_result("data", {**vars(a), "images_per_s": rates, "ratio": ffcv_rate / tv_rate,
                                 "peak_rss_mb": rss_mb})
    print(f"wrote {path}")
    return 0
