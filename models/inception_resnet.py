"""One Inception family: `InceptionResNet` = stem -> stages -> head, built from an `InceptionSpec`.

Szegedy, Ioffe, Vanhoucke, Alemi 2016, "Inception-v4, Inception-ResNet and the Impact
of Residual Connections on Learning" (arXiv 1602.07261) gives three networks that
share one skeleton (Figures 9 and 15):

    stem -> A x n_A -> Reduction-A -> B x n_B -> Reduction-B -> C x n_C -> avg pool
         -> dropout (keep 0.8) -> linear

Inception-v4 uses the plain Inception-A/B/C blocks (Figures 4-6, 4/7/3 repeats);
Inception-ResNet-v1/v2 use residual Inception-ResNet-A/B/C blocks (5/10/5 repeats).
Every block of every figure is written as data (`models.inception_specs`, imported
here): a `BlockSpec` is a tuple of parallel `Branch`es whose outputs are concatenated,
and each branch is the column of `Conv` / `Pool` boxes the figure draws, copied box by
box ("V" = valid padding). The figure number is cited at each spec. This module builds
them (layers, blocks, the network) and registers the paper models.

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
from functools import partial
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# The figures as data (models/inception_specs.py: import them from there).
from .inception_specs import (
    SPEC_FIELDS,
    BlockSpec,
    Branch,
    Conv,
    InceptionSpec,
    Pool,
    inception_resnet_v1_spec,
    inception_resnet_v2_fig15_spec,
    inception_resnet_v2_spec,
    inception_v4_spec,
)
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
from .registry import COMMON_KNOBS, RESIDUAL_BRANCH_KNOBS, Entry, ModelInfo, register_table

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
        # Not in the paper: per-sample drop-path with timm's rule by default
        # (layers.drop_path_rates).
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


# ---------------------------------------------------------------- registry

PAPER = (
    "Szegedy et al. 2016, Inception-v4, Inception-ResNet and the Impact of Residual "
    "Connections on Learning, arXiv:1602.07261"
)
OUR_COUNT = "exact count of this implementation (the paper prints no parameter or MAC counts)"
ERR_PROTOCOL = "ILSVRC-2012 val (non-blacklisted), single model, single crop 299, Table 2"

FREE_KNOBS = COMMON_KNOBS
# Inception-v4 has no residual branch: drop-path and zero-init would have nothing to act on.
FREE_KNOBS_RESIDUAL = COMMON_KNOBS | RESIDUAL_BRANCH_KNOBS | {"residual_scales"}


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


# The paper prints no parameter or MAC counts; each `notes` gives the third-party
# references (paper_tables.md §7, timm model cards) and how our exact count relates.


# The named models of this family, one row each (registered below: models.registry.register_table).
ROWS = (
    Entry(
        "inception_resnet_v1",
        partial(InceptionResNet, inception_resnet_v1_spec()),
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
        free_knobs=FREE_KNOBS_RESIDUAL,
    ),
    Entry(
        "inception_resnet_v2",
        partial(InceptionResNet, inception_resnet_v2_spec()),
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
            released="tensorflow/models research/slim/nets/inception_resnet_v2.py",
            deviation="no auxiliary head (AuxLogits on PreAuxLogits)",
        ),
        free_knobs=FREE_KNOBS_RESIDUAL,
    ),
    Entry(
        "inception_resnet_v2_fig15",
        partial(InceptionResNet, inception_resnet_v2_fig15_spec()),
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
        free_knobs=FREE_KNOBS_RESIDUAL,
    ),
    Entry(
        "se_inception_resnet_v2",
        partial(InceptionResNet, inception_resnet_v2_spec(se_ratio=1 / 16)),
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
            macs_source="models.complexity count at 299",
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
        free_knobs=FREE_KNOBS_RESIDUAL,
    ),
    Entry(
        "inception_v4",
        partial(InceptionResNet, inception_v4_spec()),
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
            released="tensorflow/models research/slim/nets/inception_v4.py",
            deviation="concat order: the pool branch comes first in Inception-A/B/C and "
            "Reduction-A/B here, last in TF-slim (Branch_3 / Branch_2) and timm, so released weights "
            "need their branches and the next layer's input channels permuted (issue 24, open); no "
            "auxiliary head",
        ),
        free_knobs=FREE_KNOBS,
    ),
)
ENTRYPOINTS = register_table(ROWS, free_knobs=frozenset(), defining_fields=SPEC_FIELDS)
