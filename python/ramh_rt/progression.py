"""Longitudinal change between two radiographs of the same hand: :func:`compare` -> :class:`Progression`.

Radiographic progression of RA is judged per patient against the smallest detectable change (SDC): the change in the
Sharp/van der Heijde (SvdH) score that exceeds measurement error with 95 % confidence. A hand whose SvdH total rose by
more than the SDC between two visits is a "progressor".

How the two films are matched. Every measurement compared here is taken in the joint's own frame: the SvdH area's
oriented ROI is built from the adjacent bone ends of *that* film, its crop is scored, and eroded areas are in mm²
(pixel counts times the film's own spacing). Areas are paired by their SvdH stem (ROI to ROI), never by pixel
position, so a hand that was placed, turned or magnified differently at the second visit is not read as change. An
area located in only one of the two films is not comparable and is left out of the totals (``complete`` is then
False).

Statistics (all under the stated assumptions; the benchmark ``benchmarks/progression.py`` checks them on phantoms):

* per area, the probability that the score increased, ``P(Y_f > Y_b) = sum_j p_f[j] * P(Y_b < j)``, from the
  baseline and follow-up probability vectors, assuming the two readings are independent;
* the distribution of the change of the hand total: the convolution of the per-area change distributions (areas and
  visits independent), from which the interval on the total change and ``p_progression = P(change > SDC)`` come. It
  expresses the models' own uncertainty only; repositioning noise that the models are confident about is not in it.

The progression flag is ``svdh_delta > sdc`` on the point scores (the clinical definition). Its false-positive rate
on unchanged hands is what :data:`FLAG_FALSE_POSITIVE_RATE` states for the default SDC (measured, see there).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from . import anatomy
from .errors import RamhError
from .result import Analysis

SCHEMA_VERSION = "ramh_rt.progression/1"

#: Default smallest detectable change of the hand's SvdH total, in SvdH units. 5.0 is the smallest detectable
#: difference of the Sharp/van der Heijde method found by Bruynesteyn et al., "Determination of the minimal clinically
#: important difference in rheumatoid arthritis joint damage of the Sharp/van der Heijde and Larsen/Scott scoring
#: methods by clinical experts and comparison with the smallest detectable difference", Arthritis Rheum 2002;
#: 46(4):913-920 (doi:10.1002/art.10190); the expert panel there judged changes of about that size minimally
#: clinically important. It was derived for two readers on the 0-448 hands-and-feet scale; here it is applied to one
#: hand's 0-140 total because it also bounds this SDK's own repeat-film error, which is what an SDC must exceed: on
#: unchanged phantom hands radiographed twice (new pose, spacing, scanner and exposure) the change of the default
#: bundle's total had an SD of 1.9 units (30 held-out pairs, ``benchmarks/progression.py``), so 5.0 lies above its
#: 1.96 SD (Bland-Altman) limit of 3.7. Another bundle, or real films, may need another value: measure the SD of the
#: change on repeat films and pass ``sdc=1.96 * SD`` or more.
DEFAULT_SDC = 5.0

#: The stated false-positive rate of the progression flag at :data:`DEFAULT_SDC`: the share of unchanged hands
#: (two films, new pose and exposure, no change of disease) flagged as progressed. 5 % is the bound an SDC at or above
#: 1.96 SD of the repeat-film change gives (2.5 % one-sided under a normal error, doubled for margin);
#: ``benchmarks/progression.py`` checks the measured rate on held-out phantom pairs against it (0 of 30 flagged with
#: the default bundle). A custom ``sdc`` changes the rate (``Progression.flag_false_positive_rate`` is then None).
FLAG_FALSE_POSITIVE_RATE = 0.05


class ComparisonError(RamhError, ValueError):
    """Two analyses cannot be compared: not Analyses, a hand side unknown, or the two hands of different sides.

    The message names which analysis (baseline or follow-up) and what is wrong.
    """


@dataclass
class JointChange:
    """The change of one SvdH area between the baseline and the follow-up film.

    Attributes:
        stem / name / display: the SvdH area (:data:`ramh_rt.anatomy.AREA_STEMS`).
        comparable: True when the area was located in both films; otherwise every change is None and ``note``
            says which film lacks it.
        be_baseline / be_followup / be_delta: erosion scores (0..5) and their change (follow-up minus baseline);
            None where the area has no erosion score.
        be_p_increase: probability that the erosion score increased (see the module notes), 0..1.
        jsn_baseline / jsn_followup / jsn_delta / jsn_p_increase: the same for joint-space narrowing (0..4).
        eroded_mm2_baseline / eroded_mm2_followup / eroded_mm2_delta: eroded area (mm²) and its change; the change is
            None when either film's pixel spacing is unknown (``mm2_note`` says which).
        eroded_fraction_delta: change of the eroded share of the joint's bone area (unitless, -1..1).
        lesions_baseline / lesions_followup: erosion lesion counts; new_lesions: ``max(0, followup - baseline)``.
        worsened: a score of the area increased. changed: a score of the area changed (either way).
    """

    stem: str
    name: str
    display: str
    comparable: bool
    be_baseline: int | None = None
    be_followup: int | None = None
    be_delta: int | None = None
    be_p_increase: float | None = None
    jsn_baseline: int | None = None
    jsn_followup: int | None = None
    jsn_delta: int | None = None
    jsn_p_increase: float | None = None
    eroded_mm2_baseline: float | None = None
    eroded_mm2_followup: float | None = None
    eroded_mm2_delta: float | None = None
    mm2_note: str | None = None
    eroded_fraction_delta: float | None = None
    lesions_baseline: int | None = None
    lesions_followup: int | None = None
    new_lesions: int | None = None
    note: str | None = None

    @property
    def worsened(self) -> bool:
        return bool((self.be_delta or 0) > 0 or (self.jsn_delta or 0) > 0)

    @property
    def changed(self) -> bool:
        return bool((self.be_delta or 0) != 0 or (self.jsn_delta or 0) != 0)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["worsened"], d["changed"] = self.worsened, self.changed
        return d


@dataclass
class TotalChange:
    """The change of the hand totals over the areas comparable in both films.

    Attributes:
        erosion_delta / jsn_delta / svdh_delta: change of the erosion sum, JSN sum and SvdH total (SvdH units, ints).
        expected_delta: change of the expected total (sum of the probability-weighted scores), a smoother estimate.
        interval: central ``level`` interval (low, high) of the total change, SvdH units, from the models' score
            probabilities (module notes).
        level: the interval's coverage, e.g. 0.95.
        p_progression: probability that the total rose by more than ``sdc`` (same model).
        sdc: the smallest detectable change used, SvdH units.
        progressed: ``svdh_delta > sdc``: the progression flag.
        areas_compared: number of SvdH areas located in both films (of 22).
        complete: every one of the 22 areas was compared.
    """

    erosion_delta: int
    jsn_delta: int
    svdh_delta: int
    expected_delta: float
    interval: tuple[int, int]
    level: float
    p_progression: float
    sdc: float
    progressed: bool
    areas_compared: int
    complete: bool

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["interval"] = list(self.interval)
        return d


@dataclass(eq=False)
class Progression:
    """What changed in one hand between a baseline and a follow-up analysis (:func:`compare`).

    Attributes:
        baseline / followup: the two :class:`~ramh_rt.result.Analysis` objects compared.
        side: ``"L"`` or ``"R"``.
        joints: one :class:`JointChange` per SvdH area in :data:`ramh_rt.anatomy.AREA_STEMS` order (22).
        total: :class:`TotalChange`.
        flag_false_positive_rate: the stated false-positive rate of ``total.progressed`` (None for a custom SDC).
        warnings: things a reader should know (areas not compared, unknown spacing, different model bundles).
    """

    baseline: Analysis
    followup: Analysis
    side: str
    joints: list[JointChange]
    total: TotalChange
    flag_false_positive_rate: float | None
    warnings: list[str] = field(default_factory=list)

    def joint(self, stem: str) -> JointChange:
        """The change of one SvdH area by stem (KeyError listing the stems when unknown)."""
        anatomy.area(stem)
        return next(j for j in self.joints if j.stem == stem)

    @property
    def worsened(self) -> list[str]:
        """Stems of the areas whose erosion or JSN score increased."""
        return [j.stem for j in self.joints if j.worsened]

    def to_dict(self) -> dict:
        """JSON-ready dict following ``progression.schema.json`` (see :func:`json_schema`)."""
        def visit(a: Analysis) -> dict:
            m, t = a.meta, a.totals
            return {"source": m.source, "spacing_mm": m.spacing_mm, "bundle_id": m.bundle_id,
                    "bundle_version": m.bundle_version, "erosion": t.erosion, "jsn": t.jsn, "svdh": t.svdh,
                    "partial_svdh": t.partial_svdh, "field_of_view": m.field_of_view,
                    "expected_svdh": t.expected_svdh, "complete": t.complete}

        return {"schema": SCHEMA_VERSION, "side": self.side, "baseline": visit(self.baseline),
                "followup": visit(self.followup), "joints": [j.to_dict() for j in self.joints],
                "total": self.total.to_dict(), "flag_false_positive_rate": self.flag_false_positive_rate,
                "worsened": self.worsened, "warnings": list(self.warnings)}

    def to_json(self, indent: int | None = 2) -> str:
        """The comparison as JSON text (schema :data:`SCHEMA_VERSION`)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def overlay(self, path: str | Path | None = None, *, max_side: int = 1200):
        """Baseline and follow-up overlays side by side, the areas that changed outlined and labelled.

        Each film is drawn by :func:`ramh_rt.overlay.render_analysis`; worsened areas get a thick magenta outline
        with their change (``+BE1 +J1``), improved ones a cyan one, on both films. A header line gives the total
        change, its interval and the flag. Saved as PNG (atomically) when ``path`` is given; returns the PIL image.

        Raises:
            ValueError: an Analysis was made with ``keep_image=False`` (no image to draw).
        """
        return _render(self, path, max_side)


