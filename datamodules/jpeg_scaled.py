"""Decode only the pixels the crop keeps: DCT-scaled JPEG decoding for the FFCV pipeline (issue 28).

FFCV 1.0.2 decodes every JPEG at full size (``ffcv/fields/rgb_image.py``, ``imdecode`` in
``ffcv/libffcv.py``) and then crops and resizes it down.  libjpeg-turbo can run the inverse DCT at
``n/8`` of the size (TurboJPEG ``tjGetScalingFactors``; ``tjDecompress2`` with the scaled width and
height), which skips most of the IDCT, upsampling and colour conversion.  Per image these decoders
draw the crop first (the same ``(i, j, h, w)`` as the stock decoder: the seeded sampler of
``seeded_ffcv.SeededRandomResizedCrop.crop_code`` or FFCV's ``get_center_crop``), take the smallest
``n/8`` whose scaled crop is still at least the output size, decode at that scale and resize the rest
of the way with FFCV's own ``resize_crop`` (cv2 ``INTER_AREA``).

*Region.*  TurboJPEG 2.1 (Debian 12's ``libturbojpeg0``) has no partial decode; ``tjTransform``
with ``TJXOPT_CROP`` entropy-decodes the whole image and re-encodes the crop: measured 0.57 ms +
0.32 ms to decode the crop vs 0.59 ms for the whole image.  Only scaling is used
(``benchmarks/RESULTS.md``); only 1/8, 2/8, 4/8 (:data:`FAST_NUMERATORS`).

*Fallbacks* (FFCV's own full-size ``imdecode``, as the stock decoder): progressive or lossless
JPEGs (the SOF marker), CMYK/YCCK, a header TurboJPEG refuses, and crops too small to scale (8/8:
bit-identical to stock).  TurboJPEG cannot convert CMYK to RGB at any scale: FFCV's ``imdecode``
fails on it too and ignores the error (the image is whatever the buffer held), as stock does.
Greyscale JPEGs decode scaled (TurboJPEG replicates grey to RGB).  Raw samples are cropped as FFCV
does.  Each decoder counts what it did in :attr:`ScaledDecode.stats` (:func:`decode_stats`);
``FFCVDataModule.decode_stats`` sums them and ``python -m benchmarks data`` prints them.

Called through ctypes from the numba-compiled pipeline, as ``ffcv/libffcv.py`` calls its own C
extension: no compiled code of ours, the system's ``libturbojpeg.so.0``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from ctypes import c_int, c_uint64, c_void_p
from typing import Callable

import numpy as np
from ffcv.fields.rgb_image import CenterCropRGBImageDecoder, get_center_crop
from ffcv.pipeline.compiler import Compiler

from .seeded import numba_helpers
from .seeded_ffcv import SeededRandomResizedCrop, SeededScaleCrop

TJPF_RGB, TJFLAG_FASTDCT = 0, 2048  # turbojpeg.h; FFCV's imdecode decodes with TJFLAG_FASTDCT
TJCS_CMYK, TJCS_YCCK = 3, 4
# The factors used by default: those libjpeg-turbo 2.1 decodes faster than full size on x86-64 -- its
# SIMD reduced IDCTs (jidctred: 1x1, 2x2, 4x4).  n = 3, 5, 6, 7 run plain-C IDCTs: on the benchmark's
# q90 JPEGs 3/8 decodes about as fast as 8/8, 5/8-7/8 slower (benchmarks/RESULTS.md, factor sweep).
FAST_NUMERATORS = (1, 2, 4)
SLOTS = 4096  # rows of counts, one per batch position (modulo): no two threads share a row
# stats columns: 0..6 images decoded at n/8 (n = 1..7), 7 unused, 8 full size (crop too small to
# scale), 9 fallback (progressive / CMYK / refused header / failed scaled decode), 10 raw samples
FULL, FALLBACK, RAW, KINDS = 8, 9, 10, 11


class TurboJPEGMissing(RuntimeError):
    """libturbojpeg could not be loaded (``scripts/setup.sh`` installs ``libturbojpeg0-dev``)."""


@functools.cache
def turbojpeg() -> ctypes.CDLL:
    """Our own handle on ``libturbojpeg.so.0`` (its function objects carry our argtypes)."""
    name = ctypes.util.find_library("turbojpeg") or "libturbojpeg.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        raise TurboJPEGMissing(
            f"data.jpeg_decode=scaled needs libturbojpeg ({e}); install libturbojpeg0-dev "
            "(scripts/setup.sh) or set data.jpeg_decode=full"
        ) from e
    lib.tjInitDecompress.argtypes, lib.tjInitDecompress.restype = [], c_uint64
    lib.tjDestroy.argtypes, lib.tjDestroy.restype = [c_uint64], c_int
    lib.tjDecompressHeader3.argtypes = [c_uint64, c_void_p, c_uint64, *[c_void_p] * 4]
    lib.tjDecompressHeader3.restype = c_int
    lib.tjDecompress2.argtypes = [c_uint64, c_void_p, c_uint64, c_void_p, *[c_int] * 5]
    lib.tjDecompress2.restype = c_int
    lib.tjGetScalingFactors.argtypes, lib.tjGetScalingFactors.restype = [c_void_p], c_void_p
    return lib


def scaling_numerators(allowed=FAST_NUMERATORS) -> np.ndarray:
    """The ``n`` of every factor ``n/8 < 1`` libjpeg-turbo offers (``tjGetScalingFactors``) that is
    in ``allowed`` (None: all)."""
    count = np.zeros(1, np.int32)
    ptr = turbojpeg().tjGetScalingFactors(count.ctypes.data)
    pairs = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(c_int)), (int(count[0]) * 2,))
    nums = {int(n * 8 // d) for n, d in pairs.reshape(-1, 2) if n * 8 % d == 0 and n < d}
    nums = nums if allowed is None else nums & set(allowed)
    return np.array(sorted(nums), np.int64)


def jpeg_sof(data: np.ndarray) -> int:
    """The JPEG's start-of-frame marker (0xC0 baseline, 0xC1 extended, 0xC2 progressive...), or -1
    when ``data`` is not a JPEG or no frame header precedes the first scan."""
    n = data.shape[0]
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return -1
    k = 2
    while k + 4 <= n:
        if data[k] != 0xFF:
            return -1
        m = int(data[k + 1])
        if m == 0xFF:  # fill byte
            k += 1
            continue
        if 0xC0 <= m <= 0xCF and m != 0xC4 and m != 0xC8 and m != 0xCC:
            return m
        if m == 0xD9 or m == 0xDA:
            return -1
        k += 2 + int(data[k + 2]) * 256 + int(data[k + 3])
    return -1


def scaled_box(i, j, h, w, height, width, n, out_h, out_w):
    """``(y0, y1, x0, x1, sh, sw)``: the crop ``(i, j, h, w)`` of a ``height x width`` image in
    its ``n/8``-scaled decode (``sh x sw``, TurboJPEG's ``TJSCALED``: rounded up), edges rounded;
    ``y1 = -1`` when the scaled crop is smaller than ``out_h x out_w``."""
    sh, sw = (height * n + 7) // 8, (width * n + 7) // 8
    y0, x0 = (i * n + 4) // 8, (j * n + 4) // 8
    y1, x1 = min(((i + h) * n + 4) // 8, sh), min(((j + w) * n + 4) // 8, sw)
    if y1 - y0 < out_h or x1 - x0 < out_w:
        return y0, -1, x0, x1, sh, sw
    return y0, y1, x0, x1, sh, sw


def _state_view(jit) -> Callable:
    """``state_view(address)``: the ``SLOTS x KINDS`` counts at ``address``, writable from compiled
    code (as ``seeded._numba_helpers``' clock: numba freezes captured arrays, not addresses)."""
    from numba import carray, types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def as_pointer(typingctx, address):
        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], cgutils.voidptr_t)

        return types.voidptr(address), codegen

    def state_view(address):
        return carray(as_pointer(address), (SLOTS, KINDS), np.int64)

    return jit(state_view)


