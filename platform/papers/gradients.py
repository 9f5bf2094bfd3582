"""Gradient flow under stochastic depth (Huang et al. 2016, arXiv:1603.09382, Fig. 8).

    python -m platform.reproduce gradients [--table stochastic_depth] [--scale proxy|imagenet]
                                           [--runs DIR] [--out DIR] [--stat mean_abs|l2]
    python -m platform.reproduce gradients --run DIR --run DIR [--out DIR]

Huang et al. plot the mean gradient magnitude of the first convolution per epoch for ResNet-110
on CIFAR-10, constant depth against stochastic depth: with stochastic depth it is larger
throughout, most visibly after each learning-rate drop (the vanishing-gradient argument of their
§3: a shorter expected depth carries more gradient to the early layers). This plots what
``logging.grad_stats=true`` recorded (``grad/<layer>/<stat>`` per epoch in ``metrics.jsonl``: the
mean over the epoch's optimizer steps; ``platform.run.grad_stats``): the first conv in the first
panel, each stage's first conv and the classifier in the others, one line per table row (mean over
its finished seeds) or per ``--run``; dotted verticals where the learning rate dropped. Writes
``gradients.json``, ``gradients.csv`` and ``gradients.png`` into ``--out``.

Without ``--run``: the finished runs of the table's rows at ``--scale`` under ``--runs`` (as the
table report finds them). A missing row, or a run trained without ``logging.grad_stats``, is a
one-line error (exit 2) naming the command that makes it.
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platform.after.run_records import RunRecord, local_records
from platform.papers.columns import epoch_curves, row_runs
from platform.papers.tables import SCALES, TableError, load_table
from platform.run import cli
from platform.run.grad_stats import PREFIX, STATS


class GradientsError(Exception):
    """A user error of this command: printed as one line, exit 2."""


@dataclass
class Curve:
    label: str
    runs: list[RunRecord]
    retrain: str  # the command that trains such a run with the statistics


# ---------------------------------------------------------------------------- finding the runs
def table_curves(table_name: str, scale: str, runs_root: str) -> list[Curve]:
    """One curve per row of the table: its finished runs at that scale (every seed)."""
    table = load_table(table_name)
    records = local_records(runs_root)
    launch = f"python -m platform.reproduce {table.name} --scale {scale} --launch local --seeds 1"
    curves = []
    for row in table.rows:
        done = sorted(
            (r for r in row_runs(table, row, scale, records) if r.status == "finished"),
            key=lambda r: (str(r.get("seed")), r.path),
        )
        if not done:
            raise GradientsError(
                f"no finished run of {table.name}'s row {row.id!r} at scale {scale} under "
                f"{runs_root}/: train it with `{launch}` (--runs DIR to look elsewhere, or "
                "--run DIR --run DIR for explicit runs)"
            )
        curves.append(Curve(row.label, done, f"`{launch}` (the table's runs carry it)"))
    return curves


def _label(r: RunRecord) -> str:
    rate = r.get("model.drop_path_rate") or 0.0
    depth = f"stochastic depth (drop_path_rate {rate:g})" if rate > 0 else "constant depth"
    return f"{r.get('model.name')}, {depth}"


def explicit_curves(run_dirs: list[str]) -> list[Curve]:
    curves = []
    for d in run_dirs:
        path = Path(d).resolve()
        found = [r for r in local_records(path.parent) if Path(r.path).resolve() == path]
        if not found:
            raise GradientsError(f"--run {d}: not a run directory (no config.yaml)")
        r = found[0]
        if r.status != "finished":
            raise GradientsError(f"--run {d}: the run is {r.status}, not finished")
        curves.append(Curve(_label(r), [r], "the same `python -m platform.train` command"))
    return curves


# ---------------------------------------------------------------------------- the data
def run_series(run: RunRecord) -> dict[str, Any]:
    """Per epoch (1-based) of one run: lr and every recorded ``grad/<layer>/<stat>``."""
    rows = sorted(epoch_curves(run), key=lambda m: m["epoch"])
    keys = sorted({k for m in rows for k in m if k.startswith(PREFIX)})
    return {
        "epochs": [m["epoch"] + 1 for m in rows],
        "lr": [m.get("lr") for m in rows],
        "values": {k.removeprefix(PREFIX): [m.get(k) for m in rows] for k in keys},
    }


def curve_data(curve: Curve) -> dict[str, Any]:
    """The curve's runs, each checked to carry the statistics, and their mean over seeds."""
    series = []
    for r in curve.runs:
        s = run_series(r)
        if not s["values"]:
            raise GradientsError(
                f"run {r.path} was trained without logging.grad_stats (no {PREFIX}* keys in its "
                f"metrics.jsonl): train it again with logging.grad_stats=true, e.g. {curve.retrain}"
            )
        series.append(s)
    n = min(len(s["epochs"]) for s in series)
    keys = sorted(set.intersection(*(set(s["values"]) for s in series)))

    def mean(xs: list) -> float | None:
        xs = [x for x in xs if x is not None]
        return sum(xs) / len(xs) if xs else None

    return {
        "label": curve.label,
        "runs": [r.path for r in curve.runs],
        "seeds": [r.get("seed") for r in curve.runs],
        "epochs": series[0]["epochs"][:n],
        "lr": series[0]["lr"][:n],
        "values": {k: [mean([s["values"][k][i] for s in series]) for i in range(n)] for k in keys},
    }


