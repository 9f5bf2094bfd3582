"""``data=synthetic``: random tensors with a learnable class signal, no FFCV -- for fast unit tests."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from .base import BaseDataModule, check_shardable
from .options import DataOptions, data_options


class SyntheticDataModule(BaseDataModule):
    """``size`` training examples (``synthetic_size``) of ``num_classes`` (``synthetic_classes``)
    classes at ``resolution`` (default 32), and a ``val_fraction`` of that for validation; already
    standardised, so nothing is normalised on the device.  The samplers are the base's."""

    default_resolution = 32
    normalize_on_device = False

    def __init__(
        self,
        options: DataOptions | None = None,
        *,
        size: int | None = None,
        num_classes: int | None = None,
        val_fraction: float = 0.25,
        **changes: Any,
    ) -> None:
        if size is not None:
            changes["synthetic_size"] = size
        if num_classes is not None:
            changes["synthetic_classes"] = num_classes
        o = data_options(options, **changes)
        super().__init__(o)
        self.size, self.num_classes, self.val_fraction = (
            o.synthetic_size,
            o.synthetic_classes,
            val_fraction,
        )

    def setup(self, stage: str | None = None) -> None:
        g = torch.Generator().manual_seed(self.seed)
        n_val = max(1, int(self.size * self.val_fraction))
        labels = torch.randint(0, self.num_classes, (self.size + n_val,), generator=g)
        prototypes = torch.randn(self.num_classes, 3, self.resolution, self.resolution, generator=g)
        shape = (len(labels), 3, self.resolution, self.resolution)
        images = prototypes[labels] + torch.randn(*shape, generator=g)
        self.train_set = TensorDataset(images[: self.size], labels[: self.size])
        self.val_set = TensorDataset(images[self.size :], labels[self.size :])
        self.val_size = len(self.val_set)
        check_shardable("data=synthetic", self.val_size, self.world_size, self.num_classes)

    def train_dataloader(self) -> DataLoader:
        from .resume import (
            ResumableLoader,  # a mid-epoch (preemption) resume skips the batches done
        )

        sampler = self.train_sampler_for(self.train_set, self.train_set.tensors[1].numpy())
        loader = DataLoader(
            self.train_set, batch_size=self.per_device_batch_size(), sampler=sampler, drop_last=True
        )
        return ResumableLoader(loader, self.trainer)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_shard(self.val_set), batch_size=self.per_device_batch_size())
