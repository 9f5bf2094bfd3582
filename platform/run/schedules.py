"""Pure schedule functions: the LR at an iteration, from nothing but its arguments.

The LR is set every iteration (STYLE rule 9).  Warm-up is linear per iteration from
``warmup_start_factor * lr`` to ``lr`` over ``warmup_epochs`` (Goyal et al. 2017, §2.2);
the decay that follows is measured from the end of warm-up for cosine (so the peak is
reached exactly once) and in absolute epochs for step milestones (as papers state them:
"divide by 10 at epochs 30, 60, 90", ResNeXt §4).
"""

from __future__ import annotations

import argparse
import math
from typing import Sequence

from platform.run import cli
from platform.run.schema import SCHEDULES  # the schema's choices (schedule.name)


def warmup_factor(epoch: float, warmup_epochs: float, start_factor: float) -> float:
    """Multiplier in [start_factor, 1] at fractional ``epoch`` during linear warm-up, else 1."""
    if warmup_epochs <= 0 or epoch >= warmup_epochs:
        return 1.0
    return start_factor + (1.0 - start_factor) * epoch / warmup_epochs


def step_factor(epoch: float, milestones: Sequence[float], gamma: float) -> float:
    """``gamma ** (number of milestones <= epoch)``."""
    return gamma ** sum(1 for m in milestones if epoch >= m)


def cosine_factor(
    epoch: float, start_epoch: float, total_epochs: float, min_factor: float
) -> float:
    """Half-cosine from 1 at ``start_epoch`` down to ``min_factor`` at ``total_epochs``."""
    span = total_epochs - start_epoch
    if span <= 0:
        return 1.0
    progress = min(max((epoch - start_epoch) / span, 0.0), 1.0)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def linear_decay_factor(
    epoch: float, start_epoch: float, total_epochs: float, min_factor: float
) -> float:
    """Straight line from 1 at ``start_epoch`` to ``min_factor`` at ``total_epochs`` (ffcv-imagenet's
    triangular schedule after its warm-up)."""
    span = total_epochs - start_epoch
    if span <= 0:
        return 1.0
    progress = min(max((epoch - start_epoch) / span, 0.0), 1.0)
    return 1.0 - (1.0 - min_factor) * progress


def exponential_factor(epoch: float, decay_every: float, gamma: float) -> float:
    """``gamma ** floor(epoch / decay_every)``: EfficientNet's "decays by 0.97 every 2.4 epochs" (§5.2)."""
    return gamma ** math.floor(epoch / decay_every)


def lr_at(
    step: int,
    steps_per_epoch: int,
    total_epochs: float,
    base_lr: float,
    name: str = "cosine",
    warmup_epochs: float = 0.0,
    warmup_start_factor: float = 0.1,
    milestones: Sequence[float] = (),
    gamma: float = 0.1,
    min_lr_factor: float = 0.0,
    decay_every: float = 1.0,
) -> float:
    """LR at optimizer step ``step`` (0-based) of a run of ``total_epochs`` epochs."""
    if steps_per_epoch <= 0:
        raise ValueError(f"steps_per_epoch must be positive, got {steps_per_epoch}")
    epoch = step / steps_per_epoch
    factor = warmup_factor(epoch, warmup_epochs, warmup_start_factor)
    after_warmup = max(warmup_epochs, 0.0)
    if name == "cosine":
        factor *= cosine_factor(epoch, after_warmup, total_epochs, min_lr_factor)
    elif name == "linear":
        factor *= linear_decay_factor(epoch, after_warmup, total_epochs, min_lr_factor)
    elif name == "step":
        factor *= step_factor(epoch, milestones, gamma)
    elif name == "exponential":
        factor *= exponential_factor(epoch, decay_every, gamma)
    elif name != "constant":
        raise ValueError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}")
    return base_lr * factor


def lr_from_config(
    step: int, steps_per_epoch: int, total_epochs: float, base_lr: float, schedule
) -> float:
    """:func:`lr_at` with the fields of a ``ScheduleConfig``."""
    warmup_epochs = schedule.warmup_epochs
    if getattr(schedule, "warmup_steps", None) is not None:  # warm-up stated in iterations
        warmup_epochs = schedule.warmup_steps / steps_per_epoch
    return lr_at(
        step,
        steps_per_epoch,
        total_epochs,
        base_lr,
        name=schedule.name,
        warmup_epochs=warmup_epochs,
        warmup_start_factor=schedule.warmup_start_factor,
        milestones=schedule.milestones,
        gamma=schedule.gamma,
        min_lr_factor=schedule.min_lr_factor,
        decay_every=schedule.decay_every,
    )


def scaled_lr(lr: float, global_batch: int, reference_batch: int | None) -> float:
    """Linear scaling rule (Goyal et al. 2017 §2.1): ``lr`` is stated for ``reference_batch``."""
    return lr if not reference_batch else lr * global_batch / reference_batch


def resolution_at(
    epoch: int, start_res: int, end_res: int, start_epoch: int, end_epoch: int, multiple: int = 32
) -> int:
    """Progressive resizing (ffcv-imagenet ``get_resolution``): the training resolution ramps
    linearly from ``start_res`` (up to ``start_epoch``) to ``end_res`` (from ``end_epoch``),
    rounded to a multiple of ``multiple``."""
    if end_epoch <= start_epoch:
        return int(round(end_res / multiple)) * multiple if epoch >= end_epoch else start_res
    t = min(max((epoch - start_epoch) / (end_epoch - start_epoch), 0.0), 1.0)
    return int(round((start_res + t * (end_res - start_res)) / multiple)) * multiple


