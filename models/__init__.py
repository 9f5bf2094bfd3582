"""Model architectures (no timm) and their registry.

    create_model("resnet50", num_classes=100)      # free knobs only
    list_models("resnet*"); model_info("resnet50"); free_knobs("resnet50")

This package imports nothing else of the project. Importing it registers every
model family listed below.
"""

# importing a family module registers its entrypoints
from . import (  # noqa: F401 (importing a family module registers its table of models)
    bn_inception,
    densenet,
    efficientnet,
    highway,
    inception_resnet,
    mobilenet,
    resnet,
    resnet_zoo,
    resnext_zoo,
    vgg,
)
from .layers import (
    DROP_PATH_MODES,
    DROP_PATH_RULES,
    ClassifierHead,
    ConvNormAct,
    DropPath,
    NormAct,
    SqueezeExcite,
    drop_path,
    drop_path_rates,
    set_drop_path_step,
    skips_blocks,
)
from .registry import (
    DefaultChange,
    Entry,
    MacsVariant,
    ModelInfo,
    UnknownModelError,
    create_model,
    entrypoint,
    explicit_knobs,
    free_knobs,
    legacy_knobs,
    list_models,
    model_info,
    register,
    register_table,
)
from .resnet import NetSpec, ResidualNet, StageSpec

__all__ = [
    "ClassifierHead",
    "ConvNormAct",
    "DefaultChange",
    "DropPath",
    "MacsVariant",
    "ModelInfo",
    "NetSpec",
    "NormAct",
    "ResidualNet",
    "SqueezeExcite",
    "StageSpec",
    "UnknownModelError",
    "create_model",
    "DROP_PATH_MODES",
    "DROP_PATH_RULES",
    "drop_path",
    "drop_path_rates",
    "set_drop_path_step",
    "skips_blocks",
    "entrypoint",
    "explicit_knobs",
    "legacy_knobs",
    "free_knobs",
    "list_models",
    "model_info",
    "Entry",
    "register",
    "register_table",
]
