"""ramh-train quantize: INT8 Q/DQ bundles that TensorRT's strongly typed INT8 path accepts and the runtime runs."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

pytest.importorskip("onnxruntime.quantization")

from ramh_rt import Analyzer  # noqa: E402
from ramh_rt.backends import trt_logic  # noqa: E402
from ramh_rt.bundle import Bundle  # noqa: E402
from ramh_train import cli, quantize  # noqa: E402

from onnx_factory import make_bundle  # noqa: E402


@pytest.fixture(scope="module")
def images():
    """Six small hand films (phantoms at 1/8 scale): calibration runs the runtime, whose input understanding refuses
    what is not a hand before any model runs."""
    from ramh_train.phantoms import generate

    return [np.ascontiguousarray(generate(880_100 + k).image[::8, ::8]).astype(np.uint16) * 16 for k in range(6)]


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, images):
    src = make_bundle(tmp_path_factory.mktemp("fp32") / "bundle")
    out = tmp_path_factory.mktemp("int8") / "bundle-int8"
    report = quantize.quantize_bundle(src, images, out, roles=("bones",), log=lambda _: None)
    return src, out, report


def test_bundle_is_int8_qdq_where_asked_and_fp32_elsewhere(quantized):
    src, out, report = quantized
    b = Bundle.load(out)
    assert b.id == "ramh-test-int8"
    assert b.model("bones").precision == "int8-qdq"
    assert b.model("joints").precision == "fp32" and b.model("global").precision == "fp32"
    entry = b.manifest["models"]["bones"]["quantization"]
    assert entry["method"] == "percentile" and entry["op_types"] == ["Conv"] and entry["calibration_inputs"] >= 4
    assert report["models"]["bones"]["holdout_inputs"] >= 1
    assert 0.0 <= report["models"]["bones"]["agreement"]["mask_iou_min"] <= 1.0
    # the fp32 bundle's metrics are not claimed for the quantized one
    assert "not carried over" in b.manifest["metrics"]["note"]
    assert json.loads((src / "manifest.json").read_text())["models"]["bones"]["precision"] == "fp32"


def test_graph_is_what_tensorrt_int8_accepts(quantized):
    _, out, _ = quantized
    path = out / "bones.onnx"
    ops = quantize.check_tensorrt_qdq(path)
    assert ops["QuantizeLinear"] >= 1 and ops["DequantizeLinear"] >= 2 and ops["Conv"] == 1
    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    assert conv.input[2] in inits and inits[conv.input[2]].dtype == np.float32, "bias must stay float for TensorRT"
    for node in model.graph.node:
        if node.op_type in quantize.QDQ_OPS:
            z = inits[node.input[2]]
            assert z.dtype == np.int8 and not z.any()
    # TensorRT takes the precision from such a graph: built strongly typed on 10.x, as it is on 11.x
    assert trt_logic.plan_build("auto", "int8-qdq", "10.3.0", (8, 7)) == trt_logic.BuildPlan("int8", True)


def test_runtime_runs_the_quantized_bundle_close_to_fp32(quantized, images):
    src, out, _ = quantized
    a32, a8 = Analyzer(src, backend="onnxruntime-cpu"), Analyzer(out, backend="onnxruntime-cpu")
    x = {"image": np.random.default_rng(3).random((1, 1, 64, 64), dtype=np.float32)}
    l32, l8 = a32.sessions["bones"].run(x)["logits"], a8.sessions["bones"].run(x)["logits"]
    assert np.abs(l32 - l8).max() <= 0.05 * np.abs(l32).max()
    # (the factory's joints model is too small for analyze(); the default bundle's INT8 copy is evaluated end to end
    # in benchmarks/results/int8_bundle_test_metrics.json)
    assert a8.bundle.id == "ramh-test-int8" and a8.backend.name == "onnxruntime-cpu"


def test_asymmetric_or_unquantized_graphs_are_refused(tmp_path, images):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    src = make_bundle(tmp_path / "b")
    feeds, failed = quantize.collect_feeds(src, images[:2])
    feeds = feeds["bones"]
    assert len(feeds) == 2 and len(failed) == 2  # the factory's joints model is too small for analyze()

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    asym = tmp_path / "asym.onnx"
    quantize_static(str(src / "bones.onnx"), str(asym), Reader(), quant_format=QuantFormat.QDQ)  # uint8, zero point
    with pytest.raises(quantize.QuantizationError, match="not symmetric INT8"):
        quantize.check_tensorrt_qdq(asym)
    with pytest.raises(quantize.QuantizationError, match="no Q/DQ nodes"):
        quantize.check_tensorrt_qdq(src / "bones.onnx")


def test_argument_errors(quantized, images, tmp_path):
    src, out, _ = quantized
    with pytest.raises(ValueError, match="models.bones is int8-qdq; quantize an fp32 bundle"):
        quantize.quantize_bundle(out, images, tmp_path / "x", roles=("bones",), log=lambda _: None)
    with pytest.raises(ValueError, match="has no model"):
        quantize.quantize_bundle(src, images, tmp_path / "x", roles=("hands",), log=lambda _: None)
    with pytest.raises(quantize.QuantizationError, match="no calibration images"):
        quantize.quantize_bundle(src, [], tmp_path / "x", roles=("bones",), log=lambda _: None)
    with pytest.raises(ValueError, match="method must be one of"):
        quantize.quantize_model(src / "bones.onnx", tmp_path / "y.onnx", [{"image": np.zeros((1, 1, 64, 64))}],
                                method="max")
    with pytest.raises(quantize.QuantizationError, match="no calibration inputs for bones.onnx"):
        quantize.quantize_bundle(src, [np.full((64, 64), np.nan, np.float32)], tmp_path / "x", roles=("bones",),
                                 log=lambda _: None)
    with pytest.raises(FileNotFoundError, match="calibration source not found"):
        quantize.image_paths([tmp_path / "nowhere"])


def test_cli_quantizes_from_an_image_folder(tmp_path, images):
    from PIL import Image

    src = make_bundle(tmp_path / "b")
    folder = tmp_path / "calib"
    folder.mkdir()
    for i, im in enumerate(images[:4]):
        Image.fromarray(im).save(folder / f"hand{i}.png")
    (folder / "notes.txt").write_text("not an image")
    out, report = tmp_path / "b-int8", tmp_path / "report.json"
    assert cli.main(["quantize", "--bundle", str(src), "--images", str(folder), "--out", str(out), "--models", "bones",
                     "--method", "minmax", "--report", str(report)]) == 0
    assert Bundle.load(out).model("bones").precision == "int8-qdq"
    assert json.loads(report.read_text())["models"]["bones"]["calibration_inputs"] == 3
    assert cli.main(["quantize", "--bundle", str(src), "--images", str(tmp_path / "empty-nothing"), "--out",
                     str(tmp_path / "z")]) == 1
