"""The recipe augmentations (data.color_jitter, pca_lighting, scale_jitter, pad_mode, auto_augment):
their statistics, and FFCV and torchvision drawing the same numbers for the same sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import datamodules.seeded as seeded
from datamodules.augment_ops import PCA_EIGVAL, PCA_EIGVEC, kernels
from datamodules.options import DataOptions
from datamodules.seeded import STREAM_COLOR, STREAM_SCALE, Clock, sample_seed_py

GREY = 128


def _grey(n=4):
    return np.full((n, n, 3), GREY, dtype=np.uint8)


def test_colour_jitter_factors_are_uniform_in_1_plus_minus_s():
    """On a grey image contrast and saturation are identities, so the output is the brightness
    factor 1 + U(-0.4, 0.4) times the grey (fb.resnet.torch ColorJitter, brightness=0.4)."""
    color = kernels()["color"]
    f = np.array([color(_grey(), s, 0.4, 0.0)[0, 0, 0] / GREY for s in range(3000)])
    assert f.min() >= 0.6 - 1 / GREY and f.max() <= 1.4 + 1 / GREY
    assert f.min() < 0.62 and f.max() > 1.38
    assert abs(f.mean() - 1) < 0.015 and abs(f.std() - 0.4 / np.sqrt(3)) < 0.01


def test_colour_jitter_contrast_and_saturation_blend_as_fb_resnet_torch():
    """A two-pixel image, one op at a time (the others with factor exactly 1 are identities)."""
    img = np.array([[[200, 100, 50], [20, 40, 60]]], dtype=np.uint8)
    f = img.astype(np.float64) / 255
    grey = f @ np.array([0.299, 0.587, 0.114])
    outs = {tuple(kernels()["color"](img.copy(), s, 0.4, 0.0).ravel()) for s in range(200)}
    assert len(outs) > 150  # every seed its own draw
    # the output is a blend of brightness, contrast and saturation of the input: its mean grey
    # scales only through brightness and contrast ... check the saturation axis directly instead:
    a = 1.3
    sat = f * a + (1 - a) * grey[..., None]
    con = f * a + (1 - a) * grey.mean()
    assert not np.allclose(sat, con)  # the two references differ, so the kernel choice matters
    ref = {"saturation": sat, "contrast": con}
    got = _one_op_outputs(img, a)
    for op, want in ref.items():
        np.testing.assert_array_equal(got[op], np.clip(np.round(want * 255), 0, 255))


def _one_op_outputs(img, a):
    """Run ``augment_ops.color_apply``'s blend with one op forced (pure-Python twin of the kernel)."""
    from datamodules import augment_ops

    out = {}
    for name, op in (("contrast", 1), ("saturation", 2)):
        f = img.astype(np.float32) / np.float32(255)
        grey = f[:, :, 0] * augment_ops.GREY[0] + f[:, :, 1] * augment_ops.GREY[1]
        grey = grey + f[:, :, 2] * augment_ops.GREY[2]
        base = np.float32(grey.sum() / grey.size) if op == 1 else grey
        f = f * np.float32(a) + (1 - np.float32(a)) * (base if op == 1 else base[..., None])
        out[name] = np.clip(np.round(f * 255), 0, 255)
    return out


def test_pca_lighting_noise_has_the_alexnet_covariance():
    """Shift = V (alpha * lambda), alpha ~ N(0, 0.1): covariance 0.01 V diag(lambda^2) V^T."""
    color = kernels()["color"]
    n = 4000
    shifts = np.array([color(_grey(2), s, 0.0, 0.1)[0, 0].astype(float) - GREY for s in range(n)])
    want = 0.01 * PCA_EIGVEC @ np.diag(PCA_EIGVAL**2) @ PCA_EIGVEC.T * 255**2
    want += np.eye(3) / 12  # rounding to grey levels
    got = np.cov(shifts.T)
    np.testing.assert_allclose(np.sqrt(np.diag(got)), np.sqrt(np.diag(want)), rtol=0.06)
    assert np.corrcoef(shifts.T)[0, 2] > 0.9  # along the first eigenvector: R, G, B move together
    assert abs(shifts.mean()) < 0.2


def test_scale_jitter_draws_s_uniform_in_the_range():
    crop = kernels()["seeded_scale_crop"]
    h, w, res = 300, 400, 224
    draws = np.array([crop(s, h, w, 256, 480, res) for s in range(4000)])
    i, j, side = draws.T
    s = res * min(h, w) / side  # the shorter side the crop corresponds to
    assert side.min() >= round(res * 300 / 480) and side.max() <= round(res * 300 / 256)
    assert s.min() < 262 and s.max() > 470 and abs(s.mean() - 368) < 4
    assert (i >= 0).all() and (i + side <= h).all() and (j + side <= w).all()
    assert abs(i.mean() / (h - side).mean() - 0.5) < 0.05  # position uniform


def test_defaults_are_off_and_autoaugment_is_refused_on_ffcv():
    from datamodules.ffcv import train_image_pipeline
    from datamodules.imagefolder import train_transform
    from datamodules.seeded_ffcv import SeededColor, SeededFlip, SeededRandomResizedCrop

    assert [type(op) for op in train_image_pipeline("natural", 224)] == [
        SeededRandomResizedCrop,
        SeededFlip,
    ]
    with pytest.raises(Exception, match="data.auto_augment=true works only with data.backend"):
        train_image_pipeline("natural", 224, options=DataOptions(auto_augment=True))
    from torchvision import transforms as T

    ops = train_transform("natural", 224, DataOptions(auto_augment=True)).transforms
    assert any(isinstance(op, T.AutoAugment) for op in ops)
    assert not any(isinstance(op, SeededColor) for op in train_image_pipeline("digits", 32))
    with pytest.raises(ValueError, match="scale_jitter"):
        train_image_pipeline("digits", 32, options=DataOptions(scale_jitter=(33, 64)))


