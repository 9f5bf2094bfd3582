"""What a run prints: library chatter filtered at its source, the start-of-run block and its warnings,
and ``train.log`` -- the whole rank-0 console of every segment, appended.

``platform.run.train`` calls three things: :func:`quiet_library_chatter` (before the Trainer exists),
:func:`start_console_log` and :func:`print_run_start` (rank 0, once the run directory is known).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from platform.run.config import effective_batch_size
from platform.run.rundir import RunDir

log = logging.getLogger("platform.train")

# ---------------------------------------------------------------------------- chatter
# Lines a small run printed that say nothing about it (issue 17 counted them): each is silenced where
# it is made, by its exact text, so every other warning of those libraries still shows.
CHATTER_WARNINGS = (
    # lightning/fabric/plugins/environments/slurm.py: on every non-Slurm run of a host with srun
    r"The `srun` command is available on your system but is not used",
    # lightning/pytorch/utilities/_pytree.py calls torch's deprecated isinstance(..., LeafSpec), twice a run
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)
TIP_PREFIX = "💡 Tip:"  # Lightning's product tips (litlogger, litmodels) through rank_zero_info
RANK_ZERO_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)


def _not_a_tip(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(TIP_PREFIX)


def quiet_library_chatter() -> None:
    """Install the filters (idempotent).  W&B's "anonymous setting" warning is removed where it is
    caused: :func:`platform.run.compose.build_loggers` no longer passes Lightning's ``anonymous=None``."""
    for pattern in CHATTER_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if _not_a_tip not in logger.filters:
            logger.addFilter(_not_a_tip)


# ---------------------------------------------------------------------------- train.log
class _Tee:
    """A text stream that also appends to ``train.log``.  Progress-bar redraws (text with a carriage
    return) stay on the console: the log holds lines, and the epoch lines of :class:`LogLines`."""

    def __init__(self, stream, file) -> None:
        self.stream, self.file = stream, file

    def write(self, s: str) -> int:
        self.stream.write(s)
        if "\r" not in s and not self.file.closed:
            self.file.write(s)
        return len(s)

    def flush(self) -> None:
        with contextlib.suppress(ValueError):  # a console closed under us (a test runner's capture)
            self.stream.flush()
        if not self.file.closed:
            self.file.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding ... of the real console
        return getattr(self.stream, name)


class ConsoleLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "a", buffering=1, encoding="utf-8")
        self.saved = sys.stdout, sys.stderr
        self.swapped: list[tuple[logging.StreamHandler, Any]] = []
        sys.stdout, sys.stderr = _Tee(sys.stdout, self.file), _Tee(sys.stderr, self.file)
        # handlers made earlier (logging.basicConfig, Lightning's own) hold the real streams: point them here
        for logger in [logging.getLogger()] + [
            v for v in logging.root.manager.loggerDict.values() if isinstance(v, logging.Logger)
        ]:
            for h in logger.handlers:
                if type(h) is logging.StreamHandler and h.stream in self.saved:
                    tee = sys.stdout if h.stream is self.saved[0] else sys.stderr
                    self.swapped.append((h, h.setStream(tee)))

    def write_only_here(self, s: str) -> None:
        if not self.file.closed:
            self.file.write(s)

    def close(self) -> None:
        if self.file.closed:
            return
        for h, stream in self.swapped:
            h.setStream(stream)
        if isinstance(sys.stdout, _Tee) and sys.stdout.file is self.file:
            sys.stdout = self.saved[0]
        if isinstance(sys.stderr, _Tee) and sys.stderr.file is self.file:
            sys.stderr = self.saved[1]
        self.file.close()


_active: ConsoleLog | None = None


