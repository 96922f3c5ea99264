"""COCO run-length encoding of binary masks, without pycocotools (the runtime stays light).

The format is COCO's: runs over the mask in column-major (Fortran) order, starting with a run of zeros; the
compressed form packs the counts into an ASCII string with COCO's LEB128-like 5-bit scheme (each count after the
second is stored as the difference to the count two before). ``encode`` output decodes with
``pycocotools.mask.decode`` and vice versa (tests check both directions).
"""
from __future__ import annotations

import numpy as np


def _runs(mask: np.ndarray) -> list[int]:
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return [0]
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0] + counts  # COCO runs start with zeros
    return counts


def _compress(counts: list[int]) -> str:
    out = []
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = (x != -1) if (ch & 0x10) else (x != 0)
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


def _decompress(s: str) -> list[int]:
    counts: list[int] = []
    p = 0
    while p < len(s):
        x = 0
        k = 0
        more = True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def encode(mask: np.ndarray) -> dict:
    """COCO compressed RLE of a 2-D mask: ``{"size": [H, W], "counts": str}``.

    Raises:
        ValueError: ``mask`` is not 2-D.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": _compress(_runs(mask))}


def encode_crop(crop: np.ndarray, bbox, shape) -> dict:
    """COCO compressed RLE of an ``H x W`` mask that is zero outside ``bbox``, from the bbox crop alone.

    Gives exactly ``encode(full)`` where ``full = zeros(shape); full[y0:y1, x0:x1] = crop``, in time and memory
    proportional to the crop (a bone of a 116 Mpx film is encoded without building the 116 Mpx mask).

    Args:
        crop: ``(y1 - y0) x (x1 - x0)`` mask (nonzero = on).
        bbox: ``(x0, y0, x1, y1)`` in pixels, ``x1``/``y1`` exclusive, inside ``shape``.
        shape: ``(H, W)`` of the full mask.

    Raises:
        ValueError: ``crop`` is not 2-D, or its shape does not match ``bbox``, or ``bbox`` is not inside ``shape``.
    """
    crop = np.asarray(crop)
    h, w = (int(v) for v in shape)
    x0, y0, x1, y1 = (int(v) for v in bbox)
    if crop.ndim != 2 or crop.shape != (y1 - y0, x1 - x0) or not (0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h):
        raise ValueError(f"crop of shape {crop.shape} does not match bbox {tuple(bbox)} inside shape {(h, w)}")
    if crop.size == 0:
        return {"size": [h, w], "counts": _compress([h * w])}
    # Transitions are found down each column in C order (a column-major copy of a big crop is what costs time):
    # a crop row k that differs from row k - 1 (row -1 and row ch are the zeros around the crop) starts a run at the
    # full column-major index (x0 + col) * H + y0 + k. Sorting those indices gives the runs in COCO order.
    crop = crop.astype(bool, copy=False)
    ch = crop.shape[0]
    top = np.flatnonzero(crop[0])
    r, c = np.nonzero(crop[1:] != crop[:-1])
    bottom = np.flatnonzero(crop[-1])
    cols = np.concatenate((top, c, bottom)).astype(np.int64)
    rows = np.concatenate((np.zeros(top.size, np.int64), r.astype(np.int64) + 1, np.full(bottom.size, ch, np.int64)))
    full = np.sort((x0 + cols) * h + y0 + rows)
    full = full[full < h * w]  # a run of ones that reaches the last pixel ends with the mask, not at a transition
    # A run that fills a column to its bottom and goes on at the top of the next: the end of the one and the start
    # of the other fall on the same index and are no transition.
    same = full[1:] == full[:-1]
    if same.any():
        drop = np.zeros(full.size, dtype=bool)
        drop[:-1] |= same
        drop[1:] |= same
        full = full[~drop]
    bounds = np.concatenate(([0], full, [h * w]))
    return {"size": [h, w], "counts": _compress(np.diff(bounds).tolist())}


def decode(rle: dict) -> np.ndarray:
    """H x W bool mask from a COCO RLE (compressed string or uncompressed list counts).

    Raises:
        ValueError: malformed RLE or counts that do not add up to H*W.
    """
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"malformed RLE {str(rle)[:80]!r}: {e}") from None
    if isinstance(counts, (bytes, str)):
        counts = _decompress(counts.decode() if isinstance(counts, bytes) else counts)
    counts = [int(c) for c in counts]
    if any(c < 0 for c in counts) or sum(counts) != h * w:
        raise ValueError(f"RLE counts add up to {sum(counts)}, expected {h}*{w}={h * w}")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape((h, w), order="F")


def area(rle: dict) -> int:
    """Number of foreground pixels of an RLE without decoding it."""
    counts = rle["counts"]
    if isinstance(counts, (bytes, str)):
        counts = _decompress(counts.decode() if isinstance(counts, bytes) else counts)
    return int(sum(counts[1::2]))
