"""INT8 post-training quantization of a bundle into Q/DQ ONNX (manifest ``precision: "int8-qdq"``).

TensorRT 11 builds strongly typed networks only, so INT8 there comes from the graph itself: QuantizeLinear /
DequantizeLinear pairs around the layers that run in INT8. This module writes such graphs from an fp32 bundle with
ONNX Runtime's static quantizer, calibrated on the model inputs that the runtime itself produces for a set of
radiographs (the same preprocessing, ROI geometry and crops as :func:`ramh_rt.analyze`), and checks that the result is
what TensorRT accepts: symmetric INT8 (zero point 0) with per-channel weight scales, biases left in float (TensorRT has
no INT32 dequantization), only ops of :data:`ramh_train.export.TENSORRT_OPS` besides Q/DQ.

Only convolutions are quantized by default: the score heads (Gemm/MatMul) stay float, which costs little speed and
keeps the scores closer to the fp32 model's (on the default bundle's held-out joints, JSN argmax agreement with fp32 was
83 % with the heads quantized, 86 % without; the task metrics moved less: benchmarks/results/README.md). The report
says how far each quantized model is from its fp32 original on inputs held out from calibration; ``ramh-train
evaluate`` on the written bundle gives the task metrics.

ONNX Runtime runs the Q/DQ graphs on the CPU too, which is how they are tested here; whether INT8 is faster depends on
the execution provider (TensorRT fuses Q/DQ into INT8 kernels; ONNX Runtime's CPU provider gains little on these
models).
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ramh_rt.bundle import Bundle
from ramh_rt.fs import expand_image_paths
from ramh_rt.pipeline import Analyzer

from .export import TENSORRT_OPS, graph_ops, write_bundle

#: What TensorRT accepts besides its float ops: the Q/DQ pairs themselves.
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
METHODS = ("percentile", "minmax", "entropy")


class QuantizationError(RuntimeError):
    """The quantized graph is not what TensorRT's strongly typed INT8 path accepts, or calibration had no data."""


def image_paths(sources: Iterable[str | os.PathLike]) -> list[Path]:
    """Files named in ``sources``, directories expanded (recursively) to the radiographs they hold, sorted
    (:func:`ramh_rt.fs.expand_image_paths`).

    Raises:
        FileNotFoundError: a source does not exist.
    """
    try:
        return expand_image_paths(sources, missing_ok=False)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"calibration source not found: {e}") from None


def collect_feeds(bundle: Bundle | str | os.PathLike, images: Sequence[Any], *, progress: bool = False
                  ) -> tuple[dict[str, list[dict[str, np.ndarray]]], list[str]]:
    """Run the fp32 bundle on ``images`` (paths or arrays) and record every model's input feeds, per role.

    Returns:
        (role -> recorded feeds, one message per image that failed). A failing image is skipped, not fatal; the
        feeds it produced before failing are kept (they are valid model inputs).
    """
    analyzer = Analyzer(bundle, backend="onnxruntime-cpu")
    feeds: dict[str, list[dict[str, np.ndarray]]] = {role: [] for role in analyzer.sessions}
    for role, session in analyzer.sessions.items():
        run = session.run

        def recording_run(inputs, _run=run, _role=role, **kw):
            feeds[_role].append({k: np.array(v, copy=True) for k, v in inputs.items()})
            return _run(inputs, **kw)

        session.run = recording_run
    failed: list[str] = []
    items = images
    if progress:
        from tqdm import tqdm

        items = tqdm(images, desc="calibration images", unit="image", dynamic_ncols=True)
    for image in items:
        try:
            analyzer.analyze(image)
        except Exception as e:  # noqa: BLE001 - a bad calibration image is skipped, not fatal
            failed.append(f"{image if isinstance(image, (str, os.PathLike)) else '<array>'}: {e}")
    return feeds, failed


