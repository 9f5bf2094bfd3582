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
  every other override on the line win over it.
* Unknown keys and badly typed values raise :class:`ConfigError` naming the key, the value,
  the expected type and the closest valid keys.

OmegaConf's structured configs do the type checking; the dataclasses are the schema and
their ``metadata["help"]`` is what ``--help`` prints.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from datamodules.options import CACHE_DIR

RECIPES_DIR = Path(__file__).parent / "recipes"


class ConfigError(ValueError):
    """A configuration problem a user can fix; ``platform.train`` prints it without a traceback."""


# ---------------------------------------------------------------------------- value rules
# Each key's allowed values are declared ONCE, next to its help text: ``range="[0, 1)"`` (an
# interval in the usual notation, ``inf`` for no bound) or ``rule=`` one of the rules below.
# ``--help`` prints them and :func:`validate` checks them (``check_key``); the tests generate
# their valid/invalid tables from the same declarations.  Every float value, whether declared
# or not, must be finite (``nan``, ``.inf`` and overflowing literals such as ``1e999`` are refused).
_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+")


@dataclass(frozen=True)
class Interval:
    """``[lo, hi)``-style bounds; ``closed`` says which ends belong to the interval."""

    lo: float
    hi: float
    lo_closed: bool
    hi_closed: bool

    @classmethod
    def parse(cls, text: str) -> "Interval":
        t = text.replace(" ", "")
        if t[0] not in "[(" or t[-1] not in "])" or t.count(",") != 1:
            raise ValueError(f"bad interval {text!r}")
        lo, hi = t[1:-1].split(",")
        return cls(float(lo), float(hi), t[0] == "[", t[-1] == "]")

    def __contains__(self, v: float) -> bool:
        return ((self.lo <= v if self.lo_closed else self.lo < v)
                and (v <= self.hi if self.hi_closed else v < self.hi))

    def __str__(self) -> str:
        num = lambda x: "inf" if math.isinf(x) else f"{x:g}"  # noqa: E731
        return f"{'[' if self.lo_closed else '('}{num(self.lo)}, {num(self.hi)}{']' if self.hi_closed else ')'}"


@dataclass(frozen=True)
class Rule:
    """A non-numeric value rule: ``ok(value)`` and the sentence ``--help`` and errors show."""

    describe: str
    ok: Any


def _is_component(v: Any) -> bool:
    return isinstance(v, str) and v not in ("", ".", "..") and set(v) <= _PATH_CHARS


PATH_COMPONENT = Rule("one path component: letters, digits and -_.+ only, not '.' or '..'",
                      lambda v: v is None or _is_component(v))
RELATIVE_NAME = Rule("a relative name whose /-separated parts are each letters, digits and -_.+ "
                     "(not '.' or '..')", lambda v: v is None or (isinstance(v, str)
                                                                  and all(map(_is_component, v.split("/")))))
DEVICES = Rule("'auto', a positive integer, -1 (all devices), or a list of distinct device ids like [0,1]",
               lambda v: v == "auto" or (type(v) is int and (v >= 1 or v == -1))
               or (isinstance(v, list) and len(v) > 0 and len(set(v)) == len(v)
                   and all(type(i) is int and i >= 0 for i in v)))
# recipe=NAME (platform/recipes/NAME.yaml: a relative name, never a path out of it) or a user's own
# PATH.yaml, one or several ("[a,b]"): only the names are joined to the recipes directory.
RECIPE = Rule("recipe names, each a relative name whose /-separated parts are letters, digits and -_.+ "
              "(not '.' or '..') under platform/recipes/, or the path of your own .yaml file",
              lambda v: v is None or (isinstance(v, str) and all(
                  n.endswith((".yaml", ".yml")) or RELATIVE_NAME.ok(n) for n in recipe_names(v))))


# The named choices of a key, declared once here and on its field (``choices=``); :func:`validate`
# checks them (after the precision aliases are normalised) and the code that acts on a value imports
# the same tuple (``module.build_optimizer``, ``schedules.lr_at``).  None in a tuple: null is allowed.
OPTIMIZERS = ("sgd", "adamw", "rmsprop")
SCHEDULES = ("cosine", "step", "exponential", "linear", "constant")
WARMUPS = ("linear", "error_threshold")
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
PROFILERS = (None, "simple", "advanced", "pytorch")
WANDB_MODES = ("auto", "online", "offline", "disabled")
STRIDE_ON = (None, "3x3", "1x1")
DROP_PATH_MODES = (None, "sample", "batch")
DROP_PATH_RULES = (None, "huang", "timm", "tf")
SHORTCUT_DOWNSAMPLES = (None, "stride", "avgpool")


