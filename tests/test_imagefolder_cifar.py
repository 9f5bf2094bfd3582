"""ImageFolder fallback datamodule and CIFAR-10/100 (pickle files -> .beton -> FFCV)."""

import io
import json
import pickle
import struct
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import ROOT
from PIL import Image

from datamodules.beton import DataError, beton_labels, check_beton
from datamodules.cifar import (
    CIFAR_LAYOUTS,
    CifarDataModule,
    cifar_train_pipeline,
    find_cifar,
    load_cifar_split,
)
from datamodules.imagefolder import ImageFolderDataModule, train_transform, val_transform
from datamodules.normalize import DeviceNormalize

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)

# numba's dispatcher finalizer can race with FFCV compiling a pipeline in its loader thread and
# print "Exception ignored in: <finalize object ...>: KeyError" (numba internals, harmless and
# timing-dependent); only weakref-finalizer noise is ignored, any other unraisable still warns.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <finalize object:pytest.PytestUnraisableExceptionWarning"
)


def fake_trainer(rank=0, world=1, epoch=0):
    return SimpleNamespace(
        global_rank=rank,
        world_size=world,
        current_epoch=epoch,
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
    )


# =========================================================================== ImageFolder
TRAIN_COUNTS = {"cat": 6, "dog": 3, "emu": 3}  # imbalanced on purpose (class-aware test)
VAL_COUNTS = {"cat": 3, "dog": 2, "emu": 2}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """root/{train,val}/{cat,dog,emu}/*.{png,jpg}: varied sizes, one greyscale image."""
    root = tmp_path_factory.mktemp("imagefolder")
    rng = np.random.default_rng(0)
    k = 0
    for split, counts in (("train", TRAIN_COUNTS), ("val", VAL_COUNTS)):
        for c, n in counts.items():
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                h, w = 14 + 5 * (k % 4), 12 + 7 * (k % 3)
                img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
                if k % 5 == 0:
                    img = img.convert("L")
                img.save(root / split / c / f"{i}.{'png' if k % 2 else 'jpg'}")
                k += 1
    (root / "train" / "cat" / "notes.txt").write_text("not an image")  # skipped by ImageFolder
    return root


def make_dm(root, **kw):
    kw = {"batch_size": 4, "num_workers": 0, "resolution": 16, "mean": MEAN, "std": STD, **kw}
    return ImageFolderDataModule(root, **kw)


def test_imagefolder_batches_are_uint8_then_normalised_on_the_device(folder):
    dm = make_dm(folder, val_resolution=12)
    assert dm.num_classes == 3 and dm.classes == [
        "cat",
        "dog",
        "emu",
    ]  # before setup, from the folder
    dm.setup("fit")
    assert (dm.train_size, dm.val_size) == (12, 7)
    raw_x, raw_y = next(iter(dm.train_dataloader()))
    assert raw_x.shape == (4, 3, 16, 16) and raw_x.dtype == torch.uint8  # no float work on the CPU
    x, y = dm.on_after_batch_transfer((raw_x, raw_y), 0)
    assert (
        x.dtype == torch.float32
        and y.dtype == torch.int64
        and 0 <= int(y.min())
        and int(y.max()) < 3
    )
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (raw_x.float() / 255 - mean) / std)
    assert len(dm.train_dataloader()) == 12 // 4  # drop_last
    val = list(dm.val_dataloader())
    assert all(b[0].shape[1:] == (3, 12, 12) for b in val)
    assert sum(len(b[1]) for b in val) == dm.val_size
    assert sorted(int(v) for b in val for v in b[1]) == [0] * 3 + [1] * 2 + [2] * 2


def test_imagenet_torchvision_backend_builds_it(folder):
    from datamodules import create_datamodule

    dm = create_datamodule(
        "imagenet",
        backend="torchvision",
        path=str(folder),
        batch_size=4,
        num_workers=0,
        resolution=16,
        val_resolution=12,
    )
    assert (
        isinstance(dm, ImageFolderDataModule)
        and dm.num_classes == 3
        and dm.val_crop_ratio == 224 / 256
    )
    dm.setup()
    assert next(iter(dm.val_dataloader()))[0].shape == (4, 3, 12, 12)


