"""``platform.papers.reproduce``'s columns: the static ones (params, multiply-adds at the paper's
resolution) computed now, and the trained ones gathered from the runs whose config matches a
row at a scale (mean +- std over seeds with n).  Rendering is ``platform.papers.render``'s,
launching ``platform.papers.missing_runs``'s, the CLI ``platform.papers.reproduce``'s."""

from __future__ import annotations

import functools
import statistics
from pathlib import Path
from typing import Any

import models
from platform.after.run_records import RunRecord, run_filter
from platform.papers.tables import Row, Table
from platform.run.config import parse_overrides


# ---------------------------------------------------------------------------- static columns
def static_columns(table: Table, row: Row) -> dict[str, Any]:
    """Params and multiply-adds of a row, counted now by ``models.complexity`` (meta device)."""
    import torch

    from models.complexity import count_macs

    knobs = {"num_classes": table.num_classes, **row.knobs()}
    if row.scaling is not None:
        return dict(_scaled_efficientnet(tuple(sorted(row.scaling.items()))))
    if row.module:
        with torch.device("meta"):
            block = models.create_model(row.model, **knobs).get_submodule(row.module)
        channels, side = row.module_input
        # Table 2 counts the template's conv weights (no BN): count those.
        params = sum(m.weight.numel() for m in block.modules() if isinstance(m, torch.nn.Conv2d))
        return {
            "params": params,
            "macs": count_macs(block, side, in_chans=channels),
            "resolution": side,
        }
    resolution = table.resolution_of(row) or models.model_info(row.model).resolution
    c = _complexity(row.model, resolution, tuple(sorted(knobs.items())))
    return {"params": c.params, "macs": c.macs, "resolution": resolution}


@functools.lru_cache(maxsize=None)
def _complexity(name: str, resolution: int, knobs: tuple[tuple[str, Any], ...]):
    from models.complexity import complexity

    return complexity(name, resolution, **dict(knobs))


@functools.lru_cache(maxsize=None)
def _scaled_efficientnet(scaling: tuple[tuple[str, float], ...]) -> dict[str, Any]:
    """EfficientNet-B0 scaled along width/depth/resolution or by phi; paper = the FLOPs law.

    §3.3: FLOPs scale as d * w^2 * r^2, so the "paper" multiply-adds of a scaled net are B0's
    times that factor (w, d, r the requested multipliers before rounding to whole channels/layers).
    """
    import torch

    from models.complexity import count_macs, count_params
    from models.efficientnet import BASE_RESOLUTION, compound_coefficients, scaled_efficientnet

    s = dict(scaling)
    if "phi" in s:
        d, w, r = compound_coefficients(float(s["phi"]))
    else:
        d, w, r = (
            float(s.get("depth", 1.0)),
            float(s.get("width", 1.0)),
            int(s.get("resolution", BASE_RESOLUTION)),
        )
    with torch.device("meta"):
        net, _ = scaled_efficientnet(width=w, depth=d, resolution=r)
        base, _ = scaled_efficientnet()
    law = count_macs(base, BASE_RESOLUTION) * d * w**2 * (r / BASE_RESOLUTION) ** 2
    return {
        "params": count_params(net),
        "macs": count_macs(net, r),
        "resolution": r,
        "law_macs": law,
        "scaling": {"width": round(w, 4), "depth": round(d, 4), "resolution": r},
    }


# ---------------------------------------------------------------------------- trained columns
def row_specific(row: Row, scale: str) -> list[str]:
    """The row's own overrides; at the paper's scale a row with its own input side (EfficientNet-B3
    at 300, Inception-ResNet-v2 at 299) trains and evaluates at that side."""
    side = [f"data.resolution={row.resolution}", f"data.val_resolution={row.resolution}"]
    return [*row.overrides, *(side if scale == "imagenet" and row.resolution else [])]


def row_overrides(table: Table, row: Row, scale: str) -> list[str]:
    """What makes a run this row at this scale: model, the scale's data/recipe/overrides, the row's."""
    return [
        f"model={row.model}",
        *table.scales[scale].launch_overrides(),
        *row_specific(row, scale),
    ]


