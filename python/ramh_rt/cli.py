"""``ramh``: the command line of ramh_rt.

    ramh analyze PATH... [--out DIR] [--json] [--overlay] [--csv] [--sample] [--fail-on review|reject]
    ramh analyze PATH... --out DIR --ray [ADDRESS]                            the same on a Ray cluster (Parquet)
    ramh bench [--backend NAME|all] [--runs N]                                latency and throughput per stage
    ramh build-engine [--precision fp16|fp32|int8]                            prebuild TensorRT engines
    ramh info [--json]                                                        build, devices, backends, bundle
    ramh compare BASELINE FOLLOWUP --out DIR [--sdc UNITS]                    progression between two visits
    ramh serve [--ae-title RAMH] [--port 11112] [--forward AE@HOST:PORT] [--store DIR]   DICOM node
    ramh watch DIR --out DIR                                                  analyse files exported to a folder

ramh analyze writes its outputs under --out mirroring the input folders (a/x.png and b/x.png give a/x.json and
b/x.json), never over an input and never twice to one path in a run; every file is written atomically (temporary
file + rename). ra2_scores.csv is rewritten atomically as results arrive (at most every 2 s, and always at the end
and on SIGINT/SIGTERM), so an interrupted run keeps a row for every image it finished. A file that cannot be
analysed is reported (by name) and skipped. Each result's quality-control status is printed (ok / review / reject,
with its reason codes).

Exit codes: 0 every input analysed; 1 some input failed (or another error, printed); 2 usage error; 3 (with
--fail-on review|reject) no input failed but some result's qc status is at least that level, so scripts can stop on
results that need a person; 130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM: the outputs of the images finished
so far are complete.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

from . import anatomy
from .errors import RamhError
from .fs import OutputNames, atomic_output, expand_image_paths, hand_suffixes, names_root, write_atomic
from .qc import STATUSES

#: Exit codes of ``ramh analyze`` (see the module docstring).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_QC, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 3, 130, 143
#: What ``ramh analyze`` calls the CSV it writes under --out.
CSV_NAME = "ra2_scores.csv"
#: Record of the files ``ramh analyze`` wrote in an output folder (one path per line, relative to the folder), so
#: that a later run over a folder that is also its --out does not take them for inputs.
OUTPUTS_RECORD = ".ramh-outputs"
# A rewrite of the whole CSV is O(rows): at most this often, and always at the end or on interruption.
_CSV_REWRITE_S = 2.0


def sample_image_path() -> Path:
    """The bundled sample radiograph (a synthetic phantom hand, never used in training)."""
    from importlib import resources

    return Path(str(resources.files("ramh_rt").joinpath("data/sample_hand_R.png")))


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as printable text: bytes that are not UTF-8 (a Latin-1 ``caf\\xe9_R.png``) shown as ``\\xe9``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def csv_cell(value):
    """A CSV cell that a spreadsheet will not run as a formula: text starting with ``=``, ``+``, ``-``, ``@``, tab or
    carriage return gets a leading ``'`` (OWASP's advice); numbers pass unchanged."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


class _Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; ``signum`` says which. A BaseException, like KeyboardInterrupt, so that no
    per-image ``except Exception`` (the batch isolates failures that way) takes it for an image's failure."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Signals:
    """SIGINT/SIGTERM become :class:`_Interrupted`, raised at once or, inside :meth:`deferred`, at its end, so that
    one image's outputs (JSON, overlay, CSV row) are written together or not at all."""

    def __init__(self) -> None:
        self.pending: int | None = None
        self.deferring = False
        self.saved: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        if self.deferring:
            self.pending = signum
        else:
            raise _Interrupted(signum)

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self.saved.items():
            signal.signal(sig, old)

    @contextlib.contextmanager
    def deferred(self):
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.pending is not None:
            raise _Interrupted(self.pending)


def _read_outputs_record(out: Path) -> list[Path]:
    try:
        data = (out / OUTPUTS_RECORD).read_bytes()
    except OSError:
        return []
    return [out / os.fsdecode(line) for line in data.split(b"\n") if line]