# ---------------------------------------------------------------------------- plotting CLI
# Official training-split sizes.  ImageNet: ILSVRC-2012 train; CIFAR: 50k train; Fashion-MNIST: the
# 60k train IDX file; digits: sklearn's 1,797 8x8 digits, of which data.val_fraction is held out.
TRAIN_SIZES = {
    "imagenet": 1_281_167,
    "cifar10": 50_000,
    "cifar100": 50_000,
    "fashion_mnist": 60_000,
}
# Per-class counts where a stratified holdout (data.val_split=holdout / digits) changes the size.
_CLASS_COUNTS = {
    "fashion_mnist": [6_000] * 10,
    "cifar10": [5_000] * 10,
    "cifar100": [500] * 100,
    "digits": [178, 182, 177, 183, 181, 182, 181, 179, 174, 180],
}
_SUBSETS = ("fashion_mnist",)  # the datamodules that honour data.train_subset


class UnknownTrainSize(ValueError):
    """The training-set size cannot be known without the data (said, not guessed)."""


def _holdout(name: str, val_fraction: float) -> int:
    """Training images left after ``datamodules.digits.stratified_split`` holds out each class's share."""
    return sum(c - int(round(c * val_fraction)) for c in _CLASS_COUNTS[name])


def train_size(cfg) -> int:
    """Training images of ``cfg``'s dataset, as its datamodule will read them, before any data exists:
    the official split sizes, less a holdout (``data.val_split=holdout``; digits always), cut to
    ``data.train_subset`` where the datamodule honours it; a .beton's length; the synthetic size.
    Raises :class:`UnknownTrainSize` where it cannot know (instead of assuming ImageNet's)."""
    d = cfg.data
    if d.name == "synthetic":
        return d.synthetic_size
    if d.name == "beton":
        if not d.path:
            raise UnknownTrainSize("data=beton: no data.path, so the .beton's length is unknown")
        from pathlib import Path

        from datamodules.beton import check_beton

        try:
            return check_beton(Path(d.path).expanduser() / "train.beton")
        except Exception as e:
            raise UnknownTrainSize(f"data=beton: cannot read {d.path}/train.beton ({e})") from None
    if d.name == "digits" or (d.name in _CLASS_COUNTS and d.val_split == "holdout"):
        n = _holdout(d.name, d.val_fraction)
    elif d.name in TRAIN_SIZES:
        n = TRAIN_SIZES[d.name]
    else:
        raise UnknownTrainSize(
            f"data={d.name}: training-set size not known before the data is read"
        )
    if d.train_subset and d.name in _SUBSETS:
        n = min(n, d.train_subset)
    return n


def lr_curve(cfg, steps_per_epoch: int | None = None) -> tuple[list[int], list[float]]:
    """(steps, LR) over a whole run of ``cfg``, as ``ClassificationModule`` will set it."""
    from platform.run.config import effective_batch_size

    batch = effective_batch_size(cfg)  # images per optimizer step
    spe = steps_per_epoch or max(1, train_size(cfg) // batch)
    base = scaled_lr(cfg.optim.lr, batch, cfg.optim.reference_batch_size)
    total = spe * cfg.trainer.max_epochs
    stride = max(1, total // 4000)
    steps = list(range(0, total, stride))
    lrs = [lr_from_config(s, spe, cfg.trainer.max_epochs, base, cfg.schedule) for s in steps]
    if cfg.schedule.warmup == "error_threshold":  # drawn with the paper's ~400 iterations (§4.2)
        switch = min(400, cfg.schedule.warmup_max_steps)
        lrs = [
            cfg.schedule.warmup_lr if s < switch else lr for s, lr in zip(steps, lrs, strict=False)
        ]
    return steps, lrs


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m platform.schedules",
        description="Plots the LR of every iteration of the configured run ([recipe=NAME] "
        "[key=value ...]).  Steps per epoch come from the dataset's known size (imagenet, "
        "cifar10/100, fashion_mnist, digits, with holdout and train_subset; no data on disk "
        "needed) over the effective batch, or from --steps-per-epoch.",
        epilog=cli.OVERRIDES_EPILOG,
    )
    p.add_argument("--steps-per-epoch", type=int, metavar="N", help="optimizer steps per epoch")
    p.add_argument("--out", metavar="FILE.png", help="where to write the plot")
    return p


@cli.entry()
def main(argv: list[str]) -> int:
    from platform.run.config import effective_batch_size, load_config
    from platform.run.schema import ConfigError

    opts, overrides = cli.parse(parser(), argv)
    spe = opts.steps_per_epoch
    if spe is not None and spe < 1:
        return cli.user_error(f"--steps-per-epoch={spe}: expected a positive integer")
    try:
        cfg = load_config(overrides)
        batch = effective_batch_size(cfg)
        n_train = train_size(cfg) if spe is None else None
    except UnknownTrainSize as e:
        return cli.user_error(f"{e}; give --steps-per-epoch=N")
    except ConfigError as e:
        return cli.user_error(e)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spe = spe or max(1, n_train // batch)
    steps, lrs = lr_curve(cfg, spe)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot([s / spe for s in steps], lrs)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    title = f"{cfg.recipe or 'default'}: {cfg.schedule.name}, warm-up {cfg.schedule.warmup}"
    ax.set_title(f"{title} | batch {batch}, {spe} steps/epoch, peak {max(lrs):.4g}")
    ax.grid(alpha=0.3)
    path = out = opts.out or f"schedule-{(cfg.recipe or 'default').replace('/', '_')}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(
        f"wrote {out} ({len(steps)} points, "
        + (f"{n_train:,} training images, " if n_train else "")
        + f"{spe} steps/epoch, peak LR {max(lrs):.4g}, final "
        f"{lrs[-1]:.4g})"
    )
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
