"""``python -m platform.train [key=value ...]``: config -> datamodule + module + Trainer -> run dir.

With no arguments it trains a CIFAR-style ResNet-20 on the embedded digits through the
full ImageNet path (FFCV .beton -> FFCV Loader -> ClassificationModule -> Lightning ->
W&B offline + run record) on the CPU, in a few minutes.  ``--help`` lists every key.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import torch

import models
from datamodules import DataError, create_datamodule
from datamodules.normalize import autocast_dtype
from datamodules.write import BetonError, write_json_atomic
from platform.config import ConfigError, ExperimentConfig, from_dict, help_text, load_config, to_dict, to_yaml
from platform import slurm
from platform.runs import AtomicModelCheckpoint, RunRecorder, environment, last_checkpoint, read_summary, summarize

log = logging.getLogger("platform.train")


class ResumeError(ValueError):
    """``resume=...`` names nothing that can be resumed, or a fresh run would overwrite one."""


# ---------------------------------------------------------------------------- run directory
RUN_NAME_ENV = "PLATFORM_RUN_NAME"  # rank 0's choice, inherited by the DDP ranks it launches


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


def _latest_unfinished_twin(cfg: ExperimentConfig, root: Path) -> Path | None:
    """The newest run under ``root`` with this exact config that has a checkpoint and did not finish."""
    import yaml

    candidates = []
    for run_dir in root.glob("*/"):
        summary = read_summary(run_dir) or {}
        if summary.get("status") == "finished" or last_checkpoint(run_dir) is None:
            continue
        try:
            saved = from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
        except Exception:  # an unreadable or older config is simply not a twin
            continue
        if _same_experiment(saved, cfg):
            candidates.append((last_checkpoint(run_dir).stat().st_mtime, run_dir))
    return max(candidates)[1] if candidates else None


def resolve_run(cfg: ExperimentConfig) -> tuple[Path, Path | None]:
    """(run directory, checkpoint to resume from or None)."""
    root = Path(cfg.run.root)
    if cfg.resume not in (None, "auto"):
        ckpt = Path(cfg.resume).expanduser()
        if not ckpt.is_file():
            raise ResumeError(f"resume={cfg.resume}: no such checkpoint file "
                              f"(use resume=auto to continue this run's last.ckpt, or give an existing .ckpt path)")
        run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else root / default_run_name(cfg)
        return run_dir, ckpt
    name = cfg.run.name or (default_run_name(cfg) if os.environ.get("SLURM_JOB_ID") else None)
    if cfg.resume == "auto" and name is None:
        twin = _latest_unfinished_twin(cfg, root)
        if twin is not None:
            return twin, last_checkpoint(twin)
    run_dir = root / (name or default_run_name(cfg))
    ckpt = last_checkpoint(run_dir)
    if ckpt is not None and cfg.resume is None and not slurm.is_restart():  # a requeued job resumes itself
        raise ResumeError(f"run directory {run_dir} already holds {ckpt}; pass resume=auto to continue it "
                          f"or choose another run.name")
    return run_dir, ckpt


# ---------------------------------------------------------------------------- building blocks
def datamodule_options(cfg: ExperimentConfig) -> dict[str, Any]:
    d = cfg.data
    return dict(path=d.path, backend=d.backend, cache_dir=d.cache_dir, batch_size=d.batch_size,
                num_workers=d.num_workers, resolution=d.resolution, val_resolution=d.val_resolution, val_crop_ratio=d.val_crop_ratio,
                os_cache=d.os_cache, order=d.order, seed=cfg.seed, split_seed=d.split_seed,
                val_fraction=d.val_fraction, synthetic_size=d.synthetic_size,
                synthetic_classes=d.synthetic_classes, channels_last=cfg.trainer.channels_last,
                sampler=d.sampler, epoch_samples=d.epoch_samples, batches_ahead=d.batches_ahead,
                progressive=d.min_resolution is not None,
                normalize_dtype=autocast_dtype(cfg.trainer.precision))  # on CUDA: inputs in the autocast dtype


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
    return "online" if has_key else "offline"


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

    return [WandbLogger(project=cfg.logging.project, entity=cfg.logging.entity, name=run_dir.name,
                        id=wandb_run_id(run_dir), save_dir=str(run_dir), mode=mode, resume="allow",
                        tags=list(cfg.logging.tags) or None, config=to_dict(cfg))]


def build_trainer(cfg: ExperimentConfig, run_dir: Path, extra_callbacks: list | None = None):
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor

    t = cfg.trainer
    loggers = build_loggers(cfg, run_dir)
    callbacks = [
        RunRecorder(run_dir),
        # saved at train-epoch end, after RunRecorder wrote the epoch's line (see RunRecorder)
        AtomicModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best-epoch{epoch:03d}",
                              monitor="val/top1", mode="max", save_top_k=1, save_last=True,
                              save_on_train_epoch_end=True, auto_insert_metric_name=False),
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
    callbacks += slurm.callbacks(run_dir)  # SIGUSR1 under srun: checkpoint, requeue, stop
    callbacks += list(extra_callbacks or [])
    optional = {k: v for k, v in dict(limit_train_batches=t.limit_train_batches,
                                       limit_val_batches=t.limit_val_batches).items() if v is not None}
    for k, v in optional.items():
        optional[k] = int(v) if float(v).is_integer() and v > 1 else float(v)
    return L.Trainer(
        max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes,
        strategy=t.strategy, precision=t.precision, gradient_clip_val=t.gradient_clip_val,
        log_every_n_steps=t.log_every_n_steps, deterministic=t.deterministic, logger=loggers or False,
        callbacks=callbacks, default_root_dir=str(run_dir), enable_progress_bar=cfg.logging.progress_bar,
        enable_model_summary=False, sync_batchnorm=t.sync_batchnorm,
        use_distributed_sampler=False,  # every datamodule of ours shards itself (exactly, for validation)
        plugins=slurm.plugins() or None,  # under srun: SLURMEnvironment (ranks/addresses from SLURM)
        **optional,
    )


# ---------------------------------------------------------------------------- the job
def train(cfg: ExperimentConfig, callbacks: list | None = None) -> dict[str, Any] | None:
    """Run one experiment; return its summary (also written to ``<run dir>/summary.json``).

    ``callbacks`` are added to the Trainer's (for programmatic use: notebooks, tests).  Returns
    None on DDP ranks other than 0, which write no records.
    """
    import lightning as L

    from platform.module import ClassificationModule, module_kwargs

    started = time.time()
    cfg = slurm.apply_allocation(cfg)  # under srun: devices/num_nodes from the allocation, or a ConfigError
    models.model_info(cfg.model.name)  # unknown model: fail before touching data or disk
    if cfg.trainer.sync_batchnorm and not torch.cuda.is_available():
        raise ConfigError("trainer.sync_batchnorm=true needs CUDA GPUs: torch's SyncBatchNorm has no CPU path "
                          "(on CPU, DDP ranks keep their own BN statistics)")
    run_dir, ckpt = resolve_run(cfg)
    os.environ[RUN_NAME_ENV] = run_dir.name
    apply_flush_denormal(cfg)
    datamodule = create_datamodule(cfg.data.name, **datamodule_options(cfg))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = ClassificationModule(**module_kwargs(cfg, datamodule.num_classes))
    if cfg.trainer.compile:  # in place: state_dict keys (and so checkpoints) stay uncompiled
        module.model.compile(backend=cfg.trainer.compile_backend)
    if cfg.model.init and ckpt is None:  # a resumed run continues from its own checkpoint instead
        from platform.init import load_initial_weights

        load_initial_weights(module.model, cfg.model.name, cfg.model.init)
    trainer = build_trainer(cfg, run_dir, callbacks)

    base = {"model": cfg.model.name, "data": cfg.data.name, "seed": cfg.seed, "recipe": cfg.recipe,
            "max_epochs": cfg.trainer.max_epochs}
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
        write_json_atomic(run_dir / "env.json", environment())
        summarize(run_dir, base, "running", 0.0, trainer.world_size)
        if ckpt:
            log.info("resuming %s from %s", run_dir, ckpt)
    status, summary = "failed", None
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None)
        status = "finished" if not trainer.interrupted else "interrupted"
    except slurm.Requeued as e:  # SIGUSR1: checkpoint saved (and job requeued); the next start resumes
        status = "interrupted"
        log.info("%s", e)
    except (KeyboardInterrupt, SystemExit):
        status = "interrupted"
        raise
    finally:
        if trainer.is_global_zero:
            summary = summarize(run_dir, base, status, time.time() - started, trainer.world_size)
    return summary


def summary_line(s: dict[str, Any]) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}%"  # noqa: E731
    return (f"{s['status']}: {s['model']} on {s['data']} | best val top-1 {fmt(s['best_val_top1'])} | "
            f"final val top-1 {fmt(s['final_val_top1'])} top-5 {fmt(s['final_val_top5'])} | "
            f"{s['epochs']} epochs | {s['wall_time_s']:.1f} s | {s['run_dir']}")


USER_ERRORS = (ConfigError, DataError, BetonError, ResumeError, models.UnknownModelError)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help", "help") for a in argv):
        print(help_text())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(argv)
        summary = train(cfg)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if summary is not None:
        print(summary_line(summary), flush=True)
    return 0 if summary is None or summary["status"] == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
