"""``python -m platform.train [key=value ...]``: config -> datamodule + module + Trainer -> run dir.

With no arguments it trains a CIFAR-style ResNet-20 on the embedded digits through the
full ImageNet path (FFCV .beton -> FFCV Loader -> ClassificationModule -> Lightning ->
W&B offline + run record) on the CPU, in a few minutes.  ``--help`` lists every key.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import torch

import models
from datamodules.beton import BetonError, DataError, SampleError, write_json_atomic
from platform.run import cli, slurm, stopping
from platform.run.callbacks import CONFIG_KEY, ConfigInCheckpoint
from platform.run.compose import (
    apply_flush_denormal,
    build_datamodule,
    build_module,
    build_trainer,
    pin_recorded_knobs,
)
from platform.run.config import (
    from_dict,
    help_text,
    load_config,
    resume_differences,
    to_dict,
    to_yaml,
)
from platform.run.console import (
    print_run_start,
    quiet_library_chatter,
    start_console_log,
    stop_console_log,
)
from platform.run.module import checkpoint_hparams, recorded_knobs
from platform.run.rundir import (
    CheckpointError,
    LogTail,
    RunBusyError,
    RunDir,
    RunLock,
    RunSummary,
    RunWriteError,
    environment,
    error_record,
    lock_holder,
    newest_valid_checkpoint,
    read_metrics,
    read_summary,
    resumable_checkpoints,
    verify_checkpoint,
)
from platform.run.schema import ConfigError, ExperimentConfig

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
    if any(
        os.environ.get(k, "0") != "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")
    ):
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
    return (
        f"{cfg.model.name}-{cfg.data.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    )


def _same_experiment(a: ExperimentConfig, b: ExperimentConfig) -> bool:
    strip = lambda c: {**to_dict(c), "run": None, "resume": None}  # noqa: E731
    return strip(a) == strip(b)


def saved_config(run_dir: Path) -> ExperimentConfig | None:
    """The run's saved configuration (None: it has none); unreadable: never resume blindly."""
    try:
        return RunDir(run_dir).read_config()
    except ConfigError as e:
        raise ResumeError(f"{e}; it cannot be resumed safely, choose another run.name") from None


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
        log.warning(
            "%s; %s", p, f"falling back to {ckpt}" if ckpt else "no other checkpoint is valid"
        )
    if ckpt is None and problems:
        raise ResumeError(
            f"no valid checkpoint in {run_dir / 'checkpoints'} ({'; '.join(problems)}); "
            f"move the directory away to start again, or resume=PATH from a copy you trust"
        )
    return ckpt


def _branch_dir(cfg: ExperimentConfig, root: Path, ckpt: Path) -> Path:
    """The directory a ``resume=PATH`` run writes: ``run.root/run.name`` -- never the checkpoint's own
    run directory unless run.name names it, so another run's checkpoint, summary and log stay as
    they are (the new run starts from the checkpoint and records where it came from)."""
    source = RunDir.of_checkpoint(ckpt.resolve()).path if RunDir.holds(ckpt) else None
    name = cfg.run.name or (default_run_name(cfg) if os.environ.get("SLURM_JOB_ID") else None)
    if name is None:
        if source is not None:
            raise ResumeError(
                f"resume={cfg.resume} belongs to the run {source}, which this run would write into; "
                f"branch into a new directory with run.name=NEW (or continue that run with "
                f"resume=auto run.name={source.name} run.root={source.parent})"
            )
        return root / default_run_name(cfg)
    run_dir = root / name
    if source is not None and run_dir.resolve() == source:
        return run_dir  # run.name names the checkpoint's own run: it continues in place
    existing = resumable_checkpoints(run_dir)
    if (existing or saved_config(run_dir) is not None) and not slurm.is_restart():
        raise ResumeError(
            f"resume={cfg.resume}: run directory {run_dir} already holds another run"
            f"{f' ({existing[0]})' if existing else ''}; choose a new run.name to branch into"
        )
    return run_dir


