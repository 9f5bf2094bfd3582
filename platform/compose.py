"""Composition: an ``ExperimentConfig`` -> the datamodule, the module and the Lightning Trainer.

The one place where the config's sections become the arguments of our datamodules
(:func:`datamodule_options`), of ``ClassificationModule`` (:func:`module_kwargs`), and of
Lightning's ``Trainer`` with its loggers and callbacks (:func:`build_trainer`,
:func:`build_loggers`).  ``platform.train`` (training), ``platform.lesion`` and the evaluation
commands (``platform.evaluate`` / ``predict`` / ``export``) build through it, so a checkpoint is
always read back with the options it was trained with.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import torch

import models
from datamodules import create_datamodule
from datamodules.normalize import autocast_dtype
from datamodules.options import DataOptions
from platform import slurm
from platform.callbacks import AtomicModelCheckpoint, RunCheckpoint, RunRecorder
from platform.config import ConfigError, ExperimentConfig, ModelConfig, to_dict

log = logging.getLogger("platform.train")  # the W&B fallback warnings are the training run's


# ---------------------------------------------------------------------------- the datamodule
def datamodule_options(cfg: ExperimentConfig) -> DataOptions:
    """The datamodule's options, built once from the config: ``data.*`` plus the run's seed,
    ``trainer.channels_last`` and, on CUDA, the autocast dtype for the normalised inputs."""
    d = cfg.data
    return DataOptions(
        path=d.path,
        backend=d.backend,
        cache_dir=d.cache_dir,
        batch_size=d.batch_size,
        num_workers=d.num_workers,
        resolution=d.resolution,
        val_resolution=d.val_resolution,
        val_crop_ratio=d.val_crop_ratio,
        os_cache=d.os_cache,
        order=d.order,
        seed=cfg.seed,
        split_seed=d.split_seed,
        val_fraction=d.val_fraction,
        val_split=d.val_split,
        train_subset=d.train_subset,
        val_subset=d.val_subset,
        synthetic_size=d.synthetic_size,
        synthetic_classes=d.synthetic_classes,
        channels_last=cfg.trainer.channels_last,
        sampler=d.sampler,
        epoch_samples=d.epoch_samples,
        batches_ahead=d.batches_ahead,
        progressive=d.min_resolution is not None,
        normalize_dtype=autocast_dtype(cfg.trainer.precision),
        color_jitter=d.color_jitter,
        pca_lighting=d.pca_lighting,
        scale_jitter=tuple(d.scale_jitter) if d.scale_jitter else None,
        pad_mode=d.pad_mode,
        auto_augment=d.auto_augment,
        jpeg_decode=d.jpeg_decode,
    )


def build_datamodule(cfg: ExperimentConfig, **changes: Any):
    """The config's datamodule with :func:`datamodule_options` (``changes`` replace some)."""
    return create_datamodule(cfg.data.name, datamodule_options(cfg), **changes)


# ---------------------------------------------------------------------------- the module
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
            raise ConfigError(
                f"model.{key}={value!r}: {name} has no such knob "
                f"(its knobs: {', '.join(sorted(allowed - {'num_classes'}))})"
            )
    return dict(
        model_name=name,
        num_classes=cfg.model.num_classes or num_classes,
        # every knob whose default changed (issue 24) is recorded, so the checkpoint states its variant
        model_knobs=models.explicit_knobs(name, knobs),
        optim=dataclasses.asdict(cfg.optim),
        schedule=dataclasses.asdict(cfg.schedule),
        max_epochs=cfg.trainer.max_epochs,
        channels_last=cfg.trainer.channels_last,
        global_batch_size=effective_batch_size(cfg),
        regularization=dataclasses.asdict(cfg.regularization),
        seed=cfg.seed,
    )


def pin_recorded_knobs(cfg: ExperimentConfig, hparams: dict[str, Any]) -> ExperimentConfig:
    """``cfg`` with every unset (null) ``model.*`` knob whose default changed set to the value the
    checkpoint's ``hparams`` record (the old default where the record lacks it): a resumed run keeps
    training the variant it started as, and a saved config.yaml of an old run compares equal."""
    name = cfg.model.name
    if not hparams or hparams.get("model_name") != name:
        return cfg
    recorded = models.legacy_knobs(name, dict(hparams.get("model_knobs") or {}))
    pins = {
        c.knob: recorded[c.knob]
        for c in models.model_info(name).default_changes
        if hasattr(cfg.model, c.knob) and getattr(cfg.model, c.knob) is None
    }
    if not pins:
        return cfg
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **pins))


