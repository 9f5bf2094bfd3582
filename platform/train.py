"""``python -m platform.train [key=value ...]``: config -> datamodule + module + Trainer -> run dir.

With no arguments it trains a CIFAR-style ResNet-20 on the embedded digits through the
full ImageNet path (FFCV .beton -> FFCV Loader -> ClassificationModule -> Lightning ->
W&B offline + run record) on the CPU, in a few minutes.  ``--help`` lists every key.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import torch

import models
from datamodules import DataError, create_datamodule
from datamodules.normalize import autocast_dtype
from datamodules.options import DataOptions
from datamodules.write import BetonError, write_json_atomic
from platform.config import (ConfigError, ExperimentConfig, from_dict, help_text, load_config, resume_differences,
                             to_dict, to_yaml)
from platform import slurm
from platform.runs import (AtomicModelCheckpoint, CheckpointError, LogTail, RunBusyError, RunCheckpoint, RunLock,
                           RunRecorder, RunSummary, RunWriteError, environment, error_record, lock_holder,
                           newest_valid_checkpoint, read_summary, resumable_checkpoints, verify_checkpoint)
from platform.console import print_run_start, quiet_library_chatter, start_console_log, stop_console_log

log = logging.getLogger("platform.train")


class ResumeError(ValueError):
    """``resume=...`` names nothing that can be resumed, or a fresh run would overwrite one."""


class EmptyTrainingError(ConfigError):
    """An epoch without a single training batch (a dataset smaller than one batch)."""


# ---------------------------------------------------------------------------- run directory
RUN_NAME_ENV = "PLATFORM_RUN_NAME"  # rank 0's choice, inherited by the DDP ranks it launches


def launch_rank_zero() -> bool:
    """Whether this process is global rank 0, known before the Trainer exists (DDP children that
    Lightning starts carry LOCAL_RANK/NODE_RANK; srun tasks SLURM_PROCID; torchrun RANK)."""
    if any(os.environ.get(k, "0") != "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")):
        return False
    return not (slurm.in_srun_step() and os.environ.get("SLURM_PROCID", "0") != "0")


def default_run_name(cfg: ExperimentConfig) -> str:
    """SLURM job id (a requeued job finds its own checkpoints), else model-data-time-random."""
    if os.environ.get("LOCAL_RANK", "0") != "0" and os.environ.get(RUN_NAME_ENV):
        return os.environ[RUN_NAME_ENV]
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if job:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        return f"slurm-{job}" + (f"_{task}" if task else "")
    return f"{cfg.model.name}-{cfg.data.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


def _same_experiment(a: ExperimentConfig, b: ExperimentConfig) -> bool:
    strip = lambda c: {**to_dict(c), "run": None, "resume": None}  # noqa: E731
    return strip(a) == strip(b)


def saved_config(run_dir: Path) -> ExperimentConfig | None:
    import yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return None
    try:
        return from_dict(yaml.safe_load(path.read_text()) or {})
    except Exception as e:  # noqa: BLE001 -- an unreadable config.yaml: say so, never resume blindly
        raise ResumeError(f"{path}: cannot be read as a configuration ({type(e).__name__}: {e}); "
                          "it cannot be resumed safely, choose another run.name") from None


def _latest_unfinished_twin(cfg: ExperimentConfig, root: Path) -> Path | None:
    """The newest run under ``root`` with this exact config that has a checkpoint, did not finish
    and is not being written by a live process right now."""
    candidates = []
    for run_dir in root.glob("*/"):
        summary = read_summary(run_dir) or {}
        ckpts = resumable_checkpoints(run_dir)
        if summary.get("status") == "finished" or not ckpts or lock_holder(run_dir) is not None:
            continue
        try:
            saved = saved_config(run_dir)
        except ResumeError:
            continue
        if saved is not None and _same_experiment(saved, cfg):
            candidates.append((max(p.stat().st_mtime for p in ckpts), run_dir))
    return max(candidates)[1] if candidates else None


def pick_checkpoint(run_dir: Path) -> Path | None:
    """The newest valid checkpoint of ``run_dir`` (a corrupt ``last.ckpt`` falls back, with a warning)."""
    ckpt, problems = newest_valid_checkpoint(run_dir)
    for p in problems:
        log.warning("%s; %s", p, f"falling back to {ckpt}" if ckpt else "no other checkpoint is valid")
    if ckpt is None and problems:
        raise ResumeError(f"no valid checkpoint in {run_dir / 'checkpoints'} ({'; '.join(problems)}); "
                          f"move the directory away to start again, or resume=PATH from a copy you trust")
    return ckpt


def resolve_run(cfg: ExperimentConfig) -> tuple[Path, Path | None]:
    """(run directory, checkpoint to resume from or None).  Reads, never writes."""
    root = Path(cfg.run.root)
    if cfg.resume not in (None, "auto"):
        ckpt = Path(cfg.resume).expanduser()
        if not ckpt.is_file():
            raise ResumeError(f"resume={cfg.resume}: no such checkpoint file "
                              f"(use resume=auto to continue this run's last.ckpt, or give an existing .ckpt path)")
        try:
            verify_checkpoint(ckpt)
        except CheckpointError as e:
            raise ResumeError(f"resume={cfg.resume}: {e}; give another checkpoint (e.g. the run's "
                              f"best-epoch*.ckpt) or resume=auto") from None
        run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else root / default_run_name(cfg)
        return run_dir, ckpt
    name = cfg.run.name or (default_run_name(cfg) if os.environ.get("SLURM_JOB_ID") else None)
    if cfg.resume == "auto" and name is None:
        twin = _latest_unfinished_twin(cfg, root)
        if twin is not None:
            return twin, pick_checkpoint(twin)
    run_dir = root / (name or default_run_name(cfg))
    existing = resumable_checkpoints(run_dir)
    if existing and cfg.resume is None and not slurm.is_restart():  # a requeued job resumes itself
        raise ResumeError(f"run directory {run_dir} already holds {existing[0]}; pass resume=auto to continue it "
                          f"or choose another run.name")
    return run_dir, pick_checkpoint(run_dir) if existing else None


def check_resume_config(run_dir: Path, cfg: ExperimentConfig) -> ExperimentConfig | None:
    """Refuse a resume whose configuration differs from the saved one in a key that may not change."""
    saved = saved_config(run_dir)
    if saved is None:
        return None
    diffs = resume_differences(saved, cfg)
    if diffs:
        listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diffs[:8]) + (" ..." if len(diffs) > 8 else "")
        raise ResumeError(f"resume of {run_dir} refused: the configuration differs from its config.yaml in "
                          f"{len(diffs)} key(s) that a resumed run may not change ({listed}); nothing was "
                          f"written. Start a new run (another run.name), or drop these overrides")
    return saved


def resume_command(run_dir: Path, argv: list[str] | None = None) -> str:
    argv = list(sys.argv[1:] if argv is None else argv)
    kept = [a for a in argv if not a.split("=", 1)[0].lstrip("+") in ("resume", "run.name")]
    return shlex.join(["python", "-m", "platform.train", *kept, "resume=auto", f"run.name={run_dir.name}"]
                      + ([f"run.root={run_dir.parent}"] if not any(a.startswith("run.root=") for a in kept)
                         and str(run_dir.parent) != "runs" else []))


# ---------------------------------------------------------------------------- building blocks
def datamodule_options(cfg: ExperimentConfig) -> DataOptions:
    """The datamodule's options, built once from the config: ``data.*`` plus the run's seed,
    ``trainer.channels_last`` and, on CUDA, the autocast dtype for the normalised inputs."""
    d = cfg.data
    return DataOptions(path=d.path, backend=d.backend, cache_dir=d.cache_dir, batch_size=d.batch_size,
                       num_workers=d.num_workers, resolution=d.resolution, val_resolution=d.val_resolution,
                       val_crop_ratio=d.val_crop_ratio, os_cache=d.os_cache, order=d.order, seed=cfg.seed,
                       split_seed=d.split_seed, val_fraction=d.val_fraction, val_split=d.val_split,
                       train_subset=d.train_subset, val_subset=d.val_subset, synthetic_size=d.synthetic_size,
                       synthetic_classes=d.synthetic_classes, channels_last=cfg.trainer.channels_last,
                       sampler=d.sampler, epoch_samples=d.epoch_samples, batches_ahead=d.batches_ahead,
                       progressive=d.min_resolution is not None,
                       normalize_dtype=autocast_dtype(cfg.trainer.precision))


def uses_cpu(cfg: ExperimentConfig) -> bool:
    """Whether the run's accelerator is the CPU (``auto`` picks a GPU when torch sees one)."""
    return cfg.trainer.accelerator == "cpu" or (cfg.trainer.accelerator == "auto" and not torch.cuda.is_available())


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
    has_key = bool(os.environ.get("WANDB_API_KEY")) or (netrc.is_file() and "api.wandb.ai" in netrc.read_text())
    if not has_key:
        return "offline"
    host, port = wandb_host()
    if not reachable(host, port, WANDB_PROBE_TIMEOUT_S):
        log.warning("W&B: an API key is set but %s:%d cannot be reached within %.0f s: logging offline instead "
                    "(upload later with `wandb sync <run dir>/wandb/offline-run-*`)", host, port, WANDB_PROBE_TIMEOUT_S)
        return "offline"
    return "online"


