"""``python -m platform.predict --checkpoint PATH IMAGE_OR_DIR [...] [--top-k 5] [--json] [key=value ...]``

Top-k labels and probabilities for image files (a directory is searched recursively for
torchvision's image extensions).  The preprocessing is the validation pipeline's, done here
with the same code paths: the writer's decode (``datamodules.imagefolder_source.load_rgb``:
EXIF orientation, RGB), its longest-side cap (``meta.json`` ``writer.max_resolution``, FFCV's
``resizer``), FFCV's ``CenterCropRGBImageDecoder`` (centre square of ``val_crop_ratio`` x the
short side, ``cv2.INTER_AREA`` resize to ``val_resolution``: ``ffcv/fields/rgb_image.py``
``get_center_crop`` and ``libffcv`` ``resize``), then :class:`datamodules.normalize.DeviceNormalize`
with the dataset's mean/std.  Class names come from the dataset's ``meta.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from datamodules.imagefolder_source import IMG_EXTENSIONS, ImageError, is_image_file, load_rgb
from datamodules.imagefolder_writer import _too_small as too_small
from datamodules.normalize import DeviceNormalize
from platform.after.evaluate import USER_ERRORS, EvalError, eval_datamodule, load
from platform.run import cli
from platform.run.console import quiet_library_chatter


def center_crop_resize(
    image: np.ndarray, side: int, ratio: float, max_resolution: int | None = None
) -> np.ndarray:
    """(H, W, 3) uint8 -> (side, side, 3) uint8, as the .beton writer + FFCV's centre-crop decoder do."""
    import cv2

    if max_resolution:  # ffcv/fields/rgb_image.py resizer: the longest side capped at write time
        h, w = image.shape[:2]
        scale = max_resolution / max(h, w)
        if scale < 1:
            image = cv2.resize(
                image, (int(scale * w), int(scale * h)), interpolation=cv2.INTER_AREA
            )
    h, w = image.shape[:2]
    c = int(ratio * min(h, w))  # get_center_crop
    top, left = (h - c) // 2, (w - c) // 2
    crop = np.ascontiguousarray(image[top : top + c, left : left + c])
    return cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)


