"""One residual family: `ResidualNet` = stem -> stages -> head, built from a `NetSpec`.

ResNet (He et al. 2015, arXiv 1512.03385) and its descendants differ in data,
not in classes: block kind (basic / bottleneck / pre-activation), groups x
group width (ResNeXt), stage widths (WRN), SE ratio, shortcut option and
stride placement are all fields of the frozen `NetSpec` / `StageSpec`.
Named paper models are the rows of models/resnet_zoo.py:

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


def cifar_spec(n: int, *, shortcut: Shortcut = "A") -> NetSpec:
    """He et al. 2015 §4.2: 6n+2 layers; 3x3 conv 16, then 3 stages of n basic blocks
    on 32/16/8 maps with 16/32/64 filters, option-A shortcuts, global pool, FC.
    `shortcut='none'`: the plain net of the same depth (Fig. 6 left)."""
    stages = (StageSpec(n, 16, 1), StageSpec(n, 32, 2), StageSpec(n, 64, 2))
    return NetSpec(stem="cifar", stages=stages, block="basic", stem_width=16, shortcut=shortcut)


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


def plain_spec(spec: NetSpec) -> NetSpec:
    """The plain counterpart of a residual spec: every shortcut removed (He et al. 2015 §4.1)."""
    return replace(spec, shortcut="none")
