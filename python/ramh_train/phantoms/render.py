"""Attenuation-like rendering of a placed hand into a radiograph, with its masks.

Model (all lengths in mm, attenuation as a line integral ``L``, dimensionless):

* soft tissue: the silhouette's thickness envelope (a rounded profile from the distance to the skin line plus a bulk
  term that makes the palm and forearm thicker than the fingers) times ``MU_SOFT``;
* each bone part, rendered in its own window: the chord through a round cross-section of local radius ``R`` (the
  largest distance to the outline across the bone at that level) split into a dense cortical shell (thickness from
  the part's profile: thick along a diaphysis, thin at the ends, which gives the bright rims and subchondral lines) and
  a trabecular core (density from the profile, low in a marrow cavity) modulated by band-limited texture generated at
  low resolution in the bone's own frame and warped in; rims that project over a neighbour ("lips") are drawn as a
  thin cortical line over a faint plate; erosions remove most of the bone's attenuation inside the lesion (lucent
  defects; the outline and the mask are kept);
* overlapping bones add up; metal distractors (ring, intravenous cannula) add a large attenuation and are in no mask;
* acquisition: primary ``exp(-L)`` with a heel-effect gradient, low-frequency scatter, signal-dependent quantum noise
  and electronic noise, detector blur (MTF), log, the centre's unsharp-mask processing, automatic windowing (a smooth
  monotone tone curve through the open field, the median soft tissue, the median bone and the densest bone, at the
  centre's levels), collimator borders (black), quantisation;
* a real department's film (a profile with a ``FilmLook``, the opt-in "real-calibrated" appearance): a domed soft
  tissue and a fainter cortex, then instead of the windowing curve the film's glare and digitiser blur, a tone curve
  fitted to the real films' hand levels (histogram specification), an uneven open field and density-dependent grain.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.interpolate import PchipInterpolator

from . import shapes
from .config import TISSUE_PERCENTS, FilmLook, ScannerProfile
from .disease import Lesion
from .shapes import Part

MU_SOFT = 0.015     # per mm of soft tissue
MU_CORTEX = 0.100   # per mm of cortical bone
MU_TRAB = 0.030     # per mm of trabecular bone (bone volume fraction ~30%)
MU_METAL = 2.2      # per mm of metal (saturates)


@dataclass
class Canvas:
    """Image geometry: size, spacing and the affine map from the hand frame (mm) to image pixels.

    ``px = A @ mm + t`` with pixel coordinates continuous (pixel (col, row) covers [col, col+1) x [row, row+1)).
    """

    height: int
    width: int
    spacing: float
    A: np.ndarray
    t: np.ndarray

    def to_px(self, pts_mm: np.ndarray) -> np.ndarray:
        return np.asarray(pts_mm, dtype=np.float64) @ self.A.T + self.t

    def dir_to_px(self, d_mm: np.ndarray) -> np.ndarray:
        v = self.A @ np.asarray(d_mm, dtype=np.float64)
        return v / np.linalg.norm(v)

    def window(self, polys_px: list[np.ndarray], pad: int = 2) -> tuple[int, int, int, int] | None:
        """Integer window (x0, y0, x1, y1) covering polygons (clipped to the image), or None when outside."""
        pts = np.vstack(polys_px)
        x0 = max(int(np.floor(pts[:, 0].min())) - pad, 0)
        y0 = max(int(np.floor(pts[:, 1].min())) - pad, 0)
        x1 = min(int(np.ceil(pts[:, 0].max())) + pad, self.width)
        y1 = min(int(np.ceil(pts[:, 1].max())) + pad, self.height)
        if x1 <= x0 or y1 <= y0:
            return None
        return x0, y0, x1, y1


@dataclass
class Acquisition:
    """Per-image acquisition parameters drawn from a :class:`ScannerProfile` (see there for their meaning)."""

    profile: str
    photons_per_mm2: float
    blur_mm: float
    unsharp_amount: float
    unsharp_sigma_mm: float
    soft_level: float
    bone_level: float
    background: float
    white: float
    heel: float
    heel_sign: float
    scatter: float
    electronic_noise: float
    trabecular_contrast: float
    exposure: float
    look: dict | None = None  # the film look's draws (:func:`sample_look`); None: the plain display

    def as_dict(self) -> dict:
        out = {k: (float(v) if not isinstance(v, str) else v) for k, v in self.__dict__.items() if k != "look"}
        if self.look is not None:
            out["look"] = {k: (float(v) if np.isscalar(v) else [float(x) for x in v]) for k, v in self.look.items()}
        return out


def sample_acquisition(rng: np.random.Generator, profile: ScannerProfile) -> Acquisition:
    """Draw the acquisition of one image from its centre's profile."""
    def u(r):
        return float(rng.uniform(r[0], r[1]))

    return Acquisition(profile=profile.code, photons_per_mm2=u(profile.photons_per_mm2), blur_mm=u(profile.blur_mm),
                       unsharp_amount=u(profile.unsharp_amount), unsharp_sigma_mm=u(profile.unsharp_sigma_mm),
                       soft_level=u(profile.soft_level), bone_level=u(profile.bone_level),
                       background=u(profile.background),
                       white=u(profile.white), heel=u(profile.heel), heel_sign=float(rng.choice([-1.0, 1.0])),
                       scatter=u(profile.scatter), electronic_noise=u(profile.electronic_noise),
                       trabecular_contrast=u(profile.trabecular_contrast), exposure=float(rng.uniform(0.9, 1.1)))


