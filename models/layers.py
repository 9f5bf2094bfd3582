"""Layers shared by every model family: conv-norm-act, drop-path, squeeze-excite, head.

Nothing here reads global state: BN eps/momentum, activation and rates are
constructor arguments, so two differently configured models can coexist
(STYLE.md rule 7). Regularizer *rates* are computed once, by
`drop_path_rates`, and injected into blocks (rule 8).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal, get_args

import torch
from torch import nn

# PyTorch's BatchNorm2d defaults (eps 1e-5, momentum 0.1 = weight of the new
# batch statistic). TF-style EfficientNet uses 1e-3 / 0.01 and passes them in.
BN_EPS = 1e-5
BN_MOMENTUM = 0.1

ActLayer = Callable[[], nn.Module]
relu: ActLayer = functools.partial(nn.ReLU, inplace=True)


# ---------------------------------------------------------------- stochastic depth


def he_init_(module: nn.Module, mode: str = "fan_out") -> None:
    """He et al. 2015 ("Delving deep") normal init for every conv (zero biases), BN at (1, 0).

    The families' shared starting point; each then adds its own specifics (heads, gates,
    zero-init of residual branches). ``fan_out`` follows torchvision/fb.resnet.torch.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


DropPathRule = Literal["huang", "timm", "tf"]
DropPathMode = Literal["sample", "batch"]
DROP_PATH_RULES: tuple[str, ...] = get_args(DropPathRule)
DROP_PATH_MODES: tuple[str, ...] = get_args(DropPathMode)


def drop_path_rates(num_blocks: int, max_rate: float, rule: DropPathRule = "timm") -> list[float]:
    """Per-block drop-path (stochastic depth) rates, indexed by global block index i = 0..N-1.

    The one place the three rules in use are written down (every family calls this):

    - ``huang``: Huang et al. 2016 §3 "linear decay rule", p_l = 1 - (l/L)(1 - p_L) for
      blocks l = 1..L, i.e. rate (i+1)/N * max_rate: the first block already drops
      max_rate/N, the last exactly max_rate (yueatsprograms/Stochastic_Depth main.lua,
      ``deathRate = i / #addtables * opt.deathRate``, i = 1..#addtables).
    - ``timm``: i/(N-1) * max_rate, 0 at the first block, max_rate at the last (timm
      ``resnet.py`` make_blocks; a single block gets max_rate).
    - ``tf``: i/N * max_rate, 0 at the first block, max_rate * (N-1)/N at the last
      (TF EfficientNet ``efficientnet_model.py`` and torchvision ``efficientnet.py``:
      ``drop_connect_rate * float(idx) / len(blocks)``).

    `max_rate` = 1 - p_L of Huang et al. (the ``drop_path_rate`` knob).
    """
    if num_blocks < 0:
        raise ValueError(f"num_blocks must be >= 0, got {num_blocks}")
    if not 0.0 <= max_rate < 1.0:
        raise ValueError(f"max_rate must be in [0, 1), got {max_rate}")
    if rule not in DROP_PATH_RULES:
        raise ValueError(f"drop_path_rule must be one of {DROP_PATH_RULES}, got {rule!r}")
    if rule == "huang":
        return [max_rate * (i + 1) / num_blocks for i in range(num_blocks)]
    if rule == "tf":
        return [max_rate * i / num_blocks for i in range(num_blocks)]
    if num_blocks == 1:
        return [max_rate]
    return [max_rate * i / (num_blocks - 1) for i in range(num_blocks)]


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero whole samples of a residual branch with probability `p` (``sample`` mode).

    Survivors are scaled by 1/(1-p) so the expectation is unchanged and
    inference needs no rescaling. x: (B, ...) -> same shape.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"drop-path rate must be in [0, 1), got {p}")
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask_shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # one draw per sample: (B, 1, 1, 1)
    mask = x.new_empty(mask_shape).bernoulli_(keep).div_(keep)
    return x * mask


