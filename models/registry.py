"""Model registry: paper-named constructors with their reference numbers.

A model is registered once, under its entrypoint's function name, together with
the numbers its paper (or torchvision's checked metadata) gives for it. The
entrypoint only builds the spec; the registry guards it: a caller may change
the *free knobs* (num_classes, drop_path_rate, ...) but not a *defining field*
of the named architecture (groups, depth, ...), which raises instead of
silently building a different network (STYLE.md rule 4, torchvision's
`_ovewrite_named_param`).
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

# ---------------------------------------------------------------- reference metadata


# Knob sets the families share (their FREE_KNOBS are unions of these and their own knobs).
# Every net: the classifier (num_classes, dropout), the stem (in_chans) and BatchNorm's settings.
COMMON_KNOBS = frozenset({"num_classes", "in_chans", "dropout", "bn_eps", "bn_momentum"})
# Stochastic depth on a branch (models.layers.DropPath, drop_path_rates).
DROP_PATH_KNOBS = frozenset({"drop_path_rate", "drop_path_mode", "drop_path_rule"})
# A residual branch added to a shortcut: stochastic depth and zero-init of the branch's last BN.
RESIDUAL_BRANCH_KNOBS = DROP_PATH_KNOBS | {"zero_init_residual"}


@dataclass(frozen=True)
class MacsVariant:
    """Multiply-adds of a named model under non-default free knobs."""

    knobs: tuple[tuple[str, Any], ...]  # e.g. (("stride_on", "1x1"),)
    macs: float  # multiply-adds at ModelInfo.resolution
    source: str = ""


@dataclass(frozen=True)
class DefaultChange:
    """A knob whose default changed (issue 24: the default became the variant the paper's
    numbers were measured with). A checkpoint whose recorded knobs lack `knob` was saved
    before the change and is rebuilt with `old` (:func:`legacy_knobs`)."""

    knob: str
    old: Any  # the default before the change
    new: Any  # the default now
    why: str = ""


@dataclass(frozen=True)
class ModelInfo:
    """What the paper (and checked third-party metadata) says about a named model.

    Counts refer to the default knobs (num_classes = `num_classes`). MACs are
    multiply-adds (one FMA = 1), at `resolution` x `resolution`, batch 1.
    `paper_*` strings are copied as printed; `params`/`macs` are exact counts.
    """

    paper: str  # citation with arXiv id
    table: str  # where the architecture / numbers come from
    resolution: int  # input side the numbers refer to
    num_classes: int  # default head size
    params: int | None = None  # exact parameter count
    params_source: str = ""
    paper_params: str | None = None  # as printed, e.g. "0.27M"
    macs: float | None = None  # exact multiply-adds
    macs_source: str = ""
    paper_macs: str | None = None  # as printed, e.g. "3.8e9"
    macs_variants: tuple[MacsVariant, ...] = ()
    top1_err: float | None = None  # %
    top5_err: float | None = None  # %
    err_protocol: str = ""  # dataset, crops, table
    notes: str = ""
    family: str = ""  # the generic network that builds it: residual, densenet, mbconv, ...
    torchvision: str | None = None  # torchvision builder of the same architecture (weights convert)
    # knobs under which ours is torchvision's builder, where its default differs from ours
    # (resnet50: torchvision is "v1.5", stride on the 3x3; our default is the MSRA 1x1)
    torchvision_knobs: tuple[tuple[str, Any], ...] = ()
    min_input: int = 32  # smallest input side the network accepts (Inception stems need ~75+)
    # Fidelity (for the generated report): the released file the architecture follows, and
    # what still deviates from it ("" = nothing known).
    released: str = ""
    deviation: str = ""
    default_changes: tuple[DefaultChange, ...] = ()  # knobs whose default changed


# ---------------------------------------------------------------- errors


class UnknownModelError(KeyError):
    """Raised for a model name that is not registered; lists the closest names."""

    def __init__(self, name: str, suggestions: list[str]) -> None:
        self.name = name
        self.suggestions = suggestions
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            f"unknown model {name!r}.{hint} "
            "Call models.list_models() to see all registered models "
            "(or list_models('resnet*') to filter)."
        )

    def __str__(self) -> str:  # KeyError would print repr(message) with quotes
        return str(self.args[0])


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class _Entry:
    build: Callable[..., nn.Module]
    info: ModelInfo
    free_knobs: frozenset[str]
    defining_fields: frozenset[str]


_REGISTRY: dict[str, _Entry] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def _check_knobs(name: str, entry: _Entry, knobs: dict[str, Any]) -> None:
    allowed = ", ".join(sorted(entry.free_knobs))
    for key in knobs:
        if key in entry.free_knobs:
            continue
        if key in entry.defining_fields:
            raise ValueError(
                f"{name}: {key!r} is a defining field of this model "
                f"({entry.info.table}) and cannot be overridden. Free knobs: {allowed}. "
                "For a different architecture, register a new model name "
                "(or build the family class from its spec directly)."
            )
        close = difflib.get_close_matches(key, sorted(entry.free_knobs), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(f"{name}: unknown knob {key!r}.{hint} Allowed knobs: {allowed}.")


def register(
    name: str,
    fn: Callable[..., nn.Module],
    info: ModelInfo,
    *,
    free_knobs: Iterable[str],
    defining_fields: Iterable[str] = (),
) -> Callable[..., nn.Module]:
    """Register `fn` under `name` (a row of a family's zoo table) and return the guarded
    entrypoint: it rejects knobs outside `free_knobs` (with a dedicated message for
    `defining_fields`) and fills in `num_classes=info.num_classes` when not given, so
    calling it directly or through `create_model` behaves the same."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    free = frozenset(free_knobs)
    defining = frozenset(defining_fields) - free

    @functools.wraps(fn)
    def build(**knobs: Any) -> nn.Module:
        _check_knobs(name, _REGISTRY[name], knobs)
        knobs.setdefault("num_classes", info.num_classes)
        return fn(**knobs)

    _REGISTRY[name] = _Entry(build, info, free, defining)
    return build


@dataclass(frozen=True)
class Entry:
    """One row of a family's table of named models: the name, the function that builds the net
    from its knobs, and what the paper says; ``free_knobs`` where the row differs from its table."""

    name: str
    build: Callable[..., nn.Module]
    info: ModelInfo
    free_knobs: frozenset[str] | None = None


def register_table(
    rows: Iterable[Entry],
    *,
    free_knobs: Iterable[str] = (),
    defining_fields: Iterable[str] = (),
) -> dict[str, Callable[..., nn.Module]]:
    """The one way a family registers its named models (issue 29): a table of :class:`Entry` rows,
    registered in one call at the bottom of the family's module (the paper's models are data, as
    in timm's ``default_cfgs``); returns name -> guarded entrypoint (see :func:`register`)."""
    return {
        row.name: register(
            row.name,
            row.build,
            row.info,
            free_knobs=free_knobs if row.free_knobs is None else row.free_knobs,
            defining_fields=defining_fields,
        )
        for row in rows
    }


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.6)
        raise UnknownModelError(name, close) from None


