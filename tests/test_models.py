"""Every registered model against its paper, plus the registry and layer contracts.

Kept cheap for a 2-core CPU: parameter and MAC counts run on the meta device
(no memory, no compute; torch.utils.flop_counter still sees every conv/matmul),
forward/backward use tiny inputs, and the 100M+-MAC-per-pixel nets (ResNet-101/152)
are only counted, never run.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from conftest import meta_model, n_params
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from models import (
    DropPath,
    NetSpec,
    ResidualNet,
    StageSpec,
    UnknownModelError,
    create_model,
    drop_path,
    drop_path_rates,
    free_knobs,
    list_models,
    model_info,
    resnet_zoo,
)
from models.resnet import cifar_spec, imagenet_spec
from models.resnet_blocks import PadShortcut

ALL_MODELS = list_models()
FORWARD_MAX_PARAMS = 30_000_000  # ResNet-101/152: parameter and MAC counts only


def count_macs(model: nn.Module, resolution: int) -> float:
    """Multiply-adds of one image in eval mode; FlopCounterMode counts 2 FLOPs per MAC."""
    device = next(model.parameters()).device
    x = torch.zeros(1, 3, resolution, resolution, device=device)
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 2


def blocks_of(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if hasattr(m, "zero_init_last")]


def printed_value(text: str) -> tuple[float, float]:
    """'0.27M' -> (270000.0, 5000.0): value and half a unit of the last printed digit."""
    scale = {"M": 1e6, "G": 1e9}[text[-1]]
    digits = text[:-1]
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    return float(digits) * scale, 0.5 * 10.0**-decimals * scale


# ---------------------------------------------------------------- every registered model


def test_registry_holds_the_resnet_papers_models():
    expected = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}
    expected |= {"resnet20", "resnet32", "resnet44", "resnet56", "resnet110"}
    assert expected <= set(ALL_MODELS)
    assert list_models("resnet1?") == ["resnet18"]
    assert list_models("resnet1*")[:4] == [  # natural order
        "resnet18",
        "resnet101",
        "resnet101_1x100d",
        "resnet110",
    ]
    assert list_models("no_such_*") == []


@pytest.mark.parametrize("name", ALL_MODELS)
def test_param_count_is_exact(name):
    info = model_info(name)
    assert info.params is not None, f"{name}: record the exact parameter count"
    assert n_params(meta_model(name)) == info.params


@pytest.mark.parametrize("name", [n for n in ALL_MODELS if model_info(n).paper_params])
def test_param_count_matches_the_papers_value(name):
    """Rounds to the printed figure, or is within 2% of it (the zoo issue's tolerance)."""
    info = model_info(name)
    value, half_unit = printed_value(info.paper_params)
    assert abs(info.params - value) <= max(half_unit, 0.02 * value), (
        info.params,
        info.paper_params,
    )


@pytest.mark.parametrize("name", [n for n in ALL_MODELS if model_info(n).paper_macs])
def test_macs_within_5_percent_of_the_papers_value(name):
    """``paper_macs`` as printed (e.g. "3.8e9"); the paper's convention may differ from the
    default knobs (ResNet: stride on the 1x1), so any recorded variant may be the one that matches."""
    info = model_info(name)
    paper = float(info.paper_macs)
    candidates = [info.macs] + [v.macs for v in info.macs_variants]
    assert any(abs(m - paper) <= 0.05 * paper for m in candidates if m), (candidates, paper)


MAC_CASES = [
    pytest.param(name, {}, model_info(name).macs, id=f"{name}")
    for name in ALL_MODELS
    if model_info(name).macs is not None
] + [
    pytest.param(name, dict(v.knobs), v.macs, id=name + "".join(f"-{k}={x}" for k, x in v.knobs))
    for name in ALL_MODELS
    for v in model_info(name).macs_variants
]


@pytest.mark.parametrize(("name", "knobs", "macs"), MAC_CASES)
def test_macs_match_reference(name, knobs, macs):
    # References are torchvision's GFLOPS metadata (3 decimals) or our analytic counts:
    # the zoo issue asks for 2% against torchvision, most entries agree to 0.1%.
    got = count_macs(meta_model(name, **knobs), model_info(name).resolution)
    assert got == pytest.approx(macs, rel=2e-2)


def test_resnet50_stride_placement_explains_3_8_vs_4_1_gmacs():
    v15 = count_macs(meta_model("resnet50", stride_on="3x3"), 224)
    v1 = count_macs(meta_model("resnet50", stride_on="1x1"), 224)
    assert v15 == pytest.approx(4.089e9, rel=5e-3)
    assert v1 == pytest.approx(3.858e9, rel=5e-3)  # the paper's Table 1 "3.8 x 10^9"


@pytest.mark.parametrize(
    ("name", "paper"), [("resnet50", 3.8e9), ("resnet101", 7.6e9), ("resnet152", 11.3e9)]
)
def test_resnet_default_is_the_msra_release_with_the_papers_macs(name, paper):
    """He et al. Table 1's FLOPs come from the MSRA Caffe release (stride on the first 1x1):
    the default knobs are within 2% of them (the 3.858e9 of ResNet-50 prints as "3.8") and
    nearer than the "v1.5" placement (ResNet-50: 4.089e9, +7.6%) (issue 24)."""
    got = count_macs(meta_model(name), 224)
    v15 = count_macs(meta_model(name, stride_on="3x3"), 224)
    assert got == pytest.approx(paper, rel=0.02)
    assert abs(got - paper) < abs(v15 - paper)
    assert got == count_macs(meta_model(name, stride_on="1x1"), 224)


def test_meta_device_counts_equal_real_counts():
    real = create_model("resnet20")
    assert count_macs(real, 32) == count_macs(meta_model("resnet20"), 32)
    assert n_params(real) == n_params(meta_model("resnet20"))


def _forward_macs(name: str) -> float:
    info = model_info(name)
    side = max(32 if info.resolution == 32 else 64, info.min_input)
    return count_macs(meta_model(name), side)


# forward only where it is cheap on 2 cores: by parameters and by the MACs of the test input
SMALL_MODELS = [
    n for n in ALL_MODELS if model_info(n).params < FORWARD_MAX_PARAMS and _forward_macs(n) < 2.5e9
]


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_forward_shape(name):
    info = model_info(name)
    side = max(32 if info.resolution == 32 else 64, info.min_input)  # ImageNet nets at 64x64: cheap
    # train mode: at init the BN running stats are (0, 1), so an eval-mode forward of a very
    # deep net without zero-init (resnet1202: 600 un-normalised residual adds) overflows
    model = create_model(name).train()
    with torch.no_grad():
        out = model(torch.randn(2, 3, side, side))
    assert out.shape == (2, info.num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["resnet20", "resnet18", "resnet50"])
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    # zero_init_residual=False: with zero gammas the first convs of each block
    # would get exactly-zero gradients at init and the check would be weaker.
    # drop_path_mode=sample where the family has modes: batch mode (the ResNet default, Huang et al.)
    # skips whole blocks, whose parameters then rightly get no gradient in that step
    # (tests/test_stochastic_depth.py checks that); here every parameter must be reachable.
    modes = {"drop_path_mode": "sample"} if "drop_path_mode" in free_knobs(name) else {}
    model = create_model(name, zero_init_residual=False, drop_path_rate=0.1, **modes).train()
    side = 32 if model_info(name).resolution == 32 else 64
    out = model(torch.randn(2, 3, side, side))
    F.cross_entropy(out, torch.tensor([0, 1])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert p.grad.abs().sum() > 0, f"{name}: {pname} got a zero gradient"


# ---------------------------------------------------------------- registry contract


def test_unknown_model_name_lists_close_names():
    with pytest.raises(UnknownModelError) as err:
        create_model("resnet5")
    message = str(err.value)
    assert "resnet50" in err.value.suggestions
    assert "resnet50" in message and "list_models()" in message
    assert not message.startswith("'")  # not KeyError's repr-quoting
    assert isinstance(err.value, KeyError)
    with pytest.raises(UnknownModelError, match="resnet18"):
        model_info("resnt18")
    with pytest.raises(UnknownModelError):
        free_knobs("densenet9000")


@pytest.mark.parametrize(
    ("name", "knob", "value"),
    [
        ("resnet50", "groups", 32),
        ("resnet50", "depth", 5),
        ("resnet50", "base_width", 128),
        ("resnet20", "shortcut", "B"),
        ("resnet20", "block", "bottleneck"),
        ("resnet18", "stride_on", "1x1"),  # a basic block has one stride position
    ],
)
def test_overriding_a_defining_field_raises(name, knob, value):
    with pytest.raises(ValueError, match=rf"{name}: '{knob}' is a defining field"):
        create_model(name, **{knob: value})


def test_entrypoint_called_directly_is_guarded_too():
    with pytest.raises(ValueError, match="defining field"):
        resnet_zoo.ENTRYPOINTS["resnet50"](groups=32)
    assert resnet_zoo.ENTRYPOINTS["resnet20"]().head.fc.out_features == 10  # num_classes: ModelInfo


def test_unknown_knob_lists_allowed_knobs():
    with pytest.raises(ValueError, match="unknown knob 'num_clases'") as err:
        create_model("resnet50", num_clases=10)
    assert "Did you mean: num_classes" in str(err.value)
    assert "Allowed knobs:" in str(err.value) and "drop_path_rate" in str(err.value)


def test_free_knobs_are_exposed_per_model():
    for name in ALL_MODELS:
        assert {"num_classes", "dropout"} <= free_knobs(name), name
    # drop-path wherever there is a residual branch to drop (not DenseNet's concatenation,
    # not MobileNet v1 or Inception-v4, which have no residual)
    for name in list_models("*res*") + list_models("efficientnet*") + list_models("highway*"):
        if name != "inception_v4":
            assert "drop_path_rate" in free_knobs(name), name
    for name in list_models("resnet*") + list_models("resnext*") + list_models("wrn*"):
        assert "zero_init_residual" in free_knobs(name), name
    assert "stride_on" in free_knobs("resnet50")
    assert "stride_on" not in free_knobs("resnet18")
    assert "groups" not in free_knobs("resnet50")


def test_free_knobs_change_the_head():
    assert meta_model("resnet20").head.fc.out_features == 10
    assert meta_model("resnet18").head.fc.out_features == 1000
    model = meta_model("resnet20", num_classes=100, dropout=0.2)
    assert model.head.fc.out_features == 100
    assert isinstance(model.head.dropout, nn.Dropout) and model.head.dropout.p == 0.2
    assert n_params(model) == model_info("resnet20").params + 90 * 65  # 90 more rows of 64 + bias


def test_bottleneck_stride_placement():
    v15, v1 = meta_model("resnet50", stride_on="3x3"), meta_model("resnet50")
    assert v15.s2.b1.conv1.conv.stride == (1, 1) and v15.s2.b1.conv2.conv.stride == (2, 2)
    assert v1.s2.b1.conv1.conv.stride == (2, 2) and v1.s2.b1.conv2.conv.stride == (1, 1)
    assert n_params(v1) == n_params(v15)


def test_two_differently_configured_models_coexist():
    a = ResidualNet(cifar_spec(1), 10, bn_eps=1e-3, bn_momentum=0.01)
    b = create_model("resnet20")
    c = ResidualNet(dataclasses.replace(cifar_spec(1), shortcut="B"), 7)
    bns = lambda m: [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]  # noqa: E731
    assert all(bn.eps == 1e-3 and bn.momentum == 0.01 for bn in bns(a))
    assert all(bn.eps == 1e-5 and bn.momentum == 0.1 for bn in bns(b))
    x = torch.randn(1, 3, 32, 32)
    for model, classes in ((a, 10), (b, 10), (c, 7)):
        assert model.eval()(x).shape == (1, classes)
    assert not any(isinstance(m, PadShortcut) for m in c.modules())
    assert a.spec.shortcut == "A" and c.spec.shortcut == "B"


# ---------------------------------------------------------------- layers and blocks


@pytest.mark.parametrize("n", [2, 3, 18, 54])
def test_drop_path_rates_are_linear_from_zero_to_max(n):
    rates = drop_path_rates(n, 0.2)
    assert len(rates) == n
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2)
    steps = [b - a for a, b in zip(rates, rates[1:], strict=False)]
    assert all(s > 0 for s in steps) and max(steps) == pytest.approx(min(steps))


def test_drop_path_rates_edge_cases():
    assert drop_path_rates(1, 0.3) == [0.3]  # a single block gets the full rate
    assert drop_path_rates(0, 0.3) == []
    assert drop_path_rates(4, 0.0) == [0.0] * 4
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError):
            drop_path_rates(4, bad)


