"""The SDK on real hand radiographs: hands found, quality control, SvdH totals of healthy hands, joint-ROI coverage.

    python benchmarks/real_hands.py [--reference DIR] [--bundle DIR] [--backend auto] [--name real_hands_default]
                                    [--out benchmarks/results] [--limit N]

Every real film of the shared reference data ``realhands`` is analysed with :func:`ramh_rt.analyze_hands` (the image
alone, as a station would send it; the atlas hands with their real pixel spacing from ``dha/spacing_mm.csv``):

* the 48 bone-age films ``rsna/*.png`` (healthy children: every true SvdH score is 0; ``rsna/labels.csv`` gives the
  number of hands per film, which the count of hands found is compared with);
* the 2 Digital Hand Atlas hands ``dha/3167.png`` and ``dha/3177.png`` (healthy children as well), whose joint
  landmarks (rows 3167 and 3177 of ``dha_landmarks.csv``) are checked against the ROIs the SDK returns: a landmark is
  *covered* when it lies inside the oriented box (``JointRecord.roi``) of the SvdH area it belongs to (thumb MCP ->
  MCP-T, thumb IP -> IP, MCPk -> MCP-I/M/R/S, PIPk -> PIP-I/M/R/S for k = 2..5). An area that was not located covers
  nothing.

Per hand it records the qc status (and its reason codes), ``totals.svdh`` (None for a partial view),
``totals.partial_svdh``, the erosion and JSN sums, ``svdh_interval`` and the global model's estimate. The summary gives
the median and maximum healthy total over all hands found (the target: at most 5), the qc status counts, the films
whose hand count differs from the label, and the coverage per atlas hand (the target: at least 90%).

The real images are only read: nothing from them is written but these figures. Writes ``<out>/<name>.json`` and
``<out>/<name>.md``.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import RESULTS_DIR, write_results  # noqa: E402
from realism import reference_dir  # noqa: E402
from shape_fit import DHA_COLUMNS, PHANTOM_JOINTS  # noqa: E402

#: Landmark name (shape_fit's) -> SvdH area stem whose ROI must hold it.
LANDMARK_AREAS = dict(PHANTOM_JOINTS)
#: The atlas hands that have both an image and a landmark row.
ATLAS_IMAGES = ("3167", "3177")
#: Targets of the issue: healthy totals at most 5, joint landmarks inside their area's ROI at least 90%.
TARGET_MAX_SVDH = 5
TARGET_COVERAGE = 0.90


def point_in_roi(point, roi) -> bool:
    """Whether ``point`` (x, y) in image pixels lies inside the oriented box ``roi`` = (cx, cy, w, h, angle_deg), the
    convention of :class:`ramh_rt.geometry.Roi` (``w`` along local x = (cos a, -sin a), ``h`` along local
    y = (sin a, cos a)); the border counts as inside.

    Raises:
        ValueError: ``roi`` does not have 5 finite numbers, ``w``/``h`` negative, or ``point`` not 2 finite numbers.
    """
    from ramh_rt.geometry import Roi

    cx, cy, w, h, ang = _finite(roi, 5, "roi")
    px, py = _finite(point, 2, "point")
    if w < 0 or h < 0:
        raise ValueError(f"roi width and height must be >= 0, got {w}, {h}")
    return bool(Roi(cx, cy, w, h, ang).contains((px, py)))  # the one box convention's own test


def _finite(values, n: int, what: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be {n} numbers, got {values!r}") from None
    if len(out) != n or not all(np.isfinite(out)):
        raise ValueError(f"{what} must be {n} finite numbers, got {values!r}")
    return out


def landmark_coverage(analysis, landmarks: dict[str, tuple[float, float]]) -> dict:
    """Which joint landmarks lie inside the ROI of their SvdH area.

    Args:
        analysis: a :class:`ramh_rt.Analysis` (its ``joints``: ``stem``, ``located``, ``roi`` in image pixels).
        landmarks: landmark name (a key of :data:`LANDMARK_AREAS`: ``"MCP1"``, ``"IP1"``, ``"MCP2"``..``"PIP5"``)
            -> (x, y) in the pixel frame of the analysed image.

    Returns:
        ``{"share": covered / len(landmarks), "covered": int, "n": int, "per_landmark": {name: {"area", "inside",
        "located", "distance_px"}}}``: ``inside`` False where the area was not located; ``distance_px`` from the
        landmark to the ROI centre (None where not located).

    Raises:
        KeyError: a landmark name without an SvdH area (the message lists the names).
        ValueError: ``landmarks`` is empty or holds a non-finite point.
    """
    if not landmarks:
        raise ValueError("landmark_coverage needs at least one landmark")
    joints = {j.stem: j for j in analysis.joints}
    per = {}
    for name, pt in landmarks.items():
        if name not in LANDMARK_AREAS:
            raise KeyError(f"landmark {name!r} has no SvdH area; known: {', '.join(LANDMARK_AREAS)}")
        stem = LANDMARK_AREAS[name]
        j = joints.get(stem)
        located = bool(j is not None and j.located and j.roi is not None)
        x, y = _finite(pt, 2, f"landmark {name}")
        per[name] = {"area": stem, "located": located, "inside": located and point_in_roi((x, y), j.roi),
                     "distance_px": float(np.hypot(x - j.roi[0], y - j.roi[1])) if located else None}
    covered = sum(v["inside"] for v in per.values())
    return {"share": covered / len(per), "covered": covered, "n": len(per), "per_landmark": per}


def atlas_landmarks(table: Path, image_id: str) -> dict[str, tuple[float, float]]:
    """The 10 joint landmarks (pixels of the atlas image) of row ``image_id`` of ``dha_landmarks.csv``.

    Raises:
        KeyError: no such row.
    """
    with table.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["image"] == image_id:
                return {name: (float(row[f"{col}_x"]), float(row[f"{col}_y"])) for name, col in DHA_COLUMNS.items()}
    raise KeyError(f"{table}: no landmark row for image {image_id}")


def _hand_record(a) -> dict:
    t = a.totals
    qc = a.qc
    return {"side": a.meta.side, "hand_box": list(a.meta.hand_box) if a.meta.hand_box else None,
            "orientation": dict(a.meta.orientation), "field_of_view": a.meta.field_of_view,
            "qc_status": getattr(qc, "status", None),
            "qc_reasons": [r.code for r in getattr(qc, "reasons", [])] if qc is not None else [],
            "svdh": t.svdh, "partial_svdh": t.partial_svdh, "erosion": t.erosion, "jsn": t.jsn,
            "expected_svdh": round(float(t.expected_svdh), 2), "svdh_interval": t.svdh_interval,
            "global_svdh": None if t.global_svdh is None else round(float(t.global_svdh), 2),
            "complete": t.complete, "areas_located": sum(j.located for j in a.joints), "areas": len(a.joints)}


def _films(realhands: Path) -> list[dict]:
    """Every film to analyse: name, path, set, expected hand count, spacing (mm or None)."""
    labels = {}
    with (realhands / "rsna" / "labels.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            labels[row["file"]] = row
    films = [{"name": f"rsna/{p.name}", "path": p, "set": "rsna",
              "hands_expected": int(labels[p.name]["hands"]) if p.name in labels else None,
              "duplicate_of": (labels.get(p.name) or {}).get("duplicate_of") or None, "spacing_mm": None}
             for p in sorted((realhands / "rsna").glob("*.png"))]
    spacing = {}
    with (realhands / "dha" / "spacing_mm.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            spacing[row["image"]] = float(row["spacing_mm"])
    films += [{"name": f"dha/{i}.png", "path": realhands / "dha" / f"{i}.png", "set": "dha", "hands_expected": 1,
               "duplicate_of": None, "spacing_mm": spacing[f"{i}.png"], "atlas_id": i} for i in ATLAS_IMAGES]
    return films


def run_film(film: dict, analyzer, landmark_table: Path | None) -> dict:
    """Analyse one film and score it (see the module docstring). A ``RamhError`` is recorded, not raised."""
    from ramh_rt.errors import RamhError

    rec = {k: (str(v) if isinstance(v, Path) else v) for k, v in film.items() if k != "path"}
    t0 = time.perf_counter()
    try:
        hands = analyzer.analyze_hands(str(film["path"]), spacing_mm=film["spacing_mm"])
    except RamhError as e:
        rec.update(error=f"{type(e).__name__}: {e}", hands_found=0, hands=[], seconds=time.perf_counter() - t0)
        return rec
    rec["seconds"] = round(time.perf_counter() - t0, 2)
    from ramh_rt.pipeline import AnalysisError

    rec["hands_found"] = len(hands)
    # A failed hand of a two-hand film (an AnalysisError in its place) is found but has no record: its error instead.
    failed = [a for a in hands if isinstance(a, AnalysisError)]
    hands = [a for a in hands if not isinstance(a, AnalysisError)]
    if failed:
        rec["failed_hands"] = [a.error for a in failed]
    rec["hands"] = [_hand_record(a) for a in hands]
    if film.get("atlas_id") and landmark_table is not None:
        lm = atlas_landmarks(landmark_table, film["atlas_id"])
        # The hand the landmarks belong to: the one whose ROIs hold the most of them (an atlas film has one hand).
        covs = [landmark_coverage(a, lm) for a in hands]
        best = max(range(len(covs)), key=lambda k: covs[k]["covered"]) if covs else None
        rec["coverage"] = covs[best] if best is not None else {"share": 0.0, "covered": 0, "n": len(lm),
                                                               "per_landmark": {}}
    return rec


def summarise(records: list[dict]) -> dict:
    """Summary over the films: healthy totals, qc statuses, hand counts, coverage."""
    hands = [h for r in records for h in r["hands"]]
    full = [h["svdh"] for h in hands if h["svdh"] is not None]
    partial = [h["partial_svdh"] for h in hands if h["partial_svdh"] is not None]
    status: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for h in hands:
        status[str(h["qc_status"])] = status.get(str(h["qc_status"]), 0) + 1
        for code in h["qc_reasons"]:
            reasons[code] = reasons.get(code, 0) + 1
    cov = {r["name"]: r["coverage"]["share"] for r in records if "coverage" in r}
    covered = sum(r["coverage"]["covered"] for r in records if "coverage" in r)
    n_lm = sum(r["coverage"]["n"] for r in records if "coverage" in r)

    def stats(v):
        return {"n": len(v), "median": statistics.median(v) if v else None, "max": max(v) if v else None,
                "share_at_most_target": (sum(x <= TARGET_MAX_SVDH for x in v) / len(v)) if v else None}

    return {"films": len(records), "hands_found": len(hands),
            "films_with_error": [r["name"] for r in records if "error" in r],
            "films_hand_count_wrong": [r["name"] for r in records
                                       if r.get("hands_expected") is not None
                                       and r["hands_found"] != r["hands_expected"]],
            "qc_status": status, "qc_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
            "healthy_svdh": stats(full), "healthy_partial_svdh": stats(partial),
            "coverage_per_image": cov, "coverage_pooled": covered / n_lm if n_lm else None,
            "targets": {"max_svdh": TARGET_MAX_SVDH, "coverage": TARGET_COVERAGE}}


def markdown(records: list[dict], summary: dict, header: str) -> str:
    """The per-film table and the summary as Markdown."""
    s = summary
    hs, ps = s["healthy_svdh"], s["healthy_partial_svdh"]
    lines = [f"# {header}", "",
             "Command: `PYTHONPATH=python python benchmarks/real_hands.py` (real films of shared/reference/realhands; "
             "healthy children, true SvdH 0).", "",
             f"- films: {s['films']}, hands found: {s['hands_found']}; hand count differs from the label on "
             f"{len(s['films_hand_count_wrong'])} film(s); errors on {len(s['films_with_error'])}",
             "- qc status of the hands: " + ", ".join(f"{k} {v}" for k, v in sorted(s["qc_status"].items()))
             + "; reasons (hands): " + ", ".join(f"{k} {v}" for k, v in s["qc_reasons"].items()),
             f"- healthy `totals.svdh` (whole hands, n={hs['n']}): median {hs['median']}, max {hs['max']}, "
             f"share <= {TARGET_MAX_SVDH}: {_pct(hs['share_at_most_target'])} "
             f"(target: every hand <= {TARGET_MAX_SVDH})",
             f"- healthy `totals.partial_svdh` (all hands, n={ps['n']}): median {ps['median']}, max {ps['max']}, "
             f"share <= {TARGET_MAX_SVDH}: {_pct(ps['share_at_most_target'])}",
             "- joint landmarks inside the ROI of their SvdH area: "
             + ", ".join(f"{k} {_pct(v)}" for k, v in s["coverage_per_image"].items())
             + f"; pooled {_pct(s['coverage_pooled'])} (target >= {_pct(TARGET_COVERAGE)})", "",
             "Per film (qc: the first three reason codes; all of them in the JSON):", "",
             "| film | hands exp./found | side | view | qc | svdh | partial | interval | global | coverage | s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in records:
        cov = _pct(r["coverage"]["share"]) if "coverage" in r else ""
        if "error" in r:
            lines.append(f"| {r['name']} | {r.get('hands_expected')}/0 | | | {r['error'][:60]} | | | | | {cov} | |")
        for k, h in enumerate(r["hands"]):
            name = r["name"] if k == 0 else ""
            count = f"{r.get('hands_expected')}/{r['hands_found']}" if k == 0 else ""
            qc = h["qc_status"] + (f" ({', '.join(h['qc_reasons'][:3])})" if h["qc_reasons"] else "")
            lines.append(f"| {name} | {count} | {h['side']} | {h['field_of_view']} | {qc} | {h['svdh']} | "
                         f"{h['partial_svdh']} | {h['svdh_interval']} | {h['global_svdh']} | {cov if k == 0 else ''} "
                         f"| {r['seconds'] if k == 0 else ''} |")
    lines.append("")
    return "\n".join(lines)


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}%"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", help="shared/reference folder (default: found beside the repository)")
    ap.add_argument("--bundle", help="model bundle (default: the SDK's default bundle)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--name", default="real_hands_default")
    ap.add_argument("--out", default=str(RESULTS_DIR))
    ap.add_argument("--limit", type=int, help="only the first N bone-age films (a quick look)")
    args = ap.parse_args(argv)

    from ramh_rt.pipeline import get_analyzer
    from ramh_rt import fs

    realhands = reference_dir(args.reference) / "realhands"
    films = _films(realhands)
    if args.limit is not None:
        films = [f for f in films if f["set"] == "rsna"][:args.limit] + [f for f in films if f["set"] == "dha"]
    analyzer = get_analyzer(args.bundle, args.backend)
    table = realhands / "dha_landmarks.csv"
    records = []
    for film in films:
        rec = run_film(film, analyzer, table)
        records.append(rec)
        tot = ", ".join(f"{h['svdh']}/{h['partial_svdh']} {h['qc_status']}" for h in rec["hands"])
        cov = f" coverage {rec['coverage']['share']:.2f}" if "coverage" in rec else ""
        print(f"{rec['name']}: {rec['hands_found']} hand(s) {tot}{cov} {rec.get('error', '')}", flush=True)
    summary = summarise(records)
    bundle = analyzer.bundle
    header = f"SDK on real hands: bundle {bundle.id} {getattr(bundle, 'version', '')}, backend {args.backend}"
    path = write_results(args.name, records, Path(args.out), summary=summary, bundle=bundle.id)
    fs.write_atomic(Path(args.out) / f"{args.name}.md", markdown(records, summary, header))
    print(markdown([], summary, header))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
