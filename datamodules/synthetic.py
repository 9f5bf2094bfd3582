"""``data=synthetic``: random tensors with a learnable class signal, no FFCV -- for fast unit tests."""
from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


class SyntheticDataModule(L.LightningDataModule):
    def __init__(self, size: int = 512, num_classes: int = 10, resolution: int = 32,
                 batch_size: int = 64, seed: int = 0, val_fraction: float = 0.25, **_: object) -> None:
        super().__init__()
        self.size, self.num_classes, self.resolution = size, num_classes, resolution
        self.batch_size, self.seed, self.val_fraction = batch_size, seed, val_fraction

    def setup(self, stage: str | None = None) -> None:
        g = torch.Generator().manual_seed(self.seed)
        n_val = max(1, int(self.size * self.val_fraction))
        labels = torch.randint(0, self.num_classes, (self.size + n_val,), generator=g)
        prototypes = torch.randn(self.num_classes, 3, self.resolution, self.resolution, generator=g)
        images = prototypes[labels] + torch.randn(len(labels), 3, self.resolution, self.resolution, generator=g)
        self.train_set = TensorDataset(images[: self.size], labels[: self.size])
        self.val_set = TensorDataset(images[self.size:], labels[self.size:])

    def _per_device(self) -> int:
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.batch_size % world:
            raise ValueError(f"data.batch_size={self.batch_size} must divide evenly across {world} ranks")
        return self.batch_size // world

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self._per_device(), shuffle=True, drop_last=True,
                          generator=torch.Generator().manual_seed(self.seed))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self._per_device())
