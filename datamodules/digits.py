"""The embedded default dataset: scikit-learn's bundled handwritten digits through FFCV.

1,797 real 8x8 grey images of 10 classes (UCI optdigits test set, shipped inside
scikit-learn, so nothing is downloaded).  They are upscaled to ``resolution`` RGB,
split train/val with a fixed seed (stratified), and written once through the same
``.beton`` writer an ImageNet run uses; later runs reuse the files.  It is the ImageNet
path in miniature, not a separate toy path.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .beton import (
    ArrayDataset,
    cache_is_current,
    file_digest,
    now_iso,
    write_beton,
    write_json_atomic,
)
from .ffcv import FFCVDataModule
from .options import DataOptions, data_options

log = logging.getLogger(__name__)
DIGIT_CLASSES = [str(i) for i in range(10)]
FORMAT_VERSION = 1  # bump when the preprocessing below changes, so caches are rewritten


def digits_arrays(resolution: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """All digits as ``(N, resolution, resolution, 3)`` uint8 images and ``(N,)`` labels."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[
        :, None
    ]  # (N, 1, 8, 8), ink in [0, 1]
    images = F.interpolate(
        images, size=(resolution, resolution), mode="bilinear", align_corners=False
    )
    images = (
        (images.clamp(0, 1) * 255).round().to(torch.uint8).repeat(1, 3, 1, 1).permute(0, 2, 3, 1)
    )
    return np.ascontiguousarray(images.numpy()), bunch.target.astype(np.int64)


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): ``val_fraction`` of each class held out, chosen with ``seed``."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(len(idx) * val_fraction))
        val.append(idx[:k]), train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def write_digits(
    directory: str | Path, resolution: int = 32, val_fraction: float = 0.2, seed: int = 0
) -> Path:
    """Write ``train.beton``, ``val.beton`` and ``meta.json`` into ``directory`` (atomically)."""
    directory = Path(directory)
    images, labels = digits_arrays(resolution)
    train_idx, val_idx = stratified_split(labels, val_fraction, seed)
    for split, idx in (("train", train_idx), ("val", val_idx)):
        write_beton(
            directory / f"{split}.beton", ArrayDataset(images[idx], labels[idx]), write_mode="raw"
        )
    pixels = images[train_idx].reshape(-1, 3) / 255.0
    write_json_atomic(
        directory / "meta.json",
        {
            "dataset": "digits",
            "format_version": FORMAT_VERSION,
            "source": "sklearn.datasets.load_digits",
            "classes": DIGIT_CLASSES,
            "num_classes": 10,
            "resolution": resolution,
            "counts": {"train": int(len(train_idx)), "val": int(len(val_idx))},
            "split": {"val_fraction": val_fraction, "seed": seed, "stratified": True},
            "mean": pixels.mean(0).round(6).tolist(),
            "std": pixels.std(0).round(6).tolist(),
            "writer": {"write_mode": "raw"},
            "created": now_iso(),
            "files": {
                s: {"path": f"{s}.beton", **file_digest(directory / f"{s}.beton")}
                for s in ("train", "val")
            },
        },
    )
    return directory


class DigitsDataModule(FFCVDataModule):
    """``data=digits``: the embedded default, written once under ``cache_dir``."""

    default_resolution, default_val_crop_ratio, default_augment = 32, 1.0, "digits"

    def __init__(
        self, options: DataOptions | None = None, *, augment: str | None = None, **changes: Any
    ) -> None:
        o = data_options(options, **changes)
        resolution = o.resolution or self.default_resolution
        self.directory = (
            Path(os.path.expanduser(o.cache_dir))
            / f"digits-r{resolution}-v{o.val_fraction:g}-s{o.split_seed}"
        )
        self.val_fraction, self.split_seed = o.val_fraction, o.split_seed
        super().__init__(
            self.directory / "train.beton",
            self.directory / "val.beton",
            o,
            augment=augment,
            num_classes=10,
        )

    def is_written(self) -> bool:
        return cache_is_current(self.directory, "digits", FORMAT_VERSION)

    def prepare_data(self) -> None:
        if not self.is_written():
            log.info("writing the digits .beton files to %s (once)", self.directory)
            write_digits(self.directory, self.resolution, self.val_fraction, self.split_seed)
