"""``python -m platform.evaluate --checkpoint PATH [--protocol center|flip|10crop] [data=... data.path=...] [k=v ...]``

Top-1/top-5 error of a checkpoint on a validation split, with the papers' test protocols:

* ``center``: one centre crop of side ``data.val_resolution`` at ``data.val_crop_ratio`` -- exactly
  the validation pass of training (ResNeXt Table 3, DenseNet Table 3 "single-crop", torchvision).
* ``flip``: the centre crop and its mirror, softmax scores averaged (ffcv-imagenet's flip TTA,
  ``train_imagenet.py`` ``val_loop``, which sums logits; we average probabilities as for 10-crop).
* ``10crop``: the image's centre square resized to ``val_resolution / val_crop_ratio`` (256 for
  224 at 0.875), then the 4 corner and the centre ``val_resolution`` crops and their mirrors, the
  10 softmax scores averaged (Krizhevsky et al. 2012 §4.1; "the standard 10-crop testing" of He et
  al. 2015 §3.4, behind ResNet Tables 2 and 3 and DenseNet Table 3's parenthesised errors).

The dataset is the run's own (from ``config.yaml`` in the checkpoint's run directory) unless
``data=``/``data.path=`` say otherwise.  Accepted files: a ``.ckpt`` of ours, a ``state_dict`` of
ours, or a torchvision ``state_dict`` (converted as ``model.init`` does; give ``model=``).  Prints
one line and writes ``eval-<protocol>.json`` (+ ``eval-<protocol>-confusion.csv/.png``) into the
run directory (else beside the file).  Under DDP every rank scores its exact shard; the counts
are summed, so each example is counted once.  From Python: ``from platform.after.evaluate import evaluate``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

import models
from datamodules.beton import BetonError, DataError, write_json_atomic
from platform.run import cli, stopping
from platform.run.config import load_config, parse_overrides
from platform.run.console import quiet_library_chatter
from platform.run.rundir import RunDir
from platform.run.schema import ConfigError, ExperimentConfig

log = logging.getLogger("platform.evaluate")

PROTOCOLS = ("center", "flip", "10crop")
VIEWS = {"center": 1, "flip": 2, "10crop": 10}


class EvalError(ValueError):
    """A checkpoint, image or argument that cannot be used; the message names it and the fix."""


# ---------------------------------------------------------------------------- reading weights
@dataclasses.dataclass
class Weights:
    kind: str  # "checkpoint of ours" | "state_dict" | "torchvision state_dict"
    state_dict: dict[str, torch.Tensor]
    hparams: dict[str, Any] | None  # a checkpoint's ClassificationModule arguments


_ACCEPTED = (
    "give a .ckpt of ours, a state_dict saved with torch.save(model.state_dict(), PATH), "
    "or a torchvision state_dict"
)


def read_weights(path: str | Path) -> Weights:
    """Our ``.ckpt``, a plain ``state_dict``, or neither (an error that says what to do); read by
    :func:`platform.run.init.read_checkpoint`, so a checkpoint's digest file is checked first."""
    from platform.run.init import read_checkpoint

    path = Path(path).expanduser()
    obj = read_checkpoint(path, "ckpt", _ACCEPTED)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        sd = {k[len("model.") :]: v for k, v in obj["state_dict"].items() if k.startswith("model.")}
        if not sd:
            raise EvalError(
                f"ckpt={path}: a Lightning checkpoint without model.* weights (not one of ours)"
            )
        return Weights("checkpoint of ours", sd, dict(obj.get("hyper_parameters") or {}) or None)
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return Weights("state_dict", dict(obj), None)
    if isinstance(obj, nn.Module):
        raise EvalError(
            f"ckpt={path}: holds an nn.Module, not weights; save `model.state_dict()` instead"
        )
    raise EvalError(
        f"ckpt={path}: holds a {type(obj).__name__}, neither a checkpoint nor a state_dict; "
        f"{_ACCEPTED}"
    )


def run_dir_of(ckpt: Path) -> Path | None:
    """``runs/<name>`` for ``runs/<name>/checkpoints/*.ckpt`` (a directory with our config.yaml)."""
    ckpt = Path(ckpt).expanduser().resolve()
    for parent in (ckpt.parent.parent, ckpt.parent):
        if RunDir(parent).config.is_file():
            return parent
    return None


