"""The ``.beton`` library: atomic files, writing and checking FFCV ``.beton`` files, the errors.

Writes are atomic: the file is written under a temporary name next to the target and
renamed into place only once complete, so an interrupted write (Ctrl-C, SIGTERM, an
exception) leaves the previous file -- or nothing -- and never a partial ``.beton``.

FFCV's ``DatasetWriter._write_common`` is overridden (ffcv 1.0.2, :func:`ffcv_writer`) for three
reasons: a progress bar with images/s and ETA instead of its bare tqdm; a worker that dies or
fails is noticed (FFCV would spin forever waiting for its count, and the other workers would spin
waiting for its page); and on Ctrl-C/SIGTERM/error the workers are terminated and joined and the
shared memory unlinked *before* ``atomic_path`` removes the temporary file (a live worker
appending to it would recreate it).

Imports nothing of ours but :mod:`datamodules.imagefolder_source` (lazily, for its error type);
``python -m datamodules.write`` (the command line) and every datamodule build on it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A dataset that cannot be found or read; the message says which file and what to do."""


class SampleError(DataError):
    """One sample that failed to decode or transform at training time, named by file and index.

    Raised in a DataLoader worker, torch re-raises it in the main process as
    ``SampleError("Caught SampleError in DataLoader worker ...\n<traceback>")``; the message is cut
    back to its last line, our own, so the user sees one line naming the file."""

    def __init__(self, message: str) -> None:
        if message.startswith("Caught ") and "\n" in message:
            message = message.rstrip().splitlines()[-1].split(": ", 1)[-1]
        super().__init__(message)


class BetonError(ValueError):
    """A ``.beton`` file that is missing, truncated or not a ``.beton`` at all."""


class WriteError(RuntimeError):
    """A write that had to stop: a bad image under ``--on-error fail``, a failed worker (exit code 1)."""


