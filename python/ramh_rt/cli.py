"""``ramh``: the command line of ramh_rt.

    ramh analyze PATH... [--out DIR] [--json] [--overlay] [--csv] [--sample] [--fail-on review|reject]
    ramh bench [--backend NAME|all] [--runs N]                                latency and throughput per stage
    ramh build-engine [--precision fp16|fp32|int8]                            prebuild TensorRT engines
    ramh info                                                                 build, devices, backends, bundle

Outputs are written atomically (temporary file + rename); a file that cannot be analysed is reported and skipped
and the exit code is 1 when any failed. Exit code 2 is a usage error. ``ramh analyze`` prints each result's quality
control status (ok / review / reject, with its reason codes) and, with ``--fail-on review`` (or ``reject``), exits
with 3 when no input failed but at least one result's status is at least that level, so scripts can stop on results
that need a person.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

from . import anatomy

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom"}


def sample_image_path() -> Path:
    """The bundled sample radiograph (a synthetic phantom hand, never used in training)."""
    from importlib import resources

    return Path(str(resources.files("ramh_rt").joinpath("data/sample_hand_R.png")))


def _expand(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out += sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(path)  # missing files are reported per image, not here
    return out


def _common(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--bundle", help="model bundle directory or .zip (default: the bundled demo models)")
    ap.add_argument("--backend", default="auto",
                    help="auto (TensorRT, ONNX Runtime CUDA, ONNX Runtime CPU), onnxruntime-cpu, onnxruntime-cuda, "
                         "tensorrt")
    ap.add_argument("--device", help="cpu, cuda or cuda:N (default: the backend's)")


def cmd_analyze(args) -> int:
    from .io import atomic_output, write_atomic
    from .pipeline import Analyzer, AnalysisError

    paths = _expand(args.paths) + ([sample_image_path()] if args.sample else [])
    if not paths:
        print("ramh analyze: no input (give image files or folders, or --sample)", file=sys.stderr)
        return 2
    if not (args.json or args.overlay or args.csv):
        args.json = True
    out = Path(args.out) if args.out else None
    if out is None and (args.overlay or args.csv or len(paths) > 1):
        print("ramh analyze: --out DIR is needed for overlays, CSV or several inputs", file=sys.stderr)
        return 2
    if out:
        out.mkdir(parents=True, exist_ok=True)
    analyzer = Analyzer(args.bundle, backend=args.backend, device=args.device)
    failed = 0
    qc_flagged = 0  # results whose qc status reaches --fail-on
    rows = []
    names_seen: dict[str, int] = {}
    results = analyzer.iter_batch([str(p) for p in paths], spacing_mm=args.spacing_mm, side=args.side,
                                  progress=len(paths) > 1 and not args.quiet)
    for path, res in zip(paths, results):
        if isinstance(res, AnalysisError):
            failed += 1
            print(f"ramh analyze: {path}: {res.error}", file=sys.stderr)
            continue
        stem = path.stem
        k = names_seen.get(stem, 0)
        names_seen[stem] = k + 1
        base = stem if k == 0 else f"{stem}_{k}"  # two inputs with one stem must not overwrite each other
        if args.json:
            text = res.to_json(include_masks=args.masks)
            if out:
                write_atomic(out / f"{base}.json", text)
            else:
                print(text)
        if args.overlay:
            res.overlay(out / f"{base}_overlay.png")
        if args.csv:
            if res.meta.side in anatomy.SIDES:
                rows.append(res.to_ra2_csv_row(patient_id=base))
            else:
                print(f"ramh analyze: {path}: hand side unknown, left out of the CSV (pass --side)", file=sys.stderr)
        if not args.quiet and out:
            t = res.totals
            print(f"{path}: SvdH {t.svdh} (erosion {t.erosion}, JSN {t.jsn}), severity {t.severity}, "
                  f"{res.meta.timings_ms['total']:.0f} ms", file=sys.stderr)
        # ---- quality control (ramh_rt.qc): the status of every result, and --fail-on
        if res.qc is not None:
            if args.fail_on and _QC_LEVEL[res.qc.status] >= _QC_LEVEL[args.fail_on]:
                qc_flagged += 1
            if not args.quiet:
                codes = ", ".join(r.code for r in res.qc.reasons if r.severity != "info")
                print(f"{path}: qc {res.qc.status}" + (f" ({codes})" if codes else ""), file=sys.stderr)
    if args.csv and rows:
        header = ["Patient_ID"] + anatomy.ra2_columns("L") + anatomy.ra2_columns("R")
        with atomic_output(out / "ra2_scores.csv", mode="w", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=header, restval="")
            w.writeheader()
            w.writerows(rows)
    if failed:
        print(f"ramh analyze: {failed} of {len(paths)} input(s) failed", file=sys.stderr)
    if qc_flagged and not failed:
        print(f"ramh analyze: {qc_flagged} result(s) with qc status {args.fail_on} or worse (--fail-on)",
              file=sys.stderr)
        return 3
    return 1 if failed else 0


_QC_LEVEL = {"ok": 0, "review": 1, "reject": 2}


def cmd_info(args) -> int:
    import ramh_rt

    from .backends import describe_backends

    info = {"ramh_rt": ramh_rt.__version__, "build": ramh_rt.build_info(), "cuda_available": ramh_rt.cuda_available(),
            "backends": describe_backends()}
    if ramh_rt.cuda_available():
        from . import _core

        info["devices"] = [dict(_core.device_properties(i)) for i in range(_core.cuda_device_count())]
    try:
        from .bundle import Bundle

        info["bundle"] = Bundle.load(args.bundle).describe()
    except Exception as e:  # noqa: BLE001 - info reports, it does not fail
        info["bundle"] = f"unavailable: {e}"
    print(json.dumps(info, indent=2, default=str))
    return 0


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
        from .io import write_atomic

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


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ramh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("analyze", help="analyse hand radiographs (PNG, JPEG, BMP, TIFF, DICOM; folders recursed)")
    p.add_argument("paths", nargs="*", help="image files or folders")
    p.add_argument("--sample", action="store_true", help="also analyse the bundled sample image")
    p.add_argument("--out", help="output folder (JSON, overlays, CSV)")
    p.add_argument("--json", action="store_true", help="write <name>.json (the default output)")
    p.add_argument("--masks", action="store_true", help="include bone and erosion masks (COCO RLE) in the JSON")
    p.add_argument("--overlay", action="store_true", help="write <name>_overlay.png")
    p.add_argument("--csv", action="store_true", help="write ra2_scores.csv (RA2-DREAM columns, one row per hand)")
    p.add_argument("--spacing-mm", type=float, help="pixel spacing for inputs that carry none (mm)")
    p.add_argument("--side", choices=["L", "R"], help="hand side for inputs that carry none")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-image summary")
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

    p = sub.add_parser("info", help="build, devices, backends and bundle")
    _common(p)
    p.set_defaults(func=cmd_info)
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
        from .errors import RamhError

        if isinstance(e, (RamhError, ValueError, OSError)):
            print(f"ramh {args.cmd}: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
