"""data=fashion_mnist: the IDX parser on hand-made files, the .beton cache, the splits, the augmentation,
the bad-input errors and a few batches trained end to end (issue 18)."""

import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from conftest import ROOT

from datamodules import create_datamodule
from datamodules import fashion_mnist as fm
from datamodules.beton import DataError, check_beton


def write_idx(path, array, *, type_code=0x08, ndim=None, shape=None, gz=True):
    """An IDX file as LeCun's MNIST page specifies it: 0x00 0x00 type ndim, big-endian int32 sizes, data."""
    array = np.asarray(array, np.uint8)
    ndim = array.ndim if ndim is None else ndim
    dims = array.shape if shape is None else shape
    raw = bytes([0, 0, type_code, ndim]) + np.asarray(dims, ">i4").tobytes() + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
    return path


def fake_fashion(root, n_train=60, n_test=30, seed=0):
    """A tiny Fashion-MNIST directory: class-dependent images (class c is mostly grey level 20*c + 10)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        images = np.repeat((labels * 20 + 10).astype(np.uint8)[:, None, None], 28, 1).repeat(28, 2)
        images[:, :, :7] = 0  # a black left band: a horizontal flip moves it to the right
        images_name, labels_name = fm.FILES[split]
        write_idx(root / f"{images_name}.gz", images)
        write_idx(root / f"{labels_name}.gz", labels)
    return root


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return fake_fashion(tmp_path_factory.mktemp("fashion"))


@pytest.fixture(scope="module")
def cache(fake, tmp_path_factory):
    """The default cache of the fake files (official split), written once for this module's tests."""
    cache = tmp_path_factory.mktemp("fashion-cache")
    fm.FashionMNISTDataModule(fake, cache_dir=cache).prepare_data()
    return cache


# ---------------------------------------------------------------------------- the IDX parser
def test_idx_parser_reads_good_files_gzipped_or_not(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for gz in (True, False):
        path = write_idx(tmp_path / f"a{'.gz' if gz else ''}", images, gz=gz)
        got = fm.read_idx(path, 3)
        assert got.shape == (2, 3, 4) and got.dtype == np.uint8 and np.array_equal(got, images)
    assert fm.read_idx(write_idx(tmp_path / "l.gz", [3, 1, 4]), 1).tolist() == [3, 1, 4]


def test_idx_parser_names_the_file_of_a_truncated_wrong_or_short_file(tmp_path):
    good = write_idx(tmp_path / "good.gz", np.ones((5, 28, 28), np.uint8))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good.read_bytes()[:-20])  # a truncated download: the gzip stream ends early
    cases = [
        (cut, 3, "truncated or not a gzip file"),
        (
            write_idx(tmp_path / "magic.gz", np.ones((5, 28, 28)), type_code=0x0D),
            3,
            r"magic 0x00000d03, expected 0x00000803",
        ),
        (
            write_idx(tmp_path / "dims.gz", np.ones(5)),
            3,
            r"with 3 dimension\(s\) \(magic 0x00000801",
        ),
        (
            write_idx(tmp_path / "short.gz", np.ones((5, 28, 28)), shape=(6, 28, 28)),
            3,
            r"promises 6x28x28 = 4704 bytes of data, the file holds 3920: truncated",
        ),
        (tmp_path / "absent.gz", 1, "no such file"),
    ]
    (tmp_path / "plain.gz").write_bytes(b"not gzip at all")
    cases.append((tmp_path / "plain.gz", 1, "truncated or not a gzip file"))
    for path, ndim, words in cases:
        with pytest.raises(DataError, match=words) as e:
            fm.read_idx(path, ndim)
        assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_image_and_label_counts_that_disagree_name_both_files(tmp_path):
    fake_fashion(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(29) % 10)
    with pytest.raises(
        DataError,
        match=r"t10k-images-idx3-ubyte.gz holds 30 images but "
        r".*t10k-labels-idx1-ubyte.gz holds 29 labels",
    ):
        fm.load_fashion_split(tmp_path, "test")


