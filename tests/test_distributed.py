"""Real DDP on CPU (gloo, 2 processes): equivalence with one process, exact validation, FFCV sharding."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, cli_env, run_cli

pytestmark = pytest.mark.slow

COMMON = [
    "data=synthetic",
    "data.synthetic_size=64",
    "data.batch_size=16",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=2",
    "logging.wandb=disabled",
    "logging.progress_bar=false",
    "model=resnet20",
    "optim.lr=0.05",
    "schedule.warmup_epochs=0",
]


def _probe(out, *args):
    env = cli_env()
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "tests/ddp_probe.py", str(out), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_ddp_equals_one_process_with_the_same_global_batch(tmp_path):
    """2 ranks x 8 images train exactly like 1 process x 16 images when batch statistics are
    global -- here a model without BatchNorm (CPU DDP has no SyncBatchNorm; on GPUs
    trainer.sync_batchnorm=true gives the same guarantee for BN models)."""
    args = [*COMMON, "model=ddp_probe_net"]
    _probe(
        tmp_path / "single",
        *args,
        "trainer.devices=1",
        f"run.root={tmp_path / 'runs1'}",
        "run.name=s",
    )
    _probe(
        tmp_path / "ddp",
        *args,
        "trainer.devices=2",
        "trainer.strategy=ddp",
        f"run.root={tmp_path / 'runs2'}",
        "run.name=d",
    )
    single = torch.load(tmp_path / "single" / "rank0.pt")
    r0, r1 = torch.load(tmp_path / "ddp" / "rank0.pt"), torch.load(tmp_path / "ddp" / "rank1.pt")
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"ranks disagree on {k}"
        torch.testing.assert_close(r0[k].float(), single[k].float(), atol=1e-4, rtol=1e-4, msg=k)
    # validation (16 examples, split 8/8 with no padding) scores the same as one process
    s1 = json.loads((tmp_path / "runs1" / "s" / "summary.json").read_text())
    s2 = json.loads((tmp_path / "runs2" / "d" / "summary.json").read_text())
    assert s2["world_size"] == 2 and s1["world_size"] == 1
    assert s2["final_val_top1"] == pytest.approx(s1["final_val_top1"])


def test_ddp_ranks_agree_with_plain_batchnorm(tmp_path):
    """With per-rank BN statistics only the parameters must agree (buffers legitimately differ)."""
    _probe(
        tmp_path / "ddp",
        *COMMON,
        "trainer.max_epochs=1",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        f"run.root={tmp_path / 'runs'}",
    )
    r0, r1 = torch.load(tmp_path / "ddp" / "rank0.pt"), torch.load(tmp_path / "ddp" / "rank1.pt")
    params = [k for k in r0 if "running_" not in k and "num_batches" not in k]
    assert params and all(torch.equal(r0[k], r1[k]) for k in params)


def test_sync_batchnorm_on_cpu_is_a_clear_error(tmp_path):
    proc = run_cli(
        "platform.train",
        *COMMON,
        "trainer.sync_batchnorm=true",
        f"run.root={tmp_path}",
        timeout=120,
    )
    assert (
        proc.returncode == 2 and "Traceback" not in proc.stderr and "sync_batchnorm" in proc.stderr
    )


def test_ffcv_digits_under_ddp_validates_every_image_once(tmp_path, digits_cache):
    # 359 validation images: 180 + 179 across two ranks; the module raises if the count is off
    proc = run_cli(
        "platform.train",
        f"data.cache_dir={digits_cache}",
        "data.num_workers=1",
        "data.batch_size=32",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=4",
        "logging.wandb=disabled",
        "logging.progress_bar=false",
        f"run.root={tmp_path}",
        "run.name=ddp",
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["world_size"] == 2


def test_global_batch_must_divide_across_ranks(tmp_path):
    proc = run_cli(
        "platform.train",
        *COMMON,
        "data.batch_size=15",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        f"run.root={tmp_path}",
    )
    assert proc.returncode != 0
    assert "data.batch_size=15" in proc.stderr and "divide evenly across 2 ranks" in proc.stderr


def test_same_seed_gives_bit_identical_losses(tmp_path):
    rows = []
    for name in ("a", "b"):
        proc = run_cli(
            "platform.train",
            *COMMON,
            "trainer.devices=1",
            f"run.root={tmp_path}",
            f"run.name={name}",
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        rows.append(
            [json.loads(l) for l in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        )
    # timings (epoch_time_s, the throughput monitor's perf/*) differ between runs; every metric must not
    strip = lambda rs: [
        {k: v for k, v in r.items() if k != "epoch_time_s" and not k.startswith("perf/")}  # noqa: E731
        for r in rs
    ]
    assert strip(rows[0]) == strip(rows[1])
