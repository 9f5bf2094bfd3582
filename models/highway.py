"""Convolutional highway networks (Srivastava, Greff & Schmidhuber 2015, "Training Very Deep
Networks", arXiv 1507.06228): `HighwayNet` = stem conv -> stages of highway layers separated by
max pooling -> head, built from a frozen `HighwayNetSpec`.

A highway layer (§2, Eq. 3) mixes a transform H and its input x with a learned gate T:

    y = H(x) * T(x) + x * (1 - T(x)),   T(x) = sigmoid(conv_T(x) + b_T),   H(x) = ReLU(conv_H(x))

with 3x3 convolutions of the same width in and out ("convolutional highway layers", §2.1:
weight sharing and local receptive fields for both H and T, zero padding to keep the size).
The carry gate is C = 1 - T (§2). b_T starts negative so that every layer begins close to
the identity ("carry behaviour", §2.2); see `GATE_BIAS`.

Named CIFAR-10 models are registered at the bottom of this file: `highway19` is the authors'
released 19-layer config (flukeskywalker/highway-networks, see `cifar_spec_19`); `highway32`
has no released config and is reconstructed from the paper's depth and parameter count
(`cifar_spec_32`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from functools import partial
from typing import Any

import torch
from torch import nn

from .layers import (
    BN_EPS,
    BN_MOMENTUM,
    ClassifierHead,
    DropPathMode,
    DropPathRule,
    block_dropped,
    drop_path_rates,
    he_init_,
    make_drop_path,
    relu,
)
from .registry import COMMON_KNOBS, DROP_PATH_KNOBS, Entry, ModelInfo, register_table

# Initial transform-gate bias b_T. Srivastava et al. §2.2: "b_T can be initialized with a
# negative value (e.g. -1, -3 etc.) such that the network is initially biased towards carry
# behavior"; the deeper the net, the more negative. The released 19-layer CIFAR-10 config uses
# -2 (cifar10_network.prototxt, transform_bias_filler value: -2.0 on every highway layer).
GATE_BIAS = -2.0
HIGHWAY19_MACS = 330_826_728  # exact count of the released net at 32 px


# ---------------------------------------------------------------- specs


@dataclass(frozen=True)
class HighwayStageSpec:
    """`depth` highway layers of `width` channels.

    A plain conv-ReLU enters the stage when the width changes (highway layers keep their
    width); `pool` puts a 2x2/2 max pool before the stage.
    """

    depth: int
    width: int
    pool: bool = False

    def __post_init__(self) -> None:
        if self.depth < 0 or self.width < 1:
            raise ValueError(f"depth must be >= 0 and width >= 1, got {self}")


@dataclass(frozen=True)
class HighwayNetSpec:
    """A whole highway network. Fields are the architecture; training knobs are not here."""

    stem_width: int
    stages: tuple[HighwayStageSpec, ...]
    kernel: int = 3  # of every conv: H, T, stem and stage-entry convs
    # > 0: a 1x1 conv + ReLU to this width before the global pool (the authors' conv18 -> 100)
    head_width: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))  # accept a list (e.g. from YAML)
        if not self.stages:
            raise ValueError("a HighwayNetSpec needs at least one stage")
        if self.stem_width < 1 or self.kernel < 1 or self.kernel % 2 != 1 or self.head_width < 0:
            raise ValueError(f"stem_width must be >= 1, kernel odd, head_width >= 0; got {self}")

    @property
    def num_highway_layers(self) -> int:
        return sum(s.depth for s in self.stages)

    @property
    def num_conv_layers(self) -> int:
        """Stem + stage-entry convs + highway layers (H and T of one layer count once)
        + the 1x1 head conv."""
        widths = [self.stem_width] + [s.width for s in self.stages]
        entries = sum(a != b for a, b in zip(widths, widths[1:], strict=False))
        return 1 + entries + self.num_highway_layers + (self.head_width > 0)


# Every spec field name: overriding one of these on a named model is an error.
SPEC_FIELDS = frozenset(f.name for f in fields(HighwayNetSpec) + fields(HighwayStageSpec))


# ---------------------------------------------------------------- layers


def conv_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    norm: bool,
    bn_eps: float = BN_EPS,
    bn_momentum: float = BN_MOMENTUM,
) -> nn.Sequential:
    """conv (+bias) -> ReLU, the paper's plain layer; with `norm`: conv -> BN -> ReLU."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["conv"] = nn.Conv2d(
        in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not norm
    )
    if norm:
        layers["bn"] = nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum)
    layers["act"] = relu()
    return nn.Sequential(layers)


