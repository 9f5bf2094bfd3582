"""What every datamodule shares: the constants, and :class:`DataOptions`, the one option type.

Imports nothing (not even torch), so that ``platform/config.py`` can state its defaults from here.
"""
from __future__ import annotations

# ImageNet's per-channel mean/std in [0, 1] units (torchvision's and ffcv-imagenet's values); the
# default normalisation where a dataset's meta.json records none.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The training augmentations both image paths implement (FFCV: ``ffcv.train_image_pipeline``,
# torchvision: ``imagefolder.train_transform``); CIFAR and Fashion-MNIST add their own.
AUGMENTATIONS = ("natural", "digits", "none")
SAMPLERS = ("random", "class_aware")

# Where the embedded datasets (digits, CIFAR, Fashion-MNIST) are written once as .beton.
CACHE_DIR = "~/.cache/cnn-platform"
