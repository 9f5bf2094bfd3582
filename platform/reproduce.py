"""``python -m platform.reproduce TABLE``: a paper's table, the paper's numbers beside ours.

    python -m platform.reproduce --list
    python -m platform.reproduce table3                          # report (static + trained columns)
    python -m platform.reproduce table3 --scale proxy            # the proxy-scale runs instead
    python -m platform.reproduce table3 --launch local|slurm|wandb [--seeds 3] [--scale ...] [--dry-run] [key=value ...]
    python -m platform.reproduce table3 --wandb ENTITY/PROJECT   # runs from the W&B API
    python -m platform.reproduce table3 --wandb-dir runs/        # runs from W&B run files (offline or synced)
    python -m platform.reproduce lesion --checkpoint PATH        # Veit et al. 2016 lesion study

Static columns (params, multiply-adds at the paper's resolution, with the paper's figures and the
ratio) are computed now and need no training.  Trained columns are the final-epoch validation
errors of the runs whose config matches a row at the chosen scale: mean ± std over seeds with n,
beside the paper's value and the delta.  ``proxy`` numbers check the machinery and trends on
one machine; they are never a reproduction of the paper's values, and are labelled so.
Output: a rich table, and ``reproduce/<table>/`` table.md, table.csv, table.json, plot.png.
"""
from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import models
from platform.config import ConfigError, parse_overrides
from platform.runs import RunRecord, local_records, run_filter, wandb_api_records, wandb_offline_records
from platform.tables import SCALES, Row, Table, TableError, list_tables, load_table

ROOT = Path(__file__).resolve().parent.parent
TRAIN = [sys.executable, "-m", "platform.train"]


# ---------------------------------------------------------------------------- static columns
def static_columns(table: Table, row: Row) -> dict[str, Any]:
    """Params and multiply-adds of a row, counted now by ``platform.complexity`` (meta device)."""
    import torch

    from platform.complexity import count_macs

    knobs = {"num_classes": table.num_classes, **row.knobs()}
    if row.scaling is not None:
        return dict(_scaled_efficientnet(tuple(sorted(row.scaling.items()))))
    if row.module:
        with torch.device("meta"):
            block = models.create_model(row.model, **knobs).get_submodule(row.module)
        channels, side = row.module_input
        # Table 2 counts the template's conv weights (no BN): count those.
        params = sum(m.weight.numel() for m in block.modules() if isinstance(m, torch.nn.Conv2d))
        return {"params": params, "macs": count_macs(block, side, in_chans=channels), "resolution": side}
    resolution = table.resolution_of(row) or models.model_info(row.model).resolution
    c = _complexity(row.model, resolution, tuple(sorted(knobs.items())))
    return {"params": c.params, "macs": c.macs, "resolution": resolution}


@functools.lru_cache(maxsize=None)
def _complexity(name: str, resolution: int, knobs: tuple[tuple[str, Any], ...]):
    from platform.complexity import complexity

    return complexity(name, resolution, **dict(knobs))


@functools.lru_cache(maxsize=None)
def _scaled_efficientnet(scaling: tuple[tuple[str, float], ...]) -> dict[str, Any]:
    """EfficientNet-B0 scaled along width/depth/resolution or by phi; paper = the FLOPs law.

    §3.3: FLOPs scale as d * w^2 * r^2, so the "paper" multiply-adds of a scaled net are B0's
    times that factor (w, d, r the requested multipliers before rounding to whole channels/layers).
    """
    import torch

    from models.mobilenet import BASE_RESOLUTION, compound_coefficients, scaled_efficientnet
    from platform.complexity import count_macs, count_params

    s = dict(scaling)
    if "phi" in s:
        d, w, r = compound_coefficients(float(s["phi"]))
    else:
        d, w, r = float(s.get("depth", 1.0)), float(s.get("width", 1.0)), int(s.get("resolution", BASE_RESOLUTION))
    with torch.device("meta"):
        net, _ = scaled_efficientnet(width=w, depth=d, resolution=r)
        base, _ = scaled_efficientnet()
    law = count_macs(base, BASE_RESOLUTION) * d * w**2 * (r / BASE_RESOLUTION) ** 2
    return {"params": count_params(net), "macs": count_macs(net, r), "resolution": r, "law_macs": law,
            "scaling": {"width": round(w, 4), "depth": round(d, 4), "resolution": r}}


# ---------------------------------------------------------------------------- trained columns
def row_specific(row: Row, scale: str) -> list[str]:
    """The row's own overrides; at the paper's scale a row with its own input side (EfficientNet-B3
    at 300, Inception-ResNet-v2 at 299) trains and evaluates at that side."""
    side = [f"data.resolution={row.resolution}", f"data.val_resolution={row.resolution}"]
    return [*row.overrides, *(side if scale == "imagenet" and row.resolution else [])]


