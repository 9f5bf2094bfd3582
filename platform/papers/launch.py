"""What every launcher (``platform.papers.reproduce --launch``, ``platform.papers.sweep``, the W&B sweep files) checks
and prints before it starts anything: only runnable commands, how many runs, what they cost.

* a dataset that needs ``data.path`` gets one (``--data-path DIR``) or the launch is refused (a
  ``--dry-run`` prints the commands with the visible placeholder ``SET_DATA_PATH`` and a warning);
* an override on the command line that sets a swept key is an error naming it (``model=resnet18``
  on a 30-run grid would silently make 30 resnet18 runs);
* the number of runs and an estimated cost in GPU-hours (:func:`gpu_hours`);
* SLURM array indices as compact ranges (``0-29``, ``0-3,5,7-9``).
"""

from __future__ import annotations

import sys
from typing import Any

from platform.run.config import load_config, parse_overrides
from platform.run.schema import ConfigError, ExperimentConfig

DATA_NEEDS_PATH = (
    "imagenet",
    "beton",
    "cifar10",
    "cifar100",
)  # datamodules/__init__.py raises without it
DATA_PATH_PLACEHOLDER = (
    "SET_DATA_PATH"  # committed W&B sweep files: replaced by --data-path, else refused
)

# Reference throughput for the cost estimate: NVIDIA DeepLearningExamples, PyTorch ResNet-50 v1.5
# (PyTorch/Classification/ConvNets/resnet50v1.5/README.md, "Training performance: NVIDIA DGX A100
# (8x A100 80GB)"): 2470 img/s training on 1 A100 with mixed precision, at 224 px.  A model costs
# its MACs over ResNet-50 v1.5's 4.09 G (torchvision's count) times that rate: depthwise nets
# (MobileNet, EfficientNet) reach a lower fraction of peak, so read their estimates as lower bounds.
REFERENCE_IMG_S = 2470.0
REFERENCE_MACS = 4.09e9
REFERENCE = (
    "NVIDIA DeepLearningExamples ResNet-50 v1.5 (PyTorch): 2470 img/s training on one A100 80GB, "
    "mixed precision, at 4.09 GMACs/image"
)


def compact_ranges(indices: list[int]) -> str:
    """``[0, 1, 2, 3, 5, 7, 8, 9]`` -> ``"0-3,5,7-9"`` (sbatch ``--array`` syntax)."""
    out, xs = [], sorted(set(indices))
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        out.append(str(xs[i]) if i == j else f"{xs[i]}-{xs[j]}")
        i = j + 1
    return ",".join(out)


def data_path_overrides(data_path: str | None) -> list[str]:
    return [f"data.path={data_path}"] if data_path else []


def without_data_path(configs: list[list[str]], extra: list[str]) -> list[list[str]]:
    """The configurations less their own ``data.path=`` when ``extra`` sets one (a sweep file's
    placeholder), so that a printed command carries it once."""
    if not any(a.startswith("data.path=") for a in extra):
        return configs
    return [[a for a in c if not a.startswith("data.path=")] for c in configs]


def swept_keys(configs: list[list[str]]) -> set[str]:
    """Keys whose value differs between configurations (or that only some set)."""
    values: dict[str, set[str]] = {}
    parsed = [dict(parse_overrides(c)) for c in configs]
    for key in {k for p in parsed for k in p}:
        values[key] = {p.get(key, "\0unset") for p in parsed}
    return {k for k, v in values.items() if len(v) > 1}


def check_extra(configs: list[list[str]], extra: list[str], where: str) -> None:
    """Refuse overrides that would collapse the grid (they set a swept key)."""
    clash = (
        sorted(swept_keys(configs) & {k for k, _ in parse_overrides(extra)})
        if len(configs) > 1
        else []
    )
    if clash:
        shown = ", ".join(
            k.removesuffix(".name") if k in ("model.name", "data.name") else k for k in clash
        )
        raise ConfigError(
            f"{where}: the override(s) {shown} set a key the sweep varies, which would make "
            f"every run the same; drop it from the command line (or edit the sweep)"
        )


