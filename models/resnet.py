"""One residual family: `ResidualNet` = stem -> stages -> head, built from a `NetSpec`.

ResNet (He et al. 2015, arXiv 1512.03385) and its descendants differ in data,
not in classes: block kind (basic / bottleneck / pre-activation), groups x
group width (ResNeXt), stage widths (WRN), SE ratio, shortcut option and
stride placement are all fields of the frozen `NetSpec` / `StageSpec`.
Named paper models are registered at the bottom of this file.

Conventions (written down because implementations disagree):
- `StageSpec.width` is the paper's stage width ("planes", the 64 in
  Table 1's [1x1, 64; 3x3, 64; 1x1, 256]); a block outputs width * expansion.
- Bottleneck inner width = int(width * base_width / 64) * groups (torchvision's
  formula; ResNeXt 32x4d: base_width 4, groups 32 -> 128 at width 64).
- Stride placement in the bottleneck: '3x3' (torchvision "v1.5", fb.resnet.torch,
  ResNeXt §4) or '1x1' (the original MSRA Caffe models). ResNet-50 costs
  4.089 G vs 3.858 G multiply-adds at 224; the paper's Table 1 "3.8e9" is the
  1x1 placement.
- Shortcuts (He et al. 2015 §3.3): 'A' parameter-free (strided subsampling +
  zero-padded channels), 'B' 1x1 projection only where the shape changes,
  'C' projection everywhere (Table 3).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from .layers import (
    BN_EPS,
    BN_MOMENTUM,
    ClassifierHead,
    ConvNormAct,
    DropPath,
    NormAct,
    SqueezeExcite,
    conv2d,
    drop_path_rates,
    relu,
)
from .registry import MacsVariant, ModelInfo, register_model

# ---------------------------------------------------------------- specs

BlockKind = Literal["basic", "bottleneck", "preact_basic", "preact_bottleneck"]
StemKind = Literal["imagenet", "cifar"]
Shortcut = Literal["A", "B", "C"]
StrideOn = Literal["3x3", "1x1"]


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))  # accept a list (e.g. from YAML)
        _check_choice("stem", self.stem, get_args(StemKind))
        _check_choice("block", self.block, get_args(BlockKind))
        _check_choice("shortcut", self.shortcut, get_args(Shortcut))
        _check_choice("stride_on", self.stride_on, get_args(StrideOn))
        if not self.stages:
            raise ValueError("a NetSpec needs at least one stage")
        # Pre-activation changes the stem and adds a final norm-act (STYLE rule 2),
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


# ---------------------------------------------------------------- shortcuts and stems


class PadShortcut(nn.Module):
    """Option A (He et al. 2015 §3.3): identity with zero-padded extra channels.

    "The shortcut still performs identity mapping, with extra zero entries padded
    for increasing dimensions ... performed with a stride of 2." No parameters;
    this is what the CIFAR nets of §4.2 use (resnet110 = 1.7M params, Table 6).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError("option-A shortcuts can only add channels")
        self.extra = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]  # same size as a strided 3x3/1x1 conv
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))  # (B, C_in, H, W) -> (B, C_out, H, W)

    def extra_repr(self) -> str:
        return f"extra_channels={self.extra}, stride={self.stride}"


def make_shortcut(
    in_channels: int,
    out_channels: int,
    stride: int,
    kind: Shortcut,
    *,
    norm: bool,
    bn_eps: float,
    bn_momentum: float,
) -> nn.Module:
    """Identity where the shape is kept (options A, B), else pad (A) or project (B, C).

    `norm=False` gives a bare 1x1 conv projection, for pre-activation blocks whose
    input is already normalized (He et al. 2016 reference code).
    """
    if kind != "C" and in_channels == out_channels and stride == 1:
        return nn.Identity()
    if kind == "A":
        return PadShortcut(in_channels, out_channels, stride)
    if not norm:
        return conv2d(in_channels, out_channels, 1, stride)
    return ConvNormAct(
        in_channels, out_channels, 1, stride, act_layer=None, bn_eps=bn_eps, bn_momentum=bn_momentum
    )


