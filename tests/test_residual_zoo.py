"""The residual family's later papers: pre-activation ResNet, ResNeXt, Wide ResNet, SENet and
stochastic depth, checked for what the generic registry tests (test_models.py) cannot see.

Cheap on a 2-core CPU: structure and counts on the meta device, gradients through tiny specs
(one block per stage) or the smallest registered model, 32x32 inputs, batch 2.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
import torch.nn.functional as F
from conftest import meta_model, n_params
from torch import nn

from models import (
    DropPath,
    NetSpec,
    ResidualNet,
    StageSpec,
    create_model,
    drop_path_rates,
    list_models,
    model_info,
)
from models.layers import NormAct, SqueezeExcite, drop_path
from models.resnet import (
    conv2_template_params,
    preact_cifar_spec,
    resnext_cifar_spec,
    resnext_group_width,
    wrn_spec,
)
from models.resnet_blocks import BlockArgs, Bottleneck, PreActBasicBlock, PreActBottleneck


def blocks_of(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if hasattr(m, "zero_init_last")]


def assert_every_parameter_gets_a_gradient(model: nn.Module, side: int = 32) -> None:
    torch.manual_seed(0)
    model.train()
    out = model(torch.randn(2, 3, side, side))
    F.cross_entropy(out, torch.tensor([0, 1])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert p.grad.abs().sum() > 0, f"{name} got a zero gradient"


def one_block_per_stage(spec: NetSpec) -> NetSpec:
    stages = tuple(dataclasses.replace(s, depth=1) for s in spec.stages)
    return dataclasses.replace(spec, stages=stages)


# ---------------------------------------------------------------- ResNeXt (Xie et al. 2017)


def test_table2_cardinality_vs_width_at_preserved_complexity():
    # Table 2: C = 1, 2, 4, 8, 32 -> d = 64, 40, 24, 14, 4; group-conv width C*d = 64 ... 128.
    got = {c: resnext_group_width(c) for c in (1, 2, 4, 8, 32)}
    assert got == {1: 64, 2: 40, 4: 24, 8: 14, 32: 4}
    assert [c * d for c, d in got.items()] == [64, 80, 96, 112, 128]
    reference = conv2_template_params(1, 64)
    assert reference == 69_632  # the table's "~70k"
    for c, d in got.items():
        assert conv2_template_params(c, d) == pytest.approx(reference, rel=0.03)
        for other in (d - 1, d + 1):  # d is the closest: neighbours are further from ~70k
            assert abs(conv2_template_params(c, other) - reference) > abs(
                conv2_template_params(c, d) - reference
            )
    with pytest.raises(ValueError):
        resnext_group_width(0)


RESNEXT_NAMES = list_models("resnext5*") + list_models("resnext101_*") + ["resnet101_1x100d"]


@pytest.mark.parametrize("name", RESNEXT_NAMES)
def test_resnext_names_are_their_c_x_d(name):
    cardinality, d = map(int, re.search(r"_(\d+)x(\d+)d$", name).groups())
    model = meta_model(name)
    for s, stage_width in enumerate((64, 128, 256, 512), start=1):
        block = getattr(model, f"s{s}").b1
        assert block.conv2.conv.groups == cardinality
        assert block.conv2.conv.out_channels == cardinality * d * stage_width // 64
        assert block.conv3.conv.out_channels == 4 * stage_width  # outputs unchanged
    if "Table 3" in model_info(name).table:  # 1x complexity rows: d from Table 2
        assert d == resnext_group_width(cardinality)


def test_resnext29_cifar_layout():
    model = meta_model("resnext29_16x64d", preact=False)  # resnext.lua's (post-act) modules
    assert model.stem.conv.conv.out_channels == 64 and model.stem.conv.conv.kernel_size == (3, 3)
    assert [len(getattr(model, f"s{s}")) for s in (1, 2, 3)] == [3, 3, 3]
    assert [getattr(model, f"s{s}").b1.conv2.conv.out_channels for s in (1, 2, 3)] == [
        1024,
        2048,
        4096,
    ]  # C x d = 16 x 64 at stage width 64, doubling per stage
    assert model.num_features == 1024


@pytest.mark.parametrize("name", ["resnext29_8x64d", "resnext29_16x64d"])
def test_resnext29_is_pre_activated_as_the_papers_cifar_numbers(name):
    """ResNeXt README: the paper's CIFAR results used pre-activated bottlenecks (issue 24);
    resnext.lua's post-activation block is model.preact=false."""
    from models.resnet_blocks import BLOCKS

    model, post = meta_model(name), meta_model(name, preact=False)
    assert all(
        type(b) is BLOCKS["preact_bottleneck"] for b in model.modules() if hasattr(b, "conv3")
    )
    assert all(type(b) is BLOCKS["bottleneck"] for b in post.modules() if hasattr(b, "conv3"))
    assert isinstance(model.final_act, NormAct) and not hasattr(post, "final_act")
    b = model.s2.b2  # BN-ReLU before each conv: its first BN sees the block input (512 channels)
    assert b.norm1.bn.num_features == 512 and b.conv1.in_channels == 512
    assert n_params(post) - n_params(model) == 3_584


