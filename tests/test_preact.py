"""The preact table (He et al. 2016, Identity Mappings, Fig. 1 / Tables 3-4): its rows and scales,
the ResNet-1001 pair kept to the paper's scale, and a report whose curves plot draws each net's
training loss (dashed, its own axis) and validation error (solid) from its runs (issue 27)."""

import json

import pytest

import platform.papers.render as render
from platform.after.run_records import RunRecord
from platform.papers.columns import gather, row_overrides
from platform.papers.missing_runs import missing, sweep_parameters
from platform.papers.tables import load_table
from platform.run.config import load_config, to_dict

PARAMS = {  # exact counts of our nets; the paper prints 1.7M for the 110s, 10.2M for the 1001s
    "resnet110": 1_727_962,
    "preact_resnet110": 1_727_962,
    "resnet1001": 10_328_602,
    "preact_resnet1001": 10_327_706,
}


def test_preact_table_rows_resolve_to_the_papers_nets_and_1001_trains_at_paper_scale_only():
    table = load_table("preact")
    assert load_table("fig1").name == "preact" and table.curves and table.curves_train == "loss"
    assert load_table("degradation").curves_train == "error"  # Fig. 6 of 2015: training error
    rows = {e["id"]: e for e in gather(table, [], "imagenet")}
    assert {k: e["static"]["params"] for k, e in rows.items()} == PARAMS
    assert all(abs(e["params_ratio"] - 1) < 0.02 for e in rows.values())
    paper = {k: e["paper"]["top1_err"] for k, e in rows.items()}
    assert paper == {
        "resnet110": 6.61,
        "preact_resnet110": 6.37,
        "resnet1001": 7.61,
        "preact_resnet1001": 4.92,
    }
    assert [e["id"] for e in gather(table, [], "proxy")] == ["resnet110", "preact_resnet110"]
    assert [(r.id, s) for r, s in missing(table, "proxy", 1, [])] == [
        ("resnet110", 0),
        ("preact_resnet110", 0),
    ]
    assert len(missing(table, "imagenet", 3, [])) == 12
    assert sweep_parameters(table, "imagenet", 3)["model"]["values"] == list(PARAMS)
    for scale in ("imagenet", "proxy"):  # the paper's warm-up for ResNet-110/1001 (§4.2, appendix)
        cfg = load_config(row_overrides(table, table.row("resnet1001"), scale))
        assert cfg.recipe == "preact_resnet_cifar" and cfg.schedule.warmup == "error_threshold"
        assert cfg.schedule.warmup_lr == 0.01 and cfg.schedule.warmup_error == 80.0


def _run(tmp_path, table, row_id: str, losses: list[float], val_top1: list[float]) -> RunRecord:
    """A finished local run of a row at proxy scale with hand-written per-epoch records."""
    run_dir = tmp_path / row_id
    run_dir.mkdir()
    lines = [
        {"epoch": i, "train/loss": loss, "train/top1": 50.0 + i, "val/top1": top1}
        for i, (loss, top1) in enumerate(zip(losses, val_top1, strict=True))
    ]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    cfg = to_dict(load_config([*row_overrides(table, table.row(row_id), "proxy"), "seed=0"]))
    return RunRecord(row_id, str(run_dir), "local", cfg, "finished", val_top1[-1], 99.0, 3)


def test_report_draws_each_nets_training_loss_dashed_and_val_error_solid(tmp_path, monkeypatch):
    table = load_table("preact")
    runs = [
        _run(tmp_path, table, "resnet110", [2.0, 1.5, 1.2], [40.0, 55.0, 70.0]),
        _run(tmp_path, table, "preact_resnet110", [1.8, 1.1, 0.7], [50.0, 65.0, 80.0]),
    ]
    drawn = []
    band = render._band
    monkeypatch.setattr(
        render,
        "_band",
        lambda ax, series, style, color, label: (
            drawn.append((ax, series, style, label)) or band(ax, series, style, color, label)
        ),
    )
    out = tmp_path / "report"
    result = render.report(table, runs, "proxy", out, quiet=True)
    assert [e["trained"]["n"] for e in result["rows"]] == [1, 1]
    assert result["rows"][1]["trained"]["top1_err"] == pytest.approx(20.0)
    assert (out / "curves.png").stat().st_size > 10_000
    by_label = {label: (ax, series, style) for ax, series, style, label in drawn}
    assert list(by_label) == [
        "ResNet-110 original train loss",
        "ResNet-110 original val error",
        "ResNet-110 pre-act train loss",
        "ResNet-110 pre-act val error",
    ]
    loss_ax, loss, dashed = by_label["ResNet-110 pre-act train loss"]
    err_ax, err, solid = by_label["ResNet-110 pre-act val error"]
    assert (dashed, solid) == ("--", "-") and loss == [[1.8, 1.1, 0.7]] and err == [[50, 35, 20]]
    assert loss_ax is not err_ax and loss_ax.get_shared_x_axes().joined(loss_ax, err_ax)
