"""FFCV 1.0.2's random ops, reseeded per sample from (seed, epoch, index) (see ``seeded.py``).

Each op's ``generate_code`` follows FFCV's (``ffcv/fields/rgb_image.py``
``ResizedCropRGBImageDecoder.generate_code``, ``ffcv/transforms/flip.py``,
``ffcv/transforms/translate.py``) with one change: before a sample's draws, numba's ``np.random``
is seeded with ``sample_seed(seed, epoch, index)``, ``[seed, epoch]`` read from the op's
:class:`datamodules.seeded.Clock`.  Transforms receive the batch's dataset indices through FFCV's
``with_indices`` protocol (``ffcv/pipeline/graph.py``).  Imported only when FFCV is used.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
from ffcv.fields.rgb_image import (
    IMAGE_MODES,
    RandomResizedCropRGBImageDecoder,
    get_random_crop,
    imdecode,
    resize_crop,
)
from ffcv.pipeline.allocation_query import AllocationQuery
from ffcv.pipeline.compiler import Compiler
from ffcv.pipeline.operation import Operation

from .augment_ops import kernels
from .seeded import (
    STREAM_COLOR,
    STREAM_CROP,
    STREAM_FLIP,
    STREAM_SCALE,
    STREAM_TRANSLATE,
    Clock,
    numba_helpers,
)


class SeededRandomResizedCrop(RandomResizedCropRGBImageDecoder):
    """``RandomResizedCropRGBImageDecoder`` whose crop of sample i is drawn from its own seed."""

    stream = STREAM_CROP

    def __init__(self, clock: Clock, output_size, scale=(0.08, 1.0), ratio=(0.75, 4 / 3)):
        super().__init__(output_size, scale=scale, ratio=ratio)
        self.clock = clock

    def crop_code(self) -> tuple[Callable, np.ndarray]:
        """``(crop(height, width, params) -> (i, j, h, w), params)``, compiled."""
        get_crop_c = Compiler.compile(get_random_crop)

        def crop(height, width, p):
            return get_crop_c(height, width, p[0:2], p[2:4])

        return Compiler.compile(crop), np.array([*self.scale, *self.ratio], dtype=np.float64)

    def generate_code(self) -> Callable:
        jpg = IMAGE_MODES["jpg"]
        mem_read = self.memory_read
        my_range = Compiler.get_iterator()
        imdecode_c = Compiler.compile(imdecode)
        resize_crop_c = Compiler.compile(resize_crop)
        crop_c, params = self.crop_code()
        sample_seed, read_clock = numba_helpers()
        address, stream = self.clock.address, self.stream

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination, temp_storage = my_storage
            seed, epoch = read_clock(address)
            for dst_ix in my_range(len(batch_indices)):
                source_ix = batch_indices[dst_ix]
                field = metadata[source_ix]
                image_data = mem_read(field["data_ptr"], storage_state)
                height = np.uint32(field["height"])
                width = np.uint32(field["width"])
                if field["mode"] == jpg:
                    temp_buffer = temp_storage[dst_ix]
                    imdecode_c(
                        image_data,
                        temp_buffer,
                        height,
                        width,
                        height,
                        width,
                        0,
                        0,
                        1,
                        1,
                        False,
                        False,
                    )
                    selected_size = 3 * height * width
                    temp_buffer = temp_buffer.reshape(-1)[:selected_size]
                    temp_buffer = temp_buffer.reshape(height, width, 3)
                else:
                    temp_buffer = image_data.reshape(height, width, 3)
                np.random.seed(sample_seed(seed + stream, epoch, source_ix))
                i, j, h, w = crop_c(height, width, params)
                resize_crop_c(temp_buffer, i, i + h, j, j + w, destination[dst_ix])
            return destination[: len(batch_indices)]

        decode.is_parallel = True
        return decode


class SeededScaleCrop(SeededRandomResizedCrop):
    """He et al. 2015 §3.4 scale augmentation (``augment_ops.scale_crop``): the shorter side to
    S ~ U{smin..smax}, a random ``output_size`` crop -- as the equivalent source crop, resized."""

    stream = STREAM_SCALE

    def __init__(self, clock: Clock, output_size, smin: int, smax: int) -> None:
        super().__init__(clock, output_size)
        self.smin, self.smax = int(smin), int(smax)

    def crop_code(self) -> tuple[Callable, np.ndarray]:
        scale_crop = kernels()["scale_crop"]

        def crop(height, width, p):
            i, j, side = scale_crop(height, width, np.int64(p[0]), np.int64(p[1]), np.int64(p[2]))
            return i, j, side, side

        params = np.array([self.smin, self.smax, self.output_size[0]], dtype=np.float64)
        return Compiler.compile(crop), params


class SeededColor(Operation):
    """Colour jitter + PCA lighting (``augment_ops.color_apply``) on uint8 HWC images, each sample
    from its colour-stream seed -- the same numbers the torchvision transform draws."""

    def __init__(self, clock: Clock, jitter: float, lighting: float) -> None:
        super().__init__()
        self.clock, self.jitter, self.lighting = clock, float(jitter), float(lighting)

    def generate_code(self) -> Callable:
        my_range = Compiler.get_iterator()
        color = kernels()["color"]
        jitter, lighting, address = self.jitter, self.lighting, self.clock.address
        sample_seed, read_clock = numba_helpers()

        def jitter_color(images, dst, indices):
            seed, epoch = read_clock(address)
            for i in my_range(images.shape[0]):
                color(
                    images[i], sample_seed(seed + STREAM_COLOR, epoch, indices[i]), jitter, lighting
                )
            return images

        jitter_color.is_parallel = True
        jitter_color.with_indices = True
        return jitter_color

    def declare_state_and_memory(self, previous_state):
        return replace(previous_state, jit_mode=True), None


class SeededFlip(Operation):
    """``RandomHorizontalFlip(flip_prob)``, each sample's coin from its own seed."""

    def __init__(self, clock: Clock, flip_prob: float = 0.5) -> None:
        super().__init__()
        self.clock, self.flip_prob = clock, flip_prob

    def generate_code(self) -> Callable:
        my_range = Compiler.get_iterator()
        flip_prob, address, stream = self.flip_prob, self.clock.address, STREAM_FLIP
        sample_seed, read_clock = numba_helpers()

        def flip(images, dst, indices):
            seed, epoch = read_clock(address)
            for i in my_range(images.shape[0]):
                np.random.seed(sample_seed(seed + stream, epoch, indices[i]))
                if np.random.rand() < flip_prob:
                    dst[i] = images[i, :, ::-1]
                else:
                    dst[i] = images[i]
            return dst

        flip.is_parallel = True
        flip.with_indices = True
        return flip

    def declare_state_and_memory(self, previous_state):
        return (
            replace(previous_state, jit_mode=True),
            AllocationQuery(previous_state.shape, previous_state.dtype),
        )


