"""The residual family's paper models as a table: one `Row` per registered name (ResNet,
plain and pre-act rows here; ResNeXt, WRN and SENet rows in models/resnext_zoo.py).

A row is the model's name, the spec it builds (a `functools.partial` of a spec builder of
models/resnet.py) and what its paper reports (`ModelInfo`). Everything else is applied once,
here, for every row (STYLE rule 4):

- the free knobs follow from the spec: `stride_on` on every bottleneck net (a basic block has
  one stride position; the paper's Table 1 FLOPs are the 1x1 placement, torchvision's the 3x3,
  both "the" ResNet-50), `se_reduction` on SE nets (SENet Table 10 varies r at an otherwise
  fixed architecture), `shortcut_downsample` on option-A nets (Huang et al.'s 2x2 average
  pool), and no drop-path / zero-init knobs on plain nets (no shortcut to fall back on);
- the spec-level knobs (`SPEC_KNOBS`) go to the row's spec builder, whose arguments are the
  row's defaults (SE-ResNet: stride on the 1x1, r = 16); the rest go to `ResidualNet`;
- every spec field is a defining field (an override raises, registry.register).

    Row("resnet20", partial(cifar_spec, 3), paper_info(RESNET_T6, params=269_722, ...))

Rows are registered as every family registers its models (`models.registry.register_table`);
the guarded entrypoints are `ENTRYPOINTS["resnet50"]`, `models.entrypoint("resnet50")`, and
`models.create_model("resnet50", ...)` builds one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .registry import (
    COMMON_KNOBS,
    RESIDUAL_BRANCH_KNOBS,
    DefaultChange,
    Entry,
    MacsVariant,
    ModelInfo,
    register_table,
)
from .resnet import SPEC_FIELDS, NetSpec, ResidualNet, cifar_spec, imagenet_spec, preact_cifar_spec
from .resnet_blocks import BlockKind, StrideOn

# ---------------------------------------------------------------- sources

RESNET_PAPER = "He et al. 2015, Deep Residual Learning for Image Recognition, arXiv:1512.03385"
PREACT_PAPER = "He et al. 2016, Identity Mappings in Deep Residual Networks, arXiv:1603.05027"

TV_META = "torchvision 0.29.1 weight meta (num_params, _ops); matches analytic conv+fc count"
ANALYTIC_V1 = "analytic conv+fc MACs with stride on the first 1x1 (MSRA Caffe v1)"
EXACT = "exact count of this implementation (meta device)"
EXACT_MACS = "models.complexity count of this implementation (conv + fc multiply-adds)"

# Exact counts of the Table 3 shortcut variants (meta device, models.complexity at 224).
RESNET34_A_PARAMS, RESNET34_A_MACS = 21_623_848, 3.644e9
RESNET34_C_PARAMS, RESNET34_C_MACS = 22_716_840, 3.831e9

# ---------------------------------------------------------------- knobs

FREE_KNOBS = COMMON_KNOBS | RESIDUAL_BRANCH_KNOBS
# Knobs that act on a residual branch added to a shortcut (ResidualNet refuses them on plain nets).
RESIDUAL_ONLY_KNOBS = RESIDUAL_BRANCH_KNOBS
# Spec-level knobs: passed to the row's spec builder (its defaults are the row's arguments).
SPEC_KNOBS = ("stride_on", "se_reduction", "preact")  # preact: ResNeXt-29 only


def reduction_to_se_ratio(se_reduction: int) -> float:
    """SENet's reduction ratio r (Fig. 2: FC C -> C/r -> C) as our spec's se_ratio = 1/r."""
    if not isinstance(se_reduction, int) or se_reduction < 1:
        raise ValueError(f"se_reduction must be an integer >= 1, got {se_reduction!r}")
    return 1.0 / se_reduction


def free_knobs_of(spec: NetSpec, extra: frozenset[str] = frozenset()) -> frozenset[str]:
    """The knobs a named model of this spec accepts (module docstring)."""
    free = set(FREE_KNOBS | extra)
    if any("bottleneck" in spec.block_of(s) for s in spec.stages):
        free.add("stride_on")  # bottlenecks: the stride goes on the first 1x1 or on the 3x3
    if spec.se_ratio > 0:
        free.add("se_reduction")
    if spec.shortcut == "A":
        free.add("shortcut_downsample")
    if spec.shortcut == "none":
        free -= RESIDUAL_ONLY_KNOBS
    return frozenset(free)


# ---------------------------------------------------------------- spec builders

# ImageNet depths (He et al. 2015 Table 1; ResNet-200: He et al. 2016, fb.resnet.torch).
DEPTHS: dict[int, tuple[BlockKind, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}


def imagenet(
    depth: int, *, preact: bool = False, se_reduction: int | None = None, **spec: Any
) -> NetSpec:
    """The He et al. 2015 Table 1 net of `depth` layers (`imagenet_spec` for the rest)."""
    if se_reduction is not None:
        spec["se_ratio"] = reduction_to_se_ratio(se_reduction)
    block, depths = DEPTHS[depth]
    kind: BlockKind = f"preact_{block}" if preact else block  # type: ignore[assignment]
    return imagenet_spec(kind, depths, **spec)


# ---------------------------------------------------------------- rows


@dataclass(frozen=True)
class Row:
    """One paper model: its registered name, the spec it builds, what its paper reports."""

    name: str
    spec: Callable[..., NetSpec]  # called with the caller's SPEC_KNOBS, if any
    info: ModelInfo
    extra_knobs: frozenset[str] = frozenset()  # free knobs beyond free_knobs_of(spec)
    defaults: Mapping[str, Any] = field(default_factory=dict)  # ResidualNet knob defaults


def paper_info(section: Mapping[str, Any], **row: Any) -> ModelInfo:
    """A row's reference numbers over its section's shared fields; ImageNet defaults
    (224 px, 1000 classes); sources: torchvision's meta where it has the model, else ours."""
    fields_ = {"resolution": 224, "num_classes": 1000, **section, **row}
    checked = TV_META if fields_.get("torchvision") else None
    fields_.setdefault("params_source", checked or EXACT)
    fields_.setdefault("macs_source", checked or EXACT_MACS)
    return ModelInfo(family="residual", **fields_)