def row_overrides(table: Table, row: Row, scale: str) -> list[str]:
    """What makes a run this row at this scale: model, the scale's data/recipe/overrides, the row's."""
    return [f"model={row.model}", *table.scales[scale].launch_overrides(), *row_specific(row, scale)]


def distinguishing_keys(table: Table, scale: str) -> set[str]:
    """Every key some row of the table sets: each row must hold its own value for all of them."""
    return {k for row in table.rows for k, _ in parse_overrides(row_specific(row, scale))}


def row_runs(table: Table, row: Row, scale: str, records: list[RunRecord]) -> list[RunRecord]:
    is_row = run_filter(row_overrides(table, row, scale), distinguishing_keys(table, scale))
    return [r for r in records if is_row(r)]


def _mean_std(xs: list[float]) -> tuple[float | None, float | None]:
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def epoch_curves(run: RunRecord) -> list[dict[str, Any]]:
    """A local run's per-epoch records (``metrics.jsonl``); none for W&B records."""
    from platform.runs import read_metrics

    return read_metrics(Path(run.path)) if run.source == "local" else []


def final_train_top1(run: RunRecord) -> float | None:
    """The last epoch's training top-1 (%): the running accuracy over that epoch's augmented
    batches in train mode, as He et al.'s Fig. 6 training curves are."""
    rows = [r for r in epoch_curves(run) if "train/top1" in r]
    return rows[-1]["train/top1"] if rows else None


def trained_columns(runs: list[RunRecord]) -> dict[str, Any]:
    """Final-epoch errors over seeds (one run per seed: the newest finished), plus the row's status."""
    finished: dict[Any, RunRecord] = {}
    for r in sorted((r for r in runs if r.status == "finished" and r.top1 is not None), key=lambda r: r.path):
        finished[r.get("seed")] = r
    out: dict[str, Any] = {"n": len(finished), "seeds": sorted(finished, key=str),
                           "runs": [r.path for r in finished.values()]}
    for metric, attr in (("top1_err", "top1"), ("top5_err", "top5")):
        vals = [100.0 - getattr(r, attr) for r in finished.values() if getattr(r, attr) is not None]
        out[metric], out[f"{metric}_std"] = _mean_std(vals)
    train = [100.0 - t for t in (final_train_top1(r) for r in finished.values()) if t is not None]
    out["train_err"], out["train_err_std"] = _mean_std(train)
    evaluated: dict[str, dict[str, Any]] = {}  # platform.evaluate's numbers beside the trained ones
    for protocol in sorted({p for r in finished.values() for p in r.evaluated}):
        errs = [r.evaluated[protocol]["top1_err"] for r in finished.values() if protocol in r.evaluated]
        mean, std = _mean_std(errs)
        evaluated[protocol] = {"top1_err": mean, "top1_err_std": std, "n": len(errs)}
    out["evaluated"] = evaluated
    running = [r.path for r in runs if r.status == "running"]
    failed = [r.path for r in runs if r.status in ("failed", "interrupted", "diverged")]
    lost = [r.path for r in runs if r.status == "lost"]  # a dead writer without a final status (SIGKILL, node)
    parts = []
    if finished:
        parts.append(f"finished x{len(finished)}")
    if running:
        parts.append(f"running: {', '.join(running)}")
    if failed:
        parts.append(f"failed: {', '.join(failed)}")
    if lost:
        parts.append(f"lost: {', '.join(lost)}")
    out["status"] = "; ".join(parts) if parts else "pending"
    out["running"], out["failed"] = running, failed
    return out


# ---------------------------------------------------------------------------- the report
def gather(table: Table, records: list[RunRecord], scale: str) -> list[dict[str, Any]]:
    rows = []
    for row in table.rows:
        static = static_columns(table, row)
        paper = dict(row.paper)
        if "law_macs" in static and paper.get("macs") is None:
            paper["macs"] = static["law_macs"]
        entry: dict[str, Any] = {"id": row.id, "label": row.label, "model": row.model, "group": row.group, "x": row.x,
                                 "overrides": list(row.overrides), "static": static, "paper": paper,
                                 "note": row.note}
        for k in ("params", "macs"):
            entry[f"{k}_ratio"] = static[k] / paper[k] if paper.get(k) else None
        if table.trained:
            t = trained_columns(row_runs(table, row, scale, records))
            for m in table.metrics:
                t[f"{m}_delta"] = (t[m] - paper[m]) if t[m] is not None and paper.get(m) is not None else None
            entry["trained"] = t
        rows.append(entry)
    return rows


