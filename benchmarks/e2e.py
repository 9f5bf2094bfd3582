"""End to end: a CPU training epoch of ``platform.run.train`` vs torchvision's reference train.py.

    python -m benchmarks e2e --reference DIR [--models resnet18,resnet50] [--resolution 160]
        [--val-resize 182] [--images 256] [--classes 10] [--batch 32] [--workers 2]
        [--alternations 2] [--quick]

The fair peer of our job is torchvision's ``references/classification/train.py``.  The project does
not vendor it and this suite fetches nothing: ``--reference`` names a directory holding that
``train.py`` and the sibling modules it imports (``presets.py``, ``transforms.py``, ``utils.py``;
``sampler.py`` in newer versions), or the ``train.py`` itself, e.g. a clone outside the repository::

    git clone --depth 1 https://github.com/pytorch/vision /tmp/vision
    python -m benchmarks e2e --reference /tmp/vision/references/classification

Both train the same architecture (ours from the registry, theirs ``torchvision.models.<name>``)
on the same generated ImageFolder tree (natural-image JPEGs,
:func:`benchmarks.data_loading.make_tree`,
``train/`` and ``val/``), on the CPU, same batch, training crop ``--resolution`` (random-resized
crop + flip), validation resize ``--val-resize`` + centre crop, ``--workers`` loader processes, SGD
(lr ``--lr``, momentum 0.9, no Nesterov, weight decay ``--weight-decay``; a constant lr within the
epoch), one epoch, fp32, each run a fresh process, alternating ours, reference, ours, ...
``--alternations`` times per model.  Ours runs ``data=imagenet data.backend=torchvision`` (the
ImageFolder path: FFCV would need a ``.beton``, which the reference cannot read).

Timed: the training loop of the epoch only -- loading + step + optimizer, from the loop's start
(DataLoader workers' start-up included) to its last step; start-up, model building and validation
are excluded:

* ours: ``perf/data_wait_s + perf/compute_s`` of epoch 0 in the run's ``metrics.jsonl``
  (:class:`platform.run.callbacks.ThroughputMonitor`: ``on_train_epoch_start`` to the last
  ``on_train_batch_end``, the validation that Lightning runs inside the epoch taken out), images =
  that time x ``perf/train_img_s``.  ``epoch_time_s`` (validation included) is recorded beside it.
* reference: it prints ``Start training`` right before its epoch loop and ``Epoch: [0] Total time:
  H:MM:SS`` (its ``MetricLogger.log_every``) right after the last step, before ``evaluate``; this
  suite reads its unbuffered stdout as it comes and takes the time between those two lines; the
  printed total (whole seconds) is recorded as a cross-check.  images = the training set's size
  (its sampler keeps the last partial batch).

images/s = images / that time; ratio = ours / reference (> 1: ours faster), the median over the
alternations of each.  The load average before each run goes into the record.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, add_common_args, apply_common, median, write_result

HOW_TO_GET = (
    "torchvision's reference is not part of this project and is never fetched at run "
    "time: `git clone --depth 1 https://github.com/pytorch/vision DIR` (or copy "
    "train.py, presets.py, transforms.py, utils.py and sampler.py of "
    "references/classification/ into DIR) and pass --reference "
    "DIR/references/classification"
)
LOCAL_MODULES = ("presets", "transforms", "utils", "sampler", "ra_sampler")  # train.py's siblings
TOTAL_RE = re.compile(r"^Epoch: \[0\] Total time: (\d+):(\d\d):(\d\d)")
START_LINE = "Start training"
# its i=0 progress line (printed whatever --print-freq): "data:" there is the first batch's wait
FIRST_RE = re.compile(r"^Epoch: \[0\]\s+\[\s*0/\d+\].*\bdata: ([0-9.]+)\s*$")


def reference_script(path: str | os.PathLike | None) -> tuple[Path | None, str | None]:
    """``(train.py, None)`` for a usable reference at ``path`` (its directory or the script), else
    ``(None, why)``: the script or a sibling module it imports is missing."""
    if not path:
        return None, "no --reference DIR given"
    p = Path(path).expanduser()
    script = p / "train.py" if p.is_dir() else p
    if not script.is_file():
        return None, f"--reference {path}: no train.py there"
    try:
        tree = ast.parse(script.read_text())
    except (OSError, SyntaxError, ValueError) as e:
        return None, f"--reference {path}: {script} is not a readable Python script ({e})"
    names = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    names |= {
        n.module.split(".")[0]
        for n in tree.body
        if isinstance(n, ast.ImportFrom) and n.module and not n.level
    }
    missing = sorted(
        f"{m}.py" for m in names & set(LOCAL_MODULES) if not (script.parent / f"{m}.py").is_file()
    )
    if missing:
        return None, (
            f"--reference {path}: {', '.join(missing)} missing beside {script.name} "
            "(it imports them)"
        )
    return script, None


def env(threads: int | None) -> dict:
    e = dict(os.environ, PYTHONUNBUFFERED="1")
    if threads:
        e["OMP_NUM_THREADS"] = str(threads)  # both processes: torch's intra-op threads
    return e


def ours_command(model: str, tree: Path, a, workdir: Path, name: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "platform.train",
        f"model={model}",
        "data=imagenet",
        "data.backend=torchvision",
        f"data.path={tree}",
        f"data.batch_size={a.batch}",
        f"data.num_workers={a.workers}",
        f"data.resolution={a.resolution}",
        f"data.val_resolution={a.resolution}",
        f"data.val_crop_ratio={a.resolution / a.val_resize:.6f}",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        f"optim.lr={a.lr}",
        f"optim.weight_decay={a.weight_decay}",
        "optim.momentum=0.9",
        "optim.nesterov=false",
        "schedule.name=constant",
        "schedule.warmup_epochs=0",
        "logging.wandb=disabled",
        "logging.progress_bar=false",
        f"run.root={workdir}",
        f"run.name={name}",
    ]


def reference_command(model: str, tree: Path, a) -> list[str]:
    return [
        sys.executable,
        "-u",
        str(a.script),
        "--data-path",
        str(tree),
        "--model",
        model,
        "--device",
        "cpu",
        "-b",
        str(a.batch),
        "--epochs",
        "1",
        "-j",
        str(a.workers),
        "--opt",
        "sgd",
        "--lr",
        str(a.lr),
        "--momentum",
        "0.9",
        "--wd",
        str(a.weight_decay),
        "--train-crop-size",
        str(a.resolution),
        "--val-resize-size",
        str(a.val_resize),
        "--val-crop-size",
        str(a.resolution),
        "--print-freq",
        "1000000",
        "--output-dir",
        "",
    ]


def run_ours(model: str, tree: Path, a, workdir: Path, k: int) -> dict:
    name = f"e2e-{model}-{k}"
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(
        ours_command(model, tree, a, workdir, name),
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env(a.threads),
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"platform.train failed ({proc.returncode}): {proc.stderr[-2000:]}")
    text = (workdir / name / "metrics.jsonl").read_text()
    rows = [json.loads(x) for x in text.splitlines() if x.strip()]
    row = [r for r in rows if r.get("epoch") == 0][-1]
    seconds = row["perf/data_wait_s"] + row["perf/compute_s"]
    images = int(round(row["perf/train_img_s"] * seconds))
    return {
        "seconds": seconds,
        "images": images,
        "images_per_s": images / seconds,
        "data_wait_s": row["perf/data_wait_s"],
        "compute_s": row["perf/compute_s"],
        "epoch_time_s_with_val": row["epoch_time_s"],
        "process_wall_s": wall,
        "load_before": round(load, 2),
    }


def run_reference(model: str, tree: Path, a, workdir: Path) -> dict:
    load = os.getloadavg()[0]
    err = workdir / "reference.stderr"
    t0 = time.perf_counter()
    start = end = printed = first_wait = None
    lines = []
    with open(err, "w") as ef:
        proc = subprocess.Popen(
            reference_command(model, tree, a),
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=ef,
            text=True,
            env=env(a.threads),
        )
        for line in proc.stdout:
            now = time.perf_counter()
            lines.append(line)
            text = line.strip()
            if text == START_LINE and start is None:
                start = now
            if (f := FIRST_RE.match(text)) and first_wait is None:
                first_wait = float(f.group(1))
            if (m := TOTAL_RE.match(text)) and end is None:
                end = now
                printed = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3))
        rc = proc.wait()
    wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"the reference script failed ({rc}): {err.read_text()[-2000:]}")
    if start is None or end is None:
        raise RuntimeError(
            f"no '{START_LINE}' / 'Epoch: [0] Total time' lines in the reference's "
            f"output: {''.join(lines)[-1500:]}"
        )
    seconds = end - start
    images = sum(1 for f in (tree / "train").rglob("*") if f.is_file())
    return {
        "seconds": seconds,
        "images": images,
        "images_per_s": images / seconds,
        "printed_total_s": printed,
        "first_batch_wait_s": first_wait,
        "process_wall_s": wall,
        "load_before": round(load, 2),
    }


TIMING = (
    "training loop of epoch 0 only (loading + step + optimizer; start-up and validation "
    "excluded). ours: perf/data_wait_s + perf/compute_s of epoch 0 in metrics.jsonl "
    "(ThroughputMonitor, from on_train_epoch_start, which Lightning calls after it has "
    "created the DataLoader iterator, to the last on_train_batch_end), images = that x "
    "perf/train_img_s. reference: the time between its 'Start training' and 'Epoch: [0] "
    "Total time' stdout lines (its loop, DataLoader iterator creation included), read "
    "unbuffered by the suite; its printed whole-second total is kept as printed_total_s "
    "and its first batch's wait as first_batch_wait_s; images = the training set"
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks e2e", description=__doc__.split("\n")[0])
    p.add_argument(
        "--reference",
        default=None,
        help="directory holding torchvision's references/classification/train.py and "
        "the modules it imports, or that train.py (not vendored, never fetched: "
        + HOW_TO_GET
        + ")",
    )
    p.add_argument("--models", default="resnet18,resnet50")
    p.add_argument("--resolution", type=int, default=160, help="training and validation crop side")
    p.add_argument("--val-resize", type=int, default=182, help="validation resize before the crop")
    p.add_argument("--images", type=int, default=256, help="training images (val: a tenth)")
    p.add_argument(
        "--classes", type=int, default=10, help="classes (>= 5: the reference logs top-5 accuracy)"
    )
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes of each")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--alternations", type=int, default=2, help="runs of each tool per model")
    p.add_argument(
        "--dir", default="/tmp/cnn-platform-bench-data", help="the generated tree's cache"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke-test size: resnet18, 20 images, 5 classes, 64 px, batch 10, once",
    )
    add_common_args(p)
    a = p.parse_args(argv)
    if a.clock != "wall":
        p.error("--clock cpu cannot see the child processes: the e2e suite uses wall time")
    if a.classes < 5:
        p.error(f"--classes {a.classes}: the reference logs top-5 accuracy: it needs >= 5 classes")
    a.script, problem = reference_script(a.reference)
    if problem:
        print(f"error: {problem}; {HOW_TO_GET}", file=sys.stderr)
        return 2
    apply_common(a)
    if a.quick:
        a.models, a.images, a.classes, a.resolution, a.val_resize = "resnet18", 20, 5, 64, 73
        a.batch, a.workers, a.alternations = 10, 1, 1
    from benchmarks.data_loading import TREE_VERSION, make_tree

    tree = make_tree(
        Path(a.dir) / f"tree-v{TREE_VERSION}-{a.images}-{a.classes}-q90", a.images, a.classes
    )
    pairs, rows = [], []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        for model in [m for m in a.models.split(",") if m]:
            for k in range(a.alternations):
                ours = run_ours(model, tree, a, Path(tmp), k)
                ref = run_reference(model, tree, a, Path(tmp))
                pairs.append({"model": model, "round": k, "ours": ours, "reference": ref})
                print(
                    f"  {model} #{k}: ours {ours['images_per_s']:.2f} img/s "
                    f"({ours['seconds']:.1f} s), reference {ref['images_per_s']:.2f} img/s "
                    f"({ref['seconds']:.1f} s)  [load {ours['load_before']:.1f} / "
                    f"{ref['load_before']:.1f}]",
                    flush=True,
                )
            mine = [q["ours"] for q in pairs if q["model"] == model]
            theirs = [q["reference"] for q in pairs if q["model"] == model]
            ours_ips = median([x["images_per_s"] for x in mine])
            ref_ips = median([x["images_per_s"] for x in theirs])
            # bound of the one asymmetry: the reference's clock includes its iterator's creation
            ref_ips_bound = median(
                [x["images"] / (x["seconds"] - (x["first_batch_wait_s"] or 0.0)) for x in theirs]
            )
            rows.append(
                {
                    "model": model,
                    "ours_images_per_s": ours_ips,
                    "reference_images_per_s": ref_ips,
                    "ratio": ours_ips / ref_ips,
                    "ratio_reference_first_batch_excluded": ours_ips / ref_ips_bound,
                    "load_before": [
                        x["load_before"] for y in zip(mine, theirs, strict=False) for x in y
                    ],
                }
            )
            print(
                f"{model}: ours / reference images/s = {ours_ips / ref_ips:.3f} (with the "
                f"reference's first-batch wait excluded: {ours_ips / ref_ips_bound:.3f})",
                flush=True,
            )
    options = {**vars(a), "reference": str(a.reference), "script": str(a.script)}
    payload = {
        "rows": rows,
        "pairs": pairs,
        "timing": TIMING,
        "tree": str(tree),
        "ours_command": " ".join(ours_command("MODEL", tree, a, Path("RUNS"), "NAME")[1:]),
        "reference_command": " ".join(reference_command("MODEL", tree, a)[1:]),
    }
    path = write_result("e2e", options, payload, argv, a.results_dir)
    print(f"wrote {path}")
    return 0
