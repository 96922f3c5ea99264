"""Juvenile phantoms (``PhantomConfig(skeletal_age=...)``): healthy children's hands with epiphyses and open growth
plates; the default (adult) phantoms are untouched by the option."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ramh_train.phantoms", reason="the phantom generator comes with the train extra")

from ramh_rt import anatomy  # noqa: E402
from ramh_train.phantoms import PhantomConfig, generate, juvenile  # noqa: E402

FAST = dict(spacing_mm=(0.2, 0.2), collimation_probability=0.0, ring_probability=0.0, cannula_probability=0.0)


def _same(a, b) -> bool:
    return (np.array_equal(a.image, b.image) and a.bone_masks.keys() == b.bone_masks.keys()
            and all(np.array_equal(a.bone_masks[k], b.bone_masks[k]) for k in a.bone_masks)
            and a.be_scores == b.be_scores and a.jsn_scores == b.jsn_scores)


@pytest.mark.parametrize("seed", [3, 41])
def test_adult_hands_are_unchanged_by_the_option(seed):
    """A hand the option leaves adult (fraction 0) is bit-identical to a default phantom: the juvenile draw has its
    own random stream and nothing else moves."""
    base = generate(seed, PhantomConfig(spacing_mm=(0.25, 0.25)))
    off = generate(seed, PhantomConfig(spacing_mm=(0.25, 0.25), skeletal_age=(4.0, 12.0), juvenile_fraction=0.0))
    assert _same(base, off)
    assert "juvenile" not in base.meta and "juvenile" not in off.meta


def test_mixing_draws_juvenile_hands_at_the_given_rate_and_is_deterministic():
    cfg = PhantomConfig(skeletal_age=(3.0, 15.0), juvenile_fraction=0.4)
    rng_ages = [juvenile.sample_age(np.random.default_rng(s), cfg.skeletal_age, cfg.juvenile_fraction)
                for s in range(400)]
    share = np.mean([a is not None for a in rng_ages])
    assert 0.32 < share < 0.48
    assert all(3.0 <= a <= 15.0 for a in rng_ages if a is not None)
    a = generate(12, PhantomConfig(**FAST, skeletal_age=(5.0, 9.0)))
    b = generate(12, PhantomConfig(**FAST, skeletal_age=(5.0, 9.0)))
    assert _same(a, b) and a.meta["juvenile"] == b.meta["juvenile"]
    assert 5.0 <= a.meta["juvenile"]["skeletal_age"] <= 9.0


@pytest.fixture(scope="module")
def child():
    """A 7-year-old's hand, rendered without noise so that intensities can be compared directly."""
    return generate(5, PhantomConfig(**FAST, skeletal_age=(7.0, 7.0), noise=False))


def test_child_hands_are_healthy(child):
    assert child.meta["isRA"] is False
    assert set(child.be_scores.values()) == {0} and set(child.jsn_scores.values()) == {0}
    assert child.meta["totals"]["svdh"] == 0 and not child.meta["lesions"]
    assert all(not m.any() for m in child.erosion_masks.values())


def _at(img: np.ndarray, p, r: int = 1) -> float:
    x, y = int(round(p[0])), int(round(p[1]))
    return float(img[y - r:y + r + 1, x - r:x + r + 1].astype(np.float64).mean())


@pytest.mark.parametrize("bone", ["PP3", "MP4", "DP2", "MC3", "Radius"])
def test_growth_plate_is_a_radiolucent_band_between_epiphysis_and_metaphysis(child, bone):
    e = child.meta["juvenile"]["epiphyses"][bone]
    assert e["stage"] == "separate" and e["physis_mm"] > 0.5
    img = child.image
    phys = np.array(e["physis_centre_px"])
    epi = np.array(e["epiphysis_centre_px"])
    # The metaphysis: from the epiphysis through the physis, 1.5 mm beyond the plate.
    away = (phys - epi) / np.linalg.norm(phys - epi)
    meta = phys + away * (0.5 * e["physis_mm"] + 1.5) / child.spacing_mm
    lo = _at(img, phys)
    assert lo < _at(img, epi) - 10 and lo < _at(img, meta) - 10, (lo, _at(img, epi), _at(img, meta))
    # The epiphysis is in its bone's mask (RAM-H1200 class); the physis, cartilage, in no bone mask.
    m = child.bone_masks[bone]
    assert m[int(epi[1]), int(epi[0])] and m[int(meta[1]), int(meta[0])]
    assert not any(child.bone_masks[k][int(phys[1]), int(phys[0])] for k in child.bone_masks if k != "SoftTissue")


def test_young_child_has_few_small_carpals_and_every_class_mask():
    young = generate(5, PhantomConfig(**FAST, skeletal_age=(3.0, 3.0), side="R"))
    older = generate(5, PhantomConfig(**FAST, skeletal_age=(12.0, 12.0), side="R"))
    assert set(young.bone_masks) >= set(anatomy.BONE_NAMES) - {"Sesamoid"}
    absent = [n for n, k in young.meta["juvenile"]["carpals"].items() if k == 0 and n != "Pisiform"]
    assert "Scaphoid" in absent and "Trapezium" in absent
    for n in absent:
        assert not young.bone_masks[n].any()
    assert young.bone_masks["Capitate"].any()
    # Relative to the hand (MC3 area), a 3-year-old's capitate is far smaller than a 12-year-old's.
    def rel(s):
        return s.bone_masks["Capitate"].sum() / s.bone_masks["MC3"].sum()

    assert rel(young) < 0.6 * rel(older)
    # Whole hand smaller: at the same spacing the 3-year-old's bones cover fewer pixels.
    assert young.bone_masks["MC3"].sum() < 0.7 * older.bone_masks["MC3"].sum()


