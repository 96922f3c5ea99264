"""crop_rois (bilinear, the bench_roi task) against cv2.warpAffine on a busy machine: per-call CPU time, interleaved.

Wall-clock medians (bench_roi.py) are meaningless on a machine whose cores other jobs keep busy: a call is
descheduled, and an OpenMP region waits for its slowest thread. This script times the same task as bench_roi.py
(32 ROIs of 224 x 224 from a 2048 x 2560 uint16 image; the same boxes, the same cv2.warpAffine loop) by the CPU time
of the calling thread (``time.thread_time``), with both implementations on one thread (run with
``OMP_NUM_THREADS=1``; OpenCV is set to one thread here) and their calls interleaved, so that both see the same load.
Each implementation's rows are independent, so one thread's CPU time is a proxy for the work that two cores share.

    OMP_NUM_THREADS=1 python benchmarks/roi_cpu_time.py [runs]

Prints min / 25th percentile / median per call in ms and the ratio ramh_rt / OpenCV of each. To compare two builds
(before / after a change), run it once with each build's ``python/`` first on PYTHONPATH, alternating.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np

try:
    from .bench_roi import ROI, cpu_crop_alternatives, images, joint_boxes
except ImportError:  # run as a script
    from bench_roi import ROI, cpu_crop_alternatives, images, joint_boxes

from ramh_rt.ops import crop_rois


def main(runs: int = 60) -> dict[str, list[float]]:
    """Time both implementations ``runs`` times each, interleaved; returns the per-call CPU times (ms) by name."""
    import cv2

    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("warning: OMP_NUM_THREADS is not 1: ramh_rt's other threads' CPU time is not counted", file=sys.stderr)
    cv2.setNumThreads(1)
    img, _ = images()
    boxes = joint_boxes()
    cv_loop, _ = cpu_crop_alternatives(img, boxes, "bilinear")["cv2.warpAffine per ROI"]
    fns = {"ramh_rt": lambda: crop_rois(img, boxes, (ROI, ROI), "bilinear"), "cv2.warpAffine per ROI": cv_loop}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(runs):
        for name, fn in fns.items():
            t0 = time.thread_time()
            fn()
            times[name].append((time.thread_time() - t0) * 1e3)
    stats = {k: (min(v), float(np.percentile(v, 25)), statistics.median(v)) for k, v in times.items()}
    for k, (lo, p25, med) in stats.items():
        print(f"{k:24s} cpu ms: min {lo:.3f}  p25 {p25:.3f}  median {med:.3f}")
    r = [a / b for a, b in zip(stats["ramh_rt"], stats["cv2.warpAffine per ROI"])]
    print(f"ratio ramh_rt / OpenCV: min {r[0]:.2f}  p25 {r[1]:.2f}  median {r[2]:.2f}")
    return times


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