# --------------------------------------------------------------------------- atomic files
DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGUSR1 for the duration (main thread only): each one that arrives is
    recorded and re-delivered to the handler that was in place, once the block is over.  A record
    write is never cut in half, and a stop signal keeps its meaning (a SIGTERM stays a SIGTERM:
    the run's handler still saves a checkpoint and exits 143)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {
        s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in DEFERRED_SIGNALS
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, interruptible: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Stop signals are deferred for the duration (:func:`deferred_signals`): a record write is short
    and completes, then the signal reaches its handler.  ``interruptible=True`` is for long writes
    (a ``.beton``): SIGTERM then raises KeyboardInterrupt at once, so a killed writer terminates its
    workers and removes the temporary file like a Ctrl-C does.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    previous = None
    guard = contextlib.nullcontext() if interruptible else deferred_signals()
    if interruptible and threading.current_thread() is threading.main_thread():

        def _on_sigterm(signum, frame):
            raise KeyboardInterrupt(f"SIGTERM while writing {path}")

        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with guard:
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
class ArrayDataset:
    """In-memory ``(N, H, W, 3)`` uint8 images and ``(N,)`` labels as the writer's indexed dataset."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.images[i], int(self.labels[i])


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

    if len(dataset) == 0:
        raise ValueError(f"refusing to write {path}: the dataset is empty")
    fields = {
        "image": RGBImageField(
            write_mode=write_mode,
            max_resolution=max_resolution,
            jpeg_quality=jpeg_quality,
            compress_probability=compress_probability,
        ),
        "label": IntField(),
    }
    path = Path(path)
    images = getattr(dataset, "images", None)
    largest = (
        int(np.prod(images.shape[1:])) if isinstance(images, np.ndarray) and images.ndim == 4 else 0
    )
    with atomic_path(path, interruptible=True) as tmp:
        # our writer, not FFCV's: a worker that dies (ENOSPC, SIGBUS on a full tmpfs) is an error, not a hang
        writer = ffcv_writer(str(tmp), fields, num_workers, _page_size(largest), None)
        try:
            writer.from_indexed_dataset(dataset, chunksize=chunk_size)
        except (WriteError, OSError) as e:
            raise WriteError(f"writing {path} failed: {e}{_space_hint(path)}") from None
    check_beton(path)
    return path


def _space_hint(path: Path) -> str:
    """``; N bytes free on DIR (disk full?)`` when the file system of ``path`` is (nearly) full."""
    try:
        st = os.statvfs(Path(path).parent)
    except OSError:
        return ""
    free = st.f_bavail * st.f_frsize
    return f"; {free} bytes free on {Path(path).parent} (disk full?)" if free < 64 << 20 else ""


# --------------------------------------------------------------------------- content digests
def file_digest(path: str | os.PathLike) -> dict[str, Any]:
    """``{"bytes", "sha256"}`` of a file, as ``meta.json`` records each ``.beton``."""
    import hashlib

    with open(path, "rb") as fh:
        return {
            "bytes": os.fstat(fh.fileno()).st_size,
            "sha256": hashlib.file_digest(fh, "sha256").hexdigest(),
        }


def cache_is_current(
    directory: str | os.PathLike, dataset: str, format_version: int, fingerprint: str | None = None
) -> bool:
    """Whether an embedded dataset's cache (``train.beton``, ``val.beton``, ``meta.json``) is complete,
    of this dataset and format version, from the source files with ``fingerprint`` (when given), and
    byte-for-byte what ``meta.json``'s SHA-256 digests say; a reason to rewrite it is logged."""
    directory = Path(directory)
    meta_path, betons = (
        directory / "meta.json",
        [directory / f"{s}.beton" for s in ("train", "val")],
    )
    try:
        meta = json.loads(meta_path.read_text())
        for path in betons:
            check_beton(path)
    except (OSError, ValueError, BetonError) as e:
        if meta_path.exists() or betons[0].exists():
            log.warning("%s cache in %s is unusable (%s); writing it again", dataset, directory, e)
        return False
    if meta.get("format_version") != format_version or meta.get("dataset") != dataset:
        return False
    if fingerprint is not None and meta.get("source_fingerprint") != fingerprint:
        log.warning(
            "%s cache in %s was written from other source files; writing it again",
            dataset,
            directory,
        )
        return False
    problems = verify_files(directory, meta)  # SHA-256 of both files: bytes changed on disk
    if problems:
        log.warning(
            "%s cache in %s does not match its meta.json (%s); writing it again",
            dataset,
            directory,
            "; ".join(problems),
        )
        return False
    return True


def verify_files(directory: str | os.PathLike, meta: dict[str, Any] | None = None) -> list[str]:
    """Problems (one line each) of the ``.beton`` files of ``directory`` against its ``meta.json``:
    missing files, sizes or SHA-256 digests that differ, files the meta has no digest for."""
    directory = Path(directory)
    if meta is None:
        try:
            meta = json.loads((directory / "meta.json").read_text())
        except (OSError, ValueError) as e:
            return [f"{directory / 'meta.json'}: unreadable ({e})"]
    files = meta.get("files") if isinstance(meta, dict) else None
    if not isinstance(files, dict) or not files:
        return [
            f"{directory / 'meta.json'}: records no files (written before digests were recorded)"
        ]
    problems = []
    for split, want in files.items():
        path = directory / str(want.get("path", f"{split}.beton"))
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        if "sha256" not in want:
            problems.append(f"{path}: meta.json records no digest for it")
            continue
        got = file_digest(path)
        if got["bytes"] != want.get("bytes"):
            problems.append(f"{path}: {got['bytes']} bytes, meta.json says {want.get('bytes')}")
        elif got["sha256"] != want["sha256"]:
            problems.append(
                f"{path}: content differs from meta.json's SHA-256 (bytes changed on disk)"
            )
    return problems


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
        raise BetonError(
            f"{path}: not a .beton file of format version {CURRENT_VERSION} "
            f"(read version {int(header['version'])}); {fix}"
        )
    n, table_at = int(header["num_samples"]), int(header["alloc_table_ptr"])
    if (
        n == 0
        or not HeaderType.itemsize <= table_at <= size
        or (size - table_at) % ALLOC_TABLE_TYPE.itemsize
    ):
        raise BetonError(
            f"{path}: truncated or corrupt .beton (header says {n} samples, allocation table "
            f"at byte {table_at}, file has {size} bytes); {fix}"
        )
    from ffcv.reader import Reader

    try:
        reader = Reader(str(path))
    except Exception as e:  # ffcv raises AssertionError/ValueError with terse messages
        raise BetonError(f"{path}: unreadable .beton ({type(e).__name__}: {e}); {fix}") from None
    table = reader.alloc_table
    if len(table) and int((table["ptr"] + table["size"]).max()) > table_at:
        raise BetonError(
            f"{path}: truncated or corrupt .beton (data runs past its allocation table); {fix}"
        )
    missing = [f for f in fields if f not in reader.field_names]
    if missing:
        raise BetonError(f"{path}: has fields {reader.field_names}, expected {list(fields)}")
    return n


def beton_labels(path: str | os.PathLike) -> np.ndarray:
    """The integer labels of a checked ``.beton`` (read from its metadata, no decoding)."""
    from ffcv.reader import Reader

    reader = Reader(str(path))
    return np.asarray(reader.metadata[f"f{reader.field_names.index('label')}"], dtype=np.int64)


def check_labels(path: str | os.PathLike, num_classes: int) -> None:
    """Every label of a checked ``.beton`` in ``[0, num_classes)``; else a :class:`DataError`
    naming the file, the first bad sample and its label (a label out of range would otherwise
    index past the classifier's outputs: a device assert or a traceback deep in the loss)."""
    labels = beton_labels(path)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"{path}: sample {i} has label {int(labels[i])}, outside [0, {num_classes}) "
            f"({len(bad)} sample{'s' if len(bad) > 1 else ''} out of range; {num_classes} classes "
            "from meta.json, data.num_classes or the training labels); write the dataset again"
        )


