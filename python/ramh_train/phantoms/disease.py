"""Disease model: patient severity, SvdH scores, joint-space narrowing and erosion lesions.

Scores are the ground truth the geometry is built from, never inferred from it:

* JSN: each joint-space width is the hand's normal width times a factor drawn from a band that belongs to the score
  alone (:data:`JSN_FACTOR`; the bands do not overlap, 4 = ankylosis: the bones touch), so the measured width falls
  strictly as the score rises.
* Erosions: a score 1..5 sets the share of the area's articular surface that is eroded and the depth of the defects
  (:data:`BE_SHARE`, :data:`BE_DEPTH`, in units of the local half-width of the bone end), in bands that do not overlap,
  so the eroded area rises strictly with the score. Lesions are unions of discs centred on the bone outline: rounded
  bites into the cortex at the joint margins (score 1: one discrete erosion at a margin) that widen along the surface
  and deepen with the score (5: collapse of the bone end).

Random streams are keyed by the area (see :func:`area_rng`), so forcing one area's score leaves every other area's
geometry unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ramh_rt import anatomy

from . import shapes
from .config import PhantomConfig
from .skeleton import Skeleton

#: JSN score -> (low, high) factor on the normal joint-space width.
JSN_FACTOR: dict[int, tuple[float, float]] = {0: (1.0, 1.0), 1: (0.74, 0.86), 2: (0.52, 0.68), 3: (0.18, 0.42),
                                              4: (0.0, 0.0)}
#: BE score -> (low, high) share of the area's articular surface length that is eroded.
BE_SHARE: dict[int, tuple[float, float]] = {1: (0.04, 0.07), 2: (0.11, 0.18), 3: (0.26, 0.36), 4: (0.50, 0.64),
                                            5: (0.80, 0.96)}
#: BE score -> (low, high) lesion depth in units of the local half-width of the bone end. Share x depth bands are
#: at least 1.5x apart from one score to the next, so the eroded area rises with the score whatever the lesions'
#: positions on the surface.
BE_DEPTH: dict[int, tuple[float, float]] = {1: (0.12, 0.17), 2: (0.18, 0.23), 3: (0.24, 0.29), 4: (0.32, 0.38),
                                            5: (0.48, 0.60)}
#: BE score -> chance that a lesion is a high-agreement ("SvdH-BE-90") rather than a medium-agreement one.
BE90_PROBABILITY: dict[int, float] = {1: 0.4, 2: 0.65, 3: 0.8, 4: 0.85, 5: 0.9}

# Relative propensity of each area to be affected (RA favours MCP2/3, MCP5, the ulnar styloid and the wrist).
_BE_WEIGHT = {"MCP-T": 0.7, "MCP-I": 1.3, "MCP-M": 1.2, "MCP-R": 0.9, "MCP-S": 1.3, "IP": 0.6, "PIP-I": 0.9,
              "PIP-M": 0.9, "PIP-R": 0.8, "PIP-S": 0.8, "CMC-T": 0.6, "Tm": 0.6, "S": 1.0, "L": 0.8, "R": 0.8,
              "U": 1.4}
_JSN_WEIGHT = {"MCP-T": 0.8, "MCP-I": 1.1, "MCP-M": 1.1, "MCP-R": 1.0, "MCP-S": 1.0, "PIP-I": 1.0, "PIP-M": 1.0,
               "PIP-R": 0.9, "PIP-S": 0.9, "CMC-M": 0.9, "CMC-R": 0.9, "CMC-S": 0.9, "STT": 1.0, "SC": 1.1,
               "SR": 1.0}

# Stream ids (see generator): lesions of area k use [seed, _LESION_STREAM, k], JSN jitter [seed, _GAP_STREAM, j].
_LESION_STREAM = 101
_GAP_STREAM = 102
_NONSVDH_STREAM = 103


def area_rng(seed: int, stream: int, key: int) -> np.random.Generator:
    """An independent generator for one (seed, stream, key)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream), int(key)]))


@dataclass
class Patient:
    """Latent patient state.

    Attributes:
        is_ra: RA patient (else all scores 0).
        severity: latent severity (Gamma distributed for RA patients, 0 otherwise).
        sex: ``"F"`` or ``"M"``.
        bmd: bone mineral density factor (lower with severity: periarticular osteopenia).
        ulnar_drift: MCP ulnar deviation of fingers 2-5 (deg).
    """

    is_ra: bool
    severity: float
    sex: str
    bmd: float
    ulnar_drift: float

    def as_dict(self) -> dict:
        return {"isRA": bool(self.is_ra), "severity": float(self.severity), "sex": self.sex, "bmd": float(self.bmd),
                "ulnar_drift_deg": float(self.ulnar_drift)}


