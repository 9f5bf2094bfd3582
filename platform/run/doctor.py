"""``python -m platform.doctor [--json]``: what this machine offers the platform, as verdicts.

One line per check (``ok`` / ``warn`` / ``fail`` and why): W&B online or offline and why, GPU and
bf16, sbatch/srun, the dataset cache directory writable, library versions (ffcv's from its package
metadata, with what its ``__version__`` attribute says beside it: 0.0.3rc1 in 1.0.x).  ``--json`` prints the full
report instead.  Also the proof that the ``platform`` shim works: it runs under ``python -m
platform.…``, calls the standard library's ``platform`` API and imports torch, lightning, wandb, FFCV.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from datamodules.options import CACHE_DIR
from platform.run import cli


def package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def ffcv_module_version() -> str | None:
    """What ``import ffcv`` says of itself (``ffcv.__version__``), or why it cannot be imported:
    the installed distribution (metadata) and the attribute disagree in ffcv 1.0.x."""
    try:
        import ffcv
    except Exception as e:  # a broken build (missing libturbojpeg, ABI) is what doctor is for
        return f"import ffcv fails: {type(e).__name__}: {e}".splitlines()[0]
    return getattr(ffcv, "__version__", None)


def ffcv_line(env: dict) -> str:
    """``ffcv 1.0.2 (importlib.metadata; ffcv.__version__ says 0.0.3rc1)``: the installed version
    and where each number comes from."""
    attr = env.get("ffcv_module_version")
    if attr is None or attr == env["ffcv"]:
        return f"ffcv {env['ffcv']} (importlib.metadata)"
    said = attr if attr.startswith("import ffcv fails") else f"ffcv.__version__ says {attr}"
    return f"ffcv {env['ffcv']} (importlib.metadata; {said})"


def report() -> dict:
    import lightning
    import torch
    import wandb

    import platform
    from platform.run.rundir import environment

    env = environment()
    env.update(
        {
            "system": platform.system(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "wandb": wandb.__version__,
            "ffcv": package_version("ffcv"),  # the installed distribution (importlib.metadata)
            "ffcv_module_version": ffcv_module_version() if package_version("ffcv") else None,
            "lightning": lightning.__version__,
            "cuda_available": torch.cuda.is_available(),
            "bf16_supported": bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported()),
            "num_threads": torch.get_num_threads(),
            "sbatch": shutil.which("sbatch"),
            "srun": shutil.which("srun"),
        }
    )
    return env


def _wandb_verdict() -> tuple[str, str]:
    from platform.run.compose import wandb_mode

    mode = wandb_mode("auto")
    if os.environ.get("WANDB_MODE"):
        why = f"WANDB_MODE={os.environ['WANDB_MODE']}"
    elif os.environ.get("WANDB_API_KEY"):
        why = "WANDB_API_KEY is set"
    elif mode == "online":
        why = "an api.wandb.ai key is in ~/.netrc"
    else:
        why = (
            "no API key (WANDB_API_KEY or `wandb login`): runs log offline; `wandb sync` them later"
        )
    return ("ok" if mode in ("online", "offline") else "warn"), f"W&B {mode}: {why}"


def _cache_verdict(cache_dir: str = CACHE_DIR) -> tuple[str, str]:
    path = Path(cache_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
        return "ok", f"dataset cache {path} is writable"
    except OSError as e:
        return (
            "fail",
            f"dataset cache {path} is not writable ({e.strerror}): set data.cache_dir=DIR",
        )


def verdicts(env: dict) -> list[tuple[str, str]]:
    out = [_wandb_verdict()]
    if env["cuda_available"]:
        out.append(
            (
                "ok",
                f"GPU: {env.get('gpu')} (CUDA {env.get('cuda')}); bf16 "
                + (
                    "supported: trainer.precision=bf16-mixed"
                    if env["bf16_supported"]
                    else "not supported: use trainer.precision=16-mixed"
                ),
            )
        )
    else:
        out.append(
            ("warn", "no CUDA GPU: training runs on the CPU (fine for data=digits, slow beyond)")
        )
    for tool in ("sbatch", "srun"):
        out.append(
            ("ok", f"{tool} found: {env[tool]}")
            if env[tool]
            else (
                "warn",
                f"{tool} not found: --launch slurm and platform.sweep --slurm cannot run here",
            )
        )
    out.append(_cache_verdict())
    out.append(
        ("ok", ffcv_line(env))
        if env["ffcv"]
        else ("warn", "ffcv not installed: use data.backend=torchvision")
    )
    out.append(
        (
            "ok",
            f"torch {env['torch']}, lightning {env['lightning']}, wandb {env['wandb']}, "
            f"python {env['python']} on {env['system']} {env['machine']}",
        )
    )
    return out


@cli.entry()
def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m platform.doctor", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--json", action="store_true", help="print the raw report as JSON")
    args, _ = cli.parse(p, argv, overrides=False)
    env = report()
    if args.json:
        json.dump(env, sys.stdout, indent=2)
        print()
        return 0
    checks = verdicts(env)
    for level, text in checks:
        print(f"{level:4s}  {text}")
    return 1 if any(level == "fail" for level, _ in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
