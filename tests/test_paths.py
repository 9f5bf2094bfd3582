"""Effective paths (Veit et al. 2016, arXiv 1605.06431 §5, Fig. 6): routing the backward pass along
one path (``BlockLesions.routed``), the gradient per path length, and ``python -m platform.reproduce
paths`` end to end on a one-epoch digits run."""

from __future__ import annotations

import csv
import itertools
import json
import math

import pytest
import torch
from conftest import run_cli
from torch import nn

from models.resnet import BlockSite, NetSpec, ResidualNet, StageSpec
from platform.papers.lesion_blocks import BlockLesions
from platform.papers.paths import (
    depth,
    effective_range,
    gradient_by_length,
    input_gradient,
    main,
    path_counts,
    totals,
)


# ---------------------------------------------------------------- a hand-computable net
class _Linear(nn.Module):
    """x + a x: a scalar residual block, with the slots BlockLesions routes through."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = a
        self.drop_path, self.shortcut = nn.Identity(), nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path(self.a * x) + self.shortcut(x)


class _LinearNet(nn.Module):
    """y = (1 + a_n) ... (1 + a_1) x: the path through blocks S has gradient prod_{i in S} a_i."""

    def __init__(self, *a: float) -> None:
        super().__init__()
        self.s1 = nn.Sequential(*[_Linear(v) for v in a])
        self.block_sites = tuple(BlockSite(f"s1.{i}", 1, 1, 1) for i in range(len(a)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.s1(x)


def _output_sum(y: torch.Tensor, _labels: torch.Tensor) -> torch.Tensor:
    return y.sum()


X1 = torch.ones(3, 1)


def test_path_lengths_are_binomial_n_half():
    for n in (1, 2, 9, 27, 54):
        counts = path_counts(n)
        assert sum(counts) == 2**n and counts == [math.comb(n, k) for k in range(n + 1)]
        pmf = [c / 2**n for c in counts]  # Binomial(n, 1/2), exactly
        assert pmf == [math.comb(n, k) * 0.5**n for k in range(n + 1)]
    assert max(range(55), key=lambda k: path_counts(54)[k]) == 27  # the paper's mode


@pytest.mark.timeout(60)
def test_two_block_linear_net_matches_the_analytic_path_gradients():
    a1, a2 = 0.5, -0.25
    lesions = BlockLesions(_LinearNet(a1, a2))
    b1, b2 = (name for name, _ in lesions.blocks())
    for chosen, want in (([], 1.0), ([b1], a1), ([b2], a2), ([b1, b2], a1 * a2)):
        grad = input_gradient(lesions, chosen, X1, X1, _output_sum)
        assert torch.allclose(grad, torch.full_like(X1, want)), (chosen, grad)
    rows = gradient_by_length(lesions, [(X1, X1)], 2, 0, _output_sum, log=lambda _: None)
    magnitudes = [r["grad_mean"] for r in rows]  # per length: mean |.| over both 1-block paths
    assert magnitudes == pytest.approx([1.0, (abs(a1) + abs(a2)) / 2, abs(a1 * a2)])
    record = totals(rows, 2, 0.9)
    assert [r["paths"] for r in rows] == [1, 2, 1]
    assert [r["total"] for r in rows] == pytest.approx([1.0, abs(a1) + abs(a2), abs(a1 * a2)])
    assert sum(r["total_fraction"] for r in rows) == pytest.approx(1.0)
    assert record["most_paths_k"] == 1 and record["most_gradient_k"] == 0


def test_effective_range_is_the_shortest_window_holding_the_mass():
    assert effective_range([0.05, 0.5, 0.4, 0.05], 0.9) == (1, 2)
    assert effective_range([0.05, 0.5, 0.4, 0.05], 0.95) == (0, 2)  # ties: the window holding more
    assert effective_range([1.0], 0.9) == (0, 0)
    assert effective_range([0.25] * 4, 1.0) == (0, 3)


# ---------------------------------------------------------------- a real (tiny) residual net
def _tiny(block: str = "basic") -> ResidualNet:
    """Three blocks, the last a downsampling one (option-A pad for basic, projection for pre-act)."""
    spec = NetSpec(
        stem="cifar",
        stages=(StageSpec(2, 8, 1), StageSpec(1, 16, 2)),
        block=block,
        stem_width=8,
        shortcut="A" if block == "basic" else "B",
    )
    torch.manual_seed(0)
    model = ResidualNet(spec, 10)
    with torch.no_grad():
        model.train()(torch.randn(16, 3, 8, 8))  # realistic BN statistics
    return model.eval()


IMAGES, LABELS = torch.randn(4, 3, 8, 8), torch.tensor([0, 3, 5, 9])


def _ordinary_gradient(model: ResidualNet, lesions: BlockLesions) -> torch.Tensor:
    held = {}

    def as_leaf(_m, args):
        held["x"] = args[0].detach().requires_grad_()
        return (held["x"],)

    hook = lesions.blocks()[0][1].register_forward_pre_hook(as_leaf)
    loss = nn.functional.cross_entropy(model(IMAGES), LABELS, reduction="sum")
    hook.remove()
    return torch.autograd.grad(loss, held["x"])[0]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("block", ["basic", "preact_basic"])
def test_the_2_to_the_n_routed_paths_add_up_to_the_gradient(block):
    model = _tiny(block)
    lesions = BlockLesions(model)
    names = [n for n, _ in lesions.blocks()]
    with torch.no_grad():
        before = model(IMAGES)
    routed = sum(
        input_gradient(lesions, list(c), IMAGES, LABELS)
        for k in range(len(names) + 1)
        for c in itertools.combinations(names, k)
    )
    whole = _ordinary_gradient(model, lesions)
    assert torch.allclose(routed, whole, atol=1e-6, rtol=1e-4)
    with torch.no_grad():  # the forward pass is untouched, and everything is restored
        assert torch.equal(model(IMAGES), before)
    assert all(type(b.drop_path) is nn.Identity for _, b in lesions.blocks())


@pytest.mark.timeout(60)
def test_routing_zero_blocks_is_the_identity_path():
    """k = 0 on a pre-act net with identity shortcuts: the gradient at the last block's output,
    handed unchanged to the first block's input."""
    spec = NetSpec(stem="cifar", stages=(StageSpec(3, 8, 1),), block="preact_basic", stem_width=8)
    torch.manual_seed(0)
    model = ResidualNet(spec, 10).eval()
    lesions = BlockLesions(model)
    last = {}
    hook = lesions.blocks()[-1][1].register_forward_hook(lambda _m, _i, out: last.update(y=out))
    loss = nn.functional.cross_entropy(model(IMAGES), LABELS, reduction="sum")
    hook.remove()
    at_output = torch.autograd.grad(loss, last["y"])[0]
    assert torch.allclose(input_gradient(lesions, [], IMAGES, LABELS), at_output)
    assert depth(model, lesions) == 1 + 3 * 2 + 1


