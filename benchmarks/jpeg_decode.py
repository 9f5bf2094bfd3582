"""``data.jpeg_decode``: FFCV's full-size JPEG decode vs the n/8-scaled one (issue 28).

    python -m benchmarks data --jpeg-decode [--images 1000] [--epochs 2] [--workers-list 1,2]

On the data benchmark's natural-JPEG set (``data_loading.make_tree``; ``.beton`` of JPEGs, longest
side 500, quality 90), interleaved epochs of the real ``FFCVDataModule`` loaders: training crop 160
and 224 (seeded random-resized crop + flip), validation centre crop 224 of 256 (the training
images through the validation pipeline), each with ``jpeg_decode=full`` and ``scaled``, at every
``--workers-list`` count.  Reports images/s, images/s per worker (core), scaled/full, and the
decode stats (images per factor, fallbacks).

Then, single-threaded on the same JPEGs (:func:`breakdown`), where the time goes: full decode,
the decode at the chosen n/8 alone, the 1/8 decode (nearly only the entropy decode: Huffman
floor), crop + resize, and the PSNR of scaled vs full per chosen factor (pooled MSE).
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.common import median

CASES = (("train", 160), ("train", 224), ("val", 224))  # (pipeline, output side)
VAL_RATIO = 224 / 256


def _epoch(loader, side: int) -> tuple[int, float]:
    t0, n = time.perf_counter(), 0
    for images, _ in loader:
        if tuple(images.shape[1:]) != (3, side, side):
            raise RuntimeError(f"loader produced {tuple(images.shape)}, expected B x 3 x {side}^2")
        n += images.shape[0]
    return n, time.perf_counter() - t0


def loaders(out: Path, batch: int, workers: list[int], n_images: int) -> dict:
    """``{(case, side, workers, decode): (datamodule, loader)}`` over ``out``'s train.beton."""
    from datamodules.ffcv import FFCVDataModule

    made = {}
    for w in workers:
        for case, side in CASES:
            for decode in ("full", "scaled"):
                dm = FFCVDataModule(
                    out / "train.beton",
                    out / "val.beton",
                    batch_size=batch,
                    num_workers=w,
                    resolution=side,
                    val_resolution=side,
                    val_crop_ratio=VAL_RATIO,
                    os_cache=True,
                    jpeg_decode=decode,
                )
                dm.setup("fit")
                if case == "train":
                    loader = dm.train_dataloader()
                else:  # every training image through the validation pipeline
                    loader = dm.train_eval_dataloader(range(n_images - n_images % batch))
                made[(case, side, w, decode)] = (dm, loader)
    return made


def compare(out: Path, batch: int, workers: list[int], epochs: int, n_images: int) -> dict:
    """Interleaved epochs of every loader; medians, ratios and decode stats."""
    made = loaders(out, batch, workers, n_images)
    for key, (_, ld) in made.items():  # warm-up: compile, page cache
        _epoch(ld, key[1])
    rates: dict = defaultdict(list)
    for _ in range(epochs):
        for key, (_, ld) in made.items():
            n, dt = _epoch(ld, key[1])
            rates[key].append(n / dt)
    rows = []
    print(f"  {'pipeline':10s} {'side':>4s} {'workers':>7s} {'full img/s':>10s} {'scaled img/s':>12s}"
          f" {'full /core':>10s} {'scaled /core':>12s} {'scaled/full':>11s}")  # fmt: skip
    for w in workers:
        for case, side in CASES:
            full, scaled = (median(rates[(case, side, w, d)]) for d in ("full", "scaled"))
            stats = made[(case, side, w, "scaled")][0].decode_stats()
            rows.append(dict(pipeline=case, side=side, workers=w, full=full, scaled=scaled,
                             ratio=scaled / full, stats=stats,
                             raw_full=rates[(case, side, w, "full")],
                             raw_scaled=rates[(case, side, w, "scaled")]))  # fmt: skip
            print(f"  {case:10s} {side:4d} {w:7d} {full:10.1f} {scaled:12.1f} {full / w:10.1f}"
                  f" {scaled / w:12.1f} {scaled / full:11.2f}   {stats}")  # fmt: skip
    return {"rows": rows}


