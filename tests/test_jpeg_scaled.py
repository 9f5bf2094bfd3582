"""data.jpeg_decode=scaled (datamodules/jpeg_scaled.py): the stock crops, PSNR >= 30 dB against the
full decode at every n/8, fallbacks, determinism, the datamodule and 2-rank DDP (issue 28)."""

import functools
import io
import os

import numpy as np
import pytest
import torch

pytest.importorskip("ffcv")

from benchmarks.data_loading import natural_image, random_resized_crop, sample_photos  # noqa: E402
from datamodules.jpeg_scaled import (  # noqa: E402
    FALLBACK,
    FULL,
    KINDS,
    SLOTS,
    kernels,
    scaled_box,
    scaling_numerators,
)


def _photo(h, w, k=0):
    from PIL import Image

    photo = sample_photos()[k % 2]  # scikit-learn's china.jpg / flower.jpg
    return np.asarray(Image.fromarray(photo).resize((w, h), Image.BICUBIC))


def _natural(n, seed=0):
    """``n`` of the data benchmark's natural images (333-500 px, ImageNet-like)."""
    photos, rng = sample_photos(), np.random.default_rng(seed)
    return [natural_image(photos, rng) for _ in range(n)]


def _jpeg(img, **save) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90, **save)
    return np.frombuffer(buf.getvalue(), np.uint8).copy()


@functools.cache
def _decode_crop():
    """One compiled ``decode_crop`` for the direct calls (all of one signature: see ``kernels``)."""
    return kernels()["decode_crop"]


def _decode(data, h, w, box, out, nums):
    """(image, counts) of one ``decode_crop`` call; ``nums`` empty: FFCV's full decode."""
    state = np.zeros((SLOTS, KINDS), np.int64)
    dst = np.zeros((out, out, 3), np.uint8)
    temp = np.zeros(3 * h * w, np.uint8)
    nums = np.asarray(nums, np.int64)
    _decode_crop()(data, True, temp, h, w, *box, dst, 0, state.ctypes.data, nums)
    return dst, state.sum(axis=0)


def psnr(a, b) -> float:
    """PSNR in dB; ``a``, ``b`` may be lists of images (pooled: the mean squared error of all)."""
    mse = np.mean([np.mean((x.astype(np.float64) - y) ** 2) for x, y in zip(a, b, strict=True)])
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def test_libjpeg_turbo_offers_every_eighth():
    assert scaling_numerators(None).tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert scaling_numerators().tolist() == [1, 2, 4]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7])
def test_psnr_against_full_decode_at_every_factor(n):
    """The n/8 decode + INTER_AREA differs from full decode + INTER_AREA by >= 30 dB (pooled) on the
    benchmark's natural images, random crops whose n/8-scaled side is 1-2x the output."""
    rng, ours, full = np.random.default_rng(n), [], []
    for img in _natural(8, seed=n):
        (h, w), data = img.shape[:2], _jpeg(img)
        i, j, ch, cw = random_resized_crop(h, w, rng, scale=(0.35, 1.0))
        out = max(4, int(min(ch, cw) * n / 8 / rng.uniform(1.0, 2.0)) - 1)
        ours_k, counts = _decode(data, h, w, (i, j, ch, cw), out, [n])
        full.append(_decode(data, h, w, (i, j, ch, cw), out, [])[0])
        ours.append(ours_k)
        assert counts[n - 1] == 1, counts
    assert psnr(ours, full) >= 30


def test_scaled_box_is_the_crop_in_scaled_pixels_and_stays_inside():
    assert scaled_box(0, 0, 400, 400, 400, 400, 4, 200, 200) == (0, 200, 0, 200, 200, 200)
    assert scaled_box(0, 0, 400, 400, 400, 400, 4, 201, 200)[1] == -1  # too small: not chosen
    for h, w in [(333, 377), (101, 99), (17, 500)]:  # crops at the bottom-right border
        for n in range(1, 8):
            y0, y1, x0, x1, sh, sw = scaled_box(h - 9, w - 9, 9, 9, h, w, n, 1, 1)
            assert y1 <= sh == (h * n + 7) // 8 and x1 <= sw == (w * n + 7) // 8


