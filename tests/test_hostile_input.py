"""Hostile and careless input (issue 13): no code from data, names by meaning, refused degenerate data."""

from __future__ import annotations

import os
import pickle
import re
import shutil

import numpy as np
import pytest
from test_imagefolder_cifar import write_fake_cifar

from datamodules.beton import DataError
from datamodules.cifar import CIFAR_LAYOUTS, cifar_classes, find_cifar, load_cifar_split


# =========================================================================== 1. CIFAR pickles run no code
class _Payload:
    """Unpickling this calls ``func(*args)``: the classic pickle code-execution vector."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker):
    cmd = f"touch {marker}"
    return {
        "os.system": _Payload(os.system, cmd),
        "builtins.exec": _Payload(exec, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.call": _Payload(__import__("subprocess").call, ["touch", str(marker)]),
        "builtins.open": _Payload(open, str(marker), "w"),
    }


@pytest.mark.parametrize(
    "kind, where",
    [
        ("os.system", "data_batch_1"),
        ("builtins.exec", "batches.meta"),
        ("subprocess.call", "test_batch"),
        ("builtins.open", "data_batch_5"),
    ],
)
def test_crafted_cifar_pickle_runs_no_code(tmp_path, where, kind):
    write_fake_cifar(tmp_path, "cifar10", per_file=2, test_size=2)
    d = find_cifar(tmp_path, "cifar10")
    marker = tmp_path / "PWNED"
    entry = {
        "data": np.zeros((2, 3072), np.uint8),
        "labels": [0, 1],
        "label_names": [f"c{i}" for i in range(10)],
        "note": _payloads(marker)[kind],
    }  # nested inside an otherwise valid batch
    (d / where).write_bytes(pickle.dumps(entry, protocol=2))
    with pytest.raises(DataError) as e:
        cifar_classes(d, "cifar10")
        load_cifar_split(d, "cifar10", "train")
        load_cifar_split(d, "cifar10", "test")
    assert not marker.exists(), "the crafted pickle ran code"
    assert str(d / where) in str(e.value) and "refused to unpickle" in str(e.value)
    assert f".{kind.split('.')[-1]}," in str(
        e.value
    )  # names the global it asked for (posix.system, io.open)


def test_legitimate_cifar_pickles_of_every_protocol_still_load(tmp_path):
    train, _ = write_fake_cifar(tmp_path, "cifar10", per_file=2, test_size=2)
    d = find_cifar(tmp_path, "cifar10")
    for proto in (
        2,
        4,
        5,
    ):  # Python 3 re-saves: _codecs.encode (2), _reconstruct (4), _frombuffer (5)
        for i, name in enumerate(CIFAR_LAYOUTS["cifar10"]["train"]):
            entry = {
                b"data": train[0][2 * i : 2 * i + 2].transpose(0, 3, 1, 2).reshape(2, 3072),
                b"labels": train[1][2 * i : 2 * i + 2].tolist(),
                b"batch_label": b"x",
            }
            (d / name).write_bytes(pickle.dumps(entry, protocol=proto))
        images, labels = load_cifar_split(d, "cifar10", "train")
        np.testing.assert_array_equal(images, train[0])
        np.testing.assert_array_equal(labels, train[1])


# =========================================================================== 5. state_dicts by name
def _tv_resnet18():
    import torch
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=5).state_dict()


def test_torchvision_state_dict_is_paired_by_name_not_position():
    """A state_dict whose entries come in another order (here BN weight/bias swapped, then all reversed)
    converts to the same tensors: position pairing loaded bn1.bias into the stem BN's weight."""
    from collections import OrderedDict

    from models.convert import from_torchvision, name_map

    sd = _tv_resnet18()
    keys = list(sd)
    i, j = keys.index("bn1.weight"), keys.index("bn1.bias")
    keys[i], keys[j] = keys[j], keys[i]
    for order in (keys, keys[::-1]):
        got = from_torchvision("resnet18", OrderedDict((k, sd[k]) for k in order))
        table = name_map("resnet18", 5)
        assert all(got[ok] is sd[tk] for ok, tk in table.items())
        assert (
            got["stem.conv.bn.weight"] is sd["bn1.weight"]
            and got["stem.conv.bn.bias"] is sd["bn1.bias"]
        )


