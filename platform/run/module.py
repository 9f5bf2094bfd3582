"""``ClassificationModule``: the one LightningModule every architecture trains through.

Loss, parameter groups, optimizer and LR schedule are plain functions (testable without a
Trainer); the module's hooks only wire them.  Accuracies are logged in percent.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, MeanMetric, SumMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

import models
from platform.run.augmentation import mix_batch, random_erase
from platform.run.rmsprop_tf import RMSpropTF
from platform.run.schedules import lr_from_config, scaled_lr
from platform.run.schema import OPTIMIZERS, OptimConfig, RegularizationConfig, ScheduleConfig

log = logging.getLogger("platform.module")  # the name runs have always logged under


# ---------------------------------------------------------------------------- plain functions
def classification_loss(
    logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)


_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def _exempt(module: nn.Module, name: str, p: nn.Parameter, no_decay: str) -> bool:
    """Whether parameter ``name`` of ``module`` (its direct owner) gets no weight decay."""
    if no_decay == "none":
        return False
    if isinstance(module, _NORMS):
        return True
    if no_decay == "norm":
        return False
    depthwise = (
        no_decay == "norm_bias_depthwise"
        and isinstance(module, nn.Conv2d)
        and name == "weight"
        and module.groups > 1
        and module.groups == module.in_channels
    )
    return p.ndim < 2 or depthwise  # biases (and other 1-d tensors), or a depthwise filter


def param_groups(
    model: nn.Module, weight_decay: float, no_decay: str = "norm_bias"
) -> list[dict[str, Any]]:
    """Split the parameters into a decayed and an exempt group, as ``optim.no_decay`` says.

    ``norm_bias`` (the default, STYLE rule 10): norm-layer scales/shifts and every other 1-d tensor
    (biases) get none.  ``norm``: only norm layers (TF EfficientNet: ``'batch_normalization' not in
    v.name``).  ``norm_bias_depthwise``: also depthwise conv filters (TF-slim MobileNet v1,
    ``regularize_depthwise=False``).  ``none``: everything decayed (fb.resnet.torch and the other
    Torch releases: ``optim.sgd`` with ``weightDecay`` over the flat parameter vector).
    Chosen by the owning module's type and the tensor's rank, never by name (ffcv-imagenet's
    ``'bn' in name`` misses torchvision's ``downsample.1`` BN).
    """
    decay, exempt, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            (exempt if _exempt(module, name, p, no_decay) else decay).append(p)
    log.info(
        "weight decay (optim.no_decay=%s) on %d tensors (%d params), none on %d tensors (%d params)",
        no_decay,
        len(decay),
        sum(p.numel() for p in decay),
        len(exempt),
        sum(p.numel() for p in exempt),
    )
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": exempt, "weight_decay": 0.0},
    ]


def build_optimizer(groups: list[dict[str, Any]], cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0
        )
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999), eps=cfg.eps)
    if cfg.name == "rmsprop":  # EfficientNet §5.2: decay 0.9, momentum 0.9 (TF: eps 1e-3)
        return torch.optim.RMSprop(
            groups, lr=cfg.lr, alpha=cfg.rmsprop_alpha, momentum=cfg.momentum, eps=cfg.eps
        )
    if (
        cfg.name == "rmsprop_tf"
    ):  # the TF releases (EfficientNet, TF-slim): platform/run/rmsprop_tf.py
        return RMSpropTF(
            groups, lr=cfg.lr, alpha=cfg.rmsprop_alpha, momentum=cfg.momentum, eps=cfg.eps
        )
    raise ValueError(
        f"unknown optimizer {cfg.name!r}; expected {', '.join(OPTIMIZERS[:-1])} or {OPTIMIZERS[-1]}"
    )


class ErrorThresholdWarmup:
    """He et al. 2015 §4.2 (ResNet-110 on CIFAR): "we use 0.01 to warm up the training until the
    training error is below 80% (about 400 iterations), and then go back to 0.1".

    The training error is measured over a window of recent steps, summed over all DDP ranks,
    so every rank switches at the same step; ``max_steps`` caps the warm-up.
    """

    WINDOW = 20  # steps: one noisy batch must not end the warm-up

    def __init__(self, threshold_pct: float, max_steps: int) -> None:
        self.threshold, self.max_steps = threshold_pct / 100.0, max_steps
        self.ended_at: int | None = None
        self._window: list[tuple[float, float]] = []

    @property
    def active(self) -> bool:
        return self.ended_at is None

    def update(self, step: int, wrong: float, total: float) -> bool:
        """Record one step's (global) wrong/total; return True when the warm-up ends now."""
        self._window = (self._window + [(wrong, total)])[-self.WINDOW :]
        w, t = map(sum, zip(*self._window, strict=False))
        if (
            len(self._window) >= self.WINDOW // 2 and w / t < self.threshold
        ) or step + 1 >= self.max_steps:
            self.ended_at = step + 1
            return True
        return False


def rng_states() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) generator states, for a checkpoint."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    # plain types and tensors only, so checkpoints stay loadable with torch.load(weights_only=True)
    states = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": (
            kind,
            torch.from_numpy(keys.astype(np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    import random

    import numpy as np

    random.setstate(states["python"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def top_k_for(num_classes: int) -> int:
    return min(5, num_classes)


class PercentAccuracy(MulticlassAccuracy):
    """Accuracy in percent, as the papers' tables and our run records state it."""

    def compute(self) -> torch.Tensor:
        return 100.0 * super().compute()


# ---------------------------------------------------------------------------- records
def recorded_knobs(name: str, knobs: dict[str, Any] | None, source: object) -> dict[str, Any]:
    """The knobs that rebuild a network recorded (checkpoint hyper-parameters) with ``knobs``.

    A record lacking a knob whose default changed (issue 24) was saved before the change: it is
    rebuilt as the old variant (:func:`models.legacy_knobs`), and one log line says so."""
    knobs = dict(knobs or {})
    out = models.legacy_knobs(name, knobs)
    added = {k: v for k, v in out.items() if k not in knobs}
    if added:
        log.warning(
            "%s: recorded before %s's defaults changed; rebuilt as the variant it was trained as (%s)",
            source,
            name,
            " ".join(f"model.{k}={v}" for k, v in added.items()),
        )
    return out


def checkpoint_hparams(path: str | os.PathLike) -> dict[str, Any]:
    """A Lightning checkpoint's ``hyper_parameters`` ({} for a file without them)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 -- not a zip checkpoint: the callers' own readers say why
        return {}
    hp = state.get("hyper_parameters") if isinstance(state, dict) else None
    return dict(hp) if isinstance(hp, dict) else {}


# ---------------------------------------------------------------------------- module
class ClassificationModule(L.LightningModule):
    """Image classification with any registered model.

    The checkpoint holds the model's registry name and knobs (not the module object), so
    ``ClassificationModule.load_from_checkpoint(path)`` rebuilds it without the config.
    """

    def __init__(
        self,
        model_name: str,
        num_classes: int,
        model_knobs: dict[str, Any] | None = None,
        optim: dict[str, Any] | None = None,
        schedule: dict[str, Any] | None = None,
        max_epochs: int = 1,
        channels_last: bool = False,
        global_batch_size: int | None = None,
        regularization: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.optim_cfg = OptimConfig(**(optim or {}))
        self.schedule_cfg = ScheduleConfig(**(schedule or {}))
        self.reg_cfg = RegularizationConfig(**(regularization or {}))
        self.peak_lr = scaled_lr(
            self.optim_cfg.lr, global_batch_size or 0, self.optim_cfg.reference_batch_size
        )
        self.warmup = (
            ErrorThresholdWarmup(self.schedule_cfg.warmup_error, self.schedule_cfg.warmup_max_steps)
            if self.schedule_cfg.warmup == "error_threshold"
            else None
        )
        self.model = models.create_model(model_name, num_classes=num_classes, **(model_knobs or {}))
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        k = top_k_for(num_classes)
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()
        self.train_top1 = PercentAccuracy(num_classes, top_k=1, average="micro")
        self.val_top1 = PercentAccuracy(num_classes, top_k=1, average="micro")
        self.val_top5 = PercentAccuracy(num_classes, top_k=k, average="micro")
        self.val_top1_best = MaxMetric()
        self.val_top1_best.persistent(True)  # a resumed run remembers its best epoch
        self.val_seen = SumMetric()  # validation must see every example exactly once
        self.val_confusion = MulticlassConfusionMatrix(num_classes)  # rows true, columns predicted
        self.last_confusion: torch.Tensor | None = (
            None  # of the latest validation epoch (ConfusionReport)
        )

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, *args: Any, **kwargs: Any):
        """Lightning's loader, with the model knobs the checkpoint was trained with: one saved
        before a default changed (issue 24) lacks the knob and is rebuilt as the old variant."""
        if "model_knobs" not in kwargs and isinstance(checkpoint_path, (str, os.PathLike)):
            hparams = checkpoint_hparams(checkpoint_path)
            if hparams.get("model_name"):
                kwargs["model_knobs"] = recorded_knobs(
                    kwargs.get("model_name", hparams["model_name"]),
                    hparams.get("model_knobs"),
                    checkpoint_path,
                )
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=self.memory_format))

    def _step(
        self, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, targets = batch
        logits = self(images)
        return classification_loss(logits, targets, self.optim_cfg.label_smoothing), logits, targets

    def _augment(
        self, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch-level regularisers on the device: random erasing, then mixup/cutmix (soft targets)."""
        r = self.reg_cfg
        if r.random_erasing > 0:
            images = random_erase(images, p=r.random_erasing)
        return mix_batch(
            images,
            targets,
            self.hparams.num_classes,
            mixup_alpha=r.mixup_alpha,
            cutmix_alpha=r.cutmix_alpha,
            switch_prob=r.mix_switch_prob,
        )

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # Batch-mode stochastic depth: this step's dropped blocks from (seed, global step) alone,
        # so every DDP rank skips the same blocks and a resumed run repeats the decisions.
        models.set_drop_path_step(self.model, self.hparams.seed, self.global_step)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, targets = batch
        inputs, soft_or_hard = self._augment(images, targets)
        logits = self(inputs)
        loss = classification_loss(
            logits, soft_or_hard, self.optim_cfg.label_smoothing
        )  # accuracy: true labels
        if self.warmup is not None and self.warmup.active:
            self._warmup_step(logits.detach(), targets)
        self.train_loss(loss.detach(), weight=targets.numel())
        self.train_top1(logits.detach(), targets)
        # metric objects: Lightning computes, syncs and resets them at epoch end
        self.log_dict(
            {"train/loss": self.train_loss, "train/top1": self.train_top1},
            on_step=False,
            on_epoch=True,
        )
        self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        self.log(
            "lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False
        )
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        loss, logits, targets = self._step(batch)
        self.val_loss(loss, weight=targets.numel())
        self.val_top1(logits, targets)
        self.val_top5(logits, targets)
        self.val_seen.update(torch.tensor(float(targets.numel()), device=targets.device))
        self.val_confusion.update(logits.argmax(1), targets)
        self.log_dict(
            {"val/loss": self.val_loss, "val/top1": self.val_top1, "val/top5": self.val_top5},
            on_step=False,
            on_epoch=True,
            prog_bar=True,
        )

    def on_validation_epoch_end(self) -> None:
        seen = int(self.val_seen.compute())  # summed over DDP ranks
        confusion = self.val_confusion.compute().cpu()  # every rank takes part in the sync
        self.val_seen.reset(), self.val_confusion.reset()
        if self.trainer.sanity_checking:
            return
        self.last_confusion = confusion
        expected = getattr(self.trainer.datamodule, "val_size", None)
        # an int limit (fast_dev_run, limit_val_batches=1 or overfit_batches) counts batches: a
        # deliberate partial validation, reported (val_partial), not a padded or dropped set
        limit = self.trainer.limit_val_batches
        full = isinstance(limit, float) and limit == 1.0 and not self.trainer.fast_dev_run
        partial = expected is not None and not full and seen != expected
        self.val_partial = {"seen": seen, "of": expected} if partial else None
        if partial and not getattr(self, "_partial_said", False):
            self._partial_said = True
            log.warning(
                "partial validation: %d of %d examples (trainer.limit_val_batches=%r, "
                "fast_dev_run=%r); val metrics cover only these",
                seen,
                expected,
                limit,
                self.trainer.fast_dev_run,
            )
        if expected is not None and full and seen != expected:
            raise RuntimeError(
                f"validation saw {seen} examples, the validation set has {expected}: "
                "a sampler padded or dropped examples, and the accuracy would be biased"
            )
        self.val_top1_best(self.val_top1.compute())
        self.log("val/top1_best", self.val_top1_best.compute())

    def _warmup_step(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        counts = torch.tensor(
            [(logits.argmax(1) != targets).sum().item(), targets.numel()],
            dtype=torch.float64,
            device=logits.device,
        )
        counts = self.trainer.strategy.reduce(
            counts, reduce_op="sum"
        )  # the same decision on every rank
        if self.warmup.update(self.global_step, float(counts[0]), float(counts[1])):
            self.log("warmup/ended_at_step", float(self.warmup.ended_at))
            log.info(
                "error-threshold warm-up ended at step %d (training error below %.0f%%); LR back "
                "to %.4g",
                self.warmup.ended_at,
                100 * self.warmup.threshold,
                self.peak_lr,
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = (
            rng_states()
        )  # a resumed (e.g. preempted) run continues the same streams
        if self.warmup is not None:
            checkpoint["error_threshold_warmup_ended_at"] = self.warmup.ended_at

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])
        if self.warmup is not None:
            self.warmup.ended_at = checkpoint.get("error_threshold_warmup_ended_at")

    def configure_optimizers(self):
        cfg = dataclasses.replace(self.optim_cfg, lr=self.peak_lr)
        optimizer = build_optimizer(param_groups(self.model, cfg.weight_decay, cfg.no_decay), cfg)
        max_epochs = self.hparams.max_epochs
        steps_per_epoch = max(1, self.trainer.estimated_stepping_batches // max_epochs)
        base_lr, schedule, warmup = self.peak_lr, self.schedule_cfg, self.warmup

        def factor(
            step: int,
        ) -> float:  # LambdaLR multiplies the base LR by this, every optimizer step
            if warmup is not None and warmup.active:
                return schedule.warmup_lr / base_lr
            return lr_from_config(step, steps_per_epoch, max_epochs, base_lr, schedule) / base_lr

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
