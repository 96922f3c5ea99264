"""Training losses for the three models.

All losses return a scalar tensor (mean over what is valid) that stays connected to the graph even when nothing in
the batch is valid (it is then exactly 0), so a training loop never needs special cases. Composite losses return a
:class:`LossOutput` with the total and its detached parts for logging.

Conventions:
    * segmentation losses take logits [N, C, H, W] and binary targets of the same shape (any dtype; > 0.5 is
      foreground);
    * soft Dice is computed per class over the whole batch ("batch Dice"): sums over N, H, W, then
      ``1 - (2 I + s) / (P + T + s)``. Classes with no foreground pixel in the batch's targets are left out of the
      Dice mean (their false positives are still penalised by the BCE/focal term): with a tiny object count and a
      small ``s`` the Dice of an absent class is otherwise dominated by noise and drives unstable gradients;
    * ordinal losses take cumulative logits [N, K-1] (:mod:`ramh_train.ordinal`), integer targets [N] in 0..K-1 and
      a boolean ``valid`` mask [N] (False where the area has no such score, or the score is unknown).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

from ramh_rt import anatomy

from .ordinal import ordinal_levels, probs_from_logits


class LossOutput(NamedTuple):
    """A composite loss: ``total`` (scalar tensor to backpropagate) and ``parts`` (name -> float, for logging)."""

    total: torch.Tensor
    parts: dict[str, float]


def _check_pair(logits: torch.Tensor, target: torch.Tensor, name: str = "target") -> None:
    if logits.shape != target.shape:
        raise ValueError(f"{name} shape {tuple(target.shape)} does not match logits shape {tuple(logits.shape)}")
    if logits.ndim < 2:
        raise ValueError(f"logits must be [N, C, ...], got shape {tuple(logits.shape)}")


def _zero(ref: torch.Tensor) -> torch.Tensor:
    # a zero that keeps the graph (so .backward() works even when nothing was valid)
    return ref.sum() * 0.0


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, *, class_weights: torch.Tensor | None = None,
                   smooth: float = 1.0, sample_mask: torch.Tensor | None = None, soft: bool = False) -> torch.Tensor:
    """Per-class soft Dice loss on sigmoid probabilities, batch Dice, absent classes skipped (module docstring).

    Args:
        logits: [N, C, ...] logits.
        target: [N, C, ...] binary targets.
        class_weights: optional [C] non-negative weights of the per-class Dice terms (renormalised over the
            classes present in the batch).
        smooth: the additive ``s`` in numerator and denominator (> 0).
        sample_mask: optional [N] bool, samples to include (e.g. only those with an annotation).
        soft: use ``target`` as given (coverage fractions in [0, 1], e.g. of an antialiased downsampled mask)
            instead of binarising it at 0.5: the boundary pixels then teach sub-pixel boundary positions.

    Returns:
        scalar: weighted mean over present classes of ``1 - Dice_c``; 0 when no class is present.
    """
    _check_pair(logits, target)
    if not smooth > 0:
        raise ValueError(f"smooth must be > 0, got {smooth}")
    probs = torch.sigmoid(logits.float())
    tgt = target.to(probs.dtype) if soft else (target > 0.5).to(probs.dtype)
    if sample_mask is not None:
        if sample_mask.shape != (logits.shape[0],):
            raise ValueError(f"sample_mask must be [{logits.shape[0]}], got {tuple(sample_mask.shape)}")
        probs = probs[sample_mask.bool()]
        tgt = tgt[sample_mask.bool()]
        if probs.shape[0] == 0:
            return _zero(logits)
    dims = [0] + list(range(2, probs.ndim))
    inter = (probs * tgt).sum(dims)
    denom = probs.sum(dims) + tgt.sum(dims)
    dice = (2.0 * inter + smooth) / (denom + smooth)
    present = tgt.sum(dims) > 0
    w = present.to(dice.dtype)
    if class_weights is not None:
        if class_weights.shape != (logits.shape[1],) or bool((class_weights < 0).any()):
            raise ValueError(f"class_weights must be [{logits.shape[1]}] and non-negative")
        w = w * class_weights.to(dice)
    if float(w.sum()) <= 0:
        return _zero(logits)
    return ((1.0 - dice) * w).sum() / w.sum()


def bce_loss(logits: torch.Tensor, target: torch.Tensor, *, class_weights: torch.Tensor | None = None,
             pos_weight: torch.Tensor | float | None = None, sample_mask: torch.Tensor | None = None,
             soft: bool = False) -> torch.Tensor:
    """Binary cross-entropy with logits, mean over pixels (and classes, optionally weighted per class [C]), over
    the samples selected by ``sample_mask`` [N]. ``pos_weight`` scales the foreground term (scalar or [C]).
    ``soft``: targets are fractions in [0, 1] used as given (see :func:`soft_dice_loss`)."""
    _check_pair(logits, target)
    tgt = target.to(logits.dtype) if soft else (target > 0.5).to(logits.dtype)
    pw = None
    if pos_weight is not None:
        pw = torch.as_tensor(pos_weight, dtype=logits.dtype, device=logits.device)
        if pw.ndim == 1:
            pw = pw.view(1, -1, *([1] * (logits.ndim - 2)))
    per = F.binary_cross_entropy_with_logits(logits, tgt, reduction="none", pos_weight=pw)
    if class_weights is not None:
        if class_weights.shape != (logits.shape[1],):
            raise ValueError(f"class_weights must be [{logits.shape[1]}]")
        per = per * class_weights.to(per).view(1, -1, *([1] * (logits.ndim - 2)))
    if sample_mask is not None:
        if sample_mask.shape != (logits.shape[0],):
            raise ValueError(f"sample_mask must be [{logits.shape[0]}], got {tuple(sample_mask.shape)}")
        per = per[sample_mask.bool()]
        if per.shape[0] == 0:
            return _zero(logits)
    return per.mean()


def focal_loss(logits: torch.Tensor, target: torch.Tensor, *, gamma: float = 2.0, alpha: float | None = 0.75,
               sample_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Binary focal loss (Lin et al.): ``-alpha_t (1 - p_t)^gamma log p_t``, mean over pixels of the selected
    samples. ``alpha`` weights the foreground (``1 - alpha`` the background); None disables it."""
    _check_pair(logits, target)
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    tgt = (target > 0.5).to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, tgt, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * tgt + (1 - p) * (1 - tgt)
    loss = ce * (1 - p_t) ** gamma
    if alpha is not None:
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        loss = loss * (alpha * tgt + (1 - alpha) * (1 - tgt))
    if sample_mask is not None:
        if sample_mask.shape != (logits.shape[0],):
            raise ValueError(f"sample_mask must be [{logits.shape[0]}], got {tuple(sample_mask.shape)}")
        loss = loss[sample_mask.bool()]
        if loss.shape[0] == 0:
            return _zero(logits)
    return loss.mean()