def kernels() -> dict[str, Callable]:
    """The numba-compiled pieces, fresh dispatchers per call (per decoder): ``decode_crop`` and its
    helpers.  Shared dispatchers compiled for a second signature from FFCV's loader thread failed
    in numba 0.68's dispatcher (``KeyError`` in ``nopython_signatures``)."""
    from ffcv.libffcv import imdecode, resize_crop
    from numba import njit

    lib = turbojpeg()
    tj_init, tj_destroy = lib.tjInitDecompress, lib.tjDestroy
    tj_header, tj_decompress = lib.tjDecompressHeader3, lib.tjDecompress2
    jit = functools.partial(njit, nogil=True, cache=False)
    sof_c, box_c, state_view = jit(jpeg_sof), jit(scaled_box), _state_view(jit)
    imdecode_c, resize_c = jit(imdecode), jit(resize_crop)

    def stock(data, temp, height, width, i, j, h, w, dst):  # FFCV's full-size decode + resize
        imdecode_c(data, temp, height, width, height, width, 0, 0, 1, 1, False, False)
        full = temp.reshape(-1)[: 3 * height * width].reshape(height, width, 3)
        resize_c(full, i, i + h, j, j + w, dst)

    stock_c = jit(stock)

    def scaled(data, temp, height, width, i, j, h, w, dst, nums):
        """The numerator used (1..7), ``FULL`` when none fits, ``FALLBACK`` when it cannot scale."""
        n, y0, y1, x0, x1, sh, sw = 8, 0, 0, 0, 0, height, width
        for k in range(nums.shape[0]):
            y0, y1, x0, x1, sh, sw = box_c(
                i, j, h, w, height, width, nums[k], dst.shape[0], dst.shape[1]
            )
            if y1 >= 0:
                n = nums[k]
                break
        if n == 8:
            return FULL
        sof = sof_c(data)
        if sof != 0xC0 and sof != 0xC1:
            return FALLBACK
        # A handle per image: TurboJPEG's error handler longjmps to the setjmp of the last call on
        # the handle, so a handle two threads share aborts the process ("longjmp causes
        # uninitialized stack frame").  Two iterators of one loader do run at once: Lightning's
        # _check_dataloader_iterable calls iter() on a non-DataLoader (data_connector.py).
        handle = tj_init()
        hdr = np.zeros(4, np.int32)  # width, height, subsampling, colour space
        p = hdr.ctypes.data
        ok = tj_header(handle, data.ctypes.data, data.size, p, p + 4, p + 8, p + 12) == 0
        ok = ok and hdr[3] != TJCS_CMYK and hdr[3] != TJCS_YCCK
        ok = ok and hdr[0] == width and hdr[1] == height
        if ok:
            ok = tj_decompress(handle, data.ctypes.data, data.size, temp.ctypes.data, sw, 3 * sw,
                               sh, TJPF_RGB, TJFLAG_FASTDCT) == 0  # fmt: skip
        tj_destroy(handle)
        if not ok:
            return FALLBACK
        image = temp.reshape(-1)[: 3 * sh * sw].reshape(sh, sw, 3)
        resize_c(image, y0, y1, x0, x1, dst)
        return n

    scaled_c = jit(scaled)

    def decode_crop(data, is_jpeg, temp, height, width, i, j, h, w, dst, slot, address, nums):
        """Crop ``(i, j, h, w)`` of one sample into ``dst``, counted in the state at ``address``."""
        state = state_view(address)
        row = slot % SLOTS
        if not is_jpeg:
            resize_c(data.reshape(height, width, 3), i, i + h, j, j + w, dst)
            state[row, RAW] += 1
            return
        kind = scaled_c(data, temp, height, width, i, j, h, w, dst, nums)
        if kind == FULL or kind == FALLBACK:
            stock_c(data, temp, height, width, i, j, h, w, dst)
        state[row, kind - 1 if kind < FULL else kind] += 1

    return {"decode_crop": jit(decode_crop), "scaled_box": box_c, "jpeg_sof": sof_c}


