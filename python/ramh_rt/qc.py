"""Quality control of one analysis: what the SDK understood of its input and how far to trust the result.

:func:`assess` turns an :class:`~ramh_rt.result.Analysis` (and the model input it came from) into a
:class:`QualityControl`: a status ``"ok"`` / ``"review"`` / ``"reject"`` decided by the worst severity of its coded
:class:`Reason` list, the field of view and orientation found by the input understanding, and the image's distance
from the bundle's training domain. :func:`annotate_uncertainty` gives each scored joint an ``uncertainty`` and a
``review`` flag and the hand total an interval.

Reason codes (:data:`REASON_CODES`; the severity is the default, a check may raise it):

======================= ========= ==========================================================================================
code                    severity  meaning
======================= ========= ==========================================================================================
``field_of_view``       review    the image does not show the whole hand (wrist, fingers or partial): only the areas in
                                  view are scored and the hand total is not reported
``orientation_applied`` info      the hand was turned by 90/180/270 degrees; it was analysed upright and every result was
                                  mapped back to the image as given
``mirrored``            info      the image is a left-right mirror: the anatomy's side disagrees with the side the caller
                                  gave (``side=``; review when the side is the DICOM header's); scored as the side given
``view``                review    not a PA view (oblique or lateral); SvdH scoring is defined on PA views only
``side_conflict``       review    the side found from the anatomy disagrees with the side in the file name (a weak
                                  hint): the anatomy's side is reported
``spacing_unknown``     info      no pixel spacing: eroded areas are in pixels only (``eroded_mm2`` is None)
``exposure``            review    the image is too dark or too bright: the bone intensities use a small part of the range
``contrast``            review    too little contrast to see bone edges (reject: a blank image, nothing to analyse)
``saturation``          review    a large part of the image is clipped at the brightest or darkest value
``out_of_domain``       review    the image is further from the bundle's training inputs than the bundle's threshold
                                  (``domain_score > domain_threshold``): the models may not work on it
``domain_unknown``      info      the bundle records no training-domain statistics: the distance was not measured
``implausible_anatomy`` review    bones that cannot belong to one hand: slivers far smaller than their ray's metacarpal,
                                  finger bones out of order along a finger
``inconsistent_scores`` review    the whole-image model and the joint scores disagree on the hand's total by far more than
                                  they do on the training domain
``skeletally_immature`` review    open growth plates (a child or adolescent): SvdH scoring is not applicable
``not_a_hand``          reject    the image does not show a hand (raised as ``NotAHandError`` by the analysis itself; the
                                  code exists for batch reports)
======================= ========= ==========================================================================================

Severities: ``info`` leaves an otherwise clean result ``"ok"``; ``review`` means a person should look before the
result is used; ``reject`` means the result should not be used.

What the qc does not do: it does not validate the scores clinically (the demo weights are trained on synthetic
phantoms), and an ``"ok"`` status only says that none of the checks above fired.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from . import anatomy

SEVERITIES = ("info", "review", "reject")
STATUSES = ("ok", "review", "reject")
FIELDS_OF_VIEW = anatomy.FIELDS_OF_VIEW

#: code -> default severity (the module docstring's table says what each means).
REASON_CODES: dict[str, str] = {
    "field_of_view": "review",
    "orientation_applied": "info",
    "mirrored": "info",
    "view": "review",
    "side_conflict": "review",
    "spacing_unknown": "info",
    "exposure": "review",
    "contrast": "review",
    "saturation": "review",
    "out_of_domain": "review",
    "domain_unknown": "info",
    "implausible_anatomy": "review",
    "inconsistent_scores": "review",
    "skeletally_immature": "review",
    "not_a_hand": "reject",
}

#: Names of the domain features, in the order of :func:`domain_features`'s vector and of a bundle's ``qc.domain``.
DOMAIN_FEATURES: tuple[str, ...] = (
    "input_mean", "input_std", "input_dark_fraction", "input_bright_fraction", "input_q50", "input_q90",
    "input_gradient", "input_laplacian",
    "bone_score_mean", "bone_score_p10", "bones_found", "soft_tissue_fraction", "bone_to_soft_tissue",
)


@dataclass(frozen=True)
class Reason:
    """One coded finding of the quality control.

    Attributes:
        code: one of :data:`REASON_CODES`.
        message: a sentence for a person (what was found, with the numbers).
        severity: ``"info"``, ``"review"`` or ``"reject"``.

    Raises:
        ValueError: an unknown code or severity.
    """

    code: str
    message: str
    severity: str = ""

    def __post_init__(self) -> None:
        if self.code not in REASON_CODES:
            raise ValueError(f"unknown qc reason code {self.code!r} (known: {', '.join(REASON_CODES)})")
        if not self.severity:
            object.__setattr__(self, "severity", REASON_CODES[self.code])
        if self.severity not in SEVERITIES:
            raise ValueError(f"qc reason severity must be one of {SEVERITIES}, got {self.severity!r}")

    @classmethod
    def of(cls, item: "Reason | Sequence[str] | dict") -> "Reason":
        """A Reason from a Reason, a ``[code, message, severity]`` list (severity optional) or a dict.

        Raises:
            ValueError: not one of these forms, or an unknown code or severity.
        """
        if isinstance(item, Reason):
            return item
        if isinstance(item, dict):
            return cls(str(item.get("code")), str(item.get("message", "")), str(item.get("severity") or ""))
        if isinstance(item, (list, tuple)) and 2 <= len(item) <= 3:
            return cls(str(item[0]), str(item[1]), str(item[2]) if len(item) == 3 and item[2] else "")
        raise ValueError(f"a qc reason must be a Reason, a dict or [code, message, severity], got {item!r}")

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "severity": self.severity}


@dataclass
class QualityControl:
    """The quality control of one analysis (``Analysis.qc``).

    Attributes:
        reasons: the coded findings, in the order the checks ran.
        field_of_view: ``"hand"``, ``"wrist"``, ``"fingers"`` or ``"partial"``.
        orientation: ``{"rotation_deg": 0|90|180|270, "mirrored": bool}`` applied to analyse the hand upright.
        domain_score: the image's distance from the bundle's training inputs (a Mahalanobis distance over
            :data:`DOMAIN_FEATURES`, dimensionless), or None when the bundle records no domain statistics.
        domain_threshold: the bundle's threshold on ``domain_score`` (chosen on held-out data), or None.
        domain_features: the feature vector (float64, ``len(DOMAIN_FEATURES)``) the score was computed from; not part
            of the JSON (it is for tools that fit a bundle's statistics).
    """

    reasons: list[Reason] = field(default_factory=list)
    field_of_view: str = "hand"
    orientation: dict = field(default_factory=lambda: {"rotation_deg": 0, "mirrored": False})
    domain_score: float | None = None
    domain_threshold: float | None = None
    domain_features: np.ndarray | None = field(default=None, repr=False)

    @property
    def status(self) -> str:
        """``"reject"`` if any reason is a reject, else ``"review"`` if any is a review, else ``"ok"``."""
        worst = max((SEVERITIES.index(r.severity) for r in self.reasons), default=0)
        return STATUSES[worst]

    @property
    def codes(self) -> list[str]:
        """The codes of :attr:`reasons`, in order."""
        return [r.code for r in self.reasons]

    def add(self, code: str, message: str, severity: str | None = None) -> None:
        """Append a reason (``severity`` defaults to the code's); a code already present is not repeated."""
        if code not in self.codes:
            self.reasons.append(Reason(code, message, severity or ""))

    def to_dict(self) -> dict:
        def num(v):
            return None if v is None or not math.isfinite(v) else float(v)

        return {"status": self.status, "reasons": [r.to_dict() for r in self.reasons],
                "field_of_view": self.field_of_view,
                "orientation": {"rotation_deg": int(self.orientation.get("rotation_deg", 0)),
                                "mirrored": bool(self.orientation.get("mirrored", False))},
                "domain_score": num(self.domain_score), "domain_threshold": num(self.domain_threshold)}


# ---------------------------------------------------------------------------------------------------------------------
# Domain features and distance
# ---------------------------------------------------------------------------------------------------------------------

def domain_features(model_input: np.ndarray, transform, instances: np.ndarray, classes: Sequence[str],
                    window_mean: float, window_std: float) -> np.ndarray:
    """The cheap features whose distance from the training inputs is ``domain_score`` (:data:`DOMAIN_FEATURES`).

    Intensity and texture of the bone model's input (the windowed image, on the letterboxed canvas without its
    padding, every second pixel), and the bone model's confidence and areas: the mean and 10th percentile of the
    found bones' mean probabilities, the share of the 28 bones found, the soft-tissue share of the image and the
    bone-to-soft-tissue area ratio. About 2 ms on a CPU core for a 640 x 512 input.

    Args:
        model_input: the bone model's input, ``1 x 1 x H x W`` or ``H x W`` float32/float16 on the host.
        transform: the :class:`ramh_rt.ops.preprocess.Letterbox` of that input (``pad_x``, ``pad_y``,
            ``resized_hw``).
        instances: the instance table of :func:`ramh_rt.ops.postprocess_masks` for that input.
        classes: the bone model's class names (channel order).
        window_mean, window_std: the normalisation of the input (``(v - mean) / std``), to recover ``v`` in 0..1.

    Returns:
        float64 vector of ``len(DOMAIN_FEATURES)``.

    Raises:
        ValueError: an input that is not 2-D after squeezing, or an empty content region.
    """
    x = np.asarray(model_input)
    while x.ndim > 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2:
        raise ValueError(f"domain_features: model input must be H x W (or 1 x 1 x H x W), got {np.shape(model_input)}")
    h, w = transform.resized_hw
    v = x[transform.pad_y:transform.pad_y + h:2, transform.pad_x:transform.pad_x + w:2].astype(np.float32)
    if v.size < 16:
        raise ValueError("domain_features: the image covers too little of the model input")
    v = v * np.float32(window_std) + np.float32(window_mean)
    # Quantiles from a 256-bin histogram of v (clipped to 0..1 by the window): cheaper than sorting.
    hist = np.bincount(np.clip((v * 255.0 + 0.5).astype(np.int32), 0, 255).ravel(), minlength=256)
    cdf = np.cumsum(hist) / v.size
    q50, q90 = (float(np.searchsorted(cdf, q)) / 255.0 for q in (0.5, 0.9))
    grad = float(np.abs(np.diff(v, axis=1)).mean() + np.abs(np.diff(v, axis=0)).mean())
    lap = float(np.abs(4 * v[1:-1, 1:-1] - v[:-2, 1:-1] - v[2:, 1:-1] - v[1:-1, :-2] - v[1:-1, 2:]).mean())
    names = [classes[int(c)] for c in instances["channel"]] if len(instances) else []
    is_bone = np.array([anatomy.bone(n).is_bone for n in names], bool)
    scores = np.asarray(instances["mean_score"], np.float64)[is_bone] if len(names) else np.zeros(0)
    areas = np.asarray(instances["area"], np.float64)
    soft = float(areas[[n == "SoftTissue" for n in names]].sum()) if names else 0.0
    bone_area = float(areas[is_bone].sum()) if names else 0.0
    found = len({n for n, b in zip(names, is_bone) if b})
    canvas = float(h * w)
    return np.array([
        float(v.mean()), float(v.std()), float(hist[:6].sum() / v.size), float(hist[250:].sum() / v.size), q50, q90,
        grad, lap,
        float(scores.mean()) if scores.size else 0.0, float(np.percentile(scores, 10)) if scores.size else 0.0,
        found / len(anatomy.BONES), soft / canvas, bone_area / soft if soft > 0 else 0.0,
    ], np.float64)


@dataclass(frozen=True)
class DomainModel:
    """A bundle's training-domain statistics (manifest ``qc.domain``) and the distance of a feature vector to them.

    ``distance(f) = sqrt(z^T P z)`` with ``z = (f - mean) / scale``: a Mahalanobis distance over standardised features
    with the shrunk inverse correlation matrix ``P`` fitted on the training inputs; ``threshold`` was chosen on
    held-out inputs of the training domain.
    """

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    precision: np.ndarray
    threshold: float

    @classmethod
    def from_manifest(cls, section: dict | None) -> "DomainModel | None":
        """The model of a manifest's ``qc`` section (validated by :func:`manifest_problems`); None when the section,
        its ``domain`` part, or features this runtime computes are missing (then no ``domain_score`` is given)."""
        if not section or "domain" not in section:
            return None
        d = section["domain"]
        if tuple(d["features"]) != DOMAIN_FEATURES:
            return None
        return cls(tuple(d["features"]), np.asarray(d["mean"], np.float64), np.asarray(d["scale"], np.float64),
                   np.asarray(d["precision"], np.float64), float(d["threshold"]))

    def distance(self, f: np.ndarray) -> float:
        """Mahalanobis distance of one feature vector (``len(features)``, float) to the training domain."""
        z = (np.asarray(f, np.float64) - self.mean) / self.scale
        return float(math.sqrt(max(0.0, float(z @ self.precision @ z))))


# ---------------------------------------------------------------------------------------------------------------------
# Image quality
# ---------------------------------------------------------------------------------------------------------------------

#: Share of pixels at the brightest (or darkest, beyond the background) code above which the image counts as
#: saturated. A PA hand film has a dark background but its bone is never clipped white over a large area.
SATURATION_FRACTION = 0.02
#: Intensity window (0.5-99.5 percentile) narrower than this share of the code range: low contrast; an empty window
#: (a constant image): reject.
MIN_CONTRAST = 0.12
#: The 99.5 percentile below this share of the code range: under-exposed (too dark); the 0.5 percentile above
#: ``1 - MAX_LOW_PERCENTILE``: over-exposed (no dark background left).
MIN_HIGH_PERCENTILE = 0.25
MAX_LOW_PERCENTILE = 0.6


def image_quality(pixels: np.ndarray, window: tuple[float, float], bits_stored: int | None = None) -> list[Reason]:
    """Exposure, contrast and saturation findings of one decoded image.

    Args:
        pixels: H x W uint8 / uint16 / float32 (bone bright), as :func:`ramh_rt.io.load_image` returns it.
        window: the ``(lo, hi)`` intensity window of the preprocessing (its 0.5 and 99.5 percentiles), raw units.
        bits_stored: significant bits of integer data (a 12-bit DICOM in uint16 uses 0..4095); None: the dtype's
            range for integers, the image's own min..max for float data (then exposure is not judged).

    Returns:
        the reasons found (codes ``exposure``, ``contrast``, ``saturation``), possibly empty.
    """
    p = np.asarray(pixels)
    sub = p[::4, ::4] if p.shape[0] >= 64 and p.shape[1] >= 64 else p
    lo, hi = float(window[0]), float(window[1])
    if np.issubdtype(p.dtype, np.integer):
        bits = bits_stored or np.iinfo(p.dtype).bits
        top, bottom = float(2 ** bits - 1), 0.0
        absolute = True
    else:
        top, bottom = float(sub.max()), float(sub.min())
        absolute = False
    span = top - bottom
    out: list[Reason] = []
    if span <= 0 or hi <= lo:
        return [Reason("contrast", "the image is blank (one grey level): nothing to analyse", "reject")]
    rel = (hi - lo) / span
    if absolute and rel < MIN_CONTRAST:
        out.append(Reason("contrast", f"low contrast: the image's grey levels span {100 * rel:.0f}% of the range "
                                      f"(under {100 * MIN_CONTRAST:.0f}%)"))
    if absolute:
        if (hi - bottom) / span < MIN_HIGH_PERCENTILE:
            out.append(Reason("exposure", f"under-exposed: 99.5% of the pixels lie in the darkest "
                                          f"{100 * (hi - bottom) / span:.0f}% of the range"))
        elif (lo - bottom) / span > MAX_LOW_PERCENTILE:
            out.append(Reason("exposure", f"over-exposed: 99.5% of the pixels lie in the brightest "
                                          f"{100 * (top - lo) / span:.0f}% of the range"))
    n = sub.size
    at_top = float(np.count_nonzero(sub >= top)) / n
    if at_top > SATURATION_FRACTION:
        out.append(Reason("saturation", f"{100 * at_top:.1f}% of the pixels are clipped at the brightest value"))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Anatomy and score checks
# ---------------------------------------------------------------------------------------------------------------------

#: A finger bone smaller than this share of its ray's metacarpal is a sliver, not a bone (adult hands: a distal
#: phalanx is about 10-20% of its metacarpal's area on a PA view).
MIN_FINGER_BONE_RATIO = 0.03
#: The whole-image model and the joint total may differ by this many SvdH points plus this share of the larger of
#: the two before they count as contradicting each other (set from held-out phantoms, where the 99th percentile of
#: the difference is about 12 points).
SCORE_TOLERANCE_POINTS = 15.0
SCORE_TOLERANCE_SHARE = 0.35


def anatomy_reasons(bones: Iterable[Any]) -> list[Reason]:
    """``implausible_anatomy`` findings of a list of :class:`~ramh_rt.result.BoneRecord`.

    Checks, per ray 2..5 with its metacarpal found: each found phalanx is at least :data:`MIN_FINGER_BONE_RATIO` of
    the metacarpal's area, and the bones lie in order from the metacarpal outwards (each phalanx's centroid further
    from the metacarpal's centroid than the previous one's).
    """
    by = {b.name: b for b in bones if getattr(b, "instance", 0) == 0}
    slivers, disorder = [], []
    for k in (2, 3, 4, 5):
        mc = by.get(anatomy.RAYS[k][0])
        if mc is None or mc.area_px <= 0:
            continue
        last = 0.0
        for name in anatomy.RAYS[k][1:]:
            b = by.get(name)
            if b is None:
                continue
            if b.area_px < MIN_FINGER_BONE_RATIO * mc.area_px:
                slivers.append(name)
                continue
            d = math.dist(b.centroid, mc.centroid)
            if d <= last:
                disorder.append(name)
            last = max(last, d)
    found = []
    if slivers:
        found.append(f"bone(s) far smaller than their metacarpal: {', '.join(slivers)}")
    if disorder:
        found.append(f"finger bone(s) out of order along their finger: {', '.join(disorder)}")
    return [Reason("implausible_anatomy", "; ".join(found))] if found else []


def score_reasons(totals: Any) -> list[Reason]:
    """``inconsistent_scores`` when the whole-image model's total and the joint-score total contradict each other.

    When the joint total covers the whole hand (``totals.svdh`` not None and ``complete``) and the whole-image model
    ran, they contradict each other when they differ by more than :data:`SCORE_TOLERANCE_POINTS` +
    :data:`SCORE_TOLERANCE_SHARE` x the larger. When not every area was scored, the sum of the scored ones (``svdh`` or
    ``partial_svdh``) can only grow with the rest: it contradicts a reported ``severity`` whose class lies below the
    class of that partial sum.
    """
    g = getattr(totals, "global_svdh", None)
    s = getattr(totals, "svdh", None)
    if not getattr(totals, "complete", False):
        part = s if s is not None else getattr(totals, "partial_svdh", None)
        sev = getattr(totals, "severity", None)
        if part is None or sev not in anatomy.SEVERITY_NAMES:
            return []
        floor = anatomy.severity_of(part)
        if floor.index > anatomy.SEVERITY_NAMES.index(sev):
            return [Reason("inconsistent_scores",
                           f"the scored areas alone total {part} ({floor.name}), more than the reported severity "
                           f"'{sev}' ({totals.severity_source.replace('_', ' ')}) allows")]
        return []
    if g is None or s is None:
        return []
    tol = SCORE_TOLERANCE_POINTS + SCORE_TOLERANCE_SHARE * max(g, s)
    if abs(g - s) <= tol:
        return []
    g_class = anatomy.severity_of(g).name
    s_class = anatomy.severity_of(s).name
    return [Reason("inconsistent_scores",
                   f"the joint scores total {s} ({s_class}) but the whole-image model estimates {g:.0f} ({g_class}); "
                   f"severity '{totals.severity}' follows the {totals.severity_source.replace('_', ' ')}")]


def withhold_hand_estimates(totals: Any, field_of_view: str) -> None:
    """Withhold, in place, every estimate of ``totals`` that is one for a whole hand, when the field of view is not
    the whole hand: ``svdh`` (the joint sum is only ``partial_svdh`` then), the whole-image model's ``global_svdh``
    and ``severity_probs`` (that model was trained on whole hands: on a wrist crop it still answers, e.g. "71 points",
    and means nothing), and ``severity``, which becomes None with ``severity_source`` ``"not_reported"``. The
    ``field_of_view`` reason of the qc says why.

    Args:
        totals: the :class:`~ramh_rt.result.Totals` to change.
        field_of_view: one of :data:`FIELDS_OF_VIEW`; ``"hand"`` leaves ``totals`` as they are.

    Raises:
        ValueError: an unknown field of view.
    """
    if field_of_view not in FIELDS_OF_VIEW:
        raise ValueError(f"field of view must be one of {FIELDS_OF_VIEW}, got {field_of_view!r}")
    if field_of_view == "hand":
        return
    totals.svdh = None
    totals.global_svdh = None
    totals.severity_probs = None
    totals.severity = None
    totals.severity_source = "not_reported"


#: Open growth plates. Along the line from a metacarpal's centroid to its proximal phalanx's centroid an adult hand
#: shows one dark valley (the MCP joint space); a child's shows the metacarpal head's and the phalanx base's growth
#: plates as well. A ray counts as immature when its second-deepest valley is at least :data:`PHYSIS_RATIO` of the
#: deepest and at least :data:`PHYSIS_MIN_DEPTH` of the profile's range; the hand when :data:`PHYSIS_MIN_RAYS` rays of
#: 2..5 do. On real children's hands the ratio is 0.35-0.95 on most rays; on adult phantoms (RA of every grade) an
#: occasional ray crosses it (2 of 40 unseen-seed hands had two such rays, none three), so three rays are needed: that
#: keeps 20 of 26 real children's films flagged (23 with two rays). The check needs the metacarpal heads and phalanx bases in view: it is skipped for a
#: "wrist" field of view, where the "finger bones" a bone model finds are fragments and the lines between them cross
#: anything (on the adult RAM-W600 wrist crops it fires when the field of view is not known).
PHYSIS_RATIO = 0.35
PHYSIS_MIN_DEPTH = 0.15
PHYSIS_MIN_RAYS = 3


def _line_profile(pixels: np.ndarray, p: Sequence[float], q: Sequence[float], half_width: float,
                  n: int = 160) -> np.ndarray:
    """The median across a band of ``2 * half_width`` pixels of the intensity along the segment p -> q (bilinear)."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    d = q - p
    u = d / max(float(np.hypot(*d)), 1e-9)
    t = np.linspace(0.0, 1.0, n)[:, None]
    off = np.linspace(-half_width, half_width, 7)[None, :]
    # Continuous coordinates: pixel (c, r) is centred at (c + 0.5, r + 0.5).
    xs = p[0] + t * d[0] - off * u[1] - 0.5
    ys = p[1] + t * d[1] + off * u[0] - 0.5
    h, w = pixels.shape
    xs = np.clip(xs, 0, w - 1.001)
    ys = np.clip(ys, 0, h - 1.001)
    x0, y0 = xs.astype(np.intp), ys.astype(np.intp)
    fx, fy = xs - x0, ys - y0
    img = pixels
    v = ((1 - fy) * ((1 - fx) * img[y0, x0] + fx * img[y0, x0 + 1])
         + fy * ((1 - fx) * img[y0 + 1, x0] + fx * img[y0 + 1, x0 + 1]))
    return np.median(v, axis=1)


def _valley_depths(profile: np.ndarray) -> list[float]:
    """Depths of the local minima of a lightly smoothed profile, as shares of its 5-95 percentile range, deepest
    first. A minimum's depth is the lower of the highest points on its two sides minus its value."""
    k = np.exp(-0.5 * (np.arange(-4, 5) / 1.5) ** 2)
    s = np.convolve(np.pad(profile, 4, mode="edge"), k / k.sum(), "valid")
    span = float(np.percentile(s, 95) - np.percentile(s, 5))
    if span <= 0:
        return []
    left = np.maximum.accumulate(s)
    right = np.maximum.accumulate(s[::-1])[::-1]
    i = np.flatnonzero((s[1:-1] <= s[:-2]) & (s[1:-1] < s[2:])) + 1
    depth = (np.minimum(left[i - 1], right[i + 1]) - s[i]) / span
    return sorted((float(v) for v in depth if v > 0), reverse=True)


def maturity_reasons(pixels: np.ndarray, bones: Iterable[Any], field_of_view: str | None = None) -> list[Reason]:
    """``skeletally_immature`` when open growth plates are seen (see :data:`PHYSIS_RATIO`).

    Args:
        pixels: the analysed H x W image (any real dtype, bone bright).
        bones: its :class:`~ramh_rt.result.BoneRecord` list (MC2-5 and PP2-5 are used; rays without both, or with a
            phalanx smaller than :data:`MIN_FINGER_BONE_RATIO` of its metacarpal, are skipped).
        field_of_view: the input understanding's field of view; ``"wrist"`` skips the check (None: not known).
    """
    if field_of_view == "wrist":
        return []
    by = {b.name: b for b in bones if getattr(b, "instance", 0) == 0}
    img = np.asarray(pixels)
    rays = []
    for k in (2, 3, 4, 5):
        mc, pp = (by.get(n) for n in anatomy.RAYS[k][:2])
        if mc is None or pp is None or pp.area_px < MIN_FINGER_BONE_RATIO * mc.area_px:
            continue
        depths = _valley_depths(_line_profile(img, mc.centroid, pp.centroid, 0.2 * mc.minor_axis_px))
        if len(depths) >= 2 and depths[1] >= PHYSIS_MIN_DEPTH and depths[1] >= PHYSIS_RATIO * depths[0]:
            rays.append(k)
    if len(rays) >= PHYSIS_MIN_RAYS:
        return [Reason("skeletally_immature", f"open growth plates (rays {', '.join(map(str, rays))}): a child's or "
                                              f"adolescent's hand; SvdH scoring is not applicable")]
    return []


# ---------------------------------------------------------------------------------------------------------------------
# Assessment
# ---------------------------------------------------------------------------------------------------------------------

def assess(analysis: Any, *, features: np.ndarray | None = None, domain: DomainModel | None = None,
           image_reasons: Iterable[Reason] = (), extra_reasons: Iterable[Any] = ()) -> QualityControl:
    """The quality control of an analysis.

    Reads from ``analysis.meta`` what the input understanding found, when present: ``field_of_view`` (default
    ``"hand"``), ``orientation`` (``{"rotation_deg", "mirrored"}``, default upright) and ``understanding_reasons``
    (``[code, message, severity]`` lists); then adds, each at most once per code: field of view and orientation
    reasons the understanding did not give itself, ``spacing_unknown``, the image-quality reasons passed in, the
    domain distance, implausible anatomy, inconsistent scores.

    Args:
        analysis: the :class:`~ramh_rt.result.Analysis` (its ``bones``, ``totals``, ``meta``).
        features: the :func:`domain_features` vector of its model input, or None.
        domain: the bundle's :class:`DomainModel`, or None (then ``domain_unknown``).
        image_reasons: :func:`image_quality` and :func:`maturity_reasons` (and other image-level) findings.
        extra_reasons: more reasons (Reason, dict or ``[code, message, severity]``), e.g. ``skeletally_immature``.

    Returns:
        :class:`QualityControl`.

    Raises:
        ValueError: a malformed reason, field of view or orientation in ``meta`` or ``extra_reasons``.
    """
    meta = analysis.meta
    fov = getattr(meta, "field_of_view", None) or "hand"
    if fov not in FIELDS_OF_VIEW:
        raise ValueError(f"field of view must be one of {FIELDS_OF_VIEW}, got {fov!r}")
    orient = dict(getattr(meta, "orientation", None) or {"rotation_deg": 0, "mirrored": False})
    rot = int(orient.get("rotation_deg", 0))
    if rot not in (0, 90, 180, 270):
        raise ValueError(f"orientation rotation_deg must be 0, 90, 180 or 270, got {rot!r}")
    qc = QualityControl(field_of_view=fov, orientation={"rotation_deg": rot,
                                                        "mirrored": bool(orient.get("mirrored", False))})
    for r in list(getattr(meta, "understanding_reasons", None) or []) + list(extra_reasons):
        r = Reason.of(r)
        qc.add(r.code, r.message, r.severity)
    if fov != "hand":
        qc.add("field_of_view", f"field of view '{fov}': only the areas in view are scored, no hand total")
    if rot:
        qc.add("orientation_applied", f"the hand was turned by {rot} degrees; analysed upright")
    if qc.orientation["mirrored"]:
        qc.add("mirrored", "the image is a left-right mirror of the side given; scored as the side given")
    if getattr(meta, "spacing_mm", None) is None:
        qc.add("spacing_unknown", "no pixel spacing: eroded areas in pixels only, not in square millimetres")
    for r in image_reasons:
        qc.add(r.code, r.message, r.severity)
    if features is not None:
        qc.domain_features = np.asarray(features, np.float64)
    if domain is None or features is None:
        qc.add("domain_unknown", "the bundle records no training-domain statistics for this runtime's features")
    else:
        qc.domain_score = domain.distance(features)
        qc.domain_threshold = domain.threshold
        if not math.isfinite(qc.domain_score) or qc.domain_score > domain.threshold:
            qc.add("out_of_domain", f"the image lies outside the bundle's training domain (distance "
                                    f"{qc.domain_score:.1f} > {domain.threshold:.1f}): results may be unreliable")
    for r in anatomy_reasons(analysis.bones) + score_reasons(analysis.totals):
        qc.add(r.code, r.message, r.severity)
    return qc


# ---------------------------------------------------------------------------------------------------------------------
# Uncertainty
# ---------------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UncertaintyCalibration:
    """A bundle's uncertainty calibration (manifest ``qc.uncertainty``; defaults = uncalibrated).

    Attributes:
        be_scale, jsn_scale: factors on the expected absolute error computed from the probabilities, fitted on
            held-out data so that the mean predicted error equals the mean observed one.
        review_threshold: a joint whose ``uncertainty`` reaches this (SvdH points) gets ``review=True``.
        interval_level: nominal coverage of ``svdh_interval`` (0.9).
        interval_scale: widening of the independent-joints interval around its median, fitted on held-out data so
            that the interval covers the true total at ``interval_level``.
    """

    be_scale: float = 1.0
    jsn_scale: float = 1.0
    review_threshold: float = 0.5
    interval_level: float = 0.9
    interval_scale: float = 1.0

    @classmethod
    def from_manifest(cls, section: dict | None) -> "UncertaintyCalibration":
        u = (section or {}).get("uncertainty") or {}
        return cls(**{k: float(u[k]) for k in ("be_scale", "jsn_scale", "review_threshold", "interval_level",
                                                 "interval_scale") if k in u})


def expected_abs_error(probs: Sequence[float] | None) -> float | None:
    """``sum_k p_k |k - m|`` with ``m`` the ordinal median of ``probs`` (the reported score): the expected absolute
    error of the reported score if the probabilities are right. None for None."""
    if probs is None:
        return None
    p = np.asarray(probs, np.float64)
    m = int(np.searchsorted(np.cumsum(p), 0.5 - 1e-9))
    return float(p @ np.abs(np.arange(len(p)) - m))


def total_distribution(joints: Iterable[Any]) -> np.ndarray:
    """The distribution of the hand total (index = SvdH points) from the scored joints' probabilities, taken as
    independent (the convolution of every BE and JSN distribution). float64, sums to 1."""
    dist = np.ones(1)
    for j in joints:
        for p in (j.be_probs, j.jsn_probs):
            if p is not None:
                dist = np.convolve(dist, np.asarray(p, np.float64))
    return dist / dist.sum()


def total_interval(joints: Sequence[Any], calib: UncertaintyCalibration) -> tuple[int, int]:
    """The ``calib.interval_level`` interval (integers, inclusive) of the hand total.

    The central interval of :func:`total_distribution`, widened around its median by ``calib.interval_scale``
    (independence understates the spread of a sum of correlated errors), clipped to 0..140 and rounded outwards.
    """
    return interval_of(total_distribution(joints), calib.interval_level, calib.interval_scale)


def interval_of(dist: Sequence[float], level: float, scale: float) -> tuple[int, int]:
    """The central ``level`` interval of a distribution over 0, 1, 2, ... points, its two halves widened around the
    median by ``scale``, clipped to 0..140 and rounded outwards (integers, inclusive)."""
    cdf = np.cumsum(np.asarray(dist, np.float64))
    a = (1.0 - level) / 2.0
    lo, med, hi = (int(np.searchsorted(cdf, q - 1e-12)) for q in (a, 0.5, 1.0 - a))
    return (max(0, int(math.floor(med - scale * (med - lo)))),
            min(anatomy.SVDH_MAX_PER_HAND, int(math.ceil(med + scale * (hi - med)))))


def annotate_uncertainty(analysis: Any, calib: UncertaintyCalibration) -> None:
    """Fill ``uncertainty`` and ``review`` of every joint and ``svdh_interval`` of the totals, in place.

    A joint's ``uncertainty`` is the calibrated expected absolute error, in SvdH points, of its contribution to the
    hand total: ``be_scale * E|BE - be_score| + jsn_scale * E|JSN - jsn_score|`` over the scores it has (None for an
    area that was not located). ``review`` is ``uncertainty >= calib.review_threshold``. ``svdh_interval`` is
    :func:`total_interval` when the total covers the whole hand (``totals.svdh`` not None and every area scored),
    else None.
    """
    for j in analysis.joints:
        if not j.located:
            j.uncertainty, j.review = None, False
            continue
        u = 0.0
        be, jsn = expected_abs_error(j.be_probs), expected_abs_error(j.jsn_probs)
        if be is not None:
            u += calib.be_scale * be
        if jsn is not None:
            u += calib.jsn_scale * jsn
        j.uncertainty = float(u)
        j.review = bool(u >= calib.review_threshold)
    t = analysis.totals
    t.svdh_interval = (list(total_interval(analysis.joints, calib))
                       if t.svdh is not None and t.complete else None)


# ---------------------------------------------------------------------------------------------------------------------
# Manifest section
# ---------------------------------------------------------------------------------------------------------------------

def manifest_problems(section: Any, path: str = "qc") -> list[str]:
    """Problems of a bundle manifest's ``qc`` section, each as ``"<field path>: <problem>"``; empty when valid.

    The section (all parts optional)::

        "qc": {"domain": {"features": [...names...], "mean": [F], "scale": [F] (> 0), "precision": [[F x F]]
                          (symmetric), "threshold": > 0, ...provenance...},
               "uncertainty": {"be_scale": > 0, "jsn_scale": > 0, "review_threshold": > 0,
                               "interval_level": in (0, 1), "interval_scale": > 0, ...}}
    """
    out: list[str] = []

    def num(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    def vector(d: dict, key: str, n: int | None, p: str, positive: bool = False) -> None:
        x = d.get(key)
        if not isinstance(x, list) or (n is not None and len(x) != n) or not all(num(v) for v in x):
            out.append(f"{p}.{key}: must be a list of {n if n is not None else 'some'} finite numbers")
        elif positive and not all(v > 0 for v in x):
            out.append(f"{p}.{key}: every value must be > 0")

    if not isinstance(section, dict):
        return [f"{path}: must be an object, got {type(section).__name__}"]
    dom = section.get("domain")
    if "domain" in section:
        p = f"{path}.domain"
        if not isinstance(dom, dict):
            out.append(f"{p}: must be an object")
        else:
            for key in ("features", "mean", "scale", "precision", "threshold"):
                if key not in dom:
                    out.append(f"{p}: missing required field '{key}'")
            feats = dom.get("features")
            n = None
            if "features" in dom:
                if not (isinstance(feats, list) and feats and all(isinstance(f, str) for f in feats)):
                    out.append(f"{p}.features: must be a non-empty list of feature names")
                else:
                    n = len(feats)
            if "mean" in dom:
                vector(dom, "mean", n, p)
            if "scale" in dom:
                vector(dom, "scale", n, p, positive=True)
            if "precision" in dom:
                m = dom["precision"]
                ok = (isinstance(m, list) and all(isinstance(r, list) and all(num(v) for v in r) for r in m)
                      and (n is None or (len(m) == n and all(len(r) == n for r in m))))
                if not ok:
                    out.append(f"{p}.precision: must be a {n or 'F'} x {n or 'F'} matrix of finite numbers")
                else:
                    a = np.asarray(m, np.float64)
                    if a.ndim != 2 or a.shape[0] != a.shape[1] or not np.allclose(a, a.T, rtol=1e-6, atol=1e-9):
                        out.append(f"{p}.precision: must be a symmetric square matrix")
            if "threshold" in dom and not (num(dom["threshold"]) and dom["threshold"] > 0):
                out.append(f"{p}.threshold: must be a number > 0, got {dom['threshold']!r}")
    unc = section.get("uncertainty")
    if "uncertainty" in section:
        p = f"{path}.uncertainty"
        if not isinstance(unc, dict):
            out.append(f"{p}: must be an object")
        else:
            for key in ("be_scale", "jsn_scale", "review_threshold", "interval_scale"):
                if key in unc and not (num(unc[key]) and unc[key] > 0):
                    out.append(f"{p}.{key}: must be a number > 0, got {unc[key]!r}")
            if "interval_level" in unc and not (num(unc["interval_level"]) and 0 < unc["interval_level"] < 1):
                out.append(f"{p}.interval_level: must be a number in (0, 1), got {unc['interval_level']!r}")
    return out


__all__ = ["DOMAIN_FEATURES", "DomainModel", "FIELDS_OF_VIEW", "QualityControl", "REASON_CODES", "Reason",
           "SEVERITIES", "STATUSES", "UncertaintyCalibration", "annotate_uncertainty", "anatomy_reasons", "assess",
           "domain_features", "expected_abs_error", "image_quality", "interval_of", "maturity_reasons", "manifest_problems", "score_reasons",
           "total_distribution", "total_interval", "withhold_hand_estimates"]