def multilabel_seg_loss(logits: torch.Tensor, target: torch.Tensor, *, class_weights: torch.Tensor | None = None,
                        dice_weight: float = 1.0, bce_weight: float = 1.0, smooth: float = 1.0,
                        soft: bool = False) -> LossOutput:
    """Bone segmentation loss: ``dice_weight * soft Dice + bce_weight * BCE`` over the 30 multilabel channels
    (``soft``: coverage-fraction targets, see :func:`soft_dice_loss`)."""
    dice = soft_dice_loss(logits, target, class_weights=class_weights, smooth=smooth, soft=soft)
    bce = bce_loss(logits, target, class_weights=class_weights, soft=soft)
    total = dice_weight * dice + bce_weight * bce
    return LossOutput(total, {"dice": float(dice.detach()), "bce": float(bce.detach())})


def erosion_seg_loss(logits: torch.Tensor, target: torch.Tensor, *, valid: torch.Tensor | None = None,
                     dice_weight: float = 1.0, focal_weight: float = 10.0, bce_weight: float = 0.0,
                     gamma: float = 2.0, alpha: float = 0.75, smooth: float = 1.0) -> LossOutput:
    """Erosion mask loss for sparse masks: batch soft Dice (skipped when the batch has no erosion pixel) + focal
    (+ optional plain BCE). Logits/targets [N, 1, H, W]; ``valid`` [N] bool marks crops with an erosion annotation.

    The focal term carries the signal on crops without erosion (and keeps background pixels honest); its default
    weight 10 brings its magnitude (~1e-2 per pixel) to the Dice term's scale.
    """
    dice = soft_dice_loss(logits, target, smooth=smooth, sample_mask=valid)
    focal = focal_loss(logits, target, gamma=gamma, alpha=alpha, sample_mask=valid)
    total = dice_weight * dice + focal_weight * focal
    parts = {"dice": float(dice.detach()), "focal": float(focal.detach())}
    if bce_weight:
        bce = bce_loss(logits, target, sample_mask=valid)
        total = total + bce_weight * bce
        parts["bce"] = float(bce.detach())
    return LossOutput(total, parts)


