"""SLURM: the allocation as trainer defaults, the job's identity, requeueing.

The ``slurm/*.sh`` scripts only launch ``srun python -m platform.train ...``; what depends on SLURM
happens here, in Python:

* :func:`apply_allocation` -- under ``srun``, ``trainer.devices`` / ``trainer.num_nodes`` default
  to what SLURM allocated (tasks per node, nodes); a config that contradicts the allocation is a
  :class:`ConfigError` at start-up instead of a DDP rendezvous that hangs.
* :func:`plugins` -- Lightning's ``SLURMEnvironment`` (ranks, world size, ``MASTER_ADDR``/port from
  SLURM) with ``auto_requeue=False``: :class:`platform.run.stopping.PreemptionCallback` requeues
  (:func:`requeue`) after the ranks agreed and saved, never inside the signal handler.
* :func:`is_restart` -- a requeued job (same job id, ``SLURM_RESTART_COUNT`` >= 1) resumes its
  run directory (keyed by the job id) without ``resume=auto`` on the command line.
* ``python -m platform.slurm sweep FILE`` / ``count FILE`` is the older name of
  ``python -m platform.sweep --task FILE`` / ``--count FILE`` (``platform/papers/sweep_alias.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import subprocess

from platform.run.schema import ConfigError, ExperimentConfig

log = logging.getLogger("platform.slurm")  # the name runs have always logged under


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