def test_resnext_block_gets_gradients():
    spec = one_block_per_stage(resnext_cifar_spec(4, 4, depth=11))  # 9n+2, n = 1
    assert_every_parameter_gets_a_gradient(ResidualNet(spec, 10))


# ---------------------------------------------------------------- pre-activation (He et al. 2016)


def test_preact_first_block_shares_the_stems_activation_and_net_ends_with_norm_act():
    for name in ("preact_resnet164", "preact_resnet50", "wrn16_4"):
        model = meta_model(name)
        assert isinstance(model.stem.conv.bn, nn.BatchNorm2d)  # conv1 -> BN -> ReLU
        blocks = blocks_of(model)
        assert isinstance(blocks[0].norm1, nn.Identity)
        assert all(isinstance(b.norm1, NormAct) for b in blocks[1:])
        children = list(model.children())
        assert isinstance(children[-2], NormAct) and children[-2] is model.final_act
    assert isinstance(meta_model("preact_resnet50").stem.pool, nn.MaxPool2d)  # BN-ReLU before pool


@pytest.mark.parametrize("block_cls", [PreActBasicBlock, PreActBottleneck])
def test_preact_identity_path_is_clean(block_cls):
    # With the residual branch zeroed, a pre-act block is exactly the identity: no BN or
    # ReLU on the shortcut path or after the addition (He et al. 2016 Fig. 4e, Eq. 4).
    channels = 8 * block_cls.expansion
    block = block_cls(BlockArgs(channels, 8)).eval()
    block.zero_init_last()
    x = torch.randn(2, channels, 5, 5)  # negative values would not survive a ReLU
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)
    post = Bottleneck(BlockArgs(32, 8)).eval()
    post.zero_init_last()
    x = torch.randn(2, 32, 5, 5)
    torch.testing.assert_close(post(x), x.relu(), rtol=0, atol=0)  # v1: ReLU after the addition


def test_preact_projection_uses_the_activated_input_and_no_bn():
    block = PreActBottleneck(BlockArgs(16, 8, stride=2))
    assert isinstance(block.shortcut, nn.Conv2d) and block.projects
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.shortcut.modules())
    block.eval()
    block.zero_init_last()
    x = torch.randn(2, 16, 8, 8)
    # Branch zeroed: what remains is the projection of BN-ReLU(x) (shared), not of x.
    torch.testing.assert_close(block(x), block.shortcut(block.norm1(x)), rtol=0, atol=0)
    assert not torch.allclose(block(x), block.shortcut(x))


def test_preact_cifar_layouts():
    r164 = meta_model("preact_resnet164")
    assert [len(getattr(r164, f"s{s}")) for s in (1, 2, 3)] == [18, 18, 18]
    assert r164.num_features == 256 and r164.s2.b1.conv1.stride == (2, 2)  # 1x1 stride (his code)
    assert meta_model("preact_resnet164", stride_on="3x3").s2.b1.conv2.stride == (2, 2)
    assert len(blocks_of(meta_model("preact_resnet1001"))) == 333  # 9n+2 = 1001, n = 111
    r110 = meta_model("preact_resnet110")
    assert len(blocks_of(r110)) == 54 and n_params(r110) == model_info("resnet110").params
    with pytest.raises(ValueError, match="9n\\+2"):
        preact_cifar_spec(165, "preact_bottleneck")


