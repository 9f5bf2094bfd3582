"""End to end: one training epoch of ``python -m platform.train`` vs torchvision's reference script.

    python -m benchmarks e2e --reference PATH/references/classification/train.py
                             [--models resnet18,resnet50] [--resolution 160] [--images 256] [--classes 4]
                             [--batch 32] [--workers 2] [--alternations 2] [--quick]

The fair peer of our job is torchvision's ``references/classification/train.py``.  The project does
not vendor it and this suite fetches nothing: pass the path of a checkout's script (its sibling
``presets.py``, ``transforms.py``, ``utils.py`` and ``sampler.py`` must sit beside it), e.g.::

    git clone --depth 1 https://github.com/pytorch/vision /work/vision-ref
    python -m benchmarks e2e --reference /work/vision-ref/references/classification/train.py

Both train the same architecture (ours from the registry, theirs from ``torchvision.models``) on the
same generated ImageFolder tree (natural-image JPEGs, :func:`benchmarks.data_loading.make_tree`),
CPU, same batch, crop ``--resolution`` (random-resized crop + flip), ``--workers`` loader processes,
SGD (lr ``--lr``, momentum 0.9, weight decay ``--weight-decay``), one epoch, fp32, alternating
(ours, reference, ours, ...) ``--alternations`` times per model; each run is a fresh process.  Ours
runs with ``data=imagenet data.backend=torchvision`` (the ImageFolder path; FFCV would need a
``.beton``, which the reference cannot read) and a constant learning rate.  Timed: the training part
of the epoch only, loading + step + optimizer: ours ``epoch_time_s`` from the run's
``metrics.jsonl`` (``on_train_epoch_start`` to ``_end``), the reference's ``Epoch: [0] Total time``
line (its ``MetricLogger``: s/it x iterations).  images/s = the epoch's training images / that time;
ratio = ours / reference (> 1: ours faster).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import ROOT, add_common_args, apply_common, median, write_result

HOW_TO_GET = ("torchvision's reference script is not part of this project and is never fetched at run time; "
              "get it with `git clone --depth 1 https://github.com/pytorch/vision DIR` and pass "
              "--reference DIR/references/classification/train.py (presets.py, transforms.py, utils.py and "
              "sampler.py beside it)")
SIBLINGS = ("presets.py", "transforms.py", "utils.py")
TOTAL_RE = re.compile(r"Epoch: \[0\] Total time: \S+ \(([0-9.]+) s / it\)")


def reference_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable reference script (None: it is)."""
    if not path.is_file():
        return f"--reference {path}: no such file"
    missing = [s for s in SIBLINGS if not (path.parent / s).is_file()]
    if missing:
        return f"--reference {path}: {', '.join(missing)} missing beside it"
    return None


def env(threads: int | None) -> dict:
    e = dict(os.environ)
    if threads:
        e["OMP_NUM_THREADS"] = str(threads)  # both processes: torch's intra-op threads
    return e


