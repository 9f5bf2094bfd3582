"""Bring torchvision weights into our models: ``from_torchvision(name, state_dict)``.

Our architectures are the same functions as torchvision's where both exist, and each family
registers its modules in torchvision's order, so tensors correspond one to one in
``state_dict`` order.  The converter pairs them by position and refuses any mismatch of
count or shape (naming the first offending pair); the tests then prove equal logits.  A
family whose order cannot follow torchvision's registers a key mapper instead.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Mapping

import torch

from .registry import create_model, model_info

# family -> fn(our_keys, tv_state_dict) -> OrderedDict in our key order
KEY_MAPPERS: dict[str, Callable[[list[str], Mapping[str, torch.Tensor]], "OrderedDict[str, torch.Tensor]"]] = {}


class ConversionError(ValueError):
    """A state_dict that does not fit the model (wrong architecture or head)."""


def head_classes(state_dict: Mapping[str, torch.Tensor]) -> int:
    """Number of classes of a classifier state_dict: rows of its last 2-D weight."""
    weights = [v for k, v in state_dict.items() if k.endswith("weight") and v.ndim == 2]
    if not weights:
        raise ConversionError("state_dict has no 2-D (linear) weight: not a classifier")
    return int(weights[-1].shape[0])


def _by_position(our_sd: Mapping[str, torch.Tensor], tv_sd: Mapping[str, torch.Tensor],
                 name: str) -> "OrderedDict[str, torch.Tensor]":
    ours, theirs = list(our_sd.items()), list(tv_sd.items())
    if len(ours) != len(theirs):
        raise ConversionError(f"{name}: our state_dict has {len(ours)} tensors, the given one {len(theirs)}; "
                              "not the same architecture")
    out = OrderedDict()
    for (ok, ov), (tk, tv) in zip(ours, theirs):
        if tuple(ov.shape) != tuple(tv.shape):
            raise ConversionError(f"{name}: {ok} {tuple(ov.shape)} does not match {tk} {tuple(tv.shape)}")
        out[ok] = tv
    return out


def from_torchvision(name: str, tv_state_dict: Mapping[str, torch.Tensor], **knobs) -> "OrderedDict[str, torch.Tensor]":
    """Convert a torchvision ``state_dict`` of the same architecture into ``name``'s keys."""
    info = model_info(name)
    knobs.setdefault("num_classes", head_classes(tv_state_dict))
    with torch.device("meta"):
        ours = create_model(name, **knobs).state_dict()
    mapper = KEY_MAPPERS.get(info.family)
    converted = mapper(list(ours), tv_state_dict) if mapper else _by_position(ours, tv_state_dict, name)
    missing = [k for k in ours if k not in converted]
    if missing:
        raise ConversionError(f"{name}: conversion left {len(missing)} tensors unset, e.g. {missing[:3]}")
    return converted


def looks_like_torchvision(name: str, state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True when ``state_dict`` has none of our keys but converts (used by ``model.init``)."""
    with torch.device("meta"):
        ours = create_model(name, num_classes=head_classes(state_dict)).state_dict()
    return not set(ours) & set(state_dict)


# ---------------------------------------------------------------------------- ours -> torchvision
def torchvision_builder(name: str) -> str:
    """torchvision's builder name for ``name`` (``ModelInfo.torchvision``), or a ConversionError."""
    tv = model_info(name).torchvision
    if not tv:
        from .registry import list_models

        have = [n for n in list_models() if model_info(n).torchvision]
        raise ConversionError(f"{name}: torchvision has no such architecture (it has: {', '.join(have)})")
    return tv


def to_torchvision(name: str, state_dict: Mapping[str, torch.Tensor],
                   **knobs) -> "OrderedDict[str, torch.Tensor]":
    """Our ``state_dict`` of ``name`` in torchvision's key layout (the inverse of :func:`from_torchvision`).

    The pairing is not written twice: the forward conversion is run on torchvision's own tensors
    (meta device) and inverted by tensor identity, so ours -> tv -> ours returns the same tensors
    whatever rule (by position, by name, a family's key mapper) the forward direction pairs by.
    """
    import torchvision

    knobs.setdefault("num_classes", head_classes(state_dict))
    with torch.device("meta"):
        tv_sd = torchvision.models.get_model(torchvision_builder(name), weights=None,
                                             num_classes=knobs["num_classes"]).state_dict()
        forward = from_torchvision(name, tv_sd, **knobs)  # our key -> torchvision's (meta) tensor
    tv_key = {id(v): k for k, v in tv_sd.items()}
    out: dict[str, torch.Tensor] = {}
    for ours, theirs in forward.items():
        if id(theirs) not in tv_key or ours not in state_dict:
            raise ConversionError(f"{name}: cannot invert the conversion at {ours}; "
                                  f"is the state_dict of {name}?")
        if tuple(state_dict[ours].shape) != tuple(theirs.shape):
            raise ConversionError(f"{name}: {ours} {tuple(state_dict[ours].shape)} does not match "
                                  "torchvision's "
                                  f"{tv_key[id(theirs)]} {tuple(theirs.shape)}")
        out[tv_key[id(theirs)]] = state_dict[ours]
    missing = [k for k in tv_sd if k not in out]
    if missing or len(forward) != len(state_dict):
        raise ConversionError(f"{name}: the state_dict does not map onto torchvision's "
                              f"{torchvision_builder(name)} (unset: {missing[:3]}, ours: {len(state_dict)} "
                              f"tensors, torchvision: {len(tv_sd)})")
    return OrderedDict((k, out[k]) for k in tv_sd)
