"""Bring torchvision weights into our models: ``from_torchvision(name, state_dict)``.

Tensors are paired **by name**, through a name table ``ours -> torchvision`` (:func:`name_map`).
The table is derived from two freshly built reference models -- ours and torchvision's of the
same architecture, on the meta device -- whose modules are registered in the same order (each
family follows torchvision's), and every pair in it must agree in its leaf name (``weight``,
``bias``, ``running_mean`` ...) and shape; the equal-logits tests in ``tests/test_zoo.py`` prove
the table.  A given state_dict is then looked up by its names only, so its order does not matter:
a name the table does not know, or a name it lacks, is refused naming the first such name, and a
shape that differs is refused naming the pair.  A family whose registration order cannot follow
torchvision's registers its own table in :data:`KEY_MAPPERS`.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Callable, Mapping

import torch

from .registry import create_model, model_info

# family -> fn(model name, our keys) -> {our key: torchvision key}, replacing the derived table
KEY_MAPPERS: dict[str, Callable[[str, list[str]], dict[str, str]]] = {}


class ConversionError(ValueError):
    """A state_dict that does not fit the model (wrong architecture or head)."""


def head_classes(state_dict: Mapping[str, torch.Tensor]) -> int:
    """Number of classes of a classifier state_dict: rows of its last 2-D weight."""
    weights = [v for k, v in state_dict.items() if k.endswith("weight") and v.ndim == 2]
    if not weights:
        raise ConversionError("state_dict has no 2-D (linear) weight: not a classifier")
    return int(weights[-1].shape[0])


@functools.lru_cache(maxsize=32)
def _table(name: str, num_classes: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{our key: (torchvision key, shape)}`` from the two reference models (module docstring)."""
    import torchvision

    info = model_info(name)
    if not info.torchvision:
        raise ConversionError(
            f"{name} has no torchvision counterpart; torchvision weights cannot be converted"
        )
    with torch.device("meta"):
        ours = create_model(name, num_classes=num_classes).state_dict()
        tv_model = torchvision.models.get_model(
            info.torchvision, weights=None, num_classes=num_classes
        )
        theirs = tv_model.state_dict()
    mapper = KEY_MAPPERS.get(info.family)
    if mapper is not None:
        return {ok: (tk, tuple(ours[ok].shape)) for ok, tk in mapper(name, list(ours)).items()}
    if len(ours) != len(theirs):
        raise ConversionError(
            f"{name}: {len(ours)} tensors here, {len(theirs)} in torchvision's {info.torchvision}"
        )
    table = {}
    for (ok, ov), (tk, tv) in zip(ours.items(), theirs.items(), strict=False):
        if (
            ok.rsplit(".", 1)[-1] != tk.rsplit(".", 1)[-1] or ov.shape != tv.shape
        ):  # the orders drifted apart
            raise ConversionError(
                f"{name}: {ok} {tuple(ov.shape)} does not correspond to torchvision's "
                f"{tk} {tuple(tv.shape)}; register a KEY_MAPPERS table for {info.family}"
            )
        table[ok] = (tk, tuple(ov.shape))
    return table


def name_map(name: str, num_classes: int = 1000) -> dict[str, str]:
    """``{our key: torchvision key}`` for ``name``; :class:`ConversionError` when it has no
    torchvision counterpart or the reference models do not correspond."""
    return {ok: tk for ok, (tk, _) in _table(name, num_classes).items()}


def from_torchvision(
    name: str, tv_state_dict: Mapping[str, torch.Tensor], **knobs
) -> "OrderedDict[str, torch.Tensor]":
    """Convert a torchvision ``state_dict`` of the same architecture into ``name``'s keys, by name.

    ``knobs``: only ``num_classes`` matters (default: the state_dict's head); the others do not
    change tensor names or shapes."""
    table = _table(name, int(knobs.get("num_classes") or head_classes(tv_state_dict)))
    known = {tk for tk, _ in table.values()}
    unknown = [k for k in tv_state_dict if k not in known]
    if unknown:
        raise ConversionError(
            f"{name}: the state_dict's {unknown[0]!r} is not a tensor name of "
            f"torchvision's {model_info(name).torchvision} ({len(unknown)} such names); "
            "not the same architecture"
        )
    absent = [tk for tk, _ in table.values() if tk not in tv_state_dict]
    if absent:
        raise ConversionError(
            f"{name}: the state_dict lacks {absent[0]!r} ({len(absent)} tensors missing); "
            "not the same architecture"
        )
    out = OrderedDict()
    for ok, (tk, shape) in table.items():
        if tuple(tv_state_dict[tk].shape) != shape:
            raise ConversionError(
                f"{name}: {tk} has shape {tuple(tv_state_dict[tk].shape)}, our {ok} expects {shape}"
            )
        out[ok] = tv_state_dict[tk]
    return out


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
        raise ConversionError(
            f"{name}: torchvision has no such architecture (it has: {', '.join(have)})"
        )
    return tv


def to_torchvision(
    name: str, state_dict: Mapping[str, torch.Tensor], **knobs
) -> "OrderedDict[str, torch.Tensor]":
    """Our ``state_dict`` of ``name`` in torchvision's key layout (the inverse of :func:`from_torchvision`).

    The pairing is not written twice: the forward conversion is run on torchvision's own tensors
    (meta device) and inverted by tensor identity, so ours -> tv -> ours returns the same tensors
    whatever rule (by position, by name, a family's key mapper) the forward direction pairs by.
    """
    import torchvision

    knobs.setdefault("num_classes", head_classes(state_dict))
    with torch.device("meta"):
        tv_sd = torchvision.models.get_model(
            torchvision_builder(name), weights=None, num_classes=knobs["num_classes"]
        ).state_dict()
        forward = from_torchvision(name, tv_sd, **knobs)  # our key -> torchvision's (meta) tensor
    tv_key = {id(v): k for k, v in tv_sd.items()}
    out: dict[str, torch.Tensor] = {}
    for ours, theirs in forward.items():
        if id(theirs) not in tv_key or ours not in state_dict:
            raise ConversionError(
                f"{name}: cannot invert the conversion at {ours}; is the state_dict of {name}?"
            )
        if tuple(state_dict[ours].shape) != tuple(theirs.shape):
            raise ConversionError(
                f"{name}: {ours} {tuple(state_dict[ours].shape)} does not match "
                "torchvision's "
                f"{tv_key[id(theirs)]} {tuple(theirs.shape)}"
            )
        out[tv_key[id(theirs)]] = state_dict[ours]
    missing = [k for k in tv_sd if k not in out]
    if missing or len(forward) != len(state_dict):
        raise ConversionError(
            f"{name}: the state_dict does not map onto torchvision's "
            f"{torchvision_builder(name)} (unset: {missing[:3]}, ours: {len(state_dict)} "
            f"tensors, torchvision: {len(tv_sd)})"
        )
    return OrderedDict((k, out[k]) for k in tv_sd)
