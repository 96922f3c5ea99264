"""Benchmark of ramh_rt.ops.preprocess against what a user would otherwise write.

Task: one 2048 x 2560 uint16 radiograph -> percentile window (0.5, 99.5) -> normalised model input of 512 x 640 and
1024 x 1280 (float32, letterboxed). Alternatives (timed back to back on the same image):
  - opencv+numpy, window first: cv2.calcHist percentiles, windowing through a 65536-entry NumPy lookup table (the
    fastest NumPy windowing of uint16), cv2.resize INTER_AREA (box filter) or INTER_LINEAR (aliases when
    downscaling), letterbox by slice assignment — the same order of operations as ramh_rt;
  - opencv, resize first: the same, but cv2.resize on the raw uint16 image and the window applied to the small image
    (cheaper, but a different result: clipping after filtering lets saturated pixels bleed into their neighbours);
  - torch eager: float conversion, torch.kthvalue percentiles, clamp, interpolate(bilinear, antialias=True), pad;
  - skimage: numpy percentiles, exposure.rescale_intensity, transform.resize(anti_aliasing=True).
On "cuda": ramh_rt with the image already on the device (wall time per call, including the small device-to-host copy
of the windows and the stream synchronisation the op ends with) against torch on CUDA when available.

Records: {"op", "impl", "device", "shape", "median_ms", "min_ms", "max_ms", "ratio_vs_best_alternative", "note"};
ratio_vs_best_alternative = median_ms / median_ms of the fastest alternative in the same run (< 1: faster than every
alternative). Run as a script to print the table: ``python benchmarks/bench_preprocess.py [cpu|cuda]``; with
OMP_NUM_THREADS set, OpenCV is given the same thread count (ramh_rt and torch follow it anyway).
"""
from __future__ import annotations

import math

import numpy as np

try:
    from .harness import check_device, cuda_torch, cuda_wall_record, measure, record, script_main, with_ratios
except ImportError:  # run as a script
    from harness import check_device, cuda_torch, cuda_wall_record, measure, record, script_main, with_ratios

import ramh_rt
from ramh_rt.ops import preprocess

IN_HW = (2048, 2560)
OUT_HWS = [(512, 640), (1024, 1280)]
PCT = (0.5, 99.5)


def synthetic_radiograph(seed: int = 0) -> np.ndarray:
    """A 12-bit-like radiograph stand-in: flat background, smooth 'tissue' with bright structures, noise."""
    rng = np.random.default_rng(seed)
    h, w = IN_HW
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    hand = ((xx - w / 2) / (0.38 * w)) ** 2 + ((yy - h / 2) / (0.45 * h)) ** 2 < 1
    img = np.where(hand, 1200 + 900 * np.sin(xx / 37.0) * np.cos(yy / 53.0), 80).astype(np.float32)
    img += rng.normal(0, 25, (h, w)).astype(np.float32)
    return img.clip(0, 4095).astype(np.uint16)


def _rank(p: float, n: int) -> int:
    return int(min(n, max(1, math.ceil(p * n / 100.0))))