def effective_batch_size(cfg) -> int:
    """Images per optimizer step: the global batch times ``trainer.accumulate_grad_batches``; the linear
    LR-scaling rule (Goyal et al. 2017, §2.1) scales ``optim.lr`` by this over ``reference_batch_size``."""
    return cfg.data.batch_size * cfg.trainer.accumulate_grad_batches


def build_module(cfg: ExperimentConfig, num_classes: int, *, initial_weights: bool = True):
    """The training run's ``ClassificationModule``: compiled in place if asked (state_dict keys,
    and so checkpoints, stay uncompiled), with ``model.init`` weights unless ``initial_weights`` is
    false (a resumed run continues from its own checkpoint instead)."""
    from platform.module import ClassificationModule

    module = ClassificationModule(**module_kwargs(cfg, num_classes))
    if cfg.trainer.compile:
        module.model.compile(backend=cfg.trainer.compile_backend)
    if cfg.model.init and initial_weights:
        from platform.init import load_initial_weights

        load_initial_weights(
            module.model, cfg.model.name, cfg.model.init, knobs=module.hparams.model_knobs
        )
    return module


# ---------------------------------------------------------------------------- the Trainer
def uses_cpu(cfg: ExperimentConfig) -> bool:
    """Whether the run's accelerator is the CPU (``auto`` picks a GPU when torch sees one)."""
    return cfg.trainer.accelerator == "cpu" or (
        cfg.trainer.accelerator == "auto" and not torch.cuda.is_available()
    )


def apply_flush_denormal(cfg: ExperimentConfig) -> bool:
    """Flush denormals to zero for CPU ops (SSE3 FTZ/DAZ); returns whether it is on.

    On the CPU a net whose activations or gradients turn denormal (plain56 on digits) can slow by
    an order of magnitude (issue 19; ``python -m benchmarks denormal`` measures it).  The switch sets
    the CPU's MXCSR FTZ/DAZ bits only, for fp32/fp64 (fp16 is unaffected, pytorch#150007): CUDA
    kernels never see it, and need nothing: PyTorch builds them without ``-ftz``/fast-math, so fp32
    keeps denormals, which NVIDIA GPUs add/multiply/FMA at full speed in hardware (NVIDIA, "CUDA Pro
    Tip: Flush Denormals with Confidence"; only some special functions are slower with them).
    """
    on = uses_cpu(cfg) if cfg.trainer.flush_denormal is None else cfg.trainer.flush_denormal
    torch.set_flush_denormal(on)
    return on


def wandb_mode(setting: str) -> str:
    """``auto``: WANDB_MODE if set, else online when an API key is configured, else offline."""
    if setting != "auto":
        return setting
    if os.environ.get("WANDB_MODE"):
        return {"dryrun": "offline"}.get(os.environ["WANDB_MODE"], os.environ["WANDB_MODE"])
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    has_key = bool(os.environ.get("WANDB_API_KEY")) or (
        netrc.is_file() and "api.wandb.ai" in netrc.read_text()
    )
    if not has_key:
        return "offline"
    host, port = wandb_host()
    if not reachable(host, port, WANDB_PROBE_TIMEOUT_S):
        log.warning(
            "W&B: an API key is set but %s:%d cannot be reached within %.0f s: logging offline "
            "instead "
            "(upload later with `wandb sync <run dir>/wandb/offline-run-*`)",
            host,
            port,
            WANDB_PROBE_TIMEOUT_S,
        )
        return "offline"
    return "online"


WANDB_PROBE_TIMEOUT_S = (
    5.0  # logging.wandb=auto: the W&B server must answer a TCP connect within this
)


def wandb_host() -> tuple[str, int]:
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    return url.hostname or "api.wandb.ai", url.port or (80 if url.scheme == "http" else 443)


def reachable(host: str, port: int, timeout: float) -> bool:
    """A TCP connection to host:port within ``timeout`` (name resolution included: in a thread)."""
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)


def wandb_run_id(run_dir: Path) -> str:
    """One W&B run per run directory, continued on resume; the first rank to get here picks it."""
    id_file = run_dir / "wandb_id"
    if not id_file.is_file():
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / f".wandb_id.{os.getpid()}"
        # a W&B sweep agent names the run it started us for: keep that id, or the run leaves the sweep
        tmp.write_text(os.environ.get("WANDB_RUN_ID") or uuid.uuid4().hex[:12])
        try:
            os.link(tmp, id_file)  # atomic: fails if another rank won the race
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return id_file.read_text().strip()