def quantize_model(src: str | os.PathLike, dst: str | os.PathLike, calibration: Sequence[Mapping[str, np.ndarray]],
                   *, method: str = "percentile", op_types: Sequence[str] = ("Conv",),
                   exclude_nodes: Sequence[str] = ()) -> None:
    """Write the Q/DQ INT8 version of the ONNX model ``src`` to ``dst``, calibrated on ``calibration`` feeds.

    Args:
        calibration: input feeds (name -> array), e.g. from :func:`collect_feeds`.
        method: ``"percentile"``, ``"minmax"`` or ``"entropy"`` activation range calibration.
        op_types: the ONNX op types to quantize; ``exclude_nodes``: node names to keep in float.
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, \
        quantize_static

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not calibration:
        raise QuantizationError(f"no calibration inputs for {Path(src).name}")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calibration)

        def get_next(self):
            return next(self._it, None)

    reader = Reader()
    quantize_static(str(src), str(dst), reader, quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True,
                    calibrate_method={"percentile": CalibrationMethod.Percentile, "minmax": CalibrationMethod.MinMax,
                                      "entropy": CalibrationMethod.Entropy}[method],
                    op_types_to_quantize=list(op_types), nodes_to_exclude=list(exclude_nodes),
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})


def check_tensorrt_qdq(path: str | os.PathLike) -> dict[str, int]:
    """Check a Q/DQ graph against TensorRT's INT8 rules; return its op counts.

    Raises:
        QuantizationError: no Q/DQ node, an op TensorRT does not build, a non-INT8 or non-zero zero point, or a
            DequantizeLinear of an INT32 tensor (a quantized bias).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    ops = graph_ops(model)
    bad = sorted(set(ops) - TENSORRT_OPS - QDQ_OPS)
    if bad:
        raise QuantizationError(f"{Path(path).name}: ops TensorRT does not build: {', '.join(bad)}")
    if not ops.get("QuantizeLinear") or not ops.get("DequantizeLinear"):
        raise QuantizationError(f"{Path(path).name}: no Q/DQ nodes: nothing was quantized")
    inits = {t.name: t for t in model.graph.initializer}
    consts = {n.output[0]: n.attribute[0].t for n in model.graph.node if n.op_type == "Constant" and n.attribute}
    for node in model.graph.node:
        if node.op_type not in QDQ_OPS:
            continue
        if len(node.input) < 3 or not node.input[2]:
            raise QuantizationError(f"{Path(path).name}: {node.name} has no zero point (UINT8 by default)")
        zp = inits.get(node.input[2]) or consts.get(node.input[2])
        if zp is None:
            raise QuantizationError(f"{Path(path).name}: {node.name}'s zero point is not a constant")
        z = numpy_helper.to_array(zp)
        if z.dtype != np.int8 or np.any(z != 0):
            raise QuantizationError(f"{Path(path).name}: {node.name} is not symmetric INT8 (zero point {z.dtype}, "
                                    f"max |z| {int(np.abs(z.astype(np.int64)).max())})")
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            if numpy_helper.to_array(inits[node.input[0]]).dtype != np.int8:
                raise QuantizationError(f"{Path(path).name}: {node.name} dequantizes a non-INT8 constant "
                                        "(a quantized bias? TensorRT has no INT32 dequantization)")
    return dict(ops)


def _agreement(role: str, ref: list[np.ndarray], out: list[np.ndarray], names: list[str]) -> dict[str, float]:
    """How close the quantized model's outputs are to the fp32 model's, in the terms the runtime uses them."""
    r, o = dict(zip(names, ref)), dict(zip(names, out))
    rep = {f"max_abs_{k}": float(np.abs(r[k] - o[k]).max()) for k in names}
    if role == "bones":
        a, b = r["logits"] > 0, o["logits"] > 0
        inter = (a & b).sum(axis=(-2, -1))
        union = (a | b).sum(axis=(-2, -1))
        rep["mask_iou_min"] = float((inter / np.maximum(union, 1))[union > 0].min())
    elif role == "joints":
        for head in ("be_probs", "jsn_probs"):
            rep[f"{head}_argmax_agreement"] = float((r[head].argmax(1) == o[head].argmax(1)).mean())
    elif role == "global":
        rep["svdh_total_max_abs"] = float(np.abs(r["svdh_total"] - o["svdh_total"]).max())
    return rep


