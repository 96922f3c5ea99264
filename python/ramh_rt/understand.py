"""Input understanding: what a film holds before the per-hand pipeline scores it.

Real films are not all upright single whole PA hands. Before scoring, this module finds

* the hands in the film (one or two) and each hand's box, from a low-resolution silhouette (:func:`survey`);
* each hand's orientation: the direction its fingers point, from the silhouette (rows or columns crossed by the
  fingers hold several separate runs of soft tissue; the palm and forearm hold one), or, where the silhouette cannot
  tell (a wrist crop fills the film, fingers held together), from the bone model run on the four turns of the hand
  (the pipeline does that and asks :func:`assess_bones` which turn gives a hand);
* the field of view and the plausibility of the bones the model found on the upright hand (:func:`assess_bones`):
  a "phalanx" that is a sliver next to the metacarpals, or that does not lie distal to its proximal neighbour, is no
  bone and is not reported;
* whether the film is a hand at all (:class:`~ramh_rt.errors.NotAHandError` otherwise).

Where the bundle has a view classifier (:mod:`ramh_rt.view`: a small network on a low-resolution view of each hand's
box), its probabilities are a second, independent opinion, fused with the geometric evidence above
(:func:`fuse_field_of_view`, :func:`fuse_is_hand`, :func:`fuse_side`; the rotation, :func:`with_view`): the bone model
was trained on whole upright hands and its bones alone fail on crops and on other body parts. Without one, the
geometric evidence decides alone.

The pipeline analyses each hand in a normalised frame — the hand's box cut from the film and turned by a multiple of
90 degrees so that the fingers point up (:class:`HandFrame`; exact on the pixel grid, no resampling) — and maps every
result back to the pixel frame of the film the caller passed (:func:`map_analysis`).

Mirroring (a film flipped left-right) cannot be seen in one hand: a mirrored left hand is a right hand to the eye.
It is only decidable against a trusted side (a DICOM laterality, an explicit ``side=``): :func:`side_reasons`.

Reasons are ``(code, message, severity)`` triples with severity ``"info"``, ``"review"`` or ``"reject"``; the codes
used here are codes of :data:`ramh_rt.qc.REASON_CODES` (field_of_view, orientation_applied, mirrored, view,
side_conflict, implausible_anatomy, not_a_hand).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Sequence

import numpy as np

from . import anatomy, ops
from .errors import NotAHandError
from .geometry import Roi, Transform, wrap_angle

if TYPE_CHECKING:
    from .view import ViewModel, ViewPrediction

FIELDS_OF_VIEW = anatomy.FIELDS_OF_VIEW

Reason = tuple[str, str, str]

_THUMB_LONG_SIDE = 256       # silhouette resolution (long side, pixels)
_MIN_HAND_FRACTION = 0.04    # a hand covers at least this share of the thumbnail
_SECOND_HAND_RATIO = 0.35    # a second component this large relative to the first is a second hand
_MIN_EDGE_ENERGY = 0.01    # mean |Laplacian| inside a hand's silhouette (measured on the real and phantom films: 0.03-0.1)
_UNIFORM_STD = 0.035         # a component this flat (std of the windowed grey levels) is padding or a plate
_FRAME_TOLERANCE = 0.03     # grey levels (windowed 0..1) of a bright collimator border around its median (its noise:
                             # 1 % of full scale; bone next to it differs by more)
_FINGERS_ONLY_SCORE = 0.65  # fingers_score above which a silhouette is digits only (whole hands: 0.15-0.55)
_CARPALS = tuple(b.name for b in anatomy.BONE_CLASSES if b.group == "carpal")
_FOREARM = tuple(b.name for b in anatomy.BONE_CLASSES if b.group == "forearm")
# Fusion with the view classifier (chosen on held-out phantom views, checked on the real reference films):
_VIEW_ROTATION_SURE = 0.9    # a view rotation this probable decides the turn of a hand whose silhouette is unsure
_GEOMETRY_FOV_SHARE = 0.6    # the geometric field of view's share of a prior spread over the four fields of view
_VIEW_NOT_HAND = 0.5         # p(not a hand) at or above which the view rejects a film whatever its bones (real
                             # films of shared/reference: 0.18 at most; phantom hands of unseen seeds: < 0.3 but one)
_VIEW_NOT_HAND_DIGITS = 0.95  # ... where the silhouette clearly shows separate digits
_VIEW_ROTATION_OVERRULES = 0.99  # a crop's view rotation this probable overrules a silhouette that was sure
_VIEW_HAND = 0.1             # p(not a hand) under which a film is a hand whatever its bone layout ...
_VIEW_HAND_MIN_LAYOUT = 18.0  # ... given this layout score of its bones (measured: a plain band, a shaft, 10-17;
                              # phantom wrist crops 19-35)
_VIEW_SIDE_SURE = 0.9        # an apparent side this probable decides the side of a crop
_FINGERS_MIN_SCORE = 0.3     # fingers_score a film of the fingers shows at least (finger crops of unseen phantom
                             # seeds: 0.59-0.79; wrist crops 0.00-0.03; a long bone's shaft 0.0)


# ---- frames -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HandFrame:
    """Where one hand lies in the film and how it is turned: the map between the film and the normalised hand.

    The normalised hand is ``np.rot90(film[y0:y1, x0:x1], k)`` with ``k = rotation_deg // 90``: ``np.rot90`` turns
    the picture counter-clockwise as seen on screen, so a hand whose fingers point right (turned 90 degrees clockwise
    from upright) comes upright after one turn. Points, boxes, masks, angles and oriented boxes map back exactly
    (:meth:`to_film_points` ..., points through its :attr:`transform`); coordinates are continuous pixel coordinates
    (pixel ``(col, row)`` covers ``[col, col+1) x [row, row+1)``), angles counter-clockwise as seen on screen, in
    degrees.

    Attributes:
        box: ``(x0, y0, x1, y1)`` of the hand in the film, pixels, exclusive at the far end.
        rotation_deg: 0, 90, 180 or 270: how far the hand is turned clockwise from fingers-up in the film (fingers
            right = 90, down = 180, left = 270).
        film_shape: ``(H, W)`` of the film.
    """

    box: tuple[int, int, int, int]
    rotation_deg: int
    film_shape: tuple[int, int]

    def __post_init__(self):
        if self.rotation_deg not in (0, 90, 180, 270):
            raise ValueError(f"rotation_deg must be 0, 90, 180 or 270, got {self.rotation_deg!r}")
        x0, y0, x1, y1 = self.box
        h, w = self.film_shape
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise ValueError(f"hand box {self.box} is not inside a film of shape {self.film_shape}")

    @property
    def k(self) -> int:
        """Counter-clockwise quarter turns (``np.rot90``) from the film's crop to the normalised hand."""
        return self.rotation_deg // 90

    @property
    def identity(self) -> bool:
        """True when the normalised hand is the film itself (whole film, upright)."""
        return self.k == 0 and self.box == (0, 0, self.film_shape[1], self.film_shape[0])

    @property
    def crop_shape(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.box
        return y1 - y0, x1 - x0

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the normalised hand."""
        h, w = self.crop_shape
        return (w, h) if self.k % 2 else (h, w)

    def normalise(self, film: np.ndarray) -> np.ndarray:
        """The normalised hand (C-contiguous; the film itself, not a copy, when :attr:`identity`).

        Args:
            film: ``H x W`` array of :attr:`film_shape`.
        """
        if self.identity:
            return film
        x0, y0, x1, y1 = self.box
        return np.ascontiguousarray(np.rot90(film[y0:y1, x0:x1], self.k))

    @property
    def transform(self) -> Transform:
        """The map from film points to points of the normalised hand (:class:`ramh_rt.geometry.Transform`: the
        crop's shift, then ``k`` quarter turns; ``.inverse()`` maps back to the film)."""
        x0, y0, _, _ = self.box
        return Transform.shift(-x0, -y0).then(Transform.quarter_turn(self.crop_shape, self.k))

    def to_film_points(self, xy) -> np.ndarray:
        """``N x 2`` points (x, y) of the normalised hand -> film coordinates (float64).

        Raises:
            ValueError: when ``xy`` is not points (x, y).
        """
        return self.transform.inverse().apply(xy).reshape(-1, 2)

    def to_film_box(self, box) -> tuple[float, float, float, float]:
        """An axis-aligned box ``(x0, y0, x1, y1)`` of the normalised hand -> film (exact: corners map to corners)."""
        return self.transform.inverse().apply_bounds(box)

    def to_film_angle(self, deg: float) -> float:
        """An angle (counter-clockwise on screen) in the normalised hand -> film, in (-180, 180]."""
        return wrap_angle(self.transform.inverse().apply_angle(deg))

    def to_film_axis(self, deg: float) -> float:
        """An undirected axis angle in (-90, 90] (a bone's principal axis) -> film, in (-90, 90]."""
        return wrap_angle(self.transform.inverse().apply_angle(deg), 180.0)

    def to_film_mask(self, mask: np.ndarray) -> np.ndarray:
        """A mask (or any array) over a box of the normalised hand, turned back to the film's orientation."""
        return np.ascontiguousarray(np.rot90(mask, -self.k)) if self.k else mask

    def to_film_roi(self, roi) -> tuple[float, float, float, float, float]:
        """An oriented box ``(cx, cy, w, h, angle_deg)`` of the normalised hand -> film (same w, h; turned angle, in
        (-180, 180])."""
        r = self.transform.inverse().apply_roi(Roi(*(float(v) for v in roi)))
        return (r.cx, r.cy, r.w, r.h, wrap_angle(r.angle))


# ---- silhouette survey ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HandRegion:
    """One hand found by :func:`survey`.

    Attributes:
        box: ``(x0, y0, x1, y1)`` in film pixels (exclusive at the far end) of the part of the film analysed for
            this hand: the whole film when it holds one hand, the hand's box when it holds two.
        rotation_deg: 0/90/180/270 (see :class:`HandFrame`), the silhouette's best guess.
        confident: True when the silhouette showed the fingers clearly (several separate digits across the lines
            perpendicular to them); False when the pipeline must decide the turn from the bones.
        fingers_score: share of the hand's extent along the finger axis crossed by >= 3 separate runs (0..1).
        touches: the film's sides (``"top"``, ``"right"``, ``"bottom"``, ``"left"``) the hand's silhouette runs
            into (over at least 5 % of that side): the forearm leaves through one; a crop that fills the film
            touches three or four.
        cropped: the silhouette fills the film or its digits are cut short at the film's edge (a wrist crop): no
            whole finger can be in view.
        hand_box: ``(x0, y0, x1, y1)``: the hand's silhouette with a margin of 3 % of the film, in film pixels.
        view: the view classifier's prediction for ``hand_box`` (None without a classifier).
        rotation_source: what decided ``rotation_deg``: ``"silhouette"``, or ``"view"`` (the silhouette was unsure
            and the view classifier sure, or, on a crop, the classifier sure enough to overrule it: :func:`with_view`).
    """

    box: tuple[int, int, int, int]
    rotation_deg: int
    confident: bool
    fingers_score: float
    touches: frozenset = frozenset()
    cropped: bool = False
    hand_box: tuple[int, int, int, int] | None = None
    view: "ViewPrediction | None" = None
    rotation_source: str = "silhouette"

    @property
    def turn_known(self) -> bool:
        """True when the turn needs no search over the bone model's layouts: the silhouette showed the fingers, or
        the view classifier was sure of the rotation."""
        return self.confident or self.rotation_source == "view"

    @property
    def distal_side(self) -> str:
        """The film side the fingers point to."""
        return {0: "top", 90: "right", 180: "bottom", 270: "left"}[self.rotation_deg]


@dataclass(frozen=True)
class Survey:
    """What the silhouette of a film shows: its hands, left to right (top to bottom when stacked)."""

    hands: tuple[HandRegion, ...]
    film_shape: tuple[int, int]
    thumb_scale: float
    notes: tuple[str, ...] = ()


def _thumbnail(pix: np.ndarray) -> tuple[np.ndarray, float]:
    """The film windowed to its 1-99 % grey levels and shrunk (antialiased) to a long side of 256 pixels.

    Returns the ``h x w`` float32 thumbnail in 0..1 and its scale (thumbnail pixels per film pixel).
    """
    h, w = pix.shape
    s = min(1.0, _THUMB_LONG_SIDE / max(h, w))
    th, tw = max(1, round(h * s)), max(1, round(w * s))
    x, tf = ops.preprocess(pix, (th, tw), percentiles=(1.0, 99.0), mean=0.0, std=1.0, antialias=True)
    rh, rw = tf.resized_hw
    t = np.asarray(x)[0, 0, tf.pad_y:tf.pad_y + rh, tf.pad_x:tf.pad_x + rw]
    return t, 0.5 * (tf.scale_x + tf.scale_y)


def _otsu(v: np.ndarray) -> float:
    hist, edges = np.histogram(v, 64, (0.0, 1.0))
    p = hist / max(1, hist.sum())
    c = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(p)
    m = np.cumsum(p * c)
    between = (m[-1] * w0 - m) ** 2 / np.maximum(w0 * (1.0 - w0), 1e-12)
    return float(c[int(np.argmax(between))])


def _bright_frame(t: np.ndarray, b: int) -> np.ndarray | None:
    """The bright, uniform border of unexposed film around a collimator's field, or None.

    A film whose outer ``b``-pixel ring is mostly (>= 50 %) at one grey level above the Otsu threshold, within
    ``_FRAME_TOLERANCE``, has such a border: it is every pixel at that level connected to the film's edge
    (4-connected). Dark borders need nothing: they are background already.

    Args:
        t: the ``h x w`` float32 thumbnail in 0..1 (:func:`_thumbnail`).
        b: the width of the ring, thumbnail pixels.

    Returns:
        ``h x w`` bool mask of the border, or None (no bright border, or one under 2 % of the film).
    """
    ring = np.concatenate([t[:b].ravel(), t[-b:].ravel(), t[:, :b].ravel(), t[:, -b:].ravel()])
    level = float(np.median(ring))
    if level <= _otsu(t) or float((np.abs(ring - level) < _FRAME_TOLERANCE).mean()) < 0.5:
        return None
    off = np.where(np.abs(t - level) < _FRAME_TOLERANCE, -1.0, 1.0).astype(np.float32)
    # The pixels off the level with the holes they enclose filled: whatever is left at the level touches the edge.
    inner, _ = ops.postprocess_masks(off[None], threshold=0.0, keep="all", fill_holes=True)
    frame = ~(np.asarray(inner[0]) > 0)
    return frame if frame.mean() >= 0.02 else None


def _erode(m: np.ndarray) -> np.ndarray:
    out = m.copy()
    out[1:] &= m[:-1]
    out[:-1] &= m[1:]
    out[:, 1:] &= m[:, :-1]
    out[:, :-1] &= m[:, 1:]
    return out


def _components(mask: np.ndarray, min_area: int, at_most: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """The largest 8-connected components of ``mask`` (holes filled), largest first: (component mask, stats row)."""
    rest = mask.astype(np.float32) * 2.0 - 1.0
    out = []
    for _ in range(at_most):
        m, inst = ops.postprocess_masks(rest[None], threshold=0.0, keep="largest", min_area=min_area,
                                        fill_holes=True)
        if len(inst) == 0:
            break
        comp = np.asarray(m[0]) > 0
        out.append((comp, inst[0]))
        rest[comp] = -1.0
    return out


def _runs(m: np.ndarray, axis: int) -> np.ndarray:
    """Per line (row for axis=1, column for axis=0), the number of separate runs of foreground at least 2 px long."""
    a = m if axis == 1 else m.T
    a = a & (np.roll(a, 1, axis=1) | np.roll(a, -1, axis=1))  # drop 1-px specks
    starts = a[:, 1:] & ~a[:, :-1]
    return starts.sum(axis=1) + a[:, 0]


def _finger_direction(comp: np.ndarray, grey: np.ndarray | None = None, bg: float = 0.0,
                      fg: float = 1.0) -> tuple[int, bool, float, bool]:
    """(rotation_deg, confident, fingers_score, cut) of one hand's silhouette (its component mask, cropped to its box).

    The finger axis is the silhouette's long axis when it is clearly elongated (fingers, palm and forearm in a
    line), else the axis whose perpendicular lines cross more separate runs. Along it, the fingers lie on the side
    of the mass centre where the lines crossing three or more separate runs (digits) are. Digits are separated by
    air: where ``grey`` (the thumbnail over the same box) is given, the gaps between the runs must be nearer the
    background level ``bg`` than the foreground level ``fg`` (between metacarpal bases on a wrist crop, and between
    bones in general, lies soft tissue, not air).
    """
    h, w = comp.shape
    rows, cols = _runs(comp, 1), _runs(comp, 0)
    score_r = float((rows >= 3).mean()) if h else 0.0
    score_c = float((cols >= 3).mean()) if w else 0.0
    elongated = max(h, w) >= 1.25 * min(h, w)
    vertical = (h > w) if elongated else score_r >= score_c
    lines = (rows if vertical else cols) >= 3
    n = h if vertical else w
    score = float(lines.mean()) if n else 0.0
    if lines.sum() < 3:
        return 0, False, score, False
    mass = comp.sum(axis=1 if vertical else 0).astype(np.float64)
    centre = float((mass * np.arange(n)).sum() / max(mass.sum(), 1.0))
    fingers_at = float(np.flatnonzero(lines).mean())
    toward_start = fingers_at < centre  # toward row 0 (up) or column 0 (left)
    rot = (0 if toward_start else 180) if vertical else (270 if toward_start else 90)
    ratio = max(score_r, score_c) / max(min(score_r, score_c), 1e-3)
    offset = abs(fingers_at - centre) / max(n, 1)
    confident = score >= 0.05 and offset >= 0.08 and (elongated or ratio >= 1.6)
    # Fingertips end inside the silhouette: its distal-most lines cross one digit (the longest), not several. Digits
    # already several at the distal edge are cut there (a wrist crop's metacarpals, a hand cut through the fingers).
    prof = rows if vertical else cols
    end = prof[:max(2, n // 30)] if toward_start else prof[-max(2, n // 30):]
    cut = int(end.max()) >= 3
    if cut and score < 0.3:
        confident = False  # short runs of cut digits: metacarpal bases of a wrist crop, not fingers
    if confident and grey is not None:
        sel = np.flatnonzero(lines)
        m = comp[sel] if vertical else comp[:, sel].T
        g = grey[sel] if vertical else grey[:, sel].T
        inside = np.maximum.accumulate(m, axis=1) & np.maximum.accumulate(m[:, ::-1], axis=1)[:, ::-1]
        gaps = g[inside & ~m]
        if gaps.size and float(np.median(gaps)) - bg > 0.5 * (fg - bg):
            confident = False
    return rot, confident, score, cut


def survey(pix: np.ndarray, view: "ViewModel | None" = None) -> Survey:
    """Find the hands of a film from its silhouette (cheap: a 256-pixel thumbnail).

    Args:
        pix: ``H x W`` film (uint8, uint16 or float32), bone bright.
        view: the bundle's view classifier (:class:`ramh_rt.view.ViewModel`), run on every hand's box
            (:func:`with_view`); None: the silhouette alone.

    Returns:
        :class:`Survey` with one or two :class:`HandRegion`, in film order (left to right, or top to bottom when the
        hands are stacked).

    Raises:
        NotAHandError: a blank film, noise, or nothing large enough to be a hand.
    """
    t, s = _thumbnail(pix)
    th, tw = t.shape
    H, W = pix.shape
    notes: list[str] = []
    if t.size < 64 or float(t.std()) < 0.04:
        raise NotAHandError("the image is blank or uniform: no hand (nor any other structure) in it")
    # Noise: neighbouring thumbnail pixels of a radiograph are strongly correlated, those of noise are not.
    d = t - t.mean()
    corr = float((d[:, 1:] * d[:, :-1]).mean() / max(float((d * d).mean()), 1e-12))
    if corr < 0.5:
        raise NotAHandError(f"the image looks like noise (neighbour correlation {corr:.2f}): no hand in it")
    fg = t > _otsu(t)
    fg = _erode(fg)  # cut thin bright lines (plate edges, separators) that join separate parts
    b = max(1, round(0.012 * max(th, tw)))
    fg[:b] = fg[-b:] = False  # bright film edges would join the hand to a frame around it
    fg[:, :b] = fg[:, -b:] = False
    frame = _bright_frame(t, b)
    if frame is not None:
        # Unexposed film outside the collimator's field: as bright as bone, and joined to the forearm where the field
        # edge cuts it. It is no part of the hand, and the hand's background is the field's, not the frame's.
        fg &= ~frame
        fg[1:-1, 1:-1] &= ~(frame[:-2, 1:-1] | frame[2:, 1:-1] | frame[1:-1, :-2] | frame[1:-1, 2:])
        notes.append("bright collimator borders (unexposed film around the field) were ignored")
    comps = _components(fg, max(4, int(0.005 * th * tw)))
    # Edge energy (|Laplacian| of the thumbnail): bones and their cortices give a radiograph of a hand edges
    # everywhere inside its silhouette; a smooth gradient or a flat exposure has none.
    lap = np.abs(4.0 * t[1:-1, 1:-1] - t[:-2, 1:-1] - t[2:, 1:-1] - t[1:-1, :-2] - t[1:-1, 2:])
    hands = []
    bgs: dict[int, float] = {}  # background level of a hand found on a plate, by id of its component mask
    for comp, st in comps:
        vals = t[comp]
        x0, y0, x1, y1 = (int(v) for v in st["bbox"])
        fill = st["area"] / max(1, (x1 - x0) * (y1 - y0))
        if st["area"] < _MIN_HAND_FRACTION * th * tw:
            continue
        if float(vals.std()) < _UNIFORM_STD:
            notes.append("a uniform bright region (padding or plate) was ignored")
            continue
        if float(lap[comp[1:-1, 1:-1]].mean()) < _MIN_EDGE_ENERGY:
            notes.append("a smooth region without edges (no bone in it) was ignored")
            continue
        if fill > 0.8 and (x1 - x0) * (y1 - y0) > 0.3 * th * tw and (x0, y0, x1, y1) != (0, 0, tw, th):
            # A bright plate holding the hand: look for the hand inside it.
            inner = comp & (t > _otsu(vals))
            sub = _components(_erode(inner), max(4, int(0.005 * th * tw)), at_most=1)
            if sub:
                bgs[id(sub[0][0])] = float(np.median(t[comp & ~sub[0][0]]))  # the plate is this hand's background
                comp, st = sub[0]
                notes.append("a plate or cassette frame was found around the hand")
        hands.append((comp, st))
    if not hands:
        raise NotAHandError("nothing in the image is large and structured enough to be a hand")
    big = hands[0][1]["area"]
    hands = [h for h in hands if h[1]["area"] >= _SECOND_HAND_RATIO * big][:2]
    if len(hands) == 2:
        # Two hands: their boxes are split at the middle of the gap between them.
        boxes = [tuple(int(v) for v in st["bbox"]) for _, st in hands]
        (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = boxes
        gap_x = max(bx0 - ax1, ax0 - bx1)
        gap_y = max(by0 - ay1, ay0 - by1)
        horizontal = gap_x >= gap_y
        hands.sort(key=lambda hs: hs[1]["centroid"][0 if horizontal else 1])
    bg = ~fg if frame is None else ~fg & ~frame
    bg_level = float(np.median(t[bg])) if bg.any() else 0.0
    regions = []
    margin = max(2, round(0.03 * max(th, tw)))
    for i, (comp, st) in enumerate(hands):
        x0, y0, x1, y1 = (int(v) for v in st["bbox"])
        rot, confident, score, cut = _finger_direction(comp[y0:y1, x0:x1], t[y0:y1, x0:x1],
                                                       bgs.get(id(comp), bg_level), float(np.median(t[comp])))
        band = b + 1  # the cleared border band plus one pixel
        touches = frozenset(name for name, line, length in (
            ("top", comp[band], tw), ("bottom", comp[th - 1 - band], tw),
            ("left", comp[:, band], th), ("right", comp[:, tw - 1 - band], th)) if line.sum() >= 0.05 * length)
        # A silhouette that fills the film (a wrist or finger crop) shows no fingers, whatever its runs.
        confident = confident and len(touches) <= 2
        bx0, by0, bx1, by1 = max(0, x0 - margin), max(0, y0 - margin), min(tw, x1 + margin), min(th, y1 + margin)
        if len(hands) == 2:
            other = hands[1 - i][1]["bbox"]
            if horizontal:
                mid = 0.5 * ((x1 + int(other[0])) if i == 0 else (int(other[2]) + x0))
                bx0, bx1 = (bx0, min(bx1, mid)) if i == 0 else (max(bx0, mid), bx1)
            else:
                mid = 0.5 * ((y1 + int(other[1])) if i == 0 else (int(other[3]) + y0))
                by0, by1 = (by0, min(by1, mid)) if i == 0 else (max(by0, mid), by1)
        hand_box = (max(0, int(np.floor(bx0 / s))), max(0, int(np.floor(by0 / s))),
                    min(W, int(np.ceil(bx1 / s))), min(H, int(np.ceil(by1 / s))))
        # One hand: analyse the whole film (the model saw whole films in training); two: each hand's box.
        box = (0, 0, W, H) if len(hands) == 1 else hand_box
        if hand_box[2] - hand_box[0] < 16 or hand_box[3] - hand_box[1] < 16:
            continue  # a sliver between two hands, too small to analyse
        regions.append(HandRegion(box=box, rotation_deg=rot, confident=confident, fingers_score=score,
                                  touches=touches, cropped=len(touches) >= 3 or (cut and not confident),
                                  hand_box=hand_box))
    if not regions:
        raise NotAHandError("nothing in the image is large and structured enough to be a hand")
    if view is not None:
        regions = [with_view(r, view.predict(pix, r.hand_box or r.box)) for r in regions]
        # A box the classifier is sure shows no hand is dropped here, before any bone model runs on it.
        kept = [r for r in regions if fuse_is_hand(True, r.view, digits=r.confident)]
        if not kept:
            raise NotAHandError("the view classifier finds no hand in the image (p(not a hand) " +
                                ", ".join(f"{r.view.p_not_hand:.2f}" for r in regions) + ")")
        if len(kept) < len(regions):
            notes.append(f"{len(regions) - len(kept)} region(s) the view classifier is sure are not a hand were "
                         "ignored")
        regions = kept
    return Survey(hands=tuple(regions), film_shape=(H, W), thumb_scale=s, notes=tuple(notes))


def with_view(region: HandRegion, pred: "ViewPrediction") -> HandRegion:
    """The region with the view classifier's prediction attached; where the silhouette was unsure of the turn and
    the classifier is sure (p >= 0.9) of a hand's rotation, the classifier's rotation is taken
    (``rotation_source="view"``). A silhouette that was sure is overruled only on a crop (the classifier's p(hand)
    under 0.5: the runs of a wrist's metacarpal bases can pass for digits) by a rotation of p >= 0.99; it is then no
    longer ``confident``. A region whose view says "not a hand" keeps the silhouette's turn."""
    p_rot = pred.rotation_probs[pred.rotation_deg]
    if pred.p_not_hand < 0.5 and pred.rotation_deg != region.rotation_deg and (
            (not region.confident and p_rot >= _VIEW_ROTATION_SURE) or
            (pred.probs["hand"] < 0.5 and p_rot >= _VIEW_ROTATION_OVERRULES)):
        return replace(region, view=pred, rotation_deg=pred.rotation_deg, rotation_source="view", confident=False)
    if not region.confident and pred.p_not_hand < 0.5 and p_rot >= _VIEW_ROTATION_SURE:
        return replace(region, view=pred, rotation_source="view")
    return replace(region, view=pred)


def fuse_field_of_view(geometric: str, pred: "ViewPrediction | None") -> str:
    """The field of view from the geometric decision and the view classifier's probabilities.

    The geometric decision is a prior: 60 % on its field of view, the rest spread over the other three; the
    classifier's probabilities (renormalised over the four hand classes) multiply it. So the classifier overrides
    the geometry only when it gives another field of view 4.5 times the probability of the geometric one.

    Args:
        geometric: one of :data:`FIELDS_OF_VIEW`.
        pred: the classifier's prediction, or None (then ``geometric`` is returned).
    """
    if pred is None:
        return geometric
    other = (1.0 - _GEOMETRY_FOV_SHARE) / (len(FIELDS_OF_VIEW) - 1)
    return max(FIELDS_OF_VIEW, key=lambda c: pred.probs[c] * (_GEOMETRY_FOV_SHARE if c == geometric else other))


def fuse_is_hand(geometric: bool, pred: "ViewPrediction | None", digits: bool = False,
                 layout: float = 0.0, turn_sure: bool = False, fingers_score: float = 1.0) -> bool:
    """Whether a hand is in view, from the geometric decision and the view classifier.

    The classifier rejects at p(not a hand) >= 0.5 (>= 0.95 where the silhouette clearly shows separate digits).
    It accepts a film whose bone layout failed (a crop far from the whole hands the bone model knows) at
    p(not a hand) < 0.1, but only where the bones' layout score (:class:`BoneAssessment` ``score``) is at least 18:
    on an image unlike anything it was trained on (a plain band) it can be sure and wrong — but not also sure of the
    hand's rotation: where the classifier decided the turn the bones are analysed under (``turn_sure``), the layout
    is not required. A film the classifier takes for fingers must also show them: a silhouette without separate
    digits (``fingers_score`` under 0.3) is not accepted on its word (a long bone's shaft beside a hand was).
    Otherwise the geometry decides. None: the geometry alone.

    Args:
        geometric: the decision from the silhouette and the bone layout.
        pred: the classifier's prediction, or None.
        digits: the silhouette clearly shows separate digits.
        layout: the layout score of the bones (plausible bones plus order terms, :func:`assess_bones`).
        turn_sure: the bones were found under the turn the classifier was sure of (``rotation_source="view"``).
        fingers_score: how much of the silhouette's length separate digits cross (``HandRegion.fingers_score``,
            0..1).
    """
    if pred is None:
        return geometric
    if pred.p_not_hand >= (_VIEW_NOT_HAND_DIGITS if digits else _VIEW_NOT_HAND):
        return False
    if geometric:
        return True
    hand_class = max(FIELDS_OF_VIEW, key=lambda c: pred.probs[c])
    if hand_class == "fingers" and fingers_score < _FINGERS_MIN_SCORE:
        return False
    return pred.p_not_hand < _VIEW_HAND and (turn_sure or layout >= _VIEW_HAND_MIN_LAYOUT)


def fuse_side(anatomical: str | None, field_of_view: str, pred: "ViewPrediction | None") -> str | None:
    """The side the upright hand shows, from its bones and the view classifier's apparent side.

    On a whole hand the bones decide (thumb, trapezium/hamate, radius/ulna: reliable there); the classifier only
    where they give no side. On a crop the bone model's layout is unreliable: the classifier's apparent side is
    taken over the bones' when it is sure (p >= 0.9; the apparent side does not change with a turn, only with a
    mirror), else the bones' side stands, except on a film of the fingers, where the thumb, carpus and forearm it is
    read from are out of view (None then). Without a classifier the bones' side is returned unchanged.

    Args:
        anatomical: ``"L"``, ``"R"`` or None, the side the bones show.
        field_of_view: one of :data:`FIELDS_OF_VIEW`.
        pred: the classifier's prediction, or None.

    Returns:
        ``"L"``, ``"R"`` or None (no side can be told).
    """
    if pred is None or (field_of_view == "hand" and anatomical is not None):
        return anatomical  # without a classifier: today's rule, the bones' side
    best = max(pred.chirality_probs, key=pred.chirality_probs.get)
    if pred.chirality_probs[best] >= _VIEW_SIDE_SURE:
        return best
    return None if field_of_view == "fingers" else anatomical


# ---- bones: plausibility and field of view ---------------------------------------------------------------------

@dataclass
class BoneAssessment:
    """What the bones found on an upright hand say (see :func:`assess_bones`).

    Attributes:
        keep: names of the bone classes that are plausible (records of other classes are to be dropped).
        dropped: ``{name: why}`` of the implausible ones.
        field_of_view: one of :data:`FIELDS_OF_VIEW`.
        score: how much the layout looks like an upright hand (higher is better; used to pick a turn).
        is_hand: False when the bones do not make a hand in any recognisable part.
        side: ``"L"``/``"R"`` from the anatomy of the upright hand (thumb side), or None.
        reasons: reasons (code, message, severity) about the anatomy and the field of view.
    """

    keep: set[str]
    dropped: dict[str, str]
    field_of_view: str
    score: float
    is_hand: bool
    side: str | None
    reasons: list[Reason] = field(default_factory=list)


def implausible_bones(bones: Sequence, height: int) -> dict[str, str]:
    """The bones of an upright (fingers-up) hand that cannot be what the model calls them, ``{name: why}``.

    A metacarpal is implausible when it lies proximal to the carpus (its centre more than a quarter of the image
    height below the carpals' median centre, with at least three carpals found); a phalanx when it is narrower than
    25 % of the median metacarpal width (2-5; a sliver of a wrist crop), when it does not lie distal to its proximal
    neighbour (its centre below that bone's distal quarter), or when that neighbour is implausible. The one check of
    bone plausibility: :func:`assess_bones` drops these bones, :func:`ramh_rt.qc.anatomy_reasons` reports them.

    Args:
        bones: :class:`~ramh_rt.result.BoneRecord` of the upright hand (``name``, ``instance``, ``bbox``,
            ``centroid``, ``minor_axis_px``); only the first instance of each bone class counts.
        height: the upright hand image's height, pixels.
    """
    h = height
    by = {b.name: b for b in bones if b.instance == 0 and anatomy.bone(b.name).is_bone}
    dropped: dict[str, str] = {}
    mcs = [by[n] for n in anatomy.METACARPALS if n in by]
    carpals = [by[c] for c in _CARPALS if c in by]
    carpus_y = float(np.median([b.centroid[1] for b in carpals])) if carpals else None
    ref_width = float(np.median([b.minor_axis_px for b in mcs if b.name != "MC1"] or [b.minor_axis_px for b in mcs]
                                or [0.0]))
    # Metacarpals lie distal to the carpus.
    for b in mcs:
        if carpus_y is not None and len(carpals) >= 3 and b.centroid[1] > carpus_y + 0.25 * max(1, h):
            dropped[b.name] = "lies proximal to the carpus"
    # Phalanges: chain from the metacarpal outwards.
    for d in range(1, 6):
        chain = anatomy.RAYS[d]
        prev = by.get(chain[0]) if chain[0] not in dropped else None
        prev_name = chain[0]
        for name in chain[1:]:
            b = by.get(name)
            if b is None:
                continue
            why = None
            if ref_width > 0 and b.minor_axis_px < 0.25 * ref_width:
                why = (f"{b.minor_axis_px:.0f} px wide, under 25% of the metacarpal width ({ref_width:.0f} px): "
                       "a sliver, not a bone")
            elif prev is None and prev_name in by:
                why = f"its proximal neighbour {prev_name} is not a plausible bone"
            elif prev is not None:
                # Distal to its proximal neighbour: its centre above that bone's distal quarter.
                py0, py1 = prev.bbox[1], prev.bbox[3]
                if b.centroid[1] > py0 + 0.25 * (py1 - py0):
                    why = f"does not lie distal to {prev.name}"
            if why:
                dropped[name] = why
                prev, prev_name = None, name
            else:
                prev, prev_name = b, name
    return dropped


def assess_bones(bones: Sequence, shape: tuple[int, int], region: HandRegion | None = None,
                 rotation_deg: int | None = None) -> BoneAssessment:
    """Check the bones the model found on an upright (fingers-up) hand and decide the field of view.

    A phalanx is kept only when it is as wide as a phalanx can be relative to the metacarpals (at least 25 % of the
    median metacarpal width; slivers of a wrist crop are far narrower), when it lies distal to its proximal
    neighbour (phalanx, or metacarpal), and when that neighbour is kept. A metacarpal is kept when it lies distal to
    the carpus. The field of view follows from what is left: fingertips in view (the silhouette's digits end inside
    the film; without a clear silhouette, three plausible proximal phalanges and distal phalanges clear of the top
    edge) and the distal forearm or carpus in view -> ``"hand"``; carpus and forearm without fingers -> ``"wrist"``
    (phalanges dropped); a silhouette that is digits over most of its length, or phalanges without carpus ->
    ``"fingers"`` (carpals and forearm dropped); else ``"partial"``.

    Args:
        bones: :class:`~ramh_rt.result.BoneRecord` of the upright hand (``name``, ``instance``, ``bbox``,
            ``centroid``, ``minor_axis_px``, ``major_axis_px``, ``area_px``).
        shape: ``(H, W)`` of the upright hand's image, pixels.
        region: the hand's silhouette (:func:`survey`); it decides whether the fingers and fingertips are in view
            (the bone model's phalanges alone are not trusted for that). None: decided from the bones only.
        rotation_deg: the turn under which ``bones`` were found (default: the region's).

    Returns:
        :class:`BoneAssessment`; its ``is_hand`` is False when the bones make no hand (the caller raises
        :class:`~ramh_rt.errors.NotAHandError` when no turn gives one).
    """
    h, w = shape
    by = {b.name: b for b in bones if b.instance == 0 and anatomy.bone(b.name).is_bone}
    dropped = implausible_bones(bones, h)
    reasons: list[Reason] = []
    carpals = [by[c] for c in _CARPALS if c in by]
    forearm = [by[c] for c in _FOREARM if c in by]
    kept = {n: b for n, b in by.items() if n not in dropped}
    n_carpal = sum(c in kept for c in _CARPALS)
    n_forearm = sum(c in kept for c in _FOREARM)
    n_mc = sum(n in kept for n in anatomy.METACARPALS)
    pps = [kept[n] for n in anatomy.PROXIMAL_PHALANGES if n in kept]
    dps = [kept[n] for n in anatomy.DISTAL_PHALANGES if n in kept]
    # Layout score: bones kept, plus the proximal-to-distal order forearm -> carpus -> metacarpals -> phalanges.
    score = float(len(kept))
    order = []
    ys = {}
    if any(b.name in kept for b in forearm):
        ys["forearm"] = float(np.mean([b.centroid[1] for b in forearm if b.name in kept]))
    if any(b.name in kept for b in carpals):
        ys["carpus"] = float(np.mean([b.centroid[1] for b in carpals if b.name in kept]))
    if n_mc:
        ys["mc"] = float(np.mean([kept[n].centroid[1] for n in anatomy.METACARPALS if n in kept]))
    if pps:
        ys["pp"] = float(np.mean([b.centroid[1] for b in pps]))
    seq = [ys[k] for k in ("forearm", "carpus", "mc", "pp") if k in ys]
    for a, b in zip(seq, seq[1:]):
        order.append(a > b)
    score += 4.0 * sum(order) - 6.0 * (len(order) - sum(order))
    # Metacarpals 2..5 side by side in order (either way round: left or right hand).
    xs = [kept[n].centroid[0] for n in anatomy.METACARPALS[1:] if n in kept]
    if len(xs) >= 3:
        dx = np.diff(xs)
        score += 4.0 if (np.all(dx > 0) or np.all(dx < 0)) else -6.0
    wrist_bones = n_forearm >= 1 or n_carpal >= 3
    rot = None if region is None else (region.rotation_deg if rotation_deg is None else rotation_deg)
    if region is not None and region.confident and rot == region.rotation_deg:
        # The silhouette shows the digits (separate runs) and whether the fingertips run off the film.
        fingers_in_view = True
        tips_in_view = region.distal_side not in region.touches
    else:
        # No clear silhouette of the fingers: the plausible phalanges decide, unless the film is a crop whose digits
        # run off its edge (a wrist crop: the "phalanges" there are the model's inventions).
        fingers_in_view = len(pps) >= 3 and not (region is not None and region.cropped)
        edge = max(2.0, 0.005 * h)
        tips_in_view = len(dps) >= 2 and all(b.bbox[1] > edge for b in dps)
    # A silhouette crossed by several digits over most of its length is fingers only (a whole hand's digits take
    # well under two thirds of it, palm, wrist and forearm the rest): whatever the model calls a carpal or a
    # forearm bone there is not one.
    digits_only = region is not None and region.confident and rot == region.rotation_deg and \
        region.fingers_score >= _FINGERS_ONLY_SCORE
    if digits_only:
        fov = "fingers"
    elif fingers_in_view and tips_in_view and wrist_bones:
        fov = "hand"
    elif not fingers_in_view and (n_forearm >= 1 or n_carpal >= 2):
        fov = "wrist"
    elif fingers_in_view and n_carpal == 0 and n_forearm == 0:
        fov = "fingers"
    else:
        fov = "partial"
    # A whole hand the silhouette itself shows (separate digits, fingertips inside the film, nothing but the forearm
    # running off a film side) keeps its field of view against "partial" and "wrist": the classifier, sure but
    # wrong, called such a collimated phantom hand "partial". Whether the carpus and forearm lie beyond the digits
    # the silhouette cannot tell (a crop of the fingers cut at the metacarpals looks the same, and the bone model
    # invents carpals there): "fingers" is the fusion's to decide. A side cut (through the palm) or an unsure
    # silhouette leaves every field of view to the fusion.
    proximal = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}
    whole_silhouette = (fov == "hand" and region is not None and region.confident and rot == region.rotation_deg
                        and region.touches <= {proximal[region.distal_side]})
    fused = fuse_field_of_view(fov, None if region is None else region.view)
    if not whole_silhouette or fused == "fingers":
        fov = fused
    if fov == "fingers":
        for name in _CARPALS + _FOREARM:
            if name in kept:
                dropped[name] = "a carpal or forearm bone cannot be in view on a film of the fingers"
    if fov == "wrist":
        # No finger is in view on a wrist: whatever the model called a phalanx there is not one.
        for b in pps + dps + [kept[n] for n in anatomy.MIDDLE_PHALANGES if n in kept]:
            dropped[b.name] = "a phalanx cannot be in view on a wrist film"
    keep = {b.name for b in bones if b.name not in dropped}
    kept = {n: b for n, b in by.items() if n not in dropped}
    # Without a hand silhouette the bones must make a hand on their own: a distal forearm with carpals and/or
    # metacarpals distal to it, every proximal-to-distal order kept, the metacarpals side by side in order.
    mc_row_ok = len(xs) < 3 or bool(np.all(np.diff(xs) > 0) or np.all(np.diff(xs) < 0))
    structured = (n_forearm >= 1 and n_carpal + n_mc >= 4 and len(order) >= 2 and all(order) and mc_row_ok) or \
                 (fov == "fingers" and len(pps) >= 3 and len(dps) >= 2)
    # A clear hand silhouette with bones in it is a hand even where the model's layout is poor (a film far from
    # the training domain); without one, the bones must make a hand on their own.
    # A film whose silhouette has inner structure (bones apart from one another, as on a wrist crop) may pass on a
    # looser layout: a distal forearm below the carpus and carpals or metacarpals. A plain band (a long bone's
    # shaft) must pass the full layout.
    below = "forearm" not in ys or "carpus" not in ys or ys["forearm"] > ys["carpus"]
    loose = n_forearm >= 1 and n_carpal + n_mc >= 4 and below
    textured = region is not None and region.fingers_score >= 0.05
    is_hand = (fingers_in_view and len(kept) >= 5) or (structured and score >= 8) or (loose and textured)
    if region is not None:
        is_hand = fuse_is_hand(is_hand, region.view, digits=region.confident, layout=score,
                               turn_sure=region.rotation_source == "view" and rot == region.rotation_deg,
                               fingers_score=region.fingers_score)
    if dropped:
        reasons.append(("implausible_anatomy",
                        f"{len(dropped)} bone(s) the model found are not plausible and are not reported: " +
                        "; ".join(f"{n} ({why})" for n, why in sorted(dropped.items())), "info"))
    if fov != "hand":
        what = {"wrist": "a wrist (carpus, distal radius/ulna, metacarpal bases) without the fingers",
                "fingers": "fingers without the carpus and forearm",
                "partial": "part of a hand (fingertips or wrist out of view, or bones missing)"}[fov]
        reasons.append(("field_of_view", f"the image shows {what}: only the areas in view are scored; the hand "
                                         "total, the whole-image estimate and the severity class are not given",
                        "review"))
    side = fuse_side(_anatomy_side(kept), fov, None if region is None else region.view)
    return BoneAssessment(keep=keep, dropped=dropped, field_of_view=fov, score=score, is_hand=is_hand, side=side,
                          reasons=reasons)


def _anatomy_side(c: dict) -> str | None:
    """Laterality of an upright PA hand: the thumb lies on the image's left for a right hand."""
    for thumb, other in (("MC1", "MC5"), ("Trapezium", "Hamate"), ("Radius", "Ulna")):
        if thumb in c and other in c:
            return "R" if c[thumb].centroid[0] < c[other].centroid[0] else "L"
    return None


# ---- view and side ---------------------------------------------------------------------------------------------

def view_reasons(bones: Sequence, assessment: BoneAssessment) -> list[Reason]:
    """A ``view`` reason when the hand does not look like a PA view: metacarpals 2-5 stacked on one another
    (centres closer than 30 % of a shaft width: oblique or lateral views stack them) where a PA view shows them
    side by side. Returns a list of reasons (empty for a PA view or too few metacarpals to tell)."""
    by = {b.name: b for b in bones if b.instance == 0 and b.name in assessment.keep}
    mcs = [by[n] for n in anatomy.METACARPALS[1:] if n in by]
    if len(mcs) < 3:
        return []
    mcs.sort(key=lambda b: b.centroid[0])
    overlaps = 0
    for a, b in zip(mcs, mcs[1:]):
        # Side by side on a PA view: neighbouring shafts' centres about a shaft width apart; stacked: far closer.
        if abs(b.centroid[0] - a.centroid[0]) < 0.3 * min(a.minor_axis_px, b.minor_axis_px):
            overlaps += 1
    if overlaps >= 2:
        return [("view", f"metacarpals 2-5 overlap ({overlaps} pairs): the film looks oblique or lateral, and "
                         "SvdH scores only PA views", "review")]
    return []


def side_reasons(anatomy_side: str | None, given_side: str | None, given_source: str | None
                 ) -> tuple[str | None, str | None, bool, list[Reason]]:
    """Decide a hand's side from its anatomy and what the file or caller said.

    A side given by the caller (``"user"``) or the DICOM header (``"dicom:..."``) is trusted: anatomy that disagrees
    means the film is mirrored. A side from the file name is not trusted: a disagreement is a ``side_conflict``
    reason and the anatomy's side is kept.

    Returns:
        ``(side, side_source, mirrored, reasons)``.
    """
    if given_side is None:
        return anatomy_side, ("detected" if anatomy_side else None), False, []
    if anatomy_side is None or anatomy_side == given_side:
        return given_side, given_source, False, []
    name = anatomy.SIDE_NAMES
    if given_source == "user" or (given_source or "").startswith("dicom"):
        sev = "info" if given_source == "user" else "review"
        return given_side, given_source, True, [(
            "mirrored", f"the anatomy is that of a {name[anatomy_side]} hand but the side given ({given_source}) is "
                        f"{name[given_side]}: the film is mirrored (left-right); scored as the {name[given_side]} "
                        "hand", sev)]
    said = "file name" if given_source == "filename" else f"{given_source or 'given'} side"
    return anatomy_side, "detected", False, [(
        "side_conflict", f"the {said} says side {given_side} but the anatomy (thumb side on a PA view) is that of a "
                         f"{name[anatomy_side]} hand (the name may be wrong or the film mirrored); the anatomy's "
                         f"side {anatomy_side} is reported (pass side= to override)", "review")]


# ---- mapping results back -------------------------------------------------------------------------------------

def map_analysis(analysis, frame: HandFrame, film: np.ndarray | None):
    """Map an :class:`~ramh_rt.result.Analysis` of a normalised hand back to the film, in place, and return it.

    Bone masks, boxes, centroids and axis angles; joint ROIs and boxes; the erosion mask; the image shape and the
    kept image all end in the film's pixel frame. Sizes (areas, axis lengths, ROI width/height) do not change: the
    normalisation neither scales nor resamples. ``analysis.cam`` (over the whole-image model's input) stays in the
    frame of the upright hand that model saw.

    Args:
        analysis: the result on the normalised hand (its records are modified).
        frame: the hand's :class:`HandFrame`.
        film: the film's pixels to keep in ``analysis.image`` (None keeps none).
    """
    if frame.identity:
        return analysis
    H, W = frame.film_shape
    for b in analysis.bones:
        x0, y0, x1, y1 = frame.to_film_box(b.bbox)
        b.bbox = (int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1)))
        (cx, cy), = frame.to_film_points([b.centroid])
        b.centroid = (float(cx), float(cy))
        b.orientation_deg = frame.to_film_axis(b.orientation_deg)
        b.mask_crop = frame.to_film_mask(b.mask_crop)
        b.image_shape = (H, W)
    for j in analysis.joints:
        if j.roi is not None:
            j.roi = frame.to_film_roi(j.roi)
            j.bbox = Roi(*j.roi).bbox((H, W))
    inner = analysis.erosion_mask_fn

    def erosion_mask() -> np.ndarray:
        out = np.zeros((H, W), dtype=bool)
        x0, y0, x1, y1 = frame.box
        out[y0:y1, x0:x1] = frame.to_film_mask(inner())
        return out

    analysis.erosion_mask_fn = erosion_mask
    analysis.__dict__.pop("erosion_mask", None)  # a cached normalised mask would be stale
    analysis.meta.image_shape = (H, W)
    if analysis.image is not None and film is not None:
        analysis.image = film
    return analysis


def orientation_reasons(frame: HandFrame, region: HandRegion) -> list[Reason]:
    """An ``orientation_applied`` info reason when the hand was turned to be analysed."""
    if frame.rotation_deg == 0:
        return []
    how = "from the silhouette" if region.confident else \
        "from the view classifier (the silhouette was ambiguous)" if region.rotation_source == "view" else \
        "from the bones (the silhouette was ambiguous)"
    return [("orientation_applied", f"the hand is turned {frame.rotation_deg} degrees clockwise from upright "
                                    f"(found {how}); it was analysed upright and the results mapped back", "info")]


__all__ = ["BoneAssessment", "FIELDS_OF_VIEW", "HandFrame", "HandRegion", "Survey", "assess_bones",
           "fuse_field_of_view", "fuse_is_hand", "fuse_side", "implausible_bones", "map_analysis", "orientation_reasons",
           "side_reasons", "survey", "view_reasons", "with_view"]
