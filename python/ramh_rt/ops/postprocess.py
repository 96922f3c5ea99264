"""Mask postprocessing: segmentation logits -> cleaned binary masks and an instance table, in one call.

The C++ core does the work (``ramh_rt._core.postprocess_masks``): thresholding or argmax, 8-connected components
per (image, channel), selection of the kept components, optional hole filling, and the statistics of every kept
instance — on the CPU (OpenMP over planes) or on CUDA (all planes at once; only the instance table comes back to
the host). Both devices give the same answer: masks and integer fields bit-identical, float fields within 1e-5
relative. :func:`upsample_instance` then takes one kept instance to the image's resolution (on the host).
"""
from __future__ import annotations

import numbers
from typing import Sequence, Union

import numpy as np

from .. import _core
from ._args import array_arg, check_record_layout, int_value
from .roi import crop_rois

__all__ = ["INSTANCE_DTYPE", "postprocess_masks", "dilated_window", "upsample_instance"]

#: dtype of the instance table returned by :func:`postprocess_masks` (80 bytes per instance, no padding).
#:
#: ================== ============ ============================================================================
#: field              dtype        meaning
#: ================== ============ ============================================================================
#: batch              int32        image index ``n`` (0 for ``C x H x W`` input)
#: channel            int32        channel ``c``
#: index              int32        instance index within (batch, channel): 0, 1, ... in raster order of the
#:                                 instance's first pixel
#: area               int32        pixels, filled holes included
#: bbox               int32 (4,)   ``x0, y0, x1, y1`` in pixels, ``x1``/``y1`` exclusive
#: centroid           float64 (2,) ``x, y``: mean of (col, row) + 0.5 (continuous coordinates: pixel (col, row)
#:                                 covers ``[col, col+1) x [row, row+1)``)
#: orientation        float64      degrees of the major axis, counter-clockwise from +x *as seen on screen*
#:                                 (image y points down), in (-90, 90]; 0 for a shape without a major axis
#: major_axis_length  float64      pixels, scikit-image's definition: 4 sqrt(larger eigenvalue of the
#:                                 covariance of the pixel coordinates)
#: minor_axis_length  float64      pixels, 4 sqrt(smaller eigenvalue)
#: mean_score         float64      mean over the instance's pixels (filled holes included) of sigmoid(logit)
#:                                 (multilabel) or of the channel's softmax probability (multiclass)
#: ================== ============ ============================================================================
INSTANCE_DTYPE = np.dtype([
    ("batch", "<i4"),
    ("channel", "<i4"),
    ("index", "<i4"),
    ("area", "<i4"),
    ("bbox", "<i4", (4,)),
    ("centroid", "<f8", (2,)),
    ("orientation", "<f8"),
    ("major_axis_length", "<f8"),
    ("minor_axis_length", "<f8"),
    ("mean_score", "<f8"),
])

check_record_layout("instance", _core.INSTANCE_DTYPE, INSTANCE_DTYPE)  # the compiled core must agree on the layout

_MODES = {"multilabel": 0, "multiclass": 1}
_KEEP = {"largest": 0, "all": 1}