def _input_paths(args, out: Path | None) -> list[Path]:
    """The inputs: named files and the radiographs of named folders, without this command's own outputs (the
    --out folder when it lies inside an input folder, and the files an earlier run recorded in --out)."""
    exclude: list[Path] = []
    if out is not None:
        exclude += _read_outputs_record(out)
        out_r = out.resolve()
        if any(Path(p).is_dir() and Path(p).resolve() in out_r.parents for p in args.paths):
            exclude.append(out)
    return expand_image_paths(args.paths, exclude=exclude)


def _common(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--bundle", help="model bundle directory or .zip (default: the bundled demo models)")
    ap.add_argument("--backend", default="auto",
                    help="auto (TensorRT, ONNX Runtime CUDA, ONNX Runtime CPU), onnxruntime-cpu, onnxruntime-cuda, "
                         "tensorrt")
    ap.add_argument("--device", help="cpu, cuda or cuda:N (default: the backend's)")


def cmd_analyze(args) -> int:
    from .pipeline import Analyzer, AnalysisError

    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        print(f"ramh analyze: --out {display_path(out)} exists and is not a folder", file=sys.stderr)
        return EXIT_USAGE
    sample = [sample_image_path()] if args.sample else []
    paths = _input_paths(args, out) + sample
    if not paths:
        print("ramh analyze: no input (give image files or folders, or --sample)", file=sys.stderr)
        return EXIT_USAGE
    if not (args.json or args.overlay or args.csv):
        args.json = True
    if out is None and (args.overlay or args.csv or args.dicom_out or len(paths) > 1):
        print("ramh analyze: --out DIR is needed for overlays, CSV, DICOM outputs or several inputs", file=sys.stderr)
        return EXIT_USAGE
    if args.ray is not None:  # a Ray cluster scores the images: Parquet rows + JSON per image (ramh-rt[ray])
        from .distributed import score

        if out is None:
            print("ramh analyze: --ray needs --out DIR", file=sys.stderr)
            return EXIT_USAGE
        # The cluster writes scores.parquet and one JSON per hand; other outputs are the serial run's.
        other = [flag for flag, given in (("--overlay", args.overlay), ("--csv", args.csv), ("--masks", args.masks),
                                          ("--dicom-out", args.dicom_out), ("--fail-on", args.fail_on)) if given]
        if other:
            print(f"ramh analyze: {', '.join(other)} cannot be combined with --ray (it writes scores.parquet and the "
                  "JSON of each hand; the qc status is a column)", file=sys.stderr)
            return EXIT_USAGE
        if Path(args.ray).exists():  # `--ray IMAGES` took the input folder for the cluster address
            print(f"ramh analyze: --ray got {args.ray!r}, a file or folder; write --ray=ADDRESS or put --ray after "
                  f"the inputs", file=sys.stderr)
            return EXIT_USAGE
        rep = score([str(p) for p in paths], out, bundle=args.bundle, backend=args.backend, device=args.device,
                    address=None if args.ray == "local" else args.ray, spacing_mm=args.spacing_mm, side=args.side,
                    progress=not args.quiet)
        return EXIT_FAILED if rep.failed else EXIT_OK
    if out:
        out.mkdir(parents=True, exist_ok=True)
    analyzer = Analyzer(args.bundle, backend=args.backend, device=args.device)
    root = None if sample else names_root(args.paths)
    names = OutputNames(out, paths, flat=sample, root=root) if out else None
    dicom_names = OutputNames(Path(args.dicom_out), paths, flat=sample, root=root) if args.dicom_out else None
    header = ["Patient_ID"] + anatomy.ra2_columns("L") + anatomy.ra2_columns("R")
    rows: list[dict] = []
    written: list[Path] = []
    failed = done = 0
    qc_flagged = 0  # results whose qc status reaches --fail-on
    csv_state = {"rows_written": -1, "at": 0.0}

    def flush_csv(force: bool) -> None:
        if not (args.csv and out) or csv_state["rows_written"] == len(rows):
            return
        if not force and time.monotonic() - csv_state["at"] < _CSV_REWRITE_S:
            return
        with atomic_output(out / CSV_NAME, mode="w", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=header, restval="")
            w.writeheader()
            w.writerows(rows)
        csv_state.update(rows_written=len(rows), at=time.monotonic())

    def record_outputs() -> None:
        if out is None or not written:
            return
        recorded = _read_outputs_record(out)
        known = {p.resolve() for p in recorded}
        new = [p for p in written if p.resolve() not in known]
        if new:
            lines = [os.fsencode(os.path.relpath(p, out)) for p in recorded + new]
            write_atomic(out / OUTPUTS_RECORD, b"\n".join(lines) + b"\n")

    def hand_tags(hands: list) -> list[str]:
        # A hand that failed (an AnalysisError of a two-hand film) has no side.
        return hand_suffixes([None if isinstance(h, AnalysisError) else h.meta.side for h in hands])

    def write_outputs(path: Path, hands: list) -> None:
        # A failed hand of a two-hand film is reported by the caller; the other hand's outputs are written.
        ok = [(h, tag) for h, tag in zip(hands, hand_tags(hands)) if not isinstance(h, AnalysisError)]
        hands, tags = [h for h, _ in ok], [tag for _, tag in ok]
        if names is None:  # one input, JSON to stdout (an array for a film with two hands)
            docs = [res.to_json(include_masks=args.masks) for res in hands]
            print(docs[0] if len(docs) == 1 else "[\n" + ",\n".join(docs) + "\n]")
            return
        # Everything is computed before anything is written, so a failure leaves no partial set of outputs.
        planned = []
        row: dict = {}
        pictures = [res.overlay() if args.overlay else None for res in hands]  # drawn once, also for the SC
        objects: list[list] = [[] for _ in hands]
        if dicom_names is not None:
            from .dicom_out import dataset_bytes, hands_to_dicom, kind_of

            # The film's DICOM header is read once for both hands (hands_to_dicom).
            objects = [[(kind_of(ds), dataset_bytes(ds)) for ds in objs]
                       for objs in hands_to_dicom(hands, path, bundle=analyzer.bundle, overlays=pictures)]
        for res, tag, picture, dicom in zip(hands, tags, pictures, objects):
            text = res.to_json(include_masks=args.masks) if args.json else None
            if args.csv:
                # One row per film: a two-hand film fills both the LH_ and the RH_ columns.
                side = res.meta.side
                if side in anatomy.SIDES and not any(c.startswith(f"{side}H_") for c in row):
                    row.update({k: csv_cell(v) for k, v in
                                res.to_ra2_csv_row(patient_id=display_path(names.key(path))).items()})
                else:
                    print(f"ramh analyze: {display_path(path)}: hand{tag or ''}: side unknown or taken by the other "
                          "hand, left out of the CSV (pass --side)", file=sys.stderr)
            planned.append((tag, text, picture, dicom))
        claims: dict[tuple[int, str], dict[str, Path]] = {}

        def claim(where: OutputNames, suffix: str, tag: str) -> Path:
            # Every hand suffix of a kind of output is claimed at once: the names ramh watch and Ray give too.
            if (id(where), suffix) not in claims:
                claims[id(where), suffix] = where.claim_hands(path, suffix)
            return claims[id(where), suffix][tag]

        for tag, text, picture, dicom in planned:
            if text is not None:
                written.append(write_atomic(claim(names, ".json", tag), text))
            if picture is not None:
                from .overlay import save_png

                written.append(save_png(picture, claim(names, "_overlay.png", tag)))
            for kind, data in dicom:
                written.append(write_atomic(claim(dicom_names, f"_{kind}.dcm", tag), data))
        if row:
            rows.append(row)

    interrupted: _Interrupted | None = None
    results = None
    with _Signals() as signals:
        try:
            results = analyzer.iter_batch([str(p) for p in paths], spacing_mm=args.spacing_mm, side=args.side,
                                          progress=len(paths) > 1 and not args.quiet, per_hand=True)
            for path, hands in zip(paths, results):
                if isinstance(hands, AnalysisError):
                    failed += 1
                    print(f"ramh analyze: {display_path(path)}: {hands.error}", file=sys.stderr)
                    continue
                try:
                    with signals.deferred():
                        write_outputs(path, hands)
                        done += 1
                        flush_csv(force=False)
                except (OSError, ValueError, RamhError) as e:  # this image's outputs fail, the run goes on
                    failed += 1
                    print(f"ramh analyze: {display_path(path)}: output not written: {e}", file=sys.stderr)
                    continue
                hand_failed = False
                for res, tag in zip(hands, hand_tags(hands)):
                    label = f"{display_path(path)}{' [' + tag[1:] + ']' if tag else ''}"
                    if isinstance(res, AnalysisError):  # one hand of a two-hand film: the other's outputs are out
                        hand_failed = True
                        print(f"ramh analyze: {label}: {res.error}", file=sys.stderr)
                        continue
                    if not args.quiet and out:
                        t = res.totals
                        total = (f"SvdH {t.svdh}" if t.svdh is not None else
                                 f"SvdH not reported ({res.meta.field_of_view} in view; areas in view {t.partial_svdh})")
                        print(f"{label}: {total} (erosion {t.erosion}, JSN {t.jsn}), severity {t.severity or 'not reported'}, "
                              f"{res.meta.timings_ms['total']:.0f} ms", file=sys.stderr)
                    # ---- quality control (ramh_rt.qc): the status of every result, and --fail-on
                    if res.qc is not None:
                        if args.fail_on and STATUSES.index(res.qc.status) >= STATUSES.index(args.fail_on):
                            qc_flagged += 1
                        if not args.quiet:
                            codes = ", ".join(r.code for r in res.qc.reasons if r.severity != "info")
                            print(f"{label}: qc {res.qc.status}" + (f" ({codes})" if codes else ""), file=sys.stderr)
                failed += hand_failed
        except _Interrupted as e:
            interrupted = e
        except KeyboardInterrupt:  # a SIGINT that arrived before the handler was set
            interrupted = _Interrupted(signal.SIGINT)
        finally:
            # Runs on interruption too (signals are still caught: a second Ctrl-C cannot cut these writes short).
            signals.deferring = True
            if results is not None:
                results.close()  # stops the decoder thread of iter_batch
            flush_csv(force=True)
            record_outputs()
    if interrupted is None and signals.pending is not None:  # arrived while the last outputs were written
        interrupted = _Interrupted(signals.pending)
    if interrupted is not None:
        print(f"ramh analyze: interrupted ({interrupted}) after {done} of {len(paths)} input(s); their outputs are "
              "complete", file=sys.stderr)
        return EXIT_SIGTERM if interrupted.signum == signal.SIGTERM else EXIT_SIGINT
    if failed:
        print(f"ramh analyze: {failed} of {len(paths)} input(s) failed", file=sys.stderr)
    if qc_flagged and not failed:
        print(f"ramh analyze: {qc_flagged} result(s) with qc status {args.fail_on} or worse (--fail-on)",
              file=sys.stderr)
        return EXIT_QC
    return EXIT_FAILED if failed else EXIT_OK


def cmd_compare(args) -> int:
    """``ramh compare BASELINE FOLLOWUP --out DIR``: progression.json and progression_overlay.png; exit code 0, or 1
    when a film cannot be analysed or the two films cannot be compared (printed)."""
    from .pipeline import Analyzer
    from .progression import DEFAULT_SDC, compare

    analyzer = Analyzer(args.bundle, backend=args.backend, device=args.device)
    a, b = (analyzer.analyze(p, spacing_mm=args.spacing_mm, side=args.side) for p in (args.baseline, args.followup))
    prog = compare(a, b, sdc=DEFAULT_SDC if args.sdc is None else args.sdc)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "progression.json", prog.to_json())
    prog.overlay(out / "progression_overlay.png")
    t = prog.total
    print(f"SvdH change {t.svdh_delta:+d} (erosion {t.erosion_delta:+d}, JSN {t.jsn_delta:+d}), "
          f"{round(100 * t.level)}% interval [{t.interval[0]:+d}, {t.interval[1]:+d}], SDC {t.sdc:g}: "
          f"{'PROGRESSED' if t.progressed else 'no progression beyond the SDC'}; worse: "
          f"{', '.join(prog.worsened) or 'none'}", file=sys.stderr)
    for w in prog.warnings:
        print(f"ramh compare: {w}", file=sys.stderr)
    return 0


