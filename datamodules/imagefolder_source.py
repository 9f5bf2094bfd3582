"""ImageFolder/ImageNet source trees for the ``.beton`` writer: scan, check, decode.

The layout is ImageNet's as torchvision reads it::

    SRC/train/<class>/**/<image>      SRC/val/<class>/**/<image>

* Classes are the sorted sub-directory names of ``SRC/train`` and class indices follow that
  order -- exactly :func:`torchvision.datasets.folder.find_classes`.  ``SRC/val`` is labelled
  with the *training* indices; a val class that is not a training class is an error, a
  training class absent from val is allowed (reported).
* Files are collected like :func:`torchvision.datasets.folder.make_dataset`: a sorted
  ``os.walk`` (following links) of each class directory, sorted file names, kept when the name
  ends (case-insensitively) in one of torchvision's ``IMG_EXTENSIONS`` -- so ``.JPEG`` counts.
  Unlike torchvision, a directory link is followed **at most once per real directory** in the
  whole tree (identified by device and inode): a link back to a parent (a cycle) or a second
  link to a directory already walked is not entered -- it would duplicate samples, and under
  another class mislabel them -- and is listed in ``SourceTree.links``; a link that leaves its
  class directory is followed once and listed too.  Both appear in the write report and
  ``meta.json``.
  The list is duplicated here (not imported) so that the check-and-decode path stays cheap to
  import in worker processes; a test holds it equal to torchvision's.
* Images are decoded by content, not by extension (a PNG named ``.JPEG`` is a PNG), fully
  (``Image.load()``: a truncated file raises, as ``ImageFile.LOAD_TRUNCATED_IMAGES`` is
  False by default), rotated by their EXIF orientation (``ImageOps.exif_transpose``), and
  converted to RGB (CMYK, greyscale, palette, RGBA ...).

Imports nothing of ``platform/`` or ``models/``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

IMG_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)  # torchvision's
SPLITS = ("train", "val")
LAYOUT = (
    "expected the ImageNet/ImageFolder layout SRC/train/<class>/<image> and "
    "SRC/val/<class>/<image>, "
    "one sub-directory per class, with the same class names in both"
)
_EXT_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".ppm": "PPM",
    ".pgm": "PPM",
}
_FAMILY = {
    "MPO": "JPEG"
}  # a camera's multi-picture JPEG is still a JPEG (PIL decodes the first picture)


class LayoutError(ValueError):
    """The source tree is not an ImageFolder/ImageNet tree; the message names the path."""


class ImageError(ValueError):
    """One image file that cannot be decoded; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


# --------------------------------------------------------------------------- scanning
@dataclass
class SourceTree:
    """An ImageFolder tree: its classes and, per split, the ``(path, label)`` samples in order."""

    root: Path
    classes: list[str]
    samples: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    missing_classes: dict[str, list[str]] = field(
        default_factory=dict
    )  # split -> training classes it lacks
    links: list[dict[str, str]] = field(
        default_factory=list
    )  # links not entered or leaving a class

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def find_classes(directory: str | os.PathLike) -> list[str]:
    """Sorted class directory names, exactly as torchvision's ``find_classes``."""
    with os.scandir(directory) as it:
        return sorted(entry.name for entry in it if entry.is_dir())


def _cannot_read(error: OSError) -> None:
    raise LayoutError(f"{error.filename}: cannot read ({error.strerror or error})") from None


