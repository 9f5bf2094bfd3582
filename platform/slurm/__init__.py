"""SLURM: the allocation as trainer defaults, safe preemption (checkpoint + requeue), job-array sweeps.

The ``slurm/*.sh`` scripts only launch ``srun python -m platform.train ...``; everything that
depends on SLURM happens here, in Python:

* :func:`apply_allocation` -- under ``srun``, ``trainer.devices`` / ``trainer.num_nodes`` default
  to what SLURM allocated (tasks per node, nodes); a config that contradicts the allocation is a
  :class:`ConfigError` at start-up instead of a DDP rendezvous that hangs.
* :func:`plugins` -- Lightning's ``SLURMEnvironment`` (ranks, world size, ``MASTER_ADDR``/port from
  SLURM) with ``auto_requeue=False``: Lightning's own SIGUSR1 handler saves a checkpoint *inside
  the signal handler* (a collective barrier that can interleave with a DDP all-reduce, a state
  taken halfway through an optimizer step), then keeps training until SLURM kills the job.
  :class:`PreemptionCallback` replaces it: the handler only sets a flag; at the next training
  batch end all ranks agree, save ``checkpoints/last.ckpt`` (atomically), rank 0 runs
  ``scontrol requeue <job>``, and the run stops with :class:`Requeued`.
* :func:`strategy` -- ``DDPStrategy(timeout=trainer.dist_timeout_s)``: a dead or frozen node ends the
  job after that many seconds instead of at its time limit.
* :class:`NodeCheck` -- at start-up every rank must see the run directory (rank 0 writes a token,
  all read it back): a run root on node-local disk is a clear error, not a resume from nothing;
  every rank's host, node/local rank and ``MASTER_ADDR``/``MASTER_PORT`` go to ``env.json``.
* :func:`is_restart` -- a requeued job (same job id, ``SLURM_RESTART_COUNT`` >= 1) resumes its
  run directory (keyed by the job id) without ``resume=auto`` on the command line.
* ``python -m platform.slurm sweep FILE [overrides...]`` / ``count FILE`` -- the older name of
  ``python -m platform.sweep --task FILE ...`` / ``--count FILE`` (``platform/slurm/__main__.py``
  calls :func:`platform.sweep.array_job`; the package keeps this library free of the sweep runner,
  which imports ``platform.train``, which imports this).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import lightning as L

from platform.schema import ConfigError, ExperimentConfig

log = logging.getLogger("platform.slurm")


_requested: int | None = (
    None  # the signal number, set by the handler (installed as soon as train() starts)
)
_PRIORITY = {
    signal.SIGINT: 1,
    signal.SIGTERM: 2,
    signal.SIGUSR1: 3,
}  # ranks that got different signals: max
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)


def _on_signal(
    signum, frame
) -> None:  # async-signal context: set a flag (a second Ctrl-C: stop at once)
    global _requested
    if signum == signal.SIGINT and _requested is not None:
        raise KeyboardInterrupt(
            "second Ctrl-C"
        )  # every file is written to a temporary name: safe to stop
    if _requested is None or _PRIORITY[signum] > _PRIORITY[_requested]:
        _requested = signum
    if signum == signal.SIGINT:
        os.write(
            2,
            b"\nCtrl-C: saving a checkpoint at the next batch end (press Ctrl-C again to stop at once)\n",
        )


def install_signal_handler(signum: int = signal.SIGUSR1) -> Any:
    """Catch a stop signal from the start (data setup can take minutes), not only during fit: the
    default action of SIGUSR1/SIGTERM would kill the task without a checkpoint.  Returns the previous
    handler (None outside the main thread, where signals cannot be caught)."""
    import threading

    if threading.current_thread() is threading.main_thread():
        return signal.signal(signum, _on_signal)
    return None


def install_stop_handlers() -> dict[int, Any]:
    """SIGUSR1, SIGTERM and SIGINT -> the flag; returns the previous handlers for :func:`restore_handlers`."""
    global _requested
    _requested = None
    previous = {s: install_signal_handler(s) for s in STOP_SIGNALS}
    return {s: h for s, h in previous.items() if h is not None}


def restore_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signum, handler)


def requested_signal() -> int | None:
    return _requested


class Interrupted(Exception):
    """Raised on every rank after a stop signal's checkpoint: the run stops here (exit 128 + signal)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class Requeued(Interrupted):
    """SIGUSR1: checkpoint saved (and the SLURM job requeued)."""

    def __init__(self, message: str, signum: int = signal.SIGUSR1) -> None:
        super().__init__(message, signum)