def info_record(bundle: str | None = None) -> dict:
    """What ``ramh info --json`` prints: build, CUDA devices, every backend and the bundle.

    Keys: ``ramh_rt`` (version), ``build`` (:func:`ramh_rt.build_info`), ``cuda_available``, ``backends`` (per backend:
    name, available, reason, devices, versions), ``devices`` (only when CUDA is available: name, compute capability,
    memory in bytes...), ``bundle``: :meth:`ramh_rt.bundle.Bundle.describe`, or ``{"broken": reason}`` when the bundle
    does not load (this function never raises for a bad bundle: reporting it is its job).
    """
    import ramh_rt

    from .backends import describe_backends
    from .errors import RamhError

    info: dict = {"ramh_rt": ramh_rt.__version__, "build": ramh_rt.build_info(),
                  "cuda_available": ramh_rt.cuda_available(), "backends": describe_backends()}
    if info["cuda_available"]:
        from . import _core

        info["devices"] = [dict(_core.device_properties(i)) for i in range(_core.cuda_device_count())]
    try:
        from .bundle import Bundle

        info["bundle"] = Bundle.load(bundle).describe()
    except (RamhError, OSError, ValueError) as e:
        info["bundle"] = {"broken": str(e)}
    return info


def _headline_metrics(metrics: dict) -> list[str]:
    """The few figures a person reads first, from a manifest's ``metrics`` (those present; the rest is in --json)."""
    def get(*keys: str):
        d = metrics
        for k in keys:
            if not isinstance(d, dict) or k not in d:
                return None
            d = d[k]
        return d if isinstance(d, (int, float)) and not isinstance(d, bool) else None

    wanted = [("bones mean DSC", ("bones", "mean_dsc_28_bones")), ("erosion DSC", ("erosion", "dsc", "mean")),
              ("BE QWK", ("be", "overall", "qwk")), ("JSN QWK", ("jsn", "overall", "qwk")),
              ("SvdH total PCC", ("totals", "svdh", "pcc")), ("whole-image SvdH PCC", ("totals", "global_svdh", "pcc")),
              ("ROI mean IoU", ("roi", "mean_iou"))]
    return [f"{label} {value:.3g}" for label, keys in wanted if (value := get(*keys)) is not None]


