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


def write_results(name: str, records: list[dict], out_dir: Path | None = None) -> Path:
    """Write ``records`` with the machine description to ``results/<name>.json`` (atomically) and return the path."""
    out_dir = Path(out_dir or RESULTS_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    payload = {"benchmark": name, "revision": git_revision(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "machine": machine(), "results": records}
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
