"""Writing and checking FFCV ``.beton`` files.

Writes are atomic: the file is written under a temporary name next to the target and
renamed into place only once complete, so an interrupted write (Ctrl-C, SIGTERM, an
exception) leaves the previous file -- or nothing -- and never a partial ``.beton``.

The command line builds on this (``python -m datamodules.write --help``)::

    python -m datamodules.write SRC OUT [options]          # SRC/{train,val}/<class>/* -> OUT/*.beton
    python -m datamodules.write --dataset digits OUT       # the embedded default dataset

:func:`write_imagefolder` is the same as a function; ``datamodules/imagefolder_source.py``
scans the tree (exactly as torchvision's ImageFolder) and decodes the files.
"""
from __future__ import annotations

import contextlib
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
        "image": RGBImageField(write_mode=write_mode, max_resolution=max_resolution,
                               jpeg_quality=jpeg_quality, compress_probability=compress_probability),
        "label": IntField(),
    }
    path = Path(path)
    images = getattr(dataset, "images", None)
    largest = int(np.prod(images.shape[1:])) if isinstance(images, np.ndarray) and images.ndim == 4 else 0
    with atomic_path(path) as tmp:
        # our writer, not FFCV's: a worker that dies (ENOSPC, SIGBUS on a full tmpfs) is an error, not a hang
        writer = _ffcv_writer(str(tmp), fields, num_workers, _page_size(largest), None)
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
        return {"bytes": os.fstat(fh.fileno()).st_size, "sha256": hashlib.file_digest(fh, "sha256").hexdigest()}


def cache_is_current(directory: str | os.PathLike, dataset: str, format_version: int,
                     fingerprint: str | None = None) -> bool:
    """Whether an embedded dataset's cache (``train.beton``, ``val.beton``, ``meta.json``) is complete,
    of this dataset and format version, from the source files with ``fingerprint`` (when given), and
    byte-for-byte what ``meta.json``'s SHA-256 digests say; a reason to rewrite it is logged."""
    directory = Path(directory)
    meta_path, betons = directory / "meta.json", [directory / f"{s}.beton" for s in ("train", "val")]
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
        log.warning("%s cache in %s was written from other source files; writing it again", dataset, directory)
        return False
    problems = verify_files(directory, meta)  # SHA-256 of both files: bytes changed on disk
    if problems:
        log.warning("%s cache in %s does not match its meta.json (%s); writing it again", dataset, directory,
                    "; ".join(problems))
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
        return [f"{directory / 'meta.json'}: records no files (written before digests were recorded)"]
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
            problems.append(f"{path}: content differs from meta.json's SHA-256 (bytes changed on disk)")
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


# =========================================================================== ImageFolder -> .beton
# ``python -m datamodules.write SRC OUT [options]``: an ImageNet-layout tree to
# OUT/train.beton, OUT/val.beton and OUT/meta.json.  See ``_DESCRIPTION`` for the user-facing
# account; the implementation notes are here.
#
# * Two passes.  A *check* pass decodes every file fully (``Image.load()``), applies the EXIF
#   orientation and converts to RGB, in ``--num-workers`` processes, under its own progress bar.
#   It makes ``--on-error skip`` exact (FFCV's writer needs the sample count up front and has no
#   way to drop a sample) and lets ``--on-error fail`` stop before anything is written.  The
#   price is one extra decode per image: on 2,000 ImageNet-sized JPEGs (333x500 to 600x800,
#   quality 90, ffcv-imagenet's defaults) the check pass took ~40% of the time (5.5 s check,
#   7.9 s write, one worker); the report prints both.  The *write* pass hands FFCV only the
#   files that decoded, as RGB ``uint8`` arrays (decoded again, the same way).
# * FFCV's ``DatasetWriter._write_common`` is overridden (ffcv 1.0.2) for three reasons: a
#   progress bar with images/s and ETA instead of its bare tqdm; a worker that dies or fails is
#   noticed (FFCV would spin forever waiting for its count, and the other workers would spin
#   waiting for its page); and on Ctrl-C/SIGTERM/error the workers are terminated and joined and
#   the shared memory unlinked *before* ``atomic_path`` removes the temporary file (a live worker
#   appending to it would recreate it).
# * Both ``.beton`` files are written under temporary names and renamed only when both are
#   complete, then ``meta.json`` is written last: an interrupted or failed run leaves OUT as it
#   was (an older ``meta.json`` is removed just before the renames, so it never describes new
#   files it was not written for).

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # as datamodules.ffcv (not imported: it imports lightning)
IMAGENET_STD = (0.229, 0.224, 0.225)
WRITE_MODES = ("raw", "jpg", "smart", "proportion")
META_FORMAT_VERSION = 1
# Smallest side (after --max-resolution) an image may keep.  FFCV's centre-crop decoder crops a
# square of side int(ratio * min(h, w)) (ffcv/fields/rgb_image.py, get_center_crop) and hands it
# to cv::resize, which asserts a non-empty source (``!ssize.empty()``): the C++ exception
# escapes numba and aborts the process (SIGABRT, exit 134).  At ImageNet's ratio 224/256 a 1-px
# side already does (int(0.875) = 0; measured: 1x1, 1x7 and 1x40 abort, 2x2 and 3x3 decode).
# 8 px keeps the crop non-empty for every ratio >= 1/8, the smallest data.val_crop_ratio the
# platform's config allows; smaller images carry nothing a CNN at 224 px could use anyway.
MIN_SIDE = 8
DEFAULTS: dict[str, Any] = {
    # ffcv-imagenet's recommended ImageNet files (``write_imagenet.sh 500 0.50 90``):
    # longest side <= 500 px, half the images JPEG-compressed at quality 90, half raw.
    "write_mode": "proportion", "max_resolution": 500, "compress_probability": 0.5, "jpeg_quality": 90,
    "smart_threshold": 600 * 600 * 3, "chunk_size": 100, "limit_per_class": None, "splits": "train,val",
    "on_error": "skip", "stats": "imagenet", "stats_images": 10_000, "name": None, "num_workers": None,
}


