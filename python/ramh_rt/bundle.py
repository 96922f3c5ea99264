"""Model bundles: a directory or .zip holding ``manifest.json`` (schema v1) and the ONNX models it names.

The manifest is written by the training side's export and described by ``ramh_rt/schemas/bundle_manifest.schema.json``.
:meth:`Bundle.load` checks it by hand (no jsonschema at run time) with messages that name the field path, then checks
what the schema cannot: the anatomy version and class lists against :mod:`ramh_rt.anatomy`, and every model file's
sha256. A .zip is unpacked once into a cache directory keyed by the zip's own sha256.

Example::

    bundle = Bundle.load()                 # the default bundle
    spec = bundle.model("bones")           # ModelSpec: path, inputs, outputs, task config
    spec.config["preprocess"]["input_hw"]  # task-specific settings, as in the manifest
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from . import anatomy, qc
from .errors import BundleError

#: Manifest schema versions this runtime reads.
SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1,)
#: Model roles a bundle may hold, and the task each must declare.
MODEL_TASKS: dict[str, str] = {"bones": "bone_segmentation", "joints": "joint_scoring", "global": "global_svdh"}
#: Model roles every bundle must hold.
REQUIRED_MODELS: tuple[str, ...] = ("bones", "joints")
#: Tensor dtypes a manifest may declare (NumPy names).
TENSOR_DTYPES: tuple[str, ...] = ("float32", "float16", "int64", "int32")
#: Name of the default bundle directory.
DEFAULT_BUNDLE_NAME = "ramh-default"
#: Environment variable naming a bundle (directory or .zip) to use instead of the default one.
BUNDLE_ENV = "RAMH_BUNDLE"
#: Environment variable naming the cache directory (unpacked zips, TensorRT plans).
CACHE_ENV = "RAMH_CACHE_DIR"
#: Refuse zips that unpack to more than this many bytes (zip bombs).
MAX_UNPACKED_BYTES = 8 * 2 ** 30

_BUNDLE_ID_RE = re.compile(r"[A-Za-z0-9._-]+")
_SEMVER_RE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?")
_FILE_RE = re.compile(r"[A-Za-z0-9._-]+\.onnx")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


# ---------------------------------------------------------------------------------------------------------------------
# Specs
# ---------------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as the manifest declares it.

    Attributes:
        name: tensor name in the ONNX graph.
        shape: dimensions; ``None`` marks the dynamic batch dimension (``"N"`` in the manifest).
        dtype: NumPy dtype name: ``"float32"``, ``"float16"``, ``"int64"`` or ``"int32"``.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    @property
    def is_dynamic(self) -> bool:
        """True when the shape has a dynamic (batch) dimension."""
        return any(d is None for d in self.shape)

    def concrete_shape(self, batch: int) -> tuple[int, ...]:
        """The shape with every dynamic dimension set to ``batch``.

        Raises:
            ValueError: ``batch`` is not a positive integer.
        """
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        return tuple(batch if d is None else d for d in self.shape)

    def to_manifest(self) -> dict[str, Any]:
        """The manifest form: ``{"name", "shape" (with "N"), "dtype"}``."""
        return {"name": self.name, "shape": ["N" if d is None else d for d in self.shape], "dtype": self.dtype}


@dataclass(frozen=True)
class ModelSpec:
    """One model of a bundle, resolved and verified.

    Attributes:
        name: role in the bundle: ``"bones"``, ``"joints"`` or ``"global"``.
        task: ``"bone_segmentation"``, ``"joint_scoring"`` or ``"global_svdh"``.
        path: absolute path of the ONNX file.
        sha256: lowercase hex sha256 of the file (verified at load unless ``verify=False``).
        precision: ``"fp32"``, ``"fp16"`` or ``"int8-qdq"``: the precision the ONNX file itself holds.
        opset: ONNX opset version.
        inputs: input tensors in the manifest's order.
        outputs: output tensors in the manifest's order.
        config: the task-specific part of the manifest entry (everything but the common fields above), e.g. for
            bones ``classes``, ``preprocess``, ``postprocess``; for joints ``areas``, ``roi``, ``be_classes``,
            ``jsn_classes``...; for global ``preprocess``, ``severity_classes``, ``target``. Copied from the manifest
            at load (so :attr:`Bundle.manifest` is unaffected), but shared by every caller of :meth:`Bundle.model`:
            treat it as read-only.
        parameters: parameter count when the manifest gives it, else None.
    """

    name: str
    task: str
    path: Path
    sha256: str
    precision: str
    opset: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    config: Mapping[str, Any] = field(default_factory=dict, compare=False)
    parameters: int | None = None

    def input(self, name: str) -> TensorSpec:
        """The input tensor called ``name``.

        Raises:
            KeyError: no such input (the message lists the inputs).
        """
        return _find_tensor(self.inputs, name, f"model {self.name!r} input")

    def output(self, name: str) -> TensorSpec:
        """The output tensor called ``name``.

        Raises:
            KeyError: no such output (the message lists the outputs).
        """
        return _find_tensor(self.outputs, name, f"model {self.name!r} output")


def _find_tensor(tensors: tuple[TensorSpec, ...], name: str, what: str) -> TensorSpec:
    for t in tensors:
        if t.name == name:
            return t
    raise KeyError(f"{what} {name!r} does not exist; known: {', '.join(t.name for t in tensors)}")


# ---------------------------------------------------------------------------------------------------------------------
# Bundle
# ---------------------------------------------------------------------------------------------------------------------

class Bundle:
    """A verified model bundle. Create it with :meth:`Bundle.load`.

    Attributes:
        path: the directory holding ``manifest.json`` and the models (for a zip, its unpacked copy in the cache).
        source: what was loaded: the directory, or the .zip file.
        warnings: notes from loading (e.g. an anatomy-version mismatch allowed by ``allow_anatomy_mismatch``).
    """

    def __init__(self, manifest: dict[str, Any], path: Path, source: Path, models: dict[str, ModelSpec],
                 warnings: tuple[str, ...] = ()):
        self._manifest = manifest
        self.path = path
        self.source = source
        self._models = models
        self.warnings = warnings

    # ---- loading ----------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, *, verify: bool = True,
             allow_anatomy_mismatch: bool = False, cache_dir: str | os.PathLike[str] | None = None) -> "Bundle":
        """Load and verify a bundle.

        Args:
            path: a bundle directory, its ``manifest.json``, or a ``.zip`` of the directory (manifest at the zip's
                root or in its single top-level folder). None: ``$RAMH_BUNDLE`` if set, else the default bundle
                (``ramh_rt/models/ramh-default`` inside the installed package, else ``models/ramh-default`` of a
                source checkout).
            verify: check every model file's sha256 (streamed). Turn off only for files already verified.
            allow_anatomy_mismatch: accept a manifest whose ``anatomy_version`` differs from
                :data:`ramh_rt.anatomy.ANATOMY_VERSION` (recorded in :attr:`warnings`); class lists must still be
                consistent.
            cache_dir: where zips are unpacked (default: ``$RAMH_CACHE_DIR``, else ``$XDG_CACHE_HOME/ramh_rt``,
                else ``~/.cache/ramh_rt``).

        Raises:
            BundleError: no bundle at ``path`` (or no default bundle: the message says how to get one); the
                manifest is not JSON or not valid (every problem is listed with its field path); unsupported schema
                version; anatomy version or class lists inconsistent with :mod:`ramh_rt.anatomy`; a model file is
                missing or its sha256 differs (file, expected and actual hash named); a zip is corrupt, holds unsafe
                member paths (absolute, ``..``, links) or unpacks too large.
        """
        source = _resolve_source(path)
        cache = Path(os.fspath(cache_dir)) if cache_dir is not None else default_cache_dir()
        if source.is_file() and source.name != "manifest.json" and (source.suffix.lower() == ".zip"
                                                                   or zipfile.is_zipfile(source)):
            root = _unpack_zip(source, cache)
            try:
                return cls._load_dir(root, source, verify, allow_anatomy_mismatch)
            except _ChecksumMismatch:
                # The cache copy was altered after unpacking; the zip itself is the reference: unpack it again.
                shutil.rmtree(_cache_entry(source, cache), ignore_errors=True)
                root = _unpack_zip(source, cache)
                try:
                    return cls._load_dir(root, source, verify, allow_anatomy_mismatch)
                except _ChecksumMismatch as e:
                    raise BundleError(f"{source}: {e}") from None
        if source.is_file() and source.name == "manifest.json":
            source = source.parent
        if not source.is_dir():
            raise BundleError(f"{source}: not a bundle directory, manifest.json or .zip file")
        try:
            return cls._load_dir(source, source, verify, allow_anatomy_mismatch)
        except _ChecksumMismatch as e:
            raise BundleError(f"{source}: {e}") from None

    @classmethod
    def _load_dir(cls, root: Path, source: Path, verify: bool, allow_anatomy_mismatch: bool) -> "Bundle":
        manifest = read_manifest(root / "manifest.json")
        problems = validate_manifest(manifest)
        if problems:
            raise BundleError(f"{source}: invalid manifest.json:\n  " + "\n  ".join(problems))
        warnings: list[str] = []
        anatomy_problems = check_anatomy(manifest)
        version_problem = [p for p in anatomy_problems if p.startswith("anatomy_version")]
        if version_problem and allow_anatomy_mismatch:
            warnings.extend(version_problem)
            anatomy_problems = [p for p in anatomy_problems if p not in version_problem]
        if anatomy_problems:
            hint = ("\n  (pass allow_anatomy_mismatch=True to accept a different anatomy_version)"
                    if version_problem and not allow_anatomy_mismatch else "")
            raise BundleError(f"{source}: manifest.json does not match ramh_rt.anatomy:\n  "
                              + "\n  ".join(anatomy_problems) + hint)
        models: dict[str, ModelSpec] = {}
        for name, entry in manifest["models"].items():
            spec = _model_spec(name, entry, root)
            if not spec.path.is_file():
                raise BundleError(f"{source}: model file {entry['file']} of models.{name} is missing "
                                  f"(looked for {spec.path})")
            if verify:
                actual = sha256_file(spec.path)
                if actual != spec.sha256:
                    raise _ChecksumMismatch(f"model file {entry['file']} (models.{name}) is corrupt or was modified: "
                                            f"sha256 {actual}, manifest expects {spec.sha256}")
            models[name] = spec
        return cls(manifest, root.resolve(), source.resolve(), models, tuple(warnings))

    # ---- accessors ----------------------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """``bundle_id`` of the manifest."""
        return self._manifest["bundle_id"]

    @property
    def version(self) -> str:
        """Semantic version of the bundle (``version`` of the manifest)."""
        return self._manifest["version"]

    @property
    def anatomy_version(self) -> str:
        """The anatomy version the models were trained with."""
        return self._manifest["anatomy_version"]

    @property
    def manifest(self) -> dict[str, Any]:
        """A deep copy of the parsed manifest (editing it changes nothing in the bundle)."""
        return copy.deepcopy(self._manifest)

    @property
    def model_names(self) -> tuple[str, ...]:
        """Roles of the models in the bundle, e.g. ``("bones", "joints", "global")``."""
        return tuple(self._models)

    def has_model(self, name: str) -> bool:
        """True when the bundle holds the model ``name`` (``"bones"``, ``"joints"``, ``"global"``)."""
        return name in self._models

    def model(self, name: str) -> ModelSpec:
        """The :class:`ModelSpec` of model ``name``.

        Raises:
            BundleError: the bundle holds no such model (the message lists the ones it holds).
        """
        try:
            return self._models[name]
        except KeyError:
            raise BundleError(f"bundle {self.id} has no model {name!r}; it holds: "
                              f"{', '.join(self._models)}") from None

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary for ``ramh info`` and provenance records.

        Keys: ``id``, ``version``, ``schema_version``, ``created``, ``anatomy_version``, ``description``,
        ``clinical_use``, ``training_data``, ``path``, ``source``, ``models`` (per role: ``task``, ``file``,
        ``sha256``, ``precision``, ``opset``, ``parameters``, ``inputs``, ``outputs`` in manifest form),
        ``metrics``, ``warnings``.
        """
        m = self._manifest
        return {
            "id": self.id, "version": self.version, "schema_version": m["schema_version"],
            "created": m["created"], "anatomy_version": m["anatomy_version"],
            "description": m.get("description"), "clinical_use": m.get("clinical_use"),
            "training_data": copy.deepcopy(m["training_data"]),
            "path": str(self.path), "source": str(self.source),
            "models": {name: {"task": s.task, "file": s.path.name, "sha256": s.sha256, "precision": s.precision,
                              "opset": s.opset, "parameters": s.parameters,
                              "inputs": [t.to_manifest() for t in s.inputs],
                              "outputs": [t.to_manifest() for t in s.outputs]}
                       for name, s in self._models.items()},
            "metrics": copy.deepcopy(m.get("metrics", {})),
            "warnings": list(self.warnings),
        }

    def __repr__(self) -> str:
        return f"Bundle(id={self.id!r}, version={self.version!r}, models={list(self._models)}, path={str(self.path)!r})"


