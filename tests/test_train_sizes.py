"""Real dataset sizes before any data exists: schedules, the run header and the launch cost."""

import types

import pytest
import torch

from platform.papers.launch import plan_line, run_cost
from platform.run import schedules
from platform.run.config import load_config
from platform.run.console import run_start_lines


@pytest.mark.parametrize(
    "args, n",
    [
        (["recipe=fashion_proxy", "data=fashion_mnist"], 10_000),
        (["data=fashion_mnist"], 60_000),
        (["data=fashion_mnist", "data.val_split=holdout", "data.val_fraction=0.1"], 54_000),
        (["data=digits"], 1_438),
        (["data=cifar10"], 50_000),
        (["data=imagenet"], 1_281_167),
        (["data=synthetic", "data.synthetic_size=300"], 300),
    ],
)
def test_train_size_is_the_datasets_own(args, n):
    assert schedules.train_size(load_config(args)) == n


def test_unknown_size_is_said_not_guessed():
    cfg = load_config(["data=beton", "data.path=/nonexistent"])
    with pytest.raises(schedules.UnknownTrainSize, match="cannot read"):
        schedules.train_size(cfg)
    assert run_cost(cfg) is None
    assert "1 run(s) not counted: training-set size unknown" in plan_line([cfg])


def test_schedules_cli_fashion_proxy_has_78_steps_per_epoch(tmp_path, capsys):
    out = tmp_path / "s.png"
    rc = schedules.main(["recipe=fashion_proxy", "data=fashion_mnist", f"--out={out}"])
    text = capsys.readouterr().out
    assert rc == 0 and "10,000 training images, 78 steps/epoch" in text


def test_launch_cost_counts_the_subset_not_imagenet():
    small = load_config(["recipe=fashion_proxy", "data=fashion_mnist", "model=resnet20"])
    full = load_config(["data=fashion_mnist", "model=resnet20", "trainer.max_epochs=10"])
    assert run_cost(small) == pytest.approx(run_cost(full) * 10_000 / 60_000)


def test_run_header_shows_10000_training_images(tmp_path):
    cfg = load_config(["recipe=fashion_proxy", "data=fashion_mnist", "model=resnet20"])
    module = types.SimpleNamespace(
        hparams=types.SimpleNamespace(num_classes=10, model_knobs={}),
        model=torch.nn.Linear(2, 2),
        peak_lr=0.1,
    )
    lines, _, _ = run_start_lines(cfg, module, object(), tmp_path, 1)
    data_line = next(line for line in lines if line.startswith("data"))
    assert "10,000 training images" in data_line


def test_cifar_holdout_validates_on_part_of_train(tmp_path):
    """data.val_split=holdout on CIFAR (stochastic_depth_cifar: 5k of the 50k): the held-out images
    come from the training batches, stratified, and the test batch is not used."""
    import json

    from test_imagefolder_cifar import write_fake_cifar

    from datamodules.cifar import CifarDataModule

    train, _ = write_fake_cifar(tmp_path, "cifar10", per_file=20)
    dm = CifarDataModule(
        tmp_path,
        cache_dir=tmp_path / "cache",
        batch_size=5,
        num_workers=1,
        val_split="holdout",
        val_fraction=0.2,
    )
    dm.prepare_data()
    meta = json.loads((dm.directory / "meta.json").read_text())
    assert meta["split"]["val_split"] == "holdout" and "holdout" in dm.directory.name
    counts = meta["counts"]
    assert counts["train"] + counts["val"] == len(train[1]) == 100 and counts["val"] > 0
    cfg = load_config(["recipe=stochastic_depth_cifar", "data=cifar10"])
    assert (cfg.data.val_split, schedules.train_size(cfg)) == ("holdout", 45_000)
