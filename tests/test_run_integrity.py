"""A run never loses work (issue 12): the latest state is always on disk, resume continues exactly,
finished runs stay untouched, and every way a run can end says why -- each fault tried for real."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, cli_env

from platform.after.run_records import local_records
from platform.run.config import load_config
from platform.run.rundir import (
    CheckpointError,
    RunBusyError,
    RunLock,
    digest_path,
    lock_holder,
    read_metrics,
    run_status,
    verify_checkpoint,
)
from platform.run.schema import ConfigError
from platform.run.train import ResumeError, main, pick_checkpoint, train

BATCHES = 4  # training batches per epoch (synthetic: 64 examples of 16x16, batch 16)


def _args(root: Path, *extra: str) -> list[str]:
    return [
        "data=synthetic",
        "data.synthetic_size=64",
        "data.resolution=16",
        "data.batch_size=16",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "logging.wandb=disabled",
        "logging.progress_bar=false",
        f"run.root={root}",
        "trainer.max_epochs=2",
        *extra,
    ]


def _run(root: Path, *extra: str, callbacks=None):
    return train(load_config(_args(root, *extra)), callbacks)


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def _ckpt_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


class _At:
    """A callback that runs ``fn(trainer)`` once, at the end of training batch ``batch`` of ``epoch``."""

    def __new__(cls, epoch: int, batch: int, fn):
        import lightning as L

        class At(L.Callback):
            def __init__(self):
                self.done, self.first_step = False, None

            def on_train_batch_start(self, trainer, pl_module, b, batch_idx):
                if self.first_step is None:
                    self.first_step = trainer.global_step

            def on_train_batch_end(self, trainer, pl_module, outputs, b, batch_idx):
                if not self.done and (trainer.current_epoch, batch_idx) == (epoch, batch):
                    self.done = True
                    fn(trainer)

        return At()


# ---------------------------------------------------------------------------- last.ckpt, resume semantics
@pytest.mark.slow
def test_last_ckpt_is_the_latest_epoch_even_when_validation_did_not_improve(tmp_path):
    """lr=1e-9: nothing improves after the first epochs; last.ckpt must still be the final epoch (Lightning
    2.6's save_last rewrote it only when the best improved), the best one kept beside it."""
    s = _run(tmp_path, "optim.lr=1e-9", "trainer.max_epochs=3", "run.name=flat")
    run = tmp_path / "flat"
    assert s["status"] == "finished" and s["exit_code"] == 0
    last = run / "checkpoints" / "last.ckpt"
    assert _ckpt_step(last) == 3 * BATCHES and verify_checkpoint(last)["kind"] == "epoch"
    (best,) = (run / "checkpoints").glob("best-epoch*.ckpt")
    assert verify_checkpoint(best)["kind"] == "best" and digest_path(best).is_file()
    assert not list(run.rglob("*.tmp")) and not (run / ".lock").exists()

    # resume=auto of a finished run: nothing trained, nothing written, exit 0 and says so
    before = _snapshot(run)
    again = _run(tmp_path, "optim.lr=1e-9", "trainer.max_epochs=3", "run.name=flat", "resume=auto")
    assert again["nothing_done"] and _snapshot(run) == before

    # a changed LR or model is refused before anything is written, with the differing keys listed
    for change in ("optim.lr=0.01", "model=resnet32"):
        with pytest.raises(ResumeError, match=change.split("=")[0].replace("model", "model.name")):
            _run(
                tmp_path,
                "optim.lr=1e-9",
                "trainer.max_epochs=3",
                "run.name=flat",
                "resume=auto",
                change,
            )
        assert _snapshot(run) == before

    # a larger trainer.max_epochs continues it; wall time sums both segments
    more = _run(tmp_path, "optim.lr=1e-9", "trainer.max_epochs=4", "run.name=flat", "resume=auto")
    assert (
        more["status"] == "finished"
        and more["segments"] == 2
        and more["wall_time_s"] > s["wall_time_s"]
    )
    assert [r["epoch"] for r in read_metrics(run)] == [0, 1, 2, 3]
    assert _ckpt_step(last) == 4 * BATCHES


@pytest.mark.slow
def test_sigterm_mid_epoch_saves_resumes_and_keeps_each_epoch_once(tmp_path):
    """A real SIGTERM (to this process) in epoch 1: checkpoint at the next batch end, status interrupted,
    exit code 143; resume=auto continues at the next batch with the step count of an uninterrupted run."""
    cut = _At(1, 1, lambda trainer: os.kill(os.getpid(), signal.SIGTERM))
    s = _run(tmp_path, "run.name=cut", "trainer.max_epochs=3", callbacks=[cut])
    assert s["status"] == "interrupted" and s["exit_code"] == 143 and "SIGTERM" in s["reason"]
    assert "resume=auto run.name=cut" in s["resume_command"]
    # sent after batch 1's end hooks of the platform ran: acted on at the end of batch 2
    assert _ckpt_step(tmp_path / "cut" / "checkpoints" / "last.ckpt") == BATCHES + 3
    rest = _At(99, 0, lambda t: None)
    s2 = _run(tmp_path, "run.name=cut", "trainer.max_epochs=3", "resume=auto", callbacks=[rest])
    assert rest.first_step == BATCHES + 3  # nothing trained twice, nothing skipped
    rows = read_metrics(tmp_path / "cut")
    assert s2["status"] == "finished" and [r["epoch"] for r in rows] == [0, 1, 2]
    assert [r["step"] for r in rows] == [BATCHES, 2 * BATCHES, 3 * BATCHES] and s2["segments"] == 2


@pytest.mark.slow
def test_periodic_step_checkpoints_and_divergence_stop(tmp_path):
    """checkpoint.every_n_steps writes last.ckpt inside the epoch; optim.lr=1e6 stops at the first
    non-finite loss with status diverged, exit code 3, the step and LR in the message, and the last
    good checkpoint left as it was (finite weights, verified digest)."""
    seen = []
    probe = _At(
        0, 0, lambda t: seen.append(verify_checkpoint(tmp_path / "d" / "checkpoints" / "last.ckpt"))
    )
    # (lr=1e6 keeps this tiny net's loss finite for many steps, ~1e26; 1e30 overflows at the second step)
    s = _run(
        tmp_path,
        "run.name=d",
        "optim.lr=1e30",
        "schedule.warmup_epochs=0",
        "checkpoint.every_n_steps=1",
        callbacks=[probe],
    )
    assert s["status"] == "diverged" and s["exit_code"] == 3, s
    assert (
        "non-finite training loss (nan) at step 2" in s["reason"] and "with lr 8.5" in s["reason"]
    ), s["reason"]
    assert (
        seen and seen[0]["kind"] == "step" and seen[0]["global_step"] == 1
    )  # saved mid-epoch, every step
    info = verify_checkpoint(
        tmp_path / "d" / "checkpoints" / "last.ckpt"
    )  # also checks the weights are finite
    assert info["global_step"] < s["global_step"]
    with pytest.raises(ConfigError, match="finite"):
        load_config(["optim.lr=nan"])
    with pytest.raises(ConfigError, match="finite"):
        load_config(["optim.lr=1e400"])


@pytest.mark.slow
def test_every_minutes_checkpoints_inside_an_epoch(tmp_path):
    kinds = []
    probe = _At(
        0,
        2,
        lambda t: kinds.append(
            json.loads(digest_path(tmp_path / "m" / "checkpoints" / "last.ckpt").read_text())[
                "entries"
            ][0]["kind"]
        ),
    )
    s = _run(
        tmp_path,
        "run.name=m",
        "trainer.max_epochs=1",
        "checkpoint.every_minutes=1e-9",
        callbacks=[probe],
    )
    assert s["status"] == "finished" and kinds == ["step"]


# ---------------------------------------------------------------------------- corrupt checkpoints
@pytest.mark.slow
def test_corrupt_truncated_and_empty_checkpoints_fall_back_or_stop_clearly(tmp_path, caplog):
    s = _run(tmp_path, "run.name=c", "trainer.max_epochs=1")
    assert s["status"] == "finished"
    ck = tmp_path / "c" / "checkpoints"
    last, (best,) = ck / "last.ckpt", list(ck.glob("best-*.ckpt"))
    good = last.read_bytes()
    damage = {
        "truncated": lambda b: b[: len(b) // 2],
        "empty": lambda b: b"",
        "bit-flipped": lambda b: b[: len(b) // 2] + os.urandom(4096) + b[len(b) // 2 + 4096 :],
    }
    for what, fn in damage.items():
        last.write_bytes(fn(good))
        with pytest.raises(CheckpointError, match="last.ckpt"):
            verify_checkpoint(last)
        with caplog.at_level(logging.WARNING, logger="platform.train"):
            assert pick_checkpoint(tmp_path / "c") == best, what
        assert f"{last}" in caplog.text and "falling back" in caplog.text
    # resumed end to end from the fallback (one more epoch)
    s2 = _run(tmp_path, "run.name=c", "trainer.max_epochs=2", "resume=auto")
    assert s2["status"] == "finished" and [r["epoch"] for r in read_metrics(tmp_path / "c")] == [
        0,
        1,
    ]
    # nothing valid left: a one-line error naming the files and what to do (exit 2), nothing written
    for p in (ck / "last.ckpt", *ck.glob("best-*.ckpt")):
        p.write_bytes(b"\0" * 100)
    before = _snapshot(tmp_path / "c")
    assert main(_args(tmp_path, "run.name=c", "trainer.max_epochs=3", "resume=auto")) == 2
    assert _snapshot(tmp_path / "c") == before
    # model.init checks the digest too; a checkpoint of an earlier version (no digest file) still verifies
    with pytest.raises(ConfigError, match="corrupt"):
        _run(tmp_path, "run.name=init", f"model.init={ck / 'last.ckpt'}")
    assert not (tmp_path / "init").exists()  # a set-up error leaves no run directory behind
    last.write_bytes(good)
    digest_path(last).unlink()
    assert verify_checkpoint(last)["kind"].startswith("unverified")


# ---------------------------------------------------------------------------- records
def test_torn_metrics_line_is_skipped_with_a_warning(tmp_path, caplog):
    rows = [{"epoch": 0, "step": 4, "val/top1": 10.0}, {"epoch": 1, "step": 8, "val/top1": 12.0}]
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows) + '{"epoch": 2, "st'
    )
    with caplog.at_level(logging.WARNING, logger="platform.runs"):
        assert read_metrics(tmp_path) == rows
    assert "line 3" in caplog.text and "torn" in caplog.text


def test_a_lost_run_is_not_running_and_a_stale_lock_does_not_block(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text("model: {name: resnet20}\n")
    (run / "summary.json").write_text(json.dumps({"status": "running", "final_val_top1": None}))
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".lock").write_text(
            json.dumps({"pid": holder.pid, "host": os.uname().nodename, "since": "now"})
        )
        import platform as stdlib_platform

        assert os.uname().nodename == stdlib_platform.node()
        assert lock_holder(run)["pid"] == holder.pid and run_status(run) == "running"
        with pytest.raises(Exception, match=f"in use by pid {holder.pid}"):
            RunLock(run).acquire()
    finally:
        holder.kill()
        holder.wait()
    assert lock_holder(run) is None and run_status(run) == "lost"
    assert [r.status for r in local_records(tmp_path)] == ["lost"]
    from platform.papers.columns import trained_columns

    assert trained_columns(local_records(tmp_path))["status"] == f"lost: {run}"
    lock = RunLock(run).acquire()  # the dead holder's lock is taken over
    assert lock_holder(run)["pid"] == os.getpid()
    lock.release()
    assert not (run / ".lock").exists()


def test_the_lock_is_never_seen_empty_and_two_takers_never_both_hold_it(tmp_path, monkeypatch):
    """Issue 26, item 1: a second process looking while the first is writing its lock must not find
    an empty .lock and take it over; exactly one of the two ends up holding the directory."""
    import platform.run.rundir as runs

    run = tmp_path / "r"
    run.mkdir()
    seen, real_dumps = {}, runs.json.dumps

    def dumps_with_a_rival(obj, *a, **kw):  # the first taker is between "lock exists" and "written"
        if not seen:
            seen["lock"] = (run / ".lock").read_bytes() if (run / ".lock").exists() else None
            try:
                seen["rival"] = RunLock(run).acquire()
            except RunBusyError:
                seen["rival"] = None
        return real_dumps(obj, *a, **kw)

    monkeypatch.setattr(runs.json, "dumps", dumps_with_a_rival)
    try:
        first = RunLock(run).acquire()
    except RunBusyError:
        first = None
    monkeypatch.setattr(runs.json, "dumps", real_dumps)
    assert seen["lock"] is None  # no empty .lock was ever visible
    assert (first is None) != (seen["rival"] is None), "both or neither took the lock"
    (first or seen["rival"]).release()


def test_an_ownerless_lock_is_in_use_until_it_is_stale(tmp_path, caplog):
    run = tmp_path / "r"
    run.mkdir()
    (run / ".lock").write_text("")  # empty: being written, or made by hand
    assert lock_holder(run) == {"pid": None, "host": None, "since": None}
    with pytest.raises(RunBusyError, match=r"names no owner.*rm .*\.lock"):
        RunLock(run).acquire()
    old = time.time() - 3600
    os.utime(run / ".lock", (old, old))
    with caplog.at_level(logging.WARNING, logger="platform.runs"):
        lock = RunLock(run).acquire()
    assert "names no owner" in caplog.text and lock_holder(run)["pid"] == os.getpid()
    lock.release()


@pytest.mark.slow
def test_a_hand_made_empty_lock_refuses_the_cli_in_one_line(tmp_path):
    run = tmp_path / "e"
    run.mkdir()
    (run / ".lock").write_text("")
    r = subprocess.run(
        [sys.executable, "-m", "platform.train", *_args(tmp_path, "run.name=e")],
        cwd=ROOT,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"{run / '.lock'}" in r.stderr and "names no owner" in r.stderr
    assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written


@pytest.mark.slow
def test_second_start_on_a_live_run_is_refused_and_the_twin_search_skips_it(tmp_path):
    s = _run(tmp_path, "run.name=live", "trainer.max_epochs=1", "optim.lr=0.05")
    assert s["status"] == "finished"
    run = tmp_path / "live"
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(
        json.dumps({**summary, "status": "running"})
    )  # as if still training
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import platform as stdlib_platform

        (run / ".lock").write_text(
            json.dumps({"pid": holder.pid, "host": stdlib_platform.node(), "since": "now"})
        )
        before = _snapshot(run)
        assert (
            main(
                _args(
                    tmp_path,
                    "run.name=live",
                    "trainer.max_epochs=2",
                    "optim.lr=0.05",
                    "resume=auto",
                )
            )
            == 2
        )
        assert _snapshot(run) == before
        # resume=auto without a name adopts the newest unfinished twin -- never one that is alive
        s2 = _run(tmp_path, "trainer.max_epochs=1", "optim.lr=0.05", "resume=auto")
        assert Path(s2["run_dir"]) != run and _snapshot(run) == before
    finally:
        holder.kill()
        holder.wait()


def test_setup_errors_leave_no_run_directory(tmp_path, capsys):
    assert main(_args(tmp_path, "run.name=bad", "trainer.devices=two")) == 2
    assert (
        main(_args(tmp_path, "run.name=bad2", "data=beton", f"data.path={tmp_path / 'nothing'}"))
        == 2
    )
    assert "Traceback" not in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_an_overlong_run_name_is_one_line_at_load(tmp_path):
    """A 300-character run.name (issue 26, item 12): refused at config load, not `File name too long`."""
    r = subprocess.run(
        [sys.executable, "-m", "platform.train", *_args(tmp_path, "run.name=" + "a" * 300)],
        cwd=ROOT,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "run.name" in r.stderr and "at most 200 characters" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not list(tmp_path.glob("a*"))


@pytest.mark.slow
def test_an_empty_training_set_is_an_error_naming_its_size_and_batch(tmp_path, capsys):
    assert main(_args(tmp_path, "run.name=empty", "data.synthetic_size=8")) == 2
    err = capsys.readouterr().err
    assert (
        "no training batch" in err and "8 training examples" in err and "data.batch_size=16" in err
    )
    s = json.loads((tmp_path / "empty" / "summary.json").read_text())
    assert s["exit_code"] == 2  # the code the run exited with (issue 26, item 20)
    assert (
        s["status"] == "failed"
        and s["error"]["type"] == "EmptyTrainingError"
        and s["error"]["log_tail"]
    )


# ---------------------------------------------------------------------------- full disks, read-only roots
@pytest.fixture
def tiny_fs(tmp_path):
    """A tmpfs of a given size (we are root in CI); unmounted afterwards."""
    mounted = []

    def make(name: str, size: str, ro: bool = False) -> Path:
        d = tmp_path / name
        d.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(d)], capture_output=True, text=True
        )
        if proc.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()})")
        mounted.append(d)
        return d

    yield make
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


