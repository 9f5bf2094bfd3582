"""SLURM: real ``sbatch`` of ``slurm/imagenet.sh`` / ``slurm/sweep.sh`` against the local one-node cluster.

The cluster tests need ``bash slurm/local-cluster.sh start`` (CI's ``.ci/run`` does it); without a
usable cluster they FAIL and say so.  Tiny CPU budgets: digits, ResNet-20, 2 tasks x 1 CPU.
The first tests (sweep-file parsing, mid-epoch skip, requeue fallback) need no cluster.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import ROOT, cli_env, run_cli

BATCHES = 16  # training batches per epoch (enough that SIGUSR1 lands mid-epoch)
CPU_JOB = [
    "--nodes=1",
    "--ntasks-per-node=2",
    "--gpus-per-node=0",
    "--cpus-per-task=1",
    "--mem=1G",
    "--time=15",
]
TERMINAL = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
}


# ---------------------------------------------------------------------------- no cluster needed
def test_sweep_file_forms(tmp_path):
    from platform.papers.sweep import sweep_configs, sweep_task
    from platform.run.schema import ConfigError

    listed = tmp_path / "a.yaml"
    listed.write_text(
        "- [model=resnet20, optim.lr=0.1]\n- {model: resnet56, optim.lr: 0.05, logging.tags: [x]}\n"
    )
    assert sweep_configs(listed) == [
        ["model=resnet20", "optim.lr=0.1"],
        ["model=resnet56", "optim.lr=0.05", "logging.tags=[x]"],
    ]
    grid = tmp_path / "b.yaml"
    grid.write_text(
        yaml.safe_dump(
            {
                "method": "grid",
                "parameters": {
                    "model": {"values": ["resnet20", "resnet56"]},
                    "seed": {"values": [0, 1]},
                    "optim.lr": {"value": 0.1},
                },
            },
            sort_keys=False,
        )
    )
    configs = sweep_configs(grid)
    assert len(configs) == 4 and configs[1] == ["model=resnet20", "seed=1", "optim.lr=0.1"]
    assert sweep_task(grid, 3) == ["model=resnet56", "seed=1", "optim.lr=0.1"]
    with pytest.raises(ConfigError, match="has 4 configurations"):
        sweep_task(grid, 4)
    grid.write_text("method: random\nparameters: {seed: {values: [0]}}\n")
    with pytest.raises(ConfigError, match="grid"):
        sweep_configs(grid)


def test_sweep_task_has_one_implementation_behind_both_doors(tmp_path, capsys, monkeypatch):
    """``platform.run.slurm sweep|count`` is an alias of ``platform.papers.sweep --task|--count``: same output."""
    from platform.papers.sweep import main as sweep_main
    from platform.papers.sweep_alias import main as slurm_main

    grid = tmp_path / "g.yaml"
    grid.write_text("- [model=resnet20]\n- [model=resnet56]\n- [model=resnet110]\n")
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    outputs = []
    for call in (
        lambda: slurm_main(["count", str(grid)]),
        lambda: sweep_main(["--count", str(grid)]),
        lambda: slurm_main(["sweep", str(grid)]),
        lambda: sweep_main(["--task", str(grid)]),
    ):
        code = call()
        outputs.append((code, *capsys.readouterr()))
    assert outputs[0] == outputs[1] == (0, "3\n", "")
    assert (
        outputs[2] == outputs[3]
        and outputs[2][0] == 2
        and "no SLURM_ARRAY_TASK_ID" in outputs[2][2]
    )
    assert (
        slurm_main(["bogus"]) == 2 and "usage: python -m platform.slurm" in capsys.readouterr().err
    )


def test_sweep_task_with_a_task_id_that_is_not_a_number_is_one_line(tmp_path):
    """Issue 26 #16: SLURM_ARRAY_TASK_ID=abc was a ValueError traceback."""
    grid = tmp_path / "g.yaml"
    grid.write_text("- [model=resnet20]\n- [model=resnet56]\n")
    for task in ("abc", "-1", "1.5", ""):
        proc = run_cli(
            "platform.sweep", "--task", str(grid), env={**cli_env(), "SLURM_ARRAY_TASK_ID": task}
        )
        err = proc.stderr.strip()
        assert proc.returncode == 2 and len(err.splitlines()) == 1, (task, proc.stderr)
        assert f"SLURM_ARRAY_TASK_ID={task!r}" in err and "0-1" in err, err


