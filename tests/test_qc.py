"""ramh_rt.qc: the status logic, each reason's trigger on crafted inputs, the domain distance (phantoms in, real films
out), the manifest's qc section, schema v2 of the JSON, the uncertainty, and ``ramh analyze --fail-on``."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest
from PIL import Image

from ramh_rt import qc
from ramh_rt.bundle import Bundle, read_manifest, validate_manifest
from ramh_rt.errors import BundleError
from ramh_rt.pipeline import Analyzer
from ramh_rt.result import json_schema

phantoms = pytest.importorskip("ramh_train.phantoms", reason="the phantom generator comes with the train extra")
from ramh_train.datasets.synthetic import phantom_seed  # noqa: E402

DEFAULT_BUNDLE = Path(__file__).resolve().parent.parent / "models" / "ramh-default"
# Phantoms of a dataset seed used neither in training (1000, 1500, 2000) nor by qc-stats (3000, 4000) nor by the
# calibration benchmark (5000).
UNSEEN = 9100


@pytest.fixture(scope="module")
def analyzer():
    return Analyzer(backend="onnxruntime-cpu")


@pytest.fixture(scope="module")
def phantom_cases(analyzer):
    out = []
    for i in range(3):
        s = phantoms.generate(phantom_seed(UNSEEN, i))
        out.append((s, analyzer.analyze(s.image)))
    return out


# ---- status logic ----------------------------------------------------------------------------------------------------

def test_status_is_decided_by_the_worst_severity():
    q = qc.QualityControl()
    assert q.status == "ok"
    q.add("spacing_unknown", "no spacing")
    q.add("orientation_applied", "turned")
    assert q.status == "ok"  # info reasons leave a clean result ok
    q.add("out_of_domain", "far")
    assert q.status == "review"
    q.add("contrast", "blank", "reject")
    assert q.status == "reject"
    q.add("contrast", "again")  # one reason per code
    assert q.codes.count("contrast") == 1
    d = q.to_dict()
    assert d["status"] == "reject" and [r["code"] for r in d["reasons"]] == q.codes


def test_reason_forms_and_errors():
    assert qc.Reason("view", "oblique").severity == "review"  # the code's default
    assert qc.Reason.of(["mirrored", "m", "info"]) == qc.Reason("mirrored", "m", "info")
    assert qc.Reason.of({"code": "view", "message": "x"}).severity == "review"
    with pytest.raises(ValueError, match="unknown qc reason code"):
        qc.Reason("blurry", "x")
    with pytest.raises(ValueError, match="severity"):
        qc.Reason("view", "x", "fatal")
    with pytest.raises(ValueError):
        qc.Reason.of(["view"])
    for code in ("field_of_view", "orientation_applied", "mirrored", "view", "side_conflict", "spacing_unknown",
                 "exposure", "contrast", "saturation", "out_of_domain", "implausible_anatomy", "inconsistent_scores",
                 "skeletally_immature", "not_a_hand"):
        assert qc.REASON_CODES[code] in qc.SEVERITIES


def _meta(**kw):
    base = dict(spacing_mm=0.1, field_of_view=None, orientation=None, understanding_reasons=[], image_shape=(400, 300))
    base.update(kw)
    return NS(**base)


def _totals(svdh=10, global_svdh=12.0, complete=True):
    return NS(svdh=svdh, global_svdh=global_svdh, complete=complete, severity="minimal",
              severity_source="joint_scores")


def test_assess_takes_the_input_understanding_from_meta():
    a = NS(meta=_meta(field_of_view="wrist", orientation={"rotation_deg": 90, "mirrored": True},
                      understanding_reasons=[["side_conflict", "header says L, anatomy R", "review"]]),
           bones=[], totals=_totals())
    q = qc.assess(a)
    assert q.field_of_view == "wrist" and q.orientation == {"rotation_deg": 90, "mirrored": True}
    assert q.codes[:1] == ["side_conflict"]
    assert {"field_of_view", "orientation_applied", "mirrored", "domain_unknown"} <= set(q.codes)
    assert q.status == "review"
    # defaults: a whole upright hand; info reasons only -> ok
    q = qc.assess(NS(meta=_meta(spacing_mm=None), bones=[], totals=_totals()))
    assert q.field_of_view == "hand" and q.orientation == {"rotation_deg": 0, "mirrored": False}
    assert "spacing_unknown" in q.codes and q.status == "ok"
    with pytest.raises(ValueError, match="field of view"):
        qc.assess(NS(meta=_meta(field_of_view="foot"), bones=[], totals=_totals()))
    with pytest.raises(ValueError, match="rotation_deg"):
        qc.assess(NS(meta=_meta(orientation={"rotation_deg": 45}), bones=[], totals=_totals()))


# ---- image quality ---------------------------------------------------------------------------------------------------

def _hand_like(rng, lo=10, hi=230, shape=(400, 300)) -> np.ndarray:
    """A dark background with a bright textured blob: grey levels from lo to hi."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    blob = np.exp(-(((yy - 200) / 120.0) ** 2 + ((xx - 150) / 80.0) ** 2))
    v = lo + (hi - lo) * blob * (0.85 + 0.15 * rng.random(shape))
    return np.clip(v, 0, 255).astype(np.uint8)


