"""ONNX export parity (PyTorch vs ONNX Runtime), TensorRT op lint, fp16, and model bundles."""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from ramh_rt import anatomy
from ramh_rt.errors import BundleError
from ramh_train import export
from ramh_train.models import BoneSegNet, GlobalNet, JointNet
from ramh_train.ordinal import OrdinalHead

WINDOW = {"percentiles": [0.5, 99.5], "mean": 0.5, "std": 0.25}


def _small(kind: str):
    torch.manual_seed({"bones": 0, "joints": 1, "global": 2}[kind])
    if kind == "bones":
        # non-square, and the global model's size: in a bundle the global model takes the bone model's input
        m = BoneSegNet(widths=(4, 8, 16), input_hw=(64, 48))
    elif kind == "joints":
        m = JointNet(roi_size=64, widths=(4, 4, 8, 8, 8), head_hidden=8)
    else:
        m = GlobalNet(widths=(4, 8, 8, 8, 8), blocks=(1, 1, 1, 1), input_hw=(64, 48))
    # non-trivial BatchNorm statistics, so that folding is exercised by the parity check
    g = torch.Generator().manual_seed(7)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
            mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
        if isinstance(mod, OrdinalHead):
            # zero at initialisation: give the score a value so the ordinal outputs depend on the input
            mod.score.weight.data.copy_(torch.randn(mod.score.weight.shape, generator=g))
    return m.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    out = {}
    for kind in ("bones", "joints", "global"):
        m = _small(kind)
        report = export.export_onnx(m, m.example_inputs(1, kind="realistic"), d / f"{kind}.onnx")
        out[kind] = (m, report)
    return out


def _manifest_entry(kind, model, report):
    if kind == "bones":
        extra = model.manifest_fields(window=WINDOW)
    elif kind == "joints":
        extra = model.manifest_fields(percentiles=(1.0, 99.0), roi_scale=2.5)
    else:
        extra = model.manifest_fields(window=WINDOW)
    return {"onnx": report["path"], **report["manifest"], **extra}


BUNDLE_FIELDS = {"bundle_id": "test-bundle", "version": "0.1.0",
                 "training_data": {"kind": "synthetic-phantoms", "description": "unit test"},
                 "clinical_use": "not validated; test weights",
                 "metrics": {"bones": {"dsc": np.float32(0.5), "per_class_dsc": np.array([1.0, np.nan])}}}


@pytest.mark.parametrize("kind", ["bones", "joints", "global"])
def test_export_parity_fp32(exported, kind):
    model, report = exported[kind]
    parity = report["parity"]
    assert parity["passed"] and len(parity["cases"]) == 3
    # batch 1 trace + batch 2 random and realistic inputs: the dynamic batch works
    assert [c["batch"] for c in parity["cases"]] == [1, 2, 2]
    for name in model.output_names:
        assert parity["max_abs"][name] <= 1e-4 + 1e-3 * max(c["outputs"][name]["ref_max"] for c in parity["cases"])
    assert set(report["ops"]) <= export.TENSORRT_OPS
    assert "BatchNormalization" not in report["ops"]
    proto = onnx.load(report["path"])
    assert proto.opset_import[0].version == 17
    assert [i.name for i in proto.graph.input] == list(model.input_names)
    assert [o.name for o in proto.graph.output] == list(model.output_names)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert json.loads({p.key: p.value for p in proto.metadata_props}["ramh_config"]) == model.config


def test_dynamic_batch_runs_other_sizes(exported):
    model, report = exported["joints"]
    sess = export.ort_session(report["path"])
    inputs = model.example_inputs(5, kind="realistic", seed=9)
    outs = sess.run(None, {n: t.numpy() for n, t in zip(model.input_names, inputs)})
    assert outs[0].shape == (5, 1, 64, 64) and outs[1].shape == (5, 6) and outs[2].shape == (5, 5)
    # exported class probabilities are a distribution
    assert np.all(outs[1] >= 0) and np.allclose(outs[1].sum(1), 1.0, atol=1e-5)


def test_export_fp16_keeps_fp32_io(tmp_path):
    model = _small("joints")
    report = export.export_onnx(model, model.example_inputs(2, kind="realistic"), tmp_path / "j16.onnx", fp16=True)
    assert report["precision"] == "fp16" and report["manifest"]["precision"] == "fp16"
    proto = onnx.load(report["path"])
    assert all(v.type.tensor_type.elem_type == TensorProto.FLOAT for v in (*proto.graph.input, *proto.graph.output))
    conv_weights = {n.input[1] for n in proto.graph.node if n.op_type == "Conv"}
    dtypes = {i.data_type for i in proto.graph.initializer if i.name in conv_weights}
    assert dtypes == {TensorProto.FLOAT16}
    # raw 16-bit intensities (> fp16 max 65504) still work: the window normalisation runs before the fp16 cast
    roi = torch.full((1, 1, 64, 64), 65535.0)
    window = torch.tensor([[1000.0, 60000.0]])
    area = torch.eye(22)[:1]
    sess = export.ort_session(report["path"])
    outs = sess.run(None, {"roi": roi.numpy(), "window": window.numpy(), "area": area.numpy()})
    assert all(np.all(np.isfinite(o)) for o in outs)
    assert report["parity"]["atol"] == pytest.approx(2e-2)


