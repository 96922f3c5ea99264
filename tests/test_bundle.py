"""ramh_rt.bundle: manifest validation (agreeing with the JSON schema), checksums, zips, default bundle lookup."""
from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import onnx_factory
from ramh_rt import anatomy
from ramh_rt import bundle as bundle_mod
from ramh_rt.bundle import (Bundle, ModelSpec, TensorSpec, check_anatomy, check_values, default_cache_dir, read_manifest,
                            validate_manifest)
from ramh_rt.errors import BundleError, RamhError

jsonschema = pytest.importorskip("jsonschema")

SCHEMA_PATH = Path(bundle_mod.__file__).parent / "schemas" / "bundle_manifest.schema.json"


@pytest.fixture(scope="module")
def schema_validator():
    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The three model files and a valid manifest (never modified by tests: they copy it)."""
    return onnx_factory.make_bundle(tmp_path_factory.mktemp("bundle") / "b")


@pytest.fixture
def bundle_dir(model_dir, tmp_path) -> Path:
    dest = tmp_path / "bundle"
    shutil.copytree(model_dir, dest)
    return dest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RAMH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RAMH_BUNDLE", raising=False)


def _valid_manifest(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / "manifest.json").read_text())


def _write_manifest(dir_: Path, manifest: Any) -> None:
    (dir_ / "manifest.json").write_text(json.dumps(manifest))


def _zip_dir(src: Path, dest: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(src.iterdir()):
            zf.write(f, prefix + f.name)
    return dest


# ---------------------------------------------------------------------------------------------------------------------
# loading a good bundle
# ---------------------------------------------------------------------------------------------------------------------

def test_load_directory_and_accessors(bundle_dir):
    b = Bundle.load(bundle_dir)
    assert b.id == "ramh-test" and b.version == "0.1.0" and b.anatomy_version == anatomy.ANATOMY_VERSION
    assert b.model_names == ("bones", "joints", "global") and b.warnings == ()
    assert b.has_model("global") and not b.has_model("other")
    spec = b.model("bones")
    assert isinstance(spec, ModelSpec)
    assert spec.task == "bone_segmentation" and spec.path == (bundle_dir / "bones.onnx").resolve()
    assert spec.sha256 == onnx_factory.sha256(bundle_dir / "bones.onnx")
    assert spec.precision == "fp32" and spec.opset == 17 and spec.parameters == 60
    assert spec.inputs == (TensorSpec("image", (None, 1, 64, 64), "float32"),)
    assert spec.input("image").concrete_shape(3) == (3, 1, 64, 64)
    assert spec.output("logits").shape == (None, anatomy.NUM_BONE_CLASSES, 64, 64)
    assert spec.config["classes"] == list(anatomy.BONE_NAMES)
    assert spec.config["preprocess"]["input_hw"] == [64, 64]
    assert "file" not in spec.config and "inputs" not in spec.config
    joints = b.model("joints")
    assert [t.name for t in joints.inputs] == ["roi", "area"]
    assert joints.config["areas"] == list(anatomy.AREA_STEMS) and joints.parameters is None
    with pytest.raises(KeyError, match="input 'nope' does not exist; known: roi, area"):
        joints.input("nope")
    with pytest.raises(ValueError, match="batch"):
        spec.input("image").concrete_shape(0)


def test_manifest_and_config_are_private_copies(bundle_dir):
    b = Bundle.load(bundle_dir)
    b.manifest["bundle_id"] = "changed"
    b.manifest["models"]["bones"]["classes"].clear()
    assert b.id == "ramh-test" and b.manifest["models"]["bones"]["classes"] == list(anatomy.BONE_NAMES)


def test_load_by_manifest_path_and_without_global(tmp_path):
    d = onnx_factory.make_bundle(tmp_path / "noglobal", with_global=False)
    b = Bundle.load(d / "manifest.json")
    assert b.model_names == ("bones", "joints") and not b.has_model("global")
    with pytest.raises(BundleError, match="has no model 'global'; it holds: bones, joints"):
        b.model("global")


def test_describe_is_json_and_complete(bundle_dir):
    d = Bundle.load(bundle_dir).describe()
    json.dumps(d)
    assert d["id"] == "ramh-test" and d["schema_version"] == 1 and d["training_data"]["kind"] == "synthetic-phantoms"
    assert set(d["models"]) == {"bones", "joints", "global"}
    bones = d["models"]["bones"]
    assert bones["file"] == "bones.onnx" and bones["inputs"] == [{"name": "image", "shape": ["N", 1, 64, 64],
                                                                   "dtype": "float32"}]
    assert d["metrics"] == {"bones": {"dice": 0.0}} and d["warnings"] == []


# ---------------------------------------------------------------------------------------------------------------------
# checksums and files
# ---------------------------------------------------------------------------------------------------------------------

def test_tampered_model_file_names_file_and_hashes(bundle_dir):
    expected = onnx_factory.sha256(bundle_dir / "joints.onnx")
    with open(bundle_dir / "joints.onnx", "ab") as fh:
        fh.write(b"\x00")
    actual = onnx_factory.sha256(bundle_dir / "joints.onnx")
    with pytest.raises(BundleError, match=rf"joints.onnx \(models.joints\).*sha256 {actual}.*expects {expected}"):
        Bundle.load(bundle_dir)
    assert Bundle.load(bundle_dir, verify=False).model("joints").sha256 == expected


def test_missing_model_file(bundle_dir):
    (bundle_dir / "global.onnx").unlink()
    with pytest.raises(BundleError, match=r"model file global.onnx of models.global is missing"):
        Bundle.load(bundle_dir)


def test_missing_paths_and_bad_json(tmp_path, bundle_dir):
    with pytest.raises(BundleError, match="no such bundle"):
        Bundle.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="manifest.json not found"):
        Bundle.load(tmp_path / "empty")
    (bundle_dir / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.load(bundle_dir)
    (bundle_dir / "manifest.json").write_text('{"schema_version": NaN}')
    with pytest.raises(BundleError, match="NaN is not valid JSON"):
        Bundle.load(bundle_dir)
    (bundle_dir / "manifest.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match="must hold a JSON object, found list"):
        Bundle.load(bundle_dir)
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(BundleError, match="not a bundle directory"):
        Bundle.load(f)


# ---------------------------------------------------------------------------------------------------------------------
# manifest validation, and agreement with the JSON schema
# ---------------------------------------------------------------------------------------------------------------------

def _set(m: dict, path: str, value: Any) -> None:
    keys = path.split(".")
    for k in keys[:-1]:
        m = m[int(k)] if isinstance(m, list) else m[k]
    last = keys[-1]
    if value is _DELETE:
        if isinstance(m, list):
            del m[int(last)]
        else:
            del m[last]
    elif isinstance(m, list):
        m[int(last)] = value
    else:
        m[last] = value


_DELETE = object()

# (field path, new value, expected field path in the message)
INVALID_CASES = [
    ("schema_version", 2, "schema_version: unsupported schema version 2"),
    ("schema_version", _DELETE, "schema_version: required field is missing"),
    ("bundle_id", "has space", "bundle_id: must be letters"),
    ("version", "1.0", "version: must be a semantic version"),
    ("created", 20260101, "created: must be a string"),
    ("training_data.kind", "web-scrape", "training_data.kind: must be one of"),
    ("training_data.commands", ["ok", 3], r"training_data.commands\[1\]: must be a string"),
    ("models.bones", _DELETE, "models.bones: required field is missing"),
    ("models.extra", {}, "models.extra: unknown model role"),
    ("models.bones.task", "segmentation", "models.bones.task: must be 'bone_segmentation'"),
    ("models.bones.file", "../bones.onnx", "models.bones.file: must be a plain file name"),
    ("models.bones.file", "bones.pt", "models.bones.file: must be a plain file name"),
    ("models.bones.sha256", "ABC", "models.bones.sha256: must be 64 lowercase"),
    ("models.bones.precision", "int4", "models.bones.precision: must be one of fp32, fp16, int8-qdq"),
    ("models.bones.opset", 13, "models.bones.opset: must be >= 17"),
    ("models.bones.opset", True, "models.bones.opset: must be an integer"),
    ("models.bones.parameters", -1, "models.bones.parameters: must be >= 0"),
    ("models.bones.inputs", [], r"models.bones.inputs: must have at least 1 items"),
    ("models.bones.inputs.0.shape.0", "B", r"models.bones.inputs\[0\].shape\[0\]: must be an integer in \[1, 65536\] or \"N\""),
    ("models.bones.inputs.0.shape.1", 0, r"models.bones.inputs\[0\].shape\[1\]"),
    ("models.bones.outputs.0.dtype", "float64", r"models.bones.outputs\[0\].dtype: must be one of"),
    ("models.bones.outputs.0.name", _DELETE, r"models.bones.outputs\[0\].name: required field is missing"),
    ("models.bones.classes", [], "models.bones.classes: must have at least 1 items"),
    ("models.bones.preprocess.input_hw", [64], r"models.bones.preprocess.input_hw: must have exactly 2 items"),
    ("models.bones.preprocess.input_hw", [64, 8], r"models.bones.preprocess.input_hw\[1\]: must be an integer in \[16, 4096\], got 8"),
    ("models.bones.preprocess.window.std", 0, r"models.bones.preprocess.window.std: must be a number in \[1e-06, 1e\+06\], got 0"),
    ("models.bones.preprocess.window.percentiles", [1, 2, 3], "percentiles: must have exactly 2 items"),
    ("models.bones.preprocess.coord_channels", "no", "coord_channels: must be true or false"),
    ("models.bones.postprocess.mode", "softmax", "models.bones.postprocess.mode: must be one of"),
    ("models.bones.postprocess.keep.Radius", "first", "models.bones.postprocess.keep.Radius: must be 'largest'"),
    ("models.bones.postprocess.min_area", 1.5, "models.bones.postprocess.min_area: must be an integer"),
    ("models.joints.roi.size", [32, "32"], r"models.joints.roi.size\[1\]"),
    ("models.joints.roi.scale", None, "models.joints.roi.scale: must be a finite number, got None"),
    ("models.joints.be_classes", 1, "models.joints.be_classes: must be >= 2"),
    ("models.joints.areas", "MCP-I", "models.joints.areas: must be an array"),
    ("models.global.target", _DELETE, "models.global.target: required field is missing"),
    ("models.global.preprocess", [], "models.global.preprocess: must be an object"),
    ("metrics", [], "metrics: must be an object"),
    # Values that cannot work at run time (issue 14 item 10): refused at load, naming the field and the value.
    ("models.bones.preprocess.input_hw", [20000, 20000],
     r"models.bones.preprocess.input_hw\[0\]: must be an integer in \[16, 4096\], got 20000"),
    ("models.bones.postprocess.min_area", 1e30,
     r"models.bones.postprocess.min_area: must be an integer in \[0, 4194304\], got 1e\+30"),
    ("models.bones.postprocess.min_area", -1, r"models.bones.postprocess.min_area: must be an integer in \[0, "),
    ("models.bones.postprocess.threshold", 1e9, r"models.bones.postprocess.threshold: must be a number in \[-100, 100\]"),
    ("models.joints.erosion_threshold", 1e300,
     r"models.joints.erosion_threshold: must be a number in \(0, 1\], got 1e\+300"),
    ("models.joints.erosion_threshold", 0, r"models.joints.erosion_threshold: must be a number in \(0, 1\], got 0"),
    ("models.joints.erosion_threshold", -0.5, r"models.joints.erosion_threshold: must be a number in \(0, 1\]"),
    ("models.bones.preprocess.window.std", 1e-320,
     r"models.bones.preprocess.window.std: must be a number in \[1e-06, 1e\+06\], got 1e-320"),
    ("models.joints.roi.window.std", 1e30, r"models.joints.roi.window.std: must be a number in \[1e-06, 1e\+06\]"),
    ("models.joints.roi.window.mean", -1e300, r"models.joints.roi.window.mean: must be a number in \[-1e\+06, 1e\+06\]"),
    ("models.bones.preprocess.window.percentiles", [-1, 50],
     r"models.bones.preprocess.window.percentiles\[0\]: must be a number in \[0, 100\], got -1"),
    ("models.joints.roi.size", [5000, 224], r"models.joints.roi.size\[0\]: must be an integer in \[16, 1024\], got 5000"),
    ("models.joints.roi.scale", 0, r"models.joints.roi.scale: must be a number in \(0, 16\], got 0"),
    ("models.joints.min_lesion_px", -3, r"models.joints.min_lesion_px: must be an integer in \[0, 1048576\], got -3"),
    ("models.bones.outputs.0.shape.1", 10 ** 9, r"models.bones.outputs\[0\].shape\[1\]: must be an integer in \[1, 65536\]"),
]


@pytest.mark.parametrize("path,value,message", INVALID_CASES, ids=[c[0] + ":" + repr(c[1])[:20] for c in INVALID_CASES])
def test_invalid_manifest_is_refused_with_field_path_and_schema_agrees(model_dir, bundle_dir, schema_validator, path,
                                                                       value, message):
    m = _valid_manifest(model_dir)
    _set(m, path, value)
    problems = validate_manifest(m)
    assert any(re.search(message, p) for p in problems), problems
    assert not schema_validator.is_valid(m), "the JSON schema accepts what the hand-written check refuses"
    _write_manifest(bundle_dir, m)
    with pytest.raises(BundleError, match=message):
        Bundle.load(bundle_dir)


def test_all_problems_are_listed_at_once(model_dir):
    m = _valid_manifest(model_dir)
    m["version"] = "x"
    m["models"]["joints"]["jsn_classes"] = "five"
    del m["models"]["global"]["severity_classes"]
    problems = validate_manifest(m)
    assert len(problems) == 3, problems


VALID_VARIANTS = [
    ("models.global", _DELETE),
    ("description", _DELETE),
    ("metrics", _DELETE),
    ("extra_field", {"anything": [1, 2]}),  # the schema allows extra top-level fields
    ("models.bones.opset", 21.0),  # JSON Schema: 21.0 is an integer
    ("models.bones.inputs.0.shape.0", 4),
    ("models.bones.precision", "fp16"),
    ("schema_version", 1.0),
    ("training_data", {"kind": "other"}),
    ("models.joints.erosion_threshold", _DELETE),
]


@pytest.mark.parametrize("path,value", VALID_VARIANTS)
def test_valid_variants_accepted_by_both(model_dir, schema_validator, path, value):
    m = _valid_manifest(model_dir)
    _set(m, path, value)
    assert validate_manifest(m) == []
    assert schema_validator.is_valid(m)


def _paths(x: Any, prefix: str = "") -> list[str]:
    out = []
    if isinstance(x, dict):
        for k, v in x.items():
            p = f"{prefix}.{k}" if prefix else k
            out.append(p)
            out.extend(_paths(v, p))
    elif isinstance(x, list):
        for i, v in enumerate(x[:3]):  # the first few items of long lists (class names) are enough
            p = f"{prefix}.{i}"
            out.append(p)
            out.extend(_paths(v, p))
    return out


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 40) | st.floats(-1e3, 1e3, allow_nan=False)
    | st.text(alphabet="abcNfp0123456789._-", max_size=8) | st.sampled_from(["N", "fp16", "multilabel", "largest"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["name", "kind", "x"]), children,
                                                                     max_size=2),
    max_leaves=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_random_mutations_agree_with_schema(model_dir, schema_validator, data):
    base = _valid_manifest(model_dir)
    m = copy.deepcopy(base)
    path = data.draw(st.sampled_from(_paths(base)))
    value = data.draw(st.one_of(st.just(_DELETE), _json_values))
    _set(m, path, value)
    ours = validate_manifest(m)
    theirs = sorted(e.message for e in schema_validator.iter_errors(m))
    assert (ours == []) == (theirs == []), f"{path} := {value!r}\nours: {ours}\nschema: {theirs}"
    if not ours:
        check_anatomy(m)  # semantic checks never crash on a schema-valid manifest


# ---------------------------------------------------------------------------------------------------------------------
# anatomy consistency
# ---------------------------------------------------------------------------------------------------------------------

def test_anatomy_version_mismatch_and_override(model_dir, bundle_dir):
    m = _valid_manifest(model_dir)
    m["anatomy_version"] = "ramh1200-anatomy-0"
    _write_manifest(bundle_dir, m)
    with pytest.raises(BundleError, match="(?s)anatomy_version: the models were trained with 'ramh1200-anatomy-0'.*"
                                          "allow_anatomy_mismatch"):
        Bundle.load(bundle_dir)
    b = Bundle.load(bundle_dir, allow_anatomy_mismatch=True)
    assert len(b.warnings) == 1 and "ramh1200-anatomy-0" in b.warnings[0]
    assert b.describe()["warnings"] == list(b.warnings)


@pytest.mark.parametrize("edit,message", [
    (lambda m: m["models"]["bones"]["classes"].reverse(), "same names in a different order"),
    (lambda m: m["models"]["bones"]["classes"].__setitem__(22, "Pisifrom_Triquetrum"),
     "unknown class 'Pisifrom_Triquetrum' \\(did you mean 'Pisiform_Triquetrum'\\?\\); missing 'Pisiform_Triquetrum'"),
    (lambda m: m["models"]["bones"]["classes"].pop(), "missing 'Ulna'"),
    (lambda m: m["models"]["bones"]["classes"].__setitem__(1, "Capitate"), "duplicated 'Capitate'"),
    (lambda m: m["models"]["bones"]["postprocess"]["keep"].__setitem__("Femur", "all"),
     "postprocess.keep.Femur: unknown bone class"),
    (lambda m: m["models"]["joints"]["areas"].__setitem__(0, "MCP-X"),
     r"models.joints.areas\[0\]: unknown SvdH area stem 'MCP-X'"),
    (lambda m: m["models"]["joints"]["areas"].__setitem__(1, m["models"]["joints"]["areas"][0]),
     r"models.joints.areas\[1\]: .* is listed twice"),
    (lambda m: m["models"]["joints"].__setitem__("be_classes", 5), "be_classes: must be 6"),
    (lambda m: m["models"]["joints"].__setitem__("jsn_classes", 6), "jsn_classes: must be 5"),
    (lambda m: m["models"]["global"]["severity_classes"].pop(0), "severity_classes: missing 'none'"),
    (lambda m: m["models"]["joints"]["outputs"].append(dict(m["models"]["joints"]["outputs"][0])),
     r"models.joints.outputs: duplicate tensor names \['erosion'\]"),
])
def test_class_lists_must_match_anatomy(model_dir, bundle_dir, edit, message):
    m = _valid_manifest(model_dir)
    edit(m)
    assert validate_manifest(m) == []  # schema-valid: only the anatomy check catches it
    assert any(re.search(message, p) for p in check_anatomy(m)), check_anatomy(m)
    _write_manifest(bundle_dir, m)
    with pytest.raises(BundleError, match="does not match ramh_rt.anatomy"):
        Bundle.load(bundle_dir, allow_anatomy_mismatch=True)


# ---------------------------------------------------------------------------------------------------------------------
# values a schema cannot express (check_values)
# ---------------------------------------------------------------------------------------------------------------------

def _set_input_hw(m: dict, hw: list[int]) -> None:
    m["models"]["bones"]["preprocess"]["input_hw"] = hw
    for role in ("bones", "global"):
        m["models"][role]["inputs"][0]["shape"][2:] = hw


@pytest.mark.parametrize("edit,message", [
    (lambda m: m["models"]["bones"]["preprocess"]["window"].__setitem__("percentiles", [99, 1]),
     r"models.bones.preprocess.window.percentiles: must satisfy low < high, got \[99, 1\]"),
    (lambda m: m["models"]["joints"]["roi"]["window"].__setitem__("percentiles", [50, 50]),
     r"models.joints.roi.window.percentiles: must satisfy low < high, got \[50, 50\]"),
    (lambda m: _set_input_hw(m, [4096, 4096]),
     r"models.bones.preprocess.input_hw: 4096 x 4096 = 16777216 pixels is more than 4194304 per image"),
    (lambda m: m["models"]["bones"]["postprocess"].__setitem__("min_area", 64 * 64 + 1),
     r"models.bones.postprocess.min_area: 4097 is larger than the model input \(64 x 64 = 4096 pixels\)"),
    (lambda m: m["models"]["bones"]["postprocess"].update(mode="multiclass", threshold=0.5),
     r"models.bones.postprocess.threshold: must be 0 in multiclass mode \(argmax\), got 0.5"),
    (lambda m: m["models"]["joints"].__setitem__("min_lesion_px", 32 * 32 + 1),
     r"models.joints.min_lesion_px: 1025 is larger than the ROI \(32 x 32 = 1024 pixels\)"),
    (lambda m: m["models"]["bones"]["preprocess"].__setitem__("input_hw", [64, 48]),
     r"models.bones.inputs\[0\].shape: \['N', 1, 64, 64\] does not end in models.bones.preprocess.input_hw \[64, 48\]"),
    (lambda m: m["models"]["joints"]["roi"].__setitem__("size", [32, 16]),
     r"models.joints.inputs\[0\].shape: .* does not end in models.joints.roi.size \[32, 16\]"),
    (lambda m: m.setdefault("metrics", {}).__setitem__("bones", {"dsc": [0.5, float("inf")]}),
     r"metrics.bones.dsc\[1\]: must be a finite number, got inf"),
])
def test_values_that_cannot_work_are_refused_with_field_path(model_dir, bundle_dir, edit, message):
    m = _valid_manifest(model_dir)
    edit(m)
    assert validate_manifest(m) == []  # structurally valid: only the value check catches it
    assert any(re.search(message, p) for p in check_values(m)), check_values(m)
    (bundle_dir / "manifest.json").write_text(json.dumps(m).replace("Infinity", "1e400"))  # 1e400 parses as inf
    with pytest.raises(BundleError, match=f"(?s)invalid manifest.json:.*{message}"):
        Bundle.load(bundle_dir)


def _numeric_paths(x: Any, prefix: str = "") -> list[str]:
    out = []
    items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
    for k, v in items:
        p = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(p)
        else:
            out.extend(_numeric_paths(v, p))
    return out


_numbers = (st.floats(allow_nan=True, allow_infinity=True) | st.integers(-2 ** 70, 2 ** 70)
            | st.sampled_from([0, 1, -1, 16, 4096, 4097, 2 ** 22 + 1, 1e-320, 1e-6, 1e6, 1e30, 0.5, 100.5]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_any_number_anywhere_loads_or_is_refused_by_name(model_dir, bundle_dir, schema_validator, data):
    """Every number of the manifest set to anything (huge, tiny, denormal, negative, inf, NaN): Bundle.load either
    loads it or raises BundleError naming the field; the structural check agrees with the JSON schema on finite
    values; an accepted manifest's run-time values are inside the documented ranges."""
    base = _valid_manifest(model_dir)
    base["metrics"] = {"bones": {"dsc": 0.9}}
    m = copy.deepcopy(base)
    path = data.draw(st.sampled_from(_numeric_paths(base)))
    value = data.draw(_numbers)
    _set(m, path, value)
    ours = validate_manifest(m)
    if isinstance(value, int) or math.isfinite(value):
        theirs = list(schema_validator.iter_errors(m))
        assert (ours == []) == (theirs == []), f"{path} := {value!r}\nours: {ours}\nschema: {theirs}"
    (bundle_dir / "manifest.json").write_text(
        json.dumps(m).replace("-Infinity", "-1e400").replace("Infinity", "1e400"))  # NaN stays invalid JSON
    try:
        loaded = Bundle.load(bundle_dir, verify=False)
    except BundleError as e:
        dotted = re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", path)  # models.bones.inputs.0.shape -> ...inputs[0].shape
        parent = re.sub(r"(\[\d+\]|\.[^.\[]+)$", "", dotted)  # a cross-field message names the list or object
        assert dotted in str(e) or parent in str(e) or "not valid JSON" in str(e), f"{path} := {value!r}: {e}"
        return
    cfg = loaded.model("bones").config
    h, w = cfg["preprocess"]["input_hw"]
    assert 16 <= h <= 4096 and 16 <= w <= 4096 and h * w <= 2 ** 22
    assert 0 <= cfg["postprocess"]["min_area"] <= h * w
    for window in (cfg["preprocess"]["window"], loaded.model("joints").config["roi"]["window"]):
        assert 1e-6 <= window["std"] <= 1e6 and 0 <= window["percentiles"][0] < window["percentiles"][1] <= 100
    thr = loaded.model("joints").config.get("erosion_threshold", 0.5)
    assert 0 < thr <= 1
    assert all(math.isfinite(x) for x in _all_numbers(loaded.manifest))


