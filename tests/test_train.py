"""End to end: ``python -m platform.train`` as a subprocess, through FFCV, Lightning and W&B offline."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import ROOT, cli_env, run_cli

from platform.run.config import from_dict, load_config

pytestmark = pytest.mark.slow

SUMMARY_KEYS = {
    "model",
    "data",
    "seed",
    "epochs",
    "best_val_top1",
    "final_val_top1",
    "final_val_top5",
    "wall_time_s",
    "world_size",
    "status",
}


def _no_key_env(tmp_path):
    env = cli_env()
    env.pop("WANDB_MODE", None)  # exercise logging.wandb=auto: no API key -> offline
    env["NETRC"] = str(tmp_path / "no-netrc")
    return env


def _args(tmp_path, digits_cache, *extra):
    return [
        "platform.train",
        f"data.cache_dir={digits_cache}",
        f"run.root={tmp_path / 'runs'}",
        "logging.progress_bar=false",
        "data.num_workers=1",
        *extra,
    ]


def test_main_job_end_to_end(tmp_path, digits_cache):
    proc = run_cli(
        *_args(
            tmp_path,
            digits_cache,
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=6",
            "run.name=e2e",
        ),
        env=_no_key_env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("finished: resnet20 on digits | best val top-1") and "2 epochs" in line

    run = tmp_path / "runs" / "e2e"
    cfg = from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    assert cfg.trainer.max_epochs == 2 and cfg.model.name == "resnet20"
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    assert all({"train/loss", "val/top1", "val/top5"} <= set(r) for r in rows)
    summary = json.loads((run / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["status"] == "finished" and summary["epochs"] == 2 and summary["world_size"] == 1
    assert summary["final_val_top1"] == rows[-1]["val/top1"]
    assert summary["best_val_top1"] == max(r["val/top1"] for r in rows)
    assert 0 <= summary["final_val_top1"] <= summary["final_val_top5"] <= 100
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert not list(
        (run / "checkpoints").glob("*.tmp")
    )  # written under a temporary name, then renamed
    env = json.loads((run / "env.json").read_text())
    assert env["torch"] and env["git_commit"] is not None
    # W&B ran offline in the run directory, with the resolved config
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    (records,) = offline[0].glob(
        "run-*.wandb"
    )  # offline: config and history live in the run's records
    data = records.read_bytes()
    assert b"resnet20" in data and b"val/top1" in data and b"train/loss" in data

    # running again into the same directory without resume= is refused, nothing is overwritten
    again = run_cli(
        *_args(tmp_path, digits_cache, "run.name=e2e"), env=_no_key_env(tmp_path), timeout=120
    )
    assert (
        again.returncode == 2 and "resume=auto" in again.stderr and "Traceback" not in again.stderr
    )
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"


def test_interrupted_run_resumes_to_the_same_total_epochs(tmp_path, digits_cache):
    args = _args(tmp_path, digits_cache, "trainer.max_epochs=2", "logging.wandb=disabled")
    proc = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=cli_env(),
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs = tmp_path / "runs"
    deadline = time.time() + 300
    while (
        time.time() < deadline
        and proc.poll() is None
        and not list(runs.glob("*/checkpoints/last.ckpt"))
    ):
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C during the second epoch
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    (run,) = runs.iterdir()
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    assert [json.loads(l)["epoch"] for l in (run / "metrics.jsonl").read_text().splitlines()] == [0]

    # resume=auto with no run.name finds the newest unfinished run of this exact configuration
    resumed = run_cli(*args, "resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert list(runs.iterdir()) == [run]
    epochs = [json.loads(l)["epoch"] for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [0, 1]  # each epoch recorded once
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 2


def test_resume_from_a_missing_checkpoint_is_a_clear_error(tmp_path):
    proc = run_cli(
        "platform.train", f"resume={tmp_path / 'nope.ckpt'}", f"run.root={tmp_path}", timeout=120
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert str(tmp_path / "nope.ckpt") in proc.stderr


def test_default_main_job_reaches_97_percent(tmp_path, digits_cache):
    """The README's main job, unchanged but for where it writes: >= 97% val top-1 on digits."""
    proc = run_cli(*_args(tmp_path, digits_cache, "logging.wandb=disabled"), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == load_config([]).trainer.max_epochs
    assert summary["best_val_top1"] >= 97.0 and summary["final_val_top1"] >= 97.0, summary
