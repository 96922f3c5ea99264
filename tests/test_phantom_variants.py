"""Tests of the phantom film variants (turned, mirrored, cropped, two-hand, marked, collimated films and negatives):
determinism and the exactness of their ground truth.

Hands are generated at 0.5 mm/px to keep the file fast; the geometry of every variant is defined in pixels of the
source film, so the checks hold at any spacing.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from ramh_rt import anatomy
from ramh_train.phantoms import PhantomConfig
from ramh_train.phantoms.variants import (FIELDS_OF_VIEW, HAND_KINDS, KINDS, NEGATIVE_KINDS, VariantSample,
                                          hand_seed, make_variant)

SMALL = PhantomConfig(spacing_mm=(0.5, 0.5))
PHALANGES = [b.name for b in anatomy.BONE_CLASSES if b.group.endswith("phalanx")]
PROXIMAL = [b.name for b in anatomy.BONE_CLASSES if b.group in ("carpal", "forearm")]
SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def cache():
    """Source hands shared by the tests of this file (each seed's hand is generated once)."""
    return {}


def _v(kind: str, seed: int, cache: dict, **kw) -> VariantSample:
    return make_variant(kind, seed, SMALL, cache=cache, **kw)


def _inside(box, mask: np.ndarray) -> bool:
    x0, y0, x1, y1 = box
    outside = mask.copy()
    outside[y0:y1, x0:x1] = False
    return not outside.any()


# ---------------------------------------------------------------------------------------------------------------------
# Determinism and bad input
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["wrist", "two_hands", "markers", "collimated", "chest", "long_bone", "photo",
                                  "noise"])
def test_same_seed_gives_the_same_film_and_labels(kind, cache):
    a = make_variant(kind, 4, SMALL)           # no cache: generated from scratch
    b = _v(kind, 4, cache)
    np.testing.assert_array_equal(a.image, b.image)
    assert json.dumps(a.labels(), sort_keys=True) == json.dumps(b.labels(), sort_keys=True)
    for ha, hb in zip(a.hands, b.hands):
        assert ha.bone_masks.keys() == hb.bone_masks.keys()
        for k in ha.bone_masks:
            np.testing.assert_array_equal(ha.bone_masks[k], hb.bone_masks[k])
    c = _v(kind, 5, cache)
    assert c.image.shape != a.image.shape or not np.array_equal(c.image, a.image)


def test_single_hand_kinds_of_one_seed_show_the_same_hand(cache):
    seeds = {_v(k, 2, cache, masks=False).hands[0].source_seed for k in HAND_KINDS if k != "two_hands"}
    assert seeds == {hand_seed(2, 0)}


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown variant kind"):
        make_variant("elbow", 1)
    with pytest.raises(ValueError, match="seed"):
        make_variant("hand", -1)
    with pytest.raises(TypeError, match="seed"):
        make_variant("hand", 1.5)
    with pytest.raises(TypeError, match="PhantomConfig"):
        make_variant("hand", 1, {"spacing_mm": (0.5, 0.5)})


def test_labels_are_json_and_complete(cache):
    for kind in KINDS:
        v = _v(kind, 1, cache, masks=False)
        d = json.loads(json.dumps(v.labels()))
        assert d["kind"] == kind and d["is_hand"] == (kind in HAND_KINDS) and d["n_hands"] == len(v.hands)
        assert d["shape"] == list(v.image.shape) and v.image.dtype == np.uint8 and v.image.ndim == 2
        assert min(v.image.shape) >= 32
        for h in d["hands"]:
            assert h["side"] in ("L", "R") and h["rotation_deg"] in (0, 90, 180, 270)
            assert h["field_of_view"] in FIELDS_OF_VIEW and isinstance(h["mirrored"], bool)
            x0, y0, x1, y1 = h["box"]
            assert 0 <= x0 < x1 <= v.image.shape[1] and 0 <= y0 < y1 <= v.image.shape[0]


# ---------------------------------------------------------------------------------------------------------------------
# Turned and mirrored films
# ---------------------------------------------------------------------------------------------------------------------


def _map_point(x: float, y: float, W: int, H: int, k: int, mirrored: bool) -> tuple[float, float]:
    """Where a continuous pixel position of the upright W x H film goes: flip first, then k counter-clockwise
    quarter turns."""
    if mirrored:
        x = W - x
    for _ in range(k):
        x, y, W, H = y, W - x, H, W
    return x, y