def _all_numbers(x: Any) -> list[float]:
    if isinstance(x, dict):
        return [n for v in x.values() for n in _all_numbers(v)]
    if isinstance(x, list):
        return [n for v in x for n in _all_numbers(v)]
    return [float(x)] if isinstance(x, (int, float)) and not isinstance(x, bool) else []


# ---------------------------------------------------------------------------------------------------------------------
# zips
# ---------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["", "ramh-test/"])
def test_zip_is_unpacked_once_into_the_cache(bundle_dir, tmp_path, prefix):
    z = _zip_dir(bundle_dir, tmp_path / "b.zip", prefix)
    zip_bytes = z.read_bytes()
    b = Bundle.load(z)
    assert b.source == z.resolve() and b.id == "ramh-test"
    cache_entry = tmp_path / "cache" / "bundles" / onnx_factory.sha256(z)
    expected_root = cache_entry / "ramh-test" if prefix else cache_entry
    assert b.path == expected_root.resolve()
    marker = cache_entry / ".complete"
    stamp = marker.stat().st_mtime_ns
    b2 = Bundle.load(z)
    assert b2.path == b.path and marker.stat().st_mtime_ns == stamp  # reused, not unpacked again
    assert z.read_bytes() == zip_bytes
    leftovers = [p.name for p in (tmp_path / "cache" / "bundles").iterdir()]
    assert leftovers == [cache_entry.name]


