"""``python -m datamodules.write ...``: the command line that writes ``.beton`` files.

    python -m datamodules.write SRC OUT [options]          # SRC/{train,val}/<class>/* -> OUT/*.beton
    python -m datamodules.write --dataset digits OUT       # the embedded default dataset
    python -m datamodules.write --verify OUT               # each .beton against meta.json

The library lives beside it: :mod:`datamodules.beton` (atomic files, ``write_beton``,
``check_beton``) and :mod:`datamodules.imagefolder_writer` (``write_imagefolder``, the two passes);
import library names from there.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from .beton import BetonError, WriteError, check_beton, verify_files
from .imagefolder_writer import (
    DEFAULTS,
    WRITE_MODES,
    UsageError,
    check_output_dir,
    default_workers,
    human_bytes,
    print_note,
    write_imagefolder,
)

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


def _writer_arguments(p: argparse.ArgumentParser, d: dict) -> None:
    """The FFCV writer's options (ffcv-imagenet's parameters)."""
    g = p.add_argument_group("FFCV writer (ffcv-imagenet's parameters)")
    g.add_argument(
        "--max-resolution",
        type=int,
        metavar="PX",
        help=f"longest side of a stored image, larger ones are downscaled (INTER_AREA); 0: no limit "
        f"(default: {d['max_resolution']}; ffcv-imagenet: 500 for ResNet-50, 400 for ResNet-18)",
    )
    g.add_argument(
        "--write-mode",
        choices=WRITE_MODES,
        help=f"raw pixels, jpg, smart (jpg above --smart-threshold) or proportion (jpg with "
        f"probability --compress-probability) (default: {d['write_mode']})",
    )
    g.add_argument(
        "--compress-probability",
        type=float,
        metavar="P",
        help=f"fraction stored as JPEG with --write-mode proportion (default: {d['compress_probability']})",
    )
    g.add_argument(
        "--jpeg-quality",
        type=int,
        metavar="Q",
        help=f"JPEG quality 1-100 (default: {d['jpeg_quality']})",
    )
    g.add_argument(
        "--smart-threshold",
        type=int,
        metavar="BYTES",
        help=f"raw size above which --write-mode smart stores JPEG (default: {d['smart_threshold']})",
    )
    g.add_argument(
        "--num-workers",
        type=int,
        metavar="N",
        help=f"processes for the check and write passes (default: usable CPUs, at most 16; "
        f"here {default_workers()})",
    )
    g.add_argument(
        "--chunk-size",
        type=int,
        metavar="N",
        help=f"images per work item of a writer process (default: {d['chunk_size']})",
    )


def _error_arguments(p: argparse.ArgumentParser, d: dict) -> None:
    """What an undecodable file does, and the mean/std statistics."""
    g = p.add_argument_group("errors and statistics")
    g.add_argument(
        "--on-error",
        choices=("skip", "fail"),
        help=f"an undecodable file: skip it (listed in the report and meta.json) or stop, writing "
        f"nothing (default: {d['on_error']})",
    )
    g.add_argument(
        "--stats",
        choices=("imagenet", "sample"),
        help=f"meta.json mean/std: ImageNet's standard values, or computed on a sample of the train "
        f"split during the check pass (default: {d['stats']})",
    )
    g.add_argument(
        "--stats-images",
        type=int,
        metavar="N",
        help=f"train images (evenly spaced) for --stats sample (default: {d['stats_images']})",
    )


def build_parser() -> argparse.ArgumentParser:
    d = DEFAULTS
    p = argparse.ArgumentParser(
        prog="python -m datamodules.write",
        usage=_USAGE,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "paths", nargs="+", metavar="SRC OUT", help="source ImageFolder root and output directory"
    )
    p.add_argument(
        "--dataset",
        choices=("imagefolder", "digits"),
        default="imagefolder",
        help="imagefolder: SRC is an ImageNet-layout tree (default); digits: the embedded default "
        "dataset, written to OUT (no SRC)",
    )
    p.add_argument(
        "--name", help="dataset name recorded in meta.json (default: SRC's directory name)"
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="check a written OUT: each .beton against the size and SHA-256 meta.json records (exit 1 "
        "on a mismatch)",
    )
    g = p.add_argument_group("selection")
    g.add_argument("--splits", help=f"comma-separated splits to write (default: {d['splits']})")
    g.add_argument(
        "--limit-per-class",
        type=int,
        metavar="N",
        help="a subset: the first N files of each class, in sorted order (default: all)",
    )
    _writer_arguments(p, d)
    _error_arguments(p, d)
    g = p.add_argument_group("--dataset digits")
    g.add_argument(
        "--resolution",
        type=int,
        metavar="PX",
        help="side of the upscaled digit images (default: 32)",
    )
    return p


def _write_digits_cli(out: str, resolution: int | None, console: Any) -> list[str]:
    from .digits import write_digits

    out_path = check_output_dir(out, Path("/nonexistent-source"))
    t0 = time.monotonic()
    print_note(console, f"writing the embedded digits dataset to {out_path}")
    write_digits(out_path, resolution=resolution or 32)
    seconds = time.monotonic() - t0
    meta = json.loads((out_path / "meta.json").read_text())
    n = sum(meta["counts"].values())
    lines = [
        f"wrote {out_path} ('digits': {meta['num_classes']} classes, resolution "
        f"{meta['resolution']}) in "
        f"{seconds:.1f} s ({n / seconds:,.1f} images/s)"
    ]
    for s in ("train", "val"):
        lines.append(
            f"  {s:<6} {meta['counts'][s]:>7,} images  "
            f"{human_bytes((out_path / f'{s}.beton').stat().st_size)}"
        )
    lines.append(f"  meta: {out_path / 'meta.json'}")
    return lines


def _verify_cli(args: argparse.Namespace, err: Any) -> int:
    """``--verify OUT``: each .beton against its meta.json record; 0 when all match, else 1."""
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
    print(
        f"verified {out}: every .beton matches the size and SHA-256 in meta.json",
        flush=True,
    )
    return 0


def _write_cli(args: argparse.Namespace, console: Any) -> list[str]:
    """Write ``--dataset digits`` or an image tree; the report's lines."""
    if args.dataset == "digits":
        given = [f"--{k.replace('_', '-')}" for k in DEFAULTS if getattr(args, k, None) is not None]
        if given:
            raise UsageError(
                f"{', '.join(given)}: not an option of --dataset digits (it writes raw "
                f"upscaled 8x8 digits with a fixed split)"
            )
        if len(args.paths) != 1:
            raise UsageError(
                f"--dataset digits takes one path, OUT (got {len(args.paths)}: "
                f"{' '.join(args.paths)})"
            )
        lines = _write_digits_cli(args.paths[0], args.resolution, console)
    else:
        if len(args.paths) != 2:
            raise UsageError(
                f"expected two paths, SRC and OUT (got {len(args.paths)}: "
                f"{' '.join(args.paths)}); "
                f"usage: {_USAGE.splitlines()[0]}"
            )
        if args.resolution is not None:
            raise UsageError(
                "--resolution applies to --dataset digits; for an image tree use --max-resolution"
            )
        options = {k: getattr(args, k) for k in DEFAULTS}
        lines = write_imagefolder(args.paths[0], args.paths[1], console=console, **options)[
            "_report"
        ]
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
            return _verify_cli(args, err)
        lines = _write_cli(args, console)
    except UsageError as e:
        err.print(f"error: {e}", markup=False)
        return 2
    except WriteError as e:
        err.print(f"error: {e}", markup=False)
        return 1
    except KeyboardInterrupt as e:
        sigterm = bool(caught) or "SIGTERM" in str(e)
        err.print(
            f"interrupted ({'SIGTERM' if sigterm else 'SIGINT'}): no .beton or meta.json was "
            "written "
            f"or changed",
            markup=False,
        )
        return 143 if sigterm else 130
    except BetonError as e:
        err.print(f"error: the written file failed its check: {e}", markup=False)
        return 1
    except OSError as e:  # disk full, permissions changing under us, ...
        err.print(
            f"error: {e.filename + ': ' if e.filename else ''}{e.strerror or e}; nothing was "
            "written "
            f"to the output directory",
            markup=False,
        )
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