def sample_patient(rng: np.random.Generator, cfg: PhantomConfig) -> Patient:
    """Draw one patient: RA or not, latent severity, sex, bone density, ulnar drift."""
    is_ra = bool(rng.random() < cfg.ra_fraction)
    sev = float(rng.gamma(cfg.severity_shape, cfg.severity_scale)) if is_ra else 0.0
    sex = "F" if rng.random() < (0.72 if is_ra else 0.5) else "M"
    bmd = float(np.clip(rng.normal(1.0, 0.06) - 0.05 * min(sev, 3.0), 0.7, 1.15))
    drift = float(rng.uniform(0.0, 14.0) * min(sev / 3.0, 1.0)) if is_ra else 0.0
    return Patient(is_ra=is_ra, severity=sev, sex=sex, bmd=bmd, ulnar_drift=drift)


def sample_scores(rng: np.random.Generator, patient: Patient, cfg: PhantomConfig
                  ) -> tuple[dict[str, int], dict[str, int]]:
    """Per-area SvdH scores from the patient's severity; forced scores from ``cfg`` replace the drawn ones.

    Each area is affected with probability ``1 - exp(-k * severity * weight)`` (weights favour the sites RA hits
    first); an affected area's grade is ``1 + G`` with ``G`` a geometric variable truncated to the score range whose
    mean grows with severity. Over the population this gives mostly zeros and a tail that falls grade by grade
    (about 83% / 8% / 4% / 2.4% / 1.5% / 0.9% for erosion grades 0-5 with the default config). Every area draws the
    same two variates whatever the outcome, so the draws of one area never shift another's.

    Returns:
        ``(be, jsn)``: ``{"BE_<stem>": 0..5}`` for the 16 erosion areas, ``{"JSN_<stem>": 0..4}`` for the 15 JSN areas.
    """
    th = patient.severity
    be: dict[str, int] = {}
    jsn: dict[str, int] = {}
    for stem in anatomy.BE_STEMS:
        u, v = rng.random(), rng.random()
        p = 1.0 - np.exp(-0.32 * th * _BE_WEIGHT[stem])
        be[f"BE_{stem}"] = 1 + _truncated_geometric(v, 0.7 * th + 0.25, anatomy.BE_MAX) if u < p else 0
    for stem in anatomy.JSN_STEMS:
        u, v = rng.random(), rng.random()
        p = 1.0 - np.exp(-0.45 * th * _JSN_WEIGHT[stem])
        jsn[f"JSN_{stem}"] = 1 + _truncated_geometric(v, 0.6 * th + 0.25, anatomy.JSN_MAX) if u < p else 0
    be.update(cfg.forced("BE"))
    jsn.update(cfg.forced("JSN"))
    return be, jsn


def _truncated_geometric(u: float, mean: float, n: int) -> int:
    """Inverse-CDF draw (``u`` uniform in [0, 1)) of ``k`` in ``0..n-1`` with ``P(k)`` proportional to ``r**k``,
    ``r = mean / (1 + mean)``: a geometric variable of the given (untruncated) mean, renormalised to ``n`` values."""
    r = mean / (1.0 + mean)
    k = int(np.floor(np.log(1.0 - u * (1.0 - r ** n)) / np.log(r)))
    return min(max(k, 0), n - 1)


def joint_gaps(seed: int, normal_gap: dict[str, float], jsn: dict[str, int]) -> dict[str, float]:
    """Joint-space width (mm) of every placed joint: the normal width x a factor from the JSN score's band.

    Joints that are not JSN areas (CMC1, CMC2, IP, DIPs) keep their normal width.
    """
    out = {}
    for j, (name, g0) in enumerate(sorted(normal_gap.items())):
        score = jsn.get(f"JSN_{name}", 0)
        lo, hi = JSN_FACTOR[score]
        f = area_rng(seed, _GAP_STREAM, j).uniform(lo, hi) if hi > lo else lo
        out[name] = float(g0 * f)
    return out


@dataclass
class Lesion:
    """One erosion: a union of discs centred on a bone outline, clipped to that bone.

    Attributes:
        cls: bone class the lesion lies on; part_index: index of the part in ``Skeleton.parts``.
        category: ``"SvdH-BE-90"``, ``"SvdH-BE-50"`` or ``"Non-SvdH-BE"``.
        area: SvdH area stem (None for Non-SvdH lesions).
        grade: the score that sized it (Non-SvdH lesions: the grade band used).
        centres: K x 2 disc centres on the outline (hand frame, mm); radii: K disc radii (mm).
        lucency: fraction of the bone's attenuation removed inside the lesion (0..1).
    """

    cls: str
    part_index: int
    category: str
    area: str | None
    grade: int
    centres: np.ndarray
    radii: np.ndarray
    lucency: float

    def as_dict(self) -> dict:
        return {"bone": self.cls, "category": self.category, "area": self.area, "grade": int(self.grade),
                "length_mm": float(shapes.arc_length(self.centres)) if len(self.centres) > 1 else 0.0,
                "depth_mm": float(self.radii.max())}


