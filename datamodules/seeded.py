"""Seeded augmentation: every random draw for a sample is a pure function of (seed, epoch, index).

FFCV 1.0.2's ops (``RandomResizedCropRGBImageDecoder``, ``RandomHorizontalFlip``,
``RandomTranslate``) draw from numba's per-thread ``np.random`` state, which nothing seeds: two
runs with the same seed augment differently.  (FFCV's own seeded ops, ``ImageMixup``/``LabelMixup``,
seed with ``indices[-1]``: per batch, and the same in every epoch.)  Here each op reseeds numba's
generator *per sample* with :func:`sample_seed` (a counter-based hash of the run seed, the epoch and
the dataset index) before its draws, so the worker count (numba threads), DDP sharding and a
resume cannot change what a sample draws -- only (seed, epoch, index) can.

The epoch reaches the compiled code through a :class:`Clock`: a two-int64 array ``[seed, epoch]``
that the jitted ops read through its address (numba freezes captured arrays as constants, an
address it does not), set by the training loader at the start of each epoch
(``ffcv.GuardedLoader.__iter__``).  No recompilation per epoch.

The torchvision path uses the same seeds: :class:`SeededDataset` runs each sample's transform
under ``torch.manual_seed(sample_seed(seed, epoch, index))`` (in a forked RNG state), the epoch in
shared memory set by :class:`EpochSampler` (Lightning's ``set_epoch``), so persistent workers see it.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
# Independent streams of one sample: each op seeds with ``sample_seed(seed + stream, epoch, index)``
# so that its draws do not repeat another op's (a flip seeded like the crop would flip exactly when
# the crop's first uniform draw is small).  The torchvision path's crop/flip/translate draw from
# torch's RNG seeded with stream 0.
STREAM_CROP = 0
STREAM_COLOR = 1 << 32
STREAM_SCALE = 2 << 32
STREAM_FLIP = 3 << 32
STREAM_TRANSLATE = 4 << 32


# --------------------------------------------------------------------------- the seed of a sample
def _splitmix64_py(x: int) -> int:
    x = (x + _GOLDEN) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def sample_seed_py(seed: int, epoch: int, index: int) -> int:
    """The 32-bit seed of sample ``index`` in ``epoch`` of a run seeded ``seed`` (pure Python)."""
    h = _splitmix64_py(int(seed) & _MASK)
    h = _splitmix64_py(h ^ (int(epoch) & _MASK))
    h = _splitmix64_py(h ^ (int(index) & _MASK))
    return h >> 32


def _jit(fn: Callable) -> Callable:
    from numba import njit

    return njit(fn, nogil=True, cache=False)


def _numba_helpers() -> tuple[Callable, Callable]:
    """``(sample_seed, read_clock)`` compiled with numba (built on first use)."""
    from numba import carray, types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def _as_pointer(typingctx, address):
        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], cgutils.voidptr_t)

        return types.voidptr(address), codegen

    def mix(x):  # splitmix64 in uint64 arithmetic (wraps modulo 2**64 as in the Python twin)
        x = x + np.uint64(_GOLDEN)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))

    mix_c = _jit(mix)

    def sample_seed(seed, epoch, index):
        h = mix_c(np.uint64(seed))
        h = mix_c(h ^ np.uint64(epoch))
        h = mix_c(h ^ np.uint64(index))
        return np.uint32(h >> np.uint64(32))

    def read_clock(address):
        clock = carray(_as_pointer(address), (2,), np.int64)
        return clock[0], clock[1]

    return _jit(sample_seed), _jit(read_clock)


_HELPERS: tuple[Callable, Callable] | None = None


def numba_helpers() -> tuple[Callable, Callable]:
    global _HELPERS
    if _HELPERS is None:
        _HELPERS = _numba_helpers()
    return _HELPERS


class Clock:
    """``[seed, epoch]`` in one int64 array that compiled ops read at run time (by address)."""

    def __init__(self, seed: int, epoch: int = 0) -> None:
        self.array = np.array([int(seed), int(epoch)], dtype=np.int64)

    @property
    def address(self) -> int:
        return int(self.array.ctypes.data)

    @property
    def seed(self) -> int:
        return int(self.array[0])

    @property
    def epoch(self) -> int:
        return int(self.array[1])

    def set_epoch(self, epoch: int) -> None:
        self.array[1] = int(epoch)


# --------------------------------------------------------------------------- torchvision
class SeededDataset:
    """``dataset[index]`` with its transform's torch draws seeded by ``sample_seed(seed, epoch,
    index)``; the caller's RNG state is restored afterwards.  The epoch lives in a shared-memory
    tensor, so DataLoader workers (persistent ones too, forked or spawned) read the value that
    :class:`EpochSampler` sets before each epoch's indices are sent to them."""

    def __init__(self, dataset: Any, seed: int, epoch: int = 0) -> None:
        import torch

        self.dataset, self.seed = dataset, int(seed)
        self._epoch = torch.tensor([int(epoch)], dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if "dataset" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["dataset"], name)

    def __getitem__(self, index: int) -> Any:
        import torch

        global _CURRENT
        _CURRENT = (self.seed, self.epoch, int(index))
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(sample_seed_py(self.seed, self.epoch, index))
                return self.dataset[index]
        finally:
            _CURRENT = None


_CURRENT: tuple[int, int, int] | None = None  # (seed, epoch, index) of the item being transformed


def current_seed(stream: int) -> int:
    """Inside :class:`SeededDataset`'s ``__getitem__``: the sample's seed for ``stream`` -- what the
    FFCV op of that stream uses for the same sample, so both paths draw the same numbers.  Outside
    one (a transform called directly): a seed drawn from torch's RNG."""
    if _CURRENT is None:
        import torch

        return int(torch.randint(0, 2**32, ()))
    seed, epoch, index = _CURRENT
    return sample_seed_py(seed + stream, epoch, index)


class EpochSampler:
    """A sampler that passes ``set_epoch`` (Lightning calls it before each epoch) on to the sampler
    it wraps and to the :class:`SeededDataset`; it yields the wrapped sampler's indices."""

    def __init__(self, sampler: Any, dataset: SeededDataset) -> None:
        self.sampler, self.dataset = sampler, dataset

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[int]:
        return iter(self.sampler)
