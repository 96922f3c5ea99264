"""Joint geometry: SvdH ROIs from bone masks, held against the phantoms' ground-truth ROIs."""
import numpy as np
import pytest

from ramh_rt import anatomy, geometry

phantoms = pytest.importorskip("ramh_train.phantoms")

MEDIUM = phantoms.PhantomConfig(spacing_mm=(0.25, 0.25))


@pytest.fixture(scope="module")
def hands():
    return [phantoms.generate(seed, MEDIUM) for seed in (11, 12, 13)]


def _gt(sample, stem):
    g = sample.joint_rois[stem]
    return (g.cx, g.cy, g.w, g.h, g.angle)


def test_rotated_iou_known_cases():
    sq = (10.0, 10.0, 4.0, 4.0, 0.0)
    assert geometry.rotated_iou(sq, sq) == pytest.approx(1.0)
    assert geometry.rotated_iou(sq, (30.0, 30.0, 4.0, 4.0, 0.0)) == 0.0
    # Shifted by half its width: intersection 8, union 24.
    assert geometry.rotated_iou(sq, (12.0, 10.0, 4.0, 4.0, 0.0)) == pytest.approx(1 / 3)
    # A square turned by 90 degrees is the same square; a 2x1 box turned by 90 degrees overlaps in a 1x1 square.
    assert geometry.rotated_iou(sq, (10.0, 10.0, 4.0, 4.0, 90.0)) == pytest.approx(1.0)
    assert geometry.rotated_iou((0, 0, 2, 1, 0), (0, 0, 2, 1, 90)) == pytest.approx(1 / 3)
    # A square and the same square turned by 45 degrees: intersection is the regular octagon.
    octagon = 2 * (np.sqrt(2) - 1) * 16  # area of the octagon inscribed in a 4x4 square rotated 45 degrees
    assert geometry.rotated_iou(sq, (10, 10, 4, 4, 45)) == pytest.approx(octagon / (32 - octagon), rel=1e-6)


def test_box_corners_follow_the_convention():
    # angle 0: local x = +x, local y = +y (down); the first corner is the top-left one.
    c = geometry.box_corners((10, 20, 4, 2, 0))
    np.testing.assert_allclose(c, [[8, 19], [12, 19], [12, 21], [8, 21]])
    # 90 degrees counter-clockwise as seen on screen: local x points up (-y), local y points right (+x).
    c = geometry.box_corners((0, 0, 4, 2, 90))
    np.testing.assert_allclose(c[1] - c[0], [0, -4], atol=1e-12)
    np.testing.assert_allclose(c[3] - c[0], [2, 0], atol=1e-12)


def test_rois_match_the_phantom_ground_truth(hands):
    ious = []
    for s in hands:
        res = geometry.joint_rois(s.bone_masks)
        assert list(res) == list(anatomy.AREA_STEMS)
        for stem, r in res.items():
            assert r.roi is not None, (stem, r.reason)
            ious.append(geometry.rotated_iou(r.roi.as_tuple(), _gt(s, stem)))
    ious = np.array(ious)
    assert ious.mean() >= 0.85
    assert (ious >= 0.5).mean() >= 0.95


def test_finger_rois_point_from_distal_to_proximal(hands):
    s = hands[0]
    res = geometry.joint_rois(s.bone_masks)
    for stem in ("MCP-M", "PIP-M", "MCP-I"):
        a = anatomy.area(stem)
        prox = np.argwhere(s.bone_masks[a.anchors[0]]).mean(0)[::-1]
        dist = np.argwhere(s.bone_masks[a.anchors[1]]).mean(0)[::-1]
        t = np.deg2rad(res[stem].roi.angle)
        v = np.array([np.sin(t), np.cos(t)])  # local y
        assert v @ (prox - dist) > 0, stem


