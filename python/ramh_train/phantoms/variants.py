"""Films as stations really send them, built from phantom hands, with exact ground truth for input understanding.

A PACS does not send only upright, whole, single hands: it sends wrist-only and finger-only crops, bilateral films
with two hands (and composites where one hand was mirrored next to itself), films turned by 90/180/270 degrees or
mirrored, burned-in lead markers, text and rulers, collimation borders, and now and then something that is not a hand
at all. :func:`make_variant` builds each of these from :func:`ramh_train.phantoms.generate` (or draws a non-hand
negative) and carries the ground truth through every crop, flip, turn and placement, so that the hands-per-image,
orientation, field-of-view and not-a-hand stages of the SDK can be trained and checked without real data.

Conventions (the labels of every :class:`HandTruth`):

* ``rotation_deg`` (0, 90, 180, 270): how far the hand is turned clockwise on screen from fingers-up, the convention
  of the SDK's ``meta.orientation``: the fingers point up at 0, right at 90, down at 180, left at 270 (the ``rot90``
  kind is ``np.rot90`` of the film, a quarter turn counter-clockwise, so its hand is at 270). The generator's own small in-plane
  tilt (within +-20 degrees) stays and is not counted.
* ``mirrored``: the film was flipped left-right *before* the turn (``image = rot90(fliplr(upright), k)``); a mirrored
  right hand looks like a left hand. ``side`` is always the anatomical side of the hand that was drawn.
* ``field_of_view``: ``"hand"`` (fingertips to distal radius/ulna), ``"wrist"`` (carpus, distal radius/ulna,
  metacarpal bases; no phalanx pixel), ``"fingers"`` (phalanges and metacarpal heads; no carpal, radius or ulna
  pixel) or ``"partial"`` (a hand cut by a film edge through the palm or the fingers).
* ``box``: ``(x0, y0, x1, y1)`` integer pixel bounds, half-open, of the hand's silhouette (the ``SoftTissue`` mask,
  bones included) in the variant image.
* masks and joint ROIs are in the variant image frame; a bone with no pixel left in view is absent, and a joint ROI
  is kept only when all of it lies inside the image and all its anchor bones are in view.

Variants are deterministic given ``(kind, seed, config)``. All single-hand kinds of one seed show the same hand (the
same generator seed), so the rates of a benchmark over kinds compare the same hands turned, cut or marked.
"""
from __future__ import annotations

import datetime as _dt
import io
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ramh_rt import anatomy
from ramh_rt.geometry import Roi, Transform, wrap_angle

from ..datasets.sample import HandSample
from .config import PhantomConfig
from .generator import generate

#: Single-hand and two-hand kinds (each film holds at least one hand).
HAND_KINDS: tuple[str, ...] = ("hand", "wrist", "fingers", "partial", "two_hands", "composite", "rot90", "rot180",
                               "rot270", "mirrored", "rot90_mirrored", "markers", "collimated")
#: Films without a hand: a chest radiograph, a long-bone (tibia and fibula) radiograph, a photograph-like image
#: converted to grey, a constant image and pure noise.
NEGATIVE_KINDS: tuple[str, ...] = ("chest", "long_bone", "photo", "blank", "noise")
#: Every kind :func:`make_variant` builds.
KINDS: tuple[str, ...] = HAND_KINDS + NEGATIVE_KINDS
#: Field-of-view labels.
FIELDS_OF_VIEW: tuple[str, ...] = anatomy.FIELDS_OF_VIEW

_PHALANGES = tuple(b.name for b in anatomy.BONE_CLASSES
                   if b.group in ("distal_phalanx", "middle_phalanx", "proximal_phalanx"))
_CARPUS = tuple(b.name for b in anatomy.BONE_CLASSES if b.group == "carpal")
_FOREARM = ("Radius", "Ulna")


@dataclass
class HandTruth:
    """The ground truth of one hand on a variant film.

    Attributes:
        side: anatomical side of the hand drawn, ``"L"`` or ``"R"`` (a mirrored film does not change it).
        box: ``(x0, y0, x1, y1)`` int pixels, half-open: bounds of the hand's silhouette in the variant image.
        rotation_deg: 0, 90, 180 or 270, clockwise from fingers-up (see the module docstring).
        mirrored: True when the hand is shown mirrored.
        field_of_view: one of :data:`FIELDS_OF_VIEW`.
        source_seed: the :func:`~ramh_train.phantoms.generate` seed of the hand (regenerate it upright with it).
        bone_masks: class name -> H x W bool mask in the variant image (empty dict when built with ``masks=False``).
        joint_rois: ROI stem -> :class:`~ramh_rt.geometry.Roi` in the variant image, only the ROIs
            that lie wholly inside the image with their anchor bones in view.
    """

    side: str
    box: tuple[int, int, int, int]
    rotation_deg: int
    mirrored: bool
    field_of_view: str
    source_seed: int
    bone_masks: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    joint_rois: dict[str, Roi] = field(default_factory=dict, repr=False)

    def labels(self) -> dict:
        """JSON-ready labels (no masks): side, box, rotation_deg, mirrored, field_of_view, source_seed and the joint
        ROIs as ``[cx, cy, w, h, angle]``."""
        return {"side": self.side, "box": list(self.box), "rotation_deg": self.rotation_deg,
                "mirrored": self.mirrored, "field_of_view": self.field_of_view, "source_seed": self.source_seed,
                "joint_rois": {k: [float(r.cx), float(r.cy), float(r.w), float(r.h), float(r.angle)]
                               for k, r in self.joint_rois.items()}}


@dataclass
class VariantSample:
    """One variant film with its ground truth.

    Attributes:
        kind: one of :data:`KINDS`.
        seed: the variant seed.
        image: H x W ``uint8`` (or ``uint16`` when the config asks for it), bone bright.
        spacing_mm: pixel spacing in mm of the film (not written into the image: pass it to the SDK if wanted).
        hands: one :class:`HandTruth` per hand, left to right by box centre; empty for a negative.
        meta: what was drawn (markers and their boxes, collimation, the negative's parameters...).
    """

    kind: str
    seed: int
    image: np.ndarray
    spacing_mm: float
    hands: list[HandTruth]
    meta: dict = field(default_factory=dict)

    @property
    def is_hand(self) -> bool:
        """True when the film shows at least one hand."""
        return bool(self.hands)

    @property
    def n_hands(self) -> int:
        return len(self.hands)

    def labels(self) -> dict:
        """JSON-ready labels of the film (no pixels): kind, seed, shape, spacing, is_hand, n_hands, hands, meta."""
        return {"kind": self.kind, "seed": self.seed, "shape": [int(self.image.shape[0]), int(self.image.shape[1])],
                "spacing_mm": self.spacing_mm, "is_hand": self.is_hand, "n_hands": self.n_hands,
                "hands": [h.labels() for h in self.hands], "meta": self.meta}


