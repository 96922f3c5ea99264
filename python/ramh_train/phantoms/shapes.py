"""Bone outlines and the polygon geometry the phantom generator is built on.

Every outline is a closed polygon, an ``N x 2`` float64 array of ``(x, y)`` points in the *hand frame*: millimetres,
x towards the ulnar side (the small finger), y towards proximal (the forearm), so that a right hand seen PA with the
fingers up looks as it does on screen (thumb on the left). Polygons are not repeated-closed (the last point joins the
first). Long bones are built in their own frame (``u`` along the bone from its proximal end, ``v`` across it) and
placed with :func:`place`; carpal bones come from templates in the hand frame around the capitate.

The rasteriser :func:`fill_polygon` decides pixel membership by the pixel *centre* (even-odd rule), so two polygons that
only share an edge never claim the same pixel: bones that touch (ankylosis) stay disjoint in the masks, and only bones
that really overlap in projection share pixels.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# ---------------------------------------------------------------------------------------------------------------------
# Polygon utilities
# ---------------------------------------------------------------------------------------------------------------------


def chaikin(points: np.ndarray, iterations: int = 3, closed: bool = True) -> np.ndarray:
    """Corner-cutting (Chaikin) smoothing of a polygon or polyline; each pass doubles the vertex count."""
    p = np.asarray(points, dtype=np.float64)
    for _ in range(iterations):
        q = np.roll(p, -1, axis=0) if closed else p[1:]
        a = p if closed else p[:-1]
        new = np.empty((2 * len(a), 2))
        new[0::2] = 0.75 * a + 0.25 * q
        new[1::2] = 0.25 * a + 0.75 * q
        if not closed:
            new = np.vstack([p[:1], new, p[-1:]])
        p = new
    return p


def resample(points: np.ndarray, step: float, closed: bool = False) -> np.ndarray:
    """Points along a polyline (or closed polygon) at a constant arc-length ``step`` (same units as the points)."""
    p = np.asarray(points, dtype=np.float64)
    if closed:
        p = np.vstack([p, p[:1]])
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(np.ceil(s[-1] / step)), 1)
    t = np.linspace(0.0, s[-1], n + 1)
    if closed:
        t = t[:-1]
    return np.stack([np.interp(t, s, p[:, 0]), np.interp(t, s, p[:, 1])], axis=1)


def arc_length(points: np.ndarray) -> float:
    """Length of an open polyline."""
    return float(np.linalg.norm(np.diff(np.asarray(points), axis=0), axis=1).sum())


def rotation(angle_rad: float) -> np.ndarray:
    """2 x 2 matrix turning the hand frame's "up" (0, -1) towards +x for positive angles (clockwise on screen)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s], [s, c]])


def direction(angle_deg: float) -> np.ndarray:
    """Unit vector pointing distally for a bone deviated ``angle_deg`` from "up" towards the ulnar side (+x)."""
    a = np.deg2rad(angle_deg)
    return np.array([np.sin(a), -np.cos(a)])


def perp(d: np.ndarray) -> np.ndarray:
    """The lateral unit vector of a bone whose distal direction is ``d`` (+x side for an upright bone)."""
    return np.array([-d[1], d[0]])


