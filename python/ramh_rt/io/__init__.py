"""Image and DICOM input.

:func:`load_image` turns what a user hands to the analyser (a NumPy array, a PNG/JPEG/BMP/TIFF/DICOM file, or the
bytes of one) into a :class:`LoadedImage`: one 2-D grey-level image in which bone is bright, plus what the file says
about pixel spacing and hand side. (Atomic file output lives in :mod:`ramh_rt.fs`.)

One module per concept:

* :mod:`ramh_rt.io.load`: :class:`LoadedImage`, :func:`load_image` (format recognition and dispatch),
  :func:`with_overrides` and :func:`check_spacing`;
* :mod:`ramh_rt.io.decoded`: what every decoder shares: the size limits, the decoder's record, dtype
  normalisation, luminance and pixel spacing from a resolution;
* the decoders, one per source: :mod:`ramh_rt.io.ndarray` (NumPy arrays), :mod:`ramh_rt.io.raster`
  (PNG, JPEG, BMP through Pillow), :mod:`ramh_rt.io.tiff` (tifffile), :mod:`ramh_rt.io.dicom` (pydicom);
* :mod:`ramh_rt.io.batch`: the images of a batch decoded ahead of their use on a background thread, with
  per-image spacing and side (what :meth:`ramh_rt.Analyzer.iter_batch` runs on).

The image-input names below (``__all__``) are importable from ``ramh_rt.io`` itself; the batch helpers from
:mod:`ramh_rt.io.batch`.

Intensity conventions (what makes the same radiograph give the same analysis however it is stored):

* Grey levels are returned as stored whenever possible: ``uint8`` and ``uint16`` stay as they are (16-bit PNG and
  TIFF included), ``float32`` stays ``float32``. The models normalise intensities themselves (a percentile window of
  the whole image, see the bundle manifest), which is invariant to any increasing affine map of the grey levels, so
  the same image stored as 8/16-bit PNG, 16-bit TIFF or DICOM analyses identically as long as it is the same picture
  up to such a map.
* "Bone is bright": inverted encodings are inverted back. DICOM ``MONOCHROME1`` (and a ``MONOCHROME2`` whose Presentation
  LUT Shape is ``INVERSE``) and TIFF ``MINISWHITE`` are flipped *within their value range*: a stored value ``s`` of an
  unsigned image with ``BitsStored = b`` becomes ``(2**b - 1) - s``; after a rescale or VOI the range is the one of
  that stage (see below). Hence the ``MONOCHROME1`` and ``MONOCHROME2`` encodings of one image decode to identical
  pixels: ``s1 = (2**b - 1) - s2`` with the same rescale and, for a window of width ``w``, the mirrored centre
  (``c1 = 2**b - c2`` for the LINEAR function, whose definition is offset by half a level; ``c1 = 2**b - 1 - c2`` for
  LINEAR_EXACT and SIGMOID).
* DICOM pixel pipeline, in the order of the standard (PS3.3 C.7.6.3.1, C.11): stored values -> Modality LUT (Rescale
  Slope/Intercept, or a Modality LUT Sequence) -> VOI (a VOI LUT Sequence, else Window Center/Width with the VOI LUT
  Function LINEAR, LINEAR_EXACT or SIGMOID; the first window when there are several) -> inversion for MONOCHROME1.

  - No rescale (absent or slope 1 / intercept 0) and no VOI: the stored values, unchanged in value and dtype
    (a DICOM and a 16-bit TIFF of the same pixels decode identically).
  - A non-identity rescale: ``float32`` modality values ``slope * s + intercept`` (exact for detector data: integers
    below 2**24).
  - A VOI (``apply_voi=True``, the default): ``float32`` in [0, 1], 0 = the darkest displayed level, 1 = the
    brightest; for MONOCHROME1 the result is ``1 - y``. That is the picture the modality meant to be shown, so it
    matches a PNG export of the displayed image. ``apply_voi=False`` skips the VOI and returns modality values.

Never modified: the caller's array (a copy is always made) and file (opened read-only). The returned pixels are a
read-only, C-contiguous array in native byte order.
"""
from __future__ import annotations

from .decoded import ANISOTROPY_TOLERANCE, MAX_PIXELS, MAX_SIDE, MIN_SIDE
from .load import ImageSource, LoadedImage, check_spacing, load_image, with_overrides

__all__ = ["LoadedImage", "load_image", "with_overrides", "check_spacing", "ImageSource", "MIN_SIDE", "MAX_SIDE",
           "MAX_PIXELS", "ANISOTROPY_TOLERANCE"]
