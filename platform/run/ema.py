"""An exponential moving average of the weights (Polyak & Juditsky 1992; torchvision's
``ExponentialMovingAverage``, pycls's ``update_model_ema``): :func:`ema_decay`,
:func:`adjusted_ema_decay`, :class:`ModelEma`, and :class:`EmaValMetric`, the ``val_ema/*``
numbers.  ``platform.run.callbacks.EmaCallback`` is the Lightning wiring that updates it after each
optimizer step, validates it and checkpoints it."""

from __future__ import annotations

import copy
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric


def ema_decay(step: int, decay: float, warmup: bool = True) -> float:
    """Decay of the EMA update number ``step`` (0-based): ``min(decay, (1 + step) / (10 + step))``
    with ``warmup``, else ``decay``.

    The warm-up is TensorFlow's ``tf.train.ExponentialMovingAverage(decay, num_updates)``, as the
    EfficientNet TPU reference uses it (decay 0.9999): early averages forget the random init
    quickly (0.1 at the first update, 0.5 at step 8, 0.9 at step 80) instead of being
    dominated by it for ~1/(1 - decay) updates.
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return min(decay, (1.0 + step) / (10.0 + step)) if warmup else decay


def adjusted_ema_decay(
    decay: float, global_batch_size: int, every_n_steps: int, epochs: float
) -> float:
    """The per-update decay of torchvision's reference and pycls, whose stated decay is
    independent of batch size, update period and run length:
    ``1 - min(1, (1 - decay) * global_batch_size * every_n_steps / epochs)``.

    (torchvision ``train.py``: ``adjust = world_size * batch_size * model_ema_steps / epochs``;
    pycls ``update_model_ema``: ``adjust = BATCH_SIZE / MAX_EPOCH * EMA_UPDATE_PERIOD``.)  The
    average then spans a fixed fraction ``1 / ((1 - decay) * dataset size)`` of the run: the
    torchvision recipe's 0.99998, batch 1024, every 32 steps, 600 epochs gives 0.99891 per update.
    """
    if every_n_steps < 1 or global_batch_size < 1 or epochs <= 0:
        raise ValueError(
            f"need every_n_steps >= 1, global_batch_size >= 1, epochs > 0; got "
            f"{every_n_steps}, {global_batch_size}, {epochs}"
        )
    return 1.0 - min(1.0, (1.0 - decay) * global_batch_size * every_n_steps / epochs)


class ModelEma:
    """An exponential moving average of a model's parameters, held in a deep copy of the model.

    ``update(model, step)`` sets each floating-point parameter to
    ``d * ema + (1 - d) * param`` with ``d = ema_decay(step, decay, warmup)``.

    Buffers (BN running mean/var, ``num_batches_tracked``) are *copied* from the live model by
    default: running statistics are already a moving average (of the live model's activations),
    and copying keeps them those of recent weights rather than an average lagging ~1/(1 - d)
    updates behind.  ``average_buffers=True`` averages floating-point buffers instead, as
    torchvision's ``ExponentialMovingAverage`` (``AveragedModel(use_buffers=True)``), pycls and
    timm's ``ModelEmaV2`` do (use it to reproduce those recipes exactly).  Neither gives the
    statistics of the averaged weights; recompute them (precise BN) for that.

    The copy is in eval mode with ``requires_grad=False``, on the model's device (uncompiled:
    ``copy.deepcopy`` drops ``nn.Module.compile``).  ``state_dict()`` is the copy's plain
    ``state_dict``, so it loads into a fresh model for evaluation or export.
    """

    def __init__(
        self,
        model: nn.Module,
        decay: float = 0.9999,
        warmup: bool = True,
        average_buffers: bool = False,
    ) -> None:
        ema_decay(0, decay, warmup)  # validates decay
        self.decay, self.warmup, self.average_buffers = decay, warmup, average_buffers
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> float:
        """Average ``model`` into the EMA as update number ``step``; returns the decay used."""
        d = ema_decay(step, self.decay, self.warmup)
        ema_params, params = list(self.module.parameters()), list(model.parameters())
        ema_buffers, buffers = list(self.module.buffers()), list(model.buffers())
        if len(ema_params) != len(params) or len(ema_buffers) != len(buffers):
            raise ValueError(
                "the model does not match the EMA copy (different parameters or buffers)"
            )
        averaged = [
            (e, p.detach())
            for e, p in zip(ema_params, params, strict=False)
            if e.is_floating_point()
        ]
        copied = [
            (e, p) for e, p in zip(ema_params, params, strict=False) if not e.is_floating_point()
        ]
        for e, b in zip(ema_buffers, buffers, strict=False):
            (averaged if self.average_buffers and e.is_floating_point() else copied).append((e, b))
        if averaged:  # d * e + (1 - d) * p  ==  e + (1 - d) * (p - e)
            torch._foreach_lerp_([e for e, _ in averaged], [p for _, p in averaged], 1.0 - d)
        for e, p in copied:
            e.copy_(p)
        return d

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.module.load_state_dict(state_dict)


class EmaValMetric(Metric):
    """Loss sum, top-1/top-k hits and count over the validation set, summed over DDP ranks."""

    full_state_update = False

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing
        for name in ("loss_sum", "top1", "topk", "count"):
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        logits = logits.float()
        k = min(5, logits.shape[1])  # as ClassificationModule's top_k_for
        loss = F.cross_entropy(
            logits, targets, label_smoothing=self.label_smoothing, reduction="sum"
        )
        self.loss_sum += loss.double()
        self.top1 += (logits.argmax(dim=1) == targets).sum()
        self.topk += (logits.topk(k, dim=1).indices == targets[:, None]).any(dim=1).sum()
        self.count += targets.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        n = self.count.clamp(min=1)
        return {
            "loss": (self.loss_sum / n).float(),
            "top1": (100 * self.top1 / n).float(),
            "top5": (100 * self.topk / n).float(),
        }
