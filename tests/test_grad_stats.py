"""logging.grad_stats (platform/run/grad_stats.py), `reproduce gradients` (platform/papers/gradients.py) and
the grad_stats benchmark: Huang et al. 2016 Fig. 8, issue 27 item 2."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from platform.run.grad_stats import GradStats, grad_layers
from tests.conftest import run_cli


def _batch(seed: int = 0, n: int = 4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g)


def _resnet20():
    import models

    torch.manual_seed(0)
    return models.create_model("resnet20", num_classes=10).train()


# ---------------------------------------------------------------------------- the layers and values
@pytest.mark.timeout(60)
def test_layers_are_first_conv_stage_first_convs_and_classifier():
    model = _resnet20()
    layers = grad_layers(model)
    assert list(layers) == ["first_conv", "s1", "s2", "s3", "classifier"]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert layers["first_conv"] is convs[0].weight
    assert layers["s2"] is model.s2.b1.conv1.conv.weight  # the block's first conv, not its shortcut
    assert layers["classifier"] is model.head.fc.weight
    # a family without stages: first Conv2d and last Linear only
    plain = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 3), nn.Linear(3, 2)
    )
    assert list(grad_layers(plain)) == ["first_conv", "classifier"]
    assert grad_layers(plain)["classifier"] is plain[4].weight


@pytest.mark.timeout(60)
def test_recorded_value_is_the_hand_computed_mean_abs_of_the_first_conv():
    model = _resnet20()
    stats = GradStats()
    stats.reset(model, torch.device("cpu"))
    x, y = _batch()
    F.cross_entropy(model(x), y).backward()
    stats.accumulate()
    g = [m for m in model.modules() if isinstance(m, nn.Conv2d)][0].weight.grad
    by_hand = sum(abs(v) for v in g.flatten().tolist()) / g.numel()
    l2 = math.sqrt(sum(v * v for v in g.flatten().tolist()))
    got = stats.means()
    assert got["grad/first_conv/mean_abs"] == pytest.approx(by_hand, rel=1e-5)
    assert got["grad/first_conv/l2"] == pytest.approx(l2, rel=1e-5)
    assert set(got) == {f"grad/{n}/{s}" for n in grad_layers(model) for s in ("mean_abs", "l2")}


@pytest.mark.timeout(60)
def test_steps_are_averaged_and_a_non_finite_or_absent_gradient_is_left_out():
    model = _resnet20()
    stats = GradStats()
    stats.reset(model, torch.device("cpu"))
    w = stats.layers["first_conv"]
    w.grad = torch.full_like(w, 1.0)
    stats.accumulate()
    w.grad = torch.full_like(w, 3.0)
    stats.accumulate()
    w.grad = torch.full_like(w, float("inf"))  # a skipped fp16 step
    stats.accumulate()
    means = stats.means()
    assert means["grad/first_conv/mean_abs"] == pytest.approx(2.0)
    assert means["grad/first_conv/l2"] == pytest.approx(2.0 * math.sqrt(w.numel()))
    assert "grad/s1/mean_abs" not in means  # no step gave s1 a gradient: nothing recorded


@pytest.mark.timeout(480)  # one fit: ~20 s alone, minutes on a loaded 2-core machine
def test_gradient_accumulation_records_once_per_optimizer_step(tmp_path, digits_cache):
    import lightning as L

    from datamodules.digits import DigitsDataModule
    from platform.run.module import ClassificationModule

    seen = []

    class Probe(L.Callback):  # the first conv's gradient the optimizer is about to apply
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            g = grad_layers(pl_module.model)["first_conv"].grad
            seen.append(g.abs().mean().item())

    stats = GradStats()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=6,
        accumulate_grad_batches=3,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
        callbacks=[stats, Probe()],
    )
    dm = DigitsDataModule(cache_dir=digits_cache, batch_size=16, num_workers=1)
    trainer.fit(ClassificationModule("resnet20", 10), dm)
    assert len(seen) == 2 and stats.sums[0, 2].item() == 2  # 6 micro-batches, 2 optimizer steps
    assert trainer.callback_metrics["grad/first_conv/mean_abs"].item() == pytest.approx(
        sum(seen) / 2, rel=1e-5
    )


# ---------------------------------------------------------------------------- real runs
def _train(root, name, *extra):
    from platform.run.config import load_config
    from platform.run.train import train

    cfg = load_config(
        [
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=4",
            "schedule.warmup_epochs=0",
            f"run.root={root}",
            f"run.name={name}",
            "logging.wandb=disabled",
            "logging.progress_bar=false",
            "data.num_workers=1",
            *extra,
        ]
    )
    assert train(cfg)["status"] == "finished"
    return root / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits_cache):
    root = tmp_path_factory.mktemp("runs")
    cache = f"data.cache_dir={digits_cache}"
    return {
        "constant": _train(root, "constant", cache, "logging.grad_stats=true"),
        "stochastic": _train(
            root, "stochastic", cache, "logging.grad_stats=true", "model.drop_path_rate=0.5"
        ),
        "off": _train(root, "off", cache),
    }


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_keys_in_metrics_jsonl_when_on_and_absent_when_off(runs):
    rows = _rows(runs["constant"])
    assert len(rows) == 2
    for r in rows:
        for layer in ("first_conv", "s1", "s2", "s3", "classifier"):
            assert r[f"grad/{layer}/mean_abs"] > 0 and r[f"grad/{layer}/l2"] > 0
    assert not any(k.startswith("grad/") for r in _rows(runs["off"]) for k in r)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_gradients_command_plots_two_runs_and_refuses_runs_without_stats(runs, tmp_path):
    from platform.papers.gradients import main

    out = tmp_path / "out"
    argv = ["--run", str(runs["constant"]), "--run", str(runs["stochastic"]), "--out", str(out)]
    assert main(argv) == 0
    assert {p.name for p in out.iterdir()} == {"gradients.json", "gradients.csv", "gradients.png"}
    data = json.loads((out / "gradients.json").read_text())
    labels = [c["label"] for c in data["curves"]]
    assert labels == ["resnet20, constant depth", "resnet20, stochastic depth (drop_path_rate 0.5)"]
    assert all(len(c["values"]["first_conv/mean_abs"]) == 2 for c in data["curves"])
    csv_lines = (out / "gradients.csv").read_text().splitlines()
    assert csv_lines[0] == "label,epoch,lr,layer,mean_abs,l2" and len(csv_lines) == 1 + 2 * 2 * 5

    proc = run_cli("platform.reproduce", "gradients", "--run", str(runs["off"]), "--out", str(out))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "without logging.grad_stats" in proc.stderr and "logging.grad_stats=true" in proc.stderr


@pytest.mark.timeout(120)
def test_missing_table_runs_are_a_one_line_error_naming_the_command(tmp_path):
    proc = run_cli(
        "platform.reproduce",
        "gradients",
        "--scale",
        "proxy",
        "--runs",
        str(tmp_path),
        "--out",
        str(tmp_path),
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert (
        "python -m platform.reproduce stochastic_depth --scale proxy --launch local" in proc.stderr
    )
    assert run_cli("platform.reproduce", "gradients", "--help").returncode == 0
    assert "gradients" in run_cli("platform.reproduce", "--list").stdout


@pytest.mark.timeout(120)
def test_table_runs_carry_grad_stats_and_earlier_runs_still_count():
    from platform.after.run_records import RunRecord
    from platform.papers.columns import row_overrides, row_runs
    from platform.papers.tables import load_table

    table = load_table("stochastic_depth")
    for scale in ("proxy", "imagenet"):
        assert all("logging.grad_stats=true" in row_overrides(table, r, scale) for r in table.rows)
    from platform.run.config import load_config, to_dict

    row = table.rows[0]
    old = to_dict(load_config(row_overrides(table, row, "proxy")))
    old["logging"]["grad_stats"] = False  # trained before the table asked for the statistics
    record = RunRecord("old", "old", "local", old, "finished", 90.0, 99.0)
    assert row_runs(table, row, "proxy", [record]) == [record]


@pytest.mark.timeout(300)
def test_the_benchmark_suite_records_the_ratio(tmp_path):
    from tests.test_benchmarks import run_suite

    record = run_suite(tmp_path, "grad_stats")
    assert record["ratio"] > 0 and 0 < record["isolated_share"] < 1
    assert set(record["median_s"]) == {"with", "without"} and record["layers"][0] == "first_conv"
