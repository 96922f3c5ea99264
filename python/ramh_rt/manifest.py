"""The bundle manifest (``manifest.json``, schema v1): reading it and checking every field, with field paths.

Three checks, run in this order by :meth:`ramh_rt.bundle.Bundle.load` (and by the training side's export, which
loads what it wrote):

* :func:`validate_manifest`: structure, types, enums, patterns and value ranges, mirroring
  ``ramh_rt/schemas/bundle_manifest.schema.json`` without a jsonschema dependency (a test keeps the two in agreement).
  One function per section (:data:`SECTIONS` for the top level, :data:`MODEL_CHECKS` per model role): a new section
  is one function and one schema entry.
* :func:`check_values`: what a schema cannot say: every number finite (``1e400`` parses as infinity), window
  percentiles increasing, the model input size within :data:`MAX_INPUT_PIXELS`, ``min_area`` no larger than the model
  input, the image inputs' shapes equal to the declared sizes, a multiclass threshold of 0, the ``qc.domain``
  statistics' lengths and symmetry.
* :func:`check_anatomy`: the anatomy version and class lists against :mod:`ramh_rt.anatomy`.

Each returns a list of ``"<field path>: <problem>"`` strings (empty: no problem), e.g.
``models.bones.preprocess.input_hw[0]: must be an integer in [16, 4096], got 20000``. The ranges refuse values that
cannot work at run time (they would fail, or silently produce nothing, on every image); each bound's reason is given
where it is defined below.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping

from . import anatomy
from .errors import BundleError

#: File name of the manifest inside a bundle.
MANIFEST_NAME = "manifest.json"
#: Manifest schema versions this runtime reads (the last one is what export writes).
SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1,)
#: Model roles a bundle may hold, and the task each must declare.
MODEL_TASKS: dict[str, str] = {"bones": "bone_segmentation", "joints": "joint_scoring", "global": "global_svdh"}
#: Model roles every bundle must hold.
REQUIRED_MODELS: tuple[str, ...] = ("bones", "joints")
#: Tensor dtypes a manifest may declare (NumPy names).
TENSOR_DTYPES: tuple[str, ...] = ("float32", "float16", "int64", "int32")

# Value ranges (the schema states the same bounds). Why each bound:
#: Side of the whole-image model input, pixels: 4096 already needs 2 GB of float32 logits per image (30 classes).
INPUT_SIDE_RANGE = (16, 4096)
#: Pixels of the whole-image model input: 2**22 (e.g. 2048 x 2048) is 0.5 GB of bone logits per image.
MAX_INPUT_PIXELS = 2 ** 22
#: Side of a joint ROI crop, pixels (the default model uses 224; 32 ROIs of 1024^2 are 128 MB of float32).
ROI_SIDE_RANGE = (16, 1024)
#: Any tensor dimension (a larger one cannot be allocated for a batch of images).
MAX_TENSOR_DIM = 65536
#: Window standard deviation, on the [0, 1] windowed scale: below 1e-6 one grey level becomes > 10^6 after
#: normalisation (and float32 denormals/zero divide into infinities); above 1e6 the input is a constant.
WINDOW_STD_RANGE = (1e-6, 1e6)
#: |window mean|, on the [0, 1] windowed scale.
WINDOW_MEAN_MAX = 1e6
#: |logit threshold| of the bone masks: beyond +-100 the probability is indistinguishable from 0 or 1 in float32.
LOGIT_THRESHOLD_MAX = 100.0
#: ROI scale (ROI side = scale x local bone width).
ROI_SCALE_RANGE = (0.0, 16.0)  # exclusive low bound
#: Smallest erosion lesion counted, ROI pixels (at most a whole 1024^2 ROI).
MAX_MIN_LESION_PX = ROI_SIDE_RANGE[1] ** 2

_BUNDLE_ID_RE = re.compile(r"[A-Za-z0-9._-]+")
_SEMVER_RE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?")
_FILE_RE = re.compile(r"[A-Za-z0-9._-]+\.onnx")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_PLAIN_FILE_RE = re.compile(r"(?!\.\.?$)[A-Za-z0-9._-]+")


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a manifest.json (strict JSON: NaN/Infinity refused).

    Raises:
        BundleError: missing file, not JSON, or not a JSON object.
    """
    p = Path(os.fspath(path))
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(f"{p}: manifest.json not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BundleError(f"{p}: cannot read manifest.json ({e})") from None

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        data = json.loads(text, parse_constant=no_constants)
    except ValueError as e:
        raise BundleError(f"{p}: manifest.json is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise BundleError(f"{p}: manifest.json must hold a JSON object, found {type(data).__name__}")
    return data




# ---------------------------------------------------------------------------------------------------------------------
# validate_manifest: structure, types and ranges (mirrors the JSON schema)
# ---------------------------------------------------------------------------------------------------------------------

def validate_manifest(manifest: Any) -> list[str]:
    """Problems of a parsed manifest against schema v1, each as ``"<field path>: <problem>"``; empty when valid.

    Mirrors ``schemas/bundle_manifest.schema.json`` (required fields, types, enums, patterns, ranges) without a
    jsonschema dependency; field paths look like ``models.bones.inputs[0].shape[1]``. Never raises, whatever the
    input. Cross-field value checks are in :func:`check_values`, anatomy checks in :func:`check_anatomy`.
    """
    v = _Validator()
    if not v.obj(manifest, "manifest"):
        return v.problems
    _check_top_level(v, manifest)
    for key, check in SECTIONS.items():
        if key in manifest:
            check(v, manifest[key], key)
    return v.problems


def _check_top_level(v: "_Validator", manifest: dict[str, Any]) -> None:
    v.required(manifest, ("schema_version", "bundle_id", "version", "created", "anatomy_version", "training_data",
                          "models"), "")
    sv = manifest.get("schema_version")
    if "schema_version" in manifest and not (_is_number(sv) and sv in SUPPORTED_SCHEMA_VERSIONS):
        v.add("schema_version", f"unsupported schema version {sv!r}; this ramh_rt reads "
              f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))} (a newer ramh_rt may read it)")
    v.string(manifest, "bundle_id", "", pattern=_BUNDLE_ID_RE, what="letters, digits, '.', '_' or '-'")
    v.string(manifest, "version", "", pattern=_SEMVER_RE, what="a semantic version such as 1.2.0")
    for key in ("created", "anatomy_version", "description", "clinical_use"):
        v.string(manifest, key, "")


