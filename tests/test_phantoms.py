"""Tests of the synthetic phantom generator: determinism, completeness and the self-consistency of its ground truth.

Images are generated at coarse spacings (0.5 mm/px, or 0.2-0.25 mm/px where a measurement needs the resolution) to
keep the file fast.
"""
from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from ramh_rt import anatomy
from ramh_train.datasets.overlay import render_overlay
from ramh_train.datasets.sample import HandSample
from ramh_train.phantoms import PhantomConfig, generate, shapes, skeleton
from ramh_train.phantoms.disease import Patient, sample_scores

SMALL = PhantomConfig(spacing_mm=(0.5, 0.5))
MEDIUM = PhantomConfig(spacing_mm=(0.25, 0.25))


def _cfg(base: PhantomConfig, **kw) -> PhantomConfig:
    return replace(base, **kw)


def _pixel_centres(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.stack([xs + 0.5, ys + 0.5], axis=1)


# ---------------------------------------------------------------------------------------------------------------------
# Determinism and completeness
# ---------------------------------------------------------------------------------------------------------------------


def _assert_same(a: HandSample, b: HandSample) -> None:
    assert a.stem == b.stem and a.side == b.side and a.spacing_mm == b.spacing_mm
    np.testing.assert_array_equal(a.image, b.image)
    assert a.bone_masks.keys() == b.bone_masks.keys()
    for k in a.bone_masks:
        np.testing.assert_array_equal(a.bone_masks[k], b.bone_masks[k])
    for k in a.erosion_masks:
        np.testing.assert_array_equal(a.erosion_masks[k], b.erosion_masks[k])
    assert a.joint_boxes == b.joint_boxes and a.joint_rois == b.joint_rois
    assert a.be_scores == b.be_scores and a.jsn_scores == b.jsn_scores
    assert json.dumps(a.meta, sort_keys=True) == json.dumps(b.meta, sort_keys=True)


def test_same_seed_gives_a_bit_identical_sample():
    a = generate(11, SMALL)
    np.random.seed(0)  # global state must not matter
    _ = np.random.random(100)
    b = generate(11, SMALL)
    _assert_same(a, b)
    c = generate(12, SMALL)
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)
    assert a.meta["anatomy"] != c.meta["anatomy"]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_field_is_filled(seed):
    s = generate(seed, SMALL)
    H, W = s.image.shape
    assert s.image.dtype == np.uint8 and s.image.ndim == 2
    assert s.side in ("L", "R") and s.stem.endswith("_" + s.side)
    assert anatomy.side_from_stem(s.stem) == s.side
    assert SMALL.spacing_mm[0] <= s.spacing_mm <= SMALL.spacing_mm[1]
    required = [n for n in anatomy.BONE_NAMES if n != "Sesamoid"]
    for name in required:
        m = s.bone_masks[name]
        assert m.dtype == bool and m.shape == (H, W), name
        assert m.sum() > 0, f"{name} is empty"
    assert set(s.bone_masks) <= set(anatomy.BONE_NAMES)
    if "Sesamoid" in s.bone_masks:
        assert s.bone_masks["Sesamoid"].any()
    # SoftTissue contains every bone.
    bones = np.any([m for k, m in s.bone_masks.items() if k != "SoftTissue"], axis=0)
    assert not (bones & ~s.bone_masks["SoftTissue"]).any()
    assert set(s.erosion_masks) == set(anatomy.EROSION_CATEGORIES)
    for m in s.erosion_masks.values():
        assert m.dtype == bool and m.shape == (H, W)
    assert set(s.be_scores) == set(anatomy.BE_KEYS) and set(s.jsn_scores) == set(anatomy.JSN_KEYS)
    assert all(0 <= v <= anatomy.BE_MAX and isinstance(v, int) for v in s.be_scores.values())
    assert all(0 <= v <= anatomy.JSN_MAX and isinstance(v, int) for v in s.jsn_scores.values())
    assert set(s.joint_rois) == set(anatomy.AREA_STEMS) == set(s.joint_boxes)
    for stem, (x0, y0, x1, y1) in s.joint_boxes.items():
        assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H, stem
        bx0, by0, bx1, by1 = s.joint_rois[stem].bbox()
        assert x0 == pytest.approx(max(bx0, 0)) and x1 == pytest.approx(min(bx1, W))
    for key in ("isRA", "sex", "severity", "centre", "generator", "joints", "lesions", "soft_tissue_definition"):
        assert key in s.meta
    assert s.totals()["svdh"] == s.meta["totals"]["svdh"]


