"""``python -m datamodules.write SRC OUT``: an ImageNet-layout tree with real-world oddities to .beton.

One generated tree (4 classes, 20-80 px images) holds one of each file ImageNet is known to
contain: a CMYK JPEG, a greyscale JPEG, a PNG named ``.JPEG``, an EXIF-rotated JPEG, a
truncated JPEG and a zero-byte file.  It is written once (``--write-mode raw``, module
fixture) and the tests check that write; the failure paths run their own small writes.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, cli_env
from PIL import Image, ImageOps

from datamodules.beton import beton_labels, check_beton
from datamodules.write import main

CLASSES = ["Bee", "ant", "cat", "dog_2"]  # sorted as ImageFolder sorts: upper case first
SIZES = [(20, 28), (80, 48), (31, 64), (50, 50), (24, 72), (64, 40)]  # (h, w); some below 32 px
BAD = {"train/Bee/trunc.JPEG": "truncated", "val/dog_2/empty.JPEG": "empty file"}
EXIF_FILE = "val/cat/exif6.JPEG"


def _pixels(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth gradients plus noise: a crop or rotation mistake shows, JPEG keeps it recognisable."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack(
        [x * 255 / max(w - 1, 1), y * 255 / max(h - 1, 1), 128 + 100 * np.sin((x + 2 * y) / 7)], -1
    )
    return np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def _jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, **kw)
    return buf.getvalue()


def make_tree(root: Path) -> Path:
    """SRC/train: 6 images per class (+1 in a nested folder), SRC/val: 3 per class, oddities included."""
    seed = 0
    for split, per_class in (("train", 6), ("val", 3)):
        for c in CLASSES:
            d = root / split / c
            d.mkdir(parents=True)
            for k in range(per_class):
                seed += 1
                h, w = SIZES[(k + len(c)) % len(SIZES)]
                img = Image.fromarray(_pixels(h, w, seed))
                ext = (".JPEG", ".jpg", ".png")[k % 3]
                img.save(d / f"img{k}{ext}", **({"quality": 95} if ext != ".png" else {}))
    t, v = root / "train", root / "val"
    Image.fromarray(_pixels(40, 60, 100)).convert("CMYK").save(t / "cat" / "cmyk.JPEG", quality=95)
    Image.fromarray(_pixels(36, 52, 101)).convert("L").save(t / "dog_2" / "gray.JPEG", quality=95)
    Image.fromarray(_pixels(30, 45, 102)).save(t / "ant" / "png_named.JPEG", format="PNG")
    (t / "ant" / "extra").mkdir()
    Image.fromarray(_pixels(22, 26, 103)).save(t / "ant" / "extra" / "nested.jpg", quality=95)
    data = _jpeg_bytes(Image.fromarray(_pixels(64, 64, 104)))
    (t / "Bee" / "trunc.JPEG").write_bytes(data[: len(data) * 6 // 10])
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    (v / "cat" / "exif6.JPEG").write_bytes(
        _jpeg_bytes(Image.fromarray(_pixels(30, 60, 105)), exif=exif)
    )
    (v / "dog_2" / "empty.JPEG").write_bytes(b"")
    (t / "cat" / "notes.txt").write_text("not an image: ImageFolder ignores it, and so do we")
    return root


def run_write(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "datamodules.write", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
    )


def read_raw_images(path: Path) -> list[np.ndarray]:
    """Every stored image of a raw-mode .beton, exactly as stored (no decoder, no resize)."""
    from ffcv.reader import Reader

    reader = Reader(str(path))
    meta = reader.metadata[f"f{reader.field_names.index('image')}"]
    data = np.memmap(path, dtype=np.uint8, mode="r")
    out = []
    for m in meta:
        assert m["mode"] == 1, "written with --write-mode raw"
        h, w, ptr = int(m["height"]), int(m["width"]), int(m["data_ptr"])
        out.append(np.array(data[ptr : ptr + h * w * 3]).reshape(h, w, 3))
    return out


def pil_reference(path: str) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    src = make_tree(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("out") / "ffcv"
    proc = run_write(
        src,
        out,
        "--write-mode",
        "raw",
        "--num-workers",
        "2",
        "--chunk-size",
        "4",
        "--stats",
        "sample",
    )
    assert proc.returncode == 0, proc.stderr
    return src, out, proc


def _imagefolder(src: Path, split: str):
    from torchvision.datasets import ImageFolder

    return ImageFolder(str(src / split))


def test_counts_classes_and_labels_match_imagefolder_minus_bad_files(written):
    src, out, _ = written
    meta = json.loads((out / "meta.json").read_text())
    for split in ("train", "val"):
        ds = _imagefolder(src, split)
        kept = [(p, y) for p, y in ds.samples if os.path.relpath(p, src) not in BAD]
        assert len(kept) == len(ds.samples) - 1  # exactly one bad file per split
        assert ds.classes == CLASSES == meta["classes"] and meta["num_classes"] == 4
        assert meta["counts"][split] == len(kept) == check_beton(out / f"{split}.beton")
        assert beton_labels(out / f"{split}.beton").tolist() == [y for _, y in kept]
    assert meta["counts"] == {"train": 28, "val": 13}
    assert sorted(p.name for p in out.iterdir()) == [
        "meta.json",
        "train.beton",
        "val.beton",
    ]  # no temporaries


def test_meta_json_sidecar(written):
    src, out, _ = written
    meta = json.loads((out / "meta.json").read_text())
    assert meta["dataset"] == src.name and meta["source"] == str(src.resolve())
    assert {e["path"]: e["split"] for e in meta["skipped"]} == {p: p.split("/")[0] for p in BAD}
    for e in meta["skipped"]:
        assert BAD[e["path"]] in e["error"]
    w = meta["writer"]
    assert (w["write_mode"], w["max_resolution"], w["jpeg_quality"], w["compress_probability"]) == (
        "raw",
        500,
        90,
        0.5,
    )
    assert w["on_error"] == "skip" and w["chunk_size"] == 4 and w["num_workers"] == 2
    assert (
        meta["stats"]["method"] == "sample" and meta["stats"]["images"] == 28
    )  # every good train image
    assert len(meta["mean"]) == len(meta["std"]) == 3
    assert all(0 < m < 1 for m in meta["mean"]) and all(0 < s < 0.5 for s in meta["std"])
    assert meta["conversions"]["train"] == {"CMYK->RGB": 1, "L->RGB": 1, "PNG named .JPEG": 1}
    assert meta["conversions"]["val"] == {"EXIF-rotated": 1}
    assert (
        meta["created"] and meta["files"]["train"]["bytes"] == (out / "train.beton").stat().st_size
    )


def test_report_lists_the_bad_files_and_speeds(written):
    _, out, proc = written
    report = proc.stdout
    assert "Traceback" not in proc.stderr
    skipped_lines = [ln.strip() for ln in report.splitlines() if ln.startswith("    ")]
    assert sorted(ln.split(":")[0] for ln in skipped_lines) == sorted(BAD)
    assert "skipped 2 file(s)" in report and "images/s" in report and "MiB" in report
    assert str(out / "meta.json") in report


def test_stored_images_are_pil_decodes_rgb_and_exif_rotated(written):
    """Raw mode stores exactly PIL's decode: EXIF orientation applied, CMYK/greyscale/PNG as RGB."""
    src, out, _ = written
    for split in ("train", "val"):
        kept = [
            p for p, _ in _imagefolder(src, split).samples if os.path.relpath(p, src) not in BAD
        ]
        stored = read_raw_images(out / f"{split}.beton")
        assert len(stored) == len(kept)
        for path, image in zip(kept, stored, strict=False):
            assert image.shape[2] == 3 and np.array_equal(image, pil_reference(path)), path
    # the EXIF image: stored 60 wide x 30 high, orientation 6 -> displayed 30 wide x 60 high, turned clockwise
    kept = [p for p, _ in _imagefolder(src, "val").samples if os.path.relpath(p, src) not in BAD]
    image = read_raw_images(out / "val.beton")[kept.index(str(src / EXIF_FILE))]
    with Image.open(src / EXIF_FILE) as img:
        as_stored = np.asarray(img.convert("RGB"))
    assert as_stored.shape == (30, 60, 3) and image.shape == (60, 30, 3)
    assert np.array_equal(image, np.rot90(as_stored, k=-1))