def resolve_run(cfg: ExperimentConfig) -> tuple[Path, Path | None]:
    """(run directory, checkpoint to resume from or None).  Reads, never writes.  The checkpoint,
    once its digest matched, is read as weights only (:func:`platform.run.init.read_checkpoint`): a
    crafted pickle whose digest was replaced with it is a one-line :class:`ResumeError` here, not a
    traceback in Lightning's loader after the run was marked started."""
    run_dir, ckpt = _resolve_run(cfg)
    if ckpt is not None:
        _check_loadable(ckpt, cfg)
    return run_dir, ckpt


def _check_loadable(ckpt: Path, cfg: ExperimentConfig) -> None:
    from platform.run.init import read_checkpoint

    accepted = (
        "give another checkpoint (e.g. the run's best-epoch*.ckpt) with resume=PATH"
        if cfg.resume not in (None, "auto", "must")
        else "move the run directory away to start again, or resume=PATH from a copy you trust"
    )
    try:
        read_checkpoint(ckpt, "resume", accepted)
    except ConfigError as e:
        raise ResumeError(str(e)) from None


def _resolve_run(cfg: ExperimentConfig) -> tuple[Path, Path | None]:
    root = Path(cfg.run.root)
    if cfg.resume not in (None, "auto", "must"):
        ckpt = Path(cfg.resume).expanduser()
        if not ckpt.is_file():
            raise ResumeError(
                f"resume={cfg.resume}: no such checkpoint file "
                "(use resume=auto to continue this run's last.ckpt, or give an existing .ckpt "
                "path)"
            )
        try:
            verify_checkpoint(ckpt)
        except CheckpointError as e:
            raise ResumeError(
                f"resume={cfg.resume}: {e}; give another checkpoint (e.g. the run's "
                f"best-epoch*.ckpt) or resume=auto"
            ) from None
        run_dir = _branch_dir(cfg, root, ckpt)
        if slurm.is_restart() and resumable_checkpoints(run_dir):  # a requeued job: its own state
            return run_dir, pick_checkpoint(run_dir)
        return run_dir, ckpt
    name = cfg.run.name or (default_run_name(cfg) if os.environ.get("SLURM_JOB_ID") else None)
    if cfg.resume in ("auto", "must") and name is None:
        twin = _latest_unfinished_twin(cfg, root)
        if twin is not None:
            return twin, pick_checkpoint(twin)
    run_dir = root / (name or default_run_name(cfg))
    existing = resumable_checkpoints(run_dir)
    if cfg.resume in ("auto", "must") and not existing:
        _nothing_to_resume(cfg, root, name)
    if existing and cfg.resume is None and not slurm.is_restart():  # a requeued job resumes itself
        raise ResumeError(
            f"run directory {run_dir} already holds {existing[0]}; pass resume=auto to continue it "
            f"or choose another run.name"
        )
    return run_dir, pick_checkpoint(run_dir) if existing else None


def _nothing_to_resume(cfg: ExperimentConfig, root: Path, name: str | None) -> None:
    """resume=auto found no run to continue: say so (it starts fresh); resume=must refuses."""
    looked = (
        f"run {root / name}" if name else f"an unfinished run with this configuration under {root}"
    )
    if cfg.resume == "must":
        raise ResumeError(
            f"resume=must: looked for {looked}; none has a checkpoint to continue, so nothing "
            "was started (resume=auto would start a fresh run)"
        )
    log.warning("resume=auto: looked for %s; none matched, starting a fresh run", looked)


def checkpoint_config(ckpt: Path) -> tuple[ExperimentConfig | None, str | None]:
    """(the configuration stored in ``ckpt``, else None; the model name in its hyper-parameters)."""
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 -- verified before; a read error here is one line too
        raise ResumeError(f"{ckpt}: cannot be read ({type(e).__name__}: {e})") from None
    model = (state.get("hyper_parameters") or {}).get("model_name")
    stored = state.get(CONFIG_KEY)
    if not isinstance(stored, dict):
        return None, model
    try:
        return from_dict(stored), model
    except Exception as e:  # noqa: BLE001
        raise ResumeError(
            f"{ckpt}: its stored configuration cannot be read ({type(e).__name__}: {e})"
        ) from None


def _refuse_differences(what: str, run_dir: Path, saved: ExperimentConfig, cfg) -> None:
    diffs = resume_differences(saved, cfg)
    if diffs:
        listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diffs[:8]) + (
            " ..." if len(diffs) > 8 else ""
        )
        raise ResumeError(
            f"resume of {run_dir} refused: the configuration differs from {what} in "
            f"{len(diffs)} key(s) that a resumed run may not change ({listed}); nothing was "
            f"written. Start a new run (another run.name), or drop these overrides"
        )