@pytest.mark.parametrize("kind,k,mirrored", [("rot90", 1, False), ("rot180", 2, False), ("rot270", 3, False),
                                             ("mirrored", 0, True), ("rot90_mirrored", 1, True)])
def test_turned_and_mirrored_truth_is_the_upright_truth_transformed(kind, k, mirrored, cache):
    up = _v("hand", 3, cache)
    v = _v(kind, 3, cache)
    H, W = up.image.shape
    (hu,), (hv,) = up.hands, v.hands
    assert (hv.rotation_deg, hv.mirrored, hv.field_of_view, hv.side) == ((-90 * k) % 360, mirrored, "hand", hu.side)
    # The point map agrees with the pixels: sample pixel centres of the upright film and read them back.
    rng = np.random.default_rng(0)
    for _ in range(200):
        c, r = int(rng.integers(W)), int(rng.integers(H))
        x, y = _map_point(c + 0.5, r + 0.5, W, H, k, mirrored)
        assert v.image[int(y), int(x)] == up.image[r, c]
    # Masks: the upright masks turned; ROIs: the same rectangles (corner sets) at the mapped positions.
    flip = (lambda m: m[:, ::-1]) if mirrored else (lambda m: m)
    assert hv.bone_masks.keys() == hu.bone_masks.keys()
    for name, m in hu.bone_masks.items():
        np.testing.assert_array_equal(hv.bone_masks[name], np.rot90(flip(m), k))
    assert hv.joint_rois.keys() == hu.joint_rois.keys() and len(hu.joint_rois) == 22
    for stem, r in hu.joint_rois.items():
        want = np.array([_map_point(x, y, W, H, k, mirrored) for x, y in r.corners()])
        got = hv.joint_rois[stem].corners()
        d = np.abs(want[:, None, :] - got[None, :, :]).max(axis=2)   # corner sets (order changes with a flip)
        assert d.min(axis=1).max() < 1e-6, stem
        assert (hv.joint_rois[stem].w, hv.joint_rois[stem].h) == (r.w, r.h)
    # The box follows the silhouette.
    x0, y0, x1, y1 = hv.box
    assert _inside(hv.box, hv.bone_masks["SoftTissue"])
    st = hv.bone_masks["SoftTissue"]
    assert st[:, x0].any() and st[:, x1 - 1].any() and st[y0].any() and st[y1 - 1].any()


def test_fingers_point_the_labelled_way(cache):
    """The fingertips lie on the side the label names, the wrist on the opposite side."""
    for kind in ("hand", "rot90", "rot180", "rot270"):
        (h,) = _v(kind, 1, cache).hands
        tip = np.argwhere(h.bone_masks["DP3"]).mean(axis=0)       # (row, col)
        wrist = np.argwhere(h.bone_masks["Capitate"]).mean(axis=0)
        d = tip - wrist
        direction = {0: np.array([-1, 0]), 90: np.array([0, 1]), 180: np.array([1, 0]), 270: np.array([0, -1])}
        assert d @ direction[h.rotation_deg] > 0.8 * np.linalg.norm(d), kind


# ---------------------------------------------------------------------------------------------------------------------
# Crops: wrist, fingers, partial
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_wrist_crop_holds_the_carpus_and_no_phalanx(seed, cache):
    v = _v("wrist", seed, cache)
    up = _v("hand", seed, cache)
    (h,) = v.hands
    assert h.field_of_view == "wrist" and h.rotation_deg == 0 and not h.mirrored
    x0, y0, x1, y1 = v.meta["crop"]
    np.testing.assert_array_equal(v.image, up.image[y0:y1, x0:x1])
    src = up.hands[0].bone_masks
    for name in PHALANGES:  # checked on the full-size source masks: no phalanx pixel was in the window
        if name in src:
            assert not src[name][y0:y1, x0:x1].any(), name
        assert name not in h.bone_masks
    for name in PROXIMAL:  # the carpus is whole; radius and ulna are in view
        assert name in h.bone_masks, name
        if anatomy.BONE_CLASSES[anatomy.BONE_INDEX[name]].group == "carpal":
            assert h.bone_masks[name].sum() == src[name].sum(), name
    assert {"MC2", "MC3", "MC4"} <= h.bone_masks.keys()
    assert {"R", "U", "L", "S"} <= h.joint_rois.keys() and not ({"PIP-M", "MCP-M", "IP"} & h.joint_rois.keys())


