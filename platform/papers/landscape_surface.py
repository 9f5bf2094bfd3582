"""The surfaces of ``python -m platform.reproduce landscape`` (platform/papers/landscape.py): the loss
landscape of Li, Xu, Taylor, Studer & Goldstein 2018, "Visualizing the Loss Landscape of Neural Nets"
(NeurIPS 2018, arXiv:1712.09913), on trained runs of ours.

What it computes, for each checkpoint (weights w*):

* one or two random directions d (seeded by ``--seed``), **filter-normalised** (§4): every filter
  d_i (a slice along dim 0 of a conv or linear weight) is rescaled to the norm of the same filter of
  w*, d_i <- d_i ||w*_i|| / ||d_i||; the directions of BN weights/biases and of every bias (all
  1-D parameters) are zero -- the paper's released code with ``--xignore biasbn --xnorm filter``
  (tomgoldstein/loss-landscape, ``net_plotter.py``: ``create_random_direction``,
  ``normalize_directions_for_weights``).  This implementation is ours;
* the training loss (plain cross-entropy, no label smoothing) and top-1 accuracy of
  w* + x d_x (``--grid``, 1-D) or w* + x d_x + y d_y (``--grid`` and ``--grid-y``, 2-D) at every
  grid point, on a fixed stratified subset of the run's *training* images (``--samples``, drawn
  with ``--seed``), read through the validation pipeline (no augmentation);
* BN in eval mode with the checkpoint's running statistics, or with ``--recompute-bn`` statistics
  recomputed at every grid point on the subset (a cumulative average over its batches).

The grid is split across ranks point by point (point k of the flattened task list goes to rank
k mod n), each point computed independently from the same seeded directions and subset, so the
surface does not depend on the split: ``--devices N`` runs N gloo processes of
``torch.distributed`` on this machine and gathers the points on rank 0; ``--part i/n`` (a Slurm
array task) computes share i of n and writes ``parts/part-i-of-n.json`` under ``--out``; a call with
``--merge`` (or without ``--part`` once parts exist) assembles them.

Outputs in ``--out`` (default ``reproduce/landscape/<run name>``), written atomically:
``surface.json`` (every number and the settings), ``surface.csv`` (one row per net and point),
per net a contour plot and a 3-D surface plot (2-D) or a curve (1-D), and for several checkpoints
``pair.png``, the nets side by side on one colour scale.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from platform.after.rebuild import LoadedRun

PAPER = (
    "Li, Xu, Taylor, Studer & Goldstein 2018, Visualizing the Loss Landscape of Neural Nets, "
    "NeurIPS 2018, arXiv:1712.09913"
)
EXPECTATION = (
    "Li et al. 2018 §5, Fig. 5: with skip connections ResNet-56's loss surface around its "
    "minimiser is smooth and nearly convex; without them (the same net, no shortcuts) it turns "
    "chaotic and non-convex, with sharp local minima; at 20 layers both are still smooth, the "
    "difference grows with depth (110 layers: chaotic without shortcuts)."
)
BN_EVAL = "BN in eval mode with the checkpoint's running statistics (not recomputed per point)"
BN_RECOMPUTED = "BN statistics recomputed at every grid point on the subset (--recompute-bn)"
MAX_POINTS = 100_000  # per net: 316 x 316 -- beyond it a surface is a job, not a figure
MAX_SUBSET_BYTES = 4 << 30  # the subset's images are held in memory


class LandscapeError(ValueError):
    """Bad input (a checkpoint, a grid, a part file); the message names it and what to pass."""


# ---------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class Axis:
    lo: float
    hi: float
    n: int

    @property
    def values(self) -> list[float]:
        if self.n == 1:
            return [self.lo]
        return [self.lo + (self.hi - self.lo) * i / (self.n - 1) for i in range(self.n)]

    def __str__(self) -> str:
        return f"{self.lo:g}:{self.hi:g}:{self.n}"


def parse_axis(text: str) -> Axis:
    """``LO:HI:N`` (``-1:1:21``): N evenly spaced coefficients from LO to HI."""
    try:
        lo, hi, n = text.split(":")
        axis = Axis(float(lo), float(hi), int(n))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected LO:HI:N, e.g. -1:1:21 (21 points from -1 to 1)"
        ) from None
    if axis.n < 1 or not (math.isfinite(axis.lo) and math.isfinite(axis.hi)):
        raise argparse.ArgumentTypeError(f"{text!r}: N must be >= 1 and LO, HI finite")
    return axis


def parse_part(text: str) -> tuple[int, int]:
    """``i/n``: share i (0-based, as SLURM_ARRAY_TASK_ID) of n."""
    try:
        i, n = (int(t) for t in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--part {text!r}: expected i/n, e.g. 0/4 ($SLURM_ARRAY_TASK_ID/4)"
        ) from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--part {text!r}: need 0 <= i < n")
    return i, n


def share(n_tasks: int, rank: int, world: int) -> list[int]:
    """The task indices of ``rank`` of ``world``: k mod world == rank (neighbours cost alike)."""
    return list(range(rank, n_tasks, world))


# ---------------------------------------------------------------------------- directions
def filter_normalized_direction(model: nn.Module, generator: torch.Generator) -> dict[str, Any]:
    """A Gaussian direction in the space of ``model``'s parameters, filter-normalised (Li et al.
    §4): for a parameter w with >= 2 dims, each filter d_i = d[i] is scaled to ||d_i|| = ||w_i||;
    1-D parameters (BN weights and biases, every bias) get 0 (``--xignore biasbn``).  Buffers (BN
    running statistics) are not parameters and never move.  As net_plotter.py, a value is drawn for
    every parameter in ``named_parameters`` order, so the stream does not depend on which are zero."""
    direction = {}
    for name, w in model.named_parameters():
        d = torch.randn(w.shape, generator=generator, dtype=torch.float32).to(w.dtype)
        if w.dim() <= 1:
            d.zero_()
        else:
            w_norm = w.detach().flatten(1).norm(dim=1)
            d_norm = d.flatten(1).norm(dim=1)
            d *= (w_norm / (d_norm + 1e-10)).view(-1, *[1] * (w.dim() - 1))
        direction[name] = d
    return direction


def directions(model: nn.Module, seed: int, two_d: bool) -> list[dict[str, torch.Tensor]]:
    """d_x (and d_y) of ``model``, from one generator seeded with ``seed``: every rank, every part
    and every call draws the same directions."""
    g = torch.Generator().manual_seed(seed)
    return [filter_normalized_direction(model, g) for _ in range(2 if two_d else 1)]


# ---------------------------------------------------------------------------- loading a run
def stratified_indices(labels: np.ndarray, n: int, seed: int) -> list[int]:
    """``n`` indices of ``labels`` in the classes' proportions: each class shuffled (``seed``), the
    examples ordered by their rank within the class over the class size, the first ``n`` kept."""
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    keys = np.empty(len(labels))
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        keys[rng.permutation(members)] = (np.arange(len(members)) + 0.5) / len(members)
    order = np.lexsort((labels, keys))
    return sorted(int(i) for i in order[: min(n, len(labels))])


def _train_labels(dm: Any) -> np.ndarray:
    if hasattr(dm, "train_path"):  # FFCV: digits, Fashion-MNIST, CIFAR, any .beton
        from datamodules.beton import beton_labels

        return beton_labels(dm.train_path)
    if hasattr(dm, "train_set") and hasattr(dm.train_set, "tensors"):  # data=synthetic
        return dm.train_set.tensors[1].numpy()
    raise LandscapeError(
        f"{type(dm).__name__}: the landscape reads training images of FFCV (.beton) datasets and "
        "data=synthetic; this dataset has no augmentation-free training reader yet"
    )


def _raw_batches(dm: Any, indices: list[int], batch_size: int) -> Iterator[tuple]:
    if hasattr(dm, "train_eval_dataloader"):
        yield from dm.train_eval_dataloader(indices)
        return
    images, labels = dm.train_set.tensors
    for s in range(0, len(indices), batch_size):
        idx = torch.tensor(indices[s : s + batch_size])
        yield images[idx], labels[idx]


def training_subset(
    dm: Any, n: int, seed: int, batch_size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The fixed stratified subset of the run's training images, normalised, in memory."""
    dm.options = dataclasses.replace(dm.options, batch_size=batch_size)
    dm.batch_size = batch_size
    dm.prepare_data()
    dm.setup("validate")
    indices = stratified_indices(_train_labels(dm), n, seed)
    batches = []
    for images, labels in _raw_batches(dm, indices, batch_size):
        images, labels = dm.on_after_batch_transfer((images, labels), 0)
        batches.append((images.float().contiguous(), labels.long().clone()))
    if sum(len(y) for _, y in batches) != len(indices):
        raise LandscapeError(
            f"read {sum(len(y) for _, y in batches)} training images, expected {len(indices)}"
        )
    return batches


