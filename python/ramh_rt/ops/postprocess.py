"""Mask postprocessing: segmentation logits -> cleaned binary masks and an instance table, in one call.

The C++ core does the work (``ramh_rt._core.postprocess_masks``): thresholding or argmax, 8-connected components
per (image, channel), selection of the kept components, optional hole filling, and the statistics of every kept
instance — on the CPU (OpenMP over planes) or on CUDA (all planes at once; only the instance table comes back to
the host). Both devices give the same answer: masks and integer fields bit-identical, float fields within 1e-5
relative.
"""
from __future__ import annotations

import numbers
from typing import Sequence, Union

import numpy as np

from .. import _core
from ._args import array_arg

__all__ = ["INSTANCE_DTYPE", "postprocess_masks"]

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

if np.dtype(_core.INSTANCE_DTYPE) != INSTANCE_DTYPE:  # the compiled core and this module must agree on the layout
    raise ImportError(f"ramh_rt._core was built with instance layout {_core.INSTANCE_DTYPE}, "
                      f"this module expects {INSTANCE_DTYPE}: rebuild the core")

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