class ScaledDecode:
    """What the scaled decoders share: the per-slot counts and their statistics."""

    def init_scaled(self, numerators=FAST_NUMERATORS) -> None:
        # row r: the counts of batch position r (modulo SLOTS), columns as KINDS
        self.state = np.zeros((SLOTS, KINDS), np.int64)
        self.nums = scaling_numerators(numerators)

    @property
    def stats(self) -> np.ndarray:
        """Images per kind since construction: ``[n=1..7 scaled, full size, fallback, raw]``."""
        return self.state.sum(axis=0)

    def generate_code(self) -> Callable:
        from ffcv.fields.rgb_image import IMAGE_MODES

        jpg, mem_read, my_range = IMAGE_MODES["jpg"], self.memory_read, Compiler.get_iterator()
        decode_crop, address, nums = (
            kernels()["decode_crop"],
            int(self.state.ctypes.data),
            self.nums,
        )
        draw = self.crop_drawer()

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination, temp_storage = my_storage
            for dst_ix in my_range(len(batch_indices)):
                source_ix = batch_indices[dst_ix]
                field = metadata[source_ix]
                data = mem_read(field["data_ptr"], storage_state)
                height, width = np.int64(field["height"]), np.int64(field["width"])
                i, j, h, w = draw(height, width, source_ix)
                decode_crop(data, field["mode"] == jpg, temp_storage[dst_ix], height, width,
                            i, j, h, w, destination[dst_ix], dst_ix, address, nums)  # fmt: skip
            return destination[: len(batch_indices)]

        decode.is_parallel = True
        return decode