class UsageError(ValueError):
    """A bad command line, source layout or output directory (exit code 2)."""


class WriteError(RuntimeError):
    """A write that had to stop: a bad image under ``--on-error fail``, a failed worker (exit code 1)."""


def _default_workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(16, n))


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _fmt_s(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# --------------------------------------------------------------------------- progress
class _Progress:
    """A rich progress bar (description, bar, n/total, images/s, elapsed, ETA) on a terminal;
    on a pipe or a log file (SLURM) a plain line every ``every`` seconds and a final one."""

    def __init__(self, console: Any, description: str, total: int, every: float = 30.0) -> None:
        self.console, self.description, self.total, self.every = console, description, total, every
        self.done, self._bar, self._task = 0, None, None
        self._t0 = self._last = time.monotonic()

    def __enter__(self) -> "_Progress":
        if self.console is not None and self.console.is_terminal:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)
            from rich.text import Text

            class Rate(ProgressColumn):
                def render(self, task):
                    return Text(f"{task.speed:,.0f} images/s" if task.speed else "- images/s", style="cyan")

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=self.console, transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        return self

    def advance(self, n: int) -> None:
        if n <= 0:
            return
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)
        elif self.console is not None and time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            self._line()

    def _line(self) -> None:
        elapsed = time.monotonic() - self._t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        self.console.print(f"{self.description}: {self.done}/{self.total} images, {rate:,.0f} images/s, "
                           f"elapsed {_fmt_s(elapsed)}, ETA {_fmt_s(eta)}", highlight=False, soft_wrap=True)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self.console is not None and exc[0] is None:
            self._line()


