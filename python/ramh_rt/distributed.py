"""Whole archives on a Ray cluster: :func:`score` (needs the optional extra ``ramh-rt[ray]``).

Ray Data reads the list of images, ``map_batches`` runs them through a pool of Ray actors, each holding one
:class:`~ramh_rt.pipeline.Analyzer` (models loaded once per worker; one GPU per worker where the cluster has GPUs),
and the rows are written as Parquet. Nothing here schedules work itself: Ray places the actors, streams the batches,
retries lost workers and shows the progress.

Output folder ``out``:

* ``json/<name>[_L|_R].json``: each hand's :meth:`Analysis.to_json`, named as ``ramh analyze`` names its JSON
  (:class:`ramh_rt.fs.OutputNames`, over every input of the call in order: the input folders mirrored, ``~2``... on
  a collision; a folder given alone is the root, as for ``ramh analyze DIR``); a two-hand film gives one per hand.
  The driver names every input before the workers start, so names never depend on which worker scored what;
* ``rows/<run id>/*.parquet``: the rows each run wrote (one row per hand, column ``hand`` "L"/"R" on a two-hand
  film, one error row per failed image: :data:`COLUMNS`);
* ``scores.parquet``: all runs merged (the latest rows of an image replace earlier ones), rewritten atomically at the
  end of every run. :func:`read_scores` reads it.

A failing image (unreadable, not a hand, a model error) is a row with ``status="error"`` and the message, never a
failed job; a failed hand of a two-hand film is an error row beside its other hand's row. A rerun with the same
``out`` skips the images whose rows are all ``ok`` and retries the others, whole (resumable: an interrupted run loses
at most the batches in flight).
"""
from __future__ import annotations

import json
import os
import socket
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from . import anatomy
from .errors import RamhError
from .fs import OutputNames, atomic_output, hand_suffixes, names_root

RA2_COLUMNS: list[str] = anatomy.ra2_columns("L") + anatomy.ra2_columns("R")

#: Columns of a row besides the 62 RA2-DREAM score columns (:data:`RA2_COLUMNS`, LH_ and RH_; the other hand's are
#: null): identity, outcome, totals, provenance and timings.
COLUMNS: tuple[str, ...] = (
    "path", "Patient_ID", "hand", "json", "status", "error", "qc_status", "side", "spacing_mm", "erosion", "jsn", "svdh",
    "expected_svdh", "complete", "global_svdh", "severity", "bundle_id", "bundle_version", "backend", "device",
    "worker", "run_id", "analysis_ms", "wall_ms", "finished_at")


class DistributedError(RamhError, RuntimeError):
    """Ray is not installed or cannot be reached, or the inputs cannot be scored (no images, a Dataset without a
    ``path`` column). The message says what to do."""


def _require_ray():
    try:
        import pyarrow  # noqa: F401
        import ray
    except ImportError as e:
        raise DistributedError(f"ramh_rt.distributed needs Ray Data and pyarrow: pip install 'ramh-rt[ray]' ({e})") \
            from None
    return ray


def _schema():
    import pyarrow as pa

    types = {"spacing_mm": pa.float64(), "expected_svdh": pa.float64(), "global_svdh": pa.float64(),
             "analysis_ms": pa.float64(), "wall_ms": pa.float64(), "finished_at": pa.float64(),
             "erosion": pa.int64(), "jsn": pa.int64(), "svdh": pa.int64(), "complete": pa.bool_()}
    fields = [pa.field(c, types.get(c, pa.string())) for c in COLUMNS]
    fields += [pa.field(c, pa.int64()) for c in RA2_COLUMNS]
    return pa.schema(fields)


