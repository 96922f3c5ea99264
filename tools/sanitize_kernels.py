"""Exercise every CUDA kernel family once on a few small, edge-heavy cases, for compute-sanitizer.

    compute-sanitizer --tool memcheck --error-exitcode 9 python3 tools/sanitize_kernels.py
    (also --tool racecheck, synccheck, initcheck; tools/gpu_check.sh runs all four)

Each case runs on the GPU and on the CPU twin and the integer outputs are compared, so a sanitizer run is also a parity
smoke test. The cases are small on purpose: under memcheck/racecheck each launch is 10-100x slower. Exit status 0 when
every case ran and matched, 1 when a comparison failed (the sanitizer's own exit code, 9, reports memory errors).
"""
from __future__ import annotations

import sys
import traceback

import numpy as np

import ramh_rt
from ramh_rt import DeviceArray
from ramh_rt.ops import crop_rois, paste_rois, postprocess_masks, preprocess, quantify_erosions


def dev(a):
    return DeviceArray.from_host(np.ascontiguousarray(a))


def host(a):
    return a.to_host() if hasattr(a, "to_host") else np.asarray(a)


def case_preprocess(rng):
    for shape, dtype in [((1, 1), np.uint8), ((37, 53), np.uint16), ((300, 257), np.float32), ((2, 129, 64), np.uint16)]:
        img = (rng.random(shape) * (255 if dtype == np.uint8 else 4000)).astype(dtype)
        for out_dtype in ("float32", "float16"):
            t_gpu, tf_gpu = preprocess(dev(img), (64, 48), dtype=out_dtype)
            t_cpu, tf_cpu = preprocess(img, (64, 48), dtype=out_dtype)
            np.testing.assert_allclose(host(t_gpu).astype(np.float32), t_cpu.astype(np.float32), rtol=1e-3, atol=1e-3)
        preprocess(dev(img), (64, 48), window=(10.0, 200.0))


def case_postprocess(rng):
    for n, c, h, w in [(1, 1, 1, 1), (1, 3, 17, 33), (2, 30, 64, 80), (1, 2, 130, 7)]:
        logits = rng.normal(0, 1, (n, c, h, w)).astype(np.float32)
        for mode in ("multilabel", "multiclass"):
            for keep, fill in (("largest", False), ("all", True)):
                m_gpu, i_gpu = postprocess_masks(dev(logits), mode=mode, keep=keep, min_area=2, fill_holes=fill)
                m_cpu, i_cpu = postprocess_masks(logits, mode=mode, keep=keep, min_area=2, fill_holes=fill)
                np.testing.assert_array_equal(host(m_gpu), m_cpu)
                assert len(i_gpu) == len(i_cpu), (len(i_gpu), len(i_cpu))
        half = logits.astype(np.float16)
        m_gpu, _ = postprocess_masks(dev(half))
        np.testing.assert_array_equal(host(m_gpu), postprocess_masks(half)[0])


def case_roi(rng):
    for h, w in [(1, 1), (40, 33), (257, 300)]:
        img = rng.random((h, w)).astype(np.float32)
        boxes = np.column_stack([rng.uniform(-10, w + 10, 8), rng.uniform(-10, h + 10, 8), rng.uniform(1, 60, 8),
                                 rng.uniform(1, 60, 8), rng.uniform(-180, 180, 8)])
        for interp in ("bilinear", "nearest"):
            crops_gpu = crop_rois(dev(img), boxes, (24, 20), interpolation=interp, fill=-1)
            crops_cpu = crop_rois(img, boxes, (24, 20), interpolation=interp, fill=-1)
            np.testing.assert_allclose(host(crops_gpu), crops_cpu, rtol=1e-5, atol=1e-6)
        labels = (rng.random((h, w)) < 0.5).astype(np.uint8)
        np.testing.assert_array_equal(host(crop_rois(dev(labels), boxes, (24, 20), interpolation="nearest")),
                                      crop_rois(labels, boxes, (24, 20), interpolation="nearest"))
        rois = (rng.random((8, 24, 20)) < 0.3).astype(np.uint8)
        for reduce in ("max", "or"):
            np.testing.assert_array_equal(host(paste_rois(dev(rois), boxes, (h, w), reduce=reduce)),
                                          paste_rois(rois, boxes, (h, w), reduce=reduce))


def case_quantify(rng):
    for n, h, w in [(1, 1, 1), (3, 31, 17), (32, 64, 64)]:
        ero = rng.random((n, h, w)).astype(np.float32)
        bone = (rng.random((n, 2, h, w)) < 0.5).astype(np.uint8)
        boxes = np.column_stack([rng.uniform(0, 500, n), rng.uniform(0, 500, n), rng.uniform(10, 90, n),
                                 rng.uniform(10, 90, n), rng.uniform(-90, 90, n)]).astype(np.float32)
        t_gpu = quantify_erosions(dev(ero), dev(bone), boxes, 0.1, min_lesion_px=2)
        t_cpu = quantify_erosions(ero, bone, boxes, 0.1, min_lesion_px=2)
        for f in ("eroded_roi_px", "bone_roi_px", "lesions", "largest_lesion_roi_px"):
            np.testing.assert_array_equal(t_gpu[f], t_cpu[f], err_msg=f)


CASES = {"preprocess": case_preprocess, "postprocess": case_postprocess, "roi": case_roi, "quantify": case_quantify}


def main(argv: list[str]) -> int:
    if not ramh_rt.cuda_available():
        print("no CUDA device:", ramh_rt.build_info(), file=sys.stderr)
        return 2
    failed = []
    for name in argv or list(CASES):
        try:
            CASES[name](np.random.default_rng(0))
            print(f"{name}: ran, GPU matches CPU", flush=True)
        except Exception:  # report every family, not just the first failure
            traceback.print_exc()
            failed.append(name)
    if failed:
        print("FAILED:", ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
