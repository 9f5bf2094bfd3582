import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from conftest import ROOT, run_cli

from datamodules import create_datamodule
from datamodules.beton import BetonError, DataError, beton_labels, check_beton, write_beton
from datamodules.digits import DigitsDataModule, stratified_split
from datamodules.ffcv import train_image_pipeline


class Squares:
    def __init__(self, n=40, side=12):
        self.n, self.side = n, side

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((self.side, self.side, 3), i % 256, np.uint8), i % 4


def test_write_and_check_roundtrip(tmp_path):
    path = write_beton(tmp_path / "a.beton", Squares())
    assert check_beton(path) == 40
    assert beton_labels(path).tolist() == [i % 4 for i in range(40)]
    assert [p.name for p in tmp_path.iterdir()] == ["a.beton"]  # no temporary left behind


def test_bad_betons_get_clear_errors(tmp_path):
    good = write_beton(tmp_path / "good.beton", Squares())
    data = good.read_bytes()
    (tmp_path / "cut.beton").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.beton").write_text("not a beton at all, just some text" * 10)
    (tmp_path / "tiny.beton").write_bytes(b"\x02\x00")
    for name, words in [
        ("cut", "truncated"),
        ("text", "not a .beton"),
        ("tiny", "too small"),
        ("none", "no such"),
    ]:
        with pytest.raises(BetonError) as e:
            check_beton(tmp_path / f"{name}.beton")
        assert str(tmp_path / f"{name}.beton") in str(e.value) and words in str(e.value)


SLOW_WRITER = textwrap.dedent("""
    import sys, time, numpy as np
    from datamodules.beton import write_beton
    class Slow:
        def __len__(self): return 400
        def __getitem__(self, i):
            time.sleep(0.02)
            return np.zeros((8, 8, 3), np.uint8), 0
    print("started", flush=True)
    write_beton(sys.argv[1], Slow(), num_workers=1, chunk_size=10)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_write_leaves_previous_file_and_no_partial(tmp_path, sig):
    target = tmp_path / "train.beton"
    write_beton(target, Squares(8))
    before = target.read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(target)],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while (
        not list(tmp_path.glob(".train.beton.tmp-*"))
        and time.time() < deadline
        and proc.poll() is None
    ):
        time.sleep(0.05)
    assert list(tmp_path.glob(".train.beton.tmp-*")), "the write never started"
    time.sleep(0.5)
    os.killpg(proc.pid, sig)  # like Ctrl-C in a terminal: the whole process group
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.beton"]


def test_stratified_split_is_deterministic_and_disjoint():
    labels = np.repeat(np.arange(5), 20)
    tr, va = stratified_split(labels, 0.2, seed=1)
    tr2, va2 = stratified_split(labels, 0.2, seed=1)
    assert (tr == tr2).all() and (va == va2).all()
    assert not set(tr) & set(va) and len(tr) + len(va) == 100
    assert np.bincount(labels[va]).tolist() == [4] * 5
    assert not np.array_equal(stratified_split(labels, 0.2, seed=2)[1], va)


def test_digits_datamodule_batches(digits_cache):
    dm = DigitsDataModule(cache_dir=digits_cache, batch_size=32, num_workers=1)
    dm.prepare_data()
    dm.setup("fit")
    meta = __import__("json").loads(dm.meta_path.read_text())
    assert meta["counts"] == {"train": 1438, "val": 359} and meta["num_classes"] == 10
    train = dm.train_dataloader()
    kept = []
    for i, batch in enumerate(train):
        x, y = dm.on_after_batch_transfer(batch, 0)
        kept.append((x, y))
        if i == 1:
            break
    (x0, y0), (x1, y1) = kept
    assert x0.shape == (32, 3, 32, 32) and x0.dtype == torch.float32 and y0.dtype == torch.int64
    assert abs(float(x0.mean())) < 0.5 and 0.5 < float(x0.std()) < 2.0  # normalised
    assert not torch.equal(x0, x1) and not torch.equal(
        y0, y1
    )  # kept batches are not FFCV's reused buffers
    assert len(train) == 1438 // 32  # drop_last for training
    val = dm.val_dataloader()
    assert sum(len(b[1]) for b in val) == 359  # validation sees every image exactly once


def test_digits_cache_is_reused_and_a_corrupt_one_rewritten(tmp_path):
    dm = DigitsDataModule(cache_dir=tmp_path)
    dm.prepare_data()
    stamp = dm.train_path.stat().st_mtime_ns
    DigitsDataModule(cache_dir=tmp_path).prepare_data()
    assert dm.train_path.stat().st_mtime_ns == stamp
    dm.train_path.write_bytes(dm.train_path.read_bytes()[:1000])
    DigitsDataModule(cache_dir=tmp_path).prepare_data()
    assert check_beton(dm.train_path) == 1438


def test_augmentations_never_mirror_digits():
    from datamodules.seeded_ffcv import SeededFlip

    assert not any(isinstance(op, SeededFlip) for op in train_image_pipeline("digits", 32))
    assert any(isinstance(op, SeededFlip) for op in train_image_pipeline("natural", 224))


def test_beton_datamodule_errors_name_the_path(tmp_path):
    with pytest.raises(DataError, match="data.path"):
        create_datamodule("beton")
    with pytest.raises(DataError, match=str(tmp_path / "missing")):
        create_datamodule("beton", path=str(tmp_path / "missing"))
    write_beton(tmp_path / "train.beton", Squares())
    (tmp_path / "val.beton").write_bytes((tmp_path / "train.beton").read_bytes()[:5000])
    with pytest.raises(DataError, match=r"val\.beton.*truncated"):
        create_datamodule("beton", path=str(tmp_path))
    with pytest.raises(DataError, match="did you mean digits"):
        create_datamodule("digit")


def test_beton_datamodule_reads_any_pair(tmp_path):
    write_beton(tmp_path / "train.beton", Squares(64))
    write_beton(tmp_path / "val.beton", Squares(16))
    dm = create_datamodule("beton", path=str(tmp_path), batch_size=8, num_workers=1, resolution=16)
    assert dm.num_classes == 4
    dm.setup("fit")
    x, y = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert x.shape == (8, 3, 16, 16) and int(y.max()) < 4


def test_cli_bad_dataset_errors(tmp_path):
    (tmp_path / "train.beton").write_text("junk")
    (tmp_path / "val.beton").write_text("junk")
    for args, words in [
        (["data=beton", f"data.path={tmp_path / 'nope'}"], [str(tmp_path / "nope")]),
        (["data=beton", f"data.path={tmp_path}"], [str(tmp_path / "train.beton"), "too small"]),
    ]:
        proc = run_cli(
            "platform.train",
            *args,
            "logging.wandb=disabled",
            f"run.root={tmp_path / 'runs'}",
            timeout=120,
        )
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        for w in words:
            assert w in proc.stderr


def test_a_final_batch_of_one_keeps_1d_labels(tmp_path):
    write_beton(tmp_path / "train.beton", Squares(16))
    write_beton(tmp_path / "val.beton", Squares(9))
    dm = create_datamodule("beton", path=str(tmp_path), batch_size=8, num_workers=1, resolution=8)
    dm.setup("fit")
    batches = [dm.on_after_batch_transfer(b, 0) for b in dm.val_dataloader()]
    assert [tuple(y.shape) for _, y in batches] == [
        (8,),
        (1,),
    ]  # FFCV's Squeeze gives a 0-d tensor here