def resolved(configs: list[list[str]], extra: list[str]) -> list[ExperimentConfig]:
    return [load_config([*c, *extra]) for c in configs]


# what data.path holds, per dataset (the error names the right files)
DATA_PATH_HOLDS = {
    "cifar10": "cifar-10-batches-py/, the python pickles of the official tarball",
    "cifar100": "cifar-100-python/, the python pickles of the official tarball",
}
BETON_PAIR = "train.beton and val.beton, written by `python -m datamodules.write`"


def check_data_path(cfgs: list[ExperimentConfig], where: str, dry_run: bool = False) -> bool:
    """Every run's dataset has the ``data.path`` it needs, or the launch is refused; a dry run
    warns instead (its commands carry the placeholder).  Returns whether one is missing."""
    needing = sorted(
        {
            c.data.name
            for c in cfgs
            if c.data.name in DATA_NEEDS_PATH and c.data.path in (None, "", DATA_PATH_PLACEHOLDER)
        }
    )
    if not needing:
        return False
    holds = "; ".join(f"data={n}: {DATA_PATH_HOLDS.get(n, BETON_PAIR)}" for n in needing)
    message = (
        f"{where}: data={','.join(needing)} needs data.path (the directory holding {holds}); "
        "pass --data-path DIR (or data.path=DIR) so that the printed commands run"
    )
    if not dry_run:
        raise ConfigError(message)
    print(
        f"warning: {message}; the commands below carry data.path={DATA_PATH_PLACEHOLDER}",
        file=sys.stderr,
    )
    return True


def run_cost(cfg: ExperimentConfig) -> float | None:
    """Estimated GPU-hours of one run: train MACs x images x epochs at the reference MAC rate;
    None where the training-set size is not known before the data is read (no guess)."""
    import models
    from models.complexity import complexity
    from platform.run.schedules import UnknownTrainSize, train_size

    res = (
        cfg.data.max_resolution
        or cfg.data.resolution
        or models.model_info(cfg.model.name).resolution
    )
    try:
        images = train_size(cfg)
    except UnknownTrainSize:  # e.g. a .beton not readable here: said in plan_line, not guessed
        return None
    macs = complexity(cfg.model.name, res).macs
    return macs * images * cfg.trainer.max_epochs / (REFERENCE_MACS * REFERENCE_IMG_S) / 3600


def gpu_hours(cfgs: list[ExperimentConfig]) -> float:
    """Summed :func:`run_cost` of the runs whose dataset size is known (see :func:`unknown_cost`)."""
    return sum(c for c in _costs(cfgs) if c is not None)


def unknown_cost(cfgs: list[ExperimentConfig]) -> int:
    """How many of ``cfgs`` have no cost estimate (their training-set size is unknown here)."""
    return sum(c is None for c in _costs(cfgs))


def _costs(cfgs: list[ExperimentConfig]) -> list[float | None]:
    cache: dict[Any, float | None] = {}
    out = []
    for c in cfgs:
        key = (
            c.model.name,
            c.data.name,
            c.data.path,
            c.data.resolution,
            c.data.max_resolution,
            c.trainer.max_epochs,
            c.data.synthetic_size,
            c.data.train_subset,
            c.data.val_split,
            c.data.val_fraction,
        )
        if key not in cache:
            cache[key] = run_cost(c)
        out.append(cache[key])
    return out


def plan_line(cfgs: list[ExperimentConfig]) -> str:
    """``# 30 runs, about 1234 GPU-hours (at ...)`` -- a comment line, so the output stays runnable."""
    missing = unknown_cost(cfgs)
    return (
        f"# {len(cfgs)} run(s), about {gpu_hours(cfgs):,.1f} GPU-hours "
        f"(train MACs x images x epochs at the rate of {REFERENCE})"
        + (
            f"; {missing} run(s) not counted: training-set size unknown before the data is read"
            if missing
            else ""
        )
    )
