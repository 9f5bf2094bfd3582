"""Loss landscape (Li et al. 2018, arXiv 1712.09913): filter-normalised directions, a surface known
in closed form, the same surface from 1 or 2 gloo ranks and from Slurm-array part files, and
one-line errors for bad input; ``python -m platform.reproduce landscape`` on a real (one-epoch,
synthetic-data) run."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from torch import nn

from platform.after.rebuild import LoadedRun
from platform.papers.landscape_surface import (
    Axis,
    Net,
    filter_normalized_direction,
    recompute_bn,
    stratified_indices,
)

# ---------------------------------------------------------------- directions


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)
    )


@pytest.mark.timeout(60)
def test_filter_normalisation_is_per_filter_and_zero_on_bn_and_bias():
    model = _tiny()
    d = filter_normalized_direction(model, torch.Generator().manual_seed(3))
    assert list(d) == [n for n, _ in model.named_parameters()]
    for name in ("0.bias", "1.weight", "1.bias", "3.bias"):  # conv bias, BN gamma/beta, fc bias
        assert torch.count_nonzero(d[name]) == 0, name
    for name in ("0.weight", "3.weight"):  # conv: 4 filters of 3x3x3; linear: 3 rows
        w = dict(model.named_parameters())[name].detach()
        for i in range(w.shape[0]):
            torch.testing.assert_close(d[name][i].norm(), w[i].norm(), rtol=1e-5, atol=0)
        assert not torch.allclose(d[name] / d[name].norm(), w / w.norm())  # random, not w itself
    # the same seed gives the same direction, another seed another
    again = filter_normalized_direction(model, torch.Generator().manual_seed(3))
    other = filter_normalized_direction(model, torch.Generator().manual_seed(4))
    assert all(torch.equal(d[k], again[k]) for k in d)
    assert not torch.equal(d["0.weight"], other["0.weight"])
    # a filter scaled by 10 gets a direction scaled by 10: the scale invariance of §4
    with torch.no_grad():
        model[0].weight[1] *= 10
    scaled = filter_normalized_direction(model, torch.Generator().manual_seed(3))
    torch.testing.assert_close(scaled["0.weight"][1], 10 * d["0.weight"][1])
    torch.testing.assert_close(scaled["0.weight"][0], d["0.weight"][0])


def test_grid_axis_and_stratified_subset():
    assert Axis(-1, 1, 5).values == [-1.0, -0.5, 0.0, 0.5, 1.0] and Axis(0, 0, 1).values == [0.0]
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    chosen = stratified_indices(labels, 20, seed=0)
    assert len(set(chosen)) == 20 and chosen == sorted(chosen)
    assert np.bincount(labels[chosen]).tolist() == [12, 6, 2]  # the classes' proportions
    assert chosen == stratified_indices(labels, 20, seed=0) != stratified_indices(labels, 20, 1)


# ---------------------------------------------------------------- a surface known in closed form


def _net(model: nn.Module, dirs, batches) -> Net:
    run = LoadedRun(Path("x.ckpt"), Path("."), None, model.eval(), None)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    return Net("linear", run, base, buffers, dirs, batches)


@pytest.mark.timeout(60)
def test_surface_of_a_linear_model_matches_the_closed_form():
    """Logits W v of a bias-free linear model: along W + x D_x + y D_y the logit margin of sample
    (v, c) is linear in x and y, so its cross-entropy is log sum_k exp(z_k) - z_c, by hand."""
    torch.manual_seed(1)
    model = nn.Linear(4, 3, bias=False).double()
    g = torch.Generator().manual_seed(7)
    dx, dy = (filter_normalized_direction(model, g) for _ in range(2))
    v = torch.randn(6, 4, dtype=torch.float64)
    c = torch.tensor([0, 1, 2, 0, 1, 2])
    net = _net(model, [dx, dy], [(v[:4], c[:4]), (v[4:], c[4:])])
    W, Dx, Dy = model.weight.detach().clone(), dx["weight"], dy["weight"]
    for x, y in [(0.0, 0.0), (0.5, -0.25), (-1.0, 1.0), (2.0, 0.0)]:
        losses, right = [], 0
        for s in range(6):
            z = [
                sum(float(W[k, m] + x * Dx[k, m] + y * Dy[k, m]) * float(v[s, m]) for m in range(4))
                for k in range(3)
            ]
            losses.append(math.log(sum(math.exp(t) for t in z)) - z[int(c[s])])
            right += max(range(3), key=lambda k: z[k]) == int(c[s])
        loss, acc = net.point(x, y, recompute=False)
        assert loss == pytest.approx(sum(losses) / 6, rel=1e-9)
        assert acc == pytest.approx(100 * right / 6)
    net.restore()
    assert torch.equal(model.weight, W)


@pytest.mark.timeout(60)
def test_recompute_bn_uses_the_subset_and_a_point_leaves_the_checkpoint_statistics():
    model = _tiny()
    x = torch.randn(8, 3, 6, 6) * 3 + 2
    recompute_bn(model, [(x[:4], None), (x[4:], None)])
    h = model[0](x)  # BN's input over both batches: running mean = mean of the two batch means
    torch.testing.assert_close(model[1].running_mean, h.mean((0, 2, 3)), rtol=1e-5, atol=1e-5)
    assert model[1].momentum == 0.1 and not model.training
    before = model[1].running_mean.clone()
    g = torch.Generator().manual_seed(0)
    net = _net(model, [filter_normalized_direction(model, g)], [(x, torch.zeros(8).long())])
    net.point(0.7, 0.0, recompute=True)
    assert torch.equal(model[1].running_mean, before)  # restored after the point


# ---------------------------------------------------------------- a real run, end to end


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One-epoch (2-batch) synthetic-data runs of resnet20 and resnet32 at 16 px."""
    from platform.run.config import load_config
    from platform.run.train import RUN_NAME_ENV, train

    root = tmp_path_factory.mktemp("landscape_runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(RUN_NAME_ENV, "")
        for model in ("resnet20", "resnet32"):
            summary = train(
                load_config(
                    [
                        f"model={model}",
                        "data=synthetic",
                        "data.synthetic_size=64",
                        "data.synthetic_classes=4",
                        "data.resolution=16",
                        "data.batch_size=16",
                        "trainer.accelerator=cpu",
                        f"run.root={root}",
                        f"run.name={model}",
                        "trainer.max_epochs=1",
                        "trainer.limit_train_batches=2",
                        "logging.wandb=disabled",
                        "logging.progress_bar=false",
                    ]
                )
            )
            assert summary["status"] == "finished", summary
    return root


def _ckpt(root: Path, model: str) -> str:
    return str(root / model / "checkpoints" / "last.ckpt")


def _surface(out: Path) -> dict:
    return json.loads((out / "surface.json").read_text())


def _max_diff(a: dict, b: dict) -> float:
    return max(
        abs(p - q)
        for k in a["nets"]
        for f in ("loss", "acc")
        for ra, rb in zip(a["nets"][k][f], b["nets"][k][f], strict=True)
        for p, q in zip(ra, rb, strict=True)
    )


GRID = ["--grid", "-1:1:3", "--grid-y", "-0.5:0.5:2", "--samples", "24", "--batch-size", "8"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_one_and_two_gloo_ranks_and_part_files_give_the_same_surface(runs, tmp_path):
    ckpts = ["--checkpoint", _ckpt(runs, "resnet20"), "--checkpoint", _ckpt(runs, "resnet32")]
    one, two, parts = tmp_path / "one", tmp_path / "two", tmp_path / "parts"
    proc = run_cli("platform.reproduce", "landscape", *ckpts, *GRID, "--out", str(one), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Li et al. 2018" in proc.stdout and "running statistics" in proc.stdout
    proc = run_cli(
        "platform.landscape", *ckpts, *GRID, "--devices", "2", "--out", str(two), timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 gloo ranks: 12 points gathered on rank 0" in proc.stdout
    a, b = _surface(one), _surface(two)
    assert a["x"] == [-1.0, 0.0, 1.0] and a["y"] == [-0.5, 0.5] and a["two_d"]
    assert _max_diff(a, b) <= 1e-9
    net = a["nets"]["resnet20"]
    assert net["images"] == 24 and net["data"] == "synthetic" and net["scale"] == "proxy"
    assert 0 < net["moved_params"] < net["params"]  # BN and biases stay
    rows = list(csv.DictReader((one / "surface.csv").open()))
    assert len(rows) == 2 * 3 * 2 and {r["net"] for r in rows} == {"resnet20", "resnet32"}
    names = {p.name for p in one.iterdir()}
    assert names >= {"pair.png", "contour_resnet20.png", "surface3d_resnet32.png"}
    # Slurm-array form: parts 1 and 0 of 2, a merge refused while one is missing, then assembled
    base = [*ckpts, *GRID, "--out", str(parts)]
    assert run_cli("platform.landscape", *base, "--part", "1/2", timeout=300).returncode == 0
    proc = run_cli("platform.landscape", *base, "--merge", timeout=120)
    assert proc.returncode == 2 and "parts [0] of 2 missing" in proc.stderr
    assert run_cli("platform.landscape", *base, "--part", "0/2", timeout=300).returncode == 0
    proc = run_cli("platform.landscape", *base, "--merge", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _max_diff(a, _surface(parts)) == 0.0
    other = [*ckpts, *GRID[:-2], "--batch-size", "4", "--out", str(parts), "--merge"]
    proc = run_cli("platform.landscape", *other, timeout=120)
    assert proc.returncode == 2 and "other settings" in proc.stderr


def _one_line_error(capsys, argv: list[str], *needles: str) -> None:
    from platform.papers.landscape import main

    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bad_inputs_are_one_line_errors(runs, tmp_path, capsys):
    missing = tmp_path / "nope.ckpt"
    _one_line_error(capsys, ["--checkpoint", str(missing)], str(missing), "no such file")
    # not a checkpoint, inside a run directory
    bad_run = tmp_path / "bad"
    shutil.copytree(runs / "resnet20", bad_run)
    (bad_run / "checkpoints" / "last.ckpt.sha256.json").unlink()
    (bad_run / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    _one_line_error(
        capsys, ["--checkpoint", str(bad_run / "checkpoints/last.ckpt")], "not a readable"
    )
    # a checkpoint whose digest does not match
    tampered = tmp_path / "tampered"
    shutil.copytree(runs / "resnet20", tampered)
    with open(tampered / "checkpoints" / "last.ckpt", "ab") as fh:
        fh.write(b"x")
    _one_line_error(capsys, ["--checkpoint", str(tampered / "checkpoints/last.ckpt")], "corrupt")
    # a resnet32 checkpoint in a run whose config says resnet20
    wrong = tmp_path / "wrong"
    shutil.copytree(runs / "resnet20", wrong)
    for f in ("last.ckpt", "last.ckpt.sha256.json"):
        shutil.copy(runs / "resnet32" / "checkpoints" / f, wrong / "checkpoints" / f)
    ok = _ckpt(runs, "resnet20")
    _one_line_error(
        capsys,
        ["--checkpoint", ok, "--checkpoint", str(wrong / "checkpoints/last.ckpt")],
        "cannot load it into resnet20",
    )
    # grids too large: by count before anything is read, and by the time measured here
    _one_line_error(
        capsys,
        ["--checkpoint", ok, "--grid", "-1:1:1000", "--grid-y", "-1:1:1000"],
        "1000000 points",
        "fewer points",
    )
    _one_line_error(
        capsys,
        ["--checkpoint", ok, "--grid", "-1:1:3", "--samples", "8", "--max-hours", "1e-9"],
        "s per point measured",
        "--part i/n",
    )
    _one_line_error(capsys, ["--checkpoint", ok, "--part", "0/2", "--devices", "2"], "one of")
    _one_line_error(
        capsys, ["--checkpoint", ok, "--out", str(tmp_path / "o"), "--merge"], "no part"
    )
