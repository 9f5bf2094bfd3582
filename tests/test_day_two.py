"""Issue 25 (a researcher's day two): debug knobs that finish, resume=auto/must that say what they
found, the saved-config re-run recipe, the run list, doctor's version sources.  Each test runs the
command as a user would (a subprocess from the repository root)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

TINY = [
    "model=resnet20",
    "data=synthetic",
    "data.synthetic_size=64",
    "data.resolution=16",
    "data.batch_size=16",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.max_epochs=1",
    "logging.wandb=disabled",
    "logging.progress_bar=false",
]


def _train(root: Path, *extra: str):
    return run_cli("platform.train", *TINY, f"run.root={root}", *extra)


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("knob", ["trainer.fast_dev_run=true", "trainer.limit_val_batches=1"])
def test_limited_validation_finishes_and_is_reported_partial(tmp_path, digits_cache, knob):
    proc = run_cli(
        "platform.train",
        "model=resnet20",
        "data=digits",
        f"data.cache_dir={digits_cache}",
        "data.num_workers=1",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "logging.wandb=disabled",
        "logging.progress_bar=false",
        f"run.root={tmp_path}",
        knob,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    (run_dir,) = tmp_path.iterdir()
    s = _summary(run_dir)
    assert s["status"] == "finished"
    assert s["val_partial"] is True and s["val_seen"] == 64 and s["val_size"] == 359
    assert "partial validation: 64 of 359 examples" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_resume_auto_says_when_nothing_matched_and_resume_must_refuses(tmp_path):
    refused = _train(tmp_path, "resume=must")
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "resume=must" in refused.stderr and "Traceback" not in refused.stderr
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # nothing started, nothing left
    fresh = _train(tmp_path, "resume=auto", "run.name=mine")
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    said = [line for line in (fresh.stdout + fresh.stderr).splitlines() if "resume=auto:" in line]
    assert len(said) == 1 and str(tmp_path / "mine") in said[0] and "fresh run" in said[0]


@pytest.mark.slow
def test_rerun_of_a_saved_named_config_with_another_seed_is_a_new_run(tmp_path):
    first = _train(tmp_path, "run.name=first", "resume=auto")
    assert first.returncode == 0, first.stderr[-2000:]
    again = _train(tmp_path, f"config={tmp_path / 'first' / 'config.yaml'}", "seed=1")
    assert again.returncode == 0, again.stderr[-2000:]
    runs = sorted(p.name for p in tmp_path.iterdir())
    assert len(runs) == 2 and "first" in runs
    (new,) = [tmp_path / r for r in runs if r != "first"]
    assert _summary(new)["seed"] == 1 and _summary(tmp_path / "first")["seed"] == 0


def test_config_file_leaves_run_identity_out_unless_restated(tmp_path):
    from platform.run.config import load_config

    saved = tmp_path / "config.yaml"
    saved.write_text("run:\n  name: old\nresume: auto\nseed: 3\n")
    cfg = load_config([f"config={saved}"])
    assert (cfg.run.name, cfg.resume, cfg.seed) == (None, None, 3)
    cfg = load_config([f"config={saved}", "resume=auto", "run.name=old"])
    assert (cfg.run.name, cfg.resume) == ("old", "auto")


def test_doctor_names_the_source_of_the_ffcv_version():
    from importlib.metadata import version

    import ffcv

    proc = run_cli("platform.doctor")
    line = [x for x in proc.stdout.splitlines() if " ffcv " in f" {x} "]
    assert line, proc.stdout
    assert f"ffcv {version('ffcv')} (importlib.metadata" in line[0]
    if ffcv.__version__ != version("ffcv"):
        assert f"ffcv.__version__ says {ffcv.__version__}" in line[0]


def _fake_run(root: Path, name: str, summary: dict | str | None, epochs: int = 3) -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(
        f"model:\n  name: resnet20\ndata:\n  name: digits\ntrainer:\n  max_epochs: {epochs}\n"
        f"run:\n  root: {root}\n"
    )
    if summary is not None:
        text = summary if isinstance(summary, str) else json.dumps(summary)
        (run_dir / "summary.json").write_text(text)
    return run_dir


def test_runs_lists_every_run_with_status_and_resume_command(tmp_path):
    done = {"status": "finished", "epochs": 3, "best_val_top1": 91.5, "final_val_top1": 90.25,
            "wall_time_s": 3725.0}  # fmt: skip
    _fake_run(tmp_path, "a-finished", done)
    _fake_run(tmp_path, "b-lost", {"status": "running", "epochs": 1, "wall_time_s": 10})
    _fake_run(tmp_path, "c-failed", {"status": "failed", "epochs": 0, "resume_command": "X"})
    _fake_run(tmp_path, "d-garbage", "{not json")
    (tmp_path / "e-empty").mkdir()
    (tmp_path / "f-bad").mkdir()
    (tmp_path / "f-bad" / "config.yaml").write_text("[1, 2\n")

    proc = run_cli("platform.runs", "--root", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 7  # header + one line per directory, nothing wraps
    row = {line.split()[0]: line.split() for line in lines[1:]}
    assert row["a-finished"][1:8] == ["resnet20", "digits", "finished", "3/3", "91.50", "90.25",
                                      "1:02:05"]  # fmt: skip
    assert row["b-lost"][3] == "lost" and "run.name=b-lost" in lines[2]
    assert "resume=auto" in lines[2] and "config=" in lines[2]
    assert row["c-failed"][3] == "failed" and row["c-failed"][-1] == "X"
    assert row["d-garbage"][3] == "running" or row["d-garbage"][3] == "lost"
    assert row["e-empty"][3] == "unreadable" and row["f-bad"][3] == "unreadable"

    failed = run_cli("platform.runs", "--root", str(tmp_path), "--status", "failed", "--json")
    assert [r["name"] for r in json.loads(failed.stdout)] == ["c-failed"]
    one = json.loads(run_cli("platform.runs", "a-fin*", "--root", str(tmp_path), "--json").stdout)
    assert [(r["name"], r["epochs_done"], r["epochs_total"]) for r in one] == [("a-finished", 3, 3)]
    assert "resume_command" not in one[0]
    missing = run_cli("platform.runs", "--root", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
