"""Tiny timing harness shared by the benchmarks: warm-up, repeated runs, median and spread, machine description.

Benchmarks print ratios measured in the same run (alternatives are timed back to back on the same inputs) and write
JSON records under benchmarks/results/.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Timing:
    name: str
    median_ms: float
    min_ms: float
    max_ms: float
    runs: int
    extra: dict = field(default_factory=dict)


def measure(name: str, fn: Callable[[], object], *, warmup: int = 2, runs: int = 10, min_time_s: float = 0.0,
            sync: Callable[[], object] | None = None, **extra) -> Timing:
    """Time ``fn`` (``sync`` is called after each run, e.g. a CUDA synchronise) and return median/min/max in ms."""
    for _ in range(warmup):
        fn()
        if sync:
            sync()
    times = []
    start = time.perf_counter()
    while len(times) < runs or (time.perf_counter() - start) < min_time_s:
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return Timing(name, statistics.median(times), min(times), max(times), len(times), dict(extra))


def cuda_event_measure(name: str, fn: Callable[[], object], *, warmup: int = 5, runs: int = 50, **extra) -> Timing:
    """Device-side timing with CUDA events through CuPy (for sub-millisecond GPU kernels)."""
    import cupy as cp

    for _ in range(warmup):
        fn()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(runs):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop))
    return Timing(name, statistics.median(times), min(times), max(times), runs, dict(extra))


def machine() -> dict:
    """Description of the machine the figures were taken on."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import ramh_rt

        info["ramh_rt"] = ramh_rt.build_info()
        if ramh_rt.cuda_available():
            info["gpu"] = dict(ramh_rt._core.device_properties(0))
    except Exception as e:  # the harness must still describe the machine when the core is missing
        info["ramh_rt"] = f"unavailable: {e}"
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_revision() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True,
                                       stderr=subprocess.DEVNULL).strip()
    except Exception:
        return "unknown"


def check_device(device: str) -> None:
    """Check a benchmark's ``device`` argument before anything is built or timed.

    Raises:
        ValueError: ``device`` is neither ``"cpu"`` nor ``"cuda"``.
        RuntimeError: ``"cuda"`` on a machine (or a core build) where no CUDA device can be used.
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda":
        from ramh_rt import cuda_available

        if not cuda_available():
            raise RuntimeError("no CUDA device is available for the cuda benchmark: run the cpu benchmark")


def cuda_torch():
    """The ``torch`` module when PyTorch is installed and sees a CUDA device (the optional GPU alternative of the
    benchmarks), else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def record(op: str, impl: str, device: str, shape, t: Timing, note: str = "") -> dict:
    """One result row: what was timed (op, impl, device, input shape) and its timing."""
    return {"op": op, "impl": impl, "device": device, "shape": shape, "median_ms": t.median_ms, "min_ms": t.min_ms,
            "max_ms": t.max_ms, "runs": t.runs, "note": note}


def cuda_wall_record(op: str, impl: str, shape, fn: Callable[[], object], sync: Callable[[], object], *,
                     runs: int) -> dict:
    """One "cuda" result row timed by wall clock: ``fn`` run 5 times to warm up, then ``runs`` times, each followed
    by ``sync`` (the library's own device synchronise), so a row is the time per call including the host work."""
    return record(op, impl, "cuda", shape, measure(impl, fn, warmup=5, runs=runs, sync=sync), "wall time per call")


def with_ratios(records: list[dict]) -> list[dict]:
    """Set each row's ``ratio_vs_best_alternative``: its median over the fastest non-ramh_rt row's median for the same
    op and shape, measured in the same run (< 1: ramh_rt is faster); None where nothing else was timed."""
    for key in {(r["op"], str(r["shape"])) for r in records}:
        group = [r for r in records if (r["op"], str(r["shape"])) == key]
        alts = [r["median_ms"] for r in group if not r["impl"].startswith("ramh_rt")]
        best = min(alts) if alts else None
        for r in group:
            r["ratio_vs_best_alternative"] = (r["median_ms"] / best) if best else None
    return records


def print_table(records: list[dict]) -> None:
    """The rows as an aligned text table."""
    cols = ("op", "impl", "device", "shape", "median_ms", "min_ms", "max_ms", "ratio_vs_best_alternative")
    rows = [[f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def script_main(run: Callable[[str], list[dict]]) -> None:
    """``python benchmarks/bench_X.py [cpu|cuda]``: run one family and print its table.

    With OMP_NUM_THREADS set, OpenCV is given the same thread count (ramh_rt and torch follow it anyway), so that
    the comparison is like for like.
    """
    import sys

    if os.environ.get("OMP_NUM_THREADS"):
        import cv2

        cv2.setNumThreads(int(os.environ["OMP_NUM_THREADS"]))
    print_table(run(sys.argv[1] if len(sys.argv) > 1 else "cpu"))


def write_results(name: str, records: list[dict], out_dir: Path | None = None, **extra) -> Path:
    """Write ``records`` with the machine description (and any ``extra`` top-level fields) to
    ``results/<name>.json`` (atomically) and return the path."""
    out_dir = Path(out_dir or RESULTS_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    payload = {"benchmark": name, "revision": git_revision(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "machine": machine(), **extra, "results": records}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default))
    os.replace(tmp, path)
    return path


def _json_default(o):
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)
