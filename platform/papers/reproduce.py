"""``python -m platform.reproduce TABLE``: a paper's table, the paper's numbers beside ours.

    python -m platform.reproduce --list
    python -m platform.reproduce table3                          # report (static + trained columns)
    python -m platform.reproduce table3 --scale proxy            # the proxy-scale runs instead
    python -m platform.reproduce table3 --launch local|slurm|wandb [--seeds 3] [--scale ...] [--dry-run] [key=value ...]
    python -m platform.reproduce table3 --wandb ENTITY/PROJECT   # runs from the W&B API
    python -m platform.reproduce table3 --wandb-dir runs/        # runs from W&B run files (offline or synced)
    python -m platform.reproduce lesion --checkpoint PATH        # Veit et al. 2016 lesion study
    python -m platform.reproduce paths --checkpoint PATH         # Veit et al. 2016 effective paths

Static columns (params, multiply-adds at the paper's resolution, with the paper's figures and the
ratio) are computed now and need no training.  Trained columns are the final-epoch validation
errors of the runs whose config matches a row at the chosen scale: mean ± std over seeds with n,
beside the paper's value and the delta.  ``proxy`` numbers check the machinery and trends on
one machine; they are never a reproduction of the paper's values, and are labelled so.
Output: a rich table, and ``reproduce/<table>/`` table.md, table.csv, table.json, plot.png.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import models
from platform.after.run_records import (
    RunRecord,
    local_records,
    wandb_api_records,
    wandb_offline_records,
)

# the pieces: columns, the report, launching
from platform.papers.columns import (
    row_runs,
)
from platform.papers.missing_runs import (
    ROOT,
    launch,
    sweep_yaml,
)
from platform.papers.render import (
    report,
)
from platform.papers.tables import SCALES, TableError, list_tables, load_table
from platform.run import cli
from platform.run.config import parse_overrides
from platform.run.rundir import RunDir
from platform.run.schema import ConfigError


# ---------------------------------------------------------------------------- the lesion study
def _is_plain(name: str) -> bool:
    import torch

    from platform.papers.lesion_blocks import is_plain

    with torch.device("meta"):
        return is_plain(models.create_model(name))


def lesion(argv: list[str]) -> int:
    """``reproduce lesion --checkpoint PATH [--plain-checkpoint PATH] ...``: platform/papers/lesion.py on
    those checkpoints.  Without ``--checkpoint``: the first finished runs (by seed) of the lesion
    table's residual and plain rows at ``--scale`` (``--table`` picks another table of that shape)."""
    from platform.papers.lesion import main as lesion_main

    if any(a.split("=")[0] in ("--checkpoint", "ckpt") for a in argv):
        return lesion_main(argv)
    p = argparse.ArgumentParser(prog="python -m platform.reproduce lesion", add_help=False)
    p.add_argument("--table", default="lesion")
    p.add_argument("--scale", choices=SCALES, default="imagenet")
    p.add_argument("--runs", default="runs")
    args, rest = p.parse_known_args(argv)
    if {"-h", "--help"} & set(rest):
        return lesion_main(["--help"])
    try:
        table = load_table(args.table)
        records = local_records(args.runs)
        found = {}
        for row in table.rows:
            done = sorted(
                (r for r in row_runs(table, row, args.scale, records) if r.status == "finished"),
                key=lambda r: (r.get("seed"), r.path),
            )
            ckpts = [RunDir(r.path).last for r in done]
            ckpts = [c for c in ckpts if c.is_file()]
            plain = _is_plain(row.model)
            if ckpts:
                found.setdefault("plain" if plain else "residual", ckpts[0])
        if "residual" not in found:
            raise TableError(
                f"no finished run of {table.name}'s residual row at scale {args.scale} under "
                f"{args.runs}/: train it with `python -m platform.reproduce {table.name} --launch "
                "local "
                f"--scale {args.scale} --seeds 1`, or pass --checkpoint PATH"
            )
    except TableError as e:
        return cli.user_error(e)
    cmd = ["--checkpoint", str(found["residual"])]
    if "plain" in found:
        cmd += ["--plain-checkpoint", str(found["plain"])]
    print(f"lesion study of {' and '.join(str(c) for c in found.values())}", flush=True)
    return lesion_main(cmd + rest)


# ---------------------------------------------------------------------------- the figure commands
# Figures that are not a table of runs: ``reproduce NAME ARGS`` runs ``main(ARGS)`` of the module.
# (module, usage shown by --list).  Imported on use, so a table report loads none of them.
FIGURES: dict[str, tuple[str, str]] = {
    "paths": (
        "platform.papers.paths",
        "paths --checkpoint PATH [--samples K] [--out DIR]: effective paths, gradient per path "
        "length (Veit et al. 2016 §5, Fig. 6)",
    ),
    "landscape": (
        "platform.papers.landscape",
        "landscape --checkpoint PATH [--checkpoint PATH ...]: the loss landscape of Li et al. "
        "2018 (Fig. 5: ResNet-56 with vs without skip connections), 1-D or 2-D, --devices N or "
        "--part i/n",
    ),
    "gradients": (
        "platform.papers.gradients",
        "gradients [--table stochastic_depth] [--scale proxy|imagenet] [--runs DIR] [--run DIR ...] "
        "[--out DIR]: per-epoch gradient magnitude of the first conv, constant vs stochastic depth "
        "(Huang et al. 2016 Fig. 8; runs trained with logging.grad_stats=true)",
    ),
}