def test_image_dtype_size_and_spacing_follow_the_config():
    cfg = _cfg(SMALL, dtype="uint16", spacing_mm=(0.4, 0.6), field_mm=((200.0, 210.0), (250.0, 260.0)))
    for seed in (0, 1):
        s = generate(seed, cfg)
        assert s.image.dtype == np.uint16 and s.image.max() > 255
        assert 0.4 <= s.spacing_mm <= 0.6
        fw, fh = s.meta["layout"]["field_mm"]
        assert 200.0 <= fw and 250.0 <= fh  # grows only when the hand would not fit
        assert s.image.shape == (round(fh / s.spacing_mm), round(fw / s.spacing_mm))
    u8 = generate(0, _cfg(cfg, dtype="uint8"))
    # Same acquisition quantised to 8 bits.
    assert np.abs(u8.image.astype(np.int32) - np.rint(generate(0, cfg).image / 257.0)).max() <= 1


def test_default_images_are_about_2000_by_2500():
    cfg = PhantomConfig()
    (w0, w1), (h0, h1) = cfg.field_mm
    s0, s1 = cfg.spacing_mm
    assert 0.1 <= s0 <= s1 <= 0.2
    assert 1300 <= w0 / s1 and w1 / s0 <= 2500 and 1600 <= h0 / s1 and h1 / s0 <= 3000
    s = generate(0, cfg)
    H, W = s.image.shape
    assert 1300 <= W <= 2600 and 1600 <= H <= 3000 and s0 <= s.spacing_mm <= s1
    assert s.image.dtype == np.uint8


# ---------------------------------------------------------------------------------------------------------------------
# Left / right
# ---------------------------------------------------------------------------------------------------------------------


def test_left_hand_is_the_mirror_of_the_right():
    r = generate(5, _cfg(SMALL, side="R"))
    left = generate(5, _cfg(SMALL, side="L"))
    H, W = r.image.shape
    assert r.stem.endswith("_R") and left.stem.endswith("_L") and r.stem[:-2] == left.stem[:-2]
    np.testing.assert_array_equal(left.image, r.image[:, ::-1])
    assert left.bone_masks.keys() == r.bone_masks.keys()
    for k in r.bone_masks:
        np.testing.assert_array_equal(left.bone_masks[k], r.bone_masks[k][:, ::-1])
    for k in r.erosion_masks:
        np.testing.assert_array_equal(left.erosion_masks[k], r.erosion_masks[k][:, ::-1])
    assert left.be_scores == r.be_scores and left.jsn_scores == r.jsn_scores
    for stem in anatomy.AREA_STEMS:
        a, b = r.joint_rois[stem], left.joint_rois[stem]
        assert b.cx == pytest.approx(W - a.cx) and b.cy == pytest.approx(a.cy)
        assert (b.w, b.h) == (a.w, a.h) and b.angle == pytest.approx(-a.angle)
        x0, y0, x1, y1 = r.joint_boxes[stem]
        assert left.joint_boxes[stem] == pytest.approx((W - x1, y0, W - x0, y1))
    # The thumb is on the left of the image for a right hand (PA), on the right for a left hand.
    assert r.joint_rois["MCP-T"].cx < r.joint_rois["MCP-S"].cx
    assert left.joint_rois["MCP-T"].cx > left.joint_rois["MCP-S"].cx


def test_stem_fixes_the_side_and_bad_stems_are_refused():
    s = generate(3, SMALL, stem="JP_TEST_P0001_20200101_0001_L")
    assert s.side == "L" and s.stem == "JP_TEST_P0001_20200101_0001_L"
    with pytest.raises(ValueError, match="stem"):
        generate(3, SMALL, stem="no_side_suffix")
    with pytest.raises(ValueError, match="side"):
        generate(3, _cfg(SMALL, side="R"), stem="X_L")


# ---------------------------------------------------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------------------------------------------------