# ---------------------------------------------------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------------------------------------------------


def _rng(seed: int, kind: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), 1000 + KINDS.index(kind)]))


def hand_seed(seed: int, j: int = 0) -> int:
    """The generator seed of hand ``j`` (0 or 1) of variant seed ``seed``, the same for every kind; in [0, 2**63)."""
    a, b = np.random.SeedSequence([int(seed), 7, int(j)]).generate_state(2, np.uint32)
    return int((int(a) << 31) ^ int(b)) & (2**63 - 1)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**63:
        raise ValueError(f"seed must lie in [0, 2**63), got {seed}")
    return int(seed)


# ---------------------------------------------------------------------------------------------------------------------
# The working form: a film with per-hand truth, transformed step by step
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class _Hand:
    side: str
    seed: int
    masks: dict[str, np.ndarray]
    rois: dict[str, Roi]
    rotation_deg: int = 0
    mirrored: bool = False
    fov: str = "hand"
    # Bones in view, recorded when the masks were pruned to the silhouette (films that cut no bone, masks=False).
    present: frozenset | None = None


def _prune(hand: _Hand) -> None:
    """Keep only the silhouette mask (enough for the box) and remember which bones were in view."""
    hand.present = frozenset(k for k, m in hand.masks.items() if m.any())
    hand.masks = {"SoftTissue": hand.masks["SoftTissue"]}


def _from_sample(s: HandSample) -> _Hand:
    return _Hand(side=s.side, seed=int(s.meta["seed"]), masks=dict(s.bone_masks), rois=dict(s.joint_rois))


def _map_rois(rois: dict[str, Roi], t: Transform) -> dict[str, Roi]:
    """Oriented ROIs through a frame map (a crop, a flip, a turn), angles wrapped into (-180, 180]."""
    out = {}
    for k, r in rois.items():
        m = t.apply_roi(r)
        out[k] = replace(m, angle=wrap_angle(m.angle))
    return out