def test_drop_path_function_and_module():
    x = torch.ones(4000, 3, 2, 2)
    assert drop_path(x, 0.5, training=False) is x
    assert drop_path(x, 0.0, training=True) is x
    y = drop_path(x, 0.25, training=True)
    per_sample = y.flatten(1)
    assert ((per_sample == 0).all(1) | (per_sample == 1 / 0.75).all(1)).all()  # whole samples
    assert y.mean().item() == pytest.approx(1.0, abs=0.05)  # expectation kept
    assert "p=0.1" in repr(DropPath(0.1))
    with pytest.raises(ValueError):
        DropPath(1.0)


def test_net_assigns_drop_path_by_global_block_index():
    model = meta_model("resnet20", drop_path_rate=0.1)
    got = [getattr(block.drop_path, "p", 0.0) for block in blocks_of(model)]
    assert got == drop_path_rates(
        9, 0.1, rule="huang"
    )  # the ResNet family's default rule (issue 15)
    timm = meta_model("resnet20", drop_path_rate=0.1, drop_path_rule="timm")
    assert [getattr(b.drop_path, "p", 0.0) for b in blocks_of(timm)] == drop_path_rates(9, 0.1)


def test_option_a_shortcut_is_parameter_free_subsample_and_pad():
    shortcut = PadShortcut(16, 32, stride=2)
    assert n_params(shortcut) == 0
    x = torch.randn(2, 16, 32, 32)
    y = shortcut(x)
    assert y.shape == (2, 32, 16, 16)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and not y[:, 16:].any()
    model = meta_model("resnet20")
    shortcuts = [b.shortcut for b in blocks_of(model)]
    assert sum(isinstance(s, PadShortcut) for s in shortcuts) == 2  # entering stages 2 and 3
    assert all(n_params(s) == 0 for s in shortcuts)


