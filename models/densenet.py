"""DenseNet (Huang et al. 2017, arXiv 1608.06993): `DenseNet` = stem -> dense blocks and
transitions -> final BN-ReLU -> head, built from a frozen `DenseNetSpec`.

Every layer of a dense block sees the concatenation of all earlier feature maps of the
block and adds k (the growth rate) new ones (§3, "Dense connectivity"). The named
ImageNet (Table 1) and CIFAR (Table 2) models are registered at the bottom of this file.

Conventions (written down because implementations disagree):
- DenseNet-BC (§3, "Bottleneck layers" + "Compression"): each layer is
  BN-ReLU-1x1 conv (bn_size * k) - BN-ReLU-3x3 conv (k), bn_size = 4, and a
  transition keeps floor(theta * C) channels, theta = 0.5. `bn_size=0` gives the plain
  DenseNet layer BN-ReLU-3x3 conv (k); `compression=1` the un-compressed transition.
- Stems (§3, "Implementation Details"): ImageNet: 7x7/2 conv with 2k channels, BN, ReLU,
  3x3/2 max pool. CIFAR: one 3x3 conv; 2k channels for DenseNet-BC, and nothing after it,
  because the first dense layer starts with its own BN-ReLU (official Lua code,
  liuzhuang13/DenseNet models/densenet.lua).
- No conv has a bias (the official code removes them; torchvision has none either).
- Dropout (`drop_rate`, §4.2: 0.2 when training without augmentation) follows every conv
  except the first one, as in the official code: after the 1x1 bottleneck, after the 3x3
  conv and after the transition conv. torchvision only drops after the 3x3 conv; with the
  default rate 0 the two are the same network.
- Modules are registered in torchvision's state_dict order (features.conv0, norm0,
  denseblock1.denselayer1.{norm1, conv1, norm2, conv2}, transition1.{norm, conv}, ...,
  norm5, classifier), so `models.convert.from_torchvision` pairs tensors by position.

Why there is no drop-path: stochastic depth (Huang et al. 2016) drops a residual branch
and keeps the identity path, `x + f(x)`. A dense layer has no identity path to fall back
on: its output is *concatenated* and becomes part of the input of every later layer, so
"dropping" it would change the input width that later layers were built for (or feed them
zeros, which is just dropout on k channels). The paper regularizes with dropout instead,
which is what `drop_rate` offers.

Memory-efficient concatenation (Pleiss et al. 2017, "Memory-Efficient Implementation of
DenseNets", arXiv 1707.06990): with `memory_efficient=True` the concat -> BN -> ReLU -> first
conv of every layer runs under `torch.utils.checkpoint`, so the concatenated input and its
normalized copy (quadratic in the number of layers) are recomputed in the backward pass
instead of being stored. Outputs and gradients are the same; the BN running averages are
updated once, as without checkpointing (the official code's optMemory=4 restores them).
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import partial
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .layers import (
    BN_EPS,
    BN_MOMENTUM,
    ClassifierHead,
    ConvNormAct,
    NormAct,
    conv2d,
    he_init_,
    relu,
)
from .registry import COMMON_KNOBS, Entry, ModelInfo, register_table

# ---------------------------------------------------------------- spec

StemKind = Literal["imagenet", "cifar"]


@dataclass(frozen=True)
class DenseNetSpec:
    """A whole DenseNet, in the paper's symbols. Training knobs are not here."""

    stem: StemKind
    growth_rate: int  # k: feature maps each dense layer adds
    block_config: tuple[int, ...]  # dense layers per dense block
    stem_width: int  # channels before the first block (2k for DenseNet-BC)
    bn_size: int = 4  # bottleneck width = bn_size * k; 0 = no 1x1 bottleneck (plain DenseNet)
    compression: float = 0.5  # theta: a transition keeps floor(theta * C) channels

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_config", tuple(self.block_config))  # accept a list (YAML)
        if self.stem not in get_args(StemKind):
            raise ValueError(f"stem must be one of {get_args(StemKind)}, got {self.stem!r}")
        if not self.block_config or min(self.block_config) < 1:
            raise ValueError(
                f"block_config needs >= 1 block of >= 1 layer, got {self.block_config}"
            )
        if self.growth_rate < 1 or self.stem_width < 1 or self.bn_size < 0:
            raise ValueError(f"growth_rate, stem_width must be >= 1 and bn_size >= 0, got {self}")
        if not 0.0 < self.compression <= 1.0:
            raise ValueError(f"compression (theta) must be in (0, 1], got {self.compression}")

    def transition_width(self, channels: int) -> int:
        return math.floor(self.compression * channels)  # official code: math.floor(C * reduction)

    @property
    def depth(self) -> int:
        """L as the paper counts it: conv layers in the blocks + stem + transitions + classifier."""
        per_layer = 2 if self.bn_size else 1
        return per_layer * sum(self.block_config) + len(self.block_config) + 1


