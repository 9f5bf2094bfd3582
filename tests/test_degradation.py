"""The degradation table (He et al. 2015 §4.2, Fig. 6 / Table 6): its static columns, and a tiny launched run
whose report carries the final training error and the per-epoch curves (issue 18)."""

import json

import pytest
import yaml
from conftest import cli_env, run_cli
from test_fashion_mnist import fake_fashion

from platform.papers.columns import gather
from platform.papers.tables import load_table


def test_degradation_table_static_columns_and_scales():
    table = load_table("degradation")
    assert load_table("fig6") is table or load_table("fig6").name == "degradation"
    assert table.metrics == ("train_err", "top1_err") and table.curves and table.trained
    rows = {e["id"]: e for e in gather(table, [], "proxy")}
    assert list(rows) == ["plain20", "plain56", "resnet20", "resnet56"]
    s = {k: e["static"] for k, e in rows.items()}
    # option-A shortcuts add no parameters: a plain net counts what its ResNet does (Table 6: 0.27M, 0.85M)
    assert s["plain20"]["params"] == s["resnet20"]["params"]
    assert s["plain56"]["params"] == s["resnet56"]["params"]
    for rid in ("resnet20", "resnet56"):
        assert abs(rows[rid]["params_ratio"] - 1) < 0.05
    assert s["resnet56"]["macs"] > 2.5 * s["resnet20"]["macs"] and s["resnet20"]["resolution"] == 32
    assert (
        rows["resnet20"]["paper"]["top1_err"] == 8.75
        and rows["resnet56"]["paper"]["top1_err"] == 6.97
    )
    assert {e["trained"]["status"] for e in rows.values()} == {"pending"}
    proxy = table.scales["proxy"]
    assert proxy.data == "fashion_mnist" and "data.train_subset=2000" in proxy.overrides
    assert (
        table.scales["imagenet"].data == "cifar10"
        and table.scales["imagenet"].recipe == "resnet_cifar"
    )


@pytest.mark.slow
@pytest.mark.timeout(
    1200
)  # one training process (~1 min on a quiet machine); generous for a busy one
def test_a_tiny_launched_degradation_run_reports_train_error_and_curves(tmp_path):
    """One of the table's rows, its proxy scale cut to 2 epochs of 2 batches on hand-made Fashion-MNIST."""
    spec = yaml.safe_load(load_table("degradation").path.read_text())
    spec["rows"] = [r for r in spec["rows"] if r["id"] == "resnet20"]
    proxy = spec["scales"]["proxy"]
    proxy["overrides"] = [o for o in proxy["overrides"] if "subset" not in o]
    proxy["overrides"] += [
        "trainer.max_epochs=2",
        "data.batch_size=16",
        "data.train_subset=32",
        "data.val_subset=20",
    ]
    table_file = tmp_path / "degradation_tiny.yaml"
    table_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    fake = fake_fashion(tmp_path / "fashion")
    runs, out = tmp_path / "runs", tmp_path / "report"
    extra = [
        f"run.root={runs}",
        f"data.path={fake}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.num_workers=1",
        "logging.progress_bar=false",
        "logging.wandb=disabled",
    ]
    proc = run_cli(
        "platform.reproduce",
        str(table_file),
        "--launch",
        "local",
        "--scale",
        "proxy",
        "--seeds",
        "1",
        *extra,
        env=cli_env(tmp_path),
        timeout=1000,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = run_cli(
        "platform.reproduce",
        str(table_file),
        "--scale",
        "proxy",
        "--out",
        str(out),
        *extra,
        env=cli_env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "train err % ours (proxy)" in (out / "table.md").read_text()
    assert (out / "curves.png").stat().st_size > 10_000 and (out / "plot.png").is_file()
    (e,) = json.loads((out / "table.json").read_text())["rows"]
    t = e["trained"]
    (run_dir,) = t["runs"]
    last = [json.loads(line) for line in open(f"{run_dir}/metrics.jsonl")][-1]
    assert t["n"] == 1 and last["epoch"] == 1 and last["step"] == 4  # 32 images / 16, two epochs
    assert t["train_err"] == pytest.approx(100 - last["train/top1"]) and t["top1_err"] is not None
