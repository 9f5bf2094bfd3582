"""Every run as a :class:`RunRecord`, wherever it was recorded: a local run directory
(``platform.run.rundir`` reads its files), a W&B offline/synced run file, or the W&B API.
``platform.papers.reproduce`` and ``platform.papers.sweep`` match them to table rows and sweep points
with :func:`run_filter`."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platform.run.rundir import read_evaluations, read_summary, run_status

log = logging.getLogger("platform.run_records")  # the name runs have always logged under


@dataclass
class RunRecord:
    name: str
    path: str  # run directory, .wandb file, or entity/project/run_id
    source: str  # local | wandb-offline | wandb
    config: dict[str, Any]  # the resolved ExperimentConfig as a nested dict
    status: str  # finished | running | interrupted | diverged | failed | lost
    top1: float | None  # final-epoch val top-1 (%), the number papers report
    top5: float | None
    epochs: int | None = None
    evaluated: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # protocol -> eval-<protocol>.json

    def get(self, dotted: str) -> Any:
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node


_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def summary_problem(summary: Any) -> str | None:
    """Why a ``summary.json`` cannot be a record (a list, a string top-1 ...), or None."""
    if not isinstance(summary, dict):
        kind = _JSON_TYPES.get(type(summary), type(summary).__name__)
        return f"summary.json is {kind}, not an object"
    for key, ok in (
        ("status", lambda v: isinstance(v, str)),
        ("final_val_top1", _number),
        ("final_val_top5", _number),
        ("epochs", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    ):
        if summary.get(key) is not None and not ok(summary[key]):
            return f"summary.json has {key}={summary[key]!r}"
    return None


def local_records(root: str | Path) -> list[RunRecord]:
    """Every run directory under ``root`` (those with a ``config.yaml``).  A run whose config or
    summary is not a record (bad YAML, a list as summary.json, a string top-1) is skipped with a
    warning naming it, so that one garbage record costs one run, not the report."""
    import yaml

    out = []
    for cfg_path in sorted(Path(root).glob("*/config.yaml")):
        run_dir = cfg_path.parent
        try:
            config = yaml.safe_load(cfg_path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            config = None
        s = read_summary(run_dir)
        problem = (
            "config.yaml is not a YAML mapping"
            if not isinstance(config, dict)
            else summary_problem(s)
            if s is not None
            else None
        )
        if problem:
            log.warning("skipping run %s: %s", run_dir, problem)
            continue
        s = s or {}
        out.append(
            RunRecord(
                run_dir.name,
                str(run_dir),
                "local",
                config,
                run_status(run_dir, s),
                s.get("final_val_top1"),
                s.get("final_val_top5"),
                s.get("epochs"),
                read_evaluations(run_dir),
            )
        )
    return out


_WANDB_BLOCK = 32 * 1024  # W&B's transaction log is LevelDB's log format: 32 KiB blocks of records


def wandb_file_records(path: str | Path):
    """The protobuf ``Record``s of a W&B run file (``run-<id>.wandb``), in order.

    wandb >= 0.2x no longer ships a Python reader (the Go core writes the file); the format is
    a 7-byte header (``:W&B``, magic 0xBEE1, version) and LevelDB log blocks: each chunk a
    7-byte header (crc32, length, type FULL/FIRST/MIDDLE/LAST) and its bytes.
    """
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file (header {data[:4]!r})")
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = _WANDB_BLOCK - pos % _WANDB_BLOCK
        if left < 7:  # block trailer: padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # FULL, LAST
            record = pb.Record()
            record.ParseFromString(pending + chunk if kind == 4 else chunk)
            pending = b""
            yield record
        elif kind == 2:  # FIRST
            pending = chunk
        elif kind == 3:  # MIDDLE
            pending += chunk


def config_from_wandb(items: dict[str, Any]) -> dict[str, Any]:
    """Our nested config from a W&B run config.

    Sections arrive as dicts (the logger sends the whole resolved config).  A W&B sweep *locks*
    the keys it sets, so those arrive as the sweep's values instead (``model: "resnet50"``,
    ``"model.se_reduction": 8``, or several space-separated overrides in one value); they are
    applied on top, as ``platform.run.train`` applied them.
    """
    import yaml

    from platform.run.config import parse_overrides
    from platform.run.schema import SECTIONS

    config = {
        k: v
        for k, v in items.items()
        if not k.startswith("_") and (k not in SECTIONS or isinstance(v, dict))
    }
    overrides = [
        f"{k}={v}"
        for k, v in items.items()
        if ("." in k or k in SECTIONS) and not isinstance(v, dict) and not k.startswith("_")
    ]
    try:
        pairs = parse_overrides(overrides)
    except ValueError:
        pairs = []
    for key, raw in pairs:
        node = config
        *parents, leaf = key.split(".")
        for p in parents:
            node = (
                node.setdefault(p, {})
                if isinstance(node.get(p), dict) or p not in node
                else node[p]
            )
        try:
            node[leaf] = yaml.safe_load(raw)
        except yaml.YAMLError:
            node[leaf] = raw
    return config


def _unjson(value_json: str) -> Any:
    try:
        return json.loads(value_json)
    except ValueError:
        return value_json


def wandb_offline_record(path: str | Path) -> RunRecord:
    """A RunRecord from one ``run-<id>.wandb`` file (offline, or synced: same file)."""
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    name, status, epochs = Path(path).stem.removeprefix("run-"), "running", 0
    for record in wandb_file_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            name = record.run.display_name or record.run.run_id
            items = {i.key: _unjson(i.value_json) for i in record.run.config.update}
            config.update(items)
        elif kind == "config":
            for i in (
                record.config.update
            ):  # later updates (Lightning's hparams) never replace our sections
                config.setdefault(i.key, _unjson(i.value_json))
        elif kind == "summary":
            summary.update(
                {
                    i.key or "/".join(i.nested_key): _unjson(i.value_json)
                    for i in record.summary.update
                }
            )
        elif kind == "history":
            if any((i.key or "/".join(i.nested_key)) == "val/top1" for i in record.history.item):
                epochs += 1
        elif kind == "exit":
            code = record.exit.exit_code
            status = {0: "finished", 130: "interrupted", 143: "interrupted", 3: "diverged"}.get(
                code, "failed"
            )
    return RunRecord(
        name,
        str(path),
        "wandb-offline",
        config_from_wandb(config),
        status,
        summary.get("val/top1"),
        summary.get("val/top5"),
        epochs,
    )


def wandb_offline_records(root: str | Path) -> list[RunRecord]:
    """Every W&B run file under ``root`` (e.g. ``runs/`` or a ``wandb/`` directory)."""
    out = []
    for path in sorted(Path(root).rglob("run-*.wandb")):
        try:
            out.append(wandb_offline_record(path))
        except (OSError, ValueError):
            continue
    return out


_WANDB_STATES = {
    "finished": "finished",
    "running": "running",
    "crashed": "failed",
    "failed": "failed",
    "killed": "interrupted",
    "preempted": "interrupted",
    "preempting": "running",
    "pending": "running",
}


def wandb_api_record(run: Any) -> RunRecord:
    """A RunRecord from a ``wandb.apis.public.Run`` (name, path, config, summary, state)."""
    summary = dict(getattr(run.summary, "_json_dict", None) or run.summary)
    return RunRecord(
        run.name,
        "/".join(run.path),
        "wandb",
        config_from_wandb(dict(run.config)),
        _WANDB_STATES.get(run.state, run.state),
        summary.get("val/top1"),
        summary.get("val/top5"),
        summary.get("epoch", -1) + 1 if "epoch" in summary else None,
    )


def wandb_api_records(project_path: str, filters: dict[str, Any] | None = None) -> list[RunRecord]:
    """Runs of ``ENTITY/PROJECT`` from the W&B API (needs network and an API key)."""
    import wandb

    return [wandb_api_record(r) for r in wandb.Api().runs(project_path, filters=filters or {})]


def run_filter(overrides: list[str], also: set[str] | frozenset[str] = frozenset()):
    """A predicate: does a run's config hold every value these overrides set?  Keys in ``also``
    must hold the value these overrides resolve to (the default when not set): a table whose rows
    differ by a knob (WRN-28-10 with and without dropout) passes that knob, so neither row takes
    the other's runs.  Other keys may differ, and ``logging.*`` keys always may (a table's
    ``logging.grad_stats=true`` does not disown its earlier runs).  The overrides are resolved
    once, not per run."""
    from platform.run.config import load_config, parse_overrides, to_dict

    expected = RunRecord("", "", "", to_dict(load_config(overrides)), "", None, None)
    keys = {k for k, _ in parse_overrides(overrides)} | set(also)
    # logging.* (W&B mode, tags, grad_stats) records a run differently, it is not another run
    want = {k: expected.get(k) for k in keys if not k.startswith("logging.")}
    return lambda record: all(_same(record.get(k), v) for k, v in want.items())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= 1e-12 * max(1.0, abs(b))
    return a == b
