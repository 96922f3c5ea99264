"""ramh_rt.bundle: manifest validation (agreeing with the JSON schema), checksums, zips, default bundle lookup."""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import onnx_factory
from ramh_rt import anatomy
from ramh_rt import bundle as bundle_mod
from ramh_rt.bundle import (Bundle, ModelSpec, TensorSpec, check_anatomy, default_cache_dir, read_manifest,
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
    ("models.bones.inputs.0.shape.0", "B", r"models.bones.inputs\[0\].shape\[0\]: must be a positive integer or \"N\""),
    ("models.bones.inputs.0.shape.1", 0, r"models.bones.inputs\[0\].shape\[1\]"),
    ("models.bones.outputs.0.dtype", "float64", r"models.bones.outputs\[0\].dtype: must be one of"),
    ("models.bones.outputs.0.name", _DELETE, r"models.bones.outputs\[0\].name: required field is missing"),
    ("models.bones.classes", [], "models.bones.classes: must have at least 1 items"),
    ("models.bones.preprocess.input_hw", [64], r"models.bones.preprocess.input_hw: must have exactly 2 items"),
    ("models.bones.preprocess.input_hw", [64, 8], r"models.bones.preprocess.input_hw\[1\]: must be an integer >= 16"),
    ("models.bones.preprocess.window.std", 0, "models.bones.preprocess.window.std: must be > 0"),
    ("models.bones.preprocess.window.percentiles", [1, 2, 3], "percentiles: must have exactly 2 items"),
    ("models.bones.preprocess.coord_channels", "no", "coord_channels: must be true or false"),
    ("models.bones.postprocess.mode", "softmax", "models.bones.postprocess.mode: must be one of"),
    ("models.bones.postprocess.keep.Radius", "first", "models.bones.postprocess.keep.Radius: must be 'largest'"),
    ("models.bones.postprocess.min_area", 1.5, "models.bones.postprocess.min_area: must be an integer"),
    ("models.joints.roi.size", [32, "32"], r"models.joints.roi.size\[1\]"),
    ("models.joints.roi.scale", None, "models.joints.roi.scale: must be a number"),
    ("models.joints.be_classes", 1, "models.joints.be_classes: must be >= 2"),
    ("models.joints.areas", "MCP-I", "models.joints.areas: must be an array"),
    ("models.global.target", _DELETE, "models.global.target: required field is missing"),
    ("models.global.preprocess", [], "models.global.preprocess: must be an object"),
    ("metrics", [], "metrics: must be an object"),
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
    (lambda m: m["models"]["bones"]["preprocess"]["window"].__setitem__("percentiles", [99, 1]),
     "percentiles: must satisfy 0 <= low < high <= 100"),
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