def make_stem(
    kind: StemKind, in_chans: int, width: int, *, preact: bool, bn_eps: float, bn_momentum: float
) -> nn.Sequential:
    """'imagenet': 7x7/2 conv + BN + ReLU + 3x3/2 max pool (He et al. 2015 Table 1, conv1).
    'cifar': one 3x3 conv at stride 1 (§4.2, "The first layer is 3x3 convolutions").

    Pre-activation nets end the stem at the conv: the first block's own BN-ReLU
    normalizes it (He et al. 2016 CIFAR code). For 'imagenet' this puts that
    BN-ReLU after the max pool, where fb.resnet.torch's preresnet has it before.
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    k, stride = (7, 2) if kind == "imagenet" else (3, 1)
    if preact:
        layers["conv"] = conv2d(in_chans, width, k, stride)
    else:
        layers["conv"] = ConvNormAct(
            in_chans, width, k, stride, bn_eps=bn_eps, bn_momentum=bn_momentum
        )
    if kind == "imagenet":
        layers["pool"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)  # 112 -> 56 at 224
    return nn.Sequential(layers)


def _se(channels: int, se_ratio: float) -> nn.Module:
    # SE on the block output, before the addition (SENet Fig. 3); C/r reduction.
    if se_ratio <= 0:
        return nn.Identity()
    return SqueezeExcite(channels, max(1, round(channels * se_ratio)))


# ---------------------------------------------------------------- blocks
#
# All blocks share one constructor signature so that the net can build any of
# them from a spec. A block receives its ready DropPath (or None); it never
# computes a rate. `zero_init_last()` makes the residual branch output zero at
# init, so each block starts as the identity (Goyal et al. 2017 §5.1, "zero
# gamma"; +0.2-0.3% top-1 in torchvision).


class BasicBlock(nn.Module):
    """Two 3x3 convs (He et al. 2015 Fig. 2 left; ResNet-18/34, CIFAR nets, WRN)."""

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
        shortcut: Shortcut = "B",
        stride_on: StrideOn = "3x3",  # unused: the stride can only go on the first 3x3
        drop_path: nn.Module | None = None,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(
                "BasicBlock needs groups=1, base_width=64; widen it via the stage width (WRN)"
            )
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        out_channels = planes * self.expansion
        self.conv1 = ConvNormAct(in_channels, planes, 3, stride, **bn)
        self.conv2 = ConvNormAct(planes, out_channels, 3, act_layer=None, **bn)
        self.se = _se(out_channels, se_ratio)
        self.drop_path = drop_path if drop_path is not None else nn.Identity()
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut, norm=True, **bn)
        self.act = relu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.se(self.conv2(self.conv1(x)))
        return self.act(self.drop_path(out) + self.shortcut(x))  # ReLU after the addition (v1)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2.bn.weight)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (grouped) -> 1x1 expand x4.

    He et al. 2015 Fig. 5 right; grouped 3x3 = ResNeXt Fig. 3c (Xie et al. 2017).
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
        shortcut: Shortcut = "B",
        stride_on: StrideOn = "3x3",
        drop_path: nn.Module | None = None,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        width = int(planes * (base_width / 64.0)) * groups  # C x d (ResNeXt §3.3)
        out_channels = planes * self.expansion
        # '1x1': MSRA Caffe (paper Table 1 FLOPs). '3x3': torchvision "v1.5", more MACs;
        # NVIDIA's ResNet-50 v1.5 notes (linked from torchvision) report ~+0.5% top-1.
        stride_1x1, stride_3x3 = (stride, 1) if stride_on == "1x1" else (1, stride)
        self.conv1 = ConvNormAct(in_channels, width, 1, stride_1x1, **bn)
        self.conv2 = ConvNormAct(width, width, 3, stride_3x3, groups, **bn)
        self.conv3 = ConvNormAct(width, out_channels, 1, act_layer=None, **bn)
        self.se = _se(out_channels, se_ratio)
        self.drop_path = drop_path if drop_path is not None else nn.Identity()
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut, norm=True, **bn)
        self.act = relu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.se(self.conv3(self.conv2(self.conv1(x))))
        return self.act(self.drop_path(out) + self.shortcut(x))

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.bn.weight)


class PreActBasicBlock(nn.Module):
    """BN-ReLU-conv3x3 twice, nothing after the addition (He et al. 2016 Fig. 4e).

    A projection shortcut takes the pre-activated input (shared BN-ReLU); an
    identity or option-A shortcut takes the raw input, keeping the clean path.
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
        shortcut: Shortcut = "B",
        stride_on: StrideOn = "3x3",  # unused, as in BasicBlock
        drop_path: nn.Module | None = None,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("PreActBasicBlock needs groups=1, base_width=64")
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        out_channels = planes * self.expansion
        self.norm1 = NormAct(in_channels, **bn)
        self.conv1 = conv2d(in_channels, planes, 3, stride)
        self.norm2 = NormAct(planes, **bn)
        self.conv2 = conv2d(planes, out_channels, 3)
        self.se = _se(out_channels, se_ratio)
        self.drop_path = drop_path if drop_path is not None else nn.Identity()
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut, norm=False, **bn)
        self.projects = isinstance(self.shortcut, nn.Conv2d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.norm1(x)
        out = self.se(self.conv2(self.norm2(self.conv1(pre))))
        return self.drop_path(out) + self.shortcut(pre if self.projects else x)

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
        shortcut: Shortcut = "B",
        stride_on: StrideOn = "3x3",
        drop_path: nn.Module | None = None,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        width = int(planes * (base_width / 64.0)) * groups
        out_channels = planes * self.expansion
        stride_1x1, stride_3x3 = (stride, 1) if stride_on == "1x1" else (1, stride)
        self.norm1 = NormAct(in_channels, **bn)
        self.conv1 = conv2d(in_channels, width, 1, stride_1x1)
        self.norm2 = NormAct(width, **bn)
        self.conv2 = conv2d(width, width, 3, stride_3x3, groups)
        self.norm3 = NormAct(width, **bn)
        self.conv3 = conv2d(width, out_channels, 1)
        self.se = _se(out_channels, se_ratio)
        self.drop_path = drop_path if drop_path is not None else nn.Identity()
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut, norm=False, **bn)
        self.projects = isinstance(self.shortcut, nn.Conv2d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.norm1(x)
        out = self.conv3(self.norm3(self.conv2(self.norm2(self.conv1(pre)))))
        return self.drop_path(self.se(out)) + self.shortcut(pre if self.projects else x)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)