def start_console_log(run_dir: Path) -> ConsoleLog:
    """Append this process's console to ``<run_dir>/train.log`` until :func:`stop_console_log` (or exit).

    A resumed or requeued segment appends below a header line, so the file holds every segment."""
    global _active
    stop_console_log()
    run_dir.mkdir(parents=True, exist_ok=True)
    _active = ConsoleLog(RunDir(run_dir).train_log)
    _active.write_only_here(
        f"==== segment started {time.strftime('%Y-%m-%dT%H:%M:%S%z')}: "
        f"{' '.join(['python -m platform.train', *sys.argv[1:]])}\n"
    )
    return _active


def stop_console_log() -> None:
    global _active
    if _active is not None:
        _active.close()
        _active = None


atexit.register(stop_console_log)


class LogFileOnly:
    """A stream for lines that belong in ``train.log`` but not on a terminal the progress bar owns."""

    def write(self, s: str) -> int:
        if _active is not None:
            _active.write_only_here(s)
        return len(s)

    def flush(self) -> None:
        pass


# ---------------------------------------------------------------------------- rich tables
LOG_WIDTH = 10_000  # a file or pipe: wide enough that no cell wraps; the table keeps its own width


def rich_console():
    """A ``rich`` console: a terminal's width on a terminal; in a log (a file, a pipe, sbatch's
    output) a width no table reaches, so that cells never wrap and each row stays one line."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else LOG_WIDTH, soft_wrap=False)


# ---------------------------------------------------------------------------- start-of-run block
def final_feature_map(model, resolution: int) -> tuple[int, int, int] | None:
    """(C, H, W) that the head pools: the input of the last global pool (``AdaptiveAvgPool2d``/
    ``AdaptiveMaxPool2d``, as ``models.layers.ClassifierHead`` uses), else the last 4-D activation."""
    import torch
    from torch import nn

    pooled: list[tuple[int, ...]] = []
    last4d: list[tuple[int, ...]] = []

    def hook(m, inputs, out) -> None:
        if (
            isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))
            and inputs
            and inputs[0].ndim == 4
        ):
            pooled.append(tuple(inputs[0].shape))
        elif isinstance(out, torch.Tensor) and out.ndim == 4:
            last4d.append(tuple(out.shape))

    hooks = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, resolution, resolution, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    shapes = pooled or last4d
    return shapes[-1][1:] if shapes else None  # type: ignore[return-value]


# keys of DataConfig each dataset reads; a key set away from its default on another dataset is ignored
DATA_KEYS_READ_BY = {
    "path": ("imagenet", "beton", "cifar10", "cifar100"),
    "backend": ("imagenet",),
    "synthetic_size": ("synthetic",),
    "synthetic_classes": ("synthetic",),
}


def ignored_data_keys(cfg) -> list[str]:
    from platform.run.schema import DataConfig

    default = DataConfig()
    return [
        f"data.{k}"
        for k, names in DATA_KEYS_READ_BY.items()
        if cfg.data.name not in names and getattr(cfg.data, k) != getattr(default, k)
    ]


def likely_mistakes(
    cfg,
    resolution: int,
    native: int,
    feature_map: tuple[int, ...] | None,
    stored: int | None = None,
) -> list[str]:
    out = []
    if stored and resolution >= 2 * stored:
        out.append(
            f"data={cfg.data.name} stores images of about {stored} px (median shorter side) and "
            f"the run trains at {resolution} px, upsampling each {resolution / stored:.1f}x; set "
            f"data.resolution={stored} (and data.val_resolution) or rewrite the dataset larger"
        )
    if native >= 4 * resolution:
        fm = "x".join(map(str, feature_map[1:])) if feature_map else "tiny"
        out.append(
            f"model={cfg.model.name} is built for {native}-px images and data={cfg.data.name} "
            "gives "
            f"{resolution} px: its last feature map is {fm}; pick a CIFAR-style model "
            f"(resnet20, wrn28_10) or raise data.resolution"
        )
    for key in ignored_data_keys(cfg):
        section, name = key.split(".")
        out.append(
            f"{key}={getattr(cfg.data, name)!r} is ignored by data={cfg.data.name} "
            f"(read by data={'|'.join(DATA_KEYS_READ_BY[name])})"
        )
    return out


def resolved_accelerator(name: str) -> str:
    """``auto`` as Lightning resolves it (CUDA, then MPS, then the CPU), e.g. ``auto -> cuda``."""
    if name != "auto":
        return name
    import torch

    mps = getattr(torch.backends, "mps", None)
    got = (
        "cuda"
        if torch.cuda.is_available()
        else "mps"
        if mps is not None and mps.is_available()
        else "cpu"
    )
    return f"auto -> {got}"


def run_start_lines(cfg, module, datamodule, run_dir: Path, world_size: int):
    """(the start-of-run block, warnings about likely mistakes, {params, macs, resolution})."""
    import torch

    import models
    from models.complexity import count_macs, count_params
    from platform.run.schedules import train_size

    info = models.model_info(cfg.model.name)
    resolution = cfg.data.resolution or getattr(datamodule, "resolution", None) or info.resolution
    knobs = {"num_classes": module.hparams.num_classes, **(module.hparams.model_knobs or {})}
    with torch.device("meta"):
        meta = models.create_model(cfg.model.name, **knobs)
    macs, fmap = count_macs(meta, resolution), final_feature_map(meta, resolution)
    t, batch = cfg.trainer, cfg.data.batch_size
    try:
        n_train = getattr(datamodule, "train_size", None) or train_size(cfg)
    except Exception:  # a .beton that is not there yet: the datamodule will say so
        n_train = None
    lines = [
        f"model      {cfg.model.name}: {count_params(module.model) / 1e6:.2f}M params, "
        f"{macs / 1e9:.3f} GMACs at {resolution}px, final feature map "
        f"{'x'.join(map(str, fmap or ()))}",
        f"batch      {batch} global = {batch // max(world_size, 1)} per device x {world_size} "
        "device(s)"
        + (
            f", x{t.accumulate_grad_batches} accumulated = {effective_batch_size(cfg)} per step"
            if t.accumulate_grad_batches > 1
            else ""
        ),
        f"optim      {cfg.optim.name}, peak LR {module.peak_lr:.4g} (optim.lr {cfg.optim.lr:g}"
        + (
            f" per {cfg.optim.reference_batch_size} images)"
            if cfg.optim.reference_batch_size
            else ")"
        )
        + f", {cfg.schedule.name} schedule, {t.max_epochs} epochs",
        f"hardware   precision {t.precision}, accelerator {resolved_accelerator(t.accelerator)}, "
        f"{world_size} device(s) "
        "on "
        f"{t.num_nodes} node(s)",
        f"data       {cfg.data.name}"
        + (f" ({cfg.data.path})" if cfg.data.path else "")
        + (
            f", {n_train:,} training images"
            if n_train
            else ", training-set size not known before the data is read"
        )
        + f", {resolution}px",
        f"run dir    {run_dir}",
    ]
    facts = {"params": count_params(module.model), "macs": macs, "resolution": resolution}
    return lines, likely_mistakes(cfg, resolution, info.resolution, fmap, stored(datamodule)), facts


def stored(datamodule) -> int | None:
    """The side of the images an FFCV datamodule's training file stores, if it can tell."""
    path = getattr(datamodule, "train_path", None)
    if path is None or not str(path).endswith(".beton"):
        return None
    from datamodules.ffcv import stored_side

    try:
        return stored_side(path)
    except Exception:  # noqa: BLE001 -- not written yet: the datamodule will say so
        return None


def print_run_start(cfg, module, datamodule, run_dir: Path, world_size: int) -> dict[str, Any]:
    """Print the block (stdout) and log its warnings; returns the facts ``summary.json`` keeps
    (params, MACs at the trained resolution, that resolution)."""
    lines, warns, facts = run_start_lines(cfg, module, datamodule, run_dir, world_size)
    print("\n".join(["---- run " + "-" * 60, *lines, "-" * 68]), flush=True)
    for w in warns:
        log.warning("%s", w)
    return facts
