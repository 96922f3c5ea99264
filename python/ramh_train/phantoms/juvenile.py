"""Juvenile hands: the skeleton of a healthy child or adolescent at a given skeletal age (opt-in through
``PhantomConfig(skeletal_age=(lo, hi))``).

What changes with skeletal age (years; girls mature about a year earlier, :data:`GIRL_OFFSET_YEARS`):

* size: the whole hand is scaled by :func:`size_factor` (hand length relative to an adult's);
* epiphyses: the phalanges (bases), the thumb metacarpal (base), metacarpals 2-5 (heads), the distal radius and ulna
  have a separate ossification centre. The adult-shaped bone placed by :mod:`.skeleton` (with its exact joint
  spaces) is cut across its axis: the end beyond the cut is the cartilaginous epiphysis, whose ossified centre is drawn
  smaller (narrow and thin when young, as wide as the metaphysis when mature, :func:`epiphysis_state`); between the
  epiphysis and the metaphysis lies the growth plate (physis), a radiolucent band (no bone) that narrows with age and
  closes at fusion, after which the bone is the adult one. The articular surfaces stay where the skeleton placed them,
  so the joints keep their places and the ROIs theirs; the radiographic joint space looks wider (unossified
  cartilage) as in real films of children;
* carpus: each carpal bone appears at its own age and grows from a small round centre to its adult outline
  (:data:`CARPAL_AGES`); the pisiform appears last, the hamate hook ring and the sesamoids only in adolescence;
* the articular rims that project over neighbours in an adult (lips) are cartilage in a child and are not drawn.

Juvenile hands are healthy: the generator gives them no RA (all scores 0, no lesions). The epiphyses are parts of their
bone's class, so the bone masks include them; the physis is not bone and is in no bone mask.

Ages are representative values from the bone-age literature (Greulich-Pyle atlas, Tanner-Whitehouse stages) rounded
to half years; the proportions were compared with the 909 Digital Hand Atlas hands (benchmarks/shape_fit.py
``--skeletal-age``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import shapes
from .shapes import Part

#: Skeletal ages (years) the model covers: every hand and wrist epiphysis is present from 2 years on (but the ulna's).
AGE_RANGE = (2.0, 18.0)
#: Girls reach each stage this many years earlier (skeletal maturity indicators of the atlases).
GIRL_OFFSET_YEARS = 1.2

#: Hand length relative to an adult's, by skeletal age (growth charts of hand length, both sexes).
_SIZE_AGES = np.array([2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0])
_SIZE = np.array([0.55, 0.62, 0.69, 0.75, 0.81, 0.88, 0.94, 0.98, 1.0])

#: Long-bone epiphyses: bone-name prefix -> (end, appearance age, capping age, fusion age) in boys' years. "Capping":
#: the ossified epiphysis has reached the metaphysis' width.
EPIPHYSES: dict[str, tuple[str, float, float, float]] = {
    "DP": ("proximal", 2.5, 11.5, 14.5),
    "MP": ("proximal", 2.5, 12.0, 15.0),
    "PP": ("proximal", 2.0, 12.0, 15.5),
    "MC1": ("proximal", 2.5, 12.0, 15.5),
    "MC": ("distal", 2.0, 12.0, 15.5),
    "Radius": ("distal", 1.0, 13.0, 17.0),
    "Ulna": ("distal", 6.0, 13.5, 16.5),
}

#: Thickness of the (cartilaginous) epiphysis along the bone, in units of the half-width of its bone end.
_EPI_LENGTH = {"DP": 0.55, "MP": 0.6, "PP": 0.6, "MC1": 0.6, "MC": 1.25}
#: The forearm physes as a line ``u = a + b v`` in the bone's own frame (u along the axis from the part's origin,
#: v across it; mm of an average adult, times the hand's scale). Radius: nearly square to the shaft, 5-7 mm proximal
#: to the articular surface (the radial styloid lies in the epiphysis, which is therefore a wedge, thick radially).
#: Ulna: straight across, 6 mm proximal to the head's top.
_FOREARM_PHYSIS = {"Radius": (-19.24, -0.0867), "Ulna": (-8.0, 0.0)}

#: Carpal ossification: class -> (appearance age, age of the adult size) in boys' years. The triquetrum and the
#: pisiform are the two parts of ``Pisiform_Triquetrum``.
CARPAL_AGES: dict[str, tuple[float, float]] = {
    "Capitate": (0.3, 13.0), "Hamate": (0.5, 13.0), "Triquetrum": (2.5, 13.5), "Lunate": (3.5, 13.5),
    "Trapezium": (5.0, 14.0), "Trapezoid": (5.5, 14.0), "Scaphoid": (5.5, 14.0), "Pisiform": (10.5, 15.0),
}
#: Ages (boys) from which the hamate hook and the sesamoids are ossified.
HAMATE_HOOK_AGE = 11.5
SESAMOID_AGE = 12.5
#: Up to this age the articular rims (lips) are cartilage.
LIP_AGE = 14.0


#: Bone-length factors of a child's hand against an adult's of the same shape model (widths unchanged): the 909
#: Digital Hand Atlas hands have shorter metacarpals and phalanges relative to their MCP2-MCP5 width than the adult RA
#: hands the ``"ra2-fitted"`` model was fitted to (proximal phalanx 3: 0.68 vs 0.74 MCP widths, CMC3-MCP3: 1.02 vs
#: 1.20); with these factors juvenile ``"ra2-fitted"`` hands match the atlas (benchmarks/juvenile_shape.py).
LENGTH_FACTORS = {"MC": 0.82, "PP": 0.88, "MP": 0.88, "DP": 0.9}
#: Further per-bone factors where the atlas differs from the group factor: the little finger's proximal and middle
#: phalanges and the index middle phalanx are shorter still in the atlas children (middle phalanx 5: 0.29 MCP widths).
BONE_LENGTH_FACTORS = {"PP5": 0.96, "MP5": 0.9, "MP2": 0.95}


def adjust_proportions(anat) -> None:
    """Give a sampled :class:`~.skeleton.Anatomy` a child's proportions, in place: the length factors of the
    metacarpals and phalanges (thumb included) times :data:`LENGTH_FACTORS` and :data:`BONE_LENGTH_FACTORS`."""
    for name in anat.length_jitter:
        group = name[:2]
        if group in LENGTH_FACTORS and name[2:].isdigit():
            anat.length_jitter[name] *= LENGTH_FACTORS[group] * BONE_LENGTH_FACTORS.get(name, 1.0)


def sample_age(rng: np.random.Generator, skeletal_age: tuple[float, float], fraction: float) -> float | None:
    """Draw whether a hand is juvenile (probability ``fraction``) and its skeletal age (uniform in ``skeletal_age``,
    years); None for an adult hand. Both variates are always drawn, so the age of a hand does not depend on
    ``fraction``."""
    u, a = rng.random(), rng.uniform(float(skeletal_age[0]), float(skeletal_age[1]))
    return float(a) if u < fraction else None


def size_factor(age: float) -> float:
    """Hand size relative to an adult's at skeletal ``age`` (years; clamped to :data:`AGE_RANGE`)."""
    return float(np.interp(age, _SIZE_AGES, _SIZE))


