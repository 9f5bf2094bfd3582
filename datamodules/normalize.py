"""Normalisation on the device, shared by the datamodules whose loaders yield uint8 images."""

from __future__ import annotations

from typing import Sequence

import torch

#: ``dtype`` names accepted by :class:`DeviceNormalize` (and the datamodules' ``normalize_dtype``)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str | None) -> str | None:
    """The low-precision dtype name of a Lightning precision setting (``bf16-mixed`` -> ``bf16``), else None."""
    p = str(precision or "")
    return "bf16" if p.startswith("bf16") else "fp16" if p.startswith("16") else None


class DeviceNormalize:
    """Batch normalisation on the device: uint8 ``(N, C, H, W)`` images -> float32
    ``(x - 255 * mean) / (255 * std)``, labels -> a fresh int64 tensor.

    ``dtype`` (``"bf16"``/``"fp16"``, default None = float32) produces images in that dtype instead,
    computed in it (``x * (1 / 255 std) - mean / std``), but only on the device types in
    ``lowp_devices`` (default CUDA): ffcv-imagenet normalises in the autocast dtype on the GPU
    (``NormalizeImage(mean, std, np.float16)``, ffcv-imagenet/train_imagenet.py), which halves the
    bytes written and read and saves autocast's cast of the first convolution's input.  Elsewhere
    (the CPU by default) the output stays float32, unchanged.

    Both outputs are new tensors (FFCV reuses its output buffers, so nothing of a loader's memory
    may survive the batch); 0-d labels (FFCV's ``Squeeze`` on a batch of one) become shape
    ``(1,)``.  ``channels_last=True`` returns images in channels-last memory format.  The scaled
    mean/std live on the images' device and are built once per device.
    Shared by every datamodule whose loaders yield uint8 images (FFCV and ImageFolder).
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        channels_last: bool = False,
        scale: float = 255.0,
        dtype: str | None = None,
        lowp_devices: Sequence[str] = ("cuda",),
    ) -> None:
        if len(mean) != len(std):
            raise ValueError(f"mean {tuple(mean)} and std {tuple(std)} have different lengths")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        if dtype is not None and dtype not in DTYPES:
            raise ValueError(
                f"normalize dtype {dtype!r}: expected one of {', '.join(DTYPES)} or None"
            )
        self.channels_last, self.scale = channels_last, float(scale)
        self.dtype, self.lowp_devices = (
            (DTYPES[dtype] if dtype else torch.float32),
            tuple(lowp_devices),
        )
        self._cache: tuple[torch.device, torch.Tensor, torch.Tensor] | None = None
        self._lowp: tuple[torch.device, torch.Tensor, torch.Tensor] | None = None

    def output_dtype(self, device: torch.device) -> torch.dtype:
        """The dtype :meth:`images` returns for images on ``device``."""
        return self.dtype if torch.device(device).type in self.lowp_devices else torch.float32

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is None or self._cache[0] != device:
            mean = (
                torch.tensor(self.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
                * self.scale
            )
            std = (
                torch.tensor(self.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
                * self.scale
            )
            self._cache = (device, mean, std)
        return self._cache[1], self._cache[2]

    def _scale_shift(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``1 / (255 std)`` and ``-mean / std`` in the low-precision dtype (computed in float64 first)."""
        if self._lowp is None or self._lowp[0] != device:
            std = torch.tensor(self.std, dtype=torch.float64).view(1, -1, 1, 1)
            mean = torch.tensor(self.mean, dtype=torch.float64).view(1, -1, 1, 1)
            scale = (1.0 / (self.scale * std)).to(device=device, dtype=self.dtype)
            shift = (-mean / std).to(device=device, dtype=self.dtype)
            self._lowp = (device, scale, shift)
        return self._lowp[1], self._lowp[2]

    def images(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != len(self.mean):
            raise ValueError(
                f"expected images of shape (N, {len(self.mean)}, H, W), got {tuple(images.shape)}"
            )
        if self.output_dtype(images.device) != torch.float32:
            scale, shift = self._scale_shift(images.device)
            out = torch.addcmul(
                shift, images.to(self.dtype), scale
            )  # fresh; uint8 is exact in bf16/fp16
        else:
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

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images(images), self.labels(labels)