WANDB_PROBE_TIMEOUT_S = 5.0  # logging.wandb=auto: the W&B server must answer a TCP connect within this


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
    from lightning.pytorch.loggers import WandbLogger

    logger = WandbLogger(project=cfg.logging.project, entity=cfg.logging.entity, name=run_dir.name,
                         id=wandb_run_id(run_dir), save_dir=str(run_dir), mode=mode, resume="allow",
                         tags=list(cfg.logging.tags) or None, config=to_dict(cfg))
    # Lightning passes anonymous=None, which W&B >= 0.2x warns about on every run ("The anonymous setting
    # has no effect"); leaving the key out is W&B's own default
    logger._wandb_init.pop("anonymous", None)
    return [logger]


def console_is_terminal() -> bool:
    return sys.stdout.isatty()


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

    cls = {"simple": profilers.SimpleProfiler, "advanced": profilers.AdvancedProfiler,
           "pytorch": profilers.PyTorchProfiler}[name]
    return cls(dirpath=str(run_dir), filename=f"profile-{name}")


def lightning_knobs(cfg: ExperimentConfig) -> dict[str, Any]:
    """Trainer knobs passed to Lightning as typed (``limit_train_batches=1`` is one batch, ``1.0`` all)."""
    t = cfg.trainer
    knobs = dict(accumulate_grad_batches=t.accumulate_grad_batches, check_val_every_n_epoch=t.check_val_every_n_epoch,
                 fast_dev_run=t.fast_dev_run, overfit_batches=t.overfit_batches,
                 limit_train_batches=t.limit_train_batches, limit_val_batches=t.limit_val_batches)
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