def test_parity_failure_raises(tmp_path):
    model = _small("global")
    with pytest.raises(export.ParityError, match="parity failed"):
        # fp16 cannot match fp32 to zero tolerance
        export.export_onnx(model, model.example_inputs(1), tmp_path / "g.onnx", fp16=True,
                           tolerances={"atol": 0.0, "rtol": 0.0})
    assert not (tmp_path / "g.onnx").exists()


def test_export_argument_errors(tmp_path):
    model = _small("global")
    with pytest.raises(ValueError, match="opset"):
        export.export_onnx(model, model.example_inputs(1), tmp_path / "g.onnx", opset=13)
    with pytest.raises(ValueError, match=".onnx"):
        export.export_onnx(model, model.example_inputs(1), tmp_path / "g.txt")
    with pytest.raises(ValueError, match="1 tensors"):
        export.export_onnx(model, (), tmp_path / "g.onnx")
    with pytest.raises(TypeError, match="ExportableModel"):
        export.export_onnx(torch.nn.Conv2d(1, 1, 1), (torch.zeros(1, 1, 4, 4),), tmp_path / "g.onnx")


def test_tensorrt_lint_rejects_shape_arithmetic():
    node = helper.make_node("Shape", ["x"], ["s"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("s", TensorProto.INT64, [2])])
    with pytest.raises(ValueError, match="Shape"):
        export.check_tensorrt_ops(helper.make_model(graph))


def test_latency_measure(exported):
    model, report = exported["global"]
    lat = export.measure_latency(report["path"], model.example_inputs(1), runs=3, warmup=1, threads=1)
    assert lat["runs"] == 3 and 0 < lat["min_ms"] <= lat["median_ms"] <= lat["max_ms"]


@pytest.fixture
def bundle(exported, tmp_path):
    models = {k: _manifest_entry(k, *exported[k]) for k in ("bones", "joints", "global")}
    return export.write_bundle(tmp_path / "bundle", models, BUNDLE_FIELDS)


def test_bundle_manifest_validates(bundle):
    import jsonschema

    import ramh_rt
    from ramh_rt.bundle import Bundle

    manifest = json.loads((bundle / "manifest.json").read_text())
    schema = Path(ramh_rt.__file__).parent / "schemas" / "bundle_manifest.schema.json"
    jsonschema.validate(manifest, json.loads(schema.read_text()))  # independent of verify_bundle
    assert Bundle.load(bundle).manifest == manifest  # what the runtime loads is what was written
    assert manifest["anatomy_version"] == anatomy.ANATOMY_VERSION
    assert manifest["models"]["bones"]["inputs"][0]["shape"] == ["N", 3, 64, 48]
    assert manifest["models"]["joints"]["areas"] == list(anatomy.AREA_STEMS)
    assert manifest["models"]["bones"]["postprocess"]["keep"]["Sesamoid"] == "all"
    # strict JSON: NumPy values converted, NaN written as null
    assert manifest["metrics"]["bones"] == {"dsc": 0.5, "per_class_dsc": [1.0, None]}
    assert "NaN" not in (bundle / "manifest.json").read_text()
    assert sorted(p.name for p in bundle.iterdir()) == ["bones.onnx", "global.onnx", "joints.onnx", "manifest.json"]
    assert export.verify_bundle(bundle)["bundle_id"] == "test-bundle"
    assert not [p for p in bundle.parent.iterdir() if p.name.startswith(".")], "temporary directory left behind"


def test_modified_file_is_rejected(bundle):
    path = bundle / "joints.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"joints.onnx \(models.joints\) is corrupt or was modified: sha256"):
        export.verify_bundle(bundle)


def test_missing_file_and_bad_manifest(bundle, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    (broken / "global.onnx").unlink()
    with pytest.raises(BundleError, match="missing"):
        export.verify_bundle(broken)
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["training_data"]
    manifest["models"]["bones"]["sha256"] = "xyz"
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="training_data.*|sha256"):
        export.verify_bundle(broken)
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        export.verify_bundle(broken)


def test_manifest_io_must_match_the_graph(bundle, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(bundle, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["models"]["global"]["outputs"][0]["name"] = "total"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="'global' ONNX outputs"):
        export.verify_bundle(other)


def test_zip_bundle_verifies(bundle, tmp_path):
    z = tmp_path / "bundle.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in bundle.iterdir():
            zf.write(p, f"bundle/{p.name}")
    assert export.verify_bundle(z)["version"] == "0.1.0"


def test_write_bundle_refuses_and_overwrites(exported, bundle):
    models = {k: _manifest_entry(k, *exported[k]) for k in ("bones", "joints")}
    with pytest.raises(FileExistsError):
        export.write_bundle(bundle, models, BUNDLE_FIELDS)
    export.write_bundle(bundle, models, {**BUNDLE_FIELDS, "version": "0.2.0"}, overwrite=True)
    manifest = export.verify_bundle(bundle)
    assert manifest["version"] == "0.2.0" and set(manifest["models"]) == {"bones", "joints"}
    assert not (bundle / "global.onnx").exists()
    with pytest.raises(ValueError, match="unknown model roles"):
        export.write_bundle(bundle.parent / "b2", {"teeth": models["bones"]}, BUNDLE_FIELDS)
    with pytest.raises(ValueError, match="anatomy_version"):
        export.write_bundle(bundle.parent / "b3", models, {**BUNDLE_FIELDS, "anatomy_version": "old"})
    with pytest.raises(BundleError, match="version"):
        export.write_bundle(bundle.parent / "b4", models, {**BUNDLE_FIELDS, "version": "one"})
    assert not (bundle.parent / "b4").exists()