def sample_look(rng: np.random.Generator, look: FilmLook) -> dict[str, float]:
    """Draw one film's look from ``rng`` (a fixed number of draws): ``mix``, ``background``,
    ``background_variation``, ``glare``, ``glare_mm``, ``digitiser_blur_mm``, ``grain``, ``grain_mm``,
    ``soft_tissue_bulk_mm``, ``fringe``, ``cortex`` (floats, see :class:`FilmLook`; ``background`` is drawn as
    ``lo + (hi - lo) u**3``, u uniform), ``markers`` (1.0 or 0.0) and ``tissue_levels`` (the tone curve's display
    levels at :data:`TISSUE_PERCENTS`, a non-decreasing tuple in [0, 1])."""
    out: dict = {k: float(rng.uniform(*getattr(look, k))) for k in ("mix", "background", "background_variation",
                                                                     "glare", "glare_mm", "digitiser_blur_mm",
                                                                     "grain", "grain_mm", "soft_tissue_bulk_mm",
                                                                     "fringe", "cortex")}
    # Most open fields are near black, some films are grey all over: skewed towards the low end.
    out["background"] = look.background[0] + (look.background[1] - look.background[0]) * out["background"] ** 3
    out["markers"] = float(rng.random() < look.marker_probability)
    lo, hi = np.asarray(look.tissue_low), np.asarray(look.tissue_high)
    levels = np.maximum.accumulate(np.clip(lo + out["mix"] * (hi - lo), 0.0, 1.0))
    out["tissue_levels"] = tuple(float(v) for v in levels)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Texture
# ---------------------------------------------------------------------------------------------------------------------

_TEX_STEP_MM = 0.16  # texture grid spacing (finer than trabecular cells)


def _texture_field(rng: np.random.Generator, nu: int, nv: int, aniso: float, step: float) -> np.ndarray:
    """Band-limited, zero-mean, unit-SD noise on an ``nu x nv`` grid of ``step`` mm (rows along the bone axis),
    streaky for ``aniso > 1`` (trabeculae run along tubular bones): a fine band (plates and rods, ~0.3 mm) over a
    medium one (marrow spaces, ~1 mm)."""
    n = rng.standard_normal((nu + 8, nv + 8), dtype=np.float32)
    s1 = max(0.12 / step, 0.6)
    s2 = max(0.40 / step, 1.2)
    a = max(aniso, 1.0)
    fine = cv2.GaussianBlur(n, (0, 0), sigmaX=s1, sigmaY=s1 * min(a, 2.0))
    mid = cv2.GaussianBlur(n, (0, 0), sigmaX=s2, sigmaY=s2 * a)
    f = fine - mid
    sub = (slice(None, None, 3), slice(None, None, 3))  # statistics on a sparse grid are enough
    out = 0.5 * f / (float(f[sub].std()) + 1e-6) + 1.0 * (mid - float(mid[sub].mean())) / (float(mid[sub].std()) + 1e-6)
    out /= float(out[sub].std()) + 1e-6
    return out[4:-4, 4:-4]


