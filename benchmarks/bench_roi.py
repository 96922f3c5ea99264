"""Benchmark of ramh_rt.ops.crop_rois / paste_rois against what a user would otherwise write.

Task: 32 oriented joint ROIs (150-300 px boxes, +-40 degrees) of 224 x 224 from a 2048 x 2560 image:
  - crop, bilinear, uint16 image -> float32 crops;
  - crop, nearest, uint8 label map -> uint8 crops;
  - paste, 32 float32 ROI maps back into 2048 x 2560 (max where they overlap);
  - paste, 32 uint8 masks back (or).
Alternatives (same boxes, same outputs up to their own interpolation details), timed back to back:
  - cv2.warpAffine per ROI with WARP_INVERSE_MAP (crop), and per ROI into the box's bounding-box window plus a warped
    coverage mask and np.maximum / np.bitwise_or into the output (paste) — the realistic OpenCV loop;
  - skimage.transform.warp per ROI (crop);
  - torch.nn.functional.grid_sample, all ROIs in one batched call (crop; the float32 copy of the image is made
    outside the timed region, the sampling grid inside).
On "cuda": ramh_rt with the image/ROIs already on the device (wall time per call, including the box-table upload and
the stream synchronisation the op ends with), against torch grid_sample on CUDA when available.

Records: {"op", "impl", "device", "shape", "median_ms", "min_ms", "max_ms", "ratio_vs_best_alternative", "note"};
ratio_vs_best_alternative = median_ms / median_ms of the fastest alternative of the same task in the same run
(< 1: faster than every alternative). Run as a script: ``python benchmarks/bench_roi.py [cpu|cuda]``; with
OMP_NUM_THREADS set, OpenCV is given the same thread count (ramh_rt and torch follow it anyway).
"""
from __future__ import annotations


import numpy as np

try:
    from .harness import check_device, cuda_torch, cuda_wall_record, measure, record, script_main, with_ratios
except ImportError:  # run as a script
    from harness import check_device, cuda_torch, cuda_wall_record, measure, record, script_main, with_ratios

import ramh_rt
from ramh_rt.ops import crop_rois, paste_rois

IN_HW = (2048, 2560)
N_ROIS, ROI = 32, 224