BLOCKS: dict[str, type[nn.Module]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "preact_basic": PreActBasicBlock,
    "preact_bottleneck": PreActBottleneck,
}


# ---------------------------------------------------------------- network


class ResidualNet(nn.Module):
    """stem -> s1..sN (stages of blocks b1..bK) -> [final norm-act if pre-act] -> head.

    Training-time knobs (drop_path_rate, dropout, zero_init_residual, BN eps and
    momentum) are constructor arguments, not spec fields: they do not change
    the architecture. The spec is kept on the module so it can be saved with
    the state_dict.
    """

    def __init__(
        self,
        spec: NetSpec,
        num_classes: int = 1000,
        *,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        dropout: float = 0.0,
        # Off by default, as in the papers and torchvision: the zero-gamma trick is Goyal
        # et al.'s ImageNet recipe, and on thin option-A CIFAR nets it stalls early training.
        zero_init_residual: bool = False,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        self.spec = spec
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        self.stem = make_stem(spec.stem, in_chans, spec.stem_width, preact=spec.preact, **bn)

        # Stochastic depth: one rate per block over the global block index
        # (Huang et al. 2016), so the deepest block of the net gets the full rate.
        rates = iter(drop_path_rates(spec.num_blocks, drop_path_rate))
        channels = spec.stem_width
        for s, stage in enumerate(spec.stages, start=1):
            block_cls = BLOCKS[spec.block_of(stage)]
            blocks: OrderedDict[str, nn.Module] = OrderedDict()
            for b in range(1, stage.depth + 1):
                rate = next(rates)
                blocks[f"b{b}"] = block_cls(
                    channels,
                    stage.width,
                    stage.stride if b == 1 else 1,  # only the first block downsamples
                    groups=_pick(stage.groups, spec.groups),
                    base_width=_pick(stage.base_width, spec.base_width),
                    se_ratio=_pick(stage.se_ratio, spec.se_ratio),
                    shortcut=spec.shortcut,
                    stride_on=spec.stride_on,
                    drop_path=DropPath(rate) if rate > 0 else None,
                    **bn,
                )
                channels = stage.width * block_cls.expansion
            self.add_module(f"s{s}", nn.Sequential(blocks))
        if spec.preact:
            # Pre-act blocks leave the last addition un-normalized (He et al. 2016 §3.2).
            self.final_act = NormAct(channels, **bn)
        self.head = ClassifierHead(channels, num_classes, dropout)
        self.num_features = channels
        self.init_weights(zero_init_residual)

    def init_weights(self, zero_init_residual: bool) -> None:
        # He et al. 2015 §3.4 uses the init of He et al. 2015b ("Delving deep"),
        # fan_out as in torchvision; the Linear head keeps PyTorch's default.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if hasattr(m, "zero_init_last"):
                    m.zero_init_last()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        for module in self.children():
            x = module(x)
        return x


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
) -> NetSpec:
    """He et al. 2015 Table 1: conv2_x..conv5_x at 64/128/256/512, 56 -> 7 at 224.

    conv2_x follows the max pool at stride 1; conv3_1, conv4_1, conv5_1 downsample
    with stride 2. Shortcuts are option B (the torchvision / Table 3 "B" models).
    """
    widths, strides = (64, 128, 256, 512), (1, 2, 2, 2)
    stages = tuple(StageSpec(d, w, s) for d, w, s in zip(depths, widths, strides, strict=True))
    return NetSpec(
        stem="imagenet",
        stages=stages,
        block=block,
        stem_width=64,
        groups=groups,
        base_width=base_width,
        se_ratio=se_ratio,
        shortcut="B",
        stride_on=stride_on,
    )