# meta.json keys a datamodule reads, and what each must be
_META_KEYS: dict[str, tuple[str, Any]] = {
    "num_classes": (
        "a whole number >= 2",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2,
    ),
    "classes": (
        "a list of strings",
        lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v),
    ),
    "mean": ("a list of 3 numbers", lambda v: _numbers(v, 3)),
    "std": ("a list of 3 positive numbers", lambda v: _numbers(v, 3) and min(v) > 0),
}


def _numbers(value: Any, n: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == n
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
    )


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """A dataset's ``meta.json`` (``{}`` if there is none), checked: UTF-8 JSON, an object, and
    the keys a datamodule reads of the right type; else a :class:`DataError` naming the file and key."""
    path = Path(path)
    if not path.is_file():
        return {}
    fix = "fix or delete it (it is optional), or write the dataset again"
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 (byte {e.start}); {fix}") from None
    except ValueError as e:
        raise DataError(f"{path}: not valid JSON ({e}); {fix}") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: a JSON {type(meta).__name__}, expected an object; {fix}")
    for key, (want, ok) in _META_KEYS.items():
        if meta.get(key) is not None and not ok(meta[key]):
            shown = repr(meta[key])
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise DataError(f"{path}: {key} is {shown}, expected {want}; {fix}")
    return meta


def decoding_threads(requested: int) -> int:
    """FFCV's decoding threads for ``data.num_workers``: at most what numba allows here
    (``NUMBA_NUM_THREADS``, the cores it saw), else numba's ValueError deep in the loader.
    Clamped with a warning, not refused at config load: the number is a speed knob that does not
    change results, and a config is often written on one machine (a laptop, a Slurm login node)
    for another with more cores -- the same value must run on both."""
    import numba

    limit = int(numba.config.NUMBA_NUM_THREADS)
    if requested > limit:
        _warn_once(
            f"data.num_workers={requested} is more than the {limit} threads numba allows on "
            f"this machine (NUMBA_NUM_THREADS); decoding with {limit}"
        )
        return limit
    return requested


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    log.warning(message)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# --------------------------------------------------------------------------- the FFCV writer
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_signals_blocked_for_fork() -> Iterator[None]:
    """Hold stop signals while worker processes are forked (main thread only): they are deferred
    (:func:`deferred_signals`) and blocked in this thread, and reach their handler once the block
    is over, in our own code.  A stop signal landing during ``os.fork`` otherwise ran its handler
    (``raise KeyboardInterrupt``) inside an at-fork callback (logging's ``_releaseLock``), where
    CPython prints it as "Exception ignored" and drops it: the writer finished and exited 0 on
    SIGTERM/SIGINT.  Blocking alone is not enough: another thread (a queue's feeder) takes the
    signal and the main thread runs the handler wherever it is.  The child starts with them
    blocked, so it cannot take a Ctrl-C meant for the parent before :func:`_worker_signals`
    (which unblocks them)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with deferred_signals():
        old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _worker_signals() -> None:
    """In a worker process: Ctrl-C goes to the parent, which terminates us; SIGTERM kills; and
    (Linux) we are killed if the parent dies without cleaning up (SIGKILL, OOM killer).  The
    stop signals, blocked for the fork (:func:`stop_signals_blocked_for_fork`), are unblocked
    once they mean that."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


class _ReportingDataset:
    """Wraps the worker-side dataset: a failure is sent to the parent (one line) before exiting."""

    def __init__(self, dataset: Any, errors: Any) -> None:
        self.dataset, self.errors = dataset, errors

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        try:
            return self.dataset[i]
        except Exception as e:
            from .imagefolder_source import ImageError

            what = (
                f"{e.path}: {e.reason} (it decoded in the check pass: did the file change?)"
                if isinstance(e, ImageError)
                else f"sample {i}: {type(e).__name__}: {e}"
            )
            self.errors.put(what)
            os._exit(3)  # the parent terminates the others and removes the partial file


def _ffcv_worker(work_fn: Any, errors: Any, seed: int, *args: Any) -> None:
    _worker_signals()
    np.random.seed(seed)  # 'proportion' draws np.random.rand() per image: decorrelate the workers
    try:
        work_fn(*args)
    except BaseException as e:  # noqa: BLE001 -- reported to the parent in one line, no traceback
        errors.put(f"writer process failed: {type(e).__name__}: {e}")
        os._exit(3)


