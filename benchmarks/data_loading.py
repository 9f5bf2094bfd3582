"""Data loading: our FFCV train loader vs the torchvision ImageFolder loader vs the JPEG decode bound.

    python -m benchmarks data [--storage jpg,raw,proportion] [--images 2000] [--classes 10]
                              [--resolution 160] [--batch 64] [--workers 2] [--epochs 2] [--quick]
    python -m benchmarks data --jpeg-decode ...   # data.jpeg_decode full vs scaled (jpeg_decode.py)

Generates an ImageNet-layout tree of natural-image JPEGs (:func:`natural_image`: random crops and
rescalings of the sample photographs scikit-learn and scikit-image ship, 333-500 px a side, JPEG
quality ``--jpeg-quality`` 90; cached under ``--dir``): decode cost depends on content, and smooth
synthetic images decode faster than photographs.  For each ``--storage`` it writes the tree once to
a ``.beton`` with :func:`datamodules.imagefolder_writer.write_imagefolder`:

* ``jpg``: every image stored as its JPEG (re-encoded at ``--jpeg-quality``), decoded per batch;
* ``raw``: every image stored as uncompressed RGB pixels: no decoding, only crop + resize;
* ``proportion``: the writer's defaults (ffcv-imagenet's): half JPEG, half raw.

``--max-resolution`` (default 500, the writer's default) caps the longest side; the generated images
never exceed 500 px, so it changes nothing unless lowered, and lowering it makes the FFCV side crop
from smaller images than torchvision reads (reported, but not a like-for-like comparison).

Both loaders do the same work per image: Inception-style random-resized crop to ``--resolution``
(scale 0.08-1, ratio 3/4-4/3) and a random horizontal flip, producing uint8 ``B x 3 x R x R``
batches on the CPU, with the same batch size and the same number of worker processes; the
benchmark checks the output shapes.

**The decode bound** (:class:`DecodeBound`): a JPEG loader cannot beat decoding its files.  Every
image of the epoch is decoded at full size in ``--workers`` threads by libjpeg-turbo through
FFCV's own binding (``ffcv.libffcv.imdecode``, the call FFCV's decoders make), from memory, nothing
else: ``bound-tree`` on the tree's files (the peer of ImageFolder, whose PIL also decodes with
libjpeg-turbo), ``bound-beton`` on the JPEGs stored in the jpg ``.beton`` (FFCV jpg's peer); the
``+crop`` variants add FFCV's own crop-and-resize (``ffcv.libffcv.resize``) to ``--resolution``, so
``bound+crop`` / ``bound`` is the resize's share and ``ffcv-jpg`` / ``bound-beton+crop`` the
loader's (batching, threads, Python).  Reported: each loader's images/s as a fraction of its bound.

Files are "cached": the tree and the ``.beton`` files sit in the page cache after one untimed
warm-up epoch of every contender (FFCV also compiles its pipeline then).  Then ``--epochs`` timed
epochs run interleaved: torchvision, ffcv[storage 1], ..., bound-tree, ... .  Reports images/s
(median over epochs), the ratio FFCV / torchvision per storage and each loader's fraction of the bound.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    add_common_args,
    apply_common,
    command_line,
    median,
    peak_rss_mb,
    write_result,
)

STORAGES = {
    "jpg": dict(write_mode="jpg"),
    "raw": dict(write_mode="raw"),
    "proportion": dict(write_mode="proportion"),
}


# The sample photographs that scikit-learn and scikit-image ship inside their wheels (nothing is
# downloaded: files are read by path, never through skimage.data's fetcher).
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")  # sklearn/datasets/images/
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "ihc.png",  # colour
    "camera.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "moon.png",
    "coins.png",
)  # grey
TREE_VERSION = 2  # 1: smooth random rectangles; 2: crops of natural photographs


def sample_photos() -> list[np.ndarray]:
    """The shipped sample photographs as ``H x W x 3`` uint8 arrays (grey ones replicated to RGB)."""
    import sklearn.datasets
    from PIL import Image

    paths = [Path(sklearn.datasets.__file__).parent / "images" / n for n in SKLEARN_PHOTOS]
    try:
        import skimage

        paths += [Path(skimage.__file__).parent / "data" / n for n in SKIMAGE_PHOTOS]
    except (
        ImportError
    ):  # the dev extra installs it; without it the tree uses scikit-learn's two photos
        pass
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in paths if p.is_file()]
    if not photos:
        raise RuntimeError(
            "no sample photographs found (scikit-learn's sklearn/datasets/images/*.jpg)"
        )
    return photos


def natural_image(photos: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One ImageNet-like image: a random crop (10-100% of the area, the target's aspect) of a random
    photograph, rescaled to 333-500 x 375-500 px, flipped half the time."""
    from PIL import Image

    src = photos[int(rng.integers(len(photos)))]
    h, w = int(rng.integers(333, 501)), int(rng.integers(375, 501))
    if rng.random() < 0.5:
        h, w = w, h  # portrait as often as landscape
    sh, sw = src.shape[:2]
    area = rng.uniform(0.1, 1.0) * sh * sw
    ch = min(sh, int(round((area * h / w) ** 0.5)))
    cw = min(sw, int(round(ch * w / h)))
    ch = min(ch, int(round(cw * h / w)))
    y0, x0 = int(rng.integers(0, sh - ch + 1)), int(rng.integers(0, sw - cw + 1))
    img = Image.fromarray(src[y0 : y0 + ch, x0 : x0 + cw]).resize((w, h), Image.BICUBIC)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(img)