def build_loggers(cfg: ExperimentConfig, run_dir: Path) -> list:
    mode = wandb_mode(cfg.logging.wandb)
    if mode == "disabled":
        return []
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    logger = WandbLogger(
        project=cfg.logging.project,
        entity=cfg.logging.entity,
        name=run_dir.name,
        id=wandb_run_id(run_dir),
        save_dir=str(run_dir),
        mode=mode,
        resume="allow",
        tags=list(cfg.logging.tags) or None,
        config=to_dict(cfg),
        # quiet: no ~30-line footer of sparklines on the console at the end; the same history is in
        # metrics.jsonl and the W&B run files (the start block already names the `wandb sync` step)
        settings=wandb.Settings(quiet=True),
    )
    # Lightning passes anonymous=None, which W&B >= 0.2x warns about on every run ("The anonymous setting
    # has no effect"); leaving the key out is W&B's own default
    logger._wandb_init.pop("anonymous", None)
    return [logger]


def console_is_terminal() -> bool:
    """A terminal the bar can draw on: a TTY that reports a size.  A TTY of 0 rows or columns (some
    terminals, ``script``, containers) would swallow every redraw until the end: it gets lines."""
    if not sys.stdout.isatty():
        return False
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except (OSError, ValueError):
        return False
    return size.columns > 0 and size.lines > 0


def reporting_callbacks(cfg: ExperimentConfig) -> tuple[list, bool]:
    """(callbacks that report a run as it runs, whether Lightning's bar is on).

    The throughput monitor comes first (RunRecorder reads its ``perf/*`` values at epoch end).  On a
    terminal the bar counts images (img/s); elsewhere (sbatch, nohup, a pipe) there is no bar and
    :class:`LogLines` prints one line every ``log_every_n_steps`` steps and one per epoch; on a terminal
    those lines still go to ``train.log``.
    """
    from platform.callbacks import ImagesProgressBar, LogLines, ThroughputMonitor
    from platform.console import LogFileOnly

    monitor = ThroughputMonitor()
    bar = cfg.logging.progress_bar and console_is_terminal()
    lines = LogLines(monitor, cfg.trainer.log_every_n_steps, stream=LogFileOnly() if bar else None)
    return [monitor, lines] + ([ImagesProgressBar(cfg.data.batch_size)] if bar else []), bar


def profiler(cfg: ExperimentConfig, run_dir: Path):
    """``trainer.profiler`` as Lightning's profiler object, its report written into the run directory."""
    name = cfg.trainer.profiler
    if name is None:
        return None
    from lightning.pytorch import profilers

    cls = {
        "simple": profilers.SimpleProfiler,
        "advanced": profilers.AdvancedProfiler,
        "pytorch": profilers.PyTorchProfiler,
    }[name]
    return cls(dirpath=str(run_dir), filename=f"profile-{name}")


def lightning_knobs(cfg: ExperimentConfig) -> dict[str, Any]:
    """Trainer knobs passed to Lightning as typed (``limit_train_batches=1`` is one batch, ``1.0`` all)."""
    t = cfg.trainer
    knobs = dict(
        accumulate_grad_batches=t.accumulate_grad_batches,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        fast_dev_run=t.fast_dev_run,
        overfit_batches=t.overfit_batches,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
    )
    return {k: v for k, v in knobs.items() if v is not None}


def _devices_total(t) -> int:
    """How many processes the Trainer will start (an estimate for the strategy choice below)."""
    d = t.devices
    if isinstance(d, (list, tuple)):
        n = len(d)
    elif isinstance(d, int) or str(d).lstrip("-").isdigit():
        n = int(d) if int(d) >= 0 else max(1, torch.cuda.device_count())
    else:  # "auto": every GPU when training on GPUs, else one process
        n = torch.cuda.device_count() if t.accelerator != "cpu" and torch.cuda.is_available() else 1
    return max(1, n) * t.num_nodes


