"""Longitudinal comparison: visit pairs of phantom hands (ramh_train.phantoms.visits) and ramh_rt.compare."""
from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest

import ramh_rt
from ramh_rt import anatomy
from ramh_rt.progression import DEFAULT_SDC, ComparisonError, _p_increase, compare, json_schema
from ramh_train.phantoms import PhantomConfig, generate
from ramh_train.phantoms.visits import plan_progression, visit_pair

MEDIUM = PhantomConfig(spacing_mm=(0.25, 0.25))
PAIR_SEED = 4242
PAIR_CHANGE = {"BE_MCP-I": 2, "JSN_PIP-M": 1}


# ---- visit pairs (ground truth) -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pair():
    return visit_pair(PAIR_SEED, PAIR_CHANGE)


def test_visit_pair_same_hand_new_pose(pair):
    b, f = pair.baseline, pair.followup
    assert b.side == f.side
    for key in ("anatomy", "isRA", "severity", "sex"):
        assert b.meta[key] == f.meta[key]
    assert b.meta["layout"] != f.meta["layout"]  # new spacing, rotation, position
    assert f.stem.endswith(f"_V1_{b.side}")
    assert pair.total_delta == 3 and pair.erosion_delta == 2 and pair.jsn_delta == 1
    for k, v in b.scores.items():
        assert f.scores[k] == v + pair.delta[k]


def test_visit_pair_unchanged_areas_keep_their_lesions(pair):
    def lesions(sample, area):
        return [(d["bone"], d["grade"], round(d["length_mm"], 6), round(d["depth_mm"], 6))
                for d in sample.meta["lesions"] if d["area"] == area]

    for stem in anatomy.AREA_STEMS:
        if pair.delta.get(f"BE_{stem}", 0) == 0:
            assert lesions(pair.baseline, stem) == lesions(pair.followup, stem), stem


def test_visit_pair_zero_change_and_determinism():
    a = visit_pair(77, 0, config=MEDIUM)
    b = visit_pair(77, 0, config=MEDIUM)
    assert a.total_delta == 0 and a.baseline.scores == a.followup.scores
    assert a.pose_seed == b.pose_seed and np.array_equal(a.followup.image, b.followup.image)
    assert a.baseline.meta["layout"] != a.followup.meta["layout"]  # radiographed again, not copied
    # pose_seed=None in generate() keeps the old behaviour: the baseline is the plain phantom.
    assert np.array_equal(a.baseline.image, generate(77, MEDIUM).image)


def test_plan_progression_spreads_units_within_range():
    scores = {"BE_MCP-I": 5, "BE_U": 0, "JSN_SC": 3}
    d = plan_progression(scores, 3, np.random.default_rng(0))
    assert sum(d.values()) == 3 and d["BE_MCP-I"] == 0  # no room there
    assert scores["JSN_SC"] + d["JSN_SC"] <= anatomy.JSN_MAX and d["BE_U"] <= anatomy.BE_MAX
    with pytest.raises(ValueError, match="room for 6"):
        plan_progression(scores, 7, np.random.default_rng(0))
    with pytest.raises(ValueError, match=">= 0"):
        plan_progression(scores, -1, np.random.default_rng(0))


def test_visit_pair_refuses_bad_changes():
    with pytest.raises(ValueError, match="unknown score key"):
        visit_pair(5, {"MCP-I": 1}, config=MEDIUM)
    with pytest.raises(ValueError, match="int >= 0"):
        visit_pair(5, {"BE_MCP-I": -1}, config=MEDIUM)
    with pytest.raises(ValueError, match="pose_seed"):
        PhantomConfig(pose_seed=-3)


# ---- compare ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def analyzer():
    return ramh_rt.Analyzer(backend="onnxruntime-cpu")


@pytest.fixture(scope="module")
def analyses(analyzer, pair):
    b, f = pair.baseline, pair.followup
    return (analyzer.analyze(b.image, spacing_mm=b.spacing_mm), analyzer.analyze(f.image, spacing_mm=f.spacing_mm))