def test_zip_is_recognised_without_the_extension(bundle_dir, tmp_path):
    z = _zip_dir(bundle_dir, tmp_path / "model.bundle")
    assert Bundle.load(z).source == z.resolve()


def test_tampered_cache_is_unpacked_again(bundle_dir, tmp_path):
    z = _zip_dir(bundle_dir, tmp_path / "b.zip")
    b = Bundle.load(z)
    (b.path / "bones.onnx").write_bytes(b"tampered")
    b2 = Bundle.load(z)
    assert onnx_factory.sha256(b2.path / "bones.onnx") == b2.model("bones").sha256


def test_zip_with_tampered_model_is_refused(bundle_dir, tmp_path):
    (bundle_dir / "bones.onnx").write_bytes(b"not the model")
    z = _zip_dir(bundle_dir, tmp_path / "bad.zip")
    with pytest.raises(BundleError, match=r"bad.zip: model file bones.onnx \(models.bones\) is corrupt"):
        Bundle.load(z)


@pytest.mark.parametrize("member,message", [
    ("../evil.txt", "leaves the archive"),
    ("a/../../evil.txt", "leaves the archive"),
    ("/tmp/evil.txt", "absolute"),
    ("..\\evil.txt", "backslash"),
    ("C:/evil.txt", "drive"),
])
def test_zip_slip_members_are_refused(bundle_dir, tmp_path, member, message):
    z = _zip_dir(bundle_dir, tmp_path / "slip.zip")
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr(member, b"gotcha")
    with pytest.raises(BundleError, match=message):
        Bundle.load(z)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "cache" / "evil.txt").exists()
    assert not Path("/tmp/evil.txt").exists() or Path("/tmp/evil.txt").read_bytes() != b"gotcha"
    entries = list((tmp_path / "cache" / "bundles").iterdir())
    assert entries == []  # the partial unpacking was removed


