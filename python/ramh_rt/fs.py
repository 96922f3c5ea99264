"""File-system helpers shared by the CLI, the overlay writer and the engine caches: atomic output, never
overwriting, image-file discovery, and collision-free output names.

* :func:`write_atomic` / :func:`atomic_output`: a reader sees the old file or the complete new one, never a partial
  one; with ``exclusive=True`` an existing file is never replaced (:class:`FileExistsError` instead).
* :data:`IMAGE_SUFFIXES` and :func:`expand_image_paths`: the one list of radiograph file extensions and the one
  directory expansion (recursive, sorted, deterministic).
* :class:`OutputNames`: stable, unique output paths that mirror the input folders under an output folder, checked
  against the inputs and against every file the run already wrote.

No numpy here: this module only deals with paths and bytes.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path, PurePath
from typing import IO, Iterable, Iterator, Sequence

#: File extensions (lower case) of the radiographs that folders are searched for: PNG, JPEG, BMP, TIFF, DICOM.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom"})

__all__ = ["HAND_SUFFIXES", "IMAGE_SUFFIXES", "OutputNames", "atomic_output", "expand_image_paths", "names_root",
           "write_atomic"]


# ---------------------------------------------------------------------------------------------------------------------
# Atomic output
# ---------------------------------------------------------------------------------------------------------------------

def write_atomic(path: str | os.PathLike[str], data: bytes | bytearray | memoryview | str, *,
                 exclusive: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically: readers see the old file or the complete new one, never a partial one.

    ``str`` data is written as UTF-8. The file is written to a temporary file in the same directory, flushed and
    fsynced, then renamed over ``path`` (``os.replace``); the directory is fsynced where the platform allows. On any
    error the temporary file is removed and ``path`` is left as it was. The new file gets the permissions a plain
    ``open(path, "w")`` would give it (0666 minus the umask), or those of the file it replaces.

    Args:
        path: destination file; its directory must exist.
        data: bytes-like or str (UTF-8).
        exclusive: never replace an existing file: the complete temporary file is hard-linked to ``path``, which
            fails when ``path`` exists (atomic: no window in which another writer's file could be replaced).

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        TypeError: ``data`` is neither bytes-like nor str.
        FileExistsError: ``exclusive`` and ``path`` exists (it is left untouched).
        OSError: the directory does not exist or is not writable, the disk is full...
    """
    if isinstance(data, str):
        payload = data.encode("utf-8")
    elif isinstance(data, (bytes, bytearray, memoryview)):
        payload = bytes(data)
    else:
        raise TypeError(f"data must be bytes or str, got {type(data).__name__}")
    with atomic_output(path, "wb", exclusive=exclusive) as fh:
        fh.write(payload)
    return Path(os.fspath(path))


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], mode: str = "wb", *, encoding: str | None = None,
                  exclusive: bool = False) -> Iterator[IO]:
    """Context manager yielding a file object whose content replaces ``path`` atomically when the block succeeds.

    Example::

        with atomic_output("result.json", "w") as fh:
            json.dump(result, fh)

    Args:
        path: destination file. Its directory must exist.
        mode: ``"wb"`` (binary, default) or ``"w"`` (text).
        encoding: text encoding for ``"w"`` (default UTF-8); must be None for ``"wb"``.
        exclusive: fail with :class:`FileExistsError` instead of replacing an existing ``path`` (checked atomically
            at the end, by hard-linking the finished temporary file; on file systems without hard links by an
            existence check just before the rename).

    The data goes to a temporary file in the destination directory (so the final rename stays on one file system),
    which is flushed, fsynced and renamed over ``path`` when the block exits normally. If the block raises (a
    KeyboardInterrupt included), the temporary file is removed, ``path`` is untouched and the exception propagates.

    Raises:
        ValueError: ``mode`` is not ``"wb"``/``"w"``, or ``encoding`` is given with ``"wb"``.
        FileExistsError: ``exclusive`` and ``path`` exists.
        OSError: from creating, writing or renaming the file.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    if mode == "wb" and encoding is not None:
        raise ValueError("encoding must be None for binary mode 'wb'")
    dest = Path(os.fspath(path))
    directory = dest.parent if str(dest.parent) else Path(".")
    # The temporary name must be valid whatever the destination's name is (it may not be valid UTF-8).
    fd, tmp_name = tempfile.mkstemp(prefix=".ramh-", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        fh = os.fdopen(fd, mode, **({"encoding": encoding or "utf-8", "newline": ""} if mode == "w" else {}))
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _target_mode(dest))
        if exclusive:
            _link_new(tmp, dest)
        else:
            os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(directory)


def _link_new(tmp: Path, dest: Path) -> None:
    """Move the finished ``tmp`` to ``dest`` only if ``dest`` does not exist."""
    try:
        os.link(tmp, dest)  # atomic and fails with FileExistsError when dest exists
    except FileExistsError:
        raise FileExistsError(f"{os.fsdecode(dest)!r} exists; not overwritten") from None
    except OSError:  # no hard links on this file system: best effort
        if os.path.lexists(dest):
            raise FileExistsError(f"{os.fsdecode(dest)!r} exists; not overwritten") from None
        os.replace(tmp, dest)
        return
    tmp.unlink()


def _target_mode(dest: Path) -> int:
    try:
        return stat.S_IMODE(dest.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    # /proc tells the umask without changing it; os.umask() must set one to read it (racy with other threads).
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform (Windows), where the rename is still atomic.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------------

def expand_image_paths(sources: Iterable[str | os.PathLike[str]], *, exclude: Iterable[str | os.PathLike[str]] = (),
                       missing_ok: bool = True) -> list[Path]:
    """Files named in ``sources``, folders expanded recursively to the radiographs they hold.

    A folder contributes its files whose extension (any case) is in :data:`IMAGE_SUFFIXES`, sorted by path; hidden
    entries (names starting with ``.``, e.g. temporary files of an atomic write in progress) are skipped, and so is
    every file inside an ``exclude`` folder or equal to an ``exclude`` file (e.g. the output folder of a run, when it
    lies inside an input folder). A named file is kept whatever its extension (the decoder recognises formats from
    the content).

    Args:
        sources: files and folders, in the order wanted.
        exclude: folders or files to leave out of folder expansion.
        missing_ok: keep a source that does not exist (the caller reports it per image); False raises.

    Returns:
        The paths, in source order, each folder's files sorted; a file reached twice is listed once.

    Raises:
        FileNotFoundError: a source does not exist and ``missing_ok`` is False.
    """
    skip = [_resolved(Path(os.fspath(e))) for e in exclude]

    def excluded(p: Path) -> bool:
        r = _resolved(p)
        return any(r == e or e in r.parents for e in skip)

    out: list[Path] = []
    seen: set[Path] = set()
    for s in sources:
        path = Path(os.fspath(s))
        if path.is_dir():
            found = []
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not excluded(Path(root, d)))
                found += [Path(root, f) for f in files if not f.startswith(".")
                          and os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES and Path(root, f).is_file()
                          and not excluded(Path(root, f))]
            new = sorted(found)
        elif path.exists() or missing_ok:
            new = [path]
        else:
            raise FileNotFoundError(f"input not found: {os.fsdecode(path)!r}")
        for p in new:
            key = _resolved(p)
            if key not in seen:
                seen.add(key)
                out.append(p)
    return out


def _resolved(p: Path) -> Path:
    try:
        return p.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare as given
        return p.absolute()


# ---------------------------------------------------------------------------------------------------------------------
# Output names
# ---------------------------------------------------------------------------------------------------------------------

class OutputNames:
    """Unique, stable output paths for a run over many inputs, mirroring the input folders under ``out_dir``.

    The one naming of outputs: ``ramh analyze``, ``ramh watch`` and Ray scoring (:func:`ramh_rt.distributed.score`)
    all name through it, so one input gets the same names from each over the same inputs.

    Each input gets a *base*: its path relative to ``root`` (default: the deepest folder that holds every input),
    without its extension (``a/x.png``, ``b/x.png``, ``c/x_1.png`` -> ``a/x``, ``b/x``, ``c/x_1``; a single folder
    ``d`` -> ``h`` for ``d/h.png``). Inputs given with ``flat=True`` (e.g. the bundled sample) use their file name
    only. An output is ``out_dir / (base + suffix)``, e.g. suffix ``".json"``, ``"_overlay.png"``, ``"_L.json"`` (one
    result per hand) or ``"_dicom"`` (a folder): any suffix fits. Per-hand outputs are claimed with
    :meth:`claim_hands`, for every hand suffix an input can have (:data:`HAND_SUFFIXES`) at once, so that an input's
    names do not depend on how many hands were found in it.

    :meth:`claim` checks each output path before it is handed out: it must not be an input file of the run, nor a
    path already claimed by this run (for another input or another output). On such a collision the base gets a
    deterministic mark, ``~2``, ``~3``... (``x~2.json``), the first free one. Names depend only on the inputs (their
    order included) and the claims made, so the same run gives the same names. Files that exist from an earlier run
    and are not inputs are replaced (a rerun updates its outputs); writers should still use :func:`write_atomic`
    with ``exclusive=True`` for a file this run must create and :meth:`claim` guarantees it has not written yet.

    Args:
        out_dir: the output folder.
        inputs: every input of the run, in run order (a watcher :meth:`add` s them as they come).
        flat: inputs (a subset of ``inputs``) whose base is their bare file stem.
        root: the folder the bases are relative to: the folder the run was given (``ramh analyze DIR``,
            ``ramh watch DIR``); needed for :meth:`add`. None: the deepest folder holding every input.

    Raises:
        ValueError: an input is not in ``inputs`` (from :meth:`base` / :meth:`claim`); an input outside ``root``.
    """

    def __init__(self, out_dir: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]],
                 flat: Iterable[str | os.PathLike[str]] = (), root: str | os.PathLike[str] | None = None) -> None:
        self.out_dir = Path(os.fspath(out_dir))
        self._inputs = [Path(os.fspath(p)) for p in inputs]
        flat_set = {_resolved(Path(os.fspath(p))) for p in flat}
        resolved = [_resolved(p) for p in self._inputs]
        self._input_files = set(resolved)
        nested = [r for r in resolved if r not in flat_set]
        self._root = None if root is None else _resolved(Path(os.fspath(root)))
        self._root_as_given = None if root is None else Path(os.path.abspath(os.fspath(root)))
        common = Path(os.path.commonpath([str(r.parent) for r in nested])) if nested else None
        self._base: dict[Path, PurePath] = {}
        for p, r in zip(self._inputs, resolved):
            self._base.setdefault(r, PurePath(r.name).with_name(_stem(r.name)) if r in flat_set
                                  else self._relative_base(p, r, self._root or common))
        self._claimed: dict[Path, Path] = {}  # resolved output path -> resolved input it belongs to
        self._claims_of: dict[tuple[Path, str], Path] = {}  # (resolved input, suffix) -> the path claimed
        self._mark: dict[Path, int] = {}  # input -> the collision mark of its first claim (1 = none)

    def _relative_base(self, p: Path, r: Path, root: Path | None) -> PurePath:
        """The base of input ``p`` (resolved: ``r``) relative to ``root``. An input whose resolved path lies outside
        the root folder but that was given inside it (a symlink in a watched folder to a file elsewhere) is named by
        where it lies in the folder as given."""
        as_given = Path(os.path.abspath(p))
        if root is None:
            rel = PurePath(r.name)
        elif r == root or root in r.parents:
            rel = PurePath(os.path.relpath(r, root))
        elif self._root_as_given is not None and self._root_as_given in as_given.parents:
            rel = PurePath(os.path.relpath(as_given, self._root_as_given))
        else:
            raise ValueError(f"input {os.fsdecode(r)!r} is not inside the root folder {os.fsdecode(root)!r}")
        return rel.with_name(_stem(rel.name))

    def add(self, input_path: str | os.PathLike[str]) -> None:
        """Add an input to the run (a watched folder's new file); nothing for an input already in it.

        Raises:
            ValueError: no ``root`` was given (the deepest common folder of a growing set of inputs would move), or
                the input lies outside it.
        """
        r = _resolved(Path(os.fspath(input_path)))
        if r in self._base:
            return
        if self._root is None:
            raise ValueError("OutputNames.add needs the root folder the names are relative to (root=...)")
        self._base[r] = self._relative_base(Path(os.fspath(input_path)), r, self._root)
        self._inputs.append(Path(os.fspath(input_path)))
        self._input_files.add(r)

    def base(self, input_path: str | os.PathLike[str]) -> PurePath:
        """The mirrored base of an input (relative to ``out_dir``, no extension, before collision marks)."""
        r = _resolved(Path(os.fspath(input_path)))
        if r not in self._base:
            raise ValueError(f"{os.fsdecode(os.fspath(input_path))!r} is not an input of this run")
        return self._base[r]

    def claim(self, input_path: str | os.PathLike[str], suffix: str) -> Path:
        """The output path for ``input_path`` with ``suffix``; reserved for it, so no other claim gets it.

        The parent folders are created. Claiming the same (input, suffix) twice is an error: a run writes each
        output once (:meth:`claimed` gives an earlier claim back, e.g. to a watcher redoing a replaced file).

        Args:
            input_path: one of the run's inputs.
            suffix: appended to the base, e.g. ``".json"``, ``"_overlay.png"``, ``"_R.json"``; no path separator.

        Returns:
            The path under ``out_dir``.

        Raises:
            ValueError: unknown input, a suffix with a path separator, or an output claimed twice.
        """
        return self._claim_all(input_path, [suffix])[0]

    def claim_hands(self, input_path: str | os.PathLike[str], suffix: str) -> dict[str, Path]:
        """The output paths of one kind of per-hand output of an input, ``{hand suffix: path}`` for every suffix of
        :data:`HAND_SUFFIXES` (for ``".json"``: ``x.json``, ``x_L.json``, ``x_R.json``, ``x_hand1.json``,
        ``x_hand2.json``), all claimed at once with one collision mark: the paths are the same whatever hands are
        then found (:func:`hand_suffixes` picks the ones written).

        Raises:
            ValueError: as :meth:`claim`.
        """
        return dict(zip(HAND_SUFFIXES, self._claim_all(input_path, [h + suffix for h in HAND_SUFFIXES])))

    def claimed(self, input_path: str | os.PathLike[str], suffix: str) -> Path | None:
        """The path an earlier :meth:`claim` (or :meth:`claim_hands`, with the hand suffix in ``suffix``) gave for
        (``input_path``, ``suffix``), or None."""
        return self._claims_of.get((_resolved(Path(os.fspath(input_path))), suffix))

    def _claim_all(self, input_path: str | os.PathLike[str], suffixes: Sequence[str]) -> list[Path]:
        """Claim ``base + mark + suffix`` for every suffix with the first mark (from the input's own) that frees all."""
        for suffix in suffixes:
            if "/" in suffix or os.sep in suffix or (os.altsep and os.altsep in suffix):
                raise ValueError(f"an output suffix must not hold a path separator, got {suffix!r}")
        owner = _resolved(Path(os.fspath(input_path)))
        base = self.base(input_path)
        for suffix in suffixes:
            if (owner, suffix) in self._claims_of:
                raise ValueError(f"output {suffix!r} of {os.fsdecode(os.fspath(input_path))!r} was already claimed")
        if len(set(suffixes)) != len(suffixes):
            raise ValueError(f"an output suffix is listed twice in {list(suffixes)}")
        k = self._mark.get(owner, 1)  # an input keeps the mark its first output needed, where it can
        while True:
            candidates = [self.out_dir / base.parent / (base.name + ("" if k == 1 else f"~{k}") + s) for s in suffixes]
            keys = [_resolved(c) for c in candidates]
            if all(key not in self._input_files and key not in self._claimed for key in keys):
                break
            k += 1
        self._mark.setdefault(owner, k)
        for suffix, candidate, key in zip(suffixes, candidates, keys):
            self._claimed[key] = owner
            self._claims_of[(owner, suffix)] = candidate
        candidates[0].parent.mkdir(parents=True, exist_ok=True)
        return candidates

    def key(self, input_path: str | os.PathLike[str]) -> str:
        """A unique identifier of the input within the run: its base with the input's collision mark, relative to
        ``out_dir``, with ``/`` separators (e.g. ``"a/x"``, ``"x~2"``); for a CSV's ID column. Claims the empty
        suffix on first use."""
        owner = _resolved(Path(os.fspath(input_path)))
        if (owner, "") not in self._claims_of:
            self.claim(input_path, "")
        k = self._mark[owner]
        base = self.base(input_path)
        return (base.parent / (base.name + ("" if k == 1 else f"~{k}"))).as_posix()

    @property
    def claimed_paths(self) -> list[Path]:
        """Every output path claimed so far (resolved), in claim order."""
        return list(self._claimed)


def names_root(sources: Sequence[str | os.PathLike[str]]) -> Path | None:
    """The ``root`` of :class:`OutputNames` for a run given ``sources`` (files and folders): the folder when one
    folder is given (its tree is mirrored, as ``ramh watch`` mirrors the folder it watches), else None (the deepest
    folder holding every input)."""
    if len(sources) == 1 and Path(os.fspath(sources[0])).is_dir():
        return Path(os.fspath(sources[0]))
    return None


def _stem(name: str) -> str:
    """A file name without its last extension (``x.png`` -> ``x``; a dot file keeps its name)."""
    stem, _ = os.path.splitext(name)
    return stem or name


#: Every output-name suffix :func:`hand_suffixes` can give (a film holds one or two hands).
HAND_SUFFIXES: tuple[str, ...] = ("", "_L", "_R", "_hand1", "_hand2")


def hand_suffixes(sides: Sequence[str | None]) -> list[str]:
    """The output-name suffix of each hand of one film, from the hands' sides in film order: ``[""]`` for a one-hand
    film; ``["_L", "_R"]`` (in the hands' order) for hands of known, different sides; ``["_hand1", "_hand2", ...]``
    when a side is unknown or repeated. Every writer of per-hand outputs (``ramh analyze``, the DICOM node and
    watcher, Ray scoring) names them this way."""
    if len(sides) == 1:
        return [""]
    if None not in sides and len(set(sides)) == len(sides):
        return [f"_{s}" for s in sides]
    return [f"_hand{k + 1}" for k in range(len(sides))]
