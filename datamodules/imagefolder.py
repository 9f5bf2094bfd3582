"""torchvision ``ImageFolder`` datamodule: the fallback path where FFCV is absent.

Same contract as :class:`datamodules.ffcv.FFCVDataModule`:

* ``root/train/<class>/*.jpg`` and ``root/val/<class>/*.jpg``; classes are the sub-directory
  names of ``root/train`` (sorted), and ``root/val`` is labelled with the *training* class
  indices (a class missing from ``val`` cannot shift the labels of the others).
* The same augmentations as the FFCV pipelines (:func:`train_transform`, :func:`val_transform`),
  producing **uint8** tensors on the CPU (``PILToTensor``): normalisation to float happens on
  the device in :meth:`on_after_batch_transfer` through :class:`DeviceNormalize` -- 4x less
  host-to-device traffic, and the same numbers as the FFCV path.
* ``batch_size`` is global; each of ``world_size`` ranks loads ``batch_size // world_size``.
* It shards itself (the Trainer runs with ``use_distributed_sampler=False``): training through
  ``DistributedSampler(drop_last=True)`` -- or :class:`datamodules.sampling.ClassAwareSampler`
  with ``sampler='class_aware'`` -- and validation through an exact ``rank::world`` subset with
  no padding, so the platform's "validation saw exactly ``val_size`` examples" check holds.

Imports nothing of ``platform/`` or ``models/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader, Subset
from torchvision.datasets import ImageFolder

from .base import BaseDataModule, check_shardable
from .beton import DataError, SampleError
from .options import (
    AUGMENTATIONS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataOptions,
    check_augment_options,
    data_options,
)
from .seeded import STREAM_COLOR, STREAM_SCALE, EpochSampler, SeededDataset, current_seed

LAYOUT = (
    "expected the ImageFolder layout ROOT/train/<class>/<image> and ROOT/val/<class>/<image> "
    "(one sub-directory per class, the same class names in both)"
)


# --------------------------------------------------------------------------- transforms
def train_transform(augment: str, resolution: int, options: DataOptions | None = None):
    """The training transform of the FFCV pipeline ``train_image_pipeline(augment, resolution,
    options=options)``, in torchvision, ending in a uint8 ``(3, resolution, resolution)`` tensor.
    Colour jitter, PCA lighting and the scale crop call the FFCV ops' kernels with the same
    per-sample seeds (``augment_ops.py``); AutoAugment is torchvision's (ImageNet policy)."""
    from torchvision import transforms as T

    o = options or DataOptions()
    check_augment_options(o, augment)
    if augment == "natural" and o.scale_jitter:  # He et al. 2015 §3.4 scale augmentation
        ops = [ScaleJitterCrop(*o.scale_jitter, resolution), T.RandomHorizontalFlip()]
    elif augment == "natural":  # Inception-style crop + mirror (Szegedy et al. 2015; ResNet §3.4)
        ops = [T.RandomResizedCrop(resolution), T.RandomHorizontalFlip()]
    elif augment == "digits":  # small crops and shifts, never a mirror: a mirrored digit is another
        # ffcv's RandomTranslate(padding=p) pads by p and crops back at a random offset: RandomCrop(padding=p)
        pad = max(1, resolution // 16)
        ops = [
            T.RandomResizedCrop(resolution, scale=(0.7, 1.0), ratio=(0.9, 1.1)),
            T.RandomCrop(resolution, padding=pad, fill=0, padding_mode=o.pad_mode),
        ]
    elif augment == "none":  # ffcv CenterCropRGBImageDecoder(ratio=1): the central square, resized
        ops = [T.Resize(resolution), T.CenterCrop(resolution)]
    else:
        raise ValueError(f"unknown augmentation {augment!r}; expected one of {AUGMENTATIONS}")
    if o.auto_augment:  # after crop and flip, as torchvision's reference recipe
        ops.append(T.AutoAugment(T.AutoAugmentPolicy.IMAGENET))
    if o.color_jitter or o.pca_lighting:
        ops.append(ColorLighting(o.color_jitter, o.pca_lighting))
    return T.Compose([*ops, T.PILToTensor()])


class ScaleJitterCrop:
    """He et al. 2015 §3.4 on a PIL image: the crop ``augment_ops.scale_crop`` draws (the FFCV
    op's numbers for the same sample), resized to ``resolution`` (bilinear, antialiased)."""

    def __init__(self, smin: int, smax: int, resolution: int) -> None:
        self.smin, self.smax, self.resolution = int(smin), int(smax), int(resolution)

    def __call__(self, image):
        from PIL import Image

        from .augment_ops import kernels

        w, h = image.size
        seed = current_seed(STREAM_SCALE)
        crop = kernels()["seeded_scale_crop"]
        i, j, side = crop(seed, h, w, self.smin, self.smax, self.resolution)
        return image.resize((self.resolution,) * 2, Image.BILINEAR, box=(j, i, j + side, i + side))


class ColorLighting:
    """Colour jitter + PCA lighting on a PIL image through ``augment_ops.color_apply`` (the FFCV
    op's kernel), seeded with the sample's colour-stream seed."""

    def __init__(self, jitter: float, lighting: float) -> None:
        self.jitter, self.lighting = float(jitter), float(lighting)

    def __call__(self, image):
        import numpy as np
        from PIL import Image

        from .augment_ops import kernels

        pixels = np.array(image.convert("RGB"), dtype=np.uint8)  # HWC, a writable copy
        kernels()["color"](pixels, current_seed(STREAM_COLOR), self.jitter, self.lighting)
        return Image.fromarray(pixels)


class TrainTransform:
    """:func:`train_transform` whose resolution can change between epochs (progressive resizing),
    also inside persistent DataLoader workers: the resolution lives in a shared-memory tensor,
    which fork inherits and torch.multiprocessing passes to spawned workers by handle."""

    def __init__(self, augment: str, resolution: int, options: DataOptions | None = None) -> None:
        self.options = options
        self._ops = {resolution: train_transform(augment, resolution, options)}  # validates now
        self.augment = augment
        self._resolution = torch.tensor([resolution], dtype=torch.int64).share_memory_()

    @property
    def resolution(self) -> int:
        return int(self._resolution[0])

    def set_resolution(self, resolution: int) -> None:
        self._resolution[0] = int(resolution)

    def __call__(self, image):
        r = self.resolution
        if r not in self._ops:
            self._ops[r] = train_transform(self.augment, r, self.options)
        return self._ops[r](image)


def val_transform(val_resolution: int, val_crop_ratio: float = 224 / 256):
    """Validation: resize the shorter side to ``int(val_resolution / val_crop_ratio)``, take the
    central ``val_resolution`` square (the FFCV path's centre crop of ratio ``val_crop_ratio``)."""
    from torchvision import transforms as T

    if not 0 < val_crop_ratio <= 1:
        raise ValueError(f"val_crop_ratio must be in (0, 1], got {val_crop_ratio}")
    return T.Compose(
        [
            T.Resize(int(val_resolution / val_crop_ratio)),
            T.CenterCrop(val_resolution),
            T.PILToTensor(),
        ]
    )


# --------------------------------------------------------------------------- folders
def _class_dirs(directory: Path) -> list[str]:
    return sorted(
        e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith(".")
    )


class LabelledImageFolder(ImageFolder):
    """An ``ImageFolder`` whose labels are indices into a given class list (the training classes),
    not into its own directory listing; class directories absent here are simply skipped.
    Module-level so that it pickles (DataLoader workers under the spawn start method)."""

    def __init__(self, root: str | os.PathLike, classes: Sequence[str], transform=None) -> None:
        self.all_classes = list(classes)
        super().__init__(str(root), transform=transform, allow_empty=True)

    def find_classes(self, directory: str | os.PathLike) -> tuple[list[str], dict[str, int]]:
        index = {c: i for i, c in enumerate(self.all_classes)}
        present = [c for c in self.all_classes if (Path(directory) / c).is_dir()]
        return present, {c: index[c] for c in present}

    def make_dataset(
        self, directory, class_to_idx, extensions=None, is_valid_file=None, allow_empty=False
    ):
        """torchvision's samples and order, except that a directory link is followed at most once per
        real directory (``imagefolder_source.class_files``): a link cycle cannot repeat images."""
        from .imagefolder_source import LayoutError, class_files

        seen: set[tuple[int, int]] = set()
        try:
            return [
                (f, class_to_idx[c])
                for c in sorted(class_to_idx)
                for f in class_files(os.path.join(directory, c), seen=seen)
            ]
        except LayoutError as e:
            raise DataError(str(e)) from None

    def __getitem__(self, index: int):
        """ImageFolder's item; a decode or transform error names the file and the sample index."""
        try:
            return super().__getitem__(index)
        except Exception as e:
            raise SampleError(
                f"{self.samples[index][0]}: sample {index} of {self.root} failed to decode or "
                f"transform ({type(e).__name__}: {' '.join(str(e).split())}); remove or replace "
                "the file (python -m datamodules.write checks every image)"
            ) from None


def _image_folder(directory: Path, classes: list[str], transform) -> LabelledImageFolder:
    try:
        return LabelledImageFolder(directory, classes, transform)
    except (FileNotFoundError, RuntimeError) as e:
        raise DataError(f"{directory}: {e}; {LAYOUT}") from None


class ImageFolderDataModule(BaseDataModule):
    """Images + integer labels from ``root/train`` and ``root/val`` (torchvision ``ImageFolder``).

    Options as :class:`datamodules.ffcv.FFCVDataModule`'s (a :class:`DataOptions`, or its fields
    as keywords: ``batch_size`` global, ``resolution``, ``val_resolution``/``val_crop_ratio``,
    ``seed``, ``sampler``, ``channels_last``), plus ``augment`` and ``mean``/``std`` in [0, 1]
    units; ``epoch_samples`` is the class-aware sampler's draws per epoch (``None``: one per
    training image) and is ignored by ``sampler='random'``.  ``num_classes``/``classes`` come
    from the folder (no setup needed); ``train_size`` and ``val_size`` exist after :meth:`setup`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        options: DataOptions | None = None,
        *,
        augment: str | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        **changes: Any,
    ) -> None:
        super().__init__(data_options(options, **changes), augment=augment, mean=mean, std=std)
        if not 0 < self.val_crop_ratio <= 1:
            raise ValueError(f"val_crop_ratio must be in (0, 1], got {self.val_crop_ratio}")
        self.root = Path(root).expanduser()
        self._classes: list[str] | None = None
        self.train_set = self.val_set = None

    # ------------------------------------------------------------------ metadata
    @property
    def train_dir(self) -> Path:
        return self.root / "train"

    @property
    def val_dir(self) -> Path:
        return self.root / "val"

    def check_layout(self) -> None:
        """Raise ``DataError`` naming the missing directory and the expected layout."""
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such directory; {LAYOUT}")
        for d in (self.train_dir, self.val_dir):
            if not d.is_dir():
                raise DataError(f"{d}: no such directory; {LAYOUT}")
        if not _class_dirs(self.train_dir):
            raise DataError(f"{self.train_dir}: no class sub-directories; {LAYOUT}")
        unknown = sorted(set(_class_dirs(self.val_dir)) - set(_class_dirs(self.train_dir)))
        if unknown:
            raise DataError(
                f"{self.val_dir}: classes {unknown[:5]} are not in {self.train_dir}; {LAYOUT}"
            )

    @property
    def classes(self) -> list[str]:
        """The class names: the sub-directories of ``root/train``, sorted (index = label)."""
        if self._classes is None:
            self.check_layout()
            self._classes = _class_dirs(self.train_dir)
        return self._classes

    @property
    def num_classes(self) -> int:
        if len(self.classes) < 2:
            raise DataError(
                f"{self.train_dir}: {len(self.classes)} class directory; "
                "a classifier needs at least 2"
            )
        return len(self.classes)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        classes = self.classes  # checks the layout
        self.train_transform = TrainTransform(self.augment, self.resolution, self.options)
        self.train_set = _image_folder(self.train_dir, classes, self.train_transform)
        self.val_set = _image_folder(
            self.val_dir, classes, val_transform(self.val_resolution, self.val_crop_ratio)
        )
        for split, ds in (("train", self.train_set), ("val", self.val_set)):
            if len(ds) == 0:
                raise DataError(f"{self.root / split}: no images found; {LAYOUT}")
        self.train_size, self.val_size = len(self.train_set), len(self.val_set)
        check_shardable(str(self.val_dir), self.val_size, self.world_size)

    def set_train_resolution(self, resolution: int) -> None:
        """Progressive resizing: training batches from the next epoch on are ``resolution`` square
        (called by the platform's resolution callback before each epoch; workers see it too)."""
        self.resolution = int(resolution)
        if self.train_set is not None:
            self.train_transform.set_resolution(self.resolution)

    # ------------------------------------------------------------------ sharding
    def train_sampler(self):
        """This rank's training sampler, positioned at the trainer's current epoch."""
        self.setup()
        return self.train_sampler_for(self.train_set, self.train_set.targets)

    def val_subset(self) -> Subset:
        """This rank's validation examples: ``rank::world``, no padding (ranks may differ by one)."""
        self.setup()
        return self.val_shard(self.val_set)

    # ------------------------------------------------------------------ loaders
    def _loader_options(self) -> dict[str, Any]:
        cuda = self.device.type == "cuda" if self.trainer is not None else torch.cuda.is_available()
        return dict(
            batch_size=self.per_device_batch_size(),
            num_workers=self.num_workers,
            pin_memory=cuda,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        # Lightning calls sampler.set_epoch every epoch (any sampler with one, also with
        # use_distributed_sampler=False), so persistent workers still see each epoch's order.
        from .resume import (
            ResumableLoader,  # a mid-epoch (preemption) resume skips the batches already done
        )

        # each sample's transform draws from sample_seed(seed, epoch, index) (seeded.py), so the
        # worker count, the rank and a resume cannot change an image's augmentation
        sampler = self.train_sampler()  # sets the datasets up when Lightning has not
        dataset = SeededDataset(self.train_set, self.seed, self.epoch)
        sampler = EpochSampler(sampler, dataset)
        return ResumableLoader(
            DataLoader(dataset, sampler=sampler, drop_last=True, **self._loader_options()),
            self.trainer,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_subset(), shuffle=False, drop_last=False, **self._loader_options()
        )