def class_files(
    class_dir: str | os.PathLike,
    limit: int | None = None,
    seen: set[tuple[int, int]] | None = None,
    links: list[dict[str, str]] | None = None,
) -> list[str]:
    """Image files of one class directory in torchvision's order (first ``limit`` of them).

    Directory links are followed at most once per real directory: ``seen`` holds the
    ``(st_dev, st_ino)`` of the directories walked so far (share it across classes and splits),
    and each directory not entered (already walked: a cycle or a second link) or link leaving
    ``class_dir`` is appended to ``links`` as ``{"path", "target", "action"}``.
    """
    seen = set() if seen is None else seen
    links = [] if links is None else links
    top = os.path.realpath(class_dir)
    st = os.stat(class_dir)
    if (st.st_dev, st.st_ino) in seen:  # the class directory itself links to one already walked
        raise LayoutError(
            f"{class_dir}: the same real directory ({top}) as one already walked; a "
            "class directory linked to another class or split would duplicate and mislabel "
            "its images"
        )
    seen.add((st.st_dev, st.st_ino))
    walked: list[tuple[str, list[str]]] = []
    # os.walk skips a directory it cannot list: that would read as "empty", or silently drop images
    for root, dirs, fnames in os.walk(class_dir, followlinks=True, onerror=_cannot_read):
        keep = []
        for d in sorted(dirs):
            path = os.path.join(root, d)
            try:
                st = os.stat(path)
            except OSError as e:  # a dangling link
                links.append(
                    {
                        "path": path,
                        "target": os.path.realpath(path),
                        "action": f"not entered: unreadable ({type(e).__name__})",
                    }
                )
                continue
            if (st.st_dev, st.st_ino) in seen:
                links.append(
                    {
                        "path": path,
                        "target": os.path.realpath(path),
                        "action": "not entered: directory already walked "
                        "(a link cycle or a second link)",
                    }
                )
                continue
            seen.add((st.st_dev, st.st_ino))
            keep.append(d)
            target = os.path.realpath(path)
            if os.path.islink(path) and os.path.commonpath([top, target]) != top:
                links.append(
                    {
                        "path": path,
                        "target": target,
                        "action": "followed once: leaves its class directory",
                    }
                )
        dirs[:] = keep
        walked.append((root, fnames))
    out: list[str] = []
    for root, fnames in sorted(walked):
        for fname in sorted(fnames):
            if is_image_file(fname):
                out.append(os.path.join(root, fname))
                if limit is not None and len(out) >= limit:
                    return out
    return out


def scan_tree(
    src: str | os.PathLike, splits: Sequence[str] = SPLITS, limit_per_class: int | None = None
) -> SourceTree:
    """Find the classes (from ``SRC/train``) and the samples of each split; raise
    :class:`LayoutError` naming the path for a missing directory or an empty class."""
    root = Path(src).expanduser()
    if not root.exists():
        raise LayoutError(f"{root}: no such directory; {LAYOUT}")
    if not root.is_dir():
        raise LayoutError(f"{root}: not a directory; {LAYOUT}")
    root = root.resolve()
    train_dir = root / "train"
    if not train_dir.is_dir():
        hint = (
            f"; SRC is the directory holding train/ and val/ (did you mean {root.parent}?)"
            if root.name in SPLITS and (root.parent / "train").is_dir()
            else ""
        )
        raise LayoutError(
            f"{train_dir}: no such directory (the classes are read from it){hint}; {LAYOUT}"
        )
    classes = find_classes(train_dir)
    if not classes:
        raise LayoutError(f"{train_dir}: no class sub-directories in it; {LAYOUT}")
    tree = SourceTree(root, classes)
    index = tree.class_to_idx
    seen: set[tuple[int, int]] = set()  # real directories walked, across classes and splits
    for split in splits:
        split_dir = root / split
        if not split_dir.is_dir():
            raise LayoutError(f"{split_dir}: no such directory; {LAYOUT}")
        present = find_classes(split_dir)
        unknown = [c for c in present if c not in index]
        if unknown:
            raise LayoutError(
                f"{split_dir / unknown[0]}: class {unknown[0]!r} is in {split}/ but not in train/ "
                f"({len(unknown)} such class{'es' if len(unknown) > 1 else ''}: "
                f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}); {LAYOUT}"
            )
        samples: list[tuple[str, int]] = []
        for c in present:
            n_links = len(tree.links)
            files = class_files(split_dir / c, limit_per_class, seen, tree.links)
            for entry in tree.links[n_links:]:
                entry.update(split=split, path=relative(entry["path"], root))
            if not files:
                raise LayoutError(
                    f"{split_dir / c}: empty class directory (no file ending in "
                    f"{', '.join(IMG_EXTENSIONS)}, any case); remove it or add its images"
                )
            samples.extend((f, index[c]) for f in files)
        tree.samples[split] = samples
        missing = [c for c in classes if c not in set(present)]
        if missing:
            tree.missing_classes[split] = missing
    return tree


