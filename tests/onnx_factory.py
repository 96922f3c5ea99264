"""Tiny real ONNX models and model bundles for the bundle and backend tests (onnx.helper only, no torch).

The models have the input/output layout a real bundle declares (NCHW images, a dynamic batch "N"), with a few
hundred parameters, so ONNX Runtime runs them in microseconds and their outputs can be computed in NumPy.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ramh_rt import anatomy

OPSET = 17
IR_VERSION = 9  # readable by every onnxruntime >= 1.17 (pyproject's floor)

_ONNX_DTYPE = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "int64": TensorProto.INT64,
               "int32": TensorProto.INT32}


def _vi(name: str, dtype: str, shape: list[Any]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, _ONNX_DTYPE[dtype], shape)


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ramh-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def seeded_weights(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def bones_model(path: Path, hw: int = 64, classes: int = anatomy.NUM_BONE_CLASSES) -> Path:
    """image [N,1,hw,hw] float32 -> logits [N,classes,hw,hw] = 1x1 conv (weights seeded_weights((classes,1,1,1), 1))."""
    w = numpy_helper.from_array(seeded_weights((classes, 1, 1, 1), 1), "w")
    b = numpy_helper.from_array(np.linspace(-1, 1, classes, dtype=np.float32), "b")
    node = helper.make_node("Conv", ["image", "w", "b"], ["logits"])
    graph = helper.make_graph([node], "bones", [_vi("image", "float32", ["N", 1, hw, hw])],
                              [_vi("logits", "float32", ["N", classes, hw, hw])], initializer=[w, b])
    return _save(graph, path)


def joints_model(path: Path, roi: int = 32) -> Path:
    """roi [N,1,roi,roi] + area [N,22] -> erosion (= roi), be_logits = area @ Wbe, jsn_logits = area @ Wjsn."""
    n_areas = len(anatomy.AREA_STEMS)
    wbe = numpy_helper.from_array(seeded_weights((n_areas, anatomy.BE_MAX + 1), 2), "wbe")
    wjsn = numpy_helper.from_array(seeded_weights((n_areas, anatomy.JSN_MAX + 1), 3), "wjsn")
    nodes = [helper.make_node("Identity", ["roi"], ["erosion"]),
             helper.make_node("MatMul", ["area", "wbe"], ["be_logits"]),
             helper.make_node("MatMul", ["area", "wjsn"], ["jsn_logits"])]
    graph = helper.make_graph(nodes, "joints",
                              [_vi("roi", "float32", ["N", 1, roi, roi]), _vi("area", "float32", ["N", n_areas])],
                              [_vi("erosion", "float32", ["N", 1, roi, roi]),
                               _vi("be_logits", "float32", ["N", anatomy.BE_MAX + 1]),
                               _vi("jsn_logits", "float32", ["N", anatomy.JSN_MAX + 1])],
                              initializer=[wbe, wjsn])
    return _save(graph, path)


def global_model(path: Path, hw: int = 64) -> Path:
    """image [N,1,hw,hw] -> svdh [N,1] = global mean x 10, severity [N,5] = mean x (0..4)."""
    sev = numpy_helper.from_array(np.arange(len(anatomy.SEVERITY_NAMES), dtype=np.float32)[None], "sev")
    ten = numpy_helper.from_array(np.array([[10.0]], np.float32), "ten")
    shape = numpy_helper.from_array(np.array([-1, 1], np.int64), "shape")
    # ReduceMean takes its axes as an attribute up to opset 17.
    nodes = [helper.make_node("ReduceMean", ["image"], ["m4"], axes=[2, 3], keepdims=1),
             helper.make_node("Reshape", ["m4", "shape"], ["m"]),
             helper.make_node("Mul", ["m", "ten"], ["svdh"]),
             helper.make_node("Mul", ["m", "sev"], ["severity"])]
    graph = helper.make_graph(nodes, "global", [_vi("image", "float32", ["N", 1, hw, hw])],
                              [_vi("svdh", "float32", ["N", 1]),
                               _vi("severity", "float32", ["N", len(anatomy.SEVERITY_NAMES)])],
                              initializer=[sev, ten, shape])
    return _save(graph, path)


def add_model(path: Path, dtype: str = "float32", shape: tuple[Any, ...] = ("N", 3, 8, 8)) -> Path:
    """x, y [shape] -> z = x + y, w = x (two inputs, two outputs) of ``dtype``."""
    nodes = [helper.make_node("Add", ["x", "y"], ["z"]), helper.make_node("Identity", ["x"], ["w"])]
    graph = helper.make_graph(nodes, "add", [_vi("x", dtype, list(shape)), _vi("y", dtype, list(shape))],
                              [_vi("z", dtype, list(shape)), _vi("w", dtype, list(shape))])
    return _save(graph, path)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _window() -> dict[str, Any]:
    return {"percentiles": [0.5, 99.5], "mean": 0.45, "std": 0.25}


def manifest_for(dir_: Path, with_global: bool = True) -> dict[str, Any]:
    """A valid schema-v1 manifest for the models already written in ``dir_`` (bones.onnx, joints.onnx, global.onnx)."""
    def t(name: str, shape: list[Any], dtype: str = "float32") -> dict[str, Any]:
        return {"name": name, "shape": shape, "dtype": dtype}

    n_areas = len(anatomy.AREA_STEMS)
    models: dict[str, Any] = {
        "bones": {"task": "bone_segmentation", "file": "bones.onnx", "sha256": sha256(dir_ / "bones.onnx"),
                  "precision": "fp32", "opset": OPSET, "parameters": 60,
                  "inputs": [t("image", ["N", 1, 64, 64])],
                  "outputs": [t("logits", ["N", anatomy.NUM_BONE_CLASSES, 64, 64])],
                  "classes": list(anatomy.BONE_NAMES),
                  "preprocess": {"input_hw": [64, 64], "window": _window(), "coord_channels": False,
                                 "antialias": True},
                  "postprocess": {"mode": "multilabel", "threshold": 0.0, "keep": {"*": "largest", "Sesamoid": "all"},
                                  "min_area": 4, "fill_holes": True}},
        "joints": {"task": "joint_scoring", "file": "joints.onnx", "sha256": sha256(dir_ / "joints.onnx"),
                   "precision": "fp32", "opset": OPSET,
                   "inputs": [t("roi", ["N", 1, 32, 32]), t("area", ["N", n_areas])],
                   "outputs": [t("erosion", ["N", 1, 32, 32]), t("be_logits", ["N", anatomy.BE_MAX + 1]),
                               t("jsn_logits", ["N", anatomy.JSN_MAX + 1])],
                   "areas": list(anatomy.AREA_STEMS), "roi": {"size": [32, 32], "scale": 2.5, "window": _window()},
                   "be_classes": anatomy.BE_MAX + 1, "jsn_classes": anatomy.JSN_MAX + 1, "erosion_threshold": 0.5},
    }
    if with_global:
        models["global"] = {"task": "global_svdh", "file": "global.onnx", "sha256": sha256(dir_ / "global.onnx"),
                            "precision": "fp32", "opset": OPSET,
                            "inputs": [t("image", ["N", 1, 64, 64])],
                            "outputs": [t("svdh", ["N", 1]), t("severity", ["N", len(anatomy.SEVERITY_NAMES)])],
                            "preprocess": {"input_hw": [64, 64]}, "severity_classes": list(anatomy.SEVERITY_NAMES),
                            "target": "per-hand SvdH total 0..140"}
    return {"schema_version": 1, "bundle_id": "ramh-test", "version": "0.1.0", "created": "2026-01-01T00:00:00Z",
            "anatomy_version": anatomy.ANATOMY_VERSION, "description": "tiny test bundle",
            "clinical_use": "none: test fixture",
            "training_data": {"kind": "synthetic-phantoms", "description": "none", "commands": []},
            "models": models, "metrics": {"bones": {"dice": 0.0}}}


def make_bundle(dir_: Path, with_global: bool = True,
                edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Write a complete bundle into ``dir_`` (created); ``edit`` may change the manifest before it is written."""
    dir_.mkdir(parents=True, exist_ok=True)
    bones_model(dir_ / "bones.onnx")
    joints_model(dir_ / "joints.onnx")
    if with_global:
        global_model(dir_ / "global.onnx")
    manifest = manifest_for(dir_, with_global)
    if edit is not None:
        edit(manifest)
    (dir_ / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return dir_