# ---------------------------------------------------------------------------- composition
# Placement and debug limits belong to this machine and this command, not to the training run.
_THIS_MACHINE = dict(
    accelerator="auto",
    devices="auto",
    num_nodes=1,
    strategy="auto",
    limit_train_batches=None,
    limit_val_batches=None,
    compile=False,
)


def saved_run_config(path: Path) -> ExperimentConfig:
    """A run's ``config.yaml``, read as ``platform.run.train config=PATH`` reads it (YAML, keys, types
    and values checked); a bad one is one :class:`ConfigError` line naming the file."""
    try:
        return load_config([f"config={path}"])
    except ConfigError as e:
        raise ConfigError(
            f"{' '.join(str(e).split())} (the run's saved configuration; fix or restore {path}, "
            "or evaluate a checkpoint outside its run directory with model=NAME data=...)"
        ) from None


def eval_config(
    ckpt: str | Path, overrides: Sequence[str] = (), weights: Weights | None = None
) -> ExperimentConfig:
    """The run's saved config (or the defaults), with the model a checkpoint names, then ``overrides``."""
    run_dir = run_dir_of(Path(ckpt))
    base = saved_run_config(RunDir(run_dir).config) if run_dir else ExperimentConfig()
    base.trainer = dataclasses.replace(base.trainer, **_THIS_MACHINE)
    base.model = dataclasses.replace(base.model, init=None)
    base.resume = None
    hp = weights.hparams if weights else None
    given = dict(parse_overrides(list(overrides)))
    if hp and hp.get("model_name"):
        if "model.name" in given and given["model.name"] != hp["model_name"]:
            raise EvalError(
                f"ckpt={ckpt}: a {hp['model_name']} checkpoint, but model={given['model.name']} "
                f"was given; drop model= or give a {given['model.name']} checkpoint"
            )
        base.model = dataclasses.replace(base.model, name=hp["model_name"])
    return load_config(list(overrides), base=base)


def module_from_weights(weights: Weights, cfg: ExperimentConfig, ckpt: str | Path):
    """A ``ClassificationModule`` holding the weights, in eval mode; its arguments are the
    checkpoint's hyper-parameters, or ``compose.module_kwargs`` of ``cfg`` where it has none."""
    from models.convert import (
        ConversionError,
        from_torchvision,
        head_classes,
        looks_like_torchvision,
    )
    from platform.run.compose import module_kwargs
    from platform.run.init import torchvision_mismatch
    from platform.run.module import ClassificationModule, recorded_knobs

    name, sd = cfg.model.name, weights.state_dict
    models.model_info(name)  # an unknown name: UnknownModelError, before any work
    kind = weights.kind
    try:
        classes = head_classes(sd)
        if kind == "state_dict" and looks_like_torchvision(name, sd):
            sd, kind = from_torchvision(name, sd), "torchvision state_dict"
    except ConversionError as e:
        raise EvalError(
            f"ckpt={ckpt}: {e}; is it a checkpoint of another architecture than model={name}?"
        ) from None
    if weights.hparams:  # an old checkpoint (no changed knob recorded): its old variant
        knobs = recorded_knobs(name, weights.hparams.get("model_knobs"), f"ckpt={ckpt}")
        kwargs = {**weights.hparams, "model_knobs": knobs}
    else:
        model_cfg = dataclasses.replace(cfg.model, num_classes=classes)
        if kind == "torchvision state_dict":  # torchvision's variant where model.* leaves it open
            unset = {k: v for k, v in models.model_info(name).torchvision_knobs}
            unset = {k: v for k, v in unset.items() if getattr(model_cfg, k, v) is None}
            model_cfg = dataclasses.replace(model_cfg, **unset)
        kwargs = module_kwargs(dataclasses.replace(cfg, model=model_cfg), classes)
        if kind == "torchvision state_dict":
            mismatch = torchvision_mismatch(name, kwargs["model_knobs"])
            if mismatch:
                raise EvalError(f"ckpt={ckpt}: {mismatch}")
    module = ClassificationModule(**kwargs)
    try:
        module.model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:200]
        raise EvalError(
            f"ckpt={ckpt}: does not fit model={name} ({detail}); is it a checkpoint of another "
            f"architecture? pass model=NAME"
        ) from None
    module.eval()
    return module, kind


