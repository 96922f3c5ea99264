"""SvdH score files of RAM-H1200: ``{ "<hand image name>": {"BE_R": 0, "BE_U": 2, ...}, ... }``."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ramh_rt import anatomy

from .errors import Problems
from .fileio import read_json
from .layout import SCORE_PREFIX, check_kind, image_stem, roi_stems

_INT_TEXT = re.compile(r"\s*\d+\s*")


def score_value(v: Any) -> int | None:
    """An integer score from a JSON value: int, integral float, or a string of digits (the benchmark code calls
    ``int()`` on what it reads); None stays None (not scored).

    Raises:
        ValueError: anything else (the message shows the value).
    """
    if v is None:
        return None
    if isinstance(v, bool):
        raise ValueError(f"score must be an integer; got {v!r}")
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and _INT_TEXT.fullmatch(v):
        return int(v)
    raise ValueError(f"score must be an integer; got {v!r}")


def parse_scores(path: Path, kind: str, problems: Problems, rel: str) -> dict[str, dict[str, int]] | None:
    """Parse and check a score file of one kind (``"be"`` or ``"jsn"``).

    Checks: valid JSON object of objects; no image entry twice (also ``X_L`` and ``X_L.bmp`` together); no key twice
    within an entry; every key a score key of this kind (:func:`ramh_rt.anatomy.score_range`); every value an integer
    in its range (``null`` means not scored and is left out). Bad entries or keys are left out when ``problems``
    collects.

    Returns:
        image stem -> {score key: value} (keys in :data:`ramh_rt.anatomy` order), or None when the file is missing
        or unusable.
    """
    kind = check_kind(kind)
    prefix = SCORE_PREFIX[kind]
    order = {f"{prefix}{s}": i for i, s in enumerate(roi_stems(kind))}
    top = read_json(path, problems, rel)
    if top is None:
        return None
    if not isinstance(top, dict):
        problems.error(rel, None, f"top level must be a JSON object (image name -> scores), got {type(top).__name__}")
        return None
    for name in getattr(top, "duplicates", []):
        problems.error(rel, f"image {name!r}", "image entry appears more than once")
    out: dict[str, dict[str, int]] = {}
    names: dict[str, str] = {}
    for name, entry in top.items():
        rec = f"image {name!r}"
        stem = image_stem(name)
        if stem in names:
            problems.error(rel, rec, f"same image as entry {names[stem]!r}")
            continue
        names[stem] = name
        if not isinstance(entry, dict):
            problems.error(rel, rec, f"entry must be an object of score keys; got {type(entry).__name__}")
            continue
        for k in getattr(entry, "duplicates", []):
            problems.error(rel, f"{rec}, key {k!r}", "score key appears more than once")
        scores: dict[str, int] = {}
        for key, v in entry.items():
            krec = f"{rec}, key {key!r}"
            if key not in order:
                try:
                    anatomy.score_range(key)
                    problems.error(rel, krec, f"a {key.partition('_')[0]} key in a {prefix[:-1]} score file")
                except KeyError:
                    problems.error(rel, krec, f"unknown score key (expected {prefix}<stem> with stem one of "
                                              f"{', '.join(roi_stems(kind))})")
                continue
            try:
                val = score_value(v)
            except ValueError as e:
                problems.error(rel, krec, str(e))
                continue
            if val is None:
                continue
            lo, hi = anatomy.score_range(key)
            if not lo <= val <= hi:
                problems.error(rel, krec, f"score {val} is outside {lo}..{hi}")
                continue
            scores[key] = val
        out[stem] = dict(sorted(scores.items(), key=lambda kv: order[kv[0]]))
    return out