@pytest.mark.parametrize(
    "text",
    ["parameters: {model: {values: [resnet20]}, seed: {values: []}}\n", "[]\n"],
    ids=["grid", "list"],
)
def test_an_empty_sweep_is_refused_saying_it_has_no_runs(tmp_path, text):
    """Issue 26 #20: `values: []` suggested --array=0--1."""
    sweep = tmp_path / "empty.yaml"
    sweep.write_text(text)
    env = {k: v for k, v in cli_env().items() if k != "SLURM_ARRAY_TASK_ID"}
    for args in (["--task", str(sweep)], ["--slurm", "--dry-run", str(sweep)], [str(sweep)]):
        proc = run_cli("platform.sweep", *args, env=env)
        err = proc.stderr.strip()
        assert proc.returncode == 2 and len(err.splitlines()) == 1, (args, proc.stdout, err)
        assert "the sweep has no runs" in err and "--array" not in proc.stdout + err, err


def test_resumable_loader_skips_the_batches_done_once():
    from datamodules.resume import ResumableLoader

    progress = SimpleNamespace(
        ready=5
    )  # restored from a checkpoint saved after batch 5 of the epoch
    trainer = SimpleNamespace(
        current_epoch=1,
        fit_loop=SimpleNamespace(
            epoch_loop=SimpleNamespace(batch_progress=SimpleNamespace(current=progress))
        ),
    )
    loader = ResumableLoader(list(range(8)), trainer)
    early = iter(loader)  # Lightning's early iter() (counting batches) must not fix the position
    progress.ready = 3
    assert len(loader) == 8 and list(loader) == [3, 4, 5, 6, 7]
    progress.ready = 0  # the next epoch starts at batch 0
    assert list(loader) == list(range(8)) and list(early) == list(range(8))


@pytest.mark.slow
def test_mid_epoch_resume_trains_on_exactly_the_uninterrupted_batches(digits_cache, tmp_path):
    """Checkpoint after batch 3 of epoch 1 (as on SIGUSR1), stop, resume: the batches (labels, in
    order, per step) of the two parts are those of an uninterrupted run, epoch 2 included."""
    import lightning as L

    from platform.run.config import load_config
    from platform.run.train import train

    class Record(L.Callback):
        def __init__(self, stop=None):
            self.seen, self.stop = [], stop

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.seen.append((trainer.current_epoch, trainer.global_step, tuple(batch[1].tolist())))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if (trainer.current_epoch, batch_idx) == self.stop:
                from pathlib import Path

                from platform.run.rundir import (
                    save_checkpoint,  # as the SIGUSR1/SIGTERM path saves it (with its digest)
                )

                save_checkpoint(
                    trainer, Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt", "signal"
                )
                raise KeyboardInterrupt

    base = [
        "data=digits",
        f"data.cache_dir={digits_cache}",
        "data.num_workers=1",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=6",
        "logging.wandb=disabled",
        "logging.progress_bar=false",
        f"run.root={tmp_path}",
    ]
    whole, first, rest = Record(), Record(stop=(1, 2)), Record()
    train(load_config([*base, "run.name=whole"]), [whole])
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        train(load_config([*base, "run.name=cut"]), [first])
    train(load_config([*base, "run.name=cut", "resume=auto"]), [rest])
    assert [s for _, s, _ in first.seen] == list(range(9)) and rest.seen[0][:2] == (1, 9)
    assert first.seen + rest.seen == whole.seen


def test_requeue_without_scontrol_is_a_clear_log_line(monkeypatch, caplog):
    from platform.run import slurm

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with caplog.at_level(logging.ERROR, logger="platform.slurm"):
        assert slurm.requeue("123") is False
    assert "scontrol is not on PATH" in caplog.text and "NOT requeued" in caplog.text


# ---------------------------------------------------------------------------- the real cluster
@pytest.fixture(scope="module")
def cluster():
    hint = "start the local Slurm cluster first: `bash slurm/local-cluster.sh start` (see slurm/README.md)"
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        pytest.fail(
            "Slurm client commands not found; apt-get install slurmctld slurmd slurm-client "
            f"munge, then {hint}"
        )
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    states = proc.stdout.split()
    if proc.returncode != 0 or not any(
        s.rstrip("*~#") in ("idle", "mixed", "allocated", "completing") for s in states
    ):
        pytest.fail(
            f"no usable Slurm node (sinfo: {(proc.stdout + proc.stderr).strip()!r}); {hint}"
        )