def _window(img) -> tuple[float, float]:
    return float(np.percentile(img, 0.5)), float(np.percentile(img, 99.5))


@pytest.mark.parametrize("case, code, severity", [
    ("dark", "exposure", "review"),
    ("flat", "contrast", "review"),
    ("saturated", "saturation", "review"),
    ("blank", "contrast", "reject"),
])
def test_image_quality_reasons(rng, case, code, severity):
    img = _hand_like(rng)
    assert qc.image_quality(img, _window(img)) == []  # a well exposed image: nothing
    if case == "dark":
        img = (img // 6).astype(np.uint8)
    elif case == "flat":
        img = (100 + img // 12).astype(np.uint8)
    elif case == "saturated":
        img = img.copy()
        img[100:300, 60:240] = 255
    else:
        img = np.full((300, 300), 77, np.uint8)
    found = {r.code: r.severity for r in qc.image_quality(img, _window(img))}
    assert found.get(code) == severity, found


def test_image_quality_uses_bits_stored():
    rng = np.random.default_rng(0)
    img12 = (_hand_like(rng).astype(np.uint16) * 16)  # a 12-bit image in uint16
    assert qc.image_quality(img12, _window(img12), bits_stored=12) == []
    assert "exposure" in {r.code for r in qc.image_quality(img12, _window(img12))}  # judged on 16 bits: dark


# ---- anatomy and scores ----------------------------------------------------------------------------------------------

def _bone(name, c, width=20.0, height=40.0):
    x, y = c
    return NS(name=name, instance=0, area_px=int(width * height), centroid=c, minor_axis_px=width,
              bbox=(x - width / 2, y - height / 2, x + width / 2, y + height / 2))


def test_implausible_anatomy_is_the_understanding_check():
    """qc.anatomy_reasons reports what understand.implausible_bones (the one plausibility check, by which the input
    understanding drops bones) finds in a result."""
    from ramh_rt.understand import implausible_bones

    ok = [_bone("MC3", (100, 300), 30, 120), _bone("PP3", (100, 200), 24, 70), _bone("MP3", (100, 140), 20, 40),
          _bone("DP3", (100, 100), 16, 30)]
    assert qc.anatomy_reasons(ok, 400) == [] and implausible_bones(ok, 400) == {}
    sliver = ok[:3] + [_bone("DP3", (100, 100), 3, 30)]  # a tenth of the metacarpal's width
    assert set(implausible_bones(sliver, 400)) == {"DP3"}
    (r,) = qc.anatomy_reasons(sliver, 400)
    assert r.code == "implausible_anatomy" and r.severity == "review" and "DP3" in r.message and "sliver" in r.message
    disorder = ok[:2] + [_bone("MP3", (100, 260), 20, 40)]  # a middle phalanx proximal to the proximal phalanx
    (r,) = qc.anatomy_reasons(disorder, 400)
    assert "MP3 (does not lie distal to PP3)" in r.message
    # The understanding drops exactly these bones, and says so with an info reason of the same code.
    from ramh_rt.understand import assess_bones

    ass = assess_bones(disorder, (400, 300))
    assert "MP3" in ass.dropped and "MP3" not in ass.keep
    assert any(c == "implausible_anatomy" and sev == "info" and "MP3" in m for c, m, sev in ass.reasons)


def test_inconsistent_scores():
    assert qc.score_reasons(_totals(svdh=20, global_svdh=25.0)) == []
    (r,) = qc.score_reasons(_totals(svdh=104, global_svdh=34.0))
    assert r.code == "inconsistent_scores" and "104" in r.message and "34" in r.message
    assert qc.score_reasons(_totals(svdh=104, global_svdh=None)) == []  # nothing to compare
    assert qc.score_reasons(_totals(svdh=None, global_svdh=34.0)) == []  # no whole-hand total
    # not every area scored: the partial sum is a lower bound of the total
    (r,) = qc.score_reasons(_totals(svdh=104, global_svdh=34.0, complete=False))  # severity "minimal"
    assert "scored areas alone total 104" in r.message
    t = _totals(svdh=None, global_svdh=34.0, complete=False)
    t.partial_svdh, t.severity = 3, "minimal"
    assert qc.score_reasons(t) == []


# ---- uncertainty -----------------------------------------------------------------------------------------------------

def test_expected_abs_error_and_interval():
    assert qc.expected_abs_error([1, 0, 0, 0, 0]) == 0.0
    assert qc.expected_abs_error([0.5, 0.0, 0.5, 0, 0]) == pytest.approx(1.0)  # median 0 (P(<=0) = 0.5)
    assert qc.expected_abs_error(None) is None
    joints = [NS(be_probs=[0.1, 0.8, 0.1, 0, 0, 0], jsn_probs=[0.2, 0.6, 0.2, 0, 0]) for _ in range(10)]
    dist = qc.total_distribution(joints)
    assert dist.sum() == pytest.approx(1.0) and len(dist) == 1 + 10 * (5 + 4)
    narrow = qc.total_interval(joints, qc.UncertaintyCalibration())
    wide = qc.total_interval(joints, qc.UncertaintyCalibration(interval_scale=2.0))
    assert narrow[0] <= 20 <= narrow[1] and wide[0] <= narrow[0] and wide[1] >= narrow[1]


def test_annotate_uncertainty():
    j_sure = NS(located=True, be_probs=[1, 0, 0, 0, 0, 0], jsn_probs=[1, 0, 0, 0, 0])
    j_unsure = NS(located=True, be_probs=[0.4, 0.2, 0.4, 0, 0, 0], jsn_probs=None)
    j_missing = NS(located=False, be_probs=None, jsn_probs=None)
    a = NS(joints=[j_sure, j_unsure, j_missing], totals=NS(svdh=3, complete=False))
    qc.annotate_uncertainty(a, qc.UncertaintyCalibration(be_scale=2.0, review_threshold=0.5))
    assert j_sure.uncertainty == 0.0 and not j_sure.review
    assert j_unsure.uncertainty == pytest.approx(2.0 * (0.4 * 1 + 0.4 * 1)) and j_unsure.review  # median 1
    assert j_missing.uncertainty is None and not j_missing.review
    assert a.totals.svdh_interval is None  # not every area scored


# ---- the pipeline on phantoms and on real films ----------------------------------------------------------------------

def test_phantoms_are_in_domain_and_ok(phantom_cases):
    dom = qc.DomainModel.from_manifest(read_manifest(DEFAULT_BUNDLE / "manifest.json").get("qc"))
    assert dom is not None, "the default bundle must carry qc statistics (ramh-train qc-stats)"
    for s, a in phantom_cases:
        assert a.qc.domain_threshold == pytest.approx(dom.threshold)
        assert a.qc.domain_score is not None and a.qc.domain_score <= a.qc.domain_threshold, s.stem
        assert a.qc.status == "ok", (s.stem, a.qc.to_dict())
        assert "spacing_unknown" in a.qc.codes  # an array carries no spacing: info only
        t = a.totals
        assert t.svdh_interval is not None and t.svdh_interval[0] <= t.svdh <= t.svdh_interval[1]
        assert all(j.uncertainty is not None and j.uncertainty >= 0 for j in a.joints if j.located)


def test_json_schema_v2(phantom_cases):
    jsonschema = pytest.importorskip("jsonschema")
    _, a = phantom_cases[0]
    doc = json.loads(a.to_json())
    jsonschema.validate(doc, json_schema())
    assert doc["schema"] == "ramh_rt.analysis/2" and doc["qc"]["status"] == "ok"
    assert all("uncertainty" in j and "review" in j for j in doc["joints"])
    # the input understanding's fields, and a hand total that is not reported (partial field of view)
    b = copy.copy(a)
    b.meta = copy.copy(a.meta)
    b.meta.hand_box, b.meta.field_of_view = (10, 20, 300, 400), "wrist"
    b.meta.orientation = {"rotation_deg": 270, "mirrored": True}
    b.meta.understanding_reasons = [["view", "oblique view", "review"]]
    b.totals = copy.copy(a.totals)
    b.totals.svdh, b.totals.partial_svdh, b.totals.svdh_interval = None, 7, None
    b.qc = qc.assess(b)
    doc = json.loads(b.to_json())
    jsonschema.validate(doc, json_schema())
    assert doc["qc"]["status"] == "review" and doc["meta"]["hand_box"] == [10, 20, 300, 400]
    doc["qc"]["status"] = "fine"
    assert not jsonschema.Draft202012Validator(json_schema()).is_valid(doc)


def test_no_domain_statistics_gives_domain_unknown(tmp_path):
    b = tmp_path / "b"
    shutil.copytree(DEFAULT_BUNDLE, b)
    m = json.loads((b / "manifest.json").read_text())
    m.pop("qc", None)
    (b / "manifest.json").write_text(json.dumps(m))
    an = Analyzer(b, backend="onnxruntime-cpu")
    assert an.qc_domain is None
    a = an.analyze(phantoms.generate(phantom_seed(UNSEEN, 0)).image)
    assert a.qc.domain_score is None and "domain_unknown" in a.qc.codes and a.qc.status == "ok"


REAL = ("ramw600/0016_0001_R_erosive.png", "realhands/dha/3167.png",
        "realhands/rsna/hand_all_rotation_train_img64.png")


@pytest.mark.parametrize("rel", REAL)
def test_real_films_are_out_of_domain(analyzer, reference_dir, rel):
    a = analyzer.analyze(reference_dir / rel)
    assert a.qc.domain_score > a.qc.domain_threshold
    assert "out_of_domain" in a.qc.codes and a.qc.status in ("review", "reject")


@pytest.mark.parametrize("rel", ["realhands/dha/3167.png", "realhands/rsna/hand_all_rotation_train_img64.png"])
def test_childrens_hands_are_skeletally_immature(analyzer, reference_dir, rel):
    a = analyzer.analyze(reference_dir / rel)
    assert "skeletally_immature" in a.qc.codes


def test_growth_plates_are_not_judged_on_a_wrist_field_of_view(analyzer, reference_dir):
    # RAM-W600 wrists are adults'; the bone model's "finger bones" there are fragments. Once the input understanding
    # says "wrist", the check does not run.
    a = analyzer.analyze(reference_dir / "ramw600/0016_0001_R_erosive.png")
    assert qc.maturity_reasons(a.image, a.bones, "wrist") == []


def test_adult_phantoms_are_not_immature(phantom_cases):
    for s, a in phantom_cases:
        assert qc.maturity_reasons(a.image, a.bones) == [], s.stem


# ---- the domain model and the manifest section -----------------------------------------------------------------------

def test_domain_distance_is_mahalanobis():
    rng = np.random.default_rng(3)
    f = len(qc.DOMAIN_FEATURES)
    a = rng.normal(size=(f, f))
    prec = a @ a.T + f * np.eye(f)
    dm = qc.DomainModel(qc.DOMAIN_FEATURES, rng.normal(size=f), rng.uniform(0.5, 2, f), prec, 3.0)
    x = rng.normal(size=f)
    z = (x - dm.mean) / dm.scale
    assert dm.distance(x) == pytest.approx(float(np.sqrt(z @ prec @ z)))
    assert dm.distance(dm.mean) == 0.0


def test_fit_domain_and_uncertainty():
    from ramh_train.qc_stats import ImageSet, fit_domain, fit_uncertainty

    rng = np.random.default_rng(5)
    f = len(qc.DOMAIN_FEATURES)
    train = rng.normal(1.0, 0.1, size=(200, f))
    train[:, 10] = 1.0  # a feature that never varies (bones found) must not make everything else far
    held = rng.normal(1.0, 0.1, size=(100, f))
    held[:, 10] = 1.0
    sec = fit_domain(train, held, quantile=0.95)
    from ramh_rt.manifest import check_values

    m = read_manifest(DEFAULT_BUNDLE / "manifest.json")
    m["qc"] = {"domain": sec}
    assert validate_manifest(m) == [] and check_values(m) == []  # what Bundle.load accepts
    dm = qc.DomainModel.from_manifest({"domain": sec})
    d = np.array([dm.distance(r) for r in held])
    assert np.mean(d > dm.threshold) == pytest.approx(0.05, abs=0.011)
    far = held[0] + 1.0
    assert dm.distance(far) > 3 * dm.threshold
    one_off = held[0].copy()
    one_off[10] = 27 / 28  # one bone missed
    assert dm.distance(one_off) < 2 * dm.threshold
    with pytest.raises(ValueError):
        fit_domain(train[:5], held)
    # uncertainty: predictions twice as confident as the truth warrants -> scale about 2
    recs = []
    for _ in range(50):
        joints = []
        for kind, n in (("BE", 6), ("JSN", 5)):
            p = np.zeros(n)
            p[:2] = (0.8, 0.2)
            joints.append({"kind": kind, "stem": "MCP-I", "probs": p.tolist(), "truth": int(rng.random() < 0.4)})
        recs.append({"joints": joints, "complete": True, "true_svdh": 1, "total_dist": [0.7, 0.3]})
    u = fit_uncertainty(recs)
    assert 1.4 < u["be_scale"] < 2.8 and u["heldout_coverage"] >= 0.9
    with pytest.raises(ValueError, match="phantoms:SEED:N"):
        ImageSet.parse("phantoms:12")
    with pytest.raises(ValueError, match="not phantoms"):
        ImageSet.parse("/nonexistent/dir")


# (mutation, expected problem, True when a JSON schema can say it: validate_manifest, else check_values)
QC_SECTION_ERRORS = [
    (lambda s: s["domain"].__setitem__("threshold", 0), "qc.domain.threshold: must be a number > 0, got 0", True),
    (lambda s: s["domain"].__setitem__("mean", [0.0]), "qc.domain.mean: has 1 values for 13 features", False),
    (lambda s: s["domain"]["scale"].__setitem__(0, -1.0), "qc.domain.scale[0]: must be a number > 0, got -1.0", True),
    (lambda s: s["domain"]["precision"][0].__setitem__(1, 99.0), "qc.domain.precision: must be symmetric", False),
    (lambda s: s["domain"]["precision"].pop(), "qc.domain.precision: must be a 13 x 13 matrix", False),
    (lambda s: s["domain"]["precision"][2].__setitem__(0, "x"), "qc.domain.precision[2][0]: must be a finite", True),
    (lambda s: s["domain"].pop("features"), "qc.domain.features: required field is missing", True),
    (lambda s: s["domain"].__setitem__("features", []), "qc.domain.features: must have at least 1 items", True),
    (lambda s: s["uncertainty"].__setitem__("interval_level", 1.5),
     "qc.uncertainty.interval_level: must be a number in (0, 1), got 1.5", True),
    (lambda s: s["uncertainty"].__setitem__("interval_level", 1), "qc.uncertainty.interval_level: must be", True),
    (lambda s: s["uncertainty"].__setitem__("be_scale", "big"), "qc.uncertainty.be_scale: must be a finite", True),
    (lambda s: s.__setitem__("domain", [1, 2]), "qc.domain: must be an object", True),
]


@pytest.mark.parametrize("mutate, problem, structural", QC_SECTION_ERRORS)
def test_manifest_qc_section_errors(tmp_path, mutate, problem, structural):
    """The qc section is checked by the manifest's one validator (structure: validate_manifest, agreeing with the
    JSON schema; lengths and symmetry: check_values), and Bundle.load refuses it naming the field."""
    from ramh_rt.manifest import check_values

    m = read_manifest(DEFAULT_BUNDLE / "manifest.json")
    assert "qc" in m and validate_manifest(m) == [] and check_values(m) == []
    mutate(m["qc"])
    problems = validate_manifest(m)
    if structural:
        assert any(p.startswith(problem) for p in problems), problems
        jsonschema = pytest.importorskip("jsonschema")
        schema = json.loads((Path(qc.__file__).parent / "schemas" / "bundle_manifest.schema.json").read_text())
        assert not jsonschema.validators.validator_for(schema)(schema).is_valid(m), "the JSON schema accepts it"
    else:
        assert problems == []
        assert any(p.startswith(problem) for p in check_values(m)), check_values(m)
    b = tmp_path / "b"
    shutil.copytree(DEFAULT_BUNDLE, b)
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="qc"):
        Bundle.load(b)


def _bundle_copy(tmp_path, edit) -> Path:
    """A copy of the default bundle whose manifest ``edit`` changed (models/ is never modified)."""
    b = tmp_path / "b"
    shutil.copytree(DEFAULT_BUNDLE, b)
    m = json.loads((b / "manifest.json").read_text())
    edit(m)
    (b / "manifest.json").write_text(json.dumps(m))
    return b


def test_incompatible_domain_model_is_a_warning_and_a_qc_reason(tmp_path):
    """Statistics of another feature list (a bundle of another ramh_rt version) load, with a warning naming the
    difference; each result then has no domain_score and an info reason saying why, never a silent None."""
    def rename_last_feature(m):
        d = m["qc"]["domain"]
        d["features"] = d["features"][:-1] + ["bone_count_v0"]  # one renamed: same length, other names
    b = _bundle_copy(tmp_path, rename_last_feature)
    with pytest.warns(RuntimeWarning, match=r"missing bone_to_soft_tissue; unknown bone_count_v0"):
        an = Analyzer(b, backend="onnxruntime-cpu")
    assert an.qc_domain is not None and "bone_to_soft_tissue" in an.qc_domain.problem
    with pytest.raises(ValueError, match="domain model incompatible"):
        an.qc_domain.distance(np.zeros(len(qc.DOMAIN_FEATURES)))
    a = an.analyze(phantoms.generate(phantom_seed(UNSEEN, 0)).image)
    assert a.qc.domain_score is None and a.qc.domain_threshold is None
    (r,) = [r for r in a.qc.reasons if r.code == "domain_unknown"]
    assert r.severity == "info" and r.message.startswith("domain model incompatible") and "bone_count_v0" in r.message
    assert a.qc.status == "ok"  # an info reason: the phantom is otherwise clean
    # A shorter list with statistics to match is a valid manifest, and as incompatible.
    def shorter(m):
        d = m["qc"]["domain"]
        d["features"], d["mean"], d["scale"] = d["features"][:-1], d["mean"][:-1], d["scale"][:-1]
        d["precision"] = [row[:-1] for row in d["precision"][:-1]]
    b2 = _bundle_copy(tmp_path / "2", shorter)
    with pytest.warns(RuntimeWarning, match=r"missing bone_to_soft_tissue; the bundle has 12, the runtime computes"):
        assert qc.DomainModel.from_manifest(Bundle.load(b2).manifest["qc"]).problem


# ---- the command line ------------------------------------------------------------------------------------------------

def test_cli_fail_on(tmp_path, capsys):
    from ramh_rt.cli import main, sample_image_path

    ok_png = sample_image_path()
    dark = tmp_path / "dark_R.png"
    Image.fromarray((np.asarray(Image.open(ok_png).convert("L")) // 8).astype(np.uint8)).save(dark)
    out = tmp_path / "out"
    assert main(["analyze", str(ok_png), "--out", str(out), "--fail-on", "review", "--backend",
                 "onnxruntime-cpu"]) == 0
    assert "qc ok" in capsys.readouterr().err
    assert main(["analyze", str(dark), "--out", str(out), "--fail-on", "review", "--backend", "onnxruntime-cpu"]) == 3
    err = capsys.readouterr().err
    assert "qc review (" in err and "exposure" in err and "--fail-on" in err
    assert main(["analyze", str(dark), "--out", str(out), "--fail-on", "reject", "--backend", "onnxruntime-cpu"]) == 0
    assert main(["analyze", str(dark), "--out", str(out), "--backend", "onnxruntime-cpu"]) == 0  # no --fail-on
    doc = json.loads((out / "dark_R.json").read_text())
    assert doc["qc"]["status"] == "review"


def test_model_card_reports_the_bundle_qc_statistics():
    """The card says what the domain statistics and the uncertainty were fitted on (ramh-train qc-stats)."""
    pytest.importorskip("ramh_train.model_card", reason="the model card is the training package's")
    from ramh_train.model_card import _qc_section

    section = {"domain": {"features": ["a", "b"], "threshold": 5.5, "threshold_quantile": 0.99, "distance": "mahalanobis",
                          "train": {"images": 200, "images_from": "phantoms:3000:200"},
                          "heldout": {"images": 100, "images_from": "phantoms:4000:100"}},
               "uncertainty": {"be_scale": 0.9, "jsn_scale": 0.8, "interval_level": 0.9, "interval_scale": 1.1,
                               "heldout_hands": 100, "heldout_coverage": 0.93, "images_from": "phantoms:4000:100"}}
    text = "\n".join(_qc_section(section))
    assert text.startswith("## Quality control statistics")
    assert "fitted on 200 images (phantoms:3000:200)" in text and "threshold 5.500" in text
    assert "(phantoms:4000:100)" in text and "coverage 0.93" in text
    assert _qc_section(None) == [] and _qc_section({}) == []
