"""Mid-epoch resume for training loaders that have no state of their own.

Lightning 2.6 restores the step and the batch progress from a checkpoint saved mid-epoch (the
SLURM preemption checkpoint), but a non-stateful loader starts its epoch again from batch 0:
the resumed epoch would then see its first batches twice and its last ones never.  Our orders
are deterministic in (seed, epoch), so the loader only has to leave out the batches the
interrupted run already trained on: :class:`ResumableLoader` does that on its first pass.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

log = logging.getLogger(__name__)


def batches_done(trainer: Any) -> int:
    """Training batches of the current epoch already done, read when its first batch is fetched.

    Lightning resets the epoch's batch progress to 0 at the start of an epoch and restores it from
    a mid-epoch checkpoint; a batch counts as ``ready`` only after it was fetched.
    """
    try:
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.ready)
    except AttributeError:  # no trainer (a loader used on its own)
        return 0


class ResumableLoader:
    """Wraps a training loader; its first iteration skips the batches :func:`batches_done` reports."""

    def __init__(self, loader: Any, trainer: Any) -> None:
        self.loader, self.trainer = loader, trainer
        self._first = True

    # "stateful" for Lightning (it then knows a mid-epoch resume is handled and does not warn);
    # the position itself comes from Lightning's own restored batch progress
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        if "loader" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["loader"], name)

    def __iter__(self):
        return _LazyIterator(self)

    def _start(self):
        """The real iterator, made at the first ``next()``: by then Lightning has restored the loops.

        (Lightning calls ``iter()`` once early, to count the batches for the LR schedule, before a
        checkpoint's epoch and batch progress are restored, and keeps that iterator for a resumed
        epoch; creating it lazily gives the resumed epoch its own order and position.)
        """
        trainer, loader = self.trainer, self.loader
        if trainer is not None and hasattr(
            loader, "next_epoch"
        ):  # FFCV: the order of (seed, epoch)
            loader.next_epoch = trainer.current_epoch
        skip = batches_done(trainer) if self._first else 0
        self._first = False
        if not skip:
            return iter(loader)
        log.info(
            "mid-epoch resume: leaving out the %d training batches of this epoch already trained "
            "on",
            skip,
        )
        if hasattr(loader, "next_traversal_order"):  # FFCV: drop the indices, do not decode them
            original = loader.next_traversal_order

            def once():
                loader.next_traversal_order = original
                return original()[skip * loader.batch_size : len(loader) * loader.batch_size]

            loader.next_traversal_order = once
            return iter(loader)
        return itertools.islice(iter(loader), skip, None)


class _LazyIterator:
    def __init__(self, owner: ResumableLoader) -> None:
        self.owner, self.iterator = owner, None

    def __iter__(self):
        return self

    def __next__(self):
        if self.iterator is None:
            self.iterator = self.owner._start()
        return next(self.iterator)
