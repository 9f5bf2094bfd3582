"""Issue 24: a registered model's default became the variant its paper's numbers were measured
with. A checkpoint records its model knobs; one recorded before a default changed does not state
the changed knob, and `models.legacy_knobs` rebuilds the network it was trained as: same tensors,
same outputs, same BN running-stat updates. `models.explicit_knobs` states every changed knob, so
a record written now rebuilds the same network whatever the defaults become."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models import create_model, explicit_knobs, legacy_knobs, list_models, model_info

# name -> the knobs the old default amounted to (written out by hand, not from the registry)
OLD_DEFAULTS = {
    "resnet50": {"stride_on": "3x3"},
    "efficientnet_b0": {"bn_eps": 1e-5, "bn_momentum": 0.1},
    "mobilenet_v1_025": {"act": "relu", "bn_eps": 1e-5, "bn_momentum": 0.1},
    "mobilenet_v2": {"bn_eps": 1e-5, "bn_momentum": 0.1},
    "resnext29_8x64d": {
        "preact": False
    },  # a layout change: the old keys load only into the old net
}


def _bn(model):
    return [(m.eps, m.momentum) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


@pytest.mark.parametrize("name", sorted(OLD_DEFAULTS))
def test_a_checkpoint_saved_with_the_old_default_loads_and_gives_the_same_outputs(name):
    torch.manual_seed(0)
    old = create_model(name, num_classes=5, **OLD_DEFAULTS[name])  # what the old code built
    recorded: dict = {"num_classes": 5}  # an old record: no changed knob stated
    state = {k: v.clone() for k, v in old.state_dict().items()}
    rebuilt = create_model(name, **legacy_knobs(name, recorded))
    rebuilt.load_state_dict(state, strict=True)
    assert _bn(rebuilt) == _bn(old)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), old.eval()(x), atol=0, rtol=0)
        for model in (old, rebuilt):  # running stats move by the same momentum
            torch.manual_seed(1)  # the same drop-path draws
            model.train()(x)
    torch.testing.assert_close(rebuilt.state_dict(), old.state_dict(), atol=0, rtol=0)
    # ... and the new default is a different network (else nothing needed converting)
    new = create_model(name, num_classes=5)
    if set(new.state_dict()) != set(state):
        return  # a different layout: the old checkpoint could not be misread as the new net
    new.load_state_dict(state, strict=True)
    with torch.no_grad():
        changed = not torch.equal(new.eval()(x), old.eval()(x)) or _bn(new) != _bn(old)
    assert changed


@pytest.mark.parametrize("name", [n for n in list_models() if model_info(n).default_changes])
def test_explicit_records_are_never_read_as_old_ones(name):
    record = explicit_knobs(name, {"num_classes": 3})
    assert legacy_knobs(name, record) == record
    for change in model_info(name).default_changes:
        assert record[change.knob] == change.new != change.old
    assert legacy_knobs(name, {})[change.knob] == change.old


def test_the_changed_defaults_are_the_ones_issue_24_names():
    changed = {n for n in list_models() if model_info(n).default_changes}
    assert {"resnet50", "resnet101", "resnet152"} <= changed
    assert {f"efficientnet_b{i}" for i in range(5)} <= changed
    assert {"mobilenet_v1", "mobilenet_v1_075", "mobilenet_v2", "mobilenet_v2_140"} <= changed
    assert {"resnext29_8x64d", "resnext29_16x64d"} <= changed
    assert "efficientnet_b5" not in changed  # always had TF BN
