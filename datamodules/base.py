"""What every datamodule shares: :class:`BaseDataModule`.

It owns the options (:class:`datamodules.options.DataOptions`) and the dataset's defaults, the
rank and world size (from the trainer), the per-device batch and its check, the training sampler
of the torch loaders, the exact validation shard and the normalisation on the device
(:class:`DeviceNormalize`).  FFCV (``ffcv.py``: ImageNet, any .beton, digits, CIFAR,
Fashion-MNIST), ImageFolder and synthetic supply only their datasets and loaders.

Samplers are ours (Lightning runs with ``use_distributed_sampler=False``): the training shard of
rank r is r::world of one seeded permutation per epoch, for any world size, so a DDP run's global
batch k is exactly the single-process batch k (the DDP equivalence test relies on it); validation
is r::world with no padding, so "validation saw exactly ``val_size`` examples" holds.
"""

from __future__ import annotations

from typing import Any, Sequence

import lightning as L
import torch

from .beton import DataError
from .normalize import DeviceNormalize
from .options import AUGMENTATIONS, SAMPLERS, DataOptions


def check_shardable(what: str, size: int, world_size: int, classes: int | None = None) -> None:
    """Refuse a validation set with fewer examples than ranks (a rank with none fails inside Lightning,
    the others in gloo) and a dataset of fewer than 2 classes (a classifier needs two)."""
    if size < world_size:
        raise DataError(
            f"{what}: {size} validation example(s) for {world_size} ranks; each rank needs "
            "at least one -- use fewer devices or a larger validation set"
        )
    if classes is not None and classes < 2:
        raise DataError(f"{what}: {classes} class(es); a classifier needs at least 2")


class BaseDataModule(L.LightningDataModule):
    """Options, rank/world, the per-device batch, samplers, the validation shard, normalisation.

    A subclass sets the dataset's defaults as class attributes (``default_resolution``,
    ``default_val_crop_ratio``, ``default_augment``, ``augmentations``) and supplies its loaders.
    ``mean``/``std`` (in [0, 1] units) may be left ``None`` until ``setup`` knows them.
    """

    default_resolution: int = 224
    default_val_crop_ratio: float = 224 / 256  # ImageNet's centre crop 224 of 256
    default_augment: str = "natural"
    augmentations: tuple[str, ...] = AUGMENTATIONS
    normalize_on_device: bool = True  # synthetic data is already standardised

    def __init__(
        self,
        options: DataOptions,
        *,
        augment: str | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        augment = augment or self.default_augment
        if augment not in self.augmentations:
            raise ValueError(
                f"unknown augmentation {augment!r}; expected one of {self.augmentations}"
            )
        if options.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {options.sampler!r}; expected random or class_aware")
        o = self.options = options
        self.augment = augment
        self.batch_size, self.num_workers, self.seed = o.batch_size, o.num_workers, o.seed
        self.resolution = o.resolution or self.default_resolution
        self.val_resolution = o.val_resolution or self.resolution
        self.val_crop_ratio = o.val_crop_ratio or self.default_val_crop_ratio
        self.sampler, self.epoch_samples = o.sampler, o.epoch_samples
        self.channels_last, self.normalize_dtype = o.channels_last, o.normalize_dtype
        self.mean = tuple(mean) if mean is not None else None
        self.std = tuple(std) if std is not None else None
        self._normalize: DeviceNormalize | None = None

    # ------------------------------------------------------------------ rank and world
    @property
    def world_size(self) -> int:
        return 1 if self.trainer is None else self.trainer.world_size

    @property
    def global_rank(self) -> int:
        return 0 if self.trainer is None else self.trainer.global_rank

    @property
    def device(self) -> torch.device:
        return torch.device("cpu") if self.trainer is None else self.trainer.strategy.root_device

    @property
    def epoch(self) -> int:
        """The trainer's current epoch (0 without one): a resumed run continues the same order."""
        return 0 if self.trainer is None else self.trainer.current_epoch

    def per_device_batch_size(self) -> int:
        world = self.world_size
        if self.batch_size % world:
            raise ValueError(
                f"data.batch_size={self.batch_size} is the global batch and must divide evenly "
                f"across {world} ranks; choose a multiple of {world}"
            )
        return self.batch_size // world

    # ------------------------------------------------------------------ torch samplers
    def train_sampler_for(self, dataset: Any, labels: Any) -> torch.utils.data.Sampler:
        """This rank's training sampler over ``dataset`` (``labels``: its targets, for the class-aware
        sampler, Shen et al. 2016), positioned at the trainer's current epoch."""
        from torch.utils.data import DistributedSampler

        rank, world = self.global_rank, self.world_size
        if self.sampler == "class_aware":
            from .sampling import ClassAwareSampler

            sampler = ClassAwareSampler(labels, self.epoch_samples, self.seed, rank, world)
        else:
            sampler = DistributedSampler(
                dataset, world, rank, shuffle=True, seed=self.seed, drop_last=True
            )
        sampler.set_epoch(self.epoch)
        return sampler

    def val_shard(self, dataset: Any) -> torch.utils.data.Subset:
        """This rank's validation examples: ``rank::world``, no padding (ranks may differ by one)."""
        return torch.utils.data.Subset(
            dataset, range(self.global_rank, len(dataset), self.world_size)
        )

    # ------------------------------------------------------------------ on the device
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if not self.normalize_on_device:
            return batch
        if self._normalize is None:
            self._normalize = DeviceNormalize(
                self.mean, self.std, channels_last=self.channels_last, dtype=self.normalize_dtype
            )
        return self._normalize(
            *batch
        )  # fresh tensors: FFCV overwrites its buffers with the next batch