def _f(default: Any, help: str, *, range: str | None = None, rule: Rule | None = None,
       choices: tuple | None = None, **kw: Any) -> Any:
    meta: dict[str, Any] = {"help": help}
    if choices is not None:
        meta["choices"] = choices
    if range is not None:
        meta["range"] = Interval.parse(range)
    if rule is not None:
        meta["rule"] = rule
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


# ---------------------------------------------------------------------------- sections
@dataclass
class ModelConfig:
    name: str = _f("resnet20", "registry name (python -c 'import models; print(models.list_models())')", rule=PATH_COMPONENT)
    num_classes: Optional[int] = _f(None, "classifier outputs; null = the dataset's number of classes", range="[2, inf)")
    drop_path_rate: Optional[float] = _f(None, "stochastic depth: drop-path rate of the last block (Huang et al. 2016); null = the model's default", range="[0, 1)")
    drop_path_mode: Optional[str] = _f(None, "stochastic depth: sample (per-sample drop-path, timm/EfficientNet) | batch (whole blocks per step, branch not run: Huang et al.); null = the model's default (ResNets batch, others sample)",
       choices=DROP_PATH_MODES)
    drop_path_rule: Optional[str] = _f(None, "per-block rates: huang (l/L) | timm (i/(N-1)) | tf (i/N), see models.layers.drop_path_rates; null = the model's default (ResNets huang, EfficientNet tf)",
       choices=DROP_PATH_RULES)
    shortcut_downsample: Optional[str] = _f(None, "option-A shortcuts of CIFAR ResNets: stride (He et al.) | avgpool (2x2 average, Huang et al.'s stochastic-depth code); null = stride",
       choices=SHORTCUT_DOWNSAMPLES)
    zero_init_residual: Optional[bool] = _f(None, "zero-init the last BN gamma of each residual block (Goyal et al. 2017); null = the model's default (off)")
    dropout: Optional[float] = _f(None, "dropout before the classifier; null = the model's default (EfficientNet: 0.2-0.5)", range="[0, 1)")
    stride_on: Optional[str] = _f(None, "bottleneck stride placement '3x3' (v1.5) or '1x1' (MSRA); null = model default",
       choices=STRIDE_ON)
    block_dropout: Optional[float] = _f(None, "WRN dropout between the convs of a block (Zagoruyko & Komodakis: 0.3); null = model default", range="[0, 1)")
    se_reduction: Optional[int] = _f(None, "SE reduction ratio r on SE models (Hu et al.: 16); null = model default", range="[1, inf)")
    bn_eps: Optional[float] = _f(None, "BatchNorm epsilon (TF-style EfficientNet training: 1e-3); null = the model's default", range="(0, inf)")
    bn_momentum: Optional[float] = _f(None, "BatchNorm momentum, PyTorch convention: weight of the new batch statistic (TF decay 0.99 = 0.01); null = the model's default", range="[0, 1]")
    init: Optional[str] = _f(None, "initial weights: a .ckpt of ours or a saved (ours or torchvision) state_dict")