def _train_args(cache: Path, root: Path, *extra: str) -> list[str]:
    return [
        "data=digits",
        f"data.cache_dir={cache}",
        "data.num_workers=1",
        "model=resnet20",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=2",
        f"trainer.limit_train_batches={BATCHES}",
        "logging.wandb=disabled",
        "logging.progress_bar=false",
        f"run.root={root}",
        *extra,
    ]


def _submit(out: Path, sbatch_opts: list[str], script: str, args: list[str], wait: bool = False):
    cmd = [
        "sbatch",
        "--parsable",
        f"--output={out}/%j.out",
        f"--error={out}/%j.out",
        *(["--wait"] if wait else []),
        *sbatch_opts,
        script,
        *args,
    ]
    return subprocess.run(cmd, cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)


def _states(job: str) -> dict[str, str]:
    """{job id (``A_i`` for array tasks): state}."""
    proc = subprocess.run(
        ["scontrol", "-o", "show", "job", job], capture_output=True, text=True, timeout=30
    )
    states = {}
    for line in proc.stdout.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        key = (
            f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
            if "ArrayTaskId" in fields
            else fields["JobId"]
        )
        states[key] = fields.get("JobState", "?")
    return states


def _wait(
    job: str, timeout: float = 240, until=lambda states: all(s in TERMINAL for s in states.values())
):
    deadline = time.time() + timeout
    while time.time() < deadline:
        states = _states(job)
        if states and until(states):
            return states
        time.sleep(0.5)
    subprocess.run(["scancel", job], timeout=30)
    raise AssertionError(f"job {job} still {_states(job)} after {timeout} s")


def _log(out: Path, job: str) -> str:
    path = out / f"{job}.out"
    return path.read_text() if path.is_file() else ""


@pytest.fixture(scope="module")
def uninterrupted(cluster, digits_cache, tmp_path_factory):
    """``sbatch --wait slurm/imagenet.sh`` with CPU overrides: 1 node, 2 tasks."""
    out = tmp_path_factory.mktemp("slurm-plain")
    proc = _submit(
        out, CPU_JOB, "slurm/imagenet.sh", _train_args(digits_cache, out / "runs"), wait=True
    )
    job = proc.stdout.strip().split(";")[0]
    assert proc.returncode == 0, f"sbatch: {proc.stderr}\n--- job log ---\n{_log(out, job)[-4000:]}"
    return out / "runs" / f"slurm-{job}", _log(out, job)


@pytest.mark.slurm
def test_sbatch_imagenet_script_runs_two_ranks(uninterrupted):
    run, log = uninterrupted
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["world_size"] == 2, log[-3000:]
    assert summary["epochs"] == 2
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert "MEMBER: 1/2" in log and "MEMBER: 2/2" in log  # both ranks took part
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert (
        cfg["trainer"]["devices"] == 2 and cfg["trainer"]["num_nodes"] == 1
    )  # from the allocation