def json_names(paths: Sequence[str], json_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> list[str]:
    """The JSON output names of every input of a run, per input a JSON object ``{hand suffix: path relative to
    json_dir}`` (:meth:`ramh_rt.fs.OutputNames.claim_hands` in input order; ``root`` as for
    :class:`~ramh_rt.fs.OutputNames`): the names ``ramh analyze`` gives the same inputs."""
    names = OutputNames(json_dir, paths, root=root)
    out = []
    for p in paths:
        claimed = names.claim_hands(p, ".json")
        out.append(json.dumps({h: os.path.relpath(c, json_dir).replace(os.sep, "/") for h, c in claimed.items()}))
    return out


class _Scorer:
    """One Ray actor: an Analyzer loaded once, called on batches of image paths, returning a pyarrow Table."""

    def __init__(self, bundle, backend: str, device, session_options: dict, json_dir: str | None, spacing_mm,
                 side, run_id: str):
        from .pipeline import Analyzer

        self.analyzer = Analyzer(bundle, backend=backend, device=device, keep_image=False, **session_options)
        self.json_dir = Path(json_dir) if json_dir else None
        self.spacing_mm, self.side, self.run_id = spacing_mm, side, run_id
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict) -> Any:
        import pyarrow as pa

        from .fs import write_atomic
        from .pipeline import AnalysisError

        paths = [str(p) for p in batch["path"]]
        names = [json.loads(str(n)) for n in batch["json_names"]]  # {hand suffix: name}, given by the driver
        rows = []
        start = time.perf_counter()
        results = self.analyzer.iter_batch(paths, spacing_mm=self.spacing_mm, side=self.side, per_hand=True)
        for path, hands, hand_names in zip(paths, results, names):
            base: dict[str, Any] = dict.fromkeys(COLUMNS)
            base.update(dict.fromkeys(RA2_COLUMNS))
            base.update(path=os.path.abspath(path), Patient_ID=Path(path).stem, run_id=self.run_id,
                        worker=self.worker, backend=self.analyzer.backend.name, device=self.analyzer.device_name,
                        bundle_id=self.analyzer.bundle.id, bundle_version=self.analyzer.bundle.version)
            image_rows = []
            try:
                if isinstance(hands, AnalysisError):
                    raise hands.exception
                # One row per hand: a two-hand film gives two rows of the same path (hand "_L", "_R", ...); a
                # failed hand of it is an error row of its own.
                sides = [None if isinstance(h, AnalysisError) else h.meta.side for h in hands]
                for res, suffix in zip(hands, hand_suffixes(sides)):
                    if isinstance(res, AnalysisError):
                        image_rows.append(dict(base, hand=suffix.lstrip("_"), status="error", error=res.error))
                        continue
                    m, t = res.meta, res.totals
                    row = dict(base, hand=suffix.lstrip("_") or None, status="ok", side=m.side,
                               spacing_mm=m.spacing_mm, erosion=t.erosion, jsn=t.jsn, svdh=t.svdh,
                               expected_svdh=t.expected_svdh, complete=t.complete, global_svdh=t.global_svdh,
                               severity=t.severity, analysis_ms=m.timings_ms.get("total"),
                               qc_status=None if res.qc is None else res.qc.status)
                    if m.side in anatomy.SIDES:
                        for col, v in res.to_ra2_csv_row().items():
                            if col != "Patient_ID":
                                row[col] = None if v == "" else int(v)
                    if self.json_dir is not None:
                        name = hand_names[suffix]
                        write_atomic(self.json_dir / name, res.to_json())
                        row["json"] = name
                    image_rows.append(row)
            except Exception as e:  # noqa: BLE001 - one image's failure is its row, never the job's
                image_rows = [dict(base, status="error", error=f"{type(e).__name__}: {e}")]
            now, finished = time.perf_counter(), time.time()
            for row in image_rows:  # the rows of one image share its finish time: together they replace older ones
                row["wall_ms"] = (now - start) * 1e3  # this image's share of the batch, decode overlap included
                row["finished_at"] = finished
            start = now
            rows.extend(image_rows)
        return pa.Table.from_pylist(rows, schema=_schema())


@dataclass
class ScoreReport:
    """What one :func:`score` call did.

    Attributes:
        out: the output folder.
        scores_path: ``out/scores.parquet`` (all runs merged).
        inputs: images given; skipped: of those, already scored ``ok`` by an earlier run; scored: rows written by
            this run; failed: of those, error rows.
        workers: actors used; backend: requested backend; num_gpus_per_worker: GPUs per actor (0 on CPU).
        wall_s: seconds of this call, Ray start-up excluded; images_per_s: scored / wall_s.
    """

    out: Path
    scores_path: Path
    inputs: int
    skipped: int
    scored: int
    failed: int
    workers: int
    backend: str
    num_gpus_per_worker: float
    wall_s: float
    images_per_s: float


def _paths(inputs) -> list[str]:
    from .fs import expand_image_paths  # the one folder expansion (recursive, image suffixes)

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    return [os.path.abspath(str(p)) for p in expand_image_paths([str(p) for p in inputs])]


