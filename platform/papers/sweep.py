"""``python -m platform.sweep FILE [--slurm] [--dry-run] [key=value ...]``: run a sweep without W&B.

A sweep file is either W&B's grid form (``sweeps/*.yaml``: ``method: grid`` and ``parameters``,
each ``key: {values: [...]}`` or ``key: {value: x}``) or a YAML list of override lists.  This
runner expands the grid exactly as a W&B agent would pass it (``key=value`` per parameter) and
runs every configuration that has no finished run yet -- one after another here, or as one SLURM
job array (``--slurm``: ``sbatch --array=0-N slurm/sweep.sh FILE``) -- for clusters without
internet access.  Overrides after the file apply to every configuration and win, except on a key
the sweep varies (an error: it would make every run the same).  Datasets that need ``data.path``
get it from ``--data-path DIR`` or the sweep is refused; the run count and an estimated cost in
GPU-hours (``platform.papers.launch``) are printed first, as a ``#`` comment.

Inside the job array (what ``slurm/sweep.sh`` runs under ``srun``):
``python -m platform.sweep --task FILE [key=value ...]`` trains the ``SLURM_ARRAY_TASK_ID``-th
configuration in this process (the command line's overrides last, so they win), and
``python -m platform.sweep --count FILE`` prints how many configurations the file has.
``python -m platform.slurm sweep|count FILE ...`` is the same door under its older name
(:func:`array_job`).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from platform.run import cli
from platform.run.config import load_config, parse_overrides
from platform.run.schema import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _override(key: str, value: Any) -> str:
    import yaml

    if isinstance(value, str):
        return f"{key}={value}"
    return f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"


def sweep_configs(path: str | Path) -> list[list[str]]:
    """The configurations of a sweep file, each a list of ``key=value`` overrides.

    Two forms (YAML):

    * a list; each item a list of overrides (``[model=resnet20, optim.lr=0.1]``) or a mapping
      (``{model: resnet20, optim.lr: 0.1}``);
    * W&B's grid form: a mapping with ``parameters:``, each ``key: {values: [...]}`` or
      ``key: {value: x}``; the configurations are the grid in file order, the last key
      varying fastest (``method``, if present, must be ``grid``; other keys are ignored).
    """
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise ConfigError(
            f"cannot read sweep file {path}: {e.strerror} (a sweep file: sweeps/<table>.yaml, or a "
            f"YAML list of override lists)"
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"sweep file {path} is not valid YAML: {e}") from None
    if isinstance(data, list):
        configs = []
        for i, item in enumerate(data):
            if isinstance(item, dict):
                configs.append([_override(k, v) for k, v in item.items()])
            elif isinstance(item, list) and all(isinstance(x, str) and "=" in x for x in item):
                configs.append(list(item))
            else:
                raise ConfigError(
                    f"{path}: entry {i} must be a list of key=value strings or a mapping, got "
                    f"{item!r}"
                )
        if not configs:
            raise ConfigError(f"{path}: the sweep has no runs (an empty list)")
        return configs
    if isinstance(data, dict) and isinstance(data.get("parameters"), dict):
        if data.get("method", "grid") != "grid":
            raise ConfigError(
                f"{path}: method={data['method']!r}; a SLURM job array enumerates a grid only "
                f"(use method: grid, or a W&B agent for random/bayes sweeps)"
            )
        axes = []
        for key, spec in data["parameters"].items():
            if isinstance(spec, dict) and "values" in spec:
                axes.append([(key, v) for v in spec["values"]])
            elif isinstance(spec, dict) and "value" in spec:
                axes.append([(key, spec["value"])])
            else:
                raise ConfigError(
                    f"{path}: parameter {key} needs `values: [...]` or `value: x` for a grid"
                )
        empty = [key for key, axis in zip(data["parameters"], axes, strict=True) if not axis]
        if empty:  # the grid would be empty: --array=0--1
            raise ConfigError(
                f"{path}: the sweep has no runs (parameter {', '.join(empty)} has `values: []`)"
            )
        return [[_override(k, v) for k, v in combo] for combo in itertools.product(*axes)]
    raise ConfigError(
        f"{path}: a sweep file is a list of override lists or a mapping with `parameters:`"
    )


def existing_runs(configs: list[list[str]], extra: list[str], runs_root: Path) -> dict[int, str]:
    """{index: run directory} of the configurations that have a finished or running run already."""
    from platform.after.run_records import local_records, run_filter

    records = [r for r in local_records(runs_root) if r.status in ("finished", "running")]
    found = {}
    for i, c in enumerate(configs):
        match = next(filter(run_filter(c), records), None)
        if match is not None:
            found[i] = f"{match.path} ({match.status})"
    return found


def pending(configs: list[list[str]], extra: list[str], runs_root: Path) -> list[int]:
    """Indices of the configurations without a finished or running run under ``runs_root``."""
    found = existing_runs(configs, extra, runs_root)
    return [i for i in range(len(configs)) if i not in found]


def check(path: str | Path) -> list[list[str]]:
    """Expand a sweep file and validate every configuration with the platform's config."""
    import models
    from datamodules import list_datamodules

    configs = sweep_configs(path)
    for i, c in enumerate(configs):
        try:
            cfg = load_config(c)
            if cfg.data.name not in list_datamodules():
                raise ConfigError(
                    f"unknown data {cfg.data.name!r}; known: {', '.join(list_datamodules())}"
                )
            knobs = {
                k
                for k, v in vars(cfg.model).items()
                if v is not None and k not in ("name", "init", "num_classes")
            }
            models.model_info(cfg.model.name)  # UnknownModelError names the closest models
            bad = knobs - models.free_knobs(cfg.model.name)
            if bad:
                raise ConfigError(
                    f"model {cfg.model.name} has no knob {', '.join(sorted(bad))} "
                    f"(its knobs: {', '.join(sorted(models.free_knobs(cfg.model.name)))})"
                )
        except (ConfigError, models.UnknownModelError) as e:
            raise ConfigError(f"{path}: configuration {i} ({' '.join(c)}): {e}") from None
    return configs