def distinguishing_keys(table: Table, scale: str) -> set[str]:
    """Every key some row of the table sets: each row must hold its own value for all of them."""
    return {k for row in table.rows_at(scale) for k, _ in parse_overrides(row_specific(row, scale))}


def row_runs(table: Table, row: Row, scale: str, records: list[RunRecord]) -> list[RunRecord]:
    is_row = run_filter(row_overrides(table, row, scale), distinguishing_keys(table, scale))
    return [r for r in records if is_row(r)]


def _mean_std(xs: list[float]) -> tuple[float | None, float | None]:
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def epoch_curves(run: RunRecord) -> list[dict[str, Any]]:
    """A local run's per-epoch records (``metrics.jsonl``); none for W&B records."""
    from platform.run.rundir import read_metrics

    return read_metrics(Path(run.path)) if run.source == "local" else []


def final_train_top1(run: RunRecord) -> float | None:
    """The last epoch's training top-1 (%): the running accuracy over that epoch's augmented
    batches in train mode, as He et al.'s Fig. 6 training curves are."""
    rows = [r for r in epoch_curves(run) if "train/top1" in r]
    return rows[-1]["train/top1"] if rows else None


def trained_columns(runs: list[RunRecord]) -> dict[str, Any]:
    """Final-epoch errors over seeds (one run per seed: the newest finished), plus the row's status."""
    finished: dict[Any, RunRecord] = {}
    for r in sorted(
        (r for r in runs if r.status == "finished" and r.top1 is not None), key=lambda r: r.path
    ):
        finished[r.get("seed")] = r
    out: dict[str, Any] = {
        "n": len(finished),
        "seeds": sorted(finished, key=str),
        "runs": [r.path for r in finished.values()],
    }
    for metric, attr in (("top1_err", "top1"), ("top5_err", "top5")):
        vals = [100.0 - getattr(r, attr) for r in finished.values() if getattr(r, attr) is not None]
        out[metric], out[f"{metric}_std"] = _mean_std(vals)
    train = [100.0 - t for t in (final_train_top1(r) for r in finished.values()) if t is not None]
    out["train_err"], out["train_err_std"] = _mean_std(train)
    evaluated: dict[
        str, dict[str, Any]
    ] = {}  # platform.after.evaluate's numbers beside the trained ones
    for protocol in sorted({p for r in finished.values() for p in r.evaluated}):
        errs = [
            r.evaluated[protocol]["top1_err"] for r in finished.values() if protocol in r.evaluated
        ]
        mean, std = _mean_std(errs)
        evaluated[protocol] = {"top1_err": mean, "top1_err_std": std, "n": len(errs)}
    out["evaluated"] = evaluated
    running = [r.path for r in runs if r.status == "running"]
    failed = [r.path for r in runs if r.status in ("failed", "interrupted", "diverged")]
    lost = [
        r.path for r in runs if r.status == "lost"
    ]  # a dead writer without a final status (SIGKILL, node)
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


# ---------------------------------------------------------------------------- one table's rows
def gather(table: Table, records: list[RunRecord], scale: str) -> list[dict[str, Any]]:
    rows = []
    for row in table.rows_at(scale):
        static = static_columns(table, row)
        paper = dict(row.paper)
        if "law_macs" in static and paper.get("macs") is None:
            paper["macs"] = static["law_macs"]
        entry: dict[str, Any] = {
            "id": row.id,
            "label": row.label,
            "model": row.model,
            "group": row.group,
            "x": row.x,
            "overrides": list(row.overrides),
            "static": static,
            "paper": paper,
            "note": row.note,
        }
        for k in ("params", "macs"):
            entry[f"{k}_ratio"] = static[k] / paper[k] if paper.get(k) else None
        if table.trained:
            t = trained_columns(row_runs(table, row, scale, records))
            for m in table.metrics:
                t[f"{m}_delta"] = (
                    (t[m] - paper[m]) if t[m] is not None and paper.get(m) is not None else None
                )
            entry["trained"] = t
        rows.append(entry)
    return rows
