"""The papers' tables as data: one YAML file per table in this directory.

A table names its paper and table number, the rows (a registry model plus any ``key=value``
overrides), the paper's printed values per row with their source, the expected trend, and its
*scales*: ``imagenet`` (the paper's data and recipe; CIFAR tables call it that too, meaning
"the paper's setting") and ``proxy`` (a reduced budget on small data, for checking the
machinery and trends on one machine; never a reproduction of the paper's numbers).

A paper value the model registry also holds is written once, in the registry: the table names
the field instead of repeating the number (``paper: {top1_err: registry.top1_err, params:
registry.paper_params}``), resolved here from ``models.model_info(row.model)``; printed strings
such as ``"5.3M"`` or ``"0.39e9"`` become numbers.

``platform.papers.reproduce`` computes the static columns (params, multiply-adds) from the rows,
gathers trained results from runs whose config matches a row at a scale, and launches the
rows that have none.  ``kind: computed`` tables have static columns only.  A row with
``scales: [imagenet]`` trains and is reported at the paper's setting only (a ResNet-1001 that no
proxy budget affords); ``curves_train: loss`` draws the training loss instead of the training
error in a ``curves: true`` table's per-epoch plot (He et al. 2016 Fig. 1).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TABLES_DIR = Path(__file__).resolve().parent
SCALES = ("imagenet", "proxy")
PAPER_KEYS = ("top1_err", "top5_err", "params", "macs", "resolution")
METRICS = (
    "top1_err",
    "top5_err",
    "train_err",
)  # train_err: the last epoch's training error (metrics.jsonl)


CURVES_TRAIN = ("error", "loss")  # the dashed curve of a curves plot: train/top1 or train/loss
REGISTRY_PREFIX = "registry."  # a paper value read from the model's registry entry


class TableError(ValueError):
    """A table name that does not exist or a table file that does not follow the schema."""


@dataclass(frozen=True)
class Row:
    id: str
    label: str
    model: str
    overrides: tuple[str, ...] = ()
    group: str = ""
    x: float | None = None  # the table's plot axis (cardinality, r, phi, ...)
    resolution: int | None = None  # the paper's input side for this row
    paper: dict[str, Any] = field(default_factory=dict)
    module: str | None = None  # computed tables: count this submodule only
    module_input: tuple[int, int] | None = None  # (channels, side) fed to `module`
    scaling: dict[str, float] | None = (
        None  # computed tables: EfficientNet-B0 scaled (width, depth, resolution | phi)
    )
    note: str = ""
    scales: tuple[str, ...] = SCALES  # the scales this row trains at (a paper-only 1001-layer row)

    def knobs(self) -> dict[str, Any]:
        """The model's constructor knobs among the overrides (``model.stride_on=1x1`` ...)."""
        out = {}
        for item in self.overrides:
            key, value = item.split("=", 1)
            if key.startswith("model.") and key not in ("model.init", "model.name"):
                out[key.removeprefix("model.")] = yaml.safe_load(value)
        return out


@dataclass(frozen=True)
class Scale:
    name: str
    data: str
    recipe: str | None
    overrides: tuple[str, ...] = ()
    note: str = ""

    def launch_overrides(self) -> list[str]:
        out = [f"data={self.data}"]
        if self.recipe:
            out.append(f"recipe={self.recipe}")
        return out + list(self.overrides)


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    paper: str
    table: str
    source: str
    kind: str  # trained | computed
    rows: tuple[Row, ...]
    scales: dict[str, Scale]
    aliases: tuple[str, ...] = ()
    num_classes: int = 1000
    resolution: int | None = None
    metrics: tuple[str, ...] = ("top1_err",)
    trend: str = ""
    recipe_note: str = ""
    plot: dict[str, Any] = field(default_factory=dict)
    curves: bool = False  # also plot per-epoch train (dashed) / val (solid) error (Fig. 6)
    curves_train: str = "error"  # the dashed curve: training error, or loss (own axis, Fig. 1)
    path: Path | None = None

    @property
    def trained(self) -> bool:
        return self.kind == "trained"

    def row(self, row_id: str) -> Row:
        for r in self.rows:
            if r.id == row_id:
                return r
        raise TableError(
            f"table {self.name} has no row {row_id!r}; rows: {', '.join(r.id for r in self.rows)}"
        )

    def rows_at(self, scale: str) -> tuple[Row, ...]:
        """The rows trained and reported at ``scale`` (a row's ``scales`` key; all by default)."""
        return tuple(r for r in self.rows if not self.trained or scale in r.scales)

    def resolution_of(self, row: Row) -> int | None:
        return row.resolution or self.resolution