def _check_training_data(v: "_Validator", td: Any, path: str) -> None:
    if not v.obj(td, path):
        return
    v.required(td, ("kind",), path)
    v.enum(td, "kind", path, ("synthetic-phantoms", "ram-h1200", "mixed", "other"))
    v.string(td, "description", path)
    v.string_list(td, "commands", path)


def _check_metrics(v: "_Validator", metrics: Any, path: str) -> None:
    v.obj(metrics, path)  # free-form per model; check_values refuses non-finite numbers in it


def _check_models(v: "_Validator", models: Any, path: str) -> None:
    if not v.obj(models, path):
        return
    v.required(models, REQUIRED_MODELS, path)
    for name in models:
        if name not in MODEL_TASKS:
            v.add(f"{path}.{name}", f"unknown model role (allowed: {', '.join(MODEL_TASKS)})")
    for name, check in MODEL_CHECKS.items():
        if name in models and _check_model_common(v, name, models[name], f"{path}.{name}"):
            check(v, models[name], f"{path}.{name}")


def _check_model_common(v: "_Validator", name: str, m: Any, path: str) -> bool:
    """The fields every model entry has; False when the entry is not an object (nothing more to check)."""
    if not v.obj(m, path):
        return False
    v.required(m, ("task", "file", "sha256", "precision", "opset", "inputs", "outputs"), path)
    task = MODEL_TASKS[name]
    if "task" in m and m["task"] != task:
        v.add(f"{path}.task", f"must be {task!r}, got {m['task']!r}")
    v.string(m, "file", path, pattern=_FILE_RE, what="a plain file name ending in .onnx (no directories)")
    v.string(m, "sha256", path, pattern=_SHA256_RE, what="64 lowercase hexadecimal digits")
    v.enum(m, "precision", path, ("fp32", "fp16", "int8-qdq"))
    v.integer(m, "opset", path, minimum=17)
    v.integer(m, "parameters", path, minimum=0)
    for key in ("inputs", "outputs"):
        if key in m and v.array(m[key], f"{path}.{key}", min_items=1):
            for i, t in enumerate(m[key]):
                _check_tensor(v, t, f"{path}.{key}[{i}]")
    for key in ("parity", "quantization"):
        if key in m:
            v.obj(m[key], f"{path}.{key}")
    return True


