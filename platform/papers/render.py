"""``platform.papers.reproduce``'s report: one table's gathered rows as a rich table, Markdown, CSV,
JSON and plots (``reproduce/<table>/``), the paper's numbers beside ours."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

from platform.after.run_records import RunRecord
from platform.papers.columns import epoch_curves, gather, row_runs, trained_columns
from platform.papers.tables import Table


# ---------------------------------------------------------------------------- the report
def _num(v: float | None, unit: str = "") -> str:
    if v is None:
        return "–"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return (
                f"{v / div:.3g}{suffix}{unit}"
                if abs(v) / div < 100
                else f"{v / div:.1f}{suffix}{unit}"
            )
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
    out = [
        entry["label"],
        entry["model"] + "".join(f" {o}" for o in entry["overrides"]),
        str(s["resolution"]),
        _num(s["params"]),
        _num(p.get("params")),
        ratio(entry["params_ratio"]),
        _num(s["macs"]),
        _num(p.get("macs")),
        ratio(entry["macs_ratio"]),
    ]
    if table.trained:
        t = entry["trained"]
        for m in table.metrics:
            d = t.get(f"{m}_delta")
            out += [
                _err(t[m], t[f"{m}_std"], t["n"]),
                "–" if p.get(m) is None else f"{p[m]:.2f}",
                "–" if d is None else f"{d:+.2f}",
            ]
        ev = t.get("evaluated") or {}
        out.append(
            "; ".join(
                f"{p} {_err(v['top1_err'], v['top1_err_std'], v['n'])}" for p, v in ev.items()
            )
            or "–"
        )
        out.append(t["status"])
    return out


def scale_banner(table: Table, scale: str) -> str:
    if not table.trained:
        return "computed table: static columns only (no training)"
    sc = table.scales[scale]
    what = (
        f"data={sc.data}"
        + (f" recipe={sc.recipe}" if sc.recipe else "")
        + "".join(f" {o}" for o in sc.overrides)
    )
    if scale == "proxy":
        return (
            f"scale: PROXY ({what}){': ' + sc.note if sc.note else ''} -- checks the machinery "
            "and trends; "
            f"NOT a reproduction of the paper's values"
        )
    return f"scale: imagenet, the paper's setting ({what})"


def row_recipes(table: Table, scale: str) -> dict[str | None, list[str]]:
    """recipe name -> the labels of the rows that train with it at ``scale`` (a row's own
    ``recipe=`` override wins over the scale's)."""
    out: dict[str | None, list[str]] = {}
    if not table.trained:
        return out
    sc = table.scales[scale]
    for r in table.rows_at(scale):
        own = [o.split("=", 1)[1] for o in r.overrides if o.startswith("recipe=")]
        out.setdefault(own[-1] if own else sc.recipe, []).append(r.label)
    return out


def recipe_lines(table: Table, scale: str) -> list[str]:
    """Under the table: the recipe each row trains with, its provenance (paper / released code /
    ours) and every known deviation from the paper's setup, the scale's overrides included."""
    from platform.run.config import recipe_path
    from platform.run.provenance import ProvenanceError, provenance_lines
    from platform.run.schema import ConfigError

    groups = row_recipes(table, scale)
    if not groups:
        return []
    sc = table.scales[scale]
    lines = []
    for recipe, labels in groups.items():
        lines.append(f"rows {', '.join(labels)} train with recipe={recipe or '(none: defaults)'}")
        if recipe:
            try:
                lines += provenance_lines(recipe, recipe_path(recipe))
            except (ConfigError, ProvenanceError, OSError) as e:
                lines.append(f"  (provenance unreadable: {e})")
    if sc.overrides:
        lines.append(
            f"the {scale} scale changes the recipe: {' '.join(sc.overrides)} (a deviation from the "
            "recipe's provenance where the key is listed there)"
        )
    if scale == "proxy":
        lines.append("proxy scale: every row deviates from the paper's data and budget (see above)")
    return lines


def to_markdown(table: Table, rows: list[dict[str, Any]], scale: str) -> str:
    cols = columns(table, scale)
    lines = [
        f"# {table.title}",
        "",
        f"{table.paper}, {table.table}.  Source: {table.source}",
        "",
        f"**{scale_banner(table, scale)}**",
        "",
    ]
    if table.trend:
        lines += [f"Expected trend (paper): {table.trend}", ""]
    if table.recipe_note:
        lines += [f"Recipe: {table.recipe_note}", ""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += [
        "| " + " | ".join(c.replace("|", "\\|") for c in cells(table, e)) + " |" for e in rows
    ]
    notes = [f"- {e['label']}: {e['note']}" for e in rows if e["note"]]
    lines += [
        "",
        'MACs = multiply-adds (the papers\' "FLOPs"), counted by models/complexity.py. '
        "Errors are final-epoch validation errors; mean ± sample std over seeds."
        + (
            " Train err: the last epoch's running training error (augmented batches, train mode)."
            if "train_err" in table.metrics
            else ""
        ),
    ]
    if notes:
        lines += ["", "Notes:", *notes]
    recipe = recipe_lines(table, scale)
    if recipe:
        lines += ["", "Recipe provenance:", "", "```", *recipe, "```"]
    return "\n".join(lines) + "\n"


def to_csv(table: Table, rows: list[dict[str, Any]], scale: str) -> str:
    buf = io.StringIO()
    header = [
        "id",
        "label",
        "model",
        "overrides",
        "resolution",
        "params",
        "paper_params",
        "params_ratio",
        "macs",
        "paper_macs",
        "macs_ratio",
    ]
    if table.trained:
        header += ["scale", "n", "seeds"]
        for m in table.metrics:
            header += [m, f"{m}_std", f"paper_{m}", f"{m}_delta"]
        header += ["status"]
    w = csv.writer(buf)
    w.writerow(header)
    for e in rows:
        s, p = e["static"], e["paper"]
        line = [
            e["id"],
            e["label"],
            e["model"],
            " ".join(e["overrides"]),
            s["resolution"],
            s["params"],
            p.get("params"),
            e["params_ratio"],
            s["macs"],
            p.get("macs"),
            e["macs_ratio"],
        ]
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
            ax.plot(*zip(*px, strict=False), "o--", color=c, alpha=0.6, label=f"{label}paper")
        ox = [(xval(e), yvals(e)[1], yvals(e)[2] or 0.0) for e in pts if yvals(e)[1] is not None]
        if ox:
            xs, ys, sds = zip(*ox, strict=False)
            ours = "ours (computed)" if ykey in ("params", "macs") else f"ours ({scale})"
            ours_ax.errorbar(xs, ys, yerr=sds, fmt="s-", color=c, capsize=3, label=f"{label}{ours}")
    if spec.get("xlog"):
        ax.set_xscale("log", base=2 if xkey == "x" else 10)
    ax.set_xlabel(spec.get("xlabel", xkey))
    ax.set_ylabel(
        {
            "top1_err": "top-1 error (%)",
            "top1_acc": "top-1 accuracy (%)",
            "params": "parameters",
            "macs": "multiply-adds",
        }.get(ykey, ykey)
    )
    if twin:
        ours_ax.set_ylabel(f"ours, proxy scale ({table.scales['proxy'].data})")
    title = f"{table.paper.split(',')[0]} {table.table}"
    if table.trained and scale == "proxy":
        title += " -- PROXY scale, not the paper's setting"
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    handles = [h for a in {ax, ours_ax} for h in zip(*a.get_legend_handles_labels(), strict=False)]
    if handles:
        ax.legend(*zip(*handles, strict=False), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path


# the dashed curve of a curves plot (table.curves_train): metrics.jsonl key, value, axis label
TRAIN_CURVES = {
    "error": ("train/top1", lambda v: 100.0 - v, "error (%)"),
    "loss": ("train/loss", lambda v: v, "training loss"),
}


def _band(ax, series: list[list[float]], style: str, color: str, label: str) -> None:
    """Mean over seeds (a band: min to max) of per-epoch series, cut to the shortest."""
    import numpy as np

    n = min(map(len, series))
    ys = np.array([s[:n] for s in series])
    xs = np.arange(1, n + 1)
    ax.plot(xs, ys.mean(0), style, color=color, label=f"{label} (n={len(series)})")
    if len(series) > 1:
        ax.fill_between(xs, ys.min(0), ys.max(0), color=color, alpha=0.12, linewidth=0)


def curves_plot(
    table: Table, rows: list[dict[str, Any]], records: list[RunRecord], scale: str, path: Path
) -> Path:
    """Per-epoch curves of every row, one panel per group, mean over the row's finished seeds:
    validation error solid; training error dashed (He et al. 2015 Fig. 6), or with
    ``curves_train: loss`` the training loss dashed on its own right-hand axis (He et al. 2016
    Fig. 1: "dashed: training loss; solid: test error")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train_key, train_value, train_label = TRAIN_CURVES[table.curves_train]
    loss = table.curves_train == "loss"
    groups = list(dict.fromkeys(e["group"] for e in rows))
    fig, axes = plt.subplots(
        1, len(groups), figsize=(5.2 * len(groups), 4.2), sharey=True, squeeze=False
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    by_path = {r.path: r for r in records}
    for ax, g in zip(axes[0], groups, strict=False):
        train_ax = ax.twinx() if loss else ax
        for i, e in enumerate(e for e in rows if e["group"] == g):
            curves = [epoch_curves(by_path[p]) for p in e["trained"]["runs"] if p in by_path]
            for key, value, style, what, on in (
                (train_key, train_value, "--", f"train {table.curves_train}", train_ax),
                ("val/top1", lambda v: 100.0 - v, "-", "val error", ax),
            ):
                series = [s for s in ([value(m[key]) for m in c if key in m] for c in curves) if s]
                if series:
                    _band(on, series, style, colors[i % len(colors)], f"{e['label']} {what}")
        ax.set_title(g or table.name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if loss:
            train_ax.set_ylabel(train_label)
        handles = [
            h
            for a in dict.fromkeys((ax, train_ax))
            for h in zip(*a.get_legend_handles_labels(), strict=False)
        ]
        if handles:
            ax.legend(*zip(*handles, strict=False), fontsize=7)
    axes[0][0].set_ylabel("validation error (%)" if loss else "error (%)")
    dashed = "training loss (right axis)" if loss else "training error"
    title = (
        f"{table.paper.split(',')[0]} {table.table}:\ndashed = {dashed}, solid = validation error"
    )
    if scale == "proxy":
        title += f"\nPROXY scale ({table.scales['proxy'].data}), not the paper's setting"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path


def print_rich(table: Table, rows: list[dict[str, Any]], scale: str) -> None:
    from rich.table import Table as RichTable

    from platform.run.console import rich_console

    # a terminal's own width (row names never wrap; the other columns fold); a file or pipe: no
    # cell wraps (console.rich_console)
    console = rich_console()
    rt = RichTable(
        title=f"{table.name}: {table.title}\n{table.paper.split(',')[0]}, {table.table}",
        caption=scale_banner(table, scale),
        show_lines=False,
    )
    for i, c in enumerate(columns(table, scale)):
        rt.add_column(c, overflow="fold", no_wrap=i == 0)
    for e in rows:
        rt.add_row(*cells(table, e))
    console.print(rt)
    for line in recipe_lines(table, scale):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def report(
    table: Table,
    records: list[RunRecord],
    scale: str,
    out_dir: Path,
    *,
    quiet: bool = False,
    make_plot: bool = True,
) -> dict[str, Any]:
    rows = gather(table, records, scale)
    out_dir.mkdir(parents=True, exist_ok=True)
    from datamodules.beton import atomic_path

    result = {
        "table": table.name,
        "title": table.title,
        "paper": table.paper,
        "paper_table": table.table,
        "kind": table.kind,
        "scale": scale if table.trained else None,
        "scale_note": scale_banner(table, scale),
        "metrics": list(table.metrics),
        "rows": rows,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    for name, text in (
        ("table.md", to_markdown(table, rows, scale)),
        ("table.csv", to_csv(table, rows, scale)),
        ("table.json", json.dumps(result, indent=1, default=str) + "\n"),
    ):
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
            n_other = sum(
                trained_columns(row_runs(table, r, other, records))["n"]
                for r in table.rows_at(other)
            )
            if n_other:
                print(
                    f"({n_other} finished {other}-scale runs match this table: pass --scale "
                    f"{other})"
                )
        print(
            f"wrote {out_dir}/table.md, table.csv, table.json"
            + (", plot.png" if make_plot else "")
            + (", curves.png" if make_plot and table.curves and table.trained else "")
        )
    return result