def joint_boxes(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = IN_HW
    return np.column_stack([rng.uniform(300, w - 300, N_ROIS), rng.uniform(300, h - 300, N_ROIS),
                            rng.uniform(150, 300, N_ROIS), rng.uniform(150, 300, N_ROIS),
                            rng.uniform(-40, 40, N_ROIS)])


def images(seed: int = 0):
    rng = np.random.default_rng(seed)
    h, w = IN_HW
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = (1200 + 900 * np.sin(xx / 37.0) * np.cos(yy / 53.0) + rng.normal(0, 25, (h, w))).clip(0, 4095)
    labels = ((xx // 97 + yy // 113) % 31).astype(np.uint8)
    return img.astype(np.uint16), labels


def _crop_matrix(b, oh=ROI, ow=ROI) -> np.ndarray:
    """Inverse map crop pixel index -> image pixel index (centres at integers), as cv2/skimage take it."""
    cx, cy, w, h, a = b
    s, c = np.sin(np.deg2rad(a)), np.cos(np.deg2rad(a))
    ax, ay, bx, by = w / ow * c, -w / ow * s, h / oh * s, h / oh * c
    x0 = cx + (0.5 - ow / 2) * ax + (0.5 - oh / 2) * bx - 0.5
    y0 = cy + (0.5 - ow / 2) * ay + (0.5 - oh / 2) * by - 0.5
    return np.array([[ax, bx, x0], [ay, by, y0]])


def _paste_window(b, out_hw, rh=ROI, rw=ROI):
    """Bounding-box window of a box in the output and the inverse map window pixel -> ROI pixel index."""
    cx, cy, w, h, a = b
    s, c = np.sin(np.deg2rad(a)), np.cos(np.deg2rad(a))
    ex, ey = 0.5 * (w * abs(c) + h * abs(s)), 0.5 * (w * abs(s) + h * abs(c))
    x0, y0 = max(0, int(np.floor(cx - ex))), max(0, int(np.floor(cy - ey)))
    x1, y1 = min(out_hw[1], int(np.ceil(cx + ex))), min(out_hw[0], int(np.ceil(cy + ey)))
    k = np.array([[c * rw / w, -s * rw / w], [s * rh / h, c * rh / h]])
    t = k @ (np.array([x0 + 0.5, y0 + 0.5]) - [cx, cy]) + [rw / 2 - 0.5, rh / 2 - 0.5]
    return (x0, y0, x1, y1), np.column_stack([k, t])


def cpu_crop_alternatives(img, boxes, interp):
    import cv2

    flag = cv2.INTER_LINEAR if interp == "bilinear" else cv2.INTER_NEAREST
    mats = [_crop_matrix(b) for b in boxes]
    alts = {"cv2.warpAffine per ROI": (lambda: [cv2.warpAffine(img, m, (ROI, ROI), flags=flag | cv2.WARP_INVERSE_MAP)
                                                for m in mats], "1/32 px fixed-point positions")}
    try:
        from skimage import transform

        order = 1 if interp == "bilinear" else 0

        def sk():
            return [transform.warp(img, np.vstack([m, [0, 0, 1]]), output_shape=(ROI, ROI), order=order,
                                   preserve_range=True) for m in mats]

        alts["skimage.transform.warp per ROI"] = (sk, "")
    except ImportError:
        pass
    if interp == "bilinear":
        try:
            import torch

            timg = torch.from_numpy(img.astype(np.float32))[None, None]
            tb = torch.from_numpy(boxes)
            h, w = img.shape

            def grid_sample():
                cx, cy, bw, bh, a = tb.T
                r = torch.deg2rad(a)
                c, s = torch.cos(r), torch.sin(r)
                j = ((torch.arange(ROI, dtype=torch.float64) + 0.5) / ROI - 0.5)
                jj, ii = j[None, None, :] * bw[:, None, None], j[None, :, None] * bh[:, None, None]
                px = cx[:, None, None] + jj * c[:, None, None] + ii * s[:, None, None]
                py = cy[:, None, None] - jj * s[:, None, None] + ii * c[:, None, None]
                grid = torch.stack([2 * px / w - 1, 2 * py / h - 1], -1).float().reshape(1, N_ROIS * ROI, ROI, 2)
                return torch.nn.functional.grid_sample(timg, grid, mode="bilinear", padding_mode="zeros",
                                                       align_corners=False)

            alts["torch grid_sample batched"] = (grid_sample, "float32 image made outside the timing")
        except ImportError:
            pass
    return alts


def cpu_paste_alternatives(rois, boxes, reduce):
    import cv2

    windows = [_paste_window(b, IN_HW) for b in boxes]
    ones = np.ones((ROI, ROI), np.uint8)
    flag = (cv2.INTER_LINEAR if rois.dtype == np.float32 else cv2.INTER_NEAREST) | cv2.WARP_INVERSE_MAP

    def cv_loop():
        out = np.zeros(IN_HW, rois.dtype)
        for roi, ((x0, y0, x1, y1), m) in zip(rois, windows):
            size = (x1 - x0, y1 - y0)
            v = cv2.warpAffine(roi, m, size, flags=flag, borderMode=cv2.BORDER_REPLICATE)
            cov = cv2.warpAffine(ones, m, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP) > 0
            sub = out[y0:y1, x0:x1]
            if reduce == "or":
                np.bitwise_or(sub, v, out=sub, where=cov)
            else:
                np.maximum(sub, v, out=sub, where=cov)
        return out

    return {"cv2.warpAffine per ROI + numpy": (cv_loop, "bounding-box windows, coverage by a warped mask")}


def run(device: str) -> list[dict]:
    """Time crop/paste on `device` ("cpu" or "cuda") and the alternatives; see the module docstring."""
    check_device(device)
    img, labels = images()
    boxes = joint_boxes()
    rois = crop_rois(img, boxes, (ROI, ROI))
    masks = (rois > 1200).astype(np.uint8)
    tasks = [
        ("crop_rois", f"32x{ROI}x{ROI} bilinear from u16 {IN_HW[0]}x{IN_HW[1]}", img, "bilinear"),
        ("crop_rois", f"32x{ROI}x{ROI} nearest from u8 {IN_HW[0]}x{IN_HW[1]}", labels, "nearest"),
        ("paste_rois", f"32x{ROI}x{ROI} f32 max -> {IN_HW[0]}x{IN_HW[1]}", rois, "max"),
        ("paste_rois", f"32x{ROI}x{ROI} u8 or -> {IN_HW[0]}x{IN_HW[1]}", masks, "or"),
    ]
    records = []
    if device == "cpu":
        for op, shape, data, mode in tasks:
            if op == "crop_rois":
                ours = lambda d=data, m=mode: crop_rois(d, boxes, (ROI, ROI), m)  # noqa: E731
                alts = cpu_crop_alternatives(data, boxes, mode)
            else:
                ours = lambda d=data, m=mode: paste_rois(d, boxes, IN_HW, m)  # noqa: E731
                alts = cpu_paste_alternatives(data, boxes, mode)
            records.append(record(op, "ramh_rt", "cpu", shape, measure("ramh_rt", ours, runs=15)))
            for name, (fn, note) in alts.items():
                runs = 3 if name.startswith("skimage") else 15
                records.append(record(op, name, "cpu", shape, measure(name, fn, runs=runs), note))
    else:  # "cuda" (check_device has refused anything else)
        sync = lambda: ramh_rt._core.synchronize(0)  # noqa: E731
        for op, shape, data, mode in tasks:
            d = ramh_rt.DeviceArray.from_host(data)
            if op == "crop_rois":
                fn = lambda d=d, m=mode: crop_rois(d, boxes, (ROI, ROI), m)  # noqa: E731
            else:
                fn = lambda d=d, m=mode: paste_rois(d, boxes, IN_HW, m)  # noqa: E731
            records.append(cuda_wall_record(op, "ramh_rt", shape, fn, sync, runs=100))
            if op == "crop_rois" and mode == "bilinear":
                torch = cuda_torch()
                if torch is not None:
                    timg = torch.from_numpy(data.astype(np.float32)).cuda()[None, None]
                    tb = torch.from_numpy(boxes).cuda()
                    h, w = data.shape

                    def torch_cuda():
                        cx, cy, bw, bh, a = tb.T
                        r = torch.deg2rad(a)
                        c, s = torch.cos(r), torch.sin(r)
                        j = (torch.arange(ROI, dtype=torch.float64, device="cuda") + 0.5) / ROI - 0.5
                        jj, ii = j[None, None, :] * bw[:, None, None], j[None, :, None] * bh[:, None, None]
                        px = cx[:, None, None] + jj * c[:, None, None] + ii * s[:, None, None]
                        py = cy[:, None, None] - jj * s[:, None, None] + ii * c[:, None, None]
                        grid = torch.stack([2 * px / w - 1, 2 * py / h - 1], -1).float()
                        return torch.nn.functional.grid_sample(timg, grid.reshape(1, N_ROIS * ROI, ROI, 2),
                                                               align_corners=False)

                    records.append(cuda_wall_record(op, "torch grid_sample cuda", shape, torch_cuda,
                                                    torch.cuda.synchronize, runs=100))
    return with_ratios(records)


if __name__ == "__main__":
    script_main(run)
