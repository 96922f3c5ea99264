"""The in-memory form of one annotated hand radiograph, shared by the RAM-H1200 reader and the phantom generator.

Its oriented joint ROIs are the runtime's :class:`ramh_rt.geometry.Roi` (one box convention for training and inference).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ramh_rt import anatomy
from ramh_rt.geometry import Roi


@dataclass
class HandSample:
    """One PA hand radiograph with every RAM-H1200 annotation level.

    Attributes:
        stem: file stem in the RAM-H1200 convention, ending in ``_L`` or ``_R``.
        image: H x W uint8 (as RAM-H1200 ships) or uint16 grayscale; bone is bright.
        side: ``"L"`` or ``"R"``.
        spacing_mm: pixel spacing in mm (None when unknown).
        bone_masks: class name (:data:`ramh_rt.anatomy.BONE_NAMES`) -> H x W bool mask; classes absent from the
            image are absent from the dict. Masks may overlap (multilabel).
        erosion_masks: erosion category (:data:`ramh_rt.anatomy.EROSION_CATEGORIES`) -> H x W bool mask.
        joint_boxes: ROI stem (:data:`ramh_rt.anatomy.AREA_STEMS`) -> axis-aligned box (x0, y0, x1, y1) in pixels,
            as the joint-detection JSON stores it.
        joint_rois: ROI stem -> oriented :class:`ramh_rt.geometry.Roi` in pixels (phantoms know it; for real data
            it is derived from the axis-aligned box with angle 0).
        be_scores / jsn_scores: ``"BE_<stem>"`` -> 0..5, ``"JSN_<stem>"`` -> 0..4 (missing keys = not scored).
        meta: anything else (centre, patient, generator parameters...).
    """

    stem: str
    image: np.ndarray
    side: str
    spacing_mm: float | None = None
    bone_masks: dict[str, np.ndarray] = field(default_factory=dict)
    erosion_masks: dict[str, np.ndarray] = field(default_factory=dict)
    joint_boxes: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    joint_rois: dict[str, Roi] = field(default_factory=dict)
    be_scores: dict[str, int] = field(default_factory=dict)
    jsn_scores: dict[str, int] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])

    def bone_stack(self, dtype=np.uint8) -> np.ndarray:
        """30 x H x W multilabel stack in :data:`ramh_rt.anatomy.BONE_NAMES` order (absent classes are zeros)."""
        h, w = self.shape
        out = np.zeros((anatomy.NUM_BONE_CLASSES, h, w), dtype=dtype)
        for name, m in self.bone_masks.items():
            out[anatomy.BONE_INDEX[name]] = m
        return out

    def erosion_label_map(self) -> np.ndarray:
        """H x W uint8: 0 background, 1 SvdH-BE-90, 2 SvdH-BE-50, 3 Non-SvdH-BE.

        Where categories overlap the more certain one wins (SvdH-BE-90 over SvdH-BE-50 over Non-SvdH-BE), as in the
        RAM-H1200 benchmark's conversion of the masks to a label map.
        """
        out = np.zeros(self.shape, dtype=np.uint8)
        for name in reversed(anatomy.EROSION_CATEGORIES):
            m = self.erosion_masks.get(name)
            if m is not None:
                out[m.astype(bool)] = anatomy.EROSION_LABEL[name]
        return out

    def erosion_union(self) -> np.ndarray:
        """H x W bool: any erosion category."""
        out = np.zeros(self.shape, dtype=bool)
        for m in self.erosion_masks.values():
            out |= m.astype(bool)
        return out

    @property
    def scores(self) -> dict[str, int]:
        return {**self.be_scores, **self.jsn_scores}

    def totals(self) -> dict[str, float]:
        return anatomy.hand_totals(self.scores)
