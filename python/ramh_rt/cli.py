"""``ramh``: the command line of ramh_rt.

    ramh analyze PATH... [--out DIR] [--json] [--overlay] [--csv] [--sample]   analyse radiographs
    ramh analyze PATH... --out DIR --ray [ADDRESS]                            the same on a Ray cluster (Parquet)
    ramh bench [--backend NAME|all] [--runs N]                                latency and throughput per stage
    ramh build-engine [--precision fp16|fp32|int8]                            prebuild TensorRT engines
    ramh info [--json]                                                        build, devices, backends, bundle
    ramh compare BASELINE FOLLOWUP --out DIR [--sdc UNITS]                    progression between two visits
    ramh serve [--ae-title RAMH] [--port 11112] [--forward AE@HOST:PORT] [--store DIR]   DICOM node
    ramh watch DIR --out DIR                                                  analyse files exported to a folder

Outputs are written atomically (temporary file + rename); a file that cannot be analysed is reported and skipped
and the exit code is 1 when any failed. Exit code 2 is a usage error.
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
    if args.ray is not None:  # a Ray cluster scores the images: Parquet rows + JSON per image (ramh-rt[ray])
        from .distributed import score

        if out is None:
            print("ramh analyze: --ray needs --out DIR", file=sys.stderr)
            return 2
        if Path(args.ray).exists():  # `--ray IMAGES` took the input folder for the cluster address
            print(f"ramh analyze: --ray got {args.ray!r}, a file or folder; write --ray=ADDRESS or put --ray after "
                  f"the inputs", file=sys.stderr)
            return 2
        rep = score([str(p) for p in paths], out, bundle=args.bundle, backend=args.backend, device=args.device,
                    address=None if args.ray == "local" else args.ray, spacing_mm=args.spacing_mm, side=args.side,
                    progress=not args.quiet)
        return 1 if rep.failed else 0
    if out:
        out.mkdir(parents=True, exist_ok=True)
    analyzer = Analyzer(args.bundle, backend=args.backend, device=args.device)
    failed = 0
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
        if args.dicom_out:
            from .dicom_out import DicomExportError, write_dicom_outputs

            try:
                write_dicom_outputs(res.to_dicom(path, bundle=analyzer.bundle), args.dicom_out, base)
            except DicomExportError as e:
                failed += 1
                print(f"ramh analyze: {path}: no DICOM output: {e}", file=sys.stderr)
        if args.csv:
            if res.meta.side in anatomy.SIDES:
                rows.append(res.to_ra2_csv_row(patient_id=base))
            else:
                print(f"ramh analyze: {path}: hand side unknown, left out of the CSV (pass --side)", file=sys.stderr)
        if not args.quiet and out:
            t = res.totals
            print(f"{path}: SvdH {t.svdh} (erosion {t.erosion}, JSN {t.jsn}), severity {t.severity}, "
                  f"{res.meta.timings_ms['total']:.0f} ms", file=sys.stderr)
    if args.csv and rows:
        header = ["Patient_ID"] + anatomy.ra2_columns("L") + anatomy.ra2_columns("R")
        with atomic_output(out / "ra2_scores.csv", mode="w", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=header, restval="")
            w.writeheader()
            w.writerows(rows)
    if failed:
        print(f"ramh analyze: {failed} of {len(paths)} input(s) failed", file=sys.stderr)
    return 1 if failed else 0


def cmd_compare(args) -> int:
    from .io import write_atomic
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
    p.add_argument("--dicom-out", metavar="DIR", help="also write DICOM SR, SEG and overlay SC: DIR/<name>_<kind>.dcm")
    p.add_argument("--spacing-mm", type=float, help="pixel spacing for inputs that carry none (mm)")
    p.add_argument("--side", choices=["L", "R"], help="hand side for inputs that carry none")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-image summary")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="score on a Ray cluster (ADDRESS e.g. auto or ray://host:10001; none: a local one); writes "
                        "scores.parquet and json/ under --out, resumable")
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
    p.add_argument("--spacing-mm", type=float, help="pixel spacing for inputs that carry none (mm)")
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
        from .errors import RamhError

        if isinstance(e, (RamhError, ValueError, OSError)):
            print(f"ramh {args.cmd}: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