def macs_variant(
    stride_on: StrideOn, macs: float, source: str = EXACT_MACS
) -> tuple[MacsVariant, ...]:
    return (MacsVariant((("stride_on", stride_on),), macs, source),)


CIFAR10 = {"resolution": 32, "num_classes": 10}

# ---------------------------------------------------------------- ResNet (He et al. 2015)

RESNET = {"paper": RESNET_PAPER}
# Table 1 rows: exact counts from torchvision's metadata (stride on the 3x3).
RESNET_T1 = {**RESNET, "macs_source": TV_META + " (stride on the 3x3, 'v1.5')"}
MSRA_RELEASE = (
    "KaimingHe/deep-residual-networks prototxt/ResNet-{depth}-deploy.prototxt (Caffe, MSRA): "
    "stride 2 on the first 1x1 of a stage's first bottleneck"
)
# Table 1 bottleneck rows: the default is the MSRA release the paper's FLOPs were measured on
# (issue 24); torchvision's / fb.resnet.torch's "v1.5" (stride on the 3x3) is stride_on=3x3.
RESNET_T1_V1 = {
    **RESNET,
    "macs_source": ANALYTIC_V1 + "; equals our count",
    "torchvision_knobs": (("stride_on", "3x3"),),
    "default_changes": (
        DefaultChange(
            "stride_on",
            "3x3",
            "1x1",
            "He et al. Table 1 FLOPs (3.8/7.6/11.3e9) are the MSRA release's, stride on the 1x1",
        ),
    ),
}


def v15_variant(macs: float) -> tuple[MacsVariant, ...]:
    """torchvision's / fb.resnet.torch's "v1.5" placement (stride on the 3x3)."""
    return macs_variant("3x3", macs, TV_META + " (torchvision resnet, stride on the 3x3)")


# Errors: Table 3 (10-crop, val) for 34-B/50/101/152; ResNet-18 only appears in Table 2.
_T3 = "ImageNet val, 10-crop, Table 3"
RESNET_T6 = {
    **RESNET,
    **CIFAR10,
    "table": "Table 6 (CIFAR-10, §4.2)",
    "params_source": "exact count, option-A shortcuts; rounds to the paper's printed value",
    "err_protocol": "CIFAR-10 test, Table 6 (pad-4 crop + flip augmentation)",
}