# ---------------------------------------------------------------------------- evaluation
@torch.no_grad()
def loss_and_accuracy(model: nn.Module, batches: list) -> tuple[float, float]:
    """Mean cross-entropy and top-1 accuracy (%) over ``batches`` (the model in eval mode)."""
    model.eval()
    total, correct, n = 0.0, 0, 0
    for images, labels in batches:
        logits = model(images).double()
        total += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
        correct += int((logits.argmax(1) == labels).sum())
        n += len(labels)
    return total / n, 100.0 * correct / n


@torch.no_grad()
def recompute_bn(model: nn.Module, batches: list) -> None:
    """Every BN layer's running statistics from ``batches`` alone (momentum None: the cumulative
    average over the batches, independent of their former values)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for images, _ in batches:
        model(images)
    model.eval()
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


@dataclass
class Net:
    """One checkpoint ready to evaluate: its weights w*, directions and subset."""

    label: str
    run: LoadedRun
    base: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    dirs: list[dict[str, torch.Tensor]]
    batches: list

    @torch.no_grad()
    def point(self, x: float, y: float, recompute: bool) -> tuple[float, float]:
        """Loss and accuracy at w* + x d_x (+ y d_y)."""
        model = self.run.model
        for name, p in model.named_parameters():
            w = self.base[name] + x * self.dirs[0][name]
            p.copy_(w + y * self.dirs[1][name] if len(self.dirs) > 1 else w)
        if recompute:
            recompute_bn(model, self.batches)
        try:
            return loss_and_accuracy(model, self.batches)
        finally:
            if recompute:
                for name, b in model.named_buffers():
                    b.copy_(self.buffers[name])

    @torch.no_grad()
    def restore(self) -> None:
        for name, p in self.run.model.named_parameters():
            p.copy_(self.base[name])


def prepare(run: LoadedRun, label: str, args: argparse.Namespace) -> Net:
    model = run.model.float().eval()
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    dirs = directions(model, args.seed, args.grid_y is not None)
    batches = training_subset(run.datamodule, args.samples, args.seed, args.batch_size)
    return Net(label, run, base, buffers, dirs, batches)


def tasks(n_nets: int, xs: list[float], ys: list[float]) -> list[tuple[int, int, int]]:
    """Every (net, i, j) of the surfaces, net-major then row-major (j over y, i over x)."""
    return [(n, i, j) for n in range(n_nets) for j in range(len(ys)) for i in range(len(xs))]


def compute(
    nets: list[Net], xs: list[float], ys: list[float], recompute: bool, rank: int, world: int, log
) -> dict[int, list[float]]:
    """This rank's share of the points: {task index: [loss, acc]}."""
    all_tasks = tasks(len(nets), xs, ys)
    mine = share(len(all_tasks), rank, world)
    out, start = {}, time.perf_counter()
    for done, k in enumerate(mine, start=1):
        n, i, j = all_tasks[k]
        out[k] = list(nets[n].point(xs[i], ys[j], recompute))
        if done % max(1, len(mine) // 10) == 0 or done == len(mine):
            log(
                f"rank {rank}/{world}: {done}/{len(mine)} points, {time.perf_counter() - start:.0f} s"
            )
    for net in nets:
        net.restore()
    return out
