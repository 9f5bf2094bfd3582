"""Datamodule registry: ``create_datamodule(name, **options)``.

Imports nothing of ``platform`` or ``models`` (the dependency rule in DESIGN.md): the
platform turns its ``DataConfig`` into the keyword options below.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Callable

import lightning as L


from .base import check_shardable  # noqa: F401 (re-exported)
from .beton import BetonError, DataError, SampleError, check_beton  # noqa: F401 (the package's errors)


_REGISTRY: dict[str, Callable[..., L.LightningDataModule]] = {}


def register_datamodule(name: str):
    def deco(fn):
        _REGISTRY[name] = fn
        return fn
    return deco


def list_datamodules() -> list[str]:
    return sorted(_REGISTRY)


def create_datamodule(name: str, **options: Any) -> L.LightningDataModule:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise DataError(f"unknown dataset {name!r}{hint} (known: {', '.join(list_datamodules())})")
    return _REGISTRY[name](**options)


def _ffcv_options(o: dict) -> dict:
    keep = ("batch_size", "num_workers", "os_cache", "order", "seed", "channels_last", "sampler", "epoch_samples",
            "batches_ahead", "normalize_dtype")
    out = {k: o[k] for k in keep if o.get(k) is not None}
    if o.get("progressive"):
        out["progressive"] = True
    for k in ("val_resolution", "val_crop_ratio"):
        if o.get(k) is not None:
            out[k] = o[k]
    return out


@register_datamodule("digits")
def _digits(**o: Any) -> L.LightningDataModule:
    from .digits import DigitsDataModule

    return DigitsDataModule(cache_dir=o.get("cache_dir") or "~/.cache/cnn-platform",
                            resolution=o.get("resolution") or 32, val_fraction=o.get("val_fraction", 0.2),
                            split_seed=o.get("split_seed", 0), **_ffcv_options(o))


def _beton_pair(name: str, o: dict) -> L.LightningDataModule:
    from .ffcv import FFCVDataModule

    if not o.get("path"):
        raise DataError(f"data={name} needs data.path=DIR, a directory holding train.beton and val.beton "
                        "(write them with: python -m datamodules.write SRC DIR)")
    root = Path(o["path"]).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path={o['path']}: no such directory (expected train.beton and val.beton in it)")
    for split in ("train", "val"):
        try:
            check_beton(root / f"{split}.beton")
        except BetonError as e:
            raise DataError(str(e)) from None
    return FFCVDataModule(root / "train.beton", root / "val.beton", augment=o.get("augment") or "natural",
                          resolution=o.get("resolution") or 224, **_ffcv_options(o))


@register_datamodule("beton")
def _beton(**o: Any) -> L.LightningDataModule:
    """Any directory holding ``train.beton`` and ``val.beton`` (and optionally ``meta.json``)."""
    return _beton_pair("beton", o)


@register_datamodule("imagenet")
def _imagenet(**o: Any) -> L.LightningDataModule:
    """ImageNet (or any ImageNet-layout set): the FFCV pair ``python -m datamodules.write`` wrote,
    or with ``backend=torchvision`` the ImageFolder root itself (``train/<class>/*``, ``val/<class>/*``).
    Random-resized crop + flip at 224 for training, centre crop 224 of 256 for validation."""
    o = {**o, "val_crop_ratio": o.get("val_crop_ratio") or 224 / 256}
    if (o.get("backend") or "ffcv") == "ffcv":
        return _beton_pair("imagenet", o)
    from .imagefolder import ImageFolderDataModule

    if not o.get("path"):
        raise DataError("data=imagenet data.backend=torchvision needs data.path=DIR, the ImageFolder root "
                        "holding train/<class>/* and val/<class>/*")
    keep = ("batch_size", "num_workers", "seed", "channels_last", "sampler", "epoch_samples", "val_resolution",
            "val_crop_ratio", "normalize_dtype")
    return ImageFolderDataModule(o["path"], resolution=o.get("resolution") or 224,
                                 **{k: o[k] for k in keep if o.get(k) is not None})


def _cifar(name: str, o: dict) -> L.LightningDataModule:
    from .cifar import CifarDataModule

    if not o.get("path"):
        raise DataError(f"data={name} needs data.path=DIR holding the python CIFAR files "
                        "(cifar-10-batches-py/ or cifar-100-python/, as extracted from the official tarballs)")
    return CifarDataModule(o["path"], name=name, cache_dir=o.get("cache_dir") or "~/.cache/cnn-platform",
                           resolution=o.get("resolution") or 32, augment=o.get("augment") or "cifar",
                           **_ffcv_options(o))


@register_datamodule("cifar10")
def _cifar10(**o: Any) -> L.LightningDataModule:
    """CIFAR-10 from its python pickles, written once to .beton; He et al. §4.2 augmentation."""
    return _cifar("cifar10", o)


@register_datamodule("cifar100")
def _cifar100(**o: Any) -> L.LightningDataModule:
    """CIFAR-100 from its python pickles, written once to .beton; He et al. §4.2 augmentation."""
    return _cifar("cifar100", o)


@register_datamodule("fashion_mnist")
def _fashion_mnist(**o: Any) -> L.LightningDataModule:
    """Fashion-MNIST from its IDX files (Debian's dataset-fashion-mnist, or data.path), written once to
    .beton; 28 px, grey as RGB, pad-4 crop + flip (Zhong et al. 2017); the official test split validates."""
    from .fashion_mnist import FashionMNISTDataModule

    return FashionMNISTDataModule(o.get("path"), cache_dir=o.get("cache_dir") or "~/.cache/cnn-platform",
                                  val_split=o.get("val_split") or "test", val_fraction=o.get("val_fraction", 0.2),
                                  split_seed=o.get("split_seed", 0), train_subset=o.get("train_subset"),
                                  val_subset=o.get("val_subset"), augment=o.get("augment") or "fashion",
                                  resolution=o.get("resolution") or 28, **_ffcv_options(o))


@register_datamodule("synthetic")
def _synthetic(**o: Any) -> L.LightningDataModule:
    from .synthetic import SyntheticDataModule

    return SyntheticDataModule(size=o.get("synthetic_size", 512), num_classes=o.get("synthetic_classes", 10),
                               resolution=o.get("resolution") or 32, batch_size=o.get("batch_size", 64),
                               seed=o.get("seed", 0), sampler=o.get("sampler") or "random",
                               epoch_samples=o.get("epoch_samples"))