def _check_bones(v: "_Validator", m: dict[str, Any], path: str) -> None:
    v.required(m, ("classes", "preprocess", "postprocess"), path)
    v.string_list(m, "classes", path, min_items=1)
    pre = m.get("preprocess")
    if "preprocess" in m and v.obj(pre, f"{path}.preprocess"):
        pp = f"{path}.preprocess"
        v.required(pre, ("input_hw", "window", "coord_channels", "antialias"), pp)
        v.int_pair(pre, "input_hw", pp, *INPUT_SIDE_RANGE)
        if "window" in pre:
            _check_window(v, pre["window"], f"{pp}.window")
        v.boolean(pre, "coord_channels", pp)
        v.boolean(pre, "antialias", pp)
    post = m.get("postprocess")
    if "postprocess" in m and v.obj(post, f"{path}.postprocess"):
        pp = f"{path}.postprocess"
        v.required(post, ("mode", "threshold", "keep", "min_area", "fill_holes"), pp)
        v.enum(post, "mode", pp, ("multilabel", "multiclass"))
        v.number(post, "threshold", pp, -LOGIT_THRESHOLD_MAX, LOGIT_THRESHOLD_MAX)
        keep = post.get("keep")
        if "keep" in post and v.obj(keep, f"{pp}.keep"):
            for cls_name, how in keep.items():
                if how not in ("largest", "all"):
                    v.add(f"{pp}.keep.{cls_name}", f"must be 'largest' or 'all', got {how!r}")
        v.integer(post, "min_area", pp, minimum=0, maximum=MAX_INPUT_PIXELS)
        v.boolean(post, "fill_holes", pp)


def _check_joints(v: "_Validator", m: dict[str, Any], path: str) -> None:
    v.required(m, ("areas", "roi", "be_classes", "jsn_classes"), path)
    v.string_list(m, "areas", path)
    roi = m.get("roi")
    if "roi" in m and v.obj(roi, f"{path}.roi"):
        rp = f"{path}.roi"
        v.required(roi, ("size", "scale", "window"), rp)
        v.int_pair(roi, "size", rp, *ROI_SIDE_RANGE)
        v.number(roi, "scale", rp, *ROI_SCALE_RANGE, exclusive_minimum=True)
        if "window" in roi:
            _check_window(v, roi["window"], f"{rp}.window")
    v.integer(m, "be_classes", path, minimum=2)
    v.integer(m, "jsn_classes", path, minimum=2)
    v.number(m, "erosion_threshold", path, 0.0, 1.0, exclusive_minimum=True)
    v.integer(m, "min_lesion_px", path, minimum=0, maximum=MAX_MIN_LESION_PX)


def _check_global(v: "_Validator", m: dict[str, Any], path: str) -> None:
    v.required(m, ("preprocess", "severity_classes", "target"), path)
    if "preprocess" in m:
        v.obj(m["preprocess"], f"{path}.preprocess")  # informative: the global model takes the bone model's input
    v.string_list(m, "severity_classes", path)
    v.string(m, "target", path)