def test_option_b_cifar_counts_do_not_match_the_paper():
    # Projections (option B) give 272,474 / 466,906 params: resnet32 would print 0.47M,
    # not Table 6's 0.46M. This is why the CIFAR nets use option A (§4.2).
    counts = []
    for n in (3, 5):
        with torch.device("meta"):
            spec = dataclasses.replace(cifar_spec(n), shortcut="B")
            counts.append(n_params(ResidualNet(spec, 10)))
    assert counts == [272_474, 466_906]


def test_zero_init_residual_zeroes_last_bn_gamma():
    for name in ("resnet20", "resnet18"):
        assert all(
            b.conv2.bn.weight.eq(1).all() for b in blocks_of(create_model(name))
        )  # default off
        blocks = blocks_of(create_model(name, zero_init_residual=True))
        assert all(not b.conv2.bn.weight.any() for b in blocks)
        assert all(b.conv1.bn.weight.eq(1).all() for b in blocks)
        blocks = blocks_of(create_model(name, zero_init_residual=False))
        assert all(b.conv2.bn.weight.eq(1).all() for b in blocks)
    spec = NetSpec(stem="cifar", stages=(StageSpec(2, 8, 1),), block="bottleneck", stem_width=16)
    assert all(
        not b.conv3.bn.weight.any()
        for b in blocks_of(ResidualNet(spec, 10, zero_init_residual=True))
    )