def _targets(stem: str) -> list[tuple[str, str]]:
    """(bone class, surface key) pairs an area's erosions may sit on."""
    if anatomy.area(stem).region == "finger":  # the proximal bone's distal end and the distal bone's base
        j = anatomy.JOINTS[stem]
        return [(j.proximal[0], "distal"), (j.distal[0], "proximal")]
    if stem == "CMC-T":  # the trapezium's facet towards MC1 and MC1's base
        j = anatomy.JOINTS[stem]
        return [(j.proximal[0], j.distal[0]), (j.distal[0], "proximal")]
    return {"Tm": [("Trapezium", "all"), ("Trapezoid", "all")],
            "S": [("Scaphoid", "all")], "L": [("Lunate", "all")],
            "R": [("Radius", "distal")], "U": [("Ulna", "distal")]}[stem]


def _part_index(sk: Skeleton, cls: str) -> int:
    # The first part of a class is its main bone (the triquetrum for Pisiform_Triquetrum).
    for i, p in enumerate(sk.parts):
        if p.cls == cls:
            return i
    raise KeyError(cls)


def _inward_normals(poly_line: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Unit normals of a polyline lying on a body's outline, pointing into the body."""
    t = np.gradient(poly_line, axis=0)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-9)
    n = np.stack([-t[:, 1], t[:, 0]], axis=1)
    probe = poly_line + 0.4 * n
    inside = shapes.points_in_polygon(probe, body)
    # Majority vote: the polyline runs consistently around the bone, so one orientation holds for all of it.
    return n if inside.mean() >= 0.5 else -n


def _lesion_on(sk: Skeleton, cls: str, key: str, start: float, length: float, depth: float, grade: int,
               category: str, area: str | None, rng: np.random.Generator) -> Lesion | None:
    """A lesion along ``length`` mm of a surface polyline from arc position ``start`` (mm), ``depth`` mm deep."""
    idx = _part_index(sk, cls)
    part = sk.parts[idx]
    surf = part.surfaces.get(key)
    if surf is None or len(surf) < 2:
        return None
    closed = key == "all"
    line = shapes.resample(surf, 0.1, closed=closed)
    if closed:
        line = np.vstack([line, line])  # a run may wrap around the start of a closed outline
    seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    total = s[-1] if not closed else s[-1] / 2.0
    length = min(length, total)
    start = float(np.clip(start, 0.0, total - length if not closed else total))
    n_samp = int(np.clip(np.ceil(length / max(depth / 3.0, 0.15)), 3, 60))
    tt = np.linspace(start, start + length, n_samp)
    centres = np.stack([np.interp(tt, s, line[:, 0]), np.interp(tt, s, line[:, 1])], axis=1)
    # Depth profile: full depth in the middle, rounded ends, a little irregularity.
    u = np.linspace(0.0, 1.0, n_samp)
    prof = np.sin(np.pi * np.clip(u, 0.0, 1.0)) ** 0.5
    prof = 0.35 + 0.65 * prof
    # Irregular margins: a smooth and a rough component on the disc radii.
    wobble = (1.0 + 0.18 * np.convolve(rng.normal(0.0, 1.0, n_samp + 4), np.ones(5) / 5, mode="valid")
              + 0.12 * rng.normal(0.0, 1.0, n_samp))
    wobble = np.clip(wobble, 0.55, 1.5)
    radii = depth * prof * wobble
    lucency = float(np.clip(0.62 + 0.06 * grade + rng.normal(0.0, 0.05), 0.5, 0.92))
    return Lesion(cls=cls, part_index=idx, category=category, area=area, grade=grade, centres=centres, radii=radii,
                  lucency=lucency)


def _surface_length(sk: Skeleton, cls: str, key: str) -> float:
    surf = sk.part(cls).surfaces.get(key)
    if surf is None:
        return 0.0
    if key == "all":
        return float(shapes.arc_length(np.vstack([surf, surf[:1]])))
    return float(shapes.arc_length(surf))


