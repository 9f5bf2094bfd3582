"""BN-Inception (Ioffe & Szegedy 2015, "Batch Normalization", arXiv 1502.03167, §4.2.1 and
Figure 5) and SENet's SE-BN-Inception (Hu et al. 2017, arXiv 1709.01507, Table 2).

Built from the Inception family's specs (`models.inception_resnet`: a block is parallel
branches of Conv / Pool boxes, concatenated). Figure 5 is GoogLeNet's table with the 5x5 convs
of every module replaced by two 3x3 convs ("double 3x3"), a 3x3 reduction to 64/96 where
GoogLeNet has 5x5, modules 3c and 4e reducing the grid with stride-2 convs and a max pool
(no 1x1 branch), and average pooling in the pool branch except in 5b (max). The filter counts
below are Figure 5's rows (#1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3,
pool + proj); they agree with the Caffe-converted BN-Inception of Cadene's pretrainedmodels
(``bninception.py``: e.g. inception_4c_double_3x3_2 160, inception_4c_pool_proj 576 -> 128),
whose convs also carry a bias (here none: a BN follows every conv).

Convs are conv (no bias) -> BN -> ReLU; stride-2 convs and pools pad 1, so the grids are
224 -> 112 -> 56 -> 28 -> 14 -> 7 (Caffe's ceil-mode pools give the same sizes at 224). No
dropout (§4.2.1 "Remove Dropout"); global 7x7 average pool and a linear classifier.

SE-BN-Inception (SENet Fig. 2, "SE-Inception module"): an SE unit (r = 16) on the output of
every Inception module, the reduction modules 3c and 4e included; none on the stem.
"""

from __future__ import annotations

from typing import Any

from .inception_resnet import FREE_KNOBS, InceptionResNet
from .inception_specs import (
    AVG_POOL,
    SPEC_FIELDS,
    BlockSpec,
    InceptionSpec,
    InceptionStage,
    Pool,
    branch,
    conv,
)
from .registry import Entry, ModelInfo, register_table

MAX_POOL_S2 = Pool("max", stride=2)  # 3x3/2, pad 1
MAX_POOL_S1 = Pool("max")  # 3x3/1, pad 1 (5b's pool branch)

# Figure 5 stem: conv 7x7/2 64, max pool 3x3/2, conv 1x1 64, conv 3x3 192, max pool 3x3/2.
STEM = (BlockSpec((branch(conv(64, 7, 2), MAX_POOL_S2, conv(64), conv(192, 3), MAX_POOL_S2),)),)


def module(
    n1x1: int, r3: int, n3: int, rd3: int, nd3: int, proj: int, *, pool: Pool = AVG_POOL
) -> BlockSpec:
    """A stride-1 module of Figure 5: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | pool -> 1x1."""
    return BlockSpec(
        (
            branch(conv(n1x1)),
            branch(conv(r3), conv(n3, 3)),
            branch(conv(rd3), conv(nd3, 3), conv(nd3, 3)),
            branch(pool, conv(proj)),
        )
    )


def reduction(r3: int, n3: int, rd3: int, nd3: int) -> BlockSpec:
    """Modules 3c / 4e of Figure 5 ("stride 2", pool "max + pass through"): 1x1 -> 3x3/2 |
    1x1 -> 3x3 -> 3x3/2 | max pool 3x3/2; no 1x1 branch."""
    return BlockSpec(
        (
            branch(conv(r3), conv(n3, 3, 2)),
            branch(conv(rd3), conv(nd3, 3), conv(nd3, 3, 2)),
            branch(MAX_POOL_S2),
        )
    )


def bn_inception_spec(se_ratio: float = 0.0) -> InceptionSpec:
    """Figure 5: 3a, 3b, 3c (28 -> 14), 4a-4d, 4e (14 -> 7), 5a, 5b; 1024 channels at 7x7."""
    rows = (
        ("i3a", module(64, 64, 64, 64, 96, 32)),  # 256
        ("i3b", module(64, 64, 96, 64, 96, 64)),  # 320
        ("i3c", reduction(128, 160, 64, 96)),  # 576
        ("i4a", module(224, 64, 96, 96, 128, 128)),  # 576
        ("i4b", module(192, 96, 128, 96, 128, 128)),  # 576
        ("i4c", module(160, 128, 160, 128, 160, 128)),  # 608 (Figure 5 prints 128 pool proj)
        ("i4d", module(96, 128, 192, 160, 192, 128)),  # 608
        ("i4e", reduction(128, 192, 192, 256)),  # 1056
        ("i5a", module(352, 192, 320, 160, 224, 128)),  # 1024
        ("i5b", module(352, 192, 320, 192, 224, 128, pool=MAX_POOL_S1)),  # 1024
    )
    stages = tuple(InceptionStage(name, block, se=True) for name, block in rows)
    return InceptionSpec(STEM, stages, se_ratio)