# ---------------------------------------------------------------------------- inside the job array
def sweep_task(path: str | Path, index: int | None = None) -> list[str]:
    """The overrides of array task ``index`` (default ``SLURM_ARRAY_TASK_ID``)."""
    configs = sweep_configs(path)
    if index is None:
        if "SLURM_ARRAY_TASK_ID" not in os.environ:
            raise ConfigError(
                "no SLURM_ARRAY_TASK_ID: submit as a job array, "
                f"sbatch --array=0-{len(configs) - 1} slurm/sweep.sh {path}"
            )
        task = os.environ["SLURM_ARRAY_TASK_ID"]
        if not (task.isascii() and task.strip().isdigit()):  # Slurm sets a whole number
            raise ConfigError(
                f"SLURM_ARRAY_TASK_ID={task!r} is not an array task number (a whole number "
                f"0-{len(configs) - 1} for {path})"
            )
        index = int(task)
    if not 0 <= index < len(configs):
        raise ConfigError(
            f"array task {index} but {path} has {len(configs)} configurations "
            f"(use --array=0-{len(configs) - 1})"
        )
    return configs[index]


ARRAY_JOBS = ("task", "count")


def array_job(job: str, path: str, rest: list[str]) -> int:
    """``task``: train this array task's configuration with ``rest`` after it (``platform.run.train``'s
    exit code); ``count``: print the number of configurations.  A bad sweep file: one line, exit 2."""
    try:
        if job == "count":
            print(len(sweep_configs(path)))
            return 0
        overrides = sweep_task(path)
    except (ConfigError, OSError) as e:
        return cli.user_error(e)
    from platform.run import train

    print(
        f"sweep {path} task {os.environ.get('SLURM_ARRAY_TASK_ID')}: {' '.join(overrides)}",
        flush=True,
    )
    return train.main([*overrides, *rest])  # the command line comes last, so it wins