def decode_stats(decoders) -> dict[str, int]:
    """The summed counts of ``decoders`` (:class:`ScaledDecode`), keyed ``"n/8"``, ``full``,
    ``fallback``, ``raw``: every image decoded, prefetched batches and any second iterator's
    included (counts of one batch position from two threads at once may lose an increment)."""
    total = sum((d.stats for d in decoders), np.zeros(KINDS, np.int64))
    out = {f"{n}/8": int(total[n - 1]) for n in range(1, 8) if total[n - 1]}
    out.update(full=int(total[FULL]), fallback=int(total[FALLBACK]), raw=int(total[RAW]))
    return out


# --------------------------------------------------------------------------- the FFCV decoders
def _seeded_drawer(op: SeededRandomResizedCrop) -> Callable:
    """``draw(height, width, index) -> (i, j, h, w)``: the stock seeded op's own crop, same seed."""
    crop_c, params = op.crop_code()
    sample_seed, read_clock = numba_helpers()
    address, stream = op.clock.address, op.stream

    def draw(height, width, index):
        seed, epoch = read_clock(address)
        np.random.seed(sample_seed(seed + stream, epoch, index))
        i, j, h, w = crop_c(height, width, params)
        return np.int64(i), np.int64(j), np.int64(h), np.int64(w)

    return Compiler.compile(draw)


class ScaledRandomResizedCrop(ScaledDecode, SeededRandomResizedCrop):
    """``SeededRandomResizedCrop`` (same crops for the same seed), decoded at a reduced scale."""

    def __init__(self, *args, numerators=FAST_NUMERATORS, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.init_scaled(numerators)

    def crop_drawer(self) -> Callable:
        return _seeded_drawer(self)


class ScaledScaleCrop(ScaledDecode, SeededScaleCrop):
    """``SeededScaleCrop`` (He et al. scale augmentation), decoded at a reduced scale."""

    def __init__(self, *args, numerators=FAST_NUMERATORS, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.init_scaled(numerators)

    def crop_drawer(self) -> Callable:
        return _seeded_drawer(self)


class ScaledCenterCrop(ScaledDecode, CenterCropRGBImageDecoder):
    """FFCV's ``CenterCropRGBImageDecoder`` (the same box: ``get_center_crop``), decoded scaled."""

    def __init__(self, output_size, ratio: float, numerators=FAST_NUMERATORS) -> None:
        super().__init__(output_size, ratio)
        self.init_scaled(numerators)

    def crop_drawer(self) -> Callable:
        center_c, ratio = Compiler.compile(get_center_crop), self.ratio

        def draw(height, width, index):
            i, j, h, w = center_c(height, width, None, ratio)
            return np.int64(i), np.int64(j), np.int64(h), np.int64(w)

        return Compiler.compile(draw)