def read_scores(out: str | os.PathLike, *, merged_only: bool = True):
    """The scores of an output folder as a pyarrow Table, one row per hand (per image for an error).

    ``merged_only``: read ``scores.parquet`` (what the last finished run merged); False: merge every run's rows now
    (also those of an interrupted run). Raises FileNotFoundError when there is nothing to read.
    """
    _require_ray()
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out = Path(out)
    if merged_only:
        return pq.read_table(out / "scores.parquet")
    files = sorted((out / "rows").rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no rows under {out / 'rows'}")
    tables = []
    for f in files:
        try:
            tables.append(pq.read_table(f, schema=_schema()))
        except (OSError, pa.ArrowInvalid) as e:  # a file an interrupted run left half written: its images rerun
            warnings.warn(f"ramh_rt.distributed: skipping unreadable {f}: {e}", RuntimeWarning, stacklevel=2)
    if not tables:
        raise FileNotFoundError(f"no readable rows under {out / 'rows'}")
    table = pa.concat_tables(tables)
    # The latest rows of each image win (a retried failure replaces its error row; a two-hand film's two rows share
    # one finish time and stay together).
    table = table.sort_by([("path", "ascending"), ("finished_at", "descending"), ("hand", "ascending")])
    paths = table.column("path").to_pylist()
    finished = table.column("finished_at").to_pylist()
    keep, latest = [], None
    for i, p in enumerate(paths):
        if i == 0 or paths[i - 1] != p:
            latest = finished[i]
        if finished[i] == latest:
            keep.append(i)
    return table.take(pa.array(keep, pa.int64())) if keep else table.filter(pc.equal(table["path"], ""))


def _done(out: Path) -> list[str]:
    if not (out / "rows").exists():
        return []
    try:
        t = read_scores(out, merged_only=False)
    except FileNotFoundError:
        return []
    rows = list(zip(t.column("path").to_pylist(), t.column("status").to_pylist()))
    failed = {p for p, s in rows if s != "ok"}  # a two-hand film with one failed hand is redone whole
    return [p for p, s in rows if s == "ok" and p not in failed]


def score(inputs: str | os.PathLike | Sequence[str | os.PathLike] | Any, out: str | os.PathLike, *,
          num_workers: int | None = None, bundle: str | os.PathLike | None = None, backend: str = "auto",
          device: str | int | None = None, address: str | None = None, num_cpus_per_worker: float = 1.0,
          num_gpus_per_worker: float | None = None, batch_size: int = 4, spacing_mm: float | None = None,
          side: str | None = None, write_json: bool = True, progress: bool = True,
          session_options: dict | None = None) -> ScoreReport:
    """Score many radiographs on a Ray cluster; rows to Parquet, one JSON per image (see the module notes).

    Args:
        inputs: image paths, a folder (recursed for image and DICOM files), or a ``ray.data.Dataset`` with a string
            ``path`` column (paths every worker can read: a shared file system on a multi-node cluster; the paths
            are collected on the driver, which names the outputs of all of them before scoring).
        out: output folder (created; reused by a rerun, which skips images already scored ``ok``).
        num_workers: actors (one Analyzer each). Default: the cluster's GPU count when GPU workers are used, else
            the cluster's CPUs divided by ``num_cpus_per_worker``.
        bundle / backend / device: as for :class:`~ramh_rt.pipeline.Analyzer` (the bundle path must be readable on
            every node). With ``backend="auto"`` on CPU workers the backend is ONNX Runtime CPU. Leave ``device``
            None on GPU workers: Ray makes each worker's own GPU its device 0.
        address: Ray cluster to connect to when Ray is not initialised yet (``"auto"``, ``"ray://host:10001"``);
            None starts a local cluster. A cluster this call starts is shut down at its end.
        num_cpus_per_worker: CPUs reserved per actor (and ONNX Runtime's intra-op threads on CPU workers).
        num_gpus_per_worker: GPUs per actor; default 1 when the cluster has GPUs and the backend is not a CPU one,
            else 0. Fractions share a GPU between actors.
        batch_size: images per ``map_batches`` call (bounded memory: a radiograph is ~10 MB decoded).
        spacing_mm / side: for inputs that carry none (as in ``Analyzer.analyze``).
        write_json: also write each image's Analysis JSON under ``out/json``.
        progress: Ray Data's progress bars and a summary line on stderr.
        session_options: extra backend session options passed to every Analyzer.

    Returns:
        :class:`ScoreReport`.

    Raises:
        DistributedError: Ray/pyarrow missing, no input images, a Dataset without a ``path`` column.
        ValueError: ``num_workers``, ``batch_size`` or a resource argument out of range.
    """
    ray = _require_ray()
    import ray.data

    if num_workers is not None and (isinstance(num_workers, bool) or not isinstance(num_workers, int)
                                    or num_workers < 1):
        raise ValueError(f"num_workers must be an int >= 1 or None, got {num_workers!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not num_cpus_per_worker > 0 or (num_gpus_per_worker is not None and num_gpus_per_worker < 0):
        raise ValueError(f"num_cpus_per_worker must be > 0 and num_gpus_per_worker >= 0, got "
                         f"{num_cpus_per_worker!r}, {num_gpus_per_worker!r}")
    is_dataset = isinstance(inputs, ray.data.Dataset)
    root = None
    if not is_dataset:
        paths = _paths(inputs)
        if not paths:
            raise DistributedError(f"no image files in {inputs!r}")
        root = names_root([inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_dir = out / "json"
    if write_json:
        json_dir.mkdir(exist_ok=True)
    started = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
        started = True
    ctx = ray.data.DataContext.get_current()
    bars = ctx.enable_progress_bars  # the caller's setting, restored below
    try:
        t0 = time.perf_counter()
        ctx.enable_progress_bars = bool(progress)
        done = set(_done(out))
        if is_dataset:
            if "path" not in (inputs.schema().names or []):
                raise DistributedError(f"a Dataset to score needs a 'path' column, it has {inputs.schema().names}")
            # The paths come to the driver: every input is named before the workers start (one naming, no
            # collision between workers), and the inputs already done are left out here.
            # A path listed twice is scored once (as a folder or a list: expand_image_paths drops repeats).
            paths = list(dict.fromkeys(os.path.abspath(str(r["path"]))
                                       for r in inputs.select_columns(["path"]).iter_rows()))
        n_inputs = len(paths)
        names = json_names(paths, json_dir, root) if write_json else ["{}"] * n_inputs
        todo = [(p, n) for p, n in zip(paths, names) if p not in done]
        resources = ray.cluster_resources()
        cpu_backend = backend in ("onnxruntime-cpu",)
        gpus = float(num_gpus_per_worker) if num_gpus_per_worker is not None else (
            1.0 if resources.get("GPU", 0) >= 1 and not cpu_backend else 0.0)
        if num_workers is None:
            num_workers = max(1, int(resources.get("GPU", 0) // gpus) if gpus else
                              int(resources.get("CPU", 1) // num_cpus_per_worker))
        num_workers = max(1, min(num_workers, len(todo)))  # an idle actor would only load models
        # Blocks of about one batch (capped), so that every worker gets some from the start.
        blocks = max(1, min(-(-len(todo) // batch_size), 16 * num_workers))
        ds = ray.data.from_items([{"path": p, "json_names": n} for p, n in todo],
                                 override_num_blocks=blocks) if todo else None
        opts = dict(session_options or {})
        run_backend = backend
        if gpus == 0:
            run_backend = "onnxruntime-cpu" if backend == "auto" else backend
            if run_backend == "onnxruntime-cpu":
                opts.setdefault("intra_op_threads", max(1, int(num_cpus_per_worker)))
        run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        scored = failed = 0
        if ds is not None:
            result = ds.map_batches(
                _Scorer, batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=num_workers),
                num_cpus=num_cpus_per_worker,
                num_gpus=gpus or None, batch_format="numpy", udf_modifying_row_count=True,
                fn_constructor_kwargs=dict(bundle=None if bundle is None else str(bundle), backend=run_backend,
                                           device=device, session_options=opts,
                                           json_dir=str(json_dir) if write_json else None, spacing_mm=spacing_mm,
                                           side=side, run_id=run_id))
            result.write_parquet(str(out / "rows" / run_id))
        merged = None
        if (out / "rows").exists():
            try:
                merged = read_scores(out, merged_only=False)
            except FileNotFoundError:
                merged = None
        if merged is not None:
            import pyarrow.compute as pc
            import pyarrow.parquet as pq

            this_run = merged.filter(pc.equal(merged["run_id"], run_id))
            scored = len(set(this_run["path"].to_pylist()))  # images (a two-hand film has a row per hand)
            failed = len(set(this_run.filter(pc.equal(this_run["status"], "error"))["path"].to_pylist()))
            with atomic_output(out / "scores.parquet") as f:
                pq.write_table(merged, f)
        wall = time.perf_counter() - t0
        report = ScoreReport(out=out, scores_path=out / "scores.parquet", inputs=n_inputs,
                             skipped=n_inputs - len(todo), scored=scored,
                             failed=failed, workers=num_workers, backend=run_backend, num_gpus_per_worker=gpus,
                             wall_s=wall, images_per_s=scored / wall if wall > 0 else 0.0)
        if progress:
            import sys

            print(f"ramh_rt.distributed: {report.scored} scored ({report.failed} failed), {report.skipped} already "
                  f"done, {report.workers} worker(s), {report.images_per_s:.2f} images/s -> {report.scores_path}",
                  file=sys.stderr)
        return report
    finally:
        ctx.enable_progress_bars = bars
        if started:
            ray.shutdown()


__all__ = ["COLUMNS", "DistributedError", "RA2_COLUMNS", "ScoreReport", "json_names", "read_scores", "score"]
