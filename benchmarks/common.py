"""Shared by every suite: interleaved A/B timing, medians, peak memory, the JSON record and its schema.

Every record written by :func:`write_result` is one JSON object::

    {"schema": 1, "suite": "models", "command": "python -m benchmarks models --batch 8",
     "options": {...the suite's parsed options...},
     "machine": {"host", "cpu_model", "cores", "torch_threads", "torch", "torchvision", "python",
                 "commit", "dirty", "gpu", "date", "load_avg"},
     ...the suite's results, always with every raw timing...}

:func:`check_record` verifies the common part and the suite's own required keys; the tests and
``python -m benchmarks report`` use it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

import platform

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SCHEMA_VERSION = 1
SUITES = ("models", "data", "overhead", "scaling", "gpu", "denormal", "e2e")
MACHINE_KEYS = (
    "host",
    "cpu_model",
    "cores",
    "torch_threads",
    "torch",
    "torchvision",
    "python",
    "commit",
    "dirty",
    "gpu",
    "date",
    "load_avg",
)
# suite -> keys its record must hold besides the common ones
SUITE_KEYS: dict[str, tuple[str, ...]] = {
    "models": ("rows",),
    "data": ("rows", "torchvision_images_per_s"),
    "overhead": ("raw", "ratio", "overhead_pct", "ratio_vs_minimal"),
    "scaling": ("model", "batch_sweep", "resolution_sweep", "zoo"),
    "gpu": ("skipped",),
    "denormal": ("rows", "platform_runs"),
    "e2e": ("rows", "pairs"),
}
# issue 15: batch-mode stochastic depth vs none, and DDP's find_unused_parameters cost
SUITES += ("stochastic_depth",)
SUITE_KEYS["stochastic_depth"] = ("single", "ddp")
# issue 27: what logging.grad_stats costs a training step
SUITES += ("grad_stats",)
SUITE_KEYS["grad_stats"] = ("ratio", "median_s", "isolated_share")
# issue 28: data.jpeg_decode full vs scaled (python -m benchmarks data --jpeg-decode)
SUITES += ("jpeg_decode",)
SUITE_KEYS["jpeg_decode"] = ("rows", "breakdown")


# ---------------------------------------------------------------------------- timing
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock: Callable[[], float] = time.perf_counter  # set by apply_common(--clock)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def interleaved(
    fns: dict[str, Callable[[], None]], reps: int, warmup: int = 2
) -> dict[str, list[float]]:
    """Time each callable ``reps`` times as A B A B ... after ``warmup`` untimed rounds.

    Interleaving spreads the noise of a shared machine over every contender equally.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            sync()
            t0 = clock()
            fn()
            sync()
            times[k].append(clock() - t0)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def linear_fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least squares ``y = intercept + slope * x`` and its R²."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=False)) / sxx if sxx else 0.0
    intercept = my - slope * mx
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=False))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return {"intercept": intercept, "slope": slope, "r2": 1.0 - ss_res / ss_tot if ss_tot else 1.0}


# ---------------------------------------------------------------------------- memory
def peak_rss_mb() -> float:
    """This process's peak resident set size so far: ``VmHWM`` of its current address space.

    Not ``ru_maxrss``: Linux keeps that across ``fork``/``execve``, so a child started by a
    process holding gigabytes would report the parent's peak.  ``VmHWM`` starts afresh at exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# ---------------------------------------------------------------------------- the record
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict[str, Any]:
    import torchvision

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {
        "host": platform.node(),
        "cpu_model": cpu_model(),
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "commit": _git("rev-parse", "--short", "HEAD") or None,
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_avg": [round(v, 2) for v in os.getloadavg()],
    }


def command_line(suite: str, argv: list[str] | None) -> str:
    args = sys.argv[2:] if argv is None else argv
    return shlex.join(["python", "-m", "benchmarks", suite, *args])


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--results-dir",
        default=str(RESULTS),
        help="where the JSON record goes (default: %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's, one per core).  On a shared machine where "
        "another process keeps a core busy, all-core OpenMP regions stall at every barrier "
        "(10-50x slower small ops); --threads 1 is then the stable choice",
    )
    p.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time (time.process_time), which time-slicing "
        "by other processes does not inflate: with --threads 1, the robust choice on a busy "
        "machine (CPU only: ignored where CUDA runs the work)",
    )


def apply_common(a: argparse.Namespace) -> None:
    """Apply the shared options; warn when the machine is already busy (the load goes into the record)."""
    global clock
    if a.threads:
        torch.set_num_threads(a.threads)
    if getattr(a, "clock", "wall") == "cpu" and torch.cuda.is_available():
        print("note: --clock cpu ignored: CUDA does the work, wall time is used", file=sys.stderr)
        a.clock = "wall"
    clock = CLOCKS[getattr(a, "clock", "wall")]
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        print(
            f"note: load average {load:.2f} on {os.cpu_count()} cores before the run: timings may "
            "be noisy" + ("" if a.threads else "; consider --threads 1"),
            file=sys.stderr,
            flush=True,
        )


def write_result(
    suite: str,
    options: dict[str, Any],
    payload: dict[str, Any],
    argv: list[str] | None = None,
    results_dir: str | os.PathLike | None = None,
    command: str | None = None,
) -> Path:
    """Write ``<results_dir>/<suite>-<timestamp>.json`` (atomically) and return its path;
    ``command`` when the suite is run through another's command (``data --jpeg-decode``)."""
    out = Path(results_dir or RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "schema": SCHEMA_VERSION,
        "suite": suite,
        "command": command or command_line(suite, argv),
        "options": {k: v for k, v in options.items() if k != "results_dir"},
        "machine": machine(),
        **payload,
    }
    problems = check_record(record)
    if problems:
        raise ValueError(f"{suite} record does not follow the schema: {problems}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out / f"{suite}-{stamp}.json"
    n = 1
    while path.exists():
        path, n = out / f"{suite}-{stamp}-{n}.json", n + 1
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)
    return path


def check_record(record: Any) -> list[str]:
    """Problems with a benchmark record (empty: it follows the schema)."""
    if not isinstance(record, dict):
        return ["not a JSON object"]
    problems = []
    for key, kind in (
        ("schema", int),
        ("suite", str),
        ("command", str),
        ("options", dict),
        ("machine", dict),
    ):
        if not isinstance(record.get(key), kind):
            problems.append(
                f"{key}: expected {kind.__name__}, got {type(record.get(key)).__name__}"
            )
    suite = record.get("suite")
    if suite not in SUITE_KEYS:
        problems.append(f"suite {suite!r}: expected one of {', '.join(SUITES)}")
    else:
        problems += [f"missing {k!r}" for k in SUITE_KEYS[suite] if k not in record]
    m = record.get("machine")
    if isinstance(m, dict):
        problems += [f"machine: missing {k!r}" for k in MACHINE_KEYS if k not in m]
    if isinstance(record.get("command"), str) and not record["command"].startswith(
        "python -m benchmarks"
    ):
        problems.append("command: expected 'python -m benchmarks ...'")
    return problems
