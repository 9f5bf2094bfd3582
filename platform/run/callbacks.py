"""Every Lightning callback of the platform but the SLURM ones (``platform.run.slurm``: preemption and
the shared-filesystem check live beside the signal state they share).

* data driven from pure schedules (datamodules never import platform): :class:`ProgressiveResizing`;
* what a run reports while it runs (throughput, data wait, memory; a progress bar in images; log
  lines): :class:`ThroughputMonitor`, :class:`ImagesProgressBar`, :class:`LogLines`;
* the run directory (``platform.run.rundir`` holds its layout and the functions that write it):
  :class:`AtomicModelCheckpoint`, :class:`RunCheckpoint`, :class:`RunRecorder`;
* the EMA of the weights (``platform.run.ema``): :class:`EmaCallback`;
* per-class results (``platform.run.confusion``): :class:`ConfusionReport`.

The learning rate is logged once, as ``lr`` per step by ``ClassificationModule.training_step``
(the key ``metrics.jsonl`` and W&B carry); no ``LearningRateMonitor``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.utilities import rank_zero_only
from torch import nn

from platform.run.confusion import class_names, write_confusion
from platform.run.ema import EmaValMetric, ModelEma, ema_decay
from platform.run.grad_stats import PREFIX as GRAD
from platform.run.rundir import (
    METRIC_KEYS,
    PERF_KEYS,
    RunDir,
    RunWriteError,
    _finite,
    _write_lines,
    fsync_append,
    read_metrics,
    remove_checkpoint,
    save_checkpoint,
)
from platform.run.schedules import resolution_at

log = logging.getLogger("platform.callbacks")  # the name runs have always logged under
run_log = logging.getLogger("platform.runs")  # the checkpoint lines keep their logger name


CONFIG_KEY = "platform_config"  # the checkpoint's own copy of the run's resolved configuration


class ConfigInCheckpoint(L.Callback):
    """Store the resolved configuration in every checkpoint (``checkpoint["platform_config"]``), so a
    resume can be checked against what trained it even where the run's config.yaml is gone."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.config


