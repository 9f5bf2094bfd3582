"""The residual family's blocks and shortcuts, each built from one frozen `BlockArgs`.

`ResidualNet` (models/resnet.py) makes one `BlockArgs` per block from its `NetSpec` and the
net's training-time knobs, and hands the block its ready `DropPath` (or None). A block reads
the fields it uses; `BasicBlock` and `PreActBasicBlock` refuse a grouped / narrowed / ResNeXt
geometry (widen them through the stage width, WRN), the bottlenecks refuse WRN's
`block_dropout`. Module names (conv1, norm1, se, drop_path, shortcut, ...) are checkpoint keys:
keep them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from .layers import (
    BN_EPS,
    BN_MOMENTUM,
    ConvNormAct,
    NormAct,
    SqueezeExcite,
    block_dropped,
    conv2d,
    relu,
)

BlockKind = Literal["basic", "bottleneck", "preact_basic", "preact_bottleneck"]
Shortcut = Literal["A", "B", "C", "none"]  # 'none': plain net, no shortcut at all
StrideOn = Literal["3x3", "1x1"]
# How an option-A shortcut downsamples: 'stride' keeps every 2nd pixel (He et al. 2015 §3.3;
# fb.resnet.torch's 1x1 average pool at stride 2); 'avgpool' averages 2x2 windows (Huang et
# al.'s ResidualDrop.lua: nn.SpatialAveragePooling(stride, stride, stride, stride)).
PadPool = Literal["stride", "avgpool"]


def check_choice(field: str, value: object, choices: tuple[object, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{field} must be one of {choices}, got {value!r}")


@dataclass(frozen=True)
class BlockArgs:
    """One block of a residual net: its geometry (from the spec) and the net's block knobs.

    `planes` is the stage width (the block outputs planes * expansion channels); `groups`,
    `base_width` (d at stage width 64) and `conv1_ratio` shape the bottleneck's inner widths
    (ResNeXt §3.3, SENet-154); `stride_on` places a bottleneck's stride. `input_activated`
    marks the net's first block, whose input the stem has already BN-ReLU'd: a pre-act block
    then skips its own first BN-ReLU (models/resnet.py docstring); a post-act block's input is
    always activated, so it ignores the flag, as basic blocks ignore `stride_on`.
    """

    in_channels: int
    planes: int
    stride: int = 1
    groups: int = 1
    base_width: int = 64
    se_ratio: float = 0.0
    conv1_ratio: float = 1.0
    shortcut: Shortcut = "B"
    proj_kernel: int = 1
    stride_on: StrideOn = "3x3"
    input_activated: bool = False
    block_dropout: float = 0.0  # WRN's dropout between the two 3x3 convs (basic blocks only)
    pad_pool: PadPool = "stride"
    bn_eps: float = BN_EPS
    bn_momentum: float = BN_MOMENTUM

    @property
    def bn(self) -> dict[str, float]:
        return {"bn_eps": self.bn_eps, "bn_momentum": self.bn_momentum}

    @property
    def strides(self) -> tuple[int, int]:
        """(stride of the first 1x1, stride of the 3x3) of a bottleneck.

        '1x1': MSRA Caffe (paper Table 1 FLOPs). '3x3': torchvision "v1.5", more MACs;
        NVIDIA's ResNet-50 v1.5 notes (linked from torchvision) report ~+0.5% top-1.
        """
        return (self.stride, 1) if self.stride_on == "1x1" else (1, self.stride)

    def bottleneck_widths(self) -> tuple[int, int]:
        """(first 1x1 width, grouped 3x3 width): C x d at stage width 64 (ResNeXt §3.3)."""
        width = int(self.planes * (self.base_width / 64.0)) * self.groups
        reduce = int(width * self.conv1_ratio)
        if reduce % self.groups:
            raise ValueError(f"conv1 width {reduce} is not divisible by groups={self.groups}")
        return reduce, width

    def check_basic(self, name: str) -> None:
        if self.groups != 1 or self.base_width != 64 or self.conv1_ratio != 1.0:
            raise ValueError(
                f"{name} needs groups=1, base_width=64, conv1_ratio=1; "
                "widen it via the stage width (WRN)"
            )

    def check_no_block_dropout(self, name: str) -> None:
        if self.block_dropout != 0.0:
            raise ValueError(
                f"{name}: block_dropout (WRN's dropout between the two 3x3 convs) needs a "
                "basic block"
            )


# ---------------------------------------------------------------- shortcuts


class PadShortcut(nn.Module):
    """Option A (He et al. 2015 §3.3): identity with zero-padded extra channels.

    "The shortcut still performs identity mapping, with extra zero entries padded
    for increasing dimensions ... performed with a stride of 2." No parameters;
    this is what the CIFAR nets of §4.2 use (resnet110 = 1.7M params, Table 6).
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, pool: PadPool = "stride"
    ) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError("option-A shortcuts can only add channels")
        check_choice("shortcut_downsample", pool, get_args(PadPool))
        self.extra = out_channels - in_channels
        self.stride = stride
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1 and self.pool == "avgpool":  # Huang et al.: 2x2 average, stride 2
            x = F.avg_pool2d(x, self.stride, self.stride)
        elif self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]  # same size as a strided 3x3/1x1 conv
        # zero channels appended (ResidualDrop.lua: nn.Padding(1, nOut - nIn, 3))
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))  # (B, C_in, H, W) -> (B, C_out, H, W)

    def extra_repr(self) -> str:
        return f"extra_channels={self.extra}, stride={self.stride}, pool={self.pool}"