@pytest.mark.slurm
def test_preempted_job_requeues_resumes_and_loses_nothing(uninterrupted, digits_cache, tmp_path):
    reference = [
        json.loads(l) for l in (uninterrupted[0] / "metrics.jsonl").read_text().splitlines()
    ]
    proc = _submit(
        tmp_path, CPU_JOB, "slurm/imagenet.sh", _train_args(digits_cache, tmp_path / "runs")
    )
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip().split(";")[0]
    run = tmp_path / "runs" / f"slurm-{job}"
    try:
        deadline = time.time() + 180  # signal during the second epoch: the first one is recorded
        metrics = run / "metrics.jsonl"
        while not (metrics.is_file() and metrics.read_text().strip()):
            assert time.time() < deadline and _states(job).get(job) in ("PENDING", "RUNNING"), _log(
                tmp_path, job
            )
            time.sleep(0.2)
        time.sleep(1.5)  # a few batches into the epoch
        subprocess.run(["scancel", "--signal=USR1", job], check=True, timeout=30)
        # the job checkpoints and requeues itself; a requeued job is held ~120 s unless released
        _wait(job, 120, until=lambda s: s.get(job) == "PENDING" or s.get(job) in TERMINAL)
        assert _states(job)[job] == "PENDING", f"job not requeued:\n{_log(tmp_path, job)[-4000:]}"
        subprocess.run(
            ["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True, timeout=30
        )
        states = _wait(job, 240)
    finally:
        subprocess.run(["scancel", job], timeout=30, capture_output=True)
    log = _log(tmp_path, job)
    assert states[job] == "COMPLETED", log[-4000:]
    m = re.search(r"SIGUSR1: saving a checkpoint at epoch 2, batch (\d+) \(step (\d+)\)", log)
    assert m and 0 < int(m.group(1)) < BATCHES, log[-4000:]  # mid-epoch
    # the resumed epoch continues with the next batch (Lightning alone would start again at batch 0)
    assert (
        f"leaving out the {m.group(1)} training batches of this epoch already trained on" in log
    ), log[-4000:]
    assert f"requeueing SLURM job {job}" in log and f"resuming {run}" in log, log[-4000:]
    assert (
        "Restarts=1"
        in subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    )
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1], (rows, log[-4000:])  # each epoch once
    assert [r["step"] for r in rows] == [r["step"] for r in reference] == [BATCHES, 2 * BATCHES], (
        rows,
        reference,
    )
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["world_size"] == 2, summary


@pytest.mark.slurm
def test_sweep_array_runs_each_configuration(cluster, digits_cache, tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("- [optim.lr=0.1, seed=1]\n- [optim.lr=0.05, seed=2]\n")
    opts = [
        "--array=0-1",
        *[o for o in CPU_JOB if not o.startswith("--ntasks")],
        "--ntasks-per-node=1",
    ]
    args = [
        str(sweep),
        *_train_args(
            digits_cache, tmp_path / "runs", "trainer.max_epochs=1", "trainer.limit_train_batches=2"
        ),
    ]
    proc = _submit(tmp_path, opts, "slurm/sweep.sh", args)
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip().split(";")[0]
    states = _wait(job, 240, until=lambda s: len(s) == 2 and all(v in TERMINAL for v in s.values()))
    assert set(states.values()) == {"COMPLETED"}, states
    for task, (lr, seed) in enumerate([(0.1, 1), (0.05, 2)]):
        run = tmp_path / "runs" / f"slurm-{job}_{task}"
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        assert cfg["optim"]["lr"] == lr and cfg["seed"] == seed
        assert json.loads((run / "summary.json").read_text())["status"] == "finished"


@pytest.mark.slurm
def test_gpus_on_a_gpu_less_cluster_are_reported_clearly(cluster, digits_cache, tmp_path):
    # the script's own --gpus-per-node=8: refused at submit time by SLURM itself
    proc = _submit(tmp_path, [], "slurm/imagenet.sh", ["model=resnet20"])
    assert proc.returncode != 0 and "Invalid generic resource (gres) specification" in proc.stderr
    # a CPU allocation with trainer.accelerator=gpu, and devices contradicting the allocation:
    # a clear error from the job at start-up, not a hang
    one = [o for o in CPU_JOB if not o.startswith("--ntasks")] + ["--ntasks-per-node=1"]
    gpu = _submit(
        tmp_path,
        one,
        "slurm/imagenet.sh",
        _train_args(digits_cache, tmp_path / "r1", "trainer.accelerator=gpu"),
    )
    two = _submit(
        tmp_path,
        one,
        "slurm/imagenet.sh",
        _train_args(digits_cache, tmp_path / "r2", "trainer.devices=2"),
    )
    jobs = [p.stdout.strip().split(";")[0] for p in (gpu, two)]
    for job in jobs:
        assert _wait(job, 180)[job] == "FAILED", _log(tmp_path, job)
    assert (
        "trainer.accelerator=gpu with 1 task(s) per node, but this task sees 0 CUDA GPU(s)"
        in _log(tmp_path, jobs[0])
    )
    assert "trainer.devices=2 but SLURM started 1 task(s) per node" in _log(tmp_path, jobs[1])
    assert "Traceback" not in _log(tmp_path, jobs[0]) + _log(tmp_path, jobs[1])


@pytest.mark.slurm
def test_reproduce_launches_a_tables_missing_rows_as_one_job_array(cluster, digits_cache, tmp_path):
    """``python -m platform.reproduce TABLE --launch slurm``: the (row, seed) pairs without a run become
    one array through slurm/sweep.sh; the finished runs then fill the report."""
    table = tmp_path / "tiny.yaml"
    table.write_text(
        "name: tiny\ntitle: t\npaper: He et al. 2015\ntable: Table 6\nsource: Table "
        "6\nresolution: 32\nnum_classes: 10\n"
        "scales:\n  imagenet: {data: cifar10, recipe: resnet_cifar}\n"
        "  proxy: "
        "{data: digits, overrides: [trainer.max_epochs=1, trainer.limit_train_batches=2]}\n"
        "rows:\n  - {id: a, model: resnet20, paper: {top1_err: 8.75}}\n"
        "  - {id: b, model: resnet20, overrides: [optim.lr=0.05], paper: {top1_err: 8.75}}\n"
    )
    one = [o for o in CPU_JOB if not o.startswith("--ntasks")] + ["--ntasks-per-node=1"]
    sbatch = " ".join([*one, f"--output={tmp_path}/%A_%a.out", f"--error={tmp_path}/%A_%a.out"])
    runs = tmp_path / "runs"
    extra = [
        f"data.cache_dir={digits_cache}",
        "data.num_workers=1",
        "trainer.accelerator=cpu",
        "logging.wandb=disabled",
        "logging.progress_bar=false",
        f"run.root={runs}",
    ]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "platform.reproduce",
            str(table),
            "--launch",
            "slurm",
            "--scale",
            "proxy",
            "--seeds",
            "1",
            f"--sbatch-args={sbatch}",
            "--out",
            str(tmp_path / "rep"),
            *extra,
        ],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--array=0-1" in proc.stdout
    job = re.search(r"Submitted batch job (\d+)", proc.stdout).group(1)
    states = _wait(job, 300, until=lambda s: len(s) == 2 and all(v in TERMINAL for v in s.values()))
    assert set(states.values()) == {"COMPLETED"}, (
        states,
        [p.read_text()[-2000:] for p in tmp_path.glob("*.out")],
    )
    assert sorted(p.name for p in runs.iterdir()) == ["tiny.a.proxy.s0", "tiny.b.proxy.s0"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "platform.reproduce",
            str(table),
            "--scale",
            "proxy",
            "--no-plot",
            "--out",
            str(tmp_path / "rep"),
            f"--runs={runs}",
        ],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "rep" / "table.json").read_text())["rows"]
    assert [r["trained"]["n"] for r in rows] == [1, 1]


