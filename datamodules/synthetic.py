"""``data=synthetic``: random tensors with a learnable class signal, no FFCV -- for fast unit tests."""
from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from .base import check_shardable


class SyntheticDataModule(L.LightningDataModule):
    def __init__(self, size: int = 512, num_classes: int = 10, resolution: int = 32,
                 batch_size: int = 64, seed: int = 0, val_fraction: float = 0.25, sampler: str = "random",
                 epoch_samples: int | None = None, **_: object) -> None:
        super().__init__()
        self.size, self.num_classes, self.resolution = size, num_classes, resolution
        self.batch_size, self.seed, self.val_fraction = batch_size, seed, val_fraction
        self.sampler, self.epoch_samples = sampler, epoch_samples

    def setup(self, stage: str | None = None) -> None:
        g = torch.Generator().manual_seed(self.seed)
        n_val = max(1, int(self.size * self.val_fraction))
        labels = torch.randint(0, self.num_classes, (self.size + n_val,), generator=g)
        prototypes = torch.randn(self.num_classes, 3, self.resolution, self.resolution, generator=g)
        images = prototypes[labels] + torch.randn(len(labels), 3, self.resolution, self.resolution, generator=g)
        self.train_set = TensorDataset(images[: self.size], labels[: self.size])
        self.val_set = TensorDataset(images[self.size:], labels[self.size:])
        self.val_size = len(self.val_set)
        check_shardable("data=synthetic", self.val_size, self._world()[1], self.num_classes)

    def _world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _per_device(self) -> int:
        world = self._world()[1]
        if self.batch_size % world:
            raise ValueError(f"data.batch_size={self.batch_size} is the global batch and must divide evenly "
                             f"across {world} ranks; choose a multiple of {world}")
        return self.batch_size // world

    # Samplers are ours (Lightning runs with use_distributed_sampler=False): the training shard
    # of rank r is r::world of one seeded permutation; validation is r::world with no padding.
    # One seeded permutation per epoch for any world size, so a DDP run's global batch k is
    # exactly the single-process batch k (the DDP equivalence test relies on it).
    def train_dataloader(self) -> DataLoader:
        rank, world = self._world()
        if self.sampler == "class_aware":
            from .sampling import ClassAwareSampler

            sampler = ClassAwareSampler(self.train_set.tensors[1].numpy(), self.epoch_samples, self.seed, rank, world)
        else:
            sampler = DistributedSampler(self.train_set, world, rank, shuffle=True, seed=self.seed, drop_last=True)
        sampler.set_epoch(self.trainer.current_epoch if self.trainer is not None else 0)
        from .resume import ResumableLoader  # a mid-epoch (preemption) resume skips the batches already done

        return ResumableLoader(DataLoader(self.train_set, batch_size=self._per_device(), sampler=sampler,
                                          drop_last=True), self.trainer)

    def val_dataloader(self) -> DataLoader:
        rank, world = self._world()
        return DataLoader(torch.utils.data.Subset(self.val_set, range(rank, len(self.val_set), world)),
                          batch_size=self._per_device())
