"""The shared training logic wired end to end: warm-up rules, LR scaling, regularisers, EMA,
class-aware sampling, torch.compile -- each through the real module and Trainer on CPU."""

import json

import lightning as L
import numpy as np
import pytest
import torch
from conftest import run_cli

from datamodules.synthetic import SyntheticDataModule
from platform.run.compose import module_kwargs
from platform.run.config import load_config
from platform.run.module import ClassificationModule, ErrorThresholdWarmup
from platform.run.train import train


class LrSpy(L.Callback):
    def __init__(self):
        self.lrs = []

    def on_train_batch_start(self, trainer, *a):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def _fit(module, dm, tmp_path, epochs=1, callbacks=(), **kw):
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        default_root_dir=str(tmp_path),
        use_distributed_sampler=False,
        **kw,
    )
    trainer.fit(module, datamodule=dm)
    return trainer


def _dm(**kw):
    return SyntheticDataModule(
        **{"size": 128, "num_classes": 4, "resolution": 16, "batch_size": 16, **kw}
    )


def test_error_threshold_warmup_switches_to_the_peak_lr(tmp_path):
    spy = LrSpy()
    module = ClassificationModule(
        "resnet20",
        4,
        optim={"lr": 0.1},
        max_epochs=2,
        schedule={
            "name": "constant",
            "warmup": "error_threshold",
            "warmup_lr": 0.01,
            "warmup_error": 100.0,
            "warmup_max_steps": 1000,
            "warmup_epochs": 0,
        },
    )
    _fit(module, _dm(), tmp_path, epochs=2, callbacks=[spy])
    ended = module.warmup.ended_at  # any error < 100%: ends once half the window is filled
    assert ended == ErrorThresholdWarmup.WINDOW // 2
    assert spy.lrs[:ended] == [pytest.approx(0.01)] * ended
    assert spy.lrs[ended:] == [pytest.approx(0.1)] * (len(spy.lrs) - ended)


def test_error_threshold_warmup_is_capped():
    w = ErrorThresholdWarmup(threshold_pct=0.0, max_steps=5)
    assert [w.update(s, 9.0, 10.0) for s in range(5)] == [False] * 4 + [True]
    assert w.ended_at == 5 and not w.active


def test_lr_scales_linearly_with_the_global_batch():
    cfg = load_config(["optim.lr=0.1", "optim.reference_batch_size=256", "data.batch_size=64"])
    module = ClassificationModule(**module_kwargs(cfg, 10))
    assert module.peak_lr == pytest.approx(0.025)


def test_mixup_cutmix_and_erasing_train(tmp_path):
    module = ClassificationModule(
        "resnet20",
        4,
        max_epochs=1,
        regularization={"mixup_alpha": 0.2, "cutmix_alpha": 1.0, "random_erasing": 0.5},
    )
    images, targets = torch.randn(8, 3, 16, 16), torch.arange(8) % 4
    mixed, soft = module._augment(images, targets)
    assert soft.shape == (8, 4) and torch.allclose(soft.sum(1), torch.ones(8))
    assert not torch.equal(mixed, images)
    trainer = _fit(module, _dm(), tmp_path, limit_train_batches=3)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


def test_class_aware_sampler_through_the_synthetic_datamodule():
    dm = _dm(sampler="class_aware", size=200, num_classes=4)
    dm.setup("fit")
    labels = torch.cat([y for _, y in dm.train_dataloader()]).numpy()
    counts = np.bincount(labels, minlength=4)
    assert (
        counts.max() - counts.min() <= 1 + 16
    )  # balanced draws, minus the dropped last partial batch


def test_class_aware_order_through_the_ffcv_datamodule(tmp_path):
    from datamodules import create_datamodule
    from datamodules.beton import write_beton

    class Imbalanced:  # 1:10 imbalance, 3 classes
        labels = [0] * 6 + [1] * 60 + [2] * 30

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return np.full((8, 8, 3), i, np.uint8), self.labels[i]

    write_beton(tmp_path / "train.beton", Imbalanced())
    write_beton(tmp_path / "val.beton", Imbalanced())
    dm = create_datamodule(
        "beton",
        path=str(tmp_path),
        batch_size=8,
        num_workers=1,
        resolution=8,
        sampler="class_aware",
        epoch_samples=96,
    )
    dm.setup("fit")
    labels = torch.cat(
        [y.clone() for _, y in dm.train_dataloader()]
    ).numpy()  # FFCV reuses its buffers
    assert len(labels) == 96 and np.bincount(labels).tolist() == [32, 32, 32]


def test_ema_and_compile_through_train(tmp_path):
    cfg = load_config(
        [
            "data=synthetic",
            "data.synthetic_size=64",
            "data.batch_size=16",
            "trainer.max_epochs=2",
            "regularization.ema_decay=0.9",
            "trainer.compile=true",
            "trainer.compile_backend=eager",
            "logging.wandb=disabled",
            "logging.progress_bar=false",
            f"run.root={tmp_path}",
            "run.name=e",
        ]
    )
    summary = train(cfg)
    assert summary["status"] == "finished"
    rows = [json.loads(l) for l in (tmp_path / "e" / "metrics.jsonl").read_text().splitlines()]
    assert all("val_ema/top1" in r for r in rows)
    ckpt = torch.load(tmp_path / "e" / "checkpoints" / "last.ckpt", weights_only=False)
    assert not any("_orig_mod" in k for k in ckpt["state_dict"])  # compiled in place: plain keys
    assert any("ema" in str(k).lower() for k in ckpt["callbacks"])


def test_schedule_plot_cli(tmp_path):
    out = tmp_path / "lr.png"
    proc = run_cli(
        "platform.schedules", "recipe=resnet_cifar", "data=synthetic", f"--out={out}", timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progressive_resizing_changes_the_training_resolution_per_epoch(tmp_path, digits_cache):
    shapes = []

    class Spy(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            shapes.append((trainer.current_epoch, batch[0].shape[-1]))

    cfg = load_config(
        [
            "data.min_resolution=32",
            "data.max_resolution=64",
            "data.ramp_start=1",
            "data.ramp_end=2",
            "trainer.max_epochs=3",
            "trainer.limit_train_batches=2",
            "logging.wandb=disabled",
            "logging.progress_bar=false",
            f"run.root={tmp_path}",
            "data.num_workers=1",
            f"data.cache_dir={digits_cache}",
        ]
    )
    train(cfg, callbacks=[Spy()])
    assert shapes == [(0, 32), (0, 32), (1, 32), (1, 32), (2, 64), (2, 64)]
