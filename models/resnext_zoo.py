"""ResNeXt (Xie et al. 2017), Wide ResNet (Zagoruyko & Komodakis 2016) and SENet (Hu et al.
2017) as rows of the residual family's table (models/resnet_zoo.py: the row format, the knobs
every row gets, the ResNet / plain / pre-act rows).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from .registry import DefaultChange, register_table
from .resnet import SPEC_FIELDS, NetSpec, resnext_cifar_spec, wrn_spec
from .resnet_blocks import StrideOn
from .resnet_zoo import CIFAR10, Row, entries, imagenet, macs_variant, paper_info

RESNEXT_PAPER = (
    "Xie et al. 2017, Aggregated Residual Transformations for Deep Neural Networks, "
    "arXiv:1611.05431"
)
WRN_PAPER = "Zagoruyko & Komodakis 2016, Wide Residual Networks, arXiv:1605.07146"
SENET_PAPER = "Hu et al. 2017, Squeeze-and-Excitation Networks, arXiv:1709.01507"

# ---------------------------------------------------------------- ResNeXt (Xie et al. 2017)
#
# Table 3 rows keep the complexity of ResNet-50/101: d comes from Table 2 (resnext_group_width
# of models/resnet.py: C = 2, 4, 8, 32 -> d = 40, 24, 14, 4). Table 4 rows double it
# (~15 GFLOPs) by C, d or depth. Stride on the 3x3 (§4, fb.resnet.torch), option-B shortcuts.

# Every ImageNet row (Tables 3-4: any depth, C x d, 1x100d included; resnext.lua's group width
# D = floor(n * baseWidth / 64)) is a setting of the released builder; weights exist only for
# 50/101 32x4d and 101 64x4d.
RESNEXT_IMAGENET_RELEASE = (
    "facebookresearch/ResNeXt models/resnext.lua (ImageNet branch; bottleneckType resnext_C, "
    "-cardinality C -baseWidth d, shortcutType B, stride on the 3x3)"
)
RESNEXT = {"paper": RESNEXT_PAPER, "released": RESNEXT_IMAGENET_RELEASE}
RESNEXT_T3 = {**RESNEXT, "err_protocol": "ImageNet val, single 224 crop, Table 3"}
_RX_T4 = "ImageNet val, single 224 crop, Table 4"
RESNEXT_CIFAR = {**RESNEXT, **CIFAR10}
_RX_CIFAR_NOTES = (
    "Pre-activated bottlenecks (option B) by default, as the paper's CIFAR numbers (the release's "
    "README: 'in the arXiv paper CIFAR results are based on pre-activated bottleneck blocks and a "
    "batch size of 256'; the authors found resnext.lua's post-activation blocks, model.preact="
    "false, reach better accuracy; those have 3,584 more params: BN on 1024 outputs vs on 64/256 "
    "inputs). "
    "With a 100-class head: {:,} params."
)


RESNEXT_CIFAR_RELEASE = (
    "facebookresearch/ResNeXt models/resnext.lua (CIFAR branch; bottleneckType resnext_C) with "
    "the block order of fb.resnet.torch models/preresnet.lua"
)
RESNEXT_CIFAR_DEVIATION = (
    "the release has no pre-activated ResNeXt block; its README says the paper's CIFAR numbers "
    "used one, read here as He et al. 2016's full pre-activation (model.preact=false: "
    "resnext.lua's post-activation block)"
)
PREACT_CHANGE = DefaultChange(
    "preact", False, True, "ResNeXt README: the paper's CIFAR results used pre-activated blocks"
)


def _resnext(depth: int, c: int, d: int) -> Callable[..., NetSpec]:
    return partial(imagenet, depth, groups=c, base_width=d)


def _resnext_t3(depth: int, c: int, d: int, params: int, macs: float, top1: float) -> Row:
    table = f"Table 3 (ResNeXt-{depth}, {c}x{d}d; d from Table 2)"
    info = paper_info(RESNEXT_T3, table=table, params=params, macs=macs, top1_err=top1)
    return Row(f"resnext{depth}_{c}x{d}d", _resnext(depth, c, d), info)


RESNEXT_ROWS = (
    _resnext_t3(50, 2, 40, 25_425_000, 4.125e9, 23.0),
    _resnext_t3(50, 4, 24, 25_292_968, 4.160e9, 22.6),
    _resnext_t3(50, 8, 14, 25_603_016, 4.267e9, 22.3),
    Row(
        "resnext50_32x4d",
        _resnext(50, 32, 4),
        paper_info(
            RESNEXT_T3,
            table="Table 1 / Table 3 (ResNeXt-50, 32x4d)",
            torchvision="resnext50_32x4d",
            params=25_028_904,
            paper_params="25.0M",
            macs=4.230e9,
            paper_macs="4.2e9",
            top1_err=22.2,
        ),
    ),
    _resnext_t3(101, 2, 40, 44_456_296, 7.844e9, 21.7),
    _resnext_t3(101, 4, 24, 44_363_432, 7.886e9, 21.4),
    _resnext_t3(101, 8, 14, 45_104_328, 8.077e9, 21.3),
    Row(
        "resnext101_32x4d",
        _resnext(101, 32, 4),
        paper_info(
            RESNEXT_T3,
            table="Table 3 / Table 4 (ResNeXt-101, 32x4d)",
            params=44_177_704,
            macs=7.970e9,
            top1_err=21.2,
            top5_err=5.6,
            err_protocol=RESNEXT_T3["err_protocol"] + " (top-5 from Table 4)",
        ),
    ),
    Row(
        "resnext101_32x8d",
        _resnext(101, 32, 8),
        paper_info(
            RESNEXT,
            table="torchvision resnext101_32x8d (2x complexity by d; not a row of Tables 3-5)",
            torchvision="resnext101_32x8d",
            params=88_791_336,
            macs=16.414e9,
            top1_err=20.688,
            top5_err=5.474,
            err_protocol="torchvision IMAGENET1K_V1 weights, 224 crop of 256 (not a paper number)",
        ),
    ),
    Row(
        "resnext101_2x64d",
        _resnext(101, 2, 64),
        paper_info(
            RESNEXT,
            table="Table 4 (ResNeXt-101, 2x64d)",
            params=84_198_184,
            macs=15.123e9,
            top1_err=20.7,
            top5_err=5.5,
            err_protocol=_RX_T4,
        ),
    ),
    Row(
        "resnext101_64x4d",
        _resnext(101, 64, 4),
        paper_info(
            RESNEXT,
            table="Table 4 / Table 5 (ResNeXt-101, 64x4d)",
            torchvision="resnext101_64x4d",
            params=83_455_272,
            macs=15.46e9,
            top1_err=20.4,
            top5_err=5.3,
            err_protocol=_RX_T4 + " (320 crop: 19.1/4.4, Table 5)",
        ),
    ),
    Row(
        "resnet101_1x100d",
        _resnext(101, 1, 100),
        paper_info(
            RESNEXT,
            table="Table 4 (ResNet-101, wider: 1x100d)",
            params=85_611_336,
            macs=15.273e9,
            top1_err=21.3,
            top5_err=5.7,
            err_protocol=_RX_T4,
            notes="A plain ResNet-101 whose bottleneck width is 100 at stage width 64 "
            "(100/200/400/800), outputs unchanged (256..2048).",
        ),
    ),
    Row(
        "resnext29_8x64d",
        partial(resnext_cifar_spec, 8, 64),
        paper_info(
            RESNEXT_CIFAR,
            table="Table 7 (ResNeXt-29, 8x64d, CIFAR)",
            params=34_423_114,
            paper_params="34.4M",
            macs=5.387e9,
            top1_err=3.65,
            err_protocol="CIFAR-10 test, Table 7 (C100: 17.77)",
            notes=_RX_CIFAR_NOTES.format(34_515_364),
            released=RESNEXT_CIFAR_RELEASE,
            deviation=RESNEXT_CIFAR_DEVIATION,
            default_changes=(PREACT_CHANGE,),
        ),
        extra_knobs=frozenset({"preact"}),
    ),
    Row(
        "resnext29_16x64d",
        partial(resnext_cifar_spec, 16, 64),
        paper_info(
            RESNEXT_CIFAR,
            table="Table 7 (ResNeXt-29, 16x64d, CIFAR)",
            params=68_151_626,
            paper_params="68.1M",
            macs=10.689e9,
            top1_err=3.58,
            err_protocol="CIFAR-10 test, Table 7 (C100: 17.31)",
            notes=_RX_CIFAR_NOTES.format(68_243_876) + " Exact 68.16M vs the printed 68.1M (0.1%).",
            released=RESNEXT_CIFAR_RELEASE,
            deviation=RESNEXT_CIFAR_DEVIATION,
            default_changes=(PREACT_CHANGE,),
        ),
        extra_knobs=frozenset({"preact"}),
    ),
)

# ---------------------------------------------------------------- Wide ResNet (Zagoruyko 2016)

WRN = {"paper": WRN_PAPER}
# wide_basic: pre-act B(3,3), 1x1 projection on the shared BN-ReLU output where the shape
# changes, dropout between the convs; our conv-BN-ReLU stem + activation-free first block is
# the same function and parameters (models/resnet.py module docstring).
WRN_CIFAR = {
    **WRN,
    **CIFAR10,
    "released": "szagoruyko/wide-residual-networks models/wide-resnet.lua",
}
_WRN_ERR = "CIFAR-10 test, median of 5 runs, mean/std preprocessing, Table 5"
BLOCK_DROPOUT = frozenset({"block_dropout"})  # WRN §2.4: dropout between the convs (0.3)


def _wrn(
    depth: int, k: int, params: int, paper_params: str, macs: float, top1: float, protocol: str
) -> Row:
    info = paper_info(
        WRN_CIFAR,
        table=f"Table 1 / Table 5 (WRN-{depth}-{k}, CIFAR)",
        params=params,
        paper_params=paper_params,
        macs=macs,
        top1_err=top1,
        err_protocol=protocol,
    )
    return Row(f"wrn{depth}_{k}", partial(wrn_spec, depth, k), info, BLOCK_DROPOUT)


WRN_ROWS = (
    _wrn(16, 4, 2_748_890, "2.7M", 0.3926e9, 5.02, _WRN_ERR + " (C100 24.03; +drop 5.24)"),
    _wrn(16, 8, 10_961_370, "11.0M", 1.548e9, 4.27, _WRN_ERR + " (C100: 20.43)"),
    _wrn(
        28,
        10,
        36_479_194,
        "36.5M",
        5.243e9,
        4.00,
        _WRN_ERR + " (C100: 19.25; block_dropout 0.3: 3.89 / 18.85, Table 6)",
    ),
    _wrn(40, 4, 8_949_210, "8.9M", 1.299e9, 4.53, _WRN_ERR + " (C100: 21.18)"),
    _wrn(
        40,
        10,
        55_841_754,
        "56M",
        8.074e9,
        3.8,
        "CIFAR-10 test, best single run with block_dropout 0.3, Table 9 (C100: 18.3)",
    ),
    Row(
        "wide_resnet50_2",
        partial(imagenet, 50, base_width=128),
        paper_info(
            WRN,
            table="Table 8 (WRN-50-2-bottleneck, ImageNet)",
            torchvision="wide_resnet50_2",
            params=68_883_240,
            paper_params="68.9M",
            macs=11.398e9,
            top1_err=21.9,
            top5_err=6.03,
            err_protocol="ImageNet val, single 224 crop, Table 8 (Table 9 / README say top-5 5.79)",
            notes="Bottleneck width doubled (base_width 128), outputs unchanged: "
            "torchvision's model.",
        ),
    ),
    Row(
        "wide_resnet101_2",
        partial(imagenet, 101, base_width=128),
        paper_info(
            WRN,
            table="torchvision wide_resnet101_2 (WRN-101-2-bottleneck; not in the paper's tables)",
            torchvision="wide_resnet101_2",
            params=126_886_696,
            macs=22.753e9,
            top1_err=21.152,
            top5_err=5.716,
            err_protocol="torchvision IMAGENET1K_V1 weights, 224 crop of 256 (not a paper number)",
        ),
    ),
)

# ---------------------------------------------------------------- SENet (Hu et al. 2017)
#
# SE on each residual branch before the addition (Fig. 3), r = 16 (§6.1). The released
# Caffe SE-ResNets put the stride on the first 1x1 (SENet Table 2 GFLOPs 3.87 / 7.60 /
# 11.32 are that placement), the SE-ResNeXts and SENet-154 on the 3x3.

SENET = {"paper": SENET_PAPER}
# Hu et al.'s Caffe models: each row's params equal the count from its prototxt (conv, affine
# BN, SE convs with bias, FC), stride on the 1x1 in SE-ResNet-*, on the 3x3 in SE-ResNeXt-*
# and SENet-154 (3x3/2 projections there).
SE_RELEASE = "hujie-frank/SENet models/{}.prototxt (Caffe)"
SENET_T2 = {**SENET, "err_protocol": "ImageNet val, single 224 crop, Table 2 (SE column)"}


def _se(depth: int, stride_on: StrideOn = "3x3", **spec: Any) -> Callable[..., NetSpec]:
    return partial(imagenet, depth, se_reduction=16, stride_on=stride_on, **spec)


SENET_ROWS = (
    Row(
        "se_resnet50",
        _se(50, "1x1"),
        paper_info(
            SENET_T2,
            table="Table 2 (SE-ResNet-50); Table 10 r = 16",
            params=28_088_024,
            paper_params="28.1M",
            macs=3.8605e9,
            paper_macs="3.87e9",
            macs_variants=macs_variant("3x3", 4.0917e9),
            top1_err=23.29,
            top5_err=6.62,
            released=SE_RELEASE.format("SE-ResNet-50"),
        ),
    ),
    Row(
        "se_resnet101",
        _se(101, "1x1"),
        paper_info(
            SENET_T2,
            table="Table 2 (SE-ResNet-101)",
            params=49_326_872,
            macs=7.5749e9,
            paper_macs="7.60e9",
            macs_variants=macs_variant("3x3", 7.8061e9),
            top1_err=22.38,
            top5_err=6.07,
            released=SE_RELEASE.format("SE-ResNet-101"),
        ),
    ),
    Row(
        "se_resnet152",
        _se(152, "1x1"),
        paper_info(
            SENET_T2,
            table="Table 2 (SE-ResNet-152)",
            params=66_821_848,
            macs=11.289e9,
            paper_macs="11.32e9",
            macs_variants=macs_variant("3x3", 11.520e9),
            top1_err=21.57,
            top5_err=5.73,
            released=SE_RELEASE.format("SE-ResNet-152"),
        ),
    ),
    Row(
        "se_resnext50_32x4d",
        _se(50, groups=32, base_width=4),
        paper_info(
            SENET_T2,
            table="Table 2 (SE-ResNeXt-50, 32x4d)",
            params=27_559_896,
            macs=4.2330e9,
            paper_macs="4.25e9",
            macs_variants=macs_variant("1x1", 3.7706e9),
            top1_err=21.10,
            top5_err=5.49,
            released=SE_RELEASE.format("SE-ResNeXt-50"),
        ),
    ),
    Row(
        "se_resnext101_32x4d",
        _se(101, groups=32, base_width=4),
        paper_info(
            SENET_T2,
            table="Table 2 (SE-ResNeXt-101, 32x4d)",
            params=48_955_416,
            macs=7.9747e9,
            paper_macs="8.00e9",
            macs_variants=macs_variant("1x1", 7.5123e9),
            top1_err=20.70,
            top5_err=5.01,
            released=SE_RELEASE.format("SE-ResNeXt-101"),
        ),
    ),
    Row(
        "senet154",
        _se(
            152,
            groups=64,
            base_width=4,
            stem="deep",
            stem_width=128,
            conv1_ratio=0.5,
            proj_kernel=3,
        ),
        paper_info(
            SENET_T2,
            table="Table 8 (SENet-154); architecture in the supplementary / released Caffe model",
            params=115_088_984,
            macs=20.688e9,
            top1_err=18.68,
            top5_err=4.47,
            err_protocol="ImageNet val, single 224 crop, Table 8",
            released=SE_RELEASE.format("SENet-154"),
            notes="SE-ResNeXt-152 64x4d with the paper's changes: first 1x1 of each bottleneck "
            "halved (conv1_ratio 0.5), 7x7 stem -> three 3x3 convs (64, 64, 128), 3x3/2 "
            "projection shortcuts, dropout 0.2 before the classifier (the default of the free "
            "`dropout` knob here); label smoothing and the BN freeze are training, not "
            "architecture. 115,088,984 params = the Caffe model's PyTorch port "
            "(Cadene/pretrained-models.pytorch); the paper prints no params or FLOPs for it.",
        ),
        defaults={"dropout": 0.2},
    ),  # the paper's SENet-154 change (4): dropout 0.2 before the FC
)

ROWS = RESNEXT_ROWS + WRN_ROWS + SENET_ROWS
ENTRYPOINTS = register_table(entries(ROWS), defining_fields=SPEC_FIELDS)