# --------------------------------------------------------------------------- through FFCV
def _images(path, ops, n=24):
    """{index: HWC uint8} of the first ``n`` training images through ``ops`` (epoch 0)."""
    from ffcv.loader import OrderOption
    from ffcv.transforms import ToTensor

    from datamodules.ffcv import guarded_loader_class

    loader = guarded_loader_class()(
        str(path),
        batch_size=8,
        num_workers=1,
        order=OrderOption.SEQUENTIAL,
        indices=list(range(n)),
        pipelines={"image": [*ops, ToTensor()], "label": None},
    )
    loader.clock = ops[-1].clock if hasattr(ops[-1], "clock") else None
    return dict(enumerate(np.concatenate([x.numpy().copy() for (x,) in loader])))


@pytest.fixture(scope="module")
def raw(digits_cache):
    from ffcv.fields.decoders import CenterCropRGBImageDecoder

    path = next(digits_cache.glob("*/train.beton"))
    return path, _images(path, [CenterCropRGBImageDecoder((32, 32), ratio=1.0)])


def _in_dataset(i, fn, seed):
    """``fn`` run as SeededDataset runs a torchvision transform for sample i (epoch 0)."""
    seeded._CURRENT = (seed, 0, i)
    try:
        return fn()
    finally:
        seeded._CURRENT = None


def test_ffcv_and_torchvision_colour_agree_sample_by_sample(raw):
    from ffcv.fields.decoders import CenterCropRGBImageDecoder

    from datamodules.imagefolder import ColorLighting
    from datamodules.seeded_ffcv import SeededColor

    path, plain = raw
    clock = Clock(5)
    ops = [CenterCropRGBImageDecoder((32, 32), ratio=1.0), SeededColor(clock, 0.4, 0.1)]
    jittered = _images(path, ops)
    tv = ColorLighting(0.4, 0.1)
    for i, img in plain.items():
        want = np.asarray(_in_dataset(i, lambda img=img: tv(Image.fromarray(img)), 5))
        np.testing.assert_array_equal(jittered[i], want)
        seed = sample_seed_py(5 + STREAM_COLOR, 0, i)
        np.testing.assert_array_equal(jittered[i], kernels()["color"](img.copy(), seed, 0.4, 0.1))
    assert sum(np.array_equal(jittered[i], plain[i]) for i in plain) == 0


def test_reflect_padding_mirrors_the_border(raw):
    from ffcv.fields.decoders import CenterCropRGBImageDecoder

    from datamodules.seeded_ffcv import SeededTranslate

    path, plain = raw
    ops = [
        CenterCropRGBImageDecoder((32, 32), ratio=1.0),
        SeededTranslate(Clock(1), 4, reflect=True),
    ]
    moved = _images(path, ops)
    shifts = set()
    for i, img in plain.items():
        padded = np.pad(img, ((4, 4), (4, 4), (0, 0)), mode="reflect")
        hits = [
            (y, x)
            for y in range(9)
            for x in range(9)
            if np.array_equal(padded[y : y + 32, x : x + 32], moved[i])
        ]
        assert hits, f"sample {i} is no reflect-padded crop"
        shifts.add(hits[0])
    assert len(shifts) > 5


def test_ffcv_scale_crop_is_the_drawn_crop_resized(raw):
    import cv2

    from datamodules.seeded_ffcv import SeededScaleCrop

    path, plain = raw
    out = _images(path, [SeededScaleCrop(Clock(3), (16, 16), 33, 64)])
    crop = kernels()["seeded_scale_crop"]
    sides = set()
    for i, img in plain.items():
        y, x, side = crop(sample_seed_py(3 + STREAM_SCALE, 0, i), 32, 32, 33, 64, 16)
        want = cv2.resize(img[y : y + side, x : x + side], (16, 16), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(out[i], want)
        sides.add(side)
    assert len(sides) > 3
    # the torchvision twin crops the same box (its resize is PIL's, so only the box is compared)
    from datamodules.imagefolder import ScaleJitterCrop

    boxes = []
    tv = ScaleJitterCrop(33, 64, 16)
    real = Image.Image.resize
    try:
        Image.Image.resize = lambda self, size, resample=None, box=None: boxes.append(box) or self
        _in_dataset(2, lambda: tv(Image.fromarray(plain[2])), 3)
    finally:
        Image.Image.resize = real
    y, x, side = crop(sample_seed_py(3 + STREAM_SCALE, 0, 2), 32, 32, 33, 64, 16)
    assert boxes == [(x, y, x + side, y + side)]


def test_torchvision_reflect_pad_mode():
    from torchvision import transforms as T

    from datamodules.imagefolder import train_transform

    ops = train_transform("digits", 32, DataOptions(pad_mode="reflect")).transforms
    assert [op.padding_mode for op in ops if isinstance(op, T.RandomCrop)] == ["reflect"]
    assert torch.is_tensor(train_transform("digits", 32)(Image.new("RGB", (40, 40))))