def _num(v: float | None, unit: str = "") -> str:
    if v is None:
        return "–"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}{unit}" if abs(v) / div < 100 else f"{v / div:.1f}{suffix}{unit}"
    return f"{v:.3g}{unit}"


def _err(mean: float | None, std: float | None, n: int) -> str:
    if mean is None:
        return "–"
    return f"{mean:.2f} ± {std:.2f} (n={n})" if n > 1 else f"{mean:.2f} (n=1)"


def columns(table: Table, scale: str) -> list[str]:
    cols = ["row", "model", "res", "params", "paper params", "ratio", "MACs", "paper MACs", "ratio"]
    if table.trained:
        for m in table.metrics:
            name = m.replace("_err", " err %")
            cols += [f"{name} ours ({scale})", f"{name} paper", "delta"]
        cols += ["evaluated top-1 err %", "status"]
    return cols


def cells(table: Table, entry: dict[str, Any]) -> list[str]:
    s, p = entry["static"], entry["paper"]
    ratio = lambda r: "–" if r is None else f"{r:.3f}"  # noqa: E731
    out = [entry["label"], entry["model"] + "".join(f" {o}" for o in entry["overrides"]), str(s["resolution"]),
           _num(s["params"]), _num(p.get("params")), ratio(entry["params_ratio"]),
           _num(s["macs"]), _num(p.get("macs")), ratio(entry["macs_ratio"])]
    if table.trained:
        t = entry["trained"]
        for m in table.metrics:
            d = t.get(f"{m}_delta")
            out += [_err(t[m], t[f"{m}_std"], t["n"]), "–" if p.get(m) is None else f"{p[m]:.2f}",
                    "–" if d is None else f"{d:+.2f}"]
        ev = t.get("evaluated") or {}
        out.append("; ".join(f"{p} {_err(v['top1_err'], v['top1_err_std'], v['n'])}" for p, v in ev.items()) or "–")
        out.append(t["status"])
    return out


def scale_banner(table: Table, scale: str) -> str:
    if not table.trained:
        return "computed table: static columns only (no training)"
    sc = table.scales[scale]
    what = f"data={sc.data}" + (f" recipe={sc.recipe}" if sc.recipe else "") + "".join(f" {o}" for o in sc.overrides)
    if scale == "proxy":
        return (f"scale: PROXY ({what}){': ' + sc.note if sc.note else ''} -- checks the machinery and trends; "
                f"NOT a reproduction of the paper's values")
    return f"scale: imagenet, the paper's setting ({what})"


def to_markdown(table: Table, rows: list[dict[str, Any]], scale: str) -> str:
    cols = columns(table, scale)
    lines = [f"# {table.title}", "", f"{table.paper}, {table.table}.  Source: {table.source}", "",
             f"**{scale_banner(table, scale)}**", ""]
    if table.trend:
        lines += [f"Expected trend (paper): {table.trend}", ""]
    if table.recipe_note:
        lines += [f"Recipe: {table.recipe_note}", ""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells(table, e)) + " |" for e in rows]
    notes = [f"- {e['label']}: {e['note']}" for e in rows if e["note"]]
    lines += ["", "MACs = multiply-adds (the papers' \"FLOPs\"), counted by platform/complexity.py. "
              "Errors are final-epoch validation errors; mean ± sample std over seeds."
              + (" Train err: the last epoch's running training error (augmented batches, train mode)."
                 if "train_err" in table.metrics else "")]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def to_csv(table: Table, rows: list[dict[str, Any]], scale: str) -> str:
    buf = io.StringIO()
    header = ["id", "label", "model", "overrides", "resolution", "params", "paper_params", "params_ratio", "macs",
              "paper_macs", "macs_ratio"]
    if table.trained:
        header += ["scale", "n", "seeds"]
        for m in table.metrics:
            header += [m, f"{m}_std", f"paper_{m}", f"{m}_delta"]
        header += ["status"]
    w = csv.writer(buf)
    w.writerow(header)
    for e in rows:
        s, p = e["static"], e["paper"]
        line = [e["id"], e["label"], e["model"], " ".join(e["overrides"]), s["resolution"], s["params"],
                p.get("params"), e["params_ratio"], s["macs"], p.get("macs"), e["macs_ratio"]]
        if table.trained:
            t = e["trained"]
            line += [scale, t["n"], " ".join(map(str, t["seeds"]))]
            for m in table.metrics:
                line += [t[m], t[f"{m}_std"], p.get(m), t.get(f"{m}_delta")]
            line += [t["status"]]
        w.writerow(["" if v is None else v for v in line])
    return buf.getvalue()


