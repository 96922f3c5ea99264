"""The parametric hand: sampled anatomy, bone placement with exact joint spaces, SvdH ROIs and the soft-tissue outline.

Everything here is in the *hand frame* of a RIGHT hand (mm; x towards the small finger, y towards the forearm; see
:mod:`.shapes`). A left hand is drawn as the mirror image of the right one by the generator.

Placement is a kinematic chain from the forearm outwards. Every articulation is placed by moving the distal bone
group along the joint axis until the smallest axial distance between the two groups' outlines equals the joint-space
width of that joint (normal width x the JSN factor from :mod:`.disease`), so the width is exact by construction and can
be measured back from the masks. The chain: radius and ulna -> proximal carpal row (radiocarpal, SR) -> capitate and
hamate (midcarpal, SC) -> trapezium and trapezoid (STT) -> metacarpals (CMC1-5) -> phalanges (MCP, PIP/IP, DIP).

On a PA view some neighbours overlap in projection (:data:`ramh_rt.anatomy.OVERLAP_PAIRS`). Side-by-side neighbours
overlap by their outlines (lunate/scaphoid, trapezium/trapezoid, capitate/trapezoid, capitate/scaphoid, MC2/MC3);
across a joint the overlap is an articular rim ("lip") of one bone that projects over its partner (the dorsal rim of
the radius over the scaphoid and lunate, the metacarpal bases over the distal carpals, the scaphoid tubercle over
the trapezium). A lip reaches a fixed depth into the partner at the normal joint width, so it overlaps the partner
more as the joint narrows. Every other pair of bones stays apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ramh_rt import anatomy

from . import shapes
from .config import SHAPE_MODELS
from .shapes import LongBoneShape, Part

# Standard long-bone dimensions of an average adult hand (mm): length, base / shaft / head half-widths, base
# concavity (x base half-width), head cap height (x head half-width), base tilt (mm), kind.
_LONG: dict[str, tuple[float, float, float, float, float, float, float, str]] = {
    "MC1": (44.0, 6.4, 4.0, 6.8, 0.12, 0.75, 0.0, "metacarpal"),
    "MC2": (66.0, 6.0, 3.5, 6.4, 0.0, 0.85, 1.2, "metacarpal"),
    "MC3": (63.0, 5.8, 3.5, 6.4, 0.0, 0.85, -0.8, "metacarpal"),
    "MC4": (56.0, 4.5, 2.9, 5.5, 0.0, 0.85, 0.6, "metacarpal"),
    "MC5": (52.0, 4.8, 3.2, 5.4, 0.0, 0.85, -1.4, "metacarpal"),
    "PP1": (31.0, 6.8, 4.3, 5.8, 0.22, 0.5, 0.0, "phalanx"),
    "PP2": (40.0, 6.2, 4.1, 5.2, 0.22, 0.5, 0.0, "phalanx"),
    "PP3": (45.0, 6.5, 4.3, 5.4, 0.22, 0.5, 0.0, "phalanx"),
    "PP4": (42.0, 6.2, 4.1, 5.2, 0.22, 0.5, 0.0, "phalanx"),
    "PP5": (33.0, 5.4, 3.6, 4.6, 0.22, 0.5, 0.0, "phalanx"),
    "MP2": (23.0, 5.4, 3.4, 4.4, 0.20, 0.5, 0.0, "phalanx"),
    "MP3": (27.0, 5.8, 3.6, 4.7, 0.20, 0.5, 0.0, "phalanx"),
    "MP4": (26.0, 5.5, 3.4, 4.5, 0.20, 0.5, 0.0, "phalanx"),
    "MP5": (19.0, 4.7, 2.9, 3.9, 0.20, 0.5, 0.0, "phalanx"),
    "DP1": (22.0, 5.8, 3.1, 4.2, 0.18, 0.8, 0.0, "distal"),
    "DP2": (17.0, 4.6, 2.4, 3.3, 0.18, 0.8, 0.0, "distal"),
    "DP3": (18.0, 4.8, 2.5, 3.4, 0.18, 0.8, 0.0, "distal"),
    "DP4": (18.0, 4.6, 2.4, 3.3, 0.18, 0.8, 0.0, "distal"),
    "DP5": (16.0, 4.1, 2.1, 2.9, 0.18, 0.8, 0.0, "distal"),
}

# Metacarpal axes (deg from "up" towards the small finger) and base centres (x, mm) on the carpus template.
_MC_ANGLE = {2: -7.0, 3: 0.0, 4: 5.0, 5: 11.0}
_MC_BASE_X = {2: -11.6, 3: -0.5, 4: 11.4, 5: 21.4}
# The carpal templates are enlarged by this factor about _CARPUS_PIVOT (the lunate, so the proximal row keeps its
# seat on the radius) to match the carpus/radius/metacarpal proportions of PA radiographs.
_CARPUS_SCALE = 1.18
_CARPUS_PIVOT = np.array([3.0, 17.0])
_MC_PARTNER = {1: ("Trapezium",), 2: ("Trapezoid",), 3: ("Capitate",), 4: ("Hamate",), 5: ("Hamate",)}

#: Normal joint-space widths of an average adult hand (mm), before the per-hand jitter.
NORMAL_GAP_MM: dict[str, float] = {
    "SR": 1.7, "SC": 1.4, "STT": 1.3, "CMC-T": 1.4, "CMC-I": 1.1, "CMC-M": 1.1, "CMC-R": 1.1, "CMC-S": 1.1,
    **{f"MCP-{s}": 1.8 for s in "TIMRS"}, "IP": 1.2, **{f"PIP-{s}": 1.4 for s in "IMRS"},
    **{f"DIP-{s}": 1.1 for s in "IMRS"},
}

#: Joints with a placed joint space: name -> (proximal bone group, distal bone group), every joint of
#: :data:`ramh_rt.anatomy.JOINTS` in its order ("CMC-I" (CMC2) and "DIP-*" are no SvdH areas but are placed the same
#: way).
GAP_JOINTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    name: (j.proximal, j.distal) for name, j in anatomy.JOINTS.items()}

#: Pairs whose masks may share pixels besides :data:`ramh_rt.anatomy.OVERLAP_PAIRS`: a sesamoid over the bone it
#: sits on (SoftTissue contains everything and is not listed).
SESAMOID_HOSTS: tuple[str, ...] = ("MC1", "MC2", "MC5", "PP1")


def allowed_overlap(a: str, b: str) -> bool:
    """True when the masks of bone classes ``a`` and ``b`` may overlap in a phantom (plausible on a PA view)."""
    if a == b or "SoftTissue" in (a, b):
        return True
    if "Sesamoid" in (a, b):
        other = b if a == "Sesamoid" else a
        return other in SESAMOID_HOSTS
    return (a, b) in _OVERLAP_SET or (b, a) in _OVERLAP_SET


_OVERLAP_SET = frozenset(anatomy.OVERLAP_PAIRS)


@dataclass
class Anatomy:
    """Sampled anatomical parameters of one (right) hand; JSON-friendly through :meth:`as_dict`.

    Attributes:
        scale: overall size factor.
        length_jitter / width_jitter: per long bone and per carpal size factors.
        mc1_angle: thumb metacarpal axis (deg, negative = towards the radial side).
        mc_angle_jitter: per metacarpal 2-5 extra deviation (deg).
        spread: finger abduction factor (0.3 closed .. 1.4 spread).
        finger_dev: per joint extra deviation of the distal bone (deg), keyed by joint name.
        ulnar_drift: extra ulnar deviation of fingers 2-5 at the MCP joints (deg; RA deformity).
        flexion: per phalanx foreshortening factor (cos of the flexion angle).
        wrist_dev: deviation of the forearm axis against the hand axis (deg).
        ulnar_variance: axial offset of the ulna (mm, + = longer).
        normal_gap: per joint normal joint-space width for this hand (mm).
        lip_depth: per overlapping articulation, the depth a rim reaches into its partner at normal width (mm).
        carpal_noise: per carpal, a seed for the small shape jitter of its outline.
        sesamoids: which optional sesamoids are present.
        soft_margin: soft-tissue thickness beyond the bones at the sides of the fingers (mm).
        density: overall bone mineral density factor.
    """

    scale: float
    length_jitter: dict[str, float]
    width_jitter: dict[str, float]
    mc1_angle: float
    mc_angle_jitter: dict[int, float]
    spread: float
    finger_dev: dict[str, float]
    ulnar_drift: float
    flexion: dict[str, float]
    wrist_dev: float
    ulnar_variance: float
    normal_gap: dict[str, float]
    lip_depth: dict[str, float]
    carpal_noise: dict[str, int]
    sesamoids: tuple[str, ...]
    soft_margin: float
    density: float

    def as_dict(self) -> dict:
        """Plain-Python copy for ``HandSample.meta``."""
        out = {}
        for k, v in self.__dict__.items():
            if isinstance(v, dict):
                out[k] = {str(kk): (float(vv) if isinstance(vv, (float, np.floating)) else vv) for kk, vv in v.items()}
            elif isinstance(v, tuple):
                out[k] = list(v)
            else:
                out[k] = float(v) if isinstance(v, (float, np.floating)) else v
        return out



#: The ``"ra2-fitted"`` hand-shape model's parameters (:data:`~ramh_train.phantoms.config.SHAPE_MODELS`): length factors of the proximal phalanges (PP1-5) and of the
#: metacarpals, per-hand (shared) and per-bone length spread (metacarpals apart), thumb metacarpal angle mean/SD (deg), finger spread
#: factor mean/SD and its clip, metacarpal angle SD (deg), MCP deviation SD (deg), mean adduction of the thumb's
#: proximal phalanx at its MCP joint (deg; the metacarpal stays abducted, the phalanx turns back towards the hand).
RA2_FITTED = {
    "pp_length": 0.925, "mc_length": {"MC1": 1.0, "MC2": 1.0, "MC3": 1.05, "MC4": 1.03, "MC5": 1.0},
    "hand_length_sd": 0.02, "bone_length_sd": 0.025, "mc_length_sd": 0.015,
    "mc1_angle": (-34.0, 4.0), "spread": (0.85, 0.75), "spread_clip": (-0.3, 2.6), "mc_angle_sd": 2.5,
    "mcp_dev_sd": 5.5, "mcp1_adduction": 14.0,
}


def sample_anatomy(rng: np.random.Generator, hand_scale: tuple[float, float], *, ulnar_drift: float = 0.0,
                   sesamoid_probability: float = 0.3, density: float = 1.0, shape: str = "ramh-phantom-1") -> Anatomy:
    """Draw the anatomy of one hand.

    Args:
        rng: the anatomy stream (nothing else draws from it, so forcing scores does not change the anatomy).
        hand_scale: (low, high) of the size factor.
        ulnar_drift: MCP ulnar deviation of fingers 2-5 (deg), decided by the disease model.
        sesamoid_probability: chance of each optional sesamoid.
        density: bone mineral density factor (periarticular osteopenia lowers it), decided by the disease model.
        shape: the hand-shape model, one of :data:`SHAPE_MODELS`. ``"ramh-phantom-1"`` draws exactly what it always
            drew (phantoms of that generator version stay bit-identical).

    Raises:
        ValueError: an unknown ``shape``.
    """
    if shape == "ra2-fitted":
        return _sample_fitted(rng, hand_scale, ulnar_drift, sesamoid_probability, density)
    if shape != "ramh-phantom-1":
        raise ValueError(f"shape must be one of {SHAPE_MODELS}, got {shape!r}")
    lo, hi = hand_scale
    scale = float(np.clip(rng.normal(0.5 * (lo + hi), (hi - lo) / 5.0), lo, hi))
    names = list(_LONG) + list(shapes.CARPAL_TEMPLATES) + ["Radius", "Ulna"]
    length_jitter = {n: float(np.clip(rng.normal(1.0, 0.03), 0.93, 1.07)) for n in names}
    width_jitter = {n: float(np.clip(rng.normal(1.0, 0.035), 0.92, 1.08)) for n in names}
    finger_dev = _draw_finger_dev(rng, mcp_sd=2.0)
    flexion, normal_gap, lip_depth, carpal_noise, sesamoids = _draw_joints(rng, scale, sesamoid_probability)
    return Anatomy(
        scale=scale, length_jitter=length_jitter, width_jitter=width_jitter,
        mc1_angle=float(-rng.uniform(28.0, 46.0)),
        mc_angle_jitter={d: float(np.clip(rng.normal(0.0, 0.8), -1.6, 1.6)) for d in range(2, 6)},
        spread=float(rng.uniform(0.3, 1.4)), finger_dev=finger_dev, ulnar_drift=float(ulnar_drift),
        flexion=flexion, wrist_dev=float(np.clip(rng.normal(0.0, 5.0), -12.0, 12.0)),
        ulnar_variance=float(np.clip(rng.normal(0.0, 1.0), -2.0, 2.0)), normal_gap=normal_gap,
        lip_depth=lip_depth, carpal_noise=carpal_noise, sesamoids=sesamoids,
        soft_margin=float(scale * rng.uniform(2.8, 4.4)), density=float(density))


def _draw_finger_dev(rng: np.random.Generator, mcp_sd: float, thumb_mcp_mean: float = 0.0) -> dict[str, float]:
    """Per joint extra deviation of the distal bone (deg): MCP joints normal(0, ``mcp_sd``), the thumb's MCP around
    ``thumb_mcp_mean``; IP, PIP and DIP as every shape model draws them."""
    finger_dev = {}
    for d in range(1, 6):
        s = anatomy.FINGER_SUFFIX[d]
        finger_dev[f"MCP-{s}"] = float(rng.normal(thumb_mcp_mean if d == 1 else 0.0, mcp_sd))
        if d == 1:
            finger_dev["IP"] = float(rng.normal(0.0, 4.0))
        else:
            finger_dev[f"PIP-{s}"] = float(rng.normal(0.0, 2.0))
            finger_dev[f"DIP-{s}"] = float(rng.normal(0.0, 2.5))
    return finger_dev


def _draw_joints(rng: np.random.Generator, scale: float, sesamoid_probability: float):
    """The per-joint draws every shape model shares, in the stream's order: flexion of each phalanx, normal joint
    widths, lip depths, carpal outline seeds and the optional sesamoids."""
    flexion = {}
    for d in range(1, 6):
        f_mcp = np.deg2rad(rng.uniform(0.0, 18.0))
        f_pip = np.deg2rad(rng.uniform(0.0, 22.0))
        flexion[f"PP{d}"] = float(np.cos(f_mcp))
        if d > 1:
            flexion[f"MP{d}"] = float(np.cos(f_pip))
        flexion[f"DP{d}"] = float(np.cos(np.deg2rad(rng.uniform(0.0, 20.0))))
    normal_gap = {k: float(v * scale * rng.uniform(0.9, 1.1)) for k, v in NORMAL_GAP_MM.items()}
    lip_depth = {k: float(scale * rng.uniform(1.0, 2.2) * (0.6 if k == 'mc2mc3' else 1.0)) for k in _LIP_SPECS}
    carpal_noise = {n: int(rng.integers(0, 2**31 - 1)) for n in shapes.CARPAL_TEMPLATES}
    optional = [n for n in ("MCP-I", "MCP-S", "IP") if rng.random() < sesamoid_probability]
    mcp1 = rng.random() < max(sesamoid_probability, 0.95)
    sesamoids = tuple((["MCP-T"] if mcp1 else []) + optional)
    return flexion, normal_gap, lip_depth, carpal_noise, sesamoids


def _sample_fitted(rng: np.random.Generator, hand_scale: tuple[float, float], ulnar_drift: float,
                   sesamoid_probability: float, density: float) -> Anatomy:
    """The ``"ra2-fitted"`` shape model (:data:`RA2_FITTED`); the other parameters are drawn as in the default."""
    f = RA2_FITTED
    lo, hi = hand_scale
    scale = float(np.clip(rng.normal(0.5 * (lo + hi), (hi - lo) / 5.0), lo, hi))
    names = list(_LONG) + list(shapes.CARPAL_TEMPLATES) + ["Radius", "Ulna"]
    # Phalanx lengths vary together within a hand (a long-fingered hand) and a little per bone.
    finger_factor = float(np.clip(rng.normal(1.0, f["hand_length_sd"]), 0.85, 1.15))
    length_jitter = {}
    for n in names:
        sd = f["mc_length_sd"] if n.startswith("MC") else f["bone_length_sd"]
        j = float(np.clip(rng.normal(1.0, sd), 1.0 - 3.0 * sd, 1.0 + 3.0 * sd))
        if n.startswith(("PP", "MP", "DP")):
            j *= finger_factor * (f["pp_length"] if n.startswith("PP") else 1.0)
        j *= f["mc_length"].get(n, 1.0)
        length_jitter[n] = j
    width_jitter = {n: float(np.clip(rng.normal(1.0, 0.035), 0.92, 1.08)) for n in names}
    finger_dev = _draw_finger_dev(rng, mcp_sd=f["mcp_dev_sd"], thumb_mcp_mean=f["mcp1_adduction"])
    flexion, normal_gap, lip_depth, carpal_noise, sesamoids = _draw_joints(rng, scale, sesamoid_probability)
    m1, s1 = f["mc1_angle"]
    sp, ssd = f["spread"]
    sc_lo, sc_hi = f["spread_clip"]
    mc_sd = f["mc_angle_sd"]
    return Anatomy(
        scale=scale, length_jitter=length_jitter, width_jitter=width_jitter,
        mc1_angle=float(np.clip(rng.normal(m1, s1), m1 - 2.5 * s1, m1 + 2.5 * s1)),
        mc_angle_jitter={d: float(np.clip(rng.normal(0.0, mc_sd), -2.5 * mc_sd, 2.5 * mc_sd)) for d in range(2, 6)},
        spread=float(np.clip(rng.normal(sp, ssd), sc_lo, sc_hi)), finger_dev=finger_dev, ulnar_drift=float(ulnar_drift),
        flexion=flexion, wrist_dev=float(np.clip(rng.normal(0.0, 5.0), -12.0, 12.0)),
        ulnar_variance=float(np.clip(rng.normal(0.0, 1.0), -2.0, 2.0)), normal_gap=normal_gap,
        lip_depth=lip_depth, carpal_noise=carpal_noise, sesamoids=sesamoids,
        soft_margin=float(scale * rng.uniform(2.8, 4.4)), density=float(density))


@dataclass
class Joint:
    """A placed articulation (hand frame).

    Attributes:
        name: area stem (or ``"CMC-I"``, ``"DIP-*"``).
        proximal / distal: bone classes on each side.
        axis: unit vector from the proximal to the distal group (the joint axis the bones were moved along).
        gap_mm: joint-space width as placed (smallest axial distance between the groups' bodies).
        centre: mid-gap point on the joint's central line.
        prox_point / dist_point: the facing bone-end points on that line (the gap lies between them).
        width_mm: local joint width (the wider of the two articular ends).
    """

    name: str
    proximal: tuple[str, ...]
    distal: tuple[str, ...]
    axis: np.ndarray
    gap_mm: float
    centre: np.ndarray
    prox_point: np.ndarray
    dist_point: np.ndarray
    width_mm: float


@dataclass
class RoiGeom:
    """An SvdH area's oriented ROI in the hand frame: centre, distal unit direction, width across, height along (mm)."""

    centre: np.ndarray
    distal: np.ndarray
    w_mm: float
    h_mm: float


@dataclass
class Skeleton:
    """The placed bones of one right hand.

    Attributes:
        parts: rendered parts (several per class for Pisiform_Triquetrum and Sesamoid).
        joints: placed articulations by name (:data:`GAP_JOINTS`).
        rois: the 22 SvdH areas' ROIs by stem.
        soft_tissue: polygons whose union is the hand/forearm silhouette.
        outline_points: the silhouette's points without the forearm's run-out (for fitting the hand in the image).
        hand_axis / forearm_axis: distal unit directions of the hand (MC3) and of the forearm (radius).
        anatomy: the parameters it was built from.
    """

    parts: list[Part]
    joints: dict[str, Joint]
    rois: dict[str, RoiGeom]
    soft_tissue: list[np.ndarray]
    outline_points: np.ndarray
    hand_axis: np.ndarray
    forearm_axis: np.ndarray
    anatomy: Anatomy

    def part(self, cls: str) -> Part:
        """The (first) part of a bone class."""
        for p in self.parts:
            if p.cls == cls:
                return p
        raise KeyError(cls)

    def fit_points(self) -> np.ndarray:
        """Points that must lie inside the image: every bone but the forearm's (whose shafts run off the image) and
        the silhouette without the forearm's run-out (hand frame, mm)."""
        return np.vstack([p.body for p in self.parts if p.cls not in ("Radius", "Ulna")] + [self.outline_points])


# Lips: name -> (owner class, partner classes, direction ("forearm"/"hand"/"-mc<d>" towards proximal along a
# metacarpal/"lat-mc<d>" across it), joint whose narrowing deepens the overlap ("" for none), classes the lip must keep
# clear of, how much wider than the closest approach a facing gap may be to carry the rim (mm), lateral clearance from
# the avoided classes (mm)).
_LIP_SPECS: dict[str, tuple[str, tuple[str, ...], str, str, tuple[str, ...], float, float]] = {
    "radius": ("Radius", ("Scaphoid", "Lunate"), "forearm", "SR", ("Pisiform_Triquetrum", "Ulna"), 4.5, 1.5),
    "scaphoid": ("Scaphoid", ("Trapezium",), "hand", "STT", ("Trapezoid",), 2.5, 0.4),
    "mc1": ("MC1", ("Trapezium",), "-mc1", "CMC-T", ("Trapezoid", "Scaphoid"), 3.5, 1.5),
    "mc2": ("MC2", ("Trapezoid", "Trapezium"), "-mc2", "CMC-I", ("Capitate",), 3.5, 1.5),
    "mc3": ("MC3", ("Capitate",), "-mc3", "CMC-M", ("Trapezoid", "Hamate"), 3.5, 1.5),
    "mc4": ("MC4", ("Hamate",), "-mc4", "CMC-R", ("Capitate",), 3.5, 1.5),
    "mc5": ("MC5", ("Hamate",), "-mc5", "CMC-S", ("Pisiform_Triquetrum",), 3.5, 1.5),
    "mc2mc3": ("MC2", ("MC3",), "lat-mc2", "", ("Capitate", "Trapezoid"), 1.0, 1.5),
}


def _long_part(name: str, anat: Anatomy, length_factor: float = 1.0) -> tuple[Part, LongBoneShape]:
    """A metacarpal or phalanx in its own frame (origin at the base, pointing up); ``length_factor`` foreshortens it
    (flexion). The cortex thickens towards mid-shaft and the marrow cavity thins the trabecular density there."""
    L, wb, ws, wh, bshape, cap, tilt, kind = _LONG[name]
    s = anat.scale
    lj, wj = anat.length_jitter[name], anat.width_jitter[name]
    shape = LongBoneShape(length=L * s * lj * length_factor, base=wb * s * wj, shaft=ws * s * wj, head=wh * s * wj,
                          base_shape=bshape, head_cap=cap * (0.85 + 0.15 * length_factor), base_tilt=tilt * s,
                          kind=kind)
    local, surf = shapes.long_bone_outline(shape)
    shaft_cortex = 0.34 * shape.shaft if kind != "distal" else 0.5 * shape.shaft
    Lb = shape.length
    knots = np.array([0.0, 0.14, 0.3, 0.5, 0.7, 0.86, 1.0]) * Lb
    cortex = np.array([0.35, 0.45, 0.85, 1.0, 0.85, 0.45, 0.35])
    cortex = 0.35 + (shaft_cortex - 0.35) * (cortex - 0.35) / 0.65
    trab = np.array([1.0, 0.9, 0.5, 0.35, 0.5, 0.9, 1.0]) if kind != "distal" else np.full(7, 0.9)
    part = Part(cls=name, body=local, axis=np.array([0.0, -1.0]), origin=np.zeros(2), knots_u=knots,
                cortex_mm=cortex, trabecular=trab, aniso=3.0,
                surfaces={"proximal": surf["proximal"], "distal": surf["distal"]},
                surface_width={"proximal": shape.base, "distal": shape.head})
    return part, shape


def _orient(part: Part, origin: np.ndarray, d: np.ndarray) -> None:
    """Turn a part built in its (u, v) frame into the hand frame at ``origin`` with distal direction ``d``."""
    part.body = shapes.place(part.body, origin, d)
    part.surfaces = {k: shapes.place(v, origin, d) for k, v in part.surfaces.items()}
    part.origin = origin.astype(np.float64).copy()
    part.axis = d.astype(np.float64).copy()


def _carpal(name: str, anat: Anatomy) -> Part:
    """A carpal bone from its template: enlarged to the hand's carpus proportions, jittered, smoothed, scaled."""
    tpl = _CARPUS_PIVOT + (shapes.CARPAL_TEMPLATES[name] - _CARPUS_PIVOT) * _CARPUS_SCALE
    r = np.random.default_rng(anat.carpal_noise[name])
    c = tpl.mean(axis=0)
    pts = c + (tpl - c) * anat.width_jitter[name] + r.normal(0.0, 0.15, tpl.shape)
    body = shapes.chaikin(pts * anat.scale, 3)
    cen = shapes.centroid(body)
    # Carpals: thin cortex, cancellous throughout; axis = main elongation (for the texture and radii).
    cov = np.cov((body - cen).T)
    evals, evecs = np.linalg.eigh(cov)
    ax = evecs[:, 1]
    if ax[1] > 0:
        ax = -ax
    part = Part(cls=name, body=body, axis=ax, origin=cen, knots_u=np.array([0.0]), cortex_mm=np.array([0.45]),
                trabecular=np.array([1.0]), aniso=1.3, surfaces={"all": body.copy()},
                surface_width={"all": float(2.0 * np.sqrt(evals[0]))})
    return part


def _forearm_bone(name: str, anat: Anatomy) -> Part:
    """Distal radius or ulna with a shaft long enough to leave any image; cortex thickens down the shaft."""
    s = anat.scale
    wj = anat.width_jitter[name]
    if name == "Radius":
        end = shapes.RADIUS_END
        radial = shapes.RADIUS_SHAFT_RADIAL
        shaft_ulnar = [(5.6, 80.0), (5.3, 300.0)]
        shaft_radial = [(-13.6, 300.0), (-14.0, 80.0)]
        surf_idx = slice(0, 11)  # radial styloid round the articular surface to the ulnar corner
        axis_x = -4.2
    else:
        end = shapes.ULNA_END
        radial = shapes.ULNA_SHAFT_RADIAL
        shaft_ulnar = [(22.5, 80.0), (22.1, 300.0)]
        shaft_radial = [(13.9, 300.0), (13.3, 80.0)]
        surf_idx = slice(0, 10)  # the head and the ulnar styloid
        axis_x = 17.5
    pts = np.vstack([end, shaft_ulnar, shaft_radial, radial[::-1]])
    # Width jitter about the shaft axis.
    pts = pts.copy()
    pts[:, 0] = axis_x + (pts[:, 0] - axis_x) * wj
    body = shapes.chaikin(pts * s, 3)
    surface = shapes.chaikin(end[surf_idx] * s, 3, closed=False)
    surface[:, 0] = axis_x * s + (surface[:, 0] - axis_x * s) * wj
    top = end[:, 1].min() * s
    origin = np.array([axis_x * s, top + 2.0 * s])
    knots = np.array([-300.0, -45.0, -22.0, -8.0, 0.0, 20.0]) * s
    cortex = np.array([2.2, 2.0, 0.9, 0.5, 0.45, 0.45]) * s
    trab = np.array([0.25, 0.3, 0.75, 1.0, 1.0, 1.0])
    # Erosion depth reference: the subchondral region of the distal end, not the whole (wide) bone.
    ref_w = (7.0 if name == "Radius" else 5.0) * s
    return Part(cls=name, body=body, axis=np.array([0.0, -1.0]), origin=origin, knots_u=knots, cortex_mm=cortex,
                trabecular=trab, aniso=3.0, surfaces={"distal": surface}, surface_width={"distal": ref_w})


def _rotate_about(part: Part, pivot: np.ndarray, angle_deg: float) -> None:
    """Turn a part about ``pivot`` by ``angle_deg`` (positive: its "up" turns towards +x)."""
    R = shapes.rotation(np.deg2rad(angle_deg))

    def f(p):
        return (p - pivot) @ R.T + pivot

    part.body = f(part.body)
    part.surfaces = {k: f(v) for k, v in part.surfaces.items()}
    part.origin = f(part.origin[None])[0]
    part.axis = part.axis @ R.T


def _shift_to_gap(prox: list[np.ndarray], moving: list[Part], d: np.ndarray, gap: float,
                  dist_bodies: list[np.ndarray] | None = None) -> None:
    """Translate ``moving`` along ``d`` so that the axial gap between ``prox`` and the distal bodies equals ``gap``."""
    dist = dist_bodies if dist_bodies is not None else [p.body for p in moving]
    g = shapes.gap_along(prox, dist, d)
    for p in moving:
        p.translate((gap - g) * d)


def _joint_record(name: str, prox_classes, dist_classes, prox: list[np.ndarray], dist: list[np.ndarray],
                  d: np.ndarray, gap: float, lateral: float, width: float) -> Joint:
    """Measure the joint line at lateral position ``lateral`` (coordinate along perp(d))."""
    bin_mm = 0.2
    l0 = lateral - 4 * bin_mm
    nb = 9
    his, los = [], []
    for p in prox:
        _, hi = shapes.axial_profile(p, d, bin_mm, l0, nb)
        his.append(hi)
    for p in dist:
        lo, _ = shapes.axial_profile(p, d, bin_mm, l0, nb)
        los.append(lo)
    hi = np.fmax.reduce(np.vstack(his), axis=0)
    lo = np.fmin.reduce(np.vstack(los), axis=0)
    ok = np.isfinite(hi) & np.isfinite(lo)
    n = shapes.perp(d)
    if ok.any():
        # The slab nearest the central line where both bone ends are present.
        k = int(np.flatnonzero(ok)[np.argmin(np.abs(np.flatnonzero(ok) - nb // 2))])
        a_hi, b_lo = float(hi[k]), float(lo[k])
        lateral = l0 + (k + 0.5) * bin_mm
    else:  # the central line misses a group (not expected); fall back to the overall extremes
        a_hi = max(float((p @ d).max()) for p in prox)
        b_lo = min(float((p @ d).min()) for p in dist)
    prox_pt = lateral * n + a_hi * d
    dist_pt = lateral * n + b_lo * d
    return Joint(name=name, proximal=tuple(prox_classes), distal=tuple(dist_classes), axis=d.copy(), gap_mm=gap,
                 centre=0.5 * (prox_pt + dist_pt), prox_point=prox_pt, dist_point=dist_pt, width_mm=width)


def build(anat: Anatomy, gaps: dict[str, float]) -> Skeleton:
    """Place every bone of a right hand.

    Args:
        anat: sampled anatomy.
        gaps: joint-space width (mm) of every joint in :data:`GAP_JOINTS` (normal width x JSN factor), >= 0.

    Raises:
        ValueError: a missing or negative gap.
    """
    for name in GAP_JOINTS:
        if name not in gaps or not gaps[name] >= 0.0:
            raise ValueError(f"gaps[{name!r}] must be a width >= 0 mm, got {gaps.get(name)!r}")
    s = anat.scale
    up = np.array([0.0, -1.0])
    parts: dict[str, Part] = {}

    # Forearm: radius and ulna, turned by the wrist deviation about the wrist centre.
    radius = _forearm_bone("Radius", anat)
    ulna = _forearm_bone("Ulna", anat)
    ulna.translate(-anat.ulnar_variance * up)
    pivot = np.array([0.0, 25.0]) * s
    for p in (radius, ulna):
        _rotate_about(p, pivot, anat.wrist_dev)
    f_axis = shapes.direction(anat.wrist_dev)
    parts["Radius"], parts["Ulna"] = radius, ulna

    # Carpus from the template.
    for name in shapes.CARPAL_TEMPLATES:
        parts[name] = _carpal(name, anat)
    pc, prx, pry, pang = shapes.PISIFORM
    pc = _CARPUS_PIVOT + (pc - _CARPUS_PIVOT) * _CARPUS_SCALE
    prx, pry = prx * _CARPUS_SCALE, pry * _CARPUS_SCALE
    pis = Part(cls="Pisiform_Triquetrum", body=shapes.ellipse(pc * s, prx * s * anat.width_jitter["Triquetrum"],
                                                               pry * s * anat.width_jitter["Triquetrum"], pang),
               axis=up.copy(), origin=pc * s, knots_u=np.array([0.0]), cortex_mm=np.array([0.5]),
               trabecular=np.array([1.0]), aniso=1.0, surfaces={}, surface_width={}, density=1.08)
    parts["Triquetrum"].cls = "Pisiform_Triquetrum"
    hc, hrx, hry, hang = shapes.HAMATE_HOOK
    hc = _CARPUS_PIVOT + (hc - _CARPUS_PIVOT) * _CARPUS_SCALE
    hrx, hry = hrx * _CARPUS_SCALE, hry * _CARPUS_SCALE
    parts["Hamate"].rings.append((shapes.ellipse(hc * s, hrx * s, hry * s, hang, n=40), 0.7 * s))

    prox_row = [parts["Scaphoid"], parts["Lunate"], parts["Triquetrum"], pis]
    _shift_to_gap([radius.body], prox_row, f_axis, gaps["SR"], [parts["Scaphoid"].body, parts["Lunate"].body])
    _shift_to_gap([parts["Lunate"].body], [parts["Capitate"], parts["Hamate"]], up, gaps["SC"],
                  [parts["Capitate"].body])
    _shift_to_gap([parts["Scaphoid"].body], [parts["Trapezium"], parts["Trapezoid"]], up, gaps["STT"])

    # Metacarpals on their carpal partners.
    mc_dir: dict[int, np.ndarray] = {}
    shapes_of: dict[str, LongBoneShape] = {}
    for d in range(1, 6):
        name = f"MC{d}"
        part, shp = _long_part(name, anat)
        shapes_of[name] = shp
        if d == 1:
            ang = anat.mc1_angle
            tz = parts["Trapezium"]
            start = shapes.centroid(tz.body) + np.array([-3.5, -2.5]) * s
        else:
            ang = _MC_ANGLE[d] + anat.mc_angle_jitter[d]
            partner = parts[_MC_PARTNER[d][0]]
            start = np.array([_MC_BASE_X[d] * s, float(partner.body[:, 1].min()) + 4.0 * s])
        dvec = shapes.direction(ang)
        _orient(part, start, dvec)
        jn = "CMC-T" if d == 1 else ("CMC-I", "CMC-M", "CMC-R", "CMC-S")[d - 2]
        _shift_to_gap([parts[c].body for c in _MC_PARTNER[d]], [part], dvec, gaps[jn])
        parts[name] = part
        mc_dir[d] = dvec

    # Fingers: each bone pivots on the head of the one before it, then slides along its axis to the joint width.
    for d in range(1, 6):
        sfx = anatomy.FINGER_SUFFIX[d]
        chain = [f"MC{d}", f"PP{d}"] + ([] if d == 1 else [f"MP{d}"]) + [f"DP{d}"]
        jnames = [f"MCP-{sfx}"] + (["IP"] if d == 1 else [f"PIP-{sfx}", f"DIP-{sfx}"])
        if d == 1:
            spread = -6.0 * anat.spread
        else:
            spread = {2: -7.0 * anat.spread - 1.0, 3: 0.0, 4: 4.0 * anat.spread, 5: 9.0 * anat.spread}[d]
            spread += anat.ulnar_drift
        prev = parts[chain[0]]
        prev_shape = shapes_of[chain[0]]
        prev_angle = np.degrees(np.arctan2(prev.axis[0], -prev.axis[1]))
        for k, (bname, jn) in enumerate(zip(chain[1:], jnames)):
            rel = anat.finger_dev[jn] + (spread if k == 0 else 0.0)
            ang = prev_angle + rel
            dvec = shapes.direction(ang)
            part, shp = _long_part(bname, anat, anat.flexion[bname])
            shapes_of[bname] = shp
            # Centre of the proximal bone's head: its tip minus the cap height.
            tip = prev.origin + prev_shape.length * prev.axis
            head_c = tip - prev_shape.head_cap * prev_shape.head * prev.axis
            start = head_c + (prev_shape.head_cap * prev_shape.head + 2.0 * s) * dvec
            _orient(part, start, dvec)
            _shift_to_gap([prev.body], [part], dvec, gaps[jn])
            parts[bname] = part
            prev, prev_shape, prev_angle = part, shp, ang

    # Joint records.
    joints: dict[str, Joint] = {}
    for jn, (pc_, dc_) in GAP_JOINTS.items():
        prox = [parts[c].body for c in pc_]
        dist = [parts[c].body for c in dc_]
        if jn == "SR":
            dvec = f_axis
            lat = float(0.5 * (shapes.centroid(parts["Scaphoid"].body) + shapes.centroid(parts["Lunate"].body))
                        @ shapes.perp(dvec))
            width = float(np.ptp(radius.surfaces["distal"] @ shapes.perp(dvec)))
        elif jn in ("SC", "STT"):
            dvec = up
            ref = parts["Capitate"] if jn == "SC" else parts["Scaphoid"]
            # The central line through the facing pole: the capitate's proximal pole / the scaphoid's distal pole.
            proj = ref.body @ dvec
            pole = ref.body[np.argmin(proj)] if jn == "SC" else ref.body[np.argmax(proj)]
            lat = float(pole @ shapes.perp(dvec))
            width = float(np.ptp(ref.body @ shapes.perp(dvec)))
        else:
            dist_part = parts[dc_[0]]
            dvec = dist_part.axis
            lat = float(dist_part.origin @ shapes.perp(dvec))
            shp = shapes_of.get(dc_[0])
            pshp = shapes_of.get(pc_[0])
            w_d = shp.base if shp else 5.0 * s
            w_p = pshp.head if pshp else float(np.ptp(parts[pc_[0]].body @ shapes.perp(dvec))) / 2.0
            width = 2.0 * max(w_d, w_p) if pshp else 2.0 * w_d
        joints[jn] = _joint_record(jn, pc_, dc_, prox, dist, dvec, gaps[jn], lat, width)

    # Lips (overlap rims), built at the placed positions.
    for lip_name, (owner, partners, dir_kind, jn, avoid, tol, margin) in _LIP_SPECS.items():
        narrowing = anat.normal_gap[jn] - gaps[jn] if jn else 0.0
        _add_lip(parts, owner, partners, dir_kind, mc_dir, f_axis, anat.lip_depth[lip_name], narrowing, avoid, pis,
                 tol, margin)

    # Sesamoids.
    sesamoid_parts = []
    for where in anat.sesamoids:
        sesamoid_parts += _sesamoids(where, parts, shapes_of, s)

    # Part order decides mask ownership in the rare near-contact of two bones that must not overlap (the earlier
    # keeps the pixels): forearm, carpus, metacarpals, phalanges, then the pisiform and the sesamoids.
    part_list = [parts[n] for n in parts] + [pis] + sesamoid_parts
    # The trapezium's facet facing MC1 (the CMC1 erosion area's surface on the trapezium).
    _facing_surface(parts["Trapezium"], parts["MC1"], "MC1")
    hand_axis = mc_dir[3]
    rois = _rois(parts, joints, shapes_of, hand_axis, f_axis, s)
    soft, outline_pts = _soft_tissue(parts, shapes_of, anat, f_axis)
    return Skeleton(parts=part_list, joints=joints, rois=rois, soft_tissue=soft, outline_points=outline_pts,
                    hand_axis=hand_axis, forearm_axis=f_axis, anatomy=anat)


def _direction_of(kind: str, mc_dir: dict[int, np.ndarray], f_axis: np.ndarray) -> np.ndarray:
    if kind == "forearm":
        return f_axis
    if kind == "hand":
        return np.array([0.0, -1.0])
    if kind.startswith("lat-mc"):
        return shapes.perp(mc_dir[int(kind[-1])])
    return -mc_dir[int(kind[-1])]


def _add_lip(parts: dict[str, Part], owner: str, partners: tuple[str, ...], dir_kind: str,
             mc_dir: dict[int, np.ndarray], f_axis: np.ndarray, depth: float, narrowing: float,
             avoid: tuple[str, ...], pis: Part, tol: float, margin: float) -> None:
    """Add to ``owner`` a rim that spans its joint space towards ``partners`` and reaches ``depth`` (+ the joint's
    narrowing) into them, over the lateral range where they face each other within ``tol`` mm of their closest
    approach, kept clear of the ``avoid`` bones (``margin`` mm laterally, 1.5 mm beyond the rim's reach axially)."""
    d = _direction_of(dir_kind, mc_dir, f_axis)
    n = shapes.perp(d)
    own = parts[owner].body
    partner_bodies = [parts[p].body for p in partners]
    # Bodies of the classes to avoid (Pisiform_Triquetrum has two parts: the triquetrum and the pisiform).
    avoid_bodies = [p.body for p in list(parts.values()) + [pis] if p.cls in avoid]
    bin_mm = 0.2
    allp = np.vstack([own] + partner_bodies)
    l0 = float((allp @ n).min()) - bin_mm
    nb = int(np.ceil((float((allp @ n).max()) - l0) / bin_mm)) + 2
    _, own_hi = shapes.axial_profile(own, d, bin_mm, l0, nb)
    part_lo = np.full(nb, np.nan)
    for b in partner_bodies:
        lo, _ = shapes.axial_profile(b, d, bin_mm, l0, nb)
        part_lo = np.fmin(part_lo, lo)
    ok = np.isfinite(own_hi) & np.isfinite(part_lo)
    # Only where the two articular surfaces face each other closely (not, e.g., a slab through a metacarpal head that
    # is wider than its base).
    gap_all = np.where(ok, part_lo - own_hi, np.inf)
    ok &= gap_all <= np.min(gap_all) + tol
    gap_loc_all = part_lo - own_hi
    reach_all = np.maximum(gap_loc_all + narrowing, 0.0) + depth
    # Keep clear of the bones the lip must not touch: a slab is dropped when an avoided bone, within ``margin`` mm
    # laterally, comes closer to the owner's front than the lip's reach + 1.5 mm.
    k = int(np.ceil(margin / bin_mm))
    for b in avoid_bodies:
        lo_b, _ = shapes.axial_profile(b, d, bin_mm, l0, nb)
        lo_b = np.pad(np.where(np.isfinite(lo_b), lo_b, np.inf), k, constant_values=np.inf)
        near_lo = np.lib.stride_tricks.sliding_window_view(lo_b, 2 * k + 1).min(axis=1)
        ok &= ~(near_lo - own_hi < reach_all + 1.5)
    idx = np.flatnonzero(ok)
    if idx.size < 8:
        return
    # Bridge holes of up to 2.5 mm (a dip between two partner bones), keep the longest run, shrink its ends.
    runs = np.split(idx, np.flatnonzero(np.diff(idx) > int(2.5 / bin_mm)) + 1)
    run = max(runs, key=len)
    run = np.arange(run[0], run[-1] + 1)
    trim = int(round(min(1.0, 0.15 * len(run) * bin_mm) / bin_mm))
    run = run[trim:len(run) - trim]
    if len(run) < 4:
        return
    lat = l0 + (run + 0.5) * bin_mm
    front = own_hi[run]
    gap_loc = part_lo[run] - front
    if not np.all(np.isfinite(gap_loc)):
        good = np.isfinite(gap_loc)
        gap_loc = np.interp(np.arange(len(run)), np.flatnonzero(good), gap_loc[good])
    t = np.linspace(0.0, 1.0, len(run))
    taper = np.sin(np.pi * t) ** 0.5
    reach = np.maximum(gap_loc + narrowing, 0.0) + depth * taper
    # Smooth the rim edge (slab extremes are jagged at 0.2 mm).
    k = min(5, len(reach) // 2 * 2 - 1)
    if k >= 3:
        reach = np.convolve(np.pad(reach, k // 2, mode="edge"), np.ones(k) / k, mode="valid")
        front = np.convolve(np.pad(front, k // 2, mode="edge"), np.ones(k) / k, mode="valid")
    inner = front - 0.6  # start inside the owner so the rim joins its body
    outer = front + reach
    pts = np.vstack([np.stack([lat, inner], 1), np.stack([lat[::-1], outer[::-1]], 1)])
    poly = pts[:, :1] * n[None] + pts[:, 1:2] * d[None]
    parts[owner].lips.append(poly)


def _facing_surface(a: Part, b: Part, key: str, reach: float = 4.0) -> None:
    """Store on ``a`` the contiguous run of its outline within ``reach`` mm of ``b`` (an articular facet)."""
    pa = shapes.resample(a.body, 0.25, closed=True)
    pb = shapes.resample(b.body, 0.5, closed=True)
    dmin = np.min(np.linalg.norm(pa[:, None, :] - pb[None, :, :], axis=2), axis=1)
    near = dmin < reach
    if near.sum() < 4:
        return
    # Roll so that the run does not wrap around the start of the closed outline.
    if near[0] and near[-1] and not near.all():
        shift = int(np.flatnonzero(~near)[-1]) + 1
        pa, near = np.roll(pa, -shift, axis=0), np.roll(near, -shift)
    idx = np.flatnonzero(near)
    runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
    run = max(runs, key=len)
    a.surfaces[key] = pa[run]
    a.surface_width[key] = a.surface_width.get("all", 5.0)


def _sesamoids(where: str, parts: dict[str, Part], shapes_of: dict[str, LongBoneShape], s: float) -> list[Part]:
    """Sesamoid bones over the palmar side of a head: two at MCP1, one at MCP2 / MCP5 / IP1 (projected over the
    head, just proximal to the joint, so they overlap their host bone only)."""
    host_name = {"MCP-T": "MC1", "MCP-I": "MC2", "MCP-S": "MC5", "IP": "PP1"}[where]
    host, shp = parts[host_name], shapes_of[host_name]
    tip = host.origin + shp.length * host.axis
    n = shapes.perp(host.axis)
    up_from_tip = 0.95 * shp.head_cap * shp.head
    if where == "MCP-T":
        sides = [(-0.55, 2.2, 2.7), (0.55, 2.4, 2.9)]
    elif where == "MCP-I":
        sides = [(-0.6, 1.8, 2.1)]
    elif where == "MCP-S":
        sides = [(0.6, 1.7, 2.0)]
    else:
        sides = [(0.15, 1.6, 1.9)]
    out = []
    ang = float(np.degrees(np.arctan2(host.axis[1], host.axis[0])))
    for side, rx, ry in sides:
        c = tip - up_from_tip * host.axis + side * shp.head * n
        poly = shapes.ellipse(c, ry * s, rx * s, ang, n=32)
        out.append(Part(cls="Sesamoid", body=poly, axis=host.axis.copy(), origin=c, knots_u=np.array([0.0]),
                        cortex_mm=np.array([0.45 * s]), trabecular=np.array([1.0]), aniso=1.0, density=1.1))
    return out


def _rois(parts: dict[str, Part], joints: dict[str, Joint], shapes_of: dict[str, LongBoneShape],
          hand_axis: np.ndarray, f_axis: np.ndarray, s: float) -> dict[str, RoiGeom]:
    """Oriented ROIs of the 22 SvdH areas; sizes proportional to the local bone width."""
    rois: dict[str, RoiGeom] = {}
    for a in anatomy.SVDH_AREAS:
        st = a.stem
        if st == "SR":  # across the whole radiocarpal joint, flat
            j = joints[st]
            rois[st] = RoiGeom(j.centre.copy(), f_axis.copy(), 0.95 * j.width_mm, 0.6 * j.width_mm)
        elif st in ("SC", "STT"):  # midcarpal joints, sized by the capitate / scaphoid width
            j = joints[st]
            rois[st] = RoiGeom(j.centre.copy(), hand_axis.copy(), 1.5 * j.width_mm, 1.3 * j.width_mm)
        elif st in joints:  # finger joints and CMC joints: centred on the joint space, along the distal bone
            j = joints[st]
            rois[st] = RoiGeom(j.centre.copy(), j.axis.copy(), 1.7 * j.width_mm, 1.6 * j.width_mm)
        elif st in ("S", "L"):
            b = parts["Scaphoid" if st == "S" else "Lunate"].body
            c = shapes.centroid(b)
            n = shapes.perp(hand_axis)
            W = max(float(np.ptp(b @ n)), float(np.ptp(b @ hand_axis)))
            rois[st] = RoiGeom(c, hand_axis.copy(), 1.3 * W, 1.3 * W)
        elif st == "Tm":
            bs = [parts["Trapezium"].body, parts["Trapezoid"].body]
            pts = np.vstack(bs)
            n = shapes.perp(hand_axis)
            lat, ax = pts @ n, pts @ hand_axis
            c = 0.5 * (lat.min() + lat.max()) * n + 0.5 * (ax.min() + ax.max()) * hand_axis
            W = float(np.ptp(lat))
            rois[st] = RoiGeom(c, hand_axis.copy(), 1.25 * W, 1.05 * W)
        elif st in ("R", "U"):
            p = parts["Radius" if st == "R" else "Ulna"]
            surf = p.surfaces["distal"]
            n = shapes.perp(f_axis)
            lat = surf @ n
            W = float(np.ptp(lat))
            top = float((surf @ f_axis).max())
            depth = (0.28 if st == "R" else 0.4) * W
            c = 0.5 * (lat.min() + lat.max()) * n + (top - depth) * f_axis
            rois[st] = RoiGeom(c, f_axis.copy(), (1.2 if st == "R" else 1.6) * W, (0.9 if st == "R" else 1.4) * W)
        else:  # pragma: no cover - every stem is handled above
            raise AssertionError(st)
    return rois


def _offset_chain(points: np.ndarray, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and right offsets of a polyline by per-point half-widths."""
    tang = np.gradient(points, axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True)
    nrm = np.stack([-tang[:, 1], tang[:, 0]], axis=1)
    return points - widths[:, None] * nrm, points + widths[:, None] * nrm


def _soft_tissue(parts: dict[str, Part], shapes_of: dict[str, LongBoneShape], anat: Anatomy,
                 f_axis: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Polygons whose union is the hand and forearm silhouette: one per digit, then the palm with the thenar web
    continuing into the forearm (last; it runs far off the image)."""
    s = anat.scale
    m = anat.soft_margin
    polys = []
    for d in range(1, 6):
        chain = [f"MC{d}", f"PP{d}"] + ([] if d == 1 else [f"MP{d}"]) + [f"DP{d}"]
        pts, wid = [], []
        for i, bname in enumerate(chain):
            p, shp = parts[bname], shapes_of[bname]
            start = 0.45 if i == 0 else 0.0
            for t in np.linspace(start, 1.0, 6 if i == 0 else 5):
                u = t * shp.length
                uk, wk = shapes.long_bone_profile(shp)
                pts.append(p.origin + u * p.axis)
                wid.append(float(np.interp(u, uk, wk)) + m * (1.15 if i == len(chain) - 1 else 1.0))
        pts = np.array(pts)
        wid = np.array(wid)
        wid = np.convolve(np.pad(wid, 2, mode="edge"), np.ones(5) / 5, mode="valid")
        left, right = _offset_chain(pts, wid)
        tipdir = parts[chain[-1]].axis
        tip_c = pts[-1]
        th = np.linspace(0, np.pi, 15)[1:-1]
        n = shapes.perp(tipdir)
        r = wid[-1]
        cap = tip_c[None] + (np.cos(th)[:, None] * (-n)[None] * r + np.sin(th)[:, None] * tipdir[None] * (r + 1.5 * s))
        # cos from 1 -> -1 walks from the left (-n) side over the tip to the right side.
        poly = np.vstack([left, cap, right[::-1]])
        polys.append(shapes.chaikin(poly, 2))
    def at(bname: str, t: float, side: float) -> np.ndarray:
        """Skin point beside bone ``bname`` at fraction ``t`` of its length, ``side`` = -1 radial / +1 ulnar."""
        p, shp = parts[bname], shapes_of[bname]
        uk, wk = shapes.long_bone_profile(shp)
        u = t * shp.length
        return p.origin + u * p.axis + side * (float(np.interp(u, uk, wk)) + m) * shapes.perp(p.axis)

    rad, uln = parts["Radius"], parts["Ulna"]
    nf = shapes.perp(f_axis)
    # Forearm skin lines follow the radius and ulna, a little thicker proximally (muscle bellies).
    tip = float((rad.body @ f_axis).max())
    rad_pts = shapes.resample(rad.body, 0.5, closed=True)
    uln_pts = shapes.resample(uln.body, 0.5, closed=True)
    radial_pts, ulnar_pts = [], []
    for depth, k in ((16.0, 1.5), (40.0, 1.7), (80.0, 2.2), (280.0, 2.6)):
        level = tip - depth * s
        rb = rad_pts[np.abs(rad_pts @ f_axis - level) < 1.0]
        ub = uln_pts[np.abs(uln_pts @ f_axis - level) < 1.0]
        r_edge = float((rb @ nf).min()) - k * m
        u_edge = float((ub @ nf).max()) + 1.1 * k * m
        radial_pts.append(level * f_axis + r_edge * nf)
        ulnar_pts.append(level * f_axis + u_edge * nf)
    mc1_head = at("MC1", 0.92, -1.0)
    web = 0.55 * at("MC1", 0.8, 1.0) + 0.45 * at("MC2", 0.55, -1.0)
    palm = np.array([
        at("MC1", 0.12, -1.0), at("MC1", 0.55, -1.0), mc1_head,
        at("MC1", 0.98, 1.0), web, at("MC2", 0.9, -1.0), at("MC2", 0.99, -0.3), at("MC3", 0.99, 0.0),
        at("MC4", 0.99, 0.0), at("MC5", 0.97, 0.3), at("MC5", 0.85, 1.0), at("MC5", 0.4, 1.0) + np.array([2.0, 0]) * s,
        at("MC5", 0.05, 1.0) + np.array([2.5, 0]) * s])
    # One outline from the forearm's far radial side round the hand to its far ulnar side: no seam at the wrist.
    outline = np.vstack([radial_pts[::-1], palm, ulnar_pts])
    polys.append(shapes.chaikin(outline, 3))
    return polys, np.vstack(polys[:-1] + [shapes.chaikin(np.vstack([radial_pts[:2][::-1], palm, ulnar_pts[:2]]), 3)])
