"""``python -m platform.reproduce paths --checkpoint runs/NAME/checkpoints/last.ckpt``: the effective
paths of a trained residual net, Veit, Wilber & Belongie 2016, "Residual networks behave like
ensembles of relatively shallow networks" (arXiv 1605.06431, §5, Fig. 6).

A net of n residual blocks unrolls into 2^n paths; a path of length k goes through k residual
branches and n - k skips.  Three things, as in Fig. 6 (a)-(c):

(a) the distribution of path lengths: C(n, k) paths of length k, i.e. Binomial(n, 1/2) once
    divided by 2^n (counted, not measured);
(b) the gradient magnitude per path of length k, measured by the paper's sampling: feed a batch
    forward through the whole, unchanged net (eval mode: trained BN statistics, no dropout);
    draw k of the n blocks; backward, each drawn block passes gradient through its residual branch
    only and every other block through its skip only (``BlockLesions.routed``,
    platform/papers/lesion_blocks.py), so the gradient that arrives is that of the single path through
    exactly those k branches.  Recorded: the L2 norm, per image, of the gradient of the image's
    cross-entropy loss with respect to the *input of the first residual block* (the stem's output,
    common to all paths), averaged over the images of the batch, then over ``--samples`` draws of
    blocks (distinct subsets where there are that many; a new validation batch for each draw);
(c) the total gradient of all paths of length k, C(n, k) x (b), divided by its sum over k, and the
    *effective paths*: the shortest window of lengths A..B that carries ``--mass`` (default 90%)
    of that total.  In layers: A and B times the weighted layers of one residual branch (2 for a
    basic block), of the net's depth (convs outside the shortcuts, plus the classifier).

Downsampling blocks count among the n blocks, as in the paper's 54-block ResNet-110: their skip is
the shortcut as built (a strided zero-pad for option A, a strided 1x1 projection for option B), so
a path through it is not one branch longer.  In a post-activation block the ReLU after the addition
is on every path (its mask comes from the full forward pass); the routed gradients of all 2^n
subsets add up exactly to the ordinary gradient (tests/test_paths.py).  Deviations from the paper:
batches from the validation set (the paper: training set), one draw per batch; the paper took 1,000
draws per length on its ResNet-110.  Results: ``paths.json`` (every number), ``paths.csv``,
``paths.png`` in ``--out`` (default ``reproduce/paths/<run name>``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from datamodules.beton import write_json_atomic
from platform.after.rebuild import STUDY_ERRORS, LoadedRun
from platform.papers.lesion import (
    PAPER,
    LesionError,
    ValBatches,
    residual_run,
    scale_of,
    subsets,
)
from platform.papers.lesion_blocks import BlockLesions, is_plain
from platform.run import cli

EXPECTATION = (
    "Veit et al. 2016 §5, Fig. 6 (ResNet-110 on CIFAR-10, 54 blocks): paths of length ~27 are the "
    "most numerous (Binomial(54, 1/2)), but the gradient magnitude of a path falls quickly "
    "(exponentially) with its length, so the total gradient comes from short paths: the effective "
    "paths are 5-17 blocks long, i.e. 10-34 layers of 110; paths longer than ~20 blocks "
    "contribute almost nothing."
)
PAPER_FINDING = {
    "n_blocks": 54,
    "depth": 110,
    "effective_blocks": [5, 17],
    "effective_layers": [10, 34],
}
MAX_SAMPLES = 1000  # the paper's number of draws per length


class PathsError(ValueError):
    """Bad input to the path study (one line, exit 2)."""


# ---------------------------------------------------------------------------- counting
def path_counts(n: int) -> list[int]:
    """Number of paths of each length k = 0..n through n residual blocks: C(n, k) (Fig. 6a)."""
    return [math.comb(n, k) for k in range(n + 1)]


def branch_layers(block: nn.Module) -> int:
    """Weighted layers (convs) of a block's residual branch: outside its shortcut and SE."""
    skip = {
        id(m)
        for part in ("shortcut", "se")
        if isinstance(getattr(block, part, None), nn.Module)
        for m in getattr(block, part).modules()
    }
    return sum(isinstance(m, nn.Conv2d) and id(m) not in skip for m in block.modules())