def _check_tensor(v: "_Validator", t: Any, path: str) -> None:
    if not v.obj(t, path):
        return
    v.required(t, ("name", "shape", "dtype"), path)
    v.string(t, "name", path)
    if "shape" in t and v.array(t["shape"], f"{path}.shape"):
        for i, d in enumerate(t["shape"]):
            if d == "N" and isinstance(d, str):
                continue
            if not (_is_integer(d) and 1 <= d <= MAX_TENSOR_DIM):
                v.add(f"{path}.shape[{i}]",
                      f"must be an integer in [1, {MAX_TENSOR_DIM}] or \"N\" (dynamic batch), got {d!r}")
    v.enum(t, "dtype", path, TENSOR_DTYPES)


def _check_window(v: "_Validator", w: Any, path: str) -> None:
    if not v.obj(w, path):
        return
    v.required(w, ("percentiles", "mean", "std"), path)
    if "percentiles" in w and v.array(w["percentiles"], f"{path}.percentiles", min_items=2, max_items=2):
        for i, x in enumerate(w["percentiles"]):
            if not (_is_number(x) and 0 <= x <= 100):
                v.add(f"{path}.percentiles[{i}]", f"must be a number in [0, 100], got {x!r}")
    v.number(w, "mean", path, -WINDOW_MEAN_MAX, WINDOW_MEAN_MAX)
    v.number(w, "std", path, *WINDOW_STD_RANGE)


def _check_qc(v: "_Validator", section: Any, path: str) -> None:
    """The quality-control statistics (``ramh-train qc-stats``; all parts optional): ``domain``, the training inputs'
    feature statistics and the threshold on their distance (:class:`ramh_rt.qc.DomainModel`), and ``uncertainty``,
    the calibration of the joints' uncertainty (:class:`ramh_rt.qc.UncertaintyCalibration`). The lengths of the
    domain's vectors and the precision matrix's symmetry are checked by :func:`check_values`."""
    if not v.obj(section, path):
        return
    dom = section.get("domain")
    if "domain" in section and v.obj(dom, f"{path}.domain"):
        p = f"{path}.domain"
        v.required(dom, ("features", "mean", "scale", "precision", "threshold"), p)
        v.string_list(dom, "features", p, min_items=1)
        for key in ("mean", "scale"):
            if key in dom:
                v.numbers(dom[key], f"{p}.{key}", greater_than=0.0 if key == "scale" else None)
        if "precision" in dom and v.array(dom["precision"], f"{p}.precision"):
            for i, row in enumerate(dom["precision"]):
                v.numbers(row, f"{p}.precision[{i}]")
        v.number(dom, "threshold", p, 0.0, None, exclusive_minimum=True)
    unc = section.get("uncertainty")
    if "uncertainty" in section and v.obj(unc, f"{path}.uncertainty"):
        p = f"{path}.uncertainty"
        for key in ("be_scale", "jsn_scale", "review_threshold", "interval_scale"):
            v.number(unc, key, p, 0.0, None, exclusive_minimum=True)
        v.number(unc, "interval_level", p, 0.0, 1.0, exclusive_minimum=True, exclusive_maximum=True)


def _check_view(v: "_Validator", section: Any, path: str) -> None:
    """The view classifier (:mod:`ramh_rt.view`): ``file`` (a plain file name in the bundle), its ``sha256``,
    ``input_hw`` (two integers in 16..1024), ``classes`` (and optionally ``rotations``, ``chirality``) exactly as the
    runtime's, and optional ``window_percentiles`` ``[low, high]`` with 0 <= low < high <= 100."""
    from .view import CHIRALITY, ROTATIONS, VIEW_CLASSES

    if not v.obj(section, path):
        return
    v.required(section, ("file", "sha256", "input_hw", "classes"), path)
    v.string(section, "file", path, pattern=_PLAIN_FILE_RE, what="a plain file name inside the bundle")
    v.string(section, "sha256", path, pattern=_SHA256_RE, what="64 lowercase hexadecimal digits")
    v.int_pair(section, "input_hw", path, 16, 1024)
    for key, want in (("classes", list(VIEW_CLASSES)), ("rotations", list(ROTATIONS)),
                      ("chirality", list(CHIRALITY))):
        if key in section and section[key] != want:
            v.add(f"{path}.{key}", f"must be {want}, got {section[key]!r}")
    wp = section.get("window_percentiles")
    if "window_percentiles" in section and v.array(wp, f"{path}.window_percentiles", 2, 2) and not (
            all(_is_number(x) for x in wp) and 0.0 <= wp[0] < wp[1] <= 100.0):
        v.add(f"{path}.window_percentiles", f"must be [low, high] with 0 <= low < high <= 100, got {wp!r}")