def make_tree(root: Path, images: int, classes: int, seed: int = 0, quality: int = 90) -> Path:
    """``root/{train,val}/<class>/*.JPEG``: crops and rescalings of natural photographs
    (:func:`natural_image`), 333-500 px a side, JPEG ``quality`` (ImageNet-like), cached."""
    from PIL import Image

    marker = root / f".complete-v{TREE_VERSION}-{images}-{classes}-q{quality}"
    if marker.exists():
        return root
    import shutil

    shutil.rmtree(root, ignore_errors=True)  # a tree of another size would be mixed in
    rng = np.random.default_rng(seed)
    photos = sample_photos()
    for split, n in (("train", images), ("val", max(classes, images // 10))):
        for i in range(n):
            c = i % classes
            d = root / split / f"n{c:08d}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(natural_image(photos, rng)).save(
                d / f"{split}_{i:06d}.JPEG", quality=quality
            )
    marker.touch()
    return root


# ---------------------------------------------------------------------------- the decode bound
def tree_jpegs(tree: Path) -> list[tuple[np.ndarray, int, int]]:
    """Every training JPEG of the tree as (bytes as a uint8 array, height, width), read into memory."""
    from PIL import Image

    out = []
    for f in sorted((tree / "train").rglob("*.JPEG")):
        with Image.open(f) as im:
            w, h = im.size
        out.append((np.fromfile(f, dtype=np.uint8), h, w))
    return out


def beton_jpegs(path: Path) -> list[tuple[np.ndarray, int, int]]:
    """The JPEG-stored images of a ``.beton`` (its ``image`` field), as :func:`tree_jpegs` returns them."""
    from ffcv.fields.rgb_image import IMAGE_MODES
    from ffcv.reader import Reader

    r = Reader(str(path))
    data = np.fromfile(path, dtype=np.uint8)
    size = dict(zip(r.alloc_table["ptr"].tolist(), r.alloc_table["size"].tolist(), strict=False))
    meta = r.metadata[f"f{r.field_names.index('image')}"]
    jpg = IMAGE_MODES["jpg"]
    return [
        (data[p : p + size[p]].copy(), int(h), int(w))
        for p, h, w, m in zip(
            meta["data_ptr"].tolist(),
            meta["height"].tolist(),
            meta["width"].tolist(),
            meta["mode"].tolist(),
            strict=False,
        )
        if m == jpg
    ]


class DecodeBound:
    """Decode every JPEG at full size in ``threads`` threads with FFCV's own libjpeg-turbo binding
    (``ffcv.libffcv.ctypes_imdecode``, the call its RGB decoders make, ffcv/fields/rgb_image.py),
    nothing else; with ``crop`` also FFCV's random-resized crop (``ctypes_resize``) to ``crop`` px.

    ctypes releases the GIL for the call, so the threads decode in parallel as FFCV's numba
    threads do.  Each call returns (images, seconds).
    """

    def __init__(
        self, jpegs: list[tuple[np.ndarray, int, int]], threads: int, crop: int | None = None
    ) -> None:
        from ffcv.libffcv import ctypes_imdecode, ctypes_resize

        self.decode_c, self.resize_c = ctypes_imdecode, ctypes_resize
        self.jpegs, self.threads, self.crop = jpegs, max(1, threads), crop
        self.chunks = [jpegs[i :: self.threads] for i in range(self.threads)]
        biggest = max((h * w for _, h, w in jpegs), default=1)
        self.buffers = [np.empty(3 * biggest, np.uint8) for _ in range(self.threads)]
        self.outs = [np.empty((crop or 1, crop or 1, 3), np.uint8) for _ in range(self.threads)]

    def _work(self, k: int) -> int:
        buf, out, rng = self.buffers[k], self.outs[k], np.random.default_rng(k)
        failed = 0
        for data, h, w in self.chunks[k]:
            failed += (
                self.decode_c(
                    data.ctypes.data,
                    data.size,
                    h,
                    w,
                    buf.ctypes.data,
                    h,
                    w,
                    0,
                    0,
                    1,
                    1,
                    False,
                    False,
                )
                != 0
            )
            if self.crop:
                i, j, ch, cw = random_resized_crop(h, w, rng)
                self.resize_c(
                    0,
                    buf.ctypes.data,
                    h,
                    w,
                    i,
                    i + ch,
                    j,
                    j + cw,
                    out.ctypes.data,
                    self.crop,
                    self.crop,
                )
        return failed

    def __call__(self) -> tuple[int, float]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(self.threads) as pool:
            t0 = time.perf_counter()
            failed = sum(pool.map(self._work, range(self.threads)))
            dt = time.perf_counter() - t0
        if failed:
            raise RuntimeError(f"libjpeg-turbo failed on {failed} of {len(self.jpegs)} images")
        return len(self.jpegs), dt


def random_resized_crop(
    h: int, w: int, rng: np.random.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)
):
    """(top, left, height, width) of an Inception-style crop, as torchvision's / FFCV's get_random_crop."""
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side, side


def storage_beton(a, base: Path, tree: Path, storage: str) -> tuple[Path, float | None]:
    """The ``.beton`` directory of ``tree`` in ``storage`` mode (written once, cached), and the
    seconds its writing took (None when cached)."""
    from datamodules.imagefolder_writer import write_imagefolder

    out = base / (
        f"beton-v{TREE_VERSION}-{a.images}-{a.classes}-{storage}-{a.max_resolution}"
        f"-q{a.jpeg_quality}"
    )
    if (out / "meta.json").exists():
        return out, None
    t0 = time.perf_counter()
    write_imagefolder(
        tree,
        out,
        num_workers=a.workers,
        max_resolution=a.max_resolution,
        jpeg_quality=a.jpeg_quality,
        **STORAGES[storage],
    )
    seconds = time.perf_counter() - t0
    print(f"wrote {out} in {seconds:.1f} s", flush=True)
    return out, seconds


def jpeg_decode_main(a, argv) -> int:
    """``--jpeg-decode``: full vs scaled JPEG decoding (``benchmarks/jpeg_decode.py``)."""
    from benchmarks import jpeg_decode

    base = Path(a.dir)
    name = f"tree-v{TREE_VERSION}-{a.images}-{a.classes}-q{a.jpeg_quality}"
    tree = make_tree(base / name, a.images, a.classes, quality=a.jpeg_quality)
    out, _ = storage_beton(a, base, tree, "jpg")
    result = jpeg_decode.run(a, tree, out)
    result["reported_bound"] = jpeg_decode.reported_bound()
    if a.top1_checkpoint:
        result["top1"] = jpeg_decode.top1(a.top1_checkpoint, base)
    command = command_line("data", argv)
    print(f"wrote {write_result('jpeg_decode', vars(a), result, argv, a.results_dir, command)}")
    return 0


def _epoch(loader, resolution: int) -> tuple[int, float]:
    t0, n = time.perf_counter(), 0
    for images, _ in loader:
        if tuple(images.shape[1:]) != (3, resolution, resolution):
            raise RuntimeError(
                f"loader produced {tuple(images.shape)}, expected B x 3 x {resolution} x "
                f"{resolution}"
            )
        n += images.shape[0]
    return n, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks data", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--storage",
        default="jpg,raw,proportion",
        help=f"comma-separated .beton storage modes: {', '.join(STORAGES)}",
    )
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--resolution", type=int, default=160, help="training crop size")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--epochs", type=int, default=2, help="timed epochs per loader (after one warm-up)"
    )
    p.add_argument(
        "--max-resolution", type=int, default=500, help="longest side stored in the .beton"
    )
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--dir", default="/tmp/cnn-platform-bench-data")
    p.add_argument(
        "--quick", action="store_true", help="smoke-test size: 64 images, 2 classes, 64 px, 1 epoch"
    )
    p.add_argument(
        "--jpeg-decode",
        action="store_true",
        help="instead: data.jpeg_decode full vs scaled, train crop 160/224 and val 224 of 256 "
        "(benchmarks/jpeg_decode.py)",
    )
    p.add_argument("--workers-list", default="1,2", help="--jpeg-decode: worker counts")
    p.add_argument(
        "--top1-checkpoint",
        default=None,
        help="--jpeg-decode: a data=digits checkpoint, scored on JPEG digits both ways",
    )
    p.add_argument(
        "--breakdown-images", type=int, default=300, help="--jpeg-decode: images timed per part"
    )
    add_common_args(p)
    a = p.parse_args(argv)
    if a.clock != "wall":
        p.error(
            "--clock cpu cannot see torchvision's worker processes: the data suite uses wall time"
        )
    apply_common(a)
    if a.quick:
        a.images, a.classes, a.resolution, a.batch, a.epochs = 64, 2, 64, 16, 1
    if a.jpeg_decode:
        return jpeg_decode_main(a, argv)
    storages = [s for s in a.storage.split(",") if s]
    unknown = set(storages) - set(STORAGES)
    if unknown:
        p.error(f"--storage {sorted(unknown)}: expected some of {', '.join(STORAGES)}")

    from datamodules.ffcv import FFCVDataModule
    from datamodules.imagefolder import ImageFolderDataModule

    base = Path(a.dir)
    tree = make_tree(
        base / f"tree-v{TREE_VERSION}-{a.images}-{a.classes}-q{a.jpeg_quality}",
        a.images,
        a.classes,
        quality=a.jpeg_quality,
    )
    common = dict(batch_size=a.batch, num_workers=a.workers, resolution=a.resolution)
    loaders, beton_mb, write_s, betons = {}, {}, {}, {}
    for storage in storages:
        out, seconds = storage_beton(a, base, tree, storage)
        if seconds is not None:
            write_s[storage] = seconds
        betons[storage] = out / "train.beton"
        beton_mb[storage] = betons[storage].stat().st_size / 2**20
        dm = FFCVDataModule(out / "train.beton", out / "val.beton", os_cache=True, **common)
        dm.setup("fit")
        loaders[f"ffcv-{storage}"] = dm.train_dataloader()
    tv = ImageFolderDataModule(tree, **common)
    tv.setup("fit")
    tree_mb = sum(f.stat().st_size for f in (tree / "train").rglob("*.JPEG")) / 2**20

    # the decode bound: every JPEG at full size, --workers threads, libjpeg-turbo through FFCV's binding
    drop = (
        a.images - a.images % a.batch
    )  # the loaders drop the last partial batch: the bound decodes as many
    bounds = {
        "bound-tree": DecodeBound(tree_jpegs(tree)[:drop], a.workers),
        "bound-tree+crop": DecodeBound(tree_jpegs(tree)[:drop], a.workers, crop=a.resolution),
    }
    if "jpg" in betons:
        bounds["bound-beton"] = DecodeBound(beton_jpegs(betons["jpg"])[:drop], a.workers)
        bounds["bound-beton+crop"] = DecodeBound(
            beton_jpegs(betons["jpg"])[:drop], a.workers, crop=a.resolution
        )
    tv_loader = tv.train_dataloader()
    contenders = {
        "torchvision": lambda: _epoch(tv_loader, a.resolution),
        **{k: (lambda ld=ld: _epoch(ld, a.resolution)) for k, ld in loaders.items()},
        **bounds,
    }

    warmup_s = {}
    for name, fn in contenders.items():  # warm-up: FFCV compiles its pipeline, the page cache fills
        warmup_s[name] = fn()[1]
    rates: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(a.epochs):  # interleaved: torchvision, ffcv-*, bound-* , torchvision, ...
        for name, fn in contenders.items():
            n, dt = fn()
            rates[name].append(n / dt)
    med = {k: median(v) for k, v in rates.items()}
    tv_rate, tree_bound = med["torchvision"], med["bound-tree"]
    beton_bound = med.get("bound-beton")
    rows = []
    print(
        f"train loader, {a.images} natural-image JPEGs (q{a.jpeg_quality}), crop {a.resolution} "
        f"px, batch {a.batch}, "
        f"{a.workers} workers, median of {a.epochs} interleaved epochs after a warm-up epoch"
    )
    print(
        f"  {'loader':24s} {'images/s':>9s}  {'vs tv':>6s}  {'vs bound':>8s}  {'train set MB':>12s}"
    )
    print(
        f"  {'torchvision ImageFolder':24s} {tv_rate:9.1f}  {1.0:6.2f}  "
        f"{tv_rate / tree_bound:8.2f}  {tree_mb:12.0f}"
    )
    for storage in storages:
        r = med[f"ffcv-{storage}"]
        # FFCV jpg decodes the .beton's own JPEGs (re-encoded by the writer): its bound is theirs
        bound = beton_bound if storage == "jpg" else tree_bound
        rows.append(
            {
                "storage": storage,
                "images_per_s": r,
                "ratio": r / tv_rate,
                "raw_images_per_s": rates[f"ffcv-{storage}"],
                "fraction_of_bound": r / bound,
                "beton_mb": beton_mb[storage],
                "write_s": write_s.get(storage),
                "warmup_epoch_s": warmup_s[f"ffcv-{storage}"],
            }
        )
        print(
            f"  {'ffcv ' + storage:24s} {r:9.1f}  {r / tv_rate:6.2f}  {r / bound:8.2f}  "
            f"{beton_mb[storage]:12.0f}"
        )
    bound_rows = {
        k: {
            "images_per_s": med[k],
            "raw_images_per_s": rates[k],
            "threads": a.workers,
            "images": len(fn.jpegs),
            "crop": fn.crop,
        }
        for k, fn in bounds.items()
    }
    for k, b in bound_rows.items():
        print(
            f"  {k:24s} {b['images_per_s']:9.1f}  {b['images_per_s'] / tv_rate:6.2f}  "
            f"{'(decode only)' if not b['crop'] else '(+ crop/resize)':>8s}"
        )
    rss = peak_rss_mb()
    print(f"  peak RSS of the main process {rss:.0f} MB")
    path = write_result(
        "data",
        vars(a),
        {
            "rows": rows,
            "torchvision_images_per_s": tv_rate,
            "torchvision_raw_images_per_s": rates["torchvision"],
            "torchvision_fraction_of_bound": tv_rate / tree_bound,
            "bounds": bound_rows,
            "images": "natural",
            "tree_version": TREE_VERSION,
            "torchvision_warmup_epoch_s": warmup_s["torchvision"],
            "tree_mb": tree_mb,
            "peak_rss_mb": rss,
        },
        argv,
        a.results_dir,
    )
    print(f"wrote {path}")
    return 0
