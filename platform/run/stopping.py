"""How a run stops, on every run (a laptop's too, not only under SLURM): stop signals and the
callback that acts on them, periodic checkpoints, divergence.

* :func:`install_stop_handlers` -- SIGUSR1 (``--signal=USR1@90``: time limit or preemption ahead),
  SIGTERM and Ctrl-C only set a flag, from the start of ``train()`` (data setup can take minutes).
* :class:`PreemptionCallback` -- at the next training batch end all ranks agree, save
  ``checkpoints/last.ckpt`` (atomically), rank 0 runs ``scontrol requeue <job>`` on SIGUSR1
  (:func:`platform.run.slurm.requeue`), and the run stops with :class:`Requeued` /
  :class:`Interrupted`; the same agreement takes periodic checkpoints and stops a diverged run
  (:class:`Diverged`).  It replaces Lightning's own SIGUSR1 handler, which saves a checkpoint
  *inside the signal handler* (a collective that can interleave with a DDP all-reduce).
* :func:`callbacks` -- the callbacks every run gets from here (and, under ``srun``,
  :class:`platform.run.distributed.NodeCheck`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L

from platform.run.distributed import NodeCheck
from platform.run.rundir import RunDir
from platform.run.slurm import in_srun_step, job_id, requeue

log = logging.getLogger("platform.slurm")  # the name runs have always logged under

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


def callbacks(run_dir: Path, checkpointer: Any = None) -> list:
    """The stop-signal / periodic-checkpoint / divergence callback (every run), and under srun the
    check that every node sees the run directory."""
    nodes = [NodeCheck(run_dir)] if in_srun_step() else []
    return nodes + [PreemptionCallback(run_dir, checkpointer=checkpointer)]


class PreemptionCallback(L.Callback):
    """SIGUSR1 (``--signal=USR1@90``: time limit or preemption ahead), SIGTERM, Ctrl-C -> checkpoint, stop.

    The handler only sets a flag, so it can never run a checkpoint in the middle of a step or of
    another checkpoint.  At every training batch end the ranks agree (one tiny all-reduce, max over
    ranks) on three things: a stop signal, whether a periodic checkpoint is due by the clock of any
    rank (``checkpoint.every_minutes``; ``every_n_steps`` is the same on every rank), and whether the
    training loss is non-finite.  A signal: they save ``checkpoints/last.ckpt`` (temporary file and
    rename, see ``platform.run.rundir.save_checkpoint``), rank 0 requeues a SLURM job on SIGUSR1, and every
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
            checkpointer  # platform.run.callbacks.RunCheckpoint: periodic saves and the save itself
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
            last = RunDir(self.run_dir).last
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
                from platform.run.rundir import save_checkpoint

                save_checkpoint(trainer, RunDir(self.run_dir).last, "signal")
            if trainer.is_global_zero:
                log.info("checkpoint saved: %s", RunDir(self.run_dir).last)
            self._stop(trainer, signum, saved=True)
        if ck is not None and (time_due or ck.step_due(trainer)):
            ck.save(trainer, "step")