def _p_increase(pb: list[float], pf: list[float]) -> float:
    """P(Y_f > Y_b) for independent ordinal scores with probability vectors ``pb`` and ``pf``."""
    cdf_b = np.concatenate([[0.0], np.cumsum(pb)])[:len(pf)]  # P(Y_b < j) for j = 0..len(pf)-1
    return float(np.clip(np.dot(pf, cdf_b), 0.0, 1.0))


def _delta_pmf(pb: list[float], pf: list[float]) -> tuple[np.ndarray, int]:
    """PMF of Y_f - Y_b (independent) as (probabilities, value of index 0)."""
    return np.convolve(np.asarray(pf, float), np.asarray(pb, float)[::-1]), -(len(pb) - 1)


def _check_side(a: Analysis, which: str) -> str:
    if not isinstance(a, Analysis):
        raise ComparisonError(f"the {which} must be a ramh_rt Analysis, got {type(a).__name__}")
    side = a.meta.side
    if side not in anatomy.SIDES:
        raise ComparisonError(f"the {which} hand's side is unknown ({a.meta.source}); pass side='L' or 'R' when "
                              f"analysing it")
    return side


def compare(baseline: Analysis, followup: Analysis, *, sdc: float = DEFAULT_SDC, level: float = 0.95
            ) -> Progression:
    """Compare two analyses of the same hand taken at two visits.

    Args:
        baseline: the earlier :class:`~ramh_rt.result.Analysis`.
        followup: the later one, of the same hand (same side).
        sdc: smallest detectable change of the SvdH hand total, SvdH units (> 0); default :data:`DEFAULT_SDC`.
        level: coverage of the interval on the total change, in (0, 1).

    Returns:
        :class:`Progression` (per-area changes, total change with interval, flag).

    Raises:
        ComparisonError: an argument is not an Analysis, a hand's side is unknown, or the sides differ.
        ValueError: ``sdc`` not a finite number > 0, ``level`` not in (0, 1).
    """
    sb = _check_side(baseline, "baseline")
    sf = _check_side(followup, "follow-up")
    if sb != sf:
        names = {"L": "left", "R": "right"}
        raise ComparisonError(f"the baseline is a {names[sb]} hand and the follow-up a {names[sf]} hand: compare "
                              f"films of the same hand")
    if isinstance(sdc, bool) or not isinstance(sdc, (int, float)) or not math.isfinite(sdc) or sdc <= 0:
        raise ValueError(f"sdc must be a finite number > 0 (SvdH units), got {sdc!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")

    warnings: list[str] = []
    mm2_note = None
    missing = [w for w, a in (("baseline", baseline), ("follow-up", followup)) if a.meta.spacing_mm is None]
    if missing:
        mm2_note = f"pixel spacing unknown for the {' and '.join(missing)}: no change in mm²"
        warnings.append(mm2_note)
    fovs = (baseline.meta.field_of_view, followup.meta.field_of_view)
    if fovs[0] != fovs[1] or "hand" not in fovs:
        # Only the areas in view in both films are compared: the totals' change is that of those areas alone.
        warnings.append(f"fields of view differ or are not the whole hand (baseline {fovs[0]}, follow-up {fovs[1]}): "
                        "only the areas seen in both films are compared, and the SvdH change is theirs, not the "
                        "hand's")
    if (baseline.meta.bundle_id, baseline.meta.bundle_version) != (followup.meta.bundle_id,
                                                                    followup.meta.bundle_version):
        warnings.append(f"different model bundles: {baseline.meta.bundle_id} {baseline.meta.bundle_version} and "
                        f"{followup.meta.bundle_id} {followup.meta.bundle_version}; score changes include the models'")

    pmf, lo = np.ones(1), 0  # distribution of the total change, built area by area
    joints: list[JointChange] = []
    ero = jsn = 0
    exp_delta = 0.0
    for stem in anatomy.AREA_STEMS:
        jb, jf = baseline.joint(stem), followup.joint(stem)
        if not (jb.located and jf.located):
            lacking = [w for w, j in (("baseline", jb), ("follow-up", jf)) if not j.located]
            joints.append(JointChange(stem=stem, name=jb.name, display=jb.display, comparable=False,
                                      note=f"not located in the {' and '.join(lacking)}"))
            continue
        c = JointChange(stem=stem, name=jb.name, display=jb.display, comparable=True)
        for kind in ("be", "jsn"):
            pb, pf = getattr(jb, f"{kind}_probs"), getattr(jf, f"{kind}_probs")
            if pb is None or pf is None:
                continue
            vb, vf = getattr(jb, f"{kind}_score"), getattr(jf, f"{kind}_score")
            setattr(c, f"{kind}_baseline", vb)
            setattr(c, f"{kind}_followup", vf)
            setattr(c, f"{kind}_delta", vf - vb)
            setattr(c, f"{kind}_p_increase", _p_increase(pb, pf))
            d, dlo = _delta_pmf(pb, pf)
            pmf, lo = np.convolve(pmf, d), lo + dlo
            exp_delta += getattr(jf, f"{kind}_expected") - getattr(jb, f"{kind}_expected")
            if kind == "be":
                ero += vf - vb
            else:
                jsn += vf - vb
        c.eroded_mm2_baseline, c.eroded_mm2_followup = jb.eroded_mm2, jf.eroded_mm2
        if mm2_note is None and jb.eroded_mm2 is not None and jf.eroded_mm2 is not None:
            c.eroded_mm2_delta = jf.eroded_mm2 - jb.eroded_mm2
        else:
            c.mm2_note = mm2_note or "eroded area not measured"
        if jb.eroded_fraction is not None and jf.eroded_fraction is not None:
            c.eroded_fraction_delta = jf.eroded_fraction - jb.eroded_fraction
        c.lesions_baseline, c.lesions_followup = jb.lesions, jf.lesions
        if jb.lesions is not None and jf.lesions is not None:
            c.new_lesions = max(0, jf.lesions - jb.lesions)
        joints.append(c)

    not_compared = [j.stem for j in joints if not j.comparable]
    if not_compared:
        warnings.append(f"{len(not_compared)} SvdH area(s) not compared (located in one film only or in neither): "
                        f"{', '.join(not_compared)}; the totals cover the others")
    pmf = pmf / pmf.sum()
    values = lo + np.arange(len(pmf))
    cdf = np.cumsum(pmf)
    tail = (1.0 - level) / 2.0
    # Smallest values whose cumulative probability reaches each tail bound (a discrete central interval).
    i_lo = int(np.searchsorted(cdf, tail - 1e-12))
    i_hi = int(np.searchsorted(cdf, 1.0 - tail - 1e-12))
    i_hi = min(i_hi, len(values) - 1)
    total = TotalChange(erosion_delta=int(ero), jsn_delta=int(jsn), svdh_delta=int(ero + jsn),
                        expected_delta=float(exp_delta), interval=(int(values[i_lo]), int(values[i_hi])),
                        level=float(level), p_progression=float(np.clip(pmf[values > sdc].sum(), 0.0, 1.0)),
                        sdc=float(sdc), progressed=bool(ero + jsn > sdc),
                        areas_compared=len(anatomy.AREA_STEMS) - len(not_compared), complete=not not_compared)
    return Progression(baseline=baseline, followup=followup, side=sb, joints=joints, total=total,
                       flag_false_positive_rate=FLAG_FALSE_POSITIVE_RATE if sdc == DEFAULT_SDC else None,
                       warnings=warnings)