def check_resume_config(
    run_dir: Path, cfg: ExperimentConfig, ckpt: Path | None = None
) -> ExperimentConfig | None:
    """Refuse a resume whose configuration differs from the saved one (the run's config.yaml, and the
    checkpoint's own copy) in a key that may not change."""
    saved = saved_config(run_dir)
    hparams = checkpoint_hparams(ckpt) if ckpt is not None else {}
    if saved is not None:  # an old run's config.yaml leaves a changed knob null: its recorded value
        saved = pin_recorded_knobs(saved, hparams)
        _refuse_differences("its config.yaml", run_dir, saved, cfg)
    if ckpt is None:
        return saved
    stored, model = checkpoint_config(ckpt)
    if stored is not None:
        stored = pin_recorded_knobs(stored, hparams)
        _refuse_differences(f"the configuration stored in {ckpt}", run_dir, stored, cfg)
        return saved or stored
    if model is not None and model != cfg.model.name:
        raise ResumeError(
            f"resume of {run_dir} refused: {ckpt} holds model {model}, not model={cfg.model.name}; "
            f"resume with model={model}, or start a new run (another run.name)"
        )
    log.warning(
        "%s stores no configuration (written before checkpoints carried one): the resume is "
        "checked against %s only",
        ckpt,
        "config.yaml" if saved is not None else "its model name",
    )
    return saved


def resume_command(run_dir: Path, argv: list[str] | None = None) -> str:
    argv = list(sys.argv[1:] if argv is None else argv)
    kept = [a for a in argv if a.split("=", 1)[0].lstrip("+") not in ("resume", "run.name")]
    return shlex.join(
        ["python", "-m", "platform.train", *kept, "resume=auto", f"run.name={run_dir.name}"]
        + (
            [f"run.root={run_dir.parent}"]
            if not any(a.startswith("run.root=") for a in kept) and str(run_dir.parent) != "runs"
            else []
        )
    )


# ---------------------------------------------------------------------------- the job
EXIT = {
    "finished": 0,
    "failed": 1,
    "diverged": 3,
}  # interrupted: 128 + the signal (SIGINT 130, SIGTERM 143)
last_summary: dict[str, Any] | None = (
    None  # the summary of the latest train() in this process (for main)
)


def train(
    cfg: ExperimentConfig, callbacks: list | None = None, *, keep_console_log: bool = False
) -> dict[str, Any] | None:
    """Run one experiment; return its summary (also written to ``<run dir>/summary.json``).

    ``callbacks`` are added to the Trainer's (for programmatic use: notebooks, tests).  Returns
    None on DDP ranks other than 0, which write no records.  SIGTERM, SIGINT and SIGUSR1 are caught
    for the duration (``platform.run.slurm``), and a tail of the log is kept for a failure's summary.
    The console goes to ``train.log`` until the run ends (``keep_console_log``: until the caller's
    :func:`platform.run.console.stop_console_log`, so that ``main``'s closing line is in the log too).
    """
    global last_summary
    last_summary = None
    previous = stopping.install_stop_handlers()
    tail = LogTail().attach()
    try:
        return _train(cfg, callbacks, tail)
    finally:
        tail.detach()
        stopping.restore_handlers(previous)
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


@dataclasses.dataclass
class _Run:
    """What the set-up of one training segment built (the fit and the closing record use it)."""

    run_dir: Path
    ckpt: Path | None
    datamodule: Any
    module: Any
    trainer: Any
    record: RunSummary
    base: dict[str, Any]


@dataclasses.dataclass
class _Outcome:
    status: str = "failed"
    error: BaseException | None = None
    signum: int | None = None


