"""One Inception family: `InceptionResNet` = stem -> stages -> head, built from an `InceptionSpec`.

Szegedy, Ioffe, Vanhoucke, Alemi 2016, "Inception-v4, Inception-ResNet and the Impact
of Residual Connections on Learning" (arXiv 1602.07261) gives three networks that
share one skeleton (Figures 9 and 15):

    stem -> A x n_A -> Reduction-A -> B x n_B -> Reduction-B -> C x n_C -> avg pool
         -> dropout (keep 0.8) -> linear

Inception-v4 uses the plain Inception-A/B/C blocks (Figures 4-6, 4/7/3 repeats);
Inception-ResNet-v1/v2 use residual Inception-ResNet-A/B/C blocks (5/10/5 repeats).
Every block of every figure is written here as data: a `BlockSpec` is a tuple of
parallel `Branch`es whose outputs are concatenated, and each branch is the column
of `Conv` / `Pool` boxes the figure draws, copied box by box ("V" = valid padding).
The figure number is cited at each spec.

Conventions (written down because the paper and the implementations disagree):
- Residual blocks (§3.1-3.3): branches -> concat -> linear 1x1 conv up to the
  block's *input* width (no BN, no ReLU, with bias, as the reference TF-slim and
  Keras implementations) -> [SE] -> x residual scale -> drop-path -> + x -> ReLU.
  No BN on top of the summation (§3.2, "batch-normalization only on top of the
  traditional layers, but not on top of the summations").
- Inception-ResNet-v2's figures print 1154 (Fig. 17) and 2048 (Fig. 19) as the
  up-projection widths, but the addition needs the input width, which Reduction-A
  (Fig. 7, Table 1) and Reduction-B (Fig. 18) fix at 384+384+384 = 1152 and
  1152+384+288+320 = 2144. We derive it from the input, so the printed numbers
  are not used.
- Figure 3's last stem conv is printed "3x3 Conv (192 V)" without a stride; the
  71 -> 35 grid it draws needs stride 2, which we use (as TF-slim's Mixed_5a does).
- The order of each 1x7/7x1 (1x3/3x1) pair follows the released TF-slim code
  (research/slim/nets/inception_v4.py: Mixed_4a, block_inception_b Branch_2,
  block_inception_c Branch_2), so Inception-v4's parameter shapes equal the released
  net's one for one (tests/data/released_shapes.json). The figures draw some pairs the
  other way; counts are the same either way.
- `inception_resnet_v2` is the network the authors trained and released (TF-slim
  research/slim/nets/inception_resnet_v2.py, see `inception_resnet_v2_spec`), whose
  errors Table 2 reports; Figure 15 drawn literally is `inception_resnet_v2_fig15`.
- SE (Hu et al., SENet Figs. 2-3) is an `InceptionSpec.se_ratio` field, off in the
  paper models; it goes on the A/B/C blocks, not on the stem or reductions.
- Residual scales (§3.3: "scaling factors between 0.1 and 0.3") are a constructor
  argument. The default, A 0.17 / B 0.10 / C 0.20, is the released TF-slim
  `inception_resnet_v2` (block35 / block17 / block8 scales); the paper prints none.
- Average pools inside blocks exclude the padding (TF 'SAME' pooling).
- Counted against third-party references only: the paper prints no parameter or
  MAC counts, see each model's `notes`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
import dataclasses
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Literal, get_args

import torch
from torch import nn

import torch.nn.functional as F

from .layers import (
    BN_MOMENTUM,
    ClassifierHead,
    DropPathMode,
    DropPathRule,
    SqueezeExcite,
    block_dropped,
    drop_path_rates,
    he_init_,
    make_drop_path,
    relu,
)
from .registry import ModelInfo, register_model

SE_IRV2_PARAMS = 64_387_444  # exact count (meta device), SE r = 16 on the 40 residual blocks
SE_IRV2_MACS = 13.164e9

# ---------------------------------------------------------------- constants

# TF-style BN epsilon of the reference implementations (TF-slim, Keras); a constructor argument.
INCEPTION_BN_EPS = 1e-3
# §3.3 residual scaling: the paper picks "between 0.1 and 0.3"; these are the released
# TF-slim inception_resnet_v2 values (block35 scale=0.17, block17 0.10, block8 0.20).
# "c_last": the released net's final block8 (scale 1.0, no ReLU: `block8(net, activation_fn=None)`).
RESIDUAL_SCALES: Mapping[str, float] = MappingProxyType(
    {"a": 0.17, "b": 0.10, "c": 0.20, "c_last": 1.0}
)
# Figures 9 and 15: "Dropout (keep 0.8)".
DROPOUT = 0.2

PoolKind = Literal["max", "avg"]


# ---------------------------------------------------------------- specs: the figures as data


@dataclass(frozen=True)
class Conv:
    """One box of a figure: conv (no bias) -> BN -> ReLU with `out` filters.

    `kernel` is (height, width): "1x7" in a figure is (1, 7). `valid` is the
    figures' "V" (no padding); otherwise the padding keeps the grid size.
    """

    out: int
    kernel: tuple[int, int] = (1, 1)
    stride: int = 1
    valid: bool = False

    def __post_init__(self) -> None:
        kernel = (self.kernel, self.kernel) if isinstance(self.kernel, int) else tuple(self.kernel)
        object.__setattr__(self, "kernel", kernel)
        if self.out < 1 or len(kernel) != 2 or any(k < 1 or k % 2 != 1 for k in kernel):
            raise ValueError(f"need out >= 1 and two odd kernel sides, got {self}")
        if self.stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {self.stride}")


@dataclass(frozen=True)
class Pool:
    """A 3x3 pooling box ("3x3 MaxPool (stride 2 V)", "Avg Pooling")."""

    kind: PoolKind
    stride: int = 1
    valid: bool = False
    kernel: int = 3

    def __post_init__(self) -> None:
        if self.kind not in get_args(PoolKind):
            raise ValueError(f"kind must be one of {get_args(PoolKind)}, got {self.kind!r}")
        if self.kernel % 2 != 1 or self.stride not in (1, 2):
            raise ValueError(f"need an odd kernel and stride 1 or 2, got {self}")


Layer = Conv | Pool


@dataclass(frozen=True)
class Branch:
    """One column of a figure: `layers` in sequence, then optionally `split`: parallel
    convs on the column's output whose results are concatenated (Inception-C, Fig. 6)."""

    layers: tuple[Layer, ...]
    split: tuple[Conv, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "split", tuple(self.split))
        if not self.layers:
            raise ValueError("a branch needs at least one layer")