def maturity_age(age: float, sex: str) -> float:
    """The boys'-scale age that corresponds to skeletal ``age`` of a patient of ``sex`` (``"F"`` matures earlier)."""
    return float(age) + (GIRL_OFFSET_YEARS if sex == "F" else 0.0)


@dataclass(frozen=True)
class EpiphysisState:
    """The state of one epiphysis at an age.

    Attributes:
        stage: ``"absent"`` (not yet ossified), ``"separate"`` (an ossification centre with an open physis) or
            ``"fused"`` (the adult bone).
        width_fraction / thickness_fraction: size of the ossified centre relative to the cartilaginous epiphysis
            (across / along the bone), 0..1.
        physis_mm: width of the radiolucent growth plate for an average adult scale (mm; 0 once fused).
    """

    stage: str
    width_fraction: float
    thickness_fraction: float
    physis_mm: float


def epiphysis_state(group: str, age: float) -> EpiphysisState:
    """State of the epiphysis of bone group ``group`` (a key of :data:`EPIPHYSES`) at boys'-scale ``age``.

    Raises:
        KeyError: an unknown group.
    """
    _, appear, cap, fuse = EPIPHYSES[group]
    if age >= fuse:
        return EpiphysisState("fused", 1.0, 1.0, 0.0)
    if age < appear:
        return EpiphysisState("absent", 0.0, 0.0, 0.0)
    m = float(np.clip((age - appear) / (cap - appear), 0.0, 1.0))
    # The plate narrows from 1.5 mm to 0.9 mm while the centre grows, then closes over the last 1.5 years.
    physis = 1.5 - 0.6 * m
    physis *= float(np.clip((fuse - age) / 1.5, 0.25, 1.0))
    return EpiphysisState("separate", 0.35 + 0.65 * m ** 0.8, 0.5 + 0.5 * m, physis)