def _check_start(cfg: ExperimentConfig) -> ExperimentConfig:
    """Refusals that need no data and no disk: the allocation, the model name, SyncBatchNorm."""
    quiet_library_chatter()  # Lightning/W&B chatter filtered where it is raised, real warnings kept
    cfg = slurm.apply_allocation(
        cfg
    )  # under srun: devices/num_nodes from the allocation, or a ConfigError
    models.model_info(cfg.model.name)  # unknown model: fail before touching data or disk
    if cfg.trainer.sync_batchnorm and not torch.cuda.is_available():
        raise ConfigError(
            "trainer.sync_batchnorm=true needs CUDA GPUs: torch's SyncBatchNorm has no CPU path "
            "(on CPU, DDP ranks keep their own BN statistics)"
        )
    return cfg


def _previous_segment(
    cfg: ExperimentConfig, run_dir: Path, ckpt: Path | None
) -> tuple[dict[str, Any] | None, bool]:
    """(the summary of the run resumed or None, whether all its epochs are done already)."""
    if not (cfg.resume is not None or slurm.is_restart()):
        return None, False
    previous = read_summary(run_dir)
    check_resume_config(run_dir, cfg, ckpt)
    done = int((previous or {}).get("epochs") or 0)
    finished = (previous or {}).get("status") == "finished"
    if finished and cfg.trainer.max_epochs <= done:
        log.info(
            "%s finished all %d epochs already: nothing to do (pass a larger trainer.max_epochs "
            "with "
            "resume=auto to train on)",
            run_dir,
            done,
        )
        return previous, True
    if finished:
        log.info(
            "%s finished %d epochs; continuing it to trainer.max_epochs=%d",
            run_dir,
            done,
            cfg.trainer.max_epochs,
        )
    return previous, False


def _write_run_files(cfg: ExperimentConfig, run_dir: Path) -> None:
    """``config.yaml`` and ``env.json``, each written whole (temporary file + rename)."""
    from datamodules.beton import atomic_path

    try:
        with atomic_path(RunDir(run_dir).config) as tmp:
            tmp.write_text(to_yaml(cfg))
        write_json_atomic(RunDir(run_dir).env, environment())
    except OSError as e:
        raise RunWriteError(getattr(e, "filename", None) or run_dir, e) from None