def depth(model: nn.Module, lesions: BlockLesions) -> int:
    """The net's depth in the papers' sense: convs outside the shortcuts (and SE), plus the
    classifier (resnet56: 1 + 27 x 2 + 1 = 56)."""
    stem = (
        sum(isinstance(m, nn.Conv2d) for m in model.stem.modules()) if hasattr(model, "stem") else 0
    )
    linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    return stem + sum(branch_layers(b) for _, b in lesions.blocks()) + linear


def effective_range(fractions: list[float], mass: float) -> tuple[int, int]:
    """The shortest window of lengths [A, B] whose ``fractions`` add up to ``mass`` or more (ties:
    the window holding more)."""
    best: tuple[int, float, int, int] | None = None
    for a in range(len(fractions)):
        held = 0.0
        for b in range(a, len(fractions)):
            held += fractions[b]
            if held >= mass - 1e-12:
                key = (b - a, -held, a, b)
                best = key if best is None or key < best else best
                break
    if best is None:
        return 0, len(fractions) - 1
    return best[2], best[3]


# ---------------------------------------------------------------------------- measuring
def _cross_entropy_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    # a sum over the batch: each image's input gradient is that of its own loss (eval-mode BN
    # couples no images), whatever the batch size
    return F.cross_entropy(logits, labels, reduction="sum")


def input_gradient(
    lesions: BlockLesions,
    through_branch: list[str],
    images: torch.Tensor,
    labels: torch.Tensor,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = _cross_entropy_sum,
) -> torch.Tensor:
    """The gradient of ``loss`` w.r.t. the first block's input, along the path through the
    residual branches of ``through_branch`` and the skips of all other blocks; same shape as
    that input."""
    held: dict[str, torch.Tensor] = {}

    def as_leaf(_module: nn.Module, args: tuple) -> tuple:
        held["x"] = args[0].detach().requires_grad_()
        return (held["x"], *args[1:])

    hook = lesions.blocks()[0][1].register_forward_pre_hook(as_leaf)
    try:
        with lesions.routed(through_branch) as model, torch.enable_grad():
            (grad,) = torch.autograd.grad(loss(model(images), labels), held["x"])
    finally:
        hook.remove()
    return grad


