"""The recipe augmentations beyond crop and flip, as numba kernels both image paths call.

* **Colour jitter** (``data.color_jitter``): fb.resnet.torch ``datasets/transforms.lua``
  ``ColorJitter{brightness, contrast, saturation}`` -- brightness, contrast and saturation, each a
  blend with factor ``1 + U(-s, s)`` (``blend(img, zeros|mean grey|grey)``), applied in a random
  order (``RandomOrder``, ``torch.randperm``); the grey is ``0.299 R + 0.587 G + 0.114 B``.
  ``datasets/imagenet.lua`` uses s = 0.4.
* **PCA lighting** (``data.pca_lighting``): AlexNet (Krizhevsky et al. 2012 §4.1) as
  fb.resnet.torch's ``Lighting(0.1, pca.eigval, pca.eigvec)``: add ``eigvec @ (alpha * eigval)`` to
  every pixel, ``alpha ~ N(0, std)`` per image, in [0, 1] units, with fb.resnet.torch's ImageNet
  eigenvalues/vectors.
* **Scale augmentation** (``data.scale_jitter``): He et al. 2015 §3.4: the shorter side resized to
  S ~ U{smin..smax} ([256, 480]), then a random ``resolution`` square crop -- drawn here as the
  equivalent crop of side ``resolution * min(h, w) / S`` in the source image, then resized.

Each image is uint8 HWC; the colour arithmetic runs in float32 on [0, 1] values and is rounded and
clipped back to uint8 (fb.resnet.torch keeps floats and does not clip: a deviation of at most half
a grey level, and none inside [0, 1]).  Every draw comes from numba's ``np.random`` seeded by the
caller with the sample's seed for its stream (``seeded.py``), so the FFCV op and the torchvision
transform draw the same numbers for the same (seed, epoch, index).
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

# fb.resnet.torch datasets/imagenet.lua ``pca``: eigenvalues and eigenvectors (columns) of the
# ImageNet RGB covariance, [0, 1] units.
PCA_EIGVAL = np.array([0.2175, 0.0188, 0.0045], dtype=np.float32)
PCA_EIGVEC = np.array(
    [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]],
    dtype=np.float32,
)
GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # fb.resnet.torch ``grayscale``


def color_apply(img, seed, jitter, lighting):
    """Colour jitter then PCA lighting on ``img`` (uint8 HWC, in place), ``np.random`` seeded by
    ``seed`` (the sample's colour-stream seed)."""
    np.random.seed(seed)
    order = np.random.permutation(3)  # RandomOrder
    factors = np.empty(3, dtype=np.float32)  # brightness, contrast, saturation
    for k in range(3):
        factors[k] = 1.0 + np.random.uniform(-jitter, jitter)
    alphas = np.zeros(3, dtype=np.float32)
    for k in range(3):
        alphas[k] = np.random.normal(0.0, lighting) if lighting > 0 else 0.0
    h, w, _ = img.shape
    f = img.astype(np.float32) / np.float32(255.0)
    if jitter > 0:
        for k in range(3):
            op, a = order[k], factors[order[k]]
            grey = f[:, :, 0] * GREY[0] + f[:, :, 1] * GREY[1] + f[:, :, 2] * GREY[2]
            if op == 1:  # contrast: blend with the mean grey
                m = np.float32(grey.sum() / (h * w))
                for c in range(3):
                    f[:, :, c] = f[:, :, c] * a + (1 - a) * m
            elif op == 2:  # saturation: blend with the pixel's grey
                for c in range(3):
                    f[:, :, c] = f[:, :, c] * a + (1 - a) * grey
            else:  # brightness: blend with black
                f *= a
    if lighting > 0:
        for c in range(3):
            shift = np.float32(0.0)
            for j in range(3):
                shift += PCA_EIGVEC[c, j] * alphas[j] * PCA_EIGVAL[j]
            f[:, :, c] += shift
    out = np.empty_like(f)
    np.round(f * np.float32(255.0), 0, out)
    img[:] = np.minimum(np.maximum(out, 0), 255).astype(np.uint8)
    return img


def scale_crop(height, width, smin, smax, resolution):
    """He et al. §3.4 as a crop of the source: S ~ U{smin..smax}; the square of side
    ``resolution * min(h, w) / S`` (the ``resolution`` crop after resizing the shorter side to S)
    at a uniform position.  Returns (i, j, side)."""
    s = np.random.randint(smin, smax + 1)
    short = min(height, width)
    side = min(short, max(1, int(round(resolution * short / s))))
    i = np.random.randint(0, height - side + 1)
    j = np.random.randint(0, width - side + 1)
    return i, j, side


@functools.cache
def kernels() -> dict[str, Callable]:
    """The compiled kernels (numba, on first use): ``color``, ``scale_crop`` and
    ``seeded_scale_crop`` (seeds numba's generator first: for the torchvision path)."""
    from numba import njit

    crop = njit(nogil=True)(scale_crop)

    @njit(nogil=True)
    def seeded_scale_crop(seed, height, width, smin, smax, resolution):
        np.random.seed(seed)  # numba's generator: the numbers the FFCV op draws for this seed
        return crop(height, width, smin, smax, resolution)

    color = njit(nogil=True)(color_apply)
    return {"color": color, "scale_crop": crop, "seeded_scale_crop": seeded_scale_crop}