def _copy_history(run_dir: Path, ckpt: Path) -> None:
    """A branch (``resume=PATH`` into a new directory) starts with the source run's ``metrics.jsonl``
    up to the checkpoint's step, so its records count every epoch its weights have seen."""
    source = RunDir.of_checkpoint(ckpt.resolve()).path
    if not RunDir.holds(ckpt) or RunDir(run_dir).metrics.exists():
        return
    step = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True).get("global_step", 0)
    rows = [r for r in read_metrics(source) if int(r.get("step", 0)) <= step]
    if rows:
        from datamodules.beton import atomic_path

        with atomic_path(RunDir(run_dir).metrics) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _set_up(
    cfg: ExperimentConfig,
    run_dir: Path,
    ckpt: Path | None,
    callbacks: list | None,
    previous: dict[str, Any] | None,
) -> _Run:
    """Datamodule, module, Trainer and the run's first records (rank 0)."""
    import lightning as L

    apply_flush_denormal(cfg)
    datamodule = build_datamodule(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = build_module(cfg, datamodule.num_classes, initial_weights=ckpt is None)
    holder: dict[str, RunSummary] = {}
    trainer = build_trainer(
        cfg,
        run_dir,
        [*(callbacks or []), ConfigInCheckpoint(to_dict(cfg))],
        skips_blocks=models.skips_blocks(module.model),
        on_saved=lambda: holder["s"].heartbeat(),
    )
    base = {
        "model": cfg.model.name,
        "data": cfg.data.name,
        "seed": cfg.seed,
        "recipe": cfg.recipe,
        "max_epochs": cfg.trainer.max_epochs,
    }
    if ckpt is not None and cfg.resume not in (None, "auto"):
        base["resumed_from"] = str(Path(ckpt).resolve())  # a branch: where its history is
    if trainer.is_global_zero:
        start_console_log(run_dir)  # train.log: this segment's console, appended
        base.update(
            print_run_start(cfg, module, datamodule, run_dir, trainer.world_size)
        )  # + params, MACs
    record = holder["s"] = RunSummary(run_dir, base, trainer.world_size, previous)
    if trainer.is_global_zero:
        _write_run_files(cfg, run_dir)
        if "resumed_from" in base:
            _copy_history(run_dir, Path(base["resumed_from"]))
        record.write("running")
        if ckpt:
            log.info("resuming %s from %s", run_dir, ckpt)
    return _Run(run_dir, ckpt, datamodule, module, trainer, record, base)


def _no_batch_error(cfg: ExperimentConfig, run: _Run) -> EmptyTrainingError:
    dm = run.datamodule
    n = getattr(dm, "train_size", None) or len(getattr(dm, "train_set", None) or ()) or None
    b = cfg.data.batch_size
    return EmptyTrainingError(
        f"no training batch: data={cfg.data.name} has {n if n is not None else 'too few'} training "
        f"examples for data.batch_size={b} over {run.trainer.world_size} device(s) (incomplete "
        "batches are "
        f"dropped), or trainer.limit_train_batches={cfg.trainer.limit_train_batches}; lower "
        f"data.batch_size or use a larger dataset"
    )


def _fit(cfg: ExperimentConfig, run: _Run, outcome: _Outcome) -> None:
    """``trainer.fit``, its ending recorded in ``outcome``; errors other than a stop or a divergence
    propagate."""
    trainer = run.trainer
    steps_before = trainer.global_step
    try:
        trainer.fit(
            run.module,
            datamodule=run.datamodule,
            ckpt_path=str(run.ckpt) if run.ckpt else None,
            weights_only=True,
        )
        if trainer.interrupted:
            outcome.status, outcome.signum = "interrupted", signal.SIGINT
        elif trainer.global_step == steps_before and trainer.current_epoch < cfg.trainer.max_epochs:
            raise _no_batch_error(cfg, run)
        else:
            outcome.status = "finished"
    except stopping.Interrupted as e:  # a stop signal: checkpoint saved (and a SLURM job requeued)
        outcome.status, outcome.signum, outcome.error = "interrupted", e.signum, e
        log.info("%s", e)
    except stopping.Diverged as e:
        outcome.status, outcome.error = "diverged", e
    except (KeyboardInterrupt, SystemExit) as e:
        outcome.status, outcome.signum, outcome.error = "interrupted", signal.SIGINT, e
        raise
    except BaseException as e:
        outcome.error = e
        raise


def _record_outcome(run: _Run, outcome: _Outcome, tail: LogTail) -> dict[str, Any] | None:
    """Rank 0 writes the segment's summary (exit code, reason, resume command) and ends W&B."""
    global last_summary
    status, error, signum = outcome.status, outcome.error, outcome.signum
    code = 128 + int(signum) if status == "interrupted" else EXIT.get(status, 1)
    if status == "failed" and isinstance(error, USER_ERRORS):
        code = 2  # the code main() exits with for these (an empty training set, a data error)
    if not run.trainer.is_global_zero:
        return None
    extra: dict[str, Any] = {"exit_code": code, "global_step": run.trainer.global_step}
    partial = getattr(run.trainer.lightning_module, "val_partial", None)
    if partial:  # a limited validation (limit_val_batches, fast_dev_run): said, never a failure
        extra.update(val_partial=True, val_seen=partial["seen"], val_size=partial["of"])
    if status != "finished":
        extra["resume_command"] = resume_command(run.run_dir)
    if status == "interrupted":
        extra["reason"] = (
            str(error) if isinstance(error, stopping.Interrupted) else "SIGINT (Ctrl-C)"
        )
    elif error is not None:
        extra["reason"] = f"{type(error).__name__}: {error}".splitlines()[0]
        extra["error"] = error_record(error, tail)
    try:
        summary = last_summary = run.record.write(status, **extra)
    except RunWriteError as e:
        log.error("%s (the summary of this run is the one written last)", e)
        summary = last_summary = {
            **run.base,
            "status": status,
            "run_dir": str(run.run_dir),
            "epochs": None,
            "best_val_top1": None,
            "final_val_top1": None,
            "final_val_top5": None,
            "wall_time_s": time.time() - run.record.started,
            **extra,
        }
    _finalize_wandb(run.trainer, status, code)
    return summary


def _train(cfg: ExperimentConfig, callbacks: list | None, tail: LogTail) -> dict[str, Any] | None:
    global last_summary
    cfg = _check_start(cfg)
    run_dir, ckpt = resolve_run(
        cfg
    )  # reads only: every refusal below leaves the directory as it was
    rank0 = launch_rank_zero()
    os.environ[RUN_NAME_ENV] = run_dir.name
    if ckpt is not None:  # keep training the variant the checkpoint was trained as (issue 24)
        hparams = checkpoint_hparams(ckpt)
        if hparams.get("model_name") == cfg.model.name:
            recorded_knobs(cfg.model.name, hparams.get("model_knobs"), ckpt)  # logs an old one
        cfg = pin_recorded_knobs(cfg, hparams)
    previous, done = _previous_segment(cfg, run_dir, ckpt)
    if done:
        last_summary = {**previous, "nothing_done": True}
        return last_summary if rank0 else None
    created = not run_dir.exists()
    lock = RunLock(run_dir).acquire() if rank0 else None
    try:  # set-up: a failure here leaves no run directory behind (a fresh run) or the old records
        run = _set_up(cfg, run_dir, ckpt, callbacks, previous)
    except BaseException:
        stop_console_log()
        if lock is not None:
            lock.release()
        if rank0 and created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    outcome = _Outcome()
    setup_failed = False
    try:
        _fit(cfg, run, outcome)
    except (DataError, BetonError) as e:
        # the data's own set-up (inside fit: a missing path) leaves nothing of a fresh run; a defect
        # of a sample in data that exists (SampleError) is a failure worth its record
        setup_failed = created and run.trainer.global_step == 0 and not isinstance(e, SampleError)
        raise
    finally:
        if setup_failed:
            _finalize_wandb(run.trainer, "failed", cli.EXIT_USER_ERROR)
        else:
            summary = _record_outcome(run, outcome, tail)
        if lock is not None:
            lock.release()
        if setup_failed and rank0:
            stop_console_log()
            shutil.rmtree(run_dir, ignore_errors=True)
    return summary


def summary_line(s: dict[str, Any]) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}%"  # noqa: E731
    line = (
        f"{s['status']}: {s['model']} on {s['data']} | best val top-1 {fmt(s['best_val_top1'])} | "
        f"final val top-1 {fmt(s['final_val_top1'])} top-5 {fmt(s['final_val_top5'])} | "
        f"{s['epochs']} epochs | {float(s['wall_time_s'] or 0):.1f} s | {s['run_dir']}"
    )
    if s.get("val_partial"):
        line += f" | partial validation: {s.get('val_seen')} of {s.get('val_size')} examples"
    if s.get("best_epoch") is not None:  # people count epochs from 1; files from 0
        ckpt = s.get("best_checkpoint")
        line += f" | best epoch {int(s['best_epoch']) + 1}" + (f": {ckpt}" if ckpt else "")
    if s.get("reason"):
        line += f" | {s['reason']}"
    if s.get("status") not in ("finished", None) and s.get("resume_command"):
        line += f" | resume with: {s['resume_command']}"
    return line