def make_shortcut(
    in_channels: int,
    out_channels: int,
    stride: int,
    kind: Shortcut,
    *,
    norm: bool,
    proj_kernel: int = 1,
    pad_pool: PadPool = "stride",
    bn_eps: float,
    bn_momentum: float,
) -> nn.Module | None:
    """Identity where the shape is kept (options A, B), else pad (A) or project (B, C);
    None for 'none' (a plain block: no shortcut, no addition).

    `norm=False` gives a bare conv projection, for pre-activation blocks whose
    input is already normalized (He et al. 2016 reference code). A strided
    projection uses `proj_kernel` (SENet-154: 3x3); stride-1 ones stay 1x1.
    """
    if kind == "none":
        return None
    if kind != "C" and in_channels == out_channels and stride == 1:
        return nn.Identity()
    if kind == "A":
        return PadShortcut(in_channels, out_channels, stride, pad_pool)
    k = proj_kernel if stride > 1 else 1
    if not norm:
        return conv2d(in_channels, out_channels, k, stride)
    return ConvNormAct(
        in_channels, out_channels, k, stride, act_layer=None, bn_eps=bn_eps, bn_momentum=bn_momentum
    )


def _shortcut(args: BlockArgs, out_channels: int, *, norm: bool) -> nn.Module | None:
    return make_shortcut(
        args.in_channels,
        out_channels,
        args.stride,
        args.shortcut,
        norm=norm,
        proj_kernel=args.proj_kernel,
        pad_pool=args.pad_pool,
        **args.bn,
    )


def _se(channels: int, se_ratio: float) -> nn.Module:
    # SE on the residual branch's output, before the addition (SENet Fig. 3); C/r reduction.
    if se_ratio <= 0:
        return nn.Identity()
    return SqueezeExcite(channels, max(1, round(channels * se_ratio)))


def _block_dropout(p: float) -> nn.Module:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"block_dropout must be in [0, 1), got {p}")
    return nn.Dropout(p) if p > 0 else nn.Identity()


# ---------------------------------------------------------------- blocks
#
# A block receives its ready DropPath (or None); it never computes a rate. DropPath wraps the
# whole residual branch (SE included), so a dropped block is exactly its shortcut (Huang et
# al. 2016 §3). `zero_init_last()` makes the residual branch output zero at init, so each block
# starts as the identity (Goyal et al. 2017 §5.1, "zero gamma"; +0.2-0.3% top-1 in torchvision).
#
# The residual addition is in place (`out += shortcut`), as in torchvision: `out` is always a
# fresh tensor that no backward needs (a BN, conv, SE-gating or drop-path output), and the
# out-of-place sum cost ~1.5% of a ResNeXt-50 CPU training step (python -m benchmarks models).
#
# A plain block (shortcut 'none') has `shortcut = None` and skips the addition; its
# branch is everything, so it takes no drop-path and no zero-init (the net refuses both).


