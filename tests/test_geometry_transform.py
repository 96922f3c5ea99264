"""geometry.Transform (the maps between pixel frames) and the Roi box convention: against NumPy's own array turns and
flips, the letterbox and the hand frame that use them, and the errors they raise."""
import numpy as np
import pytest

from ramh_rt import geometry
from ramh_rt.geometry import Roi, Transform
from ramh_rt.ops import preprocess
from ramh_rt.understand import HandFrame


def _same_pixels(t: Transform, a: np.ndarray, b: np.ndarray) -> bool:
    """Every pixel centre of ``a`` lands on the centre of the pixel of ``b`` that holds the same value."""
    rows, cols = np.indices(a.shape)
    pts = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1)
    q = t.apply(pts)
    np.testing.assert_allclose(q - np.floor(q), 0.5)  # centres to centres
    return bool((b[q[:, 1].astype(int), q[:, 0].astype(int)] == a.ravel()).all())


@pytest.mark.parametrize("shape", [(3, 5), (4, 4), (1, 7)])
@pytest.mark.parametrize("k", [-5, -3, -2, -1, 0, 1, 2, 3, 4, 6])
def test_quarter_turn_is_numpy_rot90(shape, k):
    a = np.arange(np.prod(shape)).reshape(shape)
    b = np.rot90(a, k)
    t = Transform.quarter_turn(shape, k)
    assert _same_pixels(t, a, b)
    assert _same_pixels(t.inverse(), b, a)
    sign, turn = t.angle_map
    assert sign == 1 and turn % 360 == (90 * k) % 360


def test_mirror_is_numpy_fliplr():
    a = np.arange(12).reshape(3, 4)
    t = Transform.mirror(4)
    assert _same_pixels(t, a, a[:, ::-1])
    assert t.mirrors and t.angle_map == (-1, 0)
    assert t.apply_angle(30.0) == -30.0
    assert str(t.apply_angle(0.0)) == "0.0"  # a mirrored 0 is a plain 0, not -0.0


def test_composition_applies_steps_in_turn_bit_for_bit():
    rng = np.random.default_rng(3)
    pts = rng.uniform(-50, 500, (100, 2))
    parts = [Transform.shift(-17.0, -3.25), Transform.mirror(311), Transform.quarter_turn((400, 311), 3),
             Transform.scale_shift(0.2871, 0.2869, 12, 0)]
    t = parts[0]
    for p in parts[1:]:
        t = t.then(p)
    q = pts
    for p in parts:
        q = p.apply(q)
    assert np.array_equal(t.apply(pts), q)
    # compose() is the other order of then()
    assert np.array_equal(parts[1].compose(parts[0]).apply(pts), parts[0].then(parts[1]).apply(pts))
    np.testing.assert_allclose(t.inverse().apply(t.apply(pts)), pts, rtol=0, atol=1e-9)
    assert Transform.identity().apply(pts) is not pts and np.array_equal(Transform.identity().apply(pts), pts)


@pytest.mark.parametrize("angle", [0.0, 17.5, -100.0, 179.0])
def test_apply_roi_maps_the_box_itself(angle):
    # The mapped box's corners are the original corners mapped (as a set: a mirror reverses their order).
    box = Roi(40.5, 22.0, 12.0, 7.0, angle)
    for t in (Transform.mirror(90), Transform.quarter_turn((60, 90), 1), Transform.quarter_turn((60, 90), -1),
              Transform.mirror(90).then(Transform.quarter_turn((60, 90), 1))):
        got = t.apply_roi(box)
        expect = t.apply(box.corners())
        d = np.linalg.norm(got.corners()[:, None] - expect[None], axis=2)
        assert d.min(axis=1).max() < 1e-9
        # and the local y axis (distal -> proximal) still points from the (-,-)(+,-) side to the (+,+)(-,+) side
        np.testing.assert_allclose(got.corners()[2:].mean(0) - got.corners()[:2].mean(0),
                                   expect[2:].mean(0) - expect[:2].mean(0) if not t.mirrors else
                                   expect[[2, 3]].mean(0) - expect[[0, 1]].mean(0), atol=1e-9)


