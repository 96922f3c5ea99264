"""Hand-built synthetic HandSamples for the dataset tests (tiny images; no phantom generator needed)."""
from __future__ import annotations

import numpy as np

from ramh_rt import anatomy
from ramh_rt.geometry import Roi
from ramh_train.datasets.sample import HandSample

H, W = 64, 80


def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return ((yy + 0.5 - cy) / ry) ** 2 + ((xx + 0.5 - cx) / rx) ** 2 <= 1.0


def make_hand(seed: int, *, stem: str | None = None, side: str | None = None, h: int = H, w: int = W,
              dtype=np.uint8, spacing: float | None = 0.1) -> HandSample:
    """A small random hand: some overlapping bone masks (Sesamoid in two pieces), erosions, oriented ROIs for 15 of the
    22 areas (one crossing the image border) and BE/JSN scores for those areas."""
    rng = np.random.default_rng(seed)
    side = side or ("L" if seed % 2 == 0 else "R")
    stem = stem or f"TS_SYN_P{seed:04d}_20200101_{seed:04d}_{side}"
    hi = 255 if dtype == np.uint8 else 4095
    image = rng.integers(0, hi + 1, (h, w)).astype(dtype)
    names = list(rng.choice(anatomy.BONE_NAMES, size=6, replace=False))
    if "Sesamoid" not in names:
        names.append("Sesamoid")
    bones = {}
    for n in names:
        if n == "Sesamoid":  # two separate instances
            bones[n] = _ellipse(h, w, h * 0.2, w * 0.2, 3, 4) | _ellipse(h, w, h * 0.8, w * 0.7, 4, 3)
        else:
            bones[n] = _ellipse(h, w, rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w, rng.uniform(4, h / 3),
                                rng.uniform(4, w / 3))
    erosions = {anatomy.EROSION_CATEGORIES[0]: _ellipse(h, w, h / 2, w / 2, 3, 5),
                anatomy.EROSION_CATEGORIES[2]: rng.random((h, w)) < 0.01}
    rois = {}
    for stem_ in rng.choice(anatomy.AREA_STEMS, size=14, replace=False):
        rois[str(stem_)] = Roi(float(rng.uniform(10, w - 10)), float(rng.uniform(10, h - 10)),
                                      float(rng.uniform(6, 16)), float(rng.uniform(6, 16)),
                                      float(rng.uniform(-60, 60)))
    rois["SR"] = Roi(w - 2.0, h - 3.0, 12.0, 9.0, 15.0)  # crosses the image corner: bbox is clipped
    boxes = {}
    for k, r in rois.items():
        x0, y0, x1, y1 = r.bbox()
        boxes[k] = (max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h)))
    # Scores for the ROIs that have a box (the writer crops every scored ROI).
    be = {k: int(rng.integers(0, anatomy.score_range(k)[1] + 1)) for k in anatomy.BE_KEYS if k[3:] in rois}
    jsn = {k: int(rng.integers(0, anatomy.score_range(k)[1] + 1)) for k in anatomy.JSN_KEYS if k[4:] in rois}
    return HandSample(stem=stem, image=image, side=side, spacing_mm=spacing, bone_masks=bones,
                      erosion_masks=erosions, joint_boxes=boxes, joint_rois=rois, be_scores=be, jsn_scores=jsn,
                      meta={"metadata": {"isRA": seed % 2, "Sex": "F" if seed % 3 else "M"}})


def stub_generate(seed: int, config=None) -> HandSample:
    """Stand-in for ramh_train.phantoms.generate: deterministic in ``seed``; ``config`` may set ``fail_seeds``."""
    if config and seed in set(config.get("fail_seeds", [])):
        raise RuntimeError(f"stub failure for seed {seed}")
    return make_hand(seed % 100_000, side="L" if seed % 2 else "R", stem="IGNORED_L" if seed % 2 else "IGNORED_R")
