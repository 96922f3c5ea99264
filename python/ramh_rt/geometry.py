"""Joint geometry: the 22 SvdH ROIs of a hand derived from its bone masks, the oriented box they are (:class:`Roi`,
its corners :func:`box_corners`), and the maps between pixel frames (:class:`Transform`: a letterboxed model canvas,
a hand's upright crop, a turned or mirrored film).

Every rule of where an SvdH area lies and how large its ROI is lives here (the pipeline and the training code both
call :func:`joint_rois`, so training crops equal inference crops). The ROI of an area is an oriented box (see
:class:`Roi`) centred on the joint, its local y axis along the bone axis from distal to proximal, its size
proportional to the local bone width, so that it is scale-invariant across image resolutions.

Rules (``a`` = distal unit direction, ``W`` = local width; constants in :data:`ROI_SIZE`):

* finger joints (MCP, PIP, IP) and CMC joints, between a proximal and a distal bone: centred mid-gap on the joint's
  central line; ``a`` = the distal bone's axis (finger joints: the mean of both bones' axes); ``W`` = the wider of the
  two articular ends;
* SC (lunate | capitate) and STT (scaphoid | trapezium+trapezoid): mid-gap along the hand axis on the line through
  the capitate's proximal / the scaphoid's distal pole, ``W`` = the capitate's / scaphoid's width;
* SR (radius | scaphoid+lunate): mid-gap along the forearm axis between the scaphoid and the lunate, ``W`` = the
  radius's distal width;
* S, L: on the bone's centroid, ``W`` = its larger extent; Tm: the centre of trapezium ∪ trapezoid;
* R, U: on the distal end of the radius / ulna, slightly proximal to its tip.

The hand axis is MC3's axis (distal), the forearm axis the radius's axis. Bone axes are principal axes of the mask
pixels, oriented distally along each finger's chain of bones. The constants were calibrated on the synthetic phantoms'
ground-truth ROIs (``tests/test_geometry.py::test_rois_match_the_phantom_ground_truth`` holds the agreement; the
bundle's recorded ``roi_mean_iou`` measures it end to end); real RAM-H1200 joint boxes may follow another convention.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from . import anatomy

#: (w across, h along) of each area's ROI as multiples of its local width W.
ROI_SIZE: dict[str, tuple[float, float]] = {
    **{s: (1.75, 1.65) for s in anatomy.AREA_STEMS if s.startswith(("MCP", "PIP", "IP", "CMC"))},
    "SC": (1.51, 1.30), "STT": (1.51, 1.31), "SR": (0.93, 0.58),
    "S": (1.22, 1.22), "L": (1.31, 1.31), "Tm": (1.26, 1.06),
    "R": (1.17, 0.88), "U": (1.63, 1.42),
}
#: Calibrated shift of each ROI centre, (distal, radial) in units of W, applied after the rules above (radial = towards
#: the thumb). Zero where the rules already agree with the phantoms' ground truth.
ROI_OFFSET: dict[str, tuple[float, float]] = {
    **{s: (0.0, 0.0) for s in anatomy.AREA_STEMS},
    "CMC-T": (0.13, 0.05), "CMC-M": (0.14, 0.0), "CMC-R": (0.14, 0.09), "CMC-S": (0.11, -0.16),
    "STT": (0.04, -0.22), "SR": (-0.045, 0.0),
}
#: How far proximal to the radius / ulna tip (in W) the R / U ROI is centred.
RU_DEPTH = {"R": 0.28, "U": 0.4}

# Joint areas as (proximal group, distal group, axis rule); the bone groups are anatomy.JOINTS'.
_JOINTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    st: (anatomy.JOINTS[st].proximal, anatomy.JOINTS[st].distal, rule) for st, rule in (
        *((a.stem, "finger") for a in anatomy.SVDH_AREAS if a.region == "finger"),
        ("CMC-T", "distal"), ("CMC-M", "distal"), ("CMC-R", "distal"), ("CMC-S", "distal"),
        ("SC", "hand"), ("STT", "hand"), ("SR", "forearm"))
}


@dataclass(frozen=True)
class Roi:
    """An oriented box ``(cx, cy, w, h, angle_deg)`` in a pixel frame: the one box convention of the SDK and of the
    training code (joint ROIs, dataset annotations, phantom ground truth, the boxes :func:`ramh_rt.ops.crop_rois`
    cuts).

    Continuous coordinates (pixel ``(col, row)`` covers ``[col, col+1) x [row, row+1)``, its centre is
    ``(col + 0.5, row + 0.5)``). ``w`` is the extent along the box's local x axis ``u = (cos a, -sin a)``, ``h``
    along its local y axis ``v = (sin a, cos a)``; ``angle`` (degrees) turns the local axes counter-clockwise as seen
    on screen (image y points down). For a joint ROI ``w`` runs across the joint and the local y axis along the bone
    from distal to proximal, so that an upright finger has angle 0.
    """

    cx: float
    cy: float
    w: float
    h: float
    angle: float = 0.0

    @classmethod
    def from_bounds(cls, x0: float, y0: float, x1: float, y1: float) -> "Roi":
        """The axis-aligned box ``[x0, x1) x [y0, y1)`` (angle 0)."""
        return cls(0.5 * (x0 + x1), 0.5 * (y0 + y1), x1 - x0, y1 - y0, 0.0)

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        """``(cx, cy, w, h, angle)``."""
        return (self.cx, self.cy, self.w, self.h, self.angle)

    def as_array(self) -> np.ndarray:
        """``(cx, cy, w, h, angle)`` as a float32 array of shape (5,) (a row of the boxes ``crop_rois`` takes)."""
        return np.array(self.as_tuple(), dtype=np.float32)

    def corners(self) -> np.ndarray:
        """4 x 2 float64 corners (x, y): :func:`box_corners` of this box."""
        return box_corners(self.as_tuple())

    def to_local(self, xy) -> np.ndarray:
        """Points ``(..., 2)`` (x, y) in the box's local frame: float64 ``(..., 2)`` offsets from the centre along
        ``u`` and ``v``; a point lies in the box when ``|local x| <= w / 2`` and ``|local y| <= h / 2``.

        Raises:
            ValueError: when the last dimension is not 2 or a value is not a number.
        """
        t = np.deg2rad(float(self.angle))
        u, v = np.array([np.cos(t), -np.sin(t)]), np.array([np.sin(t), np.cos(t)])
        d = as_points(xy) - np.array([self.cx, self.cy], dtype=np.float64)
        return np.stack([d @ u, d @ v], axis=-1)

    def contains(self, xy, tol: float = 0.0) -> np.ndarray:
        """Which points ``(..., 2)`` lie in the box grown by ``tol`` pixels on every side: bool array ``(...)``.

        Raises:
            ValueError: when the last dimension is not 2 or a value is not a number.
        """
        loc = self.to_local(xy)
        return (np.abs(loc[..., 0]) <= self.w / 2 + tol) & (np.abs(loc[..., 1]) <= self.h / 2 + tol)

    def bbox(self, shape: tuple[int, int] | None = None) -> tuple[float, float, float, float]:
        """Axis-aligned bounds (x0, y0, x1, y1), clipped to an image of ``shape`` (H, W) when given."""
        c = self.corners()
        x0, y0, x1, y1 = c[:, 0].min(), c[:, 1].min(), c[:, 0].max(), c[:, 1].max()
        if shape is not None:
            x0, x1 = np.clip([x0, x1], 0, shape[1])
            y0, y1 = np.clip([y0, y1], 0, shape[0])
        return float(x0), float(y0), float(x1), float(y1)


@dataclass(frozen=True)
class RoiResult:
    """:func:`joint_rois` outcome for one area: ``roi`` or, when it could not be located, ``roi=None`` + ``reason``."""

    stem: str
    roi: Roi | None
    reason: str | None = None


@dataclass
class _Bone:
    pts: np.ndarray  # N x 2 pixel centres (x, y)
    centroid: np.ndarray
    axis: np.ndarray  # unit principal axis, oriented distally once the hand frame is known


def _perp(a: np.ndarray) -> np.ndarray:
    return np.array([-a[1], a[0]])


def box_corners(box) -> np.ndarray:
    """4 x 2 float64 corners (x, y) of an oriented box ``(cx, cy, w, h, angle_deg)`` (a :class:`Roi`'s convention),
    in the order local (-,-), (+,-), (+,+), (-,+): for an upright box top-left, top-right, bottom-right,
    bottom-left; corners 2 and 3 span the local +y (proximal) side. The one place corners are computed."""
    cx, cy, w, h, ang = (float(v) for v in box)
    t = np.deg2rad(ang)
    u = np.array([np.cos(t), -np.sin(t)])
    v = np.array([np.sin(t), np.cos(t)])
    c = np.array([cx, cy])
    return np.array([c + sx * w * u + sy * h * v for sx, sy in ((-.5, -.5), (.5, -.5), (.5, .5), (-.5, .5))])


def mask_bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), x1/y1 exclusive, enclosing the nonzero pixels of a 2-D mask; None when it is empty.

    Two any() reductions: about a tenth of the cost of a full nonzero() on a mask that covers ~1 % of its frame.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _bone(mask: np.ndarray, stride: int) -> _Bone | None:
    m = mask[::stride, ::stride]
    # nonzero() over the bone's bounds only: same points, same (raster) order as over the whole mask
    bounds = mask_bounds(m)
    if bounds is None:
        return None
    x0, y0, x1, y1 = bounds
    ys, xs = np.nonzero(m[y0:y1, x0:x1])
    if len(xs) < 3:
        return None
    xs, ys = xs + x0, ys + y0
    pts = np.stack([xs * stride + 0.5 * stride, ys * stride + 0.5 * stride], axis=1).astype(np.float64)
    c = pts.mean(axis=0)
    cov = np.cov((pts - c).T)
    w, v = np.linalg.eigh(cov)
    return _Bone(pts, c, v[:, int(np.argmax(w))])


def _orient(axis: np.ndarray, toward: np.ndarray) -> np.ndarray:
    return axis if float(axis @ toward) >= 0 else -axis


def _unit(v: np.ndarray) -> np.ndarray | None:
    n = float(np.linalg.norm(v))
    return None if n < 1e-9 else v / n


def _radial(bones: dict[str, _Bone], a: np.ndarray) -> np.ndarray:
    """Unit vector perpendicular to ``a`` pointing to the thumb side (left and right hands differ)."""
    n = _perp(a)
    for thumb, other in (("Trapezium", "Hamate"), ("MC1", "MC5"), ("Radius", "Ulna"), ("Scaphoid", "Pisiform_Triquetrum")):
        if thumb in bones and other in bones:
            return _orient(n, bones[thumb].centroid - bones[other].centroid)
    return n


def _frame(bones: dict[str, _Bone]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Distal directions of the hand (MC3) and of the forearm (radius), or None where they cannot be told."""
    carpal = [bones[n].centroid for n in ("Capitate", "Hamate", "Lunate", "Scaphoid", "Trapezoid") if n in bones]
    wrist = np.mean(carpal, axis=0) if carpal else None
    hand = None
    if "MC3" in bones:
        mc3 = bones["MC3"]
        if "PP3" in bones:
            toward = bones["PP3"].centroid - mc3.centroid
        elif wrist is not None:
            toward = mc3.centroid - wrist
        elif "Radius" in bones:
            toward = mc3.centroid - bones["Radius"].centroid
        else:
            toward = None
        hand = None if toward is None else _orient(mc3.axis, toward)
    forearm = None
    if "Radius" in bones:
        target = wrist if wrist is not None else (bones["MC3"].centroid if "MC3" in bones else None)
        if target is not None:
            # The shafts (proximal halves of the visible radius and ulna) give the forearm's axis; the flared,
            # asymmetric distal ends would tilt a whole-bone principal axis.
            axes = [_shaft_axis(bones[n], _orient(bones[n].axis, target - bones[n].centroid))
                    for n in ("Radius", "Ulna") if n in bones]
            axes = [_orient(x, axes[0]) for x in axes]
            forearm = _orient(_unit(np.sum(axes, axis=0)), target - bones["Radius"].centroid)
            # A radius cut short by the image edge has no shaft to speak of: follow the hand instead.
            r = bones["Radius"]
            along, across = np.ptp(r.pts @ forearm), np.ptp(r.pts @ _perp(forearm))
            if along < 1.8 * across and hand is not None:
                forearm = hand
    if hand is None and forearm is not None:
        hand = forearm
    if forearm is None and hand is not None:
        forearm = hand
    return hand, forearm


def _shaft_axis(b: _Bone, axis: np.ndarray) -> np.ndarray:
    """Principal axis of the half of a long bone's pixels farther from its tip along ``axis`` (its shaft)."""
    ax = b.pts @ axis
    sel = b.pts[ax <= np.median(ax)]
    if len(sel) < 3:
        return axis
    w, v = np.linalg.eigh(np.cov((sel - sel.mean(axis=0)).T))
    return v[:, int(np.argmax(w))]


def _orient_fingers(bones: dict[str, _Bone], hand: np.ndarray | None) -> None:
    """Orient every finger bone's axis distally, along its finger's chain (the thumb may point far from MC3's)."""
    for d in range(1, 6):
        chain = [n for n in (f"MC{d}", f"PP{d}", f"MP{d}", f"DP{d}") if n in bones]
        if len(chain) >= 2:
            toward = bones[chain[-1]].centroid - bones[chain[0]].centroid
        elif hand is not None:
            toward = hand
        else:
            continue
        for n in chain:
            bones[n].axis = _orient(bones[n].axis, toward)


def _end_slab(axial: np.ndarray, lateral: np.ndarray, distal_end: bool, frac: float = 0.2):
    span = float(np.ptp(axial))
    sel = axial >= axial.max() - frac * span if distal_end else axial <= axial.min() + frac * span
    lat = lateral[sel]
    return float(lat.min()), float(lat.max())


def _mid_gap(prox: list[_Bone], dist: list[_Bone], a: np.ndarray,
             lc: float | None = None) -> tuple[np.ndarray, float, float]:
    """Centre of the gap between a proximal and a distal group along ``a``, and the widths of the proximal group's
    distal end and of the distal group's proximal end."""
    n = _perp(a)
    P = np.vstack([b.pts for b in prox])
    D = np.vstack([b.pts for b in dist])
    pa, pl, da, dl = P @ a, P @ n, D @ a, D @ n
    p0, p1 = _end_slab(pa, pl, True)
    d0, d1 = _end_slab(da, dl, False)
    width = max(p1 - p0, d1 - d0, 1.0)
    # Lateral centre: the middle of the two articular ends' overlap (of the distal end alone if they do not overlap).
    if lc is None:
        lo, hi = max(p0, d0), min(p1, d1)
        lc = 0.5 * (lo + hi) if hi > lo else 0.5 * (d0 + d1)
    band = 0.15 * width
    pb, db = np.abs(pl - lc) <= band, np.abs(dl - lc) <= band
    prox_pt = float(pa[pb].max()) if pb.any() else float(pa.max())
    dist_pt = float(da[db].min()) if db.any() else float(da.min())
    centre = lc * n + 0.5 * (prox_pt + dist_pt) * a
    return centre, p1 - p0, d1 - d0


def _roi(st: str, centre: np.ndarray, a: np.ndarray, W: float, bones: dict[str, _Bone]) -> Roi:
    sw, sh = ROI_SIZE[st]
    da, dr = ROI_OFFSET[st]
    if da or dr:
        centre = centre + (da * a + dr * _radial(bones, a)) * W
    w, h = sw * W, sh * W
    v = -a  # local y runs from distal to proximal
    angle = float(np.degrees(np.arctan2(v[0], v[1])))
    return Roi(float(centre[0]), float(centre[1]), float(w), float(h), angle)


def joint_rois(masks: Mapping[str, np.ndarray], *, stride: int = 1) -> dict[str, RoiResult]:
    """The 22 SvdH ROIs (in :data:`ramh_rt.anatomy.AREA_STEMS` order) from bone masks in one pixel frame.

    Args:
        masks: bone class name -> H x W boolean mask (one instance per bone; Sesamoid/SoftTissue are ignored).
            Any resolution: the ROIs come back in the masks' own pixel frame.
        stride: use every ``stride``-th pixel in each direction (for large full-resolution masks).

    Returns:
        stem -> :class:`RoiResult`; an area whose anchor bones (or the hand frame) are missing has ``roi=None``
        and a ``reason`` naming what is missing — nothing is invented.
    """
    bones: dict[str, _Bone] = {}
    for name, m in masks.items():
        name = anatomy.canonical_bone_name(name)
        if not anatomy.bone(name).is_bone:
            continue
        b = _bone(np.asarray(m, dtype=bool), max(1, int(stride)))
        if b is not None:
            bones[name] = b
    hand, forearm = _frame(bones)
    _orient_fingers(bones, hand)

    out: dict[str, RoiResult] = {}
    for area in anatomy.SVDH_AREAS:
        st = area.stem
        need = _JOINTS[st][0] + _JOINTS[st][1] if st in _JOINTS else area.anchors
        missing = [n for n in need if n not in bones]
        if missing:
            out[st] = RoiResult(st, None, f"not found: {', '.join(missing)}")
            continue
        if st in _JOINTS:
            prox_names, dist_names, rule = _JOINTS[st]
            prox, dist = [bones[n] for n in prox_names], [bones[n] for n in dist_names]
            if rule == "finger":
                a = _unit(prox[0].axis + dist[0].axis)
            elif rule == "distal":
                a = dist[0].axis
                if hand is not None:
                    a = _orient(a, hand)
            else:
                a = hand if rule == "hand" else forearm
            if a is None:
                out[st] = RoiResult(st, None, "hand orientation unknown (MC3 and radius not found)")
                continue
            n = _perp(a)
            lc = None
            if st == "SR":  # central line between the scaphoid and the lunate
                lc = float(0.5 * (bones["Scaphoid"].centroid + bones["Lunate"].centroid) @ n)
            elif st in ("SC", "STT"):  # central line through the capitate's proximal / the scaphoid's distal pole
                ref = bones["Capitate" if st == "SC" else "Scaphoid"].pts
                proj = (ref @ a) * (-1.0 if st == "SC" else 1.0)
                tol = 0.05 * float(np.ptp(ref @ n))  # the pole: pixels within 5 % of the width of the extreme
                lc = float(np.mean(ref[proj >= proj.max() - tol] @ n))
            centre, prox_w, dist_w = _mid_gap(prox, dist, a, lc)
            if st == "SR":  # the radius's whole distal width (its flared end is its widest part)
                W = float(np.ptp(prox[0].pts @ n))
            elif st in ("SC", "STT"):  # the capitate's / the scaphoid's width
                W = float(np.ptp(bones["Capitate" if st == "SC" else "Scaphoid"].pts @ n))
            elif rule == "distal":  # CMC joints: the metacarpal base (the hamate serves two of them)
                W = dist_w
            else:
                W = max(prox_w, dist_w)
            out[st] = RoiResult(st, _roi(st, centre, a, W, bones))
            continue
        a = forearm if st in ("R", "U") else hand
        if a is None:
            out[st] = RoiResult(st, None, "hand orientation unknown (MC3 and radius not found)")
            continue
        n = _perp(a)
        pts = np.vstack([bones[x].pts for x in area.anchors])
        ax, lat = pts @ a, pts @ n
        if st in ("S", "L"):
            W = max(float(np.ptp(lat)), float(np.ptp(ax)))
            centre = bones[area.anchors[0]].centroid
        elif st == "Tm":
            W = float(np.ptp(lat))
            centre = 0.5 * (lat.min() + lat.max()) * n + 0.5 * (ax.min() + ax.max()) * a
        else:  # R, U: the distal end of the forearm bone, whose flared end is its widest part
            l0, l1 = float(lat.min()), float(lat.max())
            W = l1 - l0
            centre = 0.5 * (l0 + l1) * n + (float(ax.max()) - RU_DEPTH[st] * W) * a
        out[st] = RoiResult(st, _roi(st, centre, a, W, bones))
    return out


# ---- rotated-box IoU (for validation against ground-truth boxes) -----------------------------------------------------

def _clip(subject: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = []
    n = len(subject)
    for i in range(n):
        p, q = subject[i], subject[(i + 1) % n]
        cp = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
        cq = (b[0] - a[0]) * (q[1] - a[1]) - (b[1] - a[1]) * (q[0] - a[0])
        if cp >= 0:
            out.append(p)
        if (cp >= 0) != (cq >= 0):
            t = cp / (cp - cq)
            out.append(p + t * (q - p))
    return np.array(out) if out else np.zeros((0, 2))


def _area(poly: np.ndarray) -> float:
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def rotated_iou(box_a, box_b) -> float:
    """Intersection over union of two oriented boxes (cx, cy, w, h, angle_deg) (convex polygon clipping)."""
    pa, pb = box_corners(box_a), box_corners(box_b)
    # Both corner lists run with the same handedness; clip with the orientation that keeps the inside.
    sign = 1.0 if _signed(pb) > 0 else -1.0
    inter = pa
    for i in range(4):
        a, b = pb[i], pb[(i + 1) % 4]
        inter = _clip(inter, a, b) if sign > 0 else _clip(inter, b, a)
        if len(inter) == 0:
            return 0.0
    ia = _area(inter)
    union = _area(pa) + _area(pb) - ia
    return ia / union if union > 0 else 0.0


def _signed(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))




# ---- frames: maps between the pixel frames of one picture ------------------------------------------------------------

def as_points(xy) -> np.ndarray:
    """``xy`` as a float64 array of ``(..., 2)`` points (x, y).

    Raises:
        ValueError: when a value is not a number or the last dimension is not 2.
    """
    try:
        p = np.asarray(xy, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"xy must be an array of (x, y) points: {e}") from None
    if p.ndim == 0 or p.shape[-1] != 2:
        raise ValueError(f"xy must have shape (..., 2) of (x, y) points, got shape {p.shape}")
    return p


# (cos r, sin r) of a direction turn -> r in degrees
_TURN = {(1, 0): 0, (0, 1): 90, (-1, 0): 180, (0, -1): -90}


@dataclass(frozen=True)
class _Step:
    """``out[i] = scale[i] * p[src[i]] + offset[i]`` (inverted: ``p[src[i]] = (out[i] - offset[i]) / scale[i]``)."""

    src: tuple[int, int]
    scale: tuple[float, float]
    offset: tuple[float, float]
    inverted: bool = False

    @property
    def angle_map(self) -> tuple[int, int]:
        """``(sign, turn)``: a direction at angle ``a`` (counter-clockwise on screen, degrees) leaves this step at
        ``sign * a + turn``."""
        m = [[0, 0], [0, 0]]
        for i in range(2):
            m[i][self.src[i]] = 1 if self.scale[i] > 0 else -1
        sign = 1 if m[0][0] * m[1][1] - m[0][1] * m[1][0] > 0 else -1
        # A direction's unit vector v(a) = (sin a, cos a) (the local y axis of a box at angle a) goes to
        # m @ v(a) = v(sign * a + turn): for a turn m = [[cos r, sin r], [-sin r, cos r]], for a mirror
        # m = [[-cos r, sin r], [sin r, cos r]].
        turn = _TURN[(sign * m[0][0], m[0][1])]
        return (sign, -sign * turn) if self.inverted else (sign, turn)

    @property
    def size_factor(self) -> float:
        """How lengths scale (the mean of both axes' scales: they differ only by the rounding of a resized size)."""
        return 0.5 * (abs(self.scale[0]) + abs(self.scale[1]))

    def inverse(self) -> "_Step":
        return _Step(self.src, self.scale, self.offset, not self.inverted)

    def apply(self, p: np.ndarray) -> np.ndarray:
        # x * 1 and x + 0 are skipped: the arithmetic is exactly that of the hand-written maps this replaced
        # (-0.0 stays -0.0), so results did not move by a bit.
        out = np.empty_like(p)
        for i in range(2):
            s, t = self.scale[i], self.offset[i]
            if self.inverted:
                q = p[..., i]
                q = q - t if t else q
                out[..., self.src[i]] = q / s if s != 1 else q
            else:
                q = p[..., self.src[i]]
                q = q * s if s != 1 else q
                out[..., i] = q + t if t else q
        return out


@dataclass(frozen=True)
class Transform:
    """A map between two pixel frames of one picture, made of axis-aligned steps: scaling and shifting (a letterbox,
    a crop), quarter turns (``np.rot90``) and left-right mirrors (``np.fliplr``) — the maps that take pixel grids to
    pixel grids and oriented boxes to oriented boxes. The one home of frame arithmetic: the model canvas of
    :class:`ramh_rt.ops.Letterbox`, the upright hand of :class:`ramh_rt.understand.HandFrame` and the turned and
    mirrored films of the training phantoms are all expressed with it.

    Coordinates are continuous pixel coordinates ``(x, y)`` (pixel ``(col, row)`` covers ``[col, col+1) x
    [row, row+1)``), angles degrees counter-clockwise as seen on screen (image y points down), as in :class:`Roi`.

    A composed transform applies its steps one after another (:meth:`then`), and an inverse undoes each step with
    the inverse arithmetic (``(x - t) / s``, not ``x * (1 / s) - t / s``): mapping through a composition gives the
    same float64 bits as mapping through its parts in turn, and a letterbox's inverse is exact to the last bit that
    division allows.

    Build with :meth:`identity`, :meth:`scale_shift`, :meth:`shift`, :meth:`quarter_turn`, :meth:`mirror`.
    """

    steps: tuple[_Step, ...] = ()

    # ---- construction
    @classmethod
    def identity(cls) -> "Transform":
        """The map that changes nothing."""
        return cls(())

    @classmethod
    def scale_shift(cls, sx: float, sy: float, tx: float = 0.0, ty: float = 0.0) -> "Transform":
        """``(x, y) -> (x * sx + tx, y * sy + ty)`` (e.g. an image onto a letterboxed model canvas).

        Raises:
            ValueError: a scale that is not a finite number > 0, or an offset that is not finite.
        """
        sx, sy, tx, ty = _numbers((sx, sy, tx, ty), "scale_shift arguments")
        if not (np.isfinite([sx, sy, tx, ty]).all() and sx > 0 and sy > 0):
            raise ValueError(f"scales must be finite and > 0 and offsets finite, got {(sx, sy, tx, ty)}")
        return cls((_Step((0, 1), (sx, sy), (tx, ty)),))

    @classmethod
    def shift(cls, tx: float, ty: float) -> "Transform":
        """``(x, y) -> (x + tx, y + ty)`` (e.g. ``(-x0, -y0)``: a film into its crop starting at ``(x0, y0)``)."""
        return cls.scale_shift(1.0, 1.0, tx, ty)

    @classmethod
    def quarter_turn(cls, shape: tuple[int, int], k: int = 1) -> "Transform":
        """``np.rot90(array, k)`` of an ``(H, W)`` array, as a map of its points: each counter-clockwise (on screen)
        quarter turn takes ``(x, y)`` of an array ``W`` wide to ``(y, W - x)`` and adds 90 degrees to an angle.
        ``k`` may be negative (clockwise turns).

        Raises:
            ValueError: ``shape`` not two sizes > 0, or ``k`` not an integer.
        """
        h, w = _shape(shape)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise ValueError(f"k must be an integer number of quarter turns, got {k!r}")
        k = int(k)
        if k < 0:  # clockwise turns undo counter-clockwise turns of the array they produce
            n = -k % 4
            return cls.quarter_turn((w, h) if n % 2 else (h, w), n).inverse()
        steps = []
        for _ in range(k % 4):  # one turn at a time: each needs the width of the array before it
            steps.append(_Step((1, 0), (1.0, -1.0), (0.0, float(w))))
            h, w = w, h
        return cls(tuple(steps))

    @classmethod
    def mirror(cls, width: float) -> "Transform":
        """``np.fliplr`` of an array ``width`` wide: ``(x, y) -> (width - x, y)``; an angle ``a`` becomes ``-a``.

        Raises:
            ValueError: ``width`` not a finite number.
        """
        (w,) = _numbers((width,), "width")
        if not np.isfinite(w):
            raise ValueError(f"width must be finite, got {width!r}")
        return cls((_Step((0, 1), (-1.0, 1.0), (w, 0.0)),))

    def then(self, other: "Transform") -> "Transform":
        """This transform followed by ``other`` (``other`` maps this one's output frame)."""
        return Transform(self.steps + other.steps)

    def compose(self, other: "Transform") -> "Transform":
        """``self ∘ other``: ``other`` first, then this transform (as matrices multiply)."""
        return other.then(self)

    def inverse(self) -> "Transform":
        """The map back (every step undone, last first)."""
        return Transform(tuple(s.inverse() for s in reversed(self.steps)))

    # ---- what it does
    @property
    def angle_map(self) -> tuple[int, int]:
        """``(sign, turn)``: an angle ``a`` maps to ``sign * a + turn`` (sign -1 when the map mirrors; ``turn`` a
        multiple of 90 degrees, the sum of the steps' turns, not reduced modulo 360)."""
        sign, turn = 1, 0
        for s in self.steps:
            sg, tn = s.angle_map
            sign, turn = sg * sign, sg * turn + tn
        return sign, turn

    @property
    def mirrors(self) -> bool:
        """True when the map flips handedness (an odd number of mirrors)."""
        return self.angle_map[0] < 0

    def apply(self, xy) -> np.ndarray:
        """Map points.

        Args:
            xy: ``(..., 2)`` array-like of ``(x, y)`` (e.g. ``N x 2``).
        Returns:
            float64 array of the same shape.
        Raises:
            ValueError: when the last dimension is not 2 or a value is not a number.
        """
        p = as_points(xy)
        if not self.steps:
            return p.copy()  # never the caller's array itself
        for s in self.steps:
            p = s.apply(p)
        return p

    def apply_bounds(self, box) -> tuple[float, float, float, float]:
        """An axis-aligned box ``(x0, y0, x1, y1)`` -> its image ``(x0', y0', x1', y1')`` (exact: every step maps
        axis-aligned boxes to axis-aligned boxes, corners to corners)."""
        c = self.apply([[box[0], box[1]], [box[2], box[3]]])
        return (float(c[:, 0].min()), float(c[:, 1].min()), float(c[:, 0].max()), float(c[:, 1].max()))

    def apply_angle(self, deg: float) -> float:
        """A direction's angle (degrees, counter-clockwise on screen) -> its angle after the map, ``sign * deg +
        turn`` of :attr:`angle_map`, not wrapped (see :func:`wrap_angle`); unchanged when the map neither turns nor
        mirrors."""
        sign, turn = self.angle_map
        a = float(deg)
        if sign < 0:
            return -a + float(turn)  # + 0.0 also makes a mirrored 0.0 a plain 0.0
        return a + float(turn) if turn else a

    def apply_length(self, length: float) -> float:
        """A length (a box's ``w`` or ``h``) -> its length after the map (the mean scale of both axes).

        A NumPy float keeps its type (a float32 box's size is scaled in float32, as the boxes ``crop_rois`` takes);
        anything else becomes a Python float.
        """
        v = length if isinstance(length, np.floating) else float(length)
        for s in self.steps:
            f = s.size_factor
            if f != 1:
                v = v / f if s.inverted else v * f
        return v

    def apply_roi(self, roi: "Roi") -> "Roi":
        """An oriented :class:`Roi` -> the same box after the map: centre mapped, sizes scaled by
        :meth:`apply_length`, angle by :meth:`apply_angle` (not wrapped)."""
        (cx, cy), = self.apply([[roi.cx, roi.cy]])
        return Roi(float(cx), float(cy), self.apply_length(roi.w), self.apply_length(roi.h),
                   self.apply_angle(roi.angle))


def _numbers(values, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numbers, got {tuple(values)!r}") from None


def _shape(shape) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (H, W), got {shape!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"shape must be (H, W) with sizes > 0, got {shape!r}")
    return h, w


def wrap_angle(deg: float, period: float = 360.0) -> float:
    """``deg`` wrapped into ``(-period / 2, period / 2]``: 360 for a direction, 180 for an undirected axis."""
    a = float(deg) % period
    return a - period if a > period / 2 else a


def map_rois(results: Mapping[str, RoiResult], transform: Transform) -> dict[str, RoiResult]:
    """Each located :class:`RoiResult`'s ROI mapped through ``transform`` (e.g. from a model canvas to the image:
    ``letterbox.transform.inverse()``); unlocated ones are passed through."""
    return {stem: r if r.roi is None else RoiResult(stem, transform.apply_roi(r.roi)) for stem, r in results.items()}


def enclosing_pixels(bounds, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The integer pixel box ``(x0, y0, x1, y1)`` (``x1``/``y1`` exclusive) that encloses the continuous bounds
    ``(x0, y0, x1, y1)``, clipped to an image of ``shape`` (H, W) (empty, ``x1 <= x0``, when they miss it)."""
    h, w = shape
    return (max(0, int(np.floor(bounds[0]))), max(0, int(np.floor(bounds[1]))),
            min(w, int(np.ceil(bounds[2]))), min(h, int(np.ceil(bounds[3]))))