class HighwayLayer(nn.Module):
    """y = H(x) * T(x) + x * (1 - T(x)) with 3x3 convs of one width (Eq. 3, §2.1).

    Computed as x + T * (H - x), the same value, which makes the gated part a branch
    that drop-path can remove: a dropped sample passes through unchanged (T = 0).
    `norm` adds BN to H only; T keeps its plain conv + bias so that `gate_bias` keeps
    its meaning (the paper uses no BN).
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        *,
        gate_bias: float = GATE_BIAS,
        norm: bool = False,
        drop_path: nn.Module | None = None,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        self.transform = conv_act(  # H
            channels, channels, kernel_size, norm=norm, bn_eps=bn_eps, bn_momentum=bn_momentum
        )
        self.gate = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)  # T
        self.gate_bias = gate_bias
        self.drop_path = drop_path if drop_path is not None else nn.Identity()
        self.init_gate()

    def init_gate(self) -> None:
        """b_T = gate_bias (negative: start near the identity, §2.2)."""
        nn.init.constant_(self.gate.bias, self.gate_bias)

    def transform_gate(self, x: torch.Tensor) -> torch.Tensor:
        """T(x) in (0, 1), same shape as x."""
        return torch.sigmoid(self.gate(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        if block_dropped(self.drop_path):  # batch-mode stochastic depth: carry x unchanged
            return x
        h = self.transform(x)
        t = self.transform_gate(x)
        return x + self.drop_path(t * (h - x))  # = h * t + x * (1 - t)

    def extra_repr(self) -> str:
        return f"gate_bias={self.gate_bias}"


# ---------------------------------------------------------------- network


class HighwayNet(nn.Module):
    """stem conv -> stages ([max pool] -> [entry conv] -> highway layers) -> pool -> linear.

    Free knobs: `gate_bias` (b_T init), `norm` (BN in H and the plain convs; off in the
    paper), `drop_path_rate` / `drop_path_mode` / `drop_path_rule` (stochastic depth on the
    gated branch T * (H - x), not in the paper; per-sample, timm rule by default),
    `dropout` before the classifier, `input_dropout` on the input image and `pool_dropout`
    after every max pool (the authors' drop1 / drop2, drop3 layers).
    """

    def __init__(
        self,
        spec: HighwayNetSpec,
        num_classes: int = 10,
        *,
        in_chans: int = 3,
        gate_bias: float = GATE_BIAS,
        norm: bool = False,
        drop_path_rate: float = 0.0,
        drop_path_mode: DropPathMode = "sample",
        drop_path_rule: DropPathRule = "timm",
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        pool_dropout: float = 0.0,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        for name, p in (("input_dropout", input_dropout), ("pool_dropout", pool_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}")
        self.spec = spec
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        k = spec.kernel
        if input_dropout > 0:
            self.input_dropout = nn.Dropout(input_dropout)
        self.stem = conv_act(in_chans, spec.stem_width, k, norm=norm, **bn)
        rates = iter(drop_path_rates(spec.num_highway_layers, drop_path_rate, drop_path_rule))
        channels = spec.stem_width
        for s, stage in enumerate(spec.stages, start=1):
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            if stage.pool:
                layers["pool"] = nn.MaxPool2d(kernel_size=2, stride=2)
                if pool_dropout > 0:
                    layers["drop"] = nn.Dropout(pool_dropout)
            if stage.width != channels:
                layers["entry"] = conv_act(channels, stage.width, k, norm=norm, **bn)
                channels = stage.width
            for i in range(1, stage.depth + 1):
                rate = next(rates)
                layers[f"l{i}"] = HighwayLayer(
                    channels,
                    k,
                    gate_bias=gate_bias,
                    norm=norm,
                    drop_path=make_drop_path(rate, drop_path_mode),
                    **bn,
                )
            self.add_module(f"s{s}", nn.Sequential(layers))
        if spec.head_width:
            self.head_conv = conv_act(channels, spec.head_width, 1, norm=norm, **bn)
            channels = spec.head_width
        self.head = ClassifierHead(channels, num_classes, dropout)
        self.num_features = channels
        self.init_weights()

    def init_weights(self) -> None:
        # He et al. 2015 ("Delving deep") normal init for the ReLU convs, zero biases;
        # then each highway layer sets its own negative gate bias.
        he_init_(self, mode="fan_in")
        for m in self.modules():
            if isinstance(m, HighwayLayer):
                m.init_gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        for module in self.children():
            x = module(x)
        return x


# ---------------------------------------------------------------- paper specs
#
# highway19 follows the authors' release layer by layer. For the 32-layer net (Table 1,
# "Highway C: 32 layers, ~1.25M") nothing was released; its reconstruction follows the
# paper's statement that the Table 1 nets are "based on fitnets" (Romero et al. 2015): 3x3
# convs on 32/16/8 maps, 2x2 max pooling, a plain conv wherever the width changes, global
# average pooling and a linear classifier, within 1.2% of the printed parameter count: 30
# conv/highway layers plus the classifier (the paper's depth is one more, counting the
# classifier as FitNets do).


def cifar_spec_19() -> HighwayNetSpec:
    """The authors' released 19-layer CIFAR-10 net (flukeskywalker/highway-networks,
    examples/highways/cifar10-19layers/cifar10_network.prototxt): conv1 32 + conv2-5 highway
    32 | pool1 | conv6 80 + conv7-11 highway 80 | pool2 | conv12 128 + conv13-17 highway 128 |
    conv18 1x1 100 + ReLU | pool3 (8x8 average) | ip2. 18 conv layers + the classifier = 19.
    (Its ip2 has 100 outputs even for CIFAR-10; here the head has num_classes outputs.)"""
    stages = (
        HighwayStageSpec(4, 32),  # conv1 (stem), conv2..conv5
        HighwayStageSpec(5, 80, pool=True),  # pool1, drop2, conv6, conv7..conv11
        HighwayStageSpec(5, 128, pool=True),  # pool2, drop3, conv12, conv13..conv17
    )
    return HighwayNetSpec(stem_width=32, stages=stages, head_width=100)


def cifar_spec_32() -> HighwayNetSpec:
    """Highway C, "thin and deep": three stages of 10 conv layers at 32/48/64 channels
    (1 plain conv + 9 highway layers each) on 32/16/8 maps."""
    stages = (
        HighwayStageSpec(9, 32),
        HighwayStageSpec(9, 48, pool=True),
        HighwayStageSpec(9, 64, pool=True),
    )
    return HighwayNetSpec(stem_width=32, stages=stages)


# ---------------------------------------------------------------- registry

HIGHWAY_PAPER = (
    "Srivastava, Greff & Schmidhuber 2015, Training Very Deep Networks, arXiv:1507.06228"
)

FREE_KNOBS = COMMON_KNOBS | DROP_PATH_KNOBS | {"gate_bias", "norm", "input_dropout", "pool_dropout"}


def _cifar_info(**row: Any) -> ModelInfo:
    return ModelInfo(
        paper=HIGHWAY_PAPER,
        family="highway",
        resolution=32,
        num_classes=10,
        **{
            "params_source": "exact count of this reconstruction (models.complexity)",
            "macs_source": "exact count of this reconstruction (the paper prints no FLOPs)",
            "err_protocol": "CIFAR-10 test, Table 1 (best run; translation + flip augmentation)",
            **row,
        },
    )


def _build_highway19(**knobs: Any) -> HighwayNet:
    for knob in ("dropout", "input_dropout", "pool_dropout"):
        knobs.setdefault(knob, 0.2)  # drop1..drop4, dropout_ratio 0.2
    return HighwayNet(cifar_spec_19(), **knobs)


# The named models of this family, one row each (registered below: models.registry.register_table).
ROWS = (
    Entry(
        "highway19",
        _build_highway19,
        _cifar_info(
            table="Table 3 (Highway, 19 layers, CIFAR-10); Table 1 (Highway B)",
            params=2_256_838,
            paper_params="2.3M",
            macs=HIGHWAY19_MACS,
            released="flukeskywalker/highway-networks "
            "examples/highways/cifar10-19layers/cifar10_network.prototxt (Caffe)",
            params_source="exact count of the released net with 10 classes (models.complexity)",
            macs_source="exact count of the released net (the paper prints no FLOPs)",
            top1_err=7.60,
            err_protocol="CIFAR-10 test, Table 3 (92.40% best, 92.31 +- 0.12 mean); the released "
            "sample.log ends at 92.40%",
            notes="The authors' released config, flukeskywalker/highway-networks "
            "examples/highways/cifar10-19layers/cifar10_network.prototxt (layers conv1..conv18, "
            "ip2; dropout 0.2 on the input (drop1), after pool1/pool2 (drop2, drop3) and before "
            "ip2 (drop4); gate bias -2, transform_bias_filler). No BN, as released. Table 1's "
            "Highway B (92.46 best) is the same 19-layer size class (~2.3M); the release defines "
            "no Highway A (11 layers), so none is registered.",
        ),
    ),
    Entry(
        "highway32",
        partial(HighwayNet, cifar_spec_32()),
        _cifar_info(
            table="Table 1 (Highway C, 32 layers)",
            params=1_248_410,
            paper_params="1.25M",
            macs=314_081_920,
            top1_err=8.80,
            notes="Accuracy 91.20; also quoted by He et al. 2015 Table 6. A reconstruction: "
            "the authors released no 32-layer config (flukeskywalker/highway-networks has "
            "cifar10-19layers, cifar100-19layers and mnist-10layers only); layer list in "
            "cifar_spec_32 [U].",
        ),
    ),
)
ENTRYPOINTS = register_table(ROWS, free_knobs=FREE_KNOBS, defining_fields=SPEC_FIELDS)