def build_trainer(cfg: ExperimentConfig, run_dir: Path, extra_callbacks: list | None = None,
                  skips_blocks: bool = False, on_saved=None):
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor

    t = cfg.trainer
    loggers = build_loggers(cfg, run_dir)
    checkpointer = RunCheckpoint(run_dir, cfg.checkpoint.every_n_steps, cfg.checkpoint.every_minutes, on_saved)
    reporting, bar = reporting_callbacks(cfg)
    callbacks = [
        *reporting,
        RunRecorder(run_dir),
        # Lightning runs checkpoint callbacks last, in this order: at train-epoch end after RunRecorder
        # wrote the epoch's line, the best one first, then last.ckpt (holding the updated best state)
        AtomicModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best-epoch{epoch:03d}",
                              monitor="val/top1", mode="max", save_top_k=1, save_last=False,
                              save_on_train_epoch_end=True, auto_insert_metric_name=False),
        checkpointer,
    ]
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if cfg.regularization.ema_decay > 0:
        from platform.regularization import EmaCallback

        callbacks.append(EmaCallback(cfg.regularization.ema_decay, every_n_steps=cfg.regularization.ema_every,
                                     label_smoothing=cfg.optim.label_smoothing))
    if cfg.data.min_resolution is not None:
        from platform.callbacks import ProgressiveResizing

        d = cfg.data
        callbacks.append(ProgressiveResizing(d.min_resolution, d.max_resolution, d.ramp_start, d.ramp_end))
    from platform.confusion import ConfusionReport

    callbacks.append(ConfusionReport(run_dir))  # confusion.csv/.png at the end of training (+ W&B image)
    callbacks += slurm.callbacks(run_dir, checkpointer)  # stop signals, periodic checkpoints, divergence
    callbacks += list(extra_callbacks or [])
    kwargs = dict(
        max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes,
        strategy=slurm.strategy(t, ddp_strategy(cfg, skips_blocks)), precision=t.precision,
        gradient_clip_val=t.gradient_clip_val,
        log_every_n_steps=t.log_every_n_steps, deterministic=t.deterministic, logger=loggers or False,
        callbacks=callbacks, default_root_dir=str(run_dir), enable_progress_bar=bar, profiler=profiler(cfg, run_dir),
        enable_model_summary=False, sync_batchnorm=t.sync_batchnorm,
        use_distributed_sampler=False,  # every datamodule of ours shards itself (exactly, for validation)
        plugins=slurm.plugins() or None,  # under srun: SLURMEnvironment (ranks/addresses from SLURM)
        **lightning_knobs(cfg),
    )
    try:
        return L.Trainer(**kwargs)
    except (ValueError, TypeError, RuntimeError) as e:  # Lightning's MisconfigurationException is a ValueError
        raise ConfigError(f"the trainer.* settings were rejected: {e}") from None


