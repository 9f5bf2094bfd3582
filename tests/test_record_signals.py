"""A stop signal that lands while a record is being written (issue 26, item 3) is deferred until the
write is complete, then handled as itself: SIGTERM still saves a checkpoint and exits 143, and a
SIGTERM after the run finished does not relabel it `interrupted`.  The slow write is a hook on
``os.fsync`` (no strace): the child announces the write through a marker file, then sleeps."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, cli_env
from test_run_integrity import BATCHES, _args

# Run platform.run.train with os.fsync slowed down for the NTH fsync of a summary.json temporary whose
# content matches STATUS: it touches MARKER, then sleeps 6 s (the window the test signals into).
_CHILD = """
import os, runpy, sys, time
MARKER, STATUS, NTH = sys.argv[1], sys.argv[2], int(sys.argv[3])
real_fsync, seen = os.fsync, []
def slow_fsync(fd):
    name = os.readlink(f"/proc/self/fd/{fd}")
    if len(seen) < NTH and ".summary.json.tmp" in name:
        with open(name) as fh:
            if f'"status": "{STATUS}"' in fh.read():
                seen.append(1)
                if len(seen) == NTH:
                    open(MARKER, "w").close()
                    time.sleep(6)
    return real_fsync(fd)
os.fsync = slow_fsync
sys.argv = ["platform.train", *sys.argv[4:]]
runpy.run_module("platform.train", run_name="__main__", alter_sys=True)
"""


def _run_with_slow_summary(
    tmp_path: Path, status: str, nth: int, name: str
) -> tuple[subprocess.Popen, str]:
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(marker),
            status,
            str(nth),
            *_args(tmp_path, f"run.name={name}"),
        ],
        cwd=ROOT,
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 240
    while not marker.exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=240)
    return proc, err


@pytest.mark.slow
def test_sigterm_during_a_summary_write_still_saves_and_exits_143(tmp_path):
    proc, err = _run_with_slow_summary(tmp_path, "running", 2, "t")  # the epoch-1 heartbeat
    assert proc.returncode == 143, err[-3000:]
    s = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert s["status"] == "interrupted" and s["exit_code"] == 143 and "SIGTERM" in s["reason"]
    ckpt = torch.load(tmp_path / "t" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] >= BATCHES  # the state after epoch 1 (nothing lost)
    assert not list((tmp_path / "t").glob(".*.tmp-*"))


@pytest.mark.slow
def test_sigterm_while_a_finished_run_writes_its_summary_keeps_it_finished(tmp_path):
    proc, err = _run_with_slow_summary(tmp_path, "finished", 1, "f")
    s = json.loads((tmp_path / "f" / "summary.json").read_text())
    assert s["status"] == "finished" and s["exit_code"] == 0, (proc.returncode, err[-3000:])
    assert proc.returncode in (0, 143), err[-3000:]


def test_a_stop_signal_during_a_fork_reaches_its_handler_after_it():
    """A writer forking its workers: a SIGTERM whose handler (raise KeyboardInterrupt) would run in
    an at-fork callback was printed as "Exception ignored" and lost (the writer exited 0).  Under
    stop_signals_blocked_for_fork it reaches the handler once the fork is over."""
    import os

    from datamodules.beton import stop_signals_blocked_for_fork

    armed: list[int] = []
    os.register_at_fork(
        after_in_parent=lambda: armed and armed.pop() and os.kill(os.getpid(), signal.SIGTERM)
    )

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    forked = []
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            with stop_signals_blocked_for_fork():
                armed.append(1)
                pid = os.fork()
                if pid == 0:
                    os._exit(0)
                os.waitpid(pid, 0)
                forked.append(pid)
    finally:
        armed.clear()
        signal.signal(signal.SIGTERM, previous)
    assert forked and not armed
