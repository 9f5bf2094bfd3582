"""ImageFolder -> ``.beton``: the library behind ``python -m datamodules.write SRC OUT [options]``.

An ImageNet-layout tree to OUT/train.beton, OUT/val.beton and OUT/meta.json.  See
``write._DESCRIPTION`` for the user-facing account; the implementation notes are here.

* Two passes.  A *check* pass decodes every file fully (``Image.load()``), applies the EXIF
  orientation and converts to RGB, in ``--num-workers`` processes, under its own progress bar.
  It makes ``--on-error skip`` exact (FFCV's writer needs the sample count up front and has no
  way to drop a sample) and lets ``--on-error fail`` stop before anything is written.  The
  price is one extra decode per image: on 2,000 ImageNet-sized JPEGs (333x500 to 600x800,
  quality 90, ffcv-imagenet's defaults) the check pass took ~40% of the time (5.5 s check,
  7.9 s write, one worker); the report prints both.  The *write* pass hands FFCV only the
  files that decoded, as RGB ``uint8`` arrays (decoded again, the same way), through
  :func:`datamodules.beton.ffcv_writer`.
* Both ``.beton`` files are written under temporary names and renamed only when both are
  complete, then ``meta.json`` is written last: an interrupted or failed run leaves OUT as it
  was (an older ``meta.json`` is removed just before the renames, so it never describes new
  files it was not written for).

``datamodules/imagefolder_source.py`` scans the tree (exactly as torchvision's ImageFolder) and
decodes the files.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .beton import (
    WriteError,
    _page_size,
    _worker_signals,
    atomic_path,
    check_beton,
    ffcv_writer,
    file_digest,
    now_iso,
    stop_signals_blocked_for_fork,
    write_json_atomic,
)
from .options import IMAGENET_MEAN, IMAGENET_STD

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
    "write_mode": "proportion",
    "max_resolution": 500,
    "compress_probability": 0.5,
    "jpeg_quality": 90,
    "smart_threshold": 600 * 600 * 3,
    "chunk_size": 100,
    "limit_per_class": None,
    "splits": "train,val",
    "on_error": "skip",
    "stats": "imagenet",
    "stats_images": 10_000,
    "name": None,
    "num_workers": None,
}


class UsageError(ValueError):
    """A bad command line, source layout or output directory (exit code 2)."""


def default_workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(16, n))


def human_bytes(n: float) -> str:
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
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                ProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.text import Text

            class Rate(ProgressColumn):
                def render(self, task):
                    return Text(
                        f"{task.speed:,.0f} images/s" if task.speed else "- images/s", style="cyan"
                    )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                Rate(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
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
        self.console.print(
            f"{self.description}: {self.done}/{self.total} images, {rate:,.0f} images/s, "
            f"elapsed {_fmt_s(elapsed)}, ETA {_fmt_s(eta)}",
            highlight=False,
            soft_wrap=True,
        )

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self.console is not None and exc[0] is None:
            self._line()


# --------------------------------------------------------------------------- check pass
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
    # its threads, started while blocked, keep them blocked: a stop signal reaches the main thread
    with stop_signals_blocked_for_fork():
        pool = mp.get_context("fork").Pool(min(workers, len(jobs)), initializer=_worker_signals)
    with pool:
        yield from pool.imap(fn, jobs, chunksize=chunksize)


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
        h, w = (
            np.where(ratio < 1, np.floor(h * ratio), h),
            np.where(ratio < 1, np.floor(w * ratio), w),
        )
    return int((h * w).max() * 3)


# --------------------------------------------------------------------------- the whole write
def write_imagefolder(
    src: str | os.PathLike, out: str | os.PathLike, *, console: Any = None, **options: Any
) -> dict[str, Any]:
    """Write ``SRC/{train,val}/<class>/*`` to ``OUT/{train,val}.beton`` and ``OUT/meta.json``.

    ``options`` are those of :data:`DEFAULTS` (the command-line options).  Returns the meta
    dict, with the non-JSON key ``"_report"`` holding the lines of the final report.  Raises
    :class:`UsageError` (layout, output directory), :class:`WriteError` (a bad image under
    ``on_error='fail'``, a failed worker) or ``KeyboardInterrupt``; in each case OUT is left
    as it was.  Every image is decoded twice: once by the check pass, once by the write.
    Named passes: :func:`_options` -> :func:`_scan` -> :func:`_check_pass` -> :func:`_write_pass`
    -> :func:`_meta` -> :func:`_report`.
    """
    o = _options(options)
    t_start = time.monotonic()
    tree = _scan(src, o)
    out = check_output_dir(out, tree.root)
    old_meta: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        old_meta = json.loads((out / "meta.json").read_text())
    check = _check_pass(tree, o, console)
    writer_params, write_s = _write_pass(out, check, o, console)
    total_s = time.monotonic() - t_start
    meta = _meta(tree, out, o, check, writer_params, write_s, old_meta, total_s)
    write_json_atomic(out / "meta.json", meta)
    meta["_report"] = _report(tree, out, o, check, meta, write_s, total_s)
    return meta


def _options(options: dict[str, Any]) -> dict[str, Any]:
    """:data:`DEFAULTS` with ``options`` (``None``: the default), checked; adds ``splits`` as a
    tuple, ``max_res`` (``None``: no limit) and ``workers``."""
    o = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown options {sorted(unknown)}")
    o["splits"] = _parse_splits(o["splits"])
    if o["write_mode"] not in WRITE_MODES:
        raise UsageError(
            f"--write-mode {o['write_mode']!r}: expected one of {', '.join(WRITE_MODES)}"
        )
    if o["on_error"] not in ("skip", "fail"):
        raise UsageError(f"--on-error {o['on_error']!r}: expected skip or fail")
    if o["stats"] not in ("imagenet", "sample"):
        raise UsageError(f"--stats {o['stats']!r}: expected imagenet or sample")
    if o["stats"] == "sample" and "train" not in o["splits"]:
        raise UsageError(
            "--stats sample computes mean/std on the train split: include train in --splits"
        )
    if not 0.0 <= float(o["compress_probability"]) <= 1.0:
        raise UsageError(
            f"--compress-probability {o['compress_probability']}: expected a value in [0, 1]"
        )
    if not 1 <= int(o["jpeg_quality"]) <= 100:
        raise UsageError(f"--jpeg-quality {o['jpeg_quality']}: expected 1..100")
    for key in ("chunk_size", "stats_images"):
        if int(o[key]) < 1:
            raise UsageError(f"--{key.replace('_', '-')} {o[key]}: expected a positive integer")
    if o["limit_per_class"] is not None and int(o["limit_per_class"]) < 1:
        raise UsageError(f"--limit-per-class {o['limit_per_class']}: expected a positive integer")
    o["max_res"] = int(o["max_resolution"]) or None
    if o["max_res"] is not None and o["max_res"] < 0:
        raise UsageError(
            f"--max-resolution {o['max_res']}: expected a positive size in pixels, "
            "or 0 for no limit"
        )
    o["workers"] = int(o["num_workers"] or default_workers())
    return o


def _scan(src: str | os.PathLike, o: dict[str, Any]) -> Any:
    """The source tree (``imagefolder_source.scan_tree``), with at least two classes."""
    from .imagefolder_source import LAYOUT, LayoutError, scan_tree

    try:
        tree = scan_tree(src, o["splits"], o["limit_per_class"])
    except LayoutError as e:
        raise UsageError(str(e)) from None
    if len(tree.classes) < 2:
        raise UsageError(
            f"{tree.root / 'train'}: {len(tree.classes)} class directory "
            f"({', '.join(tree.classes)}); a classifier needs at least 2 classes -- " + LAYOUT
        )
    return tree


@dataclass
class _Check:
    """What the check pass found, per split: the files that decoded (with their sizes and
    conversions), the skipped ones, decoder warnings and the running mean/std sums."""

    splits: tuple[str, ...]
    jobs: int = 0
    good: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    sizes: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)
    notes: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    warned: list[dict[str, str]] = field(default_factory=list)
    stat_sum: np.ndarray = field(default_factory=lambda: np.zeros((2, 3)))
    stat_n: int = 0
    seconds: float = 0.0
    empty_after_skip: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for s in self.splits:
            self.good[s], self.sizes[s], self.notes[s] = [], ([], []), {}

    def keep(
        self,
        split: str,
        path: str,
        label: int,
        h: int,
        w: int,
        note: Sequence[str],
        rel: str,
        warn: Sequence[str],
        stats: Any,
    ) -> None:
        self.good[split].append((path, label))
        self.sizes[split][0].append(h), self.sizes[split][1].append(w)
        for n_ in note:
            key = "EXIF-rotated" if n_.startswith("EXIF orientation") else n_
            self.notes[split][key] = self.notes[split].get(key, 0) + 1
        self.warned.extend({"split": split, "path": rel, "warning": m} for m in warn)
        if stats is not None:
            self.stat_sum += stats
            self.stat_n += 1


def _check_jobs(
    tree: Any, o: dict[str, Any]
) -> tuple[list[tuple[str, str, int]], list[tuple[str, bool]]]:
    """(split, path, label) of every file in writing order, and the check job of each (path, whether
    its channel statistics are sampled for ``--stats sample``)."""
    stats_at: set[int] = set()
    if o["stats"] == "sample":
        n_train = len(tree.samples["train"])
        stats_at = set(
            np.unique(
                np.linspace(0, n_train - 1, min(n_train, int(o["stats_images"])))
                .round()
                .astype(int)
            ).tolist()
        )
    entries, jobs = [], []
    for split in o["splits"]:
        for k, (path, label) in enumerate(tree.samples[split]):
            entries.append((split, path, label))
            jobs.append((path, split == "train" and k in stats_at))
    return entries, jobs


def _too_small(h: int, w: int, max_res: int | None) -> str | None:
    """Why an image that decoded is still skipped: a side below :data:`MIN_SIDE` once stored."""
    stored = _stored_side(h, w, max_res)
    if stored >= MIN_SIDE:
        return None
    after = (
        f", {stored} px short side after --max-resolution {max_res}" if stored != min(h, w) else ""
    )
    return (
        f"too small: {w}x{h} pixels{after}; sides below {MIN_SIDE} px make FFCV's "
        "centre crop abort the training process"
    )


def _check_pass(tree: Any, o: dict[str, Any], console: Any) -> _Check:
    """Decode every file once, in order, in ``workers`` processes: skip (or, under
    ``--on-error fail``, stop at) the undecodable and too small ones."""
    from .imagefolder_source import relative

    splits, workers = o["splits"], o["workers"]
    entries, jobs = _check_jobs(tree, o)
    check = _Check(splits, jobs=len(jobs))
    per_split = ", ".join(f"{s}: {len(tree.samples[s])}" for s in splits)
    print_note(
        console,
        f"checking {len(jobs)} files of {tree.root} ({per_split}; {len(tree.classes)} classes) "
        f"with {workers} worker{'s' * (workers > 1)}: a full decode of each",
    )
    t_check = time.monotonic()
    with (
        _Progress(console, "check", len(jobs)) as bar,
        contextlib.closing(_imap(_check_one, jobs, workers)) as results,
    ):
        for (split, path, label), (h, w, note, warn, reason, stats) in zip(
            entries, results, strict=False
        ):
            rel = relative(path, tree.root)
            reason = reason if reason is not None else _too_small(h, w, o["max_res"])
            if reason is None:
                check.keep(split, path, label, h, w, note, rel, warn, stats)
            elif o["on_error"] == "fail":
                raise WriteError(
                    f"{path}: {reason} (--on-error fail; nothing was written; "
                    f"--on-error skip leaves such files out and lists them)"
                )
            else:
                check.skipped.append({"split": split, "path": rel, "error": reason})
            bar.advance(1)
    check.seconds = time.monotonic() - t_check
    _refuse_what_is_left(tree, check)
    return check


def _refuse_what_is_left(tree: Any, check: _Check) -> None:
    """After skipping: a split with no image, or a training set of one class, stops the write;
    classes left without images are recorded."""
    for split in check.splits:
        if not check.good[split]:
            raise WriteError(
                f"{tree.root / split}: none of its {len(tree.samples[split])} images could be "
                "decoded; nothing was written"
            )
    check.empty_after_skip = {
        s: sorted(
            {tree.classes[lab] for _, lab in tree.samples[s]}
            - {tree.classes[lab] for _, lab in check.good[s]}
        )
        for s in check.splits
    }
    if "train" in check.splits and len({lab for _, lab in check.good["train"]}) < 2:
        n_left = len({lab for _, lab in check.good["train"]})
        raise WriteError(
            f"{tree.root / 'train'}: after skipping, only {n_left} class has images; "
            "a classifier needs at least 2; nothing was written"
        )


def _write_pass(
    out: Path, check: _Check, o: dict[str, Any], console: Any
) -> tuple[dict[str, Any], dict[str, float]]:
    """Write the files that decoded to ``OUT/<split>.beton``, all renamed into place only when all
    are complete (an older meta.json removed just before); returns the writer parameters and the
    seconds per split."""
    from ffcv.fields import IntField, RGBImageField

    from .imagefolder_source import FileDataset

    splits, max_res, workers = check.splits, o["max_res"], o["workers"]
    heights = np.array([h for s in splits for h in check.sizes[s][0]], dtype=np.int64)
    widths = np.array([w for s in splits for w in check.sizes[s][1]], dtype=np.int64)
    page_size = _page_size(_stored_bytes(heights, widths, max_res))
    writer_params = {
        "write_mode": o["write_mode"],
        "max_resolution": max_res,
        "compress_probability": float(o["compress_probability"]),
        "jpeg_quality": int(o["jpeg_quality"]),
        "smart_threshold": int(o["smart_threshold"]) if o["write_mode"] == "smart" else None,
        "num_workers": workers,
        "chunk_size": int(o["chunk_size"]),
        "page_size": page_size,
        "limit_per_class": o["limit_per_class"],
        "splits": list(splits),
        "on_error": o["on_error"],
        "decode": "PIL, full decode, EXIF orientation applied, converted to RGB",
    }
    write_s: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        tmps = {
            s: stack.enter_context(atomic_path(out / f"{s}.beton", interruptible=True))
            for s in splits
        }
        for split in splits:
            fields = {
                "image": RGBImageField(
                    write_mode=o["write_mode"],
                    max_resolution=max_res,
                    smart_threshold=writer_params["smart_threshold"],
                    jpeg_quality=int(o["jpeg_quality"]),
                    compress_probability=float(o["compress_probability"]),
                ),
                "label": IntField(),
            }
            good = check.good[split]
            t0 = time.monotonic()
            with _Progress(console, f"write {split}.beton", len(good)) as bar:
                writer = ffcv_writer(
                    str(tmps[split]), fields, min(workers, len(good)), page_size, bar
                )
                writer.from_indexed_dataset(FileDataset(good), chunksize=int(o["chunk_size"]))
            write_s[split] = time.monotonic() - t0
            check_beton(tmps[split])
        with contextlib.suppress(FileNotFoundError):
            (out / "meta.json").unlink()  # an older meta.json must not describe the new files
    # (both .beton files renamed into place here, val first, then train)
    return writer_params, write_s


def _mean_std(o: dict[str, Any], check: _Check) -> tuple[list[float], list[float], dict[str, Any]]:
    """meta.json's mean/std: sampled in the check pass (``--stats sample``) or ImageNet's."""
    if o["stats"] == "sample" and check.stat_n:
        mean = check.stat_sum[0] / check.stat_n
        std = np.sqrt(np.maximum(check.stat_sum[1] / check.stat_n - mean**2, 0.0))
        return (
            mean.round(6).tolist(),
            std.round(6).tolist(),
            {
                "method": "sample",
                "images": check.stat_n,
                "split": "train",
                "weighting": "each image equally (per-image channel means), pixels in [0, 1]",
            },
        )
    return (
        list(IMAGENET_MEAN),
        list(IMAGENET_STD),
        {"method": "imagenet", "note": "ImageNet's standard mean/std (torchvision, ffcv-imagenet)"},
    )


def _meta(
    tree: Any,
    out: Path,
    o: dict[str, Any],
    check: _Check,
    writer_params: dict[str, Any],
    write_s: dict[str, float],
    old_meta: dict[str, Any],
    total_s: float,
) -> dict[str, Any]:
    """The meta.json of the write (classes, counts, skipped files, writer, statistics, timing)."""
    splits = check.splits
    previous = _previous_meta(old_meta, out, tree.classes, splits)
    counts = {**previous.get("counts", {}), **{s: len(check.good[s]) for s in splits}}
    n_written = sum(len(check.good[s]) for s in splits)
    work_s = check.seconds + sum(
        write_s.values()
    )  # check + write passes, without start-up and imports
    mean_l, std_l, stats_meta = _mean_std(o, check)
    meta: dict[str, Any] = {
        "dataset": o["name"] or tree.root.name,
        "format_version": META_FORMAT_VERSION,
        "layout": "imagefolder",
        "source": str(tree.root),
        "classes": tree.classes,
        "num_classes": len(tree.classes),
        "counts": counts,
        "found": {s: len(tree.samples[s]) for s in splits},
        "skipped": [e for e in previous.get("skipped", [])] + check.skipped,
        "skip_rules": {
            "undecodable": "PIL cannot fully decode it (empty, truncated, unidentified, corrupt)",
            "too small": f"a side below {MIN_SIDE} px after --max-resolution (FFCV's centre crop "
            "would abort the training process)",
        },
        "links": tree.links,
        "link_policy": "directory links followed at most once per real directory (device, inode); a cycle "
        "or second link is not entered; links leaving their class directory are listed",
        "mean": mean_l,
        "std": std_l,
        "stats": stats_meta,
        "writer": writer_params,
        "conversions": {s: check.notes[s] for s in splits},
        "warnings": check.warned,
        "missing_classes": {
            s: tree.missing_classes[s] for s in splits if s in tree.missing_classes
        },
        "classes_without_images": {s: v for s, v in check.empty_after_skip.items() if v},
        "files": {s: {"path": f"{s}.beton", **file_digest(out / f"{s}.beton")} for s in splits},
        "timing": {
            "total_s": round(total_s, 3),
            "check_s": round(check.seconds, 3),
            "write_s": {s: round(v, 3) for s, v in write_s.items()},
            "images_per_s": round(n_written / work_s, 1) if work_s > 0 else None,
        },
        "ffcv_version": _ffcv_version(),
        "created": now_iso(),
    }
    if previous:
        meta["carried_over"] = previous["carried_over"]
    return meta


def _report(
    tree: Any,
    out: Path,
    o: dict[str, Any],
    check: _Check,
    meta: dict[str, Any],
    write_s: dict[str, float],
    total_s: float,
) -> list[str]:
    """The lines printed at the end: per split, the check pass, the writer, conversions, skips."""
    splits, workers = check.splits, o["workers"]
    n_written = sum(len(check.good[s]) for s in splits)
    work_s = check.seconds + sum(write_s.values())
    lines = [
        f"wrote {out} ({meta['dataset']!r}: {len(tree.classes)} classes, from {tree.root}) in "
        f"{total_s:.1f} s; {n_written:,} images at "
        f"{n_written / work_s if work_s > 0 else 0:,.1f} images/s (check + write passes)",
        f"  {'split':<6} {'images':>9} {'skipped':>8} {'write s':>9} {'images/s':>10} {'size':>11}",
    ]
    for s in splits:
        n_skip = sum(1 for e in check.skipped if e["split"] == s)
        seconds = write_s[s]
        rate = len(check.good[s]) / seconds if seconds > 0 else 0.0
        lines.append(
            f"  {s:<6} {len(check.good[s]):>9,} {n_skip:>8,} {seconds:>9.2f} {rate:>10,.1f} "
            f"{human_bytes(meta['files'][s]['bytes']):>11}"
        )
    lines.append(
        f"  check pass (full decode of {check.jobs:,} files): {check.seconds:.2f} s, "
        f"{check.jobs / check.seconds if check.seconds > 0 else 0:,.1f} images/s"
    )
    lines.append(
        f"  writer: {o['write_mode']}, max resolution {o['max_res'] or 'none'}, "
        f"jpeg quality {o['jpeg_quality']}"
        + (
            f", compress probability {o['compress_probability']}"
            if o["write_mode"] == "proportion"
            else ""
        )
        + (f", smart threshold {o['smart_threshold']} bytes" if o["write_mode"] == "smart" else "")
        + f", {workers} worker{'s' * (workers > 1)}"
    )
    return lines + _report_notes(tree, out, o, check, meta)


def _report_notes(
    tree: Any, out: Path, o: dict[str, Any], check: _Check, meta: dict[str, Any]
) -> list[str]:
    """The report's notes: conversions, mean/std, missing classes, warnings, links, skipped files."""
    lines = []
    conv = "; ".join(
        f"{s}: " + ", ".join(f"{k} {v}" for k, v in check.notes[s].items())
        for s in check.splits
        if check.notes[s]
    )
    if conv:
        lines.append(f"  converted: {conv}")
    sampled = f" ({check.stat_n} train images)" if o["stats"] == "sample" else ""
    lines.append(
        f"  mean/std: {meta['stats']['method']}{sampled}: mean {meta['mean']}, std {meta['std']}"
    )
    for s, missing in meta["missing_classes"].items():
        lines.append(
            f"  note: {s}/ has no directory for {len(missing)} training class(es): "
            f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}"
        )
    for s, missing in meta["classes_without_images"].items():
        lines.append(
            f"  warning: after skipping, {s} has no image of class(es) {', '.join(missing[:10])}"
        )
    warned = check.warned
    if warned:
        lines.append(
            f"  {len(warned)} decoder warning(s), listed in meta.json (first: {warned[0]['path']}: "
            f"{warned[0]['warning']})"
        )
    for e in tree.links[:20]:
        lines.append(f"  link {e['split']}/{e['path']} -> {e['target']}: {e['action']}")
    if len(tree.links) > 20:
        lines.append(f"  ... and {len(tree.links) - 20} more directory links (all in meta.json)")
    if check.skipped:
        lines.append(
            f"  skipped {len(check.skipped)} file(s) that could not be decoded or are too small "
            "(also listed in meta.json):"
        )
        lines.extend(f"    {e['path']}: {e['error']}" for e in check.skipped[:50])
        if len(check.skipped) > 50:
            lines.append(f"    ... and {len(check.skipped) - 50} more")
    else:
        lines.append("  skipped: none")
    lines.append(f"  meta: {out / 'meta.json'}")
    return lines


def _parse_splits(text: str | Sequence[str]) -> tuple[str, ...]:
    parts = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    bad = [p for p in parts if p not in ("train", "val")]
    if bad or not parts or len(set(parts)) != len(parts):
        raise UsageError(f"--splits {text!r}: expected a comma-separated subset of train,val")
    return tuple(s for s in ("train", "val") if s in parts)


def check_output_dir(out: str | os.PathLike, src_root: Path) -> Path:
    """Create OUT if needed and prove it writable; refuse OUT inside the source tree."""
    import tempfile

    out = Path(out).expanduser().absolute()
    resolved = out.resolve()
    for split in ("train", "val"):
        inside = src_root / split
        if resolved == inside or inside in resolved.parents:
            raise UsageError(
                f"{out}: the output directory is inside {inside}; it would become a class "
                "directory there. Choose OUT outside SRC/train and SRC/val"
            )
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


def _previous_meta(
    old: dict[str, Any], out: Path, classes: list[str], splits: Sequence[str]
) -> dict[str, Any]:
    """When only some splits are rewritten: what the last meta.json said about the others (if the
    classes match and their .beton files are still there)."""
    others = [s for s in ("train", "val") if s not in splits and (out / f"{s}.beton").is_file()]
    if not others or old.get("classes") != classes or not isinstance(old.get("counts"), dict):
        return {}
    return {
        "counts": {s: old["counts"][s] for s in others if s in old["counts"]},
        "skipped": [
            e for e in old.get("skipped", []) if isinstance(e, dict) and e.get("split") in others
        ],
        "carried_over": {"splits": others, "from": old.get("created")},
    }


def _ffcv_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ffcv")
    except PackageNotFoundError:
        return None


def print_note(console: Any, text: str) -> None:
    if console is not None:
        console.print(text, highlight=False, soft_wrap=True)