def loader_centre_crops(path: Path, size: int, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """All images of a .beton through an ffcv Loader with CenterCropRGBImageDecoder, in order."""
    from ffcv.fields.decoders import CenterCropRGBImageDecoder, IntDecoder
    from ffcv.loader import Loader, OrderOption

    loader = Loader(
        str(path),
        batch_size=64,
        num_workers=1,
        order=OrderOption.SEQUENTIAL,
        drop_last=False,
        pipelines={
            "image": [CenterCropRGBImageDecoder((size, size), ratio=ratio)],
            "label": [IntDecoder()],
        },
    )
    images, labels = zip(*[(np.array(x), np.array(y).reshape(-1)) for x, y in loader], strict=False)
    return np.concatenate(images), np.concatenate(labels)


def pil_centre_crop(path: str, size: int, ratio: float) -> np.ndarray:
    """FFCV's centre crop replicated on PIL's decode: the centred square of side int(ratio * min(h, w))
    (ffcv.fields.rgb_image.get_center_crop), resized with cv2 INTER_AREA (as libffcv's resize)."""
    import cv2

    ref = pil_reference(path)
    h, w = ref.shape[:2]
    c = int(ratio * min(h, w))
    top, left = (h - c) // 2, (w - c) // 2
    return cv2.resize(
        np.ascontiguousarray(ref[top : top + c, left : left + c]),
        (size, size),
        interpolation=cv2.INTER_AREA,
    )


def mean_abs_diffs(images: np.ndarray, paths: list[str], size: int, ratio: float) -> list[float]:
    return [
        float(
            np.abs(got.astype(np.int16) - pil_centre_crop(p, size, ratio).astype(np.int16)).mean()
        )
        for p, got in zip(paths, images, strict=False)
    ]


def test_validation_centre_crop_through_ffcv_loader_matches_pil(written):
    """Validation images through FFCV's decoder (centre crop 224/256, 32 px) against the same crop of
    PIL's decode of the source file.  Raw mode, so only the resize implementation could differ
    (libffcv's OpenCV vs the cv2 module): mean |diff| <= 0.5 grey levels (measured: 0.0)."""
    src, out, _ = written
    ratio, size = 224 / 256, 32
    images, labels = loader_centre_crops(out / "val.beton", size, ratio)
    kept = [
        (p, y) for p, y in _imagefolder(src, "val").samples if os.path.relpath(p, src) not in BAD
    ]
    assert images.shape == (len(kept), size, size, 3) and labels.tolist() == [y for _, y in kept]
    diffs = mean_abs_diffs(images, [p for p, _ in kept], size, ratio)
    assert max(diffs) <= 0.5, diffs


def test_on_error_fail_names_the_file_and_writes_nothing(tmp_path, capsys):
    """In process (``main`` is the CLI without the interpreter start-up; the subprocess path is
    covered by the other tests): exit code 1, one line naming the first bad file, OUT untouched."""
    src = make_tree(tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    (out / "val.beton").write_bytes(b"an older file")
    assert main([str(src), str(out), "--on-error", "fail", "--num-workers", "2"]) == 1
    captured = capsys.readouterr()
    err = [ln for ln in captured.err.splitlines() if ln.startswith("error:")]
    assert (
        len(err) == 1
        and str(src / "train" / "Bee" / "trunc.JPEG") in err[0]
        and "truncated" in err[0]
    ), err
    assert "Traceback" not in captured.err and captured.out == ""
    assert (
        sorted(p.name for p in out.iterdir()) == ["val.beton"]
        and (out / "val.beton").read_bytes() == b"an older file"
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_write_leaves_nothing(tmp_path, sig):
    """A slow source (500 hard links to one 400x400 JPEG, one worker, JPEG re-encoding), interrupted
    while train.beton is being written: exit 130/143, OUT left empty (no .beton, no temporary)."""
    src = tmp_path / "src"
    big = tmp_path / "big.JPEG"
    Image.fromarray(np.tile(_pixels(100, 100, 7), (4, 4, 1))).save(big, quality=95)
    for split, n in (("train", 250), ("val", 3)):
        for c in ("a", "b"):
            (src / split / c).mkdir(parents=True)
            for k in range(n):
                os.link(big, src / split / c / f"{k:04d}.JPEG")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "datamodules.write",
            str(src),
            str(out),
            "--num-workers",
            "1",
            "--chunk-size",
            "5",
            "--write-mode",
            "jpg",
        ],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    deadline = time.time() + 60
    while (
        not list(out.glob(".train.beton.tmp-*")) and time.time() < deadline and proc.poll() is None
    ):
        time.sleep(0.02)
    assert list(out.glob(".train.beton.tmp-*")), "the write never started"
    time.sleep(0.1)  # the write of train.beton takes ~1-2 s here
    os.killpg(proc.pid, sig)  # like Ctrl-C in a terminal: the whole process group
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), stderr
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert list(out.iterdir()) == []  # no .beton, no meta.json, no temporary file


def test_layout_errors_exit_2_naming_the_path(tmp_path):
    src = make_tree(tmp_path / "src")
    (src / "val").rename(tmp_path / "val-elsewhere")
    proc = run_write(src, tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert str(src / "val") in proc.stderr and "SRC/val/<class>/<image>" in proc.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_more_layout_errors_in_process(tmp_path, capsys):
    src = make_tree(tmp_path / "src")
    (src / "train" / "empty_class").mkdir()
    cases = [
        (
            [str(src), str(tmp_path / "o")],
            [str(src / "train" / "empty_class"), "empty class directory"],
        ),
        (
            [str(tmp_path / "nope"), str(tmp_path / "o")],
            [str(tmp_path / "nope"), "no such directory"],
        ),
        (
            [str(src / "val"), str(tmp_path / "o")],
            [str(src / "val" / "train"), "no such directory"],
        ),
    ]
    for args, words in cases:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert all(w in err for w in words), err
    (src / "train" / "empty_class").rmdir()
    (src / "val" / "zebra").mkdir()
    Image.fromarray(_pixels(20, 20, 1)).save(src / "val" / "zebra" / "z.jpg")
    assert main([str(src), str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(src / "val" / "zebra") in err and "not in train/" in err
    (src / "val" / "zebra" / "z.jpg").unlink()
    (src / "val" / "zebra").rmdir()
    (tmp_path / "a_file").write_text("x")
    assert main([str(src), str(tmp_path / "a_file" / "out"), "--splits", "train"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "a_file" / "out") in err and "not writable" in err
    assert main([str(src), str(src / "train" / "ffcv")]) == 2
    assert "inside" in capsys.readouterr().err
    assert main(["--dataset", "digits", str(tmp_path / "d"), "--write-mode", "jpg"]) == 2
    assert "--write-mode" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_an_unreadable_class_directory_is_cannot_read_not_empty(tmp_path):
    """Issue 26 #18: a class directory that cannot be listed was "empty class directory".  The
    tests run as root, whom mode 000 does not stop: the writer runs without the capabilities that
    bypass permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so the EACCES is real."""
    src = make_tree(tmp_path / "src")
    locked = src / "train" / "ant"
    locked.chmod(0)
    try:
        proc = subprocess.run(
            [
                "setpriv",
                "--bounding-set=-dac_override,-dac_read_search",
                sys.executable,
                "-m",
                "datamodules.write",
                str(src),
                str(tmp_path / "out"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env=cli_env(),
        )
    finally:
        locked.chmod(0o755)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert f"{locked}: cannot read (Permission denied)" in err and "empty" not in err, err


def test_scan_matches_torchvision_and_limit_per_class(tmp_path):
    from torchvision.datasets.folder import IMG_EXTENSIONS as TV

    from datamodules.imagefolder_source import IMG_EXTENSIONS, scan_tree

    assert IMG_EXTENSIONS == TV
    src = make_tree(tmp_path / "src")
    tree = scan_tree(src)
    for split in ("train", "val"):
        assert tree.samples[split] == _imagefolder(src, split).samples
    limited = scan_tree(src, limit_per_class=2)
    full = _imagefolder(src, "train").samples
    assert limited.samples["train"] == [
        s for s in full if [t for t in full if t[1] == s[1]].index(s) < 2
    ]
    ant = [os.path.relpath(p, src) for p, y in full if y == 1]
    assert (
        ant[-1] == "train/ant/extra/nested.jpg"
    )  # torchvision's walk: a class's own files, then sub-folders


def test_default_mode_writes_jpeg_and_a_split_subset(tmp_path, capsys):
    """ffcv-imagenet's defaults (proportion 0.5, quality 90, 500 px), in process: some JPEG, some raw;
    a second run with --splits val keeps train's counts in meta.json."""
    from ffcv.reader import Reader

    src = make_tree(tmp_path / "src")
    out = tmp_path / "out"
    assert main([str(src), str(out), "--num-workers", "1", "--limit-per-class", "4"]) == 0
    modes = Reader(str(out / "train.beton")).metadata["f0"]["mode"]
    assert set(modes.tolist()) == {
        0,
        1,
    }  # jpg and raw (16 images at p=0.5: both, except with odds 2^-15)
    # JPEG-stored images (quality 90, 4:2:0) decode to within JPEG tolerance of PIL's centre crop: on these
    # noisy images a mean |diff| of 3-6 grey levels was measured, against ~40+ for a wrong image
    full = _imagefolder(src, "train").samples
    paths = [p for p, y in full if [q for q, z in full if z == y].index(p) < 4]
    images, _ = loader_centre_crops(out / "train.beton", 32, 224 / 256)
    diffs = np.array(mean_abs_diffs(images, paths, 32, 224 / 256))
    assert diffs[modes == 1].max() <= 0.5 and 0 < diffs[modes == 0].max() <= 8.0, (diffs, modes)
    wrong = np.array(mean_abs_diffs(images, paths[1:] + paths[:1], 32, 224 / 256))
    assert wrong.min() > 3 * 8.0, wrong
    meta = json.loads((out / "meta.json").read_text())
    assert meta["writer"]["write_mode"] == "proportion" and meta["mean"] == [0.485, 0.456, 0.406]
    assert meta["counts"] == {"train": 16, "val": 13}  # Bee's trunc.JPEG sorts after its first 4
    capsys.readouterr()
    assert (
        main([str(src), str(out), "--num-workers", "1", "--splits", "val", "--write-mode", "raw"])
        == 0
    )
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"] == {"train": 16, "val": 13} and meta["carried_over"]["splits"] == [
        "train"
    ]
    assert [e["path"] for e in meta["skipped"]] == ["val/dog_2/empty.JPEG"]


def test_digits_route(tmp_path, capsys):
    assert main(["--dataset", "digits", str(tmp_path / "d")]) == 0
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert meta["dataset"] == "digits" and meta["counts"] == {"train": 1438, "val": 359}
    assert "wrote" in capsys.readouterr().out