@dataclass
class DataConfig:
    name: str = _f("digits", "dataset: digits (embedded), fashion_mnist (Debian's dataset-fashion-mnist), imagenet, cifar10, cifar100, beton (any .beton pair), synthetic", rule=PATH_COMPONENT)
    path: Optional[str] = _f(None, "data=beton|imagenet: directory holding train.beton/val.beton (backend=torchvision: the ImageFolder root); fashion_mnist: the four IDX files (default: Debian's)")
    backend: str = _f("ffcv", "ffcv (.beton, fast) | torchvision (ImageFolder fallback, where FFCV is absent)")
    cache_dir: str = _f(CACHE_DIR, "where embedded datasets are written once as .beton")
    batch_size: int = _f(64, "global batch size (split evenly across DDP ranks)", range="[1, inf)")
    num_workers: int = _f(2, "FFCV decoding threads (0: FFCV uses every core)", range="[0, inf)")
    resolution: Optional[int] = _f(None, "training crop side; null = the dataset's default", range="[1, inf)")
    val_resolution: Optional[int] = _f(None, "validation crop side; null = the dataset's default", range="[1, inf)")
    min_resolution: Optional[int] = _f(None, "progressive resizing (ffcv-imagenet): training side until ramp_start; null = off", range="[1, inf)")
    max_resolution: Optional[int] = _f(None, "progressive resizing: training side from ramp_end on", range="[1, inf)")
    ramp_start: int = _f(0, "progressive resizing: first epoch of the linear ramp", range="[0, inf)")
    ramp_end: int = _f(0, "progressive resizing: epoch at which max_resolution is reached (multiples of 32 between)", range="[0, inf)")
    batches_ahead: int = _f(3, "FFCV: batches prepared ahead of the GPU", range="[1, inf)")
    val_crop_ratio: Optional[float] = _f(None, "validation centre-crop ratio (224/256 for ImageNet); null = dataset default; >= 1/8 so that every image datamodules.write keeps (sides >= 8 px) gives a non-empty crop", range="[0.125, 1]")
    os_cache: bool = _f(True, "FFCV os_cache: page-cache the whole file (set false when it does not fit in RAM)")
    order: str = _f("auto", "FFCV order: auto|random|quasi_random (auto: random when distributed or cached)")
    split_seed: int = _f(0, "seed of the train/val split of embedded datasets", range="[0, 4294967295]")
    val_fraction: float = _f(0.2, "held-out fraction for datasets without a validation split (and for val_split=holdout)", range="[0, 1)")
    val_split: str = _f("test", "fashion_mnist: validate on the official test split (test) or a stratified val_fraction of train (holdout, test untouched)")
    train_subset: Optional[int] = _f(None, "fashion_mnist: train on a stratified subset of this many images (CPU budgets); null = all", range="[1, inf)")
    val_subset: Optional[int] = _f(None, "fashion_mnist: validate on a stratified subset of this many images; null = all", range="[1, inf)")
    sampler: str = _f("random", "training order: random | class_aware (label-balanced, Shen et al. 2016)")
    epoch_samples: Optional[int] = _f(None, "class_aware: draws per epoch; null = the training set size", range="[1, inf)")
    synthetic_size: int = _f(512, "number of training examples for data=synthetic", range="[1, inf)")
    synthetic_classes: int = _f(10, "number of classes for data=synthetic", range="[2, inf)")


@dataclass
class OptimConfig:
    name: str = _f("sgd", "sgd | adamw | rmsprop",
       choices=OPTIMIZERS)
    lr: float = _f(0.1, "peak learning rate (after warm-up) at reference_batch_size", range="(0, inf)")
    reference_batch_size: Optional[int] = _f(None, "lr is for this global batch; scaled linearly to data.batch_size (Goyal et al. 2017); null = no scaling", range="[1, inf)")
    momentum: float = _f(0.9, "SGD/RMSProp momentum, AdamW beta1", range="[0, 1)")
    nesterov: bool = _f(True, "Nesterov momentum (SGD)")
    weight_decay: float = _f(5e-4, "decay on weights with ndim >= 2; norms and biases get none", range="[0, inf)")
    eps: float = _f(1e-8, "AdamW/RMSProp epsilon (EfficientNet's TF RMSProp: 1e-3)", range="(0, inf)")
    rmsprop_alpha: float = _f(0.9, "RMSProp squared-gradient decay (EfficientNet: 0.9)", range="[0, 1)")
    label_smoothing: float = _f(0.0, "cross-entropy label smoothing", range="[0, 1)")


@dataclass
class ScheduleConfig:
    name: str = _f("cosine", "cosine | step | exponential | linear | constant",
       choices=SCHEDULES)
    warmup: str = _f("linear", "linear (Goyal et al.) | error_threshold (He et al. 2015 §4.2, ResNet-110)",
       choices=WARMUPS)
    warmup_epochs: float = _f(1.0, "linear warm-up length in epochs, applied per iteration (Goyal et al. 2017)", range="[0, inf)")
    warmup_steps: Optional[int] = _f(None, "linear warm-up length in iterations; overrides warmup_epochs when set", range="[0, inf)")
    warmup_start_factor: float = _f(0.1, "linear warm-up starts at this fraction of the peak LR", range="[0, 1]")
    warmup_lr: float = _f(0.01, "error_threshold: the LR held until the training error falls below warmup_error", range="(0, inf)")
    warmup_error: float = _f(80.0, "error_threshold: training error (%) that ends the warm-up", range="[0, 100]")
    warmup_max_steps: int = _f(2000, "error_threshold: the warm-up ends here at the latest", range="[0, inf)")
    milestones: list[float] = _f([], "step schedule: epochs at which the LR is multiplied by gamma", range="[0, inf)")
    gamma: float = _f(0.1, "step/exponential schedule: multiplicative factor", range="(0, inf)")
    decay_every: float = _f(1.0, "exponential schedule: epochs between multiplications by gamma (EfficientNet: 2.4)", range="(0, inf)")
    min_lr_factor: float = _f(0.0, "cosine/linear: final LR as a fraction of the peak LR", range="[0, 1]")