RESNET_ROWS = (
    Row(
        "resnet18",
        partial(imagenet, 18),
        paper_info(
            RESNET_T1,
            table="Table 1 (18-layer)",
            torchvision="resnet18",
            params=11_689_512,
            macs=1.814e9,
            paper_macs="1.8e9",
            top1_err=27.88,
            err_protocol="ImageNet val, 10-crop, Table 2",
            notes="Table 2 error is for option-A shortcuts; this model uses option B.",
        ),
    ),
    Row(
        "resnet34",
        partial(imagenet, 34),
        paper_info(
            RESNET_T1,
            table="Table 1 (34-layer)",
            torchvision="resnet34",
            params=21_797_672,
            macs=3.664e9,
            paper_macs="3.6e9",
            top1_err=24.52,
            top5_err=7.46,
            err_protocol=_T3 + " (ResNet-34 B)",
        ),
    ),
    # Table 3 / §4.1 "Identity vs. Projection Shortcuts": (A) zero-padding shortcuts for
    # increasing dimensions, all parameter-free; (C) all shortcuts are projections.
    Row(
        "resnet34_a",
        partial(imagenet, 34, shortcut="A"),
        paper_info(
            RESNET,
            table="Table 3 (ResNet-34 A)",
            params=RESNET34_A_PARAMS,
            macs=RESNET34_A_MACS,
            paper_macs="3.6e9",
            top1_err=25.03,
            top5_err=7.76,
            err_protocol=_T3,
            notes="Option A: identity shortcuts, zero-padded channels and strided subsampling where "
            "the shape changes (§3.3), so no shortcut parameters. The 2x2-average-pool variant of "
            "Huang et al. is model.shortcut_downsample=avgpool.",
        ),
    ),
    Row(
        "resnet34_c",
        partial(imagenet, 34, shortcut="C"),
        paper_info(
            RESNET,
            table="Table 3 (ResNet-34 C)",
            params=RESNET34_C_PARAMS,
            macs=RESNET34_C_MACS,  # Table 1's 3.6e9 is for B; C's projections add 0.19e9
            top1_err=24.19,
            top5_err=7.40,
            err_protocol=_T3,
            notes="Option C: a 1x1 projection (+BN) on every shortcut, identity ones included; "
            "§4.1 calls C 'marginally better than B' and attributes it to the extra parameters.",
        ),
    ),
    Row(
        "resnet50",
        partial(imagenet, 50, stride_on="1x1"),
        paper_info(
            RESNET_T1_V1,
            table="Table 1 (50-layer)",
            torchvision="resnet50",
            released=MSRA_RELEASE.format(depth=50),
            params=25_557_032,
            macs=3.858e9,  # the paper's "3.8e9"
            macs_variants=v15_variant(4.089e9),
            paper_macs="3.8e9",
            top1_err=22.85,
            top5_err=6.71,
            err_protocol=_T3,
        ),
    ),
    Row(
        "resnet101",
        partial(imagenet, 101, stride_on="1x1"),
        paper_info(
            RESNET_T1_V1,
            table="Table 1 (101-layer)",
            torchvision="resnet101",
            released=MSRA_RELEASE.format(depth=101),
            params=44_549_160,
            macs=7.570e9,
            macs_variants=v15_variant(7.801e9),
            paper_macs="7.6e9",
            top1_err=21.75,
            top5_err=6.05,
            err_protocol=_T3,
        ),
    ),
    Row(
        "resnet152",
        partial(imagenet, 152, stride_on="1x1"),
        paper_info(
            RESNET_T1_V1,
            table="Table 1 (152-layer)",
            torchvision="resnet152",
            released=MSRA_RELEASE.format(depth=152),
            params=60_192_808,
            macs=11.282e9,
            macs_variants=v15_variant(11.514e9),
            paper_macs="11.3e9",
            top1_err=21.43,
            top5_err=5.71,
            err_protocol=_T3,
        ),
    ),
    Row(
        "resnet200",
        partial(imagenet, 200),
        paper_info(
            {"paper": PREACT_PAPER},
            table="Table 5 (ResNet-200, original post-activation units); depths 3-24-36-3",
            params=64_673_832,
            macs=15.007e9,
            macs_variants=macs_variant("1x1", 14.776e9),
            top1_err=21.8,
            top5_err=6.0,
            err_protocol="ImageNet val, single 320x320 crop (trained at 224), Table 5",
            notes="Depths from fb.resnet.torch (resnet.lua / preresnet.lua cfg[200]); stride on the "
            "3x3 as there. The paper prints no params or FLOPs for ResNet-200.",
        ),
    ),
    # CIFAR-10 (§4.2, Table 6): 6n+2 layers, option-A shortcuts.
    Row(
        "resnet20",
        partial(cifar_spec, 3),
        paper_info(RESNET_T6, params=269_722, paper_params="0.27M", top1_err=8.75),
    ),
    Row(
        "resnet32",
        partial(cifar_spec, 5),
        paper_info(RESNET_T6, params=464_154, paper_params="0.46M", top1_err=7.51),
    ),
    Row(
        "resnet44",
        partial(cifar_spec, 7),
        paper_info(RESNET_T6, params=658_586, paper_params="0.66M", top1_err=7.17),
    ),
    Row(
        "resnet56",
        partial(cifar_spec, 9),
        paper_info(RESNET_T6, params=853_018, paper_params="0.85M", top1_err=6.97),
    ),
    Row(
        "resnet110",
        partial(cifar_spec, 18),
        paper_info(
            RESNET_T6,
            params=1_727_962,
            paper_params="1.7M",
            top1_err=6.43,
            notes="6.43 is the best of 5 runs; mean 6.61 +- 0.16",
        ),
    ),
    Row(
        "resnet1202",
        partial(cifar_spec, 200),
        paper_info(
            RESNET_T6,
            params=19_421_274,
            paper_params="19.4M",
            top1_err=7.93,
            notes="overfits: worse than resnet110 (§4.2)",
        ),
    ),
)

