"""``python -m benchmarks SUITE [options]``: run one benchmark suite (``--help`` lists them).

A suite is any module ``benchmarks/<file>.py`` with a top-level ``main(argv)``; it is found without
importing it (its docstring's first line is its description), so a new suite needs no entry here.
``ALIASES`` keeps the short names the README uses (``data`` is ``data_loading.py``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALIASES = {"data": "data_loading"}
NOT_SUITES = {"__init__", "__main__", "common"}


def suites() -> dict[str, tuple[str, str]]:
    """``{name: (module, one-line description)}`` of every suite in this directory, by name."""
    found = {}
    for path in sorted(HERE.glob("*.py")):
        if path.stem in NOT_SUITES:
            continue
        try:
            tree = ast.parse(path.read_text())
        except (OSError, SyntaxError):
            continue
        if not any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body):
            continue
        doc = (ast.get_docstring(tree) or "").strip().splitlines()
        name = next((a for a, m in ALIASES.items() if m == path.stem), path.stem)
        found[name] = (f"benchmarks.{path.stem}", doc[0] if doc else "")
    return found


def usage() -> str:
    table = suites()
    width = max(map(len, table), default=0)
    lines = [
        "usage: python -m benchmarks SUITE [options]   (SUITE --help for its options)",
        "",
        "suites:",
    ]
    lines += [f"  {name:{width}s}  {desc.replace('``', '')}" for name, (_, desc) in table.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    table = suites()
    if argv[0] not in table:
        print(
            f"error: unknown suite {argv[0]!r}; suites: {', '.join(table)}\n"
            f"usage: python -m benchmarks SUITE [options]  (python -m benchmarks --help)",
            file=sys.stderr,
        )
        return 2
    import importlib

    return importlib.import_module(table[argv[0]][0]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