def test_masks_overlap_only_for_plausible_pairs_and_the_benchmark_pairs_do_overlap():
    present: dict[tuple[str, str], int] = {}
    seeds = range(4)
    for seed in seeds:
        s = generate(seed, MEDIUM)
        names = [n for n in s.bone_masks if n != "SoftTissue"]
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                ov = int((s.bone_masks[a] & s.bone_masks[b]).sum())
                if ov:
                    assert skeleton.allowed_overlap(a, b), f"seed {seed}: {a} and {b} overlap by {ov} px"
                    key = tuple(sorted((a, b)))
                    present[key] = present.get(key, 0) + 1
        assert s.meta["mask_conflicts_px"] < 20  # the geometry itself keeps other pairs apart
    for a, b in anatomy.OVERLAP_PAIRS:
        assert present.get(tuple(sorted((a, b))), 0) >= len(seeds) - 1, f"{a}/{b} rarely overlap"


def test_rasteriser_uses_pixel_centres_and_shared_edges_do_not_double_count():
    rng = np.random.default_rng(3)
    for _ in range(20):
        k = int(rng.integers(3, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = rng.uniform(3, 12, k)
        poly = np.stack([15 + r * np.cos(ang), 14 + r * np.sin(ang)], axis=1)
        m = shapes.fill_polygon(poly, 2, 1, 28, 27)
        ys, xs = np.mgrid[0:27, 0:28]
        centres = np.stack([xs.ravel() + 2 + 0.5, ys.ravel() + 1 + 0.5], axis=1)
        ref = shapes.points_in_polygon(centres, poly).reshape(27, 28)
        np.testing.assert_array_equal(m, ref)
    left = np.array([[1.3, 1.7], [6.2, 1.7], [6.2, 9.1], [1.3, 9.1]])
    right = np.array([[6.2, 1.7], [11.9, 1.7], [11.9, 9.1], [6.2, 9.1]])
    a, b = shapes.fill_polygon(left, 0, 0, 14, 12), shapes.fill_polygon(right, 0, 0, 14, 12)
    assert not (a & b).any() and (a | b).sum() == 11 * 7


# ---------------------------------------------------------------------------------------------------------------------
# Erosions
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stem", anatomy.BE_STEMS)
def test_erosion_pixels_lie_on_the_area_anchor_bones(stem):
    s = generate(21, _cfg(SMALL, ra_fraction=0.0, force_be={stem: 4}))
    ero = s.erosion_union()
    assert ero.sum() > 0
    anchors = np.any([s.bone_masks[b] for b in anatomy.area(stem).anchors], axis=0)
    assert not (ero & ~anchors).any()
    assert not s.erosion_masks["Non-SvdH-BE"].any()
    assert {les["area"] for les in s.meta["lesions"]} == {stem}


def test_non_svdh_erosions_avoid_svdh_areas_and_do_not_count():
    cfg = _cfg(SMALL, ra_fraction=1.0, force_be=0, non_svdh_rate=4.0)
    hits = 0
    for seed in range(4):
        s = generate(seed, cfg)
        assert not s.erosion_masks["SvdH-BE-90"].any() and not s.erosion_masks["SvdH-BE-50"].any()
        ns = s.erosion_masks["Non-SvdH-BE"]
        sites = np.any([s.bone_masks[b] for b in ("MP2", "MP3", "MP4", "MP5", "DP2", "DP3", "DP4", "DP5", "Capitate",
                                                  "Hamate", "Pisiform_Triquetrum")], axis=0)
        assert not (ns & ~sites).any()
        assert sum(s.be_scores.values()) == 0
        hits += int(ns.any())
    assert hits >= 2


def test_eroded_area_rises_with_the_score():
    for seed in (0, 1):
        totals, per_area = [], []
        for g in range(anatomy.BE_MAX + 1):
            s = generate(seed, _cfg(MEDIUM, ra_fraction=0.0, force_be=g, force_jsn=0))
            totals.append(int(s.erosion_union().sum()))
            per_area.append({st: s.meta["eroded_px"].get(st, 0) for st in anatomy.BE_STEMS})
        assert totals[0] == 0
        assert all(b > a for a, b in zip(totals, totals[1:])), totals
        for st in anatomy.BE_STEMS:
            series = [pa[st] for pa in per_area[1:]]
            assert series[0] > 0, (st, series)
            assert all(b >= a for a, b in zip(series, series[1:])), (seed, st, series)
            assert series[-1] > 3 * series[0], (st, series)


def test_erosion_categories_follow_rater_agreement_bands():
    s = generate(2, _cfg(SMALL, ra_fraction=0.0, force_be=5))
    cats = {les["category"] for les in s.meta["lesions"]}
    assert cats <= {"SvdH-BE-90", "SvdH-BE-50"} and "SvdH-BE-90" in cats
    lab = s.erosion_label_map()
    assert set(np.unique(lab)) <= {0, 1, 2, 3}


# ---------------------------------------------------------------------------------------------------------------------
# Joint-space narrowing
# ---------------------------------------------------------------------------------------------------------------------


def _mask_gap_px(s: HandSample, name: str) -> float:
    """Joint-space width along the joint axis measured on the masks: per 1-px lateral slab through the central half of
    the joint, (nearest distal-bone pixel centre) - (farthest proximal-bone pixel centre); the minimum over slabs."""
    j = s.meta["joints"][name]
    a = np.array(j["axis_px"])
    n = np.array([-a[1], a[0]])
    c = np.array(j["centre_px"])
    half = 0.25 * j["width_mm"] / s.spacing_mm

    def proj(classes):
        m = np.any([s.bone_masks[k] for k in classes], axis=0)
        p = _pixel_centres(m) - c
        ax, lat = p @ a, p @ n
        keep = (np.abs(lat) <= half) & (np.abs(ax) <= 4 * half)
        return ax[keep], np.floor(lat[keep]).astype(int)

    ap, lp = proj(j["proximal"])
    ad, ld = proj(j["distal"])
    gaps = []
    for b in np.intersect1d(lp, ld):
        gaps.append(ad[ld == b].min() - ap[lp == b].max())
    assert gaps, name
    return float(min(gaps))


def test_joint_space_width_falls_as_jsn_rises():
    cfg = _cfg(PhantomConfig(spacing_mm=(0.2, 0.2)), ra_fraction=0.0, force_be=0)
    samples = [generate(4, _cfg(cfg, force_jsn=g)) for g in range(anatomy.JSN_MAX + 1)]
    fingers = [st for st in anatomy.JSN_STEMS if anatomy.area(st).region == "finger"]
    for st in fingers:
        widths = [_mask_gap_px(s, st) for s in samples]
        design = [s.meta["joints"][st]["gap_mm"] / s.spacing_mm for s in samples]
        assert all(b < a for a, b in zip(design, design[1:])) and design[-1] == 0.0
        assert all(b < a for a, b in zip(widths, widths[1:])), (st, widths)
        # Pixel centres sit up to a pixel inside each bone edge: measured = design + [0, 2) px.
        for w_meas, w_design in zip(widths, design):
            assert w_design - 0.5 <= w_meas <= w_design + 2.5, (st, widths, design)
    # Wrist joints (articular rims overlap their partners on a PA view): the bones move along the joint axis, so the
    # centroids of their parts near the joint (within 12 mm of it along the axis) approach each other.
    for st in [st for st in anatomy.JSN_STEMS if anatomy.area(st).region == "wrist"]:
        dists = []
        for s in samples:
            j = s.meta["joints"][st]
            a = np.array(j["axis_px"])
            c = np.array(j["centre_px"])
            reach = 12.0 / s.spacing_mm

            def near_centroid(classes):
                p = _pixel_centres(np.any([s.bone_masks[k] for k in classes], axis=0))
                p = p[np.abs((p - c) @ a) <= reach]
                return p.mean(axis=0)

            dists.append(float((near_centroid(j["distal"]) - near_centroid(j["proximal"])) @ a))
        assert all(b < a for a, b in zip(dists, dists[1:])), (st, dists)


def test_jsn_leaves_the_rest_of_the_sample_alone():
    a = generate(9, _cfg(SMALL, force_jsn={"PIP-M": 0}))
    b = generate(9, _cfg(SMALL, force_jsn={"PIP-M": 3}))
    assert a.be_scores == b.be_scores
    assert {k: v for k, v in a.jsn_scores.items() if k != "JSN_PIP-M"} == \
        {k: v for k, v in b.jsn_scores.items() if k != "JSN_PIP-M"}
    assert a.meta["anatomy"] == b.meta["anatomy"] and a.meta["acquisition"] == b.meta["acquisition"]
    assert a.meta["joints"]["PIP-M"]["gap_mm"] > b.meta["joints"]["PIP-M"]["gap_mm"]
    assert a.meta["joints"]["PIP-I"]["gap_mm"] == b.meta["joints"]["PIP-I"]["gap_mm"]


# ---------------------------------------------------------------------------------------------------------------------
# ROIs
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 7])
def test_rois_contain_their_joints(seed):
    s = generate(seed, _cfg(MEDIUM, side="R"))
    for stem in anatomy.AREA_STEMS:
        box = s.joint_rois[stem]
        a = anatomy.area(stem)
        assert box.w > 0 and box.h > 0
        if stem in s.meta["joints"]:
            j = s.meta["joints"][stem]
            pts = np.array([j["prox_point_px"], j["dist_point_px"], j["centre_px"]])
            assert box.contains(pts).all(), stem
            # The gap's end points sit on the two bones' masks (within a pixel or two).
            for key, classes in (("prox_point_px", j["proximal"]), ("dist_point_px", j["distal"])):
                m = np.any([s.bone_masks[k] for k in classes], axis=0)
                dt = cv2.distanceTransform((~m).astype(np.uint8), cv2.DIST_L2, 5)
                x, y = j[key]
                assert dt[int(y), int(x)] <= 2.0, (stem, key)
            # Local y runs from distal to proximal (against the joint axis, which points distally).
            ang = np.deg2rad(box.angle)
            v = np.array([np.sin(ang), np.cos(ang)])
            assert v @ np.array(j["axis_px"]) < -0.99, stem
            # Scale-invariance: the box is a fixed multiple of the joint width.
            assert box.w * s.spacing_mm / j["width_mm"] == pytest.approx(
                {"SR": 0.95}.get(stem, 1.5 if stem in ("SC", "STT") else 1.7), rel=1e-6)
        else:
            # Single-bone and multi-bone areas: their bones lie (mostly) inside the box.
            m = np.any([s.bone_masks[k] for k in a.anchors], axis=0)
            pts = _pixel_centres(m)
            if stem in ("R", "U"):
                # The forearm bones run off the image: their distal ends (the first half box height) must be in.
                ang = np.deg2rad(box.angle)
                v = pts @ np.array([np.sin(ang), np.cos(ang)])
                pts = pts[v <= v.min() + 0.5 * box.h]
            inside = box.contains(pts).mean()
            assert inside > 0.9, (stem, inside)
        if a.region == "finger":
            assert abs(box.angle) < 60.0


