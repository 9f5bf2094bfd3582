"""Typed experiment configuration: a dataclass tree, ``key=value`` overrides and recipes.

One line on the command line -- ``python -m platform.train model=resnet56 optim.lr=0.2`` --
is the whole interface; W&B sweep agents (``${args_no_hyphens}``) and ``sbatch`` pass the
same form.  Rules:

* ``model=NAME`` / ``data=NAME`` select, like Hydra config groups: they set ``model.name``
  / ``data.name``.  ``model.KEY=VALUE`` sets a field inside the section.
* ``recipe=NAME`` applies ``platform/recipes/NAME.yaml`` (a nested mapping of the same
  keys) before the other overrides, whatever their order on the line; ``recipe=PATH.yaml``
  applies a user's own file, ``recipe=[a,b]`` several in order (a later one wins).
* ``config=runs/X/config.yaml`` starts from a saved run's resolved configuration; recipes and
  every other override on the line win over it.  Its ``run.name`` and ``resume`` are left out:
  re-running a saved configuration starts a new run unless the line says ``resume=``/``run.name=``.
* Unknown keys and badly typed values raise :class:`ConfigError` naming the key, the value,
  the expected type and the closest valid keys.

OmegaConf's structured configs do the type checking; the dataclasses are the schema and
their ``metadata["help"]`` is what ``--help`` prints.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from datamodules.options import BACKENDS, ORDERS, SAMPLERS, VAL_SPLITS
from platform.run.schema import (
    _SELECTING_SECTIONS,
    RECIPES_DIR,
    RESUME_MAY_CHANGE,
    ConfigError,
    ExperimentConfig,
    Rule,
    TrainerConfig,
    _closest,
    _type_name,
    all_keys,
    recipe_names,
)


# ---------------------------------------------------------------------------- --help
def help_text() -> str:
    lines = [
        "usage: python -m platform.train [key=value ...]",
        "",
        "Selections: model=NAME, data=NAME, recipe=NAME | recipe=PATH.yaml | recipe=[a,b] "
        "(applied first, "
        "in order),",
        "config=runs/X/config.yaml (a saved run's configuration; every other override wins).",
        "--print-config prints the resolved configuration and exits (writes nothing).",
        "",
    ]
    defaults = OmegaConf.to_container(OmegaConf.structured(ExperimentConfig))
    for key, f in all_keys().items():
        value = defaults
        for part in key.split("."):
            value = value[part]
        allowed = (
            f" [range {f.metadata['range']}]"
            if "range" in f.metadata
            else f" [{f.metadata['rule'].describe}]"
            if "rule" in f.metadata
            else ""
        )
        lines.append(
            f"  {key:32s} = {yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip():18s} "
            f"{f.metadata.get('help', '')}{allowed}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- parsing
def _split_packed(args: list[str]) -> list[str]:
    """``"model=resnet50 model.stride_on=1x1"`` (one argument) -> two overrides.

    A W&B grid sweep passes each parameter value as one ``key=value`` argument, so a table row
    that needs a model plus a knob travels as one value of the ``model`` parameter
    (``platform.papers.reproduce`` writes such sweeps).  Split only when every piece is itself
    ``known_key=value``: ``logging.tags=[a, b]`` stays one argument.
    """
    import re
    import shlex

    out = []
    for arg in args:
        pieces = shlex.split(arg) if " " in arg.strip() else [arg]
        out += (
            pieces
            if len(pieces) > 1 and all(re.match(r"\+?[A-Za-z_][\w.]*=", p) for p in pieces)
            else [arg]
        )
    return out


def parse_overrides(args: list[str]) -> list[tuple[str, str]]:
    """``["a.b=1", "model=x"]`` -> ``[("a.b", "1"), ("model.name", "x")]``, with key checks."""
    keys = all_keys()
    pairs = []
    for arg in _split_packed(args):
        if "=" not in arg:
            raise ConfigError(f"argument {arg!r} is not of the form key=value (try --help)")
        key, value = arg.split("=", 1)
        key = key.strip().lstrip("+")
        if key in _SELECTING_SECTIONS:
            key = f"{key}.name"
        if key not in keys:
            raise ConfigError(
                f"unknown config key {key!r}; closest valid keys: {_closest(key, list(keys))}"
            )
        pairs.append((key, value))
    return pairs


def recipe_path(name: str) -> Path:
    """A recipe name (``platform/recipes/NAME.yaml``) or a user's own ``PATH.yaml``."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"recipe={name}: no such file (a recipe is a name under {RECIPES_DIR} or a path "
                f"to your own YAML file of config keys)"
            )
        return path
    path = RECIPES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(
            str(p.relative_to(RECIPES_DIR).with_suffix("")) for p in RECIPES_DIR.rglob("*.yaml")
        )
        raise ConfigError(
            f"unknown recipe {name!r} (no file {path}); known recipes: "
            f"{', '.join(known) or 'none'} "
            f"(or give the path of your own file: recipe=PATH.yaml)"
        )
    return path


