"""Layers shared by every model family: conv-norm-act, drop-path, squeeze-excite, head.

Nothing here reads global state: BN eps/momentum, activation and rates are
constructor arguments, so two differently configured models can coexist
(STYLE.md rule 7). Regularizer *rates* are computed once, by
`drop_path_rates`, and injected into blocks (rule 8).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

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


def drop_path_rates(num_blocks: int, max_rate: float) -> list[float]:
    """Per-block drop-path (stochastic depth) rates, indexed by global block index.

    Linear from 0 at the first block to `max_rate` at the last block, so the
    last block gets the full rate, as in Huang et al. 2016 ("Deep Networks with
    Stochastic Depth", §3 linear decay rule, p_L = 1 - max_rate). A single block
    gets `max_rate`. Every model family calls this one function, so a given
    `drop_path_rate` means the same thing everywhere.

    Note: Huang et al. index blocks l = 1..L with p_l = 1 - (l/L)(1 - p_L), which
    gives the first block a rate of max_rate/L; we start at exactly 0 (timm's
    `idx / (N - 1)` rule). The two agree at the last block.
    """
    if num_blocks < 0:
        raise ValueError(f"num_blocks must be >= 0, got {num_blocks}")
    if not 0.0 <= max_rate < 1.0:
        raise ValueError(f"max_rate must be in [0, 1), got {max_rate}")
    if num_blocks == 1:
        return [max_rate]
    return [max_rate * i / (num_blocks - 1) for i in range(num_blocks)]


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero whole samples of a residual branch with probability `p` (Huang et al. 2016).

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
    """Module wrapper of `drop_path`; active only in training mode."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path rate must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p:.4g}"


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
