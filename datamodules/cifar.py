"""CIFAR-10/100 from the standard python-pickle files, written once to ``.beton`` and read by FFCV.

Source: the directories torchvision's ``CIFAR10``/``CIFAR100`` read (nothing is downloaded
here) -- ``cifar-10-batches-py/`` with ``data_batch_1`` .. ``data_batch_5``, ``test_batch``,
``batches.meta``; ``cifar-100-python/`` with ``train``, ``test``, ``meta``.  ``root`` may be the
directory holding that folder (torchvision's ``root``) or the folder itself.  The test set is
the validation split.

The images are written once through the platform's writer (``write_beton``, raw 32x32) to
``cache_dir/<name>/{train,val}.beton`` plus ``meta.json`` (classes, counts, per-channel mean/std
of the training set, a fingerprint of the source files), each file atomically and
``meta.json`` last, so a complete ``meta.json`` means a complete cache; a cache whose
fingerprint or format version differs is written again.

Training augmentation ``augment='cifar'``: He et al. 2015 §4.2 ("4 pixels are padded on each
side, and a 32x32 crop is randomly sampled from the padded image or its horizontal flip"):
ffcv's ``RandomTranslate(padding=4)`` -- pad, crop back at a random offset -- and
``RandomHorizontalFlip`` (their per-sample seeded twins in ``seeded_ffcv.py``).  He et al. pad
the mean-subtracted image with zeros, i.e. with the mean colour, so the padding here is filled
with the training mean (normalised to 0).
Validation: the 32x32 image itself (centre crop of ratio 1).

Imports nothing of ``platform/`` or ``models/``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .beton import (
    ArrayDataset,
    DataError,
    cache_is_current,
    file_digest,
    now_iso,
    write_beton,
    write_json_atomic,
)
from .ffcv import FFCVDataModule, color_ops
from .options import AUGMENTATIONS, DataOptions, data_options
from .seeded import Clock

log = logging.getLogger(__name__)
FORMAT_VERSION = 1  # bump when the conversion below changes, so caches are rewritten
CIFAR_AUGMENTATIONS = ("cifar", *AUGMENTATIONS)

# exactly the files torchvision.datasets.CIFAR10 / CIFAR100 read
CIFAR_LAYOUTS: dict[str, dict[str, Any]] = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "archive": "cifar-10-python.tar.gz",
        "num_classes": 10,
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "label_key": "labels",
        "names_key": "label_names",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "archive": "cifar-100-python.tar.gz",
        "num_classes": 100,
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "label_key": "fine_labels",
        "names_key": "fine_label_names",
    },
}


def _layout(name: str) -> dict[str, Any]:
    if name not in CIFAR_LAYOUTS:
        raise ValueError(f"unknown CIFAR variant {name!r}; expected one of {sorted(CIFAR_LAYOUTS)}")
    return CIFAR_LAYOUTS[name]


def expected_layout(name: str) -> str:
    lay = _layout(name)
    files = ", ".join(lay["train"] + lay["test"] + [lay["meta"]])
    return (
        f"expected the python version of {name.upper()} as torchvision reads it: "
        f"ROOT/{lay['folder']}/{{{files}}} (as extracted from {lay['archive']}; "
        f"ROOT may also be the {lay['folder']} directory itself)"
    )


def find_cifar(root: str | os.PathLike, name: str = "cifar10") -> Path:
    """The directory holding ``name``'s pickle files: ``root/<folder>`` or ``root`` itself.

    Raises ``DataError`` naming the path, the missing files and the expected layout.
    """
    lay = _layout(name)
    root = Path(root).expanduser()
    files = lay["train"] + lay["test"] + [lay["meta"]]
    candidates = [root / lay["folder"], root]
    for d in candidates:
        if all((d / f).is_file() for f in files):
            return d
    if not root.is_dir():
        raise DataError(f"{root}: no such directory; {expected_layout(name)}")
    d = next((c for c in candidates if c.is_dir() and any((c / f).is_file() for f in files)), None)
    if d is None:
        raise DataError(
            f"{root}: no {name.upper()} files found (neither in it nor in {root / lay['folder']}); "
            f"{expected_layout(name)}"
        )
    missing = [f for f in files if not (d / f).is_file()]
    raise DataError(f"{d}: missing {', '.join(missing)}; {expected_layout(name)}")


# What the CIFAR-10/100 python batches reference, and nothing else (issue 13): NumPy's array
# reconstruction (``numpy.core`` before NumPy 2, ``numpy._core`` after; ``_frombuffer`` for pickle
# protocol 5, ``scalar`` for a NumPy number) and ``_codecs.encode``, which Python 3 writes for bytes
# under protocol 2.  dicts, lists, str, bytes and numbers need no global.  Any other global --
# ``os.system``, ``builtins.eval``, a class with a ``__reduce__`` -- is how a pickle runs code.
_CIFAR_GLOBALS = frozenset(
    {
        *(
            (f"numpy.{core}.multiarray", fn)
            for core in ("core", "_core")
            for fn in ("_reconstruct", "scalar")
        ),
        *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


class _CifarUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`_CIFAR_GLOBALS` (the restricted-unpickler
    pattern of the ``pickle`` docs, "Restricting Globals")."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[str, Any]:
    """One CIFAR pickle, as torchvision loads it (``encoding='latin1'``: the files were written
    by Python 2, whose byte strings become ``str``); bytes keys are decoded too, so a file pickled
    by Python 3 with ``b'data'`` keys reads the same.  Only NumPy arrays, dicts, lists, str, bytes
    and numbers are admitted (:class:`_CifarUnpickler`): a crafted file cannot run code."""
    try:
        with open(path, "rb") as f:
            entry = _CifarUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as e:
        if str(e).startswith("it asks for "):
            raise DataError(
                f"{path}: refused to unpickle: {e}, which no CIFAR batch holds (only NumPy "
                "arrays, lists, dicts, bytes, str and numbers are read); this is not a CIFAR "
                "file and may be crafted to run code -- use the files of the official archive"
            ) from None
        raise DataError(f"{path}: not a readable CIFAR pickle (UnpicklingError: {e})") from None
    except Exception as e:  # truncated, not a pickle, ...
        raise DataError(f"{path}: not a readable CIFAR pickle ({type(e).__name__}: {e})") from None
    if not isinstance(entry, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(entry).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in entry.items()}


def load_cifar_split(
    directory: str | os.PathLike, name: str, split: str
) -> tuple[np.ndarray, np.ndarray]:
    """``split`` ('train' or 'test') as ``(N, 32, 32, 3)`` uint8 HWC images and ``(N,)`` int64 labels,
    in file order (torchvision's order)."""
    lay, directory = _layout(name), Path(directory)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images, labels = [], []
    for fname in lay[split]:
        path = directory / fname
        entry = _unpickle(path)
        if "data" not in entry or lay["label_key"] not in entry:
            raise DataError(
                f"{path}: has keys {sorted(entry)}, expected 'data' and {lay['label_key']!r}"
            )
        data = np.asarray(entry["data"])
        y = np.asarray(entry[lay["label_key"]], dtype=np.int64).reshape(-1)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(y):
            raise DataError(
                f"{path}: data is {data.dtype} {data.shape} with {len(y)} labels, expected "
                f"uint8 (N, 3072) rows of 3x32x32 pixels and N labels"
            )
        if len(y) and (y.min() < 0 or y.max() >= lay["num_classes"]):
            raise DataError(f"{path}: labels outside [0, {lay['num_classes']})")
        images.append(data), labels.append(y)
    data = np.concatenate(
        images
    )  # rows are channel-major: R plane, G plane, B plane, each row-major
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), np.concatenate(
        labels
    )


