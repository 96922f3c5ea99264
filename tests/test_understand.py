"""Input understanding (ramh_rt.understand) and its use by the pipeline: hands per film, orientation, field of view,
not-a-hand, and the mapping of every result back to the film the caller passed.

Phantoms come from unseen seeds (880001+); real films from shared/reference (skipped without it).
"""
import csv
import json

import numpy as np
import pytest

from ramh_rt import io, understand
from ramh_rt.errors import MultipleHandsError, NotAHandError, RamhError
from ramh_rt.pipeline import Analyzer

PHALANX = ("PP", "MP", "DP")
ROT = {"up": 0, "right": 90, "down": 180, "left": 270}


@pytest.fixture(scope="module")
def analyzer():
    return Analyzer(backend="onnxruntime-cpu")


@pytest.fixture(scope="module")
def phantom():
    from ramh_train.phantoms import generate

    return generate(880001)


@pytest.fixture(scope="module")
def upright(analyzer, phantom):
    return analyzer.analyze(phantom.image)


# ---- frames: exact maps -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rot", [0, 90, 180, 270])
def test_frame_maps_points_boxes_masks_exactly(rot):
    rng = np.random.default_rng(rot)
    film = rng.integers(0, 255, (37, 53), dtype=np.uint8)
    frame = understand.HandFrame((5, 3, 41, 30), rot, film.shape)
    hand = frame.normalise(film)
    assert hand.shape == frame.shape
    # Every pixel centre of the normalised hand maps to the film pixel holding the same value.
    ys, xs = np.mgrid[0:hand.shape[0], 0:hand.shape[1]]
    pts = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], 1)
    back = frame.to_film_points(pts)
    cols, rows = np.floor(back[:, 0]).astype(int), np.floor(back[:, 1]).astype(int)
    np.testing.assert_array_equal(film[rows, cols], hand.ravel())
    # A mask over a box maps to the mask over the mapped box.
    m = np.zeros(hand.shape, bool)
    m[2:9, 4:7] = True
    m[2, 4] = False  # break the symmetry
    bx = frame.to_film_box((4, 2, 7, 9))
    full = np.zeros(film.shape, bool)
    x0, y0, x1, y1 = (int(round(v)) for v in bx)
    full[y0:y1, x0:x1] = frame.to_film_mask(m[2:9, 4:7])
    np.testing.assert_array_equal(full[rows, cols].reshape(hand.shape), m)
    # Angles turn with the hand; axes stay in (-90, 90].
    assert frame.to_film_angle(rot) == 0.0
    assert -90 < frame.to_film_axis(45.0) <= 90


def test_frame_rejects_bad_arguments():
    with pytest.raises(ValueError):
        understand.HandFrame((0, 0, 10, 10), 45, (10, 10))
    with pytest.raises(ValueError):
        understand.HandFrame((0, 0, 11, 10), 0, (10, 10))


# ---- phantoms -------------------------------------------------------------------------------------------------------

def test_upright_phantom_is_one_whole_hand(upright, phantom):
    m = upright.meta
    x0, y0, x1, y1 = m.hand_box
    h, w = phantom.image.shape
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    ys, xs = np.nonzero(np.any([phantom.bone_masks[n] for n in ("MC3", "DP3", "Radius")], axis=0))
    assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1
    assert m.orientation == {"rotation_deg": 0, "mirrored": False}
    assert m.field_of_view == "hand"
    assert upright.totals.svdh is not None and upright.totals.svdh == upright.totals.partial_svdh
    assert m.side == phantom.side


@pytest.mark.parametrize("k", [1, 2])
def test_turned_phantom_maps_back_exactly(analyzer, phantom, upright, k):
    film = np.ascontiguousarray(np.rot90(phantom.image, k))  # np.rot90 turns counter-clockwise
    a = analyzer.analyze(film)
    rot = (360 - 90 * k) % 360  # fingers left after one turn: 270 degrees clockwise from upright
    assert a.meta.orientation == {"rotation_deg": rot, "mirrored": False}
    assert a.meta.image_shape == film.shape
    assert any(r[0] == "orientation_applied" and r[2] == "info" for r in a.meta.understanding_reasons)
    frame = understand.HandFrame((0, 0, film.shape[1], film.shape[0]), rot, film.shape)
    for j0, j1 in zip(upright.joints, a.joints):
        assert j0.located == j1.located
        if j0.located:
            np.testing.assert_allclose(j1.roi, frame.to_film_roi(j0.roi), atol=1e-6)
            assert j1.be_score == j0.be_score and j1.jsn_score == j0.jsn_score
    for b0 in upright.bones:
        b1 = a.bone(b0.name, b0.instance)
        np.testing.assert_array_equal(b1.mask, np.rot90(b0.mask, k))
        np.testing.assert_allclose(b1.centroid, frame.to_film_points([b0.centroid])[0], atol=1e-9)
    np.testing.assert_array_equal(a.erosion_mask, np.rot90(upright.erosion_mask, k))