def test_joint_table_runs_from_proximal_to_distal(hands):
    # Every articulation of anatomy.JOINTS on a rendered hand: the distal group lies further along the hand
    # (radius -> MC3) than the proximal group, and each joint names the SvdH area of the same stem where there is one.
    s = hands[0]
    centre = {k: np.argwhere(m).mean(0)[::-1] for k, m in s.bone_masks.items() if m.any()}
    axis = centre["MC3"] - centre["Radius"]
    for name, j in anatomy.JOINTS.items():
        prox = np.mean([centre[b] for b in j.proximal], axis=0)
        dist = np.mean([centre[b] for b in j.distal], axis=0)
        assert axis @ (dist - prox) > 0, name
        if name in anatomy.AREA_BY_STEM:
            assert set(j.proximal + j.distal) <= set(anatomy.area(name).anchors), name
    assert anatomy.joint("DIP-S").distal == ("DP5",)
    with pytest.raises(KeyError, match="unknown joint"):
        anatomy.joint("DIP-T")


def test_rois_scale_with_the_masks(hands):
    s = hands[1]
    full = geometry.joint_rois(s.bone_masks)
    half = geometry.joint_rois({k: m[::2, ::2] for k, m in s.bone_masks.items()})
    for stem in anatomy.AREA_STEMS:
        a, b = full[stem].roi, half[stem].roi
        # Pixel (2i, 2j) of the full masks is pixel (i, j) of the halved ones: x_half = x_full / 2 (centre-aligned
        # up to a quarter pixel).
        halved = geometry.Transform.scale_shift(0.5, 0.5).apply_roi(a)
        assert geometry.rotated_iou(halved.as_tuple(), b.as_tuple()) > 0.8, stem


def test_mirrored_hand_gives_mirrored_rois(hands):
    s = hands[2]
    w = s.shape[1]
    res = geometry.joint_rois(s.bone_masks)
    mir = geometry.joint_rois({k: m[:, ::-1] for k, m in s.bone_masks.items()})
    for stem in anatomy.AREA_STEMS:
        a, b = res[stem].roi, mir[stem].roi
        expect = geometry.Transform.mirror(w).apply_roi(a)
        assert geometry.rotated_iou(expect.as_tuple(), b.as_tuple()) > 0.97, stem


def test_missing_bones_are_reported_not_invented(hands):
    s = hands[0]
    wrist_only = {k: m for k, m in s.bone_masks.items() if anatomy.bone(k).group in ("carpal", "forearm")}
    wrist_only["MC3"] = s.bone_masks["MC3"]
    res = geometry.joint_rois(wrist_only)
    for stem in ("MCP-I", "PIP-M", "IP", "CMC-T", "CMC-R"):
        assert res[stem].roi is None and "not found" in res[stem].reason
    for stem in ("R", "U", "S", "L", "SC", "SR", "STT", "Tm", "CMC-M"):
        assert res[stem].roi is not None, (stem, res[stem].reason)
    assert all(r.roi is None and r.reason for r in geometry.joint_rois({}).values())


def test_empty_and_tiny_masks_do_not_crash():
    masks = {name: np.zeros((40, 30), bool) for name in anatomy.BONES}
    masks["MC3"][5, 5] = True  # one pixel: too small to have an axis
    res = geometry.joint_rois(masks)
    assert all(r.roi is None for r in res.values())


def test_rays_are_the_joint_chains_from_metacarpal_to_fingertip():
    """anatomy.RAYS (proximal to distal) agrees with the joint table: each neighbouring pair of a ray's bones is one
    articulation (MCP, PIP/IP, DIP), and every finger bone belongs to exactly one ray."""
    pairs = {(j.proximal, j.distal) for j in anatomy.JOINTS.values()}
    for d, ray in anatomy.RAYS.items():
        assert len(ray) == (3 if d == 1 else 4)
        for a, b in zip(ray, ray[1:]):
            assert ((a,), (b,)) in pairs, (a, b)
    finger_bones = [b.name for b in anatomy.BONE_CLASSES if b.digit is not None and b.is_bone]
    assert sorted(n for ray in anatomy.RAYS.values() for n in ray) == sorted(finger_bones)
    assert anatomy.METACARPALS[0] == "MC1" and anatomy.MIDDLE_PHALANGES == ("MP2", "MP3", "MP4", "MP5")
