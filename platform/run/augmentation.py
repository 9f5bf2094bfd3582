"""Batch regularizers, as plain functions (STYLE rules 9 and 11); the EMA of the weights is
``platform.run.ema``.

* :func:`mix_batch` -- mixup (Zhang et al. 2018, arXiv 1710.09412) or CutMix (Yun et al. 2019,
  arXiv 1905.04899) on a whole batch, one of the two per batch as torchvision's reference recipe
  does (``RandomChoice([MixUp(0.2), CutMix(1.0)])``, ``references/classification/train.py``).
* :func:`smooth_targets`, :func:`soft_cross_entropy` -- label smoothing (Szegedy et al. 2016,
  arXiv 1512.00567 §7) on hard or soft targets, and the cross-entropy of soft targets.
* :func:`random_erase` -- random erasing (Zhong et al. 2017, arXiv 1708.04896) on a batch already
  on the device, per-sample parameters drawn as torchvision's ``RandomErasing.get_params`` does.

Order in a training step (as in torchvision's reference, where erasing is a per-image transform
and mixing a collate function): normalize -> :func:`random_erase` -> :func:`mix_batch` -> model.
None of these functions writes into its input: FFCV reuses its batch buffers, and the caller
may still hold the tensor.

Randomness: every function takes an optional ``torch.Generator`` and is deterministic given
it; without one it draws from torch's global RNG (which ``seed_everything`` seeds).  The few
scalars and per-sample parameters are drawn on the generator's device (the CPU by default) and
copied to the batch's device, so nothing waits on the GPU.  Only the per-pixel noise of
``random_erase(value="random")`` is drawn on the batch's device: pass a generator on that
device, or none, to keep it there.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F


# ---------------------------------------------------------------------------- helpers
def _generator_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """The memory format ``x`` is laid out in, so outputs can keep it (channels_last stays NHWC)."""
    if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _beta(alpha: float, generator: torch.Generator | None) -> float:
    """One draw from Beta(alpha, alpha), reproducible from ``generator``.

    torch's Beta sampler takes no generator, so a seed is drawn from it and handed to the
    standard library's ``betavariate`` (a scalar: no device work at all).
    """
    seed = int(
        torch.randint(0, 2**62, (1,), generator=generator, device=_generator_device(generator))
    )
    return random.Random(seed).betavariate(alpha, alpha)


def _check_batch(images: torch.Tensor) -> None:
    if images.ndim != 4:
        raise ValueError(
            f"expected a batch of images (N, C, H, W), got shape {tuple(images.shape)}"
        )


# ---------------------------------------------------------------------------- targets and loss
def one_hot(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Float32 (N, num_classes) probabilities of hard (N,) targets; (N, K) soft targets pass through."""
    if targets.ndim == 2:
        if targets.shape[1] != num_classes:
            raise ValueError(
                f"soft targets have {targets.shape[1]} classes, expected {num_classes}"
            )
        return targets.float()
    return F.one_hot(targets.long(), num_classes).float()