def test_original_cifar_bottlenecks_are_the_preact_layout_with_post_activation_units():
    """He et al. 2016 Table 4 / Fig. 1's "original" ResNet-164/1001: the same 9n+2 layout and
    widths, conv-BN-ReLU units with the ReLU after the addition, a BN in the stem."""
    r164, p164 = meta_model("resnet164"), meta_model("preact_resnet164")
    assert [len(getattr(r164, f"s{s}")) for s in (1, 2, 3)] == [18, 18, 18]
    assert r164.num_features == p164.num_features == 256 and r164.s2.b1.conv1.conv.stride == (2, 2)
    assert type(r164.s1.b1) is not type(p164.s1.b1) and r164.s1.b1.act is not None
    assert isinstance(r164.stem.conv.bn, nn.BatchNorm2d)
    assert len(blocks_of(meta_model("resnet1001"))) == 333
    # the paper prints one count per depth for both forms (1.7M, 10.2M)
    assert abs(n_params(r164) - n_params(p164)) < 1000 and round(n_params(r164) / 1e5) == 17
    assert round(n_params(meta_model("resnet1001")) / 1e6, 1) == 10.3


@pytest.mark.parametrize("depth, block", [(8, "preact_basic"), (11, "preact_bottleneck")])
def test_preact_cifar_gets_gradients(depth, block):
    assert_every_parameter_gets_a_gradient(ResidualNet(preact_cifar_spec(depth, block), 10))


# ---------------------------------------------------------------- Wide ResNet (Zagoruyko 2016)


def test_wrn_layout():
    model = meta_model("wrn28_10")
    assert [len(getattr(model, f"s{s}")) for s in (1, 2, 3)] == [4, 4, 4]  # (28 - 4) / 6
    assert [getattr(model, f"s{s}").b1.conv1.out_channels for s in (1, 2, 3)] == [160, 320, 640]
    assert isinstance(model.s1.b1.shortcut, nn.Conv2d)  # 16 -> 160: a bare 1x1 projection
    assert isinstance(model.s1.b2.shortcut, nn.Identity)
    with pytest.raises(ValueError, match="6n\\+4"):
        wrn_spec(17, 4)


def test_wrn16_4_gets_gradients():
    assert_every_parameter_gets_a_gradient(create_model("wrn16_4", block_dropout=0.3))


def test_wrn_block_dropout_acts_between_the_convs_in_training_only():
    model = create_model("wrn16_4", block_dropout=0.5)
    dropouts = [b.dropout for b in blocks_of(model)]
    assert len(dropouts) == 6 and all(isinstance(d, nn.Dropout) and d.p == 0.5 for d in dropouts)
    assert all(isinstance(b.dropout, nn.Identity) for b in blocks_of(create_model("wrn16_4")))
    plain = create_model("wrn16_4")
    plain.load_state_dict(model.state_dict())  # dropout has no parameters
    seen: dict[str, torch.Tensor] = {}  # the input of the block's second conv
    model.s2.b2.conv2.register_forward_pre_hook(lambda m, inp: seen.update(drop=inp[0]))
    plain.s2.b2.conv2.register_forward_pre_hook(lambda m, inp: seen.update(plain=inp[0]))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        model.eval(), plain.eval()
        first = model(x)
        torch.testing.assert_close(model(x), first, rtol=0, atol=0)
        torch.testing.assert_close(plain(x), first, rtol=0, atol=0)  # eval: dropout is off
        model.train(), plain.train()
        torch.manual_seed(0)
        a, b = model(x), model(x)
        plain(x)
    assert not torch.equal(a, b)
    zero_fraction = {k: (v == 0).float().mean().item() for k, v in seen.items()}
    # after BN-ReLU about half are zero; dropout 0.5 zeroes half of the rest
    assert zero_fraction["drop"] > zero_fraction["plain"] + 0.15


def test_block_dropout_errors():
    with pytest.raises(ValueError, match="unknown knob 'block_dropout'"):
        create_model("resnet50", block_dropout=0.3)
    with pytest.raises(ValueError, match="needs a basic block"):
        spec = one_block_per_stage(preact_cifar_spec(11, "preact_bottleneck"))
        ResidualNet(spec, block_dropout=0.3)
    with pytest.raises(ValueError, match="block_dropout"):
        create_model("wrn16_4", block_dropout=1.0)


