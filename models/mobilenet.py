"""Depthwise-convolution family: `MBConvNet` = stem -> stages -> head, built from an `MBNetSpec`.

MobileNet v1 (Howard et al. 2017, arXiv 1704.04861), MobileNet v2 (Sandler et al.
2018, arXiv 1801.04381) and EfficientNet (Tan & Le 2019, arXiv 1905.11946) differ
in data, not in classes: the block kind (depthwise-separable or inverted residual),
expansion t, kernel k, stride, widths, repeats, SE ratio and activation are fields
of the frozen `MBNetSpec` / `MBStageSpec`. Named MobileNets are registered at
the bottom of this file, EfficientNet B0..B7 in `models.efficientnet`; width and depth
scaling is code (`round_channels`, `scale_repeats`; EfficientNet's `compound_coefficients`),
not a list of hand-copied widths.

Conventions (written down because implementations disagree):
- Channel rounding: `round_channels` rounds c * w to the nearest multiple of 8,
  never more than 10% below c * w (TF `round_filters` / MobileNet `make_divisible`).
  Repeats are ceil(n * d) (TF `round_repeats`).
- SE in an inverted residual / MBConv block sits after the depthwise conv, on the
  expanded channels, with squeeze width max(1, int(se_ratio * C_in)) where C_in is
  the block's INPUT channels (EfficientNet se_ratio = 0.25; TF `num_reduced_filters`,
  torchvision `max(1, in // 4)`, timm and pycls agree). MobileNetV3 instead uses the
  expanded width; that is not this family's convention.
- SE in a depthwise-separable (v1) block sits after the pointwise conv, on the block
  output, squeeze width max(1, int(se_ratio * C_out)): this is SENet's SE-MobileNet
  (Hu et al., Table 3: 4.2M -> 4.7M params at r = 16, reproduced by the tests).
- Drop-path rates come from `models.layers.drop_path_rates` over the GLOBAL block
  index, blocks without a residual included (as TF and torchvision index them), with
  the TF / torchvision rule by default (`drop_path_rule='tf'`: rate * i / N, first block
  0, last block rate * (N-1)/N; torchvision efficientnet.py `sd_prob * float(stage_block_id)
  / total_stage_blocks`) and per-sample drop-path (`drop_path_mode='sample'`, TF
  `drop_connect`); both are free knobs. Only blocks with a residual use their rate.
- BN: PyTorch defaults (eps 1e-5, momentum 0.1) for MobileNet v1/v2 and for
  EfficientNet-B0..B4, whose torchvision weights were trained in PyTorch (timm); B5..B7
  (weights ported from TF) and the generic compound-scaled builders use TF's eps 1e-3,
  momentum 0.01 (= TF decay 0.99). Both are constructor arguments (STYLE rule 7).
- Module order follows torchvision's state_dict order (stem, blocks: [expand] ->
  depthwise -> [SE] -> project, head conv, classifier), so its weights convert by position.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from dataclasses import dataclass, fields
from functools import partial
from typing import Any, Literal, get_args

import torch
from torch import nn

from .layers import (
    BN_EPS,
    BN_MOMENTUM,
    ActLayer,
    ClassifierHead,
    ConvNormAct,
    DropPathMode,
    DropPathRule,
    SqueezeExcite,
    block_dropped,
    drop_path_rates,
    he_init_,
    make_drop_path,
)
from .registry import (
    COMMON_KNOBS,
    RESIDUAL_BRANCH_KNOBS,
    DefaultChange,
    Entry,
    ModelInfo,
    register_table,
)

# ---------------------------------------------------------------- constants

CHANNEL_DIVISOR = 8  # TF depth_divisor

# depthwise-separable (v1) | inverted residual / MBConv (v2, EfficientNet)
BlockKind = Literal["ds", "ir"]
ActKind = Literal["relu", "relu6", "silu"]

ACTIVATIONS: dict[str, ActLayer] = {
    "relu": functools.partial(nn.ReLU, inplace=True),  # MobileNet v1 §3.1 ("BN and ReLU")
    "relu6": functools.partial(nn.ReLU6, inplace=True),  # MobileNet v2 §4: robust at low precision
    "silu": functools.partial(nn.SiLU, inplace=True),  # EfficientNet "swish" (Ramachandran et al.)
}


# ---------------------------------------------------------------- scaling helpers


def round_channels(
    channels: float, divisor: int = CHANNEL_DIVISOR, min_value: int | None = None
) -> int:
    """Nearest multiple of `divisor` to `channels`, at least `min_value` (default: divisor),
    and never more than 10% below `channels` (TF `round_filters`)."""
    if divisor < 1:
        raise ValueError(f"divisor must be >= 1, got {divisor}")
    if channels <= 0:
        raise ValueError(f"channels must be > 0, got {channels}")
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(channels + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * channels:  # rounding down lost more than 10%: go one step up
        rounded += divisor
    return rounded


def _scaled(width_mult: float, channels: int) -> int:
    return round_channels(channels * width_mult)


def scale_repeats(repeats: int, depth_mult: float) -> int:
    """Blocks of a stage after depth scaling: ceil(n * d) (TF `round_repeats`)."""
    if repeats < 1 or depth_mult <= 0:
        raise ValueError(f"need repeats >= 1 and depth_mult > 0, got {repeats}, {depth_mult}")
    return int(math.ceil(repeats * depth_mult))


# ---------------------------------------------------------------- specs


def _check_choice(field: str, value: object, choices: tuple[object, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{field} must be one of {choices}, got {value!r}")


@dataclass(frozen=True)
class MBStageSpec:
    """One row of a paper table: `repeats` blocks; only the first changes stride and width.

    Field order as EfficientNet Table 1 / torchvision `MBConvConfig`: expansion t, kernel k,
    stride, input and output channels, repeats n (v2 Table 2 rows are (t, c, n, s)).
    """

    expand: float  # t: hidden width = t * C_in (MBConv6 -> 6); 1 for depthwise-separable blocks
    kernel: int  # depthwise k x k
    stride: int  # of the stage's first block
    in_channels: int
    out_channels: int
    repeats: int  # n
    block: BlockKind = "ir"
    se_ratio: float = 0.0  # 0 = no SE; see the module docstring for the reference width

    def __post_init__(self) -> None:
        _check_choice("block", self.block, get_args(BlockKind))
        _check_choice("stride", self.stride, (1, 2))
        if self.kernel < 1 or self.kernel % 2 != 1:
            raise ValueError(f"kernel must be odd, got {self.kernel}")
        if min(self.in_channels, self.out_channels, self.repeats) < 1 or self.expand < 1:
            raise ValueError(f"channels, repeats and expand must be >= 1, got {self}")
        if self.block == "ds" and self.expand != 1:
            raise ValueError("a depthwise-separable block has no expansion (expand=1)")
        if not 0.0 <= self.se_ratio <= 1.0:
            raise ValueError(f"se_ratio must be in [0, 1], got {self.se_ratio}")


@dataclass(frozen=True)
class MBNetSpec:
    """A whole network: stem conv -> stages -> [1x1 head conv] -> pool -> FC."""

    stem_width: int  # 3x3 stride-2 stem conv output channels
    stages: tuple[MBStageSpec, ...]
    head_width: int | None  # 1x1 conv before the pool (v2: 1280); None = no head conv (v1)
    act: ActKind

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))  # accept a list (e.g. from YAML)
        _check_choice("act", self.act, get_args(ActKind))
        if not self.stages:
            raise ValueError("an MBNetSpec needs at least one stage")
        channels = self.stem_width
        for i, stage in enumerate(self.stages, start=1):
            if stage.in_channels != channels:
                raise ValueError(
                    f"stage {i} takes {stage.in_channels} channels but receives {channels}"
                )
            channels = stage.out_channels
        if self.head_width is not None and self.head_width < 1:
            raise ValueError(f"head_width must be >= 1 or None, got {self.head_width}")

    @property
    def num_blocks(self) -> int:
        return sum(s.repeats for s in self.stages)

    @property
    def has_residual(self) -> bool:
        """Whether any block has an identity shortcut (inverted residual, stride 1, same width)."""
        return any(
            s.block == "ir"
            and (s.repeats > 1 or (s.stride == 1 and s.in_channels == s.out_channels))
            for s in self.stages
        )

    @property
    def num_features(self) -> int:
        return self.head_width if self.head_width is not None else self.stages[-1].out_channels


# Every field name of the specs plus the multipliers the spec functions take: overriding one
# of these on a named model is an error (STYLE rule 4).
SPEC_FIELDS = frozenset(f.name for f in fields(MBNetSpec) + fields(MBStageSpec)) | {
    "alpha",
    "width_mult",
    "depth_mult",
    "width",
    "depth",
    "phi",
    "resolution",
}


# ---------------------------------------------------------------- blocks
#
# Both blocks share one constructor signature so the net can build either from a row.
# A block receives its ready DropPath (or None) and never computes a rate.


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv-BN-act -> 1x1 pointwise conv-BN-act (MobileNet v1 Fig. 3 right).

    No residual: v1 is a plain stack (Table 1). `se_ratio` > 0 adds SE on the pointwise
    output (SENet's SE-MobileNet); the paper models have none.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        kernel: int = 3,
        expand: float = 1.0,
        se_ratio: float = 0.0,
        act_layer: ActLayer = ACTIVATIONS["relu"],
        drop_path: nn.Module | None = None,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        if expand != 1:
            raise ValueError("DepthwiseSeparable has no expansion; use InvertedResidual")
        if drop_path is not None:
            raise ValueError("DepthwiseSeparable has no residual branch to drop")
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        self.has_residual = False
        # groups == channels: one k x k filter per input channel (§3.1, eq. 3)
        self.dw = ConvNormAct(
            in_channels, in_channels, kernel, stride, in_channels, act_layer=act_layer, **bn
        )
        self.pw = ConvNormAct(in_channels, out_channels, 1, act_layer=act_layer, **bn)
        self.se = (
            SqueezeExcite(out_channels, max(1, int(out_channels * se_ratio)), act_layer=act_layer)
            if se_ratio > 0
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(self.pw(self.dw(x)))


class InvertedResidual(nn.Module):
    """1x1 expand (t x C_in) -> k x k depthwise -> [SE] -> 1x1 linear projection, + identity.

    MobileNet v2 §3.3 / Table 1 ("linear bottleneck": no activation after the projection,
    Fig. 3b) and EfficientNet's MBConv (MnasNet block with SE, SiLU). The 1x1 expansion is
    omitted when t = 1 (v2's first row, EfficientNet's MBConv1). The identity shortcut
    exists only when stride = 1 and C_in = C_out; drop-path applies to the branch there.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        kernel: int = 3,
        expand: float = 6.0,
        se_ratio: float = 0.0,
        act_layer: ActLayer = ACTIVATIONS["relu6"],
        drop_path: nn.Module | None = None,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        hidden = int(round(in_channels * expand))
        self.has_residual = stride == 1 and in_channels == out_channels
        self.expand = (  # t = 1: nothing to expand (no tensors, so torchvision's order holds)
            ConvNormAct(in_channels, hidden, 1, act_layer=act_layer, **bn)
            if hidden != in_channels
            else nn.Identity()
        )
        self.dw = ConvNormAct(hidden, hidden, kernel, stride, hidden, act_layer=act_layer, **bn)
        # Squeeze width from the block INPUT channels (EfficientNet convention, module docstring).
        self.se = (
            SqueezeExcite(hidden, max(1, int(in_channels * se_ratio)), act_layer=act_layer)
            if se_ratio > 0
            else nn.Identity()
        )
        # linear bottleneck: no activation after the projection (§3.2)
        self.project = ConvNormAct(hidden, out_channels, 1, act_layer=None, **bn)
        use_drop_path = drop_path is not None and self.has_residual
        self.drop_path = drop_path if use_drop_path else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.has_residual and block_dropped(self.drop_path):  # batch-mode stochastic depth
            return x
        out = self.expand(x)  # (B, C_in, H, W) -> (B, t C_in, H, W)
        out = self.project(self.se(self.dw(out)))  # -> (B, C_out, H/s, W/s)
        if self.has_residual:
            out = self.drop_path(out) + x
        return out

    def zero_init_last(self) -> None:
        """Start the block as the identity (Goyal et al. 2017 §5.1); only for residual blocks."""
        if not self.has_residual:
            raise ValueError("zero-init of a block without a residual would zero its output")
        nn.init.zeros_(self.project.bn.weight)