def _letterbox_canvas(small: np.ndarray, out_hw, pad: float) -> np.ndarray:
    oh, ow = out_hw
    canvas = np.full((1, 1, oh, ow), pad, np.float32)
    y0, x0 = (oh - small.shape[0]) // 2, (ow - small.shape[1]) // 2
    canvas[0, 0, y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    return canvas


def _resized_hw(out_hw):
    lb = ramh_rt._core.letterbox_geometry(*IN_HW, *out_hw)
    return tuple(lb["resized_hw"])


def cpu_alternatives(img: np.ndarray, out_hw) -> dict:
    import cv2

    nh, nw = _resized_hw(out_hw)
    n = img.size

    def cv_percentiles():
        cum = np.cumsum(cv2.calcHist([img], [0], None, [65536], [0, 65536]).ravel())
        return float(np.searchsorted(cum, _rank(PCT[0], n))), float(np.searchsorted(cum, _rank(PCT[1], n)))

    def window_first(interp):
        def run():
            lo, hi = cv_percentiles()
            lut = np.clip((np.arange(65536, dtype=np.float32) - lo) / (hi - lo), 0, 1).astype(np.float32)
            small = cv2.resize(lut[img], (nw, nh), interpolation=interp)
            return _letterbox_canvas(small, out_hw, 0.0)
        return run

    def resize_first():
        lo, hi = cv_percentiles()
        small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA).astype(np.float32)
        return _letterbox_canvas(np.clip((small - lo) / (hi - lo), 0, 1), out_hw, 0.0)

    alts = {
        "opencv+numpy window-first INTER_AREA": (window_first(cv2.INTER_AREA), "box filter"),
        "opencv+numpy window-first INTER_LINEAR": (window_first(cv2.INTER_LINEAR), "2-tap bilinear: aliases"),
        "opencv resize-first INTER_AREA": (resize_first, "different result: window after filtering"),
    }
    try:
        import torch

        def torch_eager():
            t = torch.from_numpy(img.astype(np.float32))
            flat = t.view(-1)
            lo = flat.kthvalue(_rank(PCT[0], n)).values
            hi = flat.kthvalue(_rank(PCT[1], n)).values
            v = ((t - lo) / (hi - lo)).clamp_(0, 1)[None, None]
            small = torch.nn.functional.interpolate(v, size=(nh, nw), mode="bilinear", antialias=True)
            oh, ow = out_hw
            y0, x0 = (oh - nh) // 2, (ow - nw) // 2
            return torch.nn.functional.pad(small, (x0, ow - nw - x0, y0, oh - nh - y0))

        alts["torch eager (antialias)"] = (torch_eager, f"{torch.get_num_threads()} threads")
    except ImportError:
        pass
    try:
        from skimage import exposure, transform

        def skimage_path():
            lo, hi = np.percentile(img, PCT, method="inverted_cdf")
            v = exposure.rescale_intensity(img.astype(np.float32), in_range=(lo, hi), out_range=(0.0, 1.0))
            small = transform.resize(v, (nh, nw), order=1, anti_aliasing=True, preserve_range=True)
            return _letterbox_canvas(small.astype(np.float32), out_hw, 0.0)

        alts["skimage"] = (skimage_path, "gaussian anti-aliasing")
    except ImportError:
        pass
    return alts


def run(device: str) -> list[dict]:
    """Time preprocess on `device` ("cpu" or "cuda") and its alternatives; see the module docstring."""
    check_device(device)
    img = synthetic_radiograph()
    records = []
    if device == "cpu":
        for out_hw in OUT_HWS:
            shape = f"{IN_HW[0]}x{IN_HW[1]} u16 -> {out_hw[0]}x{out_hw[1]}"
            ours = {
                "ramh_rt": (lambda o=out_hw: preprocess(img, o), "percentiles + tent antialias"),
                "ramh_rt antialias=False": (lambda o=out_hw: preprocess(img, o, antialias=False), ""),
                "ramh_rt float16": (lambda o=out_hw: preprocess(img, o, dtype="float16"), ""),
            }
            for name, (fn, note) in {**ours, **cpu_alternatives(img, out_hw)}.items():
                runs = 3 if name == "skimage" else 15
                records.append(record("preprocess", name, "cpu", shape, measure(name, fn, runs=runs), note))
    else:  # "cuda" (check_device has refused anything else)
        sync = lambda: ramh_rt._core.synchronize(0)  # noqa: E731
        dimg = ramh_rt.DeviceArray.from_host(img)
        for out_hw in OUT_HWS:
            shape = f"{IN_HW[0]}x{IN_HW[1]} u16 -> {out_hw[0]}x{out_hw[1]}"
            for name, fn in {"ramh_rt": lambda o=out_hw: preprocess(dimg, o),
                             "ramh_rt float16": lambda o=out_hw: preprocess(dimg, o, dtype="float16"),
                             "ramh_rt fixed window": lambda o=out_hw: preprocess(dimg, o, window=(80, 2100))}.items():
                records.append(cuda_wall_record("preprocess", name, shape, fn, sync, runs=50))
            torch = cuda_torch()
            if torch is not None:
                t = torch.from_numpy(img.astype(np.int32)).cuda()
                nh, nw = _resized_hw(out_hw)
                n = img.size

                def torch_cuda(o=out_hw, nh=nh, nw=nw):
                    f = t.float()
                    flat = f.view(-1)
                    lo = flat.kthvalue(_rank(PCT[0], n)).values
                    hi = flat.kthvalue(_rank(PCT[1], n)).values
                    v = ((f - lo) / (hi - lo)).clamp_(0, 1)[None, None]
                    small = torch.nn.functional.interpolate(v, size=(nh, nw), mode="bilinear", antialias=True)
                    y0, x0 = (o[0] - nh) // 2, (o[1] - nw) // 2
                    return torch.nn.functional.pad(small, (x0, o[1] - nw - x0, y0, o[0] - nh - y0))

                records.append(cuda_wall_record("preprocess", "torch cuda (antialias)", shape, torch_cuda,
                                                torch.cuda.synchronize, runs=50))
    return with_ratios(records)


if __name__ == "__main__":
    script_main(run)
