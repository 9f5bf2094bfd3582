"""Inception-v4 / Inception-ResNet-v1/v2 (Szegedy et al. 2016, arXiv 1602.07261).

The generic registry tests (tests/test_models.py) check counts and a forward; here: the
residual scale, grids and widths at 299, the smallest input, gradients, SE, drop-path,
the knobs and their errors, and the reference counts the paper itself does not print.
Shape-only checks run on the meta device; real forwards use 75 px (the smallest input).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models import create_model, drop_path_rates, list_models, model_info
from models.complexity import count_macs, count_params
from models.inception_resnet import InceptionBlock, InceptionResNet
from models.inception_specs import (
    AVG_POOL,
    BlockSpec,
    Conv,
    InceptionSpec,
    InceptionStage,
    Pool,
    branch,
    conv,
    inception_resnet_v1_spec,
    inception_resnet_v2_fig15_spec,
    inception_resnet_v2_spec,
    inception_v4_spec,
    resnet_a,
)
from models.layers import DropPath, SqueezeExcite

NAMES = ("inception_resnet_v1", "inception_resnet_v2", "inception_resnet_v2_fig15", "inception_v4")
SPECS = {
    "inception_resnet_v1": inception_resnet_v1_spec,
    "inception_resnet_v2": inception_resnet_v2_spec,
    "inception_resnet_v2_fig15": inception_resnet_v2_fig15_spec,
    "inception_v4": inception_v4_spec,
}
MIN_INPUT = 75


def meta_net(spec: InceptionSpec, **kw) -> InceptionResNet:
    with torch.device("meta"):
        return InceptionResNet(spec, **kw)


def residual_blocks(model: nn.Module) -> list[InceptionBlock]:
    return [m for m in model.modules() if isinstance(m, InceptionBlock) and m.residual]


# ---------------------------------------------------------------- registry entries


def test_registered_with_paper_metadata():
    assert set(NAMES) <= set(list_models("inception*"))
    for name in NAMES:
        info = model_info(name)
        assert info.family == "inception_resnet" and "1602.07261" in info.paper
        assert info.resolution == 299 and info.min_input == MIN_INPUT
        assert info.torchvision is None  # torchvision has none of these
        assert info.paper_params is None and info.paper_macs is None  # the paper prints none
        assert info.notes
    assert (model_info("inception_v4").top1_err, model_info("inception_resnet_v2").top1_err) == (
        20.0,
        19.9,
    )


# ---------------------------------------------------------------- grids and widths (§2, Figures 9/15)


@pytest.mark.parametrize(
    ("name", "widths"),
    [
        ("inception_resnet_v1", (256, 896, 1792)),  # Fig. 14; Table 1 k,l,m,n = 192,192,256,384
        ("inception_resnet_v2_fig15", (384, 1152, 2144)),  # Fig. 3; 256,256,384,384; Fig. 18
        ("inception_v4", (384, 1024, 1536)),  # Fig. 3; 192,224,256,384; Fig. 8
    ],
)
def test_grids_after_stem_and_reductions_at_299(name, widths):
    with torch.device("meta"):
        model = create_model(name).eval()
    shapes = {}
    for part in ("stem", "a", "reduction_a", "b", "reduction_b", "c"):
        getattr(model, part).register_forward_hook(
            lambda _m, _i, out, part=part: shapes.__setitem__(part, tuple(out.shape[1:]))
        )
    assert model(torch.zeros(1, 3, 299, 299, device="meta")).shape == (1, 1000)
    (c35, c17, c8) = widths
    assert shapes["stem"] == shapes["a"] == (c35, 35, 35)
    assert shapes["reduction_a"] == shapes["b"] == (c17, 17, 17)
    assert shapes["reduction_b"] == shapes["c"] == (c8, 8, 8)
    assert model.num_features == c8 and model.head.fc.in_features == c8


def test_v2_up_projection_uses_the_input_width_not_the_printed_1154_2048():
    model = meta_net(inception_resnet_v2_fig15_spec())
    assert model.b.b1.up.out_channels == 1152  # Fig. 17 prints 1154
    assert model.c.b1.up.out_channels == 2144  # Fig. 19 prints 2048
    assert model.a.b1.up.out_channels == 384


def test_min_input_is_the_smallest_side_that_works():
    # Valid-padded stem and reductions: 75 -> 37 -> 35 -> 17 -> 15 -> 7 -> 3 -> 1.
    for name in NAMES:
        with torch.device("meta"):
            model = create_model(name).eval()
            assert model(torch.zeros(1, 3, MIN_INPUT, MIN_INPUT)).shape == (1, 1000)
            with pytest.raises(RuntimeError, match="(?i)too small|kernel size"):
                model(torch.zeros(1, 3, MIN_INPUT - 1, MIN_INPUT - 1))


def test_eval_output_at_299():
    model = create_model("inception_resnet_v1", num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 299, 299))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


# ---------------------------------------------------------------- residual blocks (§3.1-3.3)


def _block(scale: float) -> InceptionBlock:
    torch.manual_seed(0)
    return InceptionBlock(16, resnet_a((32, 48, 64)), residual_scale=scale).eval()


def test_residual_scale_zero_makes_the_block_relu_of_its_input():
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        assert torch.equal(_block(0.0)(x), F.relu(x))
        assert torch.equal(_block(0.0)(x.relu()), x.relu())  # identity on non-negative inputs


def test_residual_scale_multiplies_the_branch_before_the_addition():
    x = torch.randn(2, 16, 9, 9) + 100.0  # large and positive: the final ReLU is the identity
    with torch.no_grad():
        full, tenth = _block(1.0)(x) - x, _block(0.1)(x) - x  # same seed, same weights
    assert full.abs().max() > 0
    torch.testing.assert_close(tenth, 0.1 * full, rtol=1e-4, atol=1e-4)


def test_residual_branch_is_linear_up_projection_without_bn():
    block = _block(0.2)
    assert isinstance(block.up, nn.Conv2d) and block.up.bias is not None  # "1x1 Conv (Linear)"
    assert block.up.in_channels == 32 + 32 + 64 and block.up.out_channels == 16
    assert all(bn.eps == 1e-3 for bn in block.modules() if isinstance(bn, nn.BatchNorm2d))


def test_default_and_overridden_residual_scales():
    # Defaults: TF-slim block35/17/8 = 0.17 / 0.10 / 0.20, within §3.3's 0.1-0.3.
    model = meta_net(inception_resnet_v1_spec())
    assert [model.a.b1.residual_scale, model.b.b1.residual_scale, model.c.b1.residual_scale] == [
        0.17,
        0.10,
        0.20,
    ]
    with torch.device("meta"):
        same = create_model("inception_resnet_v2_fig15", residual_scales=0.3)
        mixed = create_model(
            "inception_resnet_v2_fig15", residual_scales={"a": 0.1, "b": 0.2, "c": 0.3}
        )
    assert {b.residual_scale for b in residual_blocks(same)} == {0.3}
    assert [mixed.a.b5.residual_scale, mixed.b.b10.residual_scale, mixed.c.b1.residual_scale] == [
        0.1,
        0.2,
        0.3,
    ]
    with pytest.raises(ValueError, match=r"missing \['c'\]"):
        meta_net(inception_resnet_v1_spec(), residual_scales={"a": 0.1, "b": 0.1})
    with pytest.raises(ValueError, match=r"unknown \['d'\]"):
        meta_net(
            inception_resnet_v1_spec(), residual_scales={"a": 0.1, "b": 0.1, "c": 0.1, "d": 1.0}
        )
    with pytest.raises(ValueError, match=r"unknown \['reduction_a'\]"):  # not a residual stage
        meta_net(
            inception_resnet_v1_spec(), residual_scales={"a": 1, "b": 1, "c": 1, "reduction_a": 1}
        )
    custom = InceptionSpec((), (InceptionStage("x", resnet_a((32, 32, 32))),))
    with pytest.raises(ValueError, match=r"missing \['x'\]"):  # no default for a new stage name
        meta_net(custom)
    assert meta_net(custom, residual_scales=0.25).x.b1.residual_scale == 0.25
    with pytest.raises(ValueError, match="residual_scale must be >= 0"):
        meta_net(inception_resnet_v1_spec(), residual_scales=-0.1)


def test_zero_init_residual_starts_every_residual_block_as_relu():
    spec = InceptionSpec((), (InceptionStage("a", resnet_a((32, 32, 32)), depth=3),))
    model = InceptionResNet(spec, 10, in_chans=16, zero_init_residual=True).eval()
    assert all(not b.up.weight.any() and not b.up.bias.any() for b in residual_blocks(model))
    x = torch.randn(1, 16, 5, 5).relu()
    with torch.no_grad():
        assert torch.equal(model.a(x), x)  # three blocks of ReLU(x + 0) on a non-negative input
    assert InceptionResNet(spec, 10, in_chans=16).a.b1.up.weight.any()  # default off
    with torch.device("meta"):
        assert create_model("inception_resnet_v2", zero_init_residual=True).c.b5.up.weight.is_meta
    with pytest.raises(ValueError, match="unknown knob 'zero_init_residual'"):
        create_model("inception_v4", zero_init_residual=True)


def test_inception_v4_has_no_residual_blocks():
    model = meta_net(inception_v4_spec())
    assert not residual_blocks(model)
    assert not any(hasattr(m, "up") for m in model.modules())
    assert len(model.a) == 4 and len(model.b) == 7 and len(model.c) == 3  # Figure 9
    ir = meta_net(inception_resnet_v2_fig15_spec())
    assert len(ir.a) == 5 and len(ir.b) == 10 and len(ir.c) == 5  # Figure 15
    assert len(residual_blocks(ir)) == 20
    released = meta_net(inception_resnet_v2_spec())  # TF-slim: 10 / 20 / 9 + 1
    assert (len(released.a), len(released.b), len(released.c), len(released.c_last)) == (
        10,
        20,
        9,
        1,
    )
    assert len(residual_blocks(released)) == 40


# ---------------------------------------------------------------- gradients, drop-path, SE


def _assert_all_grads(model: nn.Module, x: torch.Tensor) -> None:
    out = model(x)
    F.cross_entropy(out, torch.arange(x.shape[0]) % out.shape[1]).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert p.grad.abs().sum() > 0, f"{pname} got a zero gradient"


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = create_model("inception_resnet_v1", num_classes=10).train()
    _assert_all_grads(model, torch.randn(2, 3, MIN_INPUT, MIN_INPUT))


def test_every_parameter_gets_a_gradient_in_the_figure_3_stem_and_v4_blocks():
    # Inception-v4 with one block per stage: the Fig. 3 stem (shared with v2) and Figures
    # 4-8 once each. The residual v2 blocks differ from v1's (run in full above) in widths only.
    spec = inception_v4_spec()
    spec = dataclasses.replace(
        spec, stages=tuple(dataclasses.replace(s, depth=1) for s in spec.stages)
    )
    torch.manual_seed(0)
    _assert_all_grads(InceptionResNet(spec, 10), torch.randn(2, 3, MIN_INPUT, MIN_INPUT))


def test_drop_path_rates_run_over_the_residual_blocks_only():
    with torch.device("meta"):
        model = create_model("inception_resnet_v1", drop_path_rate=0.2)
    rates = [
        b.drop_path.p if isinstance(b.drop_path, DropPath) else 0.0 for b in residual_blocks(model)
    ]
    assert rates == drop_path_rates(20, 0.2)  # the deepest C block gets the full rate
    assert not any(isinstance(m, DropPath) for m in model.reduction_a.modules())
    with pytest.raises(ValueError, match="needs residual blocks"):
        meta_net(inception_v4_spec(), drop_path_rate=0.1)
    with pytest.raises(ValueError, match="unknown knob 'drop_path_rate'"):
        create_model("inception_v4", drop_path_rate=0.1)


def test_drop_path_drops_the_scaled_branch_in_training_only():
    torch.manual_seed(0)
    spec = resnet_a((32, 48, 64))
    block = InceptionBlock(16, spec, residual_scale=0.2, drop_path=DropPath(0.5))
    x = torch.randn(32, 16, 3, 3) + 100.0  # positive: the ReLU after the addition is the identity
    with torch.no_grad():
        kept = (block(x) - x).flatten(1).abs().amax(1) > 0  # per sample: branch kept or dropped
        assert 0 < kept.sum() < 32
        block.eval()
        assert torch.equal(block(x), block(x))
        assert ((block(x) - x).flatten(1).abs().amax(1) > 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_se_knob_adds_parameters(name):
    plain, se = meta_net(SPECS[name]()), meta_net(SPECS[name](se_ratio=1 / 16))
    units = [m for m in se.modules() if isinstance(m, SqueezeExcite)]
    se_stages = [getattr(se, st.name) for st in se.spec.stages if st.se]
    assert len(units) == sum(map(len, se_stages))  # the A/B/C blocks, not stem/reductions
    assert not any(isinstance(m, SqueezeExcite) for m in se.reduction_a.modules())
    c = units[-1].fc1.in_channels
    assert units[-1].fc1.out_channels == round(c / 16)  # C/r of the block's output width
    added = sum(count_params(u) for u in units)
    assert count_params(se) == count_params(plain) + added and added > 0


def test_se_trains_in_residual_and_plain_blocks_and_is_a_defining_field():
    torch.manual_seed(0)
    plain = BlockSpec((branch(conv(8)), branch(AVG_POOL, conv(8, (1, 3)))))
    for spec in (resnet_a((32, 48, 64)), plain):
        block = InceptionBlock(16, spec, residual_scale=0.2, se_ratio=0.25)
        block(torch.randn(2, 16, 5, 5)).square().sum().backward()
        assert isinstance(block.se, SqueezeExcite) and block.se.fc1.out_channels == 4
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.se.parameters())
    with pytest.raises(ValueError, match="'se_ratio' is a defining field"):
        create_model("inception_resnet_v2", se_ratio=1 / 16)


# ---------------------------------------------------------------- knobs, specs, errors


def test_free_knobs_and_defining_fields():
    model = create_model("inception_v4", num_classes=7, dropout=0.0, bn_eps=1e-5, in_chans=1)
    assert model.head.fc.out_features == 7 and isinstance(model.head.dropout, nn.Identity)
    assert model.stem.b1.branches[0].layers.conv1.conv.in_channels == 1
    assert all(bn.eps == 1e-5 for bn in model.modules() if isinstance(bn, nn.BatchNorm2d))
    assert create_model("inception_resnet_v1").head.dropout.p == 0.2  # Fig. 15 "keep 0.8"
    for knob, value in (("depth", 3), ("stages", ()), ("k", 256), ("residual", False)):
        with pytest.raises(ValueError, match=f"'{knob}' is a defining field"):
            create_model("inception_resnet_v1", **{knob: value})


def test_spec_validation():
    with pytest.raises(ValueError, match="odd kernel"):
        Conv(32, (2, 3))
    with pytest.raises(ValueError, match="stride"):
        conv(32, 3, stride=3)
    with pytest.raises(ValueError, match="kind"):
        Pool("min")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keep the grid size"):
        BlockSpec((branch(conv(32, 3, 2)),), residual=True)
    stage = InceptionStage("a", resnet_a((32, 32, 32)))
    with pytest.raises(ValueError, match="unique"):
        InceptionSpec((), (stage, stage))
    with pytest.raises(ValueError, match="identifier"):
        InceptionStage("head", resnet_a((32, 32, 32)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        inception_v4_spec().se_ratio = 0.5  # type: ignore[misc]
    assert conv(64, (7, 1)).kernel == (7, 1) and conv(96, 3).kernel == (3, 3)


# ---------------------------------------------------------------- reference counts


def test_inception_v4_matches_the_third_party_count():
    # paper_tables.md §7: 42.68M; timm inception_v4.tf_in1k card: 42.7M params, 12.3 GMACs.
    model = meta_net(inception_v4_spec())
    assert count_params(model) == 42_679_816
    assert count_macs(model, 299) == pytest.approx(12.3e9, rel=5e-3)


def test_the_released_inception_resnet_v2_counts_and_grids():
    # TF-slim inception_resnet_v2.py: 55,843,464 with PyTorch's affine BN, 13.16 GMACs at 299
    released = meta_net(inception_resnet_v2_spec())
    params = count_params(released)
    bn_channels = sum(m.num_features for m in released.modules() if isinstance(m, nn.BatchNorm2d))
    assert params == 55_843_464 == model_info("inception_resnet_v2").params
    assert params - bn_channels == 55_813_192  # TF-slim trains BN without gamma (scale=False)
    assert params + bn_channels == 55_873_736  # Keras Applications: + moving mean and variance
    assert count_macs(released, 299) == pytest.approx(13.16e9, rel=1e-3)
    assert model_info("inception_resnet_v2_fig15").params == 32_433_928  # Figure 15 as drawn
    assert model_info("inception_resnet_v2_fig15").top1_err is None
    shapes = {}
    for part in ("stem", "a", "reduction_a", "b", "reduction_b", "c", "c_last", "conv7b"):
        getattr(released, part).register_forward_hook(
            lambda _m, _i, out, part=part: shapes.__setitem__(part, tuple(out.shape[1:]))
        )
    released.eval()(torch.zeros(1, 3, 299, 299, device="meta"))
    assert shapes["stem"] == shapes["a"] == (320, 35, 35)  # Mixed_5b
    assert shapes["reduction_a"] == shapes["b"] == (1088, 17, 17)  # Mixed_6a
    assert shapes["reduction_b"] == shapes["c_last"] == (2080, 8, 8)  # Mixed_7a
    assert shapes["conv7b"] == (1536, 8, 8) and released.num_features == 1536
    assert released.c.b9.residual_scale == 0.20 and released.c_last.b1.residual_scale == 1.0
    assert isinstance(released.c.b9.act, nn.ReLU) and isinstance(
        released.c_last.b1.act, nn.Identity
    )