# ---------------------------------------------------------------------------- the job
EXIT = {"finished": 0, "failed": 1, "diverged": 3}  # interrupted: 128 + the signal (SIGINT 130, SIGTERM 143)
last_summary: dict[str, Any] | None = None  # the summary of the latest train() in this process (for main)


def train(cfg: ExperimentConfig, callbacks: list | None = None, *,
          keep_console_log: bool = False) -> dict[str, Any] | None:
    """Run one experiment; return its summary (also written to ``<run dir>/summary.json``).

    ``callbacks`` are added to the Trainer's (for programmatic use: notebooks, tests).  Returns
    None on DDP ranks other than 0, which write no records.  SIGTERM, SIGINT and SIGUSR1 are caught
    for the duration (``platform.slurm``), and a tail of the log is kept for a failure's summary.
    The console goes to ``train.log`` until the run ends (``keep_console_log``: until the caller's
    :func:`platform.console.stop_console_log`, so that ``main``'s closing line is in the log too).
    """
    global last_summary
    last_summary = None
    previous = slurm.install_stop_handlers()
    tail = LogTail().attach()
    try:
        return _train(cfg, callbacks, tail)
    finally:
        tail.detach()
        slurm.restore_handlers(previous)
        if not keep_console_log:  # a notebook's or a test's console is its own again
            stop_console_log()


def _finalize_wandb(trainer, status: str, code: int) -> None:
    """End this segment's W&B run with its real outcome (Lightning would record an interruption as failed)."""
    for logger in getattr(trainer, "loggers", []):
        exp = getattr(logger, "_experiment", None)
        if exp is None or not hasattr(exp, "finish"):
            continue
        try:
            if status == "interrupted" and hasattr(exp, "mark_preempting"):
                exp.mark_preempting()
            exp.finish(exit_code=code)
        except Exception as e:  # noqa: BLE001 -- W&B never takes a run down
            log.warning("W&B: could not finish the run cleanly (%s: %s)", type(e).__name__, e)


