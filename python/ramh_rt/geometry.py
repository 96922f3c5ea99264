"""Joint geometry: the 22 SvdH ROIs of a hand derived from its bone masks.

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
    """An oriented box ``(cx, cy, w, h, angle_deg)`` in the masks' pixel frame.

    Continuous coordinates (pixel ``(col, row)`` covers ``[col, col+1) x [row, row+1)``); ``w`` across the joint
    (local x = ``(cos a, -sin a)``), ``h`` along the bone (local y = ``(sin a, cos a)``, from distal to proximal),
    ``angle`` counter-clockwise as seen on screen.
    """

    cx: float
    cy: float
    w: float
    h: float
    angle: float

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        return (self.cx, self.cy, self.w, self.h, self.angle)

    def corners(self) -> np.ndarray:
        return box_corners(self.as_tuple())

    def bbox(self, shape: tuple[int, int] | None = None) -> tuple[float, float, float, float]:
        """Axis-aligned bounds (x0, y0, x1, y1), clipped to an image of ``shape`` (H, W) when given."""
        c = self.corners()
        x0, y0, x1, y1 = c[:, 0].min(), c[:, 1].min(), c[:, 0].max(), c[:, 1].max()
        if shape is not None:
            x0, x1 = np.clip([x0, x1], 0, shape[1])
            y0, y1 = np.clip([y0, y1], 0, shape[0])
        return float(x0), float(y0), float(x1), float(y1)

    def scaled(self, s: float, dx: float = 0.0, dy: float = 0.0) -> "Roi":
        """The same box in a frame where ``x' = x * s + dx`` (and likewise y)."""
        return Roi(self.cx * s + dx, self.cy * s + dy, self.w * s, self.h * s, self.angle)


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
    """4 x 2 corners (x, y) of an oriented box (cx, cy, w, h, angle_deg): local (-,-), (+,-), (+,+), (-,+)."""
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


def rois_to_image(results: Mapping[str, RoiResult], letterbox) -> dict[str, RoiResult]:
    """ROIs found on a model canvas, mapped to image pixels through a :class:`ramh_rt.ops.Letterbox`.

    The letterbox scale is the same along x and y up to the rounding of the resized size, so box sizes are divided
    by the mean scale (an error below 0.5 %).
    """
    s = 0.5 * (letterbox.scale_x + letterbox.scale_y)
    out: dict[str, RoiResult] = {}
    for stem, r in results.items():
        if r.roi is None:
            out[stem] = r
            continue
        (cx, cy), = letterbox.to_image([[r.roi.cx, r.roi.cy]])
        out[stem] = RoiResult(stem, Roi(float(cx), float(cy), r.roi.w / s, r.roi.h / s, r.roi.angle))
    return out


def roi_to_model(roi: Roi, letterbox) -> Roi:
    """An image-pixel ROI on the model canvas of a :class:`ramh_rt.ops.Letterbox` (inverse of :func:`rois_to_image`)."""
    s = 0.5 * (letterbox.scale_x + letterbox.scale_y)
    (cx, cy), = letterbox.to_model([[roi.cx, roi.cy]])
    return Roi(float(cx), float(cy), roi.w * s, roi.h * s, roi.angle)