# ---------------------------------------------------------------- plain nets (He et al. 2015)
#
# The paper's baselines: the same stacks without shortcuts (§4.1 "Plain Networks", §4.2),
# trained to show the degradation problem (deeper plain nets have higher *training*
# error) and, in Veit et al. 2016 §4, as the nets where deleting one layer is fatal.
# No drop-path and no zero-init: both need a shortcut (free_knobs_of, ResidualNet).

PLAIN_CIFAR = {
    **RESNET,
    **CIFAR10,
    "params_source": "exact count; equals the option-A resnet of the same depth",
    "notes": "CIFAR-10 error of the plain nets is only plotted (Fig. 6 left, training and test "
    "curves); the paper prints no number for them. Same depth, widths and parameters as the "
    "option-A ResNet of the same depth (§4.2: 'exactly the same depth, width, and number of "
    "parameters').",
}
PLAIN_IMAGENET = {
    **RESNET,
    "err_protocol": "ImageNet val, 10-crop, Table 2",
    "notes": "The resnet of the same depth without its shortcuts (so without option-B "
    "projections). Table 1's FLOPs describe both; §3.3: 3.6e9 for the 34-layer plain net.",
}


def _plain_cifar(depth: int, n: int, params: int, macs: float, **row: Any) -> Row:
    table = f"Fig. 6 left (plain-{depth}, CIFAR-10, §4.2)"
    info = paper_info(PLAIN_CIFAR, table=table, params=params, macs=macs, **row)
    return Row(f"plain{depth}", partial(cifar_spec, n, shortcut="none"), info)


PLAIN_ROWS = (
    _plain_cifar(20, 3, 269_722, 40.551e6),
    _plain_cifar(32, 5, 464_154, 68.863e6),
    _plain_cifar(44, 7, 658_586, 97.174e6),
    _plain_cifar(56, 9, 853_018, 125.486e6),
    _plain_cifar(
        110,
        18,
        1_727_962,
        252.888e6,
        notes="Not in the paper: Fig. 6 left stops at plain-56. The plain twin of resnet110, for "
        "the lesion study of Veit et al. 2016 (arXiv 1605.06431 §4), whose CIFAR-10 net is the "
        "110-layer ResNet.",
    ),
    Row(
        "plain18",
        partial(imagenet, 18, shortcut="none"),
        paper_info(
            PLAIN_IMAGENET,
            table="Table 1 / Table 2 (plain-18)",
            params=11_515_688,
            macs=1.795e9,
            paper_macs="1.8e9",
            top1_err=27.94,
        ),
    ),
    Row(
        "plain34",
        partial(imagenet, 34, shortcut="none"),
        paper_info(
            PLAIN_IMAGENET,
            table="Table 1 / Table 2 (plain-34)",
            params=21_623_848,
            macs=3.644e9,
            paper_macs="3.6e9",
            top1_err=28.54,
        ),
    ),
)

# ---------------------------------------------------------------- pre-act ResNet (He et al. 2016)