def _train(cfg: ExperimentConfig, callbacks: list | None, tail: LogTail) -> dict[str, Any] | None:
    global last_summary
    import lightning as L

    from platform.module import ClassificationModule, module_kwargs

    quiet_library_chatter()  # Lightning/W&B chatter filtered where it is raised, real warnings kept
    cfg = slurm.apply_allocation(cfg)  # under srun: devices/num_nodes from the allocation, or a ConfigError
    models.model_info(cfg.model.name)  # unknown model: fail before touching data or disk
    if cfg.trainer.sync_batchnorm and not torch.cuda.is_available():
        raise ConfigError("trainer.sync_batchnorm=true needs CUDA GPUs: torch's SyncBatchNorm has no CPU path "
                          "(on CPU, DDP ranks keep their own BN statistics)")
    run_dir, ckpt = resolve_run(cfg)  # reads only: every refusal below leaves the directory as it was
    rank0 = launch_rank_zero()
    os.environ[RUN_NAME_ENV] = run_dir.name
    resuming = cfg.resume is not None or slurm.is_restart()
    previous = read_summary(run_dir) if resuming else None
    if resuming:
        check_resume_config(run_dir, cfg)
        done = int((previous or {}).get("epochs") or 0)
        if (previous or {}).get("status") == "finished" and cfg.trainer.max_epochs <= done:
            log.info("%s finished all %d epochs already: nothing to do (pass a larger trainer.max_epochs with "
                     "resume=auto to train on)", run_dir, done)
            last_summary = {**previous, "nothing_done": True}
            return last_summary if rank0 else None
        if (previous or {}).get("status") == "finished":
            log.info("%s finished %d epochs; continuing it to trainer.max_epochs=%d", run_dir, done,
                     cfg.trainer.max_epochs)
    created = not run_dir.exists()
    lock = RunLock(run_dir).acquire() if rank0 else None
    try:
        # ---- set-up: a failure here leaves no run directory behind (a fresh run) or the old records
        apply_flush_denormal(cfg)
        datamodule = create_datamodule(cfg.data.name, datamodule_options(cfg))
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        module = ClassificationModule(**module_kwargs(cfg, datamodule.num_classes))
        if cfg.trainer.compile:  # in place: state_dict keys (and so checkpoints) stay uncompiled
            module.model.compile(backend=cfg.trainer.compile_backend)
        if cfg.model.init and ckpt is None:  # a resumed run continues from its own checkpoint instead
            from platform.init import load_initial_weights

            load_initial_weights(module.model, cfg.model.name, cfg.model.init)
        holder: dict[str, RunSummary] = {}
        trainer = build_trainer(cfg, run_dir, callbacks, skips_blocks=models.skips_blocks(module.model),
                                on_saved=lambda: holder["s"].heartbeat())
        base = {"model": cfg.model.name, "data": cfg.data.name, "seed": cfg.seed, "recipe": cfg.recipe,
                "max_epochs": cfg.trainer.max_epochs}
        if trainer.is_global_zero:
            start_console_log(run_dir)  # train.log: this segment's console, appended
            base.update(print_run_start(cfg, module, datamodule, run_dir, trainer.world_size))  # + params, MACs
        record = holder["s"] = RunSummary(run_dir, base, trainer.world_size, previous)
        if trainer.is_global_zero:
            from datamodules.write import atomic_path

            try:
                with atomic_path(run_dir / "config.yaml") as tmp:
                    tmp.write_text(to_yaml(cfg))
                write_json_atomic(run_dir / "env.json", environment())
            except OSError as e:
                raise RunWriteError(getattr(e, "filename", None) or run_dir, e) from None
            record.write("running")
            if ckpt:
                log.info("resuming %s from %s", run_dir, ckpt)
    except BaseException:
        stop_console_log()
        if lock is not None:
            lock.release()
        if rank0 and created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise

    status, error, signum, summary = "failed", None, None, None
    steps_before = trainer.global_step
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
        if trainer.interrupted:
            status, signum = "interrupted", signal.SIGINT
        elif trainer.global_step == steps_before and trainer.current_epoch < cfg.trainer.max_epochs:
            n = getattr(datamodule, "train_size", None) or len(getattr(datamodule, "train_set", None) or ()) or None
            b = cfg.data.batch_size
            raise EmptyTrainingError(
                f"no training batch: data={cfg.data.name} has {n if n is not None else 'too few'} training "
                f"examples for data.batch_size={b} over {trainer.world_size} device(s) (incomplete batches are "
                f"dropped), or trainer.limit_train_batches={cfg.trainer.limit_train_batches}; lower "
                f"data.batch_size or use a larger dataset")
        else:
            status = "finished"
    except slurm.Interrupted as e:  # a stop signal: checkpoint saved (and a SLURM job requeued)
        status, signum, error = "interrupted", e.signum, e
        log.info("%s", e)
    except slurm.Diverged as e:
        status, error = "diverged", e
    except (KeyboardInterrupt, SystemExit) as e:
        status, signum, error = "interrupted", signal.SIGINT, e
        raise
    except BaseException as e:
        error = e
        raise
    finally:
        code = 128 + int(signum) if status == "interrupted" else EXIT.get(status, 1)
        if trainer.is_global_zero:
            extra: dict[str, Any] = {"exit_code": code, "global_step": trainer.global_step}
            if status != "finished":
                extra["resume_command"] = resume_command(run_dir)
            if status == "interrupted":
                extra["reason"] = str(error) if isinstance(error, slurm.Interrupted) else "SIGINT (Ctrl-C)"
            elif error is not None:
                extra["reason"] = f"{type(error).__name__}: {error}".splitlines()[0]
                extra["error"] = error_record(error, tail)
            try:
                summary = last_summary = record.write(status, **extra)
            except RunWriteError as e:
                log.error("%s (the summary of this run is the one written last)", e)
                summary = last_summary = {**base, "status": status, "run_dir": str(run_dir), "epochs": None,
                                          "best_val_top1": None, "final_val_top1": None, "final_val_top5": None,
                                          "wall_time_s": time.time() - record.started, **extra}
            _finalize_wandb(trainer, status, code)
        if lock is not None:
            lock.release()
    return summary


