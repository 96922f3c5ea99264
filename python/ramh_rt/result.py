"""The result of one analysis: :class:`Analysis` and its records, JSON and RA2-DREAM CSV export.

The JSON form is versioned (:data:`SCHEMA_VERSION`) and described by ``ramh_rt/schemas/analysis.schema.json``,
shipped in the package (:func:`json_schema`). Coordinates are image pixels of the analysed image in continuous
coordinates (pixel ``(col, row)`` covers ``[col, col+1) x [row, row+1)``); boxes ``(x0, y0, x1, y1)`` are exclusive
at the far end; oriented ROIs are ``(cx, cy, w, h, angle_deg)`` with the angle counter-clockwise as seen on screen and
the ROI's local y axis along the bone axis from distal to proximal.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import anatomy, rle

SCHEMA_VERSION = "ramh_rt.analysis/2"


@dataclass(eq=False)
class BoneRecord:
    """One bone instance (or a Sesamoid / the soft-tissue region).

    Attributes:
        name: RAM-H1200 class name (:data:`ramh_rt.anatomy.BONE_NAMES`).
        instance: 0 for single-instance classes; 0, 1, ... for Sesamoid instances (raster order).
        area_px: area in image pixels (of :attr:`mask`).
        bbox: (x0, y0, x1, y1) in image pixels, exclusive at the far end.
        centroid: (x, y) in image pixels (continuous coordinates).
        orientation_deg: principal axis angle, counter-clockwise from +x as seen on screen, in (-90, 90].
        major_axis_px, minor_axis_px: principal axis lengths (scikit-image definition) in image pixels.
        score: mean model probability over the instance's pixels (a confidence in 0..1).
    """

    name: str
    instance: int
    area_px: int
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]
    orientation_deg: float
    major_axis_px: float
    minor_axis_px: float
    score: float
    image_shape: tuple[int, int]
    mask_crop: np.ndarray = field(repr=False)

    @property
    def is_bone(self) -> bool:
        return anatomy.bone(self.name).is_bone

    @property
    def mask(self) -> np.ndarray:
        """Full-image H x W boolean mask (built from :attr:`mask_crop`, which covers :attr:`bbox`)."""
        out = np.zeros(self.image_shape, dtype=bool)
        x0, y0, x1, y1 = self.bbox
        out[y0:y1, x0:x1] = self.mask_crop
        return out

    def to_dict(self, include_mask: bool = False) -> dict:
        d = {"name": self.name, "instance": self.instance, "area_px": int(self.area_px),
             "bbox": [int(v) for v in self.bbox], "centroid": [float(v) for v in self.centroid],
             "orientation_deg": float(self.orientation_deg), "major_axis_px": float(self.major_axis_px),
             "minor_axis_px": float(self.minor_axis_px), "score": float(self.score)}
        if include_mask:  # from the bbox crop: never builds the full-image mask
            d["mask_rle"] = rle.encode_crop(self.mask_crop, self.bbox, self.image_shape)
        return d


@dataclass(eq=False)
class JointRecord:
    """One SvdH area of the hand (22 distinct areas carry the 16 erosion and 15 JSN scores).

    Attributes:
        stem: RAM-H1200 ROI stem (``"MCP-I"``); see :data:`ramh_rt.anatomy.AREA_STEMS`.
        name / display: short and long names.
        located: False when the area could not be located (an anchor bone was not found); then roi, scores and
            quantities are None and ``note`` says why.
        roi: oriented box (cx, cy, w, h, angle_deg) in image pixels.
        bbox: its axis-aligned bounding box (x0, y0, x1, y1), clipped to the image.
        be_score / be_probs: erosion score 0..5 (the median of the ordinal distribution: the smallest score whose
            cumulative probability reaches 0.5) and its 6 class probabilities; None where the area has no erosion
            score.
        jsn_score / jsn_probs: narrowing score 0..4 and its 5 probabilities; None where the area has no JSN score.
        eroded_px / eroded_mm2: eroded area in image pixels / mm² (mm² None without a pixel spacing).
        eroded_fraction: eroded share of the joint's bone area (bone ∪ erosion) inside the ROI, 0..1.
        lesions: number of erosion lesions (connected components above the minimum size).
        largest_lesion_px: area of the largest lesion in image pixels.
        uncertainty: the calibrated expected absolute error, in SvdH points, of this area's contribution to the hand
            total (BE and JSN together; :func:`ramh_rt.qc.annotate_uncertainty`); None where not located.
        review: True when ``uncertainty`` reaches the bundle's review threshold (a person should check this area).
    """

    stem: str
    name: str
    display: str
    located: bool
    roi: tuple[float, float, float, float, float] | None = None
    bbox: tuple[float, float, float, float] | None = None
    be_score: int | None = None
    be_probs: list[float] | None = None
    jsn_score: int | None = None
    jsn_probs: list[float] | None = None
    eroded_px: float | None = None
    eroded_mm2: float | None = None
    eroded_fraction: float | None = None
    lesions: int | None = None
    largest_lesion_px: float | None = None
    note: str | None = None
    uncertainty: float | None = None
    review: bool = False

    @property
    def area(self) -> anatomy.SvdHArea:
        return anatomy.area(self.stem)

    @property
    def be_expected(self) -> float | None:
        return None if self.be_probs is None else float(np.dot(np.arange(len(self.be_probs)), self.be_probs))

    @property
    def jsn_expected(self) -> float | None:
        return None if self.jsn_probs is None else float(np.dot(np.arange(len(self.jsn_probs)), self.jsn_probs))

    def to_dict(self) -> dict:
        def f(v):
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

        return {"stem": self.stem, "name": self.name, "display": self.display, "located": self.located,
                "roi": None if self.roi is None else [float(v) for v in self.roi],
                "bbox": None if self.bbox is None else [float(v) for v in self.bbox],
                "be_score": self.be_score, "be_probs": self.be_probs,
                "jsn_score": self.jsn_score, "jsn_probs": self.jsn_probs,
                "eroded_px": f(self.eroded_px), "eroded_mm2": f(self.eroded_mm2),
                "eroded_fraction": f(self.eroded_fraction), "lesions": self.lesions,
                "largest_lesion_px": f(self.largest_lesion_px), "note": self.note,
                "uncertainty": f(self.uncertainty), "review": bool(self.review)}


@dataclass
class Totals:
    """Hand totals.

    Attributes:
        erosion: sum of the erosion scores of the located erosion areas (0..80).
        jsn: sum of the JSN scores of the located JSN areas (0..60).
        svdh: erosion + jsn (0..140) when the whole hand is in view (``meta.field_of_view == "hand"``), else None.
        partial_svdh: erosion + jsn of the areas that are in view and located (equals ``svdh`` for a whole hand).
        expected_svdh: the same from the score probabilities (sum of expected values), a smoother estimate.
        complete: True when all 31 scores were produced (every area located).
        global_svdh: the whole-image regressor's estimate of the hand total (None without a global model, and None
            when the field of view is not the whole hand: that model was trained on whole hands).
        severity: severity class name (:data:`ramh_rt.anatomy.SEVERITY_NAMES`): the class of ``svdh``
            (:func:`ramh_rt.anatomy.severity_of`) when every area was scored; otherwise the global model's class when
            the bundle has one (an incomplete joint sum would understate the total), else the class of ``svdh``.
            None when the field of view is not the whole hand (the pipeline withholds them): no
            severity of a whole hand can be read from a wrist, the fingers or part of a hand.
        severity_probs: the class probabilities of the global model (None without one or for a partial field of
            view), whatever ``severity`` used.
        severity_source: ``"global_model"``, ``"joint_scores"``, or ``"not_reported"`` (partial field of view).
        svdh_interval: ``[lo, hi]``, the interval (nominally 90%, see the bundle's ``qc.uncertainty``) of the hand total
            from the joint probabilities (:func:`ramh_rt.qc.total_interval`); None when ``svdh`` is None or not
            every area was scored.
    """

    erosion: int
    jsn: int
    svdh: int | None
    expected_svdh: float
    complete: bool
    global_svdh: float | None
    severity: str | None
    severity_probs: list[float] | None
    severity_source: str
    partial_svdh: int | None = None
    svdh_interval: list[int] | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Meta:
    """Provenance of an analysis: laterality, spacing, model bundle, backend, device, timings, and what input
    understanding found (:mod:`ramh_rt.understand`).

    Attributes (understanding):
        hand_box: ``(x0, y0, x1, y1)`` of the hand in the film, pixels: its silhouette with a margin of 3 % of the
            film (a single hand is analysed on the whole film; each hand of a two-hand film on its box).
        orientation: ``{"rotation_deg": 0|90|180|270, "mirrored": bool}``: how far the hand was turned clockwise
            from fingers-up in the film (it was analysed upright and the results mapped back), and whether the film
            is a left-right mirror (decided only against a trusted side: DICOM laterality or ``side=``).
        field_of_view: ``"hand"``, ``"wrist"``, ``"fingers"`` or ``"partial"``.
        understanding_reasons: ``[code, message, severity]`` lists, severity ``"info"``/``"review"``/``"reject"``;
            codes in :data:`ramh_rt.qc.REASON_CODES`.
    """

    side: str | None
    side_source: str | None
    spacing_mm: float | None
    spacing_source: str | None
    image_shape: tuple[int, int]
    source: str
    bundle_id: str
    bundle_version: str
    backend: str
    device: str
    ramh_rt_version: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    hand_box: tuple[int, int, int, int] | None = None
    orientation: dict = field(default_factory=lambda: {"rotation_deg": 0, "mirrored": False})
    field_of_view: str | None = None
    understanding_reasons: list[list[str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["image_shape"] = list(self.image_shape)
        d["hand_box"] = None if self.hand_box is None else [int(v) for v in self.hand_box]
        d["orientation"] = dict(self.orientation)
        d["understanding_reasons"] = [list(r) for r in self.understanding_reasons]
        return d


@dataclass(eq=False)
class Analysis:
    """Everything ramh_rt found in one hand radiograph (docs/architecture.md describes how each part is produced).

    Attributes:
        bones: bone instances (28 bones, Sesamoid instances, SoftTissue), in :data:`ramh_rt.anatomy.BONE_NAMES`
            order; classes that were not found are absent.
        joints: the 22 SvdH areas in :data:`ramh_rt.anatomy.AREA_STEMS` order (always 22 records; unlocated ones
            have ``located=False``).
        totals: :class:`Totals`.
        meta: :class:`Meta`.
        erosion_mask: full-image H x W boolean bone-erosion mask (built on first access).
        cam: the global model's class-activation map (h x w float32 over the model input) or None.
        qc: :class:`ramh_rt.qc.QualityControl` (status, reasons, field of view, orientation, domain distance), set by
            the pipeline; None for an Analysis built by hand.
    """

    bones: list[BoneRecord]
    joints: list[JointRecord]
    totals: Totals
    meta: Meta
    erosion_mask_fn: Callable[[], np.ndarray] = field(repr=False)
    image: np.ndarray | None = field(default=None, repr=False)
    cam: np.ndarray | None = field(default=None, repr=False)
    qc: Any = None

    @cached_property
    def erosion_mask(self) -> np.ndarray:
        return self.erosion_mask_fn()

    def bone(self, name: str, instance: int = 0) -> BoneRecord | None:
        """The record of a bone class (alias spellings accepted), or None when it was not found."""
        name = anatomy.canonical_bone_name(name)
        for b in self.bones:
            if b.name == name and b.instance == instance:
                return b
        return None

    def joint(self, stem: str) -> JointRecord:
        """The record of an SvdH area by RAM-H1200 stem."""
        anatomy.area(stem)  # raises a KeyError listing the stems
        return next(j for j in self.joints if j.stem == stem)

    @property
    def scores(self) -> dict[str, int | None]:
        """``{"BE_<stem>": score, "JSN_<stem>": score}`` for the 31 scored areas (None where not located)."""
        out: dict[str, int | None] = {}
        for j in self.joints:
            if j.area.be:
                out[f"BE_{j.stem}"] = j.be_score
            if j.area.jsn:
                out[f"JSN_{j.stem}"] = j.jsn_score
        return out

    # ---- export ------------------------------------------------------------------------------------------------
    def to_dict(self, include_masks: bool = False) -> dict:
        """JSON-ready dict following ``analysis.schema.json``; masks as COCO RLE when ``include_masks``."""
        d = {"schema": SCHEMA_VERSION,
             "bones": [b.to_dict(include_masks) for b in self.bones],
             "joints": [j.to_dict() for j in self.joints],
             "scores": self.scores,
             "totals": self.totals.to_dict(),
             "meta": self.meta.to_dict(),
             "qc": None if self.qc is None else self.qc.to_dict()}
        if include_masks:
            from .geometry import mask_bounds

            m = self.erosion_mask
            b = mask_bounds(m)  # encode the occupied box only (time and memory ~ the erosions, not the film)
            d["erosion_mask_rle"] = rle.encode(m) if b is None else rle.encode_crop(m[b[1]:b[3], b[0]:b[2]], b,
                                                                                     m.shape)
        return d

    def to_json(self, include_masks: bool = False, indent: int | None = 2) -> str:
        """The analysis as JSON text (schema :data:`SCHEMA_VERSION`; see :func:`json_schema`)."""
        return json.dumps(self.to_dict(include_masks), indent=indent, allow_nan=False)

    def to_ra2_csv_row(self, patient_id: str | None = None) -> dict[str, str | int]:
        """One RA2-DREAM CSV row for this hand: ``Patient_ID`` then the hand's ``LH_``/``RH_`` columns.

        Unlocated areas give empty cells. Raises ValueError when the hand's side is unknown (pass ``side=`` to
        analyze or use an image whose file name or DICOM header carries it).
        """
        if self.meta.side not in anatomy.SIDES:
            raise ValueError("the hand's side is unknown; RA2-DREAM columns need LH_ or RH_ (pass side='L' or 'R')")
        row: dict[str, str | int] = {"Patient_ID": patient_id or Path(self.meta.source).stem}
        scores = self.scores
        for col in anatomy.ra2_columns(self.meta.side):
            value = scores[anatomy.RA2_TO_KEY[col[3:]]]
            row[col] = "" if value is None else int(value)
        return row

    def overlay(self, path: str | Path | None = None, *, max_side: int = 1600):
        """Render bones, erosions, ROIs with their scores and a legend; save as PNG when ``path`` is given.

        Returns the PIL image. Needs the analysed image (kept unless ``keep_image=False`` was passed).
        """
        from .overlay import render_analysis

        return render_analysis(self, path, max_side=max_side)

    def to_dicom(self, source=None, kinds: tuple[str, ...] = ("sr", "seg", "sc"), **kwargs) -> list:
        """The analysis as DICOM objects (``pydicom.Dataset``): SR (TID 1500 scores), SEG (bones and erosions), SC
        (the overlay); see :func:`ramh_rt.dicom_out.analysis_to_dicom` for ``source``, the keyword arguments
        (``bundle``, ``identity``...), the codes and the errors (:class:`~ramh_rt.dicom_out.DicomExportError`)."""
        from .dicom_out import analysis_to_dicom

        return analysis_to_dicom(self, source, kinds, **kwargs)


def ra2_csv_header(side: str) -> list[str]:
    """Header matching :meth:`Analysis.to_ra2_csv_row` for one side."""
    return ["Patient_ID"] + anatomy.ra2_columns(side)


def json_schema() -> dict[str, Any]:
    """The JSON schema of :meth:`Analysis.to_json` (shipped as ``ramh_rt/schemas/analysis.schema.json``)."""
    text = resources.files("ramh_rt").joinpath("schemas/analysis.schema.json").read_text()
    return json.loads(text)