BLOCKS: dict[str, type[nn.Module]] = {"ds": DepthwiseSeparable, "ir": InvertedResidual}


# ---------------------------------------------------------------- network


class MBConvNet(nn.Module):
    """stem -> s1..sN (stages of blocks b1..bK) -> [head_conv] -> head (pool, dropout, FC).

    Training-time knobs (drop_path_rate, dropout, zero_init_residual, BN eps/momentum) are
    constructor arguments, not spec fields. `drop_path_rate` > 0 or `zero_init_residual`
    on a net without residual blocks (MobileNet v1) is an error, not a silent no-op.
    """

    def __init__(
        self,
        spec: MBNetSpec,
        num_classes: int = 1000,
        *,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        drop_path_mode: DropPathMode = "sample",  # EfficientNet §5.2 / TF drop_connect
        drop_path_rule: DropPathRule = "tf",
        dropout: float = 0.0,
        zero_init_residual: bool = False,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        if not spec.has_residual and (drop_path_rate > 0 or zero_init_residual):
            raise ValueError(
                "this network has no residual blocks: drop_path_rate and zero_init_residual "
                "do not apply (use dropout)"
            )
        self.spec = spec
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        act = ACTIVATIONS[spec.act]
        self.stem = ConvNormAct(in_chans, spec.stem_width, 3, 2, act_layer=act, **bn)  # 224 -> 112

        # One rate per block over the global block index (module docstring).
        rates = drop_path_rates(spec.num_blocks, drop_path_rate, drop_path_rule)
        self.drop_path_rates = rates
        index = 0
        for s, stage in enumerate(spec.stages, start=1):
            block_cls = BLOCKS[stage.block]
            blocks: OrderedDict[str, nn.Module] = OrderedDict()
            for b in range(1, stage.repeats + 1):
                rate = rates[index]
                index += 1
                blocks[f"b{b}"] = block_cls(
                    stage.in_channels if b == 1 else stage.out_channels,
                    stage.out_channels,
                    stage.stride if b == 1 else 1,  # only the first block downsamples
                    kernel=stage.kernel,
                    expand=stage.expand,
                    se_ratio=stage.se_ratio,
                    act_layer=act,
                    drop_path=make_drop_path(rate, drop_path_mode),
                    **bn,
                )
            self.add_module(f"s{s}", nn.Sequential(blocks))
        channels = spec.stages[-1].out_channels
        if spec.head_width is not None:
            self.head_conv = ConvNormAct(channels, spec.head_width, 1, act_layer=act, **bn)
        self.head = ClassifierHead(spec.num_features, num_classes, dropout)
        self.num_features = spec.num_features
        self.init_weights(zero_init_residual)

    def blocks(self) -> list[nn.Module]:
        return [m for m in self.modules() if isinstance(m, tuple(BLOCKS.values()))]

    def init_weights(self, zero_init_residual: bool) -> None:
        # Convs: He init, fan_out (torchvision's MobileNet/EfficientNet; TF uses a fan_out normal
        # too). FC: uniform +-1/sqrt(num_classes), TF EfficientNet's dense initializer.
        he_init_(self)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for block in self.blocks():
                if block.has_residual:
                    block.zero_init_last()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        for module in self.children():
            x = module(x)
        return x


# ---------------------------------------------------------------- paper specs


def mobilenet_v1_spec(
    alpha: float = 1.0, *, se_ratio: float = 0.0, act: ActKind = "relu6"
) -> MBNetSpec:
    """MobileNet v1 Table 1: conv 3x3/2 32, then 13 depthwise-separable layers.

    Grouped into stages by output width: 64 (s1) | 128 (s2) x2 | 256 (s2) x2 | 512 (s2) x6 |
    1024 (s2) x2. Table 1's second-to-last "Conv dw / s2" on a 7x7 map is a known typo: it
    has stride 1 (its input is already 7x7, and so is the 7x7 pool's; TF slim's conv defs). Width
    multiplier alpha (§3.3) scales every width; `round_channels` is exact for the paper's
    alpha in {1, 0.75, 0.5, 0.25} (all widths are multiples of 8). No head conv: pool -> FC.
    The paper's Fig. 3 says ReLU; the released TF-slim code (mobilenet_v1_arg_scope) uses ReLU6,
    the default here; `act="relu"` is the figure.
    """
    c = functools.partial(_scaled, alpha)
    rows = [(64, 1, 1), (128, 2, 2), (256, 2, 2), (512, 2, 6), (1024, 2, 2)]  # (c, s, n)
    stages, channels = [], c(32)
    for width, stride, n in rows:
        stages.append(MBStageSpec(1, 3, stride, channels, c(width), n, "ds", se_ratio))
        channels = c(width)
    return MBNetSpec(stem_width=c(32), stages=tuple(stages), head_width=None, act=act)


# MobileNet v2 Table 2: (t, c, n, s) per row, after a 3x3/2 conv of 32 and before a 1x1 conv
# of 1280 (the 7x7 avgpool and the 1x1 "conv2d k" classifier = our pool + FC).
MOBILENET_V2_ROWS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def mobilenet_v2_spec(width_mult: float = 1.0, *, se_ratio: float = 0.0) -> MBNetSpec:
    """MobileNet v2 Table 2 with width multiplier (§5.1): every width scales and is rounded to
    8, except that the last 1x1 conv keeps 1280 for multipliers below 1 ("we do not apply the
    width multiplier to the very last convolutional layer ... for multipliers less than one")."""
    c = functools.partial(_scaled, width_mult)
    stages, channels = [], c(32)
    for t, width, n, s in MOBILENET_V2_ROWS:
        stages.append(MBStageSpec(t, 3, s, channels, c(width), n, "ir", se_ratio))
        channels = c(width)
    head = round_channels(1280 * max(1.0, width_mult))
    return MBNetSpec(stem_width=c(32), stages=tuple(stages), head_width=head, act="relu6")


# ---------------------------------------------------------------- registry

V1_PAPER = (
    "Howard et al. 2017, MobileNets: Efficient Convolutional Neural Networks for Mobile "
    "Vision Applications, arXiv:1704.04861"
)
V2_PAPER = (
    "Sandler et al. 2018, MobileNetV2: Inverted Residuals and Linear Bottlenecks, arXiv:1801.04381"
)
TV_META = "torchvision 0.29.1 weight meta (num_params, _ops)"
MOBILENET_V2_140_MACS = 582_195_824.0  # exact (models.complexity at 224)
SE_MOBILENET_MACS = 569_220_096.0
OUR_COUNT = "our exact count (models.complexity: conv + FC, BN affine included in params)"

FREE_KNOBS = COMMON_KNOBS | RESIDUAL_BRANCH_KNOBS
V1_KNOBS = FREE_KNOBS | {"act"}  # v1: ReLU6 (TF-slim) or the paper figure's ReLU

# TF-slim's BatchNorm (PyTorch momentum = 1 - TF decay; epsilon as TF's):
# research/slim/nets/mobilenet_v1.py mobilenet_v1_arg_scope: decay 0.9997, epsilon 0.001;
# research/slim/nets/mobilenet/mobilenet.py training_scope: bn_decay 0.997 (slim's batch_norm
# epsilon default 0.001).
SLIM_V1_BN = {"bn_eps": 1e-3, "bn_momentum": 3e-4}
SLIM_V2_BN = {"bn_eps": 1e-3, "bn_momentum": 3e-3}
PYTORCH_BN = {"bn_eps": 1e-5, "bn_momentum": 0.1}  # the defaults before issue 24; torchvision's
SLIM_V1 = (
    "tensorflow/models research/slim/nets/mobilenet_v1.py (MobilenetV1, mobilenet_v1_arg_scope)"
)
SLIM_V2 = (
    "tensorflow/models research/slim/nets/mobilenet/mobilenet_v2.py (V2_DEF) and "
    "mobilenet.py training_scope"
)


def _bn_changes(new: dict[str, float], why: str) -> tuple[DefaultChange, ...]:
    return tuple(DefaultChange(k, PYTORCH_BN[k], v, why) for k, v in new.items())


V1_CHANGES = (
    DefaultChange("act", "relu", "relu6", "TF-slim mobilenet_v1_arg_scope: activation_fn=relu6"),
    *_bn_changes(SLIM_V1_BN, "TF-slim mobilenet_v1_arg_scope: BN decay 0.9997, epsilon 0.001"),
)
V2_CHANGES = _bn_changes(SLIM_V2_BN, "TF-slim mobilenet training_scope: bn_decay 0.997")


def _v1_info(
    table: str,
    params: int,
    paper_params: str,
    macs: float,
    paper_macs: str,
    top1: float,
    notes: str = "",
) -> ModelInfo:
    return ModelInfo(
        paper=V1_PAPER,
        table=table,
        family="mbconv",
        resolution=224,
        num_classes=1000,
        params=params,
        params_source=OUR_COUNT,
        paper_params=paper_params,
        macs=macs,
        macs_source=OUR_COUNT,
        paper_macs=paper_macs,
        top1_err=round(100 - top1, 2),
        err_protocol="ImageNet val, single crop 224, " + table,
        notes=(
            "Params include BN affine (2 per channel, ~0.02M at alpha 1); MACs include the FC. "
            + notes
        ).strip(),
        released=SLIM_V1,
        deviation="FC classifier on the pooled features (slim: a 1x1 conv, the same function); "
        "no dropout (slim: keep_prob 0.999)",
        default_changes=V1_CHANGES,
    )


def _v1(alpha: float, act: ActKind = "relu6", **knobs: Any) -> MBConvNet:
    """TF-slim's MobileNet v1: ReLU6 and its BN settings unless the knobs say otherwise."""
    knobs = {**SLIM_V1_BN, **knobs}
    return MBConvNet(mobilenet_v1_spec(alpha, act=act), **knobs)


def _build_mobilenet_v2(dropout: float = 0.2, **knobs: Any) -> MBConvNet:
    knobs = {**SLIM_V2_BN, **knobs}
    return MBConvNet(mobilenet_v2_spec(1.0), dropout=dropout, **knobs)


def _build_mobilenet_v2_140(dropout: float = 0.2, **knobs: Any) -> MBConvNet:
    knobs = {**SLIM_V2_BN, **knobs}
    return MBConvNet(mobilenet_v2_spec(1.4), dropout=dropout, **knobs)


# The named models of this family, one row each (registered below: models.registry.register_table).
ROWS = (
    Entry(
        "mobilenet_v1",
        partial(_v1, 1.0),
        _v1_info(
            "Table 1 (body), Table 8 (1.0 MobileNet-224)",
            4_231_976,
            "4.2M",
            568_740_352.0,
            "569e6",
            70.6,
        ),
        free_knobs=V1_KNOBS,
    ),
    Entry(
        "mobilenet_v1_075",
        partial(_v1, 0.75),
        _v1_info("Table 6 (0.75 MobileNet-224)", 2_585_560, "2.6M", 325_400_448.0, "325e6", 68.4),
        free_knobs=V1_KNOBS,
    ),
    Entry(
        "mobilenet_v1_050",
        partial(_v1, 0.5),
        _v1_info("Table 6 (0.5 MobileNet-224)", 1_331_592, "1.3M", 149_497_088.0, "149e6", 63.7),
        free_knobs=V1_KNOBS,
    ),
    Entry(
        "mobilenet_v1_025",
        partial(_v1, 0.25),
        _v1_info("Table 6 (0.25 MobileNet-224)", 470_072, "0.5M", 41_030_272.0, "41e6", 50.6),
        free_knobs=V1_KNOBS,
    ),
    Entry(
        "mobilenet_v2",
        _build_mobilenet_v2,
        ModelInfo(
            paper=V2_PAPER,
            table="Table 2 (body), Table 4 (MobileNetV2)",
            family="mbconv",
            resolution=224,
            num_classes=1000,
            torchvision="mobilenet_v2",
            params=3_504_872,
            params_source=TV_META + "; equals our count",
            paper_params=None,
            macs=300_774_272.0,
            macs_source=OUR_COUNT + "; torchvision _ops 0.301",
            paper_macs="300e6",
            top1_err=28.0,
            err_protocol="ImageNet val, single crop 224, Table 4",
            notes=(
                "Table 4 prints 3.4M params; the exact count is 3,504,872 (3.5M, 3.1% above, outside "
                "the 2% check, so paper_params is left unset). Without the 34,112 BN affine params it "
                "is 3,470,760, which Table 4 seems to truncate to 3.4M. Dropout 0.2 as in torchvision."
            ),
            released=SLIM_V2,
            deviation="dropout 0.2 before the FC (slim: keep_prob 0.8, the same)",
            torchvision_knobs=tuple(PYTORCH_BN.items()),
            default_changes=V2_CHANGES,
        ),
    ),
    Entry(
        "mobilenet_v2_140",
        _build_mobilenet_v2_140,
        ModelInfo(
            paper=V2_PAPER,
            table="Table 4 (MobileNetV2 (1.4))",
            family="mbconv",
            resolution=224,
            num_classes=1000,
            params=6_108_776,
            params_source=OUR_COUNT + "; equals torchvision mobilenet_v2(width_mult=1.4)",
            paper_params=None,
            macs=MOBILENET_V2_140_MACS,
            macs_source=OUR_COUNT,
            paper_macs="585e6",
            top1_err=25.3,
            err_protocol="ImageNet val, single crop 224, Table 4",
            notes=(
                "Width 1.4 on every layer, rounded to 8 (the last conv: 1280 x 1.4 = 1792). Table 4 "
                "prints 6.9M params for it, 13% above the exact 6,108,776 (so paper_params is not "
                "checked to 2%); torchvision publishes no 1.4 weights. Dropout 0.2 as mobilenet_v2."
            ),
            released=SLIM_V2 + " (depth_multiplier 1.4)",
            default_changes=V2_CHANGES,
        ),
    ),
    Entry(
        "se_mobilenet",
        # No release: ReLU and PyTorch BN as before (Hu et al. re-implemented MobileNet themselves).
        partial(MBConvNet, mobilenet_v1_spec(1.0, se_ratio=1 / 16, act="relu")),
        ModelInfo(
            paper="Hu et al. 2017, Squeeze-and-Excitation Networks, arXiv:1709.01507",
            table="Table 3 (SE-MobileNet)",
            family="mbconv",
            resolution=224,
            num_classes=1000,
            params=4_718_044,
            params_source=OUR_COUNT,
            paper_params="4.7M",
            macs=SE_MOBILENET_MACS,
            macs_source=OUR_COUNT,
            paper_macs="572e6",
            top1_err=25.3,
            top5_err=7.7,
            err_protocol="ImageNet val, single crop 224, SENet Table 3 (MobileNet re-implementation "
            "28.4 / 9.4)",
            notes=(
                "1.0 MobileNet-224 with SE (r = 16) on the output of every depthwise-separable "
                "block (after the pointwise conv; module docstring). Hu et al. released no code for "
                "it; their counts (4.7M, 572M) are matched by this placement."
            ),
        ),
    ),
)
ENTRYPOINTS = register_table(ROWS, free_knobs=FREE_KNOBS, defining_fields=SPEC_FIELDS)
