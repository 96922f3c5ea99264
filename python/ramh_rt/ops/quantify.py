"""Erosion quantification per joint ROI: how much of the joint's bone is eroded, in ROI pixels, image pixels and mm²,
how many separate lesions there are and how large the largest is.

The C++ core does the work (``ramh_rt._core.quantify_erosions``), on the CPU (OpenMP over ROIs) or on CUDA (all
ROIs in one launch per phase; only the table comes back). The connected components are the same code as
:func:`ramh_rt.ops.postprocess_masks` uses. Both devices give the same answer: integer fields bit-identical, float
fields within 1e-5 relative.
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Union

import numpy as np

from .. import _core
from ._args import array_arg, array_shape, check_record_layout, is_device_array

__all__ = ["EROSION_DTYPE", "quantify_erosions"]

#: dtype of the table returned by :func:`quantify_erosions`, one row per ROI (72 bytes, no padding).
#:
#: ====================== ======= ===========================================================================
#: field                  dtype   meaning
#: ====================== ======= ===========================================================================
#: eroded_roi_px          int64   erosion pixels in the ROI (probability >= threshold, or nonzero for uint8)
#: eroded_px              float64 the same in image pixels (one ROI pixel = (box w / ROI w) * (box h / ROI h))
#: eroded_mm2             float64 the same in mm² (image pixels * spacing²); NaN when the spacing is unknown
#: bone_roi_px            int64   ROI pixels of bone ∪ erosion: erosion is missing bone, so the joint's original
#:                                bone is the union
#: bone_px                float64 the same in image pixels
#: eroded_fraction        float64 eroded_roi_px / bone_roi_px; 0 when both are 0
#: lesions                int32   8-connected erosion components with at least ``min_lesion_px`` ROI pixels
#: largest_lesion_roi_px  int32   ROI pixels of the largest lesion (0 without lesions)
#: largest_lesion_px      float64 the same in image pixels
#: mean_probability       float64 mean probability over the erosion pixels; NaN for uint8 input or when there
#:                                is no erosion pixel
#: ====================== ======= ===========================================================================
EROSION_DTYPE = np.dtype([
    ("eroded_roi_px", "<i8"),
    ("eroded_px", "<f8"),
    ("eroded_mm2", "<f8"),
    ("bone_roi_px", "<i8"),
    ("bone_px", "<f8"),
    ("eroded_fraction", "<f8"),
    ("lesions", "<i4"),
    ("largest_lesion_roi_px", "<i4"),
    ("largest_lesion_px", "<f8"),
    ("mean_probability", "<f8"),
])

check_record_layout("erosion", _core.EROSION_DTYPE, EROSION_DTYPE)  # the compiled core must agree on the layout


def quantify_erosions(erosion, bone_masks, boxes, spacing_mm: Union[None, float, Sequence[Optional[float]]],
                      threshold: float = 0.5, min_lesion_px: int = 4) -> np.ndarray:
    """Quantify the erosion of each joint ROI.

    All arrays describe N ROIs in ROI space, as :func:`crop_rois` cuts them (each ROI an ``h x w`` resampling of an
    oriented box of the image).

    Args:
        erosion: ``N x h x w`` erosion probabilities (float32, each in [0, 1]) or masks (uint8, nonzero = eroded).
            NumPy (CPU) or a C-contiguous CUDA array (:class:`ramh_rt.DeviceArray`, CuPy, PyTorch...; CUDA).
        bone_masks: ``N x h x w`` uint8 (or bool) masks of the ROI's anchor bones, cut with nearest sampling,
            nonzero = bone; or ``N x K x h x w`` with one mask per anchor bone, whose union is taken. Same device
            as ``erosion``.
        boxes: ``N x 5`` boxes ``(cx, cy, w, h, angle)`` in image pixels (see
            :class:`ramh_rt.geometry.Roi`) that the ROIs were cut from; only ``w`` and ``h``
            matter here (one ROI pixel covers ``(w / out_w) * (h / out_h)`` image pixels). Host (any float
            array; converted to float32) or float32 on the device of ``erosion``.
        spacing_mm: mm per image pixel: a scalar for every ROI, one value per ROI, or None when unknown; None or
            NaN entries give NaN ``eroded_mm2``. Each known value must be finite and > 0.
        threshold: probability from which a pixel counts as eroded (``prob >= threshold``), in (0, 1]. Ignored for
            uint8 masks.
        min_lesion_px: smallest lesion counted, in ROI pixels (>= 0).

    Returns:
        NumPy structured array of :data:`EROSION_DTYPE`, one row per ROI in input order (on the host for either
        device).

    Raises:
        ValueError: wrong rank, dtype or shape of an array (N, h, w must agree; boxes ``N x 5``); non-finite boxes
            or non-positive box ``w``/``h``; probabilities outside [0, 1] or NaN (the message names the first ROI);
            spacing not > 0 (or the wrong count); threshold outside (0, 1]; negative or non-integer
            ``min_lesion_px``; boxes on a different device.
        RuntimeError: CUDA input with a core built without CUDA, or a CUDA failure.

    Example:
        >>> import numpy as np
        >>> from ramh_rt.ops import quantify_erosions
        >>> ero = np.zeros((1, 8, 8), np.float32); ero[0, 1:3, 1:4] = 0.9   # 6 eroded ROI pixels
        >>> bone = np.zeros((1, 8, 8), np.uint8); bone[0, 1:7, 1:7] = 1      # 36 bone pixels (eroded ones included)
        >>> t = quantify_erosions(ero, bone, [[40, 40, 16, 16, 0]], spacing_mm=0.1, min_lesion_px=4)
        >>> int(t["eroded_roi_px"][0]), float(t["eroded_px"][0]), round(float(t["eroded_mm2"][0]), 4)
        (6, 24.0, 0.24)
        >>> float(t["eroded_fraction"][0]), int(t["lesions"][0])
        (0.16666666666666666, 1)
    """
    erosion = array_arg(erosion, "erosion")
    bone_masks = array_arg(bone_masks, "bone_masks")
    shape = array_shape(erosion)
    if len(shape) != 3:
        raise ValueError(f"erosion must be N x h x w, got shape {shape}")
    n = shape[0]

    if not is_device_array(boxes):
        try:
            boxes = np.ascontiguousarray(boxes, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"boxes must be an N x 5 array of numbers, got {boxes!r}") from None

    if spacing_mm is None:
        spacing = [math.nan] * n
    elif isinstance(spacing_mm, numbers.Real) and not isinstance(spacing_mm, bool):
        spacing = [float(spacing_mm)] * n
    else:
        try:
            values = list(spacing_mm)
        except TypeError:
            raise ValueError(f"spacing_mm must be None, a number or one value per ROI, got {spacing_mm!r}") from None
        spacing = []
        for v in values:
            if v is None:
                spacing.append(math.nan)
            elif isinstance(v, numbers.Real) and not isinstance(v, bool):
                spacing.append(float(v))
            else:
                raise ValueError(f"spacing_mm entries must be numbers or None, got {v!r}")

    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ValueError(f"threshold must be a number in (0, 1], got {threshold!r}")
    if isinstance(min_lesion_px, bool) or not isinstance(min_lesion_px, numbers.Integral):
        raise ValueError(f"min_lesion_px must be an integer number of ROI pixels, got {min_lesion_px!r}")
    return _core.quantify_erosions(erosion, bone_masks, boxes, spacing, float(threshold), int(min_lesion_px))