def quantize_bundle(bundle: str | os.PathLike, images: Sequence[Any], out: str | os.PathLike, *,
                    roles: Sequence[str] = ("bones", "joints", "global"), method: str = "percentile",
                    op_types: Sequence[str] = ("Conv",), holdout: float = 0.25, bundle_id: str | None = None,
                    overwrite: bool = False, progress: bool = False, log: Callable[[str], None] = print) -> dict:
    """Write an INT8 Q/DQ copy of ``bundle`` to ``out``, calibrated on ``images``.

    Args:
        bundle: an fp32 bundle (directory or zip).
        images: calibration radiographs (paths or arrays), ideally from the population the bundle will see.
        out: the new bundle directory; models not in ``roles`` are copied as they are.
        roles: the models to quantize.
        method: activation range calibration: ``"percentile"`` (99.999th, robust to outliers; default),
            ``"minmax"`` or ``"entropy"``.
        op_types: ONNX op types to quantize (default convolutions only; see the module docstring).
        holdout: share of the recorded inputs kept out of calibration to measure the agreement with fp32.
        bundle_id: the new bundle's id (default ``<id>-int8``).
        overwrite: replace an existing ``out``; progress: a progress bar over the calibration images; log: where
            the steps are reported.

    Returns:
        ``{"bundle": path, "models": {role: {"calibration_inputs", "holdout_inputs", "ops", "agreement"}}}``.

    Raises:
        ValueError: bad arguments, or a model in ``roles`` that is not fp32.
        QuantizationError: no usable calibration data, or a graph TensorRT would not accept.
    """
    import onnx
    import onnxruntime as ort

    src = Bundle.load(bundle)
    unknown = sorted(set(roles) - set(src.model_names))
    if unknown:
        raise ValueError(f"bundle {src.id} has no model(s) {', '.join(unknown)}; it has {', '.join(src.model_names)}")
    for role in roles:
        if src.model(role).precision != "fp32":
            raise ValueError(f"models.{role} is {src.model(role).precision}; quantize an fp32 bundle")
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {holdout!r}")
    if not len(images):
        raise QuantizationError("no calibration images")
    log(f"recording model inputs on {len(images)} calibration image(s)")
    feeds, failed = collect_feeds(src, images, progress=progress)
    for msg in failed:  # (a model that got no inputs at all is refused below, naming the model)
        log(f"calibration image incomplete: {msg}")
    report: dict[str, Any] = {"models": {}, "calibration_images": len(images), "skipped_images": failed}
    manifest = src.manifest
    entries: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for role in src.model_names:
            entry = {k: v for k, v in manifest["models"][role].items() if k not in ("file", "sha256")}
            entry["onnx"] = str(src.model(role).path)
            if role in roles:
                recorded = feeds.get(role, [])
                n_hold = min(len(recorded) - 1, math.ceil(holdout * len(recorded))) if len(recorded) > 1 else 0
                calib, held = recorded[: len(recorded) - n_hold], recorded[len(recorded) - n_hold:]
                dst = Path(tmp) / f"{role}.int8.onnx"
                log(f"{role}: calibrating on {len(calib)} input batch(es) ({method}), {len(held)} held out")
                quantize_model(entry["onnx"], dst, calib, method=method, op_types=op_types)
                ops = check_tensorrt_qdq(dst)
                opset = max(o.version for o in onnx.load(str(dst), load_external_data=False).opset_import
                            if o.domain in ("", "ai.onnx"))
                agreement: dict[str, float] = {}
                if held:
                    so = ort.SessionOptions()
                    so.log_severity_level = 3
                    s32 = ort.InferenceSession(entry["onnx"], so, providers=["CPUExecutionProvider"])
                    s8 = ort.InferenceSession(str(dst), so, providers=["CPUExecutionProvider"])
                    names = [o.name for o in s32.get_outputs()]
                    per = [_agreement(role, s32.run(None, f), s8.run(None, f), names) for f in held]
                    agreement = {k: (min if ("agreement" in k or "iou" in k) else max)(p[k] for p in per)
                                 for k in per[0]}
                entry.update(onnx=str(dst), precision="int8-qdq", opset=opset,
                             quantization={"method": method, "op_types": list(op_types), "scheme":
                                           "symmetric int8, per-channel weights, float biases",
                                           "calibration_inputs": len(calib), "agreement_with_fp32": agreement})
                report["models"][role] = {"calibration_inputs": len(calib), "holdout_inputs": len(held),
                                          "ops": ops, "agreement": agreement}
                log(f"{role}: {ops.get('QuantizeLinear', 0)} Q / {ops.get('DequantizeLinear', 0)} DQ nodes; "
                    f"agreement with fp32 on held-out inputs {agreement}")
            entries[role] = entry
        fields = {k: v for k, v in manifest.items()
                  if k not in ("schema_version", "created", "models", "anatomy_version")}
        fields["bundle_id"] = bundle_id or f"{src.id}-int8"
        fields["description"] = (f"{manifest.get('description', src.id)} — INT8 Q/DQ ({', '.join(roles)}) for "
                                 "TensorRT's strongly typed INT8 path")
        td = dict(fields.get("training_data", {}))
        td["commands"] = [*td.get("commands", []),
                          f"ramh-train quantize --bundle {src.id} --images <{len(images)} calibration images> "
                          f"--models {','.join(roles)} --method {method} --op-types {','.join(op_types)}"]
        fields["training_data"] = td
        # The source bundle's metrics describe the fp32 models: not claimed for the quantized ones.
        fields["metrics"] = {"note": f"metrics of {src.id} (fp32) are not carried over; run ramh-train evaluate"}
        report["bundle"] = str(write_bundle(out, entries, fields, overwrite=overwrite))
    return report