def _check_workers(errors: Any, processes: list) -> None:
    """Raise :class:`WriteError` with the first error a writer process reported, or when one died."""
    if not errors.empty():
        raise WriteError(errors.get())
    dead = [p for p in processes if p.exitcode not in (None, 0)]
    if dead:
        time.sleep(0.2)
        raise WriteError(
            errors.get()
            if not errors.empty()
            else f"a writer process died (exit code {dead[0].exitcode})"
        )


def _wait_for_samples(
    done: Any, num_samples: int, progress: Any, errors: Any, processes: list
) -> None:
    """Poll the shared sample count until every sample is written, advancing ``progress``."""
    previous = 0
    while previous < num_samples:
        value = int(done.value)
        if progress is not None:
            progress.advance(value - previous)
        previous = value
        if previous < num_samples:
            _check_workers(errors, processes)
            time.sleep(0.05)


def _collect_allocations(allocations_queue: Any, errors: Any, processes: list) -> list:
    """Each writer process's allocation list (FFCV's ``_write_common``), noticing dead workers."""
    import queue as queue_mod

    allocation_list: list = []
    for _ in processes:
        while True:
            try:
                allocation_list.extend(allocations_queue.get(timeout=0.5))
                break
            except queue_mod.Empty:
                _check_workers(errors, processes)
    return allocation_list


def _stop_workers(processes: list, queues: list, finished: bool, sm: Any) -> None:
    """Terminate and join the writer processes and unlink the metadata shared memory; when the write
    did not finish, the work queue may hold chunks nobody will read: do not wait to flush them."""
    if not finished:
        for q in queues:
            q.cancel_join_thread()
            q.close()
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
            p.join()
    if sm is not None and not isinstance(sm, int):
        sm.close()
        with contextlib.suppress(FileNotFoundError):
            sm.unlink()


def ffcv_writer(
    fname: str, fields: dict, num_workers: int, page_size: int, progress: Any, seed: int = 0
) -> Any:
    """An ffcv ``DatasetWriter`` whose ``_write_common`` reports progress, notices failed workers
    and always cleans up its processes and shared memory (see the module docstring).  It follows
    ffcv 1.0.2's ``ffcv/writer.py`` ``DatasetWriter._write_common``."""
    import ctypes
    import multiprocessing as mp

    from ffcv.memory_allocator import MemoryAllocator
    from ffcv.writer import DatasetWriter

    class _Writer(DatasetWriter):
        def _start_workers(
            self,
            ctx: Any,
            queue_content: Any,
            work_fn: Any,
            extra_worker_args: Any,
            queues: list,
            processes: list,
        ) -> tuple:
            workqueue, allocations_queue, errors = ctx.Queue(), ctx.Queue(), ctx.SimpleQueue()
            queues += [workqueue, allocations_queue]
            for todo in queue_content:
                workqueue.put(todo)
            for _ in range(self.num_workers):
                workqueue.put(None)
            done = ctx.Value(ctypes.c_uint64, 0)
            allocator = MemoryAllocator(self.fname, self.data_region_start, self.page_size)
            dataset = _ReportingDataset(extra_worker_args[0], errors)
            args = (
                workqueue,
                self.metadata_sm,
                self.metadata_type,
                self.fields,
                allocator,
                done,
                allocations_queue,
                dataset,
                *extra_worker_args[1:],
            )
            processes += [
                ctx.Process(
                    target=_ffcv_worker, args=(work_fn, errors, seed + k, *args), daemon=True
                )
                for k in range(self.num_workers)
            ]
            with stop_signals_blocked_for_fork():
                for p in processes:
                    p.start()
            return done, allocations_queue, errors

        def _write_common(self, num_samples, queue_content, work_fn, extra_worker_args):
            ctx = mp.get_context("fork")
            self.num_samples = num_samples
            processes: list = []
            queues: list = []
            self.metadata_sm = None
            finished = False
            try:
                self.prepare()
                done, allocations_queue, errors = self._start_workers(
                    ctx, queue_content, work_fn, extra_worker_args, queues, processes
                )
                _wait_for_samples(done, num_samples, progress, errors, processes)
                allocation_list = _collect_allocations(allocations_queue, errors, processes)
                for p in processes:
                    p.join()
                self.finalize(allocation_list)
                finished = True
            finally:
                _stop_workers(processes, queues, finished, self.metadata_sm)

    return _Writer(fname, fields, page_size=page_size, num_workers=num_workers)


def _page_size(max_sample_bytes: int) -> int:
    """FFCV's default page (8 MiB), or the next power of two that holds twice the largest sample."""
    page = 1 << 23
    while page < 2 * max_sample_bytes + 4096:
        page <<= 1
    if page >= 1 << 32:
        raise WriteError(
            f"an image of {max_sample_bytes} bytes is too large for a .beton page; "
            "use --max-resolution"
        )
    return page