def create_model(name: str, **knobs: Any) -> nn.Module:
    """Build a registered model; only its free knobs may be passed."""
    return _entry(name).build(**knobs)


def _natural_key(name: str) -> list[Any]:
    # resnet18 < resnet34 < resnet50 < resnet101 (digits compare as numbers)
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching an fnmatch pattern (e.g. 'resnet*'), naturally sorted."""
    return sorted(fnmatch.filter(_REGISTRY, pattern), key=_natural_key)


def entrypoint(name: str) -> Callable[..., nn.Module]:
    """The guarded entrypoint of a registered model (what `create_model(name, ...)` calls)."""
    return _entry(name).build


def model_info(name: str) -> ModelInfo:
    """Reference metadata of a registered model."""
    return _entry(name).info


def free_knobs(name: str) -> frozenset[str]:
    """Knobs that `create_model(name, **knobs)` accepts (for validating config overrides)."""
    return _entry(name).free_knobs


def explicit_knobs(name: str, knobs: dict[str, Any]) -> dict[str, Any]:
    """`knobs` with every knob whose default changed stated explicitly (its current default
    unless given), so that a checkpoint recording them rebuilds the same network whatever the
    defaults later become."""
    out = dict(knobs)
    for change in model_info(name).default_changes:
        out.setdefault(change.knob, change.new)
    return out


def legacy_knobs(name: str, knobs: dict[str, Any]) -> dict[str, Any]:
    """The knobs that rebuild a network recorded with `knobs` before its defaults changed: a
    changed knob the record does not state gets its old default (a record written by
    :func:`explicit_knobs` states them all, so it is returned unchanged)."""
    out = dict(knobs)
    for change in model_info(name).default_changes:
        out.setdefault(change.knob, change.old)
    return out