class DropPath(nn.Module):
    """Stochastic depth on one residual branch; active only in training mode.

    ``mode="sample"`` (timm, EfficientNet): the branch is computed and whole samples of
    it are zeroed (`drop_path`). ``mode="batch"`` (Huang et al. 2016 §3, ResidualDrop.lua):
    one Bernoulli draw per block per training step drops the block for the whole
    mini-batch; the block asks `dropped()` *before* computing its branch and then returns
    its shortcut only (ResidualDrop.lua ``updateOutput``: "only compute convolutional
    output when gate is open").

    Survivor scaling, both modes: a kept branch is multiplied by 1/(1-p) in training and
    left alone in eval ("inverted" scaling), so the training-mode expectation equals the
    eval output. Huang's code instead trains unscaled and multiplies the branch by (1-p)
    at test time (``mul(1-self.deathRate)``); the two differ only by a rescaling of the
    branch's last layer, and ours keeps eval, lesion studies and weight export unchanged.

    Batch-mode decisions: `set_drop_path_step(model, seed, step)` fixes every block's
    decision for a step from (seed, step) alone, so DDP ranks drop the same blocks; when
    nobody set it (a bare training loop) `dropped()` draws from torch's global RNG.
    """

    def __init__(self, p: float, mode: DropPathMode = "sample") -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path rate must be in [0, 1), got {p}")
        if mode not in DROP_PATH_MODES:
            raise ValueError(f"drop_path_mode must be one of {DROP_PATH_MODES}, got {mode!r}")
        self.p = p
        self.mode = mode
        self.decision: bool | None = None  # batch mode: set per step by set_drop_path_step

    def dropped(self) -> bool:
        """Batch mode in training: whether the whole block is skipped in this step."""
        if self.mode != "batch" or not self.training or self.p == 0.0:
            return False
        if self.decision is not None:
            return self.decision
        return bool(torch.rand(()) < self.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "sample":
            return drop_path(x, self.p, self.training)
        if self.training and self.p > 0:  # a kept block (dropped ones never call forward)
            return x / (1.0 - self.p)
        return x

    def extra_repr(self) -> str:
        return f"p={self.p:.4g}, mode={self.mode}"


def block_dropped(drop_path_module: nn.Module) -> bool:
    """A block's test before computing its branch: True when batch-mode stochastic depth
    skips it in this step (False for nn.Identity, sample mode and eval)."""
    return isinstance(drop_path_module, DropPath) and drop_path_module.dropped()


def make_drop_path(p: float, mode: DropPathMode = "sample") -> DropPath | None:
    """The DropPath a block receives for rate `p` (None for p = 0: nothing to drop)."""
    if mode not in DROP_PATH_MODES:
        raise ValueError(f"drop_path_mode must be one of {DROP_PATH_MODES}, got {mode!r}")
    return DropPath(p, mode) if p > 0 else None


def skips_blocks(model: nn.Module) -> bool:
    """Whether training `model` can skip whole blocks (batch-mode DropPath with p > 0), so that
    some parameters get no gradient in a step (DDP then needs find_unused_parameters)."""
    return any(isinstance(m, DropPath) and m.mode == "batch" and m.p > 0 for m in model.modules())


def set_drop_path_step(model: nn.Module, seed: int, step: int) -> list[bool]:
    """Fix the batch-mode decisions of every DropPath in `model` for one training step.

    One generator seeded from (seed, step) draws one uniform per batch-mode DropPath in
    module order; block i is dropped when u_i < p_i. Nothing depends on the rank, so every
    DDP rank skips the same blocks, and a resumed run repeats the same decisions.
    Returns the decisions in module order (for logging and tests).
    """
    blocks = [m for m in model.modules() if isinstance(m, DropPath) and m.mode == "batch"]
    if not blocks:
        return []
    gen = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step)) % (2**63))
    draws = torch.rand(len(blocks), generator=gen, dtype=torch.float64).tolist()
    for m, u in zip(blocks, draws, strict=True):
        m.decision = u < m.p
    return [m.decision for m in blocks]


# ---------------------------------------------------------------- conv / norm helpers


def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    groups: int = 1,
    bias: bool = False,
) -> nn.Conv2d:
    """Square conv with 'same' padding for odd kernels (no bias: a BN follows)."""
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        groups=groups,
        bias=bias,
    )


class ConvNormAct(nn.Sequential):
    """conv (no bias) -> BatchNorm2d -> activation (omitted when act_layer is None)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        *,
        act_layer: ActLayer | None = relu,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        self.conv = conv2d(in_channels, out_channels, kernel_size, stride, groups)
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum)
        if act_layer is not None:
            self.act = act_layer()


class NormAct(nn.Sequential):
    """BatchNorm2d -> activation: the pre-activation unit (He et al. 2016, "Identity
    Mappings in Deep Residual Networks" §3) and the final norm-act of pre-act nets."""

    def __init__(
        self,
        channels: int,
        *,
        act_layer: ActLayer = relu,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=bn_eps, momentum=bn_momentum)
        self.act = act_layer()


# ---------------------------------------------------------------- attention


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation (Hu et al. 2017, §3): channel gates from global context.

    `rd_channels` is the bottleneck width C/r. The caller chooses it because
    families disagree on the reference: SE-ResNet uses the block's *output*
    channels (SENet §6.1, r = 16), EfficientNet 0.25 x the block's *input*
    channels. The two FC layers are 1x1 convs with bias (same params as FC).
    """

    def __init__(
        self,
        channels: int,
        rd_channels: int,
        *,
        act_layer: ActLayer = relu,
        gate_layer: ActLayer = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, rd_channels, 1, bias=True)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(rd_channels, channels, 1, bias=True)
        self.gate = gate_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)  # squeeze: (B, C, 1, 1)
        s = self.fc2(self.act(self.fc1(s)))  # excite:  (B, C, 1, 1)
        return x * self.gate(s)


# ---------------------------------------------------------------- head


class ClassifierHead(nn.Sequential):
    """Global average pool -> flatten -> dropout (if p > 0) -> Linear."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, num_classes)
