"""Seeded runs are repeatable: the same config and seed give bit-identical metrics.jsonl training
columns on CPU, for every data path, with 1 or 2 workers, 1 process or 2 DDP ranks (gloo), and a
resumed run equals an uninterrupted one.  Real ``python -m platform.train`` runs, tiny."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, cli_env, run_cli
from PIL import Image

pytestmark = pytest.mark.slow

TIMING = ("epoch_time_s",)  # wall-clock columns differ between any two runs


def _train(tmp_path: Path, name: str, *args: str) -> list[dict]:
    proc = run_cli(
        "platform.train",
        "trainer.accelerator=cpu",
        "trainer.limit_train_batches=3",
        "logging.wandb=disabled",
        "logging.progress_bar=false",
        "seed=7",
        f"run.root={tmp_path / 'runs'}",
        f"run.name={name}",
        *args,
        env=cli_env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = (tmp_path / "runs" / name / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _columns(rows: list[dict]) -> list[dict]:
    """The training and validation columns: everything but timings and throughput."""
    return [
        {k: v for k, v in r.items() if k not in TIMING and not k.startswith("perf/")} for r in rows
    ]


def _same(a: list[dict], b: list[dict]) -> None:
    assert _columns(a) == _columns(b)
    assert {"train/loss", "val/loss"} <= set(a[0])


DIGITS = ("data=digits", "data.batch_size=32", "data.num_workers=1", "trainer.max_epochs=2")


@pytest.mark.timeout(900)
def test_digits_seeded_pair_with_1_and_2_workers(tmp_path, digits_cache):
    """The issue's pair (data=digits seed=7), once with data.num_workers=2: FFCV's numba threads
    decode in another order, and the draws and the losses are still the same."""
    cache = f"data.cache_dir={digits_cache}"
    _same(
        _train(tmp_path, "w1", *DIGITS, cache),
        _train(tmp_path, "w2", *DIGITS, cache, "data.num_workers=2"),
    )


@pytest.mark.timeout(900)
def test_digits_resumed_run_equals_the_uninterrupted_one(tmp_path, digits_cache):
    cache = f"data.cache_dir={digits_cache}"
    whole = _train(tmp_path, "whole", *DIGITS, cache)
    _train(tmp_path, "cut", *DIGITS, cache, "trainer.max_epochs=1")
    _same(whole, _train(tmp_path, "cut", *DIGITS, cache, "resume=auto"))


@pytest.mark.timeout(900)
def test_digits_seeded_pair_on_2_ddp_ranks(tmp_path, digits_cache):
    common = (
        "data=digits",
        f"data.cache_dir={digits_cache}",
        "data.batch_size=32",
        "data.num_workers=1",
        "trainer.max_epochs=1",
        "trainer.devices=2",
        "trainer.strategy=ddp",
    )
    _same(_train(tmp_path, "a", *common), _train(tmp_path, "b", *common))


@pytest.mark.timeout(900)
def test_fashion_mnist_seeded_pair(tmp_path):
    from datamodules.fashion_mnist import DEFAULT_DIR

    if not (DEFAULT_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    common = (
        "data=fashion_mnist",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.train_subset=512",
        "data.val_subset=128",
        "data.batch_size=32",
        "trainer.max_epochs=1",
    )
    _same(
        _train(tmp_path, "a", *common, "data.num_workers=1"),
        _train(tmp_path, "b", *common, "data.num_workers=2"),
    )


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """A small ImageFolder tree (train 3 x 16, val 3 x 4), images of varied sizes."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for split, n in (("train", 16), ("val", 4)):
        for c in ("ant", "bee", "cow"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                h, w = 40 + 3 * (i % 5), 36 + 5 * (i % 4)
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i}.jpg")
    return root


IMAGE_ARGS = ("data.resolution=32", "data.batch_size=8", "trainer.max_epochs=2")


@pytest.mark.timeout(900)
def test_imagefolder_beton_seeded_pair(tmp_path, image_folder):
    out = tmp_path / "beton"
    proc = subprocess.run(
        [sys.executable, "-m", "datamodules.write", str(image_folder), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env(),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    common = ("data=beton", f"data.path={out}", *IMAGE_ARGS)
    _same(
        _train(tmp_path, "a", *common, "data.num_workers=1"),
        _train(tmp_path, "b", *common, "data.num_workers=2"),
    )


@pytest.mark.timeout(900)
def test_torchvision_imagefolder_seeded_pair(tmp_path, image_folder):
    common = ("data=imagenet", "data.backend=torchvision", f"data.path={image_folder}", *IMAGE_ARGS)
    _same(
        _train(tmp_path, "a", *common, "data.num_workers=0"),
        _train(tmp_path, "b", *common, "data.num_workers=2"),
    )
