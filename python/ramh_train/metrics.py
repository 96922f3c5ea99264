"""Evaluation metrics following the RAM-H1200 benchmark protocol (bone/erosion segmentation, joint scores, totals).

The benchmark code computes segmentation metrics with MONAI; these functions reproduce MONAI's definitions and
its empty-mask conventions with NumPy/SciPy (MONAI is not a dependency here).

Segmentation (per image and class; ``P`` prediction, ``G`` ground truth, binary masks of one class):
    * DSC ``2|P∩G| / (|P| + |G|)``. MONAI ``DiceMetric(ignore_empty=True)`` (the default the benchmark uses):
      **NaN whenever G is empty**, whatever P is.
    * VOE ``1 - |P∩G| / |P∪G|`` (MONAI ``MeanIoU(ignore_empty=True)``): NaN whenever G is empty.
    * Surfaces: the edge pixels of a mask are the mask pixels with a 4-neighbour outside the mask (MONAI:
      ``mask XOR binary_erosion(mask)`` with SciPy's default cross structure; pixels outside the image count as
      background, so a mask touching the image border has edges there). Surface distances are Euclidean, in pixels:
      from each edge pixel of one mask to the nearest edge pixel of the other (``distance_transform_edt``).
    * NSD (normalised surface Dice, tolerance tau = 2 px, MONAI ``SurfaceDiceMetric``): the share of the edge pixels
      of both masks lying within tau (``<=``) of the other mask's edge: ``(#{d_PG <= tau} + #{d_GP <= tau}) /
      (|E_P| + |E_G|)``. Both empty: NaN; exactly one empty: 0.
    * MSD (mean symmetric surface distance, MONAI ``SurfaceDistanceMetric(symmetric=True)``): the mean of the
      concatenated distances of both directions ``(sum d_PG + sum d_GP) / (|E_P| + |E_G|)``. Both empty: NaN;
      exactly one empty: +inf.
    * Per image, DSC/NSD/VOE are averaged over classes ignoring NaN; MSD over finite values only (as the benchmark).
    * Over images (:func:`summarize`): mean and sample SD (ddof = 1) of the finite per-image values; the count of
      images that contributed is reported alongside.
    * Overlap pairs (:data:`ramh_rt.anatomy.OVERLAP_PAIRS`, 14 pairs): the same metrics on ``P_a ∧ P_b`` versus
      ``G_a ∧ G_b``, averaged per image over pairs ignoring NaN (a pair that does not overlap in G gives NaN DSC).

Erosion segmentation (one binary mask per image: any erosion category): DSC, NSD, VOE, MSD as above, plus
recall ``TP / (TP + FN)`` and precision ``TP / (TP + FP)``; where a denominator is 0 they take ``zero_division``
(default 0.0, as the benchmark's ``tp / (tp + fn + 1e-8)``). An image without erosion in G therefore has DSC NaN
(left out of the DSC mean) and recall 0.

Scores (BE 0..5, JSN 0..4), overall and per joint: QWK, MAE, ACC, balanced accuracy (sklearn, mean recall over the
classes present in the ground truth), W1-ACC ``|pred - gt| <= 1``, and binary "0 vs > 0" accuracy, sensitivity and
specificity. QWK is sklearn's ``cohen_kappa_score(weights="quadratic")`` with ``labels = 0..K-1`` so that the
weights are the squared score differences (the benchmark passes no labels; the two agree whenever the observed
scores form a contiguous range). Degenerate case: when prediction and ground truth hold one and the same single
class, kappa is 0/0 (sklearn returns NaN); here it is 1.0 (perfect agreement), and ``qwk_degenerate`` is set so a
report can say so. Binary sensitivity (specificity) is NaN when the ground truth has no positive (negative) case.

Totals: Pearson correlation (``scipy.stats.pearsonr``; NaN when either side is constant), RMSE and MAE.
"""
from __future__ import annotations

import math
import warnings
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy import ndimage

from ramh_rt import anatomy

NSD_TOLERANCE_PX = 2.0
_CROSS = ndimage.generate_binary_structure(2, 1)