class Diverged(Exception):
    """A non-finite training loss, seen by all ranks at the same step: the run stops (exit 3)."""


# ---------------------------------------------------------------------------- the allocation
def in_srun_step() -> bool:
    """A task started by ``srun`` inside a job (not an ``salloc``/``sbatch`` shell, not interactive)."""
    if (
        "SLURM_JOB_ID" not in os.environ
        or "SLURM_STEP_ID" not in os.environ
        or "SLURM_PROCID" not in os.environ
    ):
        return False
    from lightning.fabric.plugins.environments import SLURMEnvironment

    return SLURMEnvironment.detect()


def _int_env(*names: str) -> int | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            m = re.match(r"\d+", value)
            if m:
                return int(m.group())
    return None


def allocation() -> tuple[int, int]:
    """(nodes, tasks per node) of this ``srun`` step."""
    nodes = _int_env("SLURM_STEP_NUM_NODES", "SLURM_NNODES", "SLURM_JOB_NUM_NODES") or 1
    tasks = _int_env("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS")
    if tasks is None:
        per_node = _int_env("SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE") or 1
        return nodes, per_node
    if tasks % nodes:
        raise ConfigError(
            f"SLURM started {tasks} tasks on {nodes} nodes, not the same number on every node; "
            f"use --ntasks-per-node (one task per device) instead of --ntasks"
        )
    return nodes, tasks // nodes


def apply_allocation(cfg: ExperimentConfig) -> ExperimentConfig:
    """Under ``srun``: devices/num_nodes from the allocation, or a clear error when they contradict it."""
    if not in_srun_step():
        return cfg
    install_signal_handler()
    nodes, per_node = allocation()
    t = cfg.trainer
    hint = "(remove the override to use the allocation, or change the sbatch options)"
    if t.devices not in ("auto", None, -1, "-1") and str(t.devices) != str(per_node):
        raise ConfigError(
            f"trainer.devices={t.devices} but SLURM started {per_node} task(s) per node "
            f"(--ntasks-per-node={per_node}); each task drives one device {hint}"
        )
    if t.num_nodes not in (1, nodes):
        raise ConfigError(
            f"trainer.num_nodes={t.num_nodes} but the SLURM job step has {nodes} node(s) "
            f"(--nodes={nodes}) {hint}"
        )
    if t.accelerator in ("gpu", "cuda"):
        import torch

        visible = torch.cuda.device_count()
        if visible < per_node:
            raise ConfigError(
                f"trainer.accelerator={t.accelerator} with {per_node} task(s) per node, but this "
                "task "
                f"sees {visible} CUDA GPU(s) (CUDA_VISIBLE_DEVICES="
                f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); ask SLURM for "
                f"--gpus-per-node={per_node} or use trainer.accelerator=cpu"
            )
    strategy = t.strategy if (t.strategy != "auto" or nodes * per_node == 1) else "ddp"
    trainer = dataclasses.replace(t, devices=per_node, num_nodes=nodes, strategy=strategy)
    if trainer != t:
        log.info(
            "SLURM allocation: %d node(s) x %d task(s) -> trainer.num_nodes=%d, trainer.devices=%d",
            nodes,
            per_node,
            nodes,
            per_node,
        )
    return dataclasses.replace(cfg, trainer=trainer)


