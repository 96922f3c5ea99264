"""End-to-end benchmark of ramh_rt.analyze: latency per stage and end to end, throughput, per backend, against a
plain PyTorch-eager + scikit-image/SciPy implementation of the same pipeline.

    python benchmarks/pipeline.py [--backend all|onnxruntime-cpu|...] [--runs 20] [--torch-runs /path/to/runs]
                                  [--image FILE] [--out benchmarks/results]

``--torch-runs`` names the training run directories (``bones/``, ``joints/``, ``global/`` with ``last.pt``) for
the PyTorch-eager baseline; without it the baseline is skipped (the bundle ships ONNX only). Results go to
benchmarks/results/pipeline_<device>.json with the machine description.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import RESULTS_DIR, write_results  # noqa: E402


def _stats(values: list[float]) -> dict:
    v = sorted(values)
    return {"p50": statistics.median(v), "p99": v[min(len(v) - 1, int(round(0.99 * (len(v) - 1))))],
            "mean": statistics.fmean(v), "min": v[0], "max": v[-1]}


def bench_ramh(image, backend: str, runs: int, warmup: int) -> dict:
    from ramh_rt.pipeline import Analyzer

    analyzer = Analyzer(backend=backend, keep_image=False)
    for _ in range(warmup):
        analyzer.analyze(image)
    stages: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    for _ in range(runs):
        a = analyzer.analyze(image)
        for k, v in a.meta.timings_ms.items():
            stages.setdefault(k, []).append(v)
    wall = time.perf_counter() - t0
    return {"impl": "ramh_rt", "backend": analyzer.backend.name, "device": analyzer.device_name, "runs": runs,
            "throughput_images_per_s": runs / wall, "stages_ms": {k: _stats(v) for k, v in stages.items()},
            "svdh": a.totals.svdh}


def _affine(src: np.ndarray, dst: np.ndarray):
    """The affine map taking three points ``src`` to ``dst`` (scikit-image >= 0.26 spells it ``from_estimate``)."""
    from skimage import transform

    if hasattr(transform.AffineTransform, "from_estimate"):
        return transform.AffineTransform.from_estimate(src, dst)
    tf = transform.AffineTransform()
    tf.estimate(src, dst)
    return tf


class EagerPipeline:
    """The same pipeline written the way a user would without ramh_rt: scikit-image preprocessing and warps,
    PyTorch eager models, scipy.ndimage labelling and scikit-image regionprops (the geometry module is shared,
    it is pure Python)."""

    def __init__(self, runs_dir: Path, bundle, device: str = "cpu"):
        import torch

        from ramh_train.engine import load_trained
        from ramh_train.models import from_config

        self.torch = torch
        self.bones, _ = load_trained(runs_dir / "bones", from_config)
        self.joints, _ = load_trained(runs_dir / "joints", from_config)
        self.glob = load_trained(runs_dir / "global", from_config)[0] if (runs_dir / "global").exists() else None
        self.device = torch.device(device)
        for m in (self.bones, self.joints, self.glob):
            if m is not None:
                m.to(self.device)
        cfg = bundle.model("bones").config
        self.pp = cfg["preprocess"]
        self.jcfg = bundle.model("joints").config

    def __call__(self, image: np.ndarray) -> dict[str, float]:
        import scipy.ndimage as ndi
        from scipy.special import expit
        from skimage import measure, transform

        from ramh_rt import anatomy, geometry
        from ramh_train.models.bones import coord_channels
        from ramh_train.train import global_input_pool

        torch = self.torch
        dev = self.device
        # CUDA launches are asynchronous: synchronise before reading each stage's clock.
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        t = {}
        t0 = time.perf_counter()
        H, W = self.pp["input_hw"]
        lo, hi = np.percentile(image, self.pp["window"]["percentiles"])
        v = np.clip((image.astype(np.float32) - lo) / max(hi - lo, 1e-6), 0, 1)
        s = min(H / image.shape[0], W / image.shape[1])
        nh, nw = round(image.shape[0] * s), round(image.shape[1] * s)
        r = transform.resize(v, (nh, nw), order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)
        canvas = np.zeros((H, W), np.float32)
        py, px = (H - nh) // 2, (W - nw) // 2
        canvas[py:py + nh, px:px + nw] = r
        x = (canvas - self.pp["window"]["mean"]) / self.pp["window"]["std"]
        t["preprocess"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.no_grad():
            inp = torch.cat([torch.from_numpy(x)[None, None], coord_channels(H, W)[None]], 1).to(dev)
            logits = self.bones(inp)["logits"][0].cpu().numpy()
        t["bone_model"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        masks = {}
        for c, name in enumerate(anatomy.BONE_NAMES):
            lab, n = ndi.label(logits[c] > 0, structure=np.ones((3, 3)))
            if n == 0:
                continue
            props = measure.regionprops(lab, intensity_image=expit(logits[c]))
            if anatomy.bone(name).is_bone:
                best = max(props, key=lambda p: p.area)
                masks[name] = ndi.binary_fill_holes(lab == best.label)
        t["postprocess"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rois = geometry.joint_rois(masks)
        t["geometry"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        size = tuple(self.jcfg["roi"]["size"])
        crops, stems, boxes = [], [], []
        for stem, res in rois.items():
            if res.roi is None:
                continue
            # Image-space ROI: undo the letterbox on the centre, divide sizes by the scale.
            rr = res.roi
            box = ((rr.cx - px) / s, (rr.cy - py) / s, rr.w / s, rr.h / s, rr.angle)
            c = geometry.box_corners(box)
            src = np.array([c[0], c[1], c[3]])  # top-left, top-right, bottom-left
            dst = np.array([[0, 0], [size[1], 0], [0, size[0]]], dtype=np.float64)
            tf = _affine(dst, src)
            crops.append(transform.warp(image.astype(np.float32), tf, output_shape=size, order=1,
                                        preserve_range=True))
            stems.append(stem)
            boxes.append(box)
        t["roi_crop"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = len(crops)
        if n:
            with torch.no_grad():
                onehot = torch.zeros(n, len(anatomy.AREA_STEMS))
                onehot[torch.arange(n), [anatomy.AREA_STEMS.index(st) for st in stems]] = 1
                out = self.joints(torch.from_numpy(np.stack(crops)[:, None].astype(np.float32)).to(dev),
                                  torch.tensor([[lo, hi]] * n, dtype=torch.float32).to(dev), onehot.to(dev))
            ero = torch.sigmoid(out["erosion_logits"])[:, 0].cpu().numpy()
        t["joint_model"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for k in range(n):
            lab, m = ndi.label(ero[k] >= 0.5, structure=np.ones((3, 3)))
            if m:
                ndi.sum_labels(np.ones_like(lab), lab, index=np.arange(1, m + 1))
        full = np.zeros(image.shape, bool)
        for k in range(n):
            c = geometry.box_corners(boxes[k])
            src = np.array([c[0], c[1], c[3]])
            dst = np.array([[0, 0], [size[1], 0], [0, size[0]]], dtype=np.float64)
            tf = _affine(src, dst)
            full |= transform.warp(ero[k].astype(np.float32), tf, output_shape=image.shape, order=0) >= 0.5
        t["quantify"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if self.glob is not None:
            with torch.no_grad():
                g = torch.from_numpy(x)[None, None].to(dev)
                pool = global_input_pool(self.glob, (H, W))  # its input is the bone input, pooled
                self.glob(torch.nn.functional.avg_pool2d(g, pool) if pool > 1 else g)
            sync()
        t["global_model"] = time.perf_counter() - t0
        t["total"] = sum(t.values())
        return {k: v * 1e3 for k, v in t.items()}


def bench_eager(image, runs_dir: Path, runs: int, warmup: int, device: str = "cpu") -> dict:
    import torch

    from ramh_rt.bundle import Bundle

    torch.set_num_threads(max(1, torch.get_num_threads()))
    pipe = EagerPipeline(runs_dir, Bundle.load(), device)
    for _ in range(warmup):
        pipe(image)
    stages: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    for _ in range(runs):
        for k, v in pipe(image).items():
            stages.setdefault(k, []).append(v)
    wall = time.perf_counter() - t0
    name = torch.cuda.get_device_name(pipe.device) if pipe.device.type == "cuda" else "cpu"
    return {"impl": "pytorch-eager+scikit-image", "backend": "torch", "device": f"{pipe.device} ({name})"
            if pipe.device.type == "cuda" else "cpu", "runs": runs,
            "throughput_images_per_s": runs / wall, "stages_ms": {k: _stats(v) for k, v in stages.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="onnxruntime-cpu", help="a backend name or 'all' (every available one)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--image", help="image to analyse (default: the bundled sample)")
    ap.add_argument("--torch-runs", help="training run directories for the PyTorch-eager baseline")
    ap.add_argument("--torch-device", default="cpu", help="device of the PyTorch-eager baseline (cpu, cuda)")
    ap.add_argument("--out", default=str(RESULTS_DIR))
    args = ap.parse_args(argv)
    from ramh_rt.backends import backend_names, get_backend
    from ramh_rt.cli import sample_image_path
    from ramh_rt.io import load_image

    image = load_image(args.image or sample_image_path()).pixels
    names = [n for n in backend_names() if get_backend(n).available()[0]] if args.backend == "all" \
        else [args.backend]
    records = []
    for name in names:
        rec = bench_ramh(image, name, args.runs, args.warmup)
        records.append(rec)
        print(f"{rec['impl']} {rec['backend']} ({rec['device']}): p50 {rec['stages_ms']['total']['p50']:.1f} ms, "
              f"p99 {rec['stages_ms']['total']['p99']:.1f} ms, {rec['throughput_images_per_s']:.2f} images/s")
    if args.torch_runs:
        rec = bench_eager(image, Path(args.torch_runs), max(3, args.runs // 2), 1, args.torch_device)
        records.append(rec)
        print(f"{rec['impl']}: p50 {rec['stages_ms']['total']['p50']:.1f} ms, "
              f"{rec['throughput_images_per_s']:.2f} images/s")
        base = rec["stages_ms"]
        for r in records[:-1]:
            r["speedup_vs_eager"] = {k: base[k]["p50"] / r["stages_ms"][k]["p50"]
                                     for k in r["stages_ms"] if k in base and r["stages_ms"][k]["p50"] > 0}
    for r in records:
        print(f"\n{r['impl']} / {r['backend']}")
        for k, v in r["stages_ms"].items():
            extra = f"   x{r['speedup_vs_eager'][k]:.1f} vs eager" if "speedup_vs_eager" in r and \
                k in r["speedup_vs_eager"] else ""
            print(f"  {k:14s} p50 {v['p50']:9.2f} ms  p99 {v['p99']:9.2f} ms{extra}")
    device = "cuda" if any("cuda" in r["backend"] or r["backend"] == "tensorrt" for r in records) else "cpu"
    path = write_results(f"pipeline_{device}", records, Path(args.out))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