# ---------------------------------------------------------------------------- finding the files
def test_missing_package_and_no_path_is_the_one_line_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "DEFAULT_DIR", tmp_path / "usr-share-datasets-fashion-mnist")
    with pytest.raises(DataError) as e:
        create_datamodule("fashion_mnist", cache_dir=str(tmp_path / "cache"))
    msg = str(e.value)
    assert (
        "\n" not in msg
        and "apt-get install -y dataset-fashion-mnist" in msg
        and "data.path=DIR" in msg
    )
    assert not (tmp_path / "cache").exists()  # nothing written before the files are found
    with pytest.raises(DataError, match=f"data.path={tmp_path / 'nope'}: no such directory"):
        create_datamodule("fashion_mnist", path=str(tmp_path / "nope"))
    fake_fashion(tmp_path / "partial")
    (tmp_path / "partial" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte.gz"):
        create_datamodule("fashion_mnist", path=str(tmp_path / "partial"))


def test_the_cli_prints_the_fix_and_exits_2(tmp_path, monkeypatch, capsys):
    from platform.run.train import main

    monkeypatch.setattr(fm, "DEFAULT_DIR", tmp_path / "absent")
    assert main(["data=fashion_mnist", f"run.root={tmp_path}", "logging.wandb=disabled"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(
        "error: data=fashion_mnist: no Fashion-MNIST files in"
    )
    with pytest.raises(Exception, match="data.val_split"):
        from platform.run.config import load_config

        load_config(["data=fashion_mnist", "data.val_split=train"])


@pytest.mark.skipif(
    not fm.DEFAULT_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed"
)
def test_the_debian_files_are_the_published_release():
    x, y = fm.load_fashion_split(fm.DEFAULT_DIR, "test")
    assert x.shape == (10_000, 28, 28) and np.bincount(y).tolist() == [1000] * 10
    y_train = fm.read_idx(fm.DEFAULT_DIR / "train-labels-idx1-ubyte.gz", 1)
    assert np.bincount(y_train).tolist() == [6000] * 10


# ---------------------------------------------------------------------------- the cache and the splits
def test_betons_meta_and_the_official_split(fake, cache):
    dm = fm.FashionMNISTDataModule(fake, cache_dir=cache)
    meta = json.loads(dm.meta_path.read_text())
    x, _ = fm.load_fashion_split(fake, "train")
    assert meta["counts"] == {"train": 60, "val": 30} and meta["split"]["val_split"] == "test"
    assert meta["mean"] == [pytest.approx(x.mean() / 255, abs=1e-6)] * 3
    assert meta["std"] == [pytest.approx(x.std() / 255, abs=1e-6)] * 3
    assert check_beton(dm.train_path) == 60 and check_beton(dm.val_path) == 30
    assert dm.is_written(fake)
    stamp = dm.train_path.stat().st_mtime_ns
    dm.prepare_data()
    assert dm.train_path.stat().st_mtime_ns == stamp  # written once, then reused


def test_holdout_is_stratified_and_leaves_the_test_split_alone(fake):
    a = fm.split_arrays(fake, "holdout", val_fraction=0.2, seed=0, train_subset=30)
    (_, y), (vx, vy) = a["train"], a["val"]
    assert len(y) == 30 and len(vy) == 10  # 20% of 6 per class held out, then 30 of the other 50
    assert np.bincount(vy).tolist() == [1] * 10 and np.bincount(y).tolist() == [3] * 10
    full = fm.split_arrays(fake, "holdout", val_fraction=0.2, seed=0)
    assert (
        len(full["train"][1]) + len(full["val"][1]) == 60
    )  # train split into two parts; t10k not used
    assert (
        np.array_equal(full["val"][0], vx) and full["mean"] == a["mean"]
    )  # subsetting keeps the holdout
    assert a["split"]["val_split"] == "holdout" and a["split"]["train_subset"]["n"] == 30
    assert fm.cache_name("holdout", 0.2, 0, 30) == "fashion_mnist-holdout0.2-s0-train30"
    assert fm.cache_name() == "fashion_mnist-test"
    assert fm.stratified_subset(np.arange(100) % 10, 25, 0).size == 25
    with pytest.raises(DataError, match="data.val_split='train'"):
        fm.FashionMNISTDataModule(fake, val_split="train")


@pytest.mark.timeout(600)
def test_batches_are_pad_cropped_flipped_and_normalised_with_the_datasets_stats(fake, cache):
    dm = fm.FashionMNISTDataModule(fake, cache_dir=cache, batch_size=20, num_workers=1)
    dm.setup("fit")
    x, y = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert x.shape == (20, 3, 28, 28) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])  # grey replicated
    black = (0 - dm.mean[0]) / dm.std[0]
    left = (x[:, 0, 10:18, :3] - black).abs().amax(dim=(1, 2)) < 1e-4
    right = (x[:, 0, 10:18, -3:] - black).abs().amax(dim=(1, 2)) < 1e-4
    assert (
        left.any() and right.any()
    )  # the black band is on the left of some images, mirrored in others
    vx, vy = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    level = (vx[:, 0, 14, 20] * dm.std[0] + dm.mean[0]) * 255  # validation: the image itself
    assert torch.allclose(level, vy.float() * 20 + 10, atol=0.01)


INTERRUPTED_WRITER = textwrap.dedent("""
    import sys, time
    from datamodules import beton, fashion_mnist as fm
    slow = beton.ArrayDataset.__getitem__
    def getitem(self, i):
        time.sleep(0.1)
        return slow(self, i)
    beton.ArrayDataset.__getitem__ = getitem
    fm.write_fashion_mnist(sys.argv[1], sys.argv[2])
""")


@pytest.mark.timeout(600)
def test_an_interrupted_write_leaves_nothing_behind(fake, tmp_path):
    out = tmp_path / "cache"
    proc = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_WRITER, str(fake), str(out)],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = (
        time.time() + 300
    )  # the child imports torch and lightning first: slow on a busy machine
    while not list(out.glob(".*.tmp-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert list(out.glob(".*.tmp-*")), "the write never started"
    time.sleep(1.5)  # into the write itself (~6 s for train.beton)
    while (
        proc.poll() is None
    ):  # Ctrl-C until it stops: a SIGINT that lands in an at-fork hook is swallowed
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.5)
    assert (
        proc.returncode != 0 and list(out.iterdir()) == []
    )  # no .beton, no meta.json, no temporary


# ---------------------------------------------------------------------------- end to end
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_data_fashion_mnist_trains_a_few_batches_end_to_end(fake, cache, tmp_path):
    from platform.run.config import load_config
    from platform.run.train import train

    cfg = load_config(
        [
            "data=fashion_mnist",
            f"data.path={fake}",
            f"data.cache_dir={cache}",
            "model=resnet20",
            "data.batch_size=16",
            "trainer.max_epochs=2",
            "data.num_workers=1",
            f"run.root={tmp_path}",
            "run.name=fm",
            "logging.wandb=disabled",
            "logging.progress_bar=false",
        ]
    )
    summary = train(cfg)
    rows = [
        json.loads(line) for line in (tmp_path / "fm" / "metrics.jsonl").read_text().splitlines()
    ]
    assert summary["status"] == "finished" and summary["data"] == "fashion_mnist" and len(rows) == 2
    assert rows[-1]["step"] == 2 * (60 // 16) and 0 <= rows[-1]["train/top1"] <= 100
    assert summary["final_val_top1"] is not None


def test_cache_records_digests_and_is_rewritten_when_bytes_change(fake, cache, tmp_path, caplog):
    """meta.json holds each .beton's SHA-256 (run-integrity issue): changed bytes in a cached file are
    found at the next start and the cache is written again."""
    import json
    import logging
    import shutil

    shutil.copytree(cache, tmp_path / "c")
    dm = fm.FashionMNISTDataModule(fake, cache_dir=tmp_path / "c")
    assert len(json.loads(dm.meta_path.read_text())["files"]["val"]["sha256"]) == 64
    assert dm.is_written(dm.source)
    data = bytearray(dm.val_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dm.val_path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert not dm.is_written(dm.source)
    assert "SHA-256" in caplog.text
    dm.prepare_data()
    assert dm.is_written(dm.source)
