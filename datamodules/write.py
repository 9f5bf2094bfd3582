"""Writing and checking FFCV ``.beton`` files.

Writes are atomic: the file is written under a temporary name next to the target and
renamed into place only once complete, so an interrupted write (Ctrl-C, SIGTERM, an
exception) leaves the previous file -- or nothing -- and never a partial ``.beton``.
The ImageFolder/ImageNet command line (``python -m datamodules.write``) builds on this.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np


class BetonError(ValueError):
    """A ``.beton`` file that is missing, truncated or not a ``.beton`` at all."""


# --------------------------------------------------------------------------- atomic files
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    SIGTERM is turned into an exception for the duration (main thread only), so a killed
    job cleans up like a Ctrl-C does.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    previous = None
    if threading.current_thread() is threading.main_thread():
        def _on_sigterm(signum, frame):
            raise KeyboardInterrupt(f"SIGTERM while writing {path}")
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


# --------------------------------------------------------------------------- writing
def write_beton(
    path: str | os.PathLike,
    dataset: Any,
    *,
    write_mode: str = "raw",
    max_resolution: int | None = None,
    jpeg_quality: int = 90,
    compress_probability: float = 0.5,
    num_workers: int = 1,
    chunk_size: int = 100,
) -> Path:
    """Write an indexed ``(image HxWx3 uint8 | PIL image, int label)`` dataset to ``path``.

    Parameters follow ffcv-imagenet's writer (``write_mode`` raw|jpg|smart|proportion,
    ``max_resolution``, ``jpeg_quality``, ``compress_probability``).
    """
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    if len(dataset) == 0:
        raise ValueError(f"refusing to write {path}: the dataset is empty")
    fields = {
        "image": RGBImageField(write_mode=write_mode, max_resolution=max_resolution,
                               jpeg_quality=jpeg_quality, compress_probability=compress_probability),
        "label": IntField(),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        DatasetWriter(str(tmp), fields, num_workers=num_workers).from_indexed_dataset(dataset, chunksize=chunk_size)
    check_beton(path)
    return path


# --------------------------------------------------------------------------- checking
def check_beton(path: str | os.PathLike, fields: Sequence[str] = ("image", "label")) -> int:
    """Validate a ``.beton`` cheaply (header, field names, allocation table); return its length.

    FFCV itself would fail on a bad file deep inside numba or with a bare AssertionError;
    this names the file and says what is wrong and what to do.
    """
    from ffcv.types import ALLOC_TABLE_TYPE, CURRENT_VERSION, HeaderType

    path = Path(path)
    fix = "delete it and write it again"
    if not path.is_file():
        raise BetonError(f"{path}: no such .beton file")
    size = path.stat().st_size
    if size < HeaderType.itemsize:
        raise BetonError(f"{path}: {size} bytes is too small to be a .beton file; {fix}")
    header = np.fromfile(path, dtype=HeaderType, count=1)[0]
    if int(header["version"]) != CURRENT_VERSION:
        raise BetonError(f"{path}: not a .beton file of format version {CURRENT_VERSION} "
                         f"(read version {int(header['version'])}); {fix}")
    n, table_at = int(header["num_samples"]), int(header["alloc_table_ptr"])
    if n == 0 or not HeaderType.itemsize <= table_at <= size or (size - table_at) % ALLOC_TABLE_TYPE.itemsize:
        raise BetonError(f"{path}: truncated or corrupt .beton (header says {n} samples, allocation table "
                         f"at byte {table_at}, file has {size} bytes); {fix}")
    from ffcv.reader import Reader
    try:
        reader = Reader(str(path))
    except Exception as e:  # ffcv raises AssertionError/ValueError with terse messages
        raise BetonError(f"{path}: unreadable .beton ({type(e).__name__}: {e}); {fix}") from None
    table = reader.alloc_table
    if len(table) and int((table["ptr"] + table["size"]).max()) > table_at:
        raise BetonError(f"{path}: truncated or corrupt .beton (data runs past its allocation table); {fix}")
    missing = [f for f in fields if f not in reader.field_names]
    if missing:
        raise BetonError(f"{path}: has fields {reader.field_names}, expected {list(fields)}")
    return n


def beton_labels(path: str | os.PathLike) -> np.ndarray:
    """The integer labels of a checked ``.beton`` (read from its metadata, no decoding)."""
    from ffcv.reader import Reader

    reader = Reader(str(path))
    return np.asarray(reader.metadata[f"f{reader.field_names.index('label')}"], dtype=np.int64)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