def summary_line(s: dict[str, Any]) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}%"  # noqa: E731
    line = (f"{s['status']}: {s['model']} on {s['data']} | best val top-1 {fmt(s['best_val_top1'])} | "
            f"final val top-1 {fmt(s['final_val_top1'])} top-5 {fmt(s['final_val_top5'])} | "
            f"{s['epochs']} epochs | {float(s['wall_time_s'] or 0):.1f} s | {s['run_dir']}")
    if s.get("reason"):
        line += f" | {s['reason']}"
    if s.get("status") not in ("finished", None) and s.get("resume_command"):
        line += f" | resume with: {s['resume_command']}"
    return line


USER_ERRORS = (ConfigError, DataError, BetonError, ResumeError, RunBusyError, models.UnknownModelError)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    finally:
        stop_console_log()  # after the closing line, which train.log keeps too


def _main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 finished (or already finished); 1 failed (a record that cannot be written: one
    line naming the file); 2 a configuration, data or resume error (one line, nothing written);
    3 diverged; 128 + signal when stopped by a signal after saving (SIGINT 130, SIGTERM 143)."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help", "help") for a in argv):
        print(help_text())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config([a for a in argv if a != "--print-config"])
        if "--print-config" in argv:  # the resolved configuration; no data, no run directory
            print(to_yaml(cfg), end="")
            return 0
        summary = train(cfg, keep_console_log=True)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RunWriteError as e:
        print(f"error: {e}; the previous checkpoint and records are intact (free space or fix the "
              f"permissions, then resume with resume=auto)", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit):
        if last_summary is not None:
            print(summary_line(last_summary), flush=True)
        return 130
    if summary is None:
        return 0
    if summary.get("nothing_done"):
        print(f"already finished, nothing to do: {summary_line(summary)} (to train longer: a larger "
              f"trainer.max_epochs with resume=auto)", flush=True)
        return 0
    print(summary_line(summary), flush=True)
    return int(summary.get("exit_code", EXIT.get(summary["status"], 1)))


if __name__ == "__main__":
    sys.exit(main())
