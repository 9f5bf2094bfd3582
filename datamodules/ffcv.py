"""FFCV datamodule: any ``train.beton``/``val.beton`` pair, read by ``ffcv.loader.Loader``.

Pipelines are explicit lists (ffcv-imagenet): decode (random-resized crop | centre crop)
-> augment -> ToTensor -> ToDevice -> ToTorchImage.  Normalisation runs on the device in
:meth:`on_after_batch_transfer`, producing a fresh tensor -- FFCV reuses its output buffers,
so nothing of the loader's memory is kept across batches.  Loaders are built inside the
``*_dataloader`` hooks, i.e. after the process group exists, so ``distributed`` is known.

FFCV decodes in a background thread; :class:`GuardedLoader` makes it safe to use under Lightning's
``inference_mode=True`` (``validate``/``test``/``predict``) and turns a dying thread into an error
naming the cause instead of a wait for ever (see :func:`guarded_loader_class`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .base import BaseDataModule, check_shardable
from .beton import (
    DataError,
    SampleError,
    beton_labels,
    check_beton,
    check_labels,
    decoding_threads,
    read_meta,
)
from .options import (
    AUGMENTATIONS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    JPEG_DECODES,
    DataOptions,
    check_augment_options,
    data_options,
)
from .seeded import Clock


class LoaderThreadError(RuntimeError):
    """FFCV's loader thread died; the message names the file, the stage and the thread's error."""


POLL_S = 1.0  # how often a consumer waiting for a batch checks that the loader thread still lives


def _numba_threads_only(cls, n: int) -> None:
    """FFCV's ``Compiler.set_num_threads`` without its ``torch.set_num_threads(n)``: called by the
    loader and its thread with ``num_workers``, it made the model's arithmetic -- whose float
    reductions depend on torch's thread count -- change with ``data.num_workers``; with numba's
    threads only, a seeded run is the same with any number of workers."""
    import os

    import numba

    cls.num_threads = n if n >= 1 else (os.cpu_count() or 1)
    numba.set_num_threads(min(cls.num_threads, numba.config.NUMBA_NUM_THREADS))


@functools.cache
def guarded_loader_class() -> type:
    """``ffcv.loader.Loader`` with two fixes (FFCV 1.0.2), built on first use so that importing
    this module does not import FFCV.

    1. *Inference mode.*  ``EpochIterator.__init__`` allocates the pipeline's output buffers in
       the calling thread (``graph.allocate_memory``); under ``torch.inference_mode()`` -- Lightning
       wraps ``validate``/``test``/``predict`` in it -- they become inference tensors, and the worker
       thread (outside inference mode: the mode is thread-local) then fails on its first in-place
       write into them (``ToTorchImage``'s ``dst[:n] = ...``, ``ToDevice``'s ``dst.copy_``) with
       "Inplace update to inference tensor outside InferenceMode".  The buffers are therefore
       always allocated with inference mode off: plain tensors, valid inside and outside it.
    2. *No hang.*  ``EpochIterator.run`` has no handler: when a stage raises, the thread dies and
       ``__next__`` blocks in ``Queue.get()`` for ever.  Here the thread records its exception and
       the consumer polls, raising :class:`LoaderThreadError` (chained to the cause) instead.
    3. *Torch's threads.*  FFCV's ``Compiler.set_num_threads`` also set torch's (see
       :func:`_numba_threads_only`).
    ``__iter__`` follows ``ffcv/loader/loader.py`` ``Loader.__iter__`` (lines 216-226) and
    ``__next__`` ``ffcv/loader/epoch_iterator.py`` ``EpochIterator.__next__`` (lines 154-165).
    """
    from queue import Empty

    from ffcv.loader import Loader
    from ffcv.loader import epoch_iterator as ei
    from ffcv.pipeline.compiler import Compiler

    Compiler.set_num_threads = classmethod(_numba_threads_only)  # fix 3 (see _numba_threads_only)

    class GuardedEpochIterator(ei.EpochIterator):
        def __init__(self, loader: "GuardedLoader", order) -> None:
            self.error: BaseException | None = None
            super().__init__(loader, order)  # starts the thread

        def run(self) -> None:
            try:
                super().run()
            except BaseException as e:  # noqa: BLE001 -- re-raised in the consumer, with its traceback
                self.error = e

        def __next__(self):
            while True:
                try:
                    item = self.output_queue.get(timeout=POLL_S)
                    break
                except Empty:
                    if not self.is_alive() and self.output_queue.empty():
                        self.close()
                        raise self.loader.thread_error(self.error) from self.error
            if item is None:
                self.close()
                raise StopIteration
            slot, result = item
            if ei.IS_CUDA:
                self.current_stream.wait_stream(self.cuda_streams[slot])  # the batch's copy is done
            return result

    class GuardedLoader(Loader):
        stage = "loading"  # set by the datamodule: training | validation | evaluation ...
        clock: Clock | None = None  # the training ops' (seed, epoch): set before each epoch

        def __iter__(self):
            Compiler.set_num_threads(self.num_workers)
            order = self.next_traversal_order()
            if self.clock is not None:  # the epoch the seeded ops draw for (seeded.py)
                self.clock.set_epoch(self.next_epoch)
            selected = order[: len(self) * self.batch_size]
            self.next_epoch += 1
            if self.code is None or self.recompile:
                self.generate_code()
            with torch.inference_mode(False):  # fix 1: plain-tensor buffers (see above)
                return GuardedEpochIterator(self, selected)

        def thread_error(self, cause: BaseException | None) -> LoaderThreadError:
            what = (
                f"{type(cause).__name__}: {cause}" if cause is not None else "no exception recorded"
            )
            return LoaderThreadError(
                f"the FFCV loader thread reading {self.fname} died during {self.stage} ({what})"
            )

    return GuardedLoader


def exact_shard_order():
    """An FFCV traversal order for evaluation: rank r of w reads indices[r::w], no padding.

    FFCV's SEQUENTIAL order under ``distributed=True`` uses a DistributedSampler that pads
    the last ranks with duplicates, so a padded validation set would be scored; here ranks may
    differ by one example instead, and every example is seen exactly once.
    """
    import torch.distributed as dist
    from ffcv.traversal_order.base import TraversalOrder

    from .sampling import ffcv_order_meta

    class ExactShard(TraversalOrder, metaclass=ffcv_order_meta()):
        def sample_order(self, epoch: int):
            if not (self.distributed and dist.is_available() and dist.is_initialized()):
                return self.indices
            return self.indices[dist.get_rank() :: dist.get_world_size()]

    return ExactShard


def train_image_pipeline(
    augment: str, resolution: int, clock: Clock | None = None, options: DataOptions | None = None
) -> list:
    """Decode + CPU augmentation ops for training images (before ToTensor); every random draw is
    seeded per sample from ``clock``'s (seed, epoch) and the sample index (``seeded.py``).
    ``options``' recipe augmentations (``scale_jitter``, ``pad_mode``, ``color_jitter``,
    ``pca_lighting``; :func:`check_ffcv_options`) change or extend the ops."""
    from .seeded_ffcv import SeededFlip, SeededTranslate

    o = options or DataOptions()
    check_ffcv_options(o, augment)
    clock = clock or Clock(o.seed)
    size = (resolution, resolution)
    crop, scale_crop, center = decoder_classes(o.jpeg_decode)
    if augment == "natural" and o.scale_jitter:  # He et al. 2015 §3.4 scale augmentation
        ops = [scale_crop(clock, size, *o.scale_jitter), SeededFlip(clock)]
    elif augment == "natural":  # Inception-style crop + mirror (Szegedy et al. 2015; ResNet §3.4)
        ops = [crop(clock, size), SeededFlip(clock)]
    elif augment == "digits":  # small crops and shifts, never a mirror: a mirrored digit is another
        reflect = o.pad_mode == "reflect"
        ops = [
            crop(clock, size, scale=(0.7, 1.0), ratio=(0.9, 1.1)),
            SeededTranslate(clock, padding=max(1, resolution // 16), reflect=reflect),
        ]
    elif augment == "none":
        ops = [center(size, ratio=1.0)]
    else:
        raise ValueError(f"unknown augmentation {augment!r}; expected one of {AUGMENTATIONS}")
    return [*ops, *color_ops(clock, o)]


def decoder_classes(jpeg_decode: str) -> tuple[type, type, type]:
    """``(random-resized crop, scale crop, centre crop)`` decoders of ``data.jpeg_decode``: FFCV's
    full-size decode (``seeded_ffcv.py``, FFCV's centre crop) or the n/8-scaled one
    (``jpeg_scaled.py``), with the same crop boxes."""
    if jpeg_decode == "scaled":
        from .jpeg_scaled import ScaledCenterCrop, ScaledRandomResizedCrop, ScaledScaleCrop

        return ScaledRandomResizedCrop, ScaledScaleCrop, ScaledCenterCrop
    from ffcv.fields.decoders import CenterCropRGBImageDecoder

    from .seeded_ffcv import SeededRandomResizedCrop, SeededScaleCrop

    return SeededRandomResizedCrop, SeededScaleCrop, CenterCropRGBImageDecoder


def check_ffcv_options(o: DataOptions, augment: str) -> None:
    """:func:`check_augment_options`, and refuse AutoAugment: FFCV's pipeline is compiled numba and
    has no AutoAugment (its 14 PIL operations are not reimplemented here)."""
    check_augment_options(o, augment)
    if o.jpeg_decode not in JPEG_DECODES:
        raise ValueError(f"data.jpeg_decode={o.jpeg_decode!r}; expected one of {JPEG_DECODES}")
    if o.auto_augment:
        raise DataError(
            "data.auto_augment=true works only with data.backend=torchvision (torchvision's "
            "AutoAugment); the FFCV pipeline has no AutoAugment"
        )


def color_ops(clock: Clock, o: DataOptions) -> list:
    """Colour jitter + PCA lighting (``augment_ops.py``) when either is on: appended to any
    training pipeline, after the crop and flip (fb.resnet.torch: crop, jitter, lighting, flip)."""
    if not (o.color_jitter or o.pca_lighting):
        return []
    from .seeded_ffcv import SeededColor

    return [SeededColor(clock, o.color_jitter, o.pca_lighting)]


def check_crop_sides(path: str | Path, ratio: float) -> None:
    """Refuse a ``.beton`` holding an image whose centre crop at ``ratio`` is empty, naming the file and
    the first such sample.  FFCV's ``CenterCropRGBImageDecoder`` crops ``int(ratio * min(h, w))``
    pixels and cv::resize aborts the whole process (SIGABRT, no record) on an empty crop; the image
    metadata (no decoding) tells beforehand.  ``datamodules.write`` skips such images (``MIN_SIDE``)."""
    from ffcv.reader import Reader

    reader = Reader(str(path))
    meta = reader.metadata[f"f{reader.field_names.index('image')}"]
    side = np.minimum(meta["height"], meta["width"]).astype(np.int64)
    bad = np.flatnonzero((ratio * side).astype(np.int64) < 1)
    if len(bad):
        i = int(bad[0])
        w, h = int(meta["width"][i]), int(meta["height"][i])
        raise SampleError(
            f"{path}: sample {i} is {w}x{h} pixels, too small for a centre crop of ratio "
            f"{ratio:g} ({len(bad)} such sample(s)); FFCV would abort the process on it -- "
            "rewrite the dataset with python -m datamodules.write, which skips such images, "
            "or raise data.val_crop_ratio"
        )


def stored_side(path: str | Path) -> int:
    """The median shorter side of the images a ``.beton`` stores (its metadata; no decoding)."""
    from ffcv.reader import Reader

    reader = Reader(str(path))
    meta = reader.metadata[f"f{reader.field_names.index('image')}"]
    return int(np.median(np.minimum(meta["height"], meta["width"])))


class FFCVDataModule(BaseDataModule):
    """Images + integer labels from ``train_path``/``val_path`` ``.beton`` files.

    ``options`` (:class:`DataOptions`, or its fields as keywords): ``batch_size`` is global; each of
    ``world_size`` ranks loads ``batch_size // world_size``.  ``num_classes`` (else ``meta.json``,
    else the labels), ``mean``/``std`` (else ``meta.json``, else ImageNet's) and ``drop_last``
    belong to the files, not to the options.
    """

    def __init__(
        self,
        train_path: str | Path,
        val_path: str | Path,
        options: DataOptions | None = None,
        *,
        augment: str | None = None,
        num_classes: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        drop_last: bool = True,
        **changes: Any,
    ) -> None:
        o = data_options(options, **changes)
        super().__init__(o, augment=augment, mean=mean, std=std)
        check_ffcv_options(o, self.augment)  # before any data is read: a clear one-line refusal
        self.os_cache, self.order, self.batches_ahead = o.os_cache, o.order, o.batches_ahead
        self._progressive = o.progressive  # FFCV must regenerate its pipeline when the size changes
        self.train_path, self.val_path = Path(train_path), Path(val_path)
        self._num_classes = num_classes
        self.drop_last = drop_last
        self.clock = Clock(self.seed)  # the training augmentations' (seed, epoch), see seeded.py
        self._decoders: list = []  # every image decoder built, for decode_stats

    # ------------------------------------------------------------------ metadata
    @property
    def meta_path(self) -> Path:
        return self.train_path.parent / "meta.json"

    def _meta(self) -> dict[str, Any]:
        return read_meta(self.meta_path)

    @property
    def num_classes(self) -> int:
        """From the constructor, else ``meta.json``, else the largest training label + 1."""
        if self._num_classes is None:
            meta = self._meta()
            self._num_classes = int(
                meta.get("num_classes") or beton_labels(self.train_path).max() + 1
            )
            if self._num_classes < 2:
                raise DataError(
                    f"{self.train_path}: {self._num_classes} class (labels and meta.json); "
                    "a classifier needs at least 2"
                )
        return self._num_classes

    @property
    def class_names(self) -> list[str] | None:
        """``meta.json``'s ``classes`` (label i is ``class_names[i]``), if the writer recorded them."""
        return self._meta().get("classes")

    def setup(self, stage: str | None = None) -> None:
        self.train_size, self.val_size = check_beton(self.train_path), check_beton(self.val_path)
        for path in (self.train_path, self.val_path):
            check_labels(path, self.num_classes)
        meta = self._meta()
        self.mean = tuple(self.mean or meta.get("mean") or IMAGENET_MEAN)
        self.std = tuple(self.std or meta.get("std") or IMAGENET_STD)
        check_shardable(str(self.val_path), self.val_size, self.world_size)
        check_crop_sides(self.val_path, self.val_crop_ratio)
        if (
            self.augment == "none"
        ):  # the training centre crop (ratio 1); random-resized crops never empty
            check_crop_sides(self.train_path, 1.0)

    # ------------------------------------------------------------------ loaders
    def _loader(self, path: Path, train: bool, indices: Sequence[int] | None = None):
        from ffcv.fields.decoders import IntDecoder
        from ffcv.loader import OrderOption
        from ffcv.transforms import Squeeze, ToDevice, ToTensor, ToTorchImage

        device, distributed = self.device, self.world_size > 1
        if train:
            image = self.train_image_ops()
            self._train_decoder = image[0]  # progressive resizing changes its output_size per epoch
            self._decoders.append(image[0])
        else:
            center = decoder_classes(self.options.jpeg_decode)[2]
            image = [center((self.val_resolution,) * 2, ratio=self.val_crop_ratio)]
            self._decoders.append(image[0])
        to_device = [ToDevice(device, non_blocking=True)] if device.type != "cpu" else []
        image += [ToTensor(), *to_device, ToTorchImage(channels_last=self.channels_last)]
        label = [IntDecoder(), ToTensor(), Squeeze(), *to_device]
        if not train:
            order = exact_shard_order() if distributed else OrderOption.SEQUENTIAL
        elif (
            self.sampler == "class_aware"
        ):  # label-balanced (Shen et al. 2016), sharded across ranks
            from .sampling import class_aware_order

            order = class_aware_order(self.epoch_samples)
        elif self.order == "quasi_random" and not distributed:
            order = OrderOption.QUASI_RANDOM
        elif self.order == "auto" and not distributed and not self.os_cache:
            order = (
                OrderOption.QUASI_RANDOM
            )  # ffcv-imagenet: QUASI_RANDOM for data that does not fit in RAM
        else:
            order = OrderOption.RANDOM
        loader = guarded_loader_class()(
            str(path),
            batch_size=self.per_device_batch_size(),
            num_workers=decoding_threads(self.num_workers),
            os_cache=self.os_cache,
            order=order,
            distributed=distributed,
            seed=self.seed,
            drop_last=self.drop_last and train,
            pipelines={"image": image, "label": label},
            indices=indices,
            batches_ahead=self.batches_ahead,
            recompile=train and self._progressive,
        )
        loader.stage = self._stage(train)
        if train:
            loader.next_epoch = self.epoch  # a resumed run continues the same order
            loader.clock = self.clock
        return loader

    def _stage(self, train: bool) -> str:
        """What the loader is for, in a dying thread's error: training, validation, evaluation..."""
        if train:
            return "training"
        fn = getattr(getattr(getattr(self.trainer, "state", None), "fn", None), "value", None)
        names = {
            "fit": "validation",
            "validate": "validation",
            "test": "testing",
            "predict": "prediction",
        }
        return getattr(self, "stage_name", None) or names.get(fn, "validation")

    def train_image_ops(self) -> list:
        """Decode + CPU augmentation for training (a subclass may override: CIFAR's pad-and-crop)."""
        return train_image_pipeline(self.augment, self.resolution, self.clock, self.options)

    def decode_stats(self) -> dict[str, int]:
        """With ``data.jpeg_decode=scaled``: the images its decoders decoded per scale factor, at full
        size, by fallback and raw (``jpeg_scaled.decode_stats``); ``{}`` with ``full``."""
        from .jpeg_scaled import ScaledDecode, decode_stats

        scaled = [d for d in self._decoders if isinstance(d, ScaledDecode)]
        return decode_stats(scaled) if scaled else {}

    def set_train_resolution(self, resolution: int) -> None:
        """Progressive resizing (ffcv-imagenet): the next training epoch decodes at ``resolution``.

        Called by the platform's resolution callback from a pure schedule; build the datamodule
        with ``progressive=True`` so the loader recompiles its pipeline code every epoch.
        """
        self.resolution = resolution
        decoder = getattr(self, "_train_decoder", None)
        if decoder is not None and hasattr(decoder, "output_size"):
            decoder.output_size = (resolution, resolution)

    def train_dataloader(self):
        from .resume import (
            ResumableLoader,  # a mid-epoch (preemption) resume skips the batches already done
        )

        return ResumableLoader(self._loader(self.train_path, train=True), self.trainer)

    def val_dataloader(self):
        return self._loader(self.val_path, train=False)

    def train_eval_dataloader(self, indices: Sequence[int]):
        """The training images ``indices`` (in that order) through the validation pipeline: no
        augmentation, the training loss as an analysis measures it (platform/papers/landscape.py)."""
        return self._loader(self.train_path, train=False, indices=sorted(indices))
