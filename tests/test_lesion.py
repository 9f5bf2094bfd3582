"""Lesion study (Veit et al. 2016, arXiv 1605.06431 §4): deleting blocks of a residual or plain net,
and ``python -m platform.lesion`` end to end on two one-epoch digits runs."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from conftest import meta_model, n_params, run_cli
from torch import nn

from models import create_model
from models.resnet import NetSpec, ResidualNet, StageSpec, preact_cifar_spec
from models.resnet_blocks import BasicBlock, BlockArgs
from platform.papers.lesion_blocks import BlockLesions

X = torch.randn(2, 3, 32, 32)


def _calibrated(model: ResidualNet) -> ResidualNet:
    """Realistic BN statistics (one train-mode pass), then eval: deterministic, finite outputs."""
    torch.manual_seed(0)
    with torch.no_grad():
        model.train()(torch.randn(8, 3, 32, 32))
    return model.eval()


def _out(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(X)


def _with_identity(model: ResidualNet, name: str) -> torch.Tensor:
    stage, block = name.split(".")
    original = getattr(model.get_submodule(stage), block)
    setattr(model.get_submodule(stage), block, nn.Identity())
    try:
        return _out(model)
    finally:
        setattr(model.get_submodule(stage), block, original)


# ---------------------------------------------------------------- plain nets


def test_plain_nets_are_their_resnets_without_shortcuts():
    plain, res = meta_model("plain20"), meta_model("resnet20")
    assert [b.shortcut for _, b in plain.blocks()] == [None] * 9
    assert (
        [n for n, _ in plain.blocks()]
        == [n for n, _ in res.blocks()]
        == [f"s{s}.b{b}" for s in (1, 2, 3) for b in (1, 2, 3)]
    )
    assert BlockLesions(plain).plain and not BlockLesions(res).plain
    # plain-18 = resnet18 less its three option-B projections (conv 1x1 + BN)
    projections = sum(64 * 2**i * 2 ** (i + 1) * 64 + 2 * 2 ** (i + 1) * 64 for i in range(3))
    assert n_params(meta_model("plain18")) == n_params(meta_model("resnet18")) - projections


def test_plain_nets_refuse_drop_path_and_zero_init():
    for knob in ({"drop_path_rate": 0.1}, {"zero_init_residual": True}):
        with pytest.raises(ValueError, match="free knob|unknown knob"):
            create_model("plain20", **knob)
        spec = NetSpec(
            stem="cifar",
            stages=(StageSpec(1, 16, 1),),
            block="basic",
            stem_width=16,
            shortcut="none",
        )
        with pytest.raises(ValueError, match="plain net"):
            ResidualNet(spec, 10, **knob)


def test_plain_block_is_the_branch_alone():
    block = BasicBlock(BlockArgs(8, 8, shortcut="none")).eval()
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        assert torch.equal(block(x), torch.relu(block.conv2(block.conv1(x))))


# ---------------------------------------------------------------- deleting blocks


def test_blocks_are_listed_in_forward_order_with_their_shapes():
    model = meta_model("resnet110")
    lesions = BlockLesions(model)
    names = [n for n, _ in model.blocks()]
    assert [n for n, _ in lesions.blocks()] == names
    assert len(names) == 54 and names[:2] == ["s1.b1", "s1.b2"] and names[-1] == "s3.b18"
    assert [s.name for s in model.block_sites if not s.keeps_shape] == ["s2.b1", "s3.b1"]
    assert all(lesions.removable(n) for n in names)
    with pytest.raises(ValueError, match="no block named 's4.b1'"):
        lesions.site("s4.b1")


@pytest.mark.parametrize("preact", [False, True], ids=["resnet20", "preact_resnet20"])
def test_removing_a_residual_block_is_replacing_it_by_the_identity(preact):
    model = (
        ResidualNet(preact_cifar_spec(20, "preact_basic"), 10)
        if preact
        else create_model("resnet20")
    )
    model = _calibrated(model)
    before = _out(model)
    for block in ("s1.b1", "s2.b3", "s3.b2"):
        expected = _with_identity(model, block)
        with BlockLesions(model).removed([block]):
            got = _out(model)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
        assert not torch.allclose(got, before)
    assert torch.equal(_out(model), before)  # restored
    assert all(
        isinstance(b.drop_path, nn.Identity) for _, b in model.blocks()
    )  # no stochastic depth here


def test_removing_a_downsampling_residual_block_keeps_its_shortcut():
    model = _calibrated(create_model("resnet20"))
    block = model.get_submodule("s2.b1")
    x = torch.relu(torch.randn(2, 16, 32, 32))
    with BlockLesions(model).removed(["s2.b1"]), torch.no_grad():
        assert torch.equal(block(x), torch.relu(block.shortcut(x)))  # option A: subsample + pad
    # a pre-act projection takes the block's pre-activated input (bare 1x1 conv)
    tiny = ResidualNet(preact_cifar_spec(11, "preact_bottleneck"), 10)
    _calibrated(tiny)
    b = tiny.get_submodule("s2.b1")
    with BlockLesions(tiny).removed(["s2.b1"]), torch.no_grad():
        x = torch.randn(2, 64, 8, 8)
        assert torch.equal(b(x), b.shortcut(b.norm1(x)))


def test_removing_several_blocks_and_restoring_after_an_exception():
    model = _calibrated(create_model("resnet20"))
    before = _out(model)
    paths = [b.drop_path for _, b in model.blocks()]
    with pytest.raises(RuntimeError, match="boom"):
        with BlockLesions(model).removed(["s1.b2", "s3.b3", "s1.b2"]):
            assert type(model.get_submodule("s3.b3").drop_path).__name__ == "_ZeroBranch"
            raise RuntimeError("boom")
    assert [b.drop_path for _, b in model.blocks()] == paths
    assert torch.equal(_out(model), before)


def test_plain_net_blocks_become_the_identity_and_shape_changing_ones_raise():
    model = _calibrated(create_model("plain20"))
    lesions = BlockLesions(model)
    before = _out(model)
    expected = _with_identity(model, "s2.b2")
    with lesions.removed(["s1.b1", "s2.b2"]) as lesioned:
        assert isinstance(lesioned.get_submodule("s2.b2"), nn.Identity)
    with lesions.removed(["s2.b2"]):
        torch.testing.assert_close(_out(model), expected, rtol=0, atol=0)
    assert torch.equal(_out(model), before)
    assert [n for n, _ in model.blocks() if not lesions.removable(n)] == ["s2.b1", "s3.b1"]
    with pytest.raises(ValueError, match=r"plain block s3\.b1 cannot be removed: it maps 32 to 64"):
        with lesions.removed(["s1.b2", "s3.b1"]):
            pass
    assert isinstance(model.get_submodule("s1.b2"), BasicBlock)  # nothing was changed
    assert torch.equal(_out(model), before)


# ---------------------------------------------------------------- platform.papers.lesion


def test_random_subsets_are_seeded_distinct_and_shared_by_equal_pools():
    from platform.papers.lesion import default_ks, subsets

    pool = [f"s1.b{i}" for i in range(1, 8)]
    a = subsets(pool, 3, 5, seed=0)
    assert a == subsets(list(pool), 3, 5, seed=0) and a != subsets(pool, 3, 5, seed=1)
    assert len({tuple(s) for s in a}) == 5 and all(len(s) == 3 for s in a)
    assert len(subsets(pool[:2], 1, 4, seed=0)) == 4  # fewer distinct subsets than samples: repeats
    assert default_ks(52) == [1, 5, 8, 12, 15, 19, 22, 26]
    ks = default_ks(52)  # resnet110: 52 shape-keeping blocks
    assert ks[0] == 1 and ks[-1] == 26 and len(ks) == 8 and ks == sorted(set(ks))
    assert default_ks(7) == [1, 2, 3] and default_ks(1) == [1]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, digits_cache):
    """One-epoch (4-batch) digits runs of resnet20 and plain20, trained in this process: the second
    run reuses the first one's compiled FFCV pipelines, which halves the fixture's time."""
    from platform.run.config import load_config
    from platform.run.train import RUN_NAME_ENV, train

    root = tmp_path_factory.mktemp("lesion_runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(RUN_NAME_ENV, "")  # train() sets it for its DDP ranks; restored on exit
        for model in ("resnet20", "plain20"):
            summary = train(
                load_config(
                    [
                        f"model={model}",
                        f"data.cache_dir={digits_cache}",
                        f"run.root={root}",
                        f"run.name={model}",
                        "trainer.max_epochs=1",
                        "trainer.limit_train_batches=4",
                        "trainer.limit_val_batches=2",
                        "logging.wandb=disabled",
                        "logging.progress_bar=false",
                        "data.num_workers=1",
                    ]
                )
            )
            assert summary["status"] == "finished", summary
    return root


@pytest.mark.slow
def test_the_intact_error_is_what_evaluate_reports(two_runs):
    """Issue 29: lesion scores through platform.evaluate's path; the intact net agrees exactly."""
    from platform.after.evaluate import evaluate
    from platform.papers.lesion import ValBatches, residual_run, top1_error

    ckpt = two_runs / "resnet20/checkpoints/last.ckpt"
    run = residual_run(ckpt)
    ours = top1_error(run.model, ValBatches(run.datamodule, torch.device("cpu"), None))
    record = evaluate(ckpt, ["data.num_workers=1"], "center", write=False)
    assert ours == pytest.approx(record["top1_err"], abs=1e-5), (ours, record["top1_err"])


