"""MobileNet v1/v2 and EfficientNet: the `MBConvNet` family's own contracts.

The registry-wide checks (exact params, MACs, paper numbers, forward shape, torchvision
weights) live in tests/test_models.py and tests/test_zoo.py. Here: channel rounding and
repeat scaling, the compound-scaling formula against the published B1..B7 coefficients,
the SE and depthwise conventions, drop-path rates, knobs and errors. Counting runs on the
meta device; only mobilenet_v1_025 and efficientnet_b0 run a real backward, at 32x32.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from models import create_model, free_knobs, model_info
from models.complexity import count_macs, count_params
from models.efficientnet import (
    ALPHA,
    BETA,
    EFFICIENTNET_B0,
    EFFICIENTNET_PARAMS,
    GAMMA,
    TF_BN_EPS,
    TF_BN_MOMENTUM,
    compound_coefficients,
    efficientnet,
    efficientnet_spec,
    scaled_efficientnet,
)
from models.layers import ConvNormAct, DropPath, SqueezeExcite, drop_path_rates
from models.mobilenet import (
    DepthwiseSeparable,
    InvertedResidual,
    MBConvNet,
    MBNetSpec,
    MBStageSpec,
    mobilenet_v1_spec,
    mobilenet_v2_spec,
    round_channels,
    scale_repeats,
)


def meta(name: str, **knobs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **knobs)


def meta_net(spec: MBNetSpec, **knobs) -> MBConvNet:
    with torch.device("meta"):
        return MBConvNet(spec, **knobs)


def blocks(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (DepthwiseSeparable, InvertedResidual))]


# ---------------------------------------------------------------- scaling helpers


@pytest.mark.parametrize(
    ("channels", "expected"),
    [
        (32 * 1.0, 32),
        (32 * 1.1, 32),  # 35.2: nearest multiple of 8 is 32, only 9.1% below
        (16 * 1.1, 16),  # 17.6 -> 16 (B2's stage-2 width)
        (40 * 1.1, 48),  # 44 is halfway: rounds up
        (24 * 1.2, 32),  # 28.8 -> 32
        (320 * 1.4, 448),
        (1280 * 1.8, 2304),
        (32 * 0.25, 8),
        (3, 8),  # min_value defaults to the divisor
        (11.9, 16),  # nearest is 8, 33% below 11.9: bumped to 16
        (75, 72),  # 4% below: kept
    ],
)
def test_round_channels_cases(channels, expected):
    assert round_channels(channels) == expected


def test_round_channels_is_a_multiple_of_8_never_more_than_10_percent_below():
    for tenth in range(10, 40001, 7):  # 1.0 .. 4000.0
        c = tenth / 10
        r = round_channels(c)
        assert r % 8 == 0 and r >= 8
        assert r >= 0.9 * c, (c, r)
        # the nearest multiple, the minimum, or one step up when the nearest is >10% below
        assert abs(r - c) <= 4 or r == 8 or r - 8 < 0.9 * c, (c, r)
    assert round_channels(10, divisor=4) == 12 and round_channels(10, divisor=1) == 10
    assert round_channels(2, min_value=16) == 16
    for bad in ((0,), (-8,), (8, 0)):
        with pytest.raises(ValueError):
            round_channels(*bad)


@pytest.mark.parametrize(
    ("repeats", "depth", "expected"),
    [(1, 1.0, 1), (2, 1.0, 2), (1, 1.1, 2), (3, 1.1, 4), (3, 1.2, 4), (2, 2.2, 5), (4, 3.1, 13)],
)
def test_scale_repeats_takes_the_ceiling(repeats, depth, expected):
    assert scale_repeats(repeats, depth) == expected
    with pytest.raises(ValueError):
        scale_repeats(0, 1.0)


def test_b7_repeats_are_ceil_of_b0_times_3_1():
    spec = efficientnet_spec(2.0, 3.1)
    assert [s.repeats for s in spec.stages] == [4, 7, 7, 10, 10, 13, 4]
    assert [s.repeats for s in spec.stages] == [math.ceil(r.repeats * 3.1) for r in EFFICIENTNET_B0]
    assert spec.stem_width == 64 and spec.head_width == 2560
    assert [s.out_channels for s in spec.stages] == [32, 48, 80, 160, 224, 384, 640]


# ---------------------------------------------------------------- compound scaling


def test_compound_constants_satisfy_the_papers_constraint():
    # §3.3: alpha * beta^2 * gamma^2 ~ 2 (FLOPs grow ~2^phi); the grid-searched values give 1.92.
    assert ALPHA * BETA**2 * GAMMA**2 == pytest.approx(1.92, abs=0.005)
    assert compound_coefficients(0) == (1.0, 1.0, 224)
    d, w, r = compound_coefficients(2)
    assert (d, w, r) == (pytest.approx(1.44), pytest.approx(1.21), 296)
    with pytest.raises(ValueError):
        compound_coefficients(-1)


@pytest.mark.parametrize("phi", range(1, 8))
def test_compound_formula_vs_published_coefficients(phi):
    """How close is phi = n to the published B_n (TF `efficientnet_params`)?

    phi: d/pub    w/pub   r/pub      Widths and resolutions track the formula within 11% and
      1: 1.091   1.100   1.075      14% (within 3.5% from B4 on); the published depths are
      2: 1.200   1.100   1.138      always below it, by 9-24%. The published B1..B7 are
      3: 1.234   1.109   1.137      therefore not alpha^n, beta^n, gamma^n: the paper scaled
      4: 1.152   1.046   1.032      them "with different phi" and rounded by hand. Note that
      5: 1.131   1.007   0.989      phi = 1 is exactly B2's (w 1.1, d 1.2) architecture
      6: 1.148   0.984   0.981      (below), at 258 instead of 260 px.
      7: 1.156   0.974   0.993
    """
    d, w, r = compound_coefficients(phi)
    pub = EFFICIENTNET_PARAMS[f"b{phi}"]
    assert 1.0 < d / pub.depth <= 1.24
    assert abs(w / pub.width - 1) <= 0.11
    assert abs(r / pub.resolution - 1) <= 0.14
    if phi >= 4:
        assert abs(w / pub.width - 1) <= 0.05 and abs(r / pub.resolution - 1) <= 0.035


def test_compound_phi_1_is_b2_and_phi_0_is_b0():
    model, resolution = _meta_scaled(efficientnet, 1)
    assert resolution == 258
    assert count_params(model) == model_info("efficientnet_b2").params
    b0, res0 = _meta_scaled(efficientnet, 0)
    assert res0 == 224 and count_params(b0) == model_info("efficientnet_b0").params


def _meta_scaled(fn, *args, **kwargs):
    with torch.device("meta"):
        return fn(*args, **kwargs)


def test_compound_scaled_macs_grow_at_least_1_92_to_the_phi():
    # FLOPs ~ d * w^2 * r^2 = 1.92^phi (§3.3); ceil on the repeats (a 1-block stage at d = 1.2
    # becomes 2 blocks) and rounding only add, by at most 34% here (phi = 1).
    model, res = _meta_scaled(efficientnet, 0)
    base = count_macs(model, res)
    for phi in (1, 3, 5):
        model, res = _meta_scaled(efficientnet, phi)
        ratio = count_macs(model, res) / base
        assert 0.98 * 1.92**phi <= ratio <= 1.4 * 1.92**phi, (phi, ratio)


def test_single_dimension_scaling_helpers():
    base, r0 = _meta_scaled(scaled_efficientnet)
    wide, r1 = _meta_scaled(scaled_efficientnet, width=2.0)
    deep, r2 = _meta_scaled(scaled_efficientnet, depth=2.0)
    sharp, r3 = _meta_scaled(scaled_efficientnet, resolution=448)
    assert (r0, r1, r2, r3) == (224, 224, 224, 448)
    assert len(blocks(wide)) == len(blocks(base)) == 16 and len(blocks(deep)) == 32
    assert wide.num_features == 2560 and deep.num_features == sharp.num_features == 1280
    assert count_params(sharp) == count_params(base)  # resolution changes compute, not weights
    assert count_macs(sharp, r3) == pytest.approx(4 * count_macs(base, r0), rel=0.02)
    bns = [m for m in base.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(bn.eps == TF_BN_EPS and bn.momentum == TF_BN_MOMENTUM for bn in bns)
    with pytest.raises(ValueError):
        scaled_efficientnet(resolution=16)


# ---------------------------------------------------------------- blocks and conventions


def test_se_width_is_a_quarter_of_the_block_input_channels():
    model = meta("efficientnet_b0")
    checked = 0
    for block in blocks(model):
        first = block.expand if isinstance(block.expand, ConvNormAct) else block.dw
        c_in = first.conv.in_channels
        hidden = block.dw.conv.out_channels
        assert isinstance(block.se, SqueezeExcite)
        assert block.se.fc1.in_channels == hidden  # SE acts on the expanded channels
        assert block.se.fc1.out_channels == max(1, c_in // 4)  # squeeze from the INPUT width
        assert isinstance(block.se.act, nn.SiLU)
        checked += 1
    assert checked == 16
    first, second = model.s1.b1, model.s2.b1  # MBConv1 32 -> 16, MBConv6 16 -> 24
    assert first.se.fc1.out_channels == 8 and second.se.fc1.out_channels == 4
    assert second.se.fc1.in_channels == 96


def test_depthwise_convs_have_groups_equal_to_channels():
    for name in ("mobilenet_v1", "mobilenet_v2", "efficientnet_b3"):
        for block in blocks(meta(name)):
            conv = block.dw.conv
            assert conv.groups == conv.in_channels == conv.out_channels
            assert conv.weight.shape[1] == 1  # one k x k filter per channel
            assert conv.kernel_size[0] in (3, 5)
    kernels = [b.dw.conv.kernel_size[0] for b in blocks(meta("efficientnet_b0"))]
    assert kernels == [3] + [3] * 2 + [5] * 2 + [3] * 3 + [5] * 3 + [5] * 4 + [3]


def test_mobilenet_v1_body_follows_table_1():
    model = meta("mobilenet_v1")
    bs = blocks(model)
    assert len(bs) == 13 and all(isinstance(b, DepthwiseSeparable) for b in bs)
    widths = [64, 128, 128, 256, 256] + [512] * 6 + [1024, 1024]
    assert [b.pw.conv.out_channels for b in bs] == widths
    assert [b.dw.conv.stride[0] for b in bs] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    # BN-ReLU6 after both convs: TF-slim's mobilenet_v1_arg_scope (Fig. 3 draws ReLU: act=relu)
    assert all(isinstance(b.pw.act, nn.ReLU6) and isinstance(b.dw.act, nn.ReLU6) for b in bs)
    assert isinstance(model.stem.act, nn.ReLU6)
    fig3 = blocks(meta("mobilenet_v1", act="relu"))
    assert all(type(b.pw.act) is nn.ReLU and type(b.dw.act) is nn.ReLU for b in fig3)
    assert not hasattr(model, "head_conv") and model.head.fc.in_features == 1024
    x = torch.zeros(1, 3, 224, 224, device="meta")
    assert model.s5(model.s4(model.s3(model.s2(model.s1(model.stem(x)))))).shape[-1] == 7


def test_mobilenet_v2_follows_table_2():
    model = meta("mobilenet_v2")
    bs = blocks(model)
    assert len(bs) == 17 and isinstance(bs[0].expand, nn.Identity)  # t = 1: no expansion conv
    assert [b.project.conv.out_channels for b in bs] == (
        [16] + [24] * 2 + [32] * 3 + [64] * 4 + [96] * 3 + [160] * 3 + [320]
    )
    assert [b.has_residual for b in bs].count(True) == 10  # stride 1, same width
    assert not hasattr(bs[0].project, "act")  # linear bottleneck (§3.2)
    assert isinstance(bs[1].dw.act, nn.ReLU6) and model.head_conv.conv.out_channels == 1280
    assert isinstance(model.head.dropout, nn.Dropout) and model.head.dropout.p == 0.2


def test_mobilenet_v2_width_multiplier_keeps_1280_below_one():
    # §5.1: the last conv keeps 1280 channels for multipliers < 1; tv scales it above 1.
    assert mobilenet_v2_spec(0.5).head_width == 1280 and mobilenet_v2_spec(0.5).stem_width == 16
    assert mobilenet_v2_spec(1.4).head_width == 1792
    # Table 4's MobileNetV2 (1.4): 585M MAdds (ours 582.2M). Its printed 6.9M params do not
    # follow from the architecture (ours: 6.11M), which is why it is not registered.
    model = meta_net(mobilenet_v2_spec(1.4))
    assert count_macs(model, 224) == pytest.approx(585e6, rel=0.01)
    assert count_params(model) == 6_108_776


def test_se_is_a_knob_of_the_mobilenet_blocks():
    # SENet (Hu et al.) Table 3: SE-MobileNet 4.7M params, 572M MAdds (r = 16, SE on the
    # pointwise output); MobileNet 4.2M, 569M.
    plain = meta_net(mobilenet_v1_spec(1.0))
    se = meta_net(mobilenet_v1_spec(1.0, se_ratio=1 / 16))
    assert not any(isinstance(m, SqueezeExcite) for m in plain.modules())
    for b in blocks(se):
        assert isinstance(b.se, SqueezeExcite)
        assert b.se.fc1.out_channels == b.pw.conv.out_channels // 16
    assert count_params(se) == 4_718_044  # rounds to 4.7M
    assert count_macs(se, 224) == pytest.approx(572e6, rel=0.01)
    se_v2 = meta_net(mobilenet_v2_spec(1.0, se_ratio=0.25))
    for b in blocks(se_v2):
        c_in = b.dw.conv.in_channels if b is blocks(se_v2)[0] else b.expand.conv.in_channels
        assert b.se.fc1.out_channels == c_in // 4 and b.se.fc1.in_channels == b.dw.conv.out_channels
    assert isinstance(blocks(se_v2)[1].se.act, nn.ReLU6)  # SE uses the block's activation
    assert not any(isinstance(m, SqueezeExcite) for m in meta("mobilenet_v2").modules())


# ---------------------------------------------------------------- drop-path


def test_drop_path_rates_monotone_and_last_is_the_configured_rate():
    model = meta("efficientnet_b0", drop_path_rate=0.3)
    rates = model.drop_path_rates
    assert len(rates) == 16 and rates == drop_path_rates(16, 0.3, "tf")  # the family's default rule
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3 * 15 / 16)
    timm = meta("efficientnet_b0", drop_path_rate=0.3, drop_path_rule="timm").drop_path_rates
    assert timm[-1] == pytest.approx(0.3)
    assert all(b > a for a, b in zip(rates, rates[1:], strict=False))
    # Only residual blocks carry a DropPath, with their global-index rate.
    for block, rate in zip(blocks(model), rates, strict=False):
        if block.has_residual and rate > 0:
            assert isinstance(block.drop_path, DropPath)
            assert block.drop_path.p == pytest.approx(rate)
        else:
            assert isinstance(block.drop_path, nn.Identity)
    assert not blocks(model)[-1].has_residual  # 192 -> 320: the full rate is never applied
    assert model.spec.has_residual and not meta("mobilenet_v1").spec.has_residual
    b4 = meta("efficientnet_b4").drop_path_rates
    assert b4[-1] == pytest.approx(0.2 * (len(b4) - 1) / len(b4))  # paper default 0.2, TF rule i/N


def test_drop_path_rule_vs_torchvision():
    """torchvision (and TF) use rate * i / N, our EfficientNet default (drop_path_rule='tf')."""
    with torch.device("meta"):
        tv = torchvision.models.efficientnet_b0()
    tv_rates = [m.p for m in tv.modules() if type(m).__name__ == "StochasticDepth"]
    ours = meta("efficientnet_b0").drop_path_rates
    n = len(ours)
    assert len(tv_rates) == n == 16
    assert ours == pytest.approx(tv_rates, abs=1e-12)


# ---------------------------------------------------------------- gradients and knobs


@pytest.mark.parametrize("name", ["mobilenet_v1_025", "efficientnet_b0"])
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    knobs = {"drop_path_rate": 0.1} if name.startswith("efficientnet") else {}
    model = create_model(name, num_classes=5, **knobs).train()
    out = model(torch.randn(2, 3, 32, 32))
    F.cross_entropy(out, torch.tensor([0, 1])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert p.grad.abs().sum() > 0, f"{name}: {pname} got a zero gradient"


@pytest.mark.parametrize(
    ("name", "paper"),
    [
        ("mobilenet_v1", 4.2e6),
        ("mobilenet_v1_075", 2.6e6),
        ("mobilenet_v1_050", 1.3e6),
        ("mobilenet_v1_025", 0.5e6),
    ],
)
def test_v1_width_multipliers_match_table_6(name, paper):
    params = count_params(meta(name))
    assert abs(params - paper) <= max(0.05e6, 0.02 * paper)  # printed to 0.1M
    alpha = {
        "mobilenet_v1": 1.0,
        "mobilenet_v1_075": 0.75,
        "mobilenet_v1_050": 0.5,
        "mobilenet_v1_025": 0.25,
    }[name]
    paper_macs = float(model_info(name).paper_macs)
    assert count_macs(meta(name), 224) == pytest.approx(paper_macs, rel=0.01)
    assert meta(name).head.fc.in_features == int(1024 * alpha)


def test_v1_rejects_residual_knobs():
    create_model("mobilenet_v1_025", drop_path_rate=0.0, zero_init_residual=False)  # defaults pass
    with pytest.raises(ValueError, match="no residual blocks"):
        create_model("mobilenet_v1_025", drop_path_rate=0.1)
    with pytest.raises(ValueError, match="no residual blocks"):
        create_model("mobilenet_v1_025", zero_init_residual=True)


def test_zero_init_residual_only_touches_residual_blocks():
    model = create_model("efficientnet_b0", zero_init_residual=True)
    for block in blocks(model):
        gamma = block.project.bn.weight
        assert (not gamma.any()) if block.has_residual else gamma.eq(1).all()
    assert all(b.project.bn.weight.eq(1).all() for b in blocks(create_model("mobilenet_v2")))
    with pytest.raises(ValueError, match="without a residual"):
        blocks(model)[0].zero_init_last()


@pytest.mark.parametrize(
    ("name", "knob", "value"),
    [
        ("efficientnet_b0", "width_mult", 1.1),
        ("efficientnet_b0", "se_ratio", 0.0),
        ("mobilenet_v1", "alpha", 0.5),
        ("mobilenet_v2", "act", "relu"),
        ("efficientnet_b3", "stages", ()),
    ],
)
def test_overriding_a_defining_field_raises(name, knob, value):
    with pytest.raises(ValueError, match=rf"{name}: '{knob}' is a defining field"):
        create_model(name, **{knob: value})


def test_free_knobs_and_defaults():
    for name in ("mobilenet_v1", "mobilenet_v2", "efficientnet_b0"):
        knobs = {"num_classes", "dropout", "drop_path_rate", "bn_eps", "bn_momentum"}
        assert knobs <= free_knobs(name)
    with pytest.raises(ValueError, match="unknown knob 'drop_rate'"):
        create_model("efficientnet_b0", drop_rate=0.2)
    names = ("mobilenet_v1", "efficientnet_b0", "efficientnet_b7")
    dropouts = {n: meta(n).head.dropout for n in names}
    assert isinstance(dropouts["mobilenet_v1"], nn.Identity)
    assert dropouts["efficientnet_b0"].p == 0.2 and dropouts["efficientnet_b7"].p == 0.5
    assert meta("efficientnet_b7", dropout=0.1).head.dropout.p == 0.1
    assert meta("efficientnet_b0", num_classes=10).head.fc.out_features == 10
    assert meta("mobilenet_v2", drop_path_rate=0.1).drop_path_rates[-1] == pytest.approx(
        0.1 * 16 / 17
    )


def bn_of(model):
    return {(m.eps, m.momentum) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}


@pytest.mark.parametrize(
    ("name", "bn"),
    [(f"efficientnet_b{i}", (1e-3, 0.01)) for i in range(8)]  # TF builder: decay 0.99, eps 1e-3
    + [("mobilenet_v1", (1e-3, 3e-4))]  # slim mobilenet_v1_arg_scope: decay 0.9997, eps 0.001
    + [("mobilenet_v1_025", (1e-3, 3e-4))]
    + [("mobilenet_v2", (1e-3, 3e-3)), ("mobilenet_v2_140", (1e-3, 3e-3))],  # slim: decay 0.997
)
def test_every_bn_has_the_released_codes_settings(name, bn):
    """Issue 24: the default is the variant the paper's numbers were trained with; PyTorch
    momentum = 1 - TF decay."""
    assert bn_of(meta(name)) == {bn}


def test_bn_defaults_are_knobs_and_two_configs_coexist():
    # torchvision's B0-B4 weights were trained in PyTorch (eps 1e-5, momentum 0.1): a knob away.
    assert bn_of(meta("efficientnet_b0", bn_eps=1e-5, bn_momentum=0.1)) == {(1e-5, 0.1)}
    assert bn_of(meta("efficientnet_b0")) == {(1e-3, 0.01)}
    assert dict(model_info("efficientnet_b0").torchvision_knobs) == {
        "bn_eps": 1e-5,
        "bn_momentum": 0.1,
    }
    assert model_info("efficientnet_b5").torchvision_knobs == ()


def test_spec_validation():
    row = EFFICIENTNET_B0[1]
    with pytest.raises(ValueError, match="stage 2 takes 24"):
        MBNetSpec(32, (EFFICIENTNET_B0[0], dataclasses.replace(row, in_channels=24)), 1280, "silu")
    with pytest.raises(ValueError, match="kernel"):
        dataclasses.replace(row, kernel=4)
    with pytest.raises(ValueError, match="expansion"):
        MBStageSpec(6, 3, 1, 32, 64, 1, block="ds")
    with pytest.raises(ValueError, match="stride"):
        dataclasses.replace(row, stride=3)
    with pytest.raises(ValueError, match="act"):
        MBNetSpec(32, EFFICIENTNET_B0, 1280, "gelu")  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.repeats = 3  # type: ignore[misc]
    spec = MBNetSpec(16, [MBStageSpec(1, 3, 1, 16, 16, 2, se_ratio=0.25)], None, "relu6")
    assert isinstance(spec.stages, tuple) and spec.num_blocks == 2 and spec.num_features == 16
    model = MBConvNet(spec, 3).eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)