# Every spec field: overriding one on a named model is an error (registry defining fields).
SPEC_FIELDS = frozenset(f.name for f in fields(DenseNetSpec))


# ---------------------------------------------------------------- layers


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (bn_size * k) - BN-ReLU-3x3 conv (k) on the concatenated input (§3).

    Takes the list of the block's feature maps so far and returns the k new ones; the
    block does the concatenation bookkeeping. With bn_size = 0 the layer is BN-ReLU-3x3
    conv (k) only and conv1 is that 3x3 conv.
    """

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        bn_size: int = 4,
        *,
        drop_rate: float = 0.0,
        memory_efficient: bool = False,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        self.bottleneck = bn_size > 0
        inner = bn_size * growth_rate if self.bottleneck else growth_rate
        # Registration order = torchvision's state_dict order: norm1, conv1, norm2, conv2.
        self.norm1 = nn.BatchNorm2d(in_channels, eps=bn_eps, momentum=bn_momentum)
        self.act1 = relu()
        self.conv1 = conv2d(in_channels, inner, 1 if self.bottleneck else 3)
        if self.bottleneck:
            self.norm2 = nn.BatchNorm2d(inner, eps=bn_eps, momentum=bn_momentum)
            self.act2 = relu()
            self.conv2 = conv2d(inner, growth_rate, 3)
        self.drop_rate = drop_rate
        self.memory_efficient = memory_efficient

    def _norm1(self, x: torch.Tensor, update_stats: bool) -> torch.Tensor:
        bn = self.norm1
        if update_stats or not bn.training or bn.running_mean is None:
            return bn(x)
        # Recomputation during backward: the same batch statistics normalize x, but the
        # running averages were already updated by the forward pass, so update throw-away
        # copies instead (keeps the saved-tensor layout identical for the checkpoint).
        running_mean, running_var = bn.running_mean.clone(), bn.running_var.clone()
        return F.batch_norm(x, running_mean, running_var, bn.weight, bn.bias, True, 0.0, bn.eps)

    def _first_conv(
        self, features: Sequence[torch.Tensor], update_stats: bool = True
    ) -> torch.Tensor:
        x = torch.cat(list(features), 1)  # (B, C_in, H, W), C_in = k0 + k * (layers so far)
        return self.conv1(self.act1(self._norm1(x, update_stats)))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:  # -> (B, k, H, W)
        needs_grad = torch.is_grad_enabled() and any(f.requires_grad for f in features)
        if self.memory_efficient and needs_grad:
            calls = itertools.count()  # call 0 is the forward pass, later calls recompute

            def first_conv(*feats: torch.Tensor) -> torch.Tensor:
                return self._first_conv(feats, update_stats=next(calls) == 0)

            out = checkpoint(first_conv, *features, use_reentrant=False)
        else:
            out = self._first_conv(features)
        if self.drop_rate > 0:  # after every conv (§4.2); skipped when off, as torchvision does
            out = F.dropout(out, self.drop_rate, self.training)
        if self.bottleneck:
            out = self.conv2(self.act2(self.norm2(out)))
            if self.drop_rate > 0:
                out = F.dropout(out, self.drop_rate, self.training)
        return out

    def extra_repr(self) -> str:
        return f"drop_rate={self.drop_rate}, memory_efficient={self.memory_efficient}"


class DenseBlock(nn.Module):
    """`num_layers` dense layers; layer i sees C_in + i * k channels. Returns all of them."""

    def __init__(
        self, num_layers: int, in_channels: int, growth_rate: int, **layer_kw: Any
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(in_channels + i * growth_rate, growth_rate, **layer_kw)
            self.add_module(f"layer{i + 1}", layer)
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H, W)
        features = [x]
        for layer in self.children():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv (floor(theta * C)) - [dropout] - 2x2 avg pool (§3, "Pooling layers")."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        drop_rate: float = 0.0,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels, eps=bn_eps, momentum=bn_momentum)
        self.act = relu()
        self.conv = conv2d(in_channels, out_channels, 1)
        if drop_rate > 0:
            self.drop = nn.Dropout(drop_rate)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


def make_stem(
    kind: StemKind, in_chans: int, width: int, *, bn_eps: float, bn_momentum: float
) -> nn.Sequential:
    """'imagenet': 7x7/2 conv, BN, ReLU, 3x3/2 max pool (Table 1). 'cifar': one 3x3 conv."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if kind == "imagenet":
        layers["conv"] = ConvNormAct(in_chans, width, 7, 2, bn_eps=bn_eps, bn_momentum=bn_momentum)
        layers["pool"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)  # 112 -> 56 at 224
    else:
        layers["conv"] = conv2d(in_chans, width, 3)  # pre-activation: layer 1's BN-ReLU follows
    return nn.Sequential(layers)