@pytest.mark.parametrize("seed", SEEDS)
def test_fingers_crop_holds_the_phalanges_and_nothing_proximal(seed, cache):
    v = _v("fingers", seed, cache)
    up = _v("hand", seed, cache)
    (h,) = v.hands
    assert h.field_of_view == "fingers"
    x0, y0, x1, y1 = v.meta["crop"]
    src = up.hands[0].bone_masks
    for name in PROXIMAL:
        assert not src[name][y0:y1, x0:x1].any(), name
    for d in (2, 3, 4, 5):
        for name in (f"DP{d}", f"MP{d}", f"PP{d}"):
            assert h.bone_masks[name].sum() == src[name].sum(), name   # digits 2-5 whole
    assert {"PIP-I", "PIP-M", "PIP-R", "PIP-S"} <= h.joint_rois.keys()
    assert not ({"R", "U", "L", "S", "SR"} & h.joint_rois.keys())


def test_partial_crops_cut_the_hand_and_keep_only_rois_in_view(cache):
    for seed in (1, 2, 3, 4):
        v = _v("partial", seed, cache)
        (h,) = v.hands
        assert h.field_of_view == "partial"
        H, W = v.image.shape
        for r in h.joint_rois.values():
            c = r.corners()
            assert (c >= 0).all() and (c[:, 0] <= W).all() and (c[:, 1] <= H).all()
        assert len(h.joint_rois) < 22


# ---------------------------------------------------------------------------------------------------------------------
# Two hands on one film
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_bilateral_film_has_two_separate_hands_left_then_right(seed, cache):
    v = _v("two_hands", seed, cache)
    assert v.n_hands == 2
    a, b = v.hands
    assert (a.side, b.side) == ("L", "R") and not a.mirrored and not b.mirrored
    assert a.box[2] <= b.box[0]   # left to right, no overlap
    for h in v.hands:
        assert h.field_of_view == "hand" and len(h.joint_rois) == 22
        for name, m in h.bone_masks.items():
            assert _inside(h.box, m), name
        # thumbs towards each other: the left hand's thumb is on its right
        thumb = np.argwhere(h.bone_masks["MC1"])[:, 1].mean()
        small = np.argwhere(h.bone_masks["MC5"])[:, 1].mean()
        assert (thumb > small) == (h.side == "L")
    assert v.spacing_mm == pytest.approx(make_variant("two_hands", seed, SMALL, masks=False).spacing_mm)


@pytest.mark.parametrize("seed", SEEDS)
def test_composite_film_is_one_hand_beside_its_mirror_image(seed, cache):
    v = _v("composite", seed, cache)
    a, b = v.hands
    assert a.side == b.side and a.source_seed == b.source_seed and a.mirrored != b.mirrored
    assert a.box[2] <= b.box[0]
    orig, twin = (a, b) if not a.mirrored else (b, a)
    for name, m in orig.bone_masks.items():
        assert _inside(orig.box, m) and _inside(twin.box, twin.bone_masks[name])
        assert int(m.sum()) == int(twin.bone_masks[name].sum())
    # the twin's silhouette is the original's flipped
    ox0, oy0, ox1, oy1 = orig.box
    tx0, ty0, tx1, ty1 = twin.box
    np.testing.assert_array_equal(orig.bone_masks["SoftTissue"][oy0:oy1, ox0:ox1][:, ::-1],
                                  twin.bone_masks["SoftTissue"][ty0:ty1, tx0:tx1])


# ---------------------------------------------------------------------------------------------------------------------
# Markers and collimation
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_markers_are_burned_in_clear_of_the_hand(seed, cache):
    v = _v("markers", seed, cache)
    up = _v("hand", seed, cache)
    (h,) = v.hands
    drawn = v.meta["markers"]
    assert drawn and drawn[0]["type"] == "letter" and drawn[0]["text"].startswith(h.side)
    changed = v.image != up.image
    allowed = np.zeros_like(changed)
    for m in drawn:
        x0, y0, x1, y1 = m["box"]
        allowed[y0:y1, x0:x1] = True
        assert not h.bone_masks["SoftTissue"][y0:y1, x0:x1].any()
        assert changed[y0:y1, x0:x1].any()                 # something bright was drawn there
    assert not (changed & ~allowed).any()
    assert (v.image >= up.image).all()                     # lead is bright: markers only brighten


