"""Stochastic depth as Huang et al. ran it (batch mode, three rules), its DDP plumbing, bad input.

Rates to 1e-12 on every family with drop-path; a dropped block runs no branch (calls counted);
train-mode expectation = eval output; decisions from (seed, step) only, equal on 2 gloo ranks;
a 2-rank DDP training run in batch mode finishes (slow).
"""

from __future__ import annotations

import json
import socket

import pytest
import torch
import torch.multiprocessing as mp
from conftest import run_cli
from torch import nn

import models
from models.layers import DropPath, drop_path_rates, set_drop_path_step, skips_blocks
from models.resnet_blocks import BasicBlock, BlockArgs, PadShortcut, PreActBasicBlock
from platform.run.config import load_config
from platform.run.schema import ConfigError


def meta(name: str, **knobs) -> nn.Module:
    with torch.device("meta"):
        return models.create_model(name, **knobs)


def drop_paths(model: nn.Module) -> list[DropPath]:
    return [m for m in model.modules() if isinstance(m, DropPath)]


# ---------------------------------------------------------------- rules and defaults


def test_the_three_rules_to_1e_12():
    n, r = 54, 0.5
    huang, timm, tf = (drop_path_rates(n, r, rule) for rule in ("huang", "timm", "tf"))
    for i in range(n):
        assert abs(huang[i] - (i + 1) / n * r) < 1e-12  # l/L (1 - p_L), l = 1..L
        assert abs(timm[i] - i / (n - 1) * r) < 1e-12
        assert abs(tf[i] - i / n * r) < 1e-12
    assert (
        huang[-1] == timm[-1] == r and tf[0] == timm[0] == 0.0 and huang[0] == pytest.approx(r / n)
    )
    assert drop_path_rates(1, 0.3, "timm") == [0.3]


@pytest.mark.parametrize(
    ("name", "mode", "rule", "n"),
    [
        ("resnet110", "batch", "huang", 54),  # Huang et al.: per mini-batch, l/L
        ("wrn16_4", "batch", "huang", 6),
        ("efficientnet_b0", "sample", "tf", 16),  # TF / torchvision: per sample, i/N
        ("inception_resnet_v1", "sample", "timm", 20),
        ("highway32", "sample", "timm", 27),
    ],
)
def test_family_defaults_and_per_block_rates(name, mode, rule, n):
    model = meta(name, drop_path_rate=0.4)
    expected = {round(p, 12) for p in drop_path_rates(n, 0.4, rule) if p > 0}
    got = {round(m.p, 12) for m in drop_paths(model)}
    # EfficientNet: only blocks with a residual carry their (global-index) rate
    assert got <= expected if name == "efficientnet_b0" else got == expected
    assert len(got) >= 3
    assert {m.mode for m in drop_paths(model)} == {mode}
    other = "timm" if rule != "timm" else "huang"
    switched = meta(name, drop_path_rate=0.4, drop_path_rule=other, drop_path_mode="sample")
    rates = sorted(m.p for m in drop_paths(switched))
    want = sorted(p for p in drop_path_rates(n, 0.4, other) if p > 0)
    if name == "efficientnet_b0":  # only blocks with a residual carry their rate
        assert set(rates) <= set(want)
    else:
        assert max(abs(a - b) for a, b in zip(rates, want, strict=True)) < 1e-12
    assert {m.mode for m in drop_paths(switched)} == {"sample"}


# ---------------------------------------------------------------- batch mode


def _counting(module: nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_a_dropped_block_runs_no_branch_and_returns_its_shortcut():
    torch.manual_seed(0)
    block = BasicBlock(BlockArgs(4, 8, 2, shortcut="A"), drop_path=DropPath(0.5, "batch")).train()
    calls = _counting(block.conv1)
    x = torch.randn(2, 4, 8, 8).relu()
    block.drop_path.decision = True
    out = block(x)
    assert calls[0] == 0  # the branch was never run
    torch.testing.assert_close(out, torch.relu(block.shortcut(x)))
    block.drop_path.decision = False
    block(x)
    assert calls[0] == 1
    block.eval()
    block.drop_path.decision = True  # eval never drops
    block(x)
    assert calls[0] == 2


def test_train_mode_expectation_equals_eval_output():
    """Inverted scaling: a kept branch is x / (1 - p) in training, so p * dropped +
    (1 - p) * kept = the eval output, exactly (BN frozen, only DropPath in training mode)."""
    torch.manual_seed(0)
    p = 0.3
    for block in (
        PreActBasicBlock(BlockArgs(4, 4), drop_path=DropPath(p, "batch")),
        models.highway.HighwayLayer(4, drop_path=DropPath(p, "batch")),
    ):
        block.eval()
        x = torch.randn(3, 4, 6, 6)
        with torch.no_grad():
            full = block(x)
            block.drop_path.train()
            block.drop_path.decision = True
            dropped = block(x)
            block.drop_path.decision = False
            kept = block(x)
        torch.testing.assert_close(p * dropped + (1 - p) * kept, full, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(dropped, x)  # identity shortcut: the input itself


def test_decisions_come_from_seed_and_step_and_follow_the_rates():
    model = models.create_model("resnet20", drop_path_rate=0.5)
    blocks = drop_paths(model)
    rates = [m.p for m in blocks]
    first = set_drop_path_step(model, seed=7, step=3)
    assert set_drop_path_step(model, seed=7, step=3) == first == [m.decision for m in blocks]
    assert (
        set_drop_path_step(model, seed=8, step=3) != first
        or set_drop_path_step(model, 7, 4) != first
    )
    steps = 2000
    counts = [0] * len(blocks)
    for step in range(steps):
        for i, d in enumerate(set_drop_path_step(model, 0, step)):
            counts[i] += d
    for c, p in zip(counts, rates, strict=True):
        assert abs(c / steps - p) < 4.5 * (p * (1 - p) / steps) ** 0.5 + 1e-9  # ~4.5 sigma
    assert skips_blocks(model) and not skips_blocks(models.create_model("resnet20"))
    assert not skips_blocks(
        models.create_model("resnet20", drop_path_rate=0.5, drop_path_mode="sample")
    )


def test_the_module_sets_the_decisions_of_each_step():
    from platform.run.module import ClassificationModule

    module = ClassificationModule("resnet20", 10, {"drop_path_rate": 0.5}, seed=5)
    module.on_train_batch_start(None, 0)  # no trainer attached: global_step 0
    got = [m.decision for m in drop_paths(module.model)]
    twin = models.create_model("resnet20", drop_path_rate=0.5)
    assert got == set_drop_path_step(twin, 5, 0)


def _rank(rank: int, port: int, out) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(rank)  # different global RNG per rank: the decisions must not depend on it
    with torch.device("meta"):
        model = models.create_model("resnet110", drop_path_rate=0.5)
    mine = torch.tensor(
        [set_drop_path_step(model, 0, step) for step in range(50)], dtype=torch.int64
    )
    gathered = [torch.zeros_like(mine) for _ in range(2)]
    dist.all_gather(gathered, mine)
    if rank == 0:
        out.put([g.tolist() for g in gathered])
    dist.destroy_process_group()


def test_two_gloo_ranks_draw_the_same_decisions():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("fork")  # the children only draw decisions and all_gather (no OpenMP work)
    out = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, port, out)) for r in range(2)]
    for p in procs:
        p.start()
    a, b = out.get(timeout=120)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert a == b
    assert len({tuple(step) for step in a}) > 40  # and they change from step to step