# --------------------------------------------------------------------------- check pass
def _worker_signals() -> None:
    """In a worker process: Ctrl-C goes to the parent, which terminates us; SIGTERM kills; and
    (Linux) we are killed if the parent dies without cleaning up (SIGKILL, OOM killer)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def _check_one(job: tuple[str, bool]) -> tuple:
    from .imagefolder_source import check_image

    info, reason, stats = check_image(job[0], job[1])
    if info is None:
        return 0, 0, (), (), reason, None
    return info.height, info.width, tuple(info.notes), tuple(info.warnings), None, stats


def _imap(fn: Any, jobs: list, workers: int) -> Iterator:
    if workers <= 1 or len(jobs) < 2:
        yield from map(fn, jobs)
        return
    import multiprocessing as mp

    chunksize = max(1, min(64, len(jobs) // (workers * 8)))
    with mp.get_context("fork").Pool(min(workers, len(jobs)), initializer=_worker_signals) as pool:
        yield from pool.imap(fn, jobs, chunksize=chunksize)


# --------------------------------------------------------------------------- FFCV write pass
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

            what = (f"{e.path}: {e.reason} (it decoded in the check pass: did the file change?)"
                    if isinstance(e, ImageError) else f"sample {i}: {type(e).__name__}: {e}")
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


def _ffcv_writer(fname: str, fields: dict, num_workers: int, page_size: int, progress: _Progress | None,
                 seed: int = 0) -> Any:
    """An ffcv ``DatasetWriter`` whose ``_write_common`` reports progress, notices failed workers
    and always cleans up its processes and shared memory (see the notes above)."""
    import ctypes
    import multiprocessing as mp
    import queue as queue_mod

    from ffcv.writer import DatasetWriter

    class _Writer(DatasetWriter):
        def _write_common(self, num_samples, queue_content, work_fn, extra_worker_args):
            ctx = mp.get_context("fork")
            self.num_samples = num_samples
            processes: list = []
            queues: list = []
            self.metadata_sm = None
            finished = False
            try:
                self.prepare()
                workqueue, allocations_queue, errors = ctx.Queue(), ctx.Queue(), ctx.SimpleQueue()
                queues += [workqueue, allocations_queue]
                for todo in queue_content:
                    workqueue.put(todo)
                for _ in range(self.num_workers):
                    workqueue.put(None)
                from ffcv.memory_allocator import MemoryAllocator

                done = ctx.Value(ctypes.c_uint64, 0)
                allocator = MemoryAllocator(self.fname, self.data_region_start, self.page_size)
                dataset = _ReportingDataset(extra_worker_args[0], errors)
                args = (workqueue, self.metadata_sm, self.metadata_type, self.fields, allocator, done,
                        allocations_queue, dataset, *extra_worker_args[1:])
                processes = [ctx.Process(target=_ffcv_worker, args=(work_fn, errors, seed + k, *args), daemon=True)
                             for k in range(self.num_workers)]
                for p in processes:
                    p.start()

                def check_workers() -> None:
                    if not errors.empty():
                        raise WriteError(errors.get())
                    dead = [p for p in processes if p.exitcode not in (None, 0)]
                    if dead:
                        time.sleep(0.2)
                        raise WriteError(errors.get() if not errors.empty()
                                         else f"a writer process died (exit code {dead[0].exitcode})")

                previous = 0
                while previous < num_samples:
                    value = int(done.value)
                    if progress is not None:
                        progress.advance(value - previous)
                    previous = value
                    if previous < num_samples:
                        check_workers()
                        time.sleep(0.05)
                allocation_list: list = []
                for _ in processes:
                    while True:
                        try:
                            allocation_list.extend(allocations_queue.get(timeout=0.5))
                            break
                        except queue_mod.Empty:
                            check_workers()
                for p in processes:
                    p.join()
                self.finalize(allocation_list)
                finished = True
            finally:
                if not finished:  # the work queue may hold chunks nobody will read: do not wait to flush them
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
                sm = self.metadata_sm
                if sm is not None and not isinstance(sm, int):
                    sm.close()
                    with contextlib.suppress(FileNotFoundError):
                        sm.unlink()

    return _Writer(fname, fields, page_size=page_size, num_workers=num_workers)


def _page_size(max_sample_bytes: int) -> int:
    """FFCV's default page (8 MiB), or the next power of two that holds twice the largest sample."""
    page = 1 << 23
    while page < 2 * max_sample_bytes + 4096:
        page <<= 1
    if page >= 1 << 32:
        raise WriteError(f"an image of {max_sample_bytes} bytes is too large for a .beton page; "
                         "use --max-resolution")
    return page


def _stored_side(h: int, w: int, max_resolution: int | None) -> int:
    """Short side of an image after FFCV's ``resizer`` (longest side <= max_resolution, truncated)."""
    if max_resolution and max(h, w) > max_resolution:
        ratio = max_resolution / max(h, w)
        return int(min(int(ratio * h), int(ratio * w)))
    return min(h, w)


def _stored_bytes(h: np.ndarray, w: np.ndarray, max_resolution: int | None) -> int:
    """Largest raw size of the images after FFCV's ``resizer`` (longest side <= max_resolution)."""
    if not len(h):
        return 0
    h, w = h.astype(np.float64), w.astype(np.float64)
    if max_resolution:
        ratio = np.minimum(1.0, max_resolution / np.maximum(h, w))
        h, w = np.where(ratio < 1, np.floor(h * ratio), h), np.where(ratio < 1, np.floor(w * ratio), w)
    return int((h * w).max() * 3)


