"""Issue 24 wired into the platform: a new run records every knob whose default changed; a
checkpoint (or run) recorded before the change is rebuilt, evaluated and resumed as the old
variant; torchvision weights go only into torchvision's variant."""

from __future__ import annotations

import lightning
import pytest
import torch
import torchvision
from test_run_integrity import _args

import models
from platform.run.compose import build_module, module_kwargs, pin_recorded_knobs
from platform.run.config import load_config, to_yaml
from platform.run.module import ClassificationModule
from platform.run.schema import ConfigError

NAME = "mobilenet_v1_025"  # defaults changed: ReLU6 and TF BN (was ReLU, PyTorch BN)


def _old_checkpoint(path, name=NAME, num_classes=5):
    """What the code before issue 24 saved: the old default network, hyper-parameters whose
    model_knobs do not state the changed knobs (the old module_kwargs left defaults out)."""
    torch.manual_seed(0)
    old = ClassificationModule(name, num_classes, model_knobs=models.legacy_knobs(name, {}))
    with torch.no_grad():  # non-trivial BN statistics, so the BN eps matters
        old.train()(torch.randn(8, 3, 32, 32))
    old.eval()
    hparams = {**dict(old.hparams), "model_knobs": {}}
    torch.save(
        {
            "state_dict": old.state_dict(),
            "hyper_parameters": hparams,
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )
    return old


def test_an_old_checkpoint_loads_as_the_old_variant_in_the_module_and_evaluate(tmp_path, caplog):
    from platform.after.evaluate import load

    ckpt = tmp_path / "old.ckpt"
    old = _old_checkpoint(ckpt)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = old(x)
        module = ClassificationModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
        torch.testing.assert_close(module(x), want, atol=0, rtol=0)
        evaluated, _, kind = load(ckpt)  # what python -m platform.evaluate ckpt=... builds
        torch.testing.assert_close(evaluated(x), want, atol=0, rtol=0)
    assert kind == "checkpoint of ours"
    assert evaluated.hparams.model_knobs == models.legacy_knobs(NAME, {})
    assert "recorded before" in caplog.text and "model.act=relu" in caplog.text
    # the new default is another network with the same tensors: loaded silently, other outputs
    new = ClassificationModule(NAME, 5)
    new.load_state_dict(old.state_dict())
    with torch.no_grad():
        assert not torch.equal(new.eval()(x), want)


def test_a_new_run_records_the_changed_knobs():
    cfg = load_config(_args("/tmp/unused", f"model={NAME}"))
    knobs = module_kwargs(cfg, 5)["model_knobs"]
    for change in models.model_info(NAME).default_changes:
        assert knobs[change.knob] == change.new
    module = build_module(cfg, 5)
    assert module.hparams.model_knobs == knobs
    assert (
        module_kwargs(load_config(_args("/tmp/unused", f"model={NAME}", "model.act=relu")), 5)[
            "model_knobs"
        ]["act"]
        == "relu"
    )


def test_resuming_an_old_run_keeps_its_variant_and_is_not_refused(tmp_path, caplog):
    from platform.run.train import ResumeError, check_resume_config

    run = tmp_path / "old"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "last.ckpt"
    _old_checkpoint(ckpt)
    args = _args(tmp_path, f"model={NAME}", "run.name=old")
    (run / "config.yaml").write_text(to_yaml(load_config(args)))  # knobs null, as written then
    hparams = torch.load(ckpt, weights_only=True)["hyper_parameters"]
    cfg = pin_recorded_knobs(load_config([*args, "resume=auto"]), hparams)
    assert cfg.model.act == "relu" and cfg.model.bn_eps == 1e-5 and cfg.model.bn_momentum == 0.1
    check_resume_config(run, cfg, ckpt)  # not refused
    assert module_kwargs(cfg, 5)["model_knobs"] == models.legacy_knobs(NAME, {})
    # the next segment: config.yaml and the checkpoint now state the old variant explicitly
    (run / "config.yaml").write_text(to_yaml(cfg))
    resumed = ClassificationModule(**module_kwargs(cfg, 5))
    torch.save({"hyper_parameters": dict(resumed.hparams), "state_dict": {}}, ckpt)
    again = pin_recorded_knobs(load_config([*args, "resume=auto"]), dict(resumed.hparams))
    check_resume_config(run, again, ckpt)
    assert again.model == cfg.model
    # switching an old run to the new variant on resume is refused
    switched = load_config([*args, "resume=auto", "model.act=relu6"])
    with pytest.raises(ResumeError, match="model.act"):
        check_resume_config(run, pin_recorded_knobs(switched, dict(resumed.hparams)), ckpt)


def test_torchvision_resnet50_weights_need_its_variant(tmp_path):
    from platform.after.evaluate import load

    torch.manual_seed(0)
    tv = torchvision.models.resnet50(num_classes=10).eval()
    path = tmp_path / "tv_resnet50.pth"
    torch.save(tv.state_dict(), path)
    base = _args(tmp_path, "model=resnet50", f"model.init={path}")
    with pytest.raises(ConfigError, match=r"set model\.stride_on=3x3") as refused:
        build_module(load_config(base), 10)
    assert len(str(refused.value).splitlines()) == 1
    module = build_module(load_config([*base, "model.stride_on=3x3"]), 10).eval()
    assert module.hparams.model_knobs["stride_on"] == "3x3"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = tv(x)
        torch.testing.assert_close(module(x), want)
        # evaluating the torchvision file itself: built as torchvision's variant
        evaluated, _, kind = load(path, ["model=resnet50"])
        assert kind == "torchvision state_dict"
        assert evaluated.hparams.model_knobs["stride_on"] == "3x3"
        torch.testing.assert_close(evaluated(x), want)