@pytest.mark.slow
def test_disk_full_and_read_only_run_roots_end_with_one_line_and_no_half_written_file(
    tmp_path, tiny_fs, capsys
):
    full = tiny_fs(
        "full", "5600k"
    )  # room for config, records and two checkpoints of resnet20 (2.2 MB each)
    rc = main(_args(full, "run.name=f", "trainer.max_epochs=3", "optim.lr=1e-9"))
    err = capsys.readouterr().err
    assert rc == 1 and "cannot write" in err and "ENOSPC" in err and "Traceback" not in err, err
    ck = full / "f" / "checkpoints"
    assert verify_checkpoint(ck / "last.ckpt")["epoch"] == 0  # the previous checkpoint is intact
    assert not [p for p in (full / "f").rglob("*") if ".tmp" in p.name]
    assert [r["epoch"] for r in read_metrics(full / "f")] in ([0], [0, 1])
    ro = tiny_fs("ro", "1m", ro=True)
    assert main(_args(ro, "run.name=r")) == 1
    err = capsys.readouterr().err
    assert "EROFS" in err and str(ro / "r") in err and "Traceback" not in err


@pytest.mark.timeout(120)
def test_dataset_cache_on_a_full_disk_fails_fast_instead_of_hanging(tiny_fs):
    from datamodules.beton import WriteError
    from datamodules.digits import DigitsDataModule

    cache = tiny_fs("cache", "4m")  # the digits files need ~32 MB
    with pytest.raises((WriteError, OSError)) as e:
        DigitsDataModule(cache_dir=cache).prepare_data()
    assert "beton" in str(e.value)
    assert not [p for p in cache.rglob("*") if p.is_file() and p.name != "meta.json"]