def run_ours(model: str, tree: Path, a, workdir: Path, k: int) -> dict:
    name = f"e2e-{model}-{k}"
    args = [sys.executable, "-m", "platform.train", f"model={model}", "data=imagenet", "data.backend=torchvision",
            f"data.path={tree}", f"data.batch_size={a.batch}", f"data.num_workers={a.workers}",
            f"data.resolution={a.resolution}", f"data.val_resolution={a.resolution}", "trainer.max_epochs=1",
            "trainer.accelerator=cpu", f"optim.lr={a.lr}", f"optim.weight_decay={a.weight_decay}",
            "optim.nesterov=false", "schedule.name=constant", "schedule.warmup_epochs=0", "logging.wandb=disabled",
            "logging.progress_bar=false", f"run.root={workdir}", f"run.name={name}"]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env(a.threads))
    if proc.returncode != 0:
        raise RuntimeError(f"platform.train failed ({proc.returncode}): {proc.stderr[-2000:]}")
    rows = [json.loads(x) for x in (workdir / name / "metrics.jsonl").read_text().splitlines() if x]
    seconds = [r["epoch_time_s"] for r in rows if r.get("epoch") == 0][-1]
    images = (a.images // a.batch) * a.batch  # our training loader drops the last partial batch
    return {"seconds": seconds, "images": images, "images_per_s": images / seconds}


def run_reference(model: str, tree: Path, a, workdir: Path) -> dict:
    args = [sys.executable, str(a.reference), "--data-path", str(tree), "--model", model, "--device", "cpu",
            "-b", str(a.batch), "--epochs", "1", "-j", str(a.workers), "--lr", str(a.lr), "--wd", str(a.weight_decay),
            "--momentum", "0.9", "--train-crop-size", str(a.resolution), "--val-crop-size", str(a.resolution),
            "--val-resize-size", str(a.resolution), "--print-freq", "100000", "--output-dir", ""]
    proc = subprocess.run(args, cwd=workdir, capture_output=True, text=True, env=env(a.threads))
    if proc.returncode != 0:
        raise RuntimeError(f"the reference script failed ({proc.returncode}): {proc.stderr[-2000:]}")
    m = TOTAL_RE.search(proc.stdout)
    if not m:
        raise RuntimeError(f"no 'Epoch: [0] Total time' line in the reference's output: {proc.stdout[-1500:]}")
    iters = -(-a.images // a.batch)  # no drop_last there
    seconds = float(m.group(1)) * iters
    return {"seconds": seconds, "images": a.images, "images_per_s": a.images / seconds}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks e2e", description=__doc__.split("\n")[0])
    p.add_argument("--reference", default="/work/vision-ref/references/classification/train.py",
                   help="torchvision's references/classification/train.py (not vendored: " + HOW_TO_GET + ")")
    p.add_argument("--models", default="resnet18,resnet50")
    p.add_argument("--resolution", type=int, default=160)
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--alternations", type=int, default=2)
    p.add_argument("--dir", default="/tmp/cnn-platform-bench-data")
    p.add_argument("--quick", action="store_true", help="smoke-test size: resnet18, 32 images, 64 px, 1 alternation")
    add_common_args(p)
    a = p.parse_args(argv)
    if a.clock != "wall":
        p.error("--clock cpu cannot see the child processes: the e2e suite uses wall time")
    apply_common(a)
    a.reference = Path(a.reference)
    problem = reference_problem(a.reference)
    if problem:
        print(f"error: {problem}.  {HOW_TO_GET}", file=sys.stderr)
        return 2
    if a.quick:
        a.models, a.images, a.classes, a.resolution, a.batch, a.alternations = "resnet18", 32, 2, 64, 8, 1
    from benchmarks.data_loading import TREE_VERSION, make_tree

    tree = make_tree(Path(a.dir) / f"tree-v{TREE_VERSION}-{a.images}-{a.classes}-q90", a.images, a.classes)
    pairs, rows = [], []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        for model in [m for m in a.models.split(",") if m]:
            for k in range(a.alternations):
                ours = run_ours(model, tree, a, Path(tmp), k)
                ref = run_reference(model, tree, a, Path(tmp))
                pairs.append({"model": model, "ours": ours, "reference": ref})
                print(f"  {model} #{k}: ours {ours['images_per_s']:.2f} img/s, reference {ref['images_per_s']:.2f} img/s",
                      flush=True)
            mine = median([q["ours"]["images_per_s"] for q in pairs if q["model"] == model])
            theirs = median([q["reference"]["images_per_s"] for q in pairs if q["model"] == model])
            rows.append({"model": model, "ours_images_per_s": mine, "reference_images_per_s": theirs,
                         "ratio": mine / theirs})
            print(f"{model}: ours / reference images/s = {mine / theirs:.3f}", flush=True)
    path = write_result("e2e", {**vars(a), "reference": str(a.reference)}, {"rows": rows, "pairs": pairs}, argv,
                        a.results_dir)
    print(f"wrote {path}")
    return 0