def format_info(info: dict) -> str:
    """A short, readable summary of :func:`info_record` (a dozen lines) for ``ramh info``."""
    b = info["build"]
    lines = [f"ramh_rt {info['ramh_rt']}  (core: {b.get('cxx_compiler') or '?'}, OpenMP "
             f"{'on' if b.get('openmp') else 'off'})"]
    if not b.get("cuda"):
        lines.append("CUDA:     not compiled in (CPU kernels only)")
    else:
        cuda = f"CUDA:     kernels for sm {b.get('cuda_architectures') or '?'} ({b.get('cuda_compiler') or '?'})"
        devices = info.get("devices") or []
        if not info["cuda_available"]:
            cuda += "; no usable CUDA device now"
        lines.append(cuda)
        for d in devices:
            cc = ".".join(str(x) for x in d.get("compute_capability", ()))
            lines.append(f"  cuda:{d.get('id')}  {d.get('name')}  (compute {cc}, "
                         f"{d.get('total_memory', 0) / 2 ** 30:.0f} GiB, {d.get('multiprocessors')} SMs)")
    lines.append("Backends:")
    for be in info["backends"]:
        versions = ", ".join(f"{k} {v}" for k, v in (be.get("versions") or {}).items())
        if be["available"]:
            where = ", ".join(be.get("devices") or [])
            lines.append(f"  {be['name']:<17} available on {where}" + (f"  ({versions})" if versions else ""))
        else:
            lines.append(f"  {be['name']:<17} unavailable: {be['reason']}")
    bundle = info["bundle"]
    if "broken" in bundle:
        first, *rest = str(bundle["broken"]).splitlines() or [""]
        lines.append(f"Bundle:   BROKEN: {first}")
        lines += [f"  {r.strip()}" for r in rest if r.strip()]  # one problem per line, as the loader lists them
    else:
        lines.append(f"Bundle:   {bundle['id']} {bundle['version']}  ({bundle['source']})")
        models = ", ".join(f"{name} ({m['precision']})" for name, m in bundle["models"].items())
        lines.append(f"  models:        {models}")
        if bundle.get("clinical_use"):
            lines.append(f"  clinical use:  {bundle['clinical_use']}")
        training = bundle.get("training_data") or {}
        if training.get("kind"):
            lines.append(f"  trained on:    {training['kind']}")
        metrics = bundle.get("metrics") or {}
        headline = _headline_metrics(metrics)
        if headline:
            on = f" on {metrics['images']} {metrics.get('split', '')} images" if "images" in metrics else ""
            lines.append(f"  metrics{on}: " + ", ".join(headline))
        for w in bundle.get("warnings") or []:
            lines.append(f"  warning:       {w}")
    lines.append("(ramh info --json prints the full record)")
    return "\n".join(lines)


