"""DenseNet and highway-network families: their own behaviour beyond the registry-wide checks
of test_models.py / test_zoo.py (counts, MACs, forward shape, torchvision conversion).

Cheap on a 2-core CPU: counts on the meta device, forward/backward on tiny specs and inputs.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from conftest import meta_model, n_params
from torch import nn

from models import create_model, free_knobs, model_info
from models.densenet import (
    DenseLayer,
    DenseNet,
    DenseNetSpec,
    Transition,
    cifar_bc_spec,
    imagenet_spec,
)
from models.highway import (
    GATE_BIAS,
    HighwayLayer,
    HighwayNet,
    HighwayNetSpec,
    HighwayStageSpec,
    cifar_spec_19,
    cifar_spec_32,
)
from models.layers import DropPath, drop_path_rates


def assert_every_parameter_gets_a_gradient(model: nn.Module, side: int = 16) -> None:
    model.train()
    out = model(torch.randn(2, 3, side, side))
    F.cross_entropy(out, torch.tensor([0, 1])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert p.grad.abs().sum() > 0, f"{name} got a zero gradient"


# Tiny nets: both stems, 2 blocks, a transition, bottleneck layers.
TINY_CIFAR = DenseNetSpec(stem="cifar", growth_rate=4, block_config=(2, 3), stem_width=8)
TINY_IMAGENET = DenseNetSpec(stem="imagenet", growth_rate=4, block_config=(2, 2), stem_width=8)


# ================================================================ DenseNet


@pytest.mark.parametrize("spec", [TINY_CIFAR, TINY_IMAGENET], ids=["cifar", "imagenet"])
@pytest.mark.parametrize("memory_efficient", [False, True])
def test_densenet_every_parameter_gets_a_gradient(spec, memory_efficient):
    torch.manual_seed(0)
    side = 16 if spec.stem == "cifar" else 32
    model = DenseNet(spec, 2, drop_rate=0.1, memory_efficient=memory_efficient)
    assert_every_parameter_gets_a_gradient(model, side)


def test_densenet_without_bottleneck_or_compression_trains():
    spec = dataclasses.replace(TINY_CIFAR, bn_size=0, compression=1.0)
    model = DenseNet(spec, 2)
    layer = model.block1.layer1
    assert not hasattr(layer, "conv2") and layer.conv1.kernel_size == (3, 3)  # BN-ReLU-3x3 only
    assert model.trans1.conv.out_channels == model.block1.out_channels  # theta = 1
    assert_every_parameter_gets_a_gradient(model)


def test_dense_connectivity_channel_bookkeeping():
    # DenseNet-121 (Table 1): layer l of a block sees C0 + (l-1) k channels, adds k;
    # transitions halve (floor); 1024 features reach the classifier.
    model = meta_model("densenet121")
    k, widths = 32, []
    channels = 64
    for i, n in enumerate((6, 12, 24, 16), start=1):
        block = getattr(model, f"block{i}")
        layers = list(block.children())
        assert len(layers) == n
        assert [m.norm1.num_features for m in layers] == [channels + j * k for j in range(n)]
        assert all(m.conv1.out_channels == 4 * k and m.conv2.out_channels == k for m in layers)
        channels += n * k
        widths.append(channels)
        if i < 4:
            trans = getattr(model, f"trans{i}")
            assert trans.conv.out_channels == channels // 2
            channels //= 2
    assert widths == [256, 512, 1024, 1024]
    assert model.head.fc.in_features == model.num_features == 1024
    assert not any(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_transition_floors_odd_channel_counts():
    spec = DenseNetSpec(stem="cifar", growth_rate=3, block_config=(3, 1), stem_width=6)
    with torch.device("meta"):
        model = DenseNet(spec, 10)
    assert model.block1.out_channels == 15 and model.trans1.conv.out_channels == 7  # floor(7.5)


@pytest.mark.parametrize(
    ("spec", "depth"),
    [
        (imagenet_spec(32, (6, 12, 24, 16)), 121),
        (imagenet_spec(48, (6, 12, 36, 24)), 161),
        (imagenet_spec(32, (6, 12, 32, 32)), 169),
        (imagenet_spec(32, (6, 12, 48, 32)), 201),
        (imagenet_spec(32, (6, 12, 64, 48)), 265),  # "DenseNet-264": Table 1 adds up to 265
        (cifar_bc_spec(100, 12), 100),
        (cifar_bc_spec(250, 24), 250),
        (cifar_bc_spec(190, 40), 190),
    ],
)
def test_depth_as_the_paper_counts_it(spec, depth):
    assert spec.depth == depth


def test_cifar_bc_stem_and_head():
    # §3 "Implementation Details": DenseNet-BC's first conv has 2k channels, 3 blocks of
    # (L-4)/6 bottleneck layers; a bare 3x3 conv (the first layer's BN-ReLU follows).
    model = meta_model("densenet_bc100_k12")
    assert isinstance(model.stem.conv, nn.Conv2d) and model.stem.conv.out_channels == 24
    assert [len(list(getattr(model, f"block{i}").children())) for i in (1, 2, 3)] == [16, 16, 16]
    assert not hasattr(model, "block4") and not hasattr(model, "trans3")
    assert model.head.fc.out_features == 10
    assert model.num_features == 342  # 24+192=216 -> 108 -> 300 -> 150 -> 342


def _tiny_pair(**knobs):
    torch.manual_seed(0)
    plain = DenseNet(TINY_CIFAR, 3, memory_efficient=False, **knobs)
    efficient = DenseNet(TINY_CIFAR, 3, memory_efficient=True, **knobs)
    efficient.load_state_dict(plain.state_dict())
    return plain, efficient


@pytest.mark.parametrize("drop_rate", [0.0, 0.2])
def test_memory_efficient_gives_identical_outputs_gradients_and_bn_stats(drop_rate):
    plain, efficient = _tiny_pair(drop_rate=drop_rate)
    x = torch.randn(4, 3, 16, 16)
    target = torch.tensor([0, 1, 2, 0])
    results = []
    for model in (plain, efficient):
        torch.manual_seed(1)  # same dropout masks: the checkpoint preserves the RNG state
        x_ = x.clone().requires_grad_()
        out = model.train()(x_)
        F.cross_entropy(out, target).backward()
        results.append((out.detach(), x_.grad, dict(model.named_parameters()), model.state_dict()))
    (out_a, gx_a, params_a, state_a), (out_b, gx_b, params_b, state_b) = results
    assert torch.equal(out_a, out_b)
    assert torch.equal(gx_a, gx_b)
    for name, p in params_a.items():
        assert torch.equal(p.grad, params_b[name].grad), name
    # BN running stats are updated once, not again by the recomputation in backward
    for key, value in state_a.items():
        assert torch.equal(value, state_b[key]), key
    assert state_b["block1.layer1.norm1.num_batches_tracked"].item() == 1


def _saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of distinct storages kept for backward after one forward pass.

    Counts every tensor autograd saves (saved_tensors_hooks). A non-reentrant checkpoint
    keeps its *inputs* (the block's feature maps) alive outside those hooks, so they are
    added explicitly: the efficient net is charged for everything it holds.
    """
    storages: dict[int, int] = {}
    keep: list[torch.Tensor] = []  # hold references so that no storage address is reused

    def remember(t: torch.Tensor) -> None:
        keep.append(t)
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()

    def pack(t: torch.Tensor) -> torch.Tensor:
        remember(t)
        return t

    def remember_inputs(module: nn.Module, args: tuple) -> None:
        for f in args[0]:  # the list of feature maps the layer concatenates
            remember(f)

    handles = []
    if any(getattr(m, "memory_efficient", False) for m in model.modules()):
        layers = [m for m in model.modules() if isinstance(m, DenseLayer)]
        handles = [m.register_forward_pre_hook(remember_inputs) for m in layers]
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.train()(x).sum().backward()  # backward: the saved tensors are really used
    for h in handles:
        h.remove()
    return sum(n for ptr, n in storages.items() if ptr not in params)  # activations only