@pytest.mark.parametrize(
    "edit, words",
    [
        ("rename", ["'head.weight' is not a tensor name", "resnet18"]),
        ("drop", ["lacks 'layer1.0.bn1.running_var'"]),
        ("extra", ["'layer5.0.conv1.weight' is not a tensor name"]),
        ("reshape", ["layer1.0.conv1.weight has shape (64, 64, 1, 1)"]),
    ],
)
def test_unmappable_state_dict_is_refused_naming_the_first_name(edit, words):
    import torch

    from models.convert import ConversionError, from_torchvision

    sd = _tv_resnet18()
    if edit == "rename":
        sd["head.weight"] = sd.pop("fc.weight")
    elif edit == "drop":
        del sd["layer1.0.bn1.running_var"]
    elif edit == "extra":
        sd["layer5.0.conv1.weight"] = torch.zeros(1)
    else:
        sd["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(ConversionError) as e:
        from_torchvision("resnet18", sd)
    assert all(w in str(e.value) for w in words), str(e.value)


# =========================================================================== 3. the writer refuses a wrong dataset
def _img(path, h=12, w=12, seed=0):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
        path
    )


def _two_class_tree(root):
    for split in ("train", "val"):
        for c in ("a", "b"):
            for k in range(2):
                _img(root / split / c / f"{k}.png", seed=k)
    return root


def test_writer_follows_each_real_directory_once_and_skips_tiny_images(tmp_path):
    import json

    from datamodules.beton import beton_labels
    from datamodules.imagefolder_writer import MIN_SIDE, write_imagefolder

    src = _two_class_tree(tmp_path / "src")
    (src / "train" / "a" / "loop").symlink_to(
        src / "train" / "a"
    )  # a cycle: today thousands of copies
    (src / "train" / "b" / "again").symlink_to(src / "train" / "a")  # a's images again, labelled b
    _img(tmp_path / "elsewhere" / "x.png")
    (src / "train" / "b" / "outside").symlink_to(
        tmp_path / "elsewhere"
    )  # leaves the class: followed once
    _img(src / "train" / "a" / "tiny.png", h=MIN_SIDE - 1, w=40)
    _img(src / "val" / "b" / "tall.png", h=4000, w=9)  # 9 px, but 1 px after --max-resolution 500
    meta = write_imagefolder(
        src, tmp_path / "out", num_workers=1, write_mode="raw", max_resolution=500
    )
    assert meta["counts"] == {"train": 5, "val": 4}  # a: 0.png 1.png; b: 0.png 1.png outside/x.png
    assert beton_labels(tmp_path / "out" / "train.beton").tolist() == [0, 0, 1, 1, 1]
    on_disk = json.loads((tmp_path / "out" / "meta.json").read_text())
    actions = {e["path"]: e["action"] for e in on_disk["links"]}
    assert (
        "already walked" in actions["train/a/loop"] and "already walked" in actions["train/b/again"]
    )
    assert "leaves its class directory" in actions["train/b/outside"]
    reasons = {e["path"]: e["error"] for e in on_disk["skipped"]}
    assert set(reasons) == {"train/a/tiny.png", "val/b/tall.png"}
    assert (
        all("too small" in r for r in reasons.values())
        and "after --max-resolution 500" in reasons["val/b/tall.png"]
    )
    assert "too small" in on_disk["skip_rules"]
    report = "\n".join(meta["_report"])
    assert "train/a/loop" in report and "tiny.png" in report


def test_writer_refuses_fewer_than_two_classes(tmp_path):
    from datamodules.imagefolder_writer import UsageError, write_imagefolder

    src = tmp_path / "src"
    for split in ("train", "val"):
        _img(src / split / "only" / "0.png")
    with pytest.raises(UsageError, match=r"train: 1 class directory \(only\).*at least 2 classes"):
        write_imagefolder(src, tmp_path / "out", num_workers=1)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_class_directory_linked_to_another_is_refused(tmp_path):
    from datamodules.imagefolder_source import LayoutError, scan_tree

    src = _two_class_tree(tmp_path / "src")
    shutil.rmtree(src / "val" / "b")
    (src / "val" / "b").symlink_to(
        src / "train" / "b"
    )  # val/b is train/b: a leak, not a validation set
    with pytest.raises(LayoutError, match="val/b: the same real directory"):
        scan_tree(src)


# =========================================================================== 4. loaders fail by name
class _Images:
    """An indexed dataset of random RGB images of the given (h, w) sizes, labels alternating 0/1."""

    def __init__(self, sizes):
        self.sizes = sizes

    def __len__(self):
        return len(self.sizes)

    def __getitem__(self, i):
        h, w = self.sizes[i]
        return np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8), i % 2