PREACT = {"paper": PREACT_PAPER}
PREACT_CIFAR = {**PREACT, **CIFAR10}
# He et al.'s release covers only the CIFAR bottleneck nets (9n+2: ResNet-164/1001; the file
# errors on any other dataset); our conv-BN-ReLU stem + activation-free first block is its
# bare conv1 + the first unit's shared BN-ReLU (models/resnet.py module docstring).
PREACT_BOTTLENECK_CIFAR = {
    **PREACT_CIFAR,
    "released": "KaimingHe/resnet-1k-layers resnet-pre-act.lua (CIFAR-10 branch)",
}
_PREACT_PROJ = (
    "Projections are bare 1x1 convs on the pre-activated input (He et al.'s resnet-pre-act.lua); "
    "fb.resnet.torch's preresnet.lua uses conv+BN on the raw input instead (+{} params)."
)
_PREACT_PROJ_BASIC = _PREACT_PROJ.format(f"{2 * (128 + 256 + 512):,}")  # BN of the projections
_PREACT_PROJ_BOTTLENECK = _PREACT_PROJ.format(f"{2 * (256 + 512 + 1024 + 2048):,}")
_PREACT_T5 = "ImageNet val, single 320x320 crop (trained at 224), Table 5"


def _preact_table(depth: int) -> str:
    return f"Table 5 / appendix (ImageNet {depth} layers, fb.resnet.torch depths)"