def test_memory_efficient_saves_fewer_activation_bytes():
    spec = DenseNetSpec(stem="cifar", growth_rate=8, block_config=(12,), stem_width=16)
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    plain = _saved_bytes(DenseNet(spec, 2, memory_efficient=False), x)
    efficient = _saved_bytes(DenseNet(spec, 2, memory_efficient=True), x)
    # Plain: the concatenation and its BN-ReLU output are stored per layer, 2 x (16 + 8 l)
    # channels, quadratic in depth. Efficient: the features once (16 + 8 x 12 channels)
    # plus the bottleneck tensors (linear). Here 0.45; 0.68 at 4 layers, 0.30 at 24.
    assert efficient < 0.5 * plain, (efficient, plain)


def test_memory_efficient_is_inactive_without_grad_and_in_eval():
    plain, efficient = _tiny_pair()
    x = torch.randn(2, 3, 16, 16)
    for model in (plain, efficient):
        model(x)  # one train-mode pass to move the running stats off (0, 1)
    with torch.no_grad():
        assert torch.equal(plain.eval()(x), efficient.eval()(x))
    assert "memory_efficient=True" in repr(efficient.block1.layer1)


def test_drop_rate_follows_every_conv_but_the_first():
    torch.manual_seed(0)
    model = DenseNet(TINY_CIFAR, 3, drop_rate=0.5)
    transitions = [m for m in model.modules() if isinstance(m, Transition)]
    assert all(isinstance(t.drop, nn.Dropout) and t.drop.p == 0.5 for t in transitions)
    assert all(layer.drop_rate == 0.5 for layer in model.modules() if isinstance(layer, DenseLayer))
    x = torch.randn(2, 3, 16, 16)
    assert not torch.equal(model.train()(x), model(x))  # stochastic in training
    with torch.no_grad():
        assert torch.equal(model.eval()(x), model(x))  # deterministic in eval
    assert not hasattr(DenseNet(TINY_CIFAR, 3).trans1, "drop")  # no module when off
    with pytest.raises(ValueError, match="drop_rate"):
        DenseNet(TINY_CIFAR, 3, drop_rate=1.0)


