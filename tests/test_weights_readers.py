"""Every reader of weights (evaluate, predict, export, lesion) checks a checkpoint's digest, reads
a run's config.yaml as train does, and answers bad input in one line (issue 26).  The run
directory here is made by hand (a resnet20 checkpoint with its digest, no training)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from conftest import run_cli

QUIET = ["logging.progress_bar=false", "data.num_workers=1"]


def _error_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return errors[0]


@pytest.fixture(scope="module")
def hand_run(tmp_path_factory, digits_cache) -> Path:
    """runs/r/{config.yaml, checkpoints/last.ckpt + its .sha256.json}, as training leaves them."""
    from models import create_model
    from platform.run.compose import module_kwargs
    from platform.run.config import load_config, to_yaml
    from platform.run.rundir import DIGEST_SUFFIX, file_sha256

    run = tmp_path_factory.mktemp("runs") / "r"
    (run / "checkpoints").mkdir(parents=True)
    cfg = load_config(["model=resnet20", f"data.cache_dir={digits_cache}", *QUIET])
    (run / "config.yaml").write_text(to_yaml(cfg))
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10)
    ckpt = run / "checkpoints" / "last.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": module_kwargs(cfg, 10),
            "epoch": 1,
            "global_step": 2,
        },
        ckpt,
    )
    entry = {"sha256": file_sha256(ckpt), "bytes": ckpt.stat().st_size, "epoch": 1}
    (run / "checkpoints" / f"last.ckpt{DIGEST_SUFFIX}").write_text(
        json.dumps({"file": "last.ckpt", "entries": [entry]})
    )
    return run


def _copy_run(run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run, dest)
    return dest


# ---------------------------------------------------------------------------- item 5
def test_every_reader_refuses_a_checkpoint_that_differs_from_its_digest(hand_run, tmp_path):
    run = _copy_run(hand_run, tmp_path / "r")
    ckpt = run / "checkpoints" / "last.ckpt"
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit flipped in the middle of the weights
    ckpt.write_bytes(bytes(data))
    for cmd in (
        ["platform.evaluate", f"ckpt={ckpt}", *QUIET],
        ["platform.predict", f"ckpt={ckpt}", str(tmp_path), *QUIET],
        ["platform.export", f"ckpt={ckpt}", "--format", "state_dict", str(tmp_path / "o.pt")],
    ):
        line = _error_line(run_cli(*cmd, timeout=300))
        assert str(ckpt) in line and "SHA-256 differs from its digest file" in line, line
    from platform.after.rebuild import RebuildError, load_run

    with pytest.raises(RebuildError, match="SHA-256 differs"):
        load_run(ckpt)


# ---------------------------------------------------------------------------- item 17
def test_a_crafted_pickle_is_refused_in_one_line_with_the_whole_reason(hand_run, tmp_path):
    """A checkpoint and its digest both replaced: the digest matches, the pickle is refused."""
    from platform.run.rundir import DIGEST_SUFFIX, file_sha256

    run = _copy_run(hand_run, tmp_path / "r")
    ckpt = run / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": {}, "evil": os.system}, ckpt)  # a GLOBAL weights_only refuses
    entry = {"sha256": file_sha256(ckpt), "bytes": ckpt.stat().st_size}
    (run / "checkpoints" / f"last.ckpt{DIGEST_SUFFIX}").write_text(
        json.dumps({"file": "last.ckpt", "entries": [entry]})
    )
    line = _error_line(run_cli("platform.evaluate", f"ckpt={ckpt}", *QUIET, timeout=300))
    assert str(ckpt) in line and "arbitrary code execution" in line, line


def _craft(run: Path) -> Path:
    """Replace the run's last.ckpt and its digest by a crafted pickle whose digest matches."""
    from platform.run.rundir import DIGEST_SUFFIX, file_sha256

    ckpt = run / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": {}, "evil": os.system}, ckpt)
    entry = {"sha256": file_sha256(ckpt), "bytes": ckpt.stat().st_size, "epoch": 1}
    (run / "checkpoints" / f"last.ckpt{DIGEST_SUFFIX}").write_text(
        json.dumps({"file": "last.ckpt", "entries": [entry]})
    )
    return ckpt


