"""Model-input preprocessing: intensity window, normalisation and letterbox resize of radiographs.

:func:`preprocess` is one fused kernel (C++ on the CPU, CUDA on the GPU, identical semantics) and :class:`Letterbox`
records what it did to the geometry (its :attr:`Letterbox.transform`) so that model outputs can be mapped back to
image pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .. import _core
from ..geometry import Transform
from ._args import array_arg, array_dtype, array_shape, int_pair, pair

__all__ = ["Letterbox", "preprocess"]

#: A float32 window spanning fewer of the 4096 histogram bins over [min, max] than this is replaced by the exact
#: percentiles (extreme pixels have squeezed the image into a few bins), see :func:`preprocess`.
REFINE_BELOW_BINS = 256


@dataclass(frozen=True)
class Letterbox:
    """Where one image went on the model canvas, and with which intensity window.

    Coordinates are continuous pixel coordinates ``(x, y)`` (pixel ``(col, row)`` covers ``[col, col+1) x
    [row, row+1)``, its centre is ``(col + 0.5, row + 0.5)``), in the image and on the model canvas:
    ``x_model = x_image * scale_x + pad_x``, ``y_model = y_image * scale_y + pad_y``.

    Attributes:
        in_hw: ``(H, W)`` of the source image.
        out_hw: ``(out_h, out_w)`` of the canvas (the model input).
        resized_hw: ``(new_h, new_w)``: the image's size on the canvas (``round(H * s)``, ``round(W * s)`` with
            ``s = min(out_h / H, out_w / W)``, rounded half up, the limiting side exactly the canvas side, >= 1).
        scale_x, scale_y: ``new_w / W`` and ``new_h / H`` (they differ slightly because of the rounding; these are the
            factors the resampler used, so the mapping is exact for the rounded size).
        pad_x, pad_y: top-left corner of the resized image on the canvas: ``(out_w - new_w) // 2``,
            ``(out_h - new_h) // 2``.
        window: ``(lo, hi)`` intensity window applied to the image (raw intensity units, float32 values).
        window_warning: None, or (float32 images whose window was taken from the exact percentiles because extreme
            pixels squeezed the histogram, see :func:`preprocess`) a sentence for the user saying how many pixels
            lie far outside the window and were clipped, and the image's range.
    """

    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    window: tuple[float, float]
    window_warning: str | None = None

    @property
    def transform(self) -> Transform:
        """The map from image points to model-canvas points (:class:`ramh_rt.geometry.Transform`;
        ``.inverse()`` maps back): ``x * scale_x + pad_x``, ``y * scale_y + pad_y``, lengths times the mean scale."""
        return Transform.scale_shift(self.scale_x, self.scale_y, self.pad_x, self.pad_y)

    def to_model(self, xy) -> np.ndarray:
        """Map image points to the model canvas.

        Args:
            xy: ``(..., 2)`` array-like of ``(x, y)`` continuous image coordinates (e.g. ``N x 2``).
        Returns:
            float64 array of the same shape: ``(x * scale_x + pad_x, y * scale_y + pad_y)``.
        Raises:
            ValueError: when the last dimension is not 2 or a value is not a number.
        """
        return self.transform.apply(xy)

    def to_image(self, xy) -> np.ndarray:
        """Map model-canvas points back to the image (the exact inverse of :meth:`to_model`).

        Args:
            xy: ``(..., 2)`` array-like of ``(x, y)`` continuous canvas coordinates.
        Returns:
            float64 array of the same shape: ``((x - pad_x) / scale_x, (y - pad_y) / scale_y)``.
        Raises:
            ValueError: when the last dimension is not 2 or a value is not a number.
        """
        return self.transform.inverse().apply(xy)


def preprocess(image, out_hw: Sequence[int], window=None, dtype="float32", *,
               percentiles: Sequence[float] = (0.5, 99.5), mean: float = 0.0, std: float = 1.0,
               pad_value: float | None = None, antialias: bool = True):
    """Window, normalise and letterbox-resize radiographs into a model input tensor.

    For each image: ``v' = clip((v - lo) / (hi - lo), 0, 1)`` on the raw intensities (in float32, as
    ``(v - lo) * (1 / (hi - lo))``), then resampled to the letterbox size, then ``(v' - mean) / std``, centred on an
    ``out_h x out_w`` canvas whose border holds ``pad_value``. Windowing comes *before* resampling because the window is
    defined on raw intensities and clipping does not commute with filtering (a bright cortex next to dark soft tissue
    would otherwise be blurred before it is clipped).

    Resampling is separable with half-pixel centres (output pixel ``o`` looks at source position ``(o + 0.5) * s``,
    ``s = in / new``). With ``antialias=True`` a downscale uses a tent filter whose radius is ``s`` source pixels, as
    PIL's BILINEAR resize and ``torch.nn.functional.interpolate(mode="bilinear", antialias=True)`` do; otherwise (and
    for upscaling) it is plain bilinear interpolation with edge clamping (``cv2.resize(INTER_LINEAR)``,
    ``interpolate(antialias=False)``).

    Window. ``window=None`` computes ``(lo, hi)`` per image from its histogram at ``percentiles``: with ``n`` pixels and
    ``k(p) = max(1, ceil(p * n / 100))``, the percentile is the ``k``-th smallest pixel (numpy's
    ``method="inverted_cdf"``). uint8 and uint16 images are exact (one bin per value). float32 images use 4096 equal
    bins over ``[min, max]`` (``bin = min(4095, floor((v - min) * 4096 / (max - min)))`` in float64); ``lo`` is the
    lower edge of the low percentile's bin and ``hi`` the upper edge of the high percentile's bin, so the window holds
    both percentiles and ``percentiles=(0, 100)`` gives exactly ``(min, max)``. A few extreme pixels (one 1e9 in a
    0..4095 image) would squeeze the image into a few bins and collapse that window: when it spans fewer than
    :data:`REFINE_BELOW_BINS` of the 4096 bins, ``(lo, hi)`` become the exact percentiles (the k-th smallest pixels,
    as for integer images; computed on the host, from a copy for CUDA input) and ``Letterbox.window_warning`` says
    how many pixels were clipped. Both devices decide and compute this identically; normal images are unaffected
    (their window and output are bit-identical to the binned ones) at the cost of one extra min/max pass.
    When ``lo == hi`` (a constant image, or percentiles that coincide) the window becomes the step
    ``v' = 1 if v > lo else 0``: a constant image gives ``v' = 0`` everywhere, i.e. ``(0 - mean) / std``.

    Args:
        image: ``H x W`` or ``N x H x W`` (a batch of same-size images) of uint8, uint16 or float32; a NumPy array
            (float64 is converted to float32 first, any byte order is accepted; other dtypes are refused) or a CUDA
            array (:class:`ramh_rt.DeviceArray`, CuPy, torch, ``__cuda_array_interface__``; C-contiguous, already
            uint8/uint16/float32).
        out_hw: ``(out_h, out_w)`` of the model input, both > 0.
        window: ``None`` (percentiles), ``(lo, hi)`` for every image, or an ``N x 2`` array, in raw intensity units;
            finite with ``lo < hi``.
        dtype: ``"float32"`` or ``"float16"`` (the float32 result rounded to nearest even; identical bits on CPU and
            CUDA).
        percentiles: ``(p_lo, p_hi)`` with ``0 <= p_lo < p_hi <= 100``; used only when ``window`` is None.
        mean, std: normalisation after windowing (``std > 0``).
        pad_value: value of the canvas outside the image, in output units; default ``(0 - mean) / std`` (black).
        antialias: tent filter widened by the downscale factor (True) or plain bilinear (False).

    Returns:
        ``(tensor, transform)``: ``tensor`` is ``N x 1 x out_h x out_w`` (``N = 1`` for a 2-D image) of ``dtype``, a
        NumPy array for host input or a :class:`ramh_rt.DeviceArray` on the image's device; ``transform`` is a
        :class:`Letterbox` for a 2-D image and a list of ``N`` :class:`Letterbox` (same geometry, each with its own
        window) for a 3-D one.

    Raises:
        ValueError: empty or zero-size image, unsupported dtype or number of dimensions, a float image with NaN or
            inf values (the message says how many), bad ``out_hw``/``window``/``percentiles``/``mean``/``std``/
            ``pad_value``/``dtype``.
        RuntimeError: a CUDA failure, or a CUDA image given to a build without CUDA.

    Example:
        >>> img = np.random.default_rng(0).integers(0, 4096, (2048, 2560), dtype=np.uint16)
        >>> x, lb = preprocess(img, (512, 640), dtype="float16")
        >>> x.shape, lb.resized_hw, lb.pad_x
        ((1, 1, 512, 640), (512, 640), 0)
        >>> lb.to_image([[320.0, 256.0]])  # canvas centre -> image centre
        array([[1280., 1024.]])
    """
    image = array_arg(image, "image", (np.uint8, np.uint16, np.float32), float64_to_float32=True)
    out_h, out_w = int_pair(out_hw, "out_hw", "integers (out_h, out_w)")
    p_lo, p_hi = pair(percentiles, "percentiles")
    if window is not None:
        try:
            window = np.asarray(window, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"window must be (lo, hi) or an N x 2 array of numbers, got {window!r}") from None
    if isinstance(dtype, str) and dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
    pad = None if pad_value is None else float(pad_value)
    tensor, windows = _core.preprocess(image, out_h, out_w, window, dtype, p_lo, p_hi, float(mean), float(std), pad,
                                       bool(antialias))
    shape = array_shape(image)
    notes: list[str | None] = [None] * len(windows)
    if window is None and array_dtype(image) == np.float32:
        refined, notes = _refine_float_windows(image, windows, p_lo, p_hi)
        if refined is not None:  # rerun with the exact windows (the others passed back unchanged: same output)
            tensor, windows = _core.preprocess(image, out_h, out_w, refined[0] if len(shape) == 2 else refined,
                                               dtype, p_lo, p_hi, float(mean), float(std), pad, bool(antialias))
    h, w = shape[-2], shape[-1]
    g = _core.letterbox_geometry(h, w, out_h, out_w)
    boxes = [Letterbox(in_hw=tuple(g["in_hw"]), out_hw=tuple(g["out_hw"]), resized_hw=tuple(g["resized_hw"]),
                       scale_x=float(g["scale_x"]), scale_y=float(g["scale_y"]), pad_x=int(g["pad_x"]),
                       pad_y=int(g["pad_y"]), window=(float(lo), float(hi)), window_warning=note)
             for (lo, hi), note in zip(windows, notes)]
    return tensor, (boxes[0] if len(shape) == 2 else boxes)


def _refine_float_windows(image, windows, p_lo: float, p_hi: float):
    """``(N x 2 windows or None, notes)``: exact percentile windows for the images whose binned window is too coarse
    (see :func:`preprocess`), None when no image needs one."""
    # (min, max) of each image exactly as the kernel sees them: its own window at percentiles (0, 100), on a 1 x 1
    # canvas without antialiasing (the resampling then reads 4 pixels).
    _, ranges = _core.preprocess(image, 1, 1, None, "float32", 0.0, 100.0, 0.0, 1.0, None, False)
    # in float64: the windows come as float32 values, whose width times 4096 can overflow float32
    coarse = []
    for i, ((lo, hi), (mn, mx)) in enumerate(zip(windows, ranges)):
        lo, hi, mn, mx = float(lo), float(hi), float(mn), float(mx)
        if mx > mn and (hi - lo) * 4096.0 < REFINE_BELOW_BINS * (mx - mn):
            coarse.append(i)
    notes: list[str | None] = [None] * len(windows)
    if not coarse:
        return None, notes
    host = image if isinstance(image, np.ndarray) else _core.to_host(image)
    host = host.reshape(-1, host.shape[-2], host.shape[-1])
    out = np.array([[lo, hi] for lo, hi in windows], dtype=np.float64)
    for i in coarse:
        out[i], notes[i] = _exact_window(host[i], p_lo, p_hi, ranges[i])
    return out, notes


def _exact_window(img: np.ndarray, p_lo: float, p_hi: float, value_range) -> tuple[tuple[float, float], str]:
    """The ``(k_lo, k_hi)``-th smallest pixels (the kernel's rank definition ``k(p) = max(1, ceil(p * n / 100))``,
    numpy's ``inverted_cdf``) and a sentence on the pixels clipped far outside them."""
    flat = img.reshape(-1)
    n = flat.size
    k_lo, k_hi = (max(1, min(n, math.ceil(p * n / 100.0))) - 1 for p in (p_lo, p_hi))
    part = np.partition(flat, sorted({k_lo, k_hi}))
    lo, hi = float(part[k_lo]), float(part[k_hi])
    if not hi > lo:  # constant apart from the extremes: the smallest window above that value
        hi = float(np.nextafter(np.float32(lo), np.float32(np.inf)))
    width = hi - lo
    far = int(np.count_nonzero((flat < lo - width) | (flat > hi + width)))
    mn, mx = (float(v) for v in value_range)
    note = (f"intensity window: {far} pixel(s) lie far outside the {p_lo:g}-{p_hi:g} percentile window "
            f"[{lo:.6g}, {hi:.6g}] (image range [{mn:.6g}, {mx:.6g}]) and were clipped; the window was taken from the "
            "exact percentiles because those extremes squeezed the image's histogram")
    return (lo, hi), note