# ---------------------------------------------------------------- network


class DenseNet(nn.Module):
    """stem -> (dense block, transition) x (n-1) -> dense block -> BN-ReLU -> pool -> linear.

    Free knobs: `drop_rate` (dropout after each conv but the first, §4.2), `memory_efficient`
    (checkpointed concatenation, same numbers, less memory), `dropout` (before the
    classifier), BN eps/momentum. No drop-path: see the module docstring.
    """

    def __init__(
        self,
        spec: DenseNetSpec,
        num_classes: int = 1000,
        *,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        memory_efficient: bool = False,
        dropout: float = 0.0,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
        self.spec = spec
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        self.stem = make_stem(spec.stem, in_chans, spec.stem_width, **bn)
        channels = spec.stem_width
        n_blocks = len(spec.block_config)
        for i, num_layers in enumerate(spec.block_config, start=1):
            block = DenseBlock(
                num_layers,
                channels,
                spec.growth_rate,
                bn_size=spec.bn_size,
                drop_rate=drop_rate,
                memory_efficient=memory_efficient,
                **bn,
            )
            self.add_module(f"block{i}", block)
            channels = block.out_channels
            if i < n_blocks:
                out = spec.transition_width(channels)
                self.add_module(f"trans{i}", Transition(channels, out, drop_rate=drop_rate, **bn))
                channels = out
        # Layers are pre-activation (BN-ReLU-conv), so the last block's output is normalized
        # once more before pooling (official code: BN-ReLU-avgpool; torchvision: norm5 + relu).
        self.final_act = NormAct(channels, **bn)
        self.head = ClassifierHead(channels, num_classes, dropout)
        self.num_features = channels
        self.init_weights()

    def init_weights(self) -> None:
        # Official code "Initialization following ResNet": conv weights N(0, 2/n) with
        # n = kW * kH * nOutputPlane (He et al. fan_out), BN gamma 1 / beta 0, Linear bias 0.
        he_init_(self)  # DenseNet's convs have no bias
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        for module in self.children():
            x = module(x)
        return x


# ---------------------------------------------------------------- paper specs


def imagenet_spec(growth_rate: int, block_config: tuple[int, int, int, int]) -> DenseNetSpec:
    """Table 1: DenseNet-BC on 224x224, 4 blocks at 56/28/14/7, 2k stem channels, theta 0.5."""
    return DenseNetSpec(
        stem="imagenet",
        growth_rate=growth_rate,
        block_config=block_config,
        stem_width=2 * growth_rate,
        bn_size=4,
        compression=0.5,
    )


def cifar_bc_spec(depth: int, growth_rate: int) -> DenseNetSpec:
    """§3 "Implementation Details": 3 equal blocks on 32/16/8 maps; DenseNet-BC has
    (L - 4) / 6 bottleneck layers per block and a 2k-channel 3x3 stem conv."""
    if (depth - 4) % 6:
        raise ValueError(f"DenseNet-BC depth must be 6n + 4, got {depth}")
    n = (depth - 4) // 6
    return DenseNetSpec(
        stem="cifar",
        growth_rate=growth_rate,
        block_config=(n, n, n),
        stem_width=2 * growth_rate,
        bn_size=4,
        compression=0.5,
    )


def cifar_spec(depth: int, growth_rate: int) -> DenseNetSpec:
    """§3 "Implementation Details", basic DenseNet (no bottleneck, no compression): 3 equal
    blocks of (L - 4) / 3 3x3 layers on 32/16/8 maps, a 16-channel 3x3 stem conv (liuzhuang13/
    DenseNet densenet.lua: nChannels = 2 * growthRate for BC, 16 otherwise)."""
    if (depth - 4) % 3:
        raise ValueError(f"DenseNet depth must be 3n + 4, got {depth}")
    n = (depth - 4) // 3
    return DenseNetSpec(
        stem="cifar",
        growth_rate=growth_rate,
        block_config=(n, n, n),
        stem_width=16,
        bn_size=0,
        compression=1.0,
    )


# ---------------------------------------------------------------- registry

DENSENET_PAPER = "Huang et al. 2017, Densely Connected Convolutional Networks, arXiv:1608.06993"
TV_META = "exact count; equals torchvision 0.29.1 weight meta (num_params, _ops to 3 decimals)"
OURS = "exact count of this implementation (models.complexity)"

# (params, MACs at 32 px) of the basic CIFAR DenseNets: exact counts (models.complexity)
DENSENET40_K12 = (1_019_722, 264_812_928)
DENSENET100_K12 = (6_979_642, 1_769_516_448)
DENSENET100_K24 = (27_249_082, 6_889_347_744)

FREE_KNOBS = COMMON_KNOBS | {"drop_rate", "memory_efficient"}


# The authors' builder (the paper's Lua/Torch code); CIFAR and ImageNet branches. Its ImageNet
# branch takes any four block sizes (-d1..-d4), so DenseNet-264 is a setting of it, though no
# weights were released for it.
DENSENET_RELEASE = "liuzhuang13/DenseNet models/densenet.lua ({})"
# models/densenet.lua starts every CIFAR net with nChannels = 2 * growthRate; §3 ("a convolution
# with 16 (or twice the growth rate for DenseNet-BC) output channels") and cifar_spec use 16.
BASIC_STEM_DEVIATION = (
    "3x3 stem conv with 16 channels as the paper (§3, Implementation Details); the released "
    "models/densenet.lua gives every CIFAR net 2 * growthRate ({}) there"
)


def _imagenet_info(**row: Any) -> ModelInfo:
    row.setdefault("err_protocol", "ImageNet val, single 224 crop, Table 3 (10-crop in notes)")
    row.setdefault("released", DENSENET_RELEASE.format("ImageNet branch"))
    return ModelInfo(
        paper=DENSENET_PAPER, family="densenet", resolution=224, num_classes=1000, **row
    )


def _cifar_info(
    *, depth: int, k: int, params: int, paper_params: str, macs: float, bc: bool = True, **row: Any
) -> ModelInfo:
    return ModelInfo(
        paper=DENSENET_PAPER,
        family="densenet",
        table=f"Table 2 (DenseNet{'-BC' if bc else ''}, L={depth}, k={k})",
        resolution=32,
        num_classes=10,
        params=params,
        params_source=OURS + "; CIFAR-10 head",
        paper_params=paper_params,
        macs=macs,
        macs_source=OURS + " (the paper prints no CIFAR FLOPs)",
        err_protocol="CIFAR-10+ (translation + flip augmentation, no dropout), Table 2",
        released=DENSENET_RELEASE.format("CIFAR branch"),
        deviation="" if bc else BASIC_STEM_DEVIATION.format(2 * k),
        **row,
    )


# The named models of this family, one row each (registered below: models.registry.register_table).
ROWS = (
    Entry(
        "densenet121",
        partial(DenseNet, imagenet_spec(32, (6, 12, 24, 16))),
        _imagenet_info(
            table="Table 1 (DenseNet-121, k=32)",
            torchvision="densenet121",
            params=7_978_856,
            params_source=TV_META,
            macs=2_834_161_664,
            macs_source=TV_META,
            top1_err=25.02,
            top5_err=7.71,
            notes="Table 3 10-crop: 23.61 / 6.66. The paper prints no params/FLOPs (Figure 3 only).",
        ),
    ),
    Entry(
        "densenet161",
        partial(DenseNet, imagenet_spec(48, (6, 12, 36, 24))),
        _imagenet_info(
            table="Table 1 (DenseNet-161 variant, k=48) / liuzhuang13/DenseNet README",
            torchvision="densenet161",
            params=28_681_000,
            params_source=TV_META,
            macs=7_727_907_072,
            macs_source=TV_META,
            top1_err=22.2,
            err_protocol="ImageNet val, single 224 crop, liuzhuang13/DenseNet README (not in Table 3)",
            notes="Not a Table 1 row: the authors' k=48 model (blocks 6-12-36-24, 96-channel stem) "
            "from the official repository, also in torchvision.",
        ),
    ),
    Entry(
        "densenet169",
        partial(DenseNet, imagenet_spec(32, (6, 12, 32, 32))),
        _imagenet_info(
            table="Table 1 (DenseNet-169, k=32)",
            torchvision="densenet169",
            params=14_149_480,
            params_source=TV_META,
            macs=3_359_843_328,
            macs_source=TV_META,
            top1_err=23.80,
            top5_err=6.85,
            notes="Table 3 10-crop: 22.08 / 5.92.",
        ),
    ),
    Entry(
        "densenet201",
        partial(DenseNet, imagenet_spec(32, (6, 12, 48, 32))),
        _imagenet_info(
            table="Table 1 (DenseNet-201, k=32)",
            torchvision="densenet201",
            params=20_013_928,
            params_source=TV_META,
            macs=4_291_365_888,
            macs_source=TV_META,
            top1_err=22.58,
            top5_err=6.34,
            notes="Table 3 10-crop: 21.46 / 5.54.",
        ),
    ),
    Entry(
        "densenet264",
        partial(DenseNet, imagenet_spec(32, (6, 12, 64, 48))),
        _imagenet_info(
            table="Table 1 (DenseNet-264, k=32)",
            released=DENSENET_RELEASE.format(
                "ImageNet branch, -d1 6 -d2 12 -d3 64 -d4 48; no released weights"
            ),
            params=33_337_704,
            params_source=OURS,
            macs=5_751_653_376,
            macs_source=OURS,
            top1_err=22.15,
            top5_err=6.12,
            notes="Table 3 10-crop: 20.80 / 5.29. Table 1's blocks 6-12-64-48 make 265 layers by the "
            "paper's own count (2 per dense layer + stem + 3 transitions + classifier; 121/169/201 "
            "add up), we build Table 1 as printed. Neither the paper nor torchvision gives its "
            "params/FLOPs; EfficientNet (arXiv:1905.11946) Table 2 quotes 34M / 6.0B, i.e. our "
            "33.34M params and 4% more than our 5.75 G multiply-adds (counting convention unknown).",
        ),
    ),
    Entry(
        "densenet_bc100_k12",
        partial(DenseNet, cifar_bc_spec(100, 12)),
        _cifar_info(
            depth=100,
            k=12,
            params=769_162,
            paper_params="0.8M",
            macs=287_929_692,
            top1_err=4.51,
            notes="Table 2: C10 5.92, C100 24.15, C100+ 22.27 (no augmentation: drop_rate=0.2).",
        ),
    ),
    Entry(
        "densenet_bc250_k24",
        partial(DenseNet, cifar_bc_spec(250, 24)),
        _cifar_info(
            depth=250,
            k=24,
            params=15_324_406,
            paper_params="15.3M",
            macs=5_418_785_724,
            top1_err=3.62,
            notes="Table 2: C10 5.19, C100 19.64, C100+ 17.60 (no augmentation: drop_rate=0.2).",
        ),
    ),
    Entry(
        "densenet_bc190_k40",
        partial(DenseNet, cifar_bc_spec(190, 40)),
        _cifar_info(
            depth=190,
            k=40,
            params=25_624_430,
            paper_params="25.6M",
            macs=9_301_945_740,
            top1_err=3.46,
            notes="Table 2: C100+ 17.18; trained with augmentation only (no C10/C100 entries).",
        ),
    ),
    # Table 2's DenseNets without bottleneck and compression (errors: C10, C10+, C100, C100+).
    Entry(
        "densenet40_k12",
        partial(DenseNet, cifar_spec(40, 12)),
        _cifar_info(
            depth=40,
            k=12,
            bc=False,
            params=DENSENET40_K12[0],
            paper_params="1.0M",
            macs=DENSENET40_K12[1],
            top1_err=5.24,
            notes="Table 2: C10 7.00, C100 27.55, C100+ 24.42 (no augmentation: drop_rate=0.2).",
        ),
    ),
    Entry(
        "densenet100_k12",
        partial(DenseNet, cifar_spec(100, 12)),
        _cifar_info(
            depth=100,
            k=12,
            bc=False,
            params=DENSENET100_K12[0],
            paper_params="7.0M",
            macs=DENSENET100_K12[1],
            top1_err=4.10,
            notes="Table 2: C10 5.77, C100 23.79, C100+ 20.20 (no augmentation: drop_rate=0.2).",
        ),
    ),
    Entry(
        "densenet100_k24",
        partial(DenseNet, cifar_spec(100, 24)),
        _cifar_info(
            depth=100,
            k=24,
            bc=False,
            params=DENSENET100_K24[0],
            paper_params="27.2M",
            macs=DENSENET100_K24[1],
            top1_err=3.74,
            notes="Table 2: C10 5.83, C100 23.42, C100+ 19.25 (no augmentation: drop_rate=0.2).",
        ),
    ),
)
ENTRYPOINTS = register_table(ROWS, free_knobs=FREE_KNOBS, defining_fields=SPEC_FIELDS)