@pytest.mark.parametrize("seed", SEEDS)
def test_collimation_never_cuts_the_hand_above_the_wrist(seed, cache):
    v = _v("collimated", seed, cache)
    up = _v("hand", seed, cache)
    (h,) = v.hands
    src = up.hands[0].bone_masks
    for name in PHALANGES + [n for n in PROXIMAL if n not in ("Radius", "Ulna")] + [f"MC{d}" for d in range(1, 6)]:
        if name in src:
            np.testing.assert_array_equal(h.bone_masks[name], src[name], err_msg=name)
    for name, m in h.bone_masks.items():
        assert not (m & ~src[name]).any(), name            # masks only lose what the shutters hide
    assert v.meta["collimation"]["outside"] in ("dark", "bright")


# ---------------------------------------------------------------------------------------------------------------------
# Negatives and masks=False
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", NEGATIVE_KINDS)
def test_negatives_hold_no_hand(kind):
    for seed in (1, 2):
        v = make_variant(kind, seed, SMALL)
        assert not v.is_hand and v.n_hands == 0 and v.hands == []
        assert v.image.ndim == 2 and v.image.dtype == np.uint8 and min(v.image.shape) >= 32
        if kind == "blank":
            assert v.image.min() == v.image.max()
        else:
            assert v.image.std() > 5.0        # structure or noise, not a constant


def test_uint16_config_gives_uint16_films():
    cfg = PhantomConfig(spacing_mm=(0.5, 0.5), dtype="uint16")
    for kind in ("rot90", "chest", "noise"):
        assert make_variant(kind, 1, cfg, masks=False).image.dtype == np.uint16


def test_masks_false_keeps_labels_and_rois(cache):
    for kind in ("two_hands", "wrist", "rot270"):
        a = _v(kind, 2, cache)
        b = _v(kind, 2, cache, masks=False)
        np.testing.assert_array_equal(a.image, b.image)
        assert all(h.bone_masks == {} for h in b.hands)
        assert json.dumps(a.labels(), sort_keys=True) == json.dumps(b.labels(), sort_keys=True)


# ---------------------------------------------------------------------------------------------------------------------
# ramh-data variants
# ---------------------------------------------------------------------------------------------------------------------


def test_ramh_data_variants_writes_pngs_and_labels(tmp_path, capsys):
    from PIL import Image

    from ramh_train import data_cli

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"spacing_mm": [0.5, 0.5]}))
    out = tmp_path / "films"
    code = data_cli.main(["variants", "--out", str(out), "--n", "2", "--seed", "7", "--kinds", "rot180", "two_hands",
                          "blank", "--config", str(cfg)])
    assert code == 0, capsys.readouterr().err
    labels = json.loads((out / "labels.json").read_text())
    assert [f["file"] for f in labels["films"]] == ["rot180_7.png", "two_hands_7.png", "blank_7.png",
                                                    "rot180_8.png", "two_hands_8.png", "blank_8.png"]
    for f in labels["films"]:
        v = make_variant(f["kind"], f["seed"], SMALL, masks=False)
        np.testing.assert_array_equal(np.asarray(Image.open(out / f["file"])), v.image)
        assert {k: f[k] for k in f if k != "file"} == json.loads(json.dumps(v.labels()))
    assert data_cli.main(["variants", "--out", str(out), "--n", "1", "--seed", "1", "--kinds", "elbow"]) == 2
    assert "unknown variant kind" in capsys.readouterr().err


def test_turning_a_finished_film_equals_building_it_turned(cache):
    from ramh_train.phantoms.variants import turn_variant

    up = _v("hand", 3, cache)
    for deg, mirrored, kind in ((90, False, "rot90"), (270, False, "rot270"), (90, True, "rot90_mirrored")):
        t, built = turn_variant(up, deg, mirrored), _v(kind, 3, cache)
        np.testing.assert_array_equal(t.image, built.image)
        assert [h.labels() for h in t.hands] == [h.labels() for h in built.hands]
    # a bilateral film on its side: the hands are one above the other, boxes follow the masks
    v = _v("two_hands", 2, cache)
    t = turn_variant(v, 270, mirrored=True)
    assert [h.rotation_deg for h in t.hands] == [90, 90] and all(h.mirrored for h in t.hands)
    for h in t.hands:
        st = h.bone_masks["SoftTissue"]
        assert _inside(h.box, st) and st[h.box[1]].any() and st[:, h.box[0]].any()
    a, b = t.hands
    assert a.box[3] <= b.box[1] or b.box[3] <= a.box[1]
    np.testing.assert_array_equal(v.image, _v("two_hands", 2, cache).image)   # the input is not modified
    with pytest.raises(ValueError, match="rotation_deg"):
        turn_variant(v, 45)
