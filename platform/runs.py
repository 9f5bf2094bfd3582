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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only

from datamodules.write import write_json_atomic

METRIC_KEYS = ("train/loss", "train/top1", "val/loss", "val/top1", "val/top5", "val/top1_best", "lr",
               "val_ema/loss", "val_ema/top1", "val_ema/top5",
               # platform.callbacks.ThroughputMonitor
               "perf/train_img_s", "perf/val_img_s", "perf/data_wait_s", "perf/compute_s", "perf/data_wait_frac",
               "perf/peak_mem_mib")


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
        **performance_summary(run_dir, rows),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    write_json_atomic(Path(run_dir) / "summary.json", summary)
    return summary


def performance_summary(run_dir: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Best epoch and its checkpoint, mean train images/s and peak memory over the recorded epochs."""
    best = max((r for r in rows if "val/top1" in r), key=lambda r: r["val/top1"], default=None)
    ckpts = sorted(checkpoint_dir(run_dir).glob("best-epoch*.ckpt"))
    rates = [r["perf/train_img_s"] for r in rows if "perf/train_img_s" in r]
    mems = [r["perf/peak_mem_mib"] for r in rows if "perf/peak_mem_mib" in r]
    return {"best_epoch": best["epoch"] if best else None, "best_checkpoint": str(ckpts[-1]) if ckpts else None,
            "mean_train_img_s": round(sum(rates) / len(rates), 1) if rates else None,
            "peak_mem_mib": round(max(mems), 1) if mems else None}


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


# ---------------------------------------------------------------------------- reading many runs
# ``platform.reproduce`` and ``platform.sweep`` see every run as a RunRecord, wherever it was
# recorded: a local run directory, a W&B offline/synced run file, or the W&B API.
@dataclass
class RunRecord:
    name: str
    path: str              # run directory, .wandb file, or entity/project/run_id
    source: str            # local | wandb-offline | wandb
    config: dict[str, Any]  # the resolved ExperimentConfig as a nested dict
    status: str            # finished | running | interrupted | failed
    top1: float | None     # final-epoch val top-1 (%), the number papers report
    top5: float | None
    epochs: int | None = None

    def get(self, dotted: str) -> Any:
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node


def local_records(root: str | Path) -> list[RunRecord]:
    """Every run directory under ``root`` (those with a ``config.yaml``)."""
    import yaml

    out = []
    for cfg_path in sorted(Path(root).glob("*/config.yaml")):
        run_dir = cfg_path.parent
        try:
            config = yaml.safe_load(cfg_path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        s = read_summary(run_dir) or {}
        out.append(RunRecord(run_dir.name, str(run_dir), "local", config, s.get("status", "running"),
                             s.get("final_val_top1"), s.get("final_val_top5"), s.get("epochs")))
    return out


_WANDB_BLOCK = 32 * 1024  # W&B's transaction log is LevelDB's log format: 32 KiB blocks of records


def wandb_file_records(path: str | Path):
    """The protobuf ``Record``s of a W&B run file (``run-<id>.wandb``), in order.

    wandb >= 0.2x no longer ships a Python reader (the Go core writes the file); the format is
    a 7-byte header (``:W&B``, magic 0xBEE1, version) and LevelDB log blocks: each chunk a
    7-byte header (crc32, length, type FULL/FIRST/MIDDLE/LAST) and its bytes.
    """
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file (header {data[:4]!r})")
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = _WANDB_BLOCK - pos % _WANDB_BLOCK
        if left < 7:  # block trailer: padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # FULL, LAST
            record = pb.Record()
            record.ParseFromString(pending + chunk if kind == 4 else chunk)
            pending = b""
            yield record
        elif kind == 2:  # FIRST
            pending = chunk
        elif kind == 3:  # MIDDLE
            pending += chunk


def config_from_wandb(items: dict[str, Any]) -> dict[str, Any]:
    """Our nested config from a W&B run config.

    Sections arrive as dicts (the logger sends the whole resolved config).  A W&B sweep *locks*
    the keys it sets, so those arrive as the sweep's values instead (``model: "resnet50"``,
    ``"model.se_reduction": 8``, or several space-separated overrides in one value); they are
    applied on top, as ``platform.train`` applied them.
    """
    import yaml

    from platform.config import SECTIONS, parse_overrides

    config = {k: v for k, v in items.items() if not k.startswith("_") and (k not in SECTIONS or isinstance(v, dict))}
    overrides = [f"{k}={v}" for k, v in items.items()
                 if ("." in k or k in SECTIONS) and not isinstance(v, dict) and not k.startswith("_")]
    try:
        pairs = parse_overrides(overrides)
    except ValueError:
        pairs = []
    for key, raw in pairs:
        node = config
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p), dict) or p not in node else node[p]
        try:
            node[leaf] = yaml.safe_load(raw)
        except yaml.YAMLError:
            node[leaf] = raw
    return config


def _unjson(value_json: str) -> Any:
    try:
        return json.loads(value_json)
    except ValueError:
        return value_json


def wandb_offline_record(path: str | Path) -> RunRecord:
    """A RunRecord from one ``run-<id>.wandb`` file (offline, or synced: same file)."""
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    name, status, epochs = Path(path).stem.removeprefix("run-"), "running", 0
    for record in wandb_file_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            name = record.run.display_name or record.run.run_id
            items = {i.key: _unjson(i.value_json) for i in record.run.config.update}
            config.update(items)
        elif kind == "config":
            for i in record.config.update:  # later updates (Lightning's hparams) never replace our sections
                config.setdefault(i.key, _unjson(i.value_json))
        elif kind == "summary":
            summary.update({i.key or "/".join(i.nested_key): _unjson(i.value_json) for i in record.summary.update})
        elif kind == "history":
            if any((i.key or "/".join(i.nested_key)) == "val/top1" for i in record.history.item):
                epochs += 1
        elif kind == "exit":
            status = "finished" if record.exit.exit_code == 0 else "failed"
    return RunRecord(name, str(path), "wandb-offline", config_from_wandb(config), status,
                     summary.get("val/top1"), summary.get("val/top5"), epochs)


def wandb_offline_records(root: str | Path) -> list[RunRecord]:
    """Every W&B run file under ``root`` (e.g. ``runs/`` or a ``wandb/`` directory)."""
    out = []
    for path in sorted(Path(root).rglob("run-*.wandb")):
        try:
            out.append(wandb_offline_record(path))
        except (OSError, ValueError):
            continue
    return out


_WANDB_STATES = {"finished": "finished", "running": "running", "crashed": "failed", "failed": "failed",
                 "killed": "interrupted", "preempted": "interrupted", "preempting": "running", "pending": "running"}


def wandb_api_record(run: Any) -> RunRecord:
    """A RunRecord from a ``wandb.apis.public.Run`` (name, path, config, summary, state)."""
    summary = dict(getattr(run.summary, "_json_dict", None) or run.summary)
    return RunRecord(run.name, "/".join(run.path), "wandb", config_from_wandb(dict(run.config)),
                     _WANDB_STATES.get(run.state, run.state), summary.get("val/top1"), summary.get("val/top5"),
                     summary.get("epoch", -1) + 1 if "epoch" in summary else None)


def wandb_api_records(project_path: str, filters: dict[str, Any] | None = None) -> list[RunRecord]:
    """Runs of ``ENTITY/PROJECT`` from the W&B API (needs network and an API key)."""
    import wandb

    return [wandb_api_record(r) for r in wandb.Api().runs(project_path, filters=filters or {})]


def run_filter(overrides: list[str], also: set[str] | frozenset[str] = frozenset()):
    """A predicate: does a run's config hold every value these overrides set?  Keys in ``also``
    must hold the value these overrides resolve to (the default when not set): a table whose rows
    differ by a knob (WRN-28-10 with and without dropout) passes that knob, so neither row takes
    the other's runs.  Other keys may differ.  The overrides are resolved once, not per run."""
    from platform.config import load_config, parse_overrides, to_dict

    expected = RunRecord("", "", "", to_dict(load_config(overrides)), "", None, None)
    want = {k: expected.get(k) for k in {k for k, _ in parse_overrides(overrides)} | set(also)}
    return lambda record: all(_same(record.get(k), v) for k, v in want.items())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= 1e-12 * max(1.0, abs(b))
    return a == b
