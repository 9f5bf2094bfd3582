"""Rebuild a trained run from one of its checkpoints: the one function the studies after training
share (``python -m platform.lesion``, ``reproduce paths``, ``reproduce landscape``; issue 29).

The run's ``config.yaml`` (read by :meth:`platform.run.rundir.RunDir.read_config`, as a resume
reads it), the model built by the training builders (``platform.run.compose.module_kwargs``) with
the knobs the checkpoint recorded (``platform.run.module.recorded_knobs``: an old checkpoint keeps
its old variant), its weights read by the one digest-checked reader
(``platform.run.init.read_checkpoint`` through ``load_initial_weights``), and the run's
datamodule.  ``python -m platform.evaluate`` reads a checkpoint the same way but starts from any
weights file (a plain or torchvision ``state_dict`` too) and applies overrides:
``platform.after.evaluate.load``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import models
from platform.run.rundir import RunDir
from platform.run.schema import ConfigError, ExperimentConfig


class RebuildError(ValueError):
    """A checkpoint or run directory that cannot be rebuilt; the message names it and what to pass."""


def _study_errors() -> tuple[type[BaseException], ...]:
    from datamodules.beton import BetonError, DataError

    return (RebuildError, ConfigError, DataError, BetonError, models.UnknownModelError)


# What a study over a rebuilt run reports as a one-line user error (exit 2), beside its own.
STUDY_ERRORS = _study_errors()


@dataclass
class LoadedRun:
    checkpoint: Path
    run_dir: Path
    cfg: ExperimentConfig
    model: Any  # torch.nn.Module, in eval mode
    datamodule: Any

    @property
    def label(self) -> str:
        return self.cfg.model.name


_WHAT = (
    "pass a checkpoint written by python -m platform.train, e.g. runs/<name>/checkpoints/last.ckpt"
)


def run_config(path: Path, option: str) -> tuple[Path, ExperimentConfig]:
    """(run directory, its saved config) of the checkpoint ``path``."""
    run = RunDir.of_checkpoint(path)
    try:
        cfg = run.read_config()
    except ConfigError as e:
        raise RebuildError(f"{option} {path}: cannot read the run's {e}") from None
    if cfg is None:
        raise RebuildError(
            f"{option} {path}: no {run.config} beside it; pass a checkpoint inside a run directory "
            "(runs/<name>/checkpoints/last.ckpt, with runs/<name>/config.yaml)"
        )
    return run.path, cfg


def load_run(checkpoint: str | Path, option: str = "--checkpoint") -> LoadedRun:
    """The model of ``runs/<name>/checkpoints/*.ckpt`` with its weights, and the run's datamodule."""
    from platform.run.compose import build_datamodule, module_kwargs
    from platform.run.init import load_initial_weights, read_checkpoint
    from platform.run.module import recorded_knobs

    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise RebuildError(f"{option} {path}: no such file; {_WHAT}")
    run_dir, cfg = run_config(path, option)
    name = cfg.model.name
    try:
        state = read_checkpoint(path, option, "give a runs/<name>/checkpoints/*.ckpt of ours")
    except ConfigError as e:  # missing digest match, not a torch file, a pickled module
        raise RebuildError(f"{option} {path}: cannot load it into {name}: {_detail(e)}") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise RebuildError(
            f"{option} {path}: not a platform checkpoint (no Lightning state_dict); {_WHAT}"
        )
    datamodule = build_datamodule(cfg)
    kwargs = module_kwargs(cfg, datamodule.num_classes)
    hparams = state.get("hyper_parameters")
    if isinstance(hparams, dict) and hparams.get("model_name") == name:
        kwargs["model_knobs"] = recorded_knobs(name, hparams.get("model_knobs"), path)
    model = models.create_model(
        kwargs["model_name"], num_classes=kwargs["num_classes"], **kwargs["model_knobs"]
    )
    try:
        load_initial_weights(model, name, path, knobs=kwargs["model_knobs"])
    except ConfigError as e:  # another architecture than the run's config.yaml names
        raise RebuildError(
            f"{option} {path}: cannot load it into {name} (the run's config.yaml): {_detail(e)}"
        ) from None
    return LoadedRun(path, run_dir, cfg, model.eval(), datamodule)


def _detail(e: BaseException) -> str:
    """A reader's one-line error without its own ``option=path:`` prefix."""
    return " ".join(str(e).split(": ", 1)[-1].split())
