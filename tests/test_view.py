"""The view classifier (ramh_rt.view) and its fusion with the geometric evidence (ramh_rt.understand).

The NumPy network must equal its torch twin with batch norm folded; the bundle section is validated and its file
checksummed; a bundle without it loads and falls back to the geometry; the shipped classifier recognises phantom
variants from seeds none of its training used; on a partial field of view no whole-hand estimate is reported.
"""
import json
import shutil

import numpy as np
import pytest

from ramh_rt import understand, view
from ramh_rt.bundle import Bundle
from ramh_rt.errors import BundleError, NotAHandError
from ramh_rt.manifest import validate_manifest
from ramh_rt.pipeline import Analyzer


def _bundle_dir():
    return Bundle.load().path


def _prediction(fov: dict, rot: int = 0, p_rot: float = 0.97) -> view.ViewPrediction:
    probs = {c: float(fov.get(c, 0.0)) for c in view.VIEW_CLASSES}
    rest = (1.0 - p_rot) / 3
    return view.ViewPrediction(probs=probs, rotation_probs={r: (p_rot if r == rot else rest) for r in view.ROTATIONS},
                               chirality_probs={"L": 0.5, "R": 0.5})


def test_numpy_network_equals_the_torch_model_with_batch_norm_folded():
    torch = pytest.importorskip("torch")
    from ramh_train.view import build_model, fold

    torch.manual_seed(0)
    model = build_model()
    for m in model.modules():  # non-trivial running statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    model.eval()
    x = np.random.default_rng(0).random((3, *view.INPUT_HW), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x[:, None])).numpy()
    params = fold(model)
    got = np.stack([view.forward(params, xi) for xi in x])
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_view_input_windows_and_letterboxes_the_box():
    film = np.zeros((300, 200), np.uint16)
    film[50:250, 40:160] = np.linspace(100, 4000, 120, dtype=np.uint16)[None, :]
    before = film.copy()
    x = view.view_input(film, (40, 50, 160, 250))
    assert x.shape == view.INPUT_HW and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.95
    np.testing.assert_array_equal(film, before)  # the input is not modified
    with pytest.raises(ValueError, match="empty"):
        view.view_input(film, (190, 10, 400, 20)[:2] + (190, 20))
    with pytest.raises(ValueError, match="H x W"):
        view.view_input(np.zeros((2, 3, 4)))


def test_fusion_rules():
    # The geometry decides unless the classifier is far surer of another field of view (4.5 : 1).
    assert understand.fuse_field_of_view("hand", None) == "hand"
    assert understand.fuse_field_of_view("hand", _prediction({"hand": 0.3, "wrist": 0.7})) == "hand"
    assert understand.fuse_field_of_view("hand", _prediction({"hand": 0.1, "wrist": 0.9})) == "wrist"
    # Not a hand: sure classifier rejects or accepts; in between, the geometry.
    assert understand.fuse_is_hand(True, _prediction({"not_a_hand": 0.6})) is False
    assert understand.fuse_is_hand(True, _prediction({"not_a_hand": 0.9}), digits=True) is True
    assert understand.fuse_is_hand(True, _prediction({"not_a_hand": 0.97}), digits=True) is False
    assert understand.fuse_is_hand(False, _prediction({"hand": 0.95, "not_a_hand": 0.05}), layout=30.0) is True
    assert understand.fuse_is_hand(False, _prediction({"hand": 0.95, "not_a_hand": 0.05}), layout=15.0) is False
    assert understand.fuse_is_hand(False, _prediction({"hand": 0.95, "not_a_hand": 0.05}), layout=15.0,
                                   turn_sure=True) is True
    assert understand.fuse_is_hand(False, _prediction({"hand": 0.7, "not_a_hand": 0.3})) is False
    assert understand.fuse_is_hand(True, _prediction({"hand": 0.7, "not_a_hand": 0.3})) is True
    # The side: the bones on a whole hand; a sure apparent side on a crop or where the bones give none.
    right = view.ViewPrediction(probs=_prediction({"wrist": 1.0}).probs, rotation_probs=_prediction({}).rotation_probs,
                                chirality_probs={"L": 0.04, "R": 0.96})
    assert understand.fuse_side("L", "hand", right) == "L"
    assert understand.fuse_side(None, "hand", right) == "R"
    assert understand.fuse_side("L", "wrist", right) == "R"
    assert understand.fuse_side("L", "wrist", _prediction({"wrist": 1.0})) == "L"  # unsure (0.5 / 0.5)
    assert understand.fuse_side("L", "wrist", None) == "L"
    assert understand.fuse_side("L", "fingers", None) == "L"
    assert understand.fuse_side("L", "fingers", _prediction({"fingers": 1.0})) is None  # thumb side out of view
    assert understand.fuse_side("L", "fingers", right) == "R"
    # The classifier's rotation is taken only where the silhouette was unsure.
    region = understand.HandRegion(box=(0, 0, 10, 10), rotation_deg=0, confident=False, fingers_score=0.0)
    r = understand.with_view(region, _prediction({"wrist": 1.0}, rot=90))
    assert (r.rotation_deg, r.rotation_source, r.turn_known) == (90, "view", True)
    unsure = understand.with_view(region, _prediction({"wrist": 1.0}, rot=90, p_rot=0.6))
    assert (unsure.rotation_deg, unsure.turn_known) == (0, False)
    sure_silhouette = understand.with_view(understand.HandRegion(box=(0, 0, 10, 10), rotation_deg=180,
                                                                 confident=True, fingers_score=0.4),
                                           _prediction({"hand": 1.0}, rot=90))
    assert (sure_silhouette.rotation_deg, sure_silhouette.rotation_source) == (180, "silhouette")
    # ... unless the view shows a crop (p(hand) < 0.5) and is all but certain of another rotation.
    crop = understand.with_view(understand.HandRegion(box=(0, 0, 10, 10), rotation_deg=270, confident=True,
                                                      fingers_score=0.2), _prediction({"wrist": 1.0}, rot=0, p_rot=0.995))
    assert (crop.rotation_deg, crop.rotation_source, crop.confident, crop.turn_known) == (0, "view", False, True)