def carpal_size(name: str, age: float) -> float:
    """Linear size of an ossified carpal relative to its adult outline at boys'-scale ``age`` (0: not yet ossified).

    Raises:
        KeyError: an unknown carpal name.
    """
    appear, full = CARPAL_AGES[name]
    if age < appear:
        return 0.0
    m = float(np.clip((age - appear) / (full - appear), 0.0, 1.0))
    return 0.3 + 0.7 * m ** 0.7


def clip_half_plane(poly: np.ndarray, f: np.ndarray) -> np.ndarray:
    """The part of a closed polygon where the (linear) function ``f`` sampled at its vertices is <= 0
    (Sutherland-Hodgman against one half-plane; a bone outline crosses a line across it twice). Returns an ``M x 2``
    polygon, empty (``0 x 2``) when nothing is kept."""
    out = []
    n = len(poly)
    for i in range(n):
        j = (i + 1) % n
        if f[i] <= 0:
            out.append(poly[i])
        if (f[i] <= 0) != (f[j] <= 0):
            t = f[i] / (f[i] - f[j])
            out.append(poly[i] + t * (poly[j] - poly[i]))
    return np.asarray(out, np.float64).reshape(-1, 2)


def _group(cls: str) -> str | None:
    if cls in ("Radius", "Ulna", "MC1"):
        return cls
    if cls[:2] in ("MC", "PP", "MP", "DP") and cls[2:].isdigit():
        return cls[:2]
    return None


def _split_long_bone(part: Part, group: str, st: EpiphysisState, scale: float) -> tuple[Part | None, dict]:
    """Cut ``part`` (in place: it becomes the metaphysis and shaft) and return its ossified epiphysis (None when
    absent) and the physis geometry (hand frame, mm)."""
    end = EPIPHYSES[group][0]
    body = part.body
    n = shapes.perp(part.axis)
    u = (body - part.origin) @ part.axis
    v = (body - part.origin) @ n
    if group in _FOREARM_PHYSIS:
        a, b = _FOREARM_PHYSIS[group]
        a *= scale
    else:
        length = float(u.max())
        near = u < 0.08 * length if end == "proximal" else u > 0.85 * length
        half = float(np.abs(v[near]).max())
        e_len = _EPI_LENGTH[group] * half
        a, b = (e_len, 0.0) if end == "proximal" else (length - e_len, 0.0)
    g = st.physis_mm * scale
    norm = float(np.hypot(1.0, b))
    line = u - (a + b * v)  # > 0: distal of the physis line
    sign = -1.0 if end == "proximal" else 1.0  # the epiphysis lies where sign * line > 0
    # Epiphysis: beyond the line. Metaphysis: on the other side, a plate's width away from it.
    epi = clip_half_plane(body, -sign * line)
    meta = clip_half_plane(body, sign * line + g * norm)
    part.body = meta
    part.lips = []
    if len(epi) >= 3:
        c = shapes.centroid(epi)
        v_mid = float((c - part.origin) @ n)
    else:
        v_mid = 0.0
    # The physis centre: on the plate, level with the epiphysis' centre (across the bone).
    mid_line = a + b * v_mid - sign * 0.5 * g * norm
    physis = {"centre": part.origin + mid_line * part.axis + v_mid * n, "axis": part.axis.copy(), "width_mm": g}
    if st.stage == "absent" or len(epi) < 3:
        return None, physis
    du, dv = (epi - c) @ part.axis, (epi - c) @ n
    small = c + (st.thickness_fraction * du)[:, None] * part.axis + (st.width_fraction * dv)[:, None] * n
    small = shapes.chaikin(small, 2)
    epi_part = Part(cls=part.cls, body=small, axis=part.axis.copy(), origin=shapes.centroid(small),
                    knots_u=np.array([0.0]), cortex_mm=np.array([0.3 * scale]), trabecular=np.array([1.0]),
                    aniso=1.3, density=part.density)
    physis["epiphysis_centre"] = epi_part.origin.copy()
    return epi_part, physis