# --------------------------------------------------------------------------- the whole write
def write_imagefolder(src: str | os.PathLike, out: str | os.PathLike, *, console: Any = None,
                      **options: Any) -> dict[str, Any]:
    """Write ``SRC/{train,val}/<class>/*`` to ``OUT/{train,val}.beton`` and ``OUT/meta.json``.

    ``options`` are those of :data:`DEFAULTS` (the command-line options).  Returns the meta
    dict, with the non-JSON key ``"_report"`` holding the lines of the final report.  Raises
    :class:`UsageError` (layout, output directory), :class:`WriteError` (a bad image under
    ``on_error='fail'``, a failed worker) or ``KeyboardInterrupt``; in each case OUT is left
    as it was.  Every image is decoded twice: once by the check pass, once by the write.
    """
    from .imagefolder_source import LAYOUT, FileDataset, LayoutError, relative, scan_tree

    o = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown options {sorted(unknown)}")
    splits = _parse_splits(o["splits"])
    if o["write_mode"] not in WRITE_MODES:
        raise UsageError(f"--write-mode {o['write_mode']!r}: expected one of {', '.join(WRITE_MODES)}")
    if o["on_error"] not in ("skip", "fail"):
        raise UsageError(f"--on-error {o['on_error']!r}: expected skip or fail")
    if o["stats"] not in ("imagenet", "sample"):
        raise UsageError(f"--stats {o['stats']!r}: expected imagenet or sample")
    if o["stats"] == "sample" and "train" not in splits:
        raise UsageError("--stats sample computes mean/std on the train split: include train in --splits")
    if not 0.0 <= float(o["compress_probability"]) <= 1.0:
        raise UsageError(f"--compress-probability {o['compress_probability']}: expected a value in [0, 1]")
    if not 1 <= int(o["jpeg_quality"]) <= 100:
        raise UsageError(f"--jpeg-quality {o['jpeg_quality']}: expected 1..100")
    for key in ("chunk_size", "stats_images"):
        if int(o[key]) < 1:
            raise UsageError(f"--{key.replace('_', '-')} {o[key]}: expected a positive integer")
    if o["limit_per_class"] is not None and int(o["limit_per_class"]) < 1:
        raise UsageError(f"--limit-per-class {o['limit_per_class']}: expected a positive integer")
    max_res = int(o["max_resolution"]) or None
    if max_res is not None and max_res < 0:
        raise UsageError(f"--max-resolution {max_res}: expected a positive size in pixels, or 0 for no limit")
    workers = int(o["num_workers"] or _default_workers())
    t_start = time.monotonic()

    try:
        tree = scan_tree(src, splits, o["limit_per_class"])
    except LayoutError as e:
        raise UsageError(str(e)) from None
    if len(tree.classes) < 2:
        raise UsageError(f"{tree.root / 'train'}: {len(tree.classes)} class directory "
                         f"({', '.join(tree.classes)}); a classifier needs at least 2 classes -- " + LAYOUT)
    out = _check_output_dir(out, tree.root)
    name = o["name"] or tree.root.name
    old_meta: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        old_meta = json.loads((out / "meta.json").read_text())

    # ---- check pass: decode everything once, in order
    jobs: list[tuple[str, bool]] = []
    stats_at: set[int] = set()
    if o["stats"] == "sample":
        n_train = len(tree.samples["train"])
        stats_at = set(np.unique(np.linspace(0, n_train - 1, min(n_train, int(o["stats_images"])))
                                 .round().astype(int)).tolist())
    entries: list[tuple[str, str, int]] = []  # (split, path, label), in writing order
    for split in splits:
        for k, (path, label) in enumerate(tree.samples[split]):
            entries.append((split, path, label))
            jobs.append((path, split == "train" and k in stats_at))
    good: dict[str, list[tuple[str, int]]] = {s: [] for s in splits}
    sizes: dict[str, tuple[list[int], list[int]]] = {s: ([], []) for s in splits}
    notes: dict[str, dict[str, int]] = {s: {} for s in splits}
    skipped: list[dict[str, str]] = []
    warned: list[dict[str, str]] = []
    stat_sum, stat_n = np.zeros((2, 3)), 0
    per_split = ", ".join(f"{s}: {len(tree.samples[s])}" for s in splits)
    _note(console, f"checking {len(jobs)} files of {tree.root} ({per_split}; {len(tree.classes)} classes) with "
                   f"{workers} worker{'s' * (workers > 1)}: a full decode of each")
    t_check = time.monotonic()
    with _Progress(console, "check", len(jobs)) as bar, \
            contextlib.closing(_imap(_check_one, jobs, workers)) as results:
        for (split, path, label), (h, w, note, warn, reason, stats) in zip(entries, results):
            rel = relative(path, tree.root)
            stored = _stored_side(h, w, max_res)
            if reason is None and stored < MIN_SIDE:
                after = f", {stored} px short side after --max-resolution {max_res}" if stored != min(h, w) else ""
                reason = (f"too small: {w}x{h} pixels{after}; sides below {MIN_SIDE} px make FFCV's "
                          "centre crop abort the training process")
            if reason is not None:
                if o["on_error"] == "fail":
                    raise WriteError(f"{path}: {reason} (--on-error fail; nothing was written; "
                                     f"--on-error skip leaves such files out and lists them)")
                skipped.append({"split": split, "path": rel, "error": reason})
            else:
                good[split].append((path, label))
                sizes[split][0].append(h), sizes[split][1].append(w)
                for n_ in note:
                    key = "EXIF-rotated" if n_.startswith("EXIF orientation") else n_
                    notes[split][key] = notes[split].get(key, 0) + 1
                warned.extend({"split": split, "path": rel, "warning": m} for m in warn)
                if stats is not None:
                    stat_sum += stats
                    stat_n += 1
            bar.advance(1)
    check_s = time.monotonic() - t_check
    for split in splits:
        if not good[split]:
            raise WriteError(f"{tree.root / split}: none of its {len(tree.samples[split])} images could be "
                             "decoded; nothing was written")
    empty_after_skip = {s: sorted({tree.classes[lab] for _, lab in tree.samples[s]} -
                                  {tree.classes[lab] for _, lab in good[s]}) for s in splits}
    if "train" in splits and len({lab for _, lab in good["train"]}) < 2:
        n_left = len({lab for _, lab in good["train"]})
        raise WriteError(f"{tree.root / 'train'}: after skipping, only {n_left} class has images; "
                         "a classifier needs at least 2; nothing was written")

    # ---- write pass
    from ffcv.fields import IntField, RGBImageField

    heights = np.array([h for s in splits for h in sizes[s][0]], dtype=np.int64)
    widths = np.array([w for s in splits for w in sizes[s][1]], dtype=np.int64)
    page_size = _page_size(_stored_bytes(heights, widths, max_res))
    writer_params = {
        "write_mode": o["write_mode"], "max_resolution": max_res, "compress_probability": float(o["compress_probability"]),
        "jpeg_quality": int(o["jpeg_quality"]),
        "smart_threshold": int(o["smart_threshold"]) if o["write_mode"] == "smart" else None,
        "num_workers": workers, "chunk_size": int(o["chunk_size"]), "page_size": page_size,
        "limit_per_class": o["limit_per_class"], "splits": list(splits), "on_error": o["on_error"],
        "decode": "PIL, full decode, EXIF orientation applied, converted to RGB",
    }
    write_s: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        tmps = {s: stack.enter_context(atomic_path(out / f"{s}.beton")) for s in splits}
        for split in splits:
            fields = {
                "image": RGBImageField(write_mode=o["write_mode"], max_resolution=max_res,
                                       smart_threshold=writer_params["smart_threshold"],
                                       jpeg_quality=int(o["jpeg_quality"]),
                                       compress_probability=float(o["compress_probability"])),
                "label": IntField(),
            }
            t0 = time.monotonic()
            with _Progress(console, f"write {split}.beton", len(good[split])) as bar:
                writer = _ffcv_writer(str(tmps[split]), fields, min(workers, len(good[split])), page_size, bar)
                writer.from_indexed_dataset(FileDataset(good[split]), chunksize=int(o["chunk_size"]))
            write_s[split] = time.monotonic() - t0
            check_beton(tmps[split])
        with contextlib.suppress(FileNotFoundError):
            (out / "meta.json").unlink()  # an older meta.json must not describe the new files
    # (both .beton files renamed into place here, val first, then train)

    previous = _previous_meta(old_meta, out, tree.classes, splits)
    counts = {**previous.get("counts", {}), **{s: len(good[s]) for s in splits}}
    total_s = time.monotonic() - t_start
    n_written = sum(len(good[s]) for s in splits)
    work_s = check_s + sum(write_s.values())  # check + write passes, without start-up and imports
    if o["stats"] == "sample" and stat_n:
        mean = stat_sum[0] / stat_n
        std = np.sqrt(np.maximum(stat_sum[1] / stat_n - mean ** 2, 0.0))
        mean_l, std_l = mean.round(6).tolist(), std.round(6).tolist()
        stats_meta = {"method": "sample", "images": stat_n, "split": "train",
                      "weighting": "each image equally (per-image channel means), pixels in [0, 1]"}
    else:
        mean_l, std_l = list(IMAGENET_MEAN), list(IMAGENET_STD)
        stats_meta = {"method": "imagenet", "note": "ImageNet's standard mean/std (torchvision, ffcv-imagenet)"}
    meta: dict[str, Any] = {
        "dataset": name,
        "format_version": META_FORMAT_VERSION,
        "layout": "imagefolder",
        "source": str(tree.root),
        "classes": tree.classes,
        "num_classes": len(tree.classes),
        "counts": counts,
        "found": {s: len(tree.samples[s]) for s in splits},
        "skipped": [e for e in previous.get("skipped", [])] + skipped,
        "skip_rules": {"undecodable": "PIL cannot fully decode it (empty, truncated, unidentified, corrupt)",
                       "too small": f"a side below {MIN_SIDE} px after --max-resolution (FFCV's centre crop "
                                    "would abort the training process)"},
        "links": tree.links,
        "link_policy": "directory links followed at most once per real directory (device, inode); a cycle "
                       "or second link is not entered; links leaving their class directory are listed",
        "mean": mean_l, "std": std_l, "stats": stats_meta,
        "writer": writer_params,
        "conversions": {s: notes[s] for s in splits},
        "warnings": warned,
        "missing_classes": {s: tree.missing_classes[s] for s in splits if s in tree.missing_classes},
        "classes_without_images": {s: v for s, v in empty_after_skip.items() if v},
        "files": {s: {"path": f"{s}.beton", **file_digest(out / f"{s}.beton")} for s in splits},
        "timing": {"total_s": round(total_s, 3), "check_s": round(check_s, 3),
                   "write_s": {s: round(v, 3) for s, v in write_s.items()},
                   "images_per_s": round(n_written / work_s, 1) if work_s > 0 else None},
        "ffcv_version": _ffcv_version(),
        "created": now_iso(),
    }
    if previous:
        meta["carried_over"] = previous["carried_over"]
    write_json_atomic(out / "meta.json", meta)

    # ---- report
    lines = [f"wrote {out} ({name!r}: {len(tree.classes)} classes, from {tree.root}) in {total_s:.1f} s; "
             f"{n_written:,} images at {n_written / work_s if work_s > 0 else 0:,.1f} images/s (check + write passes)",
             f"  {'split':<6} {'images':>9} {'skipped':>8} {'write s':>9} {'images/s':>10} {'size':>11}"]
    for s in splits:
        n_skip = sum(1 for e in skipped if e["split"] == s)
        rate = len(good[s]) / write_s[s] if write_s[s] > 0 else 0.0
        lines.append(f"  {s:<6} {len(good[s]):>9,} {n_skip:>8,} {write_s[s]:>9.2f} {rate:>10,.1f} "
                     f"{_human_bytes(meta['files'][s]['bytes']):>11}")
    lines.append(f"  check pass (full decode of {len(jobs):,} files): {check_s:.2f} s, "
                 f"{len(jobs) / check_s if check_s > 0 else 0:,.1f} images/s")
    lines.append(f"  writer: {o['write_mode']}, max resolution {max_res or 'none'}, jpeg quality {o['jpeg_quality']}"
                 + (f", compress probability {o['compress_probability']}" if o["write_mode"] == "proportion" else "")
                 + (f", smart threshold {o['smart_threshold']} bytes" if o["write_mode"] == "smart" else "")
                 + f", {workers} worker{'s' * (workers > 1)}")
    conv = "; ".join(f"{s}: " + ", ".join(f"{k} {v}" for k, v in notes[s].items()) for s in splits if notes[s])
    if conv:
        lines.append(f"  converted: {conv}")
    lines.append(f"  mean/std: {stats_meta['method']}" + (f" ({stat_n} train images)" if o["stats"] == "sample" else "")
                 + f": mean {mean_l}, std {std_l}")
    for s, missing in meta["missing_classes"].items():
        lines.append(f"  note: {s}/ has no directory for {len(missing)} training class(es): {', '.join(missing[:10])}"
                     f"{' ...' if len(missing) > 10 else ''}")
    for s, missing in meta["classes_without_images"].items():
        lines.append(f"  warning: after skipping, {s} has no image of class(es) {', '.join(missing[:10])}")
    if warned:
        lines.append(f"  {len(warned)} decoder warning(s), listed in meta.json (first: {warned[0]['path']}: "
                     f"{warned[0]['warning']})")
    for e in tree.links[:20]:
        lines.append(f"  link {e['split']}/{e['path']} -> {e['target']}: {e['action']}")
    if len(tree.links) > 20:
        lines.append(f"  ... and {len(tree.links) - 20} more directory links (all in meta.json)")
    if skipped:
        lines.append(f"  skipped {len(skipped)} file(s) that could not be decoded or are too small "
                     "(also listed in meta.json):")
        for e in skipped[:50]:
            lines.append(f"    {e['path']}: {e['error']}")
        if len(skipped) > 50:
            lines.append(f"    ... and {len(skipped) - 50} more")
    else:
        lines.append("  skipped: none")
    lines.append(f"  meta: {out / 'meta.json'}")
    meta["_report"] = lines
    return meta


