"""A picture of every annotation of a :class:`~ramh_train.datasets.sample.HandSample`, drawn by the runtime's one
renderer (:func:`ramh_rt.overlay.draw_overlay`), so that ground truth and analyses look alike."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ramh_rt import anatomy
from ramh_rt.geometry import mask_bounds
from ramh_rt.overlay import ErosionLayer, MaskLayer, RoiLayer, draw_overlay

from .sample import HandSample

#: Erosion category -> RGB.
EROSION_COLOURS: dict[str, tuple[int, int, int]] = {
    "SvdH-BE-90": (255, 30, 30), "SvdH-BE-50": (255, 150, 0), "Non-SvdH-BE": (230, 0, 230)}
#: ROI colours: finger joints and wrist areas.
FINGER_RGB, WRIST_RGB = (255, 235, 60), (80, 230, 255)


def render_overlay(sample: HandSample, path: str | Path | None = None, *, scale: float = 0.4,
                   fill_alpha: float = 0.22, legend: bool = True) -> Image.Image:
    """Draw a sample's annotations over its image.

    Bone masks are shown as translucent fills with solid outlines and a label at each bone's centroid; erosion
    masks as near-opaque fills in one colour per category (:data:`EROSION_COLOURS`); the 22 oriented ROIs as rotated
    rectangles (finger joints yellow, wrist areas cyan, the proximal edge red) labelled with the area stem and its
    scores (``E`` erosion 0-5, ``J`` narrowing 0-4, ``-`` where the area has no such score); a legend panel lists the
    sample's stem, size, spacing, side, totals, the erosion categories with their pixel counts and the bone colours.

    Args:
        sample: the sample to draw.
        path: where to save the picture (format from the suffix); None to only return it.
        scale: output size relative to the image (0 < scale <= 4).
        fill_alpha: opacity of the bone fills (0..1).
        legend: add the legend panel on the right.

    Returns:
        RGB :class:`PIL.Image.Image` of ``round(W * scale) x round(H * scale)`` (plus the legend's width).

    Raises:
        ValueError: ``scale`` or ``fill_alpha`` out of range, or an image that is not 2-D.
    """
    img = np.asarray(sample.image)
    if img.ndim != 2:
        raise ValueError(f"sample.image must be 2-D (H x W), got shape {img.shape}")
    bones = []
    for name, m in sample.bone_masks.items():
        m = np.asarray(m, bool)
        b = mask_bounds(m)
        if b is not None:
            bones.append(MaskLayer(name, m[b[1]:b[3], b[0]:b[2]], b))
    erosions = [ErosionLayer(f"{name} ({int(np.count_nonzero(m))} px)", np.asarray(m, bool),
                             EROSION_COLOURS.get(name, (255, 255, 255)), 0.85)
                for name, m in sample.erosion_masks.items()]
    rois = []
    for stem, box in sample.joint_rois.items():
        a = anatomy.area(stem)
        e = sample.be_scores.get(f"BE_{stem}") if a.be else None
        j = sample.jsn_scores.get(f"JSN_{stem}") if a.jsn else None
        rois.append(RoiLayer(stem, (box.cx, box.cy, box.w, box.h, box.angle),
                             f"{stem} E{'-' if e is None else e} J{'-' if j is None else j}",
                             FINGER_RGB if a.region == "finger" else WRIST_RGB, proximal_edge=True))
    sp = f"{sample.spacing_mm:.3f} mm/px" if sample.spacing_mm else "spacing unknown"
    lines = [f"{sample.shape[1]}x{sample.shape[0]} px, {sp}, side {sample.side}"]
    t = sample.totals() if (sample.be_scores or sample.jsn_scores) else None
    if t is not None:
        lines.append(f"SvdH {t['svdh']:.0f}  (erosion {t['erosion']:.0f}, JSN {t['jsn']:.0f})")
    lines += ["ROIs: E erosion 0-5, J JSN 0-4", "yellow finger joint, cyan wrist area", "red edge: proximal side"]
    out = draw_overlay(img, bones=bones, erosions=erosions, rois=rois, legend_lines=lines, title=sample.stem,
                       scale=scale, fill_alpha=fill_alpha, legend=legend)
    if path is not None:
        out.save(path)
    return out