def _yaml_pairs(path: Path, what: str, recipe: bool = False) -> list[tuple[str, str]]:
    """A YAML mapping of config keys (nested or dotted) -> checked ``(key, raw value)`` pairs.

    A recipe's ``provenance:`` block (``platform/run/provenance.py``) is checked and left out: it
    documents the keys, it is not one."""
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} {path} is not valid YAML: {e}") from None
    if not isinstance(tree, dict):
        raise ConfigError(
            f"{what} {path} must hold a mapping of config keys, got {type(tree).__name__}"
        )
    if recipe:
        from platform.run.provenance import KEY, ProvenanceError, rows_of

        try:
            rows_of(tree, f"{what} {path}")
        except ProvenanceError as e:
            raise ConfigError(str(e)) from None
        tree = {k: v for k, v in tree.items() if k != KEY}

    def flatten(d: dict, prefix: str = "") -> list[tuple[str, str]]:
        out = []
        for k, v in d.items():
            if isinstance(v, dict):
                out += flatten(v, f"{prefix}{k}.")
            else:
                out.append(
                    (
                        f"{prefix}{k}",
                        yaml.safe_dump(v, default_flow_style=True)
                        .strip()
                        .removesuffix("...")
                        .strip(),
                    )
                )
        return out

    try:
        return parse_overrides([f"{k}={v}" for k, v in flatten(tree)])
    except ConfigError as e:
        raise ConfigError(f"in {what} {path}: {e}") from None


def _recipe_pairs(name: str) -> list[tuple[str, str]]:
    return [
        pair
        for one in recipe_names(name)
        for pair in _yaml_pairs(recipe_path(one), "recipe file", recipe=True)
    ]


# the keys that name a run rather than describe the experiment: ``config=`` leaves them out
_RUN_IDENTITY = ("run.name", "resume")


def load_config(
    args: list[str] | None = None, base: ExperimentConfig | None = None
) -> ExperimentConfig:
    """Defaults (or ``base``, e.g. a run's saved config) <- ``config=`` file <- recipe(s) <- command-line
    overrides, type-checked, then validated.

    ``config=runs/X/config.yaml`` starts from a saved (resolved) configuration: its recipe is
    already in its values and is not applied again; a ``recipe=`` on the command line is.
    """
    args = list(args or [])
    saved = [a.split("=", 1)[1] for a in args if a.startswith("config=")]
    pairs = parse_overrides([a for a in args if not a.startswith("config=")])
    recipe = [v for k, v in pairs if k == "recipe"]
    if recipe:
        error = check_key("recipe", recipe[-1].strip())  # before it names a file to read
        if error:
            raise ConfigError(error)
        pairs = _recipe_pairs(recipe[-1].strip()) + pairs
    if saved:  # a re-run is a new run: the file's run.name and resume apply only when restated
        kept = _yaml_pairs(Path(saved[-1]).expanduser(), "config file")
        pairs = [(k, v) for k, v in kept if k not in _RUN_IDENTITY] + pairs
    cfg = OmegaConf.structured(base if base is not None else ExperimentConfig)
    keys = all_keys()
    for key, raw in pairs:
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        if (
            isinstance(value, (int, float)) and str(keys[key].type) in ("str", "Optional[str]")
        ) or key == "recipe":
            value = (
                raw if value is not None else None
            )  # model=resnet56 stays a string; so do run.name=2024, recipe=[a,b]
        try:
            OmegaConf.update(cfg, key, value, merge=False)
        except OmegaConfBaseException:
            raise ConfigError(
                f"bad value for {key}: {raw!r} is not a valid {_type_name(keys[key])}"
            ) from None
    obj: ExperimentConfig = OmegaConf.to_object(cfg)
    validate(obj)
    return obj


# the data section's choices (its keys are the datamodules' to declare); every other key's choices
# are on its field (``choices=``), see :func:`choices`
_CHOICES = {
    "data.sampler": SAMPLERS,
    "data.backend": BACKENDS,
    "data.order": ORDERS,
    "data.val_split": VAL_SPLITS,
}


def choices() -> dict[str, tuple]:
    """Every key with named choices -> its allowed values (None: null is allowed)."""
    declared = {k: f.metadata["choices"] for k, f in all_keys().items() if "choices" in f.metadata}
    return {**declared, **_CHOICES}


def _floats(f: dataclasses.Field) -> bool:
    return "float" in str(f.type)


