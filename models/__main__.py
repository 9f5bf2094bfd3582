"""``python -m models``: the zoo as a table -- our params and MACs beside the references.

    python -m models                 # rich table in the terminal
    python -m models 'resnext*'      # only matching names
    python -m models --json          # one JSON object per model
    python -m models --markdown      # the table README.md shows
    python -m models --update-readme # regenerate README.md's zoo section in place
    python -m models --no-cache      # recount (counts are cached; see `counts`)

Counting uses ``models.complexity`` (the one MAC counter).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- zoo:start (python -m models --update-readme) -->", "<!-- zoo:end -->"


def _short_paper(paper: str) -> str:
    return paper.split(",")[0].strip()


# ---------------------------------------------------------------------------- counts, cached
# Counting builds every model on the meta device and runs torch's FLOP counter: ~40 s for the zoo.
# The counts are cached in CACHE_DIR/models-counts-<key>.json, where <key> hashes the bytes of every
# models/*.py but this file (the counter models/complexity.py among them) and the torch version: any
# edit to an architecture or to the counter (or another torch) gives a new key, so a stale count
# is never read.  Only missing names are counted; the file is replaced atomically.
CACHE_DIR = Path(os.environ.get("CNN_PLATFORM_CACHE", "~/.cache/cnn-platform")).expanduser()
ROOT = Path(__file__).resolve().parent.parent


def cache_key() -> str:
    import hashlib
    from importlib.metadata import version

    h = hashlib.sha256(version("torch").encode())
    sources = sorted(p for p in ROOT.glob("models/*.py") if p.name != "__main__.py")
    for path in sources:
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


def _cache_path() -> Path:
    return CACHE_DIR / f"models-counts-{cache_key()}.json"


def counts(names: list[str], use_cache: bool = True) -> dict[str, dict[str, int]]:
    """``{name: {resolution, params, macs}}``, from the cache where it holds them."""
    path = _cache_path()
    cached: dict[str, dict[str, int]] = {}
    if use_cache and path.is_file():
        try:
            cached = json.loads(path.read_text())
        except (OSError, ValueError):
            cached = {}
    todo = [n for n in names if n not in cached]
    if todo:
        from models.complexity import complexity

        for name in todo:
            c = complexity(name)
            cached[name] = {"resolution": c.resolution, "params": c.params, "macs": c.macs}
        if use_cache:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(cached, sort_keys=True))
                os.replace(tmp, path)
            except OSError:
                pass  # a read-only cache directory only costs the recount
    return {n: cached[n] for n in names}


def rows(pattern: str = "*", use_cache: bool = True) -> list[dict[str, Any]]:
    import models

    names = models.list_models(pattern)
    counted = counts(names, use_cache)
    out = []
    for name in names:
        info = models.model_info(name)
        c = counted[name]
        out.append(
            {
                "name": name,
                "family": info.family,
                "paper": info.paper,
                "table": info.table,
                "resolution": c["resolution"],
                "params": c["params"],
                "macs": c["macs"],
                "ref_params": info.params,
                "paper_params": info.paper_params,
                "ref_macs": info.macs,
                "paper_macs": info.paper_macs,
                "torchvision": info.torchvision,
                "top1_err": info.top1_err,
                "top5_err": info.top5_err,
                "err_protocol": info.err_protocol,
            }
        )
    return out


def suggestions(pattern: str) -> str:
    """Names close to a pattern that matched nothing, and the families to try."""
    import difflib

    import models

    names = models.list_models()
    stem = pattern.strip("*?[]").lower()
    close = difflib.get_close_matches(stem, names, n=5, cutoff=0.5)
    close += [n for n in names if stem and stem in n and n not in close][: 5 - len(close)]
    families = sorted({models.model_info(n).family for n in names} - {""})
    hint = f"closest: {', '.join(close)}; " if close else ""
    return f"{hint}families: {', '.join(families)} (e.g. python -m models 'resnext*'; all: python -m models)"


def _fmt_params(n: int | None) -> str:
    return "" if n is None else f"{n / 1e6:.2f}M"


def _fmt_macs(n: float | None) -> str:
    return "" if n is None else f"{n / 1e9:.3f}G"


def _paper_macs(r: dict[str, Any]) -> str:
    return "" if not r["paper_macs"] else f"{float(r['paper_macs']) / 1e9:.3g}G"


COLUMNS = (
    "model",
    "family",
    "paper",
    "res",
    "params",
    "paper params",
    "MACs",
    "paper MACs",
    "torchvision",
)


def _cells(r: dict[str, Any]) -> list[str]:
    return [
        r["name"],
        r["family"],
        _short_paper(r["paper"]),
        str(r["resolution"]),
        _fmt_params(r["params"]),
        r["paper_params"] or "",
        _fmt_macs(r["macs"]),
        _paper_macs(r),
        r["torchvision"] or "",
    ]


def markdown(table: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in table]
    return "\n".join(lines)


def update_readme(table: list[dict[str, Any]], path: Path = README) -> bool:
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(
            f"{path}: no zoo section; add the lines {START!r} and {END!r} where it belongs"
        )
    new = re.sub(
        re.escape(START) + ".*?" + re.escape(END),
        lambda _: f"{START}\n{markdown(table)}\n{END}",
        text,
        flags=re.S,
    )
    path.write_text(new)
    return new != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__.split("\n")[0])
    parser.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern over model names")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="one JSON object per model")
    group.add_argument("--markdown", action="store_true", help="a Markdown table")
    group.add_argument(
        "--update-readme", action="store_true", help="regenerate README.md's zoo table"
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="recount instead of reading the count cache"
    )
    args = parser.parse_args(argv)
    table = rows(args.pattern, use_cache=not args.no_cache)
    if not table:
        print(f"no model matches {args.pattern!r}; {suggestions(args.pattern)}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(table, sys.stdout, indent=1)
        print()
    elif args.markdown:
        print(markdown(table))
    elif args.update_readme:
        print(
            "README.md zoo table "
            + (
                "updated"
                if update_readme(rows(use_cache=not args.no_cache))
                else "already up to date"
            )
        )
    else:
        from rich.console import Console
        from rich.table import Table

        # a terminal's width (a pipe or file: COLUMNS, else 160): nothing wraps; columns that do not
        # fit are left out, least needed first, and the title says which
        console = Console(
            width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 160)
        )
        cells = [_cells(r) for r in table]
        keep = list(COLUMNS)
        width = lambda cols: (
            sum(
                3 + max(len(c), *(len(row[COLUMNS.index(c)]) for row in cells))  # noqa: E731
                for c in cols
            )
            + 1
        )
        for optional in ("paper", "torchvision", "family", "paper MACs", "paper params"):
            if width(keep) <= console.width:
                break
            keep.remove(optional)
        dropped = [c for c in COLUMNS if c not in keep]
        t = Table(
            title=f"model zoo ({len(table)} models; MACs = multiply-adds at the paper's resolution)"
            + (
                f"; too narrow for: {', '.join(dropped)} (--markdown has every column)"
                if dropped
                else ""
            )
        )
        for col in keep:
            t.add_column(
                col,
                no_wrap=True,
                justify="right"
                if col in ("res", "params", "paper params", "MACs", "paper MACs")
                else "left",
            )
        for row in cells:
            t.add_row(*(row[COLUMNS.index(c)] for c in keep))
        console.print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
