"""Platform callbacks: data driven from pure schedules (datamodules never import platform), and what
a run reports while it runs (throughput, data wait, memory; a progress bar in images; log lines)."""
from __future__ import annotations

import logging
import sys
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.utilities import rank_zero_only

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


# ---------------------------------------------------------------------------- seeing what a run does
def peak_memory_mib(device: torch.device | None = None) -> float:
    """CUDA: ``max_memory_allocated`` of this rank's device since the last reset; CPU: the process's peak
    RSS (``ru_maxrss``, KiB on Linux), which cannot be reset."""
    if device is not None and device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _batch_images(batch) -> int:
    x = batch[0] if isinstance(batch, (list, tuple)) else batch
    return int(x.shape[0]) if hasattr(x, "shape") else 0


class ThroughputMonitor(L.Callback):
    """Per epoch: train and val images/s, data-wait vs compute time, peak memory; logged as ``perf/*``.

    How the data wait is measured: host timestamps (``time.perf_counter``) only, no
    ``cuda.synchronize`` on the hot path.  The wait of batch i is the host time from the end of
    batch i-1's hooks to the start of batch i's (the loader's ``next()``: FFCV's or a DataLoader's,
    its device copy included); compute is the rest.  On a GPU the host enqueues kernels
    asynchronously and runs ahead only by the launch queue and the one sync per step the loss
    logging/optimizer impose, so over an epoch host time tracks device time; a large wait share
    means the device idled on input (NVIDIA DeepLearningExamples' ``train.data_time`` against
    ``train.compute_ips`` makes the same split).  Rates are global: this rank's images times the
    world size over this rank's wall time; peak memory is the max over ranks (one all-reduce per
    epoch, off the hot path).  Values go to ``metrics.jsonl`` (RunRecorder reads them after this
    callback, which must come first), to W&B, and to :attr:`epoch`, which :class:`LogLines` prints.
    """

    KEYS = ("perf/train_img_s", "perf/val_img_s", "perf/data_wait_s", "perf/compute_s", "perf/data_wait_frac",
            "perf/peak_mem_mib")

    def __init__(self) -> None:
        self.epoch: dict[str, float] = {}
        self._reset()
        self._val_t0, self._val_images = 0.0, 0

    def _reset(self) -> None:
        self.wait = self.compute = 0.0
        self.images = self.batches = 0
        self.t0 = self._mark = time.perf_counter()

    # training
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._reset()
        self.epoch = {}  # an epoch without validation (check_val_every_n_epoch) reports no val rate
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        self.wait += now - self._mark
        self._mark = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        self.compute += now - self._mark
        self._mark = now
        self.images += _batch_images(batch)
        self.batches += 1

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx: int,
                                  dataloader_idx: int = 0) -> None:
        if batch_idx == 0:  # validation runs inside the train epoch: keep its time out of the train split
            self._val_t0, self._val_images = time.perf_counter(), 0

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        self._val_images += _batch_images(batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self._val_images:
            return
        elapsed = max(time.perf_counter() - self._val_t0, 1e-9)
        self.epoch["perf/val_img_s"] = self._val_images * trainer.world_size / elapsed
        self._mark = time.perf_counter()  # the next train batch's wait starts after validation

    def train_rate(self, trainer: L.Trainer) -> float:
        """Images/s of this epoch so far (global)."""
        busy = max(self.wait + self.compute, 1e-9)
        return self.images * trainer.world_size / busy

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.batches:
            return
        self.epoch.update({"perf/train_img_s": self.train_rate(trainer), "perf/data_wait_s": self.wait,
                           "perf/compute_s": self.compute,
                           "perf/data_wait_frac": self.wait / max(self.wait + self.compute, 1e-9)})
        values = {k: float(v) for k, v in self.epoch.items() if k != "perf/peak_mem_mib"}
        pl_module.log_dict(values, on_step=False, on_epoch=True)
        pl_module.log("perf/peak_mem_mib", peak_memory_mib(pl_module.device), on_step=False, on_epoch=True,
                      sync_dist=trainer.world_size > 1, reduce_fx="max")
        self.epoch["perf/peak_mem_mib"] = float(trainer.callback_metrics["perf/peak_mem_mib"])


class ImagesProgressBar(TQDMProgressBar):
    """Lightning's bar counting images, not batches: its rate reads img/s (``unit_scale`` = global batch)."""

    def __init__(self, images_per_batch: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.images_per_batch = images_per_batch

    def _in_images(self, bar):
        bar.unit, bar.unit_scale = "img", self.images_per_batch
        return bar

    def init_train_tqdm(self):
        return self._in_images(super().init_train_tqdm())

    def init_validation_tqdm(self):
        return self._in_images(super().init_validation_tqdm())


def _fmt_eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _running_top1(pl_module: L.LightningModule) -> float | None:
    """The epoch's running train top-1 from this rank's metric state (no cross-rank sync)."""
    m = getattr(pl_module, "train_top1", None)
    try:
        tp, fn = float(m.tp.sum()), float(m.fn.sum())
        return 100.0 * tp / (tp + fn) if tp + fn else None
    except AttributeError:
        return None


class LogLines(L.Callback):
    """Plain log lines for a console that is not a terminal (sbatch, nohup): one every
    ``every_n_steps`` optimizer steps and one per epoch, like timm's ``Train: 3 [ 50/5004] ...``
    and torchvision's ``MetricLogger`` (ETA, img/s, memory).  Rank 0 only.

    Step lines read the loss Lightning already logs and the running top-1 from this rank's metric
    state (one scalar copy per line, never per step).  The ETA is the segment's mean time per batch
    (validation included) times the batches left.
    """

    def __init__(self, monitor: ThroughputMonitor, every_n_steps: int, stream=None) -> None:
        self.monitor, self.every = monitor, max(1, every_n_steps)
        self.stream = stream
        self._t0, self._done, self._in_epoch = time.perf_counter(), 0, 0

    def _print(self, line: str) -> None:
        print(line, file=self.stream or sys.stdout, flush=True)

    def _eta(self, trainer: L.Trainer) -> str:
        per_epoch = trainer.num_training_batches
        if not isinstance(per_epoch, int) or not self._done:
            return "?"
        left = (trainer.max_epochs - trainer.current_epoch) * per_epoch - self._in_epoch
        return _fmt_eta((time.perf_counter() - self._t0) / self._done * max(left, 0))

    def _lr(self, trainer: L.Trainer) -> float:
        return trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0, self._done = time.perf_counter(), 0

    @rank_zero_only
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._done, self._in_epoch = self._done + 1, batch_idx + 1
        if (batch_idx + 1) % self.every:
            return
        m, mon = trainer.callback_metrics, self.monitor
        loss = m.get("train/loss_step")
        top1 = _running_top1(pl_module)
        share = mon.wait / max(mon.wait + mon.compute, 1e-9)
        self._print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} step {trainer.global_step} "
                    f"[{batch_idx + 1}/{trainer.num_training_batches}] | loss "
                    f"{'n/a' if loss is None else f'{float(loss):.4f}'} | train top-1 "
                    f"{'n/a' if top1 is None else f'{top1:.2f}'} | lr {self._lr(trainer):.4g} | "
                    f"{mon.train_rate(trainer):.0f} img/s | data {100 * share:.0f}% | "
                    f"eta {self._eta(trainer)}")

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        m, e = trainer.callback_metrics, self.monitor.epoch
        f = lambda k, spec=".2f": f"{float(m[k]):{spec}}" if k in m else "n/a"  # noqa: E731
        val = f"val loss {f('val/loss', '.4f')} top-1 {f('val/top1')} top-5 {f('val/top5')}"
        self._print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} done, "
                    f"step {trainer.global_step} | "
                    f"train loss {f('train/loss', '.4f')} top-1 {f('train/top1')} | {val} | "
                    f"lr {self._lr(trainer):.4g} | {e.get('perf/train_img_s', 0):.0f} img/s "
                    f"(val {e.get('perf/val_img_s', 0):.0f}) | "
                    f"data {100 * e.get('perf/data_wait_frac', 0):.0f}% | "
                    f"peak mem {e.get('perf/peak_mem_mib', 0):.0f} MiB | eta {self._eta(trainer)}")
