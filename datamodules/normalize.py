"""Normalisation on the device, shared by the datamodules whose loaders yield uint8 images."""
from __future__ import annotations

from typing import Sequence

import torch


class DeviceNormalize:
    """Batch normalisation on the device: uint8 ``(N, C, H, W)`` images -> float32
    ``(x - 255 * mean) / (255 * std)``, labels -> a fresh int64 tensor.

    Both outputs are new tensors (FFCV reuses its output buffers, so nothing of a loader's memory
    may survive the batch); 0-d labels (FFCV's ``Squeeze`` on a batch of one) become shape
    ``(1,)``.  ``channels_last=True`` returns images in channels-last memory format.  The scaled
    mean/std live on the images' device and are built once per device.
    Shared by every datamodule whose loaders yield uint8 images (FFCV and ImageFolder).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], *, channels_last: bool = False,
                 scale: float = 255.0) -> None:
        if len(mean) != len(std):
            raise ValueError(f"mean {tuple(mean)} and std {tuple(std)} have different lengths")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.channels_last, self.scale = channels_last, float(scale)
        self._cache: tuple[torch.device, torch.Tensor, torch.Tensor] | None = None

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is None or self._cache[0] != device:
            mean = torch.tensor(self.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1) * self.scale
            std = torch.tensor(self.std, dtype=torch.float32, device=device).view(1, -1, 1, 1) * self.scale
            self._cache = (device, mean, std)
        return self._cache[1], self._cache[2]

    def images(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != len(self.mean):
            raise ValueError(f"expected images of shape (N, {len(self.mean)}, H, W), got {tuple(images.shape)}")
        mean, std = self._mean_std(images.device)
        out = (images.float() - mean) / std  # always a fresh tensor
        if self.channels_last:
            out = out.contiguous(memory_format=torch.channels_last)  # no copy when already so
        return out

    @staticmethod
    def labels(labels: torch.Tensor) -> torch.Tensor:
        """A fresh int64 copy; a 0-d tensor becomes shape ``(1,)`` -- FFCV's ``Squeeze()`` turns the
        labels of a final batch of one example into a scalar, which the loss and metrics reject."""
        return labels.reshape(1).long().clone() if labels.dim() == 0 else labels.long().clone()

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images(images), self.labels(labels)
