"""The zoo against the authors' released networks, and the table rows issue 15 added.

Parameter shapes of Inception-ResNet-v2, Inception-v4 (TF-slim) and highway19 (the authors'
Caffe prototxt) are compared as multisets with shape lists transcribed from the released files
(tests/data/released_shapes.json; timm is not used). Counts are checked to the unit. Meta device
only: no weights are allocated.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from models import create_model, model_info
from models.complexity import count_macs, count_params

RELEASED = json.loads((Path(__file__).parent / "data" / "released_shapes.json").read_text())


@functools.lru_cache(maxsize=None)
def meta(name: str) -> torch.nn.Module:
    """One meta-device instance per name for the whole module (the tests only read it)."""
    with torch.device("meta"):
        return create_model(name)


def released_shapes(name: str) -> Counter:
    shapes: Counter = Counter()
    for repeat, kind, out, cin, kh, kw, _scope in RELEASED[name]["layers"]:
        if kind == "fc":
            layer = [(out, cin), (out,)]
        elif kind == "conv_bias":
            layer = [(out, cin, kh, kw), (out,)]
        else:  # conv_bn: conv weight, BN gamma and beta
            layer = [(out, cin, kh, kw), (out,), (out,)]
        for shape in layer:
            shapes[shape] += repeat
    return shapes


@pytest.mark.parametrize("name", ["inception_resnet_v2", "inception_v4", "highway19"])
def test_parameter_shapes_equal_the_released_network(name):
    model = meta(name)
    assert model_info(name).num_classes == RELEASED[name]["num_classes"]
    ours = Counter(tuple(p.shape) for p in model.parameters())
    theirs = released_shapes(name)
    assert ours == theirs, (ours - theirs, theirs - ours)
    assert sum(p.numel() for p in model.parameters()) == model_info(name).params


EXACT = {
    "inception_resnet_v2": 55_843_464,
    "inception_resnet_v2_fig15": 32_433_928,
    "inception_v4": 42_679_816,
    "highway19": 2_256_838,
    "mobilenet_v2_140": 6_108_776,
    "vgg16_bn": 138_365_992,
    "resnet34_a": 21_623_848,  # option A: no shortcut parameters (= plain34)
    "resnet34_c": 22_716_840,
    "densenet40_k12": 1_019_722,  # Table 2: 1.0M
    "densenet100_k12": 6_979_642,  # 7.0M
    "densenet100_k24": 27_249_082,  # 27.2M
    "se_mobilenet": 4_718_044,  # SENet Table 3: 4.7M
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_counts_to_the_unit(name):
    assert count_params(meta(name)) == EXACT[name] == model_info(name).params


def test_released_inception_resnet_v2_macs_and_the_senet_gflops_that_match_neither():
    # info.macs is checked against the counter for every model by tests/test_models.py
    assert model_info("inception_resnet_v2").macs == pytest.approx(13.16e9, rel=1e-3)
    assert model_info("inception_resnet_v2_fig15").macs == pytest.approx(9.26e9, rel=1e-3)
    assert "matches neither" in model_info("inception_resnet_v2").notes
    assert model_info("inception_resnet_v2").top1_err == 19.9  # Table 2 belongs to the released net
    assert model_info("inception_resnet_v2_fig15").top1_err is None
    # SENet Table 2 rows: multiply-adds as the paper prints them (within 1%)
    assert count_macs(meta("bn_inception"), 224) == pytest.approx(2.03e9, rel=1e-2)
    assert model_info("se_bn_inception").macs == pytest.approx(2.04e9, rel=1e-2)
    assert model_info("vgg16_bn").macs == pytest.approx(15.47e9, rel=1e-3)


def test_inception_v4_asymmetric_pairs_follow_the_released_order():
    model = meta("inception_v4")
    stem_pair = [m.conv.kernel_size for m in model.stem.b3.branches[1].layers][1:3]
    assert stem_pair == [(1, 7), (7, 1)]  # Mixed_4a Branch_1: 1x7 then 7x1
    b5 = [m.conv.kernel_size for m in model.b.b1.branches[3].layers][1:]
    assert b5 == [(7, 1), (1, 7), (7, 1), (1, 7)]  # block_inception_b Branch_2
    c3 = [m.conv.kernel_size for m in model.c.b1.branches[3].layers][1:]
    assert c3 == [(3, 1), (1, 3)]  # block_inception_c Branch_2


def test_se_variants_put_se_where_senet_says():
    from models.layers import SqueezeExcite

    def units(name):
        return [m for m in meta(name).modules() if isinstance(m, SqueezeExcite)]

    assert len(units("se_inception_resnet_v2")) == 40  # every Inception-ResNet block
    assert len(units("se_bn_inception")) == 10  # every Inception module
    assert len(units("se_vgg16_bn")) == 13  # after every conv
    assert not units("vgg16_bn") and not units("bn_inception") and not units("inception_resnet_v2")


def test_defining_fields_of_the_new_models_are_refused():
    with pytest.raises(ValueError, match="'shortcut' is a defining field"):
        create_model("resnet34_a", shortcut="B")
    with pytest.raises(ValueError, match="'se_ratio' is a defining field"):
        create_model("vgg16_bn", se_ratio=0.0625)
    with pytest.raises(ValueError, match="'head_width' is a defining field"):
        create_model("highway19", head_width=0)
    with pytest.raises(ValueError, match="'growth_rate' is a defining field"):
        create_model("densenet40_k12", growth_rate=24)
    with pytest.raises(ValueError, match="'se_ratio' is a defining field"):
        create_model("inception_resnet_v2", se_ratio=0.0625)


def test_recipes_name_their_bn_and_stochastic_depth_settings():
    from platform.run.compose import module_kwargs
    from platform.run.config import load_config

    eff = module_kwargs(
        load_config(["recipe=efficientnet_imagenet", "model=efficientnet_b0"]), 1000
    )
    assert eff["model_knobs"] == {
        "drop_path_rate": 0.2,
        "drop_path_mode": "sample",
        "drop_path_rule": "tf",
        "bn_eps": 1e-3,
        "bn_momentum": 0.01,
    }  # §5.2: TF decay 0.99
    with torch.device("meta"):
        model = create_model("efficientnet_b0", **eff["model_knobs"])
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {(b.eps, b.momentum) for b in bns} == {(1e-3, 0.01)}
    assert list(model.state_dict()) == list(
        meta("efficientnet_b0").state_dict()
    )  # weights still load
    sd = module_kwargs(load_config(["recipe=stochastic_depth_cifar", "model=resnet110"]), 10)[
        "model_knobs"
    ]
    assert sd == {
        "drop_path_rate": 0.5,
        "drop_path_mode": "batch",
        "drop_path_rule": "huang",
        "shortcut_downsample": "avgpool",
    }
