"""Two radiographs of the same hand at two visits, with the disease progressed by known amounts (:func:`visit_pair`).

The follow-up film is the same phantom seed (so the same patient, side, anatomy and bone texture) drawn with another
pose seed (:attr:`PhantomConfig.pose_seed`: new spacing, rotation, position, field of view, scanner centre, exposure,
noise and distractors) and with every SvdH score forced to the baseline's plus the chosen change. Areas whose score
did not change keep their lesion and joint-space geometry exactly (the generator keys those draws by area), so an
unchanged pair differs only by how it was radiographed: the ground truth of "no progression".

Scores only increase (radiographic repair is rare and not modelled); a change that would take an area past its score
range is refused.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ramh_rt import anatomy

from ..datasets.sample import HandSample
from .config import PhantomConfig
from .generator import generate

# Random streams of this module, apart from the generator's (which use small stream numbers).
_POSE_STREAM = 1001
_PLAN_STREAM = 1002


@dataclass(frozen=True)
class VisitPair:
    """A baseline and a follow-up radiograph of one hand, and the true change between them.

    Attributes:
        seed: the phantom seed both films share (anatomy, patient, side).
        pose_seed: the pose seed of the follow-up film.
        baseline / followup: the two samples (images and every ground-truth annotation level).
        delta: ``{score key: follow-up minus baseline}`` for all 31 keys (``"BE_MCP-I"``, ``"JSN_PIP-II"``...),
            each >= 0.
    """

    seed: int
    pose_seed: int
    baseline: HandSample
    followup: HandSample
    delta: dict[str, int]

    @property
    def erosion_delta(self) -> int:
        """True change of the hand's erosion sum (SvdH units)."""
        return sum(v for k, v in self.delta.items() if k.startswith("BE_"))

    @property
    def jsn_delta(self) -> int:
        """True change of the hand's JSN sum (SvdH units)."""
        return sum(v for k, v in self.delta.items() if k.startswith("JSN_"))

    @property
    def total_delta(self) -> int:
        """True change of the hand's SvdH total (erosion + JSN units)."""
        return self.erosion_delta + self.jsn_delta


def _max_of(key: str) -> int:
    return anatomy.BE_MAX if key.startswith("BE_") else anatomy.JSN_MAX


def plan_progression(scores: Mapping[str, int], units: int, rng: np.random.Generator) -> dict[str, int]:
    """Spread ``units`` SvdH units of progression over the areas of a hand, one unit at a time.

    Each unit goes to an area that still has room, drawn with weight ``1 + current score``: damage tends to progress
    where it already is. Returns ``{score key: increase}`` for all keys of ``scores``.

    Raises:
        ValueError: ``units`` < 0 or more than the hand has room for.
    """
    if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 0:
        raise ValueError(f"units must be an int >= 0, got {units!r}")
    cur = {k: int(v) for k, v in scores.items()}
    room = sum(_max_of(k) - v for k, v in cur.items())
    if units > room:
        raise ValueError(f"cannot add {units} units: the hand has room for {room}")
    delta = {k: 0 for k in cur}
    keys = sorted(cur)
    for _ in range(int(units)):
        w = np.array([(1.0 + cur[k]) if cur[k] < _max_of(k) else 0.0 for k in keys])
        k = keys[int(rng.choice(len(keys), p=w / w.sum()))]
        cur[k] += 1
        delta[k] += 1
    return delta


def visit_pair(seed: int, progression: int | Mapping[str, int] = 0, *, config: PhantomConfig | None = None,
               pose_seed: int | None = None) -> VisitPair:
    """Generate a baseline and a follow-up film of the same phantom hand.

    Args:
        seed: phantom seed in ``[0, 2**63)`` (the baseline is ``generate(seed, config)``).
        progression: an int: that many SvdH units spread over the hand by :func:`plan_progression` (deterministic
            given ``seed``); or a mapping ``{score key or bare stem: increase}`` (bare stems need a ``BE_``/``JSN_``
            prefix to be unambiguous, so keys are full score keys). 0: an unchanged hand.
        config: generator settings for both films; its ``force_be``/``force_jsn`` shape the baseline only (the
            follow-up forces every score), its ``pose_seed`` is ignored.
        pose_seed: the follow-up's pose seed; default: derived from ``seed`` (never equal to the baseline's).

    Returns:
        :class:`VisitPair`. The follow-up's stem is the baseline's with ``_V1`` before the side suffix.

    Raises:
        ValueError: a negative or unknown change, a score pushed past its range, or a bad seed.
        TypeError: ``seed`` not an int, ``config`` not a :class:`PhantomConfig`.
    """
    cfg = PhantomConfig() if config is None else config
    if not isinstance(cfg, PhantomConfig):
        raise TypeError(f"config must be a PhantomConfig or None, got {type(config).__name__}")
    base = generate(seed, dataclasses.replace(cfg, pose_seed=None))
    scores = dict(base.scores)
    if isinstance(progression, Mapping):
        delta = {k: 0 for k in scores}
        for k, v in progression.items():
            if k not in scores:
                raise ValueError(f"unknown score key {k!r}; known: {', '.join(sorted(scores))}")
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"progression[{k!r}] must be an int >= 0, got {v!r}")
            if scores[k] + int(v) > _max_of(k):
                raise ValueError(f"{k}: baseline {scores[k]} + {v} exceeds the maximum {_max_of(k)}")
            delta[k] = int(v)
    else:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), _PLAN_STREAM]))
        delta = plan_progression(scores, progression, rng)
    if pose_seed is None:
        pose_seed = int(np.random.default_rng(np.random.SeedSequence([int(seed), _POSE_STREAM])).integers(2**62))
        if pose_seed == seed:
            pose_seed += 1
    follow = {k: scores[k] + delta[k] for k in scores}
    fcfg = dataclasses.replace(cfg, pose_seed=int(pose_seed),
                               force_be={k: v for k, v in follow.items() if k.startswith("BE_")},
                               force_jsn={k: v for k, v in follow.items() if k.startswith("JSN_")})
    stem = f"{base.stem[:-2]}_V1_{base.side}"
    fu = generate(seed, fcfg, stem=stem)
    return VisitPair(seed=int(seed), pose_seed=int(pose_seed), baseline=base, followup=fu, delta=delta)


__all__ = ["VisitPair", "plan_progression", "visit_pair"]
