"""Training of the three models on a cache (:mod:`ramh_train.cache`): batch makers, augmentation, losses, evaluation.

Each ``train_*`` function builds its model, runs :func:`ramh_train.engine.train_loop` (checkpoint/resume, DDP,
mixed precision) and returns the run summary. The commands live in :mod:`ramh_train.cli`.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ramh_rt import anatomy
from ramh_rt.geometry import Transform

from . import losses, ordinal
from .cache import Cache
from .engine import TrainConfig, seed_everything, train_loop
from .models import BoneSegNet, GlobalNet, JointNet
from .models.bones import coord_channels

N_AREAS = len(anatomy.AREA_STEMS)


# ---- augmentation -------------------------------------------------------------------------------------------------

def _intensity_jitter(v: np.ndarray, rng: np.random.Generator, valid: np.ndarray | None = None) -> np.ndarray:
    """Gamma / contrast / brightness / noise jitter of a [0, 1] image (scanner variation beyond the phantoms')."""
    g = math.exp(rng.uniform(-0.3, 0.3))
    c = rng.uniform(0.85, 1.15)
    b = rng.uniform(-0.05, 0.05)
    out = np.clip(v, 0, 1) ** g * c + b
    out = out + rng.normal(0, rng.uniform(0, 0.02), size=v.shape).astype(np.float32)
    out = np.clip(out, 0, 1)
    if valid is not None:
        out = np.where(valid, out, v)
    return out.astype(np.float32)


# ---- bone segmentation ------------------------------------------------------------------------------------------

def bone_batch_maker(cache: Cache, crop_hw: tuple[int, int] | None, augment: bool = True):
    H, W = cache.spec.input_hw
    mean, std = cache.spec.mean, cache.spec.std

    def make(idx: np.ndarray, rng: np.random.Generator):
        xs, ys = [], []
        for i in idx:
            x = cache.image[i].astype(np.float32)
            y = cache.bones[i].astype(np.float32) / 255.0
            if crop_hw is not None:
                ch, cw = crop_hw
                r0, c0 = int(rng.integers(0, H - ch + 1)), int(rng.integers(0, W - cw + 1))
            else:
                (ch, cw), r0, c0 = (H, W), 0, 0
            x = x[r0:r0 + ch, c0:c0 + cw]
            y = y[:, r0:r0 + ch, c0:c0 + cw]
            if augment:
                v = x * std + mean
                v = _intensity_jitter(v, rng, valid=v > 0)
                x = (v - mean) / std
                if rng.random() < 0.5:  # a mirrored right hand is a left hand: names do not change
                    x, y = x[:, ::-1], y[:, :, ::-1]
            coords = coord_channels(ch, cw, full_hw=(H, W), offset=(r0, c0)).numpy()
            xs.append(np.concatenate([x[None], coords], axis=0))
            ys.append(y)
        return torch.from_numpy(np.ascontiguousarray(np.stack(xs))), torch.from_numpy(np.ascontiguousarray(np.stack(ys)))

    return make


def evaluate_bones(model: BoneSegNet, cache: Cache, max_items: int = 32, batch: int = 4) -> dict[str, Any]:
    """Dice per class at model resolution (targets: coverage >= 0.5), mean over images where the class exists."""
    make = bone_batch_maker(cache, None, augment=False)
    n = min(len(cache), max_items)
    inter = np.zeros(anatomy.NUM_BONE_CLASSES)
    dsc_sum = np.zeros(anatomy.NUM_BONE_CLASSES)
    dsc_n = np.zeros(anatomy.NUM_BONE_CLASSES)
    with torch.no_grad():
        for s in range(0, n, batch):
            x, y = make(np.arange(s, min(n, s + batch)), np.random.default_rng(0))
            pred = model(x)["logits"] > 0
            gt = y >= 0.5
            i = (pred & gt).sum((2, 3)).double().numpy()
            p, g = pred.sum((2, 3)).double().numpy(), gt.sum((2, 3)).double().numpy()
            has = g > 0
            d = np.where(has, 2 * i / np.maximum(p + g, 1), 0)
            dsc_sum += (d * has).sum(0)
            dsc_n += has.sum(0)
            inter += i.sum(0)
    per = {name: float(dsc_sum[c] / dsc_n[c]) for c, name in enumerate(anatomy.BONE_NAMES) if dsc_n[c]}
    bones = [per[b] for b in anatomy.BONES if b in per]
    return {"dsc_mean_bones": float(np.mean(bones)), "dsc_min": float(min(per.values())), "dsc": per}


def train_bones(cache_dir: str, val_dir: str | None, cfg: TrainConfig, *, widths=(16, 32, 64, 128, 256),
                crop_hw=(320, 256)) -> tuple[BoneSegNet, dict]:
    seed_everything(cfg.seed)  # the initial weights depend on the run seed only, not on what ran before
    cache = Cache(cache_dir)
    val = Cache(val_dir) if val_dir else None
    model = BoneSegNet(widths=tuple(widths), input_hw=tuple(cache.spec.input_hw))
    make = bone_batch_maker(cache, tuple(crop_hw) if crop_hw else None)

    def loss_fn(m, batch):
        x, y = batch
        out = m(x)
        r = losses.multilabel_seg_loss(out["logits"], y, soft=True)
        return r.total, r.parts

    summary = train_loop(model=model, model_config=model.config, cfg=cfg, n_items=len(cache), make_batch=make,
                         loss_fn=loss_fn, evaluate=(lambda m: evaluate_bones(m, val)) if val else None,
                         eval_every=cfg.extra.get("eval_every", 0), desc="bones")
    return model, summary


# ---- joint model -------------------------------------------------------------------------------------------------

def joint_items(cache: Cache) -> np.ndarray:
    """(image, area) pairs whose ROI was located: M x 2 int."""
    located = ~np.isnan(cache.roi[:, :, 0])
    return np.argwhere(located)


def joint_batch_maker(cache: Cache, items: np.ndarray, augment: bool = True, jitter: float = 0.06,
                      row_weights: np.ndarray | None = None):
    """(indices, rng) -> (roi, window, area, erosion, be, jsn, be_valid, jsn_valid[, row_weight]) for the items
    [M, 2] (image, area); ``row_weights`` [M], when given, is appended per row (e.g. inverse sampling weights)."""
    S = cache.spec.roi_size
    C = cache.spec.crop_size
    margin = (C - S) // 2
    be_ok = np.array([a.be for a in anatomy.SVDH_AREAS])
    jsn_ok = np.array([a.jsn for a in anatomy.SVDH_AREAS])

    def make(idx: np.ndarray, rng: np.random.Generator):
        rois, windows, areas, eros, be, jsn = [], [], [], [], [], []
        for k in idx:
            i, a = items[k]
            crop = cache.crops[i, a].astype(np.float32)
            ero = cache.erosion[i, a].astype(np.float32) / 255.0
            if augment:
                # Jitter the ROI position the way an imperfect bone mask would (a few % of the ROI size).
                j = int(round(jitter * S))
                dy, dx = rng.integers(-j, j + 1, size=2)
                r0 = int(np.clip(margin + dy, 0, C - S))
                c0 = int(np.clip(margin + dx, 0, C - S))
            else:
                r0 = c0 = margin
            crop = crop[r0:r0 + S, c0:c0 + S]
            ero = ero[r0:r0 + S, c0:c0 + S]
            lo, hi = (float(v) for v in cache.window[i])
            if augment:
                if rng.random() < 0.5:
                    crop, ero = crop[:, ::-1], ero[:, ::-1]
                span = max(hi - lo, 1e-6)
                v = _intensity_jitter((crop - lo) / span, rng)
                crop = v * span + lo
            rois.append(crop[None])
            eros.append(ero[None])
            windows.append((lo, hi))
            oh = np.zeros(N_AREAS, np.float32)
            oh[a] = 1
            areas.append(oh)
            be.append(cache.be[i, a])
            jsn.append(cache.jsn[i, a])
        be_t = torch.tensor(np.array(be), dtype=torch.long)
        jsn_t = torch.tensor(np.array(jsn), dtype=torch.long)
        a_idx = items[idx, 1]
        return (torch.from_numpy(np.ascontiguousarray(np.stack(rois))),
                torch.tensor(np.array(windows), dtype=torch.float32),
                torch.from_numpy(np.stack(areas)),
                torch.from_numpy(np.ascontiguousarray(np.stack(eros))),
                be_t.clamp_min(0), jsn_t.clamp_min(0),
                torch.from_numpy(be_ok[a_idx] & (np.array(be) >= 0)),
                torch.from_numpy(jsn_ok[a_idx] & (np.array(jsn) >= 0)),
                *(() if rw is None else (rw[idx],)))

    rw = None if row_weights is None else torch.as_tensor(np.asarray(row_weights), dtype=torch.float32)
    return make


def _qwk(truth, pred, degenerate: float) -> float:
    """Quadratic weighted kappa; ``degenerate`` where truth and prediction hold a single class (kappa undefined)."""
    from sklearn.metrics import cohen_kappa_score

    truth, pred = list(truth), list(pred)
    return float(cohen_kappa_score(truth, pred, weights="quadratic")) if len(set(truth) | set(pred)) > 1 \
        else degenerate


class _ErosionDice:
    """Pooled erosion Dice (and precision/recall) of probability maps at several thresholds, over batches."""

    def __init__(self, thresholds):
        self.ths = torch.tensor([float(t) for t in thresholds])
        self.inter = torch.zeros(len(self.ths), dtype=torch.float64)
        self.pred = torch.zeros(len(self.ths), dtype=torch.float64)
        self.truth = 0.0

    def add(self, erosion_logits: torch.Tensor, target: torch.Tensor) -> None:
        prob = torch.sigmoid(erosion_logits).flatten()
        gt = (target >= 0.5).flatten()
        self.truth += float(gt.sum())
        above = prob[None, :] >= self.ths[:, None]
        self.inter += (above & gt[None, :]).sum(1).double()
        self.pred += above.sum(1).double()

    def table(self) -> dict[float, dict[str, float]]:
        out = {}
        for k, t in enumerate(self.ths.tolist()):
            inter, pred, denom = float(self.inter[k]), float(self.pred[k]), float(self.pred[k]) + self.truth
            out[round(t, 4)] = {"dsc": 2 * inter / denom if denom else 1.0,
                                "precision": inter / pred if pred else 0.0,
                                "recall": inter / self.truth if self.truth else 0.0}
        return out

    def best(self) -> dict[str, Any]:
        """``{"threshold", "dsc", "table"}``: the threshold of the highest pooled Dice, with the whole table."""
        table = self.table()
        t = max(table, key=lambda k: table[k]["dsc"])
        return {"threshold": t, "dsc": table[t]["dsc"], "table": table}


def evaluate_joints(model: JointNet, cache: Cache, max_items: int = 2000, batch: int = 64) -> dict[str, Any]:
    """QWK (BE, JSN), erosion Dice on the validation crops (centre crops, no augmentation)."""
    items = joint_items(cache)[:max_items]
    make = joint_batch_maker(cache, items, augment=False)
    be_p, be_t, jsn_p, jsn_t = [], [], [], []
    dice = _ErosionDice((0.5,))
    with torch.no_grad():
        for s in range(0, len(items), batch):
            roi, win, area, ero, be, jsn, bv, jv = make(np.arange(s, min(len(items), s + batch)),
                                                         np.random.default_rng(0))
            out = model(roi, win, area)
            pe = torch.from_numpy(ordinal.predict(out["be_probs"]))
            pj = torch.from_numpy(ordinal.predict(out["jsn_probs"]))
            be_p += pe[bv].tolist()
            be_t += be[bv].tolist()
            jsn_p += pj[jv].tolist()
            jsn_t += jsn[jv].tolist()
            dice.add(out["erosion_logits"], ero)

    return {"be_qwk": _qwk(be_t, be_p, 1.0), "jsn_qwk": _qwk(jsn_t, jsn_p, 1.0),
            "erosion_dsc_pooled": dice.table()[0.5]["dsc"], "n": len(items)}


def joint_sample_weights(cache: Cache, items: np.ndarray, positive_weight: float) -> np.ndarray:
    """Sampling weight of each (image, area) item: ``positive_weight`` for an item with disease (erosion pixels in its
    crop, or a BE/JSN score above 0), 1 for a healthy one.

    Most joints are healthy and erosions cover a small share of the crops that have any: with uniform batches the
    erosion head sees too few lesion pixels to leave the all-background solution for hundreds of steps (measured on
    the phantom set), so diseased joints are drawn more often.
    """
    if not positive_weight > 0:
        raise ValueError(f"positive_weight must be > 0, got {positive_weight}")
    i, a = items[:, 0], items[:, 1]
    be = np.asarray(cache.be)[i, a]
    jsn = np.asarray(cache.jsn)[i, a]
    eroded = np.array([bool((cache.erosion[ii, aa] >= 128).any()) for ii, aa in zip(i, a)], dtype=bool)
    return np.where(eroded | (be > 0) | (jsn > 0), float(positive_weight), 1.0)


def train_joints(cache_dir: str, val_dir: str | None, cfg: TrainConfig, *, positive_weight: float = 1.0,
                 **model_kw) -> tuple[JointNet, dict]:
    seed_everything(cfg.seed)
    cache = Cache(cache_dir)
    val = Cache(val_dir) if val_dir else None
    items = joint_items(cache)
    model = JointNet(roi_size=cache.spec.roi_size, norm_mean=cache.spec.mean, norm_std=cache.spec.std, **model_kw)
    # Most joints score 0: start the ordinal thresholds at the training histogram (a fresh run only; a resumed
    # one restores its own).
    be = np.asarray(cache.be)[items[:, 0], items[:, 1]]
    jsn = np.asarray(cache.jsn)[items[:, 0], items[:, 1]]
    model.be_head.set_prior(np.bincount(be[be >= 0], minlength=anatomy.BE_MAX + 1))
    model.jsn_head.set_prior(np.bincount(jsn[jsn >= 0], minlength=anatomy.JSN_MAX + 1))
    weights = None if positive_weight == 1.0 else joint_sample_weights(cache, items, positive_weight)
    # oversampled rows carry their inverse sampling weight, which the score losses use
    make = joint_batch_maker(cache, items, row_weights=None if weights is None else 1.0 / weights)

    def loss_fn(m, batch):
        roi, win, area, ero, be, jsn, bv, jv = batch[:8]
        out = m(roi, win, area)
        r = losses.joint_loss(out, ero, be, jsn, bv, jv, score_weights=batch[8] if len(batch) > 8 else None)
        return r.total, r.parts

    summary = train_loop(model=model, model_config=model.config, cfg=cfg, n_items=len(items), make_batch=make,
                         loss_fn=loss_fn, evaluate=(lambda m: evaluate_joints(m, val)) if val else None,
                         eval_every=cfg.extra.get("eval_every", 0), desc="joints", sample_weights=weights)
    return model, summary


# ---- whole-image model --------------------------------------------------------------------------------------------

def score_density(cache: Cache, i: int, grid_hw: tuple[int, int], flip: bool = False,
                  sigma_cells: float = 1.0) -> np.ndarray:
    """Where hand ``i``'s SvdH points are, as a map over the whole-image model's last feature grid ([h, w] float32).

    Each area's points (BE + JSN) are a Gaussian blob (``sigma_cells``, normalised to the points) at its ROI centre,
    mapped into the model input by the cache's letterbox; points of an area that was not located are spread evenly.
    So ``map.sum() == the hand's SvdH total`` exactly, and ``flip`` mirrors it with a horizontally flipped input.
    Used to supervise GlobalNet's CAM (density-map regression, as in counting by density): the total alone is a weak
    signal for 500 hands, the map says which joints carry it.
    """
    h, w = grid_hw
    H, W = cache.spec.input_hw
    lb = cache.meta["items"][i]["letterbox"]
    to_model = Transform.scale_shift(lb["scale_x"], lb["scale_y"], lb["pad_x"], lb["pad_y"])
    if flip:
        to_model = to_model.then(Transform.mirror(W))
    points = np.maximum(cache.be[i].astype(np.float64), 0) + np.maximum(cache.jsn[i].astype(np.float64), 0)
    out = np.zeros((h, w), np.float64)
    yy, xx = np.mgrid[0:h, 0:w]
    for k in np.flatnonzero(points > 0):
        cx, cy = float(cache.roi[i, k, 0]), float(cache.roi[i, k, 1])
        if not (np.isfinite(cx) and np.isfinite(cy)):
            out += points[k] / (h * w)
            continue
        (mx, my), = to_model.apply([[cx, cy]])
        u, v = mx / W * w - 0.5, my / H * h - 0.5  # cell coordinates (cell centres at integers)
        g = np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * sigma_cells ** 2))
        total = g.sum()
        out += points[k] * (g / total if total > 0 else 1.0 / (h * w))
    return out.astype(np.float32)


