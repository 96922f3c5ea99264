"""Ordinal regression for SvdH scores: a rank-consistent CORAL / cumulative-link head and its probability algebra.

Model (one per score type): a shared scalar score ``g(x) = w . x`` and ``K - 1`` thresholds give the cumulative logits
``z_k = g(x) + b_k`` (k = 0 .. K-2) and the cumulative probabilities ``c_k = sigmoid(z_k) = P(y > k)``. This is CORAL
(Cao, Mirjalili & Raschka 2020: shared weights, K-1 biases) and equally the logistic cumulative-link (proportional
odds) model ``P(y <= k) = sigmoid(-b_k - g(x))``; the two differ only in the loss (see :mod:`ramh_train.losses`).

Rank consistency is guaranteed by construction, not only at the optimum as in the CORAL paper: the biases are
``b_0 = t`` and ``b_k = b_{k-1} - softplus(d_k)``, strictly decreasing, so ``c_0 > c_1 > ... > c_{K-2}`` for every
input.

Class probabilities (what the exported models output as ``be_probs`` / ``jsn_probs``)::

    q_0 = 1 - c_0,   q_k = c_{k-1} - c_k (0 < k < K-1),   q_{K-1} = c_{K-2}
    p_k = relu(q_k) / sum_j relu(q_j)

In exact arithmetic every ``q_k`` is positive and they telescope to a sum of exactly 1, so the ReLU and the division
change nothing; they are there so that any backend's rounding (fp16 sigmoids in TensorRT, say) can never produce a
negative probability or a sum away from 1. ``q`` is computed as one constant MatMul plus a constant Add, which keeps
the exported graph free of Slice/Concat/Shape arithmetic.

Point predictions from a probability vector (:func:`predict`): ``"median"`` (default; the smallest k with
``P(y <= k) >= 0.5``, which for monotone cumulative probabilities equals CORAL's rule "count of ``c_k > 0.5``"),
``"argmax"``, or ``"expected"`` (the rounded expected score).
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

PredictMode = Literal["median", "argmax", "expected"]


def _difference_matrix(num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """D [K-1, K] and e [K] such that ``q = c @ D + e`` (see module docstring)."""
    k = num_classes
    d = torch.zeros(k - 1, k)
    idx = torch.arange(k - 1)
    d[idx, idx] = -1.0
    d[idx, idx + 1] = 1.0
    e = torch.zeros(k)
    e[0] = 1.0
    return d, e


class OrdinalHead(nn.Module):
    """Rank-consistent ordinal output layer: features [N, F] -> cumulative logits [N, K-1].

    Args:
        in_features: F.
        num_classes: K >= 2 (6 for erosion scores 0..5, 5 for JSN 0..4).

    Use :meth:`probs` (or :func:`probs_from_logits`) for class probabilities [N, K].
    """

    def __init__(self, in_features: int, num_classes: int, score_gain: float = 10.0):
        super().__init__()
        if not score_gain > 0:
            raise ValueError(f"score_gain must be > 0, got {score_gain}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if in_features < 1:
            raise ValueError(f"in_features must be >= 1, got {in_features}")
        self.num_classes = int(num_classes)
        self.score = nn.Linear(in_features, 1, bias=False)
        # A small random score at start: predictions begin close to the threshold prior (see set_prior). Not zero:
        # the features below receive gradients proportional to this weight, and a zero start left the joint
        # model's score heads at the prior for 400+ steps (measured: weights still ~0.01 there).
        # The score is ``score_gain * (w . h)``: a grade needs |g| of a few units, and with unit-scale features a plain
        # linear score must grow its weights ~50x, which Adam does at ~lr per step (measured: QWK 0.18 vs 0.44 after
        # 400 steps on fixed features with gain 1 vs 10). The gain is a constant (a Mul in the exported graph).
        self.score_gain = float(score_gain)
        self.reset_score()
        # Thresholds start spread around 0 (like logits of a roughly uniform prior), decreasing.
        init = torch.linspace(1.0, -1.0, num_classes - 1) if num_classes > 2 else torch.zeros(1)
        self.first = nn.Parameter(init[:1].clone())
        gaps = (init[:-1] - init[1:]).clamp_min(1e-3)
        # inverse softplus so that softplus(raw) == gap at initialisation
        self.gaps_raw = nn.Parameter(torch.log(torch.expm1(gaps)))
        self.register_buffer("tril", torch.tril(torch.ones(num_classes - 1, num_classes - 2)
                                                if num_classes > 2 else torch.zeros(1, 0), diagonal=-1),
                             persistent=False)
        d, e = _difference_matrix(num_classes)
        self.register_buffer("diff", d, persistent=False)
        self.register_buffer("offset", e, persistent=False)
        self.frozen = False

    def reset_score(self) -> None:
        """Draw the score weight afresh (small: predictions start near the thresholds' prior)."""
        nn.init.normal_(self.score.weight, std=0.5 / math.sqrt(self.score.in_features) / self.score_gain)

    def freeze(self) -> None:
        """Replace the threshold parametrisation by its constant values (export: no Softplus/MatMul on parameters
        in the graph). Irreversible; used on the export copy of a model."""
        bias = self.biases().detach().clone()
        del self.first, self.gaps_raw
        self.register_buffer("frozen_bias", bias)
        self.frozen = True

    def set_prior(self, class_counts, *, min_gap: float = 1e-2) -> None:
        """Set the thresholds so that a zero score ``g(x) = 0`` predicts the class distribution ``class_counts``
        [K] (e.g. the training-set histogram): ``b_k = logit P(y > k)``, probabilities clipped to [1e-3, 1 - 1e-3]
        and gaps kept >= ``min_gap``. Starting from the prior speeds up training on imbalanced scores (most joints
        score 0).

        Raises:
            ValueError: wrong length, negative counts or an all-zero histogram; RuntimeError after :meth:`freeze`.
        """
        if self.frozen:
            raise RuntimeError("set_prior on a frozen OrdinalHead")
        counts = np.asarray(class_counts, dtype=np.float64)
        if counts.shape != (self.num_classes,) or np.any(counts < 0) or counts.sum() <= 0:
            raise ValueError(f"class_counts must be {self.num_classes} non-negative counts with a positive sum, "
                             f"got {class_counts!r}")
        above = 1.0 - np.cumsum(counts / counts.sum())[:-1]          # P(y > k), k = 0..K-2
        above = np.clip(above, 1e-3, 1 - 1e-3)
        b = np.log(above / (1 - above))
        gaps = np.maximum(b[:-1] - b[1:], min_gap)
        with torch.no_grad():
            self.first.fill_(float(b[0]))
            self.gaps_raw.copy_(torch.log(torch.expm1(torch.as_tensor(gaps, dtype=self.gaps_raw.dtype))))

    def biases(self) -> torch.Tensor:
        """The K-1 strictly decreasing biases b_k [K-1]."""
        if self.frozen:
            return self.frozen_bias
        # b = t - L @ softplus(d): a lower-triangular MatMul instead of cumsum
        return self.first - self.tril @ F.softplus(self.gaps_raw)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.score(features) * self.score_gain + self.biases()

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities [N, K] from cumulative logits [N, K-1] (see module docstring)."""
        q = torch.relu(torch.sigmoid(logits) @ self.diff + self.offset)
        return q / q.sum(dim=1, keepdim=True)


def probs_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities [N, K] from cumulative logits [N, K-1] of any ordinal head (same algebra as
    :meth:`OrdinalHead.probs`; does not assume the logits are monotone)."""
    if logits.ndim != 2 or logits.shape[1] < 1:
        raise ValueError(f"logits must be [N, K-1] with K >= 2, got shape {tuple(logits.shape)}")
    d, e = _difference_matrix(logits.shape[1] + 1)
    q = torch.relu(torch.sigmoid(logits) @ d.to(logits) + e.to(logits))
    return q / q.sum(dim=1, keepdim=True).clamp_min(torch.finfo(logits.dtype).tiny)


def cumulative_from_probs(probs: np.ndarray | torch.Tensor) -> np.ndarray:
    """``P(y > k)`` for k = 0..K-2 from class probabilities [..., K] (NumPy out)."""
    p = np.asarray(probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs, dtype=np.float64)
    return 1.0 - np.cumsum(p, axis=-1)[..., :-1]


def predict(probs: np.ndarray | torch.Tensor, mode: PredictMode = "median") -> np.ndarray:
    """Integer scores [...] from class probabilities [..., K].

    Args:
        probs: class probabilities, last axis = classes (rows need not be exactly normalised).
        mode: ``"median"`` (smallest k with ``P(y <= k) >= 0.5``), ``"argmax"``, or ``"expected"``
            (``round(sum_k k p_k)``, ties to even as NumPy rounds).

    Returns:
        int64 array of the leading shape.

    Raises:
        ValueError: an unknown mode, fewer than 2 classes, or a non-finite / negative probability.
    """
    p = np.asarray(probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs, dtype=np.float64)
    if p.ndim < 1 or p.shape[-1] < 2:
        raise ValueError(f"probs must have >= 2 classes on the last axis, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probs must be finite and non-negative")
    total = p.sum(axis=-1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("probs has a row summing to 0")
    p = p / total
    if mode == "median":
        cdf = np.cumsum(p, axis=-1)
        # tolerance so that a cdf of 0.4999999 from rounding at an exact tie does not flip the median
        return np.argmax(cdf >= 0.5 - 1e-9, axis=-1).astype(np.int64)
    if mode == "argmax":
        return np.argmax(p, axis=-1).astype(np.int64)
    if mode == "expected":
        k = np.arange(p.shape[-1], dtype=np.float64)
        return np.rint(p @ k).astype(np.int64)
    raise ValueError(f"mode must be 'median', 'argmax' or 'expected', got {mode!r}")


def expected_score(probs: np.ndarray | torch.Tensor) -> np.ndarray:
    """Expected score ``sum_k k p_k`` [...] from class probabilities [..., K] (float64)."""
    p = np.asarray(probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs, dtype=np.float64)
    return p @ np.arange(p.shape[-1], dtype=np.float64)


def ordinal_levels(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Binary CORAL targets [N, K-1]: ``levels[n, k] = target[n] > k`` (float)."""
    ks = torch.arange(num_classes - 1, device=target.device)
    return (target.unsqueeze(1) > ks).to(torch.float32)