@dataclass(frozen=True)
class BlockSpec:
    """Parallel branches, concatenated along channels.

    `residual`: an Inception-ResNet block (§3.1): the concatenation is projected by a
    linear 1x1 conv back to the input width, scaled and added to the input, then ReLU
    (`activate=False` drops that ReLU: the released net's last block8).
    """

    branches: tuple[Branch, ...]
    residual: bool = False
    activate: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "branches", tuple(self.branches))
        if not self.branches:
            raise ValueError("a block needs at least one branch")
        if self.residual and any(
            layer.stride != 1 for b in self.branches for layer in b.layers + b.split
        ):
            raise ValueError("a residual block must keep the grid size (stride 1 everywhere)")


@dataclass(frozen=True)
class InceptionStage:
    """`depth` repeats of one block, registered as a submodule called `name`.

    `se`: the stage takes a squeeze-excite unit when the net's `se_ratio` > 0.
    """

    name: str
    block: BlockSpec
    depth: int = 1
    se: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name in ("stem", "head"):
            raise ValueError(f"stage name must be an identifier other than stem/head, got {self.name!r}")
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")


@dataclass(frozen=True)
class InceptionSpec:
    """A whole network: stem blocks (applied once each), then stages.

    `se_ratio` = 1/r of the SE-carrying block's output width (SENet §6.1, r = 16 ->
    0.0625); 0 = no SE. SE sits where SENet Figs. 2-3 put it: on a plain Inception
    block's output, and on a residual block's branch before the addition.
    """

    stem: tuple[BlockSpec, ...]
    stages: tuple[InceptionStage, ...]
    se_ratio: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "stem", tuple(self.stem))
        object.__setattr__(self, "stages", tuple(self.stages))
        if not self.stages:
            raise ValueError("an InceptionSpec needs at least one stage")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        if not 0.0 <= self.se_ratio <= 1.0:
            raise ValueError(f"se_ratio must be in [0, 1], got {self.se_ratio}")

    @property
    def residual_stages(self) -> tuple[InceptionStage, ...]:
        return tuple(s for s in self.stages if s.block.residual)

    @property
    def num_residual_blocks(self) -> int:
        return sum(s.depth for s in self.residual_stages)


# Every field name of the specs: overriding one of these on a named model is an error.
SPEC_FIELDS = frozenset(
    f.name for cls in (InceptionSpec, InceptionStage, BlockSpec, Branch) for f in fields(cls)
) | {"k", "l", "m", "n"}


# Short constructors so the specs below read like the figures.
def conv(out: int, kernel: int | tuple[int, int] = 1, stride: int = 1, *, valid: bool = False) -> Conv:
    return Conv(out, kernel, stride, valid)  # type: ignore[arg-type]  # int kernel -> (k, k)


def branch(*layers: Layer, split: tuple[Conv, ...] = ()) -> Branch:
    return Branch(layers, split)