def cmd_info(args) -> int:
    """``ramh info [--json]``: exit code 0, or 1 when the bundle is broken (still reported, as the summary says)."""
    info = info_record(args.bundle)
    print(json.dumps(info, indent=2, default=str) if args.json else format_info(info))
    return 1 if "broken" in info["bundle"] else 0


def _percentile(values: list[float], q: float) -> float:
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(q / 100 * (len(v) - 1)))))
    return v[k]


def cmd_bench(args) -> int:
    import time

    from .backends import backend_names, get_backend
    from .io import load_image
    from .pipeline import Analyzer

    image = load_image(args.image or sample_image_path())
    names = [n for n in backend_names() if get_backend(n).available()[0]] if args.backend == "all" else [args.backend]
    report = []
    for name in names:
        analyzer = Analyzer(args.bundle, backend=name, device=args.device)
        for _ in range(args.warmup):
            analyzer.analyze(image)
        stages: dict[str, list[float]] = {}
        t0 = time.perf_counter()
        for _ in range(args.runs):
            a = analyzer.analyze(image)
            for k, v in a.meta.timings_ms.items():
                stages.setdefault(k, []).append(v)
        wall = time.perf_counter() - t0
        rec = {"backend": analyzer.backend.name, "device": analyzer.device_name, "runs": args.runs,
               "image_shape": list(image.shape), "throughput_images_per_s": args.runs / wall,
               "stages_ms": {k: {"p50": statistics.median(v), "p99": _percentile(v, 99), "mean": statistics.fmean(v)}
                             for k, v in stages.items()}}
        report.append(rec)
        print(f"\n{rec['backend']} on {rec['device']}: {rec['throughput_images_per_s']:.2f} images/s, "
              f"end to end p50 {rec['stages_ms']['total']['p50']:.1f} ms, p99 {rec['stages_ms']['total']['p99']:.1f} ms")
        for k, v in rec["stages_ms"].items():
            print(f"  {k:14s} p50 {v['p50']:9.2f} ms   p99 {v['p99']:9.2f} ms")
    if args.out:
        write_atomic(Path(args.out), json.dumps(report, indent=2))
    return 0