class BasicBlock(nn.Module):
    """Two 3x3 convs (He et al. 2015 Fig. 2 left; ResNet-18/34, CIFAR nets)."""

    expansion: ClassVar[int] = 1
    preact: ClassVar[bool] = False

    def __init__(self, args: BlockArgs, drop_path: nn.Module | None = None) -> None:
        super().__init__()
        args.check_basic("BasicBlock")
        out_channels = args.planes * self.expansion
        self.conv1 = ConvNormAct(args.in_channels, args.planes, 3, args.stride, **args.bn)
        self.dropout = _block_dropout(args.block_dropout)
        self.conv2 = ConvNormAct(args.planes, out_channels, 3, act_layer=None, **args.bn)
        self.se = _se(out_channels, args.se_ratio)
        self.drop_path = drop_path if drop_path is not None else nn.Identity()
        self.shortcut = _shortcut(args, out_channels, norm=True)
        self.act = relu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if block_dropped(self.drop_path):  # batch-mode stochastic depth: no branch at all
            return F.relu(self.shortcut(x))  # ResidualDrop.lua: skip only, then the ReLU
        out = self.drop_path(self.se(self.conv2(self.dropout(self.conv1(x)))))
        if self.shortcut is not None:  # None: a plain block (He et al. 2015 §4.1)
            out += self.shortcut(x)  # in place (see the notes above the blocks)
        return self.act(out)  # ReLU after the addition (v1)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2.bn.weight)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (grouped) -> 1x1 expand x4.

    He et al. 2015 Fig. 5 right; grouped 3x3 = ResNeXt Fig. 3c (Xie et al. 2017);
    SE on the branch output = SE-ResNet module, SENet Fig. 3.
    """

    expansion: ClassVar[int] = 4
    preact: ClassVar[bool] = False

    def __init__(self, args: BlockArgs, drop_path: nn.Module | None = None) -> None:
        super().__init__()
        args.check_no_block_dropout("Bottleneck")
        bn = args.bn
        reduce, width = args.bottleneck_widths()
        out_channels = args.planes * self.expansion
        stride_1x1, stride_3x3 = args.strides
        self.conv1 = ConvNormAct(args.in_channels, reduce, 1, stride_1x1, **bn)
        self.conv2 = ConvNormAct(reduce, width, 3, stride_3x3, args.groups, **bn)
        self.conv3 = ConvNormAct(width, out_channels, 1, act_layer=None, **bn)
        self.se = _se(out_channels, args.se_ratio)
        self.drop_path = drop_path if drop_path is not None else nn.Identity()
        self.shortcut = _shortcut(args, out_channels, norm=True)
        self.act = relu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if block_dropped(self.drop_path):
            return F.relu(self.shortcut(x))
        out = self.drop_path(self.se(self.conv3(self.conv2(self.conv1(x)))))
        if self.shortcut is not None:
            out += self.shortcut(x)
        return self.act(out)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.bn.weight)


class PreActBasicBlock(nn.Module):
    """BN-ReLU-conv3x3 twice, nothing after the addition (He et al. 2016 Fig. 4e).

    Also the Wide ResNet block B(3,3) (Zagoruyko & Komodakis 2016 §2), whose
    dropout sits between the convs, after the second BN-ReLU (`block_dropout`, §2.4).
    """

    expansion: ClassVar[int] = 1
    preact: ClassVar[bool] = True

    def __init__(self, args: BlockArgs, drop_path: nn.Module | None = None) -> None:
        super().__init__()
        args.check_basic("PreActBasicBlock")
        bn = args.bn
        out_channels = args.planes * self.expansion
        self.norm1 = nn.Identity() if args.input_activated else NormAct(args.in_channels, **bn)
        self.conv1 = conv2d(args.in_channels, args.planes, 3, args.stride)
        self.norm2 = NormAct(args.planes, **bn)
        self.dropout = _block_dropout(args.block_dropout)
        self.conv2 = conv2d(args.planes, out_channels, 3)
        self.se = _se(out_channels, args.se_ratio)
        self.drop_path = drop_path if drop_path is not None else nn.Identity()
        self.shortcut = _shortcut(args, out_channels, norm=False)
        self.projects = isinstance(self.shortcut, nn.Conv2d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if block_dropped(self.drop_path):
            return self.shortcut(self.norm1(x) if self.projects else x)
        pre = self.norm1(x)
        out = self.drop_path(self.se(self.conv2(self.dropout(self.norm2(self.conv1(pre))))))
        if self.shortcut is None:  # a plain block
            return out
        out += self.shortcut(pre if self.projects else x)
        return out

    def zero_init_last(self) -> None:
        # No BN follows the last conv in a pre-act block: zero that conv instead.
        nn.init.zeros_(self.conv2.weight)


class PreActBottleneck(nn.Module):
    """BN-ReLU-1x1, BN-ReLU-3x3 (grouped), BN-ReLU-1x1 x4 (He et al. 2016 §4, ResNet-164/1001)."""

    expansion: ClassVar[int] = 4
    preact: ClassVar[bool] = True

    def __init__(self, args: BlockArgs, drop_path: nn.Module | None = None) -> None:
        super().__init__()
        args.check_no_block_dropout("PreActBottleneck")
        bn = args.bn
        reduce, width = args.bottleneck_widths()
        out_channels = args.planes * self.expansion
        stride_1x1, stride_3x3 = args.strides
        self.norm1 = nn.Identity() if args.input_activated else NormAct(args.in_channels, **bn)
        self.conv1 = conv2d(args.in_channels, reduce, 1, stride_1x1)
        self.norm2 = NormAct(reduce, **bn)
        self.conv2 = conv2d(reduce, width, 3, stride_3x3, args.groups)
        self.norm3 = NormAct(width, **bn)
        self.conv3 = conv2d(width, out_channels, 1)
        self.se = _se(out_channels, args.se_ratio)
        self.drop_path = drop_path if drop_path is not None else nn.Identity()
        self.shortcut = _shortcut(args, out_channels, norm=False)
        self.projects = isinstance(self.shortcut, nn.Conv2d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if block_dropped(self.drop_path):
            return self.shortcut(self.norm1(x) if self.projects else x)
        pre = self.norm1(x)
        out = self.conv3(self.norm3(self.conv2(self.norm2(self.conv1(pre)))))
        out = self.drop_path(self.se(out))
        if self.shortcut is None:
            return out
        out += self.shortcut(pre if self.projects else x)
        return out

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)


BLOCKS: dict[str, type[nn.Module]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "preact_basic": PreActBasicBlock,
    "preact_bottleneck": PreActBottleneck,
}