def smooth_targets(targets: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """Label smoothing (Szegedy et al. 2016 §7): ``(1 - smoothing) * q + smoothing / K``.

    ``targets`` are hard (N,) labels or (N, K) probabilities (mixed ones included).  The map is
    affine, so smoothing then mixing equals mixing then smoothing: ``mix_batch`` followed by this
    (or by ``F.cross_entropy(..., label_smoothing=smoothing)``, which applies the same formula to
    probability targets) is timm's "smooth, then mix" and torchvision's "mix, then smooth" at once.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    return one_hot(targets, num_classes).mul(1.0 - smoothing).add_(smoothing / num_classes)


def soft_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum_k q_k log softmax(z)_k``, computed in float32.

    Equals ``F.cross_entropy(logits, soft_targets)`` (probability targets), and
    ``F.cross_entropy(logits, y)`` on one-hot ``soft_targets``; pycls's ``SoftCrossEntropyLoss``.
    """
    if soft_targets.shape != logits.shape:
        raise ValueError(
            f"soft targets {tuple(soft_targets.shape)} do not match logits {tuple(logits.shape)}"
        )
    return -(soft_targets.float() * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


# ---------------------------------------------------------------------------- mixup / cutmix
def cutmix_box(
    height: int, width: int, lam: float, generator: torch.Generator | None = None
) -> tuple[int, int, int, int]:
    """CutMix's box ``(y1, y2, x1, x2)`` for a drawn ``lam`` (Yun et al. 2019, Algorithm A1).

    The centre is uniform over the image; the side lengths are ``sqrt(1 - lam)`` times the
    image's (as twice torchvision's ``int(0.5 * sqrt(1 - lam) * W)``); the box is then clipped
    to the image, so its area can be smaller than ``(1 - lam) * H * W``.
    """
    device = _generator_device(generator)
    cx = int(torch.randint(width, (1,), generator=generator, device=device))
    cy = int(torch.randint(height, (1,), generator=generator, device=device))
    r = 0.5 * math.sqrt(1.0 - lam)
    half_w, half_h = int(r * width), int(r * height)
    return (
        max(cy - half_h, 0),
        min(cy + half_h, height),
        max(cx - half_w, 0),
        min(cx + half_w, width),
    )


def mix_batch(
    images: torch.Tensor,
    targets: torch.Tensor,
    num_classes: int,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
    switch_prob: float = 0.5,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or CutMix on a batch; returns ``(mixed_images, soft_targets)``.

    One ``lam`` per batch, drawn from Beta(alpha, alpha); sample ``i`` is paired with
    ``perm[i]`` for a random permutation (both papers' code: ``torch.randperm``):

    * mixup: ``x_i <- lam * x_i + (1 - lam) * x_perm[i]``;
    * cutmix: a box of ``x_i`` (:func:`cutmix_box`, the same box for the whole batch) is
      replaced by the same box of ``x_perm[i]``, and ``lam`` becomes ``1 - box area / (H W)``
      after clipping, so the targets match the pixels;

    and ``soft_targets = lam * onehot(y_i) + (1 - lam) * onehot(y_perm[i])``, float32 (N, K).
    When both alphas are on, a batch gets cutmix with probability ``switch_prob`` (torchvision's
    reference: 0.5, mixup alpha 0.2, cutmix alpha 1.0), else mixup.

    With both alphas 0 it is the identity and returns ``(images, targets)`` themselves, hard
    targets included.  The caller can therefore apply one loss to either output:
    ``F.cross_entropy(logits, targets, label_smoothing=eps)`` accepts hard (N,) and probability
    (N, K) targets alike (or use :func:`soft_cross_entropy` with :func:`smooth_targets`).  Keep
    the hard labels for a training accuracy: soft targets have no single class.

    ``images`` must be floating point (mix after normalization); they are not modified, and
    the output keeps their dtype, device and memory format (channels_last stays channels_last).
    ``targets`` are (N,) class indices or (N, K) probabilities.
    """
    if mixup_alpha < 0 or cutmix_alpha < 0:
        raise ValueError(f"alphas must be >= 0, got mixup {mixup_alpha}, cutmix {cutmix_alpha}")
    if not 0.0 <= switch_prob <= 1.0:
        raise ValueError(f"switch_prob must be in [0, 1], got {switch_prob}")
    if mixup_alpha == 0 and cutmix_alpha == 0:
        return images, targets
    _check_batch(images)
    if not images.is_floating_point():
        raise TypeError(
            f"mix_batch needs floating-point images (normalize first), got {images.dtype}"
        )
    n, _, height, width = images.shape
    if targets.shape[0] != n:
        raise ValueError(f"{n} images but {targets.shape[0]} targets")

    gen_device = _generator_device(generator)
    use_cutmix = cutmix_alpha > 0 and (
        mixup_alpha == 0
        or float(torch.rand((1,), generator=generator, device=gen_device)) < switch_prob
    )
    lam = _beta(cutmix_alpha if use_cutmix else mixup_alpha, generator)
    perm = torch.randperm(n, generator=generator, device=gen_device).to(
        images.device, non_blocking=True
    )

    if use_cutmix:
        y1, y2, x1, x2 = cutmix_box(height, width, lam, generator)
        lam = 1.0 - (y2 - y1) * (x2 - x1) / (height * width)
        mixed = images.clone()  # preserves the memory format
        mixed[:, :, y1:y2, x1:x2] = images[:, :, y1:y2, x1:x2][perm]
    else:
        mixed = images.mul(lam).add_(images[perm], alpha=1.0 - lam)

    hard = one_hot(targets, num_classes)
    soft = hard.mul(lam).add_(hard[perm.to(hard.device)], alpha=1.0 - lam)
    return mixed.contiguous(memory_format=_memory_format(images)), soft


# ---------------------------------------------------------------------------- random erasing
def random_erase(
    images: torch.Tensor,
    p: float = 0.5,
    scale: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3),
    value: float | str = 0.0,
    generator: torch.Generator | None = None,
    attempts: int = 10,
) -> torch.Tensor:
    """Random erasing (Zhong et al. 2017, Algorithm 1) of each image independently, on its device.

    Each image is erased with probability ``p``: a rectangle of area ``U(scale) * H * W`` and
    aspect ratio ``h / w`` log-uniform in ``ratio`` is placed uniformly inside the image, as
    torchvision's ``RandomErasing.get_params`` does (``h, w`` rounded; the first of ``attempts``
    draws that fits strictly inside is used; an image with none that fits is left alone).
    All images are handled at once: the parameters are (N, attempts) tensors and the erased
    region is one boolean mask.

    ``value``: a number fills the rectangle with it (0: the mean pixel, when applied after
    normalization as torchvision's reference does); ``"random"`` fills it with per-pixel
    N(0, 1) noise (torchvision's ``value="random"``).  Returns a new tensor in the input's
    memory format; ``p == 0`` returns ``images`` itself.
    """
    _check_batch(images)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if not (0 < scale[0] <= scale[1] and 0 < ratio[0] <= ratio[1]):
        raise ValueError(
            f"need 0 < scale[0] <= scale[1] and 0 < ratio[0] <= ratio[1], got {scale}, {ratio}"
        )
    if isinstance(value, str) and value != "random":
        raise ValueError(f"value must be a number or 'random', got {value!r}")
    if value == "random" and not images.is_floating_point():
        raise TypeError(f"value='random' needs floating-point images, got {images.dtype}")
    if p == 0:
        return images
    n, _, height, width = images.shape
    gen_device, device = _generator_device(generator), images.device

    # per-sample parameters, in float64 as torchvision's Python floats: (N, attempts)
    u = torch.rand((n, attempts, 2), generator=generator, device=gen_device, dtype=torch.float64)
    area = height * width * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])
    h = torch.round(torch.sqrt(area * aspect)).long()
    w = torch.round(torch.sqrt(area / aspect)).long()
    fits = (h < height) & (w < width)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # the first attempt that fits
    h, w = h.gather(1, first).squeeze(1), w.gather(1, first).squeeze(1)  # (N,)
    coin = torch.rand((n,), generator=generator, device=gen_device) < p
    erase = fits.any(dim=1) & coin
    u_pos = torch.rand((n, 2), generator=generator, device=gen_device, dtype=torch.float64)
    top = (u_pos[:, 0] * (height - h + 1).clamp(min=1)).long()  # uniform in [0, H - h]
    left = (u_pos[:, 1] * (width - w + 1).clamp(min=1)).long()

    top, left, h, w, erase = (t.to(device, non_blocking=True) for t in (top, left, h, w, erase))
    rows, cols = torch.arange(height, device=device), torch.arange(width, device=device)
    in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # (N, H)
    in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # (N, W)
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & erase[:, None, None])[
        :, None
    ]  # (N, 1, H, W)

    if value == "random":
        if generator is None or generator.device == device:
            noise = torch.empty_like(images).normal_(generator=generator)
        else:  # a generator elsewhere: reproducible, but drawn there and copied over
            noise = (
                torch.empty(images.shape, dtype=images.dtype, device=gen_device)
                .normal_(generator=generator)
                .to(device)
            )
        out = torch.where(mask, noise, images)
    else:
        out = images.masked_fill(mask, float(value))
    return out.contiguous(memory_format=_memory_format(images))