@pytest.mark.slow
def test_lesion_cli_end_to_end(two_runs, tmp_path):
    out = tmp_path / "out"
    proc = run_cli(
        "platform.lesion",
        "--checkpoint",
        str(two_runs / "resnet20/checkpoints/last.ckpt"),
        "--plain-checkpoint",
        str(two_runs / "plain20/checkpoints/last.ckpt"),
        "--k",
        "1,2",
        "--samples",
        "2",
        "--max-batches",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Veit et al. 2016" in proc.stdout and "deleting any layer in VGG" in proc.stdout.replace(
        "\n", " "
    )
    assert {p.name for p in out.iterdir()} >= {
        "lesion.json",
        "lesion.md",
        "lesion.csv",
        "lesion.png",
    }
    record = json.loads((out / "lesion.json").read_text())
    assert record["scale"] == "proxy" and record["runs"][0]["model"]["name"] == "resnet20"
    assert record["runs"][0]["data"]["name"] == "digits" and record["runs"][1][
        "checkpoint"
    ].endswith("last.ckpt")
    res, plain = record["nets"]["residual"], record["nets"]["plain"]
    assert [r["block"] for r in res["single"]] == [
        f"s{s}.b{b}" for s in (1, 2, 3) for b in (1, 2, 3)
    ]
    assert all(r["removable"] and 0 <= r["top1_err"] <= 100 for r in res["single"])
    assert [r["downsampling"] for r in res["single"]].count(True) == 2
    not_removable = [r["block"] for r in plain["single"] if not r["removable"]]
    assert not_removable == ["s2.b1", "s3.b1"]
    assert all(r["top1_err"] is None for r in plain["single"] if not r["removable"])
    assert all(0 <= r["top1_err"] <= 100 for r in plain["single"] if r["removable"])
    for net in (res, plain):
        assert 0 <= net["intact_err"] <= 100
        assert [r["k"] for r in net["random_k"]] == [1, 2]
        assert all(
            r["n"] == 2 and len(r["removed"]) == 2 and 0 <= r["mean"] <= 100
            for r in net["random_k"]
        )
        assert all(set(sum(r["removed"], [])) <= set(net["random_pool"]) for r in net["random_k"])
    assert (
        res["random_k"][1]["removed"] == plain["random_k"][1]["removed"]
    )  # same blocks for both nets
    rows = list(csv.DictReader((out / "lesion.csv").open()))
    assert len(rows) == 2 * (1 + 9 + 2)
    assert "not removable" in (out / "lesion.md").read_text()
    assert (out / "lesion.png").stat().st_size > 10_000


def test_missing_or_unreadable_checkpoint_is_a_clear_error(tmp_path, capsys):
    from platform.papers.lesion import main

    missing = tmp_path / "nope.ckpt"
    proc = run_cli("platform.lesion", "--checkpoint", str(missing), timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        str(missing) in proc.stderr and "--checkpoint" in proc.stderr and "last.ckpt" in proc.stderr
    )

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    bad = run / "checkpoints" / "last.ckpt"
    bad.write_bytes(b"not a checkpoint")
    capsys.readouterr()
    assert main(["--checkpoint", str(bad)]) == 2
    assert "config.yaml" in capsys.readouterr().err  # a checkpoint outside a run directory
    (run / "config.yaml").write_text("model:\n  name: resnet20\ndata:\n  name: synthetic\n")
    assert main(["--checkpoint", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "cannot load it into resnet20" in err
    assert (
        main(["--checkpoint", str(missing), "--plain-checkpoint", str(bad)]) == 2
    )  # the first one named
    assert main(["--checkpoint", str(bad), "--k", "0"]) == 2 and "--k" in capsys.readouterr().err
