"""``python -m platform.lesion --checkpoint runs/NAME/checkpoints/last.ckpt``: the lesion study of
Veit, Wilber & Belongie 2016, "Residual networks behave like ensembles of relatively shallow
networks" (arXiv 1605.06431, §4), on a trained run of ours.

What it measures, on the run's own validation set with its trained BN statistics:

* the intact net's top-1 error;
* the error with each single block deleted (Fig. 3: error vs. deleted block index; downsampling
  blocks marked, since a residual net keeps their projection / strided shortcut);
* the error with k random blocks deleted at once, mean +- std over ``--samples`` subsets per k
  (Fig. 4a: error grows smoothly with k);
* the same for a plain net (``--plain-checkpoint``), where a block that changes the shape of the
  feature map cannot be deleted and is recorded as not removable.

The paper's finding is the expectation printed beside our numbers (``EXPECTATION``).  Deletion is
``BlockLesions.removed`` (platform/papers/lesion_blocks.py): a residual block keeps only its shortcut, a
plain block becomes the identity.  The random subsets are drawn from the *shape-keeping* blocks, the
blocks both a residual and a plain net can lose, and with a seed per k, so two nets of the same
depth lose the same blocks.  Results: ``lesion.json`` (every number), ``lesion.md``, ``lesion.csv``,
``lesion.png`` in ``--out`` (default ``reproduce/lesion/<run name>``).  The run's config (model,
data) decides the scale label: ``imagenet`` (data=imagenet), ``paper`` (CIFAR-10 with the paper's
110-layer nets), else ``proxy``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import random
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from datamodules.beton import write_json_atomic
from datamodules.normalize import autocast_dtype
from models.resnet import ResidualNet
from platform.after.evaluate import protocol_scores
from platform.after.rebuild import STUDY_ERRORS, LoadedRun, load_run
from platform.papers.lesion_blocks import BlockLesions, is_plain
from platform.run import cli
from platform.run.schema import ExperimentConfig

PAPER = (
    "Veit, Wilber & Belongie 2016, Residual networks behave like ensembles of relatively shallow "
    "networks, "
    "arXiv:1605.06431"
)
EXPECTATION = (
    "Veit et al. 2016 §4: removing a single block of a residual net barely changes its error, "
    "except a "
    'downsampling block ("a modest impact"; "no other block removal lead to a noticeable change"); '
    '"deleting any layer in VGG reduces performance to chance levels" (a plain net); with k blocks '
    "removed the residual net's error grows smoothly with k (§4.2, Fig. 4a)."
)
PAPER_NETS = {
    "cifar10": {"resnet110", "plain110"}
}  # the 54-block CIFAR-10 net of §4 and its plain twin


class LesionError(ValueError):
    """A checkpoint or run directory that cannot be used; the message names it and what to pass."""


# ---------------------------------------------------------------------------- loading a run
def residual_run(
    checkpoint: str | Path,
    option: str = "--checkpoint",
    study: str = "the lesion study deletes residual or plain blocks",
) -> LoadedRun:
    """The run of ``checkpoint`` rebuilt by the one rebuild function
    (:func:`platform.after.rebuild.load_run`), refused unless its net is of the residual family
    (also the path study's, platform/papers/paths.py; ``study`` says why another family is refused)."""
    run = load_run(checkpoint, option)
    if not isinstance(run.model, ResidualNet):
        raise LesionError(
            f"{option} {run.checkpoint}: {run.cfg.model.name} is not of the residual family "
            f"(ResidualNet); {study}"
        )
    return run


def scale_of(cfg: ExperimentConfig) -> str:
    """``imagenet`` / ``paper`` only for the paper's data (and CIFAR-10 net); everything else is a proxy."""
    if cfg.data.name == "imagenet":
        return "imagenet"
    if cfg.model.name in PAPER_NETS.get(cfg.data.name, ()):
        return "paper"
    return "proxy"


# ---------------------------------------------------------------------------- evaluation
class ValBatches:
    """The validation batches, normalised on ``device``; kept in memory after the first pass
    when they fit in ``cache_bytes`` (CIFAR-10: 120 MB), else read again for every evaluation."""

    def __init__(
        self,
        datamodule: Any,
        device: torch.device,
        max_batches: int | None,
        cache_bytes: int = 2 << 30,
    ) -> None:
        self.datamodule, self.device, self.max_batches, self.cache_bytes = (
            datamodule,
            device,
            max_batches,
            cache_bytes,
        )
        self._cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        datamodule.prepare_data()
        datamodule.setup("validate")

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self._cache is not None:
            yield from self._cache
            return
        cache: list[tuple[torch.Tensor, torch.Tensor]] | None = []
        size = 0
        for i, batch in enumerate(self.datamodule.val_dataloader()):
            if self.max_batches is not None and i >= self.max_batches:
                break
            images, labels = (t.to(self.device, non_blocking=True) for t in batch)
            images, labels = self.datamodule.on_after_batch_transfer(
                (images, labels), 0
            )  # fresh tensors
            if cache is not None:
                size += images.numel() * images.element_size()
                cache = None if size > self.cache_bytes else cache
            if cache is not None:
                cache.append((images, labels))
            yield images, labels
        self._cache = cache


@torch.no_grad()
def top1_error(model: torch.nn.Module, batches: ValBatches, autocast: bool = False) -> float:
    """Top-1 error in percent over ``batches`` (the net in eval mode: trained BN statistics), scored
    by ``platform.after.evaluate``'s own ``protocol_scores`` (its ``center`` protocol): the intact
    net's error is what ``python -m platform.evaluate`` reports (tests/test_lesion.py checks it)."""
    wrong = total = 0
    with torch.autocast(batches.device.type, dtype=torch.bfloat16, enabled=autocast):
        for images, labels in batches:
            scores = protocol_scores(model, images, "center", images.shape[-1])  # as evaluate
            wrong += int((scores.argmax(1) != labels).sum())
            total += labels.numel()
    if total == 0:
        raise LesionError("the validation loader gave no batches (is the validation set empty?)")
    return 100.0 * wrong / total


def subsets(pool: list[str], k: int, samples: int, seed: int) -> list[list[str]]:
    """``samples`` random k-subsets of ``pool`` (distinct where there are enough), seeded per k,
    so nets with the same block names lose the same blocks."""
    rng = random.Random(f"lesion-{seed}-{k}")
    available = math.comb(len(pool), k)
    out: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    while len(out) < samples:
        chosen = tuple(sorted(rng.sample(pool, k), key=pool.index))
        if chosen in seen and len(seen) < available:
            continue
        seen.add(chosen)
        out.append(list(chosen))
    return out


def default_ks(pool_size: int, points: int = 8) -> list[int]:
    """1 up to about half the pool, at most ``points`` values spread evenly."""
    top = max(1, pool_size // 2)
    n = min(points, top)
    return sorted({round(1 + i * (top - 1) / max(1, n - 1)) for i in range(n)})


@dataclass
class NetLesions:
    """Every number of one net's study."""

    label: str
    checkpoint: str
    model: str
    data: str
    scale: str
    intact_err: float
    single: list[dict[str, Any]] = field(default_factory=list)  # one per block, forward order
    random_k: list[dict[str, Any]] = field(default_factory=list)  # one per k
    pool: list[str] = field(default_factory=list)


def study(
    run: LoadedRun,
    ks: list[int] | None,
    samples: int,
    seed: int,
    max_batches: int | None,
    device: torch.device,
    label: str,
    log=print,
) -> NetLesions:
    cfg = run.cfg
    model = run.model.to(device)
    # the precision read as everywhere else (datamodules.normalize.autocast_dtype): bf16 on CUDA
    autocast = device.type == "cuda" and autocast_dtype(cfg.trainer.precision) == "bf16"
    if cfg.trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    batches = ValBatches(run.datamodule, device, max_batches)
    result = NetLesions(
        label,
        str(run.checkpoint),
        cfg.model.name,
        cfg.data.name,
        scale_of(cfg),
        top1_error(model, batches, autocast),
    )
    log(f"{label} ({cfg.model.name}): intact top-1 error {result.intact_err:.2f}%")
    lesions = BlockLesions(model)
    for index, site in enumerate(lesions.sites, start=1):
        row = {
            "index": index,
            "block": site.name,
            "downsampling": not site.keeps_shape,
            "removable": lesions.removable(site.name),
            "top1_err": None,
        }
        if row["removable"]:
            with lesions.removed([site.name]):
                row["top1_err"] = top1_error(model, batches, autocast)
        result.single.append(row)
    result.pool = [s.name for s in lesions.sites if s.keeps_shape]
    for k in ks if ks is not None else default_ks(len(result.pool)):
        if k > len(result.pool):
            log(f"{label}: k={k} skipped, only {len(result.pool)} shape-keeping blocks")
            continue
        errors, chosen = [], subsets(result.pool, k, samples, seed)
        for names in chosen:
            with lesions.removed(names):
                errors.append(top1_error(model, batches, autocast))
        result.random_k.append(
            {
                "k": k,
                "n": len(errors),
                "mean": statistics.fmean(errors),
                "std": statistics.stdev(errors) if len(errors) > 1 else 0.0,
                "errors": errors,
                "removed": chosen,
            }
        )
        log(
            f"{label}: k={k} removed, error {result.random_k[-1]['mean']:.2f} +- "
            f"{result.random_k[-1]['std']:.2f}%"
        )
    return result


# ---------------------------------------------------------------------------- outputs
def _fmt(v: float | None) -> str:
    return "not removable" if v is None else f"{v:.2f}"


def _by_block(nets: list[NetLesions]) -> list[tuple[int, str, bool, list[float | None]]]:
    length = max(len(n.single) for n in nets)
    rows = []
    for i in range(length):
        entries = [n.single[i] if i < len(n.single) else None for n in nets]
        first = next(e for e in entries if e is not None)
        rows.append(
            (
                first["index"],
                first["block"],
                first["downsampling"],
                [e["top1_err"] if e is not None else None for e in entries],
            )
        )
    return rows


def _by_k(nets: list[NetLesions]) -> list[tuple[int, list[dict[str, Any] | None]]]:
    ks = sorted({r["k"] for n in nets for r in n.random_k})
    return [(k, [next((r for r in n.random_k if r["k"] == k), None) for n in nets]) for k in ks]


def markdown(nets: list[NetLesions], chance: float) -> str:
    names = [f"{n.label} ({n.model})" for n in nets]
    lines = [
        f"# Lesion study ({nets[0].scale} scale): {nets[0].model} on {nets[0].data}",
        "",
        f"Paper: {PAPER}.",
        "",
        f"Expectation: {EXPECTATION}",
        "",
        f"Top-1 error in %, validation set; chance = {chance:.1f}%.",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(nets),
        "| intact | " + " | ".join(f"{n.intact_err:.2f}" for n in nets) + " |",
        "",
        "## One block deleted (Veit et al. Fig. 3)",
        "",
        "| # | block | downsampling | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(nets),
    ]
    for index, block, down, errs in _by_block(nets):
        lines.append(
            f"| {index} | {block} | {'yes' if down else ''} | " + " | ".join(map(_fmt, errs)) + " |"
        )
    lines += [
        "",
        "## k random shape-keeping blocks deleted (Veit et al. Fig. 4a), mean ± std over subsets",
        "",
        "| k | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(nets),
    ]
    for k, rows in _by_k(nets):
        cells = [f"{r['mean']:.2f} ± {r['std']:.2f} (n={r['n']})" if r else "" for r in rows]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines += ["", "Checkpoints: " + ", ".join(f"{n.label} `{n.checkpoint}`" for n in nets), ""]
    return "\n".join(lines)


def write_csv(path: Path, nets: list[NetLesions]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "net",
                "model",
                "study",
                "index",
                "block",
                "k",
                "downsampling",
                "removable",
                "top1_err",
                "std",
                "n",
            ]
        )
        for n in nets:
            w.writerow(
                [n.label, n.model, "intact", "", "", 0, "", "", f"{n.intact_err:.4f}", "", 1]
            )
            for r in n.single:
                err = "" if r["top1_err"] is None else f"{r['top1_err']:.4f}"
                w.writerow(
                    [
                        n.label,
                        n.model,
                        "single",
                        r["index"],
                        r["block"],
                        1,
                        r["downsampling"],
                        r["removable"],
                        err,
                        "",
                        1 if r["removable"] else 0,
                    ]
                )
            for r in n.random_k:
                w.writerow(
                    [
                        n.label,
                        n.model,
                        "random_k",
                        "",
                        "",
                        r["k"],
                        "",
                        True,
                        f"{r['mean']:.4f}",
                        f"{r['std']:.4f}",
                        r["n"],
                    ]
                )


def plot(path: Path, nets: list[NetLesions], chance: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    colors = {"residual": "tab:blue", "plain": "tab:red"}
    for n in nets:
        c = colors.get(n.label, None)
        xs = [r["index"] for r in n.single]
        ys = [
            math.nan if r["top1_err"] is None else r["top1_err"] for r in n.single
        ]  # gaps: not removable
        left.plot(xs, ys, "o-", ms=3, color=c, label=f"{n.label} ({n.model})")
        left.axhline(n.intact_err, ls="--", lw=0.8, color=c)
        blocked = [r["index"] for r in n.single if not r["removable"]]
        if blocked:
            left.plot(
                blocked, [chance] * len(blocked), "x", color=c, label=f"{n.label}: not removable"
            )
        ks = [r["k"] for r in n.random_k]
        right.errorbar(
            ks,
            [r["mean"] for r in n.random_k],
            yerr=[r["std"] for r in n.random_k],
            fmt="o-",
            ms=3,
            capsize=3,
            color=c,
            label=f"{n.label} ({n.model})",
        )
        right.axhline(n.intact_err, ls="--", lw=0.8, color=c)
    for r in nets[0].single:
        if r["downsampling"]:
            left.axvline(r["index"], color="gray", lw=0.6, ls=":")
    for ax in (left, right):
        ax.axhline(chance, color="black", lw=0.6, ls="-.", label="chance")
        ax.set_ylabel("top-1 error (%)")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=8)
    left.set_xlabel("deleted block (dotted: downsampling blocks)")
    left.set_title("one block deleted (Veit et al. Fig. 3)")
    right.set_xlabel("k blocks deleted at random")
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_title("k blocks deleted (Veit et al. Fig. 4a)")
    fig.suptitle(f"lesion study, {nets[0].data} ({nets[0].scale} scale)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(nets: list[NetLesions], chance: float) -> None:
    from rich.table import Table

    from platform.run.console import rich_console

    console = rich_console()  # a log: no cell wraps
    table = Table(
        title=f"Lesion study ({nets[0].scale} scale), top-1 error %, chance {chance:.1f}%"
    )
    table.add_column("deleted")
    for n in nets:
        table.add_column(f"{n.label}\n{n.model}", justify="right")
    table.add_row("nothing", *(f"{n.intact_err:.2f}" for n in nets))
    for label, pick in (("1 block, median", statistics.median), ("1 block, worst", max)):
        cells = []
        for n in nets:
            errs = [
                r["top1_err"]
                for r in n.single
                if r["top1_err"] is not None and not r["downsampling"]
            ]
            cells.append(f"{pick(errs):.2f}" if errs else "-")
        table.add_row(label + " (non-downsampling)", *cells)
    table.add_row(
        "1 downsampling block",
        *(
            ", ".join(_fmt(r["top1_err"]) for r in n.single if r["downsampling"]) or "-"
            for n in nets
        ),
    )
    for k, rows in _by_k(nets):
        table.add_row(
            f"{k} random", *(f"{r['mean']:.2f} ± {r['std']:.2f}" if r else "" for r in rows)
        )
    console.print(table)
    console.print(f"[italic]Expected:[/italic] {EXPECTATION}")


def write_outputs(
    out: Path, nets: list[NetLesions], runs: list[LoadedRun], args: dict[str, Any]
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    chance = 100.0 * (1 - 1 / runs[0].datamodule.num_classes)
    record = {
        "paper": PAPER,
        "expectation": EXPECTATION,
        "scale": nets[0].scale,
        "chance_err": chance,
        "arguments": args,
        "runs": [
            {
                "label": n.label,
                "checkpoint": n.checkpoint,
                "run_dir": str(r.run_dir),
                "model": dataclasses.asdict(r.cfg.model),
                "data": dataclasses.asdict(r.cfg.data),
                "scale": n.scale,
            }
            for n, r in zip(nets, runs, strict=False)
        ],
        "nets": {
            n.label: {
                "model": n.model,
                "intact_err": n.intact_err,
                "single": n.single,
                "random_k": n.random_k,
                "random_pool": n.pool,
            }
            for n in nets
        },
    }
    write_json_atomic(out / "lesion.json", record)
    (out / "lesion.md").write_text(markdown(nets, chance))
    write_csv(out / "lesion.csv", nets)
    plot(out / "lesion.png", nets, chance)
    print_table(nets, chance)
    return record


# ---------------------------------------------------------------------------- command line
def _ks(text: str) -> list[int]:
    try:
        ks = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--k {text!r}: expected comma-separated integers, e.g. 1,2,5"
        ) from None
    if not ks or ks[0] < 1:
        raise argparse.ArgumentTypeError(f"--k {text!r}: numbers of deleted blocks must be >= 1")
    return ks


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m platform.lesion",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_checkpoint(p, help="residual net: runs/<name>/checkpoints/last.ckpt")
    p.add_argument(
        "--plain-checkpoint", help="optional plain net of the same depth, evaluated the same way"
    )
    p.add_argument(
        "--k",
        type=_ks,
        help="numbers of blocks deleted at once, e.g. 1,2,5,10 "
        "(default: 1 to half the shape-keeping blocks)",
    )
    p.add_argument("--samples", type=int, default=10, help="random subsets per k (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random subsets")
    p.add_argument(
        "--max-batches", type=int, help="evaluate on the first N validation batches only"
    )
    p.add_argument("--device", help="cpu | cuda | cuda:1 (default: cuda when available)")
    p.add_argument("--out", help="output directory (default reproduce/lesion/<run name>)")
    return p


@cli.entry()
def main(argv: list[str]) -> int:
    args, _ = cli.parse(parser(), argv, overrides=False)
    if args.samples < 1 or (args.max_batches is not None and args.max_batches < 1):
        return cli.user_error("--samples and --max-batches must be >= 1")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        runs = [residual_run(args.checkpoint)]
        if args.plain_checkpoint:
            runs.append(residual_run(args.plain_checkpoint, "--plain-checkpoint"))
        labels = ["plain" if is_plain(run.model) else "residual" for run in runs]
        if len(labels) > 1 and labels[0] == labels[1]:
            print(f"warning: both checkpoints hold {labels[0]} nets", file=sys.stderr)
            labels[1] += "_2"
        nets = [
            study(run, args.k, args.samples, args.seed, args.max_batches, device, label)
            for run, label in zip(runs, labels, strict=False)
        ]
        out = Path(args.out) if args.out else Path("reproduce") / "lesion" / runs[0].run_dir.name
        write_outputs(out, nets, runs, vars(args))
    except (LesionError, *STUDY_ERRORS) as e:
        return cli.user_error(e)
    print(f"wrote {out / 'lesion.json'}, lesion.md, lesion.csv, lesion.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