#: Top-level sections and their checks (run when the section is present; required ones are listed by
#: _check_top_level). A new section: one function here and its entry in the JSON schema.
SECTIONS: dict[str, Callable[["_Validator", Any, str], None]] = {
    "training_data": _check_training_data,
    "metrics": _check_metrics,
    "models": _check_models,
    "qc": _check_qc,
    "view": _check_view,
}

#: Role-specific checks of a model entry (after the fields every model has).
MODEL_CHECKS: dict[str, Callable[["_Validator", dict[str, Any], str], None]] = {
    "bones": _check_bones,
    "joints": _check_joints,
    "global": _check_global,
}


# ---------------------------------------------------------------------------------------------------------------------
# check_values: what a schema cannot express
# ---------------------------------------------------------------------------------------------------------------------

def check_values(manifest: dict[str, Any]) -> list[str]:
    """Cross-field and value problems of a manifest that passed :func:`validate_manifest`, as field-path strings.

    Checks: every number anywhere (metrics and parity reports included) is finite; window percentiles satisfy
    ``low < high``; ``input_hw`` holds at most :data:`MAX_INPUT_PIXELS` pixels and ``min_area`` at most that many;
    ``min_lesion_px`` fits in the ROI; the first input of the bone and global models is ``[N, C, *input_hw]`` and the
    joint model's ``[N, C, *roi.size]``; a ``multiclass`` bone model has threshold 0 (argmax takes no threshold);
    the ``qc.domain`` vectors are as long as its feature list, its precision matrix square and symmetric.
    """
    problems: list[str] = []
    _check_finite(manifest, "", problems)
    models = manifest["models"]
    bones, joints = models["bones"], models["joints"]
    pre, post = bones["preprocess"], bones["postprocess"]
    for path, window in (("models.bones.preprocess.window", pre["window"]),
                         ("models.joints.roi.window", joints["roi"]["window"])):
        lo, hi = window["percentiles"]
        if not lo < hi:
            problems.append(f"{path}.percentiles: must satisfy low < high, got [{lo}, {hi}]")
    h, w = (int(x) for x in pre["input_hw"])
    if h * w > MAX_INPUT_PIXELS:
        problems.append(f"models.bones.preprocess.input_hw: {h} x {w} = {h * w} pixels is more than "
                        f"{MAX_INPUT_PIXELS} per image")
    if post["min_area"] > h * w:
        problems.append(f"models.bones.postprocess.min_area: {post['min_area']} is larger than the model input "
                        f"({h} x {w} = {h * w} pixels): every bone would be dropped")
    if post["mode"] == "multiclass" and post["threshold"] != 0:
        problems.append(f"models.bones.postprocess.threshold: must be 0 in multiclass mode (argmax), "
                        f"got {post['threshold']!r}")
    rh, rw = (int(x) for x in joints["roi"]["size"])
    if "min_lesion_px" in joints and joints["min_lesion_px"] > rh * rw:
        problems.append(f"models.joints.min_lesion_px: {joints['min_lesion_px']} is larger than the ROI "
                        f"({rh} x {rw} = {rh * rw} pixels): no lesion would ever count")
    expected = {"bones": (h, w), "global": (h, w), "joints": (rh, rw)}
    for name, hw in expected.items():
        if name not in models:
            continue
        shape = models[name]["inputs"][0]["shape"]
        if len(shape) == 4 and [int(d) if d != "N" else d for d in shape[2:]] != list(hw):
            what = "models.joints.roi.size" if name == "joints" else "models.bones.preprocess.input_hw"
            problems.append(f"models.{name}.inputs[0].shape: {shape} does not end in {what} {list(hw)}")
    if "qc" in manifest and "domain" in manifest["qc"]:
        problems += _qc_domain_values(manifest["qc"]["domain"], "qc.domain")
    return problems


