"""End-to-end evaluation of a bundle on a RAM-H1200-layout split, through the runtime (``ramh_rt.Analyzer``).

The whole product is measured, not the models alone: every image goes through ``Analyzer.analyze`` and its
full-resolution outputs are held against the ground truth with the RAM-H1200 protocol (:mod:`ramh_train.metrics`):
bones (DSC/NSD/VOE/MSD per class and on the 14 overlap pairs), erosion masks (DSC/NSD/VOE/MSD/recall/precision),
BE and JSN scores (QWK, MAE, ACC, balanced ACC, W1-ACC, binary accuracy/sensitivity, overall and per joint), totals
(PCC/RMSE for the joint-score sum, the expected sum and the whole-image estimate) and ROI placement (IoU with the
dataset's joint boxes).

Surface metrics are computed on the union bounding box of prediction and ground truth plus a margin, which gives
the same values as on the full image (every surface point lies inside) at a fraction of the cost.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from tqdm import tqdm

from ramh_rt import anatomy, geometry
from ramh_rt.pipeline import Analyzer

from .datasets.ramh1200 import RamH1200
from .metrics import binary_metrics, erosion_metrics, score_metrics, summarize, total_metrics

METRICS = ("dsc", "nsd", "voe", "msd")


def _cropped_metrics(pred: np.ndarray, gt: np.ndarray, margin: int = 4) -> dict[str, float]:
    both = pred | gt
    if not both.any():
        return binary_metrics(pred[:1, :1], gt[:1, :1])
    ys, xs = np.nonzero(both.any(axis=1)), np.nonzero(both.any(axis=0))
    y0, y1 = max(0, ys[0][0] - margin), min(both.shape[0], ys[0][-1] + 1 + margin)
    x0, x1 = max(0, xs[0][0] - margin), min(both.shape[1], xs[0][-1] + 1 + margin)
    return binary_metrics(pred[y0:y1, x0:x1], gt[y0:y1, x0:x1])


def _predicted_masks(analysis, shape) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for b in analysis.bones:
        m = out.setdefault(b.name, np.zeros(shape, bool))
        x0, y0, x1, y1 = b.bbox
        m[y0:y1, x0:x1] |= b.mask_crop
    return out


def evaluate_bundle(bundle, data_root, split: str = "test", *, limit: int | None = None,
                    backend: str = "onnxruntime-cpu", progress: bool = True) -> dict[str, Any]:
    """Evaluate a bundle end to end on ``split`` of a dataset; returns the metrics report (JSON-ready)."""
    analyzer = Analyzer(bundle, backend=backend, keep_image=False)
    ds = RamH1200(data_root)
    stems = ds.stems(split)[:limit] if limit else ds.stems(split)
    if not stems:
        raise ValueError(f"split {split!r} of {data_root} is empty")
    per_class = {n: {k: [] for k in METRICS} for n in anatomy.BONE_NAMES}
    per_pair = {f"{a}/{b}": {k: [] for k in METRICS} for a, b in anatomy.OVERLAP_PAIRS}
    image_means = {k: [] for k in METRICS}
    erosion = {k: [] for k in (*METRICS, "recall", "precision")}
    be_gt, be_pred, be_keys, jsn_gt, jsn_pred, jsn_keys = [], [], [], [], [], []
    totals = {"truth": [], "svdh": [], "expected_svdh": [], "global_svdh": []}
    roi_iou: dict[str, list[float]] = {s: [] for s in anatomy.AREA_STEMS}
    bones_found, latency = [], []
    for stem in tqdm(stems, desc=f"evaluate {split}", disable=not progress, dynamic_ncols=True):
        s = ds.load(stem, split)
        t0 = time.perf_counter()
        a = analyzer.analyze(s.image, spacing_mm=s.spacing_mm, side=s.side)
        latency.append((time.perf_counter() - t0) * 1e3)
        pred = _predicted_masks(a, s.shape)
        img_vals = {k: [] for k in METRICS}
        for name in anatomy.BONE_NAMES:
            g = np.ascontiguousarray(s.bone_masks.get(name, np.zeros(s.shape, bool)))
            p = pred.get(name, np.zeros(s.shape, bool))
            m = _cropped_metrics(p, g)
            for k in METRICS:
                per_class[name][k].append(m[k])
                img_vals[k].append(m[k])
        for k in METRICS:
            image_means[k].append(float(np.nanmean([v for v in img_vals[k] if np.isfinite(v)] or [math.nan])))
        for a_name, b_name in anatomy.OVERLAP_PAIRS:
            g = np.ascontiguousarray(s.bone_masks.get(a_name, np.zeros(s.shape, bool))) & \
                np.ascontiguousarray(s.bone_masks.get(b_name, np.zeros(s.shape, bool)))
            p = pred.get(a_name, np.zeros(s.shape, bool)) & pred.get(b_name, np.zeros(s.shape, bool))
            m = _cropped_metrics(p, g)
            for k in METRICS:
                per_pair[f"{a_name}/{b_name}"][k].append(m[k])
        bones_found.append(sum(1 for n in anatomy.BONES if n in pred))
        m = erosion_metrics(a.erosion_mask, s.erosion_union())
        for k in erosion:
            erosion[k].append(m[k])
        for j in a.joints:
            area = anatomy.area(j.stem)
            if area.be and j.be_score is not None and area.be_key in s.be_scores:
                be_gt.append(s.be_scores[area.be_key])
                be_pred.append(j.be_score)
                be_keys.append(area.be_key)
            if area.jsn and j.jsn_score is not None and area.jsn_key in s.jsn_scores:
                jsn_gt.append(s.jsn_scores[area.jsn_key])
                jsn_pred.append(j.jsn_score)
                jsn_keys.append(area.jsn_key)
            g = s.joint_rois.get(j.stem)
            if g is not None:
                roi_iou[j.stem].append(0.0 if j.roi is None else
                                       geometry.rotated_iou(j.roi, (g.cx, g.cy, g.w, g.h, g.angle)))
        totals["truth"].append(s.totals()["svdh"])
        totals["svdh"].append(a.totals.svdh)
        totals["expected_svdh"].append(a.totals.expected_svdh)
        if a.totals.global_svdh is not None:
            totals["global_svdh"].append(a.totals.global_svdh)

    bone_dsc = [summarize(per_class[n]["dsc"])["mean"] for n in anatomy.BONES]
    all_iou = np.array([v for vs in roi_iou.values() for v in vs])
    report: dict[str, Any] = {
        "split": split, "images": len(stems), "backend": analyzer.backend.name,
        "bones": {
            "mean_dsc_28_bones": float(np.nanmean(bone_dsc)),
            "image": {k: summarize(v) for k, v in image_means.items()},
            "per_class": {n: {k: summarize(v) for k, v in d.items()} for n, d in per_class.items()},
            "overlap_pairs": {p: {k: summarize(v) for k, v in d.items()} for p, d in per_pair.items()},
            "bones_found_mean": float(np.mean(bones_found)),
        },
        "erosion": {k: summarize(v) for k, v in erosion.items()},
        "be": score_metrics(be_gt, be_pred, anatomy.BE_MAX + 1, be_keys) if be_gt else None,
        "jsn": score_metrics(jsn_gt, jsn_pred, anatomy.JSN_MAX + 1, jsn_keys) if jsn_gt else None,
        "totals": {k: total_metrics(totals["truth"], v) for k, v in totals.items()
                   if k != "truth" and len(v) == len(totals["truth"]) and len(v) >= 2},
        "roi": {"mean_iou": float(all_iou.mean()) if all_iou.size else math.nan,
                "share_iou_ge_0.5": float((all_iou >= 0.5).mean()) if all_iou.size else math.nan,
                "per_area_mean_iou": {s: float(np.mean(v)) for s, v in roi_iou.items() if v}},
        "latency_ms": {"p50": float(np.median(latency)), "max": float(np.max(latency))},
    }
    return report