def plan_lesions(sk: Skeleton, be: dict[str, int], patient: Patient, cfg: PhantomConfig, seed: int) -> list[Lesion]:
    """Erosion lesions for the BE scores (SvdH categories) plus occasional Non-SvdH erosions.

    The eroded share of an area's surface and the lesion depth come from the score's bands (:data:`BE_SHARE`,
    :data:`BE_DEPTH`); the share is split between the area's anchor bones (a finger joint's two bone ends, the
    trapezium and trapezoid, the CMC1 facets) and among 1-4 lesions that never overlap along the surface.
    """
    lesions: list[Lesion] = []
    for k, stem in enumerate(anatomy.BE_STEMS):
        g = be.get(f"BE_{stem}", 0)
        if g <= 0:
            continue
        rng = area_rng(seed, _LESION_STREAM, k)
        targets = [t for t in _targets(stem) if _surface_length(sk, *t) > 0]
        if not targets:
            continue
        share = rng.uniform(*BE_SHARE[g])
        depth_frac = rng.uniform(*BE_DEPTH[g])
        # Score 1: one discrete lesion on one of the anchor bones; higher scores erode the same share of every
        # anchor's surface, so the total eroded length is share x (sum of the surface lengths) either way.
        lengths = [_surface_length(sk, *t) for t in targets]
        if g == 1:
            pick = int(rng.integers(len(targets)))
            plan = [(targets[pick], share * sum(lengths))]
        else:
            plan = [(t, share * L) for t, L in zip(targets, lengths)]
        p90 = BE90_PROBABILITY[g]
        for (cls, key), extent in plan:
            L = _surface_length(sk, cls, key)
            part = sk.part(cls)
            width = part.surface_width.get(key, part.surface_width.get("all", 5.0))
            depth = depth_frac * width
            extent = min(extent, 0.98 * L)
            n_les = {1: 1, 2: int(rng.integers(1, 3)), 3: int(rng.integers(2, 4)), 4: int(rng.integers(2, 5)),
                     5: 1}[g]
            pieces = _split(extent, n_les, L, g, key != "all", rng)
            for start, length in pieces:
                cat = "SvdH-BE-90" if rng.random() < p90 else "SvdH-BE-50"
                les = _lesion_on(sk, cls, key, start, length, depth, g, cat, stem, rng)
                if les is not None:
                    lesions.append(les)
    lesions += _non_svdh(sk, patient, cfg, seed)
    return lesions


def _split(extent: float, n: int, total: float, grade: int, marginal: bool, rng: np.random.Generator
           ) -> list[tuple[float, float]]:
    """Place ``n`` non-overlapping runs of total length ``extent`` on a surface of length ``total`` (mm).

    Grade 1 on a joint surface sits at one margin (the bare area, where erosions start).
    """
    lengths = np.full(n, extent / n) * rng.uniform(0.8, 1.2, n)
    lengths *= extent / lengths.sum()
    if grade == 1 and marginal:
        at_end = rng.random() < 0.5
        off = rng.uniform(0.0, 0.08) * total
        start = total - lengths[0] - off if at_end else off
        return [(max(start, 0.0), float(lengths[0]))]
    free = max(total - lengths.sum(), 0.0)
    # Random gaps between runs (Dirichlet split of the free length).
    gaps = rng.dirichlet(np.ones(n + 1)) * free
    out, pos = [], 0.0
    for i in range(n):
        pos += gaps[i]
        out.append((pos, float(lengths[i])))
        pos += lengths[i]
    return out


_DIP_JOINTS = tuple(anatomy.JOINTS[f"DIP-{anatomy.FINGER_SUFFIX[d]}"] for d in range(2, 6))
_NON_SVDH_SITES: tuple[tuple[str, str], ...] = (
    *((j.proximal[0], "distal") for j in _DIP_JOINTS), *((j.distal[0], "proximal") for j in _DIP_JOINTS),
    ("Capitate", "all"), ("Hamate", "all"), ("Pisiform_Triquetrum", "all"))


def _non_svdh(sk: Skeleton, patient: Patient, cfg: PhantomConfig, seed: int) -> list[Lesion]:
    """Occasional erosions away from the SvdH areas (DIP joints, capitate, hamate, triquetrum); no score counts them."""
    rng = area_rng(seed, _NONSVDH_STREAM, 0)
    lam = cfg.non_svdh_rate * patient.severity / max(cfg.severity_shape * cfg.severity_scale, 1e-6)
    n = int(rng.poisson(lam)) if patient.is_ra else 0
    out = []
    for _ in range(min(n, 6)):
        cls, key = _NON_SVDH_SITES[int(rng.integers(len(_NON_SVDH_SITES)))]
        g = int(rng.integers(1, 3))
        L = _surface_length(sk, cls, key)
        if L <= 0:
            continue
        part = sk.part(cls)
        width = part.surface_width.get(key, part.surface_width.get("all", 5.0))
        length = rng.uniform(*BE_SHARE[g]) * L
        depth = rng.uniform(*BE_DEPTH[g]) * width
        start = rng.uniform(0.0, max(L - length, 0.0))
        les = _lesion_on(sk, cls, key, start, length, depth, g, "Non-SvdH-BE", None, rng)
        if les is not None:
            out.append(les)
    return out