def printable(text: Any, limit: int = 200) -> str:
    """``text`` safe for a terminal line: control characters (ANSI escapes, newlines) written as
    ``repr`` writes them, the whole cut to ``limit`` characters."""
    text = str(text)
    if any(not c.isprintable() for c in text):
        text = repr(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_decoded_size(path: Path) -> None:
    """Refuse, from the header alone, an image that would decode to more pixels than PIL's
    decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``, which the .beton writer's decode warns
    at) or a side above 65535 (the writer's limit): a small file can hold a huge image."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            w, h = img.size
    except Exception:  # noqa: BLE001 -- not identifiable: load_rgb says why, in its words
        return
    limit = Image.MAX_IMAGE_PIXELS or 0
    if (limit and w * h > limit) or max(w, h) > 65535:
        raise ImageError(
            str(path),
            f"{w}x{h} pixels would decode to {w * h * 3 / 2**30:.1f} GiB; images above "
            f"{limit} pixels or 65535 px a side are refused, downscale it first",
        )


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """The image files named, or found under the directories named (sorted); an error if none."""
    files: list[Path] = []
    for p in map(lambda s: Path(s).expanduser(), paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and is_image_file(f.name))
            if not found:
                raise EvalError(
                    f"{p}: no image files in this directory (expected names ending in "
                    f"{', '.join(IMG_EXTENSIONS)})"
                )
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise EvalError(
                f"{p}: no such file or directory (give image files or a directory of images)"
            )
    if not files:
        raise EvalError(
            "no images given (usage: python -m platform.predict ckpt=PATH IMAGE_OR_DIR ...)"
        )
    return files


def preprocessing(cfg) -> dict[str, Any]:
    """Side, crop ratio, mean/std, class names and writer cap of the config's validation pipeline."""
    dm = eval_datamodule(cfg)
    dm.prepare_data()  # the embedded digits are written once if absent (meta.json: names, mean/std)
    dm.setup("validate")
    meta = dm._meta() if hasattr(dm, "_meta") else {}
    return {
        "side": int(dm.val_resolution),
        "ratio": float(dm.val_crop_ratio),
        "mean": dm.mean,
        "std": dm.std,
        "classes": getattr(dm, "class_names", None) or getattr(dm, "classes", None),
        "max_resolution": (meta.get("writer") or {}).get("max_resolution"),
    }


def predict(
    ckpt: str | Path,
    inputs: Sequence[str | Path],
    overrides: Sequence[str] = (),
    top_k: int = 5,
    batch_size: int = 64,
) -> list[dict[str, Any]]:
    """``[{"file", "top": [{"label", "index", "prob"}, ...]}, ...]`` for the images in ``inputs``,
    then ``{"file", "error"}`` for each one that could not be read (skipped; all unreadable is an
    :class:`EvalError`)."""
    module, cfg, _ = load(ckpt, overrides)
    files = image_files(inputs)
    pre = preprocessing(cfg)
    num_classes = module.hparams.num_classes
    names = pre["classes"] if pre["classes"] and len(pre["classes"]) == num_classes else None
    names = [printable(n) for n in names] if names else None
    normalize = DeviceNormalize(pre["mean"], pre["std"])
    k = max(1, min(top_k, num_classes))
    out: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        arrays, read = [], []
        for f in chunk:
            try:
                check_decoded_size(f)
                rgb = load_rgb(f)[0]
            except ImageError as e:  # skipped and listed; the others are still predicted
                skipped.append({"file": str(f), "error": str(e)})
                continue
            small = too_small(rgb.shape[0], rgb.shape[1], pre["max_resolution"])
            if small:
                print(f"skipped {printable(f)}: {small}", file=sys.stderr)
                continue
            arrays.append(center_crop_resize(rgb, pre["side"], pre["ratio"], pre["max_resolution"]))
            read.append(f)
        if not arrays:
            continue
        chunk = read
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # (N, 3, side, side) uint8
        with torch.inference_mode():
            probs = torch.softmax(module(normalize.images(images)).float(), dim=1)
        p, idx = probs.topk(k, dim=1)
        for f, ps, ids in zip(chunk, p.tolist(), idx.tolist(), strict=False):
            out.append(
                {
                    "file": str(f),
                    "top": [
                        {"label": names[i] if names else str(i), "index": i, "prob": round(q, 6)}
                        for q, i in zip(ps, ids, strict=False)
                    ],
                }
            )
    if skipped and not out:
        raise EvalError(
            f"{skipped[0]['error']} (predict takes image files: {', '.join(IMG_EXTENSIONS)})"
            + (f"; {len(skipped) - 1} more unreadable" if len(skipped) > 1 else "")
        )
    return out + skipped


def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no images left to predict (see the lines above)"
    width = max(len(printable(r["file"], 10**4)) for r in rows)
    return "\n".join(
        f"{printable(r['file'], 10**4):<{width}}  "
        + (
            f"skipped: {printable(r['error'], 10**4)}"
            if "error" in r
            else "  ".join(f"{t['label']} {t['prob']:.4f}" for t in r["top"])
        )
        for r in rows
    )


@cli.entry(USER_ERRORS)
def main(argv: list[str]) -> int:
    parser = cli.command_parser("predict", __doc__)
    cli.add_checkpoint(parser, help="the weights: a checkpoint of ours or a state_dict")
    parser.add_argument("inputs", nargs="*", help="image files or directories")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    quiet_library_chatter()  # the filters train installs: no srun hint, no Lightning tips
    args, overrides = cli.parse(parser, argv)
    rows = predict(args.checkpoint, args.inputs, overrides, args.top_k)
    print(json.dumps(rows, indent=1) if args.json else table(rows), flush=True)
    bad = [r["file"] for r in rows if "error" in r]
    if bad:  # the readable ones were predicted; the run still fails
        print(
            f"error: {len(bad)} of {len(rows)} image(s) could not be read and were skipped: "
            f"{', '.join(bad[:5])}" + (" ..." if len(bad) > 5 else ""),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
