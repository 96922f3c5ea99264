"""Statistics of a RAM-H1200 dataset folder: a short report as a JSON-able dict and as Markdown.

Per split: image count, image size range, pixel-spacing range, the distribution of every score key and of the
per-hand BE / JSN / SvdH totals (with the severity classes of :data:`ramh_rt.anatomy.SEVERITY_CLASSES`), erosion
pixel counts per category, and an intensity summary from the histogram of all pixels. The dataset is read with the
strict reader, so a malformed dataset raises :class:`~.errors.DatasetError` (run ``ramh-data validate`` first).
"""
from __future__ import annotations

import os
from collections import Counter

import numpy as np
from tqdm import tqdm

from ramh_rt import anatomy

from .coco import decode_class_masks
from .errors import Problems
from .ramh1200 import RamH1200


def _summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=np.float64)
    return {"n": int(a.size), "min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()),
            "median": float(np.median(a))}


def _hist_summary(hist: np.ndarray) -> dict:
    n = int(hist.sum())
    if n == 0:
        return {"pixels": 0}
    levels = np.arange(hist.size, dtype=np.float64)
    mean = float((hist * levels).sum() / n)
    std = float(np.sqrt((hist * (levels - mean) ** 2).sum() / n))
    cdf = np.cumsum(hist)
    pct = {f"p{q}": int(np.searchsorted(cdf, q / 100 * n)) for q in (1, 5, 50, 95, 99)}
    nz = np.nonzero(hist)[0]
    return {"pixels": n, "min": int(nz[0]), "max": int(nz[-1]), "mean": mean, "std": std, **pct}


def dataset_stats(root: str | os.PathLike, *, joints_path: str | None = None, intensity: bool = True,
                  progress: bool = False) -> dict:
    """Compute the statistics report of a dataset folder.

    Args:
        root: the dataset folder.
        joints_path: joint-detection JSON template (default :data:`~.layout.DEFAULT_JOINTS_PATH`).
        intensity: read every image for the intensity summary (the only part that decodes images).
        progress: tqdm progress bar on stderr.

    Returns:
        ``{"root": str, "splits": {split: {...}}}``; per split: ``images``, ``height``/``width`` (min/max...),
        ``pixel_spacing_mm`` (summary over hands with a spacing, plus ``unknown``), ``score_counts`` (key -> {grade:
        count}), ``totals`` (``be``/``jsn``/``svdh`` summaries over hands with any score, ``complete_hands``,
        ``severity`` counts over complete hands), ``erosion_pixels`` (category -> hands with any, total, per-hand
        summary), ``intensity`` (dtype, pixels, min, max, mean, std, p1..p99) when requested.

    Raises:
        DatasetError: malformed dataset.
    """
    ds = RamH1200(root, joints_path=joints_path)
    out: dict = {"root": str(ds.root), "splits": {}}
    total = len(ds)
    bar = tqdm(total=total, unit="hand", desc="stats", disable=not progress)
    strict = Problems(raise_errors=True)
    try:
        for split in ds.splits:
            idx = ds.index(split)
            stems = idx.stems
            heights, widths, spacings, unknown_sp = [], [], [], 0
            score_counts: dict[str, Counter] = {}
            be_t, jsn_t, svdh_t, severity = [], [], [], Counter()
            complete = 0
            ero_px: dict[str, list[int]] = {c: [] for c in anatomy.EROSION_CATEGORIES}
            hist = None
            dtypes: Counter = Counter()
            for stem in stems:
                info = ds.image_info(stem, split)
                if info.height is not None:
                    heights.append(info.height)
                    widths.append(info.width)
                if info.spacing_mm is None:
                    unknown_sp += 1
                else:
                    spacings.append(info.spacing_mm)
                sc = ds.scores(stem, split)
                for k, v in sc.items():
                    score_counts.setdefault(k, Counter())[v] += 1
                if sc:
                    t = anatomy.hand_totals(sc)
                    be_t.append(t["erosion"])
                    jsn_t.append(t["jsn"])
                    svdh_t.append(t["svdh"])
                    if len(sc) == len(anatomy.BE_KEYS) + len(anatomy.JSN_KEYS):
                        complete += 1
                        severity[anatomy.severity_of(t["svdh"]).name] += 1
                if idx.erosion is not None and stem in idx.erosion.images:
                    masks = decode_class_masks(idx.erosion, stem, strict)
                    for c in anatomy.EROSION_CATEGORIES:
                        ero_px[c].append(int(masks[c].sum()) if c in masks else 0)
                if intensity and info.path is not None:
                    img = ds.load_image(stem, split)
                    dtypes[str(img.dtype)] += 1
                    levels = 65536 if img.dtype == np.uint16 else 256
                    h = np.bincount(img.ravel(), minlength=levels).astype(np.int64)
                    if hist is None:
                        hist = h
                    else:
                        if h.size > hist.size:  # a 16-bit image after 8-bit ones
                            hist = np.pad(hist, (0, h.size - hist.size))
                        hist[: h.size] += h
                bar.update()
            order = {k: i for i, k in enumerate(anatomy.BE_KEYS + anatomy.JSN_KEYS)}
            rep = {
                "images": len(stems),
                "height": _summary(heights),
                "width": _summary(widths),
                "pixel_spacing_mm": {**_summary(spacings), "unknown": unknown_sp},
                "score_counts": {k: {str(g): int(c) for g, c in sorted(score_counts[k].items())}
                                 for k in sorted(score_counts, key=order.__getitem__)},
                "totals": {"be": _summary(be_t), "jsn": _summary(jsn_t), "svdh": _summary(svdh_t),
                           "complete_hands": complete,
                           "severity": {c.name: int(severity[c.name]) for c in anatomy.SEVERITY_CLASSES}},
                "erosion_pixels": {c: {"hands_with_any": sum(v > 0 for v in px), "total": int(sum(px)),
                                       "per_hand": _summary(px)} for c, px in ero_px.items()},
            }
            if intensity:
                rep["intensity"] = {"dtype": dict(dtypes), **(_hist_summary(hist) if hist is not None else
                                                               {"pixels": 0})}
            out["splits"][split] = rep
    finally:
        bar.close()
    return out


