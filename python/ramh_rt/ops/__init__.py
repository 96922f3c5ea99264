"""Kernel-level operations of the ramh_rt core.

Every op takes NumPy arrays (CPU path, NumPy out) or CUDA arrays — :class:`ramh_rt.DeviceArray`, CuPy, PyTorch or any
object with ``__cuda_array_interface__`` — (CUDA path, :class:`ramh_rt.DeviceArray` out). The CPU and CUDA paths have
identical semantics: integer outputs are bit-identical, float outputs agree within 1e-5 relative.
Bad arguments raise :class:`ValueError` naming the argument and the offending value. :func:`dilated_window` and
:func:`upsample_instance` (one instance of a mask at the image's resolution) take NumPy arrays only.
"""
from __future__ import annotations

from .postprocess import INSTANCE_DTYPE, dilated_window, postprocess_masks, upsample_instance
from .preprocess import Letterbox, preprocess
from .quantify import EROSION_DTYPE, quantify_erosions
from .roi import crop_rois, paste_rois

__all__ = ["Letterbox", "preprocess", "INSTANCE_DTYPE", "postprocess_masks", "dilated_window", "upsample_instance",
           "crop_rois", "paste_rois", "EROSION_DTYPE", "quantify_erosions"]
