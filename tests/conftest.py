"""Shared fixtures. Run the suite from the repository root as ``python -m pytest``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def cli_env(tmp_path: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", PYTHONUNBUFFERED="1")
    env.pop("WANDB_API_KEY", None)
    if tmp_path is not None:
        env["WANDB_DIR"] = str(tmp_path)
    return env


def run_cli(*args: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """Run ``python -m <args>`` from the repository root, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=kw.pop("env", cli_env()),
        **kw,
    )


def meta_model(name: str, **knobs):
    """A registered model on the meta device: shapes and counts, no memory, no arithmetic."""
    import torch

    from models import create_model

    with torch.device("meta"):
        return create_model(name, **knobs)


def n_params(model) -> int:
    from models.complexity import count_params

    return count_params(model)


@pytest.fixture(scope="session")
def digits_cache(tmp_path_factory) -> Path:
    """One digits .beton cache for the whole session (written once, ~2 s)."""
    from datamodules.digits import DigitsDataModule

    cache = tmp_path_factory.mktemp("cache")
    DigitsDataModule(cache_dir=cache).prepare_data()
    return cache
