"""resume=PATH branches instead of writing into another run (issue 26, item 2), and a resume is checked
against the configuration the checkpoint carries, with or without the run's config.yaml (item 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, cli_env
from test_run_integrity import _args, _run, _snapshot


def _cli(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "platform.train", *_args(tmp_path, *extra)],
        cwd=ROOT,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def source_run(tmp_path) -> Path:
    """A finished 1-epoch run at tmp_path/src."""
    _run(tmp_path, "run.name=src", "trainer.max_epochs=1")
    return tmp_path / "src"


@pytest.mark.slow
def test_resume_path_branches_into_its_own_run_and_leaves_the_source_untouched(
    tmp_path, source_run
):
    before = _snapshot(source_run)
    ckpt = source_run / "checkpoints" / "last.ckpt"
    # without run.name: refused in one line saying how to branch
    r = _cli(tmp_path, f"resume={ckpt}", "trainer.max_epochs=2")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "run.name=NEW" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # with run.name: a new directory under run.root, continued from the checkpoint
    r = _cli(tmp_path, f"resume={ckpt}", "trainer.max_epochs=2", "run.name=branch")
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((tmp_path / "branch" / "summary.json").read_text())
    assert s["status"] == "finished" and s["epochs"] == 2 and s["resumed_from"] == str(ckpt)
    assert (tmp_path / "branch" / "checkpoints" / "last.ckpt").is_file()
    assert _snapshot(source_run) == before  # the source run is exactly as it was


@pytest.mark.slow
def test_a_resume_without_config_yaml_is_checked_against_the_checkpoint(tmp_path):
    _run(tmp_path, "run.name=c", "trainer.max_epochs=1")
    run = tmp_path / "c"
    (run / "config.yaml").unlink()
    stored = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["platform_config"]
    assert stored["model"]["name"] == "resnet20"
    r = _cli(tmp_path, "run.name=c", "resume=auto", "trainer.max_epochs=2", "optim.lr=0.5")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "optim.lr" in r.stderr and "stored in" in r.stderr
    r = _cli(tmp_path, "run.name=c", "resume=auto", "trainer.max_epochs=2", "model=resnet32")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "model.name" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (run / "config.yaml").exists()  # nothing written by the refusals


def test_an_old_checkpoint_without_a_config_refuses_another_model_in_one_line(tmp_path, caplog):
    """Checkpoints written before they carried their config: the model name in hyper_parameters."""
    from platform.run.config import load_config
    from platform.run.train import ResumeError, check_resume_config

    ckpt = tmp_path / "old.ckpt"
    torch.save({"hyper_parameters": {"model_name": "resnet56"}, "state_dict": {}}, ckpt)
    with pytest.raises(ResumeError, match="holds model resnet56, not model=resnet20"):
        check_resume_config(tmp_path, load_config(_args(tmp_path)), ckpt)
    check_resume_config(tmp_path, load_config(_args(tmp_path, "model=resnet56")), ckpt)
    assert "stores no configuration" in caplog.text