def _parse_splits(text: str | Sequence[str]) -> tuple[str, ...]:
    parts = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    bad = [p for p in parts if p not in ("train", "val")]
    if bad or not parts or len(set(parts)) != len(parts):
        raise UsageError(f"--splits {text!r}: expected a comma-separated subset of train,val")
    return tuple(s for s in ("train", "val") if s in parts)


def _check_output_dir(out: str | os.PathLike, src_root: Path) -> Path:
    """Create OUT if needed and prove it writable; refuse OUT inside the source tree."""
    import tempfile

    out = Path(out).expanduser().absolute()
    resolved = out.resolve()
    for split in ("train", "val"):
        inside = src_root / split
        if resolved == inside or inside in resolved.parents:
            raise UsageError(f"{out}: the output directory is inside {inside}; it would become a class "
                             "directory there. Choose OUT outside SRC/train and SRC/val")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-probe-"):
            pass
    except OSError as e:
        raise UsageError(f"{out}: output directory is not writable ({e.strerror or e})") from None
    _remove_stale_temporaries(out)
    return out


def _remove_stale_temporaries(out: Path) -> None:
    """Temporaries ``atomic_path`` left behind when a writer was SIGKILLed (its pid is gone)."""
    for name in ("train.beton", "val.beton", "meta.json"):
        for tmp in out.glob(f".{name}.tmp-*"):
            pid = tmp.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            except OSError:
                pass


