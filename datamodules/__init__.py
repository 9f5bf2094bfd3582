"""Datamodule registry: ``create_datamodule(name, options)``.

Imports nothing of ``platform`` or ``models`` (the dependency rule in docs/DESIGN.md): the platform
turns its ``DataConfig`` into one :class:`DataOptions` (``datamodule_options``), which the
registered builder below hands to the dataset's datamodule.  The datamodules share
:class:`datamodules.base.BaseDataModule`; the ``.beton`` library is :mod:`datamodules.beton`.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .beton import BetonError, DataError, check_beton
from .options import DataOptions, data_options

if TYPE_CHECKING:
    import lightning as L


_REGISTRY: dict[str, Callable[[DataOptions], "L.LightningDataModule"]] = {}


def register_datamodule(name: str):
    def deco(fn):
        _REGISTRY[name] = fn
        return fn

    return deco


def list_datamodules() -> list[str]:
    return sorted(_REGISTRY)


def create_datamodule(
    name: str, options: DataOptions | None = None, **changes: Any
) -> "L.LightningDataModule":
    """The datamodule of dataset ``name`` with ``options`` (default: :class:`DataOptions`'s
    defaults), changed by keyword ``changes`` (its field names)."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise DataError(f"unknown dataset {name!r}{hint} (known: {', '.join(list_datamodules())})")
    return _REGISTRY[name](data_options(options, **changes))


@register_datamodule("digits")
def _digits(o: DataOptions) -> "L.LightningDataModule":
    from .digits import DigitsDataModule

    return DigitsDataModule(o)


def _beton_pair(name: str, o: DataOptions) -> "L.LightningDataModule":
    from .ffcv import FFCVDataModule

    if not o.path:
        raise DataError(
            f"data={name} needs data.path=DIR, a directory holding train.beton and val.beton "
            "(write them with: python -m datamodules.write SRC DIR)"
        )
    root = Path(o.path).expanduser()
    if not root.is_dir():
        raise DataError(
            f"data.path={o.path}: no such directory (expected train.beton and val.beton in it)"
        )
    for split in ("train", "val"):
        try:
            check_beton(root / f"{split}.beton")
        except BetonError as e:
            raise DataError(str(e)) from None
    return FFCVDataModule(root / "train.beton", root / "val.beton", o)


@register_datamodule("beton")
def _beton(o: DataOptions) -> "L.LightningDataModule":
    """Any directory holding ``train.beton`` and ``val.beton`` (and optionally ``meta.json``)."""
    return _beton_pair("beton", o)


@register_datamodule("imagenet")
def _imagenet(o: DataOptions) -> "L.LightningDataModule":
    """ImageNet (or any ImageNet-layout set): the FFCV pair ``python -m datamodules.write`` wrote,
    or with ``backend=torchvision`` the ImageFolder root itself (``train/<class>/*``, ``val/<class>/*``).
    Random-resized crop + flip at 224 for training, centre crop 224 of 256 for validation (the
    datamodules' defaults)."""
    if o.backend == "ffcv":
        return _beton_pair("imagenet", o)
    from .imagefolder import ImageFolderDataModule

    if not o.path:
        raise DataError(
            "data=imagenet data.backend=torchvision needs data.path=DIR, the ImageFolder root "
            "holding train/<class>/* and val/<class>/*"
        )
    return ImageFolderDataModule(o.path, o)


def _cifar(name: str, o: DataOptions) -> "L.LightningDataModule":
    from .cifar import CifarDataModule

    if not o.path:
        raise DataError(
            f"data={name} needs data.path=DIR holding the python CIFAR files "
            "(cifar-10-batches-py/ or cifar-100-python/, as extracted from the official tarballs)"
        )
    return CifarDataModule(o.path, o, name=name)


@register_datamodule("cifar10")
def _cifar10(o: DataOptions) -> "L.LightningDataModule":
    """CIFAR-10 from its python pickles, written once to .beton; He et al. §4.2 augmentation."""
    return _cifar("cifar10", o)


@register_datamodule("cifar100")
def _cifar100(o: DataOptions) -> "L.LightningDataModule":
    """CIFAR-100 from its python pickles, written once to .beton; He et al. §4.2 augmentation."""
    return _cifar("cifar100", o)


@register_datamodule("fashion_mnist")
def _fashion_mnist(o: DataOptions) -> "L.LightningDataModule":
    """Fashion-MNIST from its IDX files (Debian's dataset-fashion-mnist, or data.path), written once to
    .beton; 28 px, grey as RGB, pad-4 crop + flip (Zhong et al. 2017); the official test split validates."""
    from .fashion_mnist import FashionMNISTDataModule

    return FashionMNISTDataModule(o.path, o)


@register_datamodule("synthetic")
def _synthetic(o: DataOptions) -> "L.LightningDataModule":
    from .synthetic import SyntheticDataModule

    return SyntheticDataModule(o)