def _err(path: Path, msg: str) -> TableError:
    return TableError(f"{path}: {msg}")


def _str_list(path: Path, where: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, dict):
        return tuple(f"{k}={_scalar(v)}" for k, v in value.items())
    if not isinstance(value, list) or not all(isinstance(v, str) and "=" in v for v in value):
        raise _err(path, f"{where} must be a list of key=value strings or a mapping, got {value!r}")
    return tuple(value)


def _scalar(v: Any) -> str:
    return (
        v
        if isinstance(v, str)
        else yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()
    )


def _printed_number(value: str) -> float:
    """A count as the registry copies it from the paper: "5.3M" -> 5.3e6, "0.39e9" -> 0.39e9."""
    text = value.strip()
    if text.endswith("M"):
        text = text[:-1] + "e6"
    return float(text)


def _registry_value(path: Path, row_id: str, model: str, key: str, ref: str) -> Any:
    """The number a ``registry.FIELD`` reference names, from the registry entry of ``model``."""
    import dataclasses

    import models  # imports torch: only tables that reference the registry pay for it

    field_name = ref.removeprefix(REGISTRY_PREFIX)
    fields = {f.name for f in dataclasses.fields(models.ModelInfo)}
    where = f"rows {row_id!r} paper.{key}: {ref!r}"
    if field_name not in fields:
        raise _err(
            path,
            f"{where} names no registry field; expected registry.FIELD with FIELD one "
            f"of {', '.join(sorted(fields))}",
        )
    try:
        value = getattr(models.model_info(model), field_name)
    except models.UnknownModelError as e:
        raise _err(path, f"{where}: {e}") from None
    if value is None:
        raise _err(
            path,
            f"{where}: model {model} has no {field_name} in the registry; write the "
            "paper's number in the table instead",
        )
    try:
        return _printed_number(value) if isinstance(value, str) else value
    except ValueError:
        raise _err(
            path, f"{where}: the registry's {field_name} of {model} is {value!r}, not a number"
        ) from None


def _row(path: Path, i: int, d: Any) -> Row:
    if not isinstance(d, dict):
        raise _err(path, f"rows[{i}] must be a mapping, got {d!r}")
    unknown = set(d) - {
        "id",
        "label",
        "model",
        "overrides",
        "group",
        "x",
        "resolution",
        "paper",
        "module",
        "module_input",
        "scaling",
        "note",
        "scales",
    }
    if unknown:
        raise _err(path, f"rows[{i}] has unknown keys {sorted(unknown)}")
    for key in ("id", "model"):
        if not isinstance(d.get(key), str):
            raise _err(path, f"rows[{i}] needs a string `{key}`")
    paper = dict(d.get("paper") or {})
    bad = set(paper) - {*PAPER_KEYS, "source"}
    if bad:
        raise _err(
            path,
            f"rows[{i}] ({d['id']}): unknown paper keys {sorted(bad)}; expected "
            f"{', '.join(PAPER_KEYS)}, source",
        )
    for k, v in paper.items():
        if isinstance(v, str) and v.startswith(REGISTRY_PREFIX):
            paper[k] = _registry_value(path, d["id"], d["model"], k, v)
    for k in ("params", "macs"):
        if isinstance(paper.get(k), str):
            paper[k] = float(paper[k])  # YAML reads 25.5e6 as a string
    module_input = d.get("module_input")
    scales = tuple(d.get("scales") or SCALES)
    if not set(scales) <= set(SCALES):
        raise _err(path, f"rows[{i}] ({d['id']}): scales must be among {SCALES}, got {scales}")
    return Row(
        id=d["id"],
        label=str(d.get("label", d["id"])),
        model=d["model"],
        overrides=_str_list(path, f"rows[{i}].overrides", d.get("overrides")),
        group=str(d.get("group", "")),
        x=d.get("x"),
        resolution=d.get("resolution"),
        paper=paper,
        module=d.get("module"),
        module_input=tuple(module_input) if module_input else None,
        scaling=dict(d["scaling"]) if d.get("scaling") is not None else None,
        note=str(d.get("note", "")),
        scales=scales,
    )