def cifar_classes(directory: str | os.PathLike, name: str) -> list[str]:
    lay = _layout(name)
    path = Path(directory) / lay["meta"]
    meta = _unpickle(path)
    if lay["names_key"] not in meta:
        raise DataError(f"{path}: has keys {sorted(meta)}, expected {lay['names_key']!r}")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[lay["names_key"]]]
    if len(names) != lay["num_classes"]:
        raise DataError(f"{path}: {len(names)} class names, expected {lay['num_classes']}")
    return names


def source_fingerprint(directory: str | os.PathLike, name: str) -> dict[str, str]:
    """Per source file: size and SHA-1 of its first MiB (cheap; tells a different copy apart)."""
    lay, out = _layout(name), {}
    for fname in lay["train"] + lay["test"] + [lay["meta"]]:
        path = Path(directory) / fname
        with open(path, "rb") as f:
            head = hashlib.sha1(f.read(1 << 20)).hexdigest()
        out[fname] = f"{path.stat().st_size}:{head}"
    return out


def channel_mean_std(images: np.ndarray, chunk: int = 2048) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std over all pixels of ``(N, H, W, 3)`` uint8 images,
    in [0, 1] units, accumulated in float64 chunks (CIFAR's 50k images would need 1.2 GB at once)."""
    total, sq, n = np.zeros(3), np.zeros(3), 0
    for i in range(0, len(images), chunk):
        x = images[i : i + chunk].reshape(-1, 3).astype(np.float64) / 255.0
        total += x.sum(0)
        sq += (x * x).sum(0)
        n += len(x)
    mean = total / n
    std = np.sqrt(np.maximum(sq / n - mean**2, 0.0))
    return mean.round(6).tolist(), std.round(6).tolist()


def write_cifar(
    source: str | os.PathLike,
    directory: str | os.PathLike,
    name: str = "cifar10",
    val_split: str = "test",
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Path:
    """Convert ``name`` under ``source`` (see :func:`find_cifar`) to ``directory/{train,val}.beton``
    and ``directory/meta.json``, each atomically, ``meta.json`` last.

    ``val_split='holdout'``: validate on a stratified ``val_fraction`` of the training batches
    (drawn with ``seed``) and train on the rest, the test batch untouched (Huang et al. 2016 hold
    out 5,000 of the 50,000: ``val_fraction=0.1``)."""
    from .digits import stratified_split

    src, directory = find_cifar(source, name), Path(directory)
    classes = cifar_classes(src, name)
    train = load_cifar_split(src, name, "train")
    split = {"train": _layout(name)["train"], "val": _layout(name)["test"]}
    if val_split == "holdout":
        if not 0 < val_fraction < 1:
            raise DataError(
                f"data.val_split=holdout needs 0 < data.val_fraction < 1, got {val_fraction}"
            )
        tr, va = stratified_split(train[1], val_fraction, seed)
        train, val = (train[0][tr], train[1][tr]), (train[0][va], train[1][va])
        split = {
            "val_split": "holdout",
            "val_fraction": val_fraction,
            "seed": seed,
            "stratified": True,
            "train": "train batches minus the holdout",
            "val": "a stratified holdout of the train batches (test batch untouched)",
        }
    elif val_split == "test":
        val = load_cifar_split(src, name, "test")
    else:
        raise DataError(f"data.val_split={val_split!r}; expected test or holdout")
    for part, (images, labels) in (("train", train), ("val", val)):
        write_beton(directory / f"{part}.beton", ArrayDataset(images, labels), write_mode="raw")
    mean, std = channel_mean_std(train[0])
    write_json_atomic(
        directory / "meta.json",
        {
            "dataset": name,
            "format_version": FORMAT_VERSION,
            "source": str(src),
            "source_fingerprint": source_fingerprint(src, name),
            "classes": classes,
            "num_classes": len(classes),
            "resolution": 32,
            "counts": {"train": int(len(train[1])), "val": int(len(val[1]))},
            "class_counts": {
                "train": np.bincount(train[1], minlength=len(classes)).tolist(),
                "val": np.bincount(val[1], minlength=len(classes)).tolist(),
            },
            "split": split,
            "mean": mean,
            "std": std,
            "writer": {"write_mode": "raw"},
            "created": now_iso(),
            "files": {
                s: {"path": f"{s}.beton", **file_digest(directory / f"{s}.beton")}
                for s in ("train", "val")
            },
        },
    )
    return directory


def cifar_train_pipeline(
    resolution: int = 32,
    fill: tuple[int, int, int] = (0, 0, 0),
    clock: Clock | None = None,
    options: DataOptions | None = None,
) -> list:
    """Decode + CPU ops for ``augment='cifar'`` (before ToTensor): the whole image (resized only
    when ``resolution != 32``), a random translation of up to 4 pixels per 32 (pad + random crop)
    filled with ``fill``, and a horizontal flip with probability 1/2."""
    from ffcv.fields.decoders import CenterCropRGBImageDecoder

    from .seeded_ffcv import SeededFlip, SeededTranslate

    o = options or DataOptions()
    clock = clock or Clock(o.seed)
    reflect = o.pad_mode == "reflect"  # data.pad_mode (WRN's release reflects)

    padding = max(1, round(4 * resolution / 32))
    return [
        CenterCropRGBImageDecoder((resolution, resolution), ratio=1.0),
        SeededTranslate(clock, padding=padding, fill=tuple(int(v) for v in fill), reflect=reflect),
        SeededFlip(clock),
        *color_ops(clock, o),
    ]


class CifarDataModule(FFCVDataModule):
    """``data=cifar10`` / ``data=cifar100``: the pickle files under ``root``, cached as ``.beton``.

    ``name``: 'cifar10' or 'cifar100'.  ``augment``: 'cifar' (default, He et al. §4.2) or any of
    ``FFCVDataModule``'s.  Other keyword options go to :class:`FFCVDataModule` (``batch_size`` is
    global; ``val_crop_ratio`` defaults to 1: the validation image is the whole 32x32 image).
    """

    default_resolution, default_val_crop_ratio, default_augment = 32, 1.0, "cifar"
    augmentations = CIFAR_AUGMENTATIONS

    def __init__(
        self,
        root: str | os.PathLike,
        options: DataOptions | None = None,
        *,
        name: str = "cifar10",
        augment: str | None = None,
        **changes: Any,
    ) -> None:
        lay = _layout(name)
        o = data_options(options, **changes)
        self.name, self.source_root = name, Path(root).expanduser()
        if o.val_split not in ("test", "holdout"):
            raise DataError(f"data.val_split={o.val_split!r}; expected test or holdout")
        self.split = {
            "val_split": o.val_split,
            "val_fraction": o.val_fraction,
            "seed": o.split_seed,
        }
        held = f"-holdout-v{o.val_fraction:g}-s{o.split_seed}" if o.val_split == "holdout" else ""
        self.directory = Path(os.path.expanduser(o.cache_dir)) / f"{name}{held}"
        super().__init__(
            self.directory / "train.beton",
            self.directory / "val.beton",
            o,
            augment=augment,
            num_classes=lay["num_classes"],
        )

    # ------------------------------------------------------------------ the cache
    def is_written(self, source: Path | None = None) -> bool:
        """Whether the cache is complete, of this format version, and from these source files."""
        fingerprint = source_fingerprint(source, self.name) if source is not None else None
        return cache_is_current(self.directory, self.name, FORMAT_VERSION, fingerprint)

    def prepare_data(self) -> None:
        source = find_cifar(self.source_root, self.name)  # a clear error when the files are absent
        if not self.is_written(source):
            log.info("writing the %s .beton files to %s (once)", self.name, self.directory)
            write_cifar(source, self.directory, self.name, **self.split)

    @property
    def classes(self) -> list[str]:
        return list(self._meta().get("classes") or [])

    # ------------------------------------------------------------------ the 'cifar' augmentation
    def train_image_ops(self) -> list:
        """The training decode + augmentation ops (``FFCVDataModule``'s hook, called by its ``_loader``)."""
        if self.augment != "cifar":
            return super().train_image_ops()
        mean = self.mean or self._meta().get("mean") or (0.0, 0.0, 0.0)
        return cifar_train_pipeline(
            self.resolution, tuple(round(255 * m) for m in mean), self.clock, self.options
        )