def test_upright_finger_roi_has_angle_zero():
    s = generate(3, _cfg(SMALL, rotation_sd_deg=0.0, side="R", ra_fraction=0.0))  # no RA: no ulnar drift
    # The middle finger of an unrotated hand points almost straight up.
    assert abs(s.joint_rois["PIP-M"].angle) < 12.0


# ---------------------------------------------------------------------------------------------------------------------
# Scores and configuration
# ---------------------------------------------------------------------------------------------------------------------


def test_score_marginals_are_plausible():
    cfg = PhantomConfig()
    from ramh_train.phantoms.disease import sample_patient

    rng = np.random.default_rng(0)
    be, jsn = [], []
    for _ in range(3000):
        p = sample_patient(rng, cfg)
        b, j = sample_scores(rng, p, cfg)
        be += list(b.values())
        jsn += list(j.values())
    fb = np.bincount(be, minlength=6) / len(be)
    fj = np.bincount(jsn, minlength=5) / len(jsn)
    # Most areas healthy, then a tail that falls grade by grade (and does not pile up at the maximum).
    assert 0.7 <= fb[0] <= 0.9 and 0.65 <= fj[0] <= 0.85
    assert all(a > b > 0 for a, b in zip(fb[1:], fb[2:])), fb
    assert all(a > b > 0 for a, b in zip(fj[1:], fj[2:])), fj
    assert fb[5] < 0.03 and fj[4] < 0.05


