"""Small commands' wall time: ``python -m models`` with a warm count cache, cold, and ``import torch`` alone.

    python -m benchmarks commands [--reps 3]

The target is ``python -m models`` under 3 s (issue 17).  Each command runs as a fresh process from the
repository root, interleaved A B C A B C; the cache lives in a temporary directory
(``CNN_PLATFORM_CACHE``), so the cold run recounts the whole zoo and the warm run only reads it.
``import torch`` is the floor: ``python -m models`` imports the ``models`` package, which imports torch.
Printed: medians, the ratios, and the verdict.  Off a quiet machine the absolute times mean little.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 3.0


def _time(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks commands", description=__doc__.split("\n")[0]
    )
    p.add_argument("--reps", type=int, default=3, help="timed runs of each command")
    p.add_argument("--skip-cold", action="store_true", help="no cold (recounting) run (~40 s each)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, CNN_PLATFORM_CACHE=cache, COLUMNS="160")
        py = sys.executable
        commands = {
            "import torch": [py, "-c", "import torch"],
            "models (warm cache)": [py, "-m", "models"],
        }
        if not args.skip_cold:
            commands["models (cold, --no-cache)"] = [py, "-m", "models", "--no-cache"]
        _time(commands["models (warm cache)"], env)  # fills the cache
        times: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(args.reps):
            for name, cmd in commands.items():
                times[name].append(_time(cmd, env))
    med = {k: statistics.median(v) for k, v in times.items()}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{'command':28s} {'median s':>9s}  runs (s)    [load average {load:.1f}, "
        f"{os.cpu_count()} cores]"
    )
    for name, v in times.items():
        print(f"{name:28s} {med[name]:9.2f}  {', '.join(f'{x:.2f}' for x in v)}")
    warm = med["models (warm cache)"]
    print(f"models warm / import torch: {warm / med['import torch']:.2f}x")
    if "models (cold, --no-cache)" in med:
        print(f"models cold / warm: {med['models (cold, --no-cache)'] / warm:.1f}x")
    verdict = "meets" if warm < TARGET_S else "misses"
    print(f"python -m models (warm) {verdict} the {TARGET_S:.0f} s target: {warm:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