# ---------------------------------------------------------------------------- the launcher
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m platform.sweep",
        description=__doc__.split("\n")[0],
        epilog="inside a SLURM job array (slurm/sweep.sh): python -m "
        "platform.sweep --task FILE [key=value ...] | --count FILE",
    )
    p.add_argument("file", help="sweep file (sweeps/*.yaml or a list of override lists)")
    p.add_argument(
        "--slurm", action="store_true", help="submit one job array through slurm/sweep.sh"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the exact commands and nothing else"
    )
    p.add_argument(
        "--all", action="store_true", help="run every configuration, even those with a finished run"
    )
    p.add_argument(
        "--sbatch-args", default="", help="extra sbatch options (quoted), e.g. '--partition=gpu'"
    )
    p.add_argument(
        "--data-path",
        metavar="DIR",
        help="data.path for every run (required for data=imagenet, beton, cifar10, cifar100)",
    )
    return p


@cli.entry()
def main(argv: list[str]) -> int:
    if argv[:1] in (["--task"], ["--count"]):  # inside the job array (slurm/sweep.sh)
        if len(argv) < 2:
            print(
                "usage: python -m platform.sweep --task FILE [key=value ...] | --count FILE",
                file=sys.stderr,
            )
            return cli.EXIT_USER_ERROR
        return array_job(argv[0].removeprefix("--"), argv[1], argv[2:])
    p = _parser()
    args, extra = cli.parse(p, argv)
    from platform.papers.launch import (
        DATA_PATH_PLACEHOLDER,
        check_data_path,
        check_extra,
        compact_ranges,
        data_path_overrides,
        plan_line,
        resolved,
        without_data_path,
    )

    extra = [*data_path_overrides(args.data_path), *extra]
    try:
        configs = without_data_path(check(args.file), extra)
        runs_root = Path(dict(parse_overrides(extra)).get("run.root", "runs"))
        check_extra(configs, extra, str(args.file))
        cfgs = resolved(configs, extra)
        if check_data_path(cfgs, str(args.file), args.dry_run) and not any(
            a.startswith("data.path=") for c in configs for a in c
        ):
            extra = [*data_path_overrides(DATA_PATH_PLACEHOLDER), *extra]
    except (ConfigError, OSError) as e:
        return cli.user_error(e)
    found = {} if args.all else existing_runs(configs, extra, runs_root)
    todo = [i for i in range(len(configs)) if i not in found]
    if todo:
        print(plan_line([cfgs[i] for i in todo]), flush=True)
    if args.slurm:
        # the array enumerates the whole file (task i = configuration i); finished runs are
        # skipped by index so the array's task ids still address the file's configurations
        if not todo:
            print(f"{args.file}: every configuration has a finished or running run")
            return 0
        cmd = [
            "sbatch",
            f"--array={compact_ranges(todo)}",
            *shlex.split(args.sbatch_args),
            "slurm/sweep.sh",
            str(args.file),
            *extra,
        ]
        print(shlex.join(cmd), flush=True)
        if args.dry_run:
            return 0
        (ROOT / "logs").mkdir(exist_ok=True)
        return subprocess.run(cmd, cwd=ROOT).returncode
    if found:
        print(
            f"{len(found)} of {len(configs)} configurations already have a finished or running run; "
            "skipped:"
        )
        for i, run in found.items():
            print(f"  [{i}] {shlex.join(configs[i])} -> {run}")
    failed = 0
    for n, i in enumerate(todo, 1):
        cmd = [sys.executable, "-m", "platform.train", *configs[i], *extra]
        print(f"[{n}/{len(todo)}] {shlex.join(['python', *cmd[1:]])}", flush=True)
        if not args.dry_run:
            failed += subprocess.run(cmd, cwd=ROOT).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
