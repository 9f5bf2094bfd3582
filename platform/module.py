"""``ClassificationModule``: the one LightningModule every architecture trains through.

Loss, parameter groups, optimizer and LR schedule are plain functions (testable without a
Trainer); the module's hooks only wire them.  Accuracies are logged in percent.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

import models
from platform.config import ConfigError, ModelConfig, OptimConfig, ScheduleConfig
from platform.schedules import lr_from_config

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- plain functions
def classification_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay weights with ``ndim >= 2`` only: norm scales/shifts and biases get none (STYLE rule 10).

    Chosen by tensor rank, never by name (ffcv-imagenet's ``'bn' in name`` misses
    torchvision's ``downsample.1`` BN).
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    log.info("weight decay on %d tensors (%d params), none on %d tensors (%d params)",
             len(decay), sum(p.numel() for p in decay), len(no_decay), sum(p.numel() for p in no_decay))
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(groups: list[dict[str, Any]], cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
    raise ValueError(f"unknown optimizer {cfg.name!r}; expected sgd or adamw")


def top_k_for(num_classes: int) -> int:
    return min(5, num_classes)


class PercentAccuracy(MulticlassAccuracy):
    """Accuracy in percent, as the papers' tables and our run records state it."""

    def compute(self) -> torch.Tensor:
        return 100.0 * super().compute()


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
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.optim_cfg = OptimConfig(**(optim or {}))
        self.schedule_cfg = ScheduleConfig(**(schedule or {}))
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=self.memory_format))

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, targets = batch
        logits = self(images)
        return classification_loss(logits, targets, self.optim_cfg.label_smoothing), logits, targets

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, logits, targets = self._step(batch)
        self.train_loss(loss.detach(), weight=targets.numel())
        self.train_top1(logits.detach(), targets)
        # metric objects: Lightning computes, syncs and resets them at epoch end
        self.log_dict({"train/loss": self.train_loss, "train/top1": self.train_top1}, on_step=False, on_epoch=True)
        self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        loss, logits, targets = self._step(batch)
        self.val_loss(loss, weight=targets.numel())
        self.val_top1(logits, targets)
        self.val_top5(logits, targets)
        self.log_dict({"val/loss": self.val_loss, "val/top1": self.val_top1, "val/top5": self.val_top5},
                      on_step=False, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.val_top1_best(self.val_top1.compute())
            self.log("val/top1_best", self.val_top1_best.compute())

    def configure_optimizers(self):
        optimizer = build_optimizer(param_groups(self.model, self.optim_cfg.weight_decay), self.optim_cfg)
        max_epochs = self.hparams.max_epochs
        steps_per_epoch = max(1, self.trainer.estimated_stepping_batches // max_epochs)
        base_lr, schedule = self.optim_cfg.lr, self.schedule_cfg

        def factor(step: int) -> float:  # LambdaLR multiplies the base LR by this, every optimizer step
            return lr_from_config(step, steps_per_epoch, max_epochs, base_lr, schedule) / base_lr

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def module_kwargs(cfg, num_classes: int) -> dict[str, Any]:
    """The ``ClassificationModule`` arguments of an ``ExperimentConfig``.

    ``model.*`` fields the chosen model does not have are dropped while at their defaults and
    are a :class:`ConfigError` when set (``model.stride_on=1x1`` on a CIFAR ResNet, say).
    """
    name = cfg.model.name
    allowed = models.free_knobs(name)
    defaults = ModelConfig()
    knobs = {}
    for key, value in dataclasses.asdict(cfg.model).items():
        if key in ("name", "num_classes", "init"):
            continue
        if key in allowed:
            if value is not None:
                knobs[key] = value
        elif value != getattr(defaults, key):
            raise ConfigError(f"model.{key}={value!r}: {name} has no such knob "
                              f"(its knobs: {', '.join(sorted(allowed - {'num_classes'}))})")
    return dict(model_name=name, num_classes=cfg.model.num_classes or num_classes, model_knobs=knobs,
                optim=dataclasses.asdict(cfg.optim), schedule=dataclasses.asdict(cfg.schedule),
                max_epochs=cfg.trainer.max_epochs, channels_last=cfg.trainer.channels_last)