def _check_ordinal(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    if logits.ndim != 2 or logits.shape[1] < 1:
        raise ValueError(f"logits must be [N, K-1], got shape {tuple(logits.shape)}")
    n, k1 = logits.shape
    if target.shape != (n,):
        raise ValueError(f"target must be [{n}], got shape {tuple(target.shape)}")
    valid = torch.ones(n, dtype=torch.bool, device=logits.device) if valid is None else valid.bool()
    if valid.shape != (n,):
        raise ValueError(f"valid must be [{n}], got shape {tuple(valid.shape)}")
    t = target[valid]
    if t.numel() and (bool((t < 0).any()) or bool((t > k1).any()) or bool((t != t.round()).any())):
        raise ValueError(f"valid targets must be integers in 0..{k1}, got {t.tolist()}")
    return valid


def coral_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None, *,
               task_weights: torch.Tensor | None = None, sample_weights: torch.Tensor | None = None) -> torch.Tensor:
    """CORAL loss: mean over valid samples of the summed binary cross-entropies of the K-1 tasks "y > k".

    Args:
        logits: [N, K-1] cumulative logits.
        target: [N] integer scores (any numeric dtype; invalid rows may hold anything, e.g. -1).
        valid: [N] bool, rows that carry a score (default all).
        task_weights: optional [K-1] importance weights of the binary tasks (CORAL's lambda).
        sample_weights: optional [N] non-negative row weights: the result is then the weighted mean over valid
            rows (importance weights that undo an oversampling, for instance).

    Returns:
        scalar, 0 when no row is valid.

    Raises:
        ValueError: shape mismatch, or a valid target outside 0..K-1.
    """
    valid = _check_ordinal(logits, target, valid)
    if not bool(valid.any()):
        return _zero(logits)
    z = logits[valid]
    levels = ordinal_levels(target[valid].long(), logits.shape[1] + 1).to(z)
    per = F.binary_cross_entropy_with_logits(z, levels, reduction="none")
    if task_weights is not None:
        if task_weights.shape != (logits.shape[1],):
            raise ValueError(f"task_weights must be [{logits.shape[1]}]")
        per = per * task_weights.to(per)
    per = per.sum(dim=1)
    if sample_weights is None:
        return per.mean()
    if sample_weights.shape != (logits.shape[0],):
        raise ValueError(f"sample_weights must be [{logits.shape[0]}], got {tuple(sample_weights.shape)}")
    w = sample_weights[valid].to(per)
    return (per * w).sum() / w.sum().clamp_min(1e-12)


def cumulative_link_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None, *,
                         eps: float = 1e-7) -> torch.Tensor:
    """Negative log-likelihood of the cumulative-link model: ``-log p_y`` with ``p`` from
    :func:`ramh_train.ordinal.probs_from_logits` (clamped at ``eps``), mean over valid rows; 0 if none."""
    valid = _check_ordinal(logits, target, valid)
    if not bool(valid.any()):
        return _zero(logits)
    p = probs_from_logits(logits[valid].float())
    picked = p.gather(1, target[valid].long().unsqueeze(1)).squeeze(1)
    return -torch.log(picked.clamp_min(eps)).mean()


def joint_loss(outputs: dict[str, torch.Tensor], erosion_mask: torch.Tensor, be: torch.Tensor, jsn: torch.Tensor,
               be_valid: torch.Tensor, jsn_valid: torch.Tensor, *, erosion_valid: torch.Tensor | None = None,
               ordinal: str = "coral", seg_weight: float = 1.0, be_weight: float = 1.0,
               jsn_weight: float = 1.0, score_weights: torch.Tensor | None = None) -> LossOutput:
    """Total JointNet loss from its forward dict.

    Args:
        outputs: ``JointNet.forward`` output (uses ``erosion_logits``, ``be_logits``, ``jsn_logits``).
        erosion_mask: [N, 1, S, S] binary erosion target (any category).
        be, jsn: [N] integer scores (anything where not valid).
        be_valid, jsn_valid: [N] bool (see :func:`ramh_train.models.score_masks`, AND-ed with "score known").
        erosion_valid: [N] bool, crops with an erosion annotation (default all).
        ordinal: ``"coral"`` or ``"cumulative_link"``.
        score_weights: optional [N] row weights of the two score losses (CORAL only), e.g. the inverse sampling
            weights when diseased joints are oversampled: the segmentation head profits from the extra lesions while
            the score heads stay calibrated to the natural grade distribution.
    """
    if ordinal == "coral":
        ord_fn = coral_loss
    elif ordinal == "cumulative_link":
        ord_fn = cumulative_link_loss
    else:
        raise ValueError(f"ordinal must be 'coral' or 'cumulative_link', got {ordinal!r}")
    seg = erosion_seg_loss(outputs["erosion_logits"], erosion_mask, valid=erosion_valid)
    if score_weights is not None:
        if ordinal != "coral":
            raise ValueError("score_weights needs ordinal='coral'")
        l_be = coral_loss(outputs["be_logits"], be, be_valid, sample_weights=score_weights)
        l_jsn = coral_loss(outputs["jsn_logits"], jsn, jsn_valid, sample_weights=score_weights)
    else:
        l_be = ord_fn(outputs["be_logits"], be, be_valid)
        l_jsn = ord_fn(outputs["jsn_logits"], jsn, jsn_valid)
    total = seg_weight * seg.total + be_weight * l_be + jsn_weight * l_jsn
    parts = {f"erosion_{k}": v for k, v in seg.parts.items()}
    parts.update(be=float(l_be.detach()), jsn=float(l_jsn.detach()))
    return LossOutput(total, parts)