USER_ERRORS = (
    ConfigError,
    DataError,
    BetonError,
    ResumeError,
    RunBusyError,
    models.UnknownModelError,
)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    finally:
        stop_console_log()  # after the closing line, which train.log keeps too


@cli.entry(USER_ERRORS)
def _main(argv: list[str]) -> int:
    """Exit codes: 0 finished (or already finished); 1 failed (a record that cannot be written: one
    line naming the file); 2 a configuration, data or resume error (one line, nothing written);
    3 diverged; 128 + signal when stopped by a signal after saving (SIGINT 130, SIGTERM 143)."""
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
    except RunWriteError as e:
        print(
            f"error: {e}; the previous checkpoint and records are intact (free space or fix the "
            f"permissions, then resume with resume=auto)",
            file=sys.stderr,
        )
        return 1
    except (KeyboardInterrupt, SystemExit):
        if last_summary is not None:
            print(summary_line(last_summary), flush=True)
        return 130
    if summary is None:
        return 0
    if summary.get("nothing_done"):
        print(
            f"already finished, nothing to do: {summary_line(summary)} (to train longer: a larger "
            f"trainer.max_epochs with resume=auto)",
            flush=True,
        )
        return 0
    print(summary_line(summary), flush=True)
    return int(summary.get("exit_code", EXIT.get(summary["status"], 1)))


if __name__ == "__main__":
    sys.exit(main())