def _qc_domain_values(dom: dict[str, Any], path: str) -> list[str]:
    """``mean`` and ``scale`` as long as ``features``, ``precision`` a symmetric F x F matrix (F features)."""
    n = len(dom["features"])
    out = [f"{path}.{key}: has {len(dom[key])} values for {n} features" for key in ("mean", "scale")
           if len(dom[key]) != n]
    m = dom["precision"]
    if len(m) != n or any(len(row) != n for row in m):
        out.append(f"{path}.precision: must be a {n} x {n} matrix ({n} features), got {len(m)} rows of "
                   f"{sorted({len(row) for row in m})} values")
    elif any(not math.isclose(m[i][j], m[j][i], rel_tol=1e-6, abs_tol=1e-9) for i in range(n) for j in range(i)):
        out.append(f"{path}.precision: must be symmetric")
    return out


def _check_finite(x: Any, path: str, problems: list[str]) -> None:
    if isinstance(x, float) and not math.isfinite(x):
        problems.append(f"{path or 'manifest'}: must be a finite number, got {x!r}")
    elif isinstance(x, dict):
        for k, val in x.items():
            _check_finite(val, f"{path}.{k}" if path else str(k), problems)
    elif isinstance(x, list):
        for i, val in enumerate(x):
            _check_finite(val, f"{path}[{i}]", problems)


# ---------------------------------------------------------------------------------------------------------------------
# check_anatomy: against ramh_rt.anatomy
# ---------------------------------------------------------------------------------------------------------------------

def check_anatomy(manifest: dict[str, Any]) -> list[str]:
    """Problems of a schema-valid manifest against :mod:`ramh_rt.anatomy`, each as ``"<field path>: <problem>"``.

    Checks: ``anatomy_version`` equals :data:`ramh_rt.anatomy.ANATOMY_VERSION`; ``models.bones.classes`` is exactly
    :data:`ramh_rt.anatomy.BONE_NAMES` in that order; ``postprocess.keep`` names known classes (or ``*``);
    ``models.joints.areas`` are known, distinct SvdH stems; ``be_classes``/``jsn_classes`` equal the score ranges
    (``BE_MAX + 1``, ``JSN_MAX + 1``); ``models.global.severity_classes`` equals
    :data:`ramh_rt.anatomy.SEVERITY_NAMES`; tensor names are distinct.
    """
    problems: list[str] = []
    if manifest["anatomy_version"] != anatomy.ANATOMY_VERSION:
        problems.append(f"anatomy_version: the models were trained with {manifest['anatomy_version']!r} but this "
                        f"ramh_rt uses {anatomy.ANATOMY_VERSION!r}")
    models = manifest["models"]
    bones = models["bones"]
    classes = list(bones["classes"])
    if classes != list(anatomy.BONE_NAMES):
        problems.append("models.bones.classes: " + _list_difference(classes, list(anatomy.BONE_NAMES), "class",
                                                                     anatomy.BONE_ALIASES))
    for key in bones["postprocess"]["keep"]:
        if key != "*" and key not in anatomy.BONE_INDEX:
            problems.append(f"models.bones.postprocess.keep.{key}: unknown bone class (use a class name or '*')")
    joints = models["joints"]
    seen: set[str] = set()
    for i, stem in enumerate(joints["areas"]):
        if stem not in anatomy.AREA_BY_STEM:
            problems.append(f"models.joints.areas[{i}]: unknown SvdH area stem {stem!r}; known: "
                            f"{', '.join(anatomy.AREA_STEMS)}")
        elif stem in seen:
            problems.append(f"models.joints.areas[{i}]: {stem!r} is listed twice")
        seen.add(stem)
    if joints["be_classes"] != anatomy.BE_MAX + 1:
        problems.append(f"models.joints.be_classes: must be {anatomy.BE_MAX + 1} (erosion scores 0..{anatomy.BE_MAX}), "
                        f"got {joints['be_classes']}")
    if joints["jsn_classes"] != anatomy.JSN_MAX + 1:
        problems.append(f"models.joints.jsn_classes: must be {anatomy.JSN_MAX + 1} (JSN scores 0..{anatomy.JSN_MAX}), "
                        f"got {joints['jsn_classes']}")
    if "global" in models:
        sev = list(models["global"]["severity_classes"])
        if sev != list(anatomy.SEVERITY_NAMES):
            problems.append("models.global.severity_classes: " + _list_difference(sev, list(anatomy.SEVERITY_NAMES),
                                                                                  "severity class", {}))
    for name, m in models.items():
        for key in ("inputs", "outputs"):
            names = [t["name"] for t in m[key]]
            dups = sorted({n for n in names if names.count(n) > 1})
            if dups:
                problems.append(f"models.{name}.{key}: duplicate tensor names {dups}")
    return problems