@dataclass
class TrainerConfig:
    max_epochs: int = _f(15, "total epochs of the run (resume continues up to this)", range="[1, inf)")
    accelerator: str = _f("auto", "cpu | gpu | auto")
    devices: Any = _f("auto", "devices per node: a positive int, -1 (all), 'auto', or a list of device ids [0,1]", rule=DEVICES)
    num_nodes: int = _f(1, "nodes", range="[1, inf)")
    strategy: str = _f("auto", "auto | ddp | ...")
    precision: str = _f("32-true", "32-true | bf16-mixed | 16-mixed (aliases 32, bf16, 16 are normalised to these)",
       choices=PRECISIONS)
    channels_last: bool = _f(False, "NHWC memory format for model and inputs (faster on tensor cores)")
    gradient_clip_val: Optional[float] = _f(None, "clip gradient norm to this value", range="[0, inf)")
    limit_train_batches: Any = _f(None, "train batches per epoch: an int counts batches (1 = one batch), a float in (0, 1] is a fraction (1.0 = all); null = all")
    limit_val_batches: Any = _f(None, "val batches: an int counts batches, a float in (0, 1] is a fraction; null = all")
    accumulate_grad_batches: int = _f(1, "gradient accumulation: batches per optimizer step; the LR-scaling rule uses the effective batch data.batch_size x this", range="[1, inf)")
    check_val_every_n_epoch: int = _f(1, "validate every N epochs (the last epoch is always validated only if it falls on N)", range="[1, inf)")
    profiler: Optional[str] = _f(None, "Lightning profiler: simple | advanced | pytorch; null = off (report in the run directory)",
       choices=PROFILERS)
    fast_dev_run: Any = _f(False, "debug: true = one train and one val batch, an int N = N batches; no checkpoints or records of epochs")
    overfit_batches: Any = _f(0, "debug: train (and validate) on this many batches (int) or this fraction (float) of the train set; 0 = off")
    log_every_n_steps: int = _f(10, "step-level logging interval", range="[1, inf)")
    deterministic: bool = _f(False, "torch deterministic algorithms")
    sync_batchnorm: bool = _f(False, "SyncBatchNorm under DDP: batch statistics over the global batch")
    compile: bool = _f(False, "torch.compile the model in place (checkpoints keep uncompiled keys)")
    compile_backend: str = _f("inductor", "torch.compile backend (inductor; eager/aot_eager for debugging)")
    dist_timeout_s: float = _f(600.0, "seconds a rank waits in one collective (DDP all-reduce, barrier, rendezvous) for the others before the run fails: a dead or frozen node ends the job instead of hanging until its time limit (replaces torch's default_pg_timeout of 1800 s that Lightning's DDPStrategy passes for gloo; NCCL's default is 600 s)", range="(0, inf)")
    flush_denormal: Optional[bool] = _f(None, "flush denormal floats to zero in CPU ops (torch.set_flush_denormal: a CPU step slows ~15x once activations turn denormal); null = on when training on the CPU")


@dataclass
class RegularizationConfig:
    mixup_alpha: float = _f(0.0, "mixup Beta(alpha, alpha) (Zhang et al. 2018; torchvision recipe 0.2); 0 = off", range="[0, inf)")
    cutmix_alpha: float = _f(0.0, "cutmix Beta(alpha, alpha) (Yun et al. 2019; torchvision recipe 1.0); 0 = off", range="[0, inf)")
    mix_switch_prob: float = _f(0.5, "when both are on: probability of cutmix for a batch", range="[0, 1]")
    random_erasing: float = _f(0.0, "random erasing probability per image (Zhong et al. 2017; torchvision 0.1)", range="[0, 1]")
    ema_decay: float = _f(0.0, "EMA of weights, decay per update, validated as val_ema/*; 0 = off (torchvision's 0.99998 at its batch/epochs is ~0.9989 per update: platform.ema.adjusted_ema_decay)", range="[0, 1)")
    ema_every: int = _f(1, "EMA update interval in optimizer steps", range="[1, inf)")


