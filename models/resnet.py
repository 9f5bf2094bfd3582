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
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, get_args

import torch
from torch import nn

from .layers import (
    BN_EPS,
    BN_MOMENTUM,
    ClassifierHead,
    ConvNormAct,
    DropPathMode,
    DropPathRule,
    NormAct,
    drop_path_rates,
    he_init_,
    make_drop_path,
)

# The blocks live in models/resnet_blocks.py (import them from there).
from .resnet_blocks import (
    BLOCKS,
    BlockArgs,
    BlockKind,
    PadPool,
    Shortcut,
    StrideOn,
    check_choice,
)

# ---------------------------------------------------------------- specs

StemKind = Literal["imagenet", "cifar", "deep"]


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
        check_choice("stride", self.stride, (1, 2))
        if self.block is not None:
            check_choice("block", self.block, get_args(BlockKind))


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
        check_choice("stem", self.stem, get_args(StemKind))
        check_choice("block", self.block, get_args(BlockKind))
        check_choice("shortcut", self.shortcut, get_args(Shortcut))
        check_choice("stride_on", self.stride_on, get_args(StrideOn))
        check_choice("proj_kernel", self.proj_kernel, (1, 3))
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


# ---------------------------------------------------------------- stems


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


# ---------------------------------------------------------------- network


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

    `block_sites` describes every block in forward order (name, channels, stride) and
    `blocks()` lists them; the lesion study of Veit et al. 2016 (arXiv 1605.06431) deletes
    them from outside, through these two (platform/papers/lesion_blocks.py).
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
        plan = block_plan(spec, block_dropout=block_dropout, pad_pool=shortcut_downsample, **bn)
        # Stochastic depth: one rate per block over the global block index
        # (Huang et al. 2016), so the deepest block of the net gets the full rate.
        rates = drop_path_rates(len(plan), drop_path_rate, drop_path_rule)
        stages: OrderedDict[str, OrderedDict[str, nn.Module]] = OrderedDict()
        sites = []
        for (name, kind, args), rate in zip(plan, rates, strict=True):
            block = BLOCKS[kind](args, drop_path=make_drop_path(rate, drop_path_mode))
            stage, child = name.split(".")
            stages.setdefault(stage, OrderedDict())[child] = block
            out_channels = args.planes * block.expansion
            sites.append(BlockSite(name, args.in_channels, out_channels, args.stride))
        for stage, blocks in stages.items():
            self.add_module(stage, nn.Sequential(blocks))
        self.block_sites: tuple[BlockSite, ...] = tuple(sites)  # in forward order
        channels = sites[-1].out_channels
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

    def blocks(self) -> list[tuple[str, nn.Module]]:
        """(name, block) in forward order; names are module paths: 's1.b1', 's1.b2', ...
        (the lesion study deletes them: platform/papers/lesion_blocks.py)."""
        return [(site.name, self.get_submodule(site.name)) for site in self.block_sites]


def _pick(stage_value: Any, net_value: Any) -> Any:
    return stage_value if stage_value is not None else net_value


def block_plan(spec: NetSpec, **knobs: Any) -> list[tuple[str, BlockKind, BlockArgs]]:
    """(name, block kind, BlockArgs) of every block of `spec`, in forward order.

    Only a stage's first block changes stride and width (pycls AnyStage); `knobs` are the
    net's block knobs (block_dropout, pad_pool, bn_eps, bn_momentum).
    """
    plan: list[tuple[str, BlockKind, BlockArgs]] = []
    channels = spec.stem_width
    for s, stage in enumerate(spec.stages, start=1):
        kind = spec.block_of(stage)
        for b in range(1, stage.depth + 1):
            args = BlockArgs(
                channels,
                stage.width,
                stage.stride if b == 1 else 1,
                groups=_pick(stage.groups, spec.groups),
                base_width=_pick(stage.base_width, spec.base_width),
                se_ratio=_pick(stage.se_ratio, spec.se_ratio),
                conv1_ratio=spec.conv1_ratio,
                shortcut=spec.shortcut,
                proj_kernel=spec.proj_kernel,
                stride_on=spec.stride_on,
                input_activated=not plan,  # the stem's BN-ReLU feeds both paths
                **knobs,
            )
            plan.append((f"s{s}.b{b}", kind, args))
            channels = stage.width * BLOCKS[kind].expansion
    return plan


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
    (He et al.'s resnet-pre-act.lua, the ResNet-164/1001 of Table 4). ``block="bottleneck"``:
    the same layout with the original (post-activation) units, the "original ResNet-164/1001"
    that Table 4 and Figs. 1 and 6 compare the pre-activation nets with.
    """
    per_block, shortcut = {
        "preact_basic": (6, "A"),
        "preact_bottleneck": (9, "B"),
        "bottleneck": (9, "B"),
    }[block]
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
    cardinality: int,
    group_width: int,
    depth: int = 29,
    *,
    stride_on: StrideOn = "3x3",
    preact: bool = True,
) -> NetSpec:
    """ResNeXt-29 (Xie et al. 2017 §5.3, Table 7; facebookresearch/ResNeXt resnext.lua):
    stem 3x3 64, three stages of (depth-2)/9 bottlenecks at planes 64/128/256
    (outputs 256/512/1024, "widening factor 4"), C x d at stage width 64, option B.

    `preact`: the paper's CIFAR numbers come from pre-activated bottlenecks (the release's
    README: "in the arXiv paper CIFAR results are based on pre-activated bottleneck blocks");
    we read that as He et al. 2016's full pre-activation (BN-ReLU before each conv, a final
    BN-ReLU before the pool), as fb.resnet.torch's preresnet.lua, on which the code is based.
    `preact=False` is resnext.lua's post-activation block (the README's better CIFAR variant)."""
    if (depth - 2) % 9:
        raise ValueError(f"ResNeXt CIFAR depth must be 9n+2, got {depth}")
    n = (depth - 2) // 9
    stages = (StageSpec(n, 64, 1), StageSpec(n, 128, 2), StageSpec(n, 256, 2))
    spec = NetSpec(
        stem="cifar",
        stages=stages,
        block="bottleneck",
        stem_width=64,
        groups=cardinality,
        base_width=group_width,
        shortcut="B",
        stride_on=stride_on,
    )
    return replace(spec, block="preact_bottleneck") if preact else spec


def plain_spec(spec: NetSpec) -> NetSpec:
    """The plain counterpart of a residual spec: every shortcut removed (He et al. 2015 §4.1)."""
    return replace(spec, shortcut="none")