class _ChecksumMismatch(Exception):
    pass


# ---------------------------------------------------------------------------------------------------------------------
# Locations
# ---------------------------------------------------------------------------------------------------------------------

def default_cache_dir() -> Path:
    """Cache root of ramh_rt: ``$RAMH_CACHE_DIR``, else ``$XDG_CACHE_HOME/ramh_rt``, else ``~/.cache/ramh_rt``.

    The directory is not created here.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ramh_rt"


def default_bundle_candidates() -> list[Path]:
    """Where the default bundle is looked for, in order: inside the installed package, then in a source checkout."""
    package_dir = Path(__file__).resolve().parent
    return [package_dir / "models" / DEFAULT_BUNDLE_NAME,
            package_dir.parent.parent / "models" / DEFAULT_BUNDLE_NAME]


def _resolve_source(path: str | os.PathLike[str] | None) -> Path:
    if path is not None:
        p = Path(os.fspath(path)).expanduser()
        if not p.exists():
            raise BundleError(f"{p}: no such bundle (directory or .zip)")
        return p
    env = os.environ.get(BUNDLE_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.exists():
            raise BundleError(f"${BUNDLE_ENV}={env}: no such bundle (directory or .zip)")
        return p
    candidates = default_bundle_candidates()
    for c in candidates:
        if (c / "manifest.json").is_file():
            return c
    raise BundleError("no default model bundle found (looked in " + ", ".join(str(c) for c in candidates)
                      + "). Install a ramh-rt wheel that ships one, pass a bundle path (directory or .zip), set "
                      f"${BUNDLE_ENV}, or train and export one with the training package (ramh-train, see README).")


# ---------------------------------------------------------------------------------------------------------------------
# Manifest checks
# ---------------------------------------------------------------------------------------------------------------------

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


def validate_manifest(manifest: Any) -> list[str]:
    """Problems of a parsed manifest against schema v1, each as ``"<field path>: <problem>"``; empty when valid.

    Mirrors ``schemas/bundle_manifest.schema.json`` (required fields, types, enums, patterns, ranges) without a
    jsonschema dependency; field paths look like ``models.bones.inputs[0].shape[1]``. Semantic checks against the
    anatomy are in :func:`check_anatomy`.
    """
    v = _Validator()
    if not v.obj(manifest, "manifest"):
        return v.problems
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
    td = manifest.get("training_data")
    if "training_data" in manifest and v.obj(td, "training_data"):
        v.required(td, ("kind",), "training_data")
        v.enum(td, "kind", "training_data", ("synthetic-phantoms", "ram-h1200", "mixed", "other"))
        v.string(td, "description", "training_data")
        v.string_list(td, "commands", "training_data")
    if "metrics" in manifest:
        v.obj(manifest["metrics"], "metrics")
    models = manifest.get("models")
    if "models" in manifest and v.obj(models, "models"):
        v.required(models, REQUIRED_MODELS, "models")
        for name in models:
            if name not in MODEL_TASKS:
                v.add(f"models.{name}", f"unknown model role (allowed: {', '.join(MODEL_TASKS)})")
        for name in MODEL_TASKS:
            if name in models:
                _validate_model(v, name, models[name])
    if "qc" in manifest:  # the quality-control statistics (ramh_rt.qc owns their format)
        v.problems.extend(qc.manifest_problems(manifest["qc"]))
    return v.problems


def _validate_model(v: "_Validator", name: str, m: Any) -> None:
    path = f"models.{name}"
    if not v.obj(m, path):
        return
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
                _validate_tensor(v, t, f"{path}.{key}[{i}]")
    if "parity" in m:
        v.obj(m["parity"], f"{path}.parity")
    if name == "bones":
        v.required(m, ("classes", "preprocess", "postprocess"), path)
        v.string_list(m, "classes", path, min_items=1)
        pre = m.get("preprocess")
        if "preprocess" in m and v.obj(pre, f"{path}.preprocess"):
            pp = f"{path}.preprocess"
            v.required(pre, ("input_hw", "window", "coord_channels", "antialias"), pp)
            v.int_pair(pre, "input_hw", pp, minimum=16)
            if "window" in pre:
                _validate_window(v, pre["window"], f"{pp}.window")
            v.boolean(pre, "coord_channels", pp)
            v.boolean(pre, "antialias", pp)
        post = m.get("postprocess")
        if "postprocess" in m and v.obj(post, f"{path}.postprocess"):
            pp = f"{path}.postprocess"
            v.required(post, ("mode", "threshold", "keep", "min_area", "fill_holes"), pp)
            v.enum(post, "mode", pp, ("multilabel", "multiclass"))
            v.number(post, "threshold", pp)
            keep = post.get("keep")
            if "keep" in post and v.obj(keep, f"{pp}.keep"):
                for cls_name, how in keep.items():
                    if how not in ("largest", "all"):
                        v.add(f"{pp}.keep.{cls_name}", f"must be 'largest' or 'all', got {how!r}")
            v.integer(post, "min_area", pp, minimum=0)
            v.boolean(post, "fill_holes", pp)
    elif name == "joints":
        v.required(m, ("areas", "roi", "be_classes", "jsn_classes"), path)
        v.string_list(m, "areas", path)
        roi = m.get("roi")
        if "roi" in m and v.obj(roi, f"{path}.roi"):
            rp = f"{path}.roi"
            v.required(roi, ("size", "scale", "window"), rp)
            v.int_pair(roi, "size", rp, minimum=16)
            v.number(roi, "scale", rp)
            if "window" in roi:
                _validate_window(v, roi["window"], f"{rp}.window")
        v.integer(m, "be_classes", path, minimum=2)
        v.integer(m, "jsn_classes", path, minimum=2)
        v.number(m, "erosion_threshold", path)
    else:  # global
        v.required(m, ("preprocess", "severity_classes", "target"), path)
        if "preprocess" in m:
            v.obj(m["preprocess"], f"{path}.preprocess")
        v.string_list(m, "severity_classes", path)
        v.string(m, "target", path)


def _validate_tensor(v: "_Validator", t: Any, path: str) -> None:
    if not v.obj(t, path):
        return
    v.required(t, ("name", "shape", "dtype"), path)
    v.string(t, "name", path)
    if "shape" in t and v.array(t["shape"], f"{path}.shape"):
        for i, d in enumerate(t["shape"]):
            if d == "N" and isinstance(d, str):
                continue
            if not (_is_integer(d) and d >= 1):
                v.add(f"{path}.shape[{i}]", f"must be a positive integer or \"N\" (dynamic batch), got {d!r}")
    v.enum(t, "dtype", path, TENSOR_DTYPES)


def _validate_window(v: "_Validator", w: Any, path: str) -> None:
    if not v.obj(w, path):
        return
    v.required(w, ("percentiles", "mean", "std"), path)
    if "percentiles" in w and v.array(w["percentiles"], f"{path}.percentiles", min_items=2, max_items=2):
        for i, x in enumerate(w["percentiles"]):
            if not _is_number(x):
                v.add(f"{path}.percentiles[{i}]", f"must be a number, got {x!r}")
    v.number(w, "mean", path)
    if v.number(w, "std", path) and "std" in w and not w["std"] > 0:
        v.add(f"{path}.std", f"must be > 0, got {w['std']!r}")


def check_anatomy(manifest: dict[str, Any]) -> list[str]:
    """Problems of a schema-valid manifest against :mod:`ramh_rt.anatomy`, each as ``"<field path>: <problem>"``.

    Checks: ``anatomy_version`` equals :data:`ramh_rt.anatomy.ANATOMY_VERSION`; ``models.bones.classes`` is exactly
    :data:`ramh_rt.anatomy.BONE_NAMES` in that order; ``postprocess.keep`` names known classes (or ``*``);
    ``models.joints.areas`` are known, distinct SvdH stems; ``be_classes``/``jsn_classes`` equal the score ranges
    (``BE_MAX + 1``, ``JSN_MAX + 1``); ``models.global.severity_classes`` equals
    :data:`ramh_rt.anatomy.SEVERITY_NAMES`; window percentiles increase within [0, 100]; tensor names are distinct.
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
    for path, window in (("models.bones.preprocess.window", bones["preprocess"]["window"]),
                         ("models.joints.roi.window", joints["roi"]["window"])):
        lo, hi = window["percentiles"]
        if not 0 <= lo < hi <= 100:
            problems.append(f"{path}.percentiles: must satisfy 0 <= low < high <= 100, got [{lo}, {hi}]")
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

    def integer(self, m: dict[str, Any], key: str, parent: str, minimum: int | None = None) -> None:
        if key not in m:
            return
        x, path = m[key], self._join(parent, key)
        if not _is_integer(x):
            self.add(path, f"must be an integer, got {x!r}")
        elif minimum is not None and x < minimum:
            self.add(path, f"must be >= {minimum}, got {x!r}")

    def number(self, m: dict[str, Any], key: str, parent: str) -> bool:
        if key not in m:
            return False
        if not _is_number(m[key]):
            self.add(self._join(parent, key), f"must be a number, got {m[key]!r}")
            return False
        return True

    def boolean(self, m: dict[str, Any], key: str, parent: str) -> None:
        if key in m and not isinstance(m[key], bool):
            self.add(self._join(parent, key), f"must be true or false, got {m[key]!r}")

    def int_pair(self, m: dict[str, Any], key: str, parent: str, minimum: int) -> None:
        if key not in m:
            return
        path = self._join(parent, key)
        if self.array(m[key], path, min_items=2, max_items=2):
            for i, x in enumerate(m[key]):
                if not (_is_integer(x) and x >= minimum):
                    self.add(f"{path}[{i}]", f"must be an integer >= {minimum}, got {x!r}")