def gradient_by_length(
    lesions: BlockLesions,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    samples: int,
    seed: int,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = _cross_entropy_sum,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Fig. 6b: for each length k = 0..n, ``samples`` draws of k blocks (distinct subsets where
    C(n, k) allows), draw i on batch i mod len(batches); per draw, the mean over the batch of the
    per-image norm of :func:`input_gradient`.  One row per k: mean and std over draws."""
    names = [name for name, _ in lesions.blocks()]
    rows = []
    for k in range(len(names) + 1):
        draws = []
        for i, chosen in enumerate(subsets(names, k, samples, seed)):
            images, labels = batches[i % len(batches)]
            grad = input_gradient(lesions, chosen, images, labels, loss)
            draws.append(float(grad.flatten(1).norm(dim=1).mean()))
        rows.append(
            {
                "k": k,
                "grad_mean": statistics.fmean(draws),
                "grad_std": statistics.stdev(draws) if len(draws) > 1 else 0.0,
                "draws": len(draws),
            }
        )
        log(
            f"k={k:3d}: gradient magnitude {rows[-1]['grad_mean']:.3e} ± {rows[-1]['grad_std']:.1e}"
        )
    return rows


def totals(rows: list[dict[str, Any]], n: int, mass: float) -> dict[str, Any]:
    """Fig. 6a and 6c from the measured rows: path fractions, totals, and the effective range."""
    counts = path_counts(n)
    total = [c * r["grad_mean"] for c, r in zip(counts, rows, strict=True)]
    whole = sum(total) or 1.0
    fractions = [t / whole for t in total]
    a, b = effective_range(fractions, mass)
    for k, row in enumerate(rows):
        row.update(
            paths=counts[k],
            path_fraction=counts[k] / 2**n,
            total=total[k],
            total_fraction=fractions[k],
            effective=a <= k <= b,
        )
    return {
        "from_k": a,
        "to_k": b,
        "mass": sum(fractions[a : b + 1]),
        "mass_asked": mass,
        "most_paths_k": max(range(n + 1), key=lambda k: counts[k]),
        "most_gradient_k": max(range(n + 1), key=lambda k: total[k]),
    }


# ---------------------------------------------------------------------------- the study
def _batches(
    run: LoadedRun, device: torch.device, max_batches: int, batch_size: int | None
) -> list:
    out = []
    for images, labels in ValBatches(run.datamodule, device, max_batches):
        out.append((images[:batch_size], labels[:batch_size]) if batch_size else (images, labels))
    if not out:
        raise PathsError("the validation loader gave no batches (is the validation set empty?)")
    return out


def study(run: LoadedRun, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Every number of the study of one run, as the record written to paths.json."""
    model = run.model.to(device).eval()
    lesions = BlockLesions(model)
    n, per_block = len(lesions.sites), branch_layers(lesions.blocks()[0][1])
    batches = _batches(run, device, args.max_batches, args.batch_size)
    print(
        f"{run.label}: {n} residual blocks, {per_block} layers per branch, depth {depth(model, lesions)}; "
        f"{args.samples} draws x {n + 1} lengths on {len(batches)} batches of {len(batches[0][1])} ({device})",
        flush=True,
    )
    start = time.perf_counter()
    rows = gradient_by_length(lesions, batches, args.samples, args.seed)
    seconds = time.perf_counter() - start
    effective = totals(rows, n, args.mass)
    y = depth(model, lesions)
    effective.update(
        from_layers=effective["from_k"] * per_block,
        to_layers=effective["to_k"] * per_block,
        depth=y,
    )
    effective["line"] = (
        f"effective paths: lengths {effective['from_k']}–{effective['to_k']} of {n} blocks "
        f"({effective['from_layers']}–{effective['to_layers']} layers of {y}), "
        f"{100 * effective['mass']:.1f}% of the total gradient"
    )
    passes = sum(r["draws"] for r in rows)
    return {
        "paper": PAPER,
        "expectation": EXPECTATION,
        "paper_finding": PAPER_FINDING,
        "scale": scale_of(run.cfg),
        "arguments": {k: v for k, v in vars(args).items()},
        "run": {
            "checkpoint": str(run.checkpoint),
            "run_dir": str(run.run_dir),
            "model": dataclasses.asdict(run.cfg.model),
            "data": dataclasses.asdict(run.cfg.data),
        },
        "n_blocks": n,
        "layers_per_block": per_block,
        "depth": y,
        "blocks": [s.name for s in lesions.sites],
        "downsampling_blocks": [s.name for s in lesions.sites if not s.keeps_shape],
        "measure": "mean over draws of the batch-mean per-image L2 norm of d(cross-entropy)/d(input "
        "of the first residual block), backward routed along one path of length k",
        "lengths": rows,
        "effective": effective,
        "cost": {
            "seconds": round(seconds, 1),
            "passes": passes,
            "images_per_pass": len(batches[0][1]),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
    }


# ---------------------------------------------------------------------------- outputs
def write_csv(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    per_block = record["layers_per_block"]
    fields = [
        "k",
        "layers",
        "paths",
        "path_fraction",
        "grad_mean",
        "grad_std",
        "draws",
        "total",
        "total_fraction",
        "effective",
    ]
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in record["lengths"]:
            w.writerow({"layers": r["k"] * per_block, **{f: r[f] for f in fields if f != "layers"}})
    tmp.replace(path)


def plot(path: Path, record: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, eff, n = record["lengths"], record["effective"], record["n_blocks"]
    ks = [r["k"] for r in rows]
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.2))
    a.bar(ks, [r["path_fraction"] for r in rows], color="tab:blue")
    a.set_title(f"(a) distribution of path length: Binomial({n}, 1/2)")
    a.set_ylabel("fraction of the 2^n paths")
    mean = [r["grad_mean"] for r in rows]
    low = [max(m - r["grad_std"], m * 1e-3) for m, r in zip(mean, rows, strict=True)]
    b.semilogy(ks, mean, "o-", ms=3, color="tab:red")
    b.fill_between(
        ks,
        low,
        [m + r["grad_std"] for m, r in zip(mean, rows, strict=True)],
        color="tab:red",
        alpha=0.2,
        label="± std over draws",
    )
    b.set_title("(b) gradient magnitude per path")
    b.set_ylabel("|d loss / d input of block 1| (per image)")
    b.legend(fontsize=8)
    c.bar(ks, [r["total_fraction"] for r in rows], color="tab:green")
    c.axvspan(
        eff["from_k"] - 0.5,
        eff["to_k"] + 0.5,
        color="gray",
        alpha=0.2,
        label=f"effective: {eff['from_k']}–{eff['to_k']} ({100 * eff['mass']:.0f}%)",
    )
    c.set_title("(c) total gradient per path length (normalised)")
    c.set_ylabel("fraction of the total gradient")
    c.legend(fontsize=8)
    for ax in (a, b, c):
        ax.set_xlabel("path length (residual branches on the path)")
    model, data = record["run"]["model"]["name"], record["run"]["data"]["name"]
    fig.suptitle(
        f"effective paths (Veit et al. 2016 Fig. 6): {model} on {data} ({record['scale']} scale); "
        f"{eff['line']}",
        fontsize=10,
    )
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def write_outputs(out: Path, record: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "paths.json", record)
    write_csv(out / "paths.csv", record)
    plot(out / "paths.png", record)


# ---------------------------------------------------------------------------- command line
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m platform.reproduce paths",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_checkpoint(p, help="residual net: runs/<name>/checkpoints/last.ckpt")
    p.add_argument(
        "--samples",
        type=int,
        default=10,
        help=f"draws of blocks per path length (default 10; the paper: {MAX_SAMPLES}, the most allowed)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the drawn blocks")
    p.add_argument(
        "--mass",
        type=float,
        default=0.9,
        help="share of the total gradient the effective range holds (default 0.9)",
    )
    p.add_argument(
        "--max-batches",
        type=int,
        default=10,
        help="validation batches drawn on, cycled (default 10)",
    )
    p.add_argument(
        "--batch-size", type=int, help="images per batch (default: the run's validation batch)"
    )
    p.add_argument("--device", help="cpu | cuda | cuda:1 (default: cuda when available)")
    p.add_argument("--out", help="output directory (default reproduce/paths/<run name>)")
    return p


def _check(args: argparse.Namespace) -> None:
    if not 1 <= args.samples <= MAX_SAMPLES:
        raise PathsError(
            f"--samples {args.samples}: give 1 to {MAX_SAMPLES} draws per path length "
            f"(the paper's {MAX_SAMPLES} is the most)"
        )
    if args.max_batches < 1 or (args.batch_size is not None and args.batch_size < 1):
        raise PathsError("--max-batches and --batch-size must be >= 1")
    if not 0 < args.mass <= 1:
        raise PathsError(f"--mass {args.mass}: a share of the total gradient, in (0, 1]")


@cli.entry()
def main(argv: list[str]) -> int:
    args, _ = cli.parse(parser(), argv, overrides=False)
    try:
        _check(args)
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        run = residual_run(
            args.checkpoint, study="the path study routes gradients through residual blocks"
        )
        if is_plain(run.model):
            raise PathsError(
                f"--checkpoint {run.checkpoint}: {run.cfg.model.name} is a plain net (no "
                "shortcuts): it has one path, no residual blocks to route gradients through"
            )
        record = study(run, args, device)
        out = Path(args.out) if args.out else Path("reproduce") / "paths" / run.run_dir.name
        write_outputs(out, record)
    except (PathsError, LesionError, *STUDY_ERRORS) as e:
        return cli.user_error(e)
    print(record["effective"]["line"])
    print(f"expected: {EXPECTATION}")
    print(f"wrote {out / 'paths.json'}, paths.csv, paths.png ({record['cost']['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