def figure(name: str, argv: list[str]) -> int:
    import importlib

    return importlib.import_module(FIGURES[name][0]).main(argv)


# ---------------------------------------------------------------------------- CLI
def read_records(args: argparse.Namespace, runs_root: Path) -> list[RunRecord]:
    if args.wandb:
        filters = {}
        if args.wandb_sweep:
            filters["sweep"] = args.wandb_sweep
        if args.wandb_tag:
            filters["tags"] = {"$in": [args.wandb_tag]}
        return wandb_api_records(args.wandb, filters)
    if args.wandb_dir:
        return wandb_offline_records(args.wandb_dir)
    return local_records(runs_root)


def list_text() -> str:
    lines = []
    for t in list_tables():
        alias = f" ({', '.join(t.aliases)})" if t.aliases else ""
        kind = "computed" if not t.trained else f"{len(t.rows)} rows"
        lines.append(
            f"{t.name + alias:28s} {t.paper.split(',')[0]:32s} {t.table:22s} {kind:9s} {t.title}"
        )
    lines.append(
        "(python -m platform.reproduce lesion [--checkpoint PATH]: the lesion study of the lesion "
        "table's finished runs, or of any checkpoint)"
    )
    lines += [f"(python -m platform.reproduce {usage})" for _, usage in FIGURES.values()]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m platform.reproduce",
        description=__doc__.split("\n")[0],
        epilog="key=value arguments are passed to every launched run "
        "(e.g. run.root=..., data.cache_dir=...)",
    )
    p.add_argument("table", nargs="?", help="table name, alias (table3) or path to a table .yaml")
    p.add_argument("--list", action="store_true", help="list the tables")
    p.add_argument(
        "--scale",
        choices=SCALES,
        default="imagenet",
        help="imagenet: the paper's data and recipe; proxy: the table's reduced setting",
    )
    p.add_argument(
        "--runs",
        default=None,
        help="local run directories (default: run.root=... if given, else runs/)",
    )
    p.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read runs from the W&B API instead")
    p.add_argument("--wandb-sweep", metavar="ID", help="with --wandb: only this sweep's runs")
    p.add_argument(
        "--wandb-tag",
        metavar="TAG",
        help="with --wandb: only runs with this tag (launched runs and "
        "sweep runs carry the table's name)",
    )
    p.add_argument(
        "--wandb-dir",
        metavar="DIR",
        help="read runs from W&B run files (offline or synced) under DIR",
    )
    p.add_argument("--out", default=None, help="output directory (default reproduce/<table>)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--launch", choices=("local", "slurm", "wandb"), help="run the missing rows")
    p.add_argument(
        "--seeds", type=int, default=None, help="seeds per row to launch (default 3; proxy 2)"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the exact commands and nothing else"
    )
    p.add_argument(
        "--sbatch-args", default="", help="extra sbatch options for --launch slurm (quoted)"
    )
    p.add_argument(
        "--data-path",
        metavar="DIR",
        help="with --launch: data.path of every run (required for "
        "data=imagenet, beton, cifar10, cifar100)",
    )
    p.add_argument(
        "--write-sweep",
        action="store_true",
        help="write sweeps/<table>.yaml (W&B grid, imagenet scale)",
    )
    return p


@cli.entry()
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if (
        argv
        and argv[0] == "lesion"
        and not {"--launch", "--write-sweep", "--list"} & {a.split("=")[0] for a in argv}
    ):
        return lesion(argv[1:])
    if argv and argv[0] in FIGURES:
        return figure(argv[0], argv[1:])
    p = _parser()
    args, extra = cli.parse(p, argv)
    if args.list:
        print(list_text())
        return 0
    if not args.table:
        p.error("give a table (see --list)")
    try:
        table = load_table(args.table)
        extra_pairs = dict(parse_overrides(extra))
        runs_root = Path(args.runs or extra_pairs.get("run.root", "runs"))
        out_dir = Path(args.out or ROOT / "reproduce" / table.name)
        if args.write_sweep:
            if not table.trained:
                raise TableError(f"{table.name} is a computed table: there is nothing to train")
            path = ROOT / "sweeps" / f"{table.name}.yaml"
            path.write_text(sweep_yaml(table))
            print(f"wrote {path}")
            return 0
        if args.launch:
            if not table.trained:
                raise TableError(
                    f"{table.name} is a computed table (static columns only): nothing to launch"
                )
            seeds = args.seeds or (2 if args.scale == "proxy" else 3)
            records = [] if args.launch == "wandb" else read_records(args, runs_root)
            return launch(
                table,
                args.launch,
                args.scale,
                seeds,
                records,
                extra,
                args.dry_run,
                out_dir,
                shlex.split(args.sbatch_args),
                args.data_path,
            )
        records = read_records(args, runs_root) if table.trained else []
        report(table, records, args.scale, out_dir, make_plot=not args.no_plot)
        return 0
    except (TableError, ConfigError) as e:
        return cli.user_error(e)


if __name__ == "__main__":
    sys.exit(main())