def layers_of(data: list[dict[str, Any]], stat: str) -> list[str]:
    """Recorded layers with this statistic, first conv first and classifier last."""
    names = dict.fromkeys(
        k.rsplit("/", 1)[0] for d in data for k in d["values"] if k.endswith(f"/{stat}")
    )
    order = {"first_conv": -1, "classifier": 1}
    return sorted(names, key=lambda n: (order.get(n, 0), n))


# ---------------------------------------------------------------------------- outputs
def write_csv(data: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "epoch", "lr", "layer", *STATS])
        for d in data:
            layers = dict.fromkeys(k.rsplit("/", 1)[0] for k in d["values"])
            for i, epoch in enumerate(d["epochs"]):
                for layer in layers:
                    vals = [d["values"].get(f"{layer}/{s}", [None] * (i + 1))[i] for s in STATS]
                    w.writerow([d["label"], epoch, d["lr"][i], layer, *vals])


def lr_drops(d: dict[str, Any]) -> list[float]:
    """Epoch boundaries after which the (per-epoch logged) learning rate fell."""
    lr = d["lr"]
    return [
        d["epochs"][i] + 0.5
        for i in range(len(lr) - 1)
        if lr[i] is not None and lr[i + 1] is not None and lr[i + 1] < 0.9 * lr[i]
    ]


def plot(data: list[dict[str, Any]], stat: str, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = layers_of(data, stat)
    cols = min(3, len(layers))
    rows = -(-len(layers) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    for ax, layer in zip(axes.flat, layers, strict=False):
        for d in data:
            ys = d["values"].get(f"{layer}/{stat}")
            if ys:
                ax.plot(d["epochs"], ys, marker=".", label=f"{d['label']} (n={len(d['runs'])})")
        for x in lr_drops(data[0]):
            ax.axvline(x, color="grey", linestyle=":", linewidth=1)
        what = "mean |gradient|" if stat == "mean_abs" else "gradient L2 norm"
        ax.set_title(f"{layer}: {what}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(layers) :]:
        ax.axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------- CLI
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m platform.reproduce gradients",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--table", default="stochastic_depth", help="table whose rows to compare")
    p.add_argument("--scale", choices=SCALES, default="imagenet", help="the table's scale")
    p.add_argument("--runs", default="runs", help="directory of run directories (default runs)")
    p.add_argument(
        "--run", action="append", default=[], help="a run directory (repeat); replaces --table"
    )
    p.add_argument("--stat", choices=STATS, default="mean_abs", help="statistic to plot")
    p.add_argument("--out", default="reproduce/gradients", help="output directory")
    return p


@cli.entry()
def main(argv: list[str]) -> int:
    a, _ = cli.parse(parser(), argv, overrides=False)
    try:
        curves = explicit_curves(a.run) if a.run else table_curves(a.table, a.scale, a.runs)
        data = [curve_data(c) for c in curves]
    except (GradientsError, TableError) as e:
        return cli.user_error(e)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    source = "runs " + ", ".join(a.run) if a.run else f"table {a.table}, scale {a.scale}"
    title = (
        f"Huang et al. 2016 Fig. 8: per-epoch {a.stat} of the gradient ({source}); "
        "dotted: learning-rate drops"
    )
    payload = {"source": source, "stat": a.stat, "curves": data}
    (out / "gradients.json").write_text(json.dumps(payload, indent=1) + "\n")
    write_csv(data, out / "gradients.csv")
    plot(data, a.stat, title, out / "gradients.png")
    first = [(d["label"], d["values"].get(f"first_conv/{a.stat}") or [None]) for d in data]
    for label, ys in first:
        vals = " ".join("-" if y is None else f"{y:.3g}" for y in ys)
        print(f"first_conv {a.stat} per epoch, {label}: {vals}")
    print(f"wrote {out}/gradients.json, gradients.csv, gradients.png")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