def test_densenet_free_knobs_and_defining_fields():
    knobs = free_knobs("densenet121")
    assert {"num_classes", "drop_rate", "memory_efficient", "dropout"} <= knobs
    assert "drop_path_rate" not in knobs  # concatenation has no identity path to fall back on
    model = meta_model("densenet_bc100_k12", num_classes=100, dropout=0.3, memory_efficient=True)
    assert model.head.fc.out_features == 100 and model.head.dropout.p == 0.3
    assert all(layer.memory_efficient for layer in model.modules() if isinstance(layer, DenseLayer))
    overrides = [("growth_rate", 12), ("block_config", (6, 6)), ("compression", 1), ("bn_size", 2)]
    for knob, value in overrides:
        with pytest.raises(ValueError, match=f"'{knob}' is a defining field"):
            create_model("densenet121", **{knob: value})
    with pytest.raises(ValueError, match="unknown knob 'drop_path_rate'"):
        create_model("densenet121", drop_path_rate=0.1)


def test_densenet_spec_validation():
    with pytest.raises(ValueError, match="stem"):
        dataclasses.replace(TINY_CIFAR, stem="tiny")
    with pytest.raises(ValueError, match="compression"):
        dataclasses.replace(TINY_CIFAR, compression=0.0)
    with pytest.raises(ValueError, match="block_config"):
        dataclasses.replace(TINY_CIFAR, block_config=())
    with pytest.raises(ValueError, match="6n"):
        cifar_bc_spec(101, 12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        TINY_CIFAR.growth_rate = 8  # type: ignore[misc]
    from_yaml = DenseNetSpec(stem="cifar", growth_rate=4, block_config=[2, 2], stem_width=8)
    assert from_yaml.block_config == (2, 2)


def test_densenet_state_dict_follows_torchvision_order():
    # models.convert pairs tensors by position: the key suffixes must line up one to one.
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        ours = list(create_model("densenet121").state_dict())
        theirs = list(torchvision.models.densenet121().state_dict())
    assert len(ours) == len(theirs)
    assert [k.rsplit(".", 1)[1] for k in ours] == [k.rsplit(".", 1)[1] for k in theirs]
    assert ours[:2] == ["stem.conv.conv.weight", "stem.conv.bn.weight"]
    assert ours[-2:] == ["head.fc.weight", "head.fc.bias"]


# ================================================================ Highway networks


def _layer(channels: int = 4, **kw) -> HighwayLayer:
    torch.manual_seed(0)
    return HighwayLayer(channels, **kw)


def _force_gate(layer: HighwayLayer, bias: float) -> None:
    with torch.no_grad():
        layer.gate.weight.zero_()
        layer.gate.bias.fill_(bias)


def test_highway_gate_closed_is_the_identity():
    layer = _layer()
    _force_gate(layer, -1e4)  # T = sigmoid(-1e4) = 0 exactly in float32
    x = torch.randn(2, 4, 6, 6)
    assert torch.equal(layer(x), x)


def test_highway_gate_open_is_the_transform():
    layer = _layer()
    _force_gate(layer, 1e4)  # T = 1: carry gate 1 - T = 0
    x = torch.randn(2, 4, 6, 6)
    h = layer.transform(x)
    torch.testing.assert_close(layer(x), h)
    assert torch.equal(h, F.relu(layer.transform.conv(x)))  # H = ReLU(conv_H(x) + b_H)


def test_highway_formula_with_a_learned_gate():
    layer = _layer()
    with torch.no_grad():
        layer.gate.bias.normal_()
    x = torch.randn(2, 4, 6, 6)
    t = torch.sigmoid(layer.gate(x))
    assert 0 < t.min() and t.max() < 1 and t.shape == x.shape  # one gate per unit
    torch.testing.assert_close(layer(x), layer.transform(x) * t + x * (1 - t))


def test_negative_gate_bias_makes_layers_start_near_carry():
    # §2.2: b_T < 0 biases every layer towards carrying its input at initialisation.
    assert GATE_BIAS < 0
    model = create_model("highway19").eval()
    layers = [m for m in model.modules() if isinstance(m, HighwayLayer)]
    assert len(layers) == 14  # the released net: 4 + 5 + 5
    assert all(torch.equal(m.gate.bias, torch.full_like(m.gate.bias, GATE_BIAS)) for m in layers)
    gates = []

    def record(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        gates.append(torch.sigmoid(out))  # T(x) of one layer

    hooks = [m.gate.register_forward_hook(record) for m in layers]
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    for h in hooks:
        h.remove()
    means = [g.mean().item() for g in gates]
    assert len(means) == 14 and max(means) < 0.5, means
    # the knob moves the bias, and with it the gates
    deeper = create_model("highway32", gate_bias=-3.0)
    assert all(m.gate.bias.eq(-3.0).all() for m in deeper.modules() if isinstance(m, HighwayLayer))
    assert "gate_bias=-3.0" in repr(deeper.s1.l1)


TINY_HIGHWAY = HighwayNetSpec(
    stem_width=4,
    stages=(
        HighwayStageSpec(2, 4),
        HighwayStageSpec(1, 6, pool=True),
        HighwayStageSpec(1, 8, pool=True),
    ),
)


@pytest.mark.parametrize(
    "knobs", [{}, {"norm": True}, {"drop_path_rate": 0.2}], ids=["plain", "bn", "droppath"]
)
def test_highway_every_parameter_gets_a_gradient(knobs):
    torch.manual_seed(0)
    # gate_bias 0: a strongly negative bias would make H's gradients tiny but not zero
    model = HighwayNet(TINY_HIGHWAY, 2, gate_bias=0.0, **knobs)
    assert_every_parameter_gets_a_gradient(model)


def test_highway_output_shape_and_free_knobs():
    model = HighwayNet(TINY_HIGHWAY, 5, in_chans=1, dropout=0.1)
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 5)
    assert model.head.dropout.p == 0.1
    knobs = free_knobs("highway19")
    assert {"num_classes", "gate_bias", "norm", "drop_path_rate", "dropout"} <= knobs
    assert create_model("highway19", num_classes=100)(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_highway_norm_knob_adds_bn_to_h_only():
    plain, bn = meta_model("highway32"), meta_model("highway32", norm=True)
    layer = bn.s2.l1
    assert isinstance(layer.transform.bn, nn.BatchNorm2d) and layer.transform.conv.bias is None
    assert layer.gate.bias is not None and not hasattr(layer, "bn")  # T keeps conv + bias
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())  # faithful default
    # each BN'd conv trades its bias (C) for gamma and beta (2C)
    widths = [32] + [32] * 9 + [48] * 10 + [64] * 10  # stem, then H / entry convs
    assert n_params(bn) - n_params(plain) == sum(widths)


def test_highway_drop_path_drops_the_gated_branch_per_sample():
    layer = _layer(drop_path=DropPath(0.5))
    _force_gate(layer, 1e4)
    x = torch.randn(64, 4, 3, 3) + 3.0  # positive: H(x) != x, so kept samples change
    torch.manual_seed(0)
    y = layer.train()(x)
    dropped = (y == x).flatten(1).all(1)
    assert 0 < dropped.sum() < 64  # whole samples pass through unchanged
    assert torch.equal(layer.eval()(x), layer.eval()(x))
    model = meta_model("highway32", drop_path_rate=0.1)
    rates = [getattr(m.drop_path, "p", 0.0) for m in model.modules() if isinstance(m, HighwayLayer)]
    assert rates == drop_path_rates(27, 0.1)


def test_highway_layer_lists():
    # highway19: the released cifar10-19layers net, conv1..conv18 + ip2; highway32: 30 + classifier.
    b, c = cifar_spec_19(), cifar_spec_32()
    assert (b.num_conv_layers, b.num_highway_layers) == (18, 14)
    assert (c.num_conv_layers, c.num_highway_layers) == (30, 27)
    model = meta_model("highway19")
    assert isinstance(model.s3.pool, nn.MaxPool2d) and not hasattr(model.s1, "pool")
    assert model.s2.entry.conv.out_channels == 80 and not hasattr(model.s1, "entry")
    assert model.head_conv.conv.kernel_size == (1, 1) and model.head_conv.conv.out_channels == 100
    # dropout 0.2: drop1 on the input, drop2 / drop3 after the pools, drop4 before ip2
    assert (
        model.input_dropout.p == model.s2.drop.p == model.s3.drop.p == model.head.dropout.p == 0.2
    )
    # three resolutions: 32 -> 16 -> 8 before global pooling
    sizes = []
    real = create_model("highway32")

    def record(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        sizes.append(out.shape[-1])

    handles = [getattr(real, f"s{i}").register_forward_hook(record) for i in (1, 2, 3)]
    with torch.no_grad():
        real.eval()(torch.randn(1, 3, 32, 32))
    for h in handles:
        h.remove()
    assert sizes == [32, 16, 8]
    for name in ("highway19", "highway32"):
        info = model_info(name)
        assert info.family == "highway" and info.resolution == 32 and info.paper_params


def test_highway_defining_fields_and_spec_validation():
    for knob, value in [("stem_width", 16), ("depth", 3), ("stages", ()), ("kernel", 5)]:
        with pytest.raises(ValueError, match=f"'{knob}' is a defining field"):
            create_model("highway19", **{knob: value})
    with pytest.raises(ValueError, match="unknown knob"):
        create_model("highway19", zero_init_residual=True)
    with pytest.raises(ValueError, match="kernel"):
        HighwayNetSpec(stem_width=4, stages=(HighwayStageSpec(1, 4),), kernel=2)
    with pytest.raises(ValueError, match="at least one stage"):
        HighwayNetSpec(stem_width=4, stages=())
    with pytest.raises(ValueError, match="depth"):
        HighwayStageSpec(-1, 4)
    from_yaml = HighwayNetSpec(stem_width=4, stages=[HighwayStageSpec(1, 4)])
    assert from_yaml.stages == (HighwayStageSpec(1, 4),)
