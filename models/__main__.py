"""``python -m models``: the zoo as a table -- our params and MACs beside the references.

    python -m models                 # rich table in the terminal
    python -m models 'resnext*'      # only matching names
    python -m models --json          # one JSON object per model
    python -m models --markdown      # the table README.md shows
    python -m models --update-readme # regenerate README.md's zoo section in place

Counting uses ``platform.complexity`` (the one MAC counter): this command is the only place
``models`` reaches into ``platform``, because the counter is the platform's by design.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- zoo:start (python -m models --update-readme) -->", "<!-- zoo:end -->"


def _short_paper(paper: str) -> str:
    return paper.split(",")[0].strip()


def rows(pattern: str = "*") -> list[dict[str, Any]]:
    import models
    from platform.complexity import complexity

    out = []
    for name in models.list_models(pattern):
        info = models.model_info(name)
        c = complexity(name)
        out.append({
            "name": name, "family": info.family, "paper": info.paper, "table": info.table,
            "resolution": c.resolution, "params": c.params, "macs": c.macs,
            "ref_params": info.params, "paper_params": info.paper_params,
            "ref_macs": info.macs, "paper_macs": info.paper_macs, "torchvision": info.torchvision,
            "top1_err": info.top1_err, "top5_err": info.top5_err, "err_protocol": info.err_protocol,
        })
    return out


def _fmt_params(n: int | None) -> str:
    return "" if n is None else f"{n / 1e6:.2f}M"


def _fmt_macs(n: float | None) -> str:
    return "" if n is None else f"{n / 1e9:.3f}G"


def _paper_macs(r: dict[str, Any]) -> str:
    return "" if not r["paper_macs"] else f"{float(r['paper_macs']) / 1e9:.3g}G"


COLUMNS = ("model", "family", "paper", "res", "params", "paper params", "MACs", "paper MACs", "torchvision")


def _cells(r: dict[str, Any]) -> list[str]:
    return [r["name"], r["family"], _short_paper(r["paper"]), str(r["resolution"]), _fmt_params(r["params"]),
            r["paper_params"] or "", _fmt_macs(r["macs"]), _paper_macs(r), r["torchvision"] or ""]


def markdown(table: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in table]
    return "\n".join(lines)


def update_readme(table: list[dict[str, Any]], path: Path = README) -> bool:
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{path}: no zoo section; add the lines {START!r} and {END!r} where it belongs")
    new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: f"{START}\n{markdown(table)}\n{END}",
                 text, flags=re.S)
    path.write_text(new)
    return new != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__.split("\n")[0])
    parser.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern over model names")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="one JSON object per model")
    group.add_argument("--markdown", action="store_true", help="a Markdown table")
    group.add_argument("--update-readme", action="store_true", help="regenerate README.md's zoo table")
    args = parser.parse_args(argv)
    table = rows(args.pattern)
    if not table:
        print(f"no model matches {args.pattern!r}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(table, sys.stdout, indent=1)
        print()
    elif args.markdown:
        print(markdown(table))
    elif args.update_readme:
        print("README.md zoo table " + ("updated" if update_readme(rows()) else "already up to date"))
    else:
        from rich.console import Console
        from rich.table import Table

        console = Console(width=None if sys.stdout.isatty() else 160)
        t = Table(title=f"model zoo ({len(table)} models; MACs = multiply-adds at the paper's resolution)")
        for col in COLUMNS:
            t.add_column(col, no_wrap=col != "paper",
                         justify="right" if col in ("res", "params", "paper params", "MACs", "paper MACs") else "left")
        for r in table:
            t.add_row(*_cells(r))
        console.print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