def test_resume_auto_refuses_a_crafted_pickle_in_one_line_leaving_the_run_as_it_was(
    hand_run, digits_cache, tmp_path
):
    """resume=auto of a finished run whose last.ckpt and digest were both replaced: exit 2, one line
    naming the file and the reason, before Lightning's loader; the run's records untouched."""
    run = _copy_run(hand_run, tmp_path / "r")
    summary = run / "summary.json"
    summary.write_text(json.dumps({"status": "finished", "epochs": 2}) + "\n")
    ckpt = _craft(run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    proc = run_cli(
        "platform.train",
        f"config={run / 'config.yaml'}",
        f"run.root={tmp_path}",
        "run.name=r",
        "resume=auto",
        "trainer.max_epochs=4",
        *QUIET,
        timeout=300,
    )
    line = _error_line(proc)
    assert str(ckpt) in line and "arbitrary code execution" in line, line
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # status, config, checkpoint, digest: as they were


# ---------------------------------------------------------------------------- items 7, 13, 19
def _png(path: Path, size: tuple[int, int], mode: str = "RGB") -> Path:
    from PIL import Image

    Image.new(mode, size).save(path)
    return path


def test_predict_skips_tiny_images_and_escapes_class_names(hand_run, digits_cache, tmp_path):
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(digits_cache, cache)
    meta = next(cache.rglob("meta.json"))
    tree = json.loads(meta.read_text())
    tree["classes"] = [f"\x1b[31mred{i}\nline\x1b[0m" for i in range(10)]
    meta.write_text(json.dumps(tree))
    images = tmp_path / "images"
    images.mkdir()
    _png(images / "a.png", (40, 40))
    _png(images / "dot.png", (1, 1))
    proc = run_cli(
        "platform.predict",
        f"ckpt={hand_run / 'checkpoints' / 'last.ckpt'}",
        str(images),
        "--top-k",
        "2",
        f"data.cache_dir={cache}",
        *QUIET,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\x1b" not in proc.stdout and "Traceback" not in proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(rows) == 1 and "a.png" in rows[0] and "\\x1b[31mred" in rows[0], proc.stdout
    skipped = [line for line in proc.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 1 and "dot.png" in skipped[0] and "1x1" in skipped[0], proc.stderr


def test_predict_refuses_an_image_that_decodes_to_gigabytes(hand_run, tmp_path):
    big = _png(tmp_path / "big.png", (12000, 12000), mode="1")  # ~20 KB on disk, 432 MB as RGB
    assert big.stat().st_size < 100_000
    proc = run_cli(
        "platform.predict", f"ckpt={hand_run / 'checkpoints' / 'last.ckpt'}", str(big), *QUIET
    )
    line = _error_line(proc)
    assert str(big) in line and "12000x12000 pixels" in line and "downscale" in line, line


# ---------------------------------------------------------------------------- item 11
@pytest.mark.parametrize(
    "text, says",
    [
        ("model: {name: resnet20\n  bad: [", "not valid YAML"),
        ("model: !!python/object:os.system {}\n", "not valid YAML"),
        ("optim:\n  lr: fast\n", "optim.lr"),
    ],
    ids=["bad-yaml", "tagged", "mistyped"],
)
def test_a_bad_saved_config_is_one_line_for_every_reader(hand_run, tmp_path, text, says):
    run = _copy_run(hand_run, tmp_path / "r")
    (run / "config.yaml").write_text(text)
    ckpt = run / "checkpoints" / "last.ckpt"
    for cmd in (
        ["platform.evaluate", f"ckpt={ckpt}", *QUIET],
        ["platform.predict", f"ckpt={ckpt}", str(tmp_path), *QUIET],
        ["platform.export", f"ckpt={ckpt}", "--format", "state_dict", str(tmp_path / "o.pt")],
    ):
        line = _error_line(run_cli(*cmd, timeout=300))
        assert str(run / "config.yaml") in line and says in line, line


# ---------------------------------------------------------------------------- item 14
@pytest.mark.parametrize(
    "out", ["/sys/o.pt", "/proc/version/o.pt"], ids=["no-write", "file-parent"]
)
def test_export_to_an_unwritable_place_is_one_line_naming_it(hand_run, out):
    """Both fail for root too: sysfs refuses new files, and a path under a regular file."""
    ckpt = hand_run / "checkpoints" / "last.ckpt"
    line = _error_line(
        run_cli("platform.export", f"ckpt={ckpt}", "--format", "state_dict", out, timeout=300)
    )
    assert out in line and "cannot write the export here" in line, line