def load(ckpt: str | Path, overrides: Sequence[str] = ()):
    """(module, config, weights kind) for a checkpoint file and ``key=value`` overrides."""
    weights = read_weights(ckpt)
    cfg = eval_config(ckpt, overrides, weights)
    module, kind = module_from_weights(weights, cfg, ckpt)
    return module, cfg, kind


def eval_datamodule(cfg: ExperimentConfig, **changes: Any):
    """The config's datamodule with the training run's options (platform.run.compose.datamodule_options)."""
    from platform.run.compose import build_datamodule

    dm = build_datamodule(cfg, **changes)
    dm.stage_name = "evaluation"  # a dying loader thread's error says so
    return dm


# ---------------------------------------------------------------------------- protocols
def crop_views(images: torch.Tensor, protocol: str, crop: int) -> list[torch.Tensor]:
    """The views a protocol scores: (N, C, S, S) -> a list of (N, C, crop, crop) batches."""
    if protocol == "center":
        return [images]
    if protocol == "flip":
        return [images, images.flip(3)]
    if protocol != "10crop":
        raise EvalError(f"protocol={protocol}: unknown; expected one of {', '.join(PROTOCOLS)}")
    h, w = images.shape[-2:]
    if crop > min(h, w):
        raise EvalError(f"10crop: crop {crop} is larger than the decoded image {h}x{w}")
    c, cy, cx = crop, (h - crop) // 2, (w - crop) // 2
    corners = [
        (0, 0),
        (0, w - c),
        (h - c, 0),
        (h - c, w - c),
        (cy, cx),
    ]  # AlexNet §4.1: 4 corners + centre
    five = [images[..., y : y + c, x : x + c] for y, x in corners]
    return five + [v.flip(3) for v in five]


def protocol_scores(
    model: nn.Module, images: torch.Tensor, protocol: str, crop: int
) -> torch.Tensor:
    """(N, classes) scores: one view's logits, or the mean softmax of several views."""
    views = crop_views(images, protocol, crop)
    if len(views) == 1:
        return model(views[0]).float()
    return torch.stack([F.softmax(model(v).float(), dim=1) for v in views]).mean(0)


# ---------------------------------------------------------------------------- the Lightning pass
def _evaluator(module, num_classes: int, protocol: str, crop: int):
    import lightning as L
    from torchmetrics import SumMetric
    from torchmetrics.classification import MulticlassConfusionMatrix

    from platform.run.module import PercentAccuracy, top_k_for

    class Evaluator(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = module.model
            self.memory_format = module.memory_format
            self.top1 = PercentAccuracy(num_classes, top_k=1, average="micro")
            self.top5 = PercentAccuracy(num_classes, top_k=top_k_for(num_classes), average="micro")
            self.confusion = MulticlassConfusionMatrix(num_classes)
            self.seen = SumMetric()
            self.result: dict[str, Any] | None = None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x.contiguous(memory_format=self.memory_format))

        def validation_step(self, batch, batch_idx: int) -> None:
            images, targets = batch
            scores = protocol_scores(self, images, protocol, crop)
            self.top1.update(scores, targets), self.top5.update(scores, targets)
            self.confusion.update(scores.argmax(1), targets)
            self.seen.update(torch.tensor(float(targets.numel()), device=targets.device))

        def on_validation_epoch_end(self) -> None:  # every rank: the metrics sync over DDP here
            self.result = {
                "top1": float(self.top1.compute()),
                "top5": float(self.top5.compute()),
                "n": int(self.seen.compute()),
                "confusion": self.confusion.compute().cpu(),
            }

    return Evaluator()