# ---------------------------------------------------------------- SENet (Hu et al. 2017)


def _se_params(channels: list[int], r: int) -> int:
    # FC C -> C/r (+ bias) -> C (+ bias), one per block (SENet §4 "~2.5M additional")
    return sum(2 * c * (c // r) + c // r + c for c in channels)


def test_se_reduction_changes_the_parameter_count_as_expected():
    resnet50 = model_info("resnet50").params
    outputs = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3
    assert _se_params(outputs, 16) == 2_530_992
    # Table 10 (SE-ResNet-50): r = 2, 4, 8, 16, 32 -> 45.7M, 35.7M, 30.7M, 28.1M, 26.9M
    table10 = {2: 45.7e6, 4: 35.7e6, 8: 30.7e6, 16: 28.1e6, 32: 26.9e6}
    for r, printed in table10.items():
        got = n_params(meta_model("se_resnet50", se_reduction=r))
        assert got == resnet50 + _se_params(outputs, r)
        assert got == pytest.approx(printed, rel=5e-3)  # the table is ~0.3% high for r = 4..32
    model = meta_model("se_resnet50", se_reduction=8)
    se = [m for m in model.modules() if isinstance(m, SqueezeExcite)]
    assert len(se) == 16 and se[0].fc1.out_channels == 256 // 8
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match="se_reduction"):
            create_model("se_resnet50", se_reduction=bad)
    with pytest.raises(ValueError, match="'se_ratio' is a defining field"):
        create_model("se_resnet50", se_ratio=0.5)


def test_se_gates_the_residual_branch_before_the_addition():
    block = Bottleneck(BlockArgs(32, 8, se_ratio=0.25)).eval()
    assert isinstance(block.se, SqueezeExcite)
    with torch.no_grad():  # gate = sigmoid(-inf) = 0: only the branch is silenced
        block.se.fc2.weight.zero_()
        block.se.fc2.bias.fill_(-1e4)
    x = torch.randn(2, 32, 5, 5)
    torch.testing.assert_close(block(x), x.relu(), rtol=0, atol=0)


def test_se_stride_placement_follows_the_released_models():
    assert meta_model("se_resnet50").s2.b1.conv1.conv.stride == (2, 2)  # Caffe SE-ResNet: 1x1
    assert meta_model("se_resnext50_32x4d").s2.b1.conv2.conv.stride == (2, 2)  # on the 3x3


def test_senet154_modifications():
    model = meta_model("senet154")
    stem = model.stem
    widths = [getattr(stem, f"conv{i}").conv.out_channels for i in (1, 2, 3)]
    assert widths == [64, 64, 128]  # three 3x3 convs replace the 7x7
    assert stem.conv1.conv.stride == (2, 2) and stem.pool.ceil_mode
    b = model.s1.b1
    # first 1x1 halved: 128 -> grouped 3x3 128 -> 256 in C = 64 groups (ResNeXt-152 64x4d: 256)
    assert (b.conv1.conv.out_channels, b.conv2.conv.out_channels) == (128, 256)
    assert b.conv2.conv.groups == 64
    assert b.shortcut.conv.kernel_size == (1, 1)  # stride-1 projection stays 1x1
    projection = model.s2.b1.shortcut.conv
    assert projection.kernel_size == (3, 3) and projection.stride == (2, 2)
    assert isinstance(b.se, SqueezeExcite) and b.se.fc1.out_channels == 256 // 16
    assert model.head.dropout.p == 0.2
    assert isinstance(meta_model("senet154", dropout=0.0).head.dropout, nn.Identity)


def test_se_and_senet154_features_get_gradients():
    # A tiny net with every SENet-154 change: deep stem, halved first 1x1, 3x3 projections, SE.
    spec = NetSpec(
        stem="deep",
        stages=(StageSpec(1, 16, 1), StageSpec(1, 32, 2)),
        block="bottleneck",
        stem_width=32,
        groups=4,
        base_width=16,
        se_ratio=1 / 16,
        conv1_ratio=0.5,
        proj_kernel=3,
    )
    assert_every_parameter_gets_a_gradient(ResidualNet(spec, 10, dropout=0.2), side=64)


def test_spec_validation_of_the_new_fields():
    spec = one_block_per_stage(resnext_cifar_spec(4, 4, depth=11))
    with pytest.raises(ValueError, match="conv1_ratio"):
        dataclasses.replace(spec, conv1_ratio=0.0)
    with pytest.raises(ValueError, match="proj_kernel"):
        dataclasses.replace(spec, proj_kernel=5)
    with pytest.raises(ValueError, match="stem"):
        dataclasses.replace(spec, stem="deep3")
    with pytest.raises(ValueError, match="conv1_ratio=1"):
        basic = dataclasses.replace(spec, block="basic", groups=1, base_width=64, conv1_ratio=0.5)
        ResidualNet(basic)


# ---------------------------------------------------------------- stochastic depth (Huang 2016)


@pytest.mark.parametrize("name", ["preact_resnet164", "se_resnet50", "wrn28_10"])
def test_per_block_rates_come_from_drop_path_rates(name):
    model = meta_model(name, drop_path_rate=0.5)
    blocks = blocks_of(model)
    got = [b.drop_path.p if isinstance(b.drop_path, DropPath) else 0.0 for b in blocks]
    assert got == drop_path_rates(len(blocks), 0.5, "huang")  # the ResNet family's default rule
    assert got[-1] == 0.5  # the paper's p_L = 0.5 survival at the last block
    assert {b.drop_path.mode for b in blocks} == {"batch"}  # Huang et al.: per mini-batch
    assert all(isinstance(b.drop_path, nn.Identity) for b in blocks_of(meta_model(name)))


def test_drop_path_drops_whole_samples_and_scales_survivors():
    torch.manual_seed(0)
    x = torch.ones(20_000, 3, 2, 2)
    p = 0.3
    y = drop_path(x, p, training=True).flatten(1)
    dropped = (y == 0).all(1)
    kept = torch.isclose(y, torch.tensor(1 / (1 - p))).all(1)
    assert (dropped | kept).all()  # one Bernoulli draw per sample, the whole branch
    assert dropped.float().mean().item() == pytest.approx(p, abs=0.015)  # ~4.5 sigma
    assert y.mean().item() == pytest.approx(1.0, abs=0.02)  # E[y] = x: inverse scaling 1/(1-p)
    assert torch.equal(drop_path(x, p, training=False), x)


def test_dropped_block_is_its_shortcut_and_expectation_is_the_full_block():
    torch.manual_seed(0)
    block = PreActBasicBlock(BlockArgs(4, 4), drop_path=DropPath(0.5))
    block.eval()  # BN running stats; only DropPath is put in training mode below
    x = torch.randn(1, 4, 3, 3).expand(4000, -1, -1, -1)
    with torch.no_grad():
        full = block(x)  # eval: the full network, no rescaling
        torch.testing.assert_close(block(x), full, rtol=0, atol=0)
        block.drop_path.train()
        y = block(x)
    branch = full - x
    is_shortcut = (y - x).flatten(1).abs().amax(1) < 1e-6
    is_scaled = (y - (x + 2 * branch)).flatten(1).abs().amax(1) < 1e-5
    assert (is_shortcut ^ is_scaled).all()
    assert is_shortcut.float().mean().item() == pytest.approx(0.5, abs=0.04)
    torch.testing.assert_close(y.mean(0), full[0], atol=0.1 * branch.abs().max().item(), rtol=0)


def test_eval_mode_uses_the_full_network():
    torch.manual_seed(0)
    spec = preact_cifar_spec(11, "preact_bottleneck")
    stochastic = ResidualNet(spec, 10, drop_path_rate=0.5).train()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.manual_seed(1)
        outs = {stochastic(x).sum().item() for _ in range(6)}
        assert len(outs) > 1  # training is stochastic
        plain = ResidualNet(spec, 10)
        plain.load_state_dict(stochastic.state_dict())  # same weights and BN statistics
        stochastic.eval(), plain.eval()
        out = stochastic(x)
        torch.testing.assert_close(stochastic(x), out, rtol=0, atol=0)
        torch.testing.assert_close(plain(x), out, rtol=0, atol=0)  # no rescaling at test time