def _carpal_centre(part: Part, k: float, roundness: float) -> None:
    """Shrink a carpal part about its centroid by ``k`` and round it (``roundness`` 0..1: towards a circle)."""
    c = shapes.centroid(part.body)
    d = part.body - c
    r = np.linalg.norm(d, axis=1, keepdims=True)
    circle = d / np.maximum(r, 1e-9) * float(r.mean())
    part.body = c + k * ((1.0 - roundness) * d + roundness * circle)
    part.surfaces = {key: c + k * (val - c) for key, val in part.surfaces.items()}
    part.surface_width = {key: k * w for key, w in part.surface_width.items()}
    part.rings = [(c + k * (p - c), k * w) for p, w in part.rings]


def apply(sk, age: float, sex: str) -> dict:
    """Turn the placed adult skeleton ``sk`` (:class:`~.skeleton.Skeleton`, already built at the child's scale) into a
    child's of skeletal ``age`` (years) and ``sex`` (``"F"``/``"M"``), in place: epiphyses and physes, carpal
    ossification centres, no lips, no sesamoids before adolescence.

    Returns:
        JSON-ready description: ``{"skeletal_age", "maturity_age", "epiphyses": {bone: {"stage", "physis_mm",
        "physis_centre", "physis_axis", "epiphysis_centre"}}, "carpals": {name: size}}`` (points in the hand frame,
        mm; the generator maps them to pixels).

    Raises:
        ValueError: ``age`` outside :data:`AGE_RANGE` or ``sex`` not ``"F"``/``"M"``.
    """
    if not AGE_RANGE[0] <= age <= AGE_RANGE[1]:
        raise ValueError(f"skeletal age must lie in {AGE_RANGE} years, got {age!r}")
    if sex not in ("F", "M"):
        raise ValueError(f"sex must be 'F' or 'M', got {sex!r}")
    m_age = maturity_age(age, sex)
    s = sk.anatomy.scale
    out_parts: list[Part] = []
    epiphyses: dict[str, dict] = {}
    carpals: dict[str, float] = {}
    seen_pt = False
    for part in sk.parts:
        if m_age < LIP_AGE:
            part.lips = []
        group = _group(part.cls)
        if group is not None:
            st = epiphysis_state(group, m_age)
            if st.stage == "fused":
                epiphyses[part.cls] = {"stage": "fused", "physis_mm": 0.0}
                out_parts.append(part)
                continue
            epi, physis = _split_long_bone(part, group, st, s)
            out_parts.append(part)
            if epi is not None:
                out_parts.append(epi)
            epiphyses[part.cls] = {"stage": st.stage if epi is not None else "absent",
                                   "physis_mm": float(physis["width_mm"]),
                                   "physis_centre": physis["centre"].tolist(),
                                   "physis_axis": physis["axis"].tolist(),
                                   "epiphysis_centre": (physis["epiphysis_centre"].tolist()
                                                        if "epiphysis_centre" in physis else None),
                                   "width_fraction": st.width_fraction,
                                   "thickness_fraction": st.thickness_fraction}
            continue
        name = part.cls
        if part.cls == "Pisiform_Triquetrum":  # the first part is the triquetrum, the second the pisiform
            name = "Pisiform" if seen_pt else "Triquetrum"
            seen_pt = True
        if name in CARPAL_AGES:
            k = carpal_size(name, m_age)
            carpals[name] = k
            if k <= 0.0:
                continue
            if name == "Hamate" and m_age < HAMATE_HOOK_AGE:
                part.rings = []
            appear, full = CARPAL_AGES[name]
            _carpal_centre(part, k, 0.6 * float(np.clip(1.0 - (m_age - appear) / (full - appear), 0.0, 1.0)))
        elif part.cls == "Sesamoid" and m_age < SESAMOID_AGE:
            continue
        out_parts.append(part)
    sk.parts = out_parts
    return {"skeletal_age": float(age), "maturity_age": m_age, "size_factor": size_factor(age),
            "epiphyses": epiphyses, "carpals": carpals}