def _list_difference(got: list[str], expected: list[str], what: str, aliases: Mapping[str, str]) -> str:
    parts = []
    unknown = [g for g in got if g not in expected]
    for u in unknown:
        hint = f" (did you mean {aliases[u]!r}?)" if u in aliases else ""
        parts.append(f"unknown {what} {u!r}{hint}")
    missing = [e for e in expected if e not in got]
    if missing:
        parts.append(f"missing {', '.join(map(repr, missing))}")
    dups = sorted({g for g in got if got.count(g) > 1})
    if dups:
        parts.append(f"duplicated {', '.join(map(repr, dups))}")
    if not parts:
        parts.append("same names in a different order")
    return "; ".join(parts) + f" (expected, in order: {', '.join(expected)})"


def _is_integer(x: Any) -> bool:
    # JSON Schema: 1.0 is an integer, True is not.
    return not isinstance(x, bool) and (isinstance(x, int) or (isinstance(x, float) and x.is_integer()))


def _is_number(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)


class _Validator:
    """Collects ``"<path>: <problem>"`` strings; each helper checks one optional key (absent keys pass)."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, path: str, problem: str) -> None:
        self.problems.append(f"{path}: {problem}")

    @staticmethod
    def _join(parent: str, key: str) -> str:
        return f"{parent}.{key}" if parent else key

    def obj(self, x: Any, path: str) -> bool:
        if isinstance(x, dict):
            return True
        self.add(path, f"must be an object, got {_type_name(x)}")
        return False

    def array(self, x: Any, path: str, min_items: int = 0, max_items: int | None = None) -> bool:
        if not isinstance(x, list):
            self.add(path, f"must be an array, got {_type_name(x)}")
            return False
        if len(x) < min_items or (max_items is not None and len(x) > max_items):
            n = f"exactly {min_items}" if max_items == min_items else f"at least {min_items}"
            self.add(path, f"must have {n} items, got {len(x)}")
            return False
        return True

    def required(self, m: dict[str, Any], keys: tuple[str, ...], parent: str) -> None:
        for k in keys:
            if k not in m:
                self.add(self._join(parent, k), "required field is missing")

    def string(self, m: dict[str, Any], key: str, parent: str, pattern: re.Pattern[str] | None = None,
               what: str = "") -> bool:
        if key not in m:
            return False
        x, path = m[key], self._join(parent, key)
        if not isinstance(x, str):
            self.add(path, f"must be a string, got {_type_name(x)}")
            return False
        if pattern is not None and not pattern.fullmatch(x):
            self.add(path, f"must be {what}, got {x!r}")
            return False
        return True

    def string_list(self, m: dict[str, Any], key: str, parent: str, min_items: int = 0) -> None:
        if key not in m:
            return
        path = self._join(parent, key)
        if self.array(m[key], path, min_items=min_items):
            for i, x in enumerate(m[key]):
                if not isinstance(x, str):
                    self.add(f"{path}[{i}]", f"must be a string, got {_type_name(x)}")

    def enum(self, m: dict[str, Any], key: str, parent: str, allowed: tuple[str, ...]) -> None:
        if key in m and m[key] not in allowed:
            self.add(self._join(parent, key), f"must be one of {', '.join(allowed)}; got {m[key]!r}")

    def integer(self, m: dict[str, Any], key: str, parent: str, minimum: int | None = None,
                maximum: int | None = None) -> None:
        if key not in m:
            return
        x, path = m[key], self._join(parent, key)
        if not _is_integer(x):
            self.add(path, f"must be an integer, got {x!r}")
        elif maximum is not None and not minimum <= x <= maximum:
            self.add(path, f"must be an integer in [{minimum}, {maximum}], got {x!r}")
        elif minimum is not None and x < minimum:
            self.add(path, f"must be >= {minimum}, got {x!r}")

    def number(self, m: dict[str, Any], key: str, parent: str, minimum: float | None = None,
               maximum: float | None = None, exclusive_minimum: bool = False, exclusive_maximum: bool = False) -> bool:
        """A finite number, optionally in [minimum, maximum] (either bound exclusive with ``exclusive_minimum`` /
        ``exclusive_maximum``; None: unbounded on that side)."""
        if key not in m:
            return False
        x, path = m[key], self._join(parent, key)
        if not _is_number(x):
            self.add(path, f"must be a finite number, got {x!r}")
            return False
        low_ok = minimum is None or (x > minimum if exclusive_minimum else x >= minimum)
        high_ok = maximum is None or (x < maximum if exclusive_maximum else x <= maximum)
        if not (low_ok and high_ok):
            if maximum is None:
                what = f"{'>' if exclusive_minimum else '>='} {minimum:g}"
            elif minimum is None:
                what = f"{'<' if exclusive_maximum else '<='} {maximum:g}"
            else:
                what = (f"in {'(' if exclusive_minimum else '['}{minimum:g}, {maximum:g}"
                        f"{')' if exclusive_maximum else ']'}")
            self.add(path, f"must be a number {what}, got {x!r}")
            return False
        return True

    def numbers(self, x: Any, path: str, greater_than: float | None = None) -> bool:
        """An array of finite numbers (each ``> greater_than`` when given); True when it is one."""
        if not self.array(x, path):
            return False
        ok = True
        for i, e in enumerate(x):
            if not _is_number(e):
                self.add(f"{path}[{i}]", f"must be a finite number, got {e!r}")
                ok = False
            elif greater_than is not None and not e > greater_than:
                self.add(f"{path}[{i}]", f"must be a number > {greater_than:g}, got {e!r}")
                ok = False
        return ok

    def boolean(self, m: dict[str, Any], key: str, parent: str) -> None:
        if key in m and not isinstance(m[key], bool):
            self.add(self._join(parent, key), f"must be true or false, got {m[key]!r}")

    def int_pair(self, m: dict[str, Any], key: str, parent: str, minimum: int, maximum: int) -> None:
        if key not in m:
            return
        path = self._join(parent, key)
        if self.array(m[key], path, min_items=2, max_items=2):
            for i, x in enumerate(m[key]):
                if not (_is_integer(x) and minimum <= x <= maximum):
                    self.add(f"{path}[{i}]", f"must be an integer in [{minimum}, {maximum}], got {x!r}")


def _type_name(x: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(x), type(x).__name__)


__all__ = ["MANIFEST_NAME", "SUPPORTED_SCHEMA_VERSIONS", "MODEL_TASKS", "REQUIRED_MODELS", "TENSOR_DTYPES", "SECTIONS",
           "MODEL_CHECKS", "read_manifest", "validate_manifest", "check_values", "check_anatomy"]