def cifar_spec(n: int) -> NetSpec:
    """He et al. 2015 §4.2: 6n+2 layers; 3x3 conv 16, then 3 stages of n basic blocks
    on 32/16/8 maps with 16/32/64 filters, option-A shortcuts, global pool, FC."""
    stages = (StageSpec(n, 16, 1), StageSpec(n, 32, 2), StageSpec(n, 64, 2))
    return NetSpec(stem="cifar", stages=stages, block="basic", stem_width=16, shortcut="A")


# ---------------------------------------------------------------- registry

RESNET_PAPER = "He et al. 2015, Deep Residual Learning for Image Recognition, arXiv:1512.03385"
TV_META = "torchvision 0.29.1 weight meta (num_params, _ops); matches analytic conv+fc count"
ANALYTIC_V1 = "analytic conv+fc MACs with stride on the first 1x1 (MSRA Caffe v1)"

FREE_KNOBS = frozenset(
    {
        "num_classes",
        "in_chans",
        "drop_path_rate",
        "dropout",
        "zero_init_residual",
        "bn_eps",
        "bn_momentum",
    }
)
# The paper's Table 1 FLOPs are the 1x1-stride models, torchvision's the 3x3 ones:
# both placements are the "same" ResNet-50, so stride_on stays free for bottlenecks.
FREE_KNOBS_BOTTLENECK = FREE_KNOBS | {"stride_on"}


def _imagenet_info(*, macs_stride_1x1: float | None = None, **row: Any) -> ModelInfo:
    """A Table 1 row; exact counts from torchvision's metadata (stride on the 3x3)."""
    variants = ()
    if macs_stride_1x1 is not None:
        variants = (MacsVariant((("stride_on", "1x1"),), macs_stride_1x1, ANALYTIC_V1),)
    return ModelInfo(
        paper=RESNET_PAPER,
        family="residual",
        resolution=224,
        num_classes=1000,
        params_source=TV_META,
        macs_source=TV_META + " (stride on the 3x3, 'v1.5')",
        macs_variants=variants,
        **row,
    )


def _register(info: ModelInfo, free: frozenset[str] = FREE_KNOBS) -> Any:
    return register_model(info, free_knobs=free, defining_fields=SPEC_FIELDS)


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
    return ResidualNet(imagenet_spec("basic", (2, 2, 2, 2)), **knobs)


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
    return ResidualNet(imagenet_spec("basic", (3, 4, 6, 3)), **knobs)


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
    return ResidualNet(imagenet_spec("bottleneck", (3, 4, 6, 3), stride_on=stride_on), **knobs)


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
    return ResidualNet(imagenet_spec("bottleneck", (3, 4, 23, 3), stride_on=stride_on), **knobs)


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
    return ResidualNet(imagenet_spec("bottleneck", (3, 8, 36, 3), stride_on=stride_on), **knobs)


def _cifar_info(params: int, paper_params: str, top1: float, notes: str = "") -> ModelInfo:
    return ModelInfo(
        paper=RESNET_PAPER,
        family="residual",
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


@_register(_cifar_info(269_722, "0.27M", 8.75))
def resnet20(**knobs: Any) -> ResidualNet:
    return _cifar(3, **knobs)


@_register(_cifar_info(464_154, "0.46M", 7.51))
def resnet32(**knobs: Any) -> ResidualNet:
    return _cifar(5, **knobs)


@_register(_cifar_info(658_586, "0.66M", 7.17))
def resnet44(**knobs: Any) -> ResidualNet:
    return _cifar(7, **knobs)


@_register(_cifar_info(853_018, "0.85M", 6.97))
def resnet56(**knobs: Any) -> ResidualNet:
    return _cifar(9, **knobs)


@_register(
    _cifar_info(1_727_962, "1.7M", 6.43, notes="6.43 is the best of 5 runs; mean 6.61 +- 0.16"),
)
def resnet110(**knobs: Any) -> ResidualNet:
    return _cifar(18, **knobs)


@_register(
    _cifar_info(19_421_274, "19.4M", 7.93, notes="overfits: worse than resnet110 (§4.2)"),
)
def resnet1202(**knobs: Any) -> ResidualNet:
    return _cifar(200, **knobs)