def test_routing_refuses_a_plain_net_and_unknown_blocks():
    from models import create_model

    plain = BlockLesions(create_model("plain20"))
    with pytest.raises(ValueError, match="plain net"):
        with plain.routed([]):
            pass
    with pytest.raises(ValueError, match="no block named"):
        with BlockLesions(_tiny()).routed(["s9.b9"]):
            pass


# ---------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def digits_runs(tmp_path_factory, digits_cache):
    """One-epoch (4-batch) digits runs of resnet20 and plain20."""
    from platform.run.config import load_config
    from platform.run.train import RUN_NAME_ENV, train

    root = tmp_path_factory.mktemp("paths_runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(RUN_NAME_ENV, "")
        for model in ("resnet20", "plain20"):
            overrides = [f"model={model}", f"data.cache_dir={digits_cache}", f"run.root={root}"]
            overrides += [
                f"run.name={model}",
                "trainer.max_epochs=1",
                "trainer.limit_train_batches=4",
            ]
            overrides += ["trainer.limit_val_batches=2", "logging.wandb=disabled"]
            overrides += ["logging.progress_bar=false", "data.num_workers=1"]
            assert train(load_config(overrides))["status"] == "finished"
    return root


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_reproduce_paths_end_to_end(digits_runs, tmp_path):
    out = tmp_path / "out"
    ckpt = digits_runs / "resnet20/checkpoints/last.ckpt"
    args = ["--checkpoint", str(ckpt), "--samples", "2", "--max-batches", "2"]
    args += ["--batch-size", "8", "--device", "cpu", "--out", str(out)]
    proc = run_cli("platform.reproduce", "paths", *args, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == {"paths.json", "paths.csv", "paths.png"}
    record = json.loads((out / "paths.json").read_text())
    assert record["n_blocks"] == 9 and record["depth"] == 20 and record["layers_per_block"] == 2
    assert record["downsampling_blocks"] == ["s2.b1", "s3.b1"] and record["scale"] == "proxy"
    rows = record["lengths"]
    assert [r["k"] for r in rows] == list(range(10)) and [r["paths"] for r in rows] == path_counts(
        9
    )
    assert all(r["grad_mean"] > 0 and r["draws"] == 2 for r in rows)
    assert sum(r["total_fraction"] for r in rows) == pytest.approx(1.0)
    eff = record["effective"]
    assert eff["mass"] >= 0.9 and eff["to_layers"] == 2 * eff["to_k"] and eff["depth"] == 20
    line = f"effective paths: lengths {eff['from_k']}–{eff['to_k']} of 9 blocks"
    assert line in proc.stdout and "layers of 20)" in proc.stdout
    assert len(list(csv.DictReader((out / "paths.csv").open()))) == 10
    assert (out / "paths.png").stat().st_size > 10_000

    plain = digits_runs / "plain20/checkpoints/last.ckpt"
    proc = run_cli("platform.reproduce", "paths", "--checkpoint", str(plain), timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "plain20 is a plain net" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

    import shutil

    copy = shutil.copytree(digits_runs / "resnet20", tmp_path / "flipped")
    data = bytearray((copy / "checkpoints/last.ckpt").read_bytes())
    data[len(data) // 2] ^= 0x01  # read through platform.run.init.read_checkpoint: digest checked
    (copy / "checkpoints/last.ckpt").write_bytes(bytes(data))
    assert main(["--checkpoint", str(copy / "checkpoints/last.ckpt")]) == 2


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "nope.ckpt"
    assert main(["--checkpoint", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "no such file" in err and len(err.strip().splitlines()) == 1

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    bad = run / "checkpoints" / "last.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["--checkpoint", str(bad)]) == 2
    assert "config.yaml" in capsys.readouterr().err  # not inside a platform run directory
    (run / "config.yaml").write_text("model:\n  name: resnet20\ndata:\n  name: synthetic\n")
    assert main(["--checkpoint", str(bad)]) == 2
    assert "cannot load it into resnet20" in capsys.readouterr().err  # not a checkpoint of ours

    assert main(["--checkpoint", str(bad), "--samples", "5000"]) == 2
    assert "--samples 5000" in capsys.readouterr().err
    assert main(["--checkpoint", str(bad), "--samples", "0"]) == 2
    assert main(["--help"]) == 0
    assert "Fig. 6" in capsys.readouterr().out
