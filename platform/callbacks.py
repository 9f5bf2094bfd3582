"""Platform callbacks that drive data from pure schedules (datamodules never import platform)."""
from __future__ import annotations

import logging

import lightning as L

from platform.schedules import resolution_at

log = logging.getLogger(__name__)


class ProgressiveResizing(L.Callback):
    """ffcv-imagenet's progressive resizing: before each training epoch, set the datamodule's
    training resolution from :func:`platform.schedules.resolution_at` (a multiple of 32)."""

    def __init__(self, min_res: int, max_res: int, start_epoch: int, end_epoch: int) -> None:
        self.args = (min_res, max_res, start_epoch, end_epoch)

    def _apply(self, trainer: L.Trainer) -> None:
        res = resolution_at(trainer.current_epoch, *self.args)
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "set_train_resolution"):
            raise TypeError(f"data={type(datamodule).__name__} does not support progressive resizing")
        if res != getattr(datamodule, "resolution", None):
            log.info("epoch %d: training resolution %d", trainer.current_epoch, res)
        datamodule.set_train_resolution(res)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._apply(trainer)  # a resumed run's epoch is known here, before the first batch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._apply(trainer)
