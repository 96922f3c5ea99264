"""RAM-H1200 metrics on hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from ramh_rt import anatomy
from ramh_train import metrics


def squares():
    # G: rows 2-5, cols 2-5 (16 px); P: the same square shifted one column right (rows 2-5, cols 3-6)
    g = np.zeros((8, 8), bool)
    g[2:6, 2:6] = True
    p = np.zeros_like(g)
    p[2:6, 3:7] = True
    return p, g


def test_shifted_square_by_hand():
    p, g = squares()
    m = metrics.binary_metrics(p, g)
    # |P∩G| = 12 -> DSC = 24 / 32, IoU = 12 / 20 -> VOE 0.4
    assert m["dsc"] == pytest.approx(0.75)
    assert m["voe"] == pytest.approx(0.4)
    # each square has 12 edge pixels (16 minus the 2x2 interior). P edges on G's top/bottom rows (cols 3-5): 6 at
    # distance 0; P's col-6 edge pixels (4) and P's (3,3), (4,3) - G interior pixels - are 1 px from a G edge:
    # 6 at distance 1. Same from G to P by symmetry -> all 24 distances <= 2: NSD 1; MSD = 12 / 24
    assert m["nsd"] == pytest.approx(1.0)
    assert m["msd"] == pytest.approx(0.5)
    # with a 0.5 px tolerance only the 12 zero distances count
    assert metrics.binary_metrics(p, g, tolerance=0.5)["nsd"] == pytest.approx(0.5)


def test_distances_by_hand_for_a_far_shift():
    g = np.zeros((10, 10), bool)
    g[4, 1] = True                      # single pixels: each is its own edge
    p = np.zeros_like(g)
    p[4, 4] = True
    d_pg, d_gp = metrics.surface_distances(p, g)
    assert d_pg.tolist() == [3.0] and d_gp.tolist() == [3.0]
    m = metrics.binary_metrics(p, g)
    assert m["dsc"] == 0.0 and m["voe"] == 1.0 and m["nsd"] == 0.0 and m["msd"] == 3.0


def test_empty_mask_conventions():
    empty = np.zeros((6, 6), bool)
    blob = np.zeros((6, 6), bool)
    blob[1:3, 1:3] = True
    both = metrics.binary_metrics(empty, empty)
    assert all(math.isnan(both[k]) for k in ("dsc", "nsd", "voe", "msd"))
    # G empty, P not: MONAI ignore_empty -> DSC/VOE NaN; NSD 0; MSD inf
    fp = metrics.binary_metrics(blob, empty)
    assert math.isnan(fp["dsc"]) and math.isnan(fp["voe"]) and fp["nsd"] == 0.0 and fp["msd"] == math.inf
    # P empty, G not: DSC 0, VOE 1, NSD 0, MSD inf
    fn = metrics.binary_metrics(empty, blob)
    assert fn["dsc"] == 0.0 and fn["voe"] == 1.0 and fn["nsd"] == 0.0 and fn["msd"] == math.inf


def test_edges_count_the_image_border():
    full = np.ones((3, 3), bool)
    # outside the image is background: the 8 border pixels are edges, the centre is not
    e = metrics.surface_edges(full)
    assert e.sum() == 8 and not e[1, 1]
    ring = np.ones((5, 5), bool)
    ring[2, 2] = False
    # a hole makes its 4-neighbours edges as well: 16 border pixels + 4 around the hole
    assert metrics.surface_edges(ring).sum() == 20


def _reference_distances(p, g):
    # uncropped MONAI-style computation, to check that the bounding-box crop changes nothing
    st = ndimage.generate_binary_structure(2, 1)
    ep = p & ~ndimage.binary_erosion(p, st, border_value=0)
    eg = g & ~ndimage.binary_erosion(g, st, border_value=0)
    return ndimage.distance_transform_edt(~eg)[ep], ndimage.distance_transform_edt(~ep)[eg]


def test_crop_is_exact_against_uncropped_reference(rng):
    for _ in range(20):
        p = ndimage.binary_opening(rng.random((40, 50)) > 0.6)
        g = ndimage.binary_opening(rng.random((40, 50)) > 0.6)
        p[:, :3] = rng.random((40, 3)) > 0.5         # touch the image border too
        if not p.any() or not g.any():
            continue
        a = metrics.surface_distances(p, g)
        b = _reference_distances(p, g)
        assert np.allclose(np.sort(a[0]), np.sort(b[0])) and np.allclose(np.sort(a[1]), np.sort(b[1]))


def test_multilabel_image_reduction_and_overlap_pairs():
    c = anatomy.NUM_BONE_CLASSES
    gt = np.zeros((c, 8, 8), bool)
    pred = np.zeros_like(gt)
    ri, si = anatomy.BONE_INDEX["Radius"], anatomy.BONE_INDEX["Scaphoid"]
    p, g = squares()
    gt[ri], pred[ri] = g, g                     # perfect: DSC 1
    gt[si], pred[si] = g, p                     # shifted: DSC 0.75
    pred[anatomy.BONE_INDEX["Ulna"]] = g        # FP on a class absent from G: DSC NaN (ignored), MSD inf
    out = metrics.segmentation_metrics(pred, gt)
    assert out["image"]["dsc"] == pytest.approx((1.0 + 0.75) / 2)
    assert out["image"]["voe"] == pytest.approx((0.0 + 0.4) / 2)
    # NSD: Radius 1, Scaphoid 1, Ulna 0 (G empty, P not) -> 2 / 3; MSD finite values only: (0 + 0.5) / 2
    assert out["image"]["nsd"] == pytest.approx(2 / 3)
    assert out["image"]["msd"] == pytest.approx(0.25)
    assert len(out["per_class"]["dsc"]) == c
    # overlap pair (Radius, Scaphoid) is pair 0: G overlap = g, P overlap = g ∧ p -> the 4x3 block (cols 3-5)
    # |P∩G| = 12, |P| + |G| = 12 + 16 -> DSC 24 / 28; every other pair is empty in G (NaN, ignored)
    assert anatomy.OVERLAP_PAIRS[0] == ("Radius", "Scaphoid")
    assert out["overlap_per_pair"]["dsc"][0] == pytest.approx(24 / 28)
    assert out["overlap"]["dsc"] == pytest.approx(24 / 28)
    assert len(out["overlap_per_pair"]["dsc"]) == 14
    with pytest.raises(ValueError, match="one shape"):
        metrics.segmentation_metrics(pred, gt[:, :4])


def test_erosion_metrics_and_zero_division():
    p, g = squares()
    m = metrics.erosion_metrics(p, g)
    # TP 12, FP 4, FN 4
    assert m["recall"] == pytest.approx(0.75) and m["precision"] == pytest.approx(0.75)
    empty = np.zeros_like(g)
    healthy = metrics.erosion_metrics(empty, empty)
    assert healthy["recall"] == 0.0 and healthy["precision"] == 0.0 and math.isnan(healthy["dsc"])
    assert math.isnan(metrics.erosion_metrics(empty, empty, zero_division=math.nan)["recall"])


def test_summarize_mean_sd_over_finite_values():
    s = metrics.summarize([1.0, 2.0, math.nan, math.inf, 3.0])
    # finite values 1, 2, 3: mean 2, sample SD 1
    assert s == {"mean": 2.0, "sd": 1.0, "n": 3}
    one = metrics.summarize([5.0])
    assert one["mean"] == 5.0 and math.isnan(one["sd"])
    assert math.isnan(metrics.summarize([])["mean"])


def test_evaluator_summaries():
    p, g = squares()
    ev = metrics.SegmentationEvaluator("erosion")
    ev.add(p, g, "a")
    ev.add(g, g, "b")
    s = ev.summary()
    # DSC per image 0.75 and 1.0 -> mean 0.875, SD = |1 - 0.75| / sqrt(2)
    assert s["dsc"]["mean"] == pytest.approx(0.875)
    assert s["dsc"]["sd"] == pytest.approx(0.25 / math.sqrt(2))
    bones = metrics.SegmentationEvaluator("bones")
    with pytest.raises(ValueError, match="pred must be"):
        bones.add(p[None], g[None])
    with pytest.raises(ValueError, match="no image"):
        metrics.SegmentationEvaluator("bones").summary()


def test_score_metrics_by_hand():
    gt = [0, 1, 2, 3]
    pred = [0, 1, 3, 3]
    out = metrics.score_metrics(gt, pred, 6, joints=["a", "a", "b", "b"])
    o = out["overall"]
    # QWK with weights (i - j)^2: sum w*O = 1; expected E = outer(hist_gt, hist_pred) / 4 gives sum w*E = 48 / 4
    assert o["qwk"] == pytest.approx(1 - 1 / 12)
    assert o["mae"] == pytest.approx(0.25) and o["acc"] == pytest.approx(0.75) and o["w1_acc"] == 1.0
    # recall per GT class: 0 -> 1, 1 -> 1, 2 -> 0, 3 -> 1
    assert o["balanced_acc"] == pytest.approx(0.75)
    assert o["binary_acc"] == 1.0 and o["binary_sensitivity"] == 1.0 and o["binary_specificity"] == 1.0
    b = out["per_joint"]["b"]
    # constant prediction: observed == expected -> kappa 0; no negative GT -> specificity NaN
    assert b["qwk"] == pytest.approx(0.0) and math.isnan(b["binary_specificity"])


def test_qwk_uses_score_distances_and_degenerate_case():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    g = rng.integers(0, 6, 200)
    p = np.clip(g + rng.integers(-1, 2, 200), 0, 5)
    assert metrics.quadratic_weighted_kappa(g, p, 6)[0] == pytest.approx(
        cohen_kappa_score(g, p, weights="quadratic"))
    # observed scores {0, 2} only: weights are squared score differences (a 0/2 disagreement weighs 4).
    # counts O: (0,0) 1, (0,2) 1, (2,2) 2 -> sum w*O = 4; E = outer(hist_gt [2,0,2], hist_pred [1,0,3]) / 4:
    # E(0,2) = 1.5, E(2,0) = 0.5 -> sum w*E = 4 * 2 = 8; kappa = 1 - 4 / 8
    qwk, _ = metrics.quadratic_weighted_kappa([0, 0, 2, 2], [0, 2, 2, 2], 6)
    assert qwk == pytest.approx(0.5)
    val, degenerate = metrics.quadratic_weighted_kappa([3, 3, 3], [3, 3, 3], 6)
    assert val == 1.0 and degenerate
    with pytest.raises(ValueError, match="outside 0..5"):
        metrics.score_metrics([0, 6], [0, 1], 6)
    with pytest.raises(ValueError, match="one length"):
        metrics.score_metrics([0, 1], [0], 6)
    with pytest.raises(ValueError, match="integer"):
        metrics.score_metrics([0.5, 1.0], [0, 1], 6)


def test_total_metrics_by_hand():
    t = metrics.total_metrics([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    # perfectly linear -> PCC 1; errors 1, 2, 3 -> RMSE sqrt(14 / 3), MAE 2
    assert t["pcc"] == pytest.approx(1.0)
    assert t["rmse"] == pytest.approx(math.sqrt(14 / 3))
    assert t["mae"] == pytest.approx(2.0)
    assert math.isnan(metrics.total_metrics([1.0, 1.0], [1.0, 2.0])["pcc"])
    with pytest.raises(ValueError, match="length >= 2"):
        metrics.total_metrics([1.0], [1.0])