PREACT_ROWS = (
    Row(
        "preact_resnet18",
        partial(imagenet, 18, preact=True),
        paper_info(
            PREACT,
            table=_preact_table(18),
            params=11_687_720,
            macs=1.814e9,
            notes=_PREACT_PROJ_BASIC,
        ),
    ),
    Row(
        "preact_resnet34",
        partial(imagenet, 34, preact=True),
        paper_info(
            PREACT,
            table=_preact_table(34),
            params=21_795_880,
            macs=3.664e9,
            notes=_PREACT_PROJ_BASIC,
        ),
    ),
    Row(
        "preact_resnet50",
        partial(imagenet, 50, preact=True),
        paper_info(
            PREACT,
            table=_preact_table(50),
            params=25_549_352,
            macs=4.089e9,
            macs_variants=macs_variant("1x1", 3.858e9),
            notes=_PREACT_PROJ_BOTTLENECK,
        ),
    ),
    Row(
        "preact_resnet101",
        partial(imagenet, 101, preact=True),
        paper_info(
            PREACT,
            table=_preact_table(101),
            params=44_541_480,
            macs=7.801e9,
            macs_variants=macs_variant("1x1", 7.570e9),
            notes=_PREACT_PROJ_BOTTLENECK,
        ),
    ),
    Row(
        "preact_resnet152",
        partial(imagenet, 152, preact=True),
        paper_info(
            PREACT,
            table=_preact_table(152),
            params=60_185_128,
            macs=11.514e9,
            macs_variants=macs_variant("1x1", 11.282e9),
            top1_err=21.1,
            top5_err=5.5,
            err_protocol=_PREACT_T5,
            notes=_PREACT_PROJ_BOTTLENECK,
        ),
    ),
    Row(
        "preact_resnet200",
        partial(imagenet, 200, preact=True),
        paper_info(
            PREACT,
            table=_preact_table(200),
            params=64_666_152,
            macs=15.007e9,
            macs_variants=macs_variant("1x1", 14.776e9),
            paper_params="64.7M",
            top1_err=20.7,
            top5_err=5.3,
            err_protocol=_PREACT_T5 + "; 224 crop: 21.66/5.79 (WRN Table 8, fb.resnet.torch)",
            notes="64.7M is printed in WRN Table 8 / ResNeXt Table 4 for this model. "
            + _PREACT_PROJ_BOTTLENECK,
        ),
    ),
    Row(
        "preact_resnet110",
        partial(preact_cifar_spec, 110, "preact_basic"),
        paper_info(
            PREACT_CIFAR,
            table="Table 3 (ResNet-110, full pre-activation, CIFAR-10)",
            params=1_727_962,
            macs=0.2529e9,
            top1_err=6.37,
            err_protocol="CIFAR-10 test, median of 5 runs, Table 3",
            notes="Option-A shortcuts as the 2015 ResNet-110 it is compared with; the paper "
            "prints no parameter count for it (the 2015 ResNet-110 is 1.7M, Table 6).",
        ),
    ),
    # The original-form ResNet-164/1001 of Table 4 and Figs. 1/6: the pre-act nets' layout
    # (9n+2, outputs 64/128/256, stride on the first 1x1) with conv-BN-ReLU units and ReLU after
    # the addition, as He et al. 2015's bottleneck. The paper prints one count per depth for both
    # forms (1.7M, 10.2M); the original form differs by its BNs' placement only.
    Row(
        "resnet164",
        partial(preact_cifar_spec, 164, "bottleneck"),
        paper_info(
            PREACT_CIFAR,
            table="Table 4 (ResNet-164, original bottleneck, CIFAR)",
            params=1_704_154,
            paper_params="1.7M",
            macs=0.2445e9,
            macs_variants=macs_variant("3x3", 0.2476e9),
            top1_err=5.93,
            err_protocol="CIFAR-10 test, Table 4 (also Table 3's 'original'; C100: 25.16)",
            notes="Stride on the first 1x1, as the pre-act row it is compared with.",
        ),
    ),
    Row(
        "resnet1001",
        partial(preact_cifar_spec, 1001, "bottleneck"),
        paper_info(
            PREACT_CIFAR,
            table="Table 4 (ResNet-1001, original bottleneck, CIFAR)",
            params=10_328_602,
            paper_params="10.2M",
            macs=1.4878e9,
            macs_variants=macs_variant("3x3", 1.4910e9),
            top1_err=7.61,
            err_protocol="CIFAR-10 test, Table 4 (C100: 27.82); Fig. 1: its training loss "
            "falls slowly at the start",
            notes="Exact count 10.33M vs the printed 10.2M (1.3%), as preact_resnet1001.",
        ),
    ),
    # Stride on the first 1x1 (preact_cifar_spec's default), as resnet-pre-act.lua.
    Row(
        "preact_resnet164",
        partial(preact_cifar_spec, 164, "preact_bottleneck"),
        paper_info(
            PREACT_BOTTLENECK_CIFAR,
            table="Table 4 (ResNet-164, pre-act bottleneck, CIFAR)",
            params=1_703_258,
            paper_params="1.7M",
            macs=0.2445e9,
            macs_variants=macs_variant("3x3", 0.2476e9),
            top1_err=5.46,
            err_protocol="CIFAR-10 test, Table 4 (C100: 24.33)",
            notes="Stride on the first 1x1, as resnet-pre-act.lua.",
        ),
    ),
    Row(
        "preact_resnet1001",
        partial(preact_cifar_spec, 1001, "preact_bottleneck"),
        paper_info(
            PREACT_BOTTLENECK_CIFAR,
            table="Table 4 (ResNet-1001, pre-act bottleneck, CIFAR)",
            params=10_327_706,
            paper_params="10.2M",
            macs=1.4878e9,
            macs_variants=macs_variant("3x3", 1.4910e9),
            top1_err=4.92,
            err_protocol="CIFAR-10 test, Table 4, batch 128 "
            "(4.62 with batch 64, repo README; C100: 22.71)",
            notes="Exact count 10.33M vs the printed 10.2M (1.2%), from resnet-pre-act.lua's "
            "architecture (9n+2, n=111, widths 16/64/128/256); stride on the first 1x1.",
        ),
    ),
)

ROWS = RESNET_ROWS + PLAIN_ROWS + PREACT_ROWS

# ---------------------------------------------------------------- registration


def _entrypoint(row: Row) -> Callable[..., ResidualNet]:
    def build(**knobs: Any) -> ResidualNet:
        spec_knobs = {key: knobs.pop(key) for key in SPEC_KNOBS if key in knobs}
        return ResidualNet(row.spec(**spec_knobs), **{**row.defaults, **knobs})

    build.__name__ = build.__qualname__ = row.name
    build.__doc__ = f"{row.info.table} ({row.info.paper})."
    return build


def entries(rows: tuple[Row, ...]) -> tuple[Entry, ...]:
    """The registry's rows of zoo rows: free knobs from each row's default spec, every spec field
    defining (registered by models.registry.register_table)."""
    return tuple(
        Entry(row.name, _entrypoint(row), row.info, free_knobs_of(row.spec(), row.extra_knobs))
        for row in rows
    )


ENTRYPOINTS = register_table(entries(ROWS), defining_fields=SPEC_FIELDS)
