"""Data loading: our FFCV train loader vs the torchvision ImageFolder loader, same images.

    python -m benchmarks data [--storage jpg,raw,proportion] [--images 2000] [--classes 10]
                              [--resolution 160] [--batch 64] [--workers 2] [--epochs 2] [--quick]

Generates an ImageNet-layout tree of smooth random-content JPEGs at ImageNet-like sizes
(333-500 x 375-500 px, quality 90; cached under ``--dir``).  For each ``--storage`` it writes the
tree once to a ``.beton`` with :func:`datamodules.write.write_imagefolder`:

* ``jpg``: every image stored as its JPEG (re-encoded at ``--jpeg-quality``), decoded per batch;
* ``raw``: every image stored as uncompressed RGB pixels: no decoding, only crop + resize;
* ``proportion``: the writer's defaults (ffcv-imagenet's): half JPEG, half raw.

``--max-resolution`` (default 500, the writer's default) caps the longest side; the generated images
never exceed 500 px, so it changes nothing unless lowered, and lowering it makes the FFCV side crop
from smaller images than torchvision reads (reported, but not a like-for-like comparison).

Both loaders do the same work per image: Inception-style random-resized crop to ``--resolution``
(scale 0.08-1, ratio 3/4-4/3) and a random horizontal flip, producing uint8 ``B x 3 x R x R``
batches on the CPU, with the same batch size and the same number of worker processes; the
benchmark checks the output shapes.  Files are "cached": the tree and the ``.beton`` files sit in
the page cache after one untimed warm-up epoch of every loader (FFCV also compiles its pipeline
then).  Then ``--epochs`` timed epochs run interleaved: torchvision, ffcv[storage 1], ffcv[storage 2],
... .  Reports images/s (median over epochs) and the ratio FFCV / torchvision per storage.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import add_common_args, apply_common, median, peak_rss_mb, write_result

STORAGES = {
    "jpg": dict(write_mode="jpg"),
    "raw": dict(write_mode="raw"),
    "proportion": dict(write_mode="proportion"),
}


def make_tree(root: Path, images: int, classes: int, seed: int = 0) -> Path:
    """``root/{train,val}/<class>/*.JPEG``: smooth random images, 333-500 x 375-500 px (ImageNet-like)."""
    from PIL import Image

    marker = root / f".complete-{images}-{classes}"
    if marker.exists():
        return root
    import shutil

    shutil.rmtree(root, ignore_errors=True)  # a tree of another size would be mixed in
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


def _epoch(loader, resolution: int) -> tuple[int, float]:
    t0, n = time.perf_counter(), 0
    for images, _ in loader:
        if tuple(images.shape[1:]) != (3, resolution, resolution):
            raise RuntimeError(f"loader produced {tuple(images.shape)}, expected B x 3 x {resolution} x {resolution}")
        n += images.shape[0]
    return n, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks data", description=__doc__.split("\n")[0])
    p.add_argument("--storage", default="jpg,raw,proportion",
                   help=f"comma-separated .beton storage modes: {', '.join(STORAGES)}")
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--resolution", type=int, default=160, help="training crop size")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per loader (after one warm-up)")
    p.add_argument("--max-resolution", type=int, default=500, help="longest side stored in the .beton")
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--dir", default="/tmp/cnn-platform-bench-data")
    p.add_argument("--quick", action="store_true", help="smoke-test size: 64 images, 2 classes, 64 px, 1 epoch")
    add_common_args(p)
    a = p.parse_args(argv)
    if a.clock != "wall":
        p.error("--clock cpu cannot see torchvision's worker processes: the data suite uses wall time")
    apply_common(a)
    if a.quick:
        a.images, a.classes, a.resolution, a.batch, a.epochs = 64, 2, 64, 16, 1
    storages = [s for s in a.storage.split(",") if s]
    unknown = set(storages) - set(STORAGES)
    if unknown:
        p.error(f"--storage {sorted(unknown)}: expected some of {', '.join(STORAGES)}")

    from datamodules.ffcv import FFCVDataModule
    from datamodules.imagefolder import ImageFolderDataModule
    from datamodules.write import write_imagefolder

    base = Path(a.dir)
    tree = make_tree(base / f"tree-{a.images}-{a.classes}", a.images, a.classes)
    common = dict(batch_size=a.batch, num_workers=a.workers, resolution=a.resolution)
    loaders, beton_mb, write_s = {}, {}, {}
    for storage in storages:
        out = base / f"beton-{a.images}-{a.classes}-{storage}-{a.max_resolution}-q{a.jpeg_quality}"
        if not (out / "meta.json").exists():
            t0 = time.perf_counter()
            write_imagefolder(tree, out, num_workers=a.workers, max_resolution=a.max_resolution,
                              jpeg_quality=a.jpeg_quality, **STORAGES[storage])
            write_s[storage] = time.perf_counter() - t0
            print(f"wrote {out} in {write_s[storage]:.1f} s", flush=True)
        beton_mb[storage] = (out / "train.beton").stat().st_size / 2**20
        dm = FFCVDataModule(out / "train.beton", out / "val.beton", os_cache=True, **common)
        dm.setup("fit")
        loaders[f"ffcv-{storage}"] = dm.train_dataloader()
    tv = ImageFolderDataModule(tree, **common)
    tv.setup("fit")
    loaders = {"torchvision": tv.train_dataloader(), **loaders}
    tree_mb = sum(f.stat().st_size for f in (tree / "train").rglob("*.JPEG")) / 2**20

    warmup_s = {}
    for name, loader in loaders.items():  # warm-up: FFCV compiles its pipeline, the page cache fills
        warmup_s[name] = _epoch(loader, a.resolution)[1]
    rates: dict[str, list[float]] = {k: [] for k in loaders}
    for _ in range(a.epochs):
        for name, loader in loaders.items():
            n, dt = _epoch(loader, a.resolution)
            rates[name].append(n / dt)
    tv_rate = median(rates["torchvision"])
    rows = []
    print(f"train loader, {a.images} images, crop {a.resolution} px, batch {a.batch}, {a.workers} workers, "
          f"median of {a.epochs} epochs after a warm-up epoch")
    print(f"  {'loader':22s} {'images/s':>9s}  {'ratio':>6s}  {'train set MB':>12s}")
    print(f"  {'torchvision ImageFolder':22s} {tv_rate:9.1f}  {1.0:6.2f}  {tree_mb:12.0f}")
    for storage in storages:
        r = median(rates[f"ffcv-{storage}"])
        rows.append({"storage": storage, "images_per_s": r, "ratio": r / tv_rate, "raw_images_per_s": rates[f"ffcv-{storage}"],
                     "beton_mb": beton_mb[storage], "write_s": write_s.get(storage),
                     "warmup_epoch_s": warmup_s[f"ffcv-{storage}"]})
        print(f"  {'ffcv ' + storage:22s} {r:9.1f}  {r / tv_rate:6.2f}  {beton_mb[storage]:12.0f}")
    rss = peak_rss_mb()
    print(f"  peak RSS of the main process {rss:.0f} MB")
    path = write_result("data", vars(a), {
        "rows": rows, "torchvision_images_per_s": tv_rate, "torchvision_raw_images_per_s": rates["torchvision"],
        "torchvision_warmup_epoch_s": warmup_s["torchvision"], "tree_mb": tree_mb, "peak_rss_mb": rss}, argv,
        a.results_dir)
    print(f"wrote {path}")
    return 0