def test_compare_reports_per_area_changes(analyses):
    a, b = analyses
    p = ramh_rt.compare(a, b)
    assert isinstance(p, ramh_rt.Progression) and len(p.joints) == 22 and p.side == a.meta.side
    be = ero = jsn = 0
    for j in p.joints:
        assert j.comparable
        ja, jb = a.joint(j.stem), b.joint(j.stem)
        if ja.be_score is not None:
            assert j.be_delta == jb.be_score - ja.be_score
            ero += j.be_delta
        if ja.jsn_score is not None:
            assert j.jsn_delta == jb.jsn_score - ja.jsn_score
            jsn += j.jsn_delta
        assert j.eroded_mm2_delta == pytest.approx(jb.eroded_mm2 - ja.eroded_mm2)
        assert j.new_lesions == max(0, jb.lesions - ja.lesions)
        assert j.worsened == ((j.be_delta or 0) > 0 or (j.jsn_delta or 0) > 0)
    t = p.total
    assert (t.erosion_delta, t.jsn_delta, t.svdh_delta) == (ero, jsn, b.totals.svdh - a.totals.svdh)
    assert t.expected_delta == pytest.approx(b.totals.expected_svdh - a.totals.expected_svdh)
    assert t.interval[0] <= t.expected_delta <= t.interval[1]
    assert t.progressed == (t.svdh_delta > DEFAULT_SDC) and t.complete and t.areas_compared == 22
    assert p.flag_false_positive_rate is not None
    assert compare(a, b, sdc=0.5).total.progressed == (t.svdh_delta > 0.5)
    assert compare(a, b, sdc=0.5).flag_false_positive_rate is None


def test_compare_same_film_is_no_change(analyses):
    a, _ = analyses
    p = compare(a, a)
    t = p.total
    assert (t.svdh_delta, t.expected_delta, t.progressed) == (0, pytest.approx(0.0, abs=1e-9), False)
    assert t.interval[0] == -t.interval[1]  # the change distribution of a film against itself is symmetric
    assert not p.worsened
    for j in p.joints:
        probs = a.joint(j.stem).be_probs
        if probs is not None:  # P(X > Y) for two independent draws of one distribution, by enumeration
            brute = sum(probs[x] * probs[y] for x, y in itertools.product(range(len(probs)), repeat=2) if x > y)
            assert j.be_p_increase == pytest.approx(brute)


def test_p_increase_matches_enumeration():
    rng = np.random.default_rng(3)
    for _ in range(20):
        pb, pf = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
        brute = sum(pb[i] * pf[j] for i in range(6) for j in range(6) if j > i)
        assert _p_increase(list(pb), list(pf)) == pytest.approx(brute)
    assert _p_increase([1, 0, 0, 0, 0], [0, 1, 0, 0, 0]) == 1.0
    assert _p_increase([0, 0, 1, 0, 0], [0, 1, 0, 0, 0]) == 0.0


def test_compare_total_distribution_matches_monte_carlo(analyses):
    a, b = analyses
    p = compare(a, b, sdc=2.0)
    rng = np.random.default_rng(0)
    n = 20000
    tot = np.zeros(n, int)
    for s in anatomy.AREA_STEMS:
        for kind in ("be", "jsn"):
            pa, pb = getattr(a.joint(s), f"{kind}_probs"), getattr(b.joint(s), f"{kind}_probs")
            if pa is not None:
                pa, pb = np.asarray(pa) / np.sum(pa), np.asarray(pb) / np.sum(pb)
                tot += rng.choice(len(pb), n, p=pb) - rng.choice(len(pa), n, p=pa)
    assert p.total.p_progression == pytest.approx(np.mean(tot > 2.0), abs=0.015)
    lo, hi = np.quantile(tot, [0.025, 0.975])
    assert abs(p.total.interval[0] - lo) <= 1 and abs(p.total.interval[1] - hi) <= 1


