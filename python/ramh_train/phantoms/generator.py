"""Assemble one synthetic PA hand radiograph with every RAM-H1200 annotation level (:func:`generate`)."""
from __future__ import annotations

import datetime as _dt
from dataclasses import replace

import numpy as np

from ramh_rt import anatomy
from ramh_rt.geometry import Roi, Transform

from ..datasets.sample import HandSample
from . import disease, juvenile, render, shapes, skeleton
from .config import PhantomConfig

GENERATOR_VERSION = "ramh-phantom-1"

#: What the SoftTissue class means in a phantom.
SOFT_TISSUE_DEFINITION = ("the whole hand and forearm silhouette inside the skin line, bones included (the union of "
                          "the soft-tissue outline and every bone mask), clipped to the exposed field")

# Independent random streams per concept: changing how one concept draws never shifts another's draws.
_STREAMS = {"side": 1, "patient": 2, "anatomy": 3, "layout": 4, "acquisition": 5, "noise": 6, "texture": 7,
            "distractor": 8, "scores": 9, "age": 10, "look": 11, "markers": 12}


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), _STREAMS[name]]))


def generate(seed: int, config: PhantomConfig | None = None, *, stem: str | None = None) -> HandSample:
    """Generate one synthetic PA hand radiograph with its ground truth.

    Deterministic: the same ``seed``, ``config`` and ``stem`` give a bit-identical sample (no global random state is
    used). Every concept draws from its own stream, so e.g. forcing scores through ``config`` changes only the disease
    geometry, never the anatomy, the acquisition or the noise.

    Args:
        seed: any integer in ``[0, 2**63)``.
        config: generator settings (:class:`PhantomConfig`; default settings when None).
        stem: file stem to use; it must end in ``_L`` or ``_R``, which then fixes the hand side. Default:
            ``SY_<centre>_P<seed>_<date>_<n>_<side>`` in the RAM-H1200 style.

    Returns:
        :class:`~ramh_train.datasets.sample.HandSample` with

        * ``image``: H x W ``uint8`` (or ``uint16`` per ``config.dtype``), bone bright on a dark background; H and W
          follow from the sampled field of view (mm) and ``spacing_mm``;
        * ``bone_masks``: all 30 classes of :data:`ramh_rt.anatomy.BONE_NAMES` except ``Sesamoid`` when the hand has
          none, H x W bool, overlapping where bones overlap on a PA view (``anatomy.OVERLAP_PAIRS``, sesamoids over
          their host bone); ``SoftTissue`` is the silhouette (see :data:`SOFT_TISSUE_DEFINITION`);
        * ``erosion_masks``: the three categories of :data:`ramh_rt.anatomy.EROSION_CATEGORIES`, H x W bool (empty
          masks for a hand without such lesions); every erosion pixel lies on its bone;
        * ``be_scores`` (16 keys, 0..5) and ``jsn_scores`` (15 keys, 0..4): the ground truth the geometry was built
          from;
        * ``joint_rois`` (22 oriented boxes, local y axis from distal to proximal) and ``joint_boxes`` (their
          axis-aligned bounds clipped to the image);
        * ``meta``: generator version, seed, centre, patient (``isRA``, ``sex``, severity), anatomy, acquisition,
          per-joint widths and geometry, lesions, distractors; for a juvenile hand (``config.skeletal_age``) also
          ``juvenile``: skeletal age, per long bone its epiphysis stage, physis width (mm) and the physis and
          epiphysis centres in pixels (``physis_centre_px``, ``epiphysis_centre_px``, ``physis_axis_px``), per carpal
          its size relative to the adult outline (0: not yet ossified, with an empty mask).

    Raises:
        ValueError: ``seed`` out of range, ``stem`` without a ``_L``/``_R`` suffix or contradicting ``config.side``.
        TypeError: ``seed`` not an integer or ``config`` not a :class:`PhantomConfig`.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must lie in [0, 2**63), got {seed}")
    cfg = PhantomConfig() if config is None else config
    if not isinstance(cfg, PhantomConfig):
        raise TypeError(f"config must be a PhantomConfig or None, got {type(config).__name__}")

    # Side: from the stem, else the config, else drawn.
    side = cfg.side
    if stem is not None:
        stem_side = anatomy.side_from_stem(str(stem))
        if stem_side is None:
            raise ValueError(f"stem must end in '_L' or '_R', got {stem!r}")
        if side is not None and side != stem_side:
            raise ValueError(f"stem {stem!r} names side {stem_side!r} but config.side is {side!r}")
        side = stem_side
    if side is None:
        side = "L" if _rng(seed, "side").random() < cfg.p_left else "R"

    patient, be, jsn, anat, sk, age = draw_hand(seed, cfg)
    juvenile_meta = None if age is None else juvenile.apply(sk, age, patient.sex)
    lesions = disease.plan_lesions(sk, be, patient, cfg, seed)

    # Layout and acquisition (another pose_seed: the same hand radiographed again).
    pose = seed if cfg.pose_seed is None else cfg.pose_seed
    # A child's film is collimated to the child's hand: the detector field shrinks with the hand.
    lcfg = cfg if age is None else replace(cfg, field_mm=tuple(
        (max(lo * juvenile.size_factor(age), 50.0), max(hi * juvenile.size_factor(age), 50.0))
        for lo, hi in cfg.field_mm))
    canvas, layout = _layout(sk, lcfg, _rng(pose, "layout"))
    arng = _rng(pose, "acquisition")
    profile = cfg.profiles[int(arng.integers(len(cfg.profiles)))]
    acq = render.sample_acquisition(arng, profile)
    field_rect = _collimation(canvas, sk, arng, cfg.collimation_probability)
    if profile.look is not None:  # its own stream: the film look never shifts another concept's draws
        acq.look = render.sample_look(_rng(pose, "look"), profile.look)

    H, W = canvas.height, canvas.width
    L = np.zeros((H, W), np.float32)
    masks: dict[str, np.ndarray] = {}
    boxes: dict[str, list[int]] = {}
    erosion = {c: np.zeros((H, W), bool) for c in anatomy.EROSION_CATEGORIES}
    lesion_px: list[dict] = []
    pending: list[tuple[disease.Lesion, tuple[int, int, int, int], np.ndarray]] = []
    tex_rng = _rng(seed, "texture")
    by_part: dict[int, list[disease.Lesion]] = {}
    for les in lesions:
        by_part.setdefault(les.part_index, []).append(les)
    for i, part in enumerate(sk.parts):
        pr = render.render_part(canvas, part, by_part.get(i, []), acq, anat.density, tex_rng)
        if pr is None:
            continue
        x0, y0, x1, y1 = pr.window
        L[y0:y1, x0:x1] += pr.attenuation
        m = masks.get(part.cls)
        if m is None:
            m = masks[part.cls] = np.zeros((H, W), bool)
            boxes[part.cls] = [x0, y0, x1, y1]
        else:
            b = boxes[part.cls]
            boxes[part.cls] = [min(b[0], x0), min(b[1], y0), max(b[2], x1), max(b[3], y1)]
        m[y0:y1, x0:x1] |= pr.mask
        pending += [(les, pr.window, lm) for les, lm in pr.lesion_masks]
    if juvenile_meta is not None:  # a carpal not yet ossified: an empty mask (the class is known to be absent)
        for name in anatomy.BONE_NAMES:
            if name not in masks and name not in ("SoftTissue", "Sesamoid"):
                masks[name] = np.zeros((H, W), bool)
                boxes[name] = [0, 0, 0, 0]
    conflicts = _resolve_conflicts(masks, boxes, [p.cls for p in sk.parts])
    # Erosion pixels are kept only where their bone's (final) mask is.
    by_area: dict[str, list[tuple[tuple[int, int, int, int], np.ndarray]]] = {}
    for les, (x0, y0, x1, y1), lm in pending:
        lm = lm & masks[les.cls][y0:y1, x0:x1]
        erosion[les.category][y0:y1, x0:x1] |= lm
        lesion_px.append({**les.as_dict(), "pixels": int(lm.sum())})
        by_area.setdefault(les.area or "Non-SvdH", []).append(((x0, y0, x1, y1), lm))
    eroded_px = {k: _union_count(v) for k, v in by_area.items()}

    # Soft tissue and distractors.
    st_mask = render.add_soft_tissue(L, canvas, sk.soft_tissue, 8.0 * anat.scale)
    distractors = _distractors(L, canvas, sk, cfg, _rng(pose, "distractor"))
    bones = np.zeros((H, W), bool)
    for name, m in masks.items():
        x0, y0, x1, y1 = boxes[name]
        bones[y0:y1, x0:x1] |= m[y0:y1, x0:x1]
    image = render.expose(L, canvas, acq, _rng(pose, "noise"), cfg.noise, field_rect, cfg.dtype, st_mask, bones)
    del L
    masks["SoftTissue"] = st_mask | bones
    del bones
    if field_rect is not None:  # annotators mark only what was exposed
        fx0, fy0, fx1, fy1 = field_rect
        for m in list(masks.values()) + list(erosion.values()):
            m[:fy0] = False
            m[fy1:] = False
            m[:, :fx0] = False
            m[:, fx1:] = False

    rois = {}
    jboxes = {}
    for st in anatomy.AREA_STEMS:
        r = sk.rois[st]
        c = canvas.to_px(r.centre[None])[0]
        dpx = canvas.dir_to_px(r.distal)
        ang = float(np.degrees(np.arctan2(-dpx[0], -dpx[1])))
        box = Roi(float(c[0]), float(c[1]), float(r.w_mm / canvas.spacing), float(r.h_mm / canvas.spacing),
                         ang)
        rois[st] = box

    joints_meta = {}
    for name, j in sk.joints.items():
        pp = canvas.to_px(np.vstack([j.prox_point, j.dist_point, j.centre]))
        joints_meta[name] = {"proximal": list(j.proximal), "distal": list(j.distal), "gap_mm": float(j.gap_mm),
                             "prox_point_px": pp[0].tolist(), "dist_point_px": pp[1].tolist(),
                             "centre_px": pp[2].tolist(), "axis_px": canvas.dir_to_px(j.axis).tolist(),
                             "width_mm": float(j.width_mm)}

    if juvenile_meta is not None:
        _juvenile_to_px(juvenile_meta, canvas, W if side == "L" else None)

    if side == "L":
        image, masks, erosion, rois, joints_meta, field_rect = _mirror(image, masks, erosion, rois, joints_meta,
                                                                       field_rect, W)
        for dis in distractors:
            dis["centre_px"] = [W - dis["centre_px"][0], dis["centre_px"][1]]
    markers: list[dict] = []
    if acq.look is not None and acq.look["markers"]:
        markers = _burn_markers(image, masks["SoftTissue"], field_rect, side, canvas.spacing, _rng(pose, "markers"))
    # The rotation as seen in the image (a left hand is the mirror image of the right hand drawn).
    layout["rotation_deg_image"] = layout["rotation_deg"] if side == "R" else -layout["rotation_deg"]
    for st, box in rois.items():
        x0, y0, x1, y1 = box.bbox()
        jboxes[st] = (float(np.clip(x0, 0, W)), float(np.clip(y0, 0, H)), float(np.clip(x1, 0, W)),
                      float(np.clip(y1, 0, H)))

    if stem is None:
        date = _dt.date(2008, 1, 1) + _dt.timedelta(days=seed % 5000)
        stem = f"SY_{profile.code}_P{seed % 10**7:07d}_{date:%Y%m%d}_{seed % 10000:04d}_{side}"
    if "Sesamoid" in masks and not masks["Sesamoid"].any():
        del masks["Sesamoid"]
    meta = {
        "generator": GENERATOR_VERSION, "seed": seed, "centre": profile.code, "side": side,
        **patient.as_dict(), "anatomy": anat.as_dict(), "acquisition": acq.as_dict(), "layout": layout,
        "joints": joints_meta, "lesions": lesion_px, "eroded_px": eroded_px, "distractors": distractors,
        "mask_conflicts_px": conflicts, "field_rect": list(field_rect) if field_rect is not None else None,
        "soft_tissue_definition": SOFT_TISSUE_DEFINITION, **({"markers": markers} if markers else {}),
        "totals": anatomy.hand_totals({**be, **jsn}),
    }
    if juvenile_meta is not None:
        meta["juvenile"] = juvenile_meta
    return HandSample(stem=str(stem), image=image, side=side, spacing_mm=float(canvas.spacing),
                      bone_masks={n: masks[n] for n in anatomy.BONE_NAMES if n in masks}, erosion_masks=erosion,
                      joint_boxes=jboxes, joint_rois=rois, be_scores=dict(be), jsn_scores=dict(jsn), meta=meta)


def draw_hand(seed: int, cfg: PhantomConfig) -> tuple[disease.Patient, dict[str, int], dict[str, int],
                                                       skeleton.Anatomy, skeleton.Skeleton, float | None]:
    """The patient, scores (``be``, ``jsn``), anatomy and placed skeleton of hand ``seed`` exactly as :func:`generate`
    draws them, and its skeletal age (years; None for an adult hand). A juvenile hand's skeleton is returned before
    :func:`.juvenile.apply` (its joints are placed; the epiphyses are not cut yet).

    Raises:
        ValueError: as :func:`generate` for a bad ``cfg``.
    """
    # Juvenile or adult (its own stream: an adult hand is drawn exactly as without skeletal_age).
    age = None
    if cfg.skeletal_age is not None:
        age = juvenile.sample_age(_rng(seed, "age"), cfg.skeletal_age, cfg.juvenile_fraction)
    # A child is healthy: no RA (so all scores are 0 and no lesions are planned).
    pcfg = cfg if age is None else replace(cfg, ra_fraction=0.0)
    patient = disease.sample_patient(_rng(seed, "patient"), pcfg)
    be, jsn = disease.sample_scores(_rng(seed, "scores"), patient, pcfg)
    hand_scale = cfg.hand_scale
    if age is not None:
        k = juvenile.size_factor(age)
        hand_scale = (hand_scale[0] * k, hand_scale[1] * k)
    anat = skeleton.sample_anatomy(_rng(seed, "anatomy"), hand_scale, ulnar_drift=patient.ulnar_drift,
                                   sesamoid_probability=cfg.sesamoid_probability, density=patient.bmd,
                                   shape=cfg.shape)
    if age is not None:
        juvenile.adjust_proportions(anat)
    gaps = disease.joint_gaps(seed, anat.normal_gap, jsn)
    return patient, be, jsn, anat, skeleton.build(anat, gaps), age


def _burn_markers(image: np.ndarray, silhouette: np.ndarray, field_rect: tuple[int, int, int, int] | None, side: str,
                  sp: float, rng: np.random.Generator) -> list[dict]:
    """Lead side marker, date and ruler burned into the exposed field, clear of the silhouette (image modified in
    place; no mask changes: annotators do not mark them). Returns what was drawn."""
    from .variants import burn_markers  # variants builds on generate(): imported here, not at module load

    occupied = silhouette.copy()
    if field_rect is not None:
        x0, y0, x1, y1 = field_rect
        occupied[:y0] = True
        occupied[y1:] = True
        occupied[:, :x0] = True
        occupied[:, x1:] = True
    return burn_markers(image, occupied, side, sp, rng)


def _union_count(pieces: list[tuple[tuple[int, int, int, int], np.ndarray]]) -> int:
    """Pixels in the union of window-local masks."""
    x0 = min(w[0] for w, _ in pieces)
    y0 = min(w[1] for w, _ in pieces)
    x1 = max(w[2] for w, _ in pieces)
    y1 = max(w[3] for w, _ in pieces)
    acc = np.zeros((y1 - y0, x1 - x0), bool)
    for (a, b, c, d), m in pieces:
        acc[b - y0:d - y0, a - x0:c - x0] |= m
    return int(acc.sum())


def _layout(sk: skeleton.Skeleton, cfg: PhantomConfig, rng: np.random.Generator
            ) -> tuple[render.Canvas, dict]:
    """Spacing, rotation, field of view and translation; the whole hand (all bones, soft tissue except the forearm's
    run-out) always lies inside the image with a margin."""
    sp = float(rng.uniform(*cfg.spacing_mm))
    rot = float(np.clip(rng.normal(0.0, cfg.rotation_sd_deg), -cfg.rotation_max_deg, cfg.rotation_max_deg))
    fw = float(rng.uniform(*cfg.field_mm[0]))
    fh = float(rng.uniform(*cfg.field_mm[1]))
    a = np.deg2rad(rot)
    # Counter-clockwise on screen (y down) for positive angles, as Roi.
    Rm = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    rp = sk.fit_points() @ Rm.T
    lo, hi = rp.min(axis=0), rp.max(axis=0)
    margin = 6.0
    need_w = hi[0] - lo[0] + 2 * margin
    need_h = hi[1] - lo[1] + 2 * margin
    fw = max(fw, need_w)
    fh = max(fh, need_h)
    # Horizontal position anywhere it fits; the fingertips near the top (the forearm runs off the bottom).
    ox = margin + rng.uniform(0.0, fw - need_w) - lo[0]
    oy = margin + rng.uniform(0.0, min(fh - need_h, 30.0)) - lo[1]
    W = int(round(fw / sp))
    H = int(round(fh / sp))
    A = Rm / sp
    t = np.array([ox, oy]) / sp
    canvas = render.Canvas(height=H, width=W, spacing=sp, A=A, t=t)
    return canvas, {"spacing_mm": sp, "rotation_deg": rot, "field_mm": [fw, fh], "offset_mm": [float(ox), float(oy)],
                    "size_px": [W, H]}


def _collimation(canvas: render.Canvas, sk: skeleton.Skeleton, rng: np.random.Generator, p: float
                 ) -> tuple[int, int, int, int] | None:
    """Collimated field (x0, y0, x1, y1) px that never cuts the hand (it may cut the forearm), or None."""
    u = rng.random(4)
    if rng.random() >= p:
        return None
    H, W, sp = canvas.height, canvas.width, canvas.spacing
    pts = canvas.to_px(sk.fit_points())
    gap = 3.0 / sp
    hx0, hy0 = pts.min(axis=0) - gap
    hx1, hy1 = pts.max(axis=0) + gap
    x0 = int(np.clip(u[0] * max(hx0, 0), 0, W))
    y0 = int(np.clip(u[1] * max(hy0, 0), 0, H))
    x1 = int(np.clip(W - u[2] * max(W - hx1, 0), 0, W))
    y1 = int(np.clip(H - u[3] * 0.6 * max(H - hy1, 0), 0, H))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    return x0, y0, x1, y1


def _resolve_conflicts(masks: dict[str, np.ndarray], boxes: dict[str, list[int]], order: list[str]) -> int:
    """Give pixels claimed by two bones that must not overlap to the one placed first (forearm, carpus, metacarpals,
    phalanges); the geometry is built to keep such pairs apart, this only guards the rare near-contact. Returns the
    number of pixels reassigned."""
    names = list(dict.fromkeys(order))
    moved = 0
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if skeleton.allowed_overlap(a, b):
                continue
            ba, bb = boxes[a], boxes[b]
            x0, y0 = max(ba[0], bb[0]), max(ba[1], bb[1])
            x1, y1 = min(ba[2], bb[2]), min(ba[3], bb[3])
            if x1 <= x0 or y1 <= y0:
                continue
            both = masks[a][y0:y1, x0:x1] & masks[b][y0:y1, x0:x1]
            n = int(both.sum())
            if n:
                masks[b][y0:y1, x0:x1] &= ~both
                moved += n
    return moved


def _distractors(L: np.ndarray, canvas: render.Canvas, sk: skeleton.Skeleton, cfg: PhantomConfig,
                 rng: np.random.Generator) -> list[dict]:
    """Metal ring on a finger and/or an intravenous cannula on the dorsum of the hand (added to ``L``; no mask)."""
    out = []
    u = rng.random(8)
    if u[0] < cfg.ring_probability:
        d = int(rng.choice([3, 4, 4, 4, 5]))
        pp = sk.part(f"PP{d}")
        length = float(np.ptp(pp.body @ pp.axis))
        centre = pp.origin + (0.35 + 0.25 * u[1]) * length * pp.axis
        half = float(np.ptp(pp.body @ shapes.perp(pp.axis))) * 0.5 + sk.anatomy.soft_margin + 0.8
        band = 2.0 + 2.5 * u[2]
        poly = render.ring_polygon(centre, pp.axis, half, band)
        render.add_polygon(L, canvas, poly, render.MU_METAL * (0.8 + 0.6 * u[3]), blur_mm=0.08, rim=1.0)
        out.append({"type": "Ring", "finger": d, "centre_px": canvas.to_px(centre[None])[0].tolist()})
    if u[4] < cfg.cannula_probability:
        mc2, mc3 = sk.part("MC2"), sk.part("MC3")
        base = 0.5 * (mc2.origin + mc3.origin) + sk.hand_axis * (10.0 + 25.0 * u[5])
        ang = np.deg2rad(-35.0 + 70.0 * u[6])
        Rm = shapes.rotation(ang)
        d = Rm @ sk.hand_axis
        n = shapes.perp(d)
        tube_len, tube_w = 28.0, 1.3
        tube = np.array([base + 0.5 * tube_w * n, base - 0.5 * tube_w * n, base - 0.5 * tube_w * n + tube_len * d,
                         base + 0.5 * tube_w * n + tube_len * d])
        hub_c = base - 5.0 * d
        hub = np.array([hub_c + 3.2 * n - 6.0 * d, hub_c - 3.2 * n - 6.0 * d, hub_c - 3.2 * n + 6.0 * d,
                        hub_c + 3.2 * n + 6.0 * d])
        needle = np.array([base + 0.3 * n, base - 0.3 * n, base - 0.3 * n + 9.0 * d, base + 0.3 * n + 9.0 * d])
        tape = np.array([hub_c + 14 * n - 10 * d, hub_c - 14 * n - 10 * d, hub_c - 14 * n + 22 * d,
                         hub_c + 14 * n + 22 * d])
        render.add_polygon(L, canvas, tape, 0.03, blur_mm=0.5)
        render.add_polygon(L, canvas, tube, 0.12, blur_mm=0.1)
        render.add_polygon(L, canvas, shapes.chaikin(hub, 2), 0.25, blur_mm=0.1, rim=0.25)
        render.add_polygon(L, canvas, needle, 1.6, blur_mm=0.05)
        out.append({"type": "Intravenous cannula", "centre_px": canvas.to_px(base[None])[0].tolist()})
    return out


def _juvenile_to_px(jm: dict, canvas: render.Canvas, mirror_width: int | None) -> None:
    """Map the juvenile description's hand-frame points to image pixels (``*_px`` keys), mirrored (x -> W - x) for a
    left hand; the hand-frame points are dropped."""
    def px(p):
        q = canvas.to_px(np.asarray(p, np.float64)[None])[0]
        return [float(mirror_width - q[0]) if mirror_width is not None else float(q[0]), float(q[1])]

    for e in jm["epiphyses"].values():
        for key in ("physis_centre", "epiphysis_centre"):
            if key in e:
                p = e.pop(key)
                e[key + "_px"] = None if p is None else px(p)
        if "physis_axis" in e:
            a = canvas.dir_to_px(np.asarray(e.pop("physis_axis")))
            e["physis_axis_px"] = [float(-a[0]) if mirror_width is not None else float(a[0]), float(a[1])]


def _mirror(image, masks, erosion, rois, joints_meta, field_rect, W):
    """Mirror a right-hand rendering into a left hand (x -> W - x)."""
    image = np.ascontiguousarray(image[:, ::-1])
    masks = {k: np.ascontiguousarray(v[:, ::-1]) for k, v in masks.items()}
    erosion = {k: np.ascontiguousarray(v[:, ::-1]) for k, v in erosion.items()}
    flip = Transform.mirror(W)
    rois = {k: flip.apply_roi(b) for k, b in rois.items()}
    for j in joints_meta.values():
        for key in ("prox_point_px", "dist_point_px", "centre_px"):
            j[key] = flip.apply(j[key]).tolist()
        j["axis_px"] = [-j["axis_px"][0], j["axis_px"][1]]
    if field_rect is not None:
        x0, y0, x1, y1 = field_rect
        field_rect = (W - x1, y0, W - x0, y1)
    return image, masks, erosion, rois, joints_meta, field_rect
