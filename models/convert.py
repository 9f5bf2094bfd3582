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
        raise ConversionError(f"{name} has no torchvision counterpart; torchvision weights cannot be "
                              "converted")
    with torch.device("meta"):
        ours = create_model(name, num_classes=num_classes).state_dict()
        tv_model = torchvision.models.get_model(info.torchvision, weights=None, num_classes=num_classes)
        theirs = tv_model.state_dict()
    mapper = KEY_MAPPERS.get(info.family)
    if mapper is not None:
        return {ok: (tk, tuple(ours[ok].shape)) for ok, tk in mapper(name, list(ours)).items()}
    if len(ours) != len(theirs):
        raise ConversionError(f"{name}: {len(ours)} tensors here, {len(theirs)} in torchvision's "
                              f"{info.torchvision}")
    table = {}
    for (ok, ov), (tk, tv) in zip(ours.items(), theirs.items()):
        if ok.rsplit(".", 1)[-1] != tk.rsplit(".", 1)[-1] or ov.shape != tv.shape:  # the orders drifted apart
            raise ConversionError(f"{name}: {ok} {tuple(ov.shape)} does not correspond to torchvision's "
                                  f"{tk} {tuple(tv.shape)}; register a KEY_MAPPERS table for {info.family}")
        table[ok] = (tk, tuple(ov.shape))
    return table


def name_map(name: str, num_classes: int = 1000) -> dict[str, str]:
    """``{our key: torchvision key}`` for ``name``; :class:`ConversionError` when it has no
    torchvision counterpart or the reference models do not correspond."""
    return {ok: tk for ok, (tk, _) in _table(name, num_classes).items()}


def from_torchvision(name: str, tv_state_dict: Mapping[str, torch.Tensor],
                     **knobs) -> "OrderedDict[str, torch.Tensor]":
    """Convert a torchvision ``state_dict`` of the same architecture into ``name``'s keys, by name.

    ``knobs``: only ``num_classes`` matters (default: the state_dict's head); the others do not
    change tensor names or shapes."""
    table = _table(name, int(knobs.get("num_classes") or head_classes(tv_state_dict)))
    known = {tk for tk, _ in table.values()}
    unknown = [k for k in tv_state_dict if k not in known]
    if unknown:
        raise ConversionError(f"{name}: the state_dict's {unknown[0]!r} is not a tensor name of "
                              f"torchvision's {model_info(name).torchvision} ({len(unknown)} such names); "
                              "not the same architecture")
    absent = [tk for tk, _ in table.values() if tk not in tv_state_dict]
    if absent:
        raise ConversionError(f"{name}: the state_dict lacks {absent[0]!r} ({len(absent)} tensors missing); "
                              "not the same architecture")
    out = OrderedDict()
    for ok, (tk, shape) in table.items():
        if tuple(tv_state_dict[tk].shape) != shape:
            raise ConversionError(f"{name}: {tk} has shape {tuple(tv_state_dict[tk].shape)}, our {ok} "
                                  f"expects {shape}")
        out[ok] = tv_state_dict[tk]
    return out


def looks_like_torchvision(name: str, state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True when ``state_dict`` has none of our keys but converts (used by ``model.init``)."""
    with torch.device("meta"):
        ours = create_model(name, num_classes=head_classes(state_dict)).state_dict()
    return not set(ours) & set(state_dict)
