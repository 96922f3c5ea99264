"""Overlay pictures a reader can check by eye: bones, erosions, SvdH ROIs with their scores, and a legend.

:func:`draw_overlay` is the one renderer (used for analyses here and for ground-truth samples by
``ramh_train.datasets.overlay``); :func:`render_analysis` draws an :class:`ramh_rt.result.Analysis`.
Pillow and NumPy only.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import anatomy
from .geometry import box_corners

EROSION_RGB = (255, 40, 40)
ROI_RGB = (255, 220, 0)
ROI_MISSING_RGB = (160, 160, 160)


def bone_color(name: str) -> tuple[int, int, int]:
    """A stable, distinct colour per bone class (neighbouring classes get far-apart hues)."""
    i = anatomy.BONE_INDEX[anatomy.canonical_bone_name(name)]
    hue = (i * 0.61803398875) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


@dataclass
class MaskLayer:
    """A bone mask to draw: the crop covering ``bbox`` (x0, y0, x1, y1) of the full image."""

    name: str
    crop: np.ndarray
    bbox: tuple[int, int, int, int]


@dataclass
class RoiLayer:
    """An oriented ROI to draw with its label (e.g. ``"MCP-I  BE 2  JSN 1"``).

    ``rgb`` is its colour (default :data:`ROI_RGB`); ``proximal_edge`` marks its proximal side (the local +y edge)
    in red, so that the orientation reads at a glance.
    """

    stem: str
    box: Sequence[float] | None  # (cx, cy, w, h, angle_deg) in image pixels; None = not located
    label: str
    rgb: tuple[int, int, int] = ROI_RGB
    proximal_edge: bool = False


@dataclass
class ErosionLayer:
    """An H x W boolean erosion mask to fill in ``rgb`` at opacity ``alpha``, listed in the legend as ``name``."""

    name: str
    mask: np.ndarray
    rgb: tuple[int, int, int] = EROSION_RGB
    alpha: float = 0.65


def _display_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(img, [0.5, 99.5])
    if hi <= lo:
        hi = lo + 1.0
    return (np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


#: Smallest accepted ``max_side`` of an overlay, in pixels.
MIN_MAX_SIDE = 64


def check_max_side(max_side) -> int:
    """``max_side`` as an int.

    Raises:
        ValueError: not an integer >= :data:`MIN_MAX_SIDE` (0, -10, 2.5, "big"...).
    """
    if isinstance(max_side, (bool, np.bool_)) or not isinstance(max_side, (int, np.integer)) or max_side < MIN_MAX_SIDE:
        raise ValueError(f"max_side must be an integer number of pixels >= {MIN_MAX_SIDE}, got {max_side!r}")
    return int(max_side)


def _decimation(h: int, w: int, oh: int, ow: int) -> int:
    """Integer pixel step that keeps at least twice the display resolution (1 for images near display size, whose
    pictures are then exactly what a full-resolution resize gives)."""
    return max(1, min(h // max(1, 2 * oh), w // max(1, 2 * ow)))


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def draw_overlay(image: np.ndarray, *, bones: Iterable[MaskLayer] = (), erosions: Iterable[ErosionLayer] = (),
                 rois: Iterable[RoiLayer] = (), legend_lines: Sequence[str] = (), title: str = "",
                 max_side: int = 1600, scale: float | None = None, fill_alpha: float = 0.3,
                 legend: bool = True) -> Image.Image:
    """Render an overlay and return it as an RGB PIL image.

    Args:
        image: H x W grayscale image (any numeric dtype; displayed with a 0.5-99.5 percentile window).
        bones: bone masks (filled at ``fill_alpha`` opacity with an outline in the class colour, labelled at the
            centroid).
        erosions: erosion masks, each filled in its colour and listed in the legend (e.g. one "bone erosion"
            layer for an analysis, one per annotation category for a ground-truth sample).
        rois: oriented ROIs with labels.
        legend_lines: text lines for the legend panel (totals, provenance...).
        title: first legend line, in bold size.
        max_side: the picture is downscaled so that its longer image side is at most this many pixels; an integer
            >= 64 (a legible picture). Ignored when ``scale`` is given.
        scale: picture size relative to the image, in (0, 4] (the picture is ``round(W * scale) x round(H * scale)``
            plus the legend); default ``min(1, max_side / longer side)``.
        fill_alpha: opacity of the bone fills, in [0, 1].
        legend: add the legend panel on the right (title, lines, erosion layers, ROI key, bone colours).

    Time and memory follow the display size, not the film's: an image (or erosion mask) more than twice the
    display size is first decimated by an integer step (every k-th pixel) before it is windowed and resized.

    Raises:
        ValueError: ``max_side`` is not an integer >= 64, ``scale`` not in (0, 4], ``fill_alpha`` not in [0, 1], or
            ``image`` is not 2-D.
    """
    check_max_side(max_side)
    if scale is not None and not (isinstance(scale, (int, float, np.number)) and 0.0 < float(scale) <= 4.0):
        raise ValueError(f"scale must lie in (0, 4], got {scale!r}")
    if not (isinstance(fill_alpha, (int, float, np.number)) and 0.0 <= float(fill_alpha) <= 1.0):
        raise ValueError(f"fill_alpha must lie in [0, 1], got {fill_alpha!r}")
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be H x W, got shape {image.shape}")
    h, w = image.shape[:2]
    s = float(scale) if scale is not None else min(1.0, max_side / float(max(h, w)))
    erosions = list(erosions)
    ow, oh = max(1, round(w * s)), max(1, round(h * s))
    step = _decimation(h, w, oh, ow)
    base = Image.fromarray(_display_image(image[::step, ::step])).resize((ow, oh), Image.BILINEAR).convert("RGB")
    rgb = np.asarray(base, dtype=np.float32).copy()
    font = _font(max(11, int(oh / 110)))
    labels: list[tuple[float, float, str, tuple[int, int, int]]] = []

    for layer in bones:
        x0, y0, x1, y1 = layer.bbox
        if x1 <= x0 or y1 <= y0 or not layer.crop.any():
            continue
        ox0, oy0 = int(np.floor(x0 * s)), int(np.floor(y0 * s))
        ox1, oy1 = max(ox0 + 1, int(np.ceil(x1 * s))), max(oy0 + 1, int(np.ceil(y1 * s)))
        ox1, oy1 = min(ox1, ow), min(oy1, oh)
        if ox1 <= ox0 or oy1 <= oy0:
            continue
        small = np.asarray(Image.fromarray(layer.crop.astype(np.uint8) * 255).resize(
            (ox1 - ox0, oy1 - oy0), Image.NEAREST)) > 0
        inner = small.copy()
        inner[1:-1, 1:-1] = small[1:-1, 1:-1] & small[:-2, 1:-1] & small[2:, 1:-1] & small[1:-1, :-2] & small[1:-1, 2:]
        edge = small & ~inner
        col = np.array(bone_color(layer.name), dtype=np.float32)
        region = rgb[oy0:oy1, ox0:ox1]
        region[small] = (1.0 - fill_alpha) * region[small] + fill_alpha * col
        region[edge] = col
        ys, xs = np.nonzero(small)
        if layer.name != "SoftTissue" and len(xs):
            labels.append((ox0 + xs.mean(), oy0 + ys.mean(), layer.name, bone_color(layer.name)))

    for layer in erosions:
        mask = np.asarray(layer.mask)
        if not mask.any():
            continue
        small_em = mask[::step, ::step].astype(np.uint8) * 255
        em = np.asarray(Image.fromarray(small_em).resize((ow, oh), Image.BILINEAR)) > 64
        rgb[em] = (1.0 - layer.alpha) * rgb[em] + layer.alpha * np.array(layer.rgb, dtype=np.float32)

    pic = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pic)
    for x, y, text, col in labels:
        draw.text((x, y), text, fill=col, font=font, anchor="mm", stroke_width=2, stroke_fill=(0, 0, 0))
    for roi in rois:
        if roi.box is None:
            continue
        pts = [(x * s, y * s) for x, y in box_corners(roi.box)]
        draw.line(pts + [pts[0]], fill=roi.rgb, width=2)
        if roi.proximal_edge:  # corners 2 and 3 span the local +y (proximal) side
            draw.line([pts[2], pts[3]], fill=(255, 80, 80), width=2)
        tx, ty = min(p[0] for p in pts), min(p[1] for p in pts)
        draw.text((tx, ty - 2), roi.label, fill=roi.rgb, font=font, anchor="ld", stroke_width=2,
                  stroke_fill=(0, 0, 0))
    if not legend:
        return pic

    # Legend panel to the right of the picture.
    lines = ([title] if title else []) + list(legend_lines)
    panel_w = max(260, int(ow * 0.32))
    out = Image.new("RGB", (ow + panel_w, oh), (24, 24, 24))
    out.paste(pic, (0, 0))
    d = ImageDraw.Draw(out)
    lh = int(font.size * 1.35) if hasattr(font, "size") else 14
    y = 8
    for i, line in enumerate(lines):
        fill = (255, 255, 255) if i else (255, 220, 0)
        if line.startswith("QC: "):  # the quality-control status in its colour (qc_legend)
            fill = QC_RGB.get(line[4:].split(" ")[0].lower(), fill)
        d.text((ow + 10, y), line, fill=fill, font=font)
        y += lh
    y += lh // 2
    for layer in erosions:
        d.rectangle((ow + 10, y, ow + 10 + lh - 4, y + lh - 4), fill=layer.rgb)
        d.text((ow + 14 + lh, y), layer.name, fill=(255, 255, 255), font=font)
        y += lh
    d.line((ow + 10, y + lh // 2, ow + 10 + lh, y + lh // 2), fill=ROI_RGB, width=2)
    d.text((ow + 14 + lh, y), "SvdH ROI: stem, BE score, JSN score", fill=(255, 255, 255), font=font)
    y += lh + lh // 2
    cols = 2
    col_w = (panel_w - 20) // cols
    for k, name in enumerate(anatomy.BONE_NAMES):
        cx = ow + 10 + (k % cols) * col_w
        cy = y + (k // cols) * lh
        if cy + lh > oh:
            break
        d.rectangle((cx, cy + 2, cx + lh - 6, cy + lh - 4), fill=bone_color(name))
        d.text((cx + lh, cy), name, fill=(220, 220, 220), font=font)
    return out


#: Legend colour of each quality-control status.
QC_RGB = {"ok": (80, 220, 100), "review": (255, 170, 0), "reject": (255, 60, 60)}


def qc_legend(qc, max_reasons: int = 6, width: int = 40) -> list[str]:
    """Legend lines of a :class:`ramh_rt.qc.QualityControl`: the status, then each reason (review and reject first)
    wrapped to ``width`` characters, at most two lines each. Empty for None."""
    import textwrap

    if qc is None:
        return []
    lines = [f"QC: {qc.status.upper()}" + (f"  (domain {qc.domain_score:.1f} / {qc.domain_threshold:.1f})"
                                           if qc.domain_score is not None and qc.domain_threshold else "")]
    order = {"reject": 0, "review": 1, "info": 2}
    for r in sorted(qc.reasons, key=lambda r: order[r.severity])[:max_reasons]:
        wrapped = textwrap.wrap(f"{r.severity}: {r.code}: {r.message}", width, subsequent_indent="   ")
        if len(wrapped) > 2:
            wrapped = [wrapped[0], wrapped[1][:width - 1] + "…"]
        lines += [" " + w for w in wrapped]
    return lines


def roi_label(stem: str, be: int | None, jsn: int | None) -> str:
    parts = [stem]
    if be is not None:
        parts.append(f"BE{be}")
    if jsn is not None:
        parts.append(f"J{jsn}")
    return " ".join(parts)


def save_png(img: Image.Image, path: str | Path) -> Path:
    """Write a PIL image as PNG atomically (temporary file + rename)."""
    import io as _io

    from .fs import write_atomic

    buf = _io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    write_atomic(Path(path), buf.getvalue())
    return Path(path)


def render_analysis(analysis, path: str | Path | None = None, *, max_side: int = 1600) -> Image.Image:
    """Overlay of an :class:`ramh_rt.result.Analysis` (bones, erosion mask, ROIs with scores, totals)."""
    check_max_side(max_side)  # before any work
    if analysis.image is None:
        raise ValueError("this Analysis was made with keep_image=False; the overlay needs the image")
    t, m = analysis.totals, analysis.meta
    bones = [MaskLayer(b.name, b.mask_crop, b.bbox) for b in analysis.bones]
    rois = [RoiLayer(j.stem, j.roi, roi_label(j.stem, j.be_score, j.jsn_score)) for j in analysis.joints]
    missing = [j.stem for j in analysis.joints if not j.located]
    totals = ([f"SvdH hand total {t.svdh}  (erosion {t.erosion}, JSN {t.jsn})"] if t.svdh is not None else
              [f"SvdH hand total: not reported ({m.field_of_view})",
               f"areas in view {t.partial_svdh}  (erosion {t.erosion}, JSN {t.jsn})"])
    legend = [
        *totals,
        f"expected {t.expected_svdh:.1f}" + (f", whole-image {t.global_svdh:.1f}" if t.global_svdh is not None else ""),
        f"severity: {t.severity} ({t.severity_source.replace('_', ' ')})" if t.severity is not None else
        f"severity: not reported ({m.field_of_view})",
        f"side {m.side or '?'}  spacing " + (f"{m.spacing_mm:.4g} mm" if m.spacing_mm else "unknown"),
        f"bundle {m.bundle_id} {m.bundle_version}",
        f"{m.backend} on {m.device}",
    ]
    if missing:
        legend.append("not located: " + ", ".join(missing))
    legend += qc_legend(getattr(analysis, "qc", None))
    legend.append("NOT FOR CLINICAL USE: demo weights")
    img = draw_overlay(analysis.image, bones=bones, erosions=[ErosionLayer("bone erosion", analysis.erosion_mask)],
                       rois=rois,
                       legend_lines=legend, title=f"ramh_rt: {Path(m.source).name}", max_side=max_side)
    if path is not None:
        save_png(img, path)
    return img