def plot(table: Table, rows: list[dict[str, Any]], scale: str, path: Path) -> Path:
    """The paper's trend beside ours: y (error, accuracy, params or MACs) against the table's x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = table.plot or {"x": "macs", "y": "top1_err"}
    xkey, ykey = spec.get("x", "macs"), spec.get("y", "top1_err")

    def xval(e: dict[str, Any]) -> float | None:
        return e["x"] if xkey == "x" else e["static"].get(xkey)

    def yvals(e: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
        """(paper, ours, ours std)"""
        if ykey in ("params", "macs"):
            return e["paper"].get(ykey), e["static"][ykey], None
        metric = "top1_err"
        p = e["paper"].get(metric)
        t = e.get("trained") or {}
        o, sd = t.get(metric), t.get(f"{metric}_std")
        if ykey == "top1_acc":
            return (None if p is None else 100 - p), (None if o is None else 100 - o), sd
        return p, o, sd

    fig, ax = plt.subplots(figsize=(7, 4.5))
    # proxy errors live on another scale (small data, few epochs): their own y axis, so their
    # trend can be compared with the paper's without pretending the values are comparable
    twin = table.trained and scale == "proxy" and ykey not in ("params", "macs")
    ours_ax = ax.twinx() if twin else ax
    groups = list(dict.fromkeys(e["group"] for e in rows))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for gi, g in enumerate(groups):
        pts = sorted((e for e in rows if e["group"] == g and xval(e) is not None), key=xval)
        c = colors[gi % len(colors)]
        label = f"{g}: " if g else ""
        px = [(xval(e), yvals(e)[0]) for e in pts if yvals(e)[0] is not None]
        if px:
            ax.plot(*zip(*px), "o--", color=c, alpha=0.6, label=f"{label}paper")
        ox = [(xval(e), yvals(e)[1], yvals(e)[2] or 0.0) for e in pts if yvals(e)[1] is not None]
        if ox:
            xs, ys, sds = zip(*ox)
            ours = "ours (computed)" if ykey in ("params", "macs") else f"ours ({scale})"
            ours_ax.errorbar(xs, ys, yerr=sds, fmt="s-", color=c, capsize=3, label=f"{label}{ours}")
    if spec.get("xlog"):
        ax.set_xscale("log", base=2 if xkey == "x" else 10)
    ax.set_xlabel(spec.get("xlabel", xkey))
    ax.set_ylabel({"top1_err": "top-1 error (%)", "top1_acc": "top-1 accuracy (%)", "params": "parameters",
                   "macs": "multiply-adds"}.get(ykey, ykey))
    if twin:
        ours_ax.set_ylabel(f"ours, proxy scale ({table.scales['proxy'].data})")
    title = f"{table.paper.split(',')[0]} {table.table}"
    if table.trained and scale == "proxy":
        title += " -- PROXY scale, not the paper's setting"
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    handles = [h for a in {ax, ours_ax} for h in zip(*a.get_legend_handles_labels())]
    if handles:
        ax.legend(*zip(*handles), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path


def curves_plot(table: Table, rows: list[dict[str, Any]], records: list[RunRecord], scale: str,
                path: Path) -> Path:
    """Per-epoch error of every row as He et al. 2015 Fig. 6: training error dashed, validation
    error solid, mean over the row's finished seeds (a band: min to max); one panel per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = list(dict.fromkeys(e["group"] for e in rows))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 4.2), sharey=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    by_path = {r.path: r for r in records}
    for ax, g in zip(axes[0], groups):
        for i, e in enumerate(e for e in rows if e["group"] == g):
            runs = [by_path[p] for p in e["trained"]["runs"] if p in by_path]
            curves = [epoch_curves(r) for r in runs]
            for key, style, what in (("train/top1", "--", "train"), ("val/top1", "-", "val")):
                series = [[100.0 - m[key] for m in c if key in m] for c in curves]
                series = [s for s in series if s]
                if not series:
                    continue
                n = min(map(len, series))
                ys = np.array([s[:n] for s in series])
                xs = np.arange(1, n + 1)
                c = colors[i % len(colors)]
                ax.plot(xs, ys.mean(0), style, color=c, label=f"{e['label']} {what} (n={len(series)})")
                if len(series) > 1:
                    ax.fill_between(xs, ys.min(0), ys.max(0), color=c, alpha=0.12, linewidth=0)
        ax.set_title(g or table.name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("error (%)")
    title = f"{table.paper.split(',')[0]} {table.table}: dashed = training error, solid = validation error"
    if scale == "proxy":
        title += f"\nPROXY scale ({table.scales['proxy'].data}), not the paper's setting"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path


def print_rich(table: Table, rows: list[dict[str, Any]], scale: str) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    # a terminal's own width; a file or pipe (no width of its own) gets 160 columns or COLUMNS if wider.
    # Row names never wrap; the other columns fold.
    console = Console(width=None if sys.stdout.isatty() else max(160, int(os.environ.get("COLUMNS", 0) or 0)))
    rt = RichTable(title=f"{table.name}: {table.title}\n{table.paper.split(',')[0]}, {table.table}",
                   caption=scale_banner(table, scale), show_lines=False)
    for i, c in enumerate(columns(table, scale)):
        rt.add_column(c, overflow="fold", no_wrap=i == 0)
    for e in rows:
        rt.add_row(*cells(table, e))
    console.print(rt)


def report(table: Table, records: list[RunRecord], scale: str, out_dir: Path, *, quiet: bool = False,
           make_plot: bool = True) -> dict[str, Any]:
    rows = gather(table, records, scale)
    out_dir.mkdir(parents=True, exist_ok=True)
    from datamodules.write import atomic_path

    result = {"table": table.name, "title": table.title, "paper": table.paper, "paper_table": table.table,
              "kind": table.kind, "scale": scale if table.trained else None,
              "scale_note": scale_banner(table, scale), "metrics": list(table.metrics), "rows": rows,
              "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for name, text in (("table.md", to_markdown(table, rows, scale)), ("table.csv", to_csv(table, rows, scale)),
                       ("table.json", json.dumps(result, indent=1, default=str) + "\n")):
        with atomic_path(out_dir / name) as tmp:
            tmp.write_text(text)
    if make_plot:
        with atomic_path(out_dir / "plot.png") as tmp:
            plot(table, rows, scale, tmp)
        if table.curves and table.trained:
            with atomic_path(out_dir / "curves.png") as tmp:
                curves_plot(table, rows, records, scale, tmp)
    if not quiet:
        print_rich(table, rows, scale)
        if table.trained and not any(e["trained"]["n"] for e in rows):
            other = "proxy" if scale == "imagenet" else "imagenet"
            n_other = sum(trained_columns(row_runs(table, r, other, records))["n"] for r in table.rows)
            if n_other:
                print(f"({n_other} finished {other}-scale runs match this table: pass --scale {other})")
        print(f"wrote {out_dir}/table.md, table.csv, table.json" + (", plot.png" if make_plot else "")
              + (", curves.png" if make_plot and table.curves and table.trained else ""))
    return result


# ---------------------------------------------------------------------------- launching
def run_name(table: Table, row: Row, scale: str, seed: int) -> str:
    return f"{table.name}.{row.id}.{scale}.s{seed}"


def missing(table: Table, scale: str, seeds: int, records: list[RunRecord]) -> list[tuple[Row, int]]:
    """(row, seed) pairs with no finished or running run; failed ones are launched again."""
    todo = []
    for row in table.rows:
        runs = row_runs(table, row, scale, records)
        for seed in range(seeds):
            if not any(r.get("seed") == seed and r.status in ("finished", "running") for r in runs):
                todo.append((row, seed))
    return todo


def launch_overrides(table: Table, row: Row, scale: str, seed: int, extra: list[str]) -> list[str]:
    # resume=auto: a failed or interrupted run of this name continues from its last checkpoint
    return [*row_overrides(table, row, scale), f"seed={seed}", f"run.name={run_name(table, row, scale, seed)}",
            "resume=auto", f"logging.tags=[{table.name},{scale}]", *extra]


def sweep_parameters(table: Table, scale: str, seeds: int, data_path: str | None = None) -> dict[str, Any]:
    """A W&B grid over the rows and seeds: one ``model`` value per row (with its knobs packed in).
    A dataset that needs ``data.path`` gets it, or the placeholder the sweep file's header explains."""
    import yaml

    from platform.launch import DATA_NEEDS_PATH, DATA_PATH_PLACEHOLDER

    params: dict[str, Any] = {"model": {"values": [" ".join([r.model, *row_specific(r, scale)]) for r in table.rows]}}
    for key, raw in parse_overrides(table.scales[scale].launch_overrides()):
        name = {"data.name": "data"}.get(key, key)
        params[name] = {"value": yaml.safe_load(raw) if name not in ("data", "recipe") else raw}
        if name == "data" and raw in DATA_NEEDS_PATH:
            params["data.path"] = {"value": data_path or DATA_PATH_PLACEHOLDER}
    params["seed"] = {"values": list(range(seeds))}
    params["logging.tags"] = {"value": [table.name, scale]}  # --wandb ... --wandb-tag TABLE finds them
    return params


def sweep_config(table: Table, scale: str = "imagenet", seeds: int = 3, data_path: str | None = None) -> dict[str, Any]:
    return {
        "name": f"{table.name} ({scale})",
        "description": f"{table.title}. {table.paper}, {table.table}. "
                       f"Generated by `python -m platform.reproduce {table.name} --write-sweep`; do not edit.",
        "method": "grid",
        "metric": {"name": "val/top1", "goal": "maximize"},
        "command": ["${env}", "python", "-m", "platform.train", "${args_no_hyphens}"],
        "parameters": sweep_parameters(table, scale, seeds, data_path),
    }


def sweep_yaml(table: Table, scale: str = "imagenet", seeds: int = 3, data_path: str | None = None) -> str:
    import yaml

    from platform.launch import DATA_PATH_PLACEHOLDER

    head = (f"# W&B sweep for {table.name}: {table.title}\n"
            f"# {table.paper}, {table.table}.\n"
            f"#   wandb sweep --project cnn-platform sweeps/{table.name}.yaml     (prints the sweep id)\n"
            f"#   sbatch --array=0-N slurm/wandb_agent.sh ENTITY/cnn-platform/SWEEP_ID   (one agent per job)\n"
            f"#   python -m platform.sweep sweeps/{table.name}.yaml [--slurm]   (the same grid without W&B)\n"
            f"# Each `model` value is one table row: the model name and the row's knobs, passed as\n"
            f"# key=value overrides. Generated by `python -m platform.reproduce {table.name} --write-sweep`.\n")
    config = sweep_config(table, scale, seeds, data_path)
    if config["parameters"].get("data.path", {}).get("value") == DATA_PATH_PLACEHOLDER:
        head += (f"# data.path: {DATA_PATH_PLACEHOLDER} stands for the directory holding train.beton/val.beton; "
                 f"replace it, or\n#   python -m platform.reproduce {table.name} --launch wandb --data-path DIR "
                 f"(writes a copy with it)\n#   python -m platform.sweep sweeps/{table.name}.yaml --data-path DIR\n")
    return head + yaml.safe_dump(config, sort_keys=False, width=120)


def launch(table: Table, how: str, scale: str, seeds: int, records: list[RunRecord], extra: list[str],
           dry_run: bool, out_dir: Path, sbatch_args: list[str], data_path: str | None = None) -> int:
    """Launch the missing runs; every printed command is runnable (``platform.launch`` checks)."""
    from platform.launch import check_data_path, check_extra, compact_ranges, data_path_overrides, plan_line, resolved

    extra = [*data_path_overrides(data_path), *extra]
    grid = [launch_overrides(table, row, scale, seed, []) for row in table.rows for seed in range(seeds)]
    check_extra(grid, extra, f"{table.name} --launch")
    if how == "wandb":
        cfgs = resolved(grid, extra)
        check_data_path(cfgs, f"{table.name} --launch wandb")
        print(plan_line(cfgs))
        return _launch_wandb(table, scale, seeds, out_dir, dry_run, data_path)
    todo = missing(table, scale, seeds, records)
    if not todo:
        print(f"{table.name} ({scale}): every row has {seeds} finished or running run(s); nothing to launch")
        return 0
    configs = [launch_overrides(table, row, scale, seed, extra) for row, seed in todo]
    cfgs = resolved(configs, [])
    check_data_path(cfgs, f"{table.name} --launch {how}")
    print(plan_line(cfgs), flush=True)
    if how == "local":
        commands = [TRAIN + c for c in configs]
        if dry_run:
            for c in commands:
                print(shlex.join(["python", *c[1:]]))
            return 0
        failed = 0
        for i, c in enumerate(commands, 1):
            print(f"[{i}/{len(commands)}] {shlex.join(['python', *c[1:]])}", flush=True)
            proc = subprocess.run(c, cwd=ROOT)
            failed += proc.returncode != 0
        print(f"{len(commands) - failed} of {len(commands)} runs finished; "
              f"report: python -m platform.reproduce {table.name} --scale {scale}")
        return 1 if failed else 0
    # slurm: one job array over the missing (row, seed) pairs, through slurm/sweep.sh
    import yaml

    sweep_file = out_dir / f"launch-{scale}-{time.strftime('%Y%m%d-%H%M%S')}.yaml"
    command = ["sbatch", f"--array={compact_ranges(range(len(configs)))}", *sbatch_args, "slurm/sweep.sh",
               str(sweep_file)]
    if dry_run:
        print(f"# {sweep_file} would hold {len(configs)} configurations:")
        print(yaml.safe_dump(configs, default_flow_style=None, width=200), end="")
        print(shlex.join(command))
        return 0
    out_dir.mkdir(parents=True, exist_ok=True)
    (ROOT / "logs").mkdir(exist_ok=True)
    sweep_file.write_text(yaml.safe_dump(configs, default_flow_style=None, width=200))
    print(shlex.join(command), flush=True)
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    print(proc.stdout.strip() or proc.stderr.strip())
    return proc.returncode


def _launch_wandb(table: Table, scale: str, seeds: int, out_dir: Path, dry_run: bool,
                  data_path: str | None = None) -> int:
    from platform.launch import compact_ranges
    from platform.train import wandb_mode

    text = sweep_yaml(table, scale, seeds, data_path)
    committed = ROOT / "sweeps" / f"{table.name}.yaml"
    if scale == "imagenet" and seeds == 3 and committed.is_file() and committed.read_text() == text:
        path = committed.relative_to(ROOT)
    else:
        path = out_dir / f"sweep-{scale}-s{seeds}.yaml"
        if not dry_run:
            out_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    n = len(table.rows) * seeds
    project = os.environ.get("WANDB_PROJECT", "cnn-platform")
    entity = os.environ.get("WANDB_ENTITY")
    if dry_run or wandb_mode("auto") != "online":
        why = "dry run" if dry_run else "W&B is offline here (no API key or WANDB_MODE=offline)"
        print(f"# {why}: create the sweep and start agents where W&B is reachable:")
        print(shlex.join(["wandb", "sweep", "--project", project, *(["--entity", entity] if entity else []), str(path)]))
        print(f"wandb agent --count {n} {entity or 'ENTITY'}/{project}/SWEEP_ID        # on one machine, or")
        print(f"sbatch --array={compact_ranges(range(n))} slurm/wandb_agent.sh {entity or 'ENTITY'}/{project}/SWEEP_ID"
              f"   # one agent per job")
        print(f"# without W&B: python -m platform.sweep {path} [--slurm]")
        return 0
    import wandb
    import yaml

    sweep_id = wandb.sweep(yaml.safe_load(text), project=project, entity=entity)
    who = f"{entity}/{project}" if entity else project
    print(f"created sweep {who}/{sweep_id} ({n} runs)")
    print(f"wandb agent --count {n} {who}/{sweep_id}")
    print(f"sbatch --array={compact_ranges(range(n))} slurm/wandb_agent.sh {who}/{sweep_id}")
    return 0


# ---------------------------------------------------------------------------- the lesion study
def _is_plain(name: str) -> bool:
    import torch

    from platform.lesion_blocks import is_plain

    with torch.device("meta"):
        return is_plain(models.create_model(name))


def lesion(argv: list[str]) -> int:
    """``reproduce lesion --checkpoint PATH [--plain-checkpoint PATH] ...``: platform/lesion.py on
    those checkpoints.  Without ``--checkpoint``: the first finished runs (by seed) of the lesion
    table's residual and plain rows at ``--scale`` (``--table`` picks another table of that shape)."""
    from platform.lesion import main as lesion_main

    if any(a.split("=")[0] == "--checkpoint" for a in argv):
        return lesion_main(argv)
    p = argparse.ArgumentParser(prog="python -m platform.reproduce lesion", add_help=False)
    p.add_argument("--table", default="lesion")
    p.add_argument("--scale", choices=SCALES, default="imagenet")
    p.add_argument("--runs", default="runs")
    args, rest = p.parse_known_args(argv)
    if {"-h", "--help"} & set(rest):
        return lesion_main(["--help"])
    try:
        table = load_table(args.table)
        records = local_records(args.runs)
        found = {}
        for row in table.rows:
            done = sorted((r for r in row_runs(table, row, args.scale, records) if r.status == "finished"),
                          key=lambda r: (r.get("seed"), r.path))
            ckpts = [Path(r.path) / "checkpoints" / "last.ckpt" for r in done]
            ckpts = [c for c in ckpts if c.is_file()]
            plain = _is_plain(row.model)
            if ckpts:
                found.setdefault("plain" if plain else "residual", ckpts[0])
        if "residual" not in found:
            raise TableError(f"no finished run of {table.name}'s residual row at scale {args.scale} under "
                             f"{args.runs}/: train it with `python -m platform.reproduce {table.name} --launch local "
                             f"--scale {args.scale} --seeds 1`, or pass --checkpoint PATH")
    except TableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cmd = ["--checkpoint", str(found["residual"])]
    if "plain" in found:
        cmd += ["--plain-checkpoint", str(found["plain"])]
    print(f"lesion study of {' and '.join(str(c) for c in found.values())}", flush=True)
    return lesion_main(cmd + rest)


# ---------------------------------------------------------------------------- CLI
def read_records(args: argparse.Namespace, runs_root: Path) -> list[RunRecord]:
    if args.wandb:
        filters = {}
        if args.wandb_sweep:
            filters["sweep"] = args.wandb_sweep
        if args.wandb_tag:
            filters["tags"] = {"$in": [args.wandb_tag]}
        return wandb_api_records(args.wandb, filters)
    if args.wandb_dir:
        return wandb_offline_records(args.wandb_dir)
    return local_records(runs_root)


def list_text() -> str:
    lines = []
    for t in list_tables():
        alias = f" ({', '.join(t.aliases)})" if t.aliases else ""
        kind = "computed" if not t.trained else f"{len(t.rows)} rows"
        lines.append(f"{t.name + alias:28s} {t.paper.split(',')[0]:32s} {t.table:22s} {kind:9s} {t.title}")
    lines.append("(python -m platform.reproduce lesion [--checkpoint PATH]: the lesion study of the lesion "
                 "table's finished runs, or of any checkpoint)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "lesion" and not {"--launch", "--write-sweep", "--list"} & {a.split("=")[0] for a in argv}:
        return lesion(argv[1:])
    p = argparse.ArgumentParser(prog="python -m platform.reproduce", description=__doc__.split("\n")[0],
                                epilog="key=value arguments are passed to every launched run "
                                       "(e.g. run.root=..., data.cache_dir=...)")
    p.add_argument("table", nargs="?", help="table name, alias (table3) or path to a table .yaml")
    p.add_argument("--list", action="store_true", help="list the tables")
    p.add_argument("--scale", choices=SCALES, default="imagenet",
                   help="imagenet: the paper's data and recipe; proxy: the table's reduced setting")
    p.add_argument("--runs", default=None, help="local run directories (default: run.root=... if given, else runs/)")
    p.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read runs from the W&B API instead")
    p.add_argument("--wandb-sweep", metavar="ID", help="with --wandb: only this sweep's runs")
    p.add_argument("--wandb-tag", metavar="TAG", help="with --wandb: only runs with this tag (launched runs and "
                                                       "sweep runs carry the table's name)")
    p.add_argument("--wandb-dir", metavar="DIR", help="read runs from W&B run files (offline or synced) under DIR")
    p.add_argument("--out", default=None, help="output directory (default reproduce/<table>)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--launch", choices=("local", "slurm", "wandb"), help="run the missing rows")
    p.add_argument("--seeds", type=int, default=None, help="seeds per row to launch (default 3; proxy 2)")
    p.add_argument("--dry-run", action="store_true", help="print the exact commands and nothing else")
    p.add_argument("--sbatch-args", default="", help="extra sbatch options for --launch slurm (quoted)")
    p.add_argument("--data-path", metavar="DIR", help="with --launch: data.path of every run (required for "
                                                       "data=imagenet, beton, cifar10, cifar100)")
    p.add_argument("--write-sweep", action="store_true", help="write sweeps/<table>.yaml (W&B grid, imagenet scale)")
    args, rest = p.parse_known_args(argv)
    extra = [a for a in rest if "=" in a and not a.startswith("-")]
    unknown = [a for a in rest if a not in extra]
    if unknown:
        p.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.list:
        print(list_text())
        return 0
    if not args.table:
        p.error("give a table (see --list)")
    try:
        table = load_table(args.table)
        extra_pairs = dict(parse_overrides(extra))
        runs_root = Path(args.runs or extra_pairs.get("run.root", "runs"))
        out_dir = Path(args.out or ROOT / "reproduce" / table.name)
        if args.write_sweep:
            if not table.trained:
                raise TableError(f"{table.name} is a computed table: there is nothing to train")
            path = ROOT / "sweeps" / f"{table.name}.yaml"
            path.write_text(sweep_yaml(table))
            print(f"wrote {path}")
            return 0
        if args.launch:
            if not table.trained:
                raise TableError(f"{table.name} is a computed table (static columns only): nothing to launch")
            seeds = args.seeds or (2 if args.scale == "proxy" else 3)
            records = [] if args.launch == "wandb" else read_records(args, runs_root)
            return launch(table, args.launch, args.scale, seeds, records, extra, args.dry_run, out_dir,
                          shlex.split(args.sbatch_args), args.data_path)
        records = read_records(args, runs_root) if table.trained else []
        report(table, records, args.scale, out_dir, make_plot=not args.no_plot)
        return 0
    except (TableError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
