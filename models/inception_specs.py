"""The Inception-v4 / Inception-ResNet figures as data: specs, stems, blocks and networks.

Szegedy et al. 2016 (arXiv 1602.07261) draws every block as columns of boxes (Figures 3-19); here
each figure is a frozen `BlockSpec` of parallel `Branch`es of `Conv` / `Pool` boxes, and each
network (Figures 9 and 15, the released TF-slim nets) an `InceptionSpec`. The module that builds
them, and the conventions where the paper and the implementations disagree, is
`models.inception_resnet` (import the specs from here).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Literal, get_args

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
            raise ValueError(
                f"stage name must be an identifier other than stem/head, got {self.name!r}"
            )
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
def conv(
    out: int, kernel: int | tuple[int, int] = 1, stride: int = 1, *, valid: bool = False
) -> Conv:
    return Conv(out, kernel, stride, valid)  # type: ignore[arg-type]  # int kernel -> (k, k)


def branch(*layers: Layer, split: tuple[Conv, ...] = ()) -> Branch:
    return Branch(layers, split)


MAX_POOL_S2_V = Pool("max", stride=2, valid=True)  # "3x3 MaxPool (stride 2 V)"
AVG_POOL = Pool("avg")  # "Avg Pooling" (3x3, stride 1, same)


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
    """Figure 15 drawn literally, with v2 parts: stem (Fig. 3), 5 x A (Fig. 16), Red.-A (Fig. 7,
    k/l/m/n 256/256/384/384), 10 x B (Fig. 17), Red.-B (Fig. 18), 5 x C (Fig. 19); 8x8x2144."""
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