def global_batch_maker(cache: Cache, augment: bool = True, pool: int = 2, density_grid: tuple[int, int] | None = None):
    """Batches for the whole-image model: the cached bone-model inputs, average-pooled ``pool`` x ``pool`` (the
    exported graph applies the same pool, so the runtime feeds it the bone model's input), and the totals; with
    ``density_grid`` (the model's CAM size) also the :func:`score_density` maps [N, 1, h, w]."""
    mean, std = cache.spec.mean, cache.spec.std

    def make(idx: np.ndarray, rng: np.random.Generator):
        xs, ds = [], []
        for i in idx:
            x = cache.image[i].astype(np.float32)
            flip = False
            if augment:
                v = x * std + mean
                v = _intensity_jitter(v, rng, valid=v > 0)
                x = (v - mean) / std
                flip = bool(rng.random() < 0.5)
                if flip:
                    x = x[:, ::-1]
            xs.append(x[None])
            if density_grid is not None:
                ds.append(score_density(cache, int(i), density_grid, flip=flip)[None])
        x = torch.from_numpy(np.ascontiguousarray(np.stack(xs)))
        if pool > 1:
            x = torch.nn.functional.avg_pool2d(x, pool)
        totals = torch.from_numpy(cache.totals[idx, 2].astype(np.float32))
        if density_grid is None:
            return x, totals
        return x, totals, torch.from_numpy(np.stack(ds))

    return make


