"""One residual family: `ResidualNet` = stem -> stages -> head, built from a `NetSpec`.

ResNet (He et al. 2015, arXiv 1512.03385) and its descendants differ in data,
not in classes: block kind (basic / bottleneck / pre-activation), groups x
group width (ResNeXt), stage widths (WRN), SE ratio, shortcut option and
stride placement are all fields of the frozen `NetSpec` / `StageSpec`.
Named paper models are registered at the bottom of this file:

- ResNet (He et al. 2015) and ResNet-200 (He et al. 2016 Table 5), and the same paper's
  plain nets (no shortcuts; Table 2, Fig. 6),
- pre-activation ResNet (He et al. 2016, "Identity Mappings", arXiv 1603.05027),
- ResNeXt (Xie et al. 2017, arXiv 1611.05431),
- Wide ResNet (Zagoruyko & Komodakis 2016, arXiv 1605.07146),
- SE-ResNet, SE-ResNeXt, SENet-154 (Hu et al. 2017, arXiv 1709.01507).
Stochastic depth (Huang et al. 2016, arXiv 1603.09382) is the free knob
`drop_path_rate` of every model, run as the paper ran it by default: whole blocks dropped
once per mini-batch (`drop_path_mode='batch'`, the branch is then not computed) with the
l/L rule (`drop_path_rule='huang'`); see models.layers.drop_path_rates for the rules.

Conventions (written down because implementations disagree):
- `StageSpec.width` is the paper's stage width ("planes", the 64 in
  Table 1's [1x1, 64; 3x3, 64; 1x1, 256]); a block outputs width * expansion.
- Bottleneck inner width = int(width * base_width / 64) * groups (torchvision's
  formula; ResNeXt 32x4d: base_width d = 4, groups C = 32 -> 128 at width 64).
- Stride placement in the bottleneck: '3x3' (torchvision "v1.5", fb.resnet.torch,
  ResNeXt §4) or '1x1' (the original MSRA Caffe models, SE-ResNet, He et al.'s
  pre-act CIFAR code). ResNet-50 costs 4.089 G vs 3.858 G multiply-adds at 224;
  the paper's Table 1 "3.8e9" is the 1x1 placement.
- Shortcuts (He et al. 2015 §3.3): 'A' parameter-free (strided subsampling +
  zero-padded channels), 'B' 1x1 projection only where the shape changes,
  'C' projection everywhere (Table 3). `proj_kernel=3` makes strided
  projections 3x3 (SENet-154).
- Shortcut 'none' gives the plain nets of He et al. 2015 §4.1/§4.2 ("plain" baselines of
  Table 2 and Fig. 6): the same blocks without the addition, so a plain net has exactly
  the depth, widths and (with option-A twins) parameters of its residual counterpart.
- Pre-activation nets (He et al. 2016 appendix): "for the first Residual Unit
  (that follows a stand-alone convolutional layer, conv1), we adopt the first
  activation right after conv1 and before splitting into two paths; for the
  last Residual Unit ... an extra activation right after its element-wise
  addition". So the stem is conv-BN-ReLU(-pool) for every net, the first
  pre-act block has no BN-ReLU of its own, and the net adds one final BN-ReLU.
  A projection shortcut takes the block's pre-activated input (shared BN-ReLU,
  He et al.'s CIFAR code), a bare 1x1 conv; an identity or option-A shortcut
  takes the raw input, so the identity path stays clean.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from .layers import (
    BN_EPS,
    he_init_,
    BN_MOMENTUM,
    ClassifierHead,
    ConvNormAct,
    DropPathMode,
    DropPathRule,
    NormAct,
    SqueezeExcite,
    block_dropped,
    conv2d,
    drop_path_rates,
    make_drop_path,
    relu,
)
from .registry import MacsVariant, ModelInfo, register_model

# Exact counts of the Table 3 shortcut variants (meta device, platform.complexity at 224).
RESNET34_A_PARAMS, RESNET34_A_MACS = 21_623_848, 3.644e9
RESNET34_C_PARAMS, RESNET34_C_MACS = 22_716_840, 3.831e9

# ---------------------------------------------------------------- specs

BlockKind = Literal["basic", "bottleneck", "preact_basic", "preact_bottleneck"]
StemKind = Literal["imagenet", "cifar", "deep"]
Shortcut = Literal["A", "B", "C", "none"]  # 'none': plain net, no shortcut at all
StrideOn = Literal["3x3", "1x1"]
# How an option-A shortcut downsamples: 'stride' keeps every 2nd pixel (He et al. 2015 §3.3;
# fb.resnet.torch's 1x1 average pool at stride 2); 'avgpool' averages 2x2 windows (Huang et
# al.'s ResidualDrop.lua: nn.SpatialAveragePooling(stride, stride, stride, stride)).
PadPool = Literal["stride", "avgpool"]


def _check_choice(field: str, value: object, choices: tuple[object, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{field} must be one of {choices}, got {value!r}")


@dataclass(frozen=True)
class StageSpec:
    """One stage: `depth` blocks; only the first changes stride and width (pycls AnyStage).

    `block`, `groups`, `base_width`, `se_ratio` override the NetSpec's value for
    this stage when not None.
    """

    depth: int  # number of blocks
    width: int  # planes; blocks output width * expansion channels
    stride: int  # stride of the stage's first block
    block: BlockKind | None = None
    groups: int | None = None
    base_width: int | None = None
    se_ratio: float | None = None

    def __post_init__(self) -> None:
        if self.depth < 1 or self.width < 1:
            raise ValueError(f"depth and width must be >= 1, got {self}")
        _check_choice("stride", self.stride, (1, 2))
        if self.block is not None:
            _check_choice("block", self.block, get_args(BlockKind))


@dataclass(frozen=True)
class NetSpec:
    """A whole residual network. Fields are the architecture; training knobs are not here."""

    stem: StemKind
    stages: tuple[StageSpec, ...]
    block: BlockKind
    stem_width: int = 64
    groups: int = 1  # C, cardinality (ResNeXt §3.3)
    base_width: int = 64  # d, width of one group at stage width 64 (ResNeXt "32x4d": d = 4)
    se_ratio: float = 0.0  # 1/r of the block's output channels (SENet r = 16 -> 0.0625); 0 = no SE
    shortcut: Shortcut = "B"
    stride_on: StrideOn = "3x3"
    # Width of the bottleneck's first 1x1 relative to its grouped 3x3 (SENet-154 halves it,
    # the 3x3 then maps C*d/2 -> C*d channels).
    conv1_ratio: float = 1.0
    proj_kernel: int = 1  # kernel of *strided* projection shortcuts (SENet-154: 3x3, pad 1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))  # accept a list (e.g. from YAML)
        _check_choice("stem", self.stem, get_args(StemKind))
        _check_choice("block", self.block, get_args(BlockKind))
        _check_choice("shortcut", self.shortcut, get_args(Shortcut))
        _check_choice("stride_on", self.stride_on, get_args(StrideOn))
        _check_choice("proj_kernel", self.proj_kernel, (1, 3))
        if not 0.0 < self.conv1_ratio <= 1.0:
            raise ValueError(f"conv1_ratio must be in (0, 1], got {self.conv1_ratio}")
        if not self.stages:
            raise ValueError("a NetSpec needs at least one stage")
        # Pre-activation changes the first block and adds a final norm-act (STYLE rule 2),
        # so all stages must agree on it.
        if len({BLOCKS[self.block_of(s)].preact for s in self.stages}) != 1:
            raise ValueError("stages must be all pre-activation or all post-activation")

    def block_of(self, stage: StageSpec) -> BlockKind:
        return stage.block if stage.block is not None else self.block

    @property
    def preact(self) -> bool:
        return BLOCKS[self.block_of(self.stages[0])].preact

    @property
    def num_blocks(self) -> int:
        return sum(s.depth for s in self.stages)


# Every field name of the specs: overriding one of these on a named model is an error.
SPEC_FIELDS = frozenset(f.name for f in fields(NetSpec) + fields(StageSpec))


# ---------------------------------------------------------------- ResNeXt complexity (Table 2)


def conv2_template_params(cardinality: int, group_width: int, channels: int = 256) -> int:
    """Weights of ResNeXt's conv2-stage template block (Xie et al. 2017 Table 2).

    1x1 channels -> C*d, 3x3 C*d -> C*d in C groups (9*d*d per group), 1x1 C*d -> channels:
    C * (2 * channels * d + 9 * d^2). C = 1, d = 64 gives 69,632, the table's "~70k".
    """
    return cardinality * (2 * channels * group_width + 9 * group_width**2)


def resnext_group_width(cardinality: int, *, reference_width: int = 64, channels: int = 256) -> int:
    """Bottleneck width d of one group at preserved complexity (ResNeXt Table 2, §3.3).

    The d whose conv2 template has the parameter count closest to the C = 1,
    d = `reference_width` template: C = 1, 2, 4, 8, 32 -> d = 64, 40, 24, 14, 4.
    (Params and FLOPs scale alike at a fixed map size, so either preserves both.)
    """
    if cardinality < 1:
        raise ValueError(f"cardinality must be >= 1, got {cardinality}")
    target = conv2_template_params(1, reference_width, channels)
    return min(
        range(1, reference_width + 1),
        key=lambda d: abs(conv2_template_params(cardinality, d, channels) - target),
    )


# ---------------------------------------------------------------- shortcuts and stems


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
        _check_choice("shortcut_downsample", pool, get_args(PadPool))
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


def make_stem(
    kind: StemKind, in_chans: int, width: int, *, bn_eps: float, bn_momentum: float
) -> nn.Sequential:
    """conv-BN-ReLU (-max pool) for every net, pre-activation ones included (module docstring).

    'imagenet': 7x7/2 conv + 3x3/2 max pool (He et al. 2015 Table 1, conv1), 224 -> 56.
    'cifar': one 3x3 conv at stride 1 (§4.2, "The first layer is 3x3 convolutions").
    'deep': three 3x3 convs (width/2, width/2, width; the first at stride 2) replacing
    the 7x7, then a 3x3/2 max pool that rounds up as Caffe does (SENet-154, Hu et al.
    2017 supplementary; the released Caffe model). Same 56x56 map at 224.
    """
    bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if kind == "deep":
        half = width // 2
        layers["conv1"] = ConvNormAct(in_chans, half, 3, 2, **bn)
        layers["conv2"] = ConvNormAct(half, half, 3, **bn)
        layers["conv3"] = ConvNormAct(half, width, 3, **bn)
        layers["pool"] = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)  # 112 -> 56
        return nn.Sequential(layers)
    k, stride = (7, 2) if kind == "imagenet" else (3, 1)
    layers["conv"] = ConvNormAct(in_chans, width, k, stride, **bn)
    if kind == "imagenet":
        layers["pool"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)  # 112 -> 56 at 224
    return nn.Sequential(layers)


def _se(channels: int, se_ratio: float) -> nn.Module:
    # SE on the residual branch's output, before the addition (SENet Fig. 3); C/r reduction.
    if se_ratio <= 0:
        return nn.Identity()
    return SqueezeExcite(channels, max(1, round(channels * se_ratio)))


def _block_dropout(p: float) -> nn.Module:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"block_dropout must be in [0, 1), got {p}")
    return nn.Dropout(p) if p > 0 else nn.Identity()


def _no_block_dropout(block: str, p: float) -> None:
    if p != 0.0:
        raise ValueError(
            f"{block}: block_dropout (WRN's dropout between the two 3x3 convs) needs a basic block"
        )


# ---------------------------------------------------------------- blocks
#
# All blocks share one constructor signature so that the net can build any of
# them from a spec. A block receives its ready DropPath (or None); it never
# computes a rate. DropPath wraps the whole residual branch (SE included), so a
# dropped block is exactly its shortcut (Huang et al. 2016 §3). `zero_init_last()`
# makes the residual branch output zero at init, so each block starts as the
# identity (Goyal et al. 2017 §5.1, "zero gamma"; +0.2-0.3% top-1 in torchvision).
#
# The residual addition is in place (`out += shortcut`), as in torchvision: `out` is always a
# fresh tensor that no backward needs (a BN, conv, SE-gating or drop-path output), and the
# out-of-place sum cost ~1.5% of a ResNeXt-50 CPU training step (python -m benchmarks models).
#
# `input_activated` marks the net's first block, whose input the stem has already
# BN-ReLU'd: a pre-act block then skips its own first BN-ReLU (module docstring).
# A post-act block's input is always activated, so it ignores the flag.
#
# A plain block (shortcut 'none') has `shortcut = None` and skips the addition; its
# branch is everything, so it takes no drop-path and no zero-init (the net refuses both).


class BasicBlock(nn.Module):
    """Two 3x3 convs (He et al. 2015 Fig. 2 left; ResNet-18/34, CIFAR nets)."""

    expansion: ClassVar[int] = 1
    preact: ClassVar[bool] = False

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        groups: int = 1,
        base_width: int = 64,
        se_ratio: float = 0.0,
        conv1_ratio: float = 1.0,
        shortcut: Shortcut = "B",
        proj_kernel: int = 1,
        stride_on: StrideOn = "3x3",  # unused: the stride can only go on the first 3x3
        input_activated: bool = False,  # unused (see above)
        block_dropout: float = 0.0,
        drop_path: nn.Module | None = None,
        pad_pool: PadPool = "stride",
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        _check_basic("BasicBlock", groups, base_width, conv1_ratio)
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        out_channels = planes * self.expansion
        self.conv1 = ConvNormAct(in_channels, planes, 3, stride, **bn)
        self.dropout = _block_dropout(block_dropout)
        self.conv2 = ConvNormAct(planes, out_channels, 3, act_layer=None, **bn)
        self.se = _se(out_channels, se_ratio)
        self.drop_path = drop_path if drop_path is not None else nn.Identity()
        self.shortcut = make_shortcut(
            in_channels, out_channels, stride, shortcut, norm=True, proj_kernel=proj_kernel,
            pad_pool=pad_pool, **bn
        )
        self.act = relu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if block_dropped(self.drop_path):  # batch-mode stochastic depth: no branch at all
            return F.relu(self.shortcut(x))  # ResidualDrop.lua: skip only, then the ReLU
        out = self.drop_path(self.se(self.conv2(self.dropout(self.conv1(x)))))
        if self.shortcut is not None:  # None: a plain block (He et al. 2015 §4.1)
            out += self.shortcut(x)  # in place (see module notes on the blocks)
        return self.act(out)  # ReLU after the addition (v1)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2.bn.weight)


def _check_basic(name: str, groups: int, base_width: int, conv1_ratio: float) -> None:
    if groups != 1 or base_width != 64 or conv1_ratio != 1.0:
        raise ValueError(
            f"{name} needs groups=1, base_width=64, conv1_ratio=1; "
            "widen it via the stage width (WRN)"
        )


def _bottleneck_widths(
    planes: int, groups: int, base_width: int, conv1_ratio: float
) -> tuple[int, int]:
    """(first 1x1 width, grouped 3x3 width): C x d at stage width 64 (ResNeXt §3.3)."""
    width = int(planes * (base_width / 64.0)) * groups
    reduce = int(width * conv1_ratio)
    if reduce % groups:
        raise ValueError(f"conv1 width {reduce} is not divisible by groups={groups}")
    return reduce, width


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (grouped) -> 1x1 expand x4.

    He et al. 2015 Fig. 5 right; grouped 3x3 = ResNeXt Fig. 3c (Xie et al. 2017);
    SE on the branch output = SE-ResNet module, SENet Fig. 3.
    """

    expansion: ClassVar[int] = 4
    preact: ClassVar[bool] = False

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        groups: int = 1,
        base_width: int = 64,
        se_ratio: float = 0.0,
        conv1_ratio: float = 1.0,
        shortcut: Shortcut = "B",
        proj_kernel: int = 1,
        stride_on: StrideOn = "3x3",
        input_activated: bool = False,  # unused
        block_dropout: float = 0.0,
        drop_path: nn.Module | None = None,
        pad_pool: PadPool = "stride",
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        _no_block_dropout("Bottleneck", block_dropout)
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        reduce, width = _bottleneck_widths(planes, groups, base_width, conv1_ratio)
        out_channels = planes * self.expansion
        # '1x1': MSRA Caffe (paper Table 1 FLOPs). '3x3': torchvision "v1.5", more MACs;
        # NVIDIA's ResNet-50 v1.5 notes (linked from torchvision) report ~+0.5% top-1.
        stride_1x1, stride_3x3 = (stride, 1) if stride_on == "1x1" else (1, stride)
        self.conv1 = ConvNormAct(in_channels, reduce, 1, stride_1x1, **bn)
        self.conv2 = ConvNormAct(reduce, width, 3, stride_3x3, groups, **bn)
        self.conv3 = ConvNormAct(width, out_channels, 1, act_layer=None, **bn)
        self.se = _se(out_channels, se_ratio)
        self.drop_path = drop_path if drop_path is not None else nn.Identity()
        self.shortcut = make_shortcut(
            in_channels, out_channels, stride, shortcut, norm=True, proj_kernel=proj_kernel,
            pad_pool=pad_pool, **bn
        )
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

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        groups: int = 1,
        base_width: int = 64,
        se_ratio: float = 0.0,
        conv1_ratio: float = 1.0,
        shortcut: Shortcut = "B",
        proj_kernel: int = 1,
        stride_on: StrideOn = "3x3",  # unused, as in BasicBlock
        input_activated: bool = False,
        block_dropout: float = 0.0,
        drop_path: nn.Module | None = None,
        pad_pool: PadPool = "stride",
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        _check_basic("PreActBasicBlock", groups, base_width, conv1_ratio)
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        out_channels = planes * self.expansion
        self.norm1 = nn.Identity() if input_activated else NormAct(in_channels, **bn)
        self.conv1 = conv2d(in_channels, planes, 3, stride)
        self.norm2 = NormAct(planes, **bn)
        self.dropout = _block_dropout(block_dropout)
        self.conv2 = conv2d(planes, out_channels, 3)
        self.se = _se(out_channels, se_ratio)
        self.drop_path = drop_path if drop_path is not None else nn.Identity()
        self.shortcut = make_shortcut(
            in_channels, out_channels, stride, shortcut, norm=False, proj_kernel=proj_kernel,
            pad_pool=pad_pool, **bn
        )
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

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        groups: int = 1,
        base_width: int = 64,
        se_ratio: float = 0.0,
        conv1_ratio: float = 1.0,
        shortcut: Shortcut = "B",
        proj_kernel: int = 1,
        stride_on: StrideOn = "3x3",
        input_activated: bool = False,
        block_dropout: float = 0.0,
        drop_path: nn.Module | None = None,
        pad_pool: PadPool = "stride",
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        _no_block_dropout("PreActBottleneck", block_dropout)
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        reduce, width = _bottleneck_widths(planes, groups, base_width, conv1_ratio)
        out_channels = planes * self.expansion
        stride_1x1, stride_3x3 = (stride, 1) if stride_on == "1x1" else (1, stride)
        self.norm1 = nn.Identity() if input_activated else NormAct(in_channels, **bn)
        self.conv1 = conv2d(in_channels, reduce, 1, stride_1x1)
        self.norm2 = NormAct(reduce, **bn)
        self.conv2 = conv2d(reduce, width, 3, stride_3x3, groups)
        self.norm3 = NormAct(width, **bn)
        self.conv3 = conv2d(width, out_channels, 1)
        self.se = _se(out_channels, se_ratio)
        self.drop_path = drop_path if drop_path is not None else nn.Identity()
        self.shortcut = make_shortcut(
            in_channels, out_channels, stride, shortcut, norm=False, proj_kernel=proj_kernel,
            pad_pool=pad_pool, **bn
        )
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