def test_imagefolder_workers_channels_last_and_resolution(folder):
    dm = make_dm(folder, num_workers=1, channels_last=True, augment="none")
    dm.setup()
    loader = dm.train_dataloader()
    assert loader.persistent_workers and loader.num_workers == 1
    assert loader.pin_memory == torch.cuda.is_available()
    x, _ = dm.on_after_batch_transfer(next(iter(loader)), 0)
    assert x.shape == (4, 3, 16, 16) and x.is_contiguous(memory_format=torch.channels_last)


def test_imagefolder_progressive_resizing_reaches_persistent_workers(folder):
    dm = make_dm(folder, num_workers=1)
    dm.trainer = fake_trainer()
    loader = dm.train_dataloader()
    assert {tuple(x.shape[2:]) for x, _ in loader} == {(16, 16)}  # workers started at 16
    dm.set_train_resolution(24)  # as the platform's callback does before an epoch
    assert dm.resolution == 24 and {tuple(x.shape[2:]) for x, _ in loader} == {(24, 24)}
    assert next(iter(dm.val_dataloader()))[0].shape[2:] == (16, 16)  # validation keeps its size


def test_device_normalize_gives_fresh_float_tensors():
    norm = DeviceNormalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    images = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    labels = torch.tensor([1, 2], dtype=torch.int32)
    x, y = norm(images, labels)
    assert x.dtype == torch.float32 and torch.allclose(x, torch.full_like(x, 2.0))
    assert y.dtype == torch.int64 and y.data_ptr() != labels.data_ptr()
    labels.fill_(0)  # the loader reuses its buffer: our labels must not change
    assert y.tolist() == [1, 2]
    assert norm.labels(torch.tensor(7, dtype=torch.int16)).shape == (
        1,
    )  # FFCV's Squeeze on a batch of one
    with pytest.raises(ValueError, match="shape"):
        norm(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), labels)


def test_imagefolder_transforms_match_the_ffcv_pipelines():
    from torchvision import transforms as T

    kinds = lambda t: [type(op) for op in t.transforms]  # noqa: E731
    assert T.RandomHorizontalFlip in kinds(train_transform("natural", 224))
    digits = train_transform("digits", 32)
    assert T.RandomHorizontalFlip not in kinds(digits)  # a mirrored digit is another digit
    crop, shift = digits.transforms[0], digits.transforms[1]
    assert crop.scale == (0.7, 1.0) and crop.ratio == (0.9, 1.1) and shift.padding == 2
    assert all(t.transforms[-1].__class__ is T.PILToTensor for t in (digits, val_transform(224)))
    resize, centre = val_transform(224, 224 / 256).transforms[:2]
    assert resize.size == 256 and centre.size == (224, 224)
    with pytest.raises(ValueError, match="augmentation"):
        train_transform("cifar-ish", 32)