WORSE_RGB = (255, 0, 255)
BETTER_RGB = (0, 220, 255)


def _change_label(j: JointChange) -> str:
    parts = [f"{k}{d:+d}" for k, d in (("BE", j.be_delta), ("J", j.jsn_delta)) if d]
    return " ".join(parts)


def _render(p: Progression, path, max_side: int):
    """Two :func:`~ramh_rt.overlay.render_analysis` pictures side by side, changed areas outlined on both."""
    from PIL import Image, ImageDraw

    from .geometry import box_corners
    from .overlay import _font, render_analysis, save_png

    panels = []
    for a, title in ((p.baseline, "baseline"), (p.followup, "follow-up")):
        img = render_analysis(a, None, max_side=max_side)
        h, w = a.meta.image_shape
        s = min(1.0, max_side / float(max(h, w)))  # the scale render_analysis drew the film at
        d = ImageDraw.Draw(img)
        font = _font(max(12, int(img.height / 90)))
        d.text((8, 8), title, fill=(255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0))
        for j in p.joints:
            if not j.changed:
                continue
            roi = a.joint(j.stem).roi
            pts = [(x * s, y * s) for x, y in box_corners(roi)]
            col = WORSE_RGB if j.worsened else BETTER_RGB
            d.line(pts + [pts[0]], fill=col, width=5)
            d.text((max(x for x, _ in pts) + 4, min(y for _, y in pts)), _change_label(j), fill=col, font=font,
                   stroke_width=2, stroke_fill=(0, 0, 0))
        panels.append(img)
    t = p.total
    head = (f"SvdH change {t.svdh_delta:+d} (erosion {t.erosion_delta:+d}, JSN {t.jsn_delta:+d}), "
            f"{round(100 * t.level)}% interval [{t.interval[0]:+d}, {t.interval[1]:+d}], SDC {t.sdc:g}: "
            + ("PROGRESSED" if t.progressed else "no progression beyond the SDC")
            + f"   magenta: worse, cyan: better   ({t.areas_compared}/22 areas compared)")
    font = _font(max(12, int(max(q.height for q in panels) / 70)))
    hh = int(getattr(font, "size", 12) * 2)
    out = Image.new("RGB", (sum(q.width for q in panels), max(q.height for q in panels) + hh), (24, 24, 24))
    ImageDraw.Draw(out).text((8, hh // 4), head, fill=WORSE_RGB if t.progressed else (255, 255, 255), font=font)
    x = 0
    for q in panels:
        out.paste(q, (x, hh))
        x += q.width
    if path is not None:
        save_png(out, path)
    return out


def json_schema() -> dict[str, Any]:
    """The JSON schema of :meth:`Progression.to_json` (shipped as ``ramh_rt/schemas/progression.schema.json``)."""
    return json.loads(resources.files("ramh_rt").joinpath("schemas/progression.schema.json").read_text())


__all__ = ["ComparisonError", "DEFAULT_SDC", "FLAG_FALSE_POSITIVE_RATE", "JointChange", "Progression",
           "SCHEMA_VERSION", "TotalChange", "compare", "json_schema"]