def test_fused_adolescent_has_no_growth_plates():
    s = generate(8, PhantomConfig(**FAST, skeletal_age=(18.0, 18.0)))
    assert {e["stage"] for e in s.meta["juvenile"]["epiphyses"].values()} == {"fused"}
    assert all(v == 1.0 for v in s.meta["juvenile"]["carpals"].values())


def test_state_functions_follow_maturation():
    early, late = juvenile.epiphysis_state("PP", 4.0), juvenile.epiphysis_state("PP", 11.0)
    assert early.width_fraction < late.width_fraction and early.physis_mm > late.physis_mm
    assert juvenile.epiphysis_state("Ulna", 3.0).stage == "absent"
    assert juvenile.carpal_size("Scaphoid", 3.0) == 0.0 < juvenile.carpal_size("Scaphoid", 8.0)
    assert juvenile.size_factor(3.0) < juvenile.size_factor(10.0) < juvenile.size_factor(18.0) == 1.0
    assert juvenile.maturity_age(10.0, "F") > juvenile.maturity_age(10.0, "M")


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="skeletal_age"):
        PhantomConfig(skeletal_age=(1.0, 5.0))
    with pytest.raises(ValueError, match="skeletal_age"):
        PhantomConfig(skeletal_age=(10.0, 5.0))
    with pytest.raises(ValueError, match="juvenile_fraction"):
        PhantomConfig(skeletal_age=(5.0, 10.0), juvenile_fraction=1.5)
    with pytest.raises(ValueError, match="needs skeletal_age"):
        PhantomConfig(juvenile_fraction=0.3)
    with pytest.raises(ValueError, match="healthy"):
        PhantomConfig(skeletal_age=(5.0, 10.0), force_be=2)
    assert PhantomConfig(skeletal_age=(5, 10), force_jsn=0).skeletal_age == (5.0, 10.0)


def test_ramh_data_phantoms_mixes_in_juvenile_hands(tmp_path, capsys):
    """``ramh-data phantoms --juvenile F --skeletal-age LO,HI`` hands the real generator a config with those fields:
    the hands it writes are exactly ``generate(seed_i, that config)``."""
    import json

    from ramh_train import data_cli
    from ramh_train.datasets.ramh1200 import RamH1200
    from ramh_train.datasets.synthetic import phantom_seed, phantom_stem

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"spacing_mm": [0.4, 0.4]}))
    code = data_cli.main(["phantoms", "--out", str(tmp_path / "ds"), "--n", "2", "--seed", "4", "--split", "train",
                          "--workers", "1", "--config", str(cfg), "--juvenile", "1", "--skeletal-age", "5,9"])
    assert code == 0, capsys.readouterr()
    ds = RamH1200(tmp_path / "ds")
    want = PhantomConfig(spacing_mm=(0.4, 0.4), skeletal_age=(5.0, 9.0), juvenile_fraction=1.0)
    for i in range(2):
        s = generate(phantom_seed(4, i), want)
        assert 5.0 <= s.meta["juvenile"]["skeletal_age"] <= 9.0
        got = ds.load(phantom_stem(i, s.side))
        assert np.array_equal(got.image, s.image)
        assert set(got.be_scores.values()) == {0} and set(got.jsn_scores.values()) == {0}


@pytest.mark.parametrize("argv, message", [
    (["--skeletal-age", "5,9"], "needs --juvenile"),
    (["--juvenile", "1.5"], "fraction"),
    (["--juvenile", "1", "--skeletal-age", "1,9"], "skeletal ages"),
])
def test_ramh_data_phantoms_rejects_bad_juvenile_flags(tmp_path, capsys, argv, message):
    from ramh_train import data_cli

    try:
        code = data_cli.main(["phantoms", "--out", str(tmp_path / "ds"), "--n", "1", "--seed", "0", *argv])
    except SystemExit as e:  # argparse type errors exit 2
        code = e.code
    assert code == 2 and message in capsys.readouterr().err


def test_juvenile_proportions_match_the_atlas_children(reference_dir):
    """Juvenile ``ra2-fitted`` hands have the atlas children's bone lengths relative to the MCP width (the measures
    juvenile.LENGTH_FACTORS was set from), where adult hands of the same model do not."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import juvenile_shape as js
    import shape_fit

    atlas = js.all_measures(js.to_right_hand_frame(js.atlas_landmarks(reference_dir)))
    kids = js.all_measures(js.to_right_hand_frame(js.phantom_landmarks(40, 5000, "ra2-fitted", (3.0, 17.0))[0]))
    # Adult ra2-fitted hands are 0.9-2.7 atlas SDs off on these (PP3 0.74, CMC3-MCP3 1.20, MP3 0.48, thumb 0.51).
    for m, tol in (("proximal phalanx 3 / MCP width", 0.5), ("middle phalanx 3 / MCP width", 0.5),
                   ("thumb MCP-IP / MCP width", 0.5), ("thumb metacarpal CMC1-MCP1 / MCP width", 0.5),
                   ("metacarpal 3 CMC3-MCP3 / MCP width", 0.75)):
        assert abs(kids[m].mean() - atlas[m].mean()) < tol * atlas[m].std(), m
    assert shape_fit._ks(kids["proximal phalanx 3 / MCP width"], atlas["proximal phalanx 3 / MCP width"]) < 0.3