# --------------------------------------------------------------------------- decoding
@dataclass
class ImageInfo:
    """What :func:`load_rgb` found out about one file besides its pixels."""

    height: int = 0
    width: int = 0
    notes: list[str] = field(
        default_factory=list
    )  # "CMYK->RGB", "PNG named .JPEG", "EXIF orientation 6"
    warnings: list[str] = field(default_factory=list)


def load_rgb(path: str | os.PathLike) -> tuple[np.ndarray, ImageInfo]:
    """Decode ``path`` fully to an RGB ``uint8`` ``(H, W, 3)`` array, EXIF orientation applied.

    Raises :class:`ImageError` with a one-line reason for an empty, unidentifiable, truncated
    or otherwise undecodable file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = os.fspath(path)
    info = ImageInfo()
    try:
        if os.path.getsize(path) == 0:
            raise ImageError(path, "empty file (0 bytes)")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Image.open(path) as img:
                fmt = img.format
                img.load()  # decodes everything: truncated data raises here
                expected = _EXT_FORMATS.get(os.path.splitext(path)[1].lower())
                if expected and fmt and _FAMILY.get(fmt, fmt) != expected:
                    info.notes.append(f"{fmt} named {os.path.splitext(path)[1]}")
                try:
                    orientation = int(img.getexif().get(0x0112, 1) or 1)
                    rotated = ImageOps.exif_transpose(img) if 2 <= orientation <= 8 else img
                    if 2 <= orientation <= 8:
                        info.notes.append(f"EXIF orientation {orientation}")
                except Exception as e:  # unreadable EXIF: keep the pixels as stored
                    info.warnings.append(f"EXIF ignored ({type(e).__name__}: {e})")
                    rotated = img
                mode = rotated.mode
                if mode != "RGB":
                    info.notes.append(f"{mode}->RGB")
                    if mode == "P" and "transparency" in rotated.info:
                        rotated = rotated.convert("RGBA")
                    rotated = rotated.convert("RGB")
                array = np.asarray(rotated, dtype=np.uint8)
        info.warnings += [_one_line(str(w.message)) for w in caught]
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(
            path, "not an image file PIL can identify (unknown or corrupt header)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        msg = _one_line(str(e))
        reason = (
            f"truncated image ({msg})"
            if "truncated" in msg
            else f"undecodable ({type(e).__name__}: {msg})"
        )
        raise ImageError(path, reason) from None
    except Exception as e:  # DecompressionBombError, MemoryError in a codec, ...
        raise ImageError(path, f"undecodable ({type(e).__name__}: {_one_line(str(e))})") from None
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(path, f"decoded to an unusable array of shape {array.shape}")
    if array.shape[0] > 65535 or array.shape[1] > 65535:  # FFCV stores sides as uint16
        raise ImageError(path, f"{array.shape[1]}x{array.shape[0]} pixels: a side exceeds 65535")
    info.height, info.width = int(array.shape[0]), int(array.shape[1])
    return np.ascontiguousarray(array), info


def _one_line(text: str) -> str:
    return " ".join(text.split())


def check_image(
    path: str, with_stats: bool = False
) -> tuple[ImageInfo | None, str | None, np.ndarray | None]:
    """Decode ``path`` fully; return ``(info, None, stats)`` or ``(None, reason, None)``.

    ``stats`` (when asked) is the image's per-channel mean and mean square, in [0, 1] units,
    shape ``(2, 3)`` float64.
    """
    try:
        array, info = load_rgb(path)
    except ImageError as e:
        return None, e.reason, None
    stats = None
    if with_stats:
        step = max(
            1, int(np.sqrt(array.shape[0] * array.shape[1] / 65536))
        )  # <= ~64k pixels per image
        px = array[::step, ::step].reshape(-1, 3).astype(np.float64) / 255.0
        stats = np.stack([px.mean(0), (px * px).mean(0)])
    return info, None, stats


class FileDataset:
    """Indexed ``(RGB uint8 HxWx3 array, label)`` dataset over checked files, for FFCV's writer."""

    def __init__(self, samples: Sequence[tuple[str, int]]) -> None:
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        path, label = self.samples[i]
        return load_rgb(path)[0], int(label)


def relative(path: str, root: Path) -> str:
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return path