MAX_POOL_S2_V = Pool("max", stride=2, valid=True)  # "3x3 MaxPool (stride 2 V)"
AVG_POOL = Pool("avg")  # "Avg Pooling" (3x3, stride 1, same)


# ---------------------------------------------------------------- layers and blocks


class ConvBN(nn.Sequential):
    """conv (no bias) -> BN -> ReLU for one `Conv` box: like layers.ConvNormAct, but with
    rectangular kernels (1x7, 3x1) and valid padding, which the shared helper lacks."""

    def __init__(self, in_channels: int, spec: Conv, *, bn_eps: float, bn_momentum: float) -> None:
        super().__init__()
        padding = (0, 0) if spec.valid else (spec.kernel[0] // 2, spec.kernel[1] // 2)
        self.conv = nn.Conv2d(
            in_channels, spec.out, spec.kernel, stride=spec.stride, padding=padding, bias=False
        )
        self.bn = nn.BatchNorm2d(spec.out, eps=bn_eps, momentum=bn_momentum)
        self.act = relu()


def _pool(spec: Pool) -> nn.Module:
    padding = 0 if spec.valid else spec.kernel // 2
    if spec.kind == "max":
        return nn.MaxPool2d(spec.kernel, spec.stride, padding)
    # TF 'SAME' average pooling divides by the number of valid (non-padded) pixels.
    return nn.AvgPool2d(spec.kernel, spec.stride, padding, count_include_pad=False)


class BranchModule(nn.Module):
    """One `Branch`: layers in sequence, then the optional parallel split, concatenated."""

    def __init__(self, in_channels: int, spec: Branch, **bn: float) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = in_channels
        for i, layer in enumerate(spec.layers, start=1):
            if isinstance(layer, Conv):
                layers[f"conv{i}"] = ConvBN(channels, layer, **bn)
                channels = layer.out
            else:
                layers[f"pool{i}"] = _pool(layer)  # keeps the channel count
        self.layers = nn.Sequential(layers)
        self.split = nn.ModuleList(ConvBN(channels, c, **bn) for c in spec.split)
        self.out_channels = sum(c.out for c in spec.split) if spec.split else channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(x)
        if len(self.split):
            x = torch.cat([m(x) for m in self.split], dim=1)  # (B, sum of split outs, H, W)
        return x


class InceptionBlock(nn.Module):
    """A `BlockSpec`: parallel branches concatenated; residual blocks add back to the input.

    plain:    y = SE(cat(branches(x)))
    residual: y = ReLU(x + drop_path(scale * SE(up(cat(branches(x))))))  (§3.1, §3.3)

    `up` is the paper's "1x1 Conv (... Linear)": no activation, and no BN (bias
    instead), as in the TF-slim and Keras reference implementations.
    """

    def __init__(
        self,
        in_channels: int,
        spec: BlockSpec,
        *,
        residual_scale: float = 1.0,
        se_ratio: float = 0.0,
        drop_path: nn.Module | None = None,
        bn_eps: float = INCEPTION_BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        if residual_scale < 0:
            raise ValueError(f"residual_scale must be >= 0, got {residual_scale}")
        if drop_path is not None and not spec.residual:
            raise ValueError("drop-path needs a residual block")
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        self.residual = spec.residual
        self.branches = nn.ModuleList(BranchModule(in_channels, b, **bn) for b in spec.branches)
        concat = sum(b.out_channels for b in self.branches)
        if spec.residual:
            self.up = nn.Conv2d(concat, in_channels, 1, bias=True)  # back to the input width
            self.out_channels = in_channels
            self.residual_scale = residual_scale
            self.drop_path = drop_path if drop_path is not None else nn.Identity()
            self.act = relu() if spec.activate else nn.Identity()
        else:
            self.out_channels = concat
        self.se = (
            SqueezeExcite(self.out_channels, max(1, round(self.out_channels * se_ratio)))
            if se_ratio > 0
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.residual and block_dropped(self.drop_path):  # batch-mode stochastic depth
            return F.relu(x) if isinstance(self.act, nn.ReLU) else x
        out = torch.cat([b(x) for b in self.branches], dim=1)  # (B, sum of branch outs, H', W')
        if not self.residual:
            return self.se(out)
        out = self.se(self.up(out))  # (B, C_in, H, W)
        return self.act(x + self.drop_path(out * self.residual_scale))

    def zero_init_last(self) -> None:
        """Start as ReLU(x): zero the linear up-projection (no BN follows it to zero-gamma;
        Goyal et al. 2017 §5.1 do the same for ResNet's last BN)."""
        if self.residual:
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def extra_repr(self) -> str:
        return f"residual_scale={self.residual_scale:.4g}" if self.residual else ""


# ---------------------------------------------------------------- network


class InceptionResNet(nn.Module):
    """stem -> stages (each `depth` x one block) -> avg pool -> dropout -> linear.

    Training-time knobs (residual scales, drop_path_rate, dropout, zero-init, BN
    eps/momentum) are constructor arguments, not spec fields. `residual_scales` (§3.3) is
    one float for every residual stage, or a {stage name: scale} mapping naming exactly
    the residual stages; None takes each residual stage's scale from RESIDUAL_SCALES.
    Drop-path rates (Huang et al. 2016) run over the residual blocks only, by
    global index; a net without residual blocks (Inception-v4) rejects a rate > 0.
    """

    def __init__(
        self,
        spec: InceptionSpec,
        num_classes: int = 1000,
        *,
        in_chans: int = 3,
        residual_scales: float | Mapping[str, float] | None = None,
        drop_path_rate: float = 0.0,
        # Not in the paper: per-sample drop-path with timm's rule by default (layers.drop_path_rates).
        drop_path_mode: DropPathMode = "sample",
        drop_path_rule: DropPathRule = "timm",
        dropout: float = DROPOUT,
        zero_init_residual: bool = False,  # off: the paper relies on the residual scale instead
        bn_eps: float = INCEPTION_BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        self.spec = spec
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        scales = _stage_scales(spec, residual_scales)
        if drop_path_rate > 0 and spec.num_residual_blocks == 0:
            raise ValueError("drop_path_rate needs residual blocks; this network has none")

        channels = in_chans
        stem: OrderedDict[str, nn.Module] = OrderedDict()
        for i, block_spec in enumerate(spec.stem, start=1):
            if block_spec.residual:
                raise ValueError("stem blocks cannot be residual")
            stem[f"b{i}"] = block = InceptionBlock(channels, block_spec, **bn)
            channels = block.out_channels
        self.stem = nn.Sequential(stem)

        rates = iter(drop_path_rates(spec.num_residual_blocks, drop_path_rate, drop_path_rule))
        for stage in spec.stages:
            blocks: OrderedDict[str, nn.Module] = OrderedDict()
            for b in range(1, stage.depth + 1):
                rate = next(rates) if stage.block.residual else 0.0
                blocks[f"b{b}"] = block = InceptionBlock(
                    channels,
                    stage.block,
                    residual_scale=scales.get(stage.name, 1.0),
                    se_ratio=spec.se_ratio if stage.se else 0.0,
                    drop_path=make_drop_path(rate, drop_path_mode),
                    **bn,
                )
                channels = block.out_channels
            self.add_module(stage.name, nn.Sequential(blocks))
        self.head = ClassifierHead(channels, num_classes, dropout)
        self.num_features = channels
        self.init_weights(zero_init_residual)

    def init_weights(self, zero_init_residual: bool = False) -> None:
        # The paper does not state an init; He-normal (fan_out, as models.resnet) for the
        # convs, zero conv biases, BN at (1, 0); the Linear head keeps PyTorch's default.
        he_init_(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, InceptionBlock):
                    m.zero_init_last()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        for module in self.children():
            x = module(x)
        return x


def _stage_scales(
    spec: InceptionSpec, scales: float | Mapping[str, float] | None
) -> dict[str, float]:
    residual = [s.name for s in spec.residual_stages]
    if isinstance(scales, int | float):
        return dict.fromkeys(residual, float(scales))
    if scales is None:  # the defaults, for the residual stages this spec has
        scales = {name: RESIDUAL_SCALES[name] for name in residual if name in RESIDUAL_SCALES}
    unknown = sorted(set(scales) - set(residual))
    missing = sorted(set(residual) - set(scales))
    if unknown or missing:
        raise ValueError(
            f"residual_scales must name the residual stages {residual}; "
            f"unknown {unknown}, missing {missing}"
        )
    return {name: float(scales[name]) for name in residual}


# ---------------------------------------------------------------- paper specs

# Figure 3: the stem of Inception-v4 and Inception-ResNet-v2 (299x299x3 -> 35x35x384).
STEM_V4 = (
    BlockSpec((branch(conv(32, 3, 2, valid=True), conv(32, 3, valid=True), conv(64, 3)),)),
    BlockSpec((branch(MAX_POOL_S2_V), branch(conv(96, 3, 2, valid=True)))),  # 73x73x160
    BlockSpec(
        (
            branch(conv(64), conv(96, 3, valid=True)),
            # TF-slim inception_v4.py Mixed_4a Branch_1: 1x7 then 7x1
            branch(conv(64), conv(64, (1, 7)), conv(64, (7, 1)), conv(96, 3, valid=True)),
        )
    ),  # 71x71x192
    BlockSpec((branch(conv(192, 3, 2, valid=True)), branch(MAX_POOL_S2_V))),  # 35x35x384
)

# Figure 14: the stem of Inception-ResNet-v1 (299x299x3 -> 35x35x256).
STEM_V1 = (
    BlockSpec(
        (
            branch(
                conv(32, 3, 2, valid=True),  # 149x149x32
                conv(32, 3, valid=True),  # 147x147x32
                conv(64, 3),  # 147x147x64
                MAX_POOL_S2_V,  # 73x73x64
                conv(80),  # 73x73x80
                conv(192, 3, valid=True),  # 71x71x192
                conv(256, 3, 2, valid=True),  # 35x35x256
            ),
        )
    ),
)


def reduction_a(k: int, l: int, m: int, n: int) -> BlockSpec:  # noqa: E741 (the paper's symbols)
    """Figure 7 (35 -> 17 grid); k, l, m, n from Table 1. Output: in + n + m channels."""
    return BlockSpec(
        (
            branch(MAX_POOL_S2_V),
            branch(conv(n, 3, 2, valid=True)),
            branch(conv(k), conv(l, 3), conv(m, 3, 2, valid=True)),
        )
    )


# Table 1: Reduction-A filter counts (k, l, m, n).
REDUCTION_A_V4 = reduction_a(192, 224, 256, 384)
REDUCTION_A_IR_V1 = reduction_a(192, 192, 256, 384)
REDUCTION_A_IR_V2 = reduction_a(256, 256, 384, 384)


def reduction_b_resnet(b2: int, b3: tuple[int, int]) -> BlockSpec:
    """Figures 12 (v1) and 18 (v2), 17 -> 8 grid: max pool | 1x1 256 -> 3x3/2 384 |
    1x1 256 -> 3x3/2 b2 | 1x1 256 -> 3x3 b3[0] -> 3x3/2 b3[1]."""
    return BlockSpec(
        (
            branch(MAX_POOL_S2_V),
            branch(conv(256), conv(384, 3, 2, valid=True)),
            branch(conv(256), conv(b2, 3, 2, valid=True)),
            branch(conv(256), conv(b3[0], 3), conv(b3[1], 3, 2, valid=True)),
        )
    )


# Figure 8: Inception-v4 Reduction-B (17x17x1024 -> 8x8x1536).
REDUCTION_B_V4 = BlockSpec(
    (
        branch(MAX_POOL_S2_V),
        branch(conv(192), conv(192, 3, 2, valid=True)),
        branch(conv(256), conv(256, (1, 7)), conv(320, (7, 1)), conv(320, 3, 2, valid=True)),
    )
)

# Figures 4-6: the plain Inception-v4 blocks (35x35x384, 17x17x1024, 8x8x1536).
INCEPTION_A = BlockSpec(
    (
        branch(AVG_POOL, conv(96)),
        branch(conv(96)),
        branch(conv(64), conv(96, 3)),
        branch(conv(64), conv(96, 3), conv(96, 3)),
    )
)
INCEPTION_B = BlockSpec(
    (
        branch(AVG_POOL, conv(128)),
        branch(conv(384)),
        branch(conv(192), conv(224, (1, 7)), conv(256, (7, 1))),
        # TF-slim block_inception_b Branch_2: 7x1, 1x7, 7x1, 1x7
        branch(
            conv(192), conv(192, (7, 1)), conv(224, (1, 7)), conv(224, (7, 1)), conv(256, (1, 7))
        ),
    )
)
_SPLIT_256 = (conv(256, (1, 3)), conv(256, (3, 1)))
INCEPTION_C = BlockSpec(
    (
        branch(AVG_POOL, conv(256)),
        branch(conv(256)),
        branch(conv(384), split=_SPLIT_256),
        # TF-slim block_inception_c Branch_2: 3x1 then 1x3, then the 1x3 | 3x1 split
        branch(conv(384), conv(448, (3, 1)), conv(512, (1, 3)), split=_SPLIT_256),
    )
)


def resnet_a(b3: tuple[int, int, int]) -> BlockSpec:
    """Figures 10 (v1) and 16 (v2), 35x35 grid: 1x1 32 | 1x1 32 -> 3x3 32 | 1x1 -> 3x3 -> 3x3."""
    return BlockSpec(
        (
            branch(conv(32)),
            branch(conv(32), conv(32, 3)),
            branch(conv(b3[0]), conv(b3[1], 3), conv(b3[2], 3)),
        ),
        residual=True,
    )


def resnet_b(b1: int, b2: tuple[int, int, int]) -> BlockSpec:
    """Figures 11 (v1) and 17 (v2), 17x17 grid: 1x1 b1 | 1x1 -> 1x7 -> 7x1."""
    return BlockSpec(
        (branch(conv(b1)), branch(conv(b2[0]), conv(b2[1], (1, 7)), conv(b2[2], (7, 1)))),
        residual=True,
    )


def resnet_c(b2: tuple[int, int, int]) -> BlockSpec:
    """Figures 13 (v1) and 19 (v2), 8x8 grid: 1x1 192 | 1x1 -> 1x3 -> 3x1."""
    return BlockSpec(
        (branch(conv(192)), branch(conv(b2[0]), conv(b2[1], (1, 3)), conv(b2[2], (3, 1)))),
        residual=True,
    )


def _skeleton(
    stem: tuple[BlockSpec, ...],
    blocks: tuple[BlockSpec, BlockSpec, BlockSpec],
    reductions: tuple[BlockSpec, BlockSpec],
    depths: tuple[int, int, int],
    se_ratio: float,
) -> InceptionSpec:
    """Figures 9 / 15: A x n_A, Reduction-A, B x n_B, Reduction-B, C x n_C."""
    (a, b, c), (ra, rb) = blocks, reductions
    stages = (
        InceptionStage("a", a, depths[0], se=True),
        InceptionStage("reduction_a", ra),
        InceptionStage("b", b, depths[1], se=True),
        InceptionStage("reduction_b", rb),
        InceptionStage("c", c, depths[2], se=True),
    )
    return InceptionSpec(stem, stages, se_ratio)


def inception_v4_spec(se_ratio: float = 0.0) -> InceptionSpec:
    """Figure 9: stem (Fig. 3), 4 x A (Fig. 4), Red.-A (Fig. 7), 7 x B (Fig. 5),
    Red.-B (Fig. 8), 3 x C (Fig. 6); 8x8x1536 before the pool."""
    return _skeleton(
        STEM_V4,
        (INCEPTION_A, INCEPTION_B, INCEPTION_C),
        (REDUCTION_A_V4, REDUCTION_B_V4),
        (4, 7, 3),
        se_ratio,
    )


def inception_resnet_v1_spec(se_ratio: float = 0.0) -> InceptionSpec:
    """Figure 15 with v1 parts: stem (Fig. 14), 5 x A (Fig. 10), Red.-A (Fig. 7, k/l/m/n
    192/192/256/384), 10 x B (Fig. 11), Red.-B (Fig. 12), 5 x C (Fig. 13); 8x8x1792."""
    return _skeleton(
        STEM_V1,
        (resnet_a((32, 32, 32)), resnet_b(128, (128, 128, 128)), resnet_c((192, 192, 192))),
        (REDUCTION_A_IR_V1, reduction_b_resnet(256, (256, 256))),
        (5, 10, 5),
        se_ratio,
    )


def inception_resnet_v2_fig15_spec(se_ratio: float = 0.0) -> InceptionSpec:
    """Figure 15 drawn literally, with v2 parts: stem (Fig. 3), 5 x A (Fig. 16), Red.-A (Fig. 7, k/l/m/n
    256/256/384/384), 10 x B (Fig. 17), Red.-B (Fig. 18), 5 x C (Fig. 19); 8x8x2144."""
    return _skeleton(
        STEM_V4,
        (resnet_a((32, 48, 64)), resnet_b(192, (128, 160, 192)), resnet_c((192, 224, 256))),
        (REDUCTION_A_IR_V2, reduction_b_resnet(288, (288, 320))),
        (5, 10, 5),
        se_ratio,
    )


# The released Inception-ResNet-v2 (TF-slim research/slim/nets/inception_resnet_v2.py, commit
# 0223fe37 of tensorflow/models), which is not Figure 15: an Inception-v3 stem and Mixed_5b,
# 10/20/10 blocks, and a 1x1 conv to 1536 before the pool. Branch order as the released
# concatenations (Mixed_6a, Mixed_7a put the pool last).

# inception_resnet_v2_base, Conv2d_1a_3x3 .. MaxPool_5a_3x3 (L149-L176): 299 -> 35x35x192
STEM_V3 = (
    BlockSpec(
        (
            branch(
                conv(32, 3, 2, valid=True),  # Conv2d_1a_3x3: 149x149x32
                conv(32, 3, valid=True),  # Conv2d_2a_3x3: 147x147x32
                conv(64, 3),  # Conv2d_2b_3x3: 147x147x64
                MAX_POOL_S2_V,  # MaxPool_3a_3x3: 73x73x64
                conv(80),  # Conv2d_3b_1x1: 73x73x80
                conv(192, 3, valid=True),  # Conv2d_4a_3x3: 71x71x192
                MAX_POOL_S2_V,  # MaxPool_5a_3x3: 35x35x192
            ),
        )
    ),
    BlockSpec(  # Mixed_5b (L179-L196): 35x35x320
        (
            branch(conv(96)),
            branch(conv(48), conv(64, 5)),
            branch(conv(64), conv(96, 3), conv(96, 3)),
            branch(AVG_POOL, conv(64)),
        )
    ),
)
# Mixed_6a (L206-L223): 35x35x320 -> 17x17x1088 (Table 1's k, l, m, n = 256, 256, 384, 384)
REDUCTION_A_IR_V2_RELEASED = BlockSpec(
    (
        branch(conv(384, 3, 2, valid=True)),
        branch(conv(256), conv(256, 3), conv(384, 3, 2, valid=True)),
        branch(MAX_POOL_S2_V),
    )
)
# Mixed_7a (L238-L262): 17x17x1088 -> 8x8x2080
REDUCTION_B_IR_V2_RELEASED = BlockSpec(
    (
        branch(conv(256), conv(384, 3, 2, valid=True)),
        branch(conv(256), conv(288, 3, 2, valid=True)),
        branch(conv(256), conv(288, 3), conv(320, 3, 2, valid=True)),
        branch(MAX_POOL_S2_V),
    )
)


def inception_resnet_v2_spec(se_ratio: float = 0.0) -> InceptionSpec:
    """The released Inception-ResNet-v2: stem + Mixed_5b, 10 x block35 (L33, scale 0.17),
    Mixed_6a, 20 x block17 (L54, scale 0.10), Mixed_7a, 9 x block8 (L74, scale 0.20) + one
    block8 at scale 1.0 without ReLU, Conv2d_7b_1x1 to 1536 (L270): 8x8x1536 before the pool.

    SE (Hu et al. Fig. 2, SE-Inception-ResNet-v2) goes on every Inception-ResNet block.
    """
    c = resnet_c((192, 224, 256))
    stages = (
        InceptionStage("a", resnet_a((32, 48, 64)), 10, se=True),
        InceptionStage("reduction_a", REDUCTION_A_IR_V2_RELEASED),
        InceptionStage("b", resnet_b(192, (128, 160, 192)), 20, se=True),
        InceptionStage("reduction_b", REDUCTION_B_IR_V2_RELEASED),
        InceptionStage("c", c, 9, se=True),
        InceptionStage("c_last", dataclasses.replace(c, activate=False), 1, se=True),
        InceptionStage("conv7b", BlockSpec((branch(conv(1536)),))),
    )
    return InceptionSpec(STEM_V3, stages, se_ratio)


# ---------------------------------------------------------------- registry

PAPER = (
    "Szegedy et al. 2016, Inception-v4, Inception-ResNet and the Impact of Residual "
    "Connections on Learning, arXiv:1602.07261"
)
OUR_COUNT = "exact count of this implementation (the paper prints no parameter or MAC counts)"
ERR_PROTOCOL = "ILSVRC-2012 val (non-blacklisted), single model, single crop 299, Table 2"

FREE_KNOBS = frozenset({"num_classes", "in_chans", "dropout", "bn_eps", "bn_momentum"})
# Inception-v4 has no residual branch: drop-path and zero-init would have nothing to act on.
FREE_KNOBS_RESIDUAL = FREE_KNOBS | {
    "drop_path_rate", "drop_path_mode", "drop_path_rule", "residual_scales", "zero_init_residual"
}


def _info(**row: Any) -> ModelInfo:
    return ModelInfo(
        paper=PAPER,
        family="inception_resnet",
        resolution=299,
        num_classes=1000,
        min_input=75,  # valid-padded stem + two valid reductions: 75 -> 35 -> 17 -> 7 -> 3 -> 1
        **{
            "params_source": OUR_COUNT,
            "macs_source": OUR_COUNT + "; conv + linear multiply-adds at 299",
            "err_protocol": ERR_PROTOCOL,
            **row,
        },
    )


def _register(info: ModelInfo, free: frozenset[str]) -> Any:
    return register_model(info, free_knobs=free, defining_fields=SPEC_FIELDS)


# The paper prints no parameter or MAC counts; each `notes` gives the third-party
# references (paper_tables.md §7, timm model cards) and how our exact count relates.


@_register(
    _info(
        table="Figures 14, 10, 7, 11, 12, 13, 15; Table 1 (Inception-ResNet-v1)",
        params=22_756_328,
        macs=6.206e9,
        top1_err=21.3,
        top5_err=5.5,
        notes=(
            "No reference parameter or MAC count is known for Inception-ResNet-v1 "
            "(paper_tables.md §7: [U]); §3.1 only says it costs roughly as much as "
            "Inception-v3 (torchvision: 5.713 GMACs; ours 6.206). The Table 2 error is not "
            "verified verbatim."
        ),
    ),
    FREE_KNOBS_RESIDUAL,
)
def inception_resnet_v1(**knobs: Any) -> InceptionResNet:
    return InceptionResNet(inception_resnet_v1_spec(), **knobs)


@_register(
    _info(
        table="TF-slim inception_resnet_v2.py (the released net); Table 2 errors",
        params=55_843_464,
        macs=13.157e9,
        top1_err=19.9,
        top5_err=4.9,
        params_source="exact count with PyTorch's affine BN (TF-slim trains BN without gamma: "
        "55,813,192; Keras Applications also counts moving stats: 55,873,736)",
        notes=(
            "The network the authors trained and released: tensorflow/models "
            "research/slim/nets/inception_resnet_v2.py (block35 L33, block17 L54, block8 L74, "
            "inception_resnet_v2_base L101-L273: Inception-v3 stem + Mixed_5b 35x35x320, "
            "10 x block35 0.17, Mixed_6a, 20 x block17 0.10, Mixed_7a, 9 x block8 0.20 + "
            "block8 scale 1.0 without ReLU, Conv2d_7b_1x1 1536; dropout keep 0.8). The auxiliary "
            "head (AuxLogits on PreAuxLogits) is not built. Figure 15 drawn literally is "
            "inception_resnet_v2_fig15. SENet Table 2 prints 11.75 GFLOPs for this row, which "
            "matches neither network (13.16 G here, 9.26 G for Figure 15)."
        ),
    ),
    FREE_KNOBS_RESIDUAL,
)
def inception_resnet_v2(**knobs: Any) -> InceptionResNet:
    return InceptionResNet(inception_resnet_v2_spec(), **knobs)


@_register(
    _info(
        table="Figures 3, 16, 7, 17, 18, 19, 15; Table 1 (Inception-ResNet-v2 as drawn)",
        params=32_433_928,
        macs=9.258e9,
        err_protocol="",
        notes=(
            "Figure 15 drawn literally (Fig. 3 stem, 5/10/5 blocks, 2144 channels before the "
            "pool, no final 1x1 conv). Not the network the paper's errors belong to (that is "
            "the released inception_resnet_v2), so it carries no error numbers."
        ),
    ),
    FREE_KNOBS_RESIDUAL,
)
def inception_resnet_v2_fig15(**knobs: Any) -> InceptionResNet:
    return InceptionResNet(inception_resnet_v2_fig15_spec(), **knobs)


@_register(
    ModelInfo(
        paper="Hu et al. 2017, Squeeze-and-Excitation Networks, arXiv:1709.01507",
        family="inception_resnet",
        table="Table 2 (SE-Inception-ResNet-v2), Fig. 2",
        resolution=299,
        num_classes=1000,
        min_input=75,
        params=SE_IRV2_PARAMS,
        params_source=OUR_COUNT.replace("the paper prints", "SENet prints"),
        macs=SE_IRV2_MACS,
        macs_source="platform.complexity count at 299",
        top1_err=19.80,
        top5_err=4.79,
        err_protocol="ImageNet val, single crop 299, SENet Table 2",
        notes=(
            "SE (r = 16, on the up-projected branch before the scaling and the addition, "
            "Fig. 2) on every Inception-ResNet block of the released inception_resnet_v2 "
            "(TF-slim inception_resnet_v2.py). Hu et al. released no code for this model "
            "(hujie-frank/SENet has Caffe prototxts of the SE-ResNe(X)ts and SENet-154 only), "
            "so the SE placement follows Fig. 2. SENet's 11.76 G vs 11.75 G base matches "
            "neither our base count (13.16 G)."
        ),
    ),
    FREE_KNOBS_RESIDUAL,
)
def se_inception_resnet_v2(**knobs: Any) -> InceptionResNet:
    return InceptionResNet(inception_resnet_v2_spec(se_ratio=1 / 16), **knobs)


@_register(
    _info(
        table="Figures 3, 4, 7, 5, 8, 6, 9; Table 1 (Inception-v4)",
        params=42_679_816,
        macs=12.254e9,
        top1_err=20.0,
        top5_err=5.0,
        notes=(
            "The released net's parameter shapes one for one: tensorflow/models "
            "research/slim/nets/inception_v4.py (block_inception_a/b/c, block_reduction_a/b, "
            "inception_v4_base Mixed_3a..Mixed_7d; asymmetric pairs in its order: Mixed_4a "
            "1x7->7x1, Inception-B Branch_2 7x1,1x7,7x1,1x7, Inception-C Branch_2 3x1->1x3; "
            "tests/data/released_shapes.json). 42.68M also in paper_tables.md §7 and the timm "
            "model card (42.7M / 12.3 GMACs). EfficientNet Table 2 quotes 48M / 13B. The "
            "auxiliary head (AuxLogits on Mixed_6h) is not built."
        ),
    ),
    FREE_KNOBS,
)
def inception_v4(**knobs: Any) -> InceptionResNet:
    return InceptionResNet(inception_v4_spec(), **knobs)
