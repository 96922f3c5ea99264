"""A picture of every annotation of a :class:`~ramh_train.datasets.sample.HandSample` (Pillow + NumPy only)."""
from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ramh_rt import anatomy

from .sample import HandSample

#: Erosion category -> RGB.
EROSION_COLOURS: dict[str, tuple[int, int, int]] = {
    "SvdH-BE-90": (255, 30, 30), "SvdH-BE-50": (255, 150, 0), "Non-SvdH-BE": (230, 0, 230)}


def bone_colour(name: str) -> tuple[int, int, int]:
    """A stable, distinct colour per bone class (golden-ratio hues over the class index)."""
    if name == "SoftTissue":
        return (90, 160, 255)
    i = anatomy.BONE_INDEX[name]
    r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 1.0)
    return int(255 * r), int(255 * g), int(255 * b)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _shrink(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a bool mask to ``shape`` (rows, cols)."""
    h, w = shape
    ys = np.minimum(((np.arange(h) + 0.5) * mask.shape[0] / h).astype(np.int64), mask.shape[0] - 1)
    xs = np.minimum(((np.arange(w) + 0.5) * mask.shape[1] / w).astype(np.int64), mask.shape[1] - 1)
    return mask[ys[:, None], xs[None, :]]


def _edge(m: np.ndarray) -> np.ndarray:
    """Pixels of a mask with a 4-neighbour outside it."""
    p = np.pad(m, 1)
    inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~inner


def render_overlay(sample: HandSample, path: str | Path | None = None, *, scale: float = 0.4,
                   fill_alpha: float = 0.22, legend: bool = True) -> Image.Image:
    """Draw a sample's annotations over its image.

    Bone masks are shown as translucent fills with solid outlines and a label at each bone's centroid (SoftTissue as
    an outline only); erosion masks as opaque fills in one colour per category; the 22 oriented ROIs as rotated
    rectangles labelled with the area stem and its scores (``E`` erosion 0-5, ``J`` narrowing 0-4, ``-`` where the
    area has no such score); a legend panel lists the colours, the totals and the sample's stem.

    Args:
        sample: the sample to draw.
        path: where to save the picture (format from the suffix); None to only return it.
        scale: output size relative to the image (0 < scale <= 4).
        fill_alpha: opacity of the bone fills (0..1).
        legend: add the legend panel on the right.

    Returns:
        RGB :class:`PIL.Image.Image` of about ``scale`` x the image size (plus the legend's width).

    Raises:
        ValueError: ``scale`` or ``fill_alpha`` out of range, or an image that is not 2-D.
    """
    if not (0.0 < float(scale) <= 4.0):
        raise ValueError(f"scale must lie in (0, 4], got {scale!r}")
    if not (0.0 <= float(fill_alpha) <= 1.0):
        raise ValueError(f"fill_alpha must lie in [0, 1], got {fill_alpha!r}")
    img = np.asarray(sample.image)
    if img.ndim != 2:
        raise ValueError(f"sample.image must be 2-D (H x W), got shape {img.shape}")
    H, W = img.shape
    h, w = max(int(round(H * scale)), 1), max(int(round(W * scale)), 1)
    g = img.astype(np.float32)
    g = (g - g.min()) / max(float(g.max() - g.min()), 1.0) * 255.0
    base = Image.fromarray(g.astype(np.uint8)).resize((w, h), Image.BILINEAR)
    rgb = np.stack([np.asarray(base, dtype=np.float32)] * 3, axis=-1)

    small = {name: _shrink(np.asarray(m, bool), (h, w)) for name, m in sample.bone_masks.items()}
    for name, m in small.items():
        if name == "SoftTissue" or not m.any():
            continue
        c = np.array(bone_colour(name), np.float32)
        rgb[m] = (1.0 - fill_alpha) * rgb[m] + fill_alpha * c
    for name, m in sample.erosion_masks.items():
        em = _shrink(np.asarray(m, bool), (h, w))
        if em.any():
            rgb[em] = 0.15 * rgb[em] + 0.85 * np.array(EROSION_COLOURS.get(name, (255, 255, 255)), np.float32)
    for name, m in small.items():
        e = _edge(m)
        rgb[e] = np.array(bone_colour(name), np.float32) * (0.6 if name == "SoftTissue" else 1.0)
    out = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    fs = max(int(round(11 * max(scale / 0.4, 0.8))), 9)
    font = _font(fs)

    for name, m in small.items():
        if name == "SoftTissue" or not m.any():
            continue
        ys, xs = np.nonzero(m)
        cx, cy = float(xs.mean()), float(ys.mean())
        label = {"Pisiform_Triquetrum": "PT", "Trapezium": "Tpm", "Trapezoid": "Tpd", "Capitate": "Cap",
                 "Hamate": "Ham", "Lunate": "Lun", "Scaphoid": "Sca", "Radius": "Rad", "Ulna": "Uln",
                 "Sesamoid": "Ses"}.get(name, name)
        draw.text((cx, cy), label, fill=(255, 255, 255), font=font, anchor="mm", stroke_width=2,
                  stroke_fill=(0, 0, 0))

    for stem, box in sample.joint_rois.items():
        a = anatomy.area(stem)
        corners = box.corners() * scale
        colour = (255, 235, 60) if a.region == "finger" else (80, 230, 255)
        draw.line([tuple(p) for p in corners] + [tuple(corners[0])], fill=colour, width=max(1, int(scale * 3)))
        # Mark the proximal edge (local +y side) so the orientation reads at a glance.
        draw.line([tuple(corners[2]), tuple(corners[3])], fill=(255, 80, 80), width=max(1, int(scale * 3)))
        e = sample.be_scores.get(f"BE_{stem}") if a.be else None
        j = sample.jsn_scores.get(f"JSN_{stem}") if a.jsn else None
        txt = f"{stem} E{'-' if e is None else e} J{'-' if j is None else j}"
        tx, ty = corners[:, 0].mean(), corners[:, 1].min() - fs * 0.6
        draw.text((tx, ty), txt, fill=colour, font=font, anchor="ms", stroke_width=2, stroke_fill=(0, 0, 0))

    if legend:
        out = _with_legend(out, sample, small, font, fs)
    if path is not None:
        out.save(path)
    return out


def _with_legend(img: Image.Image, sample: HandSample, small: dict[str, np.ndarray], font, fs: int) -> Image.Image:
    lw = int(fs * 21)
    canvas = Image.new("RGB", (img.width + lw, max(img.height, int(fs * 1.35 * 46))), (20, 20, 20))
    canvas.paste(img, (0, 0))
    d = ImageDraw.Draw(canvas)
    x, y = img.width + fs, fs
    step = int(fs * 1.35)
    d.text((x, y), sample.stem, fill=(255, 255, 255), font=font)
    y += step
    sp = f"{sample.spacing_mm:.3f} mm/px" if sample.spacing_mm else "spacing unknown"
    d.text((x, y), f"{sample.shape[1]}x{sample.shape[0]} px, {sp}, side {sample.side}", fill=(200, 200, 200),
           font=font)
    y += step
    t = sample.totals() if (sample.be_scores or sample.jsn_scores) else None
    if t is not None:
        d.text((x, y), f"SvdH {t['svdh']:.0f}  (erosion {t['erosion']:.0f}, JSN {t['jsn']:.0f})",
               fill=(255, 255, 255), font=font)
        y += step
    y += step // 2
    d.text((x, y), "Erosions", fill=(255, 255, 255), font=font)
    y += step
    for name, c in EROSION_COLOURS.items():
        n = int(np.asarray(sample.erosion_masks.get(name, np.zeros(1, bool))).sum())
        d.rectangle([x, y + 2, x + fs, y + fs], fill=c)
        d.text((x + int(fs * 1.5), y), f"{name} ({n} px)", fill=(220, 220, 220), font=font)
        y += step
    y += step // 2
    d.text((x, y), "ROIs: E erosion 0-5, J JSN 0-4", fill=(255, 255, 255), font=font)
    y += step
    d.rectangle([x, y + 2, x + fs, y + fs], outline=(255, 235, 60), width=2)
    d.text((x + int(fs * 1.5), y), "finger joint (red edge: proximal)", fill=(220, 220, 220), font=font)
    y += step
    d.rectangle([x, y + 2, x + fs, y + fs], outline=(80, 230, 255), width=2)
    d.text((x + int(fs * 1.5), y), "wrist area", fill=(220, 220, 220), font=font)
    y += step + step // 2
    d.text((x, y), "Bones", fill=(255, 255, 255), font=font)
    y += step
    names = [n for n in anatomy.BONE_NAMES if n in small]
    col_w = lw // 2 - fs
    for k, name in enumerate(names):
        cx = x + (k % 2) * col_w
        cy = y + (k // 2) * step
        d.rectangle([cx, cy + 2, cx + fs, cy + fs], fill=bone_colour(name))
        d.text((cx + int(fs * 1.5), cy), name if len(name) < 14 else name[:12] + "..", fill=(220, 220, 220),
               font=font)
    return canvas
