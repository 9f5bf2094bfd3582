"""``model.init=PATH``: start a model from a checkpoint file (transfer learning).

Accepted files, detected automatically:
* a Lightning checkpoint of ours (``runs/*/checkpoints/*.ckpt``: ``state_dict`` with ``model.`` keys),
* a plain ``state_dict`` of our model (``torch.save(model.state_dict(), path)``),
* a torchvision ``state_dict`` of the same architecture (converted by ``models.convert``).
A checkpoint with a digest file (``<file>.sha256.json``, written beside every checkpoint of ours)
is verified against it first; every file is read with ``torch.load(weights_only=True)``.
When the checkpoint's classifier has another number of classes than the dataset, the head is
left freshly initialised -- and the log says so.  Any other mismatch is an error.
"""

from __future__ import annotations

import importlib
import logging
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from models.convert import ConversionError, from_torchvision, head_classes, looks_like_torchvision
from platform.run.schema import ConfigError

log = logging.getLogger("platform.init")  # the name runs have always logged under


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _pickled_class(error: Exception) -> str | None:
    """The class a weights-only load refused (``GLOBAL models.resnet.ResidualNet``), if an nn.Module."""
    match = re.search(r"GLOBAL ([\w.]+)", str(error))
    if not match or not match.group(1).startswith(("models.", "torch.", "torchvision.")):
        return None
    module, _, attr = match.group(1).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None
    return match.group(1) if isinstance(cls, type) and issubclass(cls, nn.Module) else None


def read_checkpoint(path: str | Path, option: str = "model.init", accepted: str = "") -> Any:
    """The one reader of weights files (``model.init``, evaluate, predict, export, lesion,
    reproduce): the file must exist, match its digest file (``<file>.sha256.json``) where one
    exists, and load with ``torch.load(weights_only=True)``.  Anything else is a one-line
    :class:`ConfigError` naming ``option=path``, the whole reason, and what to give instead."""
    path = Path(path).expanduser()
    accepted = accepted or "give a .ckpt of ours or a saved state_dict"
    if not path.is_file():
        raise ConfigError(f"{option}={path}: no such file ({accepted})")
    from platform.run.rundir import CheckpointError, digest_path, verify_checkpoint

    if digest_path(path).is_file():  # a checkpoint of ours: its SHA-256 must match before use
        try:
            verify_checkpoint(path)
        except CheckpointError as e:
            raise ConfigError(
                f"{option}={path}: {_one_line(e)}; use another checkpoint (e.g. the run's "
                "best-epoch*.ckpt) or retrain"
            ) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)  # never runs pickled code
    except Exception as e:  # noqa: BLE001 -- pickles of arbitrary objects, truncated files, not torch
        cls = _pickled_class(e)
        if cls:
            raise ConfigError(
                f"{option}={path}: holds a pickled {cls} (a whole nn.Module), not weights; save "
                "`model.state_dict()` instead: torch.save(model.state_dict(), PATH)"
            ) from None
        raise ConfigError(
            f"{option}={path}: not a readable checkpoint, refused ({type(e).__name__}: "
            f"{_one_line(e) or 'no details'}); {accepted}"
        ) from None


def _read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    obj = read_checkpoint(path)
    if isinstance(obj, Mapping) and "state_dict" in obj:  # Lightning checkpoint
        sd = {k[len("model.") :]: v for k, v in obj["state_dict"].items() if k.startswith("model.")}
        return sd, "checkpoint of ours"
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj), "state_dict"
    raise ConfigError(f"model.init={path}: holds neither a Lightning checkpoint nor a state_dict")


def torchvision_mismatch(model_name: str, knobs: Mapping[str, Any]) -> str | None:
    """Why torchvision's weights do not fit ``model_name`` built with ``knobs`` (None: they do).

    torchvision's builder equals ours only under ``model_info(name).torchvision_knobs`` (resnet50:
    stride on the 3x3; EfficientNet-B0..B4, MobileNet v2: PyTorch's BN eps/momentum); another
    variant has the same tensor shapes, so its weights would load silently into a different net."""
    from models import explicit_knobs, model_info

    knobs = explicit_knobs(model_name, dict(knobs))
    wrong = [
        (k, v) for k, v in model_info(model_name).torchvision_knobs if k in knobs and knobs[k] != v
    ]
    if not wrong:
        return None
    want = " ".join(f"model.{k}={v}" for k, v in wrong)
    have = " ".join(f"model.{k}={knobs[k]}" for k, _ in wrong)
    return (
        f"torchvision's {model_name} weights are for its variant {want}, but this model is built "
        f"with {have} (same shapes, different network); set {want}"
    )


def load_initial_weights(
    model: nn.Module, model_name: str, path: str | Path, knobs: Mapping[str, Any] | None = None
) -> str:
    """Load ``path`` into ``model`` (in place); return a one-line description of what was done.

    ``knobs``: the model's knobs; torchvision weights are refused unless they are the model's
    ``torchvision_knobs`` (:func:`torchvision_mismatch`)."""
    path = Path(path).expanduser()
    sd, kind = _read_state_dict(path)
    try:
        if kind == "state_dict" and looks_like_torchvision(model_name, sd):
            if knobs is not None and (mismatch := torchvision_mismatch(model_name, knobs)):
                raise ConfigError(f"model.init={path}: {mismatch}")
            sd, kind = from_torchvision(model_name, sd), "torchvision state_dict"
    except ConversionError as e:
        raise ConfigError(f"model.init={path}: {e}") from None
    ours = model.state_dict()
    mismatched = [k for k in sd if k in ours and sd[k].shape != ours[k].shape]
    head = _head_keys(model)
    if set(mismatched) - head:
        k = sorted(set(mismatched) - head)[0]
        raise ConfigError(
            f"model.init={path}: {k} has shape {tuple(sd[k].shape)}, {model_name} expects "
            f"{tuple(ours[k].shape)}; is it a checkpoint of another architecture?"
        )
    unexpected = sorted(set(sd) - set(ours))
    missing = sorted(set(ours) - set(sd) - head)
    if unexpected or missing:
        raise ConfigError(
            f"model.init={path}: does not fit {model_name} "
            f"(unexpected keys {unexpected[:3]}, missing keys {missing[:3]})"
        )
    layout = "torchvision layout, converted to ours" if "torchvision" in kind else "our layout"
    message = (
        f"model.init: initialised {model_name} from {kind} {path} ({layout}, {len(sd)} tensors)"
    )
    if not mismatched:
        message += f"; classifier head kept ({head_classes(ours)} classes)"
    if mismatched:
        message += (
            f"; replaced the classifier head: {head_classes(sd)} classes in the checkpoint, "
            f"{head_classes(ours)} here (the new head is freshly initialised)"
        )
        for k in mismatched:
            del sd[k]
    model.load_state_dict(sd, strict=not mismatched)
    log.info(message)
    return message


def _head_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the last Linear layer (the classifier head)."""
    name = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    return {f"{name}.weight", f"{name}.bias"}