def test_beton_digests_are_recorded_checked_and_rewritten_when_wrong(
    digits_cache, tmp_path, caplog
):
    import shutil

    from datamodules.digits import DigitsDataModule
    from datamodules.write import main as write_main

    src = next(digits_cache.glob("digits-*"))
    meta = json.loads((src / "meta.json").read_text())
    assert set(meta["files"]) == {"train", "val"} and len(meta["files"]["train"]["sha256"]) == 64
    assert write_main(["--verify", str(src)]) == 0
    cache = tmp_path / "cache"
    shutil.copytree(src, cache / src.name)
    beton = cache / src.name / "train.beton"
    data = bytearray(beton.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 512] = os.urandom(512)  # image bytes, header intact
    beton.write_bytes(bytes(data))
    assert write_main(["--verify", str(cache / src.name)]) == 1
    dm = DigitsDataModule(cache_dir=cache)
    with caplog.at_level(logging.WARNING):
        assert not dm.is_written()
    assert "SHA-256" in caplog.text


# ---------------------------------------------------------------------------- W&B, secrets
@pytest.mark.slow
def test_wandb_without_network_falls_back_offline_and_no_secret_is_written(
    tmp_path, monkeypatch, caplog
):
    key = "0123456789abcdef0123456789abcdef01234567"  # a dummy 40-character API key
    monkeypatch.setenv("WANDB_API_KEY", key)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens: unreachable
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    args = [
        a
        for a in _args(tmp_path, "run.name=w", "trainer.max_epochs=1")
        if not a.startswith("logging.wandb")
    ]
    with caplog.at_level(logging.WARNING, logger="platform.train"):
        s = train(load_config([*args, "logging.wandb=auto"]))
    assert s["status"] == "finished" and "logging offline instead" in caplog.text
    run = tmp_path / "w"
    assert list((run / "wandb").glob("offline-run-*"))
    assert {"config.yaml", "env.json", "summary.json", "train.log"} <= {
        p.name for p in run.iterdir()
    }  # all scanned
    leaks = [p for p in run.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert not leaks, leaks


# ---------------------------------------------------------------------------- real processes
def _start(tmp_path: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "platform.train", *_args(tmp_path, *extra)],
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for(pred, proc, timeout=240.0):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met (rc {proc.poll()})")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_after_a_step_checkpoint_loses_at_most_the_interval(tmp_path):
    """SIGKILL a real run after a step checkpoint: it reads as lost, not running; resume=auto starts at
    that checkpoint's step and ends with each epoch once and the step count of an uninterrupted run."""
    args = (
        "run.name=k",
        "trainer.max_epochs=50",
        "checkpoint.every_n_steps=3",
        "data.synthetic_size=160",
    )
    proc = _start(tmp_path, *args)
    sidecar = tmp_path / "k" / "checkpoints" / "last.ckpt.sha256.json"

    def step_ckpt_in_epoch_1():
        try:
            e = json.loads(sidecar.read_text())["entries"][0]
        except (OSError, ValueError):
            return False
        return e["kind"] == "step" and e["epoch"] >= 1

    _wait_for(step_ckpt_in_epoch_1, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    saved = json.loads(sidecar.read_text())["entries"][0]
    assert run_status(tmp_path / "k") == "lost"
    epochs = saved["epoch"] + 1
    first = _At(99, 0, lambda t: None)
    s = _run(
        tmp_path,
        "run.name=k",
        f"trainer.max_epochs={epochs}",
        *args[2:],
        "resume=auto",
        callbacks=[first],
    )
    # resumed at the newest checkpoint, at most every_n_steps=3 steps before the kill
    assert first.first_step == saved["global_step"] and saved["kind"] in ("step", "epoch")
    rows = read_metrics(tmp_path / "k")
    assert s["status"] == "finished" and [r["epoch"] for r in rows] == list(range(epochs))
    assert rows[-1]["step"] == 10 * epochs and s["segments"] == 2


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ctrl_c_saves_and_exits_130_and_a_second_ctrl_c_stops_at_once(tmp_path):
    """Ctrl-C: exit 130 and the interrupted line; a second Ctrl-C stops at once with every file intact."""
    # Ctrl-C once: checkpoint at the next batch end, exit 130, the interrupted line with the resume command
    proc = _start(tmp_path, "run.name=i", "trainer.max_epochs=50")
    metrics = tmp_path / "i" / "metrics.jsonl"
    _wait_for(lambda: metrics.is_file() and metrics.read_text().strip(), proc)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    line = out.strip().splitlines()[-1]
    assert line.startswith("interrupted: ") and "resume with: python -m platform.train" in line
    assert "resume=auto run.name=i" in line and "Traceback" not in err
    assert json.loads((tmp_path / "i" / "summary.json").read_text())["status"] == "interrupted"
    verify_checkpoint(tmp_path / "i" / "checkpoints" / "last.ckpt")

    # Ctrl-C twice: stops at once, nothing half-written
    proc = _start(tmp_path, "run.name=i", "trainer.max_epochs=50", "resume=auto")
    _wait_for(
        lambda: json.loads((tmp_path / "i" / "summary.json").read_text()).get("segments") == 2, proc
    )
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert not [p for p in (tmp_path / "i").rglob("*") if ".tmp" in p.name]
    verify_checkpoint(tmp_path / "i" / "checkpoints" / "last.ckpt")
    assert not (tmp_path / "i" / ".lock").exists()
