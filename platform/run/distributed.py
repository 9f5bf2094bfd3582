"""Distributed runs on any launcher: the DDP strategy with a collective timeout, and the start-up
check that every rank sees the run directory.

* :func:`strategy` -- ``DDPStrategy(timeout=trainer.dist_timeout_s)``: a dead or frozen node ends
  the job after that many seconds instead of at its time limit.
* :class:`NodeCheck` -- at start-up every rank must see the run directory (rank 0 writes a token,
  all read it back): a run root on node-local disk is a clear error, not a resume from nothing;
  every rank's host, node/local rank and ``MASTER_ADDR``/``MASTER_PORT`` go to ``env.json``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import lightning as L

from platform.run.rundir import RunDir
from platform.run.schema import ConfigError
from platform.run.slurm import job_id

log = logging.getLogger("platform.slurm")  # the name runs have always logged under


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

            env_file = RunDir(self.run_dir).env
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
