"""Benchmark of ramh_rt.ops.quantify_erosions against what a user would otherwise write for the same job.

The job: 16 joint ROIs of 256 x 256 (the SvdH erosion areas of one hand), float32 erosion probabilities and two
anchor-bone masks per ROI -> per ROI eroded pixels (ROI, image, mm²), bone ∪ erosion pixels, eroded fraction, lesion
count (8-connected, >= 4 pixels), largest lesion and mean probability.

Alternatives, timed back to back on the same input in the same run:
* ``numpy+scipy``: per ROI numpy counts and ``scipy.ndimage.label`` (8-connected) + ``np.bincount`` for lesions;
* ``opencv``: per ROI numpy counts and ``cv2.connectedComponentsWithStats`` for lesions.

``ratio_vs_best_alternative`` = this row's median / the fastest alternative's median in the same run (< 1: faster).
Run as a script for a table: ``python benchmarks/bench_quantify.py [cpu|cuda]``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

N, K, S = 16, 2, 256
MIN_LESION = 4


def synthetic_rois(seed: int = 0):
    """Erosion probability maps with a few notches each at the bone margin, two bone masks per ROI, boxes, spacing."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    ero = np.zeros((N, S, S), np.float32)
    bone = np.zeros((N, K, S, S), np.uint8)
    for i in range(N):
        bone[i, 0] = ((yy - 0.3 * S) ** 2 / (0.25 * S) ** 2 + (xx - 0.5 * S) ** 2 / (0.3 * S) ** 2) < 1
        bone[i, 1] = ((yy - 0.75 * S) ** 2 / (0.22 * S) ** 2 + (xx - 0.5 * S) ** 2 / (0.28 * S) ** 2) < 1
        for _ in range(rng.integers(0, 5)):
            cy, cx, r = rng.uniform(0.2, 0.8) * S, rng.uniform(0.2, 0.8) * S, rng.uniform(3, 20)
            ero[i] = np.maximum(ero[i], np.clip(1.2 - ((yy - cy) ** 2 + (xx - cx) ** 2) / r**2, 0, 1))
    ero = np.clip(ero + rng.uniform(0, 0.3, ero.shape).astype(np.float32) * (ero > 0), 0, 1).astype(np.float32)
    boxes = np.column_stack([rng.uniform(200, 800, N), rng.uniform(200, 800, N), rng.uniform(60, 120, N),
                             rng.uniform(60, 120, N), rng.uniform(-30, 30, N)]).astype(np.float32)
    return ero, bone, boxes, 0.1


def _table_row(e, b_union, probs, box, spacing, lesion_sizes):
    scale = (box[2] / S) * (box[3] / S)
    n_e, n_b = int(e.sum()), int(b_union.sum())
    lesions = lesion_sizes[lesion_sizes >= MIN_LESION]
    return (n_e, n_e * scale, n_e * scale * spacing**2, n_b, n_b * scale, n_e / n_b if n_b else 0.0, len(lesions),
            int(lesions.max()) if len(lesions) else 0, float(probs[e].mean()) if n_e else float("nan"))


def alt_scipy(ero, bone, boxes, spacing):
    from scipy import ndimage as ndi

    eight = np.ones((3, 3), bool)
    rows = []
    for i in range(N):
        e = ero[i] >= 0.5
        lab, n = ndi.label(e, structure=eight)
        rows.append(_table_row(e, bone[i].any(axis=0) | e, ero[i], boxes[i], spacing, np.bincount(lab.ravel())[1:]))
    return rows


def alt_opencv(ero, bone, boxes, spacing):
    import cv2

    rows = []
    for i in range(N):
        e = ero[i] >= 0.5
        n, _, stats, _ = cv2.connectedComponentsWithStats(e.view(np.uint8), connectivity=8)
        rows.append(_table_row(e, bone[i].any(axis=0) | e, ero[i], boxes[i], spacing, stats[1:, cv2.CC_STAT_AREA]))
    return rows


def run(device: str = "cpu") -> list[dict]:
    from ramh_rt import DeviceArray
    from ramh_rt.ops import quantify_erosions

    harness.check_device(device)
    ero, bone, boxes, spacing = synthetic_rois()
    op = f"quantify_erosions({N} ROIs, {K} bone masks, min_lesion_px={MIN_LESION})"
    timings = []
    if device == "cpu":
        timings.append(("ramh_rt", "cpu", harness.measure(
            "ramh_rt", lambda: quantify_erosions(ero, bone, boxes, spacing, min_lesion_px=MIN_LESION), runs=20)))
    else:
        d_ero, d_bone = DeviceArray.from_host(ero), DeviceArray.from_host(bone)
        timings.append(("ramh_rt", "cuda", harness.measure(
            "ramh_rt", lambda: quantify_erosions(d_ero, d_bone, boxes, spacing, min_lesion_px=MIN_LESION),
            warmup=5, runs=50)))
    alts = [("numpy+scipy", "cpu", harness.measure("numpy+scipy", lambda: alt_scipy(ero, bone, boxes, spacing))),
            ("opencv", "cpu", harness.measure("opencv", lambda: alt_opencv(ero, bone, boxes, spacing)))]
    return harness.with_ratios([harness.record(op, impl, dev, [N, S, S], t) for impl, dev, t in timings + alts])


if __name__ == "__main__":
    harness.script_main(run)