def evaluate(
    ckpt: str | Path, overrides: Sequence[str] = (), protocol: str = "center", *, write: bool = True
) -> dict[str, Any]:
    """Evaluate ``ckpt`` under ``protocol``; return the record written to ``eval-<protocol>.json``."""
    from platform.run import slurm
    from platform.run.compose import apply_flush_denormal, build_eval_trainer
    from platform.run.confusion import class_names, per_class_accuracy, write_confusion

    if protocol not in PROTOCOLS:
        raise EvalError(f"protocol={protocol}: unknown; expected one of {', '.join(PROTOCOLS)}")
    ckpt = Path(ckpt).expanduser()
    module, cfg, kind = load(ckpt, overrides)
    if slurm.in_srun_step():  # SIGUSR1 (--signal=USR1@90) only sets the stop flag, as in training
        stopping.install_signal_handler()
    cfg = slurm.apply_allocation(cfg)
    apply_flush_denormal(cfg)
    dm = eval_datamodule(cfg)
    crop, ratio = int(dm.val_resolution), float(dm.val_crop_ratio)
    decode = crop
    if protocol == "10crop":  # decode the centre square at crop / ratio, then crop on the device
        decode = int(round(crop / ratio))
        dm = eval_datamodule(cfg, val_resolution=decode, val_crop_ratio=1.0)
    num_classes = module.hparams.num_classes
    if dm.num_classes != num_classes:
        raise EvalError(
            f"ckpt={ckpt}: the model has {num_classes} classes, data={cfg.data.name} has "
            f"{dm.num_classes}; evaluate on the dataset it was trained for "
            "(data=..., data.path=...)"
        )
    out_dir = run_dir_of(ckpt) or ckpt.resolve().parent
    evaluator = _evaluator(module, num_classes, protocol, crop)
    trainer = build_eval_trainer(cfg, out_dir)
    started = time.time()
    trainer.validate(
        evaluator, datamodule=dm, verbose=False
    )  # inference_mode=True, Lightning's default
    r = evaluator.result
    expected = getattr(dm, "val_size", None)
    if expected is not None and r["n"] != expected:
        raise RuntimeError(f"evaluation saw {r['n']} examples, the validation set has {expected}")
    names = class_names(dm, num_classes)
    record = {
        "model": cfg.model.name,
        "checkpoint": str(ckpt.resolve()),
        "checkpoint_kind": kind,
        "data": {
            "name": cfg.data.name,
            "path": cfg.data.path,
            "split": "val",
            "val_file": str(getattr(dm, "val_path", "")) or None,
        },
        "protocol": protocol,
        "views": VIEWS[protocol],
        "resolution": crop,
        "crop_ratio": ratio,
        "decode_resolution": decode,
        "n": r["n"],
        "top1_err": round(100.0 - r["top1"], 6),
        "top5_err": round(100.0 - r["top5"], 6),
        "top1": round(r["top1"], 6),
        "top5": round(r["top5"], 6),
        "top5_k": min(5, num_classes),
        "per_class_top1": dict(zip(names, per_class_accuracy(r["confusion"]), strict=False)),
        "precision": cfg.trainer.precision,
        "world_size": trainer.world_size,
        "wall_time_s": round(time.time() - started, 2),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if write and trainer.is_global_zero:
        run = RunDir(out_dir)
        record["path"] = str(run.evaluation(protocol))
        write_confusion(
            out_dir, r["confusion"], names, stem=run.evaluation_confusion_stem(protocol)
        )
        write_json_atomic(run.evaluation(protocol), record)
    record["confusion"] = r["confusion"]
    return record


def summary_line(r: dict[str, Any]) -> str:
    res = str(r["resolution"])
    if r["decode_resolution"] != r["resolution"]:
        res += f" of {r['decode_resolution']}"
    line = (
        f"eval {r['protocol']}: {r['model']} on {r['data']['name']} val | n={r['n']} | top-1 err "
        f"{r['top1_err']:.2f}% | top-{r['top5_k']} err {r['top5_err']:.2f}% | res {res} | "
        f"{r.get('path', r['checkpoint'])}"
    )
    if r["protocol"] == "10crop" and r["decode_resolution"] == r["resolution"]:
        line += (
            " | note: at crop ratio 1 the five crops are the whole image, so 10crop equals flip "
            "(set data.val_crop_ratio below 1, e.g. 0.875, for distinct crops)"
        )
    return line


def parser() -> argparse.ArgumentParser:
    p = cli.command_parser("evaluate", __doc__)
    cli.add_checkpoint(
        p, help="the weights: a .ckpt of ours, a state_dict, a torchvision state_dict"
    )
    p.add_argument(
        "--protocol",
        default="center",
        help="center | flip | 10crop (default center; protocol=NAME is the same)",
    )
    return p


USER_ERRORS = (EvalError, ConfigError, DataError, BetonError, models.UnknownModelError)


@cli.entry(USER_ERRORS)
def main(argv: list[str]) -> int:
    argv = ["--help" if a == "help" else a for a in argv]
    args, overrides = cli.parse(parser(), argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    quiet_library_chatter()  # the filters train installs: no srun hint, no Lightning tips
    record = evaluate(args.checkpoint, overrides, args.protocol)
    if "path" in record:  # rank 0
        print(summary_line(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