class ProgressiveResizing(L.Callback):
    """ffcv-imagenet's progressive resizing: before each training epoch, set the datamodule's
    training resolution from :func:`platform.run.schedules.resolution_at` (a multiple of 32)."""

    def __init__(self, min_res: int, max_res: int, start_epoch: int, end_epoch: int) -> None:
        self.args = (min_res, max_res, start_epoch, end_epoch)

    def _apply(self, trainer: L.Trainer) -> None:
        res = resolution_at(trainer.current_epoch, *self.args)
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "set_train_resolution"):
            raise TypeError(
                f"data={type(datamodule).__name__} does not support progressive resizing"
            )
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

    KEYS = PERF_KEYS

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

    def on_validation_batch_start(
        self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if (
            batch_idx == 0
        ):  # validation runs inside the train epoch: keep its time out of the train split
            self._val_t0, self._val_images = time.perf_counter(), 0

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
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
        self.epoch.update(
            {
                "perf/train_img_s": self.train_rate(trainer),
                "perf/data_wait_s": self.wait,
                "perf/compute_s": self.compute,
                "perf/data_wait_frac": self.wait / max(self.wait + self.compute, 1e-9),
            }
        )
        values = {k: float(v) for k, v in self.epoch.items() if k != "perf/peak_mem_mib"}
        pl_module.log_dict(values, on_step=False, on_epoch=True)
        pl_module.log(
            "perf/peak_mem_mib",
            peak_memory_mib(pl_module.device),
            on_step=False,
            on_epoch=True,
            sync_dist=trainer.world_size > 1,
            reduce_fx="max",
        )
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

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        if self.train_progress_bar is not None:  # epochs count from 1 on the console
            self.train_progress_bar.set_description(
                f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
            )


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
    state (one scalar copy per line, never per step).  Every line starts with the local time.  The
    ETA is the segment's mean time per batch (validation included) after the first
    :attr:`WARMUP` batches (JIT compilation, cudnn autotuning, loader start) times the batches left.
    Epochs count from 1 here, as on the bar and in the final line (files count them from 0).
    """

    WARMUP = 3

    def __init__(self, monitor: ThroughputMonitor, every_n_steps: int, stream=None) -> None:
        self.monitor, self.every = monitor, max(1, every_n_steps)
        self.stream = stream
        self._t0, self._done, self._in_epoch = time.perf_counter(), 0, 0

    def _print(self, line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {line}", file=self.stream or sys.stdout, flush=True)

    def _eta(self, trainer: L.Trainer) -> str:
        per_epoch = trainer.num_training_batches
        timed = self._done - self.WARMUP
        if not isinstance(per_epoch, int) or timed <= 0:
            return "?"
        left = (trainer.max_epochs - trainer.current_epoch) * per_epoch - self._in_epoch
        return _fmt_eta((time.perf_counter() - self._t0) / timed * max(left, 0))

    def _lr(self, trainer: L.Trainer) -> float:
        return trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0, self._done = time.perf_counter(), 0

    @rank_zero_only
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._done, self._in_epoch = self._done + 1, batch_idx + 1
        if self._done == self.WARMUP:  # the clock starts after the warm-up batches
            self._t0 = time.perf_counter()
        if (batch_idx + 1) % self.every:
            return
        m, mon = trainer.callback_metrics, self.monitor
        loss = m.get("train/loss_step")
        top1 = _running_top1(pl_module)
        share = mon.wait / max(mon.wait + mon.compute, 1e-9)
        self._print(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} step {trainer.global_step} "
            f"[{batch_idx + 1}/{trainer.num_training_batches}] | loss "
            f"{'n/a' if loss is None else f'{float(loss):.4f}'} | train top-1 "
            f"{'n/a' if top1 is None else f'{top1:.2f}'} | lr {self._lr(trainer):.4g} | "
            f"{mon.train_rate(trainer):.0f} img/s | data {100 * share:.0f}% | "
            f"eta {self._eta(trainer)}"
        )

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        m, e = trainer.callback_metrics, self.monitor.epoch
        f = lambda k, spec=".2f": f"{float(m[k]):{spec}}" if k in m else "n/a"  # noqa: E731
        val = f"val loss {f('val/loss', '.4f')} top-1 {f('val/top1')} top-5 {f('val/top5')}"
        self._print(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} done, "
            f"step {trainer.global_step} | "
            f"train loss {f('train/loss', '.4f')} top-1 {f('train/top1')} | {val} | "
            f"lr {self._lr(trainer):.4g} | {e.get('perf/train_img_s', 0):.0f} img/s "
            f"(val {e.get('perf/val_img_s', 0):.0f}) | "
            f"data {100 * e.get('perf/data_wait_frac', 0):.0f}% | "
            f"peak mem {e.get('perf/peak_mem_mib', 0):.0f} MiB | eta {self._eta(trainer)}"
        )


# ---------------------------------------------------------------------------- the run directory
class AtomicModelCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` for the best epoch: each file appears only complete (temporary file,
    digest, rename -- :func:`save_checkpoint`), and its digest file goes with it when replaced.

    ``last.ckpt`` is not this callback's: Lightning 2.6 rewrites it only in epochs that saved a
    top-k file (an epoch that did not improve left ``last.ckpt`` at the best epoch), so
    :class:`RunCheckpoint` writes it at every epoch end instead.
    """

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        save_checkpoint(trainer, Path(filepath), "best")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath

    def _remove_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        if trainer.is_global_zero:
            remove_checkpoint(Path(filepath))


class RunCheckpoint(Checkpoint):
    """``checkpoints/last.ckpt`` = the newest resumable state: at every training-epoch end (after
    :class:`RunRecorder` wrote the epoch's line and, being a ``Checkpoint``, after the best
    checkpoint, so that ``last.ckpt`` holds the updated best-model state), and inside an epoch every ``every_n_steps``
    optimizer steps or ``every_minutes`` (the SIGUSR1/SIGTERM path in ``platform.run.slurm`` asks
    :meth:`periodic_due` at each batch end and calls :meth:`save`; the decision is agreed by all
    ranks there).  ``on_saved`` is called after each save (the summary heartbeat).
    """

    def __init__(
        self,
        run_dir: Path,
        every_n_steps: int | None = None,
        every_minutes: float | None = None,
        on_saved: Any = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.every_n_steps, self.every_minutes, self.on_saved = (
            every_n_steps,
            every_minutes,
            on_saved,
        )
        self.last_save = time.monotonic()

    @property
    def path(self) -> Path:
        return RunDir(self.run_dir).last

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.last_save = time.monotonic()

    def step_due(self, trainer: L.Trainer) -> bool:
        """Deterministic in the step, so the same on every rank (no collective needed)."""
        return bool(self.every_n_steps) and trainer.global_step % self.every_n_steps == 0

    def time_due(self) -> bool:
        """This rank's clock; the caller agrees across ranks (any rank due -> all save)."""
        return (
            self.every_minutes is not None
            and time.monotonic() - self.last_save >= 60.0 * self.every_minutes
        )

    def save(self, trainer: L.Trainer, kind: str) -> None:
        save_checkpoint(trainer, self.path, kind)
        self.last_save = time.monotonic()
        if trainer.is_global_zero:
            run_log.debug(
                "checkpoint (%s) saved: %s at step %d", kind, self.path, trainer.global_step
            )
            if self.on_saved is not None:
                self.on_saved()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer, "epoch")


class RunRecorder(L.Callback):
    """Appends one line per finished epoch to ``metrics.jsonl`` (global rank 0 only).

    It runs before :class:`RunCheckpoint` saves ``last.ckpt`` at the end of the epoch, so a crash
    between the two re-runs that epoch on resume; on resume, lines of epochs at or after the
    restored epoch are dropped first (and a torn line), so every epoch is recorded exactly once.
    Each line is one ``write`` call, fsynced; non-finite values are written as ``null``.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.epoch_started = time.time()

    @property
    def path(self) -> Path:
        return RunDir(self.run_dir).metrics

    @rank_zero_only
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_train_start, not on_fit_start: only here has a resumed run's epoch been restored
        self.epoch_started = time.time()  # a mid-epoch resume gets no on_train_epoch_start
        if not self.path.exists():
            return
        before = self.path.read_bytes()
        kept = [r for r in read_metrics(self.run_dir) if r["epoch"] < trainer.current_epoch]
        if "".join(json.dumps(r) + "\n" for r in kept).encode() != before:
            try:
                _write_lines(self.path, kept)
            except OSError as e:
                raise RunWriteError(self.path, e) from None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_started = time.time()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on every rank: reading callback_metrics syncs the epoch's metrics across ranks (a collective);
        # rank 0 alone reading them deadlocks against the next collective of the other ranks
        metrics = trainer.callback_metrics  # epoch-level values: Lightning has reached epoch end
        row: dict[str, Any] = {
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "epoch_time_s": round(time.time() - self.epoch_started, 3),
        }
        row.update({k: _finite(float(metrics[k])) for k in METRIC_KEYS if k in metrics})
        # logging.grad_stats (platform.run.grad_stats): one key per recorded layer and statistic
        row.update({k: _finite(float(v)) for k, v in sorted(metrics.items()) if k.startswith(GRAD)})
        error = None
        if trainer.is_global_zero:
            try:
                fsync_append(self.path, json.dumps(row) + "\n")
            except RunWriteError as e:
                error = e
        if trainer.strategy.reduce_boolean_decision(
            error is not None, all=False
        ):  # every rank stops
            raise error or RunWriteError(self.path, "the write failed on global rank 0")


# ---------------------------------------------------------------------------- EMA of weights
class EmaCallback(L.Callback):
    """Keeps a :class:`ModelEma` of ``pl_module.<model_attr>`` and validates it as ``val_ema/*``.

    * Update: after every ``every_n_steps``-th optimizer step (``on_train_batch_end`` once
      ``trainer.global_step`` has advanced, so gradient accumulation does not update twice),
      as update number ``global_step // every_n_steps - 1``.  ``decay`` is per update: convert
      a torchvision/pycls-style decay with ``platform.run.ema.adjusted_ema_decay``.
    * Validation: the EMA model runs on each validation batch (under the trainer's precision
      context, in the module's ``memory_format`` if it has one); loss (with
      ``label_smoothing``, to match ``val/loss``), top-1 and top-5 (%) are accumulated in a
      torchmetrics object, so under DDP they are summed over ranks, and logged at epoch end as
      ``val_ema/loss``, ``val_ema/top1``, ``val_ema/top5``.  Skipped in the sanity check.
    * Checkpoint: the EMA weights are the callback's ``state_dict`` (under
      ``checkpoint["callbacks"][state_key]["ema"]``), restored on resume; the copy is (re)built
      from the module in ``on_fit_start``, so a new ``fit`` without a checkpoint starts afresh.
    """

    def __init__(
        self,
        decay: float,
        every_n_steps: int = 1,
        warmup: bool = True,
        label_smoothing: float = 0.0,
        average_buffers: bool = False,
        model_attr: str = "model",
    ) -> None:
        ema_decay(0, decay, warmup)  # validates decay
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.decay, self.every_n_steps, self.warmup = decay, every_n_steps, warmup
        self.average_buffers, self.model_attr = average_buffers, model_attr
        self.ema: ModelEma | None = None
        self.metric = EmaValMetric(label_smoothing)
        self._pending_state: Mapping[str, Any] | None = None
        self._last_step = -1

    @property
    def state_key(self) -> str:
        return self._generate_state_key(decay=self.decay, every_n_steps=self.every_n_steps)

    def _model(self, pl_module: L.LightningModule) -> nn.Module:
        model = getattr(pl_module, self.model_attr, None)
        if not isinstance(model, nn.Module):
            raise AttributeError(
                f"EmaCallback averages pl_module.{self.model_attr}, which is not an nn.Module"
            )
        return model

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.ema = ModelEma(self._model(pl_module), self.decay, self.warmup, self.average_buffers)
        if self._pending_state is not None:
            self.ema.load_state_dict(self._pending_state)
            self._pending_state = None
        self.metric = self.metric.to(pl_module.device)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_step = (
            trainer.global_step
        )  # restored by now: no update before the next optimizer step

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        step = trainer.global_step
        if self.ema is None or step == self._last_step or step % self.every_n_steps != 0:
            return
        self._last_step = step
        self.ema.update(self._model(pl_module), step // self.every_n_steps - 1)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.ema is None or trainer.sanity_checking:
            return
        images, targets = batch[0], batch[1]
        memory_format = getattr(pl_module, "memory_format", torch.contiguous_format)
        with trainer.precision_plugin.val_step_context():
            logits = self.ema.module(images.contiguous(memory_format=memory_format))
        self.metric.update(logits, targets)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.ema is None or trainer.sanity_checking:
            return
        values = self.metric.compute()  # synced over DDP ranks by torchmetrics
        self.metric.reset()
        pl_module.log_dict(
            {f"val_ema/{k}": v for k, v in values.items()}, on_step=False, on_epoch=True
        )

    def state_dict(self) -> dict[str, Any]:
        return {} if self.ema is None else {"ema": self.ema.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "ema" not in state_dict:
            return
        if self.ema is not None:  # strategies that restore after on_fit_start
            self.ema.load_state_dict(state_dict["ema"])
        else:
            self._pending_state = state_dict["ema"]


# ---------------------------------------------------------------------------- per-class results
class ConfusionReport(L.Callback):
    """At the end of training: the last validation epoch's confusion matrix -> run directory + W&B."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        matrix = getattr(pl_module, "last_confusion", None)
        if matrix is None or not trainer.is_global_zero:
            return
        try:  # an extra: it never turns a finished run into a failed one
            names = class_names(trainer.datamodule, matrix.shape[0])
            _, png = write_confusion(self.run_dir, matrix, names)
            for logger in trainer.loggers:
                if hasattr(logger, "log_image"):  # WandbLogger
                    logger.log_image(key="val/confusion", images=[str(png)])
        except Exception as e:  # noqa: BLE001 -- any failure of the extra is a warning
            detail = " ".join(str(e).split())[:300]
            log.warning(
                f"confusion matrix not written to {self.run_dir} ({type(e).__name__}: {detail}); "
                "the run itself is complete"
            )