def severity_targets(totals: torch.Tensor) -> torch.Tensor:
    """Severity class indices [N] (long) of per-hand SvdH totals [N] (rounded, clipped to 0..140), per
    :data:`ramh_rt.anatomy.SEVERITY_CLASSES`."""
    t = torch.clamp(torch.round(totals.detach().double()), 0, anatomy.SVDH_MAX_PER_HAND)
    highs = torch.tensor([c.high for c in anatomy.SEVERITY_CLASSES[:-1]], dtype=torch.float64, device=t.device)
    # class index = number of class upper bounds strictly below the total
    return (t.unsqueeze(-1) > highs).sum(dim=-1).long()


def global_loss(outputs: dict[str, torch.Tensor], totals: torch.Tensor, *, scale: float = 140.0, beta: float = 0.05,
                severity_weight: float = 0.2, density: torch.Tensor | None = None,
                density_weight: float = 0.0) -> LossOutput:
    """GlobalNet loss: smooth L1 (Huber, transition ``beta``) between predicted and true totals divided by
    ``scale``, plus ``severity_weight`` x cross-entropy of the severity head against the classes of the totals,
    plus (with ``density``) ``density_weight`` x the squared error between the CAM's points per cell and the density
    map, summed over the cells (mean over the batch).

    Args:
        outputs: ``GlobalNet.forward`` output (``svdh_total`` [N, 1] in points, ``severity_logits`` [N, 5],
            ``cam`` [N, 1, h, w] with ``svdh_total = cam.mean((2, 3)) + bias``, so ``cam / (h * w)`` is points per
            cell).
        totals: [N] true per-hand totals (points).
        density: [N, 1, h, w] points per cell (:func:`ramh_train.train.score_density`; each map sums to its total).
    """
    pred = outputs["svdh_total"]
    if pred.ndim != 2 or pred.shape[1] != 1 or totals.shape != (pred.shape[0],):
        raise ValueError(f"svdh_total must be [N, 1] and totals [N]; got {tuple(pred.shape)} and "
                         f"{tuple(totals.shape)}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    reg = F.smooth_l1_loss(pred[:, 0] / scale, totals.to(pred) / scale, beta=beta)
    ce = F.cross_entropy(outputs["severity_logits"], severity_targets(totals).to(pred.device))
    total = reg + severity_weight * ce
    parts = {"regression": float(reg.detach()), "severity_ce": float(ce.detach())}
    if density is not None and density_weight > 0:
        cam = outputs["cam"]
        if density.shape != cam.shape:
            raise ValueError(f"density must match cam {tuple(cam.shape)}, got {tuple(density.shape)}")
        per_cell = cam / (cam.shape[2] * cam.shape[3])
        dens = (per_cell - density.to(per_cell)).pow(2).sum((1, 2, 3)).mean()
        total = total + density_weight * dens
        parts["density"] = float(dens.detach())
    return LossOutput(total, parts)


def class_weights_from_frequency(pixel_fraction: torch.Tensor, *, power: float = 0.5,
                                 max_ratio: float = 10.0) -> torch.Tensor:
    """Class weights ``f^-power`` normalised to mean 1 and clipped to ``max_ratio`` x the smallest, from the mean
    foreground pixel fraction per class [C] (e.g. measured on the training set). Zero fractions get the cap."""
    f = pixel_fraction.double()
    if f.ndim != 1 or bool((f < 0).any()):
        raise ValueError("pixel_fraction must be a non-negative [C] tensor")
    w = torch.where(f > 0, f.clamp_min(1e-12) ** -power, torch.full_like(f, float("inf")))
    finite = w[torch.isfinite(w)]
    if finite.numel() == 0:
        return torch.ones_like(f, dtype=torch.float32)
    w = torch.clamp(w, max=float(finite.min()) * max_ratio)
    return (w / w.mean()).float()