def ddp_strategy(cfg: ExperimentConfig, skips_blocks: bool) -> str:
    """The Trainer's strategy. Batch-mode stochastic depth skips whole blocks in a step, whose
    parameters then get no gradient; plain DDP would wait for them and fail, so it runs with
    ``find_unused_parameters`` (every rank skips the same blocks: ClassificationModule). Only
    then: the unused-parameter search costs a graph traversal per step (benchmarks/RESULTS.md)."""
    t = cfg.trainer
    if skips_blocks and t.strategy in ("auto", "ddp") and _devices_total(t) > 1:
        return "ddp_find_unused_parameters_true"
    return t.strategy


def training_callbacks(
    cfg: ExperimentConfig,
    run_dir: Path,
    checkpointer: RunCheckpoint,
    reporting: list,
    extra_callbacks: list | None = None,
) -> list:
    """The callbacks of a training run, in the order Lightning must run them."""
    from platform.callbacks import ConfusionReport, EmaCallback, ProgressiveResizing
    from platform.grad_stats import GradStats

    # logging.grad_stats logs its epoch values before RunRecorder writes the epoch's line
    grad_stats = [GradStats()] if cfg.logging.grad_stats else []
    callbacks = [
        *reporting,
        *grad_stats,
        RunRecorder(run_dir),
        # Lightning runs checkpoint callbacks last, in this order: at train-epoch end after RunRecorder
        # wrote the epoch's line, the best one first, then last.ckpt (holding the updated best state)
        AtomicModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="best-epoch{epoch:03d}",
            monitor="val/top1",
            mode="max",
            save_top_k=1,
            save_last=False,
            save_on_train_epoch_end=True,
            auto_insert_metric_name=False,
        ),
        checkpointer,
    ]
    r = cfg.regularization
    if r.ema_decay > 0:
        callbacks.append(
            EmaCallback(
                r.ema_decay, every_n_steps=r.ema_every, label_smoothing=cfg.optim.label_smoothing
            )
        )
    d = cfg.data
    if d.min_resolution is not None:
        callbacks.append(
            ProgressiveResizing(d.min_resolution, d.max_resolution, d.ramp_start, d.ramp_end)
        )
    # confusion.csv/.png at the end of training (+ W&B image)
    callbacks.append(ConfusionReport(run_dir))
    # stop signals, periodic checkpoints, divergence
    callbacks += slurm.callbacks(run_dir, checkpointer)
    return callbacks + list(extra_callbacks or [])


def build_trainer(
    cfg: ExperimentConfig,
    run_dir: Path,
    extra_callbacks: list | None = None,
    skips_blocks: bool = False,
    on_saved=None,
):
    import lightning as L

    t = cfg.trainer
    loggers = build_loggers(cfg, run_dir)
    checkpointer = RunCheckpoint(
        run_dir, cfg.checkpoint.every_n_steps, cfg.checkpoint.every_minutes, on_saved
    )
    reporting, bar = reporting_callbacks(cfg)
    kwargs = dict(
        max_epochs=t.max_epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=slurm.strategy(t, ddp_strategy(cfg, skips_blocks)),
        precision=t.precision,
        gradient_clip_val=t.gradient_clip_val,
        log_every_n_steps=t.log_every_n_steps,
        deterministic=t.deterministic,
        logger=loggers or False,
        callbacks=training_callbacks(cfg, run_dir, checkpointer, reporting, extra_callbacks),
        default_root_dir=str(run_dir),
        enable_progress_bar=bar,
        profiler=profiler(cfg, run_dir),
        enable_model_summary=False,
        sync_batchnorm=t.sync_batchnorm,
        # every datamodule of ours shards itself (exactly, for validation)
        use_distributed_sampler=False,
        # under srun: SLURMEnvironment (ranks/addresses from SLURM)
        plugins=slurm.plugins() or None,
        **lightning_knobs(cfg),
    )
    try:
        return L.Trainer(**kwargs)
    except (
        ValueError,
        TypeError,
        RuntimeError,
    ) as e:  # Lightning's MisconfigurationException: ValueError
        raise ConfigError(f"the trainer.* settings were rejected: {e}") from None


def build_eval_trainer(cfg: ExperimentConfig, out_dir: Path):
    """A Trainer for one validation pass (``platform.evaluate``): no logger, no checkpoints,
    placement from ``trainer.*``, the SLURM environment under srun."""
    import lightning as L

    t = cfg.trainer
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=cfg.logging.progress_bar,
        default_root_dir=str(out_dir),
        use_distributed_sampler=False,  # our loaders shard exactly: no padded duplicates
        plugins=slurm.plugins() or None,
    )