def _previous_meta(old: dict[str, Any], out: Path, classes: list[str], splits: Sequence[str]) -> dict[str, Any]:
    """When only some splits are rewritten: what the last meta.json said about the others (if the
    classes match and their .beton files are still there)."""
    others = [s for s in ("train", "val") if s not in splits and (out / f"{s}.beton").is_file()]
    if not others or old.get("classes") != classes or not isinstance(old.get("counts"), dict):
        return {}
    return {"counts": {s: old["counts"][s] for s in others if s in old["counts"]},
            "skipped": [e for e in old.get("skipped", []) if isinstance(e, dict) and e.get("split") in others],
            "carried_over": {"splits": others, "from": old.get("created")}}


def _ffcv_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ffcv")
    except PackageNotFoundError:
        return None


def _note(console: Any, text: str) -> None:
    if console is not None:
        console.print(text, highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- command line
_USAGE = """python -m datamodules.write SRC OUT [options]
       python -m datamodules.write --dataset digits OUT [--resolution PX]
       python -m datamodules.write --verify OUT"""

_DESCRIPTION = """\
Write an ImageNet-layout ImageFolder tree to FFCV files: SRC/train/<class>/* and
SRC/val/<class>/* become OUT/train.beton, OUT/val.beton and OUT/meta.json (classes,
counts, skipped files, writer parameters, mean/std), ready for data=beton data.path=OUT.

Classes are the sorted directory names of SRC/train, exactly as torchvision's ImageFolder;
val is labelled with them. Files are those ImageFolder accepts (.jpg .jpeg .png .ppm .bmp
.pgm .tif .tiff .webp, any case, in sub-directories too), decoded by content with PIL,
EXIF orientation applied, converted to RGB (CMYK, greyscale ...).

Every file is first fully decoded in a check pass (one extra decode per image) so that a
truncated, empty or undecodable file is skipped exactly (--on-error skip: listed in the
report and meta.json) or stops the write before anything is written (--on-error fail).
Writes are atomic: both .beton files appear only when both are complete, meta.json last;
Ctrl-C or SIGTERM leaves OUT as it was.

--dataset digits writes the embedded default dataset (scikit-learn's digits) instead, with
the writer the training platform uses for it (no SRC).

Exit codes: 0 written; 1 a bad image under --on-error fail, or a failed write;
2 a usage, layout or output-directory error; 130/143 interrupted (SIGINT/SIGTERM)."""

_EPILOG = """\
defaults follow ffcv-imagenet's recommended ImageNet files (write_imagenet.sh 500 0.50 90):
longest side <= 500 px (use 400 for its ResNet-18 configs), half of the images stored as
JPEG (quality 90), half raw. 'smart' stores JPEG only for images whose raw size exceeds
--smart-threshold bytes (with the default 500 px limit no image does, so it writes raw,
as ffcv-imagenet's write_imagenet.py 'smart' default effectively does with ffcv 1.0.2).

example: python -m datamodules.write /data/imagenet /data/imagenet-ffcv --num-workers 16"""


def build_parser() -> "argparse.ArgumentParser":
    import argparse

    d = DEFAULTS
    p = argparse.ArgumentParser(prog="python -m datamodules.write", usage=_USAGE, description=_DESCRIPTION,
                                epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="SRC OUT", help="source ImageFolder root and output directory")
    p.add_argument("--dataset", choices=("imagefolder", "digits"), default="imagefolder",
                   help="imagefolder: SRC is an ImageNet-layout tree (default); digits: the embedded default "
                        "dataset, written to OUT (no SRC)")
    p.add_argument("--name", help="dataset name recorded in meta.json (default: SRC's directory name)")
    p.add_argument("--verify", action="store_true",
                   help="check a written OUT: each .beton against the size and SHA-256 meta.json records (exit 1 "
                        "on a mismatch)")
    g = p.add_argument_group("selection")
    g.add_argument("--splits", help=f"comma-separated splits to write (default: {d['splits']})")
    g.add_argument("--limit-per-class", type=int, metavar="N",
                   help="a subset: the first N files of each class, in sorted order (default: all)")
    g = p.add_argument_group("FFCV writer (ffcv-imagenet's parameters)")
    g.add_argument("--max-resolution", type=int, metavar="PX",
                   help=f"longest side of a stored image, larger ones are downscaled (INTER_AREA); 0: no limit "
                        f"(default: {d['max_resolution']}; ffcv-imagenet: 500 for ResNet-50, 400 for ResNet-18)")
    g.add_argument("--write-mode", choices=WRITE_MODES,
                   help=f"raw pixels, jpg, smart (jpg above --smart-threshold) or proportion (jpg with "
                        f"probability --compress-probability) (default: {d['write_mode']})")
    g.add_argument("--compress-probability", type=float, metavar="P",
                   help=f"fraction stored as JPEG with --write-mode proportion (default: {d['compress_probability']})")
    g.add_argument("--jpeg-quality", type=int, metavar="Q", help=f"JPEG quality 1-100 (default: {d['jpeg_quality']})")
    g.add_argument("--smart-threshold", type=int, metavar="BYTES",
                   help=f"raw size above which --write-mode smart stores JPEG (default: {d['smart_threshold']})")
    g.add_argument("--num-workers", type=int, metavar="N",
                   help=f"processes for the check and write passes (default: usable CPUs, at most 16; "
                        f"here {_default_workers()})")
    g.add_argument("--chunk-size", type=int, metavar="N",
                   help=f"images per work item of a writer process (default: {d['chunk_size']})")
    g = p.add_argument_group("errors and statistics")
    g.add_argument("--on-error", choices=("skip", "fail"),
                   help=f"an undecodable file: skip it (listed in the report and meta.json) or stop, writing "
                        f"nothing (default: {d['on_error']})")
    g.add_argument("--stats", choices=("imagenet", "sample"),
                   help=f"meta.json mean/std: ImageNet's standard values, or computed on a sample of the train "
                        f"split during the check pass (default: {d['stats']})")
    g.add_argument("--stats-images", type=int, metavar="N",
                   help=f"train images (evenly spaced) for --stats sample (default: {d['stats_images']})")
    g = p.add_argument_group("--dataset digits")
    g.add_argument("--resolution", type=int, metavar="PX", help="side of the upscaled digit images (default: 32)")
    return p


def _write_digits_cli(out: str, resolution: int | None, console: Any) -> list[str]:
    from .digits import write_digits

    out_path = _check_output_dir(out, Path("/nonexistent-source"))
    t0 = time.monotonic()
    _note(console, f"writing the embedded digits dataset to {out_path}")
    write_digits(out_path, resolution=resolution or 32)
    seconds = time.monotonic() - t0
    meta = json.loads((out_path / "meta.json").read_text())
    n = sum(meta["counts"].values())
    lines = [f"wrote {out_path} ('digits': {meta['num_classes']} classes, resolution {meta['resolution']}) in "
             f"{seconds:.1f} s ({n / seconds:,.1f} images/s)"]
    for s in ("train", "val"):
        lines.append(f"  {s:<6} {meta['counts'][s]:>7,} images  {_human_bytes((out_path / f'{s}.beton').stat().st_size)}")
    lines.append(f"  meta: {out_path / 'meta.json'}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit code (see ``--help``)."""
    from PIL import ImageFile
    from rich.console import Console

    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never half an image

    caught: list[int] = []

    def on_sigterm(signum, frame):
        caught.append(signum)
        raise KeyboardInterrupt("SIGTERM")

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if main_thread else None
    try:
        if args.verify:
            if len(args.paths) != 1:
                raise UsageError(f"--verify takes one path, OUT (got {len(args.paths)})")
            out = Path(args.paths[0])
            problems = verify_files(out)
            for split in ("train", "val"):
                if (out / f"{split}.beton").is_file() and not problems:
                    check_beton(out / f"{split}.beton")
            if problems:
                for line in problems:
                    err.print(f"error: {line}", markup=False)
                return 1
            print(f"verified {out}: every .beton matches the size and SHA-256 in meta.json", flush=True)
            return 0
        if args.dataset == "digits":
            given = [f"--{k.replace('_', '-')}" for k in DEFAULTS if getattr(args, k, None) is not None]
            if given:
                raise UsageError(f"{', '.join(given)}: not an option of --dataset digits (it writes raw "
                                 f"upscaled 8x8 digits with a fixed split)")
            if len(args.paths) != 1:
                raise UsageError(f"--dataset digits takes one path, OUT (got {len(args.paths)}: "
                                 f"{' '.join(args.paths)})")
            lines = _write_digits_cli(args.paths[0], args.resolution, console)
        else:
            if len(args.paths) != 2:
                raise UsageError(f"expected two paths, SRC and OUT (got {len(args.paths)}: {' '.join(args.paths)}); "
                                 f"usage: {_USAGE.splitlines()[0]}")
            if args.resolution is not None:
                raise UsageError("--resolution applies to --dataset digits; for an image tree use --max-resolution")
            options = {k: getattr(args, k) for k in DEFAULTS}
            lines = write_imagefolder(args.paths[0], args.paths[1], console=console, **options)["_report"]
    except UsageError as e:
        err.print(f"error: {e}", markup=False)
        return 2
    except WriteError as e:
        err.print(f"error: {e}", markup=False)
        return 1
    except KeyboardInterrupt as e:
        sigterm = bool(caught) or "SIGTERM" in str(e)
        err.print(f"interrupted ({'SIGTERM' if sigterm else 'SIGINT'}): no .beton or meta.json was written "
                  f"or changed", markup=False)
        return 143 if sigterm else 130
    except BetonError as e:
        err.print(f"error: the written file failed its check: {e}", markup=False)
        return 1
    except OSError as e:  # disk full, permissions changing under us, ...
        err.print(f"error: {e.filename + ': ' if e.filename else ''}{e.strerror or e}; nothing was written "
                  f"to the output directory", markup=False)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