def test_crop_at_the_image_border():
    """Bottom-right crops stay inside the scaled image.  The crop's edges are rounded to whole
    scaled pixels (at 4/8 an odd offset moves them half a pixel): measured 27.6 dB here on a sharp
    photograph, 37.5 dB for the same crop at (0, 0) -- the rounding is most of the difference."""
    h, w = 333, 377
    data = _jpeg(_photo(h, w))
    for box, bound in [((h - 180, w - 170, 180, 170), 25), ((0, 0, 180, 170), 35)]:
        ours, counts = _decode(data, h, w, box, 64, [1, 2, 4])
        full, _ = _decode(data, h, w, box, 64, [])
        assert counts[3] == 1 and psnr([ours], [full]) >= bound  # 4/8: 2/8 gives 45 x 43 < 64


@pytest.mark.parametrize(
    "kind, make",
    [
        ("progressive", lambda img: _jpeg(img, progressive=True)),
        ("cmyk", lambda img: _jpeg(np.asarray(img))),  # replaced below: PIL writes CMYK JPEGs
    ],
)
def test_fallbacks_use_ffcvs_full_decode_and_are_counted(kind, make):
    from PIL import Image

    img = _photo(200, 240)
    if kind == "cmyk":
        buf = io.BytesIO()
        Image.fromarray(img).convert("CMYK").save(buf, format="JPEG", quality=90)
        data = np.frombuffer(buf.getvalue(), np.uint8).copy()
    else:
        data = make(img)
    ours, counts = _decode(data, 200, 240, (0, 0, 200, 240), 64, [1, 2, 4])
    full, _ = _decode(data, 200, 240, (0, 0, 200, 240), 64, [])
    assert counts[FALLBACK] == 1 and counts.sum() == 1
    assert np.array_equal(ours, full)  # the same call as the stock decoder


def test_greyscale_decodes_scaled_to_rgb():
    from PIL import Image

    grey = np.asarray(Image.fromarray(_photo(200, 240)).convert("L"))
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="JPEG", quality=90)
    data = np.frombuffer(buf.getvalue(), np.uint8).copy()
    ours, counts = _decode(data, 200, 240, (0, 0, 200, 240), 64, [1, 2, 4])
    full, _ = _decode(data, 200, 240, (0, 0, 200, 240), 64, [])
    assert counts[3] == 1 and psnr([ours], [full]) >= 30  # 4/8: 2/8 gives 50 x 60 < 64
    assert np.array_equal(ours[..., 0], ours[..., 1])  # grey replicated, as the full decode


def test_tiny_image_decodes_at_full_size_bit_identical():
    data = _jpeg(_photo(20, 24))
    ours, counts = _decode(data, 20, 24, (0, 0, 20, 24), 32, [1, 2, 4])
    full, _ = _decode(data, 20, 24, (0, 0, 20, 24), 32, [])
    assert counts[FULL] == 1 and np.array_equal(ours, full)


# --------------------------------------------------------------------------- through FFCV
class _Photos:
    """The benchmark's natural images, label = index (so DDP ranks name what they read)."""

    def __init__(self, n=48):
        self.images = _natural(n)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], i


@pytest.fixture(scope="module")
def betons(tmp_path_factory):
    from datamodules.beton import write_beton

    d = tmp_path_factory.mktemp("jpeg_scaled")
    for mode in ("jpg", "raw"):
        write_beton(d / f"{mode}-train.beton", _Photos(), write_mode=mode)
        write_beton(d / f"{mode}-val.beton", _Photos(16), write_mode=mode)
    return d


