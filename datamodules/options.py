"""What every datamodule shares: the constants, and :class:`DataOptions`, the one option type.

Imports nothing of ours (nor torch), so that ``platform/run/config.py`` can state its defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

# ImageNet's per-channel mean/std in [0, 1] units (torchvision's and ffcv-imagenet's values); the
# default normalisation where a dataset's meta.json records none.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The training augmentations both image paths implement (FFCV: ``ffcv.train_image_pipeline``,
# torchvision: ``imagefolder.train_transform``); CIFAR and Fashion-MNIST add their own.
AUGMENTATIONS = ("natural", "digits", "none")
SAMPLERS = ("random", "class_aware")
# The other data choices the schema (platform/run/config.py) checks and the datamodules act on.
BACKENDS = ("ffcv", "torchvision")
ORDERS = ("auto", "random", "quasi_random")  # FFCV's traversal order
PAD_MODES = (
    "constant",
    "reflect",
)  # the pad of the pad-and-crop translations (WRN's release reflects)
JPEG_DECODES = ("full", "scaled")  # FFCV's full-size JPEG decode | jpeg_scaled.py's n/8 decode
VAL_SPLITS = (
    "test",
    "holdout",
)  # Fashion-MNIST: the official test split, or a held-out part of train

# Where the embedded datasets (digits, CIFAR, Fashion-MNIST) are written once as .beton.
CACHE_DIR = "~/.cache/cnn-platform"


@dataclass(frozen=True)
class DataOptions:
    """Every option a datamodule takes, each default stated once (here).

    The platform builds one from its config (``platform/run/compose.py`` ``datamodule_options``:
    ``DataConfig`` plus the run's seed, ``trainer.channels_last`` and the autocast dtype);
    ``create_datamodule(name, options)`` hands it to the dataset's datamodule.  ``None`` in
    ``resolution``/``val_crop_ratio`` means the dataset's own default (a class attribute of its
    datamodule: digits 32, CIFAR 32, Fashion-MNIST 28, ImageNet 224); ``val_resolution=None`` means
    ``resolution``.  ``batch_size`` is the global batch (split evenly across the ranks); its
    default, 64, is what ``python -m platform.train`` has always used (``data.batch_size``).
    """

    path: str | None = None  # beton/imagenet/cifar: the dataset directory; fashion_mnist: IDX files
    backend: str = "ffcv"  # imagenet: ffcv (.beton) | torchvision (ImageFolder)
    cache_dir: str = CACHE_DIR
    batch_size: int = 64
    num_workers: int = 2
    resolution: int | None = None
    val_resolution: int | None = None
    val_crop_ratio: float | None = None
    os_cache: bool = True
    order: str = "auto"
    seed: int = 0
    split_seed: int = 0
    val_fraction: float = 0.2
    val_split: str = "test"
    train_subset: int | None = None
    val_subset: int | None = None
    synthetic_size: int = 512
    synthetic_classes: int = 10
    channels_last: bool = False
    sampler: str = "random"
    epoch_samples: int | None = None
    batches_ahead: int = 3
    progressive: bool = False  # FFCV recompiles its pipeline each epoch (progressive resizing)
    normalize_dtype: str | None = (
        None  # bf16/fp16: DeviceNormalize's output on CUDA (None: float32)
    )
    # Recipe augmentations (augment_ops.py), off by default; both image paths draw them per sample.
    color_jitter: float = 0.0  # fb.resnet.torch ColorJitter: brightness=contrast=saturation=this
    pca_lighting: float = 0.0  # AlexNet PCA lighting noise std (fb.resnet.torch: 0.1)
    scale_jitter: tuple[int, int] | None = None  # He et al. 2015 §3.4: shorter side S in [a, b]
    pad_mode: str = "constant"  # constant | reflect: the pad of the pad-and-crop translation
    auto_augment: bool = False  # AutoAugment ImageNet policy (torchvision backend only)
    # FFCV: full | scaled (jpeg_scaled.py).  full by default: scaled measured 1.06-1.19x at crop 160,
    # 1.0x at 224 and for validation (benchmarks/RESULTS.md), and full keeps seeded runs' pixels.
    jpeg_decode: str = "full"

    def with_(self, **changes: Any) -> "DataOptions":
        """A copy with ``changes`` (keyword names as the fields); an unknown name is a TypeError."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(
                f"unknown data option(s) {unknown}; known: {[f.name for f in fields(self)]}"
            )
        return replace(self, **changes) if changes else self


def check_augment_options(o: DataOptions, augment: str) -> None:
    """Refuse recipe-augmentation values no pipeline can apply, naming the key."""
    if o.pad_mode not in PAD_MODES:
        raise ValueError(f"data.pad_mode={o.pad_mode!r}; expected one of {PAD_MODES}")
    if o.color_jitter < 0 or o.pca_lighting < 0:
        raise ValueError("data.color_jitter and data.pca_lighting must be >= 0")
    if o.scale_jitter is not None:
        lo, hi = (int(v) for v in o.scale_jitter)
        if not 1 <= lo <= hi or len(o.scale_jitter) != 2:
            raise ValueError(
                f"data.scale_jitter={list(o.scale_jitter)}; expected [smin, smax], 1 <= smin <= smax"
            )
        if augment != "natural":
            raise ValueError(
                f"data.scale_jitter replaces the random-resized crop of augment=natural, not {augment!r}"
            )


def data_options(options: DataOptions | None = None, **changes: Any) -> DataOptions:
    """``options`` (default: all defaults) with keyword ``changes``: how the datamodules' constructors
    accept both a :class:`DataOptions` and the keyword options tests and benchmarks pass."""
    return (options or DataOptions()).with_(**changes)
