import lightning as L
import pytest
import torch
from torch import nn

from platform.run.compose import module_kwargs
from platform.run.config import load_config
from platform.run.module import (
    ClassificationModule,
    build_optimizer,
    classification_loss,
    param_groups,
)
from platform.run.schema import ConfigError, OptimConfig


def test_weight_decay_groups_by_tensor_rank():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 5, 5))
    decay, no_decay = param_groups(model, 1e-4)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert (
        all(p.ndim >= 2 for p in decay["params"]) and len(decay["params"]) == 2
    )  # conv + linear weights
    assert (
        all(p.ndim <= 1 for p in no_decay["params"]) and len(no_decay["params"]) == 4
    )  # conv/linear bias, BN w/b
    # every parameter in exactly one group
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == sum(
        p.numel() for p in model.parameters()
    )


def test_optimizers():
    groups = param_groups(nn.Linear(3, 3), 0.1)
    sgd = build_optimizer(groups, OptimConfig(name="sgd", lr=0.2, momentum=0.9, nesterov=True))
    assert (
        isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["lr"] == 0.2
    )
    adamw = build_optimizer(param_groups(nn.Linear(3, 3), 0.1), OptimConfig(name="adamw", lr=1e-3))
    assert isinstance(adamw, torch.optim.AdamW)


def test_label_smoothing_changes_the_loss():
    logits, targets = torch.tensor([[4.0, 0.0, 0.0]]), torch.tensor([0])
    plain, smooth = classification_loss(logits, targets), classification_loss(logits, targets, 0.1)
    assert smooth > plain
    assert plain == pytest.approx(torch.nn.functional.cross_entropy(logits, targets).item())


def test_module_kwargs_rejects_knobs_the_model_lacks():
    kw = module_kwargs(load_config(["model=resnet50", "model.stride_on=1x1"]), num_classes=10)
    assert kw["model_knobs"]["stride_on"] == "1x1" and kw["num_classes"] == 10
    with pytest.raises(ConfigError, match="stride_on"):
        module_kwargs(load_config(["model=resnet20", "model.stride_on=1x1"]), num_classes=10)


def _fit(tmp_path, precision="32-true", channels_last=False, epochs=2):
    from datamodules.synthetic import SyntheticDataModule

    L.seed_everything(0, verbose=False)
    dm = SyntheticDataModule(size=128, num_classes=4, resolution=16, batch_size=32)
    module = ClassificationModule(
        "resnet20",
        num_classes=4,
        max_epochs=epochs,
        channels_last=channels_last,
        optim={"lr": 0.05},
        schedule={"name": "cosine", "warmup_epochs": 1},
    )
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, datamodule=dm)
    return trainer, module


def test_module_trains_and_sets_lr_every_iteration(tmp_path):
    lrs = []

    class Spy(L.Callback):
        def on_train_batch_start(self, trainer, *a):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    from datamodules.synthetic import SyntheticDataModule

    dm = SyntheticDataModule(size=128, num_classes=4, resolution=16, batch_size=32)
    module = ClassificationModule(
        "resnet20",
        num_classes=4,
        max_epochs=2,
        optim={"lr": 0.1},
        schedule={"name": "cosine", "warmup_epochs": 1, "warmup_start_factor": 0.1},
    )
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Spy()],
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, datamodule=dm)
    # 4 steps per epoch: linear warm-up over the first epoch, then cosine down
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[1] == pytest.approx(0.01 + 0.09 * 0.25)
    assert lrs[4] == pytest.approx(0.1)
    assert lrs[5] < lrs[4] and len(lrs) == 8
    m = trainer.callback_metrics
    assert {"train/loss", "train/top1", "val/loss", "val/top1", "val/top5", "val/top1_best"} <= set(
        m
    )
    assert 0.0 <= float(m["val/top1"]) <= 100.0 and float(m["val/top5"]) >= float(m["val/top1"])


def test_bf16_mixed_on_cpu(tmp_path):
    trainer, module = _fit(tmp_path, precision="bf16-mixed", epochs=1)
    assert trainer.precision == "bf16-mixed"
    # weights stay float32; the forward runs in bfloat16 under the precision plugin's autocast
    assert all(p.dtype == torch.float32 for p in module.parameters())
    with trainer.strategy.precision_plugin.forward_context():
        assert module(torch.randn(2, 3, 16, 16)).dtype == torch.bfloat16
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


def test_channels_last_switch(tmp_path):
    trainer, module = _fit(tmp_path, channels_last=True, epochs=1)
    conv = next(m for m in module.model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


def test_checkpoint_rebuilds_the_module_without_the_config(tmp_path):
    trainer, module = _fit(tmp_path, epochs=1)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    restored = ClassificationModule.load_from_checkpoint(path)
    x = torch.randn(2, 3, 16, 16)
    module.eval(), restored.eval()
    torch.testing.assert_close(module(x), restored(x))


def test_checkpoint_carries_and_restores_the_rng_states(tmp_path):
    trainer, module = _fit(tmp_path, epochs=1)
    path = tmp_path / "rng.ckpt"
    trainer.save_checkpoint(path)
    expected = torch.rand(3)  # the draws that follow the checkpoint
    torch.manual_seed(12345)
    ckpt = torch.load(path, weights_only=False)
    module.on_load_checkpoint(ckpt)
    torch.testing.assert_close(torch.rand(3), expected)