# ---------------------------------------------------------------- later papers are spec fields


def _count_spec(spec: NetSpec, num_classes: int = 1000) -> int:
    with torch.device("meta"):
        return n_params(ResidualNet(spec, num_classes))


R50 = imagenet_spec("bottleneck", (3, 4, 6, 3))


@pytest.mark.parametrize(
    ("spec", "params", "macs"),
    [
        # torchvision metadata (paper_tables.md §3, §4); SENet §4 analytic (r = 16, FC bias)
        pytest.param(
            dataclasses.replace(R50, groups=32, base_width=4),
            25_028_904,
            4.230e9,
            id="resnext50_32x4d",
        ),
        pytest.param(
            dataclasses.replace(R50, base_width=128), 68_883_240, 11.398e9, id="wide_resnet50_2"
        ),
        pytest.param(dataclasses.replace(R50, se_ratio=1 / 16), 28_088_024, None, id="se_resnet50"),
    ],
)
def test_resnext_wrn_se_are_spec_fields(spec, params, macs):
    assert _count_spec(spec) == params
    if macs is not None:
        with torch.device("meta"):
            model = ResidualNet(spec)
        assert count_macs(model, 224) == pytest.approx(macs, rel=1e-3)


def test_preact_bottleneck_resnet164_matches_paper_and_trains():
    # He et al. 2016 Table 4: ResNet-164 (pre-act bottleneck, 9n+2, n=18) has 1.7M params.
    stages = (StageSpec(18, 16, 1), StageSpec(18, 32, 2), StageSpec(18, 64, 2))
    spec164 = NetSpec(stem="cifar", stages=stages, block="preact_bottleneck", stem_width=16)
    value, half_unit = printed_value("1.7M")
    assert abs(_count_spec(spec164, 10) - value) <= half_unit
    one_block_stages = tuple(dataclasses.replace(s, depth=1) for s in stages)
    tiny = dataclasses.replace(spec164, stages=one_block_stages)
    model = ResidualNet(tiny, 10, zero_init_residual=False)
    # pre-act: the stem's BN-ReLU feeds both paths of the first block (He et al. 2016 appendix)
    assert isinstance(model.stem.conv.bn, nn.BatchNorm2d)
    assert isinstance(model.s1.b1.norm1, nn.Identity)
    assert hasattr(model, "final_act")  # and the net adds one norm-act before the head
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None and p.grad.any() for p in model.parameters())


def test_per_stage_block_override_and_spec_validation():
    spec = NetSpec(
        stem="cifar",
        stages=(
            StageSpec(1, 16, 1),
            StageSpec(1, 16, 2, block="bottleneck", groups=2, base_width=32),
        ),
        block="basic",
        stem_width=16,
    )
    model = ResidualNet(spec, 10).eval()
    assert model.s2.b1.conv2.conv.groups == 2
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="pre-activation"):
        dataclasses.replace(spec, block="preact_basic")  # stage 2 stays post-act
    with pytest.raises(ValueError, match="stride_on"):
        dataclasses.replace(R50, stride_on="7x7")
    with pytest.raises(ValueError, match="stride"):
        StageSpec(1, 16, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        R50.groups = 32  # type: ignore[misc]