def global_input_pool(model: GlobalNet, input_hw: tuple[int, int]) -> int:
    """The pool factor between the bone-model input ``input_hw`` (a cache's) and the whole-image model's input.

    Raises:
        ValueError: the model's input is not ``input_hw`` divided by one integer on both axes.
    """
    (H, W), (h, w) = tuple(input_hw), model.input_hw
    if H % h or W % w or H // h != W // w:
        raise ValueError(f"the global model's input {h}x{w} is not the cache's {H}x{W} divided by an integer")
    return H // h


def evaluate_global(model: GlobalNet, cache: Cache, batch: int = 16) -> dict[str, Any]:
    make = global_batch_maker(cache, augment=False, pool=global_input_pool(model, cache.spec.input_hw))
    preds, truth = [], []
    with torch.no_grad():
        for s in range(0, len(cache), batch):
            x, t = make(np.arange(s, min(len(cache), s + batch)), np.random.default_rng(0))
            preds += model(x)["svdh_total"][:, 0].tolist()
            truth += t.tolist()
    p, t = np.array(preds), np.array(truth)
    pcc = float(np.corrcoef(p, t)[0, 1]) if p.std() > 0 and t.std() > 0 else 0.0
    return {"pcc": pcc, "rmse": float(np.sqrt(np.mean((p - t) ** 2))), "n": len(t)}