BN_PAPER = (
    "Ioffe & Szegedy 2015, Batch Normalization: Accelerating Deep Network Training by "
    "Reducing Internal Covariate Shift, arXiv:1502.03167"
)
SENET_PAPER = "Hu et al. 2017, Squeeze-and-Excitation Networks, arXiv:1709.01507"
OUR_COUNT = "exact count of this implementation (neither paper prints one)"
BN_INCEPTION_PARAMS, BN_INCEPTION_MACS = 11_285_224, 2.0326e9
SE_BN_INCEPTION_PARAMS, SE_BN_INCEPTION_MACS = 11_931_622, 2.0332e9
# Hu et al.'s Caffe SE-BN-Inception: every conv, pool and SE width as bn_inception_spec, and
# 11,931,622 params counted from the prototxt (conv, affine BN, SE convs with bias, FC), the
# same as ours; without the SE convs 11,285,224 = bn_inception.
SE_BN_INCEPTION_RELEASE = "hujie-frank/SENet models/SE-BN-Inception.prototxt (Caffe)"


def _info(**row: Any) -> ModelInfo:
    return ModelInfo(
        family="inception_resnet",
        resolution=224,
        num_classes=1000,
        min_input=32,
        params_source=OUR_COUNT,
        macs_source="models.complexity count at 224",
        **row,
    )


def _build_bn_inception(**knobs: Any) -> InceptionResNet:
    knobs.setdefault("dropout", 0.0)  # §4.2.1: "Remove Dropout"
    knobs.setdefault("bn_eps", 1e-5)
    return InceptionResNet(bn_inception_spec(), **knobs)


def _build_se_bn_inception(**knobs: Any) -> InceptionResNet:
    knobs.setdefault("dropout", 0.0)
    knobs.setdefault("bn_eps", 1e-5)
    return InceptionResNet(bn_inception_spec(se_ratio=1 / 16), **knobs)


# The named models of this family, one row each (registered below: models.registry.register_table).
ROWS = (
    Entry(
        "bn_inception",
        _build_bn_inception,
        _info(
            paper=SENET_PAPER + "; " + BN_PAPER,
            table="SENet Table 2 (BN-Inception, re-implementation); BN paper Figure 5",
            params=BN_INCEPTION_PARAMS,
            macs=BN_INCEPTION_MACS,
            paper_macs="2.03e9",
            top1_err=25.38,
            top5_err=7.89,
            err_protocol="ImageNet val, single crop 224, SENet Table 2 (the BN paper's own "
            "single-crop figure for this net: 25.2 / 7.82)",
            notes="Figure 5 of the BN paper, the Inception variant trained there (double 3x3, "
            "stride-2 modules 3c/4e); module table in models/bn_inception.py.",
            released=SE_BN_INCEPTION_RELEASE + " without its SE units (*_1x1_down / _1x1_up / "
            "_scale); Ioffe & Szegedy released no model",
        ),
    ),
    Entry(
        "se_bn_inception",
        _build_se_bn_inception,
        _info(
            paper=SENET_PAPER,
            table="Table 2 (SE-BN-Inception), Fig. 2",
            params=SE_BN_INCEPTION_PARAMS,
            macs=SE_BN_INCEPTION_MACS,
            paper_macs="2.04e9",
            top1_err=24.23,
            top5_err=7.14,
            err_protocol="ImageNet val, single crop 224, SENet Table 2",
            notes="SE (r = 16) on the output of each of the ten Inception modules of bn_inception "
            "(SENet Fig. 2: SE-Inception module).",
            released=SE_BN_INCEPTION_RELEASE,
        ),
    ),
)
ENTRYPOINTS = register_table(ROWS, free_knobs=FREE_KNOBS, defining_fields=SPEC_FIELDS)