class SeededTranslate(Operation):
    """``RandomTranslate(padding, fill)``: pad by ``padding`` and crop back at an offset drawn from the
    sample's seed; ``reflect=True`` pads by mirroring the border instead of with ``fill``."""

    def __init__(self, clock: Clock, padding: int, fill=(0, 0, 0), reflect: bool = False) -> None:
        super().__init__()
        self.clock, self.padding, self.reflect = clock, int(padding), bool(reflect)
        self.fill = np.array(fill)

    def generate_code(self) -> Callable:
        my_range = Compiler.get_iterator()
        pad, fill, reflect, address = self.padding, self.fill, self.reflect, self.clock.address
        sample_seed, read_clock = numba_helpers()
        stream = STREAM_TRANSLATE

        def translate(images, dst, indices):
            n, h, w, _ = images.shape
            seed, epoch = read_clock(address)
            for i in my_range(n):
                dst[i] = fill
                dst[i, pad : pad + h, pad : pad + w] = images[i]
                if reflect:  # numpy's mode='reflect' (edge not repeated), as WRN's release
                    for k in range(1, pad + 1):
                        dst[i, pad - k, pad : pad + w] = images[i, k]
                        dst[i, pad + h - 1 + k, pad : pad + w] = images[i, h - 1 - k]
                    for k in range(1, pad + 1):
                        dst[i, :, pad - k] = dst[i, :, pad + k]
                        dst[i, :, pad + w - 1 + k] = dst[i, :, pad + w - 1 - k]
                np.random.seed(sample_seed(seed + stream, epoch, indices[i]))
                y = np.random.randint(0, 2 * pad + 1)
                x = np.random.randint(0, 2 * pad + 1)
                images[i] = dst[i, y : y + h, x : x + w]
            return images

        translate.is_parallel = True
        translate.with_indices = True
        return translate

    def declare_state_and_memory(self, previous_state):
        h, w, c = previous_state.shape
        if self.reflect and self.padding >= min(h, w):
            raise ValueError(f"reflect padding {self.padding} needs images larger than {h}x{w}")
        return (
            replace(previous_state, jit_mode=True),
            AllocationQuery((h + 2 * self.padding, w + 2 * self.padding, c), previous_state.dtype),
        )