def _type_name(x: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(x), type(x).__name__)


def _model_spec(name: str, entry: dict[str, Any], root: Path) -> ModelSpec:
    common = {"task", "file", "sha256", "precision", "opset", "inputs", "outputs", "parameters"}

    def tensors(items: list[dict[str, Any]]) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec(name=t["name"], shape=tuple(None if d == "N" else int(d) for d in t["shape"]),
                                dtype=t["dtype"]) for t in items)

    return ModelSpec(name=name, task=entry["task"], path=(root / entry["file"]).resolve(), sha256=entry["sha256"],
                     precision=entry["precision"], opset=int(entry["opset"]), inputs=tensors(entry["inputs"]),
                     outputs=tensors(entry["outputs"]),
                     config={k: copy.deepcopy(v) for k, v in entry.items() if k not in common},
                     parameters=int(entry["parameters"]) if "parameters" in entry else None)


# ---------------------------------------------------------------------------------------------------------------------
# Files and zips
# ---------------------------------------------------------------------------------------------------------------------

def sha256_file(path: str | os.PathLike[str]) -> str:
    """Lowercase hex sha256 of a file, read in 1 MiB chunks (constant memory).

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _cache_entry(zip_path: Path, cache: Path) -> Path:
    return cache / "bundles" / sha256_file(zip_path)


def _unpack_zip(zip_path: Path, cache: Path) -> Path:
    """Unpack ``zip_path`` into ``<cache>/bundles/<sha256 of the zip>`` once; return the directory with the manifest.

    Unpacking goes to a temporary sibling directory that is renamed into place when complete, so a concurrent
    loader sees either nothing or the whole bundle. Member paths are never trusted: absolute paths, ``..``
    components, backslashes, drive letters and symbolic links are refused, as are archives unpacking to more than
    :data:`MAX_UNPACKED_BYTES`.
    """
    entry = _cache_entry(zip_path, cache)
    marker = entry / ".complete"
    if not marker.is_file():
        parent = entry.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BundleError(f"{zip_path}: cannot create the cache directory {parent} ({e}); set "
                              f"${CACHE_ENV} to a writable directory") from None
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name[:16]}.", dir=parent))
        try:
            _extract_members(zip_path, tmp)
            (tmp / ".complete").write_text(zip_path.name + "\n", encoding="utf-8")
            if not marker.is_file():  # else another process finished the same unpacking meanwhile: use its copy
                if entry.exists():  # an incomplete copy left by a crash: replace it
                    shutil.rmtree(entry, ignore_errors=True)
                try:
                    os.replace(tmp, entry)
                except OSError:
                    if not marker.is_file():  # not a lost race with another process: a real failure
                        raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _content_root(entry, zip_path)


def _extract_members(zip_path: Path, dest: Path) -> None:
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise BundleError(f"{zip_path}: not a readable zip file ({e})") from None
    with zf:
        total = 0
        for info in zf.infolist():
            rel = _safe_member_path(info, zip_path)
            if rel is None:
                continue
            total += info.file_size
            if total > MAX_UNPACKED_BYTES:
                raise BundleError(f"{zip_path}: unpacks to more than {MAX_UNPACKED_BYTES} bytes; refused")
            target = dest.joinpath(*rel.parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            try:
                with zf.open(info) as src, open(target, "xb") as dst:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        written += len(chunk)
                        if written > info.file_size:  # the header lied about the size
                            raise BundleError(f"{zip_path}: member {info.filename} is larger than it declares")
                        dst.write(chunk)
            except FileExistsError:
                raise BundleError(f"{zip_path}: member {info.filename} appears twice") from None
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
                raise BundleError(f"{zip_path}: cannot unpack member {info.filename} ({e})") from None
            except RuntimeError as e:  # encrypted members
                raise BundleError(f"{zip_path}: cannot unpack member {info.filename} ({e})") from None


def _safe_member_path(info: zipfile.ZipInfo, zip_path: Path) -> PurePosixPath | None:
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise BundleError(f"{zip_path}: member {name!r} is a symbolic link; refused")
    if "\\" in name or "\x00" in name or re.match(r"^[A-Za-z]:", name) or name.startswith("/"):
        raise BundleError(f"{zip_path}: unsafe member path {name!r} (absolute, drive or backslash); refused")
    rel = PurePosixPath(name)
    if any(part == ".." for part in rel.parts):
        raise BundleError(f"{zip_path}: unsafe member path {name!r} (leaves the archive with '..'); refused")
    parts = [p for p in rel.parts if p not in ("", ".")]
    if not parts:
        return None
    if parts[0] == "__MACOSX":  # resource forks added by macOS's archiver
        return None
    return PurePosixPath(*parts)


def _content_root(entry: Path, zip_path: Path) -> Path:
    if (entry / "manifest.json").is_file():
        return entry
    subdirs = [d for d in entry.iterdir() if d.is_dir()]
    if len(subdirs) == 1 and (subdirs[0] / "manifest.json").is_file():
        return subdirs[0]
    raise BundleError(f"{zip_path}: no manifest.json at the root of the zip or in its single top-level folder")


__all__ = ["Bundle", "ModelSpec", "TensorSpec", "read_manifest", "validate_manifest", "check_anatomy", "sha256_file",
           "default_cache_dir", "default_bundle_candidates", "SUPPORTED_SCHEMA_VERSIONS", "MODEL_TASKS",
           "REQUIRED_MODELS", "TENSOR_DTYPES", "BUNDLE_ENV", "CACHE_ENV"]
