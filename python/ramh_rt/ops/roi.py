"""Oriented ROI crop and its inverse, paste, for joint regions of a hand radiograph.

Boxes are ``(cx, cy, w, h, angle_deg)`` rows in continuous image pixels, as :class:`ramh_rt.geometry.Roi`
defines them: centre ``(cx, cy)``, extent ``w`` along the local x axis ``u = (cos a, -sin a)`` and ``h`` along the
local y axis ``v = (sin a, cos a)``, ``a`` counter-clockwise as seen on screen (image y points down). Crop pixel
``(i, j)`` of an ``out_h x out_w`` crop samples the image at
``c + ((j + 0.5) / out_w - 0.5) * w * u + ((i + 0.5) / out_h - 0.5) * h * v``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import _core
from ._args import array_arg, int_pair, is_device_array

__all__ = ["crop_rois", "paste_rois"]


def _boxes(boxes):
    """Boxes as the core takes them: float64 host data, or a CUDA array left on its device (float32, copied to the
    host by the core: boxes are tiny), as :func:`ramh_rt.ops.quantify_erosions` accepts them."""
    if is_device_array(boxes):
        return boxes
    try:
        return np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"boxes must be an N x 5 array of numbers (cx, cy, w, h, angle_deg): {e}") from None


def crop_rois(image, boxes, out_hw: Sequence[int], interpolation: str = "bilinear", fill: float = 0):
    """Crop N oriented boxes from an image (or a stack of label maps) into fixed-size patches.

    Args:
        image: ``H x W`` or ``C x H x W`` (e.g. a stack of label maps) of uint8, uint16 or float32 (bool is read as
            uint8); a NumPy array or a CUDA array (:class:`ramh_rt.DeviceArray`, CuPy, torch, any
            ``__cuda_array_interface__``).
        boxes: ``N x 5`` ``(cx, cy, w, h, angle_deg)`` in image pixels: host data (any float type), or float32 on a
            CUDA device (any CUDA array; copied to the host). ``N = 0`` (also ``[]``) gives an empty result.
        out_hw: ``(out_h, out_w)`` of every crop, in ``[1, 2^24]``.
        interpolation: ``"bilinear"``: half-pixel centres, the four pixels around ``p - (0.5, 0.5)``; a neighbour
            outside the image reads ``fill`` (values blend towards ``fill`` within one pixel of the border, like
            ``cv2.warpAffine(..., borderMode=BORDER_CONSTANT)``). The result is float32 for every input dtype.
            ``"nearest"``: the pixel containing the sample point, ``fill`` outside the image; the dtype is kept (use it
            for label and mask maps).
        fill: value for samples outside the image: for ``"nearest"`` on integer images an integer in the dtype's
            range; for float32 output any finite value or NaN (bilinear: every sample with a neighbour outside the
            image is then NaN — a "no data" marker).

    Returns:
        ``N x out_h x out_w`` (or ``N x C x out_h x out_w`` for a stack): float32 for bilinear, the image dtype for
        nearest; a NumPy array for host input, a :class:`ramh_rt.DeviceArray` on the image's device otherwise.

    Raises:
        ValueError: bad image dtype/shape, boxes not ``N x 5``, a box with NaN/inf, ``w <= 0`` or ``h <= 0`` (the
            message names the box index), bad ``out_hw``, ``interpolation`` or ``fill``.
        RuntimeError: a CUDA failure, or a CUDA image given to a build without CUDA.

    Example:
        >>> img = np.arange(100, dtype=np.uint8).reshape(10, 10)
        >>> crop_rois(img, [[5.0, 5.0, 4.0, 2.0, 0.0]], (2, 4), "nearest")
        array([[[43, 44, 45, 46],
                [53, 54, 55, 56]]], dtype=uint8)
    """
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    image = array_arg(image, "image", (np.uint8, np.uint16, np.float32), bool_as_uint8=True)
    out_h, out_w = int_pair(out_hw, "out_hw", "integers (out_h, out_w)")
    return _core.crop_rois(image, _boxes(boxes), out_h, out_w, interpolation, _fill(fill))


def paste_rois(rois, boxes, out_hw: Sequence[int], reduce: str = "max", fill: float = 0):
    """Paste N ROI maps back into an image: the inverse of :func:`crop_rois`.

    Output pixel ``(x, y)`` (centre ``q = (x + 0.5, y + 0.5)``) is covered by ROI ``i`` when ``q`` lies in box ``i``
    (ROI coordinates ``r = ((q - c) . u * rw / w + rw / 2, (q - c) . v * rh / h + rh / 2)`` in ``[0, rw) x [0, rh)``);
    it then takes the ROI value at ``r``: bilinear with half-pixel centres and edge clamping inside the ROI for
    float32 ROIs, the ROI pixel containing ``r`` for uint8 ROIs (masks). Values of all covering ROIs are combined by
    ``reduce``; pixels covered by no ROI hold ``fill``. The result does not depend on the order of the ROIs.

    Args:
        rois: ``N x rh x rw`` float32 or uint8 (bool is read as uint8), NumPy or CUDA array.
        boxes: ``N x 5`` ``(cx, cy, w, h, angle_deg)``, the boxes the ROIs were cropped with (host data, or float32
            on a CUDA device, as for :func:`crop_rois`).
        out_hw: ``(out_h, out_w)`` of the output image, in ``[1, 2^24]``.
        reduce: ``"max"`` (float32: NaN-ignoring like ``numpy.fmax``, +0 over -0; uint8: max) or ``"or"`` (uint8
            only: bitwise or, equal to max for 0/1 masks).
        fill: value of uncovered pixels: an integer in [0, 255] for uint8; finite or NaN for float32.

    Returns:
        ``out_h x out_w`` array of the rois' dtype (NumPy, or a :class:`ramh_rt.DeviceArray` for CUDA rois).

    Raises:
        ValueError: bad rois dtype/shape, ``len(rois) != len(boxes)``, a bad box (named by index), bad ``out_hw``,
            ``reduce`` or ``fill``.
        RuntimeError: a CUDA failure, or CUDA rois given to a build without CUDA.

    Example:
        >>> box = [[5.0, 5.0, 4.0, 2.0, 0.0]]
        >>> paste_rois(np.ones((1, 2, 4), np.uint8), box, (10, 10))[3:7, 2:8]
        array([[0, 0, 0, 0, 0, 0],
               [0, 1, 1, 1, 1, 0],
               [0, 1, 1, 1, 1, 0],
               [0, 0, 0, 0, 0, 0]], dtype=uint8)
    """
    if reduce not in ("max", "or"):
        raise ValueError(f"reduce must be 'max' or 'or', got {reduce!r}")
    rois = array_arg(rois, "rois", (np.float32, np.uint8), bool_as_uint8=True)
    out_h, out_w = int_pair(out_hw, "out_hw", "integers (out_h, out_w)")
    return _core.paste_rois(rois, _boxes(boxes), out_h, out_w, reduce, _fill(fill))


def _fill(fill) -> float:
    try:
        return float(fill)
    except (TypeError, ValueError):
        raise ValueError(f"fill must be a number, got {fill!r}") from None