def train_global(cache_dir: str, val_dir: str | None, cfg: TrainConfig, pool: int = 2, density_weight: float = 0.0,
                 **model_kw) -> tuple[GlobalNet, dict]:
    """Train the whole-image regressor on the cache's bone-model inputs pooled ``pool`` x ``pool`` (1: full size).

    ``density_weight > 0`` adds the CAM density loss (:func:`score_density`, :func:`ramh_train.losses.global_loss`):
    the model still sees only the whole image, but learns where the points of the total lie."""
    seed_everything(cfg.seed)
    cache = Cache(cache_dir)
    val = Cache(val_dir) if val_dir else None
    h, w = cache.spec.input_hw
    if pool < 1 or h % pool or w % pool or (h // pool) % 16 or (w // pool) % 16:
        raise ValueError(f"pool {pool} must divide the cache's input {h}x{w} into multiples of 16")
    if density_weight < 0:
        raise ValueError(f"density_weight must be >= 0, got {density_weight}")
    model = GlobalNet(input_hw=(h // pool, w // pool), **model_kw)
    make = global_batch_maker(cache, pool=pool, density_grid=model.cam_hw if density_weight > 0 else None)

    def loss_fn(m, batch):
        x, totals, *density = batch
        r = losses.global_loss(m(x), totals, density=density[0] if density else None, density_weight=density_weight)
        return r.total, r.parts

    summary = train_loop(model=model, model_config=model.config, cfg=cfg, n_items=len(cache), make_batch=make,
                         loss_fn=loss_fn, evaluate=(lambda m: evaluate_global(m, val)) if val else None,
                         eval_every=cfg.extra.get("eval_every", 0), desc="global")
    return model, summary


EROSION_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95)


def choose_erosion_threshold(model: JointNet, cache: Cache, thresholds=EROSION_THRESHOLDS, batch: int = 64,
                             max_items: int | None = None) -> dict[str, Any]:
    """The erosion-probability threshold that maximises the pooled erosion Dice on a (validation) cache.

    Diseased joints are oversampled in training (``--positive-weight``), so the erosion head's probabilities are
    calibrated to a prior with more erosion than real hands have and 0.5 can over-segment (measured on the
    validation crops: the 900-step joint model had precision 0.26 / recall 0.73 at 0.5 and its best Dice at 0.9;
    the shipped 2000-step model's best is 0.6). The threshold is chosen on validation crops, never on the test set.
    Returns ``{"threshold", "dsc", "table": {threshold: {"dsc", "precision", "recall"}}}``.
    """

    if not thresholds:
        raise ValueError("thresholds must not be empty")
    items = joint_items(cache)[:max_items]
    if not len(items):
        raise ValueError(f"{cache.path} has no located joints to calibrate the erosion threshold on")
    dice = _ErosionDice(thresholds)
    _joint_features(model, cache, items, erosion=dice, desc="erosion threshold")
    return dice.best()


# ---- joint score heads refit on fixed features ---------------------------------------------------------------------

def _joint_features(model: JointNet, cache: Cache, items: np.ndarray, batch: int = 64, flips: bool = False,
                    desc: str = "features", erosion: _ErosionDice | None = None) -> tuple[np.ndarray, ...]:
    """Score features and targets of ``items`` (centre crops); with ``erosion`` also its pooled erosion Dice,
    from the same trunk pass (unflipped crops)."""
    from tqdm import tqdm

    make = joint_batch_maker(cache, items, augment=False)
    feats, be, jsn, bv, jv = [], [], [], [], []
    model.eval()
    with torch.no_grad():
        for s in tqdm(range(0, len(items), batch), desc=desc, dynamic_ncols=True):
            roi, win, area, ero, b, j, vb, vj = make(np.arange(s, min(len(items), s + batch)), None)
            views = [roi, torch.flip(roi, dims=[3])] if flips else [roi]
            for k, r in enumerate(views):
                seg, f = model.trunk_outputs(r.contiguous(), win, area)
                if erosion is not None and k == 0:
                    erosion.add(seg, ero)
                feats.append(f.numpy())
                for acc, t in ((be, b), (jsn, j), (bv, vb), (jv, vj)):
                    acc.append(t.numpy())
    return tuple(np.concatenate(a) for a in (feats, be, jsn, bv, jv))


def refit_joint_heads(run_dir: str, cache_dir: str, val_dir: str, out_dir: str, *, epochs: int = 40,
                      batch_size: int = 256, lr: float = 2e-3, seed: int = 0, threads: int = 0,
                      max_items: int | None = None, flips: bool = False) -> dict[str, Any]:
    """Refit the BE and JSN score heads of a trained JointNet on its fixed features, choosing the epoch by QWK.

    Trained end to end, the score heads barely leave the grade prior within a CPU-sized budget while the erosion
    head learns (measured: QWK 0 after 600 steps), because every encoder step moves the features they read.
    With the trunk frozen the features of every training crop (and its mirror image) are computed once and the
    small heads are fitted on them for many epochs in seconds: RAM-H1200's "model selection by QWK" is then
    done per epoch on the validation crops. The trunk (and so the erosion output) is unchanged; the erosion
    threshold is chosen on the validation crops (:func:`choose_erosion_threshold`) and saved with the run, where
    ``ramh-train export`` takes it from.

    Writes ``out_dir/last.pt`` (loadable by :func:`ramh_train.engine.load_trained`, exportable like any run) and
    ``out_dir/refit.json``; returns the report. ``max_items``: use only the first training items (quick checks);
    ``flips``: add the mirror image of every training crop (twice the feature extraction).
    """
    import json
    from pathlib import Path

    from .engine import _atomic_torch_save, load_trained
    from .models import from_config

    if threads:
        torch.set_num_threads(threads)
    seed_everything(seed)
    model, state = load_trained(run_dir, from_config)
    if not isinstance(model, JointNet):
        raise ValueError(f"{run_dir} holds a {type(model).__name__}, not a JointNet run")
    train, val = Cache(cache_dir), Cache(val_dir)
    f, be, jsn, bv, jv = _joint_features(model, train, joint_items(train)[:max_items], flips=flips,
                                         desc="features train")
    # the validation pass also calibrates the erosion threshold (the refit leaves the trunk, so the erosion
    # output, as it is)
    erosion = _ErosionDice(EROSION_THRESHOLDS)
    vf, vbe, vjsn, vbv, vjv = _joint_features(model, val, joint_items(val), desc="features val", erosion=erosion)
    mu, sd = f.mean(0), f.std(0) + 1e-6
    # standardise inside the heads (folded into the first Linear below) so Adam sees unit-scale inputs
    ft = torch.from_numpy((f - mu) / sd).float()
    vft = torch.from_numpy((vf - mu) / sd).float()
    heads = {"be": (model.be_mlp, model.be_head, be, bv, vbe, vbv), "jsn": (model.jsn_mlp, model.jsn_head, jsn, jv,
                                                                          vjsn, vjv)}
    report: dict[str, Any] = {"run": str(run_dir), "epochs": epochs, "train_rows": int(len(f)), "val_rows": int(len(vf))}
    rng = np.random.default_rng(seed)
    for kind, (mlp, head, y, valid, vy, vvalid) in heads.items():
        # fresh head weights, thresholds at the training prior
        for mod in mlp.modules():
            if isinstance(mod, torch.nn.Linear):
                mod.reset_parameters()
        head.reset_score()
        head.set_prior(np.bincount(y[valid], minlength=head.num_classes))
        params = list(mlp.parameters()) + list(head.parameters())
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
        yt = torch.from_numpy(y).long()
        vt = torch.from_numpy(valid)
        rows = np.flatnonzero(valid)
        best = (-2.0, None, -1)
        history = []
        for epoch in range(epochs):
            mlp.train()
            perm = rng.permutation(rows)
            for s in range(0, len(perm), batch_size):
                idx = torch.from_numpy(perm[s:s + batch_size])
                logits = head(mlp(ft[idx]))
                loss = losses.coral_loss(logits, yt[idx], vt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            mlp.eval()
            with torch.no_grad():
                pv = ordinal.predict(head.probs(head(mlp(vft[torch.from_numpy(vvalid)]))))
            q = _qwk(vy[vvalid], pv, 0.0)
            history.append(round(q, 4))
            if q > best[0]:
                snapshot = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in (mlp, head)]
                best = (q, snapshot, epoch)
        mlp.load_state_dict(best[1][0])
        head.load_state_dict(best[1][1])
        report[kind] = {"val_qwk": best[0], "best_epoch": best[2], "val_qwk_per_epoch": history}
    # fold the standardisation into the first Linear of each MLP: W' = W / sd, b' = b - W' mu
    with torch.no_grad():
        for mlp in (model.be_mlp, model.jsn_mlp):
            lin = mlp[0]
            w = lin.weight / torch.from_numpy(sd).float()
            lin.bias -= w @ torch.from_numpy(mu).float()
            lin.weight.copy_(w)
    report["erosion"] = erosion.best()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "model_config": model.config, "step": state.get("step"),
             "refit": report, "source_run": str(run_dir), "erosion_threshold": report["erosion"]["threshold"]}
    _atomic_torch_save(state, out / "last.pt")
    (out / "refit.json").write_text(json.dumps(report, indent=2))
    return report