# ---------------------------------------------------------------------------------------------------------------------
# Segmentation
# ---------------------------------------------------------------------------------------------------------------------


def _as_mask(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != bool:
        if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
            raise ValueError(f"{name} must be a boolean or numeric mask, got dtype {a.dtype}")
        if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            raise ValueError(f"{name} holds non-finite values")
        a = a > 0.5 if np.issubdtype(a.dtype, np.floating) else a != 0
    return a


def surface_edges(mask: np.ndarray) -> np.ndarray:
    """Edge pixels of a 2-D binary mask: mask pixels with a 4-neighbour outside the mask or the image (MONAI)."""
    mask = _as_mask(mask, "mask")
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    return mask & ~ndimage.binary_erosion(mask, structure=_CROSS, border_value=0)


def surface_distances(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Surface distances (pixels) between two 2-D masks: ``(d_PG, d_GP)``, one entry per edge pixel of ``pred``
    (to the nearest ``gt`` edge pixel) and of ``gt`` (to the nearest ``pred`` edge pixel).

    If one mask is empty, the other's distances are all +inf and the empty one's array is empty (MONAI).
    The computation is cropped to the bounding box of both masks plus a 1-pixel margin (clipped to the image),
    which changes no edge and no nearest-edge distance.
    """
    pred = _as_mask(pred, "pred")
    gt = _as_mask(gt, "gt")
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"pred and gt must be 2-D masks of one shape, got {pred.shape} and {gt.shape}")
    union = pred | gt
    if not union.any():
        return np.zeros(0), np.zeros(0)
    rows = np.flatnonzero(union.any(axis=1))
    cols = np.flatnonzero(union.any(axis=0))
    r0, r1 = max(rows[0] - 1, 0), min(rows[-1] + 2, pred.shape[0])
    c0, c1 = max(cols[0] - 1, 0), min(cols[-1] + 2, pred.shape[1])
    # Erosion on the crop treats outside-the-crop as background: exact, because the crop either keeps a 1-pixel
    # background margin or stops at the image border, where MONAI treats the outside as background too.
    ep = surface_edges(pred[r0:r1, c0:c1])
    eg = surface_edges(gt[r0:r1, c0:c1])
    if not ep.any() or not eg.any():
        return np.full(int(ep.sum()), np.inf), np.full(int(eg.sum()), np.inf)
    d_pg = ndimage.distance_transform_edt(~eg)[ep]
    d_gp = ndimage.distance_transform_edt(~ep)[eg]
    return d_pg, d_gp


def binary_metrics(pred: np.ndarray, gt: np.ndarray, *, tolerance: float = NSD_TOLERANCE_PX) -> dict[str, float]:
    """DSC, NSD (at ``tolerance`` px), VOE and MSD of one 2-D binary mask pair (conventions: module docstring).

    Returns:
        ``{"dsc", "nsd", "voe", "msd"}`` as floats (NaN / inf where the conventions say so).
    """
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise ValueError(f"tolerance must be finite and >= 0, got {tolerance}")
    pred = _as_mask(pred, "pred")
    gt = _as_mask(gt, "gt")
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"pred and gt must be 2-D masks of one shape, got {pred.shape} and {gt.shape}")
    n_p, n_g = int(pred.sum()), int(gt.sum())
    inter = int(np.count_nonzero(pred & gt))
    union = n_p + n_g - inter
    dsc = voe = math.nan
    if n_g > 0:
        dsc = 2.0 * inter / (n_p + n_g)
        voe = 1.0 - inter / union
    d_pg, d_gp = surface_distances(pred, gt)
    n_edges = d_pg.size + d_gp.size
    if n_edges == 0:
        nsd = msd = math.nan
    else:
        nsd = float((np.count_nonzero(d_pg <= tolerance) + np.count_nonzero(d_gp <= tolerance)) / n_edges)
        msd = float((d_pg.sum() + d_gp.sum()) / n_edges)
    return {"dsc": float(dsc), "nsd": nsd, "voe": float(voe), "msd": msd}


def _nanmean(values: Iterable[float]) -> float:
    v = np.asarray(list(values), dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else math.nan


def _finite_mean(values: Iterable[float]) -> float:
    v = np.asarray(list(values), dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def _reduce_image(per: Mapping[str, Sequence[float]]) -> dict[str, float]:
    return {"dsc": _nanmean(per["dsc"]), "nsd": _nanmean(per["nsd"]), "voe": _nanmean(per["voe"]),
            "msd": _finite_mean(per["msd"])}


def overlap_pair_indices(pairs: Sequence[tuple[str, str]] = anatomy.OVERLAP_PAIRS) -> list[tuple[int, int]]:
    """Channel indices of the overlap pairs (bone names -> :data:`ramh_rt.anatomy.BONE_INDEX`)."""
    return [(anatomy.BONE_INDEX[anatomy.canonical_bone_name(a)], anatomy.BONE_INDEX[anatomy.canonical_bone_name(b)])
            for a, b in pairs]


def segmentation_metrics(pred: np.ndarray, gt: np.ndarray, *, tolerance: float = NSD_TOLERANCE_PX,
                         overlap_pairs: Sequence[tuple[int, int]] | None = None) -> dict:
    """Multilabel segmentation metrics of one image.

    Args:
        pred, gt: [C, H, W] binary masks (bool, or numeric: floats > 0.5 / integers != 0 are foreground).
        tolerance: NSD tolerance in pixels.
        overlap_pairs: channel index pairs to score on their overlap regions; default: the 14
            :data:`ramh_rt.anatomy.OVERLAP_PAIRS` when C == 30, none otherwise.

    Returns:
        ``{"per_class": {"dsc": [C], "nsd": [C], "voe": [C], "msd": [C]}, "image": {metric: float},
        "overlap_per_pair": {metric: [P]}, "overlap": {"dsc", "nsd", "voe", "msd"}}`` (lists of floats;
        conventions in the module docstring).

    Raises:
        ValueError: shapes differ or are not [C, H, W]; a pair index out of range.
    """
    pred = _as_mask(pred, "pred")
    gt = _as_mask(gt, "gt")
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"pred and gt must be [C, H, W] of one shape, got {pred.shape} and {gt.shape}")
    c = pred.shape[0]
    if overlap_pairs is None:
        overlap_pairs = overlap_pair_indices() if c == anatomy.NUM_BONE_CLASSES else []
    for a, b in overlap_pairs:
        if not (0 <= a < c and 0 <= b < c):
            raise ValueError(f"overlap pair ({a}, {b}) is out of range for {c} channels")
    per = {k: [] for k in ("dsc", "nsd", "voe", "msd")}
    for i in range(c):
        m = binary_metrics(pred[i], gt[i], tolerance=tolerance)
        for k in per:
            per[k].append(m[k])
    pair = {k: [] for k in ("dsc", "nsd", "voe", "msd")}
    for a, b in overlap_pairs:
        m = binary_metrics(pred[a] & pred[b], gt[a] & gt[b], tolerance=tolerance)
        for k in pair:
            pair[k].append(m[k])
    out = {"per_class": per, "image": _reduce_image(per), "overlap_per_pair": pair}
    out["overlap"] = _reduce_image(pair) if overlap_pairs else {k: math.nan for k in pair}
    return out


def erosion_metrics(pred: np.ndarray, gt: np.ndarray, *, tolerance: float = NSD_TOLERANCE_PX,
                    zero_division: float = 0.0) -> dict[str, float]:
    """Erosion segmentation metrics of one image: DSC, NSD, VOE, MSD, recall, precision (module docstring).

    Args:
        pred, gt: [H, W] binary erosion masks (any category).
        zero_division: value of recall / precision when its denominator is 0.
    """
    m = binary_metrics(pred, gt, tolerance=tolerance)
    p = _as_mask(pred, "pred")
    g = _as_mask(gt, "gt")
    tp = int(np.count_nonzero(p & g))
    fp = int(np.count_nonzero(p & ~g))
    fn = int(np.count_nonzero(~p & g))
    m["recall"] = tp / (tp + fn) if tp + fn else float(zero_division)
    m["precision"] = tp / (tp + fp) if tp + fp else float(zero_division)
    return m


def summarize(values: Iterable[float]) -> dict[str, float]:
    """Mean, sample SD (ddof = 1) and count of the finite values (NaN and inf are left out, as the benchmark's
    summary does); mean NaN when there is none, SD NaN when there are fewer than 2."""
    v = np.asarray(list(values), dtype=np.float64)
    v = v[np.isfinite(v)]
    return {"mean": float(v.mean()) if v.size else math.nan,
            "sd": float(v.std(ddof=1)) if v.size >= 2 else math.nan,
            "n": int(v.size)}


class SegmentationEvaluator:
    """Accumulates per-image bone (multilabel) or erosion (binary) metrics and summarises them over images.

    ``kind="bones"``: :meth:`add` takes [C, H, W] masks (:func:`segmentation_metrics`); ``kind="erosion"``:
    [H, W] masks (:func:`erosion_metrics`). :meth:`summary` gives mean ± SD over images of every per-image value,
    per class for bones (``per_class[name][metric]``) and per overlap pair.
    """

    def __init__(self, kind: str = "bones", *, class_names: Sequence[str] | None = None,
                 tolerance: float = NSD_TOLERANCE_PX, zero_division: float = 0.0):
        if kind not in ("bones", "erosion"):
            raise ValueError(f"kind must be 'bones' or 'erosion', got {kind!r}")
        self.kind = kind
        self.class_names = list(class_names) if class_names is not None else list(anatomy.BONE_NAMES)
        self.tolerance = float(tolerance)
        self.zero_division = float(zero_division)
        self.images: list[str] = []
        self.records: list[dict] = []

    def add(self, pred: np.ndarray, gt: np.ndarray, name: str | None = None) -> dict:
        """Score one image; returns its metrics (as :func:`segmentation_metrics` / :func:`erosion_metrics`)."""
        if self.kind == "bones":
            if np.ndim(pred) != 3 or np.shape(pred)[0] != len(self.class_names):
                raise ValueError(f"pred must be [{len(self.class_names)}, H, W], got shape {np.shape(pred)}")
            rec = segmentation_metrics(pred, gt, tolerance=self.tolerance)
        else:
            rec = erosion_metrics(pred, gt, tolerance=self.tolerance, zero_division=self.zero_division)
        self.images.append(name if name is not None else str(len(self.images)))
        self.records.append(rec)
        return rec

    def summary(self) -> dict:
        """Mean ± SD over images (:func:`summarize`) of every metric."""
        if not self.records:
            raise ValueError("no image was added")
        if self.kind == "erosion":
            return {k: summarize(r[k] for r in self.records) for k in self.records[0]}
        out = {"image": {k: summarize(r["image"][k] for r in self.records) for k in ("dsc", "nsd", "voe", "msd")},
               "overlap": {k: summarize(r["overlap"][k] for r in self.records) for k in ("dsc", "nsd", "voe", "msd")},
               "per_class": {}, "overlap_per_pair": {}}
        for i, name in enumerate(self.class_names):
            out["per_class"][name] = {k: summarize(r["per_class"][k][i] for r in self.records)
                                      for k in ("dsc", "nsd", "voe", "msd")}
        pairs = anatomy.OVERLAP_PAIRS if len(self.class_names) == anatomy.NUM_BONE_CLASSES else []
        for j, (a, b) in enumerate(pairs):
            out["overlap_per_pair"][f"{a}/{b}"] = {k: summarize(r["overlap_per_pair"][k][j] for r in self.records)
                                                   for k in ("dsc", "nsd", "voe", "msd")}
        return out


# ---------------------------------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------------------------------


def _labels(a, name: str, num_classes: int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer scores")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(f"{name} holds scores outside 0..{num_classes - 1}: min {arr.min()}, max {arr.max()}")
    return arr


def quadratic_weighted_kappa(gt: Sequence[int], pred: Sequence[int], num_classes: int) -> tuple[float, bool]:
    """QWK over scores 0..num_classes-1 and whether it was the degenerate single-class case (module docstring)."""
    from sklearn.metrics import cohen_kappa_score

    g = _labels(gt, "gt", num_classes)
    p = _labels(pred, "pred", num_classes)
    if g.size == 0 or g.size != p.size:
        raise ValueError(f"gt and pred must be non-empty and of one length, got {g.size} and {p.size}")
    if np.unique(np.concatenate([g, p])).size == 1:
        return 1.0, True
    return float(cohen_kappa_score(g, p, weights="quadratic", labels=list(range(num_classes)))), False


def _score_block(g: np.ndarray, p: np.ndarray, num_classes: int) -> dict[str, float]:
    from sklearn.metrics import balanced_accuracy_score

    qwk, degenerate = quadratic_weighted_kappa(g, p, num_classes)
    diff = np.abs(p - g)
    with warnings.catch_warnings():
        # "y_pred contains classes not in y_true": expected on small per-joint sets, the metric is still defined
        warnings.simplefilter("ignore", UserWarning)
        bacc = float(balanced_accuracy_score(g, p))
    gp, pp = g > 0, p > 0
    tp = int(np.count_nonzero(gp & pp))
    tn = int(np.count_nonzero(~gp & ~pp))
    pos, neg = int(gp.sum()), int((~gp).sum())
    return {
        "n": int(g.size),
        "qwk": qwk,
        "qwk_degenerate": bool(degenerate),
        "mae": float(diff.mean()),
        "acc": float(np.mean(diff == 0)),
        "balanced_acc": bacc,
        "w1_acc": float(np.mean(diff <= 1)),
        "binary_acc": float(np.mean(gp == pp)),
        "binary_sensitivity": tp / pos if pos else math.nan,
        "binary_specificity": tn / neg if neg else math.nan,
    }


def score_metrics(gt: Sequence[int], pred: Sequence[int], num_classes: int,
                  joints: Sequence[str] | None = None) -> dict:
    """Ordinal score metrics overall and per joint.

    Args:
        gt, pred: [M] integer scores in 0..num_classes-1 (one entry per scored joint of every hand).
        num_classes: 6 for BE, 5 for JSN.
        joints: optional [M] joint keys/stems; per-joint blocks are returned for each distinct key.

    Returns:
        ``{"overall": block, "per_joint": {key: block}}`` with block = ``{"n", "qwk", "qwk_degenerate", "mae",
        "acc", "balanced_acc", "w1_acc", "binary_acc", "binary_sensitivity", "binary_specificity"}``.

    Raises:
        ValueError: empty input, length mismatch, or scores outside the range.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    g = _labels(gt, "gt", num_classes)
    p = _labels(pred, "pred", num_classes)
    if g.size == 0 or g.size != p.size:
        raise ValueError(f"gt and pred must be non-empty and of one length, got {g.size} and {p.size}")
    out = {"overall": _score_block(g, p, num_classes), "per_joint": {}}
    if joints is not None:
        keys = np.asarray(list(joints), dtype=object)
        if keys.size != g.size:
            raise ValueError(f"joints has {keys.size} entries for {g.size} scores")
        for key in dict.fromkeys(keys.tolist()):
            sel = keys == key
            out["per_joint"][key] = _score_block(g[sel], p[sel], num_classes)
    return out


def total_metrics(gt: Sequence[float], pred: Sequence[float]) -> dict[str, float]:
    """Agreement of per-hand totals: ``{"n", "pcc", "rmse", "mae"}`` (PCC NaN when either side is constant).

    Raises:
        ValueError: fewer than 2 values, a length mismatch, or a non-finite value.
    """
    from scipy import stats

    g = np.asarray(gt, dtype=np.float64).ravel()
    p = np.asarray(pred, dtype=np.float64).ravel()
    if g.size != p.size or g.size < 2:
        raise ValueError(f"gt and pred need one length >= 2, got {g.size} and {p.size}")
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(p))):
        raise ValueError("gt and pred must be finite")
    if np.ptp(g) == 0 or np.ptp(p) == 0:
        pcc = math.nan
    else:
        pcc = float(stats.pearsonr(g, p)[0])
    err = p - g
    return {"n": int(g.size), "pcc": pcc, "rmse": float(np.sqrt(np.mean(err ** 2))),
            "mae": float(np.mean(np.abs(err)))}