def test_mirrored_phantom(analyzer, phantom, upright):
    film = np.ascontiguousarray(np.fliplr(phantom.image))
    other = "L" if phantom.side == "R" else "R"
    # Without a trusted side the mirror cannot be seen: the anatomy reads as the other hand.
    a = analyzer.analyze(film)
    assert a.meta.side == other and a.meta.orientation["mirrored"] is False
    # Against a trusted side it is a mirrored film of that side.
    b = analyzer.analyze(film, side=phantom.side)
    assert b.meta.side == phantom.side and b.meta.orientation["mirrored"] is True
    assert any(r[0] == "mirrored" for r in b.meta.understanding_reasons)


def test_side_from_file_name_that_contradicts_the_anatomy_is_a_conflict(analyzer, phantom, tmp_path):
    other = "L" if phantom.side == "R" else "R"
    path = tmp_path / f"hand_{other}.png"
    from PIL import Image

    Image.fromarray(phantom.image).save(path)
    a = analyzer.analyze(str(path))
    assert a.meta.side == phantom.side
    assert any(r[0] == "side_conflict" and r[2] == "review" for r in a.meta.understanding_reasons)


def test_two_hand_film(analyzer, phantom):
    img = phantom.image
    film = np.ascontiguousarray(np.concatenate([img, np.fliplr(img)], axis=1))
    hands = analyzer.analyze_hands(film)
    assert len(hands) == 2
    w = img.shape[1]
    assert hands[0].meta.hand_box[2] <= w + 5 and hands[1].meta.hand_box[0] >= w - 5
    assert {h.meta.side for h in hands} == {"L", "R"}
    for h in hands:
        assert h.meta.image_shape == film.shape
        x0, y0, x1, y1 = h.meta.hand_box
        for b in h.bones:
            assert x0 <= b.bbox[0] and b.bbox[2] <= x1
    for h in hands:  # the film's decode and understanding serve both hands: in each hand's timings and total
        t = h.meta.timings_ms
        assert t["decode"] > 0 and t["understand"] > 0
        assert t["total"] >= sum(v for k, v in t.items() if k != "total") - 0.01 * len(t), t
    with pytest.raises(MultipleHandsError) as e:
        analyzer.analyze(film)
    assert sorted(e.value.sides) == ["L", "R"]
    right = analyzer.analyze(film, side="R")
    assert right.meta.side == "R"