def test_manifest_view_section_is_validated():
    m = json.loads((_bundle_dir() / "manifest.json").read_text())
    good = {"file": "view.npz", "sha256": "0" * 64, "input_hw": [128, 128], "classes": list(view.VIEW_CLASSES)}
    assert validate_manifest({**m, "view": good}) == []
    cases = [({**good, "file": "../x.npz"}, "view.file"), ({**good, "file": ".."}, "view.file"),
             ({**good, "sha256": "XYZ"}, "view.sha256"), ({**good, "input_hw": [8, 128]}, "view.input_hw[0]"),
             ({**good, "input_hw": "big"}, "view.input_hw"), ({**good, "classes": ["hand"]}, "view.classes"),
             ({**good, "window_percentiles": [99, 1]}, "view.window_percentiles"),
             ({k: v for k, v in good.items() if k != "sha256"}, "view.sha256: required field is missing")]
    for section, problem in cases:
        assert any(p.startswith(problem) for p in validate_manifest({**m, "view": section})), section


def test_bundle_without_view_falls_back_and_corrupt_view_file_is_named(tmp_path):
    src = _bundle_dir()
    no_view = tmp_path / "no-view"
    shutil.copytree(src, no_view)
    m = json.loads((no_view / "manifest.json").read_text())
    has_view = "view" in m
    m.pop("view", None)
    (no_view / "manifest.json").write_text(json.dumps(m))
    a = Analyzer(str(no_view), backend="onnxruntime-cpu")
    assert a.view_model is None
    if not has_view:
        pytest.skip("the default bundle ships no view classifier")
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    with open(bad / "view.npz", "ab") as f:
        f.write(b"x")
    with pytest.raises(BundleError, match="view.npz"):
        Analyzer(str(bad), backend="onnxruntime-cpu")


@pytest.fixture(scope="module")
def shipped():
    model = view.ViewModel.from_bundle(Bundle.load())
    if model is None:
        pytest.skip("the default bundle ships no view classifier")
    return model


def test_non_finite_view_weights_are_a_bundle_error(shipped):
    params = {k: v.copy() for k, v in shipped.params.items()}
    name = sorted(params)[0]
    params[name].flat[0] = np.nan
    with pytest.raises(BundleError, match=f"not finite.*{name}"):
        view.ViewModel(params, shipped.input_hw, shipped.percentiles)


@pytest.mark.parametrize("kind,expected", [("wrist", "wrist"), ("fingers", "fingers"), ("hand", "hand"),
                                           ("chest", "not_a_hand"), ("long_bone", "not_a_hand")])