def test_imagefolder_shards_exactly_across_ranks(folder):
    for world in (2, 3):
        val_shards, train_shards = [], []
        for rank in range(world):
            dm = make_dm(folder, batch_size=6)
            dm.trainer = fake_trainer(rank, world)
            assert dm.per_device_batch_size() == 6 // world
            val_shards.append(list(dm.val_dataloader().dataset.indices))
            train_shards.append(list(dm.train_dataloader().sampler))
        val_all = [i for s in val_shards for i in s]
        assert sorted(val_all) == list(range(7))  # every validation image once: no padding, no loss
        assert max(map(len, val_shards)) - min(map(len, val_shards)) <= 1
        train_all = [i for s in train_shards for i in s]
        assert len(set(train_all)) == len(train_all)  # disjoint training shards
        assert {len(s) for s in train_shards} == {12 // world}  # DistributedSampler(drop_last=True)
    dm = make_dm(folder, batch_size=5)
    dm.trainer = fake_trainer(0, 2)
    with pytest.raises(ValueError, match="global batch and must divide evenly across 2 ranks"):
        dm.val_dataloader()


def test_imagefolder_training_order_is_seeded_per_epoch(folder):
    orders = {}
    for epoch in (0, 0, 1):
        dm = make_dm(folder)
        dm.trainer = fake_trainer(epoch=epoch)
        orders.setdefault(epoch, []).append(list(dm.train_dataloader().sampler))
    assert orders[0][0] == orders[0][1] and orders[0][0] != orders[1][0]


def test_imagefolder_class_aware_sampler_is_balanced(folder):
    dm = make_dm(folder, sampler="class_aware", epoch_samples=30)
    dm.setup()
    targets = np.asarray(dm.train_set.targets)
    counts = np.bincount(targets[list(dm.train_dataloader().sampler)], minlength=3)
    assert (
        counts.sum() == 30 and counts.max() - counts.min() <= 1
    )  # although cat has twice the images
    shards = []
    for rank in range(2):
        dm.trainer = fake_trainer(rank, 2)
        shards.append(list(dm.train_dataloader().sampler))
    assert len(shards[0]) == len(shards[1]) == 15
    assert next(iter(dm.train_dataloader()))[1].shape == (2,)  # real batches come out of it too


def test_imagefolder_val_labels_follow_the_training_classes(tmp_path, folder):
    import shutil

    shutil.copytree(folder / "train", tmp_path / "train")
    (tmp_path / "val" / "emu").mkdir(parents=True)  # val lacks cat and dog: emu must still be 2
    shutil.copy(next((folder / "val" / "emu").iterdir()), tmp_path / "val" / "emu")
    dm = make_dm(tmp_path)
    dm.setup()
    assert dm.val_set.targets == [2] and dm.val_size == 1


def test_imagefolder_missing_directories_are_clear_errors(tmp_path, folder):
    import shutil

    with pytest.raises(
        DataError, match=f"{tmp_path / 'nope'}: no such directory.*ROOT/train/<class>"
    ):
        make_dm(tmp_path / "nope").setup()
    (tmp_path / "a" / "val").mkdir(parents=True)
    with pytest.raises(DataError, match=f"{tmp_path / 'a' / 'train'}: no such directory.*expected"):
        make_dm(tmp_path / "a").num_classes
    shutil.copytree(folder / "train", tmp_path / "b" / "train")
    with pytest.raises(DataError, match=f"{tmp_path / 'b' / 'val'}: no such directory"):
        make_dm(tmp_path / "b").setup()
    (tmp_path / "c" / "train").mkdir(parents=True)
    (tmp_path / "c" / "val").mkdir()
    with pytest.raises(DataError, match="no class sub-directories"):
        make_dm(tmp_path / "c").setup()
    shutil.copytree(folder / "train", tmp_path / "d" / "train")
    (tmp_path / "d" / "val" / "yak").mkdir(parents=True)
    with pytest.raises(DataError, match=r"\['yak'\] are not in"):
        make_dm(tmp_path / "d").setup()
    shutil.copytree(folder / "train", tmp_path / "e" / "train")
    (tmp_path / "e" / "val" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match=f"{tmp_path / 'e' / 'val'}: no images found"):
        make_dm(tmp_path / "e").setup()
    with pytest.raises(ValueError, match="augmentation"):
        make_dm(folder, augment="cifar")
    with pytest.raises(ValueError, match="sampler"):
        make_dm(folder, sampler="balanced")


def test_new_modules_import_first_without_cycles():
    code = "import datamodules.cifar, datamodules.imagefolder, datamodules.beton as b; print(b.DataError.__name__)"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "DataError", proc.stderr


# =========================================================================== CIFAR
class _Py2Pickler(pickle._Pickler):
    """Pickles like Python 2 did when CIFAR was released: every ``str``/``bytes`` becomes a Python 2
    byte string (``SHORT_BINSTRING``/``BINSTRING``), so -- like the real files -- keys load as ``str``
    under ``encoding='latin1'`` (torchvision), as ``bytes`` under ``encoding='bytes'``, and the
    default ASCII decoding fails on the pixel data."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_string(self, obj):
        b = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        self.write(
            (pickle.SHORT_BINSTRING + bytes([len(b)]))
            if len(b) < 256
            else (pickle.BINSTRING + struct.pack("<i", len(b)))
        )
        self.write(b)
        self.memoize(obj)

    dispatch[str] = _save_py2_string
    dispatch[bytes] = _save_py2_string


def _py2_pickle(path, obj):
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 1.x of the day named its reconstructor numpy.core.multiarray (numpy 2 still loads it)
    path.write_bytes(
        buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    )


def write_fake_cifar(root, name="cifar10", per_file=7, test_size=6, seed=0):
    """Tiny but format-exact CIFAR pickles under ``root/<folder>``; returns (train, test) as
    (N, 32, 32, 3) uint8 HWC images and labels."""
    lay = CIFAR_LAYOUTS[name]
    d = root / lay["folder"]
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    out = {}
    for split, files, n in (("train", lay["train"], per_file), ("test", lay["test"], test_size)):
        images, labels = [], []
        for j, fname in enumerate(files):
            hwc = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
            hwc[:, :8, :8, 0] = 255  # an asymmetric mark, so flips and shifts are visible
            y = rng.integers(0, lay["num_classes"], n).tolist()
            entry = {
                "batch_label": f"{split} batch {j + 1}",
                "data": hwc.transpose(0, 3, 1, 2).reshape(n, 3072),
                "filenames": [f"img_{j}_{i}.png" for i in range(n)],
            }
            if name == "cifar10":
                entry["labels"] = y
            else:
                entry.update(fine_labels=y, coarse_labels=[v // 5 for v in y])
            _py2_pickle(d / fname, entry)
            images.append(hwc)
            labels += y
        out[split] = (np.concatenate(images), np.asarray(labels))
    names = [f"class_{i}" for i in range(lay["num_classes"])]
    if name == "cifar10":
        _py2_pickle(
            d / lay["meta"],
            {"num_cases_per_batch": per_file, "label_names": names, "num_vis": 3072},
        )
    else:
        _py2_pickle(
            d / lay["meta"],
            {"fine_label_names": names, "coarse_label_names": [f"super_{i}" for i in range(20)]},
        )
    return out["train"], out["test"]


def torchvision_cifar(root, name, monkeypatch, train):
    """torchvision's own loader on our files (its md5 checks replaced by existence checks: the
    fakes cannot have the real files' checksums; everything else is torchvision's code)."""
    import os

    import torchvision.datasets.cifar as tv

    monkeypatch.setattr(tv, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    cls = tv.CIFAR10 if name == "cifar10" else tv.CIFAR100
    return cls(str(root), train=train, download=False)


@pytest.fixture(scope="module")
def cifar10(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    train, test = write_fake_cifar(root, "cifar10")
    dm = CifarDataModule(root, cache_dir=root / "cache", batch_size=5, num_workers=1)
    dm.prepare_data()
    dm.setup("fit")
    return SimpleNamespace(root=root, train=train, test=test, dm=dm)


def test_fake_cifar_files_are_faithful(cifar10, monkeypatch):
    path = cifar10.root / "cifar-10-batches-py" / "data_batch_1"
    with open(path, "rb") as f:
        assert set(pickle.load(f, encoding="bytes")) == {
            b"batch_label",
            b"data",
            b"filenames",
            b"labels",
        }
    with open(path, "rb") as f:
        with pytest.raises(UnicodeDecodeError):  # like the real Python 2 files
            pickle.load(f)
    for train, (images, labels) in ((True, cifar10.train), (False, cifar10.test)):
        ds = torchvision_cifar(cifar10.root, "cifar10", monkeypatch, train)
        np.testing.assert_array_equal(ds.data, images)
        assert ds.targets == labels.tolist() and ds.classes[3] == "class_3"
        ours = load_cifar_split(
            cifar10.root / "cifar-10-batches-py", "cifar10", "train" if train else "test"
        )
        np.testing.assert_array_equal(ours[0], ds.data)
        np.testing.assert_array_equal(ours[1], ds.targets)


def test_cifar10_betons_and_meta_match_the_pickles(cifar10):
    dm = cifar10.dm
    assert dm.directory == cifar10.root / "cache" / "cifar10"
    assert {p.name for p in dm.directory.iterdir()} == {
        "train.beton",
        "val.beton",
        "meta.json",
    }  # no temp files
    meta = json.loads(dm.meta_path.read_text())
    assert meta["counts"] == {"train": 35, "val": 6} and meta["num_classes"] == 10 == dm.num_classes
    assert meta["classes"] == [f"class_{i}" for i in range(10)] == dm.classes
    np.testing.assert_array_equal(beton_labels(dm.train_path), cifar10.train[1])  # file order kept
    np.testing.assert_array_equal(
        beton_labels(dm.val_path), cifar10.test[1]
    )  # the test set validates
    assert meta["class_counts"]["train"] == np.bincount(cifar10.train[1], minlength=10).tolist()
    pixels = cifar10.train[0].reshape(-1, 3) / 255.0
    np.testing.assert_allclose(meta["mean"], pixels.mean(0), atol=1e-6)
    np.testing.assert_allclose(meta["std"], pixels.std(0), atol=1e-6)
    assert dm.mean == tuple(meta["mean"]) and (dm.train_size, dm.val_size) == (35, 6)


def test_cifar10_batches_are_he_et_al_augmented_32x32(cifar10):
    from datamodules.seeded_ffcv import SeededFlip, SeededTranslate

    dm = cifar10.dm
    ops = dm.train_image_ops()
    assert [type(op) for op in ops[1:]] == [SeededTranslate, SeededFlip] and ops[1].padding == 4
    assert tuple(ops[1].fill) == tuple(round(255 * m) for m in dm.mean)  # pads with the mean colour
    assert cifar_train_pipeline(64)[1].padding == 8  # 4 pixels per 32 at other resolutions
    mean = torch.tensor(dm.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(dm.std).view(1, 3, 1, 1) * 255
    val = [dm.on_after_batch_transfer(b, 0) for b in dm.val_dataloader()]
    assert [len(y) for _, y in val] == [5, 1] and all(x.shape[1:] == (3, 32, 32) for x, _ in val)
    restored = (
        torch.cat([x * std + mean for x, _ in val])
        .round()
        .to(torch.uint8)
        .permute(0, 2, 3, 1)
        .numpy()
    )
    np.testing.assert_array_equal(restored, cifar10.test[0])  # validation: the images themselves
    train = dm.train_dataloader()
    assert len(train) == 35 // 5
    batches = [dm.on_after_batch_transfer(b, 0) for b in train]  # a whole epoch (copies)
    assert all(
        x.shape == (5, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
        for x, y in batches
    )
    x, y = torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])
    assert sorted(y.tolist()) == sorted(
        cifar10.train[1].tolist()
    )  # each training image once per epoch
    # every training image is a source image, maybe mirrored, shifted by at most 4 pixels
    out = (x * std + mean).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    src, moves = cifar10.train[0], []

    def window(a, dy, dx):  # the part of a that lands inside the frame after a shift by (dy, dx)
        return a[max(0, -dy) : 32 + min(0, -dy), max(0, -dx) : 32 + min(0, -dx)]

    for img, label in zip(out, y.tolist(), strict=False):
        found = [
            (flip, dy, dx)
            for s in src[cifar10.train[1] == label]
            for flip in (False, True)
            for dy in range(-4, 5)
            for dx in range(-4, 5)
            if np.array_equal(window(img, -dy, -dx), window(s[:, ::-1] if flip else s, dy, dx))
        ]
        assert found, "a training image that is no shifted/mirrored source image"
        moves += found
    assert any(
        m != (False, 0, 0) for m in moves
    )  # augmented, not the identity (chance of failure 1e-10)


def test_cifar_class_aware_training_order(cifar10):
    dm = CifarDataModule(
        cifar10.root,
        cache_dir=cifar10.root / "cache",
        batch_size=5,
        num_workers=1,
        sampler="class_aware",
        epoch_samples=30,
    )
    dm.prepare_data()
    dm.setup("fit")
    labels = torch.cat(
        [dm.on_after_batch_transfer(b, 0)[1] for b in dm.train_dataloader()]
    ).numpy()  # copies
    present = np.unique(cifar10.train[1])
    counts = np.bincount(labels, minlength=10)[present]
    assert len(labels) == 30 and counts.max() - counts.min() <= 1 and counts.sum() == 30


def test_cifar_cache_is_reused_and_rewritten_for_other_sources(cifar10, tmp_path):
    dm = cifar10.dm
    stamp = dm.train_path.stat().st_mtime_ns
    CifarDataModule(
        cifar10.root / "cifar-10-batches-py", cache_dir=cifar10.root / "cache"
    ).prepare_data()
    assert (
        dm.train_path.stat().st_mtime_ns == stamp
    )  # the folder itself is accepted as root, cache reused
    other = tmp_path / "other"
    write_fake_cifar(other, "cifar10", per_file=3, test_size=2, seed=1)
    CifarDataModule(other, cache_dir=tmp_path / "cache").prepare_data()
    dm2 = CifarDataModule(other, cache_dir=tmp_path / "cache")
    dm2.train_path.write_bytes(dm2.train_path.read_bytes()[:1000])  # corrupt: rewritten
    dm2.prepare_data()
    assert check_beton(dm2.train_path) == 15
    import shutil

    shutil.copytree(cifar10.root / "cifar-10-batches-py", tmp_path / "swap" / "cifar-10-batches-py")
    CifarDataModule(
        tmp_path / "swap", cache_dir=tmp_path / "cache"
    ).prepare_data()  # other files, same cache
    assert check_beton(dm2.train_path) == 35


def test_cifar100_reads_fine_labels(tmp_path, monkeypatch):
    train, test = write_fake_cifar(tmp_path, "cifar100", per_file=12, test_size=4)
    ds = torchvision_cifar(tmp_path, "cifar100", monkeypatch, train=True)
    np.testing.assert_array_equal(ds.data, train[0])
    assert ds.targets == train[1].tolist() and len(ds.classes) == 100
    dm = CifarDataModule(tmp_path, name="cifar100", cache_dir=tmp_path / "cache", batch_size=4)
    dm.prepare_data()
    assert dm.directory == tmp_path / "cache" / "cifar100" and dm.num_classes == 100
    np.testing.assert_array_equal(beton_labels(dm.train_path), train[1])
    np.testing.assert_array_equal(beton_labels(dm.val_path), test[1])
    assert json.loads(dm.meta_path.read_text())["counts"] == {"train": 12, "val": 4}


def test_cifar_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(
        DataError,
        match=f"{tmp_path / 'nope'}: no such directory.*cifar-10-batches-py/"
        r"\{data_batch_1.*test_batch, batches.meta\}",
    ):
        CifarDataModule(tmp_path / "nope").prepare_data()
    with pytest.raises(
        DataError, match="no CIFAR100 files found.*cifar-100-python/\\{train, test, meta\\}"
    ):
        CifarDataModule(tmp_path, name="cifar100").prepare_data()
    write_fake_cifar(tmp_path, "cifar10", per_file=2, test_size=2)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataError, match=f"{tmp_path / 'cifar-10-batches-py'}: missing test_batch"):
        CifarDataModule(tmp_path, cache_dir=tmp_path / "cache").prepare_data()
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"garbage")
    with pytest.raises(DataError, match="test_batch: not a readable CIFAR pickle"):
        CifarDataModule(tmp_path, cache_dir=tmp_path / "cache").prepare_data()
    assert not (tmp_path / "cache" / "cifar10" / "meta.json").exists()
    with pytest.raises(ValueError, match="unknown CIFAR variant"):
        CifarDataModule(tmp_path, name="cifar20")
    with pytest.raises(ValueError, match="augmentation"):
        CifarDataModule(tmp_path, augment="autoaugment")


def _flip_bytes_in_the_middle(path) -> None:
    """Change 64 bytes inside a file, keeping its size (a bit rot or a bad copy, not a truncation)."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(255 - b for b in data[mid : mid + 64])
    path.write_bytes(bytes(data))


def test_cifar_cache_records_digests_and_is_rewritten_when_bytes_change(cifar10, tmp_path, caplog):
    """meta.json holds each .beton's SHA-256 (run-integrity issue); changed image bytes in a cached
    file, which check_beton cannot see, make the cache be written again."""
    import json
    import logging
    import shutil

    shutil.copytree(cifar10.root / "cache", tmp_path / "cache")
    dm = CifarDataModule(cifar10.root, cache_dir=tmp_path / "cache")
    meta = json.loads(dm.meta_path.read_text())
    assert set(meta["files"]) == {"train", "val"} and len(meta["files"]["train"]["sha256"]) == 64
    assert dm.is_written(find_cifar(cifar10.root, "cifar10"))
    _flip_bytes_in_the_middle(dm.train_path)
    with caplog.at_level(logging.WARNING):
        assert not dm.is_written(find_cifar(cifar10.root, "cifar10"))
    assert "SHA-256" in caplog.text
    dm.prepare_data()
    assert dm.is_written(find_cifar(cifar10.root, "cifar10"))
