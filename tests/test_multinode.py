"""SLURM across nodes for real: ``sbatch slurm/imagenet.sh`` on a 2-node cluster of network namespaces.

``bash slurm/local-cluster.sh start --nodes 2`` (the session fixture below runs it; idempotent, ~1 s)
builds two compute nodes n1, n2, each with its own network namespace, host name and address
(see slurm/README.md and ../shared/reference/multinode-slurm.md).  Every Slurm command goes
through ``local-cluster.sh run`` (the controller's namespace, the cluster's own SLURM_CONF).  The
tests skip, with the script's reason, only where namespaces are impossible (exit 3: not root, no
namespace support); any other failure to start the cluster fails them.

All jobs of the module are submitted together at the start and run side by side on the cluster
(2 nodes x 4 CPU slots): the tests then wait for theirs.  The jobs that need an intervention
(USR1, SIGKILL, SIGSTOP of one node's rank) get it from a background thread as soon as the job
reaches the right point, so that the module costs about as much as its longest scenario.
Tiny CPU budgets: ResNet-20, 1 CPU per task, 6 batches per epoch, 1-2 epochs; digits (the FFCV path)
for the 2-node run, preemption and node death, data=synthetic for the others.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, cli_env

pytestmark = [pytest.mark.slurm, pytest.mark.multinode, pytest.mark.slow]

SCRIPT = ROOT / "slurm" / "local-cluster.sh"
BASE = Path(os.environ.get("SLURM_MULTI_BASE", "/tmp/cnn-platform-slurm-multi"))
BATCHES = 6  # training batches per epoch
CPU = ["--gpus-per-node=0", "--cpus-per-task=1", "--mem=1G", "--time=30"]
# generous: every wait is bounded, none is asserted on (jobs queue behind each other; the machine is shared)
JOB_TIMEOUT = 1500  # s from a test's start to its job's end (queueing included)
TEST_TIMEOUT = 1800
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


def slurm(*cmd: str, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess:
    """A Slurm client command against the 2-node cluster (its controller's namespace and SLURM_CONF)."""
    env = cli_env()
    for key in (
        "MASTER_ADDR",
        "MASTER_PORT",
    ):  # a submitting shell's values would override the job's own
        env.pop(key, None)
    return subprocess.run(
        ["bash", str(SCRIPT), "run", *cmd],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


@pytest.fixture(scope="session")
def multinode_cluster():
    proc = subprocess.run(
        ["bash", str(SCRIPT), "start", "--nodes", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode == 3:
        pytest.skip(proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, (
        f"local-cluster.sh start --nodes 2 failed:\n{proc.stdout}{proc.stderr}"
    )


def fields(job: str) -> dict[str, str]:
    try:
        out = slurm("scontrol", "-o", "show", "job", job).stdout
    except subprocess.TimeoutExpired:  # a loaded machine: ask again at the next poll
        return {}
    return dict(f.split("=", 1) for f in out.split() if "=" in f)


def state(job: str) -> str:
    return fields(job).get("JobState", "?")


def wait_state(job: str, timeout: float, until=lambda s: s in TERMINAL) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = state(job)
        if until(s):
            return s
        time.sleep(0.5)
    slurm("scancel", job)
    raise AssertionError(f"job {job} still {state(job)} after {timeout} s")


def rank_pid(job: str, rank: int) -> int | None:
    """The PID of a job's training task of that rank (the nodes share this machine's PID namespace)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = dict(
                kv.split("=", 1) for kv in (proc / "environ").read_text().split("\0") if "=" in kv
            )
            cmd = (proc / "cmdline").read_text()
        except OSError:
            continue
        if (
            env.get("SLURM_JOB_ID") == job
            and env.get("SLURM_PROCID") == str(rank)
            and "platform.train" in cmd
            and "SLURM_STEP_ID" in env
        ):
            found.append(int(proc.name))
    return min(found, default=None)  # the task itself, not a helper process it started


class Job:
    """One ``sbatch slurm/imagenet.sh`` of this module, its run directory and its log."""

    def __init__(
        self, out: Path, name: str, opts: list[str], args: list[str], runs: Path | None = None
    ) -> None:
        self.out = out / name
        self.out.mkdir(parents=True)
        self.runs = runs or self.out / "runs"
        self.name, self.opts, self.args = name, opts, args
        self.run_name: str | None = (
            None  # set when a resubmission continues an earlier job's run directory
        )
        self.id = self._submit()
        self.thread: threading.Thread | None = None
        self.events: list[str] = []  # what the intervention saw and did
        self.error: BaseException | None = None

    def _submit(self, *extra: str) -> str | None:
        self.submit = slurm(
            "sbatch",
            "--parsable",
            f"--output={self.out}/%j.out",
            f"--error={self.out}/%j.out",
            f"--job-name={self.name}",
            *self.opts,
            "slurm/imagenet.sh",
            *self.args,
            f"run.root={self.runs}",
            *extra,
        )
        return self.submit.stdout.strip().split(";")[0] if self.submit.returncode == 0 else None

    def resubmit(self) -> None:
        """The same command again, as a new job continuing this one's run directory (resume=auto)."""
        self.run_name = f"slurm-{self.id}"
        self.id = self._submit(f"run.name={self.run_name}", "resume=auto")
        assert self.id, f"sbatch failed: {self.submit.stderr}"

    @property
    def run(self) -> Path:
        return self.runs / (self.run_name or f"slurm-{self.id}")

    def log(self) -> str:
        path = self.out / f"{self.id}.out"
        return path.read_text(errors="replace") if path.is_file() else ""

    def metrics(self) -> list[dict]:
        path = self.run / "metrics.jsonl"
        rows = []
        for line in path.read_text().splitlines() if path.is_file() else []:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line being written
                break
        return rows

    def summary(self) -> dict:
        return json.loads((self.run / "summary.json").read_text())

    def env(self) -> dict:
        return json.loads((self.run / "env.json").read_text())

    def act(self, fn) -> None:
        """Run ``fn(self)`` in the background (the intervention), remembering an exception."""

        def body():
            try:
                fn(self)
            except BaseException as e:  # noqa: BLE001 -- reported by finish()
                self.error = e

        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()

    def finish(self, timeout: float) -> str:
        """Wait for the intervention (if any) and for the end of the job; its final state."""
        assert self.id, f"sbatch failed: {self.submit.stderr}"
        deadline = time.time() + timeout
        if self.thread is not None:
            self.thread.join(timeout)
            assert not self.thread.is_alive(), f"intervention still waiting: {self.events}"
            if self.error is not None:
                raise AssertionError(
                    f"{self.error!r}; {self.events}\n{self.log()[-4000:]}"
                ) from self.error
        return wait_state(self.id, max(30.0, deadline - time.time()))

    def wait_for(
        self, what: str, cond, timeout: float = JOB_TIMEOUT, ended_ok: bool = False
    ) -> None:
        deadline = time.time() + timeout
        while not cond():
            s = state(self.id)
            assert ended_ok or s not in TERMINAL, f"job {self.id} {s} before {what}"
            assert time.time() < deadline, f"job {self.id}: no {what} after {timeout} s"
            time.sleep(0.2)
        self.events.append(what)


def train_args(cache: Path, *extra: str) -> list[str]:
    return [
        "data=digits",
        f"data.cache_dir={cache}",
        "data.num_workers=1",
        "model=resnet20",
        "seed=3",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=2",
        f"trainer.limit_train_batches={BATCHES}",
        "trainer.limit_val_batches=2",
        "logging.wandb=disabled",
        "logging.progress_bar=false",
        *extra,
    ]


def epoch0_saved(job: Job) -> bool:
    """The first epoch is recorded and its checkpoint written (the checkpoint comes after the line)."""
    ckpt = job.run / "checkpoints" / "last.ckpt"
    metrics = job.run / "metrics.jsonl"
    return (
        bool(job.metrics()) and ckpt.is_file() and ckpt.stat().st_mtime >= metrics.stat().st_mtime
    )


def release_when_requeued(job: Job) -> None:
    """A requeued job is held ~120 s (BeginTime): start it again as soon as it is pending."""
    job.wait_for("requeued (PENDING)", lambda: state(job.id) == "PENDING", timeout=600)
    slurm("scontrol", "update", f"JobId={job.id}", "StartTime=now", check=True)
    job.events.append("released")


def preempt(job: Job) -> None:
    """``scancel --signal=USR1`` during the second epoch (acted on at the next training batch)."""
    job.wait_for("epoch 0 recorded", lambda: bool(job.metrics()))
    time.sleep(1.0)
    slurm("scancel", "--signal=USR1", job.id, check=True)
    job.events.append("USR1 sent")
    release_when_requeued(job)


def step_checkpoint_in_epoch1(job: Job) -> bool:
    """last.ckpt is a periodic step checkpoint inside the second epoch (its digest file says so)."""
    try:
        entry = json.loads((job.run / "checkpoints" / "last.ckpt.sha256.json").read_text())[
            "entries"
        ][0]
    except (OSError, ValueError, KeyError, IndexError):
        return False
    if (
        entry.get("kind") in ("step", "signal")
        and BATCHES < int(entry.get("global_step") or 0) < 2 * BATCHES
    ):
        job.killed_after_step = int(entry["global_step"])
        return True
    return False


def kill_node_rank(job: Job) -> None:
    """SIGKILL, without warning, the rank on the second node during the second epoch, after a periodic
    step checkpoint (checkpoint.every_n_steps=2); then resubmit."""
    job.wait_for("a step checkpoint in epoch 1", lambda: step_checkpoint_in_epoch1(job))
    job.wait_for("rank 1's pid", lambda: rank_pid(job.id, 1) is not None, timeout=300)
    os.kill(rank_pid(job.id, 1), signal.SIGKILL)
    job.events.append("rank 1 killed")
    job.wait_for("the job's end", lambda: state(job.id) in TERMINAL, timeout=600, ended_ok=True)
    job.events.append(f"ended {state(job.id)}")
    assert step_checkpoint_in_epoch1(job), (
        "last.ckpt is no longer a step checkpoint of epoch 1"
    )  # its final step
    # what a retry policy or an operator does next: the same command again, continuing the run directory.
    # (`scontrol requeue` of the failed job also resumed, once; twice the requeued run's first step, which
    # has the old step's id <job>.0, was cancelled some seconds after its start with no error from any
    # task: not understood, so the test resubmits)
    job.resubmit()
    job.events.append(f"resubmitted as {job.id}")


def freeze_node_rank(job: Job) -> None:
    """SIGSTOP the rank on the second node (a hung node: its sockets stay open, nothing more comes)."""
    job.wait_for("epoch 0 recorded", lambda: bool(job.metrics()))
    job.wait_for("rank 1's pid", lambda: rank_pid(job.id, 1) is not None, timeout=300)
    os.kill(rank_pid(job.id, 1), signal.SIGSTOP)
    job.events.append("rank 1 stopped")


# which jobs each test needs: the fixture submits only those of the selected tests (e.g. under -k)
NEEDS = {
    "test_master_port_from_the_job_id_two_jobs_share_a_node": ["shared1", "shared2"],
    "test_preemption_across_nodes_resumes_mid_epoch_on_both": ["preempted", "2x1"],
    "test_a_node_dies_the_job_ends_and_the_resubmission_resumes_from_the_checkpoint": [
        "killed",
        "2x1",
    ],
    "test_a_frozen_node_ends_the_job_after_the_dist_timeout": ["frozen"],
    "test_two_nodes_one_task_each": ["2x1"],
    "test_same_math_on_one_node_and_across_two": ["same1x2", "same2x1"],
    "test_two_nodes_two_tasks_each": ["2x2"],
    "test_run_root_other_nodes_cannot_see_is_a_clear_error": ["node_local"],
    "test_num_nodes_contradicting_the_allocation_is_a_clear_error": ["num_nodes"],
}


@pytest.fixture(scope="module")
def jobs(request, multinode_cluster, digits_cache, tmp_path_factory) -> dict[str, Job]:
    """The selected tests' jobs, submitted at once, in this order: the two that must share n1 first
    (so that both fit at the same time), then the interventions (they take longest)."""
    out = tmp_path_factory.mktemp("multinode")
    a = lambda *extra: train_args(digits_cache, *extra)  # noqa: E731
    two_by_one = ["--nodes=2", "--ntasks-per-node=1", *CPU]
    # data=synthetic where the FFCV path is not the point (FFCV compiles its pipeline in every rank: slow)
    synth = ["data=synthetic", "data.synthetic_size=384"]
    one_epoch = [
        *synth,
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
    ]  # (limit_val_batches=1: 100%)
    # same math: data=synthetic (fixed tensors, seeded sampler; the digits pipeline's FFCV crops draw from
    # unseeded per-thread RNGs), one epoch (its last.ckpt is the end of training), and one intra-op thread
    # per rank in both: without OMP_NUM_THREADS, Lightning gives each rank cpu_count // tasks_per_node
    # threads (fabric/utilities/distributed.py, _set_num_threads_if_needed): 1 on the shared node, 2 alone
    # on a node, and a different split of a conv's sums changes its rounding
    same = [*synth, "trainer.max_epochs=1"]
    threads = "--export=ALL,OMP_NUM_THREADS=1"
    shared = ["--nodes=1", "--nodelist=n1", "--ntasks-per-node=2", *CPU]
    specs = {
        "shared1": (shared, a(*one_epoch)),
        "shared2": (shared, a(*one_epoch)),
        "preempted": (two_by_one, a()),
        "killed": (two_by_one, a("checkpoint.every_n_steps=2")),
        # 90 s: longer than the ranks' start-up skew on a loaded 2-core machine (the rendezvous has it too)
        "frozen": (two_by_one, a(*synth, "trainer.max_epochs=4", "trainer.dist_timeout_s=90")),
        "2x1": (two_by_one, a()),
        "same1x2": (["--nodes=1", "--ntasks-per-node=2", threads, *CPU], a(*same)),
        "same2x1": ([*two_by_one, threads], a(*same)),
        "2x2": (["--nodes=2", "--ntasks-per-node=2", *CPU], a(*one_epoch)),
        "node_local": (two_by_one, a(*one_epoch)),
        "num_nodes": (two_by_one, a(*one_epoch, "trainer.num_nodes=3")),
    }
    selected = {item.originalname for item in request.session.items}
    wanted = {name for test, names in NEEDS.items() if test in selected for name in names}
    runs = {
        "node_local": BASE / "local" / f"runs-{os.getpid()}"
    }  # node-local disk: each node its own
    j = {
        name: Job(out, name, *spec, runs=runs.get(name))
        for name, spec in specs.items()
        if name in wanted
    }
    for name, action in (
        ("preempted", preempt),
        ("killed", kill_node_rank),
        ("frozen", freeze_node_rank),
    ):
        if name in j:
            j[name].act(action)
    yield j
    for job in j.values():
        if job.id:
            slurm("scancel", job.id)


# ---------------------------------------------------------------------------- the cluster itself
def test_cluster_has_two_nodes_in_their_own_namespaces(multinode_cluster):
    proc = subprocess.run(
        ["bash", str(SCRIPT), "status", "--multi"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        "namespace cnnp-n1: present" in proc.stdout and "namespace cnnp-n2: present" in proc.stdout
    )
    names = slurm(
        "srun", "--nodes=2", "--ntasks-per-node=1", "--gpus-per-node=0", "hostname", timeout=120
    )
    assert sorted(names.stdout.split()) == ["n1", "n2"], names.stdout + names.stderr
    host = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert "10.213.0." not in host  # nothing of the cluster's network in the host namespace
    # the one-node cluster, if up, is a different cluster: its sinfo does not list n1/n2
    single = subprocess.run(
        ["bash", str(SCRIPT), "run", "--nodes", "1", "sinfo", "-h", "-N", "-o", "%N"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "n1" not in single.stdout.split()


@pytest.mark.parametrize(
    "args",
    [
        ["start", "--nodes", "0"],
        ["start", "--nodes", "two"],
        ["start", "--nodes"],
        ["start", "--bogus"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_are_a_usage_error(args):
    proc = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and proc.stderr.startswith("usage:"), (proc.returncode, proc.stderr)


@pytest.mark.skipif(
    shutil.which("runuser") is None, reason="needs runuser (util-linux) to drop root"
)
def test_without_root_it_says_why_and_builds_nothing(tmp_path):
    base = tmp_path / "base"
    env = dict(os.environ, SLURM_MULTI_BASE=str(base), SLURM_NETNS_PREFIX="cnnz-")
    proc = subprocess.run(
        ["runuser", "-u", "nobody", "--", "bash", str(SCRIPT), "start", "--nodes", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3 and "must run as root" in proc.stderr, (
        proc.returncode,
        proc.stderr,
    )
    assert len(proc.stderr.strip().splitlines()) == 1
    assert (
        not base.exists()
        and "cnnz-"
        not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    )


def test_more_nodes_than_the_cluster_has_is_slurms_own_error(multinode_cluster):
    proc = slurm(
        "sbatch", "--nodes=3", "--ntasks-per-node=1", *CPU, "slurm/imagenet.sh", "model=resnet20"
    )
    assert proc.returncode != 0 and "Node count specification invalid" in proc.stderr, proc.stderr


def test_a_second_multinode_cluster_starts_while_the_one_node_cluster_holds_a_finished_job():
    """Issue 26 #21: the slurm.conf here-document once ran the backticked `scontrol show job` of a
    comment (against the one-node cluster) and pasted its job list into the config.  A cluster of
    its own (base, namespace prefix, subnet), so the shared 2-node cluster is left alone."""
    one = ["bash", str(SCRIPT), "run", "--nodes", "1"]
    done = subprocess.run(
        [*one, "sbatch", "--wait", "--parsable", "-o", "/dev/null", "--wrap", "true"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        pytest.fail(f"the one-node cluster took no job ({done.stderr.strip()}): start it first")
    jobs = subprocess.run([*one, "scontrol", "show", "job"], capture_output=True, text=True)
    assert f"JobId={done.stdout.strip()}" in jobs.stdout  # finished, still listed
    base = Path(
        tempfile.mkdtemp(prefix="cnnt-multi-")
    )  # not tmp_path: munged (user munge) must reach it
    base.chmod(0o755)
    env = dict(
        os.environ,
        SLURM_MULTI_BASE=str(base),
        SLURM_NETNS_PREFIX="cnnt-",
        SLURM_MULTI_NET="10.214.0",
    )
    run = dict(cwd=ROOT, env=env, capture_output=True, text=True)
    try:
        proc = subprocess.run(["bash", str(SCRIPT), "start", "--nodes", "2"], timeout=180, **run)
        if proc.returncode == 3:
            pytest.skip(proc.stderr.strip().splitlines()[-1])
        conf = (base / "slurm.conf").read_text()
        assert proc.returncode == 0, f"{proc.stdout}{proc.stderr}\n{conf}"
        assert "JobId=" not in conf and "`scontrol show job`" in conf, conf
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", "--multi"], timeout=120, **run)
        shutil.rmtree(base, ignore_errors=True)
    assert (
        "cnnt-"
        not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    )


# ---------------------------------------------------------------------------- topologies
@pytest.mark.timeout(TEST_TIMEOUT)
def test_two_nodes_one_task_each(jobs):
    job = jobs["2x1"]
    assert job.finish(JOB_TIMEOUT) == "COMPLETED", job.log()[-4000:]
    assert fields(job.id)["NodeList"] == "n[1-2]"
    summary, env = job.summary(), job.env()
    assert summary["status"] == "finished" and summary["world_size"] == 2 and summary["epochs"] == 2
    ranks = env["ranks"]
    assert [(r["global_rank"], r["node_rank"], r["local_rank"]) for r in ranks] == [
        (0, 0, 0),
        (1, 1, 0),
    ]
    assert [r["hostname"] for r in ranks] == ["n1", "n2"], (
        ranks
    )  # one rank per node, on different hosts
    assert {r["master_addr"] for r in ranks} == {"n1"} and env["slurm_nodelist"] == "n[1-2]"
    for node in ("n1", "n2"):  # each node's slurmd launched a task of the training step
        assert f"launch task StepId={job.id}.0" in (BASE / "log" / f"slurmd-{node}.log").read_text()
    cfg = yaml.safe_load((job.run / "config.yaml").read_text())
    assert cfg["trainer"]["num_nodes"] == 2 and cfg["trainer"]["devices"] == 1


@pytest.mark.timeout(TEST_TIMEOUT)
def test_two_nodes_two_tasks_each(jobs):
    job = jobs["2x2"]
    assert job.finish(JOB_TIMEOUT) == "COMPLETED", job.log()[-4000:]
    assert fields(job.id)["NodeList"] == "n[1-2]" and job.summary()["world_size"] == 4
    ranks = job.env()["ranks"]
    assert [(r["global_rank"], r["node_rank"], r["local_rank"], r["hostname"]) for r in ranks] == [
        (0, 0, 0, "n1"),
        (1, 0, 1, "n1"),
        (2, 1, 0, "n2"),
        (3, 1, 1, "n2"),
    ], ranks


@pytest.mark.timeout(TEST_TIMEOUT)
def test_same_math_on_one_node_and_across_two(jobs):
    """1 node x 2 tasks vs 2 nodes x 1 task: same seed, same global batch, same 2 ranks each training on
    the same shard (BatchNorm statistics are per rank, so BN is no confound here), one intra-op thread
    per rank in both (with 1 vs 2 threads the weights differed by up to 6e-3 after 6 steps, the loss
    in the 5th digit): bit-identical weights.
    Only the transport differs (gloo over loopback vs across the nodes' veth link), and a 2-rank
    all-reduce sums the same two numbers either way (a + b == b + a exactly in floating point)."""
    import torch

    a, b = jobs["same1x2"], jobs["same2x1"]
    assert a.finish(JOB_TIMEOUT) == "COMPLETED", a.log()[-4000:]
    assert b.finish(JOB_TIMEOUT) == "COMPLETED", b.log()[-4000:]
    node = fields(a.id)["NodeList"]
    assert node in ("n1", "n2") and fields(b.id)["NodeList"] == "n[1-2]"
    assert [r["hostname"] for r in a.env()["ranks"]] == [node, node]
    assert [r["torch_threads"] for r in a.env()["ranks"] + b.env()["ranks"]] == [1, 1, 1, 1]
    wa = torch.load(a.run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
        "state_dict"
    ]
    wb = torch.load(b.run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
        "state_dict"
    ]
    assert wa.keys() == wb.keys()
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, differ
    assert a.metrics() and [r["step"] for r in a.metrics()] == [r["step"] for r in b.metrics()] == [
        BATCHES
    ]
    assert [r["train/loss"] for r in a.metrics()] == [r["train/loss"] for r in b.metrics()]


# ---------------------------------------------------------------------------- addresses and filesystems
@pytest.mark.timeout(TEST_TIMEOUT)
def test_master_port_from_the_job_id_two_jobs_share_a_node(jobs):
    first, second = jobs["shared1"], jobs["shared2"]
    for job in (first, second):
        assert job.finish(JOB_TIMEOUT) == "COMPLETED", job.log()[-4000:]
        assert fields(job.id)["NodeList"] == "n1"
    f1, f2 = fields(first.id), fields(second.id)
    assert f2["StartTime"] <= f1["EndTime"] and f1["StartTime"] <= f2["EndTime"], (
        f1,
        f2,
    )  # at the same time
    ports = []
    for job in (first, second):
        ranks = job.env()["ranks"]
        assert {r["master_port"] for r in ranks} == {str(15000 + int(job.id[-4:]))}, (
            ranks
        )  # Lightning's rule
        ports.append(ranks[0]["master_port"])
    assert ports[0] != ports[1]


@pytest.mark.timeout(TEST_TIMEOUT)
def test_run_root_other_nodes_cannot_see_is_a_clear_error(jobs):
    """run.root on node-local disk ($BASE/local is a tmpfs that each node mounts for itself)."""
    job = jobs["node_local"]
    assert job.finish(JOB_TIMEOUT) == "FAILED", job.log()[-4000:]
    log = job.log()
    assert re.search(
        r"error: run directory \S+ is not shared between the nodes: rank 0 on n1 wrote "
        r"\S+ there, but n2 \(node rank 1\) cannot read it",
        log,
    ), log[-4000:]
    assert "Traceback" not in log


@pytest.mark.timeout(TEST_TIMEOUT)
def test_num_nodes_contradicting_the_allocation_is_a_clear_error(jobs):
    job = jobs["num_nodes"]
    assert job.finish(JOB_TIMEOUT) == "FAILED", job.log()[-4000:]
    assert (
        "error: trainer.num_nodes=3 but the SLURM job step has 2 node(s) (--nodes=2)" in job.log()
    )
    assert "Traceback" not in job.log()


# ---------------------------------------------------------------------------- preemption, node death
@pytest.mark.timeout(TEST_TIMEOUT)
def test_preemption_across_nodes_resumes_mid_epoch_on_both(jobs):
    job, reference = jobs["preempted"], jobs["2x1"]
    assert job.finish(JOB_TIMEOUT) == "COMPLETED", f"{job.events}\n{job.log()[-4000:]}"
    log = job.log()
    m = re.search(r"SIGUSR1: saving a checkpoint at epoch 2, batch (\d+) \(step (\d+)\)", log)
    assert m and 0 < int(m.group(1)) < BATCHES, log[-4000:]  # mid-epoch
    # both ranks (one per node) left out the batches already trained on
    skip = f"leaving out the {m.group(1)} training batches of this epoch already trained on"
    assert log.count(skip) == 2, log[-4000:]
    assert f"requeueing SLURM job {job.id}" in log and f"resuming {job.run}" in log
    assert fields(job.id)["Restarts"] == "1" and fields(job.id)["NodeList"] == "n[1-2]"
    assert reference.finish(JOB_TIMEOUT) == "COMPLETED"
    rows = job.metrics()
    assert [r["epoch"] for r in rows] == [0, 1], rows  # each epoch once
    assert (
        [r["step"] for r in rows]
        == [r["step"] for r in reference.metrics()]
        == [BATCHES, 2 * BATCHES]
    )
    summary = job.summary()
    assert summary["status"] == "finished" and summary["world_size"] == 2


@pytest.mark.timeout(TEST_TIMEOUT)
def test_a_node_dies_the_job_ends_and_the_resubmission_resumes_from_the_checkpoint(jobs):
    """SIGKILL of the rank on n2 in epoch 1, after a step checkpoint (checkpoint.every_n_steps=2): the
    job ends (its other rank gets a gloo error at once, srun --kill-on-bad-exit ends the step), is
    resubmitted, and resumes from that step checkpoint, on both nodes: the work lost is at most the
    2-step interval, and every epoch is recorded once with the step count of an uninterrupted run."""
    job, reference = jobs["killed"], jobs["2x1"]
    assert job.finish(JOB_TIMEOUT) == "COMPLETED", f"{job.events}\n{job.log()[-4000:]}"
    assert "ended FAILED" in job.events, (
        job.events
    )  # the job ended by itself (no hang until --time)
    log = job.log()  # (the resubmitted job's)
    assert f"resuming {job.run} from {job.run}/checkpoints/last.ckpt" in log, log[-4000:]
    done_in_epoch = job.killed_after_step - BATCHES  # batches of epoch 1 in the step checkpoint
    skip = f"leaving out the {done_in_epoch} training batches of this epoch already trained on"
    assert log.count(skip) == 2, log[-4000:]  # both ranks resume at the checkpoint's step
    assert reference.finish(JOB_TIMEOUT) == "COMPLETED"
    rows = job.metrics()
    assert [r["epoch"] for r in rows] == [0, 1], rows
    assert (
        [r["step"] for r in rows]
        == [r["step"] for r in reference.metrics()]
        == [BATCHES, 2 * BATCHES]
    )
    summary = job.summary()
    assert summary["status"] == "finished" and summary["world_size"] == 2 and summary["epochs"] == 2


@pytest.mark.timeout(TEST_TIMEOUT)
def test_a_frozen_node_ends_the_job_after_the_dist_timeout(jobs):
    """SIGSTOP of the rank on n2 (its sockets stay open: no error reaches the other rank): rank 0 waits
    in a collective for trainer.dist_timeout_s=90, fails, and the job ends instead of hanging until
    its time limit (torch's default would be 30 minutes)."""
    job = jobs["frozen"]
    assert job.finish(JOB_TIMEOUT) == "FAILED", f"{job.events}\n{job.log()[-4000:]}"
    assert "rank 1 stopped" in job.events, job.events  # (it failed after the freeze, not before)
    log = job.log()
    assert re.search(r"[Tt]imed out|timeout", log), log[-4000:]
    assert job.summary()["status"] == "failed"