def is_restart() -> bool:
    """This is a requeued job (its run directory holds its own earlier checkpoints)."""
    return "SLURM_JOB_ID" in os.environ and (_int_env("SLURM_RESTART_COUNT") or 0) >= 1


def job_id() -> str | None:
    """The id ``scontrol requeue`` takes: ``<array job>_<task>`` for array tasks."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def plugins() -> list:
    """Lightning's SLURM cluster environment, without its in-handler auto-requeue (see module doc)."""
    if not in_srun_step():
        return []
    from lightning.fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)]


def strategy(t, name: str | None = None) -> Any:
    """``trainer.strategy`` (or ``name``, the platform's choice for it), as a ``DDPStrategy`` carrying
    ``trainer.dist_timeout_s`` where DDP runs (``ddp_find_unused_parameters_true`` keeps that flag).

    The timeout bounds every collective (gradient all-reduce, barrier, the rendezvous itself): when
    a node dies or freezes, the survivors fail after it instead of waiting until the job's time
    limit (torch's default for gloo is 1800 s, which Lightning's ``DDPStrategy`` passes on;
    NCCL's 600 s).  Other strategies are passed to Lightning unchanged.
    """
    name = name or t.strategy
    multi = t.num_nodes > 1 or (str(t.devices).isdigit() and int(t.devices) > 1)
    find_unused = name == "ddp_find_unused_parameters_true"
    if name == "ddp" or find_unused or (name == "auto" and multi):
        from datetime import timedelta

        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(
            timeout=timedelta(seconds=float(t.dist_timeout_s)), find_unused_parameters=find_unused
        )
    return name


def callbacks(run_dir: Path, checkpointer: Any = None) -> list:
    """The stop-signal / periodic-checkpoint / divergence callback (every run), and under srun the
    check that every node sees the run directory."""
    nodes = [NodeCheck(run_dir)] if in_srun_step() else []
    return nodes + [PreemptionCallback(run_dir, checkpointer=checkpointer)]


# ---------------------------------------------------------------------------- every node sees the run
def rank_info(trainer: L.Trainer) -> dict[str, Any]:
    """Where this rank runs: recorded per rank in ``env.json`` (``ranks``)."""
    import socket

    import torch

    return {
        "global_rank": trainer.global_rank,
        "node_rank": trainer.node_rank,
        "local_rank": trainer.local_rank,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_procid": os.environ.get("SLURM_PROCID"),
        "master_addr": os.environ.get("MASTER_ADDR"),
        "master_port": os.environ.get("MASTER_PORT"),
        "torch_threads": torch.get_num_threads(),
    }