# ---------------------------------------------------------------------------------------------------------------------
# Bones
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class PartRender:
    """Rendering of one part: its window, attenuation, mask, and the erosion masks of its lesions (same window)."""

    window: tuple[int, int, int, int]
    attenuation: np.ndarray
    mask: np.ndarray
    lesion_masks: list[tuple[Lesion, np.ndarray]]


def _pixel_frame(canvas: Canvas, window: tuple[int, int, int, int], origin: np.ndarray, axis: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Affine coefficients mapping window pixel (col, row) centres to the part's (u, v) in mm:
    ``u = cu[0] + cu[1]*col + cu[2]*row`` (same for v)."""
    Ainv = np.linalg.inv(canvas.A)
    x0, y0 = window[0], window[1]
    # mm = Ainv @ (px - t); px = (x0 + col + 0.5, y0 + row + 0.5)
    base = Ainv @ (np.array([x0 + 0.5, y0 + 0.5]) - canvas.t) - origin
    n = shapes.perp(axis)
    cu = np.array([base @ axis, Ainv[:, 0] @ axis, Ainv[:, 1] @ axis])
    cv = np.array([base @ n, Ainv[:, 0] @ n, Ainv[:, 1] @ n])
    return cu, cv


def render_part(canvas: Canvas, part: Part, lesions: list[Lesion], acq: Acquisition, bmd: float,
                tex_rng: np.random.Generator) -> PartRender | None:
    """Render one part (and its lesions) into its own window; None when the part lies outside the image.

    Returns the window's attenuation (float32), the part's mask (body and lips) and, per lesion, its mask clipped to
    the part's body.
    """
    sp = canvas.spacing
    body_px = canvas.to_px(part.body)
    lips_px = [canvas.to_px(p) for p in part.lips]
    win = canvas.window([body_px] + lips_px)
    if win is None:
        return None
    x0, y0, x1, y1 = win
    w, h = x1 - x0, y1 - y0
    body = shapes.fill_polygon(body_px, x0, y0, w, h)
    mask = body.copy()
    for lp in lips_px:
        mask |= shapes.fill_polygon(lp, x0, y0, w, h)
    att = np.zeros((h, w), np.float32)
    if not mask.any():
        return PartRender(win, att, mask, [])
    # Distance to the outline (mm); the DT measures to the nearest outside pixel centre, half a pixel beyond the edge.
    d = cv2.distanceTransform(np.pad(body, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    d = np.maximum(d - 0.5, 0.0) * sp
    cu, cv_ = _pixel_frame(canvas, win, part.origin, part.axis)
    cols = np.arange(w, dtype=np.float32)[None, :]
    rows = np.arange(h, dtype=np.float32)[:, None]
    u = (cu[0] + cu[1] * cols + cu[2] * rows).astype(np.float32)
    # Local radius: the largest distance to the outline across the bone at this level (0.4 mm levels).
    step = 0.4
    umin = float(u.min())
    ub = ((u - umin) / step).astype(np.int32)
    nbin = int(ub.max()) + 1
    rb = np.zeros(nbin, np.float32)
    np.maximum.at(rb, ub[body], d[body])
    rb = np.convolve(np.pad(rb, 1, mode="edge"), np.array([0.25, 0.5, 0.25], np.float32), mode="valid")
    R = np.maximum(rb[ub], d)
    if len(part.knots_u) > 1:
        centres = umin + (np.arange(nbin) + 0.5) * step
        c = np.interp(centres, part.knots_u, part.cortex_mm).astype(np.float32)[ub]
        trab = np.interp(centres, part.knots_u, part.trabecular).astype(np.float32)[ub]
    else:
        c = np.float32(part.cortex_mm[0])
        trab = np.float32(part.trabecular[0])
    dd = np.minimum(d, R)
    t_out = 2.0 * np.sqrt(dd * (2.0 * R - dd))
    di = np.maximum(dd - c, 0.0)
    Ri = np.maximum(R - c, 0.0)
    t_in = 2.0 * np.sqrt(np.maximum(di * (2.0 * Ri - di), 0.0))
    # Texture in the bone's frame, warped into the window.
    corners_v = [cv_[0] + cv_[1] * c_ + cv_[2] * r_ for c_ in (0, w - 1) for r_ in (0, h - 1)]
    vmin, vmax = float(min(corners_v)), float(max(corners_v))
    tstep = max(_TEX_STEP_MM, 0.7 * sp)  # no finer than the pixels need
    nu = int(np.ceil((float(u.max()) - umin) / tstep)) + 2
    nv = int(np.ceil((vmax - vmin) / tstep)) + 2
    field = _texture_field(tex_rng, nu, nv, part.aniso, tstep)
    # dst (col, row) -> src (x = v index, y = u index)
    M = np.array([[cv_[1], cv_[2], cv_[0] - vmin], [cu[1], cu[2], cu[0] - umin]], np.float64) / tstep
    tex = cv2.warpAffine(field, M, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REFLECT)
    tc = 0.30 * acq.trabecular_contrast
    dens = np.float32(part.density * bmd)
    mu_cortex = MU_CORTEX if acq.look is None else np.float32(MU_CORTEX * acq.look["cortex"])
    att = dens * (mu_cortex * (t_out - t_in) + MU_TRAB * trab * t_in * (1.0 + tc * tex))
    att *= body
    # Lips: a thin cortical line along the rim's free edge, faint fill.
    lip_only = mask & ~body
    if lip_only.any():
        du = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
        du = np.maximum(du - 0.5, 0.0) * sp
        rim = MU_CORTEX * (1.2 * np.exp(-(du / 0.3) ** 2) + 0.9)
        att = np.where(lip_only, dens * rim, att)
    # Dense rings inside the part (the hamate hook seen end-on).
    for ring, wmm in part.rings:
        rp = canvas.to_px(ring)
        inside = shapes.fill_polygon(rp, x0, y0, w, h)
        if inside.any():
            dr = cv2.distanceTransform(np.pad(inside, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1] * sp
            band = inside * np.exp(-((dr - 0.5 * wmm) / (0.5 * wmm)) ** 2)
            att += dens * MU_CORTEX * 1.6 * band.astype(np.float32)
    # Erosions: lucent defects inside the outline.
    lesion_masks = []
    for les in lesions:
        lm = _lesion_mask(canvas, les, win) & body
        if not lm.any():
            lesion_masks.append((les, lm))
            continue
        sig = max(0.12 / sp, 0.5)
        soft = cv2.GaussianBlur(lm.astype(np.float32), (0, 0), sig)
        soft = np.maximum(soft, lm * 0.85)
        # Uneven bone loss inside the defect (remnant trabeculae), from the bone's own texture.
        patchy = np.float32(0.8) + np.float32(0.2 / 1.5) * np.clip(tex, -1.5, 1.5)
        att *= 1.0 - np.float32(les.lucency) * soft * patchy
        lesion_masks.append((les, lm))
    return PartRender(win, att.astype(np.float32), mask, lesion_masks)


def _lesion_mask(canvas: Canvas, les: Lesion, win: tuple[int, int, int, int]) -> np.ndarray:
    """Pixels of the window within any lesion disc (pixel centres), before clipping to the bone."""
    x0, y0, x1, y1 = win
    out = np.zeros((y1 - y0, x1 - x0), bool)
    c = canvas.to_px(les.centres)
    r = les.radii / canvas.spacing
    lx0 = max(int(np.floor((c[:, 0] - r).min())), x0)
    ly0 = max(int(np.floor((c[:, 1] - r).min())), y0)
    lx1 = min(int(np.ceil((c[:, 0] + r).max())) + 1, x1)
    ly1 = min(int(np.ceil((c[:, 1] + r).max())) + 1, y1)
    if lx1 <= lx0 or ly1 <= ly0:
        return out
    xs = np.arange(lx0, lx1, dtype=np.float32) + 0.5
    ys = np.arange(ly0, ly1, dtype=np.float32) + 0.5
    sub = np.zeros((ly1 - ly0, lx1 - lx0), bool)
    for k in range(len(c)):
        dx2 = (xs - np.float32(c[k, 0])) ** 2
        dy2 = (ys - np.float32(c[k, 1])) ** 2
        sub |= (dy2[:, None] + dx2[None, :]) <= np.float32(r[k]) ** 2
    out[ly0 - y0:ly1 - y0, lx0 - x0:lx1 - x0] = sub
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Soft tissue, distractors
# ---------------------------------------------------------------------------------------------------------------------


def add_soft_tissue(L: np.ndarray, canvas: Canvas, polys_mm: list[np.ndarray], finger_radius_mm: float
                    ) -> np.ndarray:
    """Add the soft tissue's attenuation to ``L`` and return the silhouette mask (union of ``polys_mm``, H x W bool).

    Thickness: a round profile ``2 sqrt(d (2r - d))`` of the distance ``d`` to the skin line (saturating at ``2r``,
    the thickness of a finger) plus a bulk term, a wide low-pass of the silhouette, that thickens the palm and forearm.
    The profile is smooth, so it is computed at ~0.4 mm and upsampled; the exact mask sets the skin line.
    """
    H, W, sp = canvas.height, canvas.width, canvas.spacing
    mask = np.zeros((H, W), bool)
    for p in polys_mm:
        pp = canvas.to_px(p)
        win = canvas.window([pp], pad=1)
        if win is None:
            continue
        x0, y0, x1, y1 = win
        mask[y0:y1, x0:x1] |= shapes.fill_polygon(pp, x0, y0, x1 - x0, y1 - y0)
    f = max(1, int(round(0.4 / sp)))
    ws, hs = max(W // f, 1), max(H // f, 1)
    px_mm = sp * W / ws
    small = cv2.resize(mask.view(np.uint8), (ws, hs), interpolation=cv2.INTER_AREA).astype(np.float32)
    sm = (small > 0.5).astype(np.uint8)
    d = cv2.distanceTransform(np.pad(sm, 1), cv2.DIST_L2, 5)[1:-1, 1:-1] * px_mm
    r = finger_radius_mm
    dd = np.minimum(d, r)
    thick = 2.0 * np.sqrt(dd * (2.0 * r - dd))
    bulk = cv2.GaussianBlur(small, (0, 0), 14.0 / px_mm)
    thick = (thick + 22.0 * np.clip(bulk - 0.35, 0.0, None) * sm) * MU_SOFT
    # Dilate by one low-res pixel so the upsampled profile does not fade inside the exact skin line.
    thick = np.maximum(thick, cv2.dilate(thick, np.ones((3, 3), np.uint8)) * (1 - sm))
    big = cv2.resize(thick.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
    np.multiply(big, mask, out=big)
    L += big
    return mask


def ring_polygon(centre: np.ndarray, axis: np.ndarray, half_width: float, band: float) -> np.ndarray:
    """A finger ring seen PA: a band across the finger (hand frame, mm)."""
    n = shapes.perp(axis)
    pts = [centre + sx * half_width * n + sy * 0.5 * band * axis for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    return shapes.chaikin(np.array(pts), 2)


def add_polygon(L: np.ndarray, canvas: Canvas, poly_mm: np.ndarray, value: float, blur_mm: float = 0.1,
                rim: float = 0.0) -> None:
    """Add ``value`` (+ ``rim`` along the edge) inside a polygon to the attenuation map, softened by ``blur_mm``."""
    pp = canvas.to_px(poly_mm)
    win = canvas.window([pp], pad=4)
    if win is None:
        return
    x0, y0, x1, y1 = win
    m = shapes.fill_polygon(pp, x0, y0, x1 - x0, y1 - y0).astype(np.float32)
    if not m.any():
        return
    v = m * value
    if rim > 0:
        d = cv2.distanceTransform(np.pad(m.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1] * canvas.spacing
        v += m * rim * np.exp(-(d / 0.4) ** 2)
    s = max(blur_mm / canvas.spacing, 0.3)
    L[y0:y1, x0:x1] += cv2.GaussianBlur(v, (0, 0), s)


# ---------------------------------------------------------------------------------------------------------------------
# Acquisition
# ---------------------------------------------------------------------------------------------------------------------


def _lowpass(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian low-pass of a large image at reduced resolution (fast for large sigmas)."""
    H, W = img.shape
    f = max(1, int(sigma_px / 3.0))
    if f == 1:
        return cv2.GaussianBlur(img, (0, 0), sigma_px)
    small = cv2.resize(img, (max(W // f, 1), max(H // f, 1)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma_px / f)
    return cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)


_NOISE_TILE = 1536
_noise_tile_cache: list[np.ndarray] = []


def _noise_tile() -> np.ndarray:
    """A fixed tile of unit normal noise (float32), made once per process from a constant seed."""
    if not _noise_tile_cache:
        t = np.random.default_rng(0x5EED).standard_normal((_NOISE_TILE, _NOISE_TILE), dtype=np.float32)
        t.setflags(write=False)
        _noise_tile_cache.append(t)
    return _noise_tile_cache[0]


def _noise_field(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Zero-mean unit-SD white noise of ``shape`` (float32): a randomly shifted, flipped and transposed tiling of a
    fixed noise tile. Drawing ~5 million normals per image costs more than the rest of the exposure; a tile repeats
    only every 1536 px (15 cm at 0.1 mm), far beyond any structure a model could key on."""
    H, W = shape
    tile = _noise_tile()
    k = rng.integers(0, 8)
    if k & 1:
        tile = tile[::-1]
    if k & 2:
        tile = tile[:, ::-1]
    if k & 4:
        tile = tile.T
    oy, ox = (int(v) for v in rng.integers(0, _NOISE_TILE, 2))
    out = np.empty((H, W), np.float32)
    # Copy the wrapped tile block by block (contiguous runs), not pixel by pixel.
    y = 0
    while y < H:
        ty = (oy + y) % _NOISE_TILE
        hh = min(H - y, _NOISE_TILE - ty)
        x = 0
        while x < W:
            tx = (ox + x) % _NOISE_TILE
            ww = min(W - x, _NOISE_TILE - tx)
            out[y:y + hh, x:x + ww] = tile[ty:ty + hh, tx:tx + ww]
            x += ww
        y += hh
    return out


def expose(L: np.ndarray, canvas: Canvas, acq: Acquisition, rng: np.random.Generator, noise: bool,
           field_rect: tuple[int, int, int, int] | None, dtype: str, tissue: np.ndarray, bone: np.ndarray
           ) -> np.ndarray:
    """Turn the attenuation map into the final image (bone bright), ``uint8`` or ``uint16``. With ``acq.look`` set
    the display is :func:`_film_display`'s (and the soft tissue is domed first); without, the windowing curve's.

    Args:
        L: H x W attenuation (float32); consumed (overwritten) to save memory.
        field_rect: collimated field (x0, y0, x1, y1) in pixels; outside it the image is black. None: no borders.
        dtype: ``"uint8"`` or ``"uint16"``.
        tissue / bone: H x W bool masks of the silhouette and of the bones, for the automatic windowing (read on a
            sparse grid).
    """
    H, W = L.shape
    sp = canvas.spacing
    if acq.look is not None and acq.look["soft_tissue_bulk_mm"] > 0:
        # Real palms and forearms are domed: thickest along the middle, thinning smoothly towards the skin.
        dome = _lowpass(tissue.astype(np.float32), 12.0 / sp)
        dome *= tissue
        L += dome * np.float32(MU_SOFT * acq.look["soft_tissue_bulk_mm"])
        del dome
    # Heel effect: exposure gradient along the long image axis (y).
    ramp = np.linspace(-0.5, 0.5, H, dtype=np.float32)[:, None]
    I0 = (np.float32(acq.exposure) * (1.0 + np.float32(acq.heel * acq.heel_sign) * ramp)).astype(np.float32)
    # Scatter: a wide low-pass of what the tissue removed from the beam (computed at low resolution).
    f = max(1, int(round(1.0 / sp)))
    Ls = cv2.resize(L, (max(W // f, 1), max(H // f, 1)), interpolation=cv2.INTER_AREA)
    lost = 1.0 - cv2.exp(-Ls)
    lost = cv2.GaussianBlur(lost, (0, 0), 18.0 / (sp * f)) * np.float32(acq.scatter)
    img = cv2.exp(np.negative(L, out=L))
    img += cv2.resize(lost, (W, H), interpolation=cv2.INTER_LINEAR)
    img *= I0
    blur = max(acq.blur_mm / sp, 0.35)
    if noise:
        q = np.float32(1.0 / (acq.photons_per_mm2 * sp * sp))
        n = _noise_field(rng, (H, W))
        n *= cv2.sqrt(np.maximum(img, 1e-6) * q)
        img += n
        img = cv2.GaussianBlur(img, (0, 0), blur)
        n = _noise_field(rng, (H, W))
        n *= np.float32(acq.electronic_noise)
        img += n
        del n
    else:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    img /= I0
    np.maximum(img, 1e-4, out=img)
    Lm = cv2.log(img)
    np.negative(Lm, out=Lm)
    if acq.unsharp_amount > 0:
        # Unsharp mask (the centre's processing): Lm + a (Lm - lowpass(Lm)).
        low = _lowpass(Lm, acq.unsharp_sigma_mm / sp)
        a = np.float32(acq.unsharp_amount)
        Lm *= np.float32(1.0) + a
        low *= a
        Lm -= low
        del low
    if acq.look is not None:
        out = _film_display(Lm, sp, acq.look, rng, tissue, dtype)
        if field_rect is not None:
            _collimate(out, field_rect, sp)
        return out
    # Automatic windowing, as a lookup table over the normalised attenuation t = Lm / (densest bone): a smooth
    # monotone curve through (0, background), (median soft tissue, soft_level), (median bone, bone_level), (1, white).
    k = max(1, int(round(1.0 / sp)))
    grid_l = Lm[::k, ::k]
    tis = tissue[::k, ::k]
    bon = bone[::k, ::k]
    l_hi = 1.04 * float(np.percentile(grid_l[bon], 99.9)) if bon.any() else float(grid_l.max())
    l_hi = max(l_hi, 1e-3)
    soft_px = grid_l[tis & ~bon]
    t_soft = float(np.median(soft_px)) / l_hi if soft_px.size else 0.45
    t_bone = float(np.median(grid_l[bon])) / l_hi if bon.any() else 0.8
    t_soft = float(np.clip(t_soft, 0.05, 0.85))
    t_bone = float(np.clip(t_bone, t_soft + 0.05, 0.95))
    levels = 65535 if dtype == "uint16" else 255
    n_lut = 8192
    curve = PchipInterpolator([0.0, t_soft, t_bone, 1.0], [acq.background, acq.soft_level, acq.bone_level,
                                                               acq.white])
    lut = np.rint(np.clip(curve(np.linspace(0.0, 1.0, n_lut)), 0.0, 1.0) * levels)
    lut = lut.astype(np.uint16 if dtype == "uint16" else np.uint8)
    Lm *= np.float32((n_lut - 1) / l_hi)
    np.clip(Lm, 0.0, n_lut - 1, out=Lm)
    out = lut[Lm.astype(np.int32)]
    if field_rect is not None:
        _collimate(out, field_rect, sp)
    return out


def _film_display(Lm: np.ndarray, sp: float, look: dict, rng: np.random.Generator, tissue: np.ndarray,
                  dtype: str) -> np.ndarray:
    """The display of a real department's film (``acq.look`` set): the film's glare and digitiser blur, a tone curve
    by histogram specification, then an uneven open field and grain, quantised to ``dtype``.

    Glare and blur act on the processed attenuation (film density) so that the tone curve, fitted last, still puts
    the hand's pixels where real films have them; the glare's halo beyond the skin then maps to the grey fringe real
    films show around the hand. The tone curve maps the image's own attenuation percentiles over the hand
    (``tissue``, read on a ~1 mm grid) at :data:`TISSUE_PERCENTS` to ``look["tissue_levels"]``, the open field (zero
    attenuation) to ``look["background"]`` and the hand's 99.7th percentile to white (denser bone saturates, as on
    8-bit films), monotone (PCHIP).

    Args:
        Lm: H x W float32 processed attenuation (overwritten).
        sp: pixel spacing, mm.
        look: the draws of :func:`sample_look`.
        rng: the image's noise stream (drawn after the detector noise).
        tissue: H x W bool silhouette.
        dtype: ``"uint8"`` or ``"uint16"``.

    Returns:
        H x W image of ``dtype``.
    """
    H, W = Lm.shape
    if look["digitiser_blur_mm"] / sp > 0.3:
        cv2.GaussianBlur(Lm, (0, 0), look["digitiser_blur_mm"] / sp, dst=Lm)
    g = np.float32(look["glare"])
    if g > 0:
        low = _lowpass(Lm, look["glare_mm"] / sp)
        Lm *= np.float32(1.0) - g
        low *= g
        Lm += low
        del low
    k = max(1, int(round(1.0 / sp)))
    grid = Lm[::k, ::k]
    vals = grid[tissue[::k, ::k]]
    if vals.size < len(TISSUE_PERCENTS):
        vals = grid.ravel()
    # The real levels describe the hand as a threshold sees it; the dimmest ``fringe`` of the exact silhouette (thin
    # soft tissue at the skin line) lies below that and ramps up from the background (the film's toe).
    f = look["fringe"]
    pct = [50.0 * f] + [100.0 * f + (1.0 - f) * p for p in TISSUE_PERCENTS] + [99.7]
    q = np.percentile(vals, pct)
    l_hi = max(float(q[-1]), 1e-3)
    bg = look["background"]
    t0 = look["tissue_levels"][0]
    xs = np.concatenate([[0.0], np.clip(q, 0.0, None)])
    ys = np.concatenate([[bg, bg + 0.65 * max(t0 - bg, 0.0)], look["tissue_levels"], [1.0]])
    ys = np.maximum.accumulate(np.maximum(ys, look["background"]))
    # Strictly increasing knots (a flat run of percentiles, e.g. a saturated image, would break the interpolant).
    xs = np.maximum.accumulate(xs) + np.arange(len(xs)) * 1e-6 * l_hi
    n_lut = 8192
    lut = np.clip(PchipInterpolator(xs, ys)(np.linspace(0.0, xs[-1], n_lut)), 0.0, 1.0).astype(np.float32)
    Lm *= np.float32((n_lut - 1) / xs[-1])
    np.clip(Lm, 0.0, n_lut - 1, out=Lm)
    d = lut[Lm.astype(np.int32)]
    del Lm
    if look["background_variation"] > 0:
        # Smooth open-field non-uniformity: white noise on a ~60 mm grid, upsampled (bicubic) to the image.
        step = max(1, int(round(60.0 / sp)))
        coarse = rng.standard_normal((H // step + 2, W // step + 2)).astype(np.float32)
        field = cv2.resize(coarse, (W, H), interpolation=cv2.INTER_CUBIC)
        d += field * np.float32(look["background_variation"])
    if look["grain"] > 0:
        n = _noise_field(rng, (H, W))
        s = look["grain_mm"] / sp
        if s > 0.3:
            n = cv2.GaussianBlur(n, (0, 0), s)
            n *= np.float32(2.0 * np.sqrt(np.pi) * s)  # back to unit SD (a Gaussian blur divides it by ~2 sqrt(pi) s)
        # Grain grows with the film's density (bright on the display): the open field, near black, is the calmest.
        n *= np.sqrt(np.clip(d, 0.0, 1.0)) * np.float32(look["grain"] / np.sqrt(0.5))
        d += n
    levels = 65535 if dtype == "uint16" else 255
    np.clip(d, 0.0, 1.0, out=d)
    d *= np.float32(levels)
    return np.rint(d).astype(np.uint16 if dtype == "uint16" else np.uint8)


def _collimate(out: np.ndarray, field_rect: tuple[int, int, int, int], sp: float) -> None:
    """Black outside the collimated field, with a soft (~0.4 mm) edge; only the border bands are touched."""
    H, W = out.shape
    x0, y0, x1, y1 = field_rect
    e = max(int(np.ceil(1.2 / sp)), 2)
    # A 1-D soft edge profile applied to the bands around each border.
    sig = max(0.4 / sp, 0.5)

    def ramp(n_in: int) -> np.ndarray:
        x = np.arange(-e, n_in, dtype=np.float32) + 0.5
        return 0.5 * (1.0 + np.tanh(x / (1.2 * sig)))

    out[:max(y0 - e, 0)] = 0
    out[min(y1 + e, H):] = 0
    out[:, :max(x0 - e, 0)] = 0
    out[:, min(x1 + e, W):] = 0
    for lo, hi, axis, flip in ((y0, H, 0, False), (y1, H, 0, True), (x0, W, 1, False), (x1, W, 1, True)):
        if (not flip and lo == 0) or (flip and lo == hi):
            continue
        r = ramp(e)
        idx = np.arange(lo - e, lo + e)
        if flip:
            idx = np.arange(lo + e - 1, lo - e - 1, -1)
        ok = (idx >= 0) & (idx < hi)
        idx, r = idx[ok], r[ok]
        if axis == 0:
            out[idx] = (out[idx].astype(np.float32) * r[:, None]).astype(out.dtype)
        else:
            out[:, idx] = (out[:, idx].astype(np.float32) * r[None, :]).astype(out.dtype)
