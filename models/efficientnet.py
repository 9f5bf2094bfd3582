"""EfficientNet (Tan & Le 2019, arXiv 1905.11946): B0 and compound scaling on the MBConv family.

The network is `models.mobilenet.MBConvNet` (the block conventions -- SE width on the block's
input channels, the drop-path rule, BN eps/momentum -- are written down there); this file holds
what is EfficientNet's own: the B0 table (Table 1), the compound-scaling formula (§3.3 eq. 3), the
published B1..B7 coefficients, the single-dimension scaling experiments and the registered
B0..B7, one row each of `_EFFNET_ROWS` (Table 2).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Any, NamedTuple

from .mobilenet import (
    FREE_KNOBS,
    OUR_COUNT,
    SPEC_FIELDS,
    TV_META,
    MBConvNet,
    MBNetSpec,
    MBStageSpec,
    round_channels,
    scale_repeats,
)
from .registry import DefaultChange, Entry, ModelInfo, register_table

# ---------------------------------------------------------------- constants

# TF-style BatchNorm (EfficientNet reference code: batch_norm_momentum 0.99 = PyTorch momentum
# 0.01, batch_norm_epsilon 1e-3).
TF_BN_EPS = 1e-3
TF_BN_MOMENTUM = 0.01

# EfficientNet §3.3 eq. 3, found by grid search on B0 under alpha * beta^2 * gamma^2 ~ 2:
# depth d = alpha^phi, width w = beta^phi, resolution r = gamma^phi.
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15
BASE_RESOLUTION = 224  # B0 (Table 1)


# ---------------------------------------------------------------- compound scaling


class Coefficients(NamedTuple):
    depth: float  # d, multiplies the repeats of every stage
    width: float  # w, multiplies every width (then round_channels)
    resolution: int  # input side, 224 * r rounded to an integer


def compound_coefficients(
    phi: float, alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA
) -> Coefficients:
    """EfficientNet §3.3 eq. 3: d = alpha^phi, w = beta^phi, r = gamma^phi (resolution 224 r).

    FLOPs grow about (alpha * beta^2 * gamma^2)^phi = 1.92^phi. The published B1..B7
    coefficients (`EFFICIENTNET_PARAMS`) are not these values (B_n is not phi = n); the
    tests record how close they are.
    """
    if phi < 0:
        raise ValueError(f"phi must be >= 0, got {phi}")
    return Coefficients(alpha**phi, beta**phi, int(round(BASE_RESOLUTION * gamma**phi)))


# ---------------------------------------------------------------- B0 and B1..B7

# EfficientNet-B0, Table 1 (stages 2..8; stride from the TF reference blocks_args, since the
# table gives resolutions): MBConv expansion, kernel, stride, in, out, repeats. SE 0.25 on all.
EFFICIENTNET_B0: tuple[MBStageSpec, ...] = (
    MBStageSpec(1, 3, 1, 32, 16, 1, se_ratio=0.25),  # MBConv1, k3x3, 112x112
    MBStageSpec(6, 3, 2, 16, 24, 2, se_ratio=0.25),  # MBConv6, k3x3, 112 -> 56
    MBStageSpec(6, 5, 2, 24, 40, 2, se_ratio=0.25),  # MBConv6, k5x5, 56 -> 28
    MBStageSpec(6, 3, 2, 40, 80, 3, se_ratio=0.25),  # MBConv6, k3x3, 28 -> 14
    MBStageSpec(6, 5, 1, 80, 112, 3, se_ratio=0.25),  # MBConv6, k5x5, 14
    MBStageSpec(6, 5, 2, 112, 192, 4, se_ratio=0.25),  # MBConv6, k5x5, 14 -> 7
    MBStageSpec(6, 3, 1, 192, 320, 1, se_ratio=0.25),  # MBConv6, k3x3, 7
)
EFFICIENTNET_B0_STEM = 32  # stage 1: Conv3x3, 224 -> 112
EFFICIENTNET_B0_HEAD = 1280  # stage 9: Conv1x1 & Pooling & FC


def efficientnet_spec(width_mult: float = 1.0, depth_mult: float = 1.0) -> MBNetSpec:
    """B0 (Table 1) scaled in width (round_channels on every width, stem and head included)
    and depth (ceil on every stage's repeats), as the TF reference `round_filters` /
    `round_repeats` do."""

    def c(channels: int) -> int:
        return round_channels(channels * width_mult)

    stages = tuple(
        replace(
            row,
            in_channels=c(row.in_channels),
            out_channels=c(row.out_channels),
            repeats=scale_repeats(row.repeats, depth_mult),
        )
        for row in EFFICIENTNET_B0
    )
    return MBNetSpec(
        stem_width=c(EFFICIENTNET_B0_STEM),
        stages=stages,
        head_width=c(EFFICIENTNET_B0_HEAD),
        act="silu",
    )


@dataclass(frozen=True)
class EfficientNetParams:
    """Published (width, depth, resolution, dropout) of one EfficientNet (TF reference
    `efficientnet_params`; torchvision's builders use the same width, depth and dropout)."""

    width: float
    depth: float
    resolution: int
    dropout: float


EFFICIENTNET_PARAMS: dict[str, EfficientNetParams] = {
    "b0": EfficientNetParams(1.0, 1.0, 224, 0.2),
    "b1": EfficientNetParams(1.0, 1.1, 240, 0.2),
    "b2": EfficientNetParams(1.1, 1.2, 260, 0.3),
    "b3": EfficientNetParams(1.2, 1.4, 300, 0.3),
    "b4": EfficientNetParams(1.4, 1.8, 380, 0.4),
    "b5": EfficientNetParams(1.6, 2.2, 456, 0.4),
    "b6": EfficientNetParams(1.8, 2.6, 528, 0.5),
    "b7": EfficientNetParams(2.0, 3.1, 600, 0.5),
}
# Stochastic depth: survival probability 0.8 at the last block (§5.2) -> drop_path_rate 0.2.
EFFICIENTNET_DROP_PATH = 0.2


# ---------------------------------------------------------------- scaling experiments


class Scaled(NamedTuple):
    """A scaled network and the input side it is meant for: `model, resolution = ...`."""

    model: MBConvNet
    resolution: int


def scaled_efficientnet(
    width: float = 1.0, depth: float = 1.0, resolution: int = BASE_RESOLUTION, **knobs: Any
) -> Scaled:
    """B0 scaled along any of the three dimensions (EfficientNet §3.2, Fig. 3 single-dimension
    scaling; Fig. 4 / Table 3's pairs). Not registered: these are experiment points, not paper
    models. TF-style BN unless `bn_eps`/`bn_momentum` are given; `knobs` go to MBConvNet."""
    if resolution < 32:
        raise ValueError(f"resolution must be >= 32, got {resolution}")
    knobs.setdefault("bn_eps", TF_BN_EPS)
    knobs.setdefault("bn_momentum", TF_BN_MOMENTUM)
    knobs.setdefault("drop_path_rate", EFFICIENTNET_DROP_PATH)
    knobs.setdefault("dropout", 0.2)
    return Scaled(MBConvNet(efficientnet_spec(width, depth), **knobs), resolution)


def efficientnet(phi: float, **knobs: Any) -> Scaled:
    """EfficientNet by the compound formula (§3.3): B0 with d = 1.2^phi, w = 1.1^phi at
    224 * 1.15^phi. phi = 0 is B0; other phi are NOT the published B1..B7 (see
    `EFFICIENTNET_PARAMS` and the tests)."""
    d, w, r = compound_coefficients(phi)
    return scaled_efficientnet(width=w, depth=d, resolution=r, **knobs)


# ---------------------------------------------------------------- registry

EFFNET_PAPER = (
    "Tan & Le 2019, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks, "
    "arXiv:1905.11946"
)

# EfficientNet Table 2 (final arXiv version): (top-1 %, top-5 %, params, FLOPs) as printed,
# torchvision's exact params, our exact MACs at the paper's resolution.
_EFFNET_ROWS: dict[str, tuple[float, float, str, str, int, float]] = {
    "b0": (77.1, 93.3, "5.3M", "0.39e9", 5_288_548, 385_814_752.0),
    "b1": (79.1, 94.4, "7.8M", "0.70e9", 7_794_184, 686_802_832.0),
    "b2": (80.1, 94.9, "9.2M", "1.0e9", 9_109_994, 993_561_872.0),
    "b3": (81.6, 95.7, "12M", "1.8e9", 12_233_232, 1_827_141_392.0),
    "b4": (82.9, 96.4, "19M", "4.2e9", 19_341_616, 4_393_771_024.0),
    "b5": (83.6, 96.7, "30M", "9.9e9", 30_389_784, 10_266_384_752.0),
    "b6": (84.0, 96.8, "43M", "19e9", 43_040_704, 19_067_593_536.0),
    "b7": (84.3, 97.0, "66M", "37e9", 66_347_960, 37_745_884_192.0),
}


# Every B defaults to the TF builder's BN (efficientnet_builder.py: batch_norm_momentum 0.99,
# batch_norm_epsilon 1e-3), the setting the paper's numbers were trained with (issue 24).
# torchvision's B0-B4 weights were trained in PyTorch (timm) with PyTorch's BN: they convert
# with equal logits under torchvision_knobs (eps 1e-5, momentum 0.1); B5-B7 are TF ports.
_PYTORCH_BN_WEIGHTS = frozenset({"b0", "b1", "b2", "b3", "b4"})
TF_BUILDER = (
    "tensorflow/tpu models/official/efficientnet/efficientnet_builder.py (efficientnet_params, "
    "_DEFAULT_BLOCKS_ARGS) and efficientnet_model.py"
)
PYTORCH_BN = (("bn_eps", 1e-5), ("bn_momentum", 0.1))
_BN_CHANGES = tuple(
    DefaultChange(k, old, new, "TF builder BN: momentum 0.99 (PyTorch 0.01), epsilon 1e-3")
    for (k, old), new in zip(PYTORCH_BN, (TF_BN_EPS, TF_BN_MOMENTUM), strict=True)
)
_EXTRA_NOTES = {
    "b2": " torchvision's _ops (1.088) is measured at its eval crop 288, not the paper's 260 "
    "(ours at 288: 1.0875e9; at 260: 0.994e9, the paper's 1.0e9).",
}


def _effnet_info(variant: str) -> ModelInfo:
    top1, top5, paper_params, paper_macs, params, macs = _EFFNET_ROWS[variant]
    p = EFFICIENTNET_PARAMS[variant]
    pytorch_weights = variant in _PYTORCH_BN_WEIGHTS
    bn = "TF 1e-3/0.01 as the TF builder" + (
        " (torchvision's weights were trained with PyTorch's 1e-5/0.1: torchvision_knobs)"
        if pytorch_weights
        else " (torchvision's weights are TF ports)"
    )
    return ModelInfo(
        paper=EFFNET_PAPER,
        table=f"Table 1 (B0) at w={p.width}, d={p.depth}; Table 2 (EfficientNet-{variant.upper()})",
        family="mbconv",
        resolution=p.resolution,
        num_classes=1000,
        torchvision=f"efficientnet_{variant}",
        params=params,
        params_source=TV_META + "; equals our count",
        paper_params=paper_params,
        macs=macs,
        macs_source=OUR_COUNT + " at the paper's resolution",
        paper_macs=paper_macs,
        top1_err=round(100 - top1, 2),
        top5_err=round(100 - top5, 2),
        err_protocol=f"ImageNet val, single crop {p.resolution}, Table 2",
        notes=(
            f"BN eps/momentum default to {bn}; dropout {p.dropout}; drop_path_rate 0.2 (survival "
            "0.8, §5.2) at rate i/N per block as the TF code (drop_path_rule tf)."
            + _EXTRA_NOTES.get(variant, "")
        ),
        released=TF_BUILDER,
        deviation="",
        torchvision_knobs=PYTORCH_BN if pytorch_weights else (),
        default_changes=_BN_CHANGES if pytorch_weights else (),
    )


def _effnet(variant: str, **knobs: Any) -> MBConvNet:
    p = EFFICIENTNET_PARAMS[variant]
    knobs.setdefault("bn_eps", TF_BN_EPS)
    knobs.setdefault("bn_momentum", TF_BN_MOMENTUM)
    knobs.setdefault("dropout", p.dropout)
    knobs.setdefault("drop_path_rate", EFFICIENTNET_DROP_PATH)
    return MBConvNet(efficientnet_spec(p.width, p.depth), **knobs)


# One paper model per row of Table 2: efficientnet_b0 .. efficientnet_b7 (registered below:
# models.registry.register_table).
ROWS = tuple(Entry(f"efficientnet_{v}", partial(_effnet, v), _effnet_info(v)) for v in _EFFNET_ROWS)
ENTRYPOINTS = register_table(ROWS, free_knobs=FREE_KNOBS, defining_fields=SPEC_FIELDS)