def test_scores_of_a_healthy_patient_are_zero_unless_forced():
    cfg = _cfg(SMALL, force_be={"BE_U": 2})
    p = Patient(is_ra=False, severity=0.0, sex="F", bmd=1.0, ulnar_drift=0.0)
    be, jsn = sample_scores(np.random.default_rng(0), p, cfg)
    assert be["BE_U"] == 2 and sum(be.values()) == 2 and sum(jsn.values()) == 0


@pytest.mark.parametrize("kw, match", [
    (dict(spacing_mm=(0.2, 0.1)), "spacing_mm"),
    (dict(spacing_mm=(0.0, 0.1)), "spacing_mm"),
    (dict(dtype="float32"), "dtype"),
    (dict(side="X"), "side"),
    (dict(ring_probability=1.5), "ring_probability"),
    (dict(force_be={"MCP-X": 1}), "force_be"),
    (dict(force_be={"MCP-I": 6}), "force_be"),
    (dict(force_jsn=5), "force_jsn"),
    (dict(force_jsn={"BE_MCP-I": 1}), "force_jsn"),
    (dict(severity_shape=0.0), "severity_shape"),
    (dict(rotation_max_deg=90.0), "rotation_max_deg"),
])
def test_bad_config_is_refused_with_its_name(kw, match):
    with pytest.raises(ValueError, match=match):
        PhantomConfig(**kw)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="seed"):
        generate(-1, SMALL)
    with pytest.raises(TypeError, match="seed"):
        generate(1.5, SMALL)
    with pytest.raises(TypeError, match="config"):
        generate(1, {"spacing_mm": (0.5, 0.5)})