# ---------------------------------------------------------------- network


class _ZeroBranch(nn.Module):
    """Stands in for a block's `drop_path` during a lesion: the residual branch adds nothing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


@dataclass(frozen=True)
class BlockSite:
    """Where a block sits and what it does to the shape of the feature map."""

    name: str  # 's2.b1': stage 2, block 1 (the module path inside the net)
    in_channels: int
    out_channels: int
    stride: int

    @property
    def keeps_shape(self) -> bool:
        """False for a "downsampling block" (Veit et al. 2016 §4): stride 2 or more channels."""
        return self.stride == 1 and self.in_channels == self.out_channels


class ResidualNet(nn.Module):
    """stem -> s1..sN (stages of blocks b1..bK) -> [final norm-act if pre-act] -> head.

    Training-time knobs (drop_path_rate, dropout, block_dropout, zero_init_residual,
    BN eps and momentum) are constructor arguments, not spec fields: they do not
    change the architecture. The spec is kept on the module so it can be saved
    with the state_dict.

    Lesion studies (Veit et al. 2016, arXiv 1605.06431): `blocks()` lists the blocks
    in forward order and `removed(names)` deletes some of them for the duration of a
    `with` statement (see there).
    """

    def __init__(
        self,
        spec: NetSpec,
        num_classes: int = 1000,
        *,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        # Huang et al. 2016 ran stochastic depth per mini-batch with the l/L rule
        # (layers.drop_path_rates, layers.DropPath); both are free knobs.
        drop_path_mode: DropPathMode = "batch",
        drop_path_rule: DropPathRule = "huang",
        shortcut_downsample: PadPool = "stride",  # option-A shortcuts only (PadPool)
        dropout: float = 0.0,
        block_dropout: float = 0.0,  # WRN's dropout between the convs of basic blocks (§2.4)
        # Off by default, as in the papers and torchvision: the zero-gamma trick is Goyal
        # et al.'s ImageNet recipe, and on thin option-A CIFAR nets it stalls early training.
        zero_init_residual: bool = False,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        if spec.shortcut == "none" and (drop_path_rate > 0 or zero_init_residual):
            # Both act on a residual branch that is added to a shortcut; a plain block's
            # branch is the whole signal, so either would cut the network in two.
            raise ValueError(
                "a plain net (shortcut='none') takes neither drop_path_rate nor "
                "zero_init_residual: there is no shortcut to fall back on"
            )
        if shortcut_downsample != "stride" and spec.shortcut != "A":
            raise ValueError(
                f"shortcut_downsample={shortcut_downsample!r} needs option-A shortcuts; "
                f"this net uses shortcut={spec.shortcut!r}"
            )
        self.spec = spec
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        self.stem = make_stem(spec.stem, in_chans, spec.stem_width, **bn)
        self.block_sites: tuple[BlockSite, ...] = ()  # filled below, in forward order

        # Stochastic depth: one rate per block over the global block index
        # (Huang et al. 2016), so the deepest block of the net gets the full rate.
        rates = drop_path_rates(spec.num_blocks, drop_path_rate, drop_path_rule)
        index = 0
        channels = spec.stem_width
        for s, stage in enumerate(spec.stages, start=1):
            block_cls = BLOCKS[spec.block_of(stage)]
            blocks: OrderedDict[str, nn.Module] = OrderedDict()
            for b in range(1, stage.depth + 1):
                rate = rates[index]
                stride = stage.stride if b == 1 else 1  # only the first block downsamples
                out_channels = stage.width * block_cls.expansion
                site = BlockSite(f"s{s}.b{b}", channels, out_channels, stride)
                self.block_sites += (site,)
                blocks[f"b{b}"] = block_cls(
                    channels,
                    stage.width,
                    stride,
                    groups=_pick(stage.groups, spec.groups),
                    base_width=_pick(stage.base_width, spec.base_width),
                    se_ratio=_pick(stage.se_ratio, spec.se_ratio),
                    conv1_ratio=spec.conv1_ratio,
                    shortcut=spec.shortcut,
                    proj_kernel=spec.proj_kernel,
                    stride_on=spec.stride_on,
                    input_activated=index == 0,  # the stem's BN-ReLU feeds both paths
                    block_dropout=block_dropout,
                    drop_path=make_drop_path(rate, drop_path_mode),
                    pad_pool=shortcut_downsample,
                    **bn,
                )
                channels = out_channels
                index += 1
            self.add_module(f"s{s}", nn.Sequential(blocks))
        if spec.preact:
            # Pre-act blocks leave the last addition un-normalized (He et al. 2016 appendix).
            self.final_act = NormAct(channels, **bn)
        self.head = ClassifierHead(channels, num_classes, dropout)
        self.num_features = channels
        self.init_weights(zero_init_residual)

    def init_weights(self, zero_init_residual: bool) -> None:
        # He et al. 2015 §3.4 uses the init of He et al. 2015b ("Delving deep"),
        # fan_out as in torchvision; the Linear head keeps PyTorch's default.
        he_init_(self)
        if zero_init_residual:
            for m in self.modules():
                if hasattr(m, "zero_init_last"):
                    m.zero_init_last()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        for module in self.children():
            x = module(x)
        return x

    # ------------------------------------------------------------ lesion studies

    @property
    def plain(self) -> bool:
        return self.spec.shortcut == "none"

    def blocks(self) -> list[tuple[str, nn.Module]]:
        """(name, block) in forward order; names are module paths: 's1.b1', 's1.b2', ..."""
        return [(site.name, self.get_submodule(site.name)) for site in self.block_sites]

    def site(self, name: str) -> BlockSite:
        for site in self.block_sites:
            if site.name == name:
                return site
        known = ", ".join(s.name for s in self.block_sites)
        raise ValueError(f"no block named {name!r} in this net; its blocks: {known}")

    def removable(self, name: str) -> bool:
        """Every residual block can be removed (its shortcut stays); a plain block only
        where the identity can take its place, i.e. where it keeps the shape."""
        return not self.plain or self.site(name).keeps_shape

    @contextmanager
    def removed(self, names: Iterable[str]) -> Iterator[ResidualNet]:
        """Delete blocks for the duration of the `with` block (Veit et al. 2016 §4).

        Residual block: its residual branch is replaced by zeros (through the
        `drop_path` slot every block applies to the whole branch), so the block
        computes only its shortcut: x for an identity shortcut (a post-act block's
        ReLU leaves its non-negative input unchanged), and for a downsampling block
        the strided pad or projection, as in Veit et al.'s "removing downsampling
        blocks". Plain block: replaced by the identity, which needs the block to
        keep the shape; a block that changes it cannot be removed (ValueError, before
        anything changes). Everything is restored on exit, exceptions included.
        """
        names = list(dict.fromkeys(names))  # unique, in the caller's order
        for name in names:
            if not self.removable(name):
                site = self.site(name)
                raise ValueError(
                    f"plain block {name} cannot be removed: it maps {site.in_channels} to "
                    f"{site.out_channels} channels at stride {site.stride}, and without a "
                    "shortcut nothing of the right shape is left in its place"
                )
        undo: list[tuple[nn.Module, str, nn.Module]] = []
        try:
            for name in names:
                block = self.get_submodule(name)
                if self.plain:
                    stage, child = name.rsplit(".", 1)
                    parent = self.get_submodule(stage)
                    undo.append((parent, child, block))
                    setattr(parent, child, nn.Identity())
                else:
                    undo.append((block, "drop_path", block.drop_path))
                    block.drop_path = _ZeroBranch()
            yield self
        finally:
            for owner, attr, original in reversed(undo):
                setattr(owner, attr, original)


def _pick(stage_value: Any, net_value: Any) -> Any:
    return stage_value if stage_value is not None else net_value


# ---------------------------------------------------------------- paper specs


def imagenet_spec(
    block: BlockKind,
    depths: tuple[int, int, int, int],
    *,
    stride_on: StrideOn = "3x3",
    groups: int = 1,
    base_width: int = 64,
    se_ratio: float = 0.0,
    stem: StemKind = "imagenet",
    stem_width: int = 64,
    conv1_ratio: float = 1.0,
    proj_kernel: int = 1,
    shortcut: Shortcut = "B",
) -> NetSpec:
    """He et al. 2015 Table 1: conv2_x..conv5_x at 64/128/256/512, 56 -> 7 at 224.

    conv2_x follows the max pool at stride 1; conv3_1, conv4_1, conv5_1 downsample
    with stride 2. Shortcuts are option B (the torchvision / Table 3 "B" models) unless
    `shortcut` says otherwise (Table 3's A and C).
    """
    widths, strides = (64, 128, 256, 512), (1, 2, 2, 2)
    stages = tuple(StageSpec(d, w, s) for d, w, s in zip(depths, widths, strides, strict=True))
    return NetSpec(
        stem=stem,
        stages=stages,
        block=block,
        stem_width=stem_width,
        groups=groups,
        base_width=base_width,
        se_ratio=se_ratio,
        shortcut=shortcut,
        stride_on=stride_on,
        conv1_ratio=conv1_ratio,
        proj_kernel=proj_kernel,
    )


def cifar_spec(n: int) -> NetSpec:
    """He et al. 2015 §4.2: 6n+2 layers; 3x3 conv 16, then 3 stages of n basic blocks
    on 32/16/8 maps with 16/32/64 filters, option-A shortcuts, global pool, FC."""
    stages = (StageSpec(n, 16, 1), StageSpec(n, 32, 2), StageSpec(n, 64, 2))
    return NetSpec(stem="cifar", stages=stages, block="basic", stem_width=16, shortcut="A")


def preact_cifar_spec(depth: int, block: BlockKind, *, stride_on: StrideOn = "1x1") -> NetSpec:
    """He et al. 2016 CIFAR nets: 16/32/64 stage widths on 32/16/8 maps, stem 3x3 16.

    Basic blocks: 6n+2 layers with option-A shortcuts, as the ResNet-110 of the 2015
    paper it is compared with (Table 3). Bottlenecks: 9n+2 layers, outputs 64/128/256,
    bare 1x1 projections where the shape changes and the stride on the first 1x1
    (He et al.'s resnet-pre-act.lua, the ResNet-164/1001 of Table 4).
    """
    per_block, shortcut = {"preact_basic": (6, "A"), "preact_bottleneck": (9, "B")}[block]
    if (depth - 2) % per_block:
        raise ValueError(f"{block} CIFAR depth must be {per_block}n+2, got {depth}")
    n = (depth - 2) // per_block
    stages = (StageSpec(n, 16, 1), StageSpec(n, 32, 2), StageSpec(n, 64, 2))
    return NetSpec(
        stem="cifar",
        stages=stages,
        block=block,
        stem_width=16,
        shortcut=shortcut,
        stride_on=stride_on,
    )


def wrn_spec(depth: int, k: int) -> NetSpec:
    """WRN-d-k (Zagoruyko & Komodakis 2016 Table 1): stem 3x3 16, then 3 groups of
    n = (d-4)/6 pre-act B(3,3) blocks of width 16k/32k/64k on 32/16/8 maps; 1x1
    projections where the shape changes (their code: a bare conv on the activated input)."""
    if (depth - 4) % 6:
        raise ValueError(f"WRN depth must be 6n+4, got {depth}")
    n = (depth - 4) // 6
    stages = (StageSpec(n, 16 * k, 1), StageSpec(n, 32 * k, 2), StageSpec(n, 64 * k, 2))
    return NetSpec(stem="cifar", stages=stages, block="preact_basic", stem_width=16, shortcut="B")


def resnext_cifar_spec(
    cardinality: int, group_width: int, depth: int = 29, *, stride_on: StrideOn = "3x3"
) -> NetSpec:
    """ResNeXt-29 (Xie et al. 2017 §5.3, Table 7; facebookresearch/ResNeXt resnext.lua):
    stem 3x3 64, three stages of (depth-2)/9 bottlenecks at planes 64/128/256
    (outputs 256/512/1024, "widening factor 4"), C x d at stage width 64, option B."""
    if (depth - 2) % 9:
        raise ValueError(f"ResNeXt CIFAR depth must be 9n+2, got {depth}")
    n = (depth - 2) // 9
    stages = (StageSpec(n, 64, 1), StageSpec(n, 128, 2), StageSpec(n, 256, 2))
    return NetSpec(
        stem="cifar",
        stages=stages,
        block="bottleneck",
        stem_width=64,
        groups=cardinality,
        base_width=group_width,
        shortcut="B",
        stride_on=stride_on,
    )


# ---------------------------------------------------------------- registry

RESNET_PAPER = "He et al. 2015, Deep Residual Learning for Image Recognition, arXiv:1512.03385"
PREACT_PAPER = "He et al. 2016, Identity Mappings in Deep Residual Networks, arXiv:1603.05027"
RESNEXT_PAPER = (
    "Xie et al. 2017, Aggregated Residual Transformations for Deep Neural Networks, "
    "arXiv:1611.05431"
)
WRN_PAPER = "Zagoruyko & Komodakis 2016, Wide Residual Networks, arXiv:1605.07146"
SENET_PAPER = "Hu et al. 2017, Squeeze-and-Excitation Networks, arXiv:1709.01507"

TV_META = "torchvision 0.29.1 weight meta (num_params, _ops); matches analytic conv+fc count"
ANALYTIC_V1 = "analytic conv+fc MACs with stride on the first 1x1 (MSRA Caffe v1)"
EXACT = "exact count of this implementation (meta device)"
EXACT_MACS = "platform.complexity count of this implementation (conv + fc multiply-adds)"

FREE_KNOBS = frozenset(
    {
        "num_classes",
        "in_chans",
        "drop_path_rate",
        "drop_path_mode",
        "drop_path_rule",
        "dropout",
        "zero_init_residual",
        "bn_eps",
        "bn_momentum",
    }
)
# Option-A nets (CIFAR ResNets): Huang et al.'s 2x2-average-pool shortcut is a free knob.
FREE_KNOBS_PAD = FREE_KNOBS | {"shortcut_downsample"}
# The paper's Table 1 FLOPs are the 1x1-stride models, torchvision's the 3x3 ones:
# both placements are the "same" ResNet-50, so stride_on stays free for bottlenecks.
FREE_KNOBS_BOTTLENECK = FREE_KNOBS | {"stride_on"}
FREE_KNOBS_WRN = FREE_KNOBS | {"block_dropout"}  # WRN §2.4: dropout between the convs (0.3)
# SENet Table 10 varies r at fixed architecture otherwise: an ablation knob, like stride_on.
FREE_KNOBS_SE = FREE_KNOBS_BOTTLENECK | {"se_reduction"}

# ImageNet depths (He et al. 2015 Table 1; ResNet-200: He et al. 2016, fb.resnet.torch).
DEPTHS: dict[int, tuple[BlockKind, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}


def _variant(stride_on: StrideOn, macs: float, source: str = EXACT_MACS) -> tuple[MacsVariant, ...]:
    return (MacsVariant((("stride_on", stride_on),), macs, source),)


def _info(paper: str, **row: Any) -> ModelInfo:
    """A paper row at ImageNet defaults (224 px, 1000 classes) unless given."""
    row.setdefault("resolution", 224)
    row.setdefault("num_classes", 1000)
    row.setdefault("params_source", TV_META if row.get("torchvision") else EXACT)
    row.setdefault("macs_source", TV_META if row.get("torchvision") else EXACT_MACS)
    return ModelInfo(paper=paper, family="residual", **row)


def _imagenet_info(*, macs_stride_1x1: float | None = None, **row: Any) -> ModelInfo:
    """A He et al. 2015 Table 1 row; exact counts from torchvision's metadata (3x3 stride)."""
    variants = _variant("1x1", macs_stride_1x1, ANALYTIC_V1) if macs_stride_1x1 else ()
    return _info(
        RESNET_PAPER,
        macs_source=TV_META + " (stride on the 3x3, 'v1.5')",
        macs_variants=variants,
        **row,
    )


def _register(info: ModelInfo, free: frozenset[str] = FREE_KNOBS) -> Any:
    return register_model(info, free_knobs=free, defining_fields=SPEC_FIELDS)


def _imagenet(depth: int, preact: bool = False, **spec: Any) -> NetSpec:
    block, depths = DEPTHS[depth]
    kind: BlockKind = f"preact_{block}" if preact else block  # type: ignore[assignment]
    return imagenet_spec(kind, depths, **spec)


# ---------------------------------------------------------------- ResNet (He et al. 2015)

# Errors: Table 3 (10-crop, val) for 34-B/50/101/152; ResNet-18 only appears in Table 2.
_T3 = "ImageNet val, 10-crop, Table 3"


@_register(
    _imagenet_info(
        table="Table 1 (18-layer)",
        torchvision="resnet18",
        params=11_689_512,
        macs=1.814e9,
        paper_macs="1.8e9",
        top1_err=27.88,
        err_protocol="ImageNet val, 10-crop, Table 2",
        notes="Table 2 error is for option-A shortcuts; this model uses option B.",
    )
)
def resnet18(**knobs: Any) -> ResidualNet:
    return ResidualNet(_imagenet(18), **knobs)


@_register(
    _imagenet_info(
        table="Table 1 (34-layer)",
        torchvision="resnet34",
        params=21_797_672,
        macs=3.664e9,
        paper_macs="3.6e9",
        top1_err=24.52,
        top5_err=7.46,
        err_protocol=_T3 + " (ResNet-34 B)",
    )
)
def resnet34(**knobs: Any) -> ResidualNet:
    return ResidualNet(_imagenet(34), **knobs)


# He et al. 2015 Table 3 / §4.1 "Identity vs. Projection Shortcuts": (A) zero-padding shortcuts
# for increasing dimensions, all parameter-free; (C) all shortcuts are projections.
@_register(
    _info(
        RESNET_PAPER,
        table="Table 3 (ResNet-34 A)",
        params=RESNET34_A_PARAMS,
        macs=RESNET34_A_MACS,
        paper_macs="3.6e9",
        top1_err=25.03,
        top5_err=7.76,
        err_protocol=_T3,
        notes="Option A: identity shortcuts, zero-padded channels and strided subsampling where "
        "the shape changes (§3.3), so no shortcut parameters. The 2x2-average-pool variant of "
        "Huang et al. is model.shortcut_downsample=avgpool.",
    ),
    FREE_KNOBS_PAD,
)
def resnet34_a(**knobs: Any) -> ResidualNet:
    return ResidualNet(_imagenet(34, shortcut="A"), **knobs)


@_register(
    _info(
        RESNET_PAPER,
        table="Table 3 (ResNet-34 C)",
        params=RESNET34_C_PARAMS,
        macs=RESNET34_C_MACS,  # Table 1's 3.6e9 is for B; C's projections add 0.19e9
        top1_err=24.19,
        top5_err=7.40,
        err_protocol=_T3,
        notes="Option C: a 1x1 projection (+BN) on every shortcut, identity ones included; "
        "§4.1 calls C 'marginally better than B' and attributes it to the extra parameters.",
    )
)
def resnet34_c(**knobs: Any) -> ResidualNet:
    return ResidualNet(_imagenet(34, shortcut="C"), **knobs)


@_register(
    _imagenet_info(
        table="Table 1 (50-layer)",
        torchvision="resnet50",
        params=25_557_032,
        macs=4.089e9,
        macs_stride_1x1=3.858e9,  # the paper's "3.8e9"
        paper_macs="3.8e9",
        top1_err=22.85,
        top5_err=6.71,
        err_protocol=_T3,
    ),
    FREE_KNOBS_BOTTLENECK,
)
def resnet50(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return ResidualNet(_imagenet(50, stride_on=stride_on), **knobs)


@_register(
    _imagenet_info(
        table="Table 1 (101-layer)",
        torchvision="resnet101",
        params=44_549_160,
        macs=7.801e9,
        macs_stride_1x1=7.570e9,
        paper_macs="7.6e9",
        top1_err=21.75,
        top5_err=6.05,
        err_protocol=_T3,
    ),
    FREE_KNOBS_BOTTLENECK,
)
def resnet101(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return ResidualNet(_imagenet(101, stride_on=stride_on), **knobs)


@_register(
    _imagenet_info(
        table="Table 1 (152-layer)",
        torchvision="resnet152",
        params=60_192_808,
        macs=11.514e9,
        macs_stride_1x1=11.282e9,
        paper_macs="11.3e9",
        top1_err=21.43,
        top5_err=5.71,
        err_protocol=_T3,
    ),
    FREE_KNOBS_BOTTLENECK,
)
def resnet152(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return ResidualNet(_imagenet(152, stride_on=stride_on), **knobs)


@_register(
    _info(
        PREACT_PAPER,
        table="Table 5 (ResNet-200, original post-activation units); depths 3-24-36-3",
        params=64_673_832,
        macs=15.007e9,
        macs_variants=_variant("1x1", 14.776e9),
        top1_err=21.8,
        top5_err=6.0,
        err_protocol="ImageNet val, single 320x320 crop (trained at 224), Table 5",
        notes="Depths from fb.resnet.torch (resnet.lua / preresnet.lua cfg[200]); stride on the "
        "3x3 as there. The paper prints no params or FLOPs for ResNet-200.",
    ),
    FREE_KNOBS_BOTTLENECK,
)
def resnet200(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return ResidualNet(_imagenet(200, stride_on=stride_on), **knobs)


def _cifar_info(params: int, paper_params: str, top1: float, notes: str = "") -> ModelInfo:
    return _info(
        RESNET_PAPER,
        table="Table 6 (CIFAR-10, §4.2)",
        resolution=32,
        num_classes=10,
        params=params,
        params_source="exact count, option-A shortcuts; rounds to the paper's printed value",
        paper_params=paper_params,
        top1_err=top1,
        err_protocol="CIFAR-10 test, Table 6 (pad-4 crop + flip augmentation)",
        notes=notes,
    )


def _cifar(n: int, **knobs: Any) -> ResidualNet:
    return ResidualNet(cifar_spec(n), **knobs)


@_register(_cifar_info(269_722, "0.27M", 8.75), FREE_KNOBS_PAD)
def resnet20(**knobs: Any) -> ResidualNet:
    return _cifar(3, **knobs)


@_register(_cifar_info(464_154, "0.46M", 7.51), FREE_KNOBS_PAD)
def resnet32(**knobs: Any) -> ResidualNet:
    return _cifar(5, **knobs)


@_register(_cifar_info(658_586, "0.66M", 7.17), FREE_KNOBS_PAD)
def resnet44(**knobs: Any) -> ResidualNet:
    return _cifar(7, **knobs)


@_register(_cifar_info(853_018, "0.85M", 6.97), FREE_KNOBS_PAD)
def resnet56(**knobs: Any) -> ResidualNet:
    return _cifar(9, **knobs)


@_register(
    _cifar_info(1_727_962, "1.7M", 6.43, notes="6.43 is the best of 5 runs; mean 6.61 +- 0.16"),
    FREE_KNOBS_PAD,
)
def resnet110(**knobs: Any) -> ResidualNet:
    return _cifar(18, **knobs)


@_register(
    _cifar_info(19_421_274, "19.4M", 7.93, notes="overfits: worse than resnet110 (§4.2)"),
    FREE_KNOBS_PAD,
)
def resnet1202(**knobs: Any) -> ResidualNet:
    return _cifar(200, **knobs)


# ---------------------------------------------------------------- plain nets (He et al. 2015)
#
# The paper's baselines: the same stacks without shortcuts (§4.1 "Plain Networks", §4.2),
# trained to show the degradation problem (deeper plain nets have higher *training*
# error) and, in Veit et al. 2016 §4, as the nets where deleting one layer is fatal.
# No drop-path and no zero-init: both need a shortcut (ResidualNet refuses them).

FREE_KNOBS_PLAIN = FREE_KNOBS - {
    "drop_path_rate", "drop_path_mode", "drop_path_rule", "zero_init_residual"
}
_FIG6 = (
    "CIFAR-10 error of the plain nets is only plotted (Fig. 6 left, training and test curves); "
    "the paper prints no number for them. Same depth, widths and parameters as the option-A "
    "ResNet of the same depth (§4.2: 'exactly the same depth, width, and number of parameters')."
)


def plain_spec(spec: NetSpec) -> NetSpec:
    """The plain counterpart of a residual spec: every shortcut removed (He et al. 2015 §4.1)."""
    return replace(spec, shortcut="none")


def _plain_cifar_info(depth: int, params: int, macs: float, notes: str = _FIG6) -> ModelInfo:
    return _info(
        RESNET_PAPER,
        table=f"Fig. 6 left (plain-{depth}, CIFAR-10, §4.2)",
        resolution=32,
        num_classes=10,
        params=params,
        params_source="exact count; equals the option-A resnet of the same depth",
        macs=macs,
        notes=notes,
    )


def _plain_cifar(n: int, **knobs: Any) -> ResidualNet:
    return ResidualNet(plain_spec(cifar_spec(n)), **knobs)


@_register(_plain_cifar_info(20, 269_722, 40.551e6), FREE_KNOBS_PLAIN)
def plain20(**knobs: Any) -> ResidualNet:
    return _plain_cifar(3, **knobs)


@_register(_plain_cifar_info(32, 464_154, 68.863e6), FREE_KNOBS_PLAIN)
def plain32(**knobs: Any) -> ResidualNet:
    return _plain_cifar(5, **knobs)


@_register(_plain_cifar_info(44, 658_586, 97.174e6), FREE_KNOBS_PLAIN)
def plain44(**knobs: Any) -> ResidualNet:
    return _plain_cifar(7, **knobs)


@_register(_plain_cifar_info(56, 853_018, 125.486e6), FREE_KNOBS_PLAIN)
def plain56(**knobs: Any) -> ResidualNet:
    return _plain_cifar(9, **knobs)


@_register(
    _plain_cifar_info(
        110,
        1_727_962,
        252.888e6,
        notes="Not in the paper: Fig. 6 left stops at plain-56. The plain twin of resnet110, for "
        "the lesion study of Veit et al. 2016 (arXiv 1605.06431 §4), whose CIFAR-10 net is the "
        "110-layer ResNet.",
    ),
    FREE_KNOBS_PLAIN,
)
def plain110(**knobs: Any) -> ResidualNet:
    return _plain_cifar(18, **knobs)


def _plain_imagenet_info(
    depth: int, params: int, macs: float, paper_macs: str, top1: float
) -> ModelInfo:
    return _info(
        RESNET_PAPER,
        table=f"Table 1 / Table 2 (plain-{depth})",
        params=params,
        macs=macs,
        paper_macs=paper_macs,
        top1_err=top1,
        err_protocol="ImageNet val, 10-crop, Table 2",
        notes="The resnet of the same depth without its shortcuts (so without option-B "
        "projections). Table 1's FLOPs describe both; §3.3: 3.6e9 for the 34-layer plain net.",
    )


@_register(_plain_imagenet_info(18, 11_515_688, 1.795e9, "1.8e9", 27.94), FREE_KNOBS_PLAIN)
def plain18(**knobs: Any) -> ResidualNet:
    return ResidualNet(plain_spec(_imagenet(18)), **knobs)


@_register(_plain_imagenet_info(34, 21_623_848, 3.644e9, "3.6e9", 28.54), FREE_KNOBS_PLAIN)
def plain34(**knobs: Any) -> ResidualNet:
    return ResidualNet(plain_spec(_imagenet(34)), **knobs)


# ---------------------------------------------------------------- pre-act ResNet (He et al. 2016)

_PREACT_PROJ = (
    "Projections are bare 1x1 convs on the pre-activated input (He et al.'s resnet-pre-act.lua); "
    "fb.resnet.torch's preresnet.lua uses conv+BN on the raw input instead (+{} params)."
)


def _preact_imagenet_info(
    depth: int, params: int, macs: float, macs_1x1: float | None, **row: Any
) -> ModelInfo:
    extra = 2 * (128 + 256 + 512) if DEPTHS[depth][0] == "basic" else 2 * (256 + 512 + 1024 + 2048)
    row.setdefault("table", f"Table 5 / appendix (ImageNet {depth} layers, fb.resnet.torch depths)")
    return _info(
        PREACT_PAPER,
        params=params,
        macs=macs,
        macs_variants=_variant("1x1", macs_1x1) if macs_1x1 else (),
        notes=(row.pop("notes", "") + " " + _PREACT_PROJ.format(f"{extra:,}")).strip(),
        **row,
    )


@_register(_preact_imagenet_info(18, 11_687_720, 1.814e9, None))
def preact_resnet18(**knobs: Any) -> ResidualNet:
    return ResidualNet(_imagenet(18, preact=True), **knobs)


@_register(_preact_imagenet_info(34, 21_795_880, 3.664e9, None))
def preact_resnet34(**knobs: Any) -> ResidualNet:
    return ResidualNet(_imagenet(34, preact=True), **knobs)


@_register(_preact_imagenet_info(50, 25_549_352, 4.089e9, 3.858e9), FREE_KNOBS_BOTTLENECK)
def preact_resnet50(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return ResidualNet(_imagenet(50, preact=True, stride_on=stride_on), **knobs)


@_register(_preact_imagenet_info(101, 44_541_480, 7.801e9, 7.570e9), FREE_KNOBS_BOTTLENECK)
def preact_resnet101(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return ResidualNet(_imagenet(101, preact=True, stride_on=stride_on), **knobs)


@_register(
    _preact_imagenet_info(
        152,
        60_185_128,
        11.514e9,
        11.282e9,
        top1_err=21.1,
        top5_err=5.5,
        err_protocol="ImageNet val, single 320x320 crop (trained at 224), Table 5",
    ),
    FREE_KNOBS_BOTTLENECK,
)
def preact_resnet152(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return ResidualNet(_imagenet(152, preact=True, stride_on=stride_on), **knobs)


@_register(
    _preact_imagenet_info(
        200,
        64_666_152,
        15.007e9,
        14.776e9,
        paper_params="64.7M",
        top1_err=20.7,
        top5_err=5.3,
        err_protocol="ImageNet val, single 320x320 crop (trained at 224), Table 5; "
        "224 crop: 21.66/5.79 (WRN Table 8, fb.resnet.torch)",
        notes="64.7M is printed in WRN Table 8 / ResNeXt Table 4 for this model.",
    ),
    FREE_KNOBS_BOTTLENECK,
)
def preact_resnet200(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return ResidualNet(_imagenet(200, preact=True, stride_on=stride_on), **knobs)


def _preact_cifar_info(table: str, **row: Any) -> ModelInfo:
    return _info(PREACT_PAPER, table=table, resolution=32, num_classes=10, **row)


@_register(
    _preact_cifar_info(
        "Table 3 (ResNet-110, full pre-activation, CIFAR-10)",
        params=1_727_962,
        macs=0.2529e9,
        top1_err=6.37,
        err_protocol="CIFAR-10 test, median of 5 runs, Table 3",
        notes="Option-A shortcuts as the 2015 ResNet-110 it is compared with; the paper "
        "prints no parameter count for it (the 2015 ResNet-110 is 1.7M, Table 6).",
    ),
    FREE_KNOBS_PAD,
)
def preact_resnet110(**knobs: Any) -> ResidualNet:
    return ResidualNet(preact_cifar_spec(110, "preact_basic"), **knobs)


@_register(
    _preact_cifar_info(
        "Table 4 (ResNet-164, pre-act bottleneck, CIFAR)",
        params=1_703_258,
        paper_params="1.7M",
        macs=0.2445e9,
        macs_variants=_variant("3x3", 0.2476e9),
        top1_err=5.46,
        err_protocol="CIFAR-10 test, Table 4 (C100: 24.33)",
        notes="Stride on the first 1x1, as resnet-pre-act.lua.",
    ),
    FREE_KNOBS_BOTTLENECK,
)
def preact_resnet164(stride_on: StrideOn = "1x1", **knobs: Any) -> ResidualNet:
    return ResidualNet(preact_cifar_spec(164, "preact_bottleneck", stride_on=stride_on), **knobs)


@_register(
    _preact_cifar_info(
        "Table 4 (ResNet-1001, pre-act bottleneck, CIFAR)",
        params=10_327_706,
        paper_params="10.2M",
        macs=1.4878e9,
        macs_variants=_variant("3x3", 1.4910e9),
        top1_err=4.92,
        err_protocol="CIFAR-10 test, Table 4, batch 128 "
        "(4.62 with batch 64, repo README; C100: 22.71)",
        notes="Exact count 10.33M vs the printed 10.2M (1.2%), from resnet-pre-act.lua's "
        "architecture (9n+2, n=111, widths 16/64/128/256); stride on the first 1x1.",
    ),
    FREE_KNOBS_BOTTLENECK,
)
def preact_resnet1001(stride_on: StrideOn = "1x1", **knobs: Any) -> ResidualNet:
    return ResidualNet(preact_cifar_spec(1001, "preact_bottleneck", stride_on=stride_on), **knobs)


# ---------------------------------------------------------------- ResNeXt (Xie et al. 2017)
#
# Table 3 rows keep the complexity of ResNet-50/101: d comes from Table 2 via
# `resnext_group_width(C)`. Table 4 rows double it (~15 GFLOPs) by C, d or depth.
# Stride on the 3x3 (§4, fb.resnet.torch), option-B shortcuts.

_RX_T3 = "ImageNet val, single 224 crop, Table 3"
_RX_T4 = "ImageNet val, single 224 crop, Table 4"


def _resnext(
    depth: int, cardinality: int, group_width: int, stride_on: StrideOn, **knobs: Any
) -> ResidualNet:
    spec = _imagenet(depth, groups=cardinality, base_width=group_width, stride_on=stride_on)
    return ResidualNet(spec, **knobs)


def _rx_info(table: str, **row: Any) -> ModelInfo:
    return _info(RESNEXT_PAPER, table=table, **row)


def _rx_t3(depth: int, cardinality: int, params: int, macs: float, top1: float) -> ModelInfo:
    d = resnext_group_width(cardinality)
    table = f"Table 3 (ResNeXt-{depth}, {cardinality}x{d}d; d from Table 2)"
    return _rx_info(table, params=params, macs=macs, top1_err=top1, err_protocol=_RX_T3)


@_register(_rx_t3(50, 2, 25_425_000, 4.125e9, 23.0), FREE_KNOBS_BOTTLENECK)
def resnext50_2x40d(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return _resnext(50, 2, resnext_group_width(2), stride_on, **knobs)


@_register(_rx_t3(50, 4, 25_292_968, 4.160e9, 22.6), FREE_KNOBS_BOTTLENECK)
def resnext50_4x24d(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return _resnext(50, 4, resnext_group_width(4), stride_on, **knobs)


@_register(_rx_t3(50, 8, 25_603_016, 4.267e9, 22.3), FREE_KNOBS_BOTTLENECK)
def resnext50_8x14d(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return _resnext(50, 8, resnext_group_width(8), stride_on, **knobs)


@_register(
    _rx_info(
        "Table 1 / Table 3 (ResNeXt-50, 32x4d)",
        torchvision="resnext50_32x4d",
        params=25_028_904,
        paper_params="25.0M",
        macs=4.230e9,
        paper_macs="4.2e9",
        top1_err=22.2,
        err_protocol=_RX_T3,
    ),
    FREE_KNOBS_BOTTLENECK,
)
def resnext50_32x4d(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return _resnext(50, 32, resnext_group_width(32), stride_on, **knobs)


@_register(_rx_t3(101, 2, 44_456_296, 7.844e9, 21.7), FREE_KNOBS_BOTTLENECK)
def resnext101_2x40d(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return _resnext(101, 2, resnext_group_width(2), stride_on, **knobs)


@_register(_rx_t3(101, 4, 44_363_432, 7.886e9, 21.4), FREE_KNOBS_BOTTLENECK)
def resnext101_4x24d(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return _resnext(101, 4, resnext_group_width(4), stride_on, **knobs)


@_register(_rx_t3(101, 8, 45_104_328, 8.077e9, 21.3), FREE_KNOBS_BOTTLENECK)
def resnext101_8x14d(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return _resnext(101, 8, resnext_group_width(8), stride_on, **knobs)


@_register(
    _rx_info(
        "Table 3 / Table 4 (ResNeXt-101, 32x4d)",
        params=44_177_704,
        macs=7.970e9,
        top1_err=21.2,
        top5_err=5.6,
        err_protocol=_RX_T3 + " (top-5 from Table 4)",
    ),
    FREE_KNOBS_BOTTLENECK,
)
def resnext101_32x4d(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return _resnext(101, 32, resnext_group_width(32), stride_on, **knobs)


@_register(
    _rx_info(
        "torchvision resnext101_32x8d (2x complexity by d; not a row of Tables 3-5)",
        torchvision="resnext101_32x8d",
        params=88_791_336,
        macs=16.414e9,
        top1_err=20.688,
        top5_err=5.474,
        err_protocol="torchvision IMAGENET1K_V1 weights, 224 crop of 256 (not a paper number)",
    ),
    FREE_KNOBS_BOTTLENECK,
)
def resnext101_32x8d(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return _resnext(101, 32, 8, stride_on, **knobs)


@_register(
    _rx_info(
        "Table 4 (ResNeXt-101, 2x64d)",
        params=84_198_184,
        macs=15.123e9,
        top1_err=20.7,
        top5_err=5.5,
        err_protocol=_RX_T4,
    ),
    FREE_KNOBS_BOTTLENECK,
)
def resnext101_2x64d(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return _resnext(101, 2, 64, stride_on, **knobs)


@_register(
    _rx_info(
        "Table 4 / Table 5 (ResNeXt-101, 64x4d)",
        torchvision="resnext101_64x4d",
        params=83_455_272,
        macs=15.46e9,
        top1_err=20.4,
        top5_err=5.3,
        err_protocol=_RX_T4 + " (320 crop: 19.1/4.4, Table 5)",
    ),
    FREE_KNOBS_BOTTLENECK,
)
def resnext101_64x4d(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return _resnext(101, 64, 4, stride_on, **knobs)


@_register(
    _rx_info(
        "Table 4 (ResNet-101, wider: 1x100d)",
        params=85_611_336,
        macs=15.273e9,
        top1_err=21.3,
        top5_err=5.7,
        err_protocol=_RX_T4,
        notes="A plain ResNet-101 whose bottleneck width is 100 at stage width 64 "
        "(100/200/400/800), outputs unchanged (256..2048).",
    ),
    FREE_KNOBS_BOTTLENECK,
)
def resnet101_1x100d(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return _resnext(101, 1, 100, stride_on, **knobs)


_RX_CIFAR_NOTES = (
    "facebookresearch/ResNeXt resnext.lua (post-activation bottlenecks, option B). Its README: "
    "'in the arXiv paper CIFAR results are based on pre-activated bottleneck blocks and a batch "
    "size of 256'; the authors found the original blocks reach better accuracy. "
    "With a 100-class head: {:,} params."
)


@_register(
    _info(
        RESNEXT_PAPER,
        table="Table 7 (ResNeXt-29, 8x64d, CIFAR)",
        resolution=32,
        num_classes=10,
        params=34_426_698,
        paper_params="34.4M",
        macs=5.387e9,
        top1_err=3.65,
        err_protocol="CIFAR-10 test, Table 7 (C100: 17.77)",
        notes=_RX_CIFAR_NOTES.format(34_518_948),
    ),
    FREE_KNOBS_BOTTLENECK,
)
def resnext29_8x64d(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return ResidualNet(resnext_cifar_spec(8, 64, stride_on=stride_on), **knobs)


@_register(
    _info(
        RESNEXT_PAPER,
        table="Table 7 (ResNeXt-29, 16x64d, CIFAR)",
        resolution=32,
        num_classes=10,
        params=68_155_210,
        paper_params="68.1M",
        macs=10.689e9,
        top1_err=3.58,
        err_protocol="CIFAR-10 test, Table 7 (C100: 17.31)",
        notes=_RX_CIFAR_NOTES.format(68_247_460) + " Exact 68.16M vs the printed 68.1M (0.1%).",
    ),
    FREE_KNOBS_BOTTLENECK,
)
def resnext29_16x64d(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return ResidualNet(resnext_cifar_spec(16, 64, stride_on=stride_on), **knobs)


# ---------------------------------------------------------------- Wide ResNet (Zagoruyko 2016)

_WRN_ERR = "CIFAR-10 test, median of 5 runs, mean/std preprocessing, Table 5"


def _wrn_info(
    depth: int, k: int, params: int, paper_params: str, macs: float, top1: float, protocol: str
) -> ModelInfo:
    return _info(
        WRN_PAPER,
        table=f"Table 1 / Table 5 (WRN-{depth}-{k}, CIFAR)",
        resolution=32,
        num_classes=10,
        params=params,
        paper_params=paper_params,
        macs=macs,
        top1_err=top1,
        err_protocol=protocol,
    )


@_register(
    _wrn_info(16, 4, 2_748_890, "2.7M", 0.3926e9, 5.02, _WRN_ERR + " (C100 24.03; +drop 5.24)"),
    FREE_KNOBS_WRN,
)
def wrn16_4(**knobs: Any) -> ResidualNet:
    return ResidualNet(wrn_spec(16, 4), **knobs)


@_register(
    _wrn_info(16, 8, 10_961_370, "11.0M", 1.548e9, 4.27, _WRN_ERR + " (C100: 20.43)"),
    FREE_KNOBS_WRN,
)
def wrn16_8(**knobs: Any) -> ResidualNet:
    return ResidualNet(wrn_spec(16, 8), **knobs)


@_register(
    _wrn_info(
        28,
        10,
        36_479_194,
        "36.5M",
        5.243e9,
        4.00,
        _WRN_ERR + " (C100: 19.25; block_dropout 0.3: 3.89 / 18.85, Table 6)",
    ),
    FREE_KNOBS_WRN,
)
def wrn28_10(**knobs: Any) -> ResidualNet:
    return ResidualNet(wrn_spec(28, 10), **knobs)


@_register(
    _wrn_info(40, 4, 8_949_210, "8.9M", 1.299e9, 4.53, _WRN_ERR + " (C100: 21.18)"), FREE_KNOBS_WRN
)
def wrn40_4(**knobs: Any) -> ResidualNet:
    return ResidualNet(wrn_spec(40, 4), **knobs)


@_register(
    _wrn_info(
        40,
        10,
        55_841_754,
        "56M",
        8.074e9,
        3.8,
        "CIFAR-10 test, best single run with block_dropout 0.3, Table 9 (C100: 18.3)",
    ),
    FREE_KNOBS_WRN,
)
def wrn40_10(**knobs: Any) -> ResidualNet:
    return ResidualNet(wrn_spec(40, 10), **knobs)


@_register(
    _info(
        WRN_PAPER,
        table="Table 8 (WRN-50-2-bottleneck, ImageNet)",
        torchvision="wide_resnet50_2",
        params=68_883_240,
        paper_params="68.9M",
        macs=11.398e9,
        top1_err=21.9,
        top5_err=6.03,
        err_protocol="ImageNet val, single 224 crop, Table 8 (Table 9 / README say top-5 5.79)",
        notes="Bottleneck width doubled (base_width 128), outputs unchanged: torchvision's model.",
    ),
    FREE_KNOBS_BOTTLENECK,
)
def wide_resnet50_2(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return ResidualNet(_imagenet(50, base_width=128, stride_on=stride_on), **knobs)


@_register(
    _info(
        WRN_PAPER,
        table="torchvision wide_resnet101_2 (WRN-101-2-bottleneck; not in the paper's tables)",
        torchvision="wide_resnet101_2",
        params=126_886_696,
        macs=22.753e9,
        top1_err=21.152,
        top5_err=5.716,
        err_protocol="torchvision IMAGENET1K_V1 weights, 224 crop of 256 (not a paper number)",
    ),
    FREE_KNOBS_BOTTLENECK,
)
def wide_resnet101_2(stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    return ResidualNet(_imagenet(101, base_width=128, stride_on=stride_on), **knobs)


# ---------------------------------------------------------------- SENet (Hu et al. 2017)
#
# SE on each residual branch before the addition (Fig. 3), r = 16 (§6.1). The released
# Caffe SE-ResNets put the stride on the first 1x1 (SENet Table 2 GFLOPs 3.87 / 7.60 /
# 11.32 are that placement), the SE-ResNeXts and SENet-154 on the 3x3.

_SE_T2 = "ImageNet val, single 224 crop, Table 2 (SE column)"


def reduction_to_se_ratio(se_reduction: int) -> float:
    """SENet's reduction ratio r (Fig. 2: FC C -> C/r -> C) as our spec's se_ratio = 1/r."""
    if not isinstance(se_reduction, int) or se_reduction < 1:
        raise ValueError(f"se_reduction must be an integer >= 1, got {se_reduction!r}")
    return 1.0 / se_reduction


def _se_info(table: str, **row: Any) -> ModelInfo:
    return _info(SENET_PAPER, table=table, **row)


def _se_net(depth: int, se_reduction: int, stride_on: StrideOn, **spec: Any) -> NetSpec:
    ratio = reduction_to_se_ratio(se_reduction)
    return _imagenet(depth, se_ratio=ratio, stride_on=stride_on, **spec)


@_register(
    _se_info(
        "Table 2 (SE-ResNet-50); Table 10 r = 16",
        params=28_088_024,
        paper_params="28.1M",
        macs=3.8605e9,
        paper_macs="3.87e9",
        macs_variants=_variant("3x3", 4.0917e9),
        top1_err=23.29,
        top5_err=6.62,
        err_protocol=_SE_T2,
    ),
    FREE_KNOBS_SE,
)
def se_resnet50(se_reduction: int = 16, stride_on: StrideOn = "1x1", **knobs: Any) -> ResidualNet:
    return ResidualNet(_se_net(50, se_reduction, stride_on), **knobs)


@_register(
    _se_info(
        "Table 2 (SE-ResNet-101)",
        params=49_326_872,
        macs=7.5749e9,
        paper_macs="7.60e9",
        macs_variants=_variant("3x3", 7.8061e9),
        top1_err=22.38,
        top5_err=6.07,
        err_protocol=_SE_T2,
    ),
    FREE_KNOBS_SE,
)
def se_resnet101(se_reduction: int = 16, stride_on: StrideOn = "1x1", **knobs: Any) -> ResidualNet:
    return ResidualNet(_se_net(101, se_reduction, stride_on), **knobs)


@_register(
    _se_info(
        "Table 2 (SE-ResNet-152)",
        params=66_821_848,
        macs=11.289e9,
        paper_macs="11.32e9",
        macs_variants=_variant("3x3", 11.520e9),
        top1_err=21.57,
        top5_err=5.73,
        err_protocol=_SE_T2,
    ),
    FREE_KNOBS_SE,
)
def se_resnet152(se_reduction: int = 16, stride_on: StrideOn = "1x1", **knobs: Any) -> ResidualNet:
    return ResidualNet(_se_net(152, se_reduction, stride_on), **knobs)


@_register(
    _se_info(
        "Table 2 (SE-ResNeXt-50, 32x4d)",
        params=27_559_896,
        macs=4.2330e9,
        paper_macs="4.25e9",
        macs_variants=_variant("1x1", 3.7706e9),
        top1_err=21.10,
        top5_err=5.49,
        err_protocol=_SE_T2,
    ),
    FREE_KNOBS_SE,
)
def se_resnext50_32x4d(
    se_reduction: int = 16, stride_on: StrideOn = "3x3", **knobs: Any
) -> ResidualNet:
    return ResidualNet(_se_net(50, se_reduction, stride_on, groups=32, base_width=4), **knobs)


@_register(
    _se_info(
        "Table 2 (SE-ResNeXt-101, 32x4d)",
        params=48_955_416,
        macs=7.9747e9,
        paper_macs="8.00e9",
        macs_variants=_variant("1x1", 7.5123e9),
        top1_err=20.70,
        top5_err=5.01,
        err_protocol=_SE_T2,
    ),
    FREE_KNOBS_SE,
)
def se_resnext101_32x4d(
    se_reduction: int = 16, stride_on: StrideOn = "3x3", **knobs: Any
) -> ResidualNet:
    return ResidualNet(_se_net(101, se_reduction, stride_on, groups=32, base_width=4), **knobs)


@_register(
    _se_info(
        "Table 8 (SENet-154); architecture in the supplementary / released Caffe model",
        params=115_088_984,
        macs=20.688e9,
        top1_err=18.68,
        top5_err=4.47,
        err_protocol="ImageNet val, single 224 crop, Table 8",
        notes="SE-ResNeXt-152 64x4d with the paper's changes: first 1x1 of each bottleneck "
        "halved (conv1_ratio 0.5), 7x7 stem -> three 3x3 convs (64, 64, 128), 3x3/2 "
        "projection shortcuts, dropout 0.2 before the classifier (the default of the free "
        "`dropout` knob here); label smoothing and the BN freeze are training, not "
        "architecture. 115,088,984 params = the Caffe model's PyTorch port "
        "(Cadene/pretrained-models.pytorch); the paper prints no params or FLOPs for it.",
    ),
    FREE_KNOBS_SE,
)
def senet154(se_reduction: int = 16, stride_on: StrideOn = "3x3", **knobs: Any) -> ResidualNet:
    spec = _se_net(
        152,
        se_reduction,
        stride_on,
        groups=64,
        base_width=4,
        stem="deep",
        stem_width=128,
        conv1_ratio=0.5,
        proj_kernel=3,
    )
    knobs.setdefault("dropout", 0.2)  # the paper's SENet-154 change (4): dropout 0.2 before the FC
    return ResidualNet(spec, **knobs)