def check_key(key: str, value: Any, f: dataclasses.Field | None = None) -> str | None:
    """The error for ``key=value`` against the key's declared rule, or None when it is allowed."""
    f = f or all_keys()[key]
    items = value if isinstance(value, (list, tuple)) else [value]
    if "rule" in f.metadata:
        rule: Rule = f.metadata["rule"]
        return (
            None if rule.ok(value) else f"bad value for {key}: {value!r}; expected {rule.describe}"
        )
    for v in items:
        if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if _floats(f) and not math.isfinite(v):
            return f"bad value for {key}: {v!r}; expected a finite number" + (
                f" in {f.metadata['range']}" if "range" in f.metadata else ""
            )
        if "range" in f.metadata and v not in f.metadata["range"]:
            kind = "a number" if _floats(f) else "an integer"
            return f"bad value for {key}: {v!r}; expected {kind} in {f.metadata['range']}"
    return None


def _get(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


PRECISION_ALIASES = {
    "32": "32-true",
    "bf16": "bf16-mixed",
    "16": "16-mixed",
}  # Lightning's short names


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_batches(key: str, v: Any, allow_bool: bool = False) -> None:
    """Lightning's convention: an int counts batches, a float in (0, 1] is a fraction."""
    ok = (
        v is None
        or (_is_int(v) and v >= 0)
        or (isinstance(v, float) and 0.0 <= v <= 1.0)
        or (allow_bool and isinstance(v, bool))
    )
    if not ok:
        raise ConfigError(
            f"bad value for {key}: {v!r}; expected an integer number of batches (1 = one batch) "
            f"or a fraction 0.0 < x <= 1.0 (1.0 = all)" + (" or true/false" if allow_bool else "")
        )


def validate_trainer(t: TrainerConfig) -> None:
    """Trainer knobs Lightning would otherwise reject with a traceback after the run directory exists."""
    t.precision = PRECISION_ALIASES.get(str(t.precision), t.precision)
    # trainer.devices: its schema Rule (schema.DEVICES), checked with every key by validate()
    _check_batches("trainer.limit_train_batches", t.limit_train_batches)
    _check_batches("trainer.limit_val_batches", t.limit_val_batches)
    _check_batches("trainer.overfit_batches", t.overfit_batches)
    if not (isinstance(t.fast_dev_run, bool) or (_is_int(t.fast_dev_run) and t.fast_dev_run >= 0)):
        raise ConfigError(
            f"bad value for trainer.fast_dev_run: {t.fast_dev_run!r}; expected true/false or a "
            f"number of batches"
        )


def validate(cfg: ExperimentConfig) -> None:
    """Every key against its declared range/rule (see ``_f``), then the rules that span keys."""
    for key, f in all_keys().items():
        error = check_key(key, _get(cfg, key), f)
        if error:
            raise ConfigError(error)
    validate_trainer(
        cfg.trainer
    )  # the Any-typed knobs; precision aliases normalised before the choices
    for key, allowed in choices().items():
        value = _get(cfg, key)
        if value not in allowed:
            raise ConfigError(
                f"bad value for {key}: {value!r}; expected one of {', '.join(map(str, allowed))}"
            )
    if (cfg.data.min_resolution is None) != (cfg.data.max_resolution is None):
        raise ConfigError(
            "progressive resizing needs both data.min_resolution and data.max_resolution "
            f"(got {cfg.data.min_resolution} and {cfg.data.max_resolution})"
        )
    cache = Path(cfg.data.cache_dir).expanduser()
    existing = next((p for p in (cache, *cache.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(
            f"bad value for data.cache_dir: {cfg.data.cache_dir!r}; {existing} is a file, "
            "expected a directory (or a path that can be created as one)"
        )


def flat_dict(cfg: ExperimentConfig | dict) -> dict[str, Any]:
    """``{"optim.lr": 0.1, ...}``: every leaf of a config (or of its dict form) by dotted key."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v

    walk(cfg if isinstance(cfg, dict) else to_dict(cfg), "")
    return out


def resume_differences(
    saved: ExperimentConfig, new: ExperimentConfig
) -> list[tuple[str, Any, Any]]:
    """(key, saved value, new value) for every key that differs and may not change on resume."""
    a, b = flat_dict(saved), flat_dict(new)
    allowed = lambda k: any(
        k == p or (p.endswith(".*") and k.startswith(p[:-1])) for p in RESUME_MAY_CHANGE
    )  # noqa: E731
    return [
        (k, a.get(k), b.get(k))
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k) and not allowed(k)
    ]


def effective_batch_size(cfg: ExperimentConfig) -> int:
    """Images per optimizer step, computed here only: the global batch (``data.batch_size``, over
    every device) times ``trainer.accumulate_grad_batches``; the linear LR-scaling rule (Goyal et al.
    2017, §2.1) scales ``optim.lr`` by it over ``optim.reference_batch_size``."""
    return cfg.data.batch_size * cfg.trainer.accumulate_grad_batches


def to_dict(cfg: ExperimentConfig) -> dict:
    return dataclasses.asdict(cfg)


def to_yaml(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def from_dict(d: dict) -> ExperimentConfig:
    """Rebuild a saved config (e.g. from a run directory's config.yaml)."""
    cfg = OmegaConf.merge(OmegaConf.structured(ExperimentConfig), d)
    return OmegaConf.to_object(cfg)