def test_moved_hand_is_compared_roi_to_roi(analyzer, pair):
    """The same film placed elsewhere on a larger detector: the ROIs move, the per-area scores are paired by stem."""
    img = pair.baseline.image
    big = np.zeros((img.shape[0] + 300, img.shape[1] + 200), img.dtype)
    big[250:250 + img.shape[0], 120:120 + img.shape[1]] = img
    a = analyzer.analyze(img, spacing_mm=pair.baseline.spacing_mm)
    m = analyzer.analyze(big, spacing_mm=pair.baseline.spacing_mm)
    p = compare(a, m)
    shifts = [np.subtract(m.joint(s).roi[:2], a.joint(s).roi[:2]) for s in anatomy.AREA_STEMS if a.joint(s).located]
    assert np.median([s[0] for s in shifts]) == pytest.approx(120, abs=4)
    assert np.median([s[1] for s in shifts]) == pytest.approx(250, abs=4)
    assert not p.total.progressed and abs(p.total.svdh_delta) <= 2


def test_compare_refuses_other_side_and_unknown_side(analyzer, analyses, pair):
    a, _ = analyses
    mirrored = analyzer.analyze(np.ascontiguousarray(pair.baseline.image[:, ::-1]),
                                spacing_mm=pair.baseline.spacing_mm)
    assert mirrored.meta.side != a.meta.side
    with pytest.raises(ComparisonError, match="same hand"):
        compare(a, mirrored)
    unknown = dataclasses.replace(a, meta=dataclasses.replace(a.meta, side=None))
    with pytest.raises(ComparisonError, match="follow-up hand's side is unknown"):
        compare(a, unknown)
    with pytest.raises(ComparisonError, match="must be a ramh_rt Analysis"):
        compare(a, a.to_dict())
    with pytest.raises(ValueError, match="sdc"):
        compare(a, a, sdc=0)
    with pytest.raises(ValueError, match="level"):
        compare(a, a, level=1.0)
    assert issubclass(ComparisonError, ramh_rt.errors.RamhError)


def test_compare_without_spacing_gives_no_mm2(analyzer, analyses, pair):
    a, _ = analyses
    f = analyzer.analyze(pair.followup.image)  # an array carries no spacing
    assert f.meta.spacing_mm is None
    p = compare(a, f)
    assert all(j.eroded_mm2_delta is None and "spacing unknown for the follow-up" in j.mm2_note
               for j in p.joints if j.comparable)
    assert any("spacing unknown" in w for w in p.warnings)
    assert p.total.svdh_delta == f.totals.svdh - a.totals.svdh  # scores do not need the spacing


def test_progression_json_schema_and_overlay(analyses, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    a, b = analyses
    p = compare(a, b)
    d = json.loads(p.to_json())
    jsonschema.validate(d, json_schema())
    assert d["schema"] == "ramh_rt.progression/1" and d["total"]["svdh_delta"] == p.total.svdh_delta
    img = p.overlay(tmp_path / "p.png")
    ra, rb = a.overlay(max_side=1200), b.overlay(max_side=1200)  # the two films, drawn by the one renderer
    assert (tmp_path / "p.png").stat().st_size > 0
    assert img.width == ra.width + rb.width and img.height > max(ra.height, rb.height)


def test_cli_compare(pair, tmp_path):
    from PIL import Image

    from ramh_rt.cli import main

    paths = []
    for name, s in (("base.png", pair.baseline), ("fu.png", pair.followup)):
        Image.fromarray(s.image).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    out = tmp_path / "out"
    assert main(["compare", *paths, "--out", str(out), "--side", pair.baseline.side, "--spacing-mm", "0.12",
                 "--backend", "onnxruntime-cpu"]) == 0
    d = json.loads((out / "progression.json").read_text())
    assert d["side"] == pair.baseline.side and (out / "progression_overlay.png").exists()
    # a follow-up of the other hand is refused (exit 1, no traceback)
    Image.fromarray(np.ascontiguousarray(pair.followup.image[:, ::-1])).save(tmp_path / "other.png")
    assert main(["compare", paths[0], str(tmp_path / "other.png"), "--out", str(tmp_path / "o2"),
                 "--backend", "onnxruntime-cpu"]) == 1