def postprocess_masks(logits, mode: str = "multilabel", threshold: Union[float, Sequence[float]] = 0.0,
                      keep: Union[str, Sequence[str]] = "largest", min_area: int = 0, fill_holes: bool = False):
    """Turn segmentation logits into cleaned binary masks and a table of the kept instances.

    Args:
        logits: ``N x C x H x W`` or ``C x H x W`` float32 or float16 logits. A NumPy array (or anything
            ``np.asarray`` reads) runs on the CPU; a CUDA array (:class:`ramh_rt.DeviceArray`, CuPy, PyTorch, any
            object with ``__cuda_array_interface__``; C-contiguous) runs on its GPU. Limits: ``C <= 65535``,
            ``H * W < 2**31`` (on CUDA also ``N * C * H * W < 2**31``).
        mode: ``"multilabel"`` — channel ``c`` is on where ``logit > threshold[c]`` (masks may overlap, as the
            30 RAM-H1200 bone channels do); ``"multiclass"`` — each pixel belongs to its argmax channel (ties go
            to the lowest channel index), so channel masks are disjoint.
        threshold: multilabel only: a scalar for every channel or one value per channel, in logit units
            (``0.0`` = probability 0.5), compared in float32 (float16 logits are widened exactly first). NaN is an
            error; ``+inf`` switches a channel off. Must stay 0 in multiclass mode.
        keep: ``"largest"`` — keep the largest 8-connected component of each (image, channel) plane (ties: the one
            whose first pixel comes first in raster order); ``"all"`` — keep every component; or one of these per
            channel, e.g. ``"all"`` for Sesamoid and ``"largest"`` for the bones.
        min_area: drop components with fewer pixels (also a largest component smaller than this). The
            selection (largest, ``min_area``) looks at the component's own pixel count, before hole filling.
        fill_holes: fill the holes of the kept components. The holes of the kept pixel set ``S`` of a plane are
            the 4-connected components of its complement that do not touch the image border (the dual of
            8-connected foreground; exactly ``scipy.ndimage.binary_fill_holes(S)``). Each hole belongs to the
            kept component that encloses it (the one holding the pixel left of the hole's first pixel in raster
            order). Instances never overlap: a kept component inside a hole of another stays its own instance and
            is not counted in the enclosing one, so per instance the pixels are
            ``binary_fill_holes(component)`` minus the filled pixels of the kept components nested in it.

    Returns:
        ``(masks, instances)``:

        * ``masks``: uint8 0/1, the shape of ``logits``, holding only the kept (and filled) components; a NumPy
          array for CPU input, a :class:`ramh_rt.DeviceArray` on the input's GPU for CUDA input.
        * ``instances``: NumPy structured array of :data:`INSTANCE_DTYPE` (always on the host), one row per kept
          instance, sorted by (batch, channel, index). Statistics cover the instance's pixels including its filled
          holes.

    Raises:
        ValueError: wrong rank or dtype of ``logits``; NaN in ``logits`` (the message names the first batch and
            channel holding one); unknown ``mode`` or ``keep``; ``threshold`` or ``keep`` length not 1 or C;
            NaN ``threshold``; a non-zero ``threshold`` in multiclass mode; negative or non-integer ``min_area``;
            non-boolean ``fill_holes``.
        RuntimeError: CUDA input with a core built without CUDA, or a CUDA failure.

    Example:
        >>> import numpy as np
        >>> from ramh_rt.ops import postprocess_masks
        >>> logits = np.full((2, 6, 6), -4.0, np.float32)
        >>> logits[0, 1:5, 1:5] = 4.0; logits[0, 2:4, 2:4] = -4.0   # a ring with a 2 x 2 hole
        >>> logits[1, 0, 0] = logits[1, 5, 5] = 4.0                 # two single pixels
        >>> masks, inst = postprocess_masks(logits, keep=["largest", "all"], fill_holes=True)
        >>> inst[["channel", "index", "area"]].tolist()
        [(0, 0, 16), (1, 0, 1), (1, 1, 1)]
        >>> int(masks[0].sum())
        16
    """
    logits = array_arg(logits, "logits")
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(f"mode must be 'multilabel' or 'multiclass', got {mode!r}")
    try:
        t = np.asarray(threshold, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number or a sequence of numbers, got {threshold!r}") from None
    if t.ndim > 1 or t.size == 0:
        raise ValueError(f"threshold must be a scalar or a 1-D sequence with one value per channel, got shape {t.shape}")
    thresholds = [float(v) for v in t.reshape(-1)]

    if isinstance(keep, str):
        keep_list = [keep]
    else:
        try:
            keep_list = list(keep)
        except TypeError:
            raise ValueError(f"keep must be 'largest', 'all' or a sequence of those, got {keep!r}") from None
    codes = []
    for k in keep_list:
        if not isinstance(k, str) or k not in _KEEP:
            raise ValueError(f"keep entries must be 'largest' or 'all', got {k!r}")
        codes.append(_KEEP[k])
    if not codes:
        raise ValueError("keep must not be empty")

    if isinstance(min_area, bool) or not isinstance(min_area, numbers.Integral):
        raise ValueError(f"min_area must be an integer number of pixels, got {min_area!r}")
    if not isinstance(fill_holes, (bool, np.bool_)):
        raise ValueError(f"fill_holes must be True or False, got {fill_holes!r}")
    return _core.postprocess_masks(logits, _MODES[mode], thresholds, codes, int(min_area), bool(fill_holes))


# ---- one instance at full resolution (host) ---------------------------------------------------------------------------

def _dilate4(m: np.ndarray) -> np.ndarray:
    """``m > 0`` dilated by one pixel with the 4-neighbour cross (each pixel and its up/down/left/right neighbours)."""
    m = m > 0
    out = m.copy()
    out[1:] |= m[:-1]
    out[:-1] |= m[1:]
    out[:, 1:] |= m[:, :-1]
    out[:, :-1] |= m[:, 1:]
    return out


def dilated_window(plane: np.ndarray, window: Sequence[int]) -> tuple[np.ndarray, tuple[int, int]]:
    """The one-pixel dilation (4-neighbour cross) of ``plane`` restricted to a window, clipped to the plane.

    The pixels of ``plane[y0:y1, x0:x1] > 0`` (taken as zero elsewhere) are dilated: the result is the same as
    dilating the whole plane with everything outside the window zeroed, at the cost of the window alone.

    Args:
        plane: ``H x W`` NumPy mask (any dtype; nonzero is on), e.g. one channel of :func:`postprocess_masks`.
        window: ``(x0, y0, x1, y1)`` pixels, exclusive at the far end, inside the plane
            (``0 <= x0 < x1 <= W``, ``0 <= y0 < y1 <= H``).

    Returns:
        ``(mask, (wx0, wy0))``: the dilated window as a bool array, one pixel larger than ``window`` on every side the
        plane allows, and its top-left corner (x, y) in the plane.

    Raises:
        ValueError: ``plane`` is not 2-D, or ``window`` is not four integers describing a non-empty box inside it.
    """
    plane = np.asarray(plane)
    if plane.ndim != 2:
        raise ValueError(f"plane must be an H x W mask, got shape {plane.shape}")
    h, w = plane.shape
    try:
        x0, y0, x1, y1 = (int_value(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"window must be four integers (x0, y0, x1, y1), got {window!r}") from None
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"window {(x0, y0, x1, y1)} must be a non-empty box inside the {h} x {w} plane")
    d = _dilate4(np.pad(plane[y0:y1, x0:x1] > 0, 1))
    wx0, wy0 = max(0, x0 - 1), max(0, y0 - 1)
    wx1, wy1 = min(w, x1 + 1), min(h, y1 + 1)
    return d[wy0 - y0 + 1:wy1 - y0 + 1, wx0 - x0 + 1:wx1 - x0 + 1], (wx0, wy0)


def upsample_instance(logits: np.ndarray, mask: np.ndarray, window: Sequence[int], box, out_hw: Sequence[int],
                      threshold: float, *, scratch: np.ndarray | None = None) -> np.ndarray:
    """One instance of a model-resolution mask at the resolution of the image, as a crop.

    The class logits are resampled (bilinear, :func:`ramh_rt.ops.crop_rois`) onto the output grid and thresholded,
    and kept where the instance's model mask, dilated by one pixel (:func:`dilated_window`), lands (nearest): the
    smooth boundary of the logits, without what the logits show of other instances of the class or of what
    postprocessing dropped.

    Args:
        logits: ``h x w`` float32 NumPy logits of the instance's class on the model canvas.
        mask: ``h x w`` NumPy mask of the class on the model canvas (nonzero on), e.g. a channel of
            :func:`postprocess_masks`; only ``window`` of it is read.
        window: ``(x0, y0, x1, y1)`` model pixels holding this instance's part of ``mask`` (its bounding box for a
            class with several instances; the plane's occupied bounds for a single instance).
        box: one ``(cx, cy, w, h, angle_deg)`` box in model pixels (``1 x 5``, crop_rois' convention) that the output
            grid covers, e.g. an image-pixel box mapped onto the model canvas.
        out_hw: ``(out_h, out_w)`` of the output crop, in image pixels.
        threshold: logit threshold, as :func:`postprocess_masks` compares it (``logit > threshold``).
        scratch: optional ``uint8`` array of ``mask``'s shape, all zero, reused across calls to save an allocation
            per instance; it is zero again on return.

    Returns:
        ``out_h x out_w`` bool mask of the instance over the box.

    Raises:
        ValueError: ``logits`` and ``mask`` are not 2-D of one shape, a bad ``window`` (as :func:`dilated_window`),
            ``scratch`` not a uint8 array of that shape, ``box`` not one box of five numbers, or a bad ``logits``
            dtype, box value or ``out_hw`` (as crop_rois).
    """
    logits, mask = np.asarray(logits), np.asarray(mask)
    if logits.ndim != 2 or logits.shape != mask.shape:
        raise ValueError(f"logits and mask must be 2-D of one shape, got {logits.shape} and {mask.shape}")
    try:
        box = np.asarray(box).reshape(1, 5)  # the dtype is kept: crop_rois reads it as it always does
    except ValueError:
        raise ValueError(f"box must be one (cx, cy, w, h, angle_deg) box, got shape {np.shape(box)}") from None
    near_win, (wx0, wy0) = dilated_window(mask, window)
    if scratch is None:
        scratch = np.zeros(mask.shape, np.uint8)
    elif not (isinstance(scratch, np.ndarray) and scratch.dtype == np.uint8 and scratch.shape == mask.shape):
        raise ValueError(f"scratch must be a uint8 array of shape {mask.shape} (all zero)")
    wy1, wx1 = wy0 + near_win.shape[0], wx0 + near_win.shape[1]
    scratch[wy0:wy1, wx0:wx1] = near_win
    try:
        up = crop_rois(np.ascontiguousarray(logits), box, out_hw)[0] > threshold
        near = crop_rois(scratch, box, out_hw, interpolation="nearest")[0] > 0
    finally:
        scratch[wy0:wy1, wx0:wx1] = 0  # zero again for the next instance, whatever happened
    return up & near
