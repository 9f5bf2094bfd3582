"""The schema of an experiment: the config dataclasses, their defaults, help texts, value rules and
choices, declared once (issue 20: "the schema owns its choices").

``platform.run.config`` parses, loads and validates configurations against it; import the schema's
names from here (``from platform.run.schema import ExperimentConfig``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from datamodules.options import JPEG_DECODES, PAD_MODES, DataOptions
from models import layers

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"  # platform/recipes/


class ConfigError(ValueError):
    """A configuration problem a user can fix; ``platform.run.train`` prints it without a traceback."""


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
        return (self.lo <= v if self.lo_closed else self.lo < v) and (
            v <= self.hi if self.hi_closed else v < self.hi
        )

    def __str__(self) -> str:
        num = lambda x: "inf" if math.isinf(x) else f"{x:g}"  # noqa: E731
        return f"{'[' if self.lo_closed else '('}{num(self.lo)}, {num(self.hi)}{']' if self.hi_closed else ')'}"


@dataclass(frozen=True)
class Rule:
    """A non-numeric value rule: ``ok(value)`` and the sentence ``--help`` and errors show."""

    describe: str
    ok: Any


MAX_NAME = 200  # characters of one name: a file system allows 255 bytes, suffixes need the rest


def _is_component(v: Any) -> bool:
    return (
        isinstance(v, str)
        and v not in ("", ".", "..")
        and len(v) <= MAX_NAME
        and set(v) <= _PATH_CHARS
    )


PATH_COMPONENT = Rule(
    f"one path component of at most {MAX_NAME} characters: letters, digits and -_.+ only, "
    "not '.' or '..'",
    lambda v: v is None or _is_component(v),
)
RELATIVE_NAME = Rule(
    "a relative name whose /-separated parts are each letters, digits and -_.+ (not '.' or '..')",
    lambda v: v is None or (isinstance(v, str) and all(map(_is_component, v.split("/")))),
)
DEVICES = Rule(
    "'auto', a positive integer, -1 (all devices), or a list of distinct device ids like [0,1]",
    lambda v: (
        v == "auto"
        or (type(v) is int and (v >= 1 or v == -1))
        or (
            isinstance(v, list)
            and len(v) > 0
            and len(set(v)) == len(v)
            and all(type(i) is int and i >= 0 for i in v)
        )
    ),
)


def recipe_names(value: str) -> list[str]:
    """``a``, ``[a, b]`` or ``a,b`` -> the recipes to apply, in order (a later one wins)."""
    v = value.strip()
    if v.startswith("[") and v.endswith("]"):
        v = v[1:-1]
    return [x.strip().strip("'\"") for x in v.split(",") if x.strip()]


# recipe=NAME (platform/recipes/NAME.yaml: a relative name, never a path out of it) or a user's own
# PATH.yaml, one or several ("[a,b]"): only the names are joined to the recipes directory.
RECIPE = Rule(
    "recipe names, each a relative name whose /-separated parts are letters, digits and -_.+ "
    "(not '.' or '..') under platform/recipes/, or the path of your own .yaml file",
    lambda v: (
        v is None
        or (
            isinstance(v, str)
            and all(n.endswith((".yaml", ".yml")) or RELATIVE_NAME.ok(n) for n in recipe_names(v))
        )
    ),
)


# The named choices of a key, declared once here and on its field (``choices=``); :func:`validate`
# checks them (after the precision aliases are normalised) and the code that acts on a value imports
# the same tuple (``module.build_optimizer``, ``schedules.lr_at``).  None in a tuple: null is allowed.
OPTIMIZERS = ("sgd", "adamw", "rmsprop", "rmsprop_tf")
# Which tensors get no weight decay (``module.param_groups``): each paper's released code differs.
NO_DECAY = ("norm_bias", "norm", "norm_bias_depthwise", "none")
SCHEDULES = ("cosine", "step", "exponential", "linear", "constant")
WARMUPS = ("linear", "error_threshold")
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
PROFILERS = (None, "simple", "advanced", "pytorch")
WANDB_MODES = ("auto", "online", "offline", "disabled")
STRIDE_ON = (None, "3x3", "1x1")
# the model layer's own choices (models/layers.py), None: the model's default
DROP_PATH_MODES = (None, *layers.DROP_PATH_MODES)
DROP_PATH_RULES = (None, *layers.DROP_PATH_RULES)
SHORTCUT_DOWNSAMPLES = (None, "stride", "avgpool")
SCALE_RANGE = Rule(
    "null or two integers [smin, smax] with 1 <= smin <= smax",
    lambda v: (
        v is None
        or (
            isinstance(v, (list, tuple))
            and len(v) == 2
            and all(type(i) is int for i in v)
            and 1 <= v[0] <= v[1]
        )
    ),
)


def _f(
    default: Any,
    help: str,
    *,
    range: str | None = None,
    rule: Rule | None = None,
    choices: tuple | None = None,
    **kw: Any,
) -> Any:
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
    name: str = _f(
        "resnet20",
        "registry name (python -c 'import models; print(models.list_models())')",
        rule=PATH_COMPONENT,
    )
    num_classes: Optional[int] = _f(
        None, "classifier outputs; null = the dataset's number of classes", range="[2, inf)"
    )
    drop_path_rate: Optional[float] = _f(
        None,
        "stochastic depth: drop-path rate of the last block (Huang et al. 2016); null = the "
        "model's default",
        range="[0, 1)",
    )
    drop_path_mode: Optional[str] = _f(
        None,
        "stochastic depth: sample (per-sample drop-path, timm/EfficientNet) | batch (whole blocks "
        "per step, branch not run: Huang et al.); null = the model's default (ResNets batch, "
        "others sample)",
        choices=DROP_PATH_MODES,
    )
    drop_path_rule: Optional[str] = _f(
        None,
        "per-block rates: huang (l/L) | timm (i/(N-1)) | tf (i/N), see "
        "models.layers.drop_path_rates; null = the model's default (ResNets huang, EfficientNet "
        "tf)",
        choices=DROP_PATH_RULES,
    )
    shortcut_downsample: Optional[str] = _f(
        None,
        "option-A shortcuts of CIFAR ResNets: stride (He et al.) | avgpool (2x2 average, Huang et "
        "al.'s stochastic-depth code); null = stride",
        choices=SHORTCUT_DOWNSAMPLES,
    )
    zero_init_residual: Optional[bool] = _f(
        None,
        "zero-init the last BN gamma of each residual block (Goyal et al. 2017); null = the "
        "model's default (off)",
    )
    dropout: Optional[float] = _f(
        None,
        "dropout before the classifier; null = the model's default (EfficientNet: 0.2-0.5)",
        range="[0, 1)",
    )
    stride_on: Optional[str] = _f(
        None,
        "bottleneck stride placement '3x3' (v1.5) or '1x1' (MSRA); null = model default",
        choices=STRIDE_ON,
    )
    preact: Optional[bool] = _f(
        None,
        "ResNeXt-29: pre-activated bottlenecks (the paper's CIFAR numbers) or false (resnext.lua's "
        "post-activation); null = model default (true)",
    )
    act: Optional[str] = _f(
        None,
        "MobileNet v1 activation: relu6 (TF-slim) | relu (the paper's Fig. 3); null = model "
        "default (relu6)",
    )
    block_dropout: Optional[float] = _f(
        None,
        "WRN dropout between the convs of a block (Zagoruyko & Komodakis: 0.3); null = model "
        "default",
        range="[0, 1)",
    )
    se_reduction: Optional[int] = _f(
        None,
        "SE reduction ratio r on SE models (Hu et al.: 16); null = model default",
        range="[1, inf)",
    )
    bn_eps: Optional[float] = _f(
        None,
        "BatchNorm epsilon (TF-style EfficientNet training: 1e-3); null = the model's default",
        range="(0, inf)",
    )
    bn_momentum: Optional[float] = _f(
        None,
        "BatchNorm momentum, PyTorch convention: weight of the new batch statistic (TF decay 0.99 "
        "= 0.01); null = the model's default",
        range="[0, 1]",
    )
    init: Optional[str] = _f(
        None, "initial weights: a .ckpt of ours or a saved (ours or torchvision) state_dict"
    )


# The datamodules' own defaults (datamodules/options.py states each once); DataConfig's keys take them.
_DATA = DataOptions()


@dataclass
class DataConfig:
    name: str = _f(
        "digits",
        "dataset: digits (embedded), fashion_mnist (Debian's dataset-fashion-mnist), imagenet, "
        "cifar10, cifar100, beton (any .beton pair), synthetic",
        rule=PATH_COMPONENT,
    )
    path: Optional[str] = _f(
        _DATA.path,
        "data=beton|imagenet: directory holding train.beton/val.beton (backend=torchvision: the "
        "ImageFolder root); fashion_mnist: the four IDX files (default: Debian's)",
    )
    backend: str = _f(
        _DATA.backend,
        "ffcv (.beton, fast) | torchvision (ImageFolder fallback, where FFCV is absent)",
    )
    cache_dir: str = _f(_DATA.cache_dir, "where embedded datasets are written once as .beton")
    batch_size: int = _f(
        _DATA.batch_size, "global batch size (split evenly across DDP ranks)", range="[1, inf)"
    )
    num_workers: int = _f(
        _DATA.num_workers, "FFCV decoding threads (0: FFCV uses every core)", range="[0, inf)"
    )
    resolution: Optional[int] = _f(
        _DATA.resolution, "training crop side; null = the dataset's default", range="[1, inf)"
    )
    val_resolution: Optional[int] = _f(
        _DATA.val_resolution, "validation crop side; null = the dataset's default", range="[1, inf)"
    )
    min_resolution: Optional[int] = _f(
        None,
        "progressive resizing (ffcv-imagenet): training side until ramp_start; null = off",
        range="[1, inf)",
    )
    max_resolution: Optional[int] = _f(
        None, "progressive resizing: training side from ramp_end on", range="[1, inf)"
    )
    ramp_start: int = _f(
        0, "progressive resizing: first epoch of the linear ramp", range="[0, inf)"
    )
    ramp_end: int = _f(
        0,
        "progressive resizing: epoch at which max_resolution is reached (multiples of 32 between)",
        range="[0, inf)",
    )
    batches_ahead: int = _f(
        _DATA.batches_ahead, "FFCV: batches prepared ahead of the GPU", range="[1, inf)"
    )
    val_crop_ratio: Optional[float] = _f(
        _DATA.val_crop_ratio,
        "validation centre-crop ratio (224/256 for ImageNet); null = dataset default; >= 1/8 so "
        "that every image datamodules.write keeps (sides >= 8 px) gives a non-empty crop",
        range="[0.125, 1]",
    )
    os_cache: bool = _f(
        _DATA.os_cache,
        "FFCV os_cache: page-cache the whole file (set false when it does not fit in RAM)",
    )
    order: str = _f(
        _DATA.order,
        "FFCV order: auto|random|quasi_random (auto: random when distributed or cached)",
    )
    split_seed: int = _f(
        _DATA.split_seed,
        "seed of the train/val split of embedded datasets",
        range="[0, 4294967295]",
    )
    val_fraction: float = _f(
        _DATA.val_fraction,
        "held-out fraction for datasets without a validation split (and for val_split=holdout)",
        range="[0, 1)",
    )
    val_split: str = _f(
        _DATA.val_split,
        "fashion_mnist: validate on the official test split (test) or a stratified val_fraction "
        "of train (holdout, test untouched)",
    )
    train_subset: Optional[int] = _f(
        _DATA.train_subset,
        "fashion_mnist: train on a stratified subset of this many images (CPU budgets); null = all",
        range="[1, inf)",
    )
    val_subset: Optional[int] = _f(
        _DATA.val_subset,
        "fashion_mnist: validate on a stratified subset of this many images; null = all",
        range="[1, inf)",
    )
    sampler: str = _f(
        _DATA.sampler, "training order: random | class_aware (label-balanced, Shen et al. 2016)"
    )
    epoch_samples: Optional[int] = _f(
        _DATA.epoch_samples,
        "class_aware: draws per epoch; null = the training set size",
        range="[1, inf)",
    )
    synthetic_size: int = _f(
        _DATA.synthetic_size, "number of training examples for data=synthetic", range="[1, inf)"
    )
    synthetic_classes: int = _f(
        _DATA.synthetic_classes, "number of classes for data=synthetic", range="[2, inf)"
    )
    color_jitter: float = _f(
        _DATA.color_jitter,
        "colour jitter: brightness = contrast = saturation factors 1 + U(-x, x), in random order "
        "(fb.resnet.torch ColorJitter, 0.4); 0 = off",
        range="[0, 1]",
    )
    pca_lighting: float = _f(
        _DATA.pca_lighting,
        "AlexNet PCA lighting noise std with ImageNet's eigenvectors (fb.resnet.torch: 0.1); 0 = off",
        range="[0, inf)",
    )
    scale_jitter: Optional[list[int]] = _f(
        _DATA.scale_jitter,
        "scale augmentation (He et al. 2015 §3.4): [smin, smax], shorter side S ~ U[smin, smax] "
        "then a random resolution crop ([256, 480]); replaces augment=natural's crop; null = off",
        rule=SCALE_RANGE,
    )
    pad_mode: str = _f(
        _DATA.pad_mode,
        "pad of the pad-and-crop translation (CIFAR, Fashion-MNIST, digits): constant | reflect "
        "(WRN's release reflects)",
        choices=PAD_MODES,
    )
    auto_augment: bool = _f(
        _DATA.auto_augment,
        "AutoAugment, ImageNet policy (EfficientNet); torchvision backend only (FFCV refuses it)",
    )
    jpeg_decode: str = _f(
        _DATA.jpeg_decode,
        "FFCV JPEG decode, train and val: full (FFCV's, every pixel) | scaled (libjpeg-turbo's n/8 "
        "DCT scaling, then the same resize; datamodules/jpeg_scaled.py)",
        choices=JPEG_DECODES,
    )


@dataclass
class OptimConfig:
    name: str = _f(
        "sgd",
        "sgd | adamw | rmsprop (PyTorch's) | rmsprop_tf (TensorFlow's: eps inside the square root, "
        "accumulator starts at 1, lr folded into the momentum)",
        choices=OPTIMIZERS,
    )
    lr: float = _f(
        0.1, "peak learning rate (after warm-up) at reference_batch_size", range="(0, inf)"
    )
    reference_batch_size: Optional[int] = _f(
        None,
        "lr is for this global batch; scaled linearly to data.batch_size (Goyal et al. 2017); "
        "null = no scaling",
        range="[1, inf)",
    )
    momentum: float = _f(0.9, "SGD/RMSProp momentum, AdamW beta1", range="[0, 1)")
    nesterov: bool = _f(True, "Nesterov momentum (SGD)")
    weight_decay: float = _f(
        5e-4,
        "L2 weight decay on every tensor that optim.no_decay does not exempt",
        range="[0, inf)",
    )
    no_decay: str = _f(
        "norm_bias",
        "tensors exempt from weight decay: norm_bias (norm-layer scales/shifts and biases) | norm "
        "(norm layers only; TF EfficientNet) | norm_bias_depthwise (also depthwise conv filters; "
        "TF-slim MobileNet v1) | none (every tensor decayed; the Torch/Caffe releases)",
        choices=NO_DECAY,
    )
    eps: float = _f(
        1e-8,
        "AdamW/RMSProp epsilon (EfficientNet's TF RMSProp: 1e-3, inside the square root)",
        range="(0, inf)",
    )
    rmsprop_alpha: float = _f(
        0.9, "RMSProp squared-gradient decay (EfficientNet: 0.9)", range="[0, 1)"
    )
    label_smoothing: float = _f(0.0, "cross-entropy label smoothing", range="[0, 1)")


@dataclass
class ScheduleConfig:
    name: str = _f("cosine", "cosine | step | exponential | linear | constant", choices=SCHEDULES)
    warmup: str = _f(
        "linear",
        "linear (Goyal et al.) | error_threshold (He et al. 2015 §4.2, ResNet-110)",
        choices=WARMUPS,
    )
    warmup_epochs: float = _f(
        1.0,
        "linear warm-up length in epochs, applied per iteration (Goyal et al. 2017)",
        range="[0, inf)",
    )
    warmup_steps: Optional[int] = _f(
        None,
        "linear warm-up length in iterations; overrides warmup_epochs when set",
        range="[0, inf)",
    )
    warmup_start_factor: float = _f(
        0.1, "linear warm-up starts at this fraction of the peak LR", range="[0, 1]"
    )
    warmup_lr: float = _f(
        0.01,
        "error_threshold: the LR held until the training error falls below warmup_error",
        range="(0, inf)",
    )
    warmup_error: float = _f(
        80.0, "error_threshold: training error (%) that ends the warm-up", range="[0, 100]"
    )
    warmup_max_steps: int = _f(
        2000, "error_threshold: the warm-up ends here at the latest", range="[0, inf)"
    )
    milestones: list[float] = _f(
        [], "step schedule: epochs at which the LR is multiplied by gamma", range="[0, inf)"
    )
    gamma: float = _f(0.1, "step/exponential schedule: multiplicative factor", range="(0, inf)")
    decay_every: float = _f(
        1.0,
        "exponential schedule: epochs between multiplications by gamma (EfficientNet: 2.4)",
        range="(0, inf)",
    )
    min_lr_factor: float = _f(
        0.0, "cosine/linear: final LR as a fraction of the peak LR", range="[0, 1]"
    )


@dataclass
class TrainerConfig:
    max_epochs: int = _f(
        15, "total epochs of the run (resume continues up to this)", range="[1, inf)"
    )
    accelerator: str = _f("auto", "cpu | gpu | auto")
    devices: Any = _f(
        "auto",
        "devices per node: a positive int, -1 (all), 'auto', or a list of device ids [0,1]",
        rule=DEVICES,
    )
    num_nodes: int = _f(1, "nodes", range="[1, inf)")
    strategy: str = _f("auto", "auto | ddp | ...")
    precision: str = _f(
        "32-true",
        "32-true | bf16-mixed | 16-mixed (aliases 32, bf16, 16 are normalised to these)",
        choices=PRECISIONS,
    )
    channels_last: bool = _f(
        False, "NHWC memory format for model and inputs (faster on tensor cores)"
    )
    gradient_clip_val: Optional[float] = _f(
        None, "clip gradient norm to this value", range="[0, inf)"
    )
    limit_train_batches: Any = _f(
        None,
        "train batches per epoch: an int counts batches (1 = one batch), a float in (0, 1] is a "
        "fraction (1.0 = all); null = all",
    )
    limit_val_batches: Any = _f(
        None, "val batches: an int counts batches, a float in (0, 1] is a fraction; null = all"
    )
    accumulate_grad_batches: int = _f(
        1,
        "gradient accumulation: batches per optimizer step; the LR-scaling rule uses the "
        "effective batch data.batch_size x this",
        range="[1, inf)",
    )
    check_val_every_n_epoch: int = _f(
        1,
        "validate every N epochs (the last epoch is always validated only if it falls on N)",
        range="[1, inf)",
    )
    profiler: Optional[str] = _f(
        None,
        "Lightning profiler: simple | advanced | pytorch; null = off (report in the run directory)",
        choices=PROFILERS,
    )
    fast_dev_run: Any = _f(
        False,
        "debug: true = one train and one val batch, an int N = N batches; no checkpoints or "
        "records of epochs",
    )
    overfit_batches: Any = _f(
        0,
        "debug: train (and validate) on this many batches (int) or this fraction (float) of the "
        "train set; 0 = off",
    )
    log_every_n_steps: int = _f(10, "step-level logging interval", range="[1, inf)")
    deterministic: bool = _f(False, "torch deterministic algorithms")
    sync_batchnorm: bool = _f(
        False, "SyncBatchNorm under DDP: batch statistics over the global batch"
    )
    compile: bool = _f(False, "torch.compile the model in place (checkpoints keep uncompiled keys)")
    compile_backend: str = _f(
        "inductor", "torch.compile backend (inductor; eager/aot_eager for debugging)"
    )
    dist_timeout_s: float = _f(
        600.0,
        "seconds a rank waits in one collective (DDP all-reduce, barrier, rendezvous) for the "
        "others before the run fails: a dead or frozen node ends the job instead of hanging until "
        "its time limit (replaces torch's default_pg_timeout of 1800 s that Lightning's "
        "DDPStrategy passes for gloo; NCCL's default is 600 s)",
        range="(0, inf)",
    )
    flush_denormal: Optional[bool] = _f(
        None,
        "flush denormal floats to zero in CPU ops (torch.set_flush_denormal: a CPU step slows "
        "~15x once activations turn denormal); null = on when training on the CPU",
    )


@dataclass
class RegularizationConfig:
    mixup_alpha: float = _f(
        0.0,
        "mixup Beta(alpha, alpha) (Zhang et al. 2018; torchvision recipe 0.2); 0 = off",
        range="[0, inf)",
    )
    cutmix_alpha: float = _f(
        0.0,
        "cutmix Beta(alpha, alpha) (Yun et al. 2019; torchvision recipe 1.0); 0 = off",
        range="[0, inf)",
    )
    mix_switch_prob: float = _f(
        0.5, "when both are on: probability of cutmix for a batch", range="[0, 1]"
    )
    random_erasing: float = _f(
        0.0,
        "random erasing probability per image (Zhong et al. 2017; torchvision 0.1)",
        range="[0, 1]",
    )
    ema_decay: float = _f(
        0.0,
        "EMA of weights, decay per update, validated as val_ema/*; 0 = off (torchvision's 0.99998 "
        "at its batch/epochs is ~0.9989 per update: platform.run.ema.adjusted_ema_decay)",
        range="[0, 1)",
    )
    ema_every: int = _f(1, "EMA update interval in optimizer steps", range="[1, inf)")


@dataclass
class LoggingConfig:
    wandb: str = _f(
        "auto",
        "auto | online | offline | disabled (auto: online when an API key is configured)",
        choices=WANDB_MODES,
    )
    project: str = _f("cnn-platform", "W&B project")
    entity: Optional[str] = _f(None, "W&B entity")
    tags: list[str] = _f([], "W&B tags")
    progress_bar: bool = _f(True, "show Lightning's progress bar")
    grad_stats: bool = _f(
        False,
        "record per epoch the mean |gradient| and L2 norm of the first conv, each stage's first "
        "conv and the classifier (grad/<layer>/mean_abs, grad/<layer>/l2 in metrics.jsonl and "
        "W&B; Huang et al. 2016 Fig. 8; python -m platform.gradients plots them)",
    )


@dataclass
class CheckpointConfig:
    every_n_steps: Optional[int] = _f(
        None,
        "also save the resumable state (checkpoints/last.ckpt) every N optimizer steps inside an "
        "epoch; null = off",
        range="[1, inf)",
    )
    every_minutes: Optional[float] = _f(
        30.0,
        "also save it when this many minutes passed since the last save (a SIGKILL or dead node "
        "loses at most this); null = off",
        range="(0, inf)",
    )


@dataclass
class RunConfig:
    name: Optional[str] = _f(
        None, "run directory name; null = SLURM job id or model_data_timestamp", rule=PATH_COMPONENT
    )
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
    resume: Optional[str] = _f(
        None,
        "auto (continue this run's last checkpoint, or say so and start fresh when there is "
        "none), must (the same, but refuse when there is none) or a checkpoint path",
    )
    recipe: Optional[str] = _f(
        None,
        "YAML preset(s) applied before the other overrides: a name under platform/recipes/ or "
        "your own PATH.yaml; several as [a,b] (a later one wins)",
        rule=RECIPE,
    )


_SELECTING_SECTIONS = ("model", "data")  # `model=NAME` sets model.name
SECTIONS = (
    "model",
    "data",
    "optim",
    "schedule",
    "trainer",
    "regularization",
    "logging",
    "checkpoint",
    "run",
)

# keys a resumed run may change (resume=auto compares the saved config.yaml with the new one): where
# and how it runs, how long, what it logs -- never what it computes (data, model, optimizer, schedule)
RESUME_MAY_CHANGE = (
    "trainer.max_epochs",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.accelerator",
    "trainer.log_every_n_steps",
    "trainer.flush_denormal",
    "logging.*",
    "run.*",
    "checkpoint.*",
    "resume",
    "recipe",
    "model.init",
    "data.num_workers",
    "data.batches_ahead",
    "data.os_cache",
    "data.cache_dir",
)


# ---------------------------------------------------------------------------- key schema
def all_keys(cls: type = ExperimentConfig, prefix: str = "") -> dict[str, dataclasses.Field]:
    """Every leaf key of the tree as a dotted path -> its dataclass field."""
    out: dict[str, dataclasses.Field] = {}
    for f in dataclasses.fields(cls):
        path = prefix + f.name
        if dataclasses.is_dataclass(
            f.default_factory if f.default_factory is not dataclasses.MISSING else None
        ):
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
