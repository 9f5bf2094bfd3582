"""``python -m platform.runs [PATTERN] [--status S] [--json] [--root DIR]``: one row per run.

Name, model, data, status (finished / running / lost / failed / diverged / interrupted), epochs
done/total, best and final val top-1, wall time, and for an unfinished run the command that resumes
it.  A directory whose records cannot be read is listed as ``unreadable`` with the reason, never a
crash.  The table is plain text, one line per run however wide (for logs: nothing wraps);
``--json`` prints the same rows as a JSON list.  The records are read by ``platform.run.rundir``
(``read_summary``, ``run_status``, ``read_metrics``), the readers ``platform.papers.reproduce`` uses.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from platform.run import cli
from platform.run.rundir import RunDir

STATUSES = ("finished", "running", "lost", "failed", "diverged", "interrupted", "unreadable")
COLUMNS = ("name", "model", "data", "status", "epochs", "best", "final", "wall", "resume")


def _config(run_dir: Path) -> dict[str, Any]:
    import yaml

    config = yaml.safe_load(RunDir(run_dir).config.read_text())
    if not isinstance(config, dict):
        raise ValueError("config.yaml is not a mapping")
    return config


def _resume(run_dir: Path, summary: dict[str, Any]) -> str:
    """The summary's own resume command, else one that reloads the saved configuration."""
    if isinstance(summary.get("resume_command"), str):
        return summary["resume_command"]
    return shlex.join(
        ["python", "-m", "platform.train", f"config={run_dir / 'config.yaml'}", "resume=auto"]
        + [f"run.name={run_dir.name}"]
    )


def run_row(run_dir: Path) -> dict[str, Any]:
    """One run directory as a row; ``status: unreadable`` (and ``reason``) where it cannot be read."""
    from platform.run.rundir import read_metrics, read_summary, run_status

    try:
        config = _config(run_dir)
        summary = read_summary(run_dir) or {}
        if not isinstance(summary, dict):
            raise ValueError("summary.json is not a mapping")
        status = run_status(run_dir, summary)
        done = summary.get("epochs")
        if not isinstance(done, int):
            done = len(read_metrics(run_dir))
        row = {
            "name": run_dir.name,
            "model": (config.get("model") or {}).get("name"),
            "data": (config.get("data") or {}).get("name"),
            "status": status,
            "epochs_done": done,
            "epochs_total": (config.get("trainer") or {}).get("max_epochs"),
            "best_val_top1": summary.get("best_val_top1"),
            "final_val_top1": summary.get("final_val_top1"),
            "wall_time_s": summary.get("wall_time_s"),
            "path": str(run_dir),
        }
        if status != "finished":
            row["resume_command"] = _resume(run_dir, summary)
        return row
    except Exception as e:  # one bad record (torn, hand-edited, garbage) never stops the list
        reason = f"{type(e).__name__}: {e}".splitlines()[0]
        if not RunDir(run_dir).config.exists():
            reason = "no config.yaml"
        return {"name": run_dir.name, "status": "unreadable", "reason": reason,
                "path": str(run_dir)}  # fmt: skip


def _wall(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _cells(row: dict[str, Any]) -> list[str]:
    pct = lambda v: f"{v:.2f}" if isinstance(v, (int, float)) else "-"  # noqa: E731
    if row["status"] == "unreadable":
        return [row["name"], "-", "-", "unreadable", "-", "-", "-", "-", row["reason"]]
    total = row["epochs_total"] if row["epochs_total"] is not None else "?"
    return [
        row["name"],
        str(row["model"]),
        str(row["data"]),
        row["status"],
        f"{row['epochs_done']}/{total}",
        pct(row["best_val_top1"]),
        pct(row["final_val_top1"]),
        _wall(row["wall_time_s"]),
        row.get("resume_command", ""),
    ]


def table(rows: list[dict[str, Any]]) -> str:
    """Left-aligned columns padded to their widest cell; long lines stay one line."""
    header = ["name", "model", "data", "status", "epochs", "best top-1", "final top-1", "wall",
              "resume / reason"]  # fmt: skip
    cells = [header] + [_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def rows(root: Path, pattern: str = "*", status: str | None = None) -> list[dict[str, Any]]:
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"  # a plain word matches anywhere in the name
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and fnmatch.fnmatch(p.name, pattern))
    out = [run_row(d) for d in dirs]
    return [r for r in out if status is None or r["status"] == status]


@cli.entry()
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform.runs", description=__doc__)
    parser.add_argument("pattern", nargs="?", default="*", help="run name glob (or substring)")
    parser.add_argument("--status", choices=STATUSES, help="only the runs with this status")
    parser.add_argument("--json", action="store_true", help="the rows as a JSON list")
    parser.add_argument("--root", help="the directory holding the runs (default: runs)")
    args, _ = cli.parse(parser, argv, overrides=False)
    root = Path(args.root or "runs")
    if (
        not root.is_dir()
    ):  # a fresh clone has no runs/ yet: nothing to list; a wrong --root is an error
        if args.root is None:
            print(f"no runs yet: {root}/ does not exist")
            return 0
        return cli.user_error(f"no run directory {root} (--root DIR names another)")
    found = rows(root, args.pattern, args.status)
    if args.json:
        json.dump(found, sys.stdout, indent=2)
        print()
    elif found:
        print(table(found))
    else:
        what = f" matching {args.pattern!r}" if args.pattern != "*" else ""
        print(
            f"no runs under {root}{what}" + (f" with status {args.status}" if args.status else "")
        )
    return 0