def test_ddp_runs_find_unused_parameters_only_when_blocks_can_be_skipped():
    from platform.run.compose import ddp_strategy

    cfg = load_config(["trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu"])
    assert ddp_strategy(cfg, skips_blocks=True) == "ddp_find_unused_parameters_true"
    assert ddp_strategy(cfg, skips_blocks=False) == "ddp"
    single = load_config(["trainer.devices=1", "trainer.accelerator=cpu"])
    assert ddp_strategy(single, skips_blocks=True) == "auto"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_two_rank_ddp_run_in_batch_mode_finishes(tmp_path):
    proc = run_cli(
        "platform.train",
        "model=resnet20",
        "model.drop_path_rate=0.5",
        "model.drop_path_mode=batch",
        "data=synthetic",
        "data.synthetic_size=64",
        "data.batch_size=16",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.max_epochs=1",
        "logging.wandb=disabled",
        "logging.progress_bar=false",
        f"run.root={tmp_path}",
        "run.name=sd",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((tmp_path / "sd" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["world_size"] == 2


# ---------------------------------------------------------------- Huang's shortcut, bad input


def test_huang_downsampling_shortcut_is_a_2x2_average_pool_with_zero_channels():
    x = torch.randn(2, 3, 8, 8)
    y = PadShortcut(3, 5, 2, "avgpool")(x)
    torch.testing.assert_close(y[:, :3], nn.functional.avg_pool2d(x, 2))
    assert y.shape == (2, 5, 4, 4) and not y[:, 3:].any()
    torch.testing.assert_close(
        PadShortcut(3, 5, 2)(x)[:, :3], x[:, :, ::2, ::2]
    )  # He et al.'s option A
    model = models.create_model("resnet20", shortcut_downsample="avgpool")
    assert {m.pool for m in model.modules() if isinstance(m, PadShortcut)} == {"avgpool"}
    with pytest.raises(ValueError, match="needs option-A shortcuts"):
        models.ResidualNet(models.resnet.wrn_spec(16, 4), shortcut_downsample="avgpool")
    with pytest.raises(
        ValueError, match="unknown knob 'shortcut_downsample'"
    ):  # not a knob of option-B nets
        meta("wrn16_4", shortcut_downsample="avgpool")


@pytest.mark.parametrize(
    ("key", "allowed"),
    [
        ("drop_path_mode", "sample, batch"),
        ("drop_path_rule", "huang, timm, tf"),
        ("shortcut_downsample", "stride, avgpool"),
    ],
)
def test_bad_values_name_the_allowed_ones(key, allowed):
    with pytest.raises(ConfigError, match=f"model.{key}: 'foo'; expected one of None, {allowed}"):
        load_config([f"model.{key}=foo"])
    with pytest.raises(ValueError, match=key):
        meta("resnet20", **{key: "foo"})


@pytest.mark.slow
def test_the_benchmark_suite_records_both_contenders(tmp_path):
    from benchmarks.common import check_record

    proc = run_cli(
        "benchmarks",
        "stochastic_depth",
        "--quick",
        "--no-ddp",
        "--threads",
        "1",
        "--results-dir",
        str(tmp_path),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(next(tmp_path.glob("stochastic_depth-*.json")).read_text())
    assert check_record(record) == [] and record["ddp"] is None
    s = record["single"]
    assert s["ratio"] > 0 and len(s["raw_s"]["sd"]) == len(s["raw_s"]["none"]) == 1
    assert 0.5 < s["expected_block_share"] < 1  # resnet20, l/L rule at rate 0.5: 1 - 0.5 * 10/18