def place(local: np.ndarray, origin: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Map bone-frame points ``(u, v)`` to the hand frame: ``origin + u * d + v * perp(d)``."""
    local = np.asarray(local, dtype=np.float64)
    return origin[None, :] + local[:, :1] * d[None, :] + local[:, 1:2] * perp(d)[None, :]


def centroid(p: np.ndarray) -> np.ndarray:
    """Area centroid of a simple polygon."""
    x, y = p[:, 0], p[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cr = x * yn - xn * y
    a = cr.sum() / 2.0
    if abs(a) < 1e-12:
        return p.mean(axis=0)
    return np.array([((x + xn) * cr).sum() / (6 * a), ((y + yn) * cr).sum() / (6 * a)])


def axial_profile(poly: np.ndarray, d: np.ndarray, bin_mm: float, lateral0: float, nbins: int,
                  step: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    """Per lateral bin, the min and max projection of a polygon's outline onto the axis ``d``.

    The lateral coordinate is ``p . perp(d)``, binned from ``lateral0`` in ``bin_mm`` steps; bins the outline does not
    reach are NaN. The extremes of a polygon inside a lateral slab lie on its outline, so sampling the outline densely
    (``step`` mm) measures them.
    """
    pts = resample(poly, step, closed=True)
    lat = pts @ perp(d)
    ax = pts @ d
    idx = np.floor((lat - lateral0) / bin_mm).astype(np.int64)
    ok = (idx >= 0) & (idx < nbins)
    lo = np.full(nbins, np.inf)
    hi = np.full(nbins, -np.inf)
    np.minimum.at(lo, idx[ok], ax[ok])
    np.maximum.at(hi, idx[ok], ax[ok])
    lo[~np.isfinite(lo)] = np.nan
    hi[~np.isfinite(hi)] = np.nan
    return lo, hi


def gap_along(proximal: list[np.ndarray], distal: list[np.ndarray], d: np.ndarray, bin_mm: float = 0.1) -> float:
    """Smallest distance along the axis ``d`` (pointing from the proximal to the distal bones) between two groups.

    For every lateral slab that both groups reach, the gap is (lowest distal projection) - (highest proximal
    projection); the result is the minimum over slabs, negative when the groups overlap along ``d``.

    Raises:
        ValueError: the groups share no lateral slab (they do not face each other along ``d``).
    """
    allpts = np.vstack(list(proximal) + list(distal))
    lat = allpts @ perp(d)
    l0 = float(lat.min()) - bin_mm
    nb = int(np.ceil((float(lat.max()) - l0) / bin_mm)) + 2
    prox_hi = np.full(nb, np.nan)
    dist_lo = np.full(nb, np.nan)
    for p in proximal:
        _, hi = axial_profile(p, d, bin_mm, l0, nb)
        prox_hi = np.fmax(prox_hi, hi)
    for p in distal:
        lo, _ = axial_profile(p, d, bin_mm, l0, nb)
        dist_lo = np.fmin(dist_lo, lo)
    both = np.isfinite(prox_hi) & np.isfinite(dist_lo)
    if not both.any():
        raise ValueError("the two bone groups do not face each other along the given axis")
    return float(np.min(dist_lo[both] - prox_hi[both]))


def points_in_polygon(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test for many points (vectorised over points and edges)."""
    x = pts[:, 0][:, None]
    y = pts[:, 1][:, None]
    px, py = poly[:, 0][None, :], poly[:, 1][None, :]
    qx, qy = np.roll(poly[:, 0], -1)[None, :], np.roll(poly[:, 1], -1)[None, :]
    cond = (py <= y) != (qy <= y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = px + (y - py) * (qx - px) / (qy - py)
    return (np.sum(cond & (x < xc), axis=1) % 2) == 1


# ---------------------------------------------------------------------------------------------------------------------
# Rasterisation
# ---------------------------------------------------------------------------------------------------------------------


def fill_polygon(poly_px: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """Rasterise a polygon given in image pixel coordinates into the window ``[x0, x0+w) x [y0, y0+h)``.

    A pixel ``(col, row)`` is inside when its centre ``(col + 0.5, row + 0.5)`` is inside the polygon (even-odd rule).
    Scanline algorithm, vectorised over edges: every edge contributes one crossing per pixel row whose centre line it
    spans; a parity prefix sum along each row fills between crossings.

    Returns:
        h x w bool array.
    """
    out_h, out_w = int(h), int(w)
    if out_h <= 0 or out_w <= 0 or len(poly_px) < 3:
        return np.zeros((max(out_h, 0), max(out_w, 0)), dtype=bool)
    p = np.asarray(poly_px, dtype=np.float64)
    q = np.roll(p, -1, axis=0)
    py, qy = p[:, 1] - y0, q[:, 1] - y0
    px, qx = p[:, 0] - x0, q[:, 0] - x0
    lo = np.minimum(py, qy)
    hi = np.maximum(py, qy)
    # Rows r whose centre r + 0.5 satisfies lo <= r + 0.5 < hi (half-open, so shared vertices count once).
    r0 = np.clip(np.ceil(lo - 0.5), 0, out_h).astype(np.int64)
    r1 = np.clip(np.ceil(hi - 0.5), 0, out_h).astype(np.int64)
    counts = r1 - r0
    total = int(counts.sum())
    if total == 0:
        return np.zeros((out_h, out_w), dtype=bool)
    edge = np.repeat(np.arange(len(p)), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    rows = np.repeat(r0, counts) + (np.arange(total) - starts)
    yc = rows + 0.5
    t = (yc - py[edge]) / (qy[edge] - py[edge])
    xc = px[edge] + t * (qx[edge] - px[edge])
    # First column whose centre lies right of the crossing.
    cols = np.clip(np.ceil(xc - 0.5), 0, out_w).astype(np.int64)
    acc = np.bincount(rows * (out_w + 1) + cols, minlength=out_h * (out_w + 1)).astype(np.uint8)
    # Parity survives the uint8 wrap-around of the prefix sum (256 is even).
    par = np.cumsum(acc.reshape(out_h, out_w + 1), axis=1, dtype=np.uint8) & 1
    return par[:, :out_w].astype(bool)


# ---------------------------------------------------------------------------------------------------------------------
# Long bones
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LongBoneShape:
    """Outline parameters of a tubular bone (metacarpal or phalanx), in mm.

    Attributes:
        length: proximal end to distal end along the axis.
        base: half-width of the proximal end (base).
        shaft: half-width of the narrowest part of the shaft.
        head: half-width of the distal end (head, or the tuft of a distal phalanx).
        base_shape: depth of the proximal articular surface: > 0 concave (a phalanx base cupping the head proximal to
            it), < 0 convex, 0 flat; in units of ``base``.
        head_cap: height of the distal articular cap in units of ``head`` (0.5: a flattish trochlea, 0.9: a round
            metacarpal head).
        base_tilt: tilt of the proximal articular surface (mm of axial offset from one side to the other).
        waist: position of the narrowest shaft point as a fraction of the length.
        kind: "metacarpal", "phalanx" or "distal".
    """

    length: float
    base: float
    shaft: float
    head: float
    base_shape: float
    head_cap: float
    base_tilt: float = 0.0
    waist: float = 0.5
    kind: str = "phalanx"


def long_bone_profile(s: LongBoneShape) -> tuple[np.ndarray, np.ndarray]:
    """Knots ``(u, half_width)`` of the side outline from base to head (before the end caps are added)."""
    L = s.length
    if s.kind == "distal":
        u = np.array([0.0, 0.10, 0.22, 0.45, 0.68, 0.80, 0.90]) * L
        w = np.array([s.base, s.base * 0.95, s.base * 0.72, s.shaft, s.shaft * 1.02, s.head * 0.92, s.head])
    elif s.kind == "metacarpal":
        u = np.array([0.0, 0.06, 0.16, 0.30, s.waist, 0.70, 0.80, 0.87]) * L
        w = np.array([s.base, s.base * 0.98, s.base * 0.80, s.shaft * 1.12, s.shaft, s.shaft * 1.08, s.head * 0.88,
                      s.head])
    else:
        u = np.array([0.0, 0.06, 0.16, 0.30, s.waist, 0.70, 0.82, 0.90]) * L
        w = np.array([s.base, s.base * 0.97, s.base * 0.78, s.shaft * 1.08, s.shaft, s.shaft * 1.06, s.head * 0.94,
                      s.head])
    return u, w


def long_bone_outline(s: LongBoneShape, n_cap: int = 24) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Closed outline of a tubular bone in its own frame (``u`` along the bone, ``v`` across) and its articular ends.

    The distal end is a cap of height ``head_cap * head`` (a superellipse, rounder for metacarpal heads); the proximal
    end is concave (``base_shape > 0``: phalanx bases cupping the head proximal to them) or flat, optionally tilted
    (metacarpal bases). The articular surfaces returned run from the +v margin to the -v margin and extend a little
    down the sides, where marginal erosions sit.

    Returns:
        ``(outline, surfaces)``: outline ``N x 2`` of ``(u, v)`` points; surfaces ``{"proximal", "distal"}`` polylines.

    Raises:
        ValueError: a negative ``base_shape`` (convex bases are not modelled).
    """
    if s.base_shape < 0:
        raise ValueError(f"base_shape must be >= 0, got {s.base_shape}")
    uk, wk = long_bone_profile(s)
    cap_h = s.head_cap * s.head
    u_cap0 = s.length - cap_h
    # Proximal end curve from the -v corner to the +v corner (concave: the centre recedes distally).
    t = np.linspace(-1.0, 1.0, 21)
    bv = t * s.base * 0.94
    bu = s.base_shape * s.base * (1.0 - np.abs(t) ** 2.2) + 0.5 * s.base_tilt * t
    bu = bu - bu.min()
    keep = uk < u_cap0 - 1e-6
    side_u = np.concatenate([uk[keep], [u_cap0]])
    side_w = np.concatenate([wk[keep], [np.interp(u_cap0, uk, wk)]])

    def side(u_start: float) -> tuple[np.ndarray, np.ndarray]:
        su = np.linspace(u_start, u_cap0, 40)
        sw = np.interp(su, side_u, side_w)
        # Moving average: the knots are piecewise linear, real diaphyses are smooth.
        sw = np.convolve(np.pad(sw, 2, mode="edge"), np.ones(5) / 5, mode="valid")
        return su, sw

    su_p, sw_p = side(bu[-1])   # +v side
    su_m, sw_m = side(bu[0])    # -v side
    # Distal cap: superellipse from the +v side over the tip to the -v side.
    expo = 2.4 if s.kind == "metacarpal" else (2.0 if s.kind == "distal" else 3.0)
    th = np.linspace(0.0, np.pi, n_cap + 2)[1:-1]
    cx, cy = np.cos(th), np.sin(th)
    wcap = 0.5 * (sw_p[-1] + sw_m[-1])
    cap_v = wcap * np.sign(cx) * np.abs(cx) ** (2.0 / expo)
    cap_u = u_cap0 + cap_h * np.abs(cy) ** (2.0 / expo)
    right = np.stack([su_p, sw_p], axis=1)
    cap = np.stack([cap_u, cap_v], axis=1)
    left = np.stack([su_m[::-1], -sw_m[::-1]], axis=1)
    base = np.stack([bu, bv], axis=1)
    outline = chaikin(np.vstack([right[1:], cap, left[:-1], base[1:-1]]), 2)
    # Articular surfaces (for erosions): the cap plus a margin down each side; the base curve plus its corners.
    margin = 0.3 * s.head
    du = np.linspace(u_cap0 - margin, u_cap0, 6)
    distal = np.vstack([np.stack([du, np.interp(du, su_p, sw_p)], axis=1), cap,
                        np.stack([du[::-1], -np.interp(du[::-1], su_m, sw_m)], axis=1)])
    pm = np.linspace(0.0, 0.25 * s.base, 6)
    proximal = np.vstack([np.stack([bu[-1] + pm[::-1], np.interp(bu[-1] + pm[::-1], su_p, sw_p)], axis=1),
                          base[::-1],
                          np.stack([bu[0] + pm, -np.interp(bu[0] + pm, su_m, sw_m)], axis=1)])
    return outline, {"proximal": proximal, "distal": distal}


def ellipse(center: np.ndarray, rx: float, ry: float, angle_deg: float = 0.0, n: int = 48) -> np.ndarray:
    """Closed ellipse polygon in the hand frame (``angle_deg`` rotates the x radius towards +y)."""
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    a = np.deg2rad(angle_deg)
    x, y = rx * np.cos(t), ry * np.sin(t)
    return np.stack([center[0] + x * np.cos(a) - y * np.sin(a), center[1] + x * np.sin(a) + y * np.cos(a)], axis=1)


# ---------------------------------------------------------------------------------------------------------------------
# Carpal bones, distal radius and ulna (templates in the hand frame, origin at the capitate's centre, right hand)
# ---------------------------------------------------------------------------------------------------------------------

# Control polygons traced to match a PA wrist (RAM-W600 references): smoothed with Chaikin before use. Coordinates in
# mm for an average adult hand; the skeleton scales and jitters them. Articular facing surfaces are encoded by the
# generator as index ranges into the smoothed outline (see CARPAL_SURFACES).
CARPAL_TEMPLATES: dict[str, np.ndarray] = {
    "Capitate": np.array([
        (-6.0, -9.6), (-2.0, -10.6), (3.0, -10.2), (6.4, -8.8), (6.6, -3.0), (6.4, 2.4), (5.6, 6.8), (3.4, 9.8),
        (0.0, 11.0), (-3.4, 9.8), (-5.6, 7.0), (-6.2, 4.0), (-5.6, 0.6), (-6.6, -4.0)]),
    "Hamate": np.array([
        (7.7, -9.6), (13.0, -10.6), (18.0, -8.6), (20.4, -5.2), (19.4, -1.2), (16.2, 2.8), (12.4, 6.6),
        (10.2, 7.8), (8.2, 6.0), (7.6, 0.0)]),
    "Lunate": np.array([
        (-3.8, 14.4), (-2.4, 12.6), (0.0, 12.6), (3.0, 11.9), (5.2, 10.6), (7.4, 11.0), (10.2, 12.8), (11.4, 16.6),
        (9.8, 20.4), (5.0, 22.4), (0.0, 21.9), (-3.2, 20.0), (-4.2, 17.0)]),
    "Scaphoid": np.array([
        (-16.0, 0.4), (-11.6, -1.0), (-7.8, 0.8), (-5.6, 3.8), (-5.0, 7.5), (-3.2, 11.5), (-2.4, 16.0),
        (-3.6, 20.4), (-7.4, 22.4), (-11.6, 20.6), (-14.8, 15.0), (-17.6, 8.4), (-18.2, 3.6)]),
    "Triquetrum": np.array([
        (12.0, 13.0), (13.4, 9.6), (16.6, 6.6), (20.4, 4.8), (23.0, 6.0), (23.6, 10.4), (21.0, 15.0), (16.8, 18.6),
        (13.2, 18.8), (11.8, 16.0)]),
    "Trapezoid": np.array([
        (-13.2, -9.2), (-10.6, -11.0), (-7.4, -10.6), (-4.4, -7.0), (-5.4, -3.4), (-8.4, -2.0), (-11.6, -2.4),
        (-13.4, -5.2)]),
    "Trapezium": np.array([
        (-24.2, -7.4), (-21.6, -11.0), (-17.0, -12.4), (-13.6, -11.0), (-11.8, -7.0), (-12.4, -2.6), (-15.6, -0.8),
        (-20.6, 0.4), (-24.6, -2.6)]),
}

# Pisiform: an ellipse over the triquetrum (centre, radii), drawn as a second part of the Pisiform_Triquetrum class.
PISIFORM = (np.array([17.8, 11.2]), 4.2, 4.8, 20.0)

# Hamate hook: a dense ring inside the hamate (centre, radii, angle) — not a separate mask.
HAMATE_HOOK = (np.array([15.2, -1.8]), 2.6, 3.6, -20.0)

# Distal radius and ulna: outline control points from the radial styloid round the articular surface; the shafts are
# appended by the skeleton (they run off the image).
RADIUS_END = np.array([
    (-25.4, 15.0), (-23.6, 9.6), (-21.6, 11.4), (-19.6, 15.6), (-16.8, 20.6), (-12.6, 24.0), (-8.0, 25.6),
    (-3.4, 24.0), (0.0, 24.8), (5.4, 25.6), (8.6, 25.2), (9.2, 30.0), (9.2, 36.0), (8.2, 44.0), (6.4, 60.0)])
RADIUS_SHAFT_RADIAL = np.array([(-25.6, 22.0), (-23.0, 32.0), (-17.5, 46.0), (-14.4, 64.0)])
ULNA_END = np.array([
    (11.7, 33.0), (12.5, 29.6), (15.5, 27.6), (19.5, 27.6), (21.5, 28.6), (22.7, 26.0), (23.5, 23.6), (24.7, 24.0),
    (25.3, 28.2), (24.7, 33.0), (23.3, 44.0)])
ULNA_SHAFT_RADIAL = np.array([(12.1, 44.0)])


@dataclass
class Part:
    """One rendered piece of a bone class (the triquetrum and the pisiform are two parts of one class).

    Attributes:
        cls: bone class name.
        body: outline polygon (hand frame, mm).
        axis: distal unit direction of the part (the shaft axis of a long bone); orients its texture and the
            cross-sections over which its local radius is measured.
        origin: proximal end centre (long bones) or centre (others); ``u`` below is measured from it along ``axis``.
        knots_u: positions along the axis (mm from ``origin``) where the density profile is given.
        cortex_mm: cortical shell thickness at ``knots_u`` (thick along a diaphysis, thin at the ends).
        trabecular: trabecular density at ``knots_u`` (1 in the ends, low in a marrow cavity).
        aniso: texture anisotropy (streaks along the axis: > 1).
        lips: extra thin polygons of the same part that project over a neighbour (articular rims seen on a PA view).
        surfaces: articular surface polylines by name (``"proximal"``, ``"distal"``, ``"all"``...), each with the
            local half-width of the bone there (mm) in ``surface_width``.
        density: relative mineral density of this part.
        rings: dense elliptical rings drawn inside the part (the hamate hook): ``(polygon, cortex_mm)``.
    """

    cls: str
    body: np.ndarray
    axis: np.ndarray
    origin: np.ndarray
    knots_u: np.ndarray
    cortex_mm: np.ndarray
    trabecular: np.ndarray
    aniso: float = 1.3
    lips: list[np.ndarray] = field(default_factory=list)
    surfaces: dict[str, np.ndarray] = field(default_factory=dict)
    surface_width: dict[str, float] = field(default_factory=dict)
    density: float = 1.0
    rings: list[tuple[np.ndarray, float]] = field(default_factory=list)

    def polygons(self) -> list[np.ndarray]:
        """Body and lips (the union is the part's mask)."""
        return [self.body] + list(self.lips)

    def translate(self, t: np.ndarray) -> None:
        """Move the part (body, lips, surfaces, rings) by ``t`` mm."""
        t = np.asarray(t, dtype=np.float64)
        self.body = self.body + t
        self.lips = [lp + t for lp in self.lips]
        self.origin = self.origin + t
        self.surfaces = {k: v + t for k, v in self.surfaces.items()}
        self.rings = [(p + t, w) for p, w in self.rings]
