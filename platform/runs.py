"""The run directory: its layout, the callback that writes it, and the functions that read it.

``runs/<name>/``
    ``config.yaml``       the resolved ExperimentConfig
    ``env.json``          git commit, torch/CUDA/GPU, host, command line
    ``metrics.jsonl``     one JSON line per finished epoch (accuracies in percent)
    ``summary.json``      model, data, seed, epochs, best/final val top-1, final top-5, wall time,
                          world size, status (running | finished | interrupted | failed)
    ``checkpoints/``      ``last.ckpt`` (every epoch) and the best epoch's checkpoint
    ``wandb/``            the W&B run (offline runs sync with ``wandb sync``)

``platform.reproduce`` reads these records, with or without W&B.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only

from datamodules.write import write_json_atomic

METRIC_KEYS = ("train/loss", "train/top1", "val/loss", "val/top1", "val/top5", "val/top1_best", "lr",
               "val_ema/loss", "val_ema/top1", "val_ema/top5")


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def last_checkpoint(run_dir: Path) -> Path | None:
    path = checkpoint_dir(run_dir) / "last.ckpt"
    return path if path.is_file() else None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _write_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    from datamodules.write import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))


def environment() -> dict[str, Any]:
    """What a reported number needs beside it: commit, versions, hardware (STYLE rule 14)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True,
                                    timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    import lightning
    import platform

    return {
        "git_commit": commit, "git_dirty": dirty, "argv": sys.argv, "host": platform.node(),
        "python": platform.python_version(), "torch": torch.__version__, "lightning": lightning.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


def summarize(run_dir: Path, base: dict[str, Any], status: str, wall_time_s: float,
              world_size: int) -> dict[str, Any]:
    rows = read_metrics(run_dir)
    val = [r["val/top1"] for r in rows if "val/top1" in r]
    last = rows[-1] if rows else {}
    summary = dict(base)
    summary.update({
        "epochs": len(rows),
        "best_val_top1": max(val) if val else None,
        "final_val_top1": last.get("val/top1"),
        "final_val_top5": last.get("val/top5"),
        "wall_time_s": round(wall_time_s, 2),
        "world_size": world_size,
        "status": status,
        "run_dir": str(run_dir),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    write_json_atomic(Path(run_dir) / "summary.json", summary)
    return summary


class AtomicModelCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose files appear only complete: written to ``<file>.tmp`` and renamed.

    Lightning writes the bytes straight into the final file, so a SIGTERM without warning (SLURM's
    time limit, a node reclaimed) during the write would leave a truncated ``last.ckpt``; here the
    previous checkpoint stays usable until the new one is whole.
    """

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        tmp = f"{filepath}.tmp"
        super()._save_checkpoint(trainer, tmp)
        if trainer.is_global_zero:
            os.replace(tmp, filepath)
        trainer.strategy.barrier("atomic_checkpoint")
        self._last_checkpoint_saved = filepath


class RunRecorder(L.Callback):
    """Appends one line per finished epoch to ``metrics.jsonl`` (global rank 0 only).

    It runs before ``ModelCheckpoint`` saves ``last.ckpt`` at the end of the epoch, so a crash
    between the two re-runs that epoch on resume; on resume, lines of epochs at or after the
    restored epoch are dropped first, so every epoch is recorded exactly once.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.epoch_started = time.time()

    @property
    def path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    @rank_zero_only
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_train_start, not on_fit_start: only here has a resumed run's epoch been restored
        self.epoch_started = time.time()  # a mid-epoch resume gets no on_train_epoch_start
        kept = [r for r in read_metrics(self.run_dir) if r["epoch"] < trainer.current_epoch]
        _write_lines(self.path, kept)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_started = time.time()

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics  # epoch-level values: Lightning has reached epoch end
        row: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step,
                               "epoch_time_s": round(time.time() - self.epoch_started, 3)}
        row.update({k: round(float(metrics[k]), 6) for k in METRIC_KEYS if k in metrics})
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
