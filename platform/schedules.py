"""Pure schedule functions: the LR at an iteration, from nothing but its arguments.

The LR is set every iteration (STYLE rule 9).  Warm-up is linear per iteration from
``warmup_start_factor * lr`` to ``lr`` over ``warmup_epochs`` (Goyal et al. 2017, §2.2);
the decay that follows is measured from the end of warm-up for cosine (so the peak is
reached exactly once) and in absolute epochs for step milestones (as papers state them:
"divide by 10 at epochs 30, 60, 90", ResNeXt §4).
"""
from __future__ import annotations

import math
from typing import Sequence


def warmup_factor(epoch: float, warmup_epochs: float, start_factor: float) -> float:
    """Multiplier in [start_factor, 1] at fractional ``epoch`` during linear warm-up, else 1."""
    if warmup_epochs <= 0 or epoch >= warmup_epochs:
        return 1.0
    return start_factor + (1.0 - start_factor) * epoch / warmup_epochs


def step_factor(epoch: float, milestones: Sequence[float], gamma: float) -> float:
    """``gamma ** (number of milestones <= epoch)``."""
    return gamma ** sum(1 for m in milestones if epoch >= m)


def cosine_factor(epoch: float, start_epoch: float, total_epochs: float, min_factor: float) -> float:
    """Half-cosine from 1 at ``start_epoch`` down to ``min_factor`` at ``total_epochs``."""
    span = total_epochs - start_epoch
    if span <= 0:
        return 1.0
    progress = min(max((epoch - start_epoch) / span, 0.0), 1.0)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


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
) -> float:
    """LR at optimizer step ``step`` (0-based) of a run of ``total_epochs`` epochs."""
    if steps_per_epoch <= 0:
        raise ValueError(f"steps_per_epoch must be positive, got {steps_per_epoch}")
    epoch = step / steps_per_epoch
    factor = warmup_factor(epoch, warmup_epochs, warmup_start_factor)
    if name == "cosine":
        factor *= cosine_factor(epoch, max(warmup_epochs, 0.0), total_epochs, min_lr_factor)
    elif name == "step":
        factor *= step_factor(epoch, milestones, gamma)
    elif name != "constant":
        raise ValueError(f"unknown schedule {name!r}; expected cosine, step or constant")
    return base_lr * factor


def lr_from_config(step: int, steps_per_epoch: int, total_epochs: float, base_lr: float, schedule) -> float:
    """:func:`lr_at` with the fields of a ``ScheduleConfig``."""
    return lr_at(
        step, steps_per_epoch, total_epochs, base_lr,
        name=schedule.name,
        warmup_epochs=schedule.warmup_epochs,
        warmup_start_factor=schedule.warmup_start_factor,
        milestones=schedule.milestones,
        gamma=schedule.gamma,
        min_lr_factor=schedule.min_lr_factor,
    )