@dataclass
class LoggingConfig:
    wandb: str = _f("auto", "auto | online | offline | disabled (auto: online when an API key is configured)",
       choices=WANDB_MODES)
    project: str = _f("cnn-platform", "W&B project")
    entity: Optional[str] = _f(None, "W&B entity")
    tags: list[str] = _f([], "W&B tags")
    progress_bar: bool = _f(True, "show Lightning's progress bar")


@dataclass
class CheckpointConfig:
    every_n_steps: Optional[int] = _f(None, "also save the resumable state (checkpoints/last.ckpt) every N optimizer steps inside an epoch; null = off", range="[1, inf)")
    every_minutes: Optional[float] = _f(30.0, "also save it when this many minutes passed since the last save (a SIGKILL or dead node loses at most this); null = off", range="(0, inf)")


@dataclass
class RunConfig:
    name: Optional[str] = _f(None, "run directory name; null = SLURM job id or model_data_timestamp", rule=PATH_COMPONENT)
    root: str = _f("runs", "parent directory of run directories")


@dataclass
class ExperimentConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    regularization: RegularizationConfig = field(default_factory=RegularizationConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    run: RunConfig = field(default_factory=RunConfig)
    seed: int = _f(0, "global seed (weights, augmentation, order)", range="[0, 4294967295]")
    resume: Optional[str] = _f(None, "auto (continue this run's last checkpoint) or a checkpoint path")
    recipe: Optional[str] = _f(None, "YAML preset(s) applied before the other overrides: a name under platform/recipes/ or your own PATH.yaml; several as [a,b] (a later one wins)", rule=RECIPE)


_SELECTING_SECTIONS = ("model", "data")  # `model=NAME` sets model.name
SECTIONS = ("model", "data", "optim", "schedule", "trainer", "regularization", "logging", "checkpoint", "run")

# keys a resumed run may change (resume=auto compares the saved config.yaml with the new one): where
# and how it runs, how long, what it logs -- never what it computes (data, model, optimizer, schedule)
RESUME_MAY_CHANGE = ("trainer.max_epochs", "trainer.devices", "trainer.num_nodes", "trainer.strategy",
                     "trainer.accelerator", "trainer.log_every_n_steps", "trainer.flush_denormal", "logging.*",
                     "run.*", "checkpoint.*", "resume", "recipe", "model.init", "data.num_workers",
                     "data.batches_ahead", "data.os_cache", "data.cache_dir")


# ---------------------------------------------------------------------------- key schema
def all_keys(cls: type = ExperimentConfig, prefix: str = "") -> dict[str, dataclasses.Field]:
    """Every leaf key of the tree as a dotted path -> its dataclass field."""
    out: dict[str, dataclasses.Field] = {}
    for f in dataclasses.fields(cls):
        path = prefix + f.name
        if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
            out.update(all_keys(f.default_factory, path + "."))
        else:
            out[path] = f
    return out


def _closest(key: str, keys: list[str]) -> str:
    close = difflib.get_close_matches(key, keys, n=4, cutoff=0.5)
    tail = key.rsplit(".", 1)[-1]
    close += [k for k in keys if k.rsplit(".", 1)[-1] == tail and k not in close]
    return ", ".join(close[:5]) if close else "(none close; see --help)"


def _type_name(f: dataclasses.Field) -> str:
    return str(f.type).replace("typing.", "").replace("Optional[", "null or ")


def help_text() -> str:
    lines = ["usage: python -m platform.train [key=value ...]", "",
             "Selections: model=NAME, data=NAME, recipe=NAME | recipe=PATH.yaml | recipe=[a,b] (applied first, "
             "in order),", "config=runs/X/config.yaml (a saved run's configuration; every other override wins).",
             "--print-config prints the resolved configuration and exits (writes nothing).", ""]
    defaults = OmegaConf.to_container(OmegaConf.structured(ExperimentConfig))
    for key, f in all_keys().items():
        value = defaults
        for part in key.split("."):
            value = value[part]
        allowed = (f" [range {f.metadata['range']}]" if "range" in f.metadata else
                   f" [{f.metadata['rule'].describe}]" if "rule" in f.metadata else "")
        lines.append(f"  {key:32s} = {yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip():18s} "
                     f"{f.metadata.get('help', '')}{allowed}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- parsing
def _split_packed(args: list[str]) -> list[str]:
    """``"model=resnet50 model.stride_on=1x1"`` (one argument) -> two overrides.

    A W&B grid sweep passes each parameter value as one ``key=value`` argument, so a table row
    that needs a model plus a knob travels as one value of the ``model`` parameter
    (``platform.reproduce`` writes such sweeps).  Split only when every piece is itself
    ``known_key=value``: ``logging.tags=[a, b]`` stays one argument.
    """
    import re
    import shlex

    out = []
    for arg in args:
        pieces = shlex.split(arg) if " " in arg.strip() else [arg]
        out += pieces if len(pieces) > 1 and all(re.match(r"\+?[A-Za-z_][\w.]*=", p) for p in pieces) else [arg]
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
            raise ConfigError(f"unknown config key {key!r}; closest valid keys: {_closest(key, list(keys))}")
        pairs.append((key, value))
    return pairs


def recipe_names(value: str) -> list[str]:
    """``a``, ``[a, b]`` or ``a,b`` -> the recipes to apply, in order (a later one wins)."""
    v = value.strip()
    if v.startswith("[") and v.endswith("]"):
        v = v[1:-1]
    return [x.strip().strip("'\"") for x in v.split(",") if x.strip()]


def recipe_path(name: str) -> Path:
    """A recipe name (``platform/recipes/NAME.yaml``) or a user's own ``PATH.yaml``."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"recipe={name}: no such file (a recipe is a name under {RECIPES_DIR} or a path "
                              f"to your own YAML file of config keys)")
        return path
    path = RECIPES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(str(p.relative_to(RECIPES_DIR).with_suffix("")) for p in RECIPES_DIR.rglob("*.yaml"))
        raise ConfigError(f"unknown recipe {name!r} (no file {path}); known recipes: {', '.join(known) or 'none'} "
                          f"(or give the path of your own file: recipe=PATH.yaml)")
    return path


def _yaml_pairs(path: Path, what: str) -> list[tuple[str, str]]:
    """A YAML mapping of config keys (nested or dotted) -> checked ``(key, raw value)`` pairs."""
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} {path} is not valid YAML: {e}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of config keys, got {type(tree).__name__}")

    def flatten(d: dict, prefix: str = "") -> list[tuple[str, str]]:
        out = []
        for k, v in d.items():
            if isinstance(v, dict):
                out += flatten(v, f"{prefix}{k}.")
            else:
                out.append((f"{prefix}{k}", yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()))
        return out

    try:
        return parse_overrides([f"{k}={v}" for k, v in flatten(tree)])
    except ConfigError as e:
        raise ConfigError(f"in {what} {path}: {e}") from None


def _recipe_pairs(name: str) -> list[tuple[str, str]]:
    return [pair for one in recipe_names(name) for pair in _yaml_pairs(recipe_path(one), "recipe file")]


def load_config(args: list[str] | None = None, base: ExperimentConfig | None = None) -> ExperimentConfig:
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
    if saved:
        pairs = _yaml_pairs(Path(saved[-1]).expanduser(), "config file") + pairs
    cfg = OmegaConf.structured(base if base is not None else ExperimentConfig)
    keys = all_keys()
    for key, raw in pairs:
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        if (isinstance(value, (int, float)) and str(keys[key].type) in ("str", "Optional[str]")) or key == "recipe":
            value = raw if value is not None else None  # model=resnet56 stays a string; so do run.name=2024, recipe=[a,b]
        try:
            OmegaConf.update(cfg, key, value, merge=False)
        except OmegaConfBaseException:
            raise ConfigError(f"bad value for {key}: {raw!r} is not a valid {_type_name(keys[key])}") from None
    obj: ExperimentConfig = OmegaConf.to_object(cfg)
    validate(obj)
    return obj


# the data section's choices (its keys are the datamodules' to declare); every other key's choices
# are on its field (``choices=``), see :func:`choices`
_CHOICES = {
    "data.sampler": ("random", "class_aware"),
    "data.backend": ("ffcv", "torchvision"),
    "data.order": ("auto", "random", "quasi_random"),
    "data.val_split": ("test", "holdout"),
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
        return None if rule.ok(value) else f"bad value for {key}: {value!r}; expected {rule.describe}"
    for v in items:
        if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if _floats(f) and not math.isfinite(v):
            return f"bad value for {key}: {v!r}; expected a finite number" + (
                f" in {f.metadata['range']}" if "range" in f.metadata else "")
        if "range" in f.metadata and v not in f.metadata["range"]:
            kind = "a number" if _floats(f) else "an integer"
            return f"bad value for {key}: {v!r}; expected {kind} in {f.metadata['range']}"
    return None


def _get(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


PRECISION_ALIASES = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}  # Lightning's short names


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_batches(key: str, v: Any, allow_bool: bool = False) -> None:
    """Lightning's convention: an int counts batches, a float in (0, 1] is a fraction."""
    ok = (v is None or (_is_int(v) and v >= 0) or (isinstance(v, float) and 0.0 <= v <= 1.0)
          or (allow_bool and isinstance(v, bool)))
    if not ok:
        raise ConfigError(f"bad value for {key}: {v!r}; expected an integer number of batches (1 = one batch) "
                          f"or a fraction 0.0 < x <= 1.0 (1.0 = all)" + (" or true/false" if allow_bool else ""))


def validate_trainer(t: TrainerConfig) -> None:
    """Trainer knobs Lightning would otherwise reject with a traceback after the run directory exists."""
    t.precision = PRECISION_ALIASES.get(str(t.precision), t.precision)
    d = t.devices
    ok = (d == "auto" or (_is_int(d) and (d >= 1 or d == -1))
          or (isinstance(d, list) and d and all(_is_int(i) and i >= 0 for i in d)))
    if not ok:
        raise ConfigError(f"bad value for trainer.devices: {d!r}; expected a positive integer (devices per node), "
                          f"-1 (all), auto, or a list of device ids like [0,1]")
    _check_batches("trainer.limit_train_batches", t.limit_train_batches)
    _check_batches("trainer.limit_val_batches", t.limit_val_batches)
    _check_batches("trainer.overfit_batches", t.overfit_batches)
    if not (isinstance(t.fast_dev_run, bool) or (_is_int(t.fast_dev_run) and t.fast_dev_run >= 0)):
        raise ConfigError(f"bad value for trainer.fast_dev_run: {t.fast_dev_run!r}; expected true/false or a "
                          f"number of batches")


def validate(cfg: ExperimentConfig) -> None:
    """Every key against its declared range/rule (see ``_f``), then the rules that span keys."""
    for key, f in all_keys().items():
        error = check_key(key, _get(cfg, key), f)
        if error:
            raise ConfigError(error)
    validate_trainer(cfg.trainer)  # the Any-typed knobs; precision aliases normalised before the choices
    for key, allowed in choices().items():
        value = _get(cfg, key)
        if value not in allowed:
            raise ConfigError(f"bad value for {key}: {value!r}; expected one of {', '.join(map(str, allowed))}")
    if (cfg.data.min_resolution is None) != (cfg.data.max_resolution is None):
        raise ConfigError("progressive resizing needs both data.min_resolution and data.max_resolution "
                          f"(got {cfg.data.min_resolution} and {cfg.data.max_resolution})")
    cache = Path(cfg.data.cache_dir).expanduser()
    existing = next((p for p in (cache, *cache.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"bad value for data.cache_dir: {cfg.data.cache_dir!r}; {existing} is a file, "
                          "expected a directory (or a path that can be created as one)")


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


def resume_differences(saved: ExperimentConfig, new: ExperimentConfig) -> list[tuple[str, Any, Any]]:
    """(key, saved value, new value) for every key that differs and may not change on resume."""
    a, b = flat_dict(saved), flat_dict(new)
    allowed = lambda k: any(k == p or (p.endswith(".*") and k.startswith(p[:-1])) for p in RESUME_MAY_CHANGE)  # noqa: E731
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) and not allowed(k)]


def to_dict(cfg: ExperimentConfig) -> dict:
    return dataclasses.asdict(cfg)


def to_yaml(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def from_dict(d: dict) -> ExperimentConfig:
    """Rebuild a saved config (e.g. from a run directory's config.yaml)."""
    cfg = OmegaConf.merge(OmegaConf.structured(ExperimentConfig), d)
    return OmegaConf.to_object(cfg)
