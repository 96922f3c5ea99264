"""Model bundles: a directory or .zip holding ``manifest.json`` (schema v1) and the ONNX models it names.

The manifest is written by the training side's export and described by ``ramh_rt/schemas/bundle_manifest.schema.json``.
:meth:`Bundle.load` checks it with :mod:`ramh_rt.manifest` (structure, value ranges, cross-field values, anatomy; no
jsonschema at run time; messages name the field path), then every model file's sha256. A .zip is unpacked once into
a cache directory keyed by the zip's own sha256. The training side's export verifies what it wrote by loading it here.

Example::

    bundle = Bundle.load()                 # the default bundle
    spec = bundle.model("bones")           # ModelSpec: path, inputs, outputs, task config
    spec.config["preprocess"]["input_hw"]  # task-specific settings, as in the manifest
"""
from __future__ import annotations

import copy
import hashlib
import os
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from .errors import BundleError
from .manifest import (MANIFEST_NAME, MODEL_TASKS, REQUIRED_MODELS, SUPPORTED_SCHEMA_VERSIONS, TENSOR_DTYPES,
                       check_anatomy, check_values, read_manifest, validate_manifest)

#: Name of the default bundle directory.
DEFAULT_BUNDLE_NAME = "ramh-default"
#: Environment variable naming a bundle (directory or .zip) to use instead of the default one.
BUNDLE_ENV = "RAMH_BUNDLE"
#: Environment variable naming the cache directory (unpacked zips, TensorRT plans).
CACHE_ENV = "RAMH_CACHE_DIR"
#: Refuse zips that unpack to more than this many bytes (zip bombs).
MAX_UNPACKED_BYTES = 8 * 2 ** 30

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
                manifest is not JSON or not valid (every problem is listed with its field path and value: types,
                value ranges such as an input size or window that cannot work, non-finite numbers); unsupported schema
                version; anatomy version or class lists inconsistent with :mod:`ramh_rt.anatomy`; a model file is
                missing or its sha256 differs (file, expected and actual hash named); a zip is corrupt, holds unsafe
                member paths (absolute, ``..``, links, NUL bytes), a member that is both a file and a folder (``a``
                and ``a/b``) or twice the same member, or unpacks too large; ``path`` contains a NUL byte.
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
        manifest = read_manifest(root / MANIFEST_NAME)
        problems = validate_manifest(manifest)
        if not problems:  # the value checks read fields the structural check guarantees
            problems = check_values(manifest)
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
        raw = os.fspath(path)
        if ("\x00" if isinstance(raw, str) else b"\x00") in raw:  # the OS would refuse it with a nameless ValueError
            raise BundleError(f"{raw!r}: a bundle path cannot contain a NUL byte")
        p = Path(os.fsdecode(raw)).expanduser()
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
        members = [(info, rel) for info in zf.infolist() if (rel := _safe_member_path(info, zip_path)) is not None]
        _check_member_tree(members, zip_path)
        total = 0
        for info, rel in members:
            total += info.file_size
            if total > MAX_UNPACKED_BYTES:
                raise BundleError(f"{zip_path}: unpacks to more than {MAX_UNPACKED_BYTES} bytes; refused")
            target = dest.joinpath(*rel.parts)
            try:
                (target if info.is_dir() else target.parent).mkdir(parents=True, exist_ok=True)
            except OSError as e:  # e.g. two names one case-insensitive file system folds together
                raise BundleError(f"{zip_path}: cannot unpack member {info.filename} ({e})") from None
            if info.is_dir():
                continue
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


def _check_member_tree(members: list[tuple[zipfile.ZipInfo, PurePosixPath]], zip_path: Path) -> None:
    """Refuse a zip whose members cannot all be unpacked side by side: one path twice, or a file that is also a
    folder of another member (``a`` and ``a/b``). Checked before anything is written."""
    files: dict[PurePosixPath, str] = {}
    folders: dict[PurePosixPath, str] = {}
    for info, rel in members:
        if not info.is_dir():
            if rel in files:
                raise BundleError(f"{zip_path}: member {info.filename!r} appears twice")
            files[rel] = info.filename
        else:
            folders.setdefault(rel, info.filename)
        for parent in rel.parents:
            if parent != PurePosixPath("."):
                folders.setdefault(parent, info.filename)
    clash = next((f for f in files if f in folders), None)
    if clash is not None:
        raise BundleError(f"{zip_path}: member {files[clash]!r} is a file, but {folders[clash]!r} uses it as a folder; "
                          "refused")


def _safe_member_path(info: zipfile.ZipInfo, zip_path: Path) -> PurePosixPath | None:
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise BundleError(f"{zip_path}: member {name!r} is a symbolic link; refused")
    if "\\" in name or "\x00" in name or re.match(r"^[A-Za-z]:", name) or name.startswith("/"):
        raise BundleError(f"{zip_path}: unsafe member path {name!r} (absolute, drive, backslash or NUL byte); refused")
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


__all__ = ["Bundle", "ModelSpec", "TensorSpec", "read_manifest", "validate_manifest", "check_values", "check_anatomy",
           "sha256_file", "default_cache_dir", "default_bundle_candidates", "SUPPORTED_SCHEMA_VERSIONS", "MODEL_TASKS",
           "REQUIRED_MODELS", "TENSOR_DTYPES", "MANIFEST_NAME", "BUNDLE_ENV", "CACHE_ENV"]
