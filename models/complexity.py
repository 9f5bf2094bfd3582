"""Parameters and multiply-adds (MACs) of any model, at a given resolution: one counter for all.

MACs follow the papers' convention (ResNet §3.3 "FLOPs (multiply-adds)", ResNeXt, SENet,
EfficientNet, torchvision's ``_ops``): ``torch.utils.flop_counter`` counts 2 FLOPs per
multiply-add for convolutions and matmuls, so we halve it.  Like the papers it ignores
BN, activations, pooling and additions.  Models are built on the meta device: no memory, no
arithmetic, so even ResNet-200 or EfficientNet-B7 at 600 px costs well under a second.

It lives in ``models`` (it needs only torch and the registry), so ``python -m models`` counts
without reaching into ``platform``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .registry import create_model, model_info


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, resolution: int | tuple[int, int], in_chans: int = 3) -> int:
    """Multiply-adds of one image through ``model`` in eval mode."""
    h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, in_chans, h, w, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


@dataclass(frozen=True)
class Complexity:
    name: str
    resolution: int
    params: int
    macs: int


def complexity(name: str, resolution: int | None = None, **knobs: Any) -> Complexity:
    """Params and MACs of a registered model at ``resolution`` (default: its paper's)."""
    info = model_info(name)
    resolution = resolution or info.resolution
    with torch.device("meta"):
        model = create_model(name, **knobs)
    return Complexity(name, resolution, count_params(model), count_macs(model, resolution))