def test_one_failed_hand_leaves_the_other_hands_result(tmp_path):
    """A two-hand film whose second region is no hand: the first hand's analysis comes back, the second is an
    AnalysisError in its place (analyze_hands, and the batch API that `ramh analyze` reads); `ramh analyze` writes
    the good hand's outputs and reports the failed one (exit status 1)."""
    from PIL import Image

    from ramh_rt import cli
    from ramh_rt.pipeline import AnalysisError

    from dicom_fixtures import hand_and_long_bone_pixels
    from ramh_train.datasets.synthetic import phantom_seed
    from ramh_train.phantoms import generate

    analyzer = Analyzer(backend="onnxruntime-cpu")
    assert analyzer.view_model is not None
    phantom = generate(phantom_seed(9100, 0))  # the hand of the film
    film = hand_and_long_bone_pixels()
    first, second = analyzer.analyze_hands(film)
    assert isinstance(second, AnalysisError) and isinstance(second.exception, NotAHandError)
    assert "hand 2 of 2" in second.source and not second
    assert first.meta.side == phantom.side and first.meta.field_of_view == "hand"
    assert first.meta.hand_box[2] <= phantom.image.shape[1] + 5
    assert first.totals.svdh is not None and first.qc is not None
    with pytest.raises(MultipleHandsError, match="one that failed"):
        analyzer.analyze(film)
    path = tmp_path / "film.png"
    Image.fromarray(film).save(path)
    out = tmp_path / "out"
    assert cli.main(["analyze", str(path), "--out", str(out), "--quiet"]) == 1
    docs = {p.name: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert list(docs) == ["film_hand1.json"]  # the failed hand has no side: both hands' names are numbered
    assert docs["film_hand1.json"]["totals"]["svdh"] == first.totals.svdh


def _crop(phantom, names, pad=20):
    ys, xs = np.nonzero(np.any([phantom.bone_masks[n] for n in names if n in phantom.bone_masks], axis=0))
    h, w = phantom.image.shape
    return np.ascontiguousarray(phantom.image[max(0, ys.min() - pad):min(h, ys.max() + pad),
                                              max(0, xs.min() - pad):min(w, xs.max() + pad)])


def test_wrist_crop_of_a_phantom_reports_no_phalanx(analyzer, phantom):
    # Carpus, distal radius/ulna and the proximal third of the metacarpals.
    mc = np.any([phantom.bone_masks[f"MC{d}"] for d in range(2, 6)], axis=0)
    ys = np.nonzero(mc)[0]
    cut = int(ys.min() + 0.6 * (ys.max() - ys.min()))
    carpus = np.any([phantom.bone_masks[n] for n in ("Capitate", "Hamate", "Lunate", "Scaphoid", "Radius", "Ulna")],
                    axis=0)
    ys2, xs2 = np.nonzero(carpus)
    film = np.ascontiguousarray(phantom.image[cut:min(phantom.image.shape[0], ys2.max() + 150),
                                              max(0, xs2.min() - 150):xs2.max() + 150])
    a = analyzer.analyze(film)
    assert a.meta.field_of_view == "wrist"
    assert not [b.name for b in a.bones if b.name.startswith(PHALANX)]
    assert a.totals.svdh is None and a.totals.partial_svdh is not None
    assert not any(j.located for j in a.joints if j.stem.startswith(("PIP", "IP", "MCP")))


@pytest.mark.parametrize("kind", ["blank", "noise", "long_bone", "gradient"])
def test_negatives_are_not_hands(analyzer, kind):
    rng = np.random.default_rng(880002)
    if kind == "blank":
        film = np.zeros((800, 600), np.uint8)
    elif kind == "noise":
        film = rng.integers(0, 256, (800, 600), dtype=np.uint8)
    elif kind == "gradient":  # a smooth exposure ramp, no structure
        film = np.linspace(0.0, 1.0, 800 * 600, dtype=np.float32).reshape(800, 600)
    else:  # a tibia-like shaft: soft tissue band, a bright cortex tube, a darker medulla
        yy, xx = np.mgrid[0:1000, 0:500].astype(np.float32)
        d = np.abs(xx - 250 - 0.03 * (yy - 500))
        film = 20 + 70 * (d < 140) + 110 * (d < 60) - 50 * (d < 35) + rng.normal(0, 3, yy.shape)
        film = np.clip(film, 0, 255).astype(np.uint8)
    with pytest.raises(NotAHandError) as e:
        analyzer.analyze(film)
    assert e.value.reason_code == "not_a_hand"
    batch = analyzer.analyze_batch([film])
    assert not batch[0] and isinstance(batch[0].exception, NotAHandError)


# ---- real films ------------------------------------------------------------------------------------------------------

def test_real_wrists_are_wrists_without_phalanges(analyzer, reference_dir):
    paths = sorted((reference_dir / "ramw600").glob("*.png"))
    if not paths:
        pytest.skip("RAM-W600 wrist crops not found")
    for p in paths:
        a = analyzer.analyze(str(p))
        assert a.meta.field_of_view == "wrist", p.name
        assert not [b.name for b in a.bones if b.name.startswith(PHALANX)], p.name
        assert a.totals.svdh is None


def test_real_atlas_hands_are_hands(analyzer, reference_dir):
    paths = sorted((reference_dir / "realhands" / "dha").glob("*.png"))
    if not paths:
        pytest.skip("hand-atlas films not found")
    for p in paths:
        a = analyzer.analyze(str(p))
        assert a.meta.field_of_view == "hand", p.name
        assert a.meta.orientation["rotation_deg"] == 0


def _labels(reference_dir):
    path = reference_dir / "realhands" / "rsna" / "labels.csv"
    if not path.is_file():
        pytest.skip("bone-age labels not found")
    return list(csv.DictReader(path.open()))


def test_real_bone_age_films_hands_and_orientation(reference_dir):
    """Every labelled bone-age film: the number of hands and the direction of the fingers (silhouette only)."""
    for row in _labels(reference_dir):
        pix = io.load_image(str(reference_dir / "realhands" / "rsna" / row["file"])).pixels
        s = understand.survey(pix)
        assert len(s.hands) == int(row["hands"]), row["file"]
        assert [h.rotation_deg for h in s.hands] == [ROT[row["fingers"]]] * len(s.hands), row["file"]


@pytest.mark.parametrize("name", ["hand_all_rotation_train_img15.png", "hand_all_rotation_train_img2.png"])
def test_real_turned_hand_is_located_as_well_as_upright(analyzer, reference_dir, name):
    rows = {r["file"]: r for r in _labels(reference_dir)}
    pix = io.load_image(str(reference_dir / "realhands" / "rsna" / name)).pixels
    turned = analyzer.analyze(pix)
    up = analyzer.analyze(np.ascontiguousarray(np.rot90(pix, ROT[rows[name]["fingers"]] // 90)))
    assert turned.meta.orientation["rotation_deg"] == ROT[rows[name]["fingers"]]
    assert up.meta.orientation["rotation_deg"] == 0
    assert sum(j.located for j in turned.joints) == sum(j.located for j in up.joints) > 11


def test_real_two_hand_film(analyzer, reference_dir):
    path = reference_dir / "realhands" / "rsna" / "hand_all_rotation_train_img29.png"
    if not path.is_file():
        pytest.skip("bone-age films not found")
    hands = analyzer.analyze_hands(str(path))
    assert len(hands) == 2
    assert hands[0].meta.hand_box[0] < hands[1].meta.hand_box[0]
    with pytest.raises(RamhError):
        analyzer.analyze(str(path))


def test_cli_writes_one_result_per_hand_and_one_csv_row(phantom, tmp_path):
    from PIL import Image

    from ramh_rt import cli

    film = np.concatenate([phantom.image, np.fliplr(phantom.image)], axis=1)
    path = tmp_path / "both.png"
    Image.fromarray(film).save(path)
    out = tmp_path / "out"
    assert cli.main(["analyze", str(path), "--out", str(out), "--json", "--csv", "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("*.json")) == ["both_L.json", "both_R.json"]
    rows = list(csv.DictReader((out / "ra2_scores.csv").open()))
    assert len(rows) == 1
    filled = {c[:3] for c, v in rows[0].items() if c != "Patient_ID" and v != ""}
    assert filled == {"LH_", "RH_"}


def test_stacked_metacarpals_are_not_a_pa_view():
    from types import SimpleNamespace

    def mc(d, x):
        return SimpleNamespace(name=f"MC{d}", instance=0, centroid=(x, 500.0), minor_axis_px=40.0,
                               bbox=(x - 20, 400, x + 20, 600))

    pa = [mc(2, 100), mc(3, 150), mc(4, 200), mc(5, 250)]
    lateral = [mc(2, 100), mc(3, 104), mc(4, 108), mc(5, 112)]
    keep = understand.BoneAssessment(keep={f"MC{d}" for d in range(2, 6)}, dropped={}, field_of_view="hand",
                                     score=0, is_hand=True, side=None)
    assert understand.view_reasons(pa, keep) == []
    (code, _, severity), = understand.view_reasons(lateral, keep)
    assert (code, severity) == ("view", "review")


def test_finger_crop_of_a_phantom_is_not_a_whole_hand(analyzer, phantom):
    # The phalanges of digits 2-5 with a margin: no carpus, no forearm.
    film = _crop(phantom, [f"{g}{d}" for g in ("PP", "MP", "DP") for d in range(2, 6)], pad=60)
    try:
        a = analyzer.analyze(film)
    except NotAHandError:
        return  # a documented answer for a crop this small
    assert a.meta.field_of_view in ("fingers", "partial")
    assert a.totals.svdh is None
    assert not any(j.located for j in a.joints if j.area.region == "wrist")
