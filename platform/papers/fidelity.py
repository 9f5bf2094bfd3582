"""``python -m platform.fidelity [--out docs/fidelity.md] [--check]``: the fidelity report.

For every row of every paper table (``platform/papers/tables/*.yaml``) two verdicts, generated from the
data the platform already holds, never written by hand:

* **architecture** — the network against the authors' released code: the released file it follows
  and any known deviation (``models.model_info(name).released`` / ``.deviation``), the parameter
  shapes compared layer by layer with the released files (``tests/data/released_shapes.json``,
  checked by ``tests/test_released_zoo.py``), torchvision's builder of the same network
  (``tests/test_zoo.py`` compares them tensor for tensor), and the parameter count against the
  paper's printed one.  ``exact`` where a released reference is recorded and no deviation is known,
  ``deviates`` with the reason, ``unchecked`` where no released network exists to compare with.
* **recipe** — the training setup of the row's paper-scale recipe against the released training
  code: the recipe's provenance table (``platform/run/provenance.py``); ``exact`` where every row
  follows the released code, ``deviates`` listing each reason.

``--check`` exits 1 when the committed report differs from what the data now says (a test runs it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from datamodules.beton import atomic_path
from models import model_info
from platform.papers.tables import Row, Table, list_tables
from platform.run import cli
from platform.run.config import recipe_path
from platform.run.provenance import recipe_provenance

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "fidelity.md"
RELEASED_SHAPES = ROOT / "tests" / "data" / "released_shapes.json"


@lru_cache(maxsize=None)
def _released_shapes() -> dict[str, str]:
    """model name -> the released file its parameter shapes were transcribed from."""
    if not RELEASED_SHAPES.is_file():
        return {}
    data = json.loads(RELEASED_SHAPES.read_text())
    return {k: str(v.get("source", "")) for k, v in data.items() if isinstance(v, dict)}


def _printed_count(text: str | None) -> float | None:
    """ "25.5M" / "0.27M" / "3.8e9" -> a number (None when there is none)."""
    if not text:
        return None
    m = re.match(r"\s*([0-9.]+(?:e[0-9+-]+)?)\s*([KMG]?)", str(text), re.I)
    if not m:
        return None
    return float(m.group(1)) * {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}[m.group(2).upper()]


def _params_note(info: Any) -> str:
    printed = _printed_count(info.paper_params)
    if info.params is None or printed is None:
        return ""
    digits = len(str(info.paper_params).split("M")[0].replace(".", "").lstrip("0")) or 1
    agree = abs(info.params - printed) <= 0.5 * 10 ** (len(str(int(printed))) - digits)
    word = "equal to" if agree else "differs from"
    return f"params {info.params:,} {word} the paper's {info.paper_params}"


def architecture(row: Row) -> tuple[str, str]:
    """(verdict, evidence) of ``row``'s network against the released code."""
    info = model_info(row.model)
    evidence = []
    if row.model in _released_shapes():
        evidence.append(f"parameter shapes = {_released_shapes()[row.model].split(':')[0]}")
    if info.released:
        evidence.append(f"follows {info.released}")
    if info.torchvision:
        knobs = ", ".join(f"{k}={v}" for k, v in info.torchvision_knobs)
        evidence.append(f"= torchvision {info.torchvision}" + (f" at {knobs}" if knobs else ""))
    if row.knobs():
        evidence.append("row variant " + ", ".join(f"{k}={v}" for k, v in row.knobs().items()))
    params = _params_note(info)
    if params:
        evidence.append(params)
    if info.deviation:
        return "deviates", f"{info.deviation} ({'; '.join(evidence) or 'no released file'})"
    has_reference = info.released or info.torchvision or row.model in _released_shapes()
    if not has_reference:
        return "unchecked", "; ".join(evidence) or "no released network recorded to compare with"
    return "exact", "; ".join(evidence)


def _recipes(table: Table) -> list[str]:
    scale = table.scales.get("imagenet")
    if scale is None or not scale.recipe:
        return []
    return [r.strip() for r in str(scale.recipe).strip("[]").split(",") if r.strip()]


def recipe(table: Table) -> tuple[str, str]:
    """(verdict, evidence) of the paper-scale recipe of ``table`` against the released code."""
    if not table.trained:
        return "n/a", "computed table (params/MACs only, nothing trained)"
    names = _recipes(table)
    if not names:
        return "unchecked", "no paper-scale recipe"
    devs, counted = [], 0
    for name in names:
        rows = recipe_provenance(recipe_path(name))
        counted += len(rows)
        devs += [f"{r['key']}: {r['deviation']}" for r in rows if r["deviation"]]
    label = "recipe " + " + ".join(names)
    if counted == 0:
        return "unchecked", f"{label} has no provenance table"
    if devs:
        return "deviates", f"{label}: " + "; ".join(devs)
    return "exact", f"{label}: {counted} hyper-parameters as the released training code"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def report() -> str:
    lines = [
        "# Fidelity report",
        "",
        "Generated by `python -m platform.fidelity` from the model registry, the released-shape",
        "data, the tables and the recipes' provenance tables; do not edit by hand (a test checks",
        "that it is current). *exact*: as the authors' released code (network) or released training",
        "code (recipe); *deviates*: differs, with the reason; *unchecked*: no released reference",
        "is recorded to compare with. Recipe verdicts are for each table's paper scale; the proxy",
        "scale is a reduced budget by design and never claims the paper's setup.",
        "",
    ]
    totals: dict[str, int] = {}
    for table in list_tables():
        r_verdict, r_evidence = recipe(table)
        lines += [
            f"## {table.name}: {_cell(table.title)}",
            "",
            f"{table.paper}, {table.table}.",
            "",
        ]
        lines += [f"**Recipe: {r_verdict}** — {_cell(r_evidence)}", ""]
        lines += ["| row | model | architecture | evidence |", "|---|---|---|---|"]
        for row in table.rows:
            verdict, evidence = architecture(row)
            totals[verdict] = totals.get(verdict, 0) + 1
            lines.append(f"| {row.id} | `{row.model}` | {verdict} | {_cell(evidence)} |")
        lines.append("")
    summary = ", ".join(f"{v} {k}" for k, v in sorted(totals.items()))
    lines.insert(9, f"Architecture verdicts over all table rows: {summary}.\n")
    return "\n".join(lines).rstrip() + "\n"


@cli.entry()
def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m platform.fidelity", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--out", default=str(REPORT), help=f"where to write (default {REPORT})")
    ap.add_argument("--check", action="store_true", help="exit 1 if the file at --out is stale")
    args, _ = cli.parse(ap, argv, overrides=False)
    text, out = report(), Path(args.out)
    if args.check:
        if not out.is_file() or out.read_text() != text:
            print(f"{out} is stale: run python -m platform.fidelity", file=sys.stderr)
            return 1
        print(f"{out} is current")
        return 0
    with atomic_path(out) as tmp:
        Path(tmp).write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