def test_dist_timeout_reaches_the_ddp_strategy():
    """trainer.dist_timeout_s becomes DDPStrategy(timeout=...) wherever DDP runs (torch's gloo default: 30 min)."""
    from datetime import timedelta

    from lightning.pytorch.strategies import DDPStrategy

    from platform.run.config import load_config
    from platform.run.distributed import strategy
    from platform.run.schema import ConfigError

    t = load_config(["trainer.strategy=ddp", "trainer.dist_timeout_s=12"]).trainer
    ddp = strategy(t)
    assert isinstance(ddp, DDPStrategy) and ddp._timeout == timedelta(seconds=12)
    assert strategy(load_config(["trainer.devices=2"]).trainer)._timeout == timedelta(
        seconds=600
    )  # auto -> DDP
    assert strategy(load_config([]).trainer) == "auto"  # one device: no process group
    for bad in ("0", "-5", "nan"):
        with pytest.raises(ConfigError, match="trainer.dist_timeout_s"):
            load_config([f"trainer.dist_timeout_s={bad}"])


def test_node_check_records_every_rank_and_removes_its_token(tmp_path):
    """Single process: the check passes, env.json gains ``ranks``, the token file is gone (the
    multi-node failure case runs for real in tests/test_multinode.py)."""
    from platform.run.distributed import NodeCheck

    (tmp_path / "env.json").write_text(json.dumps({"host": "x"}))
    trainer = SimpleNamespace(global_rank=0, node_rank=0, local_rank=0, is_global_zero=True)
    NodeCheck(tmp_path).setup(trainer, None, "fit")
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["host"] == "x" and len(env["ranks"]) == 1 and env["ranks"][0]["sees_run_dir"] is True
    assert env["ranks"][0]["node_rank"] == 0 and env["ranks"][0]["hostname"]
    assert not list(tmp_path.glob(".shared-fs-check*"))
