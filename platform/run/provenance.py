"""A recipe's provenance: for each hyper-parameter, the paper's value, the released code's, ours.

Each ``platform/recipes/NAME.yaml`` opens with a ``provenance:`` block, a list of rows::

    provenance:
      - {key: optim.weight_decay, paper: 1e-4, released: 1e-4, ours: 1e-4,
         source: "paper §3.4; fb.resnet.torch opts.lua -weightDecay", deviation: null}

``deviation`` is null where ours follows the released code, else why it does not.  The recipe loader
(``platform/run/config.py``) strips the block before the recipe's keys become overrides, so it never
becomes config; ``python -m platform.reproduce TABLE`` prints it under the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

KEY = "provenance"
FIELDS = ("key", "paper", "released", "ours", "source")


class ProvenanceError(ValueError):
    pass


def rows_of(tree: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The checked rows of a recipe's parsed YAML ``tree`` (none: an empty list)."""
    block = tree.get(KEY) or []
    if not isinstance(block, list):
        raise ProvenanceError(f"{where}: `{KEY}` must be a list of rows")
    out = []
    for i, row in enumerate(block):
        if not isinstance(row, dict):
            raise ProvenanceError(f"{where}: {KEY}[{i}] must be a mapping")
        missing = [f for f in FIELDS if f not in row]
        extra = sorted(set(row) - {*FIELDS, "deviation"})
        if missing or extra:
            raise ProvenanceError(
                f"{where}: {KEY}[{i}] ({row.get('key', '?')}): "
                + (f"missing {', '.join(missing)}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"unknown field(s) {', '.join(extra)}" if extra else "")
                + f" (fields: {', '.join(FIELDS)}, deviation)"
            )
        dev = row.get("deviation")
        if dev is not None and not (isinstance(dev, str) and dev.strip()):
            raise ProvenanceError(f"{where}: {KEY}[{i}].deviation must be null or a reason")
        out.append({**{f: row[f] for f in FIELDS}, "deviation": dev})
    return out


def recipe_provenance(path: Path) -> list[dict[str, Any]]:
    """The provenance rows of the recipe file at ``path`` (``platform.run.config.recipe_path(name)``)."""
    tree = yaml.safe_load(Path(path).read_text()) or {}
    return rows_of(tree, str(path))


def deviations(path: Path) -> list[dict[str, Any]]:
    return [r for r in recipe_provenance(path) if r["deviation"]]


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "-" if v is None else str(v)


def provenance_lines(name: str, path: Path) -> list[str]:
    """Plain-text lines for recipe ``name`` (file ``path``): every row (paper / released / ours)
    and the deviations listed after."""
    rows = recipe_provenance(path)
    if not rows:
        return [f"recipe={name}: no provenance table"]
    width = max(len(r["key"]) for r in rows)
    lines = [f"recipe={name}: {'key'.ljust(width)}  paper | released code | ours  (source)"]
    for r in rows:
        lines.append(
            f"  {r['key'].ljust(width)}  {_cell(r['paper'])} | {_cell(r['released'])} | "
            f"{_cell(r['ours'])}  ({r['source']})"
        )
    devs = [r for r in rows if r["deviation"]]
    lines.append(
        f"  deviations from the paper's setup ({len(devs)}):" if devs else "  deviations: none"
    )
    lines += [f"  - {r['key']}: {r['deviation']}" for r in devs]
    return lines