def test_forced_scores_accept_bare_stems_and_keys():
    cfg = PhantomConfig(force_be={"MCP-I": 2, "BE_U": 1}, force_jsn=3)
    assert cfg.forced("BE") == {"BE_MCP-I": 2, "BE_U": 1}
    assert cfg.forced("JSN") == {k: 3 for k in anatomy.JSN_KEYS}


# ---------------------------------------------------------------------------------------------------------------------
# Overlay
# ---------------------------------------------------------------------------------------------------------------------


def test_overlay_draws_a_picture(tmp_path):
    s = generate(1, _cfg(SMALL, force_be=2))
    out = tmp_path / "ov.png"
    img = render_overlay(s, out, scale=1.0)
    assert out.exists() and img.mode == "RGB"
    assert img.height >= s.image.shape[0] and img.width > s.image.shape[1]
    arr = np.asarray(img)[: s.image.shape[0], : s.image.shape[1]]
    # Erosions are drawn in their category colour (pure red / orange on the bones).
    assert ((arr[..., 0] > 200) & (arr[..., 1] < 170) & (arr[..., 2] < 60)).sum() > 0
    plain = render_overlay(s, scale=0.5, legend=False)
    assert plain.size == (round(s.image.shape[1] * 0.5), round(s.image.shape[0] * 0.5))
    with pytest.raises(ValueError, match="scale"):
        render_overlay(s, scale=0.0)


# ---------------------------------------------------------------------------------------------------------------------
# Acquisition: collimation and distractors
# ---------------------------------------------------------------------------------------------------------------------


def test_collimated_border_is_black_and_unannotated():
    s = generate(6, _cfg(SMALL, collimation_probability=1.0))
    x0, y0, x1, y1 = s.meta["field_rect"]
    H, W = s.image.shape
    outside = np.ones((H, W), bool)
    e = 3  # the soft collimator edge
    outside[max(y0 - e, 0):y1 + e, max(x0 - e, 0):x1 + e] = False
    assert outside.any() and s.image[outside].max() == 0
    for name, m in list(s.bone_masks.items()) + list(s.erosion_masks.items()):
        assert not m[:y0].any() and not m[y1:].any() and not m[:, :x0].any() and not m[:, x1:].any(), name
    # The collimator never cuts the hand: every bone but the forearm's lies fully inside the field.
    assert s.bone_masks["DP3"].any() and s.bone_masks["MC1"].any()


def test_distractors_change_the_image_but_no_mask():
    plain = generate(8, _cfg(SMALL, ring_probability=0.0, cannula_probability=0.0))
    metal = generate(8, _cfg(SMALL, ring_probability=1.0, cannula_probability=1.0))
    assert {d["type"] for d in metal.meta["distractors"]} == {"Ring", "Intravenous cannula"}
    assert not plain.meta["distractors"]
    assert not np.array_equal(plain.image, metal.image)
    for k in plain.bone_masks:
        np.testing.assert_array_equal(plain.bone_masks[k], metal.bone_masks[k])
    # The ring is bright metal: the brightest pixels of the image.
    x, y = (int(v) for v in next(d for d in metal.meta["distractors"] if d["type"] == "Ring")["centre_px"])
    assert metal.image[y, x] >= np.percentile(metal.image, 99.5)