def _images(d, mode, decode, workers=1, resolution=64, train=True, seed=0):
    """{label: image} of one epoch of the real FFCVDataModule, and its decode stats."""
    from datamodules.ffcv import FFCVDataModule

    dm = FFCVDataModule(
        d / f"{mode}-train.beton",
        d / f"{mode}-val.beton",
        batch_size=8,
        num_workers=workers,
        resolution=resolution,
        val_resolution=resolution,
        val_crop_ratio=0.875,
        num_classes=48,
        seed=seed,
        augment="natural",
        jpeg_decode=decode,
    )
    dm.setup("fit")
    loader = dm.train_dataloader() if train else dm.val_dataloader()
    out = {}
    for x, y in loader:
        out.update(zip(y.tolist(), x.clone().numpy(), strict=True))
    return out, dm.decode_stats()


@pytest.mark.parametrize("train", [True, False])
def test_raw_samples_are_bit_identical_so_the_crops_are_the_stock_ones(betons, train):
    """Raw pixels: only the crop box and the resize act -- equal bytes mean equal crop parameters
    for the same seed (seeded RandomResizedCrop + flip; FFCV's centre crop)."""
    stock, none = _images(betons, "raw", "full", train=train)
    ours, stats = _images(betons, "raw", "scaled", train=train)
    assert none == {} and stats["raw"] == len(ours) and stats["fallback"] == 0
    assert stock.keys() == ours.keys() and all(np.array_equal(stock[k], ours[k]) for k in stock)


@pytest.mark.parametrize("train", [True, False])
def test_jpeg_beton_matches_full_decode_within_30_db(betons, train):
    stock, _ = _images(betons, "jpg", "full", train=train)
    ours, stats = _images(betons, "jpg", "scaled", train=train)
    assert sum(v for k, v in stats.items() if k.endswith("/8")) > 0, stats  # some scaled decodes
    assert stats["fallback"] == 0 and stats["raw"] == 0
    assert stock.keys() == ours.keys()
    assert psnr([ours[k] for k in ours], [stock[k] for k in ours]) >= 30


def test_same_seed_same_bytes_any_worker_count(betons):
    a, _ = _images(betons, "jpg", "scaled", workers=1)
    b, _ = _images(betons, "jpg", "scaled", workers=2)
    c, _ = _images(betons, "jpg", "scaled", workers=1, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def _rank_images(rank, world, d, port, out):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from datamodules.ffcv import FFCVDataModule

    class _Trainer:
        world_size, current_epoch = world, 0
        strategy = type("S", (), {"root_device": torch.device("cpu")})()

    dm = FFCVDataModule(
        d / "jpg-train.beton",
        d / "jpg-val.beton",
        batch_size=8,
        num_workers=1,
        resolution=64,
        num_classes=48,
        augment="natural",
        jpeg_decode="scaled",
    )
    dm.trainer = _Trainer()
    dm.setup("fit")
    seen = {
        y: x.clone()
        for xs, ys in dm.train_dataloader()
        for x, y in zip(xs, ys.tolist(), strict=True)
    }
    torch.save((seen, dm.decode_stats()), out / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_rank_ddp_reads_the_single_process_images(betons, tmp_path):
    """Each rank decodes its shard scaled; together they are exactly the one-process epoch."""
    import torch.multiprocessing as mp

    mp.spawn(_rank_images, args=(2, betons, 29531, tmp_path), nprocs=2, join=True)
    (r0, s0), (r1, s1) = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert not r0.keys() & r1.keys() and s0["fallback"] == s1["fallback"] == 0
    single, _ = _images(betons, "jpg", "scaled")
    assert {**r0, **r1}.keys() == single.keys()
    assert all(np.array_equal(v.numpy(), single[k]) for k, v in {**r0, **r1}.items())


def test_config_key_reaches_the_datamodule_options():
    from platform.run.compose import datamodule_options
    from platform.run.config import load_config

    assert datamodule_options(load_config([])).jpeg_decode == "full"  # the default (RESULTS.md)
    cfg = load_config(["data=beton", "data.jpeg_decode=scaled"])
    assert datamodule_options(cfg).jpeg_decode == "scaled"