def _db(mse: float) -> float:
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


def breakdown(jpegs: list, sides=(160, 224), seed: int = 0) -> dict:
    """Single-thread seconds per image of each part, and PSNR per chosen factor (see module doc)."""
    from benchmarks.data_loading import random_resized_crop
    from datamodules.jpeg_scaled import KINDS, SLOTS, kernels, scaling_numerators, turbojpeg

    lib, decode_crop = turbojpeg(), kernels()["decode_crop"]
    handle, fast, none = lib.tjInitDecompress(), scaling_numerators(), np.zeros(0, np.int64)
    state = np.zeros((SLOTS, 1 + KINDS), np.int64)
    temp = np.empty(3 * max(h * w for _, h, w in jpegs), np.uint8)
    data, h, w = jpegs[0]
    for nums in (none, fast):  # compile first
        decode_crop(data, True, temp, h, w, 0, 0, h, w, np.empty((8, 8, 3), np.uint8), 0,
                    state.ctypes.data, nums)  # fmt: skip
    state[:] = 0
    report = {}
    for case, side in [("train", s) for s in sides] + [("val", 224)]:
        rng, t = np.random.default_rng(seed), defaultdict(float)
        err: dict = defaultdict(list)
        dst, ref = np.empty((side, side, 3), np.uint8), np.empty((side, side, 3), np.uint8)
        for data, h, w in jpegs:
            if case == "train":
                box = random_resized_crop(h, w, rng)
            else:
                c = int(VAL_RATIO * min(h, w))
                box = ((h - c) // 2, (w - c) // 2, c, c)
            before = state[:, 1:].sum(axis=0)
            for name, nums, out in (("full", none, ref), ("scaled", fast, dst)):
                t0 = time.perf_counter()
                decode_crop(data, True, temp, h, w, *box, out, 0, state.ctypes.data, nums)
                t[name] += time.perf_counter() - t0
            kind = int(np.argmax(state[:, 1:].sum(axis=0) - before))
            n = kind + 1 if kind < 7 else 8
            for name, k in (("decode 8/8", 8), ("decode chosen n/8", n), ("decode 1/8", 1)):
                sh, sw = (h * k + 7) // 8, (w * k + 7) // 8
                t0 = time.perf_counter()
                lib.tjDecompress2(handle, data.ctypes.data, data.size, temp.ctypes.data, sw,
                                  3 * sw, sh, 0, 2048)  # fmt: skip
                t[name] += time.perf_counter() - t0
            err[f"{n}/8"].append(np.mean((dst.astype(np.float64) - ref) ** 2))
        ms = {k: 1e3 * v / len(jpegs) for k, v in t.items()}
        psnr = {k: (len(v), _db(np.mean(v))) for k, v in err.items()}
        report[f"{case}-{side}"] = {"ms_per_image": ms, "psnr_db": psnr}
        print(f"  {case} {side}: ms/image " + ", ".join(f"{k} {v:.3f}" for k, v in ms.items()))
        print("    PSNR scaled vs full by chosen factor (images, dB): "
              + ", ".join(f"{k}: {n} {p:.1f}" for k, (n, p) in sorted(psnr.items())))  # fmt: skip
    lib.tjDestroy(handle)
    return report


def run(a, tree: Path, out: Path) -> dict:
    """The comparison and the breakdown on ``out`` (the jpg ``.beton`` written from ``tree``)."""
    from benchmarks.data_loading import beton_jpegs

    workers = [int(w) for w in a.workers_list.split(",") if w]
    print(f"jpeg_decode full vs scaled, {a.images} natural JPEGs (q{a.jpeg_quality}, max side "
          f"{a.max_resolution}), batch {a.batch}, median of {a.epochs} interleaved epochs")  # fmt: skip
    result = compare(out, a.batch, workers, a.epochs, a.images)
    print("where the time goes (1 thread, the same JPEGs):")
    result["breakdown"] = breakdown(beton_jpegs(out / "train.beton")[: a.breakdown_images])
    return result