@pytest.mark.parametrize("members", [
    [("a", b"file"), ("a/b", b"below")],      # a file, then a member inside it
    [("a/b", b"below"), ("a", b"file")],      # the folder first, then a file of the same name
    [("a", b"file"), ("a/", b"")],            # a file and an explicit folder entry of the same name
    [("x/a", b"1"), ("x/a/b/c", b"2")],       # nested
    [("a", b"1"), ("./a", b"2")],             # one member twice under two spellings
])
def test_zip_with_a_member_that_is_both_file_and_folder_is_refused(bundle_dir, tmp_path, members):
    z = _zip_dir(bundle_dir, tmp_path / "clash.zip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate name it is asked to write
        with zipfile.ZipFile(z, "a") as zf:
            for name, data in members:
                zf.writestr(name, data)
    with pytest.raises(BundleError, match=r"clash.zip: member .* (is a file, but .* uses it as a folder|appears twice)"):
        Bundle.load(z)
    assert list((tmp_path / "cache" / "bundles").iterdir()) == []  # refused before anything was written


def test_path_with_a_nul_byte_is_refused_by_name(tmp_path):
    with pytest.raises(BundleError, match=r"'bund\\x00le': a bundle path cannot contain a NUL byte"):
        Bundle.load("bund\x00le")
    with pytest.raises(BundleError, match="NUL byte"):
        Bundle.load(b"bund\x00le")
    with pytest.raises(BundleError, match="NUL byte"):
        Bundle.load(tmp_path / "bund\x00le")  # a Path too (the OS itself refuses such names: an environment variable
    # cannot hold one, so $RAMH_BUNDLE needs no such check)


def test_zip_symlink_member_is_refused(bundle_dir, tmp_path):
    z = _zip_dir(bundle_dir, tmp_path / "link.zip")
    info = zipfile.ZipInfo("link")
    info.external_attr = (0o120777 << 16)  # S_IFLNK
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(BundleError, match="symbolic link"):
        Bundle.load(z)


def test_corrupt_zip_and_zip_without_manifest(tmp_path, bundle_dir):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(BundleError, match="not a readable zip file"):
        Bundle.load(bad)
    z = tmp_path / "nomanifest.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(bundle_dir / "bones.onnx", "bones.onnx")
    with pytest.raises(BundleError, match="no manifest.json"):
        Bundle.load(z)


def test_zip_bomb_limit(bundle_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_mod, "MAX_UNPACKED_BYTES", 1000)
    z = _zip_dir(bundle_dir, tmp_path / "big.zip")
    with pytest.raises(BundleError, match="unpacks to more than 1000 bytes"):
        Bundle.load(z)


# ---------------------------------------------------------------------------------------------------------------------
# default bundle and cache location
# ---------------------------------------------------------------------------------------------------------------------

def test_default_bundle_lookup(monkeypatch, tmp_path, bundle_dir):
    missing = [tmp_path / "pkg" / "ramh-default", tmp_path / "repo" / "ramh-default"]
    monkeypatch.setattr(bundle_mod, "default_bundle_candidates", lambda: missing)
    with pytest.raises(BundleError, match=r"no default model bundle found \(looked in .*pkg.*repo.*RAMH_BUNDLE"):
        Bundle.load()
    monkeypatch.setattr(bundle_mod, "default_bundle_candidates", lambda: [missing[0], bundle_dir])
    assert Bundle.load().path == bundle_dir.resolve()
    monkeypatch.setenv("RAMH_BUNDLE", str(tmp_path / "nowhere"))
    with pytest.raises(BundleError, match=r"\$RAMH_BUNDLE=.*nowhere: no such bundle"):
        Bundle.load()
    monkeypatch.setenv("RAMH_BUNDLE", str(bundle_dir))
    assert Bundle.load().id == "ramh-test"


def test_default_candidates_point_at_package_then_checkout():
    pkg, repo = bundle_mod.default_bundle_candidates()
    assert pkg == Path(bundle_mod.__file__).resolve().parent / "models" / "ramh-default"
    assert repo.parent.name == "models" and repo.name == "ramh-default"


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("RAMH_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("RAMH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "ramh_rt"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "ramh_rt"


def test_read_manifest_and_error_types(tmp_path):
    with pytest.raises(BundleError):
        read_manifest(tmp_path / "none.json")
    assert issubclass(BundleError, RamhError) and issubclass(BundleError, ValueError)
    assert validate_manifest([]) == ["manifest: must be an object, got an array"]
    assert os.path.isfile(SCHEMA_PATH)