def _beton_pair(root, val_sizes):
    from datamodules.beton import write_beton

    root.mkdir(parents=True, exist_ok=True)
    write_beton(root / "train.beton", _Images([(12, 12)] * 8))
    write_beton(root / "val.beton", _Images(val_sizes))
    return root


def test_beton_with_an_image_the_centre_crop_would_abort_on_is_refused_by_name(tmp_path):
    from datamodules.ffcv import FFCVDataModule

    root = _beton_pair(tmp_path / "d", [(12, 12), (12, 12), (1, 40), (12, 12)])
    dm = FFCVDataModule(
        root / "train.beton", root / "val.beton", resolution=8, val_crop_ratio=0.875
    )
    with pytest.raises(
        DataError, match=r"val.beton: sample 2 is 40x1 pixels, too small for a centre crop"
    ):
        dm.setup()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_training_on_such_a_beton_fails_with_a_record_not_an_abort(tmp_path):
    """Today: SIGABRT (exit 134) from cv::resize at the first validation batch, summary left 'running'."""
    import json

    from conftest import cli_env, run_cli

    root = _beton_pair(tmp_path / "d", [(12, 12), (1, 40), (12, 12), (12, 12)])
    proc = run_cli(
        "platform.train",
        "data=beton",
        f"data.path={root}",
        "data.resolution=8",
        "data.val_resolution=8",
        "data.val_crop_ratio=0.875",
        "data.batch_size=4",
        "data.num_workers=1",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "logging.wandb=disabled",
        "logging.progress_bar=false",
        f"run.root={tmp_path / 'runs'}",
        "run.name=r",
        env=cli_env(tmp_path),
        timeout=800,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "val.beton: sample 1 is 40x1 pixels" in proc.stderr and "Traceback" not in proc.stderr
    assert json.loads((tmp_path / "runs" / "r" / "summary.json").read_text())["status"] == "failed"


def test_imagefolder_decode_error_names_file_and_index_across_workers(tmp_path):
    from torch.utils.data import DataLoader

    from datamodules.beton import SampleError
    from datamodules.imagefolder import LabelledImageFolder, val_transform

    src = _two_class_tree(tmp_path / "src")
    bad = src / "val" / "b" / "1.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated: PIL fails while decoding
    ds = LabelledImageFolder(src / "val", ["a", "b"], val_transform(8, 1.0))
    with pytest.raises(SampleError) as e:
        next(iter(DataLoader(ds, batch_size=4, num_workers=1)))
    msg = str(e.value)
    assert msg.startswith(f"{bad}: sample 3 of {src / 'val'} failed to decode") and "\n" not in msg


@pytest.mark.parametrize(
    "world, size, classes, words",
    [(4, 3, 10, "3 validation example(s) for 4 ranks"), (1, 8, 1, "1 class(es)")],
)
def test_shards_and_classes_are_checked_at_setup(world, size, classes, words):
    from types import SimpleNamespace

    import torch

    from datamodules.synthetic import SyntheticDataModule

    dm = SyntheticDataModule(size=size * 4, num_classes=classes, resolution=4, batch_size=4)
    dm.trainer = SimpleNamespace(
        world_size=world, global_rank=0, strategy=SimpleNamespace(root_device=torch.device("cpu"))
    )
    with pytest.raises(DataError, match=re.escape(words)):
        dm.setup()


def test_one_class_beton_is_refused_before_the_model_is_built(tmp_path):
    from datamodules.beton import write_beton
    from datamodules.ffcv import FFCVDataModule

    class OneClass(_Images):
        def __getitem__(self, i):
            return super().__getitem__(i)[0], 0

    write_beton(tmp_path / "train.beton", OneClass([(12, 12)] * 4))
    dm = FFCVDataModule(tmp_path / "train.beton", tmp_path / "train.beton")
    with pytest.raises(DataError, match="train.beton: 1 class"):
        dm.num_classes


def _labelled_pair(root, train_labels, val_labels, meta=None):
    """train.beton/val.beton of 12x12 images with these labels, and meta.json's bytes if given."""
    from datamodules.beton import ArrayDataset, write_beton

    root.mkdir(parents=True, exist_ok=True)
    for name, labels in (("train", train_labels), ("val", val_labels)):
        images = np.random.default_rng(len(labels)).integers(0, 256, (len(labels), 12, 12, 3))
        write_beton(root / f"{name}.beton", ArrayDataset(images.astype(np.uint8), np.array(labels)))
    if meta is not None:
        (root / "meta.json").write_bytes(meta)
    return root


# issue 26 #8 and #9: each was a traceback (exit 1) at set-up or in the first batch
BAD_DATA = {
    "label too large": (
        [0, 1, 0, 1, 0, 1, 0, 1],
        [0, 1, 5, 1],
        b'{"num_classes": 2}',
        "val.beton: sample 2 has label 5, outside [0, 2)",
    ),
    "negative label": (
        [0, 1, 0, -1, 0, 1, 0, 1],
        [0, 1, 0, 1],
        None,
        "train.beton: sample 3 has label -1, outside [0, 2)",
    ),
    "val class train lacks": (
        [0, 1, 0, 1, 0, 1, 0, 1],
        [0, 1, 2, 2],
        None,
        "val.beton: sample 2 has label 2, outside [0, 2) (2 samples out of range",
    ),
    "meta.json not UTF-8": (
        [0, 1] * 4,
        [0, 1] * 2,
        b'{"classes": ["caf\xe9", "b"]}',
        "meta.json: not UTF-8 (byte 17)",
    ),
    "meta.json num_classes a string": (
        [0, 1] * 4,
        [0, 1] * 2,
        b'{"num_classes": "ten"}',
        "meta.json: num_classes is 'ten', expected a whole number >= 2",
    ),
    "meta.json mean not numbers": (
        [0, 1] * 4,
        [0, 1] * 2,
        b'{"mean": "0.5"}',
        "meta.json: mean is '0.5', expected a list of 3 numbers",
    ),
    "meta.json a list": ([0, 1] * 4, [0, 1] * 2, b"[1, 2]", "meta.json: a JSON list"),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_labels_and_meta_are_refused_at_setup_naming_file_key_and_sample(tmp_path, case):
    from datamodules.ffcv import FFCVDataModule

    train, val, meta, words = BAD_DATA[case]
    root = _labelled_pair(tmp_path / "d", train, val, meta)
    dm = FFCVDataModule(root / "train.beton", root / "val.beton", resolution=8)
    with pytest.raises(DataError) as e:
        dm.setup()
    assert words in str(e.value) and "\n" not in str(e.value), str(e.value)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["label too large", "meta.json not UTF-8"])
def test_training_on_bad_labels_or_meta_is_one_line_exit_2(tmp_path, case):
    from conftest import cli_env, run_cli

    train, val, meta, words = BAD_DATA[case]
    root = _labelled_pair(tmp_path / "d", train, val, meta)
    proc = run_cli(
        "platform.train",
        "data=beton",
        f"data.path={root}",
        "data.resolution=8",
        "data.val_resolution=8",
        "data.batch_size=4",
        "data.num_workers=1",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "logging.wandb=disabled",
        "logging.progress_bar=false",
        f"run.root={tmp_path / 'runs'}",
        env=cli_env(tmp_path),
        timeout=600,
    )
    err = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(err) == 1 and str(root) in err[0] and words in err[0], proc.stderr[-3000:]


@pytest.mark.slow
def test_more_workers_than_numba_allows_are_clamped_with_a_warning(tmp_path, digits_cache):
    """Issue 26 #10: data.num_workers=64 with numba allowing 2 was a ValueError traceback in the
    loader.  Clamped with one warning (a speed knob, and a config may be written for a bigger
    machine than the one that first loads it)."""
    from conftest import cli_env, run_cli

    proc = run_cli(
        "platform.train",
        "data=digits",
        f"data.cache_dir={digits_cache}",
        "data.num_workers=64",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.accelerator=cpu",
        "logging.wandb=disabled",
        "logging.progress_bar=false",
        f"run.root={tmp_path / 'runs'}",
        "run.name=r",
        env={**cli_env(tmp_path), "NUMBA_NUM_THREADS": "2"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    warning = "data.num_workers=64 is more than the 2 threads numba allows"
    assert proc.stderr.count(warning) == 1, proc.stderr[-3000:]


def test_torchvision_backend_walks_a_link_cycle_once(tmp_path):
    from datamodules.imagefolder import LabelledImageFolder

    src = _two_class_tree(tmp_path / "src")
    (src / "train" / "a" / "loop").symlink_to(src / "train" / "a")
    ds = LabelledImageFolder(src / "train", ["a", "b"])
    assert [os.path.relpath(p, src) for p, _ in ds.samples] == [
        "train/a/0.png",
        "train/a/1.png",
        "train/b/0.png",
        "train/b/1.png",
    ]