def _fmt(x, nd: int = 3) -> str:
    if isinstance(x, float):
        return f"{x:.{nd}g}" if abs(x) < 1e4 else f"{x:.0f}"
    return str(x)


def _range(s: dict, unit: str = "") -> str:
    if not s.get("n"):
        return "n/a"
    lo, hi = _fmt(s["min"]), _fmt(s["max"])
    return (lo if lo == hi else f"{lo}-{hi}") + unit


def stats_markdown(stats: dict) -> str:
    """The report of :func:`dataset_stats` as Markdown."""
    lines = [f"# Dataset statistics: `{stats['root']}`", ""]
    splits = stats["splits"]
    names = list(splits)
    lines += ["| | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]

    def row(label, f):
        lines.append(f"| {label} | " + " | ".join(f(splits[s]) for s in names) + " |")

    row("images", lambda r: str(r["images"]))
    row("height (px)", lambda r: _range(r["height"]))
    row("width (px)", lambda r: _range(r["width"]))
    row("pixel spacing (mm)", lambda r: _range(r["pixel_spacing_mm"]) + f" ({r['pixel_spacing_mm']['unknown']} "
                                                                           "unknown)")
    for k in ("be", "jsn", "svdh"):
        label = {"be": "BE total per hand", "jsn": "JSN total per hand", "svdh": "SvdH total per hand"}[k]
        row(label, lambda r, k=k: (f"mean {_fmt(r['totals'][k]['mean'])} (range {_range(r['totals'][k])})"
                                   if r["totals"][k].get("n") else "n/a"))
    row(f"hands with all {len(anatomy.BE_KEYS) + len(anatomy.JSN_KEYS)} scores",
        lambda r: str(r["totals"]["complete_hands"]))
    for c in anatomy.SEVERITY_CLASSES:
        row(f"severity {c.name} ({c.low}-{c.high})", lambda r, c=c: str(r["totals"]["severity"][c.name]))
    for c in anatomy.EROSION_CATEGORIES:
        row(f"{c}: hands with any / pixels", lambda r, c=c: f"{r['erosion_pixels'][c]['hands_with_any']} / "
                                                             f"{r['erosion_pixels'][c]['total']}")
    if all("intensity" in splits[s] for s in names):
        row("intensity mean ± SD", lambda r: (f"{_fmt(r['intensity']['mean'])} ± {_fmt(r['intensity']['std'])}"
                                              if r["intensity"].get("pixels") else "n/a"))
        row("intensity p1 / p50 / p99", lambda r: (f"{r['intensity']['p1']} / {r['intensity']['p50']} / "
                                                   f"{r['intensity']['p99']}" if r["intensity"].get("pixels")
                                                   else "n/a"))
    keys = [k for k in anatomy.BE_KEYS + anatomy.JSN_KEYS if any(k in splits[s]["score_counts"] for s in names)]
    if keys:
        lines += ["", "## Score distributions (count per grade)", ""]
        for s in names:
            lines += [f"### {s}", "", "| key | " + " | ".join(str(g) for g in range(anatomy.BE_MAX + 1)) + " |",
                      "| --- |" + " ---: |" * (anatomy.BE_MAX + 1)]
            for k in keys:
                counts = splits[s]["score_counts"].get(k, {})
                hi = anatomy.score_range(k)[1]
                cells = [str(counts.get(str(g), 0)) if g <= hi else "" for g in range(anatomy.BE_MAX + 1)]
                lines.append(f"| {k} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