class NodeCheck(L.Callback):
    """At start-up (before any checkpoint is restored): every rank must see the run directory.

    Rank 0 writes a token file with a fresh random value into the run directory, every rank reads
    it back and the ranks compare notes (one ``all_gather_object``).  A run root on node-local
    disk (``/tmp``, ``/scratch``) would otherwise fail much later and worse: ranks on the other
    nodes resume from nothing while rank 0 resumes its checkpoint, or checkpoints vanish with the
    node.  Every rank then raises the same :class:`ConfigError`.  Rank 0 also adds every rank's
    host name, node/local rank and rendezvous address to ``env.json`` (``ranks``).
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        import uuid

        import torch.distributed as dist

        distributed = dist.is_available() and dist.is_initialized()
        token = self.run_dir / f".shared-fs-check.{job_id() or 'local'}"
        value = [uuid.uuid4().hex]
        if trainer.is_global_zero:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            tmp = token.with_name(token.name + ".tmp")
            tmp.write_text(value[0])
            os.replace(tmp, token)
        if distributed:
            dist.broadcast_object_list(
                value, src=0
            )  # after rank 0's write: the others may read now
        info = rank_info(trainer)
        try:
            info["sees_run_dir"] = token.read_text() == value[0]
        except OSError:
            info["sees_run_dir"] = False
        ranks = [info]
        if distributed:
            ranks = [None] * dist.get_world_size()
            dist.all_gather_object(ranks, info)
        blind = [r for r in ranks if not r["sees_run_dir"]]
        if trainer.is_global_zero:
            token.unlink(missing_ok=True)
            from datamodules.beton import write_json_atomic

            env_file = self.run_dir / "env.json"
            env = json.loads(env_file.read_text()) if env_file.is_file() else {}
            write_json_atomic(
                env_file, {**env, "ranks": sorted(ranks, key=lambda r: r["global_rank"])}
            )
        if blind:
            where = ", ".join(
                sorted({f"{r['hostname']} (node rank {r['node_rank']})" for r in blind})
            )
            raise ConfigError(
                f"run directory {self.run_dir} is not shared between the nodes: rank 0 on "
                f"{ranks[0]['hostname']} wrote {token.name} there, but {where} cannot read it; "
                "set run.root "
                f"to a filesystem mounted at the same path on every node (NFS, Lustre, GPFS), "
                f"not node-local disk"
            )


# ---------------------------------------------------------------------------- preemption
def requeue(job: str | None) -> bool:
    """``scontrol requeue <job>``; False (with a log line saying what to do) when that is impossible."""
    if not job:
        log.error(
            "SIGUSR1 outside a SLURM job: checkpoint saved, not requeued; continue with resume=auto"
        )
        return False
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        log.error(
            "scontrol is not on PATH in the job's environment: job %s is NOT requeued; its "
            "checkpoint is "
            "saved, resubmit the same command (the run directory resumes from it)",
            job,
        )
        return False
    # logged first: SLURM starts ending this job step as soon as the requeue is accepted
    log.info(
        "requeueing SLURM job %s (scontrol requeue); it resumes from its checkpoint when it "
        "starts again",
        job,
    )
    try:
        proc = subprocess.run(
            [scontrol, "requeue", job], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as e:
        log.error(
            "scontrol requeue %s failed (%s): job NOT requeued; its checkpoint is saved, resubmit "
            "to resume",
            job,
            e,
        )
        return False
    if proc.returncode != 0:
        log.error(
            "scontrol requeue %s failed (rc %d: %s): job NOT requeued; its checkpoint is saved, "
            "resubmit to resume",
            job,
            proc.returncode,
            (proc.stderr or proc.stdout).strip(),
        )
        return False
    log.info("requeued SLURM job %s", job)
    return True


class PreemptionCallback(L.Callback):
    """SIGUSR1 (``--signal=USR1@90``: time limit or preemption ahead), SIGTERM, Ctrl-C -> checkpoint, stop.

    The handler only sets a flag, so it can never run a checkpoint in the middle of a step or of
    another checkpoint.  At every training batch end the ranks agree (one tiny all-reduce, max over
    ranks) on three things: a stop signal, whether a periodic checkpoint is due by the clock of any
    rank (``checkpoint.every_minutes``; ``every_n_steps`` is the same on every rank), and whether the
    training loss is non-finite.  A signal: they save ``checkpoints/last.ckpt`` (temporary file and
    rename, see ``platform.runs.save_checkpoint``), rank 0 requeues a SLURM job on SIGUSR1, and every
    rank raises :class:`Requeued` / :class:`Interrupted`.  A periodic checkpoint: the same save, and
    training goes on.  A non-finite loss: every rank raises :class:`Diverged` at once; nothing is
    saved, so ``last.ckpt`` stays the last good state.  The resumed run continues mid-epoch at the
    next batch (``datamodules.resume``), so the total number of optimizer steps is unchanged.
    Not at the last batch of an epoch: there the epoch-end hooks (metrics line, checkpoint) come
    first and a signal is acted on at the start of the next epoch, with nothing more to save.
    """

    def __init__(
        self, run_dir: Path, signum: int = signal.SIGUSR1, checkpointer: Any = None
    ) -> None:
        self.run_dir = Path(run_dir)
        self.signum = signum
        self.checkpointer = (
            checkpointer  # platform.callbacks.RunCheckpoint: periodic saves and the save itself
        )

    @property
    def requested(self) -> bool:
        return _requested is not None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        install_signal_handler(self.signum)  # (again: in case something replaced it since start-up)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning 2.6 registers its own SIGTERM handler just before training (signal_connector.py): it
        # runs a collective inside the handler and kills the DDP children; ours only sets the flag
        for signum in STOP_SIGNALS:
            install_signal_handler(signum)

    def _agree(self, pl_module, loss=None) -> tuple[int | None, bool, bool]:
        import torch

        flags = torch.zeros(3, device=pl_module.device)
        flags[0] = _PRIORITY.get(_requested, 0)
        ck = self.checkpointer
        flags[1] = float(ck is not None and ck.time_due())
        if loss is not None:
            flags[2] = (~torch.isfinite(loss.detach().float())).any().float()
        code, due, bad = pl_module.trainer.strategy.reduce(flags, reduce_op="max").tolist()
        signum = {v: k for k, v in _PRIORITY.items()}.get(int(code))
        return signum, bool(due), bool(bad)

    def _stop(self, trainer: L.Trainer, signum: int, saved: bool) -> None:
        name = signal.Signals(signum).name
        where = (
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}, step {trainer.global_step}"
        )
        if signum == signal.SIGUSR1:
            if trainer.is_global_zero and saved:
                requeue(job_id())
            trainer.strategy.barrier("preempted")
            raise Requeued(f"stopped for requeue at {where}")
        raise Interrupted(f"{name} at {where}", signum)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        signum, _, _ = self._agree(pl_module)
        if (
            signum is not None
        ):  # last.ckpt is the end of the previous epoch (or the run has not started)
            if trainer.is_global_zero:
                log.info(
                    "%s: stopping at the start of epoch %d (last.ckpt holds the end of the "
                    "previous one)",
                    signal.Signals(signum).name,
                    trainer.current_epoch + 1,
                )
            self._stop(trainer, signum, saved=trainer.current_epoch > 0)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        signum, time_due, nonfinite = self._agree(
            pl_module, loss if hasattr(loss, "detach") else None
        )
        if nonfinite:
            lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
            last = self.run_dir / "checkpoints" / "last.ckpt"
            kept = (
                f"last good checkpoint: {last}"
                if last.is_file()
                else "no checkpoint had been saved yet"
            )
            raise Diverged(
                f"non-finite training loss ({float(loss):g}) at step {trainer.global_step} (epoch "
                f"{trainer.current_epoch + 1}, batch {batch_idx + 1}) with lr {lr:.4g}; {kept}; "
                f"lower optim.lr or add trainer.gradient_clip_val"
            )
        if batch_idx + 1 >= trainer.num_training_batches:
            return
        ck = self.checkpointer
        if signum is not None:
            if trainer.is_global_zero:
                log.info(
                    "%s: saving a checkpoint at epoch %d, batch %d (step %d)",
                    signal.Signals(signum).name,
                    trainer.current_epoch + 1,
                    batch_idx + 1,
                    trainer.global_step,
                )
            if ck is not None:
                ck.save(trainer, "signal")
            else:  # used on its own (tests, notebooks)
                from platform.runs import save_checkpoint

                save_checkpoint(trainer, self.run_dir / "checkpoints" / "last.ckpt", "signal")
            if trainer.is_global_zero:
                log.info("checkpoint saved: %s", self.run_dir / "checkpoints" / "last.ckpt")
            self._stop(trainer, signum, saved=True)
        if ck is not None and (time_due or ck.step_due(trainer)):
            ck.save(trainer, "step")
