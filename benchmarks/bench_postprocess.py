"""Benchmark of ramh_rt.ops.postprocess_masks against what a user would otherwise write for the same job.

The job (RAM-H1200 bone segmentation output): 30-channel 512 x 640 multilabel logits -> per channel threshold at 0,
8-connected components, the largest component per bone channel and all components of the Sesamoid channel,
optionally hole filling, then per instance area, bbox, centroid, orientation, axis lengths and mean sigmoid score.

Alternatives, timed back to back on the same input in the same run:
* ``opencv``: per channel ``cv2.connectedComponentsWithStats`` (area, bbox, centroid), the kept label's mask,
  ``cv2.moments`` for orientation and axes, ``scipy.ndimage.binary_fill_holes`` when filling, numpy mean of the
  sigmoid;
* ``scipy+skimage``: per channel ``scipy.ndimage.label`` (8-connected) and ``skimage.measure.regionprops`` with the
  logits as intensity image for the mean score.

``ratio_vs_best_alternative`` = this row's median / the fastest alternative's median in the same run (< 1: faster).
Run as a script for a table: ``python benchmarks/bench_postprocess.py [cpu|cuda]``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

H, W = 512, 640


def _keep_list():
    """What the pipeline asks for: every instance of multi-instance classes (Sesamoid), the largest elsewhere."""
    from ramh_rt import anatomy

    return ["all" if b.multi_instance else "largest" for b in anatomy.BONE_CLASSES]


def synthetic_logits(seed: int = 0, n: int = 1) -> np.ndarray:
    """Hand-like multilabel logits: one elongated blob per bone, several small ones for Sesamoid, a large soft-tissue
    region, ragged edges (noise) that leave small fragments to discard."""
    from ramh_rt import anatomy

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    classes = anatomy.BONE_CLASSES
    out = np.empty((n, len(classes), H, W), np.float32)
    for i in range(n):
        for c, cls in enumerate(classes):
            field = np.full((H, W), -np.inf, np.float32)
            if cls.multi_instance:
                blobs = [(rng.uniform(100, 400), rng.uniform(100, 540), 4, 4, 0.0) for _ in range(3)]
            elif cls.is_region:  # SoftTissue: most of the hand
                blobs = [(260, 320, 230, 280, 0.0)]
            else:
                blobs = [(rng.uniform(60, 450), rng.uniform(60, 580), rng.uniform(25, 70), rng.uniform(10, 30),
                          rng.uniform(-0.6, 0.6))]
            for cy, cx, ry, rx, a in blobs:
                u = (xx - cx) * np.cos(a) - (yy - cy) * np.sin(a)
                v = (xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
                field = np.maximum(field, 6.0 * (1.0 - (u / rx) ** 2 - (v / ry) ** 2))
            out[i, c] = np.maximum(field, -12.0) + rng.normal(scale=1.5, size=(H, W)).astype(np.float32)
    return out


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def alt_opencv(logits: np.ndarray, keep, fill_holes: bool):
    import cv2
    from scipy import ndimage as ndi

    rows = []
    for c in range(logits.shape[1]):
        x = logits[0, c]
        fg = (x > 0).view(np.uint8)
        n, lab, stats, cents = cv2.connectedComponentsWithStats(fg, connectivity=8)
        if n < 2:
            continue
        labels = range(1, n) if keep[c] == "all" else [1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))]
        for k in labels:
            m = lab == k
            if fill_holes:
                m = ndi.binary_fill_holes(m)
            mu = cv2.moments(m.view(np.uint8), binaryImage=True)
            a, b, cc = mu["mu20"] / mu["m00"], mu["mu11"] / mu["m00"], mu["mu02"] / mu["m00"]
            root = np.sqrt(0.25 * (a - cc) ** 2 + b * b)
            rows.append((c, mu["m00"], stats[k, :4], cents[k], -0.5 * np.degrees(np.arctan2(2 * b, a - cc)),
                         4 * np.sqrt(0.5 * (a + cc) + root), 4 * np.sqrt(max(0.5 * (a + cc) - root, 0)),
                         float(_sigmoid(x[m]).mean())))
    return rows


def alt_skimage(logits: np.ndarray, keep, fill_holes: bool):
    from scipy import ndimage as ndi
    from skimage.measure import regionprops

    eight = np.ones((3, 3), bool)
    rows = []
    for c in range(logits.shape[1]):
        x = logits[0, c]
        lab, n = ndi.label(x > 0, structure=eight)
        if n == 0:
            continue
        if keep[c] == "largest":
            areas = np.bincount(lab.ravel())[1:]
            lab = (lab == 1 + int(np.argmax(areas))).astype(np.int32)
        if fill_holes:
            filled = np.zeros_like(lab)
            for p in regionprops(lab):  # (p.image_filled would treat the background as 8-connected)
                r0, c0, r1, c1 = p.bbox
                filled[r0:r1, c0:c1][ndi.binary_fill_holes(p.image)] = p.label
            lab = filled
        for p in regionprops(lab, intensity_image=_sigmoid(x)):
            rows.append((c, p.area, p.bbox, p.centroid, p.orientation, p.axis_major_length, p.axis_minor_length,
                         p.intensity_mean))
    return rows


def run(device: str = "cpu") -> list[dict]:
    from ramh_rt import DeviceArray
    from ramh_rt.ops import postprocess_masks

    harness.check_device(device)
    keep = _keep_list()
    logits = synthetic_logits()
    shape = list(logits.shape)
    records = []
    for fill in (False, True):
        op = f"postprocess_masks(keep=largest/Sesamoid all, fill_holes={fill})"
        timings = []
        if device == "cpu":
            timings.append(("ramh_rt", "cpu", harness.measure(
                "ramh_rt", lambda: postprocess_masks(logits, keep=keep, fill_holes=fill), warmup=2, runs=15)))
            half = logits.astype(np.float16)
            timings.append(("ramh_rt float16", "cpu", harness.measure(
                "ramh_rt float16", lambda: postprocess_masks(half, keep=keep, fill_holes=fill), warmup=2, runs=15)))
        else:
            dev = DeviceArray.from_host(logits)
            dev_half = DeviceArray.from_host(logits.astype(np.float16))
            timed = harness.cuda_event_measure if _has_cupy() else _sync_measure
            timings.append(("ramh_rt", "cuda", timed(
                "ramh_rt", lambda: postprocess_masks(dev, keep=keep, fill_holes=fill), warmup=5, runs=50)))
            timings.append(("ramh_rt float16", "cuda", timed(
                "ramh_rt float16", lambda: postprocess_masks(dev_half, keep=keep, fill_holes=fill), warmup=5,
                runs=50)))
        alts = [("opencv", "cpu", harness.measure("opencv", lambda: alt_opencv(logits, keep, fill), warmup=1, runs=5)),
                ("scipy+skimage", "cpu", harness.measure("scipy+skimage", lambda: alt_skimage(logits, keep, fill),
                                                         warmup=1, runs=3))]
        records += [harness.record(op, impl, dev_name, shape, t) for impl, dev_name, t in timings + alts]
    return harness.with_ratios(records)


def _has_cupy() -> bool:
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


def _sync_measure(name, fn, warmup=5, runs=50):
    # Each op synchronises its stream before returning, so wall-clock time is the op's full latency.
    return harness.measure(name, fn, warmup=warmup, runs=runs)


if __name__ == "__main__":
    harness.script_main(run)