def test_shipped_classifier_recognises_unseen_phantom_variants(shipped, kind, expected):
    from ramh_train.phantoms.variants import make_variant

    v = make_variant(kind, 870001, masks=False)  # far from the classifier's training (5e6+) and the benchmark's
    if expected == "not_a_hand":
        assert shipped.predict(v.image).p_not_hand >= 0.9
        with pytest.raises(NotAHandError, match="view classifier"):  # dropped before any bone model runs
            understand.survey(v.image, shipped)
        return
    (region,) = understand.survey(v.image, shipped).hands
    pred = region.view
    best = max(view.VIEW_CLASSES, key=lambda c: pred.probs[c])
    assert best == expected, pred.probs
    if expected != "not_a_hand":
        assert pred.rotation_deg == v.hands[0].rotation_deg
        turned = np.ascontiguousarray(np.rot90(v.image))  # a quarter turn counter-clockwise: fingers left (270)
        p2 = shipped.predict(turned)
        assert p2.rotation_deg == (v.hands[0].rotation_deg - 90) % 360, p2.rotation_probs


def test_wrist_crop_reports_no_whole_hand_estimate(shipped):
    from ramh_train.phantoms.variants import make_variant

    v = make_variant("wrist", 870002, masks=False)
    a = Analyzer(backend="onnxruntime-cpu").analyze(v.image, side=v.hands[0].side)
    assert a.meta.field_of_view == "wrist"
    t = a.totals
    assert (t.svdh, t.global_svdh, t.severity, t.severity_probs, t.severity_source) == \
        (None, None, None, None, "not_reported")
    assert t.partial_svdh is not None
    assert any(r.code == "field_of_view" and "severity" in r.message for r in a.qc.reasons)
    d = json.loads(a.to_json())
    assert d["totals"]["severity"] is None and d["totals"]["severity_source"] == "not_reported"
    from ramh_rt.result import json_schema

    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(d, json_schema())
    assert np.asarray(a.overlay()).ndim == 3  # the legend says "not reported" instead of failing on None


def test_model_card_says_how_the_view_classifier_was_trained_and_what_it_is_not_validated_for():
    pytest.importorskip("ramh_train.model_card", reason="the model card is the training package's")
    from ramh_train.model_card import _view_section

    bundle = _bundle_dir()
    manifest = json.loads((bundle / "manifest.json").read_text())
    section = "\n".join(_view_section(manifest["view"], {"view.npz": (bundle / "view.npz").stat().st_size}))
    assert "Trained on phantom variants" in section and "Not validated for: real radiographs" in section
    assert "ramh-train view train" in section  # the commands that made it
    assert section in (bundle / "MODEL_CARD.md").read_text()  # the shipped card is the rendered one
    assert _view_section(None, {}) == []


def test_view_training_builds_trains_and_exports_a_loadable_classifier(tmp_path):
    """``ramh-train view`` end to end on one seed: data (resumable, refusing other settings), a few training steps,
    export into a bundle copy that the runtime then loads and runs."""
    pytest.importorskip("torch")
    from ramh_train import view as train_view

    data = train_view.build_data(tmp_path / "data", seed=870101, n=1, log=lambda m: None)
    first = sorted(p.name for p in data.glob("shard_*.npz"))
    assert first and train_view.build_data(data, seed=870101, n=1, log=lambda m: None) == data  # resumed: kept
    with pytest.raises(ValueError, match="other settings"):
        train_view.build_data(data, seed=870102, n=1, log=lambda m: None)
    summary = train_view.train(data, tmp_path / "run", val_dir=data, steps=2, batch_size=8, seed=1, threads=1,
                               log=lambda m: None)
    assert (tmp_path / "run" / "summary.json").exists() and summary
    bundle = tmp_path / "bundle"
    shutil.copytree(_bundle_dir(), bundle)
    section = train_view.export(tmp_path / "run", bundle, val_dir=data, log=lambda m: None)
    assert json.loads((bundle / "manifest.json").read_text())["view"] == section
    model = view.ViewModel.from_bundle(Bundle.load(bundle))
    pred = model.predict(np.zeros((300, 200), np.uint16) + 1000)
    assert abs(sum(pred.probs.values()) - 1.0) < 1e-6 and set(pred.probs) == set(view.VIEW_CLASSES)
