"""VGG-16 with batch normalization (Simonyan & Zisserman 2015, arXiv 1409.1556, Table 1 column D)
and SENet's SE-VGG-16 (Hu et al. 2017, arXiv 1709.01507, Table 2).

`VGG` = features (3x3 conv + BN + ReLU stacks, 2x2 max pools) -> 7x7 average pool -> three
fully connected layers (4096, 4096, classes; ReLU + dropout 0.5 after the first two), built
from a `VGGSpec` whose `layers` reads like Table 1's column ("M" = max pool). The module order
is torchvision's ``vgg16_bn`` (features.*, classifier.*), so its weights convert by position.

SENet §6.1 / Table 2 trains "VGG-16 with batch normalization after each convolution"; SE-VGG-16
puts an SE unit (r = 16) after the non-linearity of every convolution. Hu et al. released no
code for it (hujie-frank/SENet has the SE-ResNe(X)t and SENet-154 prototxts only), so the
placement is our reading of "SE blocks are integrated after ... each convolution".
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from functools import partial

import torch
from torch import nn

from .layers import BN_EPS, BN_MOMENTUM, SqueezeExcite, he_init_, relu
from .registry import Entry, ModelInfo, register_table

# Table 1, column D (16 weight layers): 13 convs in five blocks, each closed by a max pool.
VGG16_LAYERS: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
)


@dataclass(frozen=True)
class VGGSpec:
    """`layers`: conv widths and "M" (2x2/2 max pool) in order; `se_ratio` > 0 adds SE after
    every conv's ReLU (1/r of the conv's width); `fc_width`: the two hidden FC layers."""

    layers: tuple[int | str, ...] = VGG16_LAYERS
    se_ratio: float = 0.0
    fc_width: int = 4096

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not any(isinstance(v, int) for v in self.layers):
            raise ValueError("a VGGSpec needs at least one conv layer")
        if any(not (v == "M" or (isinstance(v, int) and v > 0)) for v in self.layers):
            raise ValueError(f"layers are positive conv widths or 'M', got {self.layers}")
        if not 0.0 <= self.se_ratio <= 1.0 or self.fc_width < 1:
            raise ValueError(f"need 0 <= se_ratio <= 1 and fc_width >= 1, got {self}")


SPEC_FIELDS = frozenset(f.name for f in fields(VGGSpec))


class VGG(nn.Module):
    """features -> AdaptiveAvgPool2d(7) -> FC-ReLU-dropout x 2 -> FC (torchvision's layout)."""

    def __init__(
        self,
        spec: VGGSpec,
        num_classes: int = 1000,
        *,
        in_chans: int = 3,
        dropout: float = 0.5,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.spec = spec
        layers: list[nn.Module] = []
        channels = in_chans
        for v in spec.layers:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            layers += [
                nn.Conv2d(channels, v, 3, padding=1),  # with bias, as the original VGG
                nn.BatchNorm2d(v, eps=bn_eps, momentum=bn_momentum),
                relu(),
            ]
            if spec.se_ratio > 0:
                layers.append(SqueezeExcite(v, max(1, round(v * spec.se_ratio))))
            channels = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        w = spec.fc_width
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("0", nn.Linear(channels * 7 * 7, w)),
                    ("1", relu()),
                    ("2", nn.Dropout(dropout)),
                    ("3", nn.Linear(w, w)),
                    ("4", relu()),
                    ("5", nn.Dropout(dropout)),
                    ("6", nn.Linear(w, num_classes)),
                ]
            )
        )
        self.num_features = channels
        self.init_weights()

    def init_weights(self) -> None:
        # torchvision's VGG init: He normal (fan_out) convs, BN (1, 0), N(0, 0.01) linear layers.
        he_init_(self)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        x = self.avgpool(self.features(x))  # (B, 512, 7, 7)
        return self.classifier(torch.flatten(x, 1))


VGG_PAPER = (
    "Simonyan & Zisserman 2015, Very Deep Convolutional Networks for Large-Scale Image "
    "Recognition, arXiv:1409.1556"
)
SENET_PAPER = "Hu et al. 2017, Squeeze-and-Excitation Networks, arXiv:1709.01507"
FREE_KNOBS = frozenset({"num_classes", "in_chans", "dropout", "bn_eps", "bn_momentum"})
SE_VGG16_PARAMS = 138_596_784  # exact count (meta device)
SE_VGG16_MACS = 15.4705e9


# The named models of this family, one row each (registered below: models.registry.register_table).
ROWS = (
    Entry(
        "vgg16_bn",
        partial(VGG, VGGSpec()),
        ModelInfo(
            paper=SENET_PAPER + "; " + VGG_PAPER,
            table="SENet Table 2 (VGG-16, re-implementation with BN); VGG Table 1 column D",
            family="vgg",
            resolution=224,
            num_classes=1000,
            torchvision="vgg16_bn",
            params=138_365_992,
            params_source="torchvision 0.29.1 weight meta (num_params); equals our count",
            macs=15.470e9,
            macs_source="torchvision 0.29.1 weight meta (_ops 15.47); equals our count",
            paper_macs="15.47e9",
            top1_err=27.02,
            top5_err=8.81,
            err_protocol="ImageNet val, single crop 224, SENet Table 2 (re-implementation)",
            notes="VGG-16 with BN after every conv, as SENet §6.1 trains it; layout and counts "
            "are torchvision's vgg16_bn.",
        ),
    ),
    Entry(
        "se_vgg16_bn",
        partial(VGG, VGGSpec(se_ratio=1 / 16)),
        ModelInfo(
            paper=SENET_PAPER,
            table="Table 2 (SE-VGG-16)",
            family="vgg",
            resolution=224,
            num_classes=1000,
            params=SE_VGG16_PARAMS,
            params_source="exact count of this implementation (SENet prints none)",
            macs=SE_VGG16_MACS,
            macs_source="models.complexity count at 224",
            paper_macs="15.48e9",
            top1_err=25.22,
            top5_err=7.70,
            err_protocol="ImageNet val, single crop 224, SENet Table 2",
            notes="SE (r = 16) after the BN-ReLU of each of the 13 convs of vgg16_bn; placement "
            "is our reading of SENet §6.1 (no released code), see models/vgg.py.",
        ),
    ),
)
ENTRYPOINTS = register_table(ROWS, free_knobs=FREE_KNOBS, defining_fields=SPEC_FIELDS)
