"""Per-recipe weight-decay exemption (optim.no_decay) and TensorFlow's RMSProp (optim.name=rmsprop_tf)."""

import math

import pytest
import torch
from torch import nn

from platform.run.config import load_config
from platform.run.module import build_optimizer, param_groups
from platform.run.rmsprop_tf import RMSpropTF
from platform.run.schema import OptimConfig


def _net() -> nn.Sequential:
    """conv (+bias), BN, depthwise conv, pointwise conv, linear (+bias): one of each kind."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, bias=True),
        nn.BatchNorm2d(4),
        nn.Conv2d(4, 4, 3, groups=4, bias=False),
        nn.Conv2d(4, 8, 1, bias=False),
        nn.Flatten(),
        nn.Linear(8, 2),
    )


def _exempt_names(model: nn.Module, no_decay: str) -> set[str]:
    decay, exempt = param_groups(model, 1e-4, no_decay)
    ids = {id(p) for p in exempt["params"]}
    assert decay["weight_decay"] == 1e-4 and exempt["weight_decay"] == 0.0
    assert len(decay["params"]) + len(exempt["params"]) == len(list(model.parameters()))
    return {n for n, p in model.named_parameters() if id(p) in ids}


@pytest.mark.parametrize(
    "recipe, exempt",
    [
        ("resnet_imagenet", set()),  # fb.resnet.torch: every tensor decayed
        ("wrn_cifar", set()),
        ("efficientnet_imagenet", {"1.weight", "1.bias"}),  # TF: BN only, the FC bias decayed
        ("fashion_proxy", {"0.bias", "1.weight", "1.bias", "5.bias"}),  # platform default
        ("mobilenet_v1_imagenet", {"0.bias", "1.weight", "1.bias", "2.weight", "5.bias"}),
    ],
)
def test_recipe_decides_which_tensors_get_weight_decay(recipe, exempt):
    cfg = load_config([f"recipe={recipe}"])
    assert _exempt_names(_net(), cfg.optim.no_decay) == exempt


def test_no_decay_is_checked():
    with pytest.raises(Exception, match="no_decay"):
        load_config(["optim.no_decay=biases"])


def _tf_rmsprop(p, grads, lr, rho, mom, eps):
    """TF ApplyRMSProp by hand on a scalar: ms starts at 1, eps inside the sqrt, lr in the momentum."""
    ms, m = 1.0, 0.0
    for g in grads:
        ms = rho * ms + (1 - rho) * g * g
        m = mom * m + lr * g / math.sqrt(ms + eps)
        p -= m
    return p


@pytest.mark.parametrize("steps", [1, 2])
def test_rmsprop_tf_matches_the_hand_computed_update(steps):
    p = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = RMSpropTF([p], lr=0.1, alpha=0.9, eps=1e-3, momentum=0.9)
    grads = [0.5, -0.2][:steps]
    for g in grads:
        p.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
    assert p.item() == pytest.approx(_tf_rmsprop(1.0, grads, 0.1, 0.9, 0.9, 1e-3), rel=1e-12)
    # step 1 by hand: ms = 0.9 + 0.1 * 0.25 = 0.925; p = 1 - 0.1 * 0.5 / sqrt(0.926)
    if steps == 1:
        assert p.item() == pytest.approx(1 - 0.05 / math.sqrt(0.926), rel=1e-12)


def test_rmsprop_tf_lr_change_scales_only_the_new_gradient():
    """TF folds lr into the momentum: halving lr after a step leaves the old velocity unscaled."""
    p = nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    opt = RMSpropTF([p], lr=1.0, alpha=0.9, eps=1e-3, momentum=0.9)
    p.grad = torch.tensor([1.0], dtype=torch.float64)
    opt.step()
    v1 = 1.0 / math.sqrt(0.9 + 0.1 + 1e-3)
    opt.param_groups[0]["lr"] = 0.5
    opt.step()
    ms2 = 0.9 * 1.0 + 0.1
    expected = -(v1 + (0.9 * v1 + 0.5 / math.sqrt(ms2 + 1e-3)))
    assert p.item() == pytest.approx(expected, rel=1e-12)


def test_build_optimizer_rmsprop_tf():
    opt = build_optimizer(
        param_groups(nn.Linear(3, 3), 1e-5, "norm"),
        OptimConfig(name="rmsprop_tf", lr=0.016, momentum=0.9, eps=1e-3, rmsprop_alpha=0.9),
    )
    assert isinstance(opt, RMSpropTF) and opt.defaults["eps"] == 1e-3
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-5, 0.0]


# ---------------------------------------------------------------------------- provenance blocks
def test_provenance_block_never_becomes_config(tmp_path):
    from platform.run.schema import ConfigError

    cfg = load_config(["recipe=resnet_imagenet"])
    assert not hasattr(cfg, "provenance") and cfg.optim.no_decay == "none"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "provenance:\n  - {key: optim.lr, paper: 1, released: 1, ours: 1, source: x}\n"
        "optim:\n  lrr: 0.1\n"
    )
    with pytest.raises(ConfigError, match="lrr"):  # unknown keys in a recipe are still refused
        load_config([f"recipe={bad}"])
    bad.write_text("provenance:\n  - {key: optim.lr, paper: 1}\n")
    with pytest.raises(ConfigError, match="missing released, ours, source"):
        load_config([f"recipe={bad}"])


def test_every_recipe_has_a_checked_provenance_table():
    from platform.run.provenance import recipe_provenance
    from platform.run.schema import RECIPES_DIR

    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        rows = recipe_provenance(path)
        assert rows, f"{path.name} has no provenance block"
        assert all(r["source"] for r in rows)


def test_reproduce_prints_the_recipe_and_its_deviations(capsys):
    from platform.papers.render import recipe_lines
    from platform.papers.tables import load_table

    lines = recipe_lines(load_table("resnet_table3"), "imagenet")
    text = "\n".join(lines)
    assert "train with recipe=resnet_imagenet" in text
    assert "deviations from the paper's setup" in text
    assert "- schedule: a plateau is not a fixed schedule" in text


def test_mobilenet_v1_recipe_leaves_its_13_depthwise_filters_undecayed():
    import models

    model = models.create_model("mobilenet_v1", num_classes=10)
    no_decay = load_config(["recipe=mobilenet_v1_imagenet"]).optim.no_decay
    (_, base), (_, slim) = param_groups(model, 4e-5), param_groups(model, 4e-5, no_decay)
    extra = {id(p) for p in slim["params"]} - {id(p) for p in base["params"]}
    assert len(extra) == 13  # MobileNet v1's 13 depthwise separable blocks