def _crop(image: np.ndarray, hands: list[_Hand], x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """Cut the film to ``[y0:y1, x0:x1]``; masks are cut alike, ROIs shifted (their filtering comes at the end)."""
    for h in hands:
        h.masks = {k: np.ascontiguousarray(m[y0:y1, x0:x1]) for k, m in h.masks.items()}
        h.rois = {k: Transform.shift(-x0, -y0).apply_roi(r) for k, r in h.rois.items()}
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def _mirror(image: np.ndarray, hands: list[_Hand]) -> np.ndarray:
    """Flip left-right (x -> W - x in continuous pixel coordinates)."""
    W = image.shape[1]
    for h in hands:
        h.masks = {k: np.ascontiguousarray(m[:, ::-1]) for k, m in h.masks.items()}
        h.rois = _map_rois(h.rois, Transform.mirror(W))
        # A flip after a turn equals a flip before the opposite turn: keep the labels in the flip-then-turn form.
        h.mirrored = not h.mirrored
        h.rotation_deg = (360 - h.rotation_deg) % 360
    return np.ascontiguousarray(image[:, ::-1])


def _rot90(image: np.ndarray, hands: list[_Hand], k: int) -> np.ndarray:
    """Turn by ``k`` quarter turns counter-clockwise on screen (``np.rot90``): a pixel centre (x, y) of a W-wide image
    goes to (y, W - x) per quarter turn, and an oriented box's angle grows by 90 degrees."""
    k %= 4
    for _ in range(k):  # one turn at a time, wrapping the angles after each: k turns equal k single turns exactly
        turn = Transform.quarter_turn(image.shape)
        for h in hands:
            h.rois = _map_rois(h.rois, turn)
        image = np.rot90(image)
    for h in hands:
        h.masks = {n: np.ascontiguousarray(np.rot90(m, k)) for n, m in h.masks.items()}
        h.rotation_deg = (h.rotation_deg - 90 * k) % 360  # a counter-clockwise film turn: the hand's angle falls
    return np.ascontiguousarray(image)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _union(masks: dict[str, np.ndarray], names, shape) -> np.ndarray:
    out = np.zeros(shape, bool)
    for n in names:
        if n in masks:
            out |= masks[n]
    return out


def _finish(kind: str, seed: int, image: np.ndarray, spacing: float, hands: list[_Hand], masks: bool,
            meta: dict) -> VariantSample:
    """Drop empty masks and ROIs that left the image, compute boxes, order the hands left to right."""
    H, W = image.shape
    out = []
    for h in hands:
        bm = {k: m for k, m in h.masks.items() if m.any()}
        in_view = bm.keys() if h.present is None else h.present
        rois = {}
        for stem, r in h.rois.items():
            c = r.corners()
            inside = bool((c[:, 0] >= 0).all() and (c[:, 0] <= W).all() and (c[:, 1] >= 0).all()
                          and (c[:, 1] <= H).all())
            if inside and all(a in in_view for a in anatomy.AREA_BY_STEM[stem].anchors):
                rois[stem] = r
        st = bm.get("SoftTissue")
        box = _bbox(st) if st is not None else None
        if box is None:
            raise RuntimeError(f"variant {kind} seed {seed}: a hand lost its whole silhouette (generator bug)")
        out.append(HandTruth(side=h.side, box=box, rotation_deg=int(h.rotation_deg), mirrored=bool(h.mirrored),
                             field_of_view=h.fov, source_seed=h.seed, bone_masks=bm if masks else {},
                             joint_rois=rois))
    out.sort(key=lambda t: t.box[0] + t.box[2])
    return VariantSample(kind=kind, seed=seed, image=image, spacing_mm=float(spacing), hands=out, meta=meta)


# ---------------------------------------------------------------------------------------------------------------------
# Hand kinds
# ---------------------------------------------------------------------------------------------------------------------


def _source(seed: int, j: int, cfg: PhantomConfig, cache: dict | None) -> HandSample:
    key = (hand_seed(seed, j), repr(cfg))  # repr: a config with forced scores holds dicts and is not hashable
    if cache is not None and key in cache:
        return cache[key]
    s = generate(key[0], cfg)
    if cache is not None:
        cache[key] = s
    return s


def _wrist(image, hand: _Hand, sp: float, rng) -> tuple[np.ndarray, dict]:
    """A RAM-W600-like crop: a square about twice the carpus, the carpus in its upper middle, the distal radius and
    ulna below, the metacarpal bases above; its top (or, failing that, a side) is moved until no phalanx is in it."""
    H, W = image.shape
    carpus = _bbox(_union(hand.masks, _CARPUS, (H, W)))
    phal = _union(hand.masks, _PHALANGES, (H, W))
    cx, cy = 0.5 * (carpus[0] + carpus[2]), 0.5 * (carpus[1] + carpus[3])
    size = max(carpus[2] - carpus[0], carpus[3] - carpus[1]) * rng.uniform(1.8, 2.3)
    ccx = cx + rng.uniform(-0.06, 0.06) * size
    ccy = cy + rng.uniform(0.05, 0.18) * size
    x0, x1 = int(round(ccx - size / 2)), int(round(ccx + size / 2))
    y0, y1 = int(round(ccy - size / 2)), int(round(ccy + size / 2))
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    for _ in range(8):
        ys, xs = np.nonzero(phal[y0:y1, x0:x1])
        if ys.size == 0:
            break
        new_top = y0 + int(ys.max()) + 1
        if new_top <= carpus[1] - 2:  # the carpus stays whole
            y0 = new_top
        elif np.median(xs) + x0 < cx:   # a thumb phalanx beside the carpus: cut that side
            x0 = x0 + int(xs.max()) + 1
        else:
            x1 = x0 + int(xs.min())
    if phal[y0:y1, x0:x1].any() or x1 - x0 < 32 or y1 - y0 < 32:
        raise RuntimeError("wrist crop: could not exclude the phalanges (unexpected hand geometry)")
    return (x0, y0, x1, y1), {"crop": [x0, y0, x1, y1]}


def _fingers(image, hand: _Hand, sp: float, rng) -> tuple[tuple[int, int, int, int], dict]:
    """The phalanges of digits 2-5 down to the metacarpal heads, with a margin; the bottom edge is raised until no
    carpal, radius or ulna pixel is in view."""
    H, W = image.shape
    names = [n for n in _PHALANGES if anatomy.BONE_CLASSES[anatomy.BONE_INDEX[n]].digit != 1]
    fb = _bbox(_union(hand.masks, names, (H, W)))
    m = rng.uniform(4.0, 12.0) / sp
    below = rng.uniform(8.0, 20.0) / sp  # the metacarpal heads
    x0, y0 = max(int(fb[0] - m), 0), max(int(fb[1] - m), 0)
    x1, y1 = min(int(fb[2] + m), W), min(int(fb[3] + below), H)
    prox = _union(hand.masks, _CARPUS + _FOREARM, (H, W))
    ys = np.nonzero(prox[y0:y1, x0:x1])[0]
    if ys.size:
        y1 = y0 + int(ys.min())
    if y1 - y0 < 32 or x1 - x0 < 32:
        raise RuntimeError("fingers crop: too small after excluding the carpus (unexpected hand geometry)")
    return (x0, y0, x1, y1), {"crop": [x0, y0, x1, y1]}


def _partial(image, hand: _Hand, sp: float, rng) -> tuple[tuple[int, int, int, int], dict]:
    """A film edge through the palm (a vertical cut between the 2nd and 4th metacarpals, keeping either side) or
    through the fingers (a horizontal cut at the level of the PIP joints)."""
    H, W = image.shape

    def centre(n):
        ys, xs = np.nonzero(hand.masks[n])
        return xs.mean(), ys.mean()

    if rng.random() < 0.5:
        a, b = centre("MC2")[0], centre("MC4")[0]
        x = int(round(min(a, b) + rng.uniform(0.2, 0.8) * abs(b - a)))
        keep_left = bool(rng.random() < 0.5)
        rect = (0, 0, x, H) if keep_left else (x, 0, W, H)
        return rect, {"crop": list(rect), "cut": "palm", "kept": "left" if keep_left else "right"}
    ys = [centre(f"MP{d}")[1] for d in (2, 3, 4, 5)]
    y = int(round(float(np.mean(ys))))
    return (0, y, W, H), {"crop": [0, y, W, H], "cut": "fingers"}


def _background(patch: np.ndarray, rng, shape) -> np.ndarray:
    """Film background of ``shape`` with the level and grain of ``patch`` (a region without anatomy)."""
    level = float(np.median(patch))
    sd = float(np.std(patch.astype(np.float32))) if patch.size > 1 else 0.0
    hi = np.iinfo(patch.dtype).max
    return np.clip(rng.normal(level, max(sd, 0.5), shape), 0, hi).astype(patch.dtype)


def _strip(s: HandSample, hand: _Hand, sp: float, rng) -> tuple[np.ndarray, int]:
    """The full-height column strip of a film that holds the whole silhouette plus a random margin each side; the
    hand's truth is cut alike. Returns the strip and its left edge in the source."""
    W = s.image.shape[1]
    bx0, _, bx1, _ = _bbox(hand.masks["SoftTissue"])
    x0 = max(bx0 - int(rng.uniform(4.0, 20.0) / sp), 0)
    x1 = min(bx1 + int(rng.uniform(4.0, 20.0) / sp), W)
    return _crop(s.image, [hand], x0, 0, x1, s.image.shape[0]), x0


def _side_by_side(strips: list[tuple[np.ndarray, _Hand]], keep_rows: list[int], sp: float, rng, separator: bool
                  ) -> tuple[np.ndarray, dict]:
    """Place column strips side by side on one film, each with its own vertical offset. The film ends where the
    shortest strip ends (the forearms run off the bottom edge, as on a real film) but never above the first
    ``keep_rows[i]`` rows of a strip (its bones); rows a strip does not cover are filled with film background like
    its top rows (above the fingertips)."""
    heights = [im.shape[0] for im, _ in strips]
    offsets = [int(rng.uniform(0.0, 25.0) / sp) for _ in strips]
    H = max(min(h + o for h, o in zip(heights, offsets)), max(k + o for k, o in zip(keep_rows, offsets)))
    cols = []
    x = 0
    for (im, hand), off in zip(strips, offsets):
        h = min(im.shape[0], H - off)
        w = im.shape[1]
        band = im[:max(4, int(4.0 / sp))]
        col = np.empty((H, w), im.dtype)
        col[:off] = _background(band, rng, (off, w))
        col[off:off + h] = im[:h]
        col[off + h:] = _background(band, rng, (H - off - h, w))
        hand.masks = {k: np.pad(m[:h], ((off, H - off - h), (x, 0))) for k, m in hand.masks.items()}
        hand.rois = {k: Transform.shift(x, off).apply_roi(r) for k, r in hand.rois.items()}
        cols.append(col)
        x += w
    image = np.concatenate(cols, axis=1)
    for _, hand in strips:  # pad every mask on the right to the full width
        hand.masks = {k: np.pad(m, ((0, 0), (0, x - m.shape[1]))) for k, m in hand.masks.items()}
    meta: dict = {"offsets_px": offsets}
    if separator:
        w0 = strips[0][0].shape[1]
        t = max(1, int(rng.uniform(0.3, 0.8) / sp))
        hi = np.iinfo(image.dtype).max
        image[:, max(w0 - t // 2, 0):w0 - t // 2 + t] = int(hi * rng.uniform(0.75, 1.0))
        meta["separator_x"] = w0
    return image, meta


def _free_spots(silhouette: np.ndarray, h: int, w: int, margin: int) -> list[tuple[int, int]]:
    """Top-left corners of ``h`` x ``w`` rectangles near the film's corners and edges that keep ``margin`` px away
    from the silhouette."""
    H, W = silhouette.shape
    if h + 2 * margin >= H or w + 2 * margin >= W:
        return []
    pad = max(2, margin // 2)
    cands = [(pad, pad), (pad, W - w - pad), (H - h - pad, pad), (H - h - pad, W - w - pad),
             (pad, (W - w) // 2), ((H - h) // 2, pad), ((H - h) // 2, W - w - pad)]
    out = []
    for y, x in cands:
        y0, x0 = max(y - margin, 0), max(x - margin, 0)
        if not silhouette[y0:y + h + margin, x0:x + w + margin].any():
            out.append((int(y), int(x)))
    return out


def _text_patch(text: str, height_px: int, *, frame: bool = False) -> np.ndarray:
    """White text on black (uint8), ``height_px`` tall, drawn with PIL's default font; ``frame`` adds the plastic
    holder of a lead marker (a faint square with a brighter rim)."""
    font = ImageFont.load_default(size=max(8, int(height_px)))
    l, t, r, b = font.getbbox(text)
    pad = max(2, height_px // 6) if frame else 1
    im = Image.new("L", (r - l + 2 * pad, b - t + 2 * pad), 0)
    d = ImageDraw.Draw(im)
    if frame:
        d.rectangle([0, 0, im.width - 1, im.height - 1], fill=60, outline=140, width=max(1, height_px // 12))
    d.text((pad - l, pad - t), text, fill=255, font=font)
    return np.asarray(im)


def _ruler_patch(length_px: int, sp: float) -> np.ndarray:
    """A radiopaque ruler: a bar with ticks every 5 mm (every 10 mm long)."""
    h = max(6, int(8.0 / sp))
    im = np.zeros((h, length_px), np.uint8)
    bar = max(1, int(0.8 / sp))
    im[:bar] = 255
    step = 5.0 / sp
    for i in range(int(length_px / step) + 1):
        x = min(int(round(i * step)), length_px - 1)
        tick = h if i % 2 == 0 else h // 2
        im[:tick, x:x + max(1, int(0.4 / sp))] = 255
    return im


def _burn_markers(image: np.ndarray, hands: list[_Hand], sp: float, rng) -> list[dict]:
    """Burn markers (:func:`burn_markers`) clear of every hand; the side letter is the first hand's."""
    H, W = image.shape
    sil = np.zeros((H, W), bool)
    for h in hands:
        sil |= h.masks["SoftTissue"]
    return burn_markers(image, sil, hands[0].side, sp, rng)


def burn_markers(image: np.ndarray, occupied: np.ndarray, side: str, sp: float, rng: np.random.Generator
                 ) -> list[dict]:
    """Burn a lead side letter ``side`` (with the technologist's initials now and then), a date text and a ruler into
    ``image`` (uint8/uint16, modified in place) where they stay clear of ``occupied`` (H x W bool: the hands, and
    whatever else must stay free; not modified); ``sp`` is the pixel spacing (mm). Returns what was drawn, each with
    its box ``[x0, y0, x1, y1]``; an item with no free spot is left out. Bright as lead on film."""
    sil = occupied.copy()
    hi = np.iinfo(image.dtype).max
    items = []
    letters = side + ("" if rng.random() < 0.5 else " " + "".join(chr(65 + int(c)) for c in rng.integers(0, 26, 2)))
    items.append(("letter", letters, _text_patch(letters, int(rng.uniform(8.0, 14.0) / sp), frame=True)))
    date = _dt.date(2000, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 9000)))
    text = date.strftime("%d.%m.%Y") if rng.random() < 0.5 else date.isoformat()
    items.append(("text", text, _text_patch(text, int(rng.uniform(3.0, 5.0) / sp))))
    if rng.random() < 0.7:
        items.append(("ruler", "", _ruler_patch(int(rng.uniform(50.0, 100.0) / sp), sp)))
    drawn = []
    margin = int(3.0 / sp)
    for kind, text, patch in items:
        if kind == "ruler" and rng.random() < 0.5:
            patch = np.ascontiguousarray(patch.T)
        spots = _free_spots(sil, patch.shape[0], patch.shape[1], margin)
        if not spots:
            continue
        y, x = spots[int(rng.integers(len(spots)))]
        h, w = patch.shape
        val = (patch.astype(np.float32) / 255.0 * hi * rng.uniform(0.85, 1.0)).astype(image.dtype)
        image[y:y + h, x:x + w] = np.maximum(image[y:y + h, x:x + w], val)
        sil[y:y + h, x:x + w] = True  # the next item goes elsewhere
        drawn.append({"type": kind, "text": text, "box": [x, y, x + w, y + h]})
    return drawn


def _collimate(image: np.ndarray, hands: list[_Hand], sp: float, rng) -> dict:
    """Collimator borders: everything outside a (slightly tilted) field that holds the hand down to the wrist is
    shown dark (shutters) or bright (unexposed); masks outside the field are cleared. Sometimes a thin bright plate
    edge is drawn along the field."""
    H, W = image.shape
    hand = hands[0]
    bx0, by0, bx1, by1 = _bbox(hand.masks["SoftTissue"])
    keep = _bbox(_union(hand.masks, _CARPUS + _PHALANGES + ("MC1", "MC2", "MC3", "MC4", "MC5"), (H, W)))
    g = 3.0 / sp
    fx0 = rng.uniform(0.0, max(keep[0] - g, 0.0))
    fy0 = rng.uniform(0.0, max(keep[1] - g, 0.0))
    fx1 = W - rng.uniform(0.0, max(W - keep[2] - g, 0.0))
    fy1 = H - rng.uniform(0.0, max(H - keep[3] - g, 0.0) * 0.8)
    ang = float(rng.uniform(-3.0, 3.0))
    # The field is tilted about its centre only when the hand's bounds stay inside the tilted field.
    c = ((fx0 + fx1) / 2, (fy0 + fy1) / 2)
    box = Roi(c[0], c[1], fx1 - fx0, fy1 - fy0, ang)
    corners = np.array([[keep[0], keep[1]], [keep[2], keep[1]], [keep[2], keep[3]], [keep[0], keep[3]]], float)
    if not box.contains(corners).all():
        ang = 0.0
        box = replace(box, angle=0.0)
    field_mask = np.zeros((H, W), np.uint8)
    cv2.fillPoly(field_mask, [np.round(box.corners() - 0.5).astype(np.int32)], 1)
    field_mask = field_mask.astype(bool)
    hi = np.iinfo(image.dtype).max
    bright = bool(rng.random() < 0.5)
    level = hi * (rng.uniform(0.75, 0.95) if bright else rng.uniform(0.0, 0.06))
    soft = cv2.GaussianBlur(field_mask.astype(np.float32), (0, 0), max(0.6 / sp, 0.5))
    out = image.astype(np.float32) * soft + (level + rng.normal(0, hi * 0.01, (H, W))) * (1 - soft)
    image[:] = np.clip(out, 0, hi).astype(image.dtype)
    plate = bool(rng.random() < 0.4)
    if plate:
        cv2.polylines(image, [np.round(box.corners() - 0.5).astype(np.int32)], True, int(hi * 0.9),
                      max(1, int(0.6 / sp)))
    for h in hands:
        h.masks = {k: m & field_mask for k, m in h.masks.items()}
    return {"collimation": {"field": [float(box.cx), float(box.cy), float(box.w), float(box.h), ang],
                            "outside": "bright" if bright else "dark", "plate_edge": plate}}


def _hand_kind(kind: str, seed: int, cfg: PhantomConfig, masks: bool, cache: dict | None) -> VariantSample:
    rng = _rng(seed, kind)
    if kind == "two_hands":
        # One acquisition: both hands with the same spacing and the same centre, no collimation of their own.
        sp = float(rng.uniform(*cfg.spacing_mm))
        prof = cfg.profiles[int(rng.integers(len(cfg.profiles)))]
        strips, keep = [], []
        for j, side in enumerate(("L", "R")):  # thumbs towards each other, as the patient lays the hands down
            c = replace(cfg, side=side, spacing_mm=(sp, sp), profiles=(prof,), collimation_probability=0.0)
            s = _source(seed, j, c, cache)
            hand = _from_sample(s)
            # The film may cut the forearm's shafts, not the carpus or the distal radius and ulna (areas R, U).
            low = max(_bbox(_union(hand.masks, _CARPUS, s.image.shape))[3],
                      *(hand.rois[a].bbox()[3] for a in ("R", "U")))
            keep.append(min(int(np.ceil(low)) + int(5.0 / sp), s.image.shape[0]))
            if not masks:
                _prune(hand)
            strip, _ = _strip(s, hand, sp, rng)
            strips.append((strip, hand))
        image, meta = _side_by_side(strips, keep, sp, rng, separator=False)
        return _finish(kind, seed, image, sp, [h for _, h in strips], masks, meta)

    s = _source(seed, 0, cfg, cache)
    sp = float(s.spacing_mm)
    hand = _from_sample(s)
    image = s.image
    meta: dict = {}
    if kind == "composite":
        if not masks:
            _prune(hand)
        strip, _ = _strip(s, hand, sp, rng)
        twin = _Hand(side=hand.side, seed=hand.seed, masks=dict(hand.masks), rois=dict(hand.rois),
                     present=hand.present)
        twin_strip = _mirror(strip, [twin])
        pair = [(strip, hand), (twin_strip, twin)]
        if rng.random() < 0.5:
            pair.reverse()
        image, meta = _side_by_side(pair, [strip.shape[0]] * 2, sp, rng, separator=bool(rng.random() < 0.5))
        return _finish(kind, seed, image, sp, [hand, twin], masks, meta)
    if kind in ("wrist", "fingers", "partial"):
        cut = {"wrist": _wrist, "fingers": _fingers, "partial": _partial}[kind]
        (x0, y0, x1, y1), meta = cut(image, hand, sp, rng)
        image = _crop(image, [hand], x0, y0, x1, y1)
        hand.fov = kind
    elif kind == "markers":
        image = image.copy()
        meta["markers"] = _burn_markers(image, [hand], sp, rng)
    elif kind == "collimated":
        image = image.copy()
        meta.update(_collimate(image, [hand], sp, rng))
    elif kind != "hand":
        mirrored = kind.endswith("_mirrored") or kind == "mirrored"
        k = {"rot90": 1, "rot180": 2, "rot270": 3}.get(kind.split("_")[0], 0)
        if mirrored:
            image = _mirror(image, [hand])
        image = _rot90(image, [hand], k)
    return _finish(kind, seed, image, sp, [hand], masks, meta)


# ---------------------------------------------------------------------------------------------------------------------
# Negatives
# ---------------------------------------------------------------------------------------------------------------------


def _to_film(att: np.ndarray, sp: float, rng, dtype: str) -> np.ndarray:
    """Attenuation line integrals (float32) -> a radiograph-like display image: detector blur, exp(-L) transmission
    with quantum-like noise, log and a window from the open field (dark) to the densest part (bright)."""
    att = cv2.GaussianBlur(att, (0, 0), max(rng.uniform(0.1, 0.3) / sp, 0.4))
    t = np.exp(-att)
    t = t + rng.normal(0.0, 1.0, t.shape).astype(np.float32) * np.sqrt(t) * rng.uniform(0.005, 0.02)
    d = -np.log(np.clip(t, 1e-4, None))
    lo, hi = np.percentile(d, [0.5, 99.8])
    v = np.clip((d - lo) / max(hi - lo, 1e-6), 0.0, 1.0) ** rng.uniform(0.7, 1.3)
    v = rng.uniform(0.02, 0.1) + v * rng.uniform(0.8, 0.9)
    top = np.iinfo(np.dtype(dtype)).max
    return np.clip(np.rint(v * top), 0, top).astype(dtype)


def _poly(att, pts_mm, sp, value):
    """Add ``value`` inside a polygon (mm) to ``att``."""
    m = np.zeros(att.shape, np.uint8)
    cv2.fillPoly(m, [np.round(np.asarray(pts_mm) / sp * 4).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=2)
    att += m.astype(np.float32) * value


def _ellipse(att, c, axes, angle, sp, value):
    m = np.zeros(att.shape, np.uint8)
    cv2.ellipse(m, (int(c[0] / sp), int(c[1] / sp)), (max(int(axes[0] / sp), 1), max(int(axes[1] / sp), 1)),
                angle, 0, 360, 1, -1)
    att += m.astype(np.float32) * value


def _chest(rng, sp: float) -> tuple[np.ndarray, dict]:
    """PA chest: torso, neck and shoulders, two lungs, heart and mediastinum, spine, ribs and clavicles."""
    Wm, Hm = rng.uniform(330, 420), rng.uniform(380, 440)
    H, W = int(Hm / sp), int(Wm / sp)
    att = np.zeros((H, W), np.float32)
    cx = Wm / 2 + rng.uniform(-15, 15)
    ribs = np.zeros((H, W), np.float32)  # drawn apart and added: a polyline would overwrite the lungs below
    _ellipse(att, (cx, Hm * 0.62), (Wm * 0.47, Hm * 0.55), 0, sp, 2.2)               # torso
    _poly(att, [(cx - 45, 0), (cx + 45, 0), (cx + 55, Hm * 0.15), (cx - 55, Hm * 0.15)], sp, 1.6)  # neck
    for s in (-1, 1):
        lung_c = (cx + s * Wm * 0.2, Hm * 0.47)
        _ellipse(att, lung_c, (Wm * rng.uniform(0.14, 0.17), Hm * rng.uniform(0.27, 0.32)), s * 4, sp, -1.5)
        _ellipse(att, (cx + s * Wm * 0.44, Hm * 0.12), (28, 30), 0, sp, 0.8)        # humeral heads
        _poly(att, [(cx + s * 12, Hm * 0.13), (cx + s * Wm * 0.42, Hm * 0.09), (cx + s * Wm * 0.42, Hm * 0.12),
                    (cx + s * 12, Hm * 0.16)], sp, 0.9)                                # clavicles
        for i in range(10):                                                           # ribs
            y = Hm * (0.18 + 0.055 * i)
            xs = np.linspace(0, Wm * 0.36, 24)
            ys = y + 0.0008 * xs ** 2 * (1.0 + 0.1 * i) - 8
            pts = np.stack([cx + s * (10 + xs), ys], 1) / sp
            cv2.polylines(ribs, [np.round(pts).astype(np.int32)], False, 1.0, max(int(7 / sp), 1), cv2.LINE_AA)
    att += 0.35 * ribs
    _ellipse(att, (cx + Wm * 0.04, Hm * 0.62), (Wm * 0.15, Hm * 0.13), -20, sp, 1.0)  # heart
    _poly(att, [(cx - 25, Hm * 0.15), (cx + 25, Hm * 0.15), (cx + 30, Hm * 0.6), (cx - 30, Hm * 0.6)], sp, 0.8)
    for i in range(16):                                                               # vertebrae
        y = Hm * 0.05 + i * 26
        _poly(att, [(cx - 20, y), (cx + 20, y), (cx + 21, y + 22), (cx - 21, y + 22)], sp, 0.6)
    return att, {"field_mm": [Wm, Hm]}


def _long_bone(rng, sp: float) -> tuple[np.ndarray, dict]:
    """AP lower leg: the leg's soft tissue, tibia (shaft with a medullary canal, flared plateau and distal end with
    the medial malleolus) and fibula, the femoral condyles and the talus cut by the film edges."""
    Wm, Hm = rng.uniform(180, 250), rng.uniform(400, 470)
    H, W = int(Hm / sp), int(Wm / sp)
    att = np.zeros((H, W), np.float32)
    cx = Wm / 2 + rng.uniform(-10, 10)
    kw, aw = rng.uniform(50, 62), rng.uniform(32, 40)
    _poly(att, [(cx - kw, 0), (cx + kw, 0), (cx + aw, Hm), (cx - aw, Hm)], sp, 1.6)    # leg
    tx = cx - 8
    top, bot = Hm * 0.06, Hm * 0.94
    sw = rng.uniform(11, 15)
    tibia = [(tx - 38, top), (tx + 38, top), (tx + 34, top + 30), (tx + sw, top + 90), (tx + sw, bot - 60),
             (tx + 24, bot - 12), (tx + 18, bot), (tx - 12, bot), (tx - 22, bot + 14), (tx - 30, bot + 12),
             (tx - 26, bot - 20), (tx - sw, bot - 60), (tx - sw, top + 90), (tx - 34, top + 30)]
    _poly(att, tibia, sp, 1.4)
    canal = [(tx - sw * 0.5, top + 110), (tx + sw * 0.5, top + 110), (tx + sw * 0.5, bot - 80),
             (tx - sw * 0.5, bot - 80)]
    _poly(att, canal, sp, -0.8)
    fx = tx + rng.uniform(38, 46)
    _poly(att, [(fx - 9, top + 20), (fx + 9, top + 20), (fx + 4, top + 45), (fx + 5, bot - 40), (fx + 11, bot + 12),
                (fx - 3, bot + 12), (fx - 4, bot - 40), (fx - 4, top + 45)], sp, 0.9)
    _ellipse(att, (tx, top - 26), (44, 22), 0, sp, 1.2)                                # femoral condyles
    _ellipse(att, (tx, bot + 30), (28, 18), 0, sp, 1.2)                                # talus
    tilt = float(rng.uniform(-8, 8))
    M = cv2.getRotationMatrix2D((W / 2, H / 2), tilt, 1.0)
    att = cv2.warpAffine(att, M, (W, H), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return att, {"field_mm": [Wm, Hm], "tilt_deg": tilt}


def _photo(rng, size: tuple[int, int], dtype: str) -> np.ndarray:
    """A photograph-like image: a dead-leaves scene (occluding discs and rectangles of power-law sizes, each with its
    own colour and shading: the statistics of natural images) in RGB, slightly blurred, with sensor noise, converted
    to grey with the ITU-R BT.601 luma weights."""
    H, W = size
    img = np.empty((H, W, 3), np.float32)
    img[:] = rng.uniform(0, 255, 3)
    rmin, rmax = 0.015 * max(H, W), 0.25 * max(H, W)
    for _ in range(int(rng.integers(800, 1500))):  # enough leaves to cover the scene
        r = (rmin ** -2 + rng.random() * (rmax ** -2 - rmin ** -2)) ** -0.5  # p(r) ~ r^-3
        c = np.array([rng.uniform(0, W), rng.uniform(0, H)])
        col = rng.uniform(0, 255, 3).astype(np.float32)
        x0, y0 = max(int(c[0] - r) - 1, 0), max(int(c[1] - r) - 1, 0)
        x1, y1 = min(int(c[0] + r) + 2, W), min(int(c[1] + r) + 2, H)
        if x1 <= x0 or y1 <= y0:
            continue
        m = np.zeros((y1 - y0, x1 - x0), np.uint8)  # drawn in the shape's own window: the scene stays cheap
        if rng.random() < 0.6:
            cv2.circle(m, (int(c[0]) - x0, int(c[1]) - y0), int(r), 1, -1)
        else:
            rect = ((float(c[0] - x0), float(c[1] - y0)), (2 * r, 2 * r * rng.uniform(0.3, 1.0)), rng.uniform(0, 180))
            cv2.fillPoly(m, [np.round(cv2.boxPoints(rect)).astype(np.int32)], 1)
        ys, xs = np.nonzero(m)
        g = rng.normal(size=2)
        shade = 1.0 + 0.25 * ((xs + x0 - c[0]) * g[0] + (ys + y0 - c[1]) * g[1]) / max(r, 1.0)
        img[ys + y0, xs + x0] = np.clip(col[None, :] * shade[:, None].astype(np.float32), 0, 255)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.6, 1.5))
    img += rng.normal(0, rng.uniform(1, 4), img.shape).astype(np.float32)
    grey = img @ np.array([0.299, 0.587, 0.114], np.float32)
    top = np.iinfo(np.dtype(dtype)).max
    return np.clip(np.rint(grey / 255.0 * top), 0, top).astype(dtype)


def _negative(kind: str, seed: int, cfg: PhantomConfig) -> VariantSample:
    rng = _rng(seed, kind)
    sp = float(rng.uniform(*cfg.spacing_mm)) * 2.0  # body films are read at coarser spacing than hands
    top = np.iinfo(np.dtype(cfg.dtype)).max
    if kind in ("chest", "long_bone"):
        att, meta = (_chest if kind == "chest" else _long_bone)(rng, sp)
        image = _to_film(att, sp, rng, cfg.dtype)
        return VariantSample(kind=kind, seed=seed, image=image, spacing_mm=sp, hands=[], meta=meta)
    # Photographs, blank and noise images come at typical camera / detector sizes scaled like the hands.
    scale = 0.12 / float(np.mean(cfg.spacing_mm))
    H = max(int(rng.uniform(480, 2400) * scale), 64)
    W = max(int(H * rng.uniform(0.75, 1.5)), 64)
    if kind == "photo":
        image = _photo(rng, (H, W), cfg.dtype)
        meta = {}
    elif kind == "blank":
        level = int(rng.choice([0, top, int(rng.integers(0, top + 1))]))
        image = np.full((H, W), level, np.dtype(cfg.dtype))
        meta = {"level": level}
    else:
        if rng.random() < 0.5:
            mean, sd = rng.uniform(0.2, 0.8) * top, rng.uniform(0.05, 0.3) * top
            image = np.clip(np.rint(rng.normal(mean, sd, (H, W))), 0, top).astype(cfg.dtype)
            meta = {"distribution": "normal", "mean": float(mean), "sd": float(sd)}
        else:
            image = rng.integers(0, top + 1, (H, W), endpoint=False).astype(cfg.dtype)
            meta = {"distribution": "uniform"}
    return VariantSample(kind=kind, seed=seed, image=image, spacing_mm=sp, hands=[], meta=meta)


# ---------------------------------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------------------------------


def make_variant(kind: str, seed: int, config: PhantomConfig | None = None, *, masks: bool = True,
                 cache: dict | None = None) -> VariantSample:
    """Build one variant film of ``kind`` with its ground truth.

    Kinds (:data:`KINDS`):

    * ``hand``: the ordinary upright film of the seed's hand (:func:`hand_seed` ``(seed, 0)``);
    * ``wrist``: a RAM-W600-like square crop around the carpus (distal radius and ulna, metacarpal bases), without
      any phalanx pixel; ``fingers``: digits 2-5 down to the metacarpal heads, without any carpal, radius or ulna
      pixel; ``partial``: the hand cut by a film edge through the palm or at the PIP joints;
    * ``two_hands``: a bilateral film, the left hand on the image's left and the right hand on its right, thumbs
      towards each other, one acquisition (same spacing and centre), each with its own size and vertical offset;
    * ``composite``: the seed's hand next to its own mirror image (as some archives build bilateral films), with a
      bright separator line now and then;
    * ``rot90``, ``rot180``, ``rot270``, ``mirrored``, ``rot90_mirrored``: the ordinary film turned and/or flipped;
    * ``markers``: the ordinary film with a lead side letter (sometimes with initials), a date and a ruler burned in
      where they stay clear of the hand; ``collimated``: with dark or bright collimator borders (a tilted field, now
      and then a plate edge) that never cut the hand above the wrist;
    * negatives without a hand: ``chest``, ``long_bone`` (tibia and fibula), ``photo`` (a dead-leaves scene in RGB
      converted to grey), ``blank`` (constant) and ``noise``.

    Args:
        kind: one of :data:`KINDS`.
        seed: any integer in ``[0, 2**63)``; the same ``(kind, seed, config)`` gives a bit-identical result.
        config: the :class:`PhantomConfig` of the hand(s) (default settings when None). Its ``spacing_mm`` also sizes
            the negatives (at twice the spacing: films of the body are read coarser) and its ``dtype`` is the image
            dtype.
        masks: False drops the bone masks from the result (labels and ROIs stay), which keeps a benchmark's memory
            low at full resolution.
        cache: an optional dict that keeps the generated source hands between calls, so that many kinds of one
            seed generate its hand once (keyed by generator seed and config; clear it when the seed changes).

    Returns:
        :class:`VariantSample`; ``hands`` left to right (empty for a negative).

    Raises:
        ValueError: unknown ``kind`` or ``seed`` out of range.
        TypeError: ``seed`` not an int or ``config`` not a :class:`PhantomConfig`.
        RuntimeError: a crop could not meet its definition (e.g. exclude every phalanx), which the generator's
            anatomy does not produce; the message names the kind.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown variant kind {kind!r}; known: {', '.join(KINDS)}")
    seed = _check_seed(seed)
    cfg = PhantomConfig() if config is None else config
    if not isinstance(cfg, PhantomConfig):
        raise TypeError(f"config must be a PhantomConfig or None, got {type(config).__name__}")
    if kind in NEGATIVE_KINDS:
        return _negative(kind, seed, cfg)
    return _hand_kind(kind, seed, cfg, masks, cache)


def turn_variant(v: VariantSample, rotation_deg: int, mirrored: bool = False) -> VariantSample:
    """The film ``v`` flipped left-right (when ``mirrored``) and then turned counter-clockwise by ``rotation_deg``
    (``np.rot90``; each hand's clockwise ``rotation_deg`` label falls by that angle), with its truth carried along: e.g. a bilateral or a wrist film lying on its side.

    Labels compose: a hand that was already turned or mirrored gets the combined orientation (in the flip-then-turn
    form of the module docstring). Boxes are mapped exactly (``masks=False`` samples need no masks for it); hands are
    re-ordered left to right (then top to bottom). ``meta`` is copied with a ``"turned"`` entry added; its other pixel
    positions (crops, marker boxes) keep referring to the film as it was built.

    Args:
        v: a :class:`VariantSample` (not modified).
        rotation_deg: 0, 90, 180 or 270.
        mirrored: flip left-right before turning.

    Returns:
        A new :class:`VariantSample` of the same kind and seed.

    Raises:
        ValueError: ``rotation_deg`` not one of 0, 90, 180, 270.
    """
    if rotation_deg not in (0, 90, 180, 270) or isinstance(rotation_deg, bool):
        raise ValueError(f"rotation_deg must be 0, 90, 180 or 270, got {rotation_deg!r}")
    hands = [_Hand(side=t.side, seed=t.source_seed, masks=dict(t.bone_masks), rois=dict(t.joint_rois),
                   rotation_deg=t.rotation_deg, mirrored=t.mirrored, fov=t.field_of_view) for t in v.hands]
    boxes = [t.box for t in v.hands]
    image = v.image
    if mirrored:
        flip = Transform.mirror(image.shape[1])
        image = _mirror(image, hands)
        boxes = [flip.apply_bounds(b) for b in boxes]
    for _ in range(rotation_deg // 90):
        turn = Transform.quarter_turn(image.shape)
        image = _rot90(image, hands, 1)
        boxes = [turn.apply_bounds(b) for b in boxes]
    if image is v.image:
        image = image.copy()
    out = [HandTruth(side=h.side, box=tuple(int(c) for c in b), rotation_deg=h.rotation_deg, mirrored=h.mirrored,
                     field_of_view=h.fov, source_seed=h.seed, bone_masks=h.masks, joint_rois=h.rois)
           for h, b in zip(hands, boxes)]
    out.sort(key=lambda t: (t.box[0] + t.box[2], t.box[1] + t.box[3]))
    meta = {**v.meta, "turned": {"rotation_deg": rotation_deg, "mirrored": bool(mirrored)}}
    return VariantSample(kind=v.kind, seed=v.seed, image=image, spacing_mm=v.spacing_mm, hands=out, meta=meta)


def write_variant_set(out: str | os.PathLike, n: int, seed: int, kinds: Sequence[str] | None = None,
                      config: PhantomConfig | None = None, *, log: Callable[[str], None] | None = None) -> Path:
    """Write ``n`` films of every kind as PNG files plus one ``labels.json`` into the folder ``out``.

    Film ``i`` of kind ``k`` is ``make_variant(k, seed + i, config)`` written as ``<k>_<seed + i>.png`` (8-bit, or
    16-bit for a ``uint16`` config); ``labels.json`` holds ``{"generator", "seed", "n", "kinds", "config",
    "films": [{"file", **VariantSample.labels()}]}`` in the order written. Every file is written atomically and the
    labels last, so a folder with a ``labels.json`` is complete.

    Args:
        out: output folder (created when missing; existing films of the same names are replaced).
        n: films per kind, >= 1.
        seed: first variant seed; ``seed + n - 1`` must stay below 2**63.
        kinds: kinds to write (default :data:`KINDS`).
        config: the hands' :class:`PhantomConfig` (default settings when None).
        log: called with one line per seed done (progress), or None.

    Returns:
        The path of ``labels.json``.

    Raises:
        ValueError: ``n`` < 1, an unknown kind, a seed out of range, or ``out`` is an existing file.
    """
    from ..datasets.fileio import atomic_write_bytes, atomic_write_json
    from .generator import GENERATOR_VERSION

    kinds = list(KINDS if kinds is None else kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown variant kind(s) {', '.join(map(repr, unknown))}; known: {', '.join(KINDS)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    _check_seed(seed)
    _check_seed(seed + n - 1)
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} exists and is not a folder")
    cfg = PhantomConfig() if config is None else config
    films = []
    for i in range(n):
        cache: dict = {}
        for kind in kinds:
            v = make_variant(kind, seed + i, cfg, masks=False, cache=cache)
            name = f"{kind}_{seed + i}.png"
            buf = io.BytesIO()
            Image.fromarray(v.image).save(buf, format="PNG")
            atomic_write_bytes(root / name, buf.getvalue())
            films.append({"file": name, **v.labels()})
        if log is not None:
            log(f"seed {seed + i}: {len(kinds)} film(s) written ({i + 1}/{n})")
    path = root / "labels.json"
    atomic_write_json(path, {"generator": GENERATOR_VERSION, "seed": seed, "n": n, "kinds": kinds,
                             "config": repr(cfg), "films": films}, indent=1)
    return path


__all__ = ["FIELDS_OF_VIEW", "HAND_KINDS", "HandTruth", "KINDS", "NEGATIVE_KINDS", "VariantSample", "hand_seed",
           "make_variant", "turn_variant", "write_variant_set"]