def parse_table(path: Path) -> Table:
    try:
        d = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise TableError(f"cannot read table file {path}: {e}") from None
    except yaml.YAMLError as e:
        raise TableError(f"table file {path} is not valid YAML: {e}") from None
    if not isinstance(d, dict):
        raise _err(
            path, "a table file holds a mapping (name, title, paper, table, rows, scales, ...)"
        )
    for key in ("name", "title", "paper", "table", "rows"):
        if key not in d:
            raise _err(path, f"missing key `{key}`")
    kind = d.get("kind", "trained")
    if kind not in ("trained", "computed"):
        raise _err(path, f"kind must be trained or computed, got {kind!r}")
    rows = tuple(_row(path, i, r) for i, r in enumerate(d["rows"] or []))
    ids = [r.id for r in rows]
    if len(set(ids)) != len(ids):
        raise _err(path, f"row ids must be unique, got {ids}")
    scales = {}
    for name, s in (d.get("scales") or {}).items():
        if name not in SCALES:
            raise _err(path, f"unknown scale {name!r}; expected {' or '.join(SCALES)}")
        if not isinstance(s, dict) or not isinstance(s.get("data"), str):
            raise _err(path, f"scales.{name} needs `data` (and optionally recipe, overrides, note)")
        scales[name] = Scale(
            name,
            s["data"],
            s.get("recipe"),
            _str_list(path, f"scales.{name}.overrides", s.get("overrides")),
            str(s.get("note", "")),
        )
    if kind == "trained" and set(scales) != set(SCALES):
        raise _err(
            path, f"a trained table needs both scales ({', '.join(SCALES)}), got {sorted(scales)}"
        )
    curves_train = str(d.get("curves_train", "error"))
    if curves_train not in CURVES_TRAIN:
        raise _err(path, f"curves_train must be one of {CURVES_TRAIN}, got {curves_train!r}")
    metrics = tuple(d.get("metrics", ["top1_err"]))
    if set(metrics) - set(METRICS):
        raise _err(path, f"metrics must be among {METRICS}, got {metrics}")
    return Table(
        name=d["name"],
        title=d["title"],
        paper=d["paper"],
        table=str(d["table"]),
        source=str(d.get("source", "")),
        kind=kind,
        rows=rows,
        scales=scales,
        aliases=tuple(d.get("aliases", ())),
        num_classes=int(d.get("num_classes", 1000)),
        resolution=d.get("resolution"),
        metrics=metrics,
        trend=str(d.get("trend", "")).strip(),
        recipe_note=str(d.get("recipe_note", "")).strip(),
        plot=dict(d.get("plot") or {}),
        curves=bool(d.get("curves", False)),
        curves_train=curves_train,
        path=Path(path),
    )


def table_files() -> list[Path]:
    return sorted(TABLES_DIR.glob("*.yaml"))


def list_tables() -> list[Table]:
    return [parse_table(p) for p in table_files()]


def load_table(name: str) -> Table:
    """A table by name, alias (``table3``) or path to a YAML file."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return parse_table(p)
    tables = list_tables()
    for t in tables:
        if name == t.name or name in t.aliases:
            return t
    names = [t.name for t in tables] + [a for t in tables for a in t.aliases]
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise TableError(
        f"unknown table {name!r}.{hint} Known tables: {', '.join(t.name for t in tables)} "
        f"(python -m platform.reproduce --list), or pass a path to a table .yaml"
    )
