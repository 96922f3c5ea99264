"""benchmarks/real_hands.py: joint landmarks inside the ROI of their SvdH area, on phantoms (known joint centres)
and on the real atlas hands (skipped without shared/reference)."""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ramh_rt.geometry import box_corners

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import real_hands  # noqa: E402


def _inside_polygon(pt, roi) -> bool:
    """Independent check: OpenCV's point-in-polygon on the box corners of the SDK's geometry module."""
    return cv2.pointPolygonTest(box_corners(roi).astype(np.float32), (float(pt[0]), float(pt[1])), False) >= 0


@pytest.mark.parametrize("angle", [0.0, 17.0, -40.0, 90.0, 135.0])
def test_point_in_roi_agrees_with_the_box_corners(angle, rng):
    roi = (50.0, 60.0, 30.0, 12.0, angle)
    pts = rng.uniform(20, 90, size=(400, 2))
    ours = np.array([real_hands.point_in_roi(p, roi) for p in pts])
    ref = np.array([_inside_polygon(p, roi) for p in pts])
    # Points within a hair of the border may fall either way in float32; none is here by chance.
    assert (ours == ref).mean() > 0.995
    assert ours.any() and not ours.all()
    assert real_hands.point_in_roi((50, 60), roi)


def test_point_in_roi_rejects_bad_boxes():
    with pytest.raises(ValueError, match="roi"):
        real_hands.point_in_roi((0, 0), (1, 2, 3))
    with pytest.raises(ValueError, match="roi"):
        real_hands.point_in_roi((0, 0), (1, 2, 3, float("nan"), 0))
    with pytest.raises(ValueError, match=">= 0"):
        real_hands.point_in_roi((0, 0), (1, 2, -3, 4, 0))
    with pytest.raises(ValueError, match="point"):
        real_hands.point_in_roi((0, float("inf")), (1, 2, 3, 4, 0))


@pytest.fixture(scope="module")
def phantom_analysis():
    pytest.importorskip("ramh_train.phantoms", reason="the phantom generator comes with the train extra")
    import ramh_rt
    from ramh_train.phantoms import generate

    s = generate(11)
    return s, ramh_rt.analyze(s.image, spacing_mm=s.spacing_mm)


def test_phantom_joint_centres_fall_inside_their_areas_rois(phantom_analysis):
    s, a = phantom_analysis
    lm = {name: s.meta["joints"][stem]["centre_px"] for name, stem in real_hands.LANDMARK_AREAS.items()}
    cov = real_hands.landmark_coverage(a, lm)
    assert cov["n"] == 10 and cov["share"] >= 0.9
    for name, v in cov["per_landmark"].items():
        roi = a.joint(v["area"]).roi
        assert v["inside"] == (v["located"] and _inside_polygon(lm[name], roi))


def test_a_landmark_in_a_neighbouring_joint_is_not_covered(phantom_analysis):
    s, a = phantom_analysis
    # Each MCP landmark given the PIP centre of its finger: a real point, but of another area.
    swapped = {f"MCP{k}": s.meta["joints"][real_hands.LANDMARK_AREAS[f"PIP{k}"]]["centre_px"] for k in range(2, 6)}
    cov = real_hands.landmark_coverage(a, swapped)
    assert cov["covered"] == 0 and cov["share"] == 0.0
    assert all(v["distance_px"] > 0 for v in cov["per_landmark"].values())


def test_landmark_coverage_rejects_bad_landmarks(phantom_analysis):
    _, a = phantom_analysis
    with pytest.raises(KeyError, match="DIP2"):
        real_hands.landmark_coverage(a, {"DIP2": (1.0, 2.0)})
    with pytest.raises(ValueError, match="at least one"):
        real_hands.landmark_coverage(a, {})


def test_real_atlas_hand_is_scored(reference_dir):
    import ramh_rt.pipeline

    realhands = reference_dir / "realhands"
    film = next(f for f in real_hands._films(realhands) if f["name"] == "dha/3167.png")
    assert film["spacing_mm"] == pytest.approx(0.108075)
    rec = real_hands.run_film(film, ramh_rt.pipeline.get_analyzer(), realhands / "dha_landmarks.csv")
    assert rec["hands_found"] == 1 and "error" not in rec
    h = rec["hands"][0]
    assert h["qc_status"] in ("ok", "review", "reject")
    assert h["partial_svdh"] == h["erosion"] + h["jsn"]
    cov = rec["coverage"]
    assert cov["n"] == 10 and cov["covered"] == sum(v["inside"] for v in cov["per_landmark"].values())
    # The landmark table and the image are the same hand: the landmarks' centre lies inside the hand the SDK found
    # (not every landmark: the hand box of this film misses the little finger's PIP joint).
    x0, y0, x1, y1 = h["hand_box"]
    lm = real_hands.atlas_landmarks(realhands / "dha_landmarks.csv", "3167")
    cx, cy = np.mean(list(lm.values()), axis=0)
    assert x0 <= cx <= x1 and y0 <= cy <= y1
    s = real_hands.summarise([rec])
    assert s["coverage_per_image"] == {"dha/3167.png": cov["share"]} and s["hands_found"] == 1