def cmd_build_engine(args) -> int:
    from .backends import get_backend
    from .bundle import Bundle

    backend = get_backend("tensorrt")
    ok, why = backend.available()
    if not ok:
        print(f"ramh build-engine: TensorRT is not available here: {why}", file=sys.stderr)
        return 1
    bundle = Bundle.load(args.bundle)
    for name in bundle.model_names:
        session = backend.create_session(bundle.model(name), args.device, precision=args.precision,
                                         max_batch=args.max_batch)
        print(f"{name}: {getattr(session, 'build_info', '')}")
    return 0


def _spacing_arg(text: str) -> float:
    """--spacing-mm: a finite number of millimetres > 0 (NaN, inf, 0 and negatives are usage errors, exit 2)."""
    from .io import check_spacing

    try:
        return check_spacing(float(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ramh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("analyze", help="analyse hand radiographs (PNG, JPEG, BMP, TIFF, DICOM; folders recursed)")
    p.add_argument("paths", nargs="*", help="image files or folders")
    p.add_argument("--sample", action="store_true", help="also analyse the bundled sample image")
    p.add_argument("--out", help="output folder (JSON, overlays, CSV)")
    p.add_argument("--json", action="store_true", help="write <name>.json (the default output; <name>_L.json and "
                   "<name>_R.json for a film with two hands)")
    p.add_argument("--masks", action="store_true", help="include bone and erosion masks (COCO RLE) in the JSON")
    p.add_argument("--overlay", action="store_true", help="write <name>_overlay.png")
    p.add_argument("--csv", action="store_true", help="write ra2_scores.csv (RA2-DREAM columns, one row per film: "
                   "both hands' columns from a two-hand film)")
    p.add_argument("--spacing-mm", type=_spacing_arg, help="pixel spacing for inputs that carry none (mm)")
    p.add_argument("--dicom-out", metavar="DIR", help="also write DICOM SR, SEG and overlay SC: DIR/<name>_<kind>.dcm")
    p.add_argument("--side", choices=["L", "R"], help="hand side for inputs that carry none")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-image summary")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="score on a Ray cluster (ADDRESS e.g. auto or ray://host:10001; none: a local one); writes "
                        "scores.parquet and json/ under --out, resumable")
    p.add_argument("--fail-on", choices=["review", "reject"],
                   help="exit with 3 when a result's qc status is at least this (and no input failed)")
    _common(p)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("bench", help="latency (p50/p99) per stage and throughput, per backend")
    p.add_argument("--image", help="image to time (default: the bundled sample)")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", help="write the report as JSON")
    _common(p)
    p.set_defaults(func=cmd_bench, backend="all")

    p = sub.add_parser("build-engine", help="build (and cache) TensorRT engines of the bundle's models")
    p.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "int8"])
    p.add_argument("--max-batch", type=int, default=32)
    _common(p)
    p.set_defaults(func=cmd_build_engine)

    p = sub.add_parser("compare", help="progression between a baseline and a follow-up film of the same hand")
    p.add_argument("baseline", help="the earlier radiograph (image or DICOM file)")
    p.add_argument("followup", help="the later radiograph of the same hand")
    p.add_argument("--out", required=True, help="output folder (progression.json, progression_overlay.png)")
    p.add_argument("--sdc", type=float, help="smallest detectable change of the SvdH hand total (default 5.0)")
    p.add_argument("--spacing-mm", type=_spacing_arg, help="pixel spacing for inputs that carry none (mm)")
    p.add_argument("--side", choices=["L", "R"], help="hand side for inputs that carry none")
    _common(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("info", help="build, devices, backends and bundle (a short summary; --json: everything)")
    p.add_argument("--json", action="store_true", help="print the full record as JSON (every bundle metric)")
    _common(p)
    p.set_defaults(func=cmd_info)

    from .node import add_parsers  # serve, watch

    add_parsers(sub, _common)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if getattr(args, "runs", 1) is not None and getattr(args, "runs", 1) < 1:
        ap.error("--runs must be at least 1")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a CLI prints errors, not tracebacks
        if isinstance(e, (RamhError, ValueError, OSError)):
            print(f"ramh {args.cmd}: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