def test_letterbox_transform_is_its_mapping():
    img = np.random.default_rng(0).integers(0, 4096, (301, 203), dtype=np.uint16)
    _, lb = preprocess(img, (128, 96))
    pts = np.array([[0.0, 0.0], [203.0, 301.0], [17.3, 250.9]])
    assert np.array_equal(lb.to_model(pts), pts * [lb.scale_x, lb.scale_y] + [lb.pad_x, lb.pad_y])
    m = lb.to_model(pts)
    # the inverse divides (exact to the last bit division allows), it does not multiply by a reciprocal
    assert np.array_equal(lb.to_image(m), (m - [lb.pad_x, lb.pad_y]) / [lb.scale_x, lb.scale_y])
    s = 0.5 * (lb.scale_x + lb.scale_y)
    r = lb.transform.apply_roi(Roi(10.0, 20.0, 8.0, 4.0, 33.0))
    assert (r.w, r.h, r.angle) == (8.0 * s, 4.0 * s, 33.0)
    # float32 sizes stay float32 (the boxes crop_rois takes)
    assert lb.transform.apply_length(np.float32(8.0)).dtype == np.float32


@pytest.mark.parametrize("rot", [0, 90, 180, 270])
def test_hand_frame_is_a_transform(rot):
    film = np.arange(40 * 50).reshape(40, 50)
    frame = HandFrame((5, 3, 41, 30), rot, film.shape)
    hand = frame.normalise(film)
    # every pixel of the normalised hand maps back onto the film pixel it was cut from
    assert _same_pixels(frame.transform.inverse(), hand, film)
    assert frame.to_film_angle(rot) == 0.0
    r = frame.to_film_roi((10.0, 12.0, 6.0, 4.0, 30.0))
    assert -180 < r[4] <= 180 and r[2:4] == (6.0, 4.0)


def test_roi_helpers():
    r = Roi.from_bounds(2.0, 4.0, 10.0, 8.0)
    assert r == Roi(6.0, 6.0, 8.0, 4.0, 0.0)
    assert r.bbox() == (2.0, 4.0, 10.0, 8.0)
    assert r.as_array().dtype == np.float32 and r.as_array().shape == (5,)
    assert r.contains([[2.0, 4.0], [10.0, 8.0], [6.0, 6.0]]).all()
    assert not r.contains([[1.9, 6.0]]).any() and r.contains([[1.9, 6.0]], tol=0.2).all()
    turned = Roi(0.0, 0.0, 4.0, 2.0, 90.0)  # local x points up: the box spans 2 across x and 4 along y
    np.testing.assert_allclose(turned.to_local([[0.0, -2.0]]), [[2.0, 0.0]], atol=1e-12)
    assert geometry.enclosing_pixels((1.2, -3.0, 7.0, 99.5), (50, 60)) == (1, 0, 7, 50)
    assert geometry.wrap_angle(190.0) == -170.0 and geometry.wrap_angle(-180.0) == 180.0
    assert geometry.wrap_angle(100.0, 180.0) == -80.0


def test_map_rois_passes_unlocated_through():
    res = {"A": geometry.RoiResult("A", Roi(1.0, 2.0, 3.0, 4.0, 5.0)), "B": geometry.RoiResult("B", None, "why")}
    out = geometry.map_rois(res, Transform.shift(10, 20))
    assert out["A"].roi == Roi(11.0, 22.0, 3.0, 4.0, 5.0) and out["B"] is res["B"]


def test_errors():
    with pytest.raises(ValueError, match="scales"):
        Transform.scale_shift(0.0, 1.0)
    with pytest.raises(ValueError, match="scales"):
        Transform.scale_shift(1.0, 1.0, float("nan"), 0.0)
    with pytest.raises(ValueError, match="numbers"):
        Transform.scale_shift("a", 1.0)
    with pytest.raises(ValueError, match="width"):
        Transform.mirror(float("inf"))
    with pytest.raises(ValueError, match="quarter turns"):
        Transform.quarter_turn((3, 4), 1.5)
    with pytest.raises(ValueError, match="shape"):
        Transform.quarter_turn((0, 4))
    with pytest.raises(ValueError, match="shape"):
        Transform.identity().apply(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="points"):
        Transform.identity().apply([["a", "b"]])
