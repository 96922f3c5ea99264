"""Input understanding on phantoms from unseen seeds: does the SDK know what it was given?

    python benchmarks/qc_phantoms.py [--n 40] [--seed 900000] [--kinds hand wrist ...] [--backend onnxruntime-cpu]
                                     [--bundle DIR] [--out benchmarks/results] [--name qc_phantoms]

For each of N seeds it builds the ordinary upright hand and every variant of
:mod:`ramh_train.phantoms.variants` (wrist and finger crops, partial hands, bilateral and composite films, turned and
mirrored films, markers, collimation, and non-hand negatives) and runs the SDK on the image alone (no spacing, no
file name; one-hand films get their true side as ``side=``, as a DICOM header would give it, unless
``--image-only``), then scores each film against its ground truth:

* a hand film is *recognised* when the SDK returns one result per hand (``analyze_hands``), each result's
  ``meta.hand_box`` overlaps its hand's true box (IoU >= 0.5, hands matched left to right), and its orientation
  (``rotation_deg``, ``mirrored``) and field of view equal the truth; for the ordinary ``hand`` kind its
  ``qc.status`` must also be ``"ok"`` (no false alarm in domain). The side is reported, not required;
* a negative is recognised when the SDK raises ``ramh_rt.errors.NotAHandError``.

The API is looked up with getattr, so the script runs against any state of the SDK: a part that does not exist yet
(``analyze_hands``, ``hand_box``, ``qc``...) makes its check "n/a", and a film whose required checks are not all
available is not recognised (it is counted under ``n/a``). Any exception that is not a ``RamhError`` is a failure of
its own (``undocumented_exceptions``), whatever the kind. The targets: ``hand`` qc ok >= 95% and every kind
recognised >= 95%.

Writes ``<out>/<name>.json`` (per kind: rates, per-check pass counts, outcomes, timing, examples of failures) and
prints a Markdown table.
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import RESULTS_DIR, write_results  # noqa: E402

#: Checks that decide whether a hand film is recognised (``qc_ok`` only for the ordinary hand).
REQUIRED = ("count", "box", "rotation", "mirrored", "field_of_view")
REPORTED = REQUIRED + ("side", "qc_ok")
TARGET = 0.95


def _get(obj, *path):
    """Follow attributes or dict keys; None where a step is missing."""
    for name in path:
        if obj is None:
            return None
        obj = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return obj


def _first(obj, *paths):
    """The first of several spellings that exists (the issue names both ``meta.orientation`` and
    ``qc.orientation``)."""
    for p in paths:
        v = _get(obj, *p)
        if v is not None:
            return v
    return None


def _iou(a, b) -> float:
    ax0, ay0, ax1, ay1 = (float(v) for v in a)
    bx0, by0, bx1, by1 = (float(v) for v in b)
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


class SDK:
    """The parts of the SDK under test, found by name (missing parts are None)."""

    def __init__(self, backend: str, bundle: str | None, **session_options):
        import ramh_rt
        from ramh_rt import errors
        from ramh_rt.pipeline import Analyzer

        self.analyzer = Analyzer(bundle, backend=backend, keep_image=False, **session_options)
        self.analyze_hands = getattr(self.analyzer, "analyze_hands", None)
        self.module_analyze_hands = None
        if self.analyze_hands is None:
            try:
                self.module_analyze_hands = getattr(ramh_rt, "analyze_hands")
            except AttributeError:
                pass
        self.RamhError = errors.RamhError
        self.NotAHandError = getattr(errors, "NotAHandError", None)
        self.MultipleHandsError = getattr(errors, "MultipleHandsError", None)
        self.backend = self.analyzer.backend.name

    def api(self) -> dict:
        """Which parts exist now."""
        return {"Analyzer.analyze_hands": self.analyze_hands is not None,
                "ramh_rt.analyze_hands": self.module_analyze_hands is not None,
                "errors.NotAHandError": self.NotAHandError is not None,
                "errors.MultipleHandsError": self.MultipleHandsError is not None}

    def run(self, image: np.ndarray, side: str | None = None) -> tuple[str, list, str | None]:
        """(outcome, results, error text): outcome ``"results"``, ``"not_a_hand"``, ``"multiple_hands"``,
        ``"ramh_error"`` or ``"undocumented_exception"``; ``results`` holds one Analysis per hand found, or the single
        Analysis of ``analyze`` when no ``analyze_hands`` exists (then ``count`` is n/a)."""
        try:
            if self.analyze_hands is not None:
                return "results", list(self.analyze_hands(image, side=side)), None
            if self.module_analyze_hands is not None:
                return "results", list(self.module_analyze_hands(image, bundle=self.analyzer.bundle,
                                                                 backend=self.backend, side=side)), None
            return "results", [self.analyzer.analyze(image, side=side)], None
        except Exception as e:  # noqa: BLE001 - classifying every exception is the point
            text = f"{type(e).__name__}: {e}"
            if self.NotAHandError is not None and isinstance(e, self.NotAHandError):
                return "not_a_hand", [], text
            if self.MultipleHandsError is not None and isinstance(e, self.MultipleHandsError):
                return "multiple_hands", [], text
            if isinstance(e, self.RamhError):
                return "ramh_error", [], text
            return "undocumented_exception", [], text + " | " + traceback.format_exc(limit=-2).strip()


def check_hand_film(v, outcome: str, results: list, have_hands_api: bool) -> dict[str, bool | None]:
    """Per-check verdicts (True, False, or None = not available in this SDK) of a hand film."""
    truth = v.hands
    checks: dict[str, bool | None] = {c: None for c in REPORTED}
    if outcome != "results":
        return {c: False for c in REPORTED}
    checks["count"] = (len(results) == len(truth)) if have_hands_api else None
    if len(results) != len(truth):
        # wrong count: the per-hand checks fail where they exist (they cannot be paired)
        for c in REPORTED[1:]:
            checks[c] = False if have_hands_api else None
        if not have_hands_api and len(truth) > 1:
            # plain analyze() saw one hand in a two-hand film without saying so
            for c in ("box", "rotation", "mirrored", "field_of_view", "side", "qc_ok"):
                checks[c] = False
        return checks
    per: dict[str, list[bool | None]] = {c: [] for c in REPORTED[1:]}
    for t, a in zip(truth, results):
        if _get(a, "meta") is None and _get(a, "error") is not None:
            # A failed hand of a two-hand film (an AnalysisError in its place) fails every check, not "n/a".
            for vals in per.values():
                vals.append(False)
            continue
        box = _get(a, "meta", "hand_box")
        per["box"].append(None if box is None else _iou(box, t.box) >= 0.5)
        orient = _first(a, ("meta", "orientation"), ("qc", "orientation"))
        rot = _get(orient, "rotation_deg")
        mir = _get(orient, "mirrored")
        per["rotation"].append(None if rot is None else int(rot) % 360 == t.rotation_deg)
        per["mirrored"].append(None if mir is None else bool(mir) == t.mirrored)
        fov = _first(a, ("meta", "field_of_view"), ("qc", "field_of_view"))
        per["field_of_view"].append(None if fov is None else fov == t.field_of_view)
        side = _get(a, "meta", "side")
        per["side"].append(None if side is None else side == t.side)
        status = _get(a, "qc", "status")
        per["qc_ok"].append(None if status is None else status == "ok")
    for c, vals in per.items():
        checks[c] = None if any(x is None for x in vals) else all(vals)
    return checks


def evaluate(n: int, base_seed: int, kinds: list[str], sdk: SDK, log=print, on_seed=None,
             give_side: bool = True) -> tuple[list[dict], dict]:
    """Run every kind on ``n`` seeds; returns (per-kind rows, API description). ``on_seed(rows, seeds_done)`` is
    called after each seed with the rows so far (to save partial results of a long run). ``give_side``: a one-hand
    film is analysed with its true side as ``side=`` (what a DICOM header or the station says): mirroring is only
    decidable against a trusted side."""
    from ramh_train.phantoms.variants import NEGATIVE_KINDS, make_variant

    have_hands_api = sdk.analyze_hands is not None or sdk.module_analyze_hands is not None
    rows = {k: {"kind": k, "n": 0, "recognised": 0, "not_available": 0, "outcomes": {}, "checks": {},
                "seconds_sdk": [], "failures": [], "exception_examples": []} for k in kinds}
    for i in range(n):
        seed = base_seed + i
        cache: dict = {}
        for kind in kinds:
            v = make_variant(kind, seed, masks=False, cache=cache)
            t0 = time.perf_counter()
            side = v.hands[0].side if give_side and len(v.hands) == 1 else None
            outcome, results, err = sdk.run(v.image, side)
            dt = time.perf_counter() - t0
            row = rows[kind]
            row["n"] += 1
            row["seconds_sdk"].append(dt)
            row["outcomes"][outcome] = row["outcomes"].get(outcome, 0) + 1
            if kind in NEGATIVE_KINDS:
                # analysed as if it were a hand is a wrong answer whether or not NotAHandError exists yet
                ok: bool | None = outcome == "not_a_hand"
                verdicts = {}
            else:
                verdicts = check_hand_film(v, outcome, results, have_hands_api)
                need = REQUIRED + (("qc_ok",) if kind == "hand" else ())
                vals = [verdicts[c] for c in need]
                ok = False if any(x is False for x in vals) else (None if any(x is None for x in vals) else True)
            for c, x in verdicts.items():
                cnt = row["checks"].setdefault(c, {"pass": 0, "fail": 0, "n/a": 0})
                cnt["pass" if x is True else "fail" if x is False else "n/a"] += 1
            if ok is True:
                row["recognised"] += 1
            elif ok is None:
                row["not_available"] += 1
            if outcome == "undocumented_exception" and len(row["exception_examples"]) < 10:
                row["exception_examples"].append({"seed": seed, "error": err})
            if ok is not True and len(row["failures"]) < 3:
                row["failures"].append({"seed": seed, "outcome": outcome, "error": err,
                                        "failed_checks": [c for c, x in verdicts.items() if x is False]})
        log(f"seed {seed}: done ({i + 1}/{n})")
        if on_seed is not None:
            on_seed(_summarise(rows, kinds), i + 1)
    return _summarise(rows, kinds), sdk.api()


def _summarise(rows: dict, kinds: list[str]) -> list[dict]:
    out = []
    for k in kinds:
        r = {key: val for key, val in rows[k].items() if key != "seconds_sdk"}
        secs = sorted(rows[k]["seconds_sdk"])
        r["rate"] = r["recognised"] / r["n"] if r["n"] else None
        r["meets_target"] = r["rate"] is not None and r["rate"] >= TARGET
        r["undocumented_exceptions"] = r["outcomes"].get("undocumented_exception", 0)
        r["sdk_seconds_p50"] = secs[len(secs) // 2] if secs else None
        out.append(r)
    return out


def markdown(rows: list[dict], api: dict) -> str:
    lines = ["| kind | n | recognised | rate | n/a | SDK outcomes | undocumented exceptions "
             "| failing checks (fail count) |",
             "| --- | ---: | ---: | ---: | ---: | --- | ---: | --- |"]
    for r in rows:
        fails = ", ".join(f"{c} {v['fail']}" for c, v in r["checks"].items() if v["fail"]) or "-"
        nas = ", ".join(c for c, v in r["checks"].items() if v["n/a"])
        outcomes = ", ".join(f"{k} {v}" for k, v in r["outcomes"].items())
        lines.append(f"| {r['kind']} | {r['n']} | {r['recognised']} | {r['rate']:.0%} | {r['not_available']} | "
                     f"{outcomes} | {r['undocumented_exceptions']} | {fails}" + (f"; n/a: {nas}" if nas else "") + " |")
    lines.append("")
    lines.append("API present: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in api.items()))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40, help="seeds (default 40)")
    ap.add_argument("--seed", type=int, default=900000, help="first seed; seeds are SEED..SEED+N-1 (default 900000, "
                    "far from the training sets' seeds; every hand's generator seed is further hashed)")
    ap.add_argument("--kinds", nargs="+", default=None, help="kinds to run (default: all)")
    ap.add_argument("--backend", default="onnxruntime-cpu")
    ap.add_argument("--bundle", default=None, help="bundle directory or .zip (default: the default bundle)")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: its own)")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--name", default="qc_phantoms", help="results file name without .json")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--image-only", action="store_true",
                    help="do not give one-hand films their true side (mirroring then cannot be decided)")
    args = ap.parse_args(argv)

    from ramh_train.phantoms.variants import KINDS

    kinds = args.kinds or list(KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or args.n < 1:
        ap.error(f"unknown kinds {unknown}; known: {', '.join(KINDS)}" if unknown else "--n must be >= 1")
    sdk = SDK(args.backend, args.bundle, **({"intra_op_threads": args.threads} if args.threads else {}))
    cmd = ("python benchmarks/qc_phantoms.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    t0 = time.perf_counter()

    def save(rows: list[dict], done: int) -> Path | None:
        # Written after every seed: a long run that is stopped keeps what it measured (seeds_done says how much).
        if args.no_write:
            return None
        return write_results(args.name, rows, args.out, command=cmd, api=sdk.api(), backend=sdk.backend,
                             seeds=[args.seed, args.seed + done - 1], seeds_done=done, seeds_asked=args.n,
                             target=TARGET, wall_s=time.perf_counter() - t0)

    rows, api = evaluate(args.n, args.seed, kinds, sdk, log=lambda m: print(m, file=sys.stderr), on_seed=save,
                         give_side=not args.image_only)
    print(markdown(rows, api))
    print(f"\n{args.n} seeds x {len(kinds)} kinds in {time.perf_counter() - t0:.0f} s on {sdk.backend}")
    if not args.no_write:
        print(f"wrote {args.out / (args.name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
