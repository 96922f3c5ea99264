"""Input understanding on the real reference films, through the whole pipeline (evaluation only: never training).

    python benchmarks/understand_real.py --reference DIR [--backend onnxruntime-cpu]

``DIR`` holds ``realhands/rsna/*.png`` with ``labels.csv`` (columns ``file``, ``hands``, ``fingers`` = up, right, down or
left), ``realhands/dha/*.png`` (whole hands) and ``ramw600/*.png`` (wrist crops). Prints, for the bone-age films, how
many give the right number of hands (``analyze_hands``) and, in addition, every hand's finger direction
(``meta.orientation``); for the atlas hands and the wrists, the field of view (``"hand"``, ``"wrist"``), the phalanges
reported and the severity (None where the whole hand is not in view). Exit code 0 when everything matches, 1 otherwise.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROT = {"up": 0, "right": 90, "down": 180, "left": 270}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", type=Path, required=True, help="the reference folder (see above)")
    ap.add_argument("--backend", default="onnxruntime-cpu")
    args = ap.parse_args(argv)
    from ramh_rt.errors import RamhError
    from ramh_rt.pipeline import AnalysisError, Analyzer

    ref = args.reference
    a = Analyzer(backend=args.backend, keep_image=False)
    print(f"view classifier: {'yes' if a.view_model is not None else 'no'}")
    with (ref / "realhands/rsna/labels.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    n_ok = dir_ok = 0
    wrong = []
    for r in rows:
        try:
            hands = a.analyze_hands(str(ref / "realhands/rsna" / r["file"]))
        except RamhError as e:
            wrong.append(f"{r['file']}: {type(e).__name__}: {e}")
            continue
        # A failed hand of a two-hand film (an AnalysisError in its place) counts as a hand found, its direction
        # as wrong.
        count = len(hands) == int(r["hands"])
        direction = count and all(not isinstance(h, AnalysisError) and
                                  h.meta.orientation["rotation_deg"] == ROT[r["fingers"]] for h in hands)
        n_ok += count
        dir_ok += direction
        if not direction:
            wrong.append(f"{r['file']}: {len(hands)} hand(s), " +
                         str([h.error if isinstance(h, AnalysisError) else h.meta.orientation for h in hands]))
    print(f"bone-age films: hands per film {n_ok}/{len(rows)}; hands and finger direction {dir_ok}/{len(rows)}")
    good = n_ok == dir_ok == len(rows)
    for sub, want in (("realhands/dha", "hand"), ("ramw600", "wrist")):
        for p in sorted((ref / sub).glob("*.png")):
            try:
                x = a.analyze(str(p))
            except RamhError as e:
                print(f"{sub}/{p.name}: {type(e).__name__}: {e}")
                good = False
                continue
            phalanges = [b.name for b in x.bones if b.name.startswith(("PP", "MP", "DP"))]
            ok = x.meta.field_of_view == want and (want == "hand" or not phalanges)
            good &= ok
            print(f"{sub}/{p.name}: field of view {x.meta.field_of_view} ({'ok' if ok else 'WRONG'}), "
                  f"{len(phalanges)} phalanges, severity {x.totals.severity}, whole-image {x.totals.global_svdh}")
    for w in wrong:
        print("  wrong:", w)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
